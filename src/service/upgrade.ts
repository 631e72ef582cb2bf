/**
 * Tunnels through the connector: an HTTP/1.1 `Upgrade` (WebSocket, or any
 * protocol the origin agrees to) and WebSocket over HTTP/2 by extended
 * CONNECT (RFC 8441), both to an HTTP/1.1 origin by `Upgrade` on a
 * connection of their own (a tunnel never goes back to a pool).
 *
 * - HTTP/1.1 client: the request goes to the origin with its end-to-end
 *   fields (Sec-WebSocket-Key included) plus `Connection: upgrade` and
 *   `Upgrade`; the origin's 101 goes back with its Sec-WebSocket-Accept.
 * - HTTP/2 client (RFC 8441 §5): `:protocol websocket` becomes `Upgrade:
 *   websocket` with a Sec-WebSocket-Key of ours (HTTP/2 carries none, RFC
 *   8441 §5.1); the origin's Accept is checked against it (RFC 6455 §4.1)
 *   and not passed on; the origin's 101 is the client's 200.
 * - Anything but 101 from the origin is passed on as the response it is
 *   (end-to-end fields, the body framed by our response parser), then the
 *   origin connection closes — except a 2xx to an HTTP/2 client: RFC 8441
 *   §5 reads any 2xx as the tunnel open, so an origin that did not switch
 *   is a 502 there.
 * - The 101 must come within the origin's `timeouts.headersMs` (else 504);
 *   a client that leaves before the tunnel is spliced takes the origin
 *   connection with it.
 * Then bytes flow both ways with backpressure (pipe) until either side
 * ends or fails; a failure on one side destroys the other.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { firstLine, H1ParseError, HeldBytes, parseFieldLines, splitHead } from '../h1/fields.js';
import { H1ResponseParser } from '../h1/parser.js';
import { connectionNamed, endToEnd, isHopByHop } from '../http/fields.js';
import type { HeaderList } from '../http/types.js';
import { PushBody } from '../wire/body.js';
import { abortBody } from '../util/body.js';
import { LazyTimer } from '../util/lazy-timer.js';
import type { ServerRequest, ServerResponse } from '../server/request.js';
import type { Upstream } from './upstream.js';

/** RFC 6455 §1.3: the GUID a server appends to the key before hashing it. */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_HEAD = 16 * 1024;
/** Fields of the origin's 101 a client needs (RFC 6455 §4.2.2); the rest of a 101 describes the origin connection. */
const WS_RESPONSE_FIELDS = new Set(['sec-websocket-protocol', 'sec-websocket-extensions', 'set-cookie']);

export interface TunnelTarget {
  upstream: Upstream;
  path: string;
  /** Host for the origin request. */
  authority: string;
  /** End-to-end request fields (hop-by-hop already removed). */
  headers: HeaderList;
  connectTimeoutMs: number;
  /** The origin's answer (101 or not) must come within this, ms. */
  headersTimeoutMs: number;
  /** The body of an answer other than 101: at most this long without a byte, ms (0: no limit). */
  bodyTimeoutMs: number;
}

export async function openTunnel(req: ServerRequest, t: TunnelTarget): Promise<ServerResponse> {
  const protocol = req.protocol as string;
  const mux = req.version === '2' || req.version === '3';
  if (mux && protocol.toLowerCase() !== 'websocket')
    return {
      status: 501,
      headers: [['content-type', 'text/plain']],
      body: `extended CONNECT for ${protocol} is not supported (websocket is)\n`,
    };
  // Dialled as the origin's requests are (the Agent's dial stack): its resolver, every address, TFO, its egress
  // proxy, failover across its URLs.
  const { socket: origin } = await t.upstream.dial(req.signal, t.connectTimeoutMs);
  // The origin socket's failures (a reset, a timeout) end it with 'close', which each stage below watches: an
  // 'error' without a listener would end the process (connectTcp's own listener is gone once it connected).
  let originError: Error | null = null;
  origin.on('error', (e) => {
    originError ??= e;
  });
  // Until the tunnel is spliced, the origin connection is ours to end: when the client leaves (its stream or
  // connection closes, or the 101 can no longer be written to it), it goes too. Spliced, the tunnel ends both.
  let spliced = false;
  req.onAbort(() => {
    if (!spliced) origin.destroy();
  });
  let key: string | null = null;
  // RFC 8441 §5: extended CONNECT stands for a GET; an HTTP/1.1 Upgrade keeps its method (the h1 server takes no
  // Upgrade on a request with content: the bytes after its head are the new protocol's).
  const method = mux ? 'GET' : req.method;
  let head = `${method} ${t.path} HTTP/1.1\r\nhost: ${t.authority}\r\nconnection: upgrade\r\nupgrade: ${mux ? 'websocket' : protocol}\r\n`;
  // RFC 8441 §5: an HTTP/2 client's own Sec-WebSocket-Key (it sends none by the RFC) must not reach the origin beside
  // ours.
  for (const [n, v] of t.headers) if (!mux || n !== 'sec-websocket-key') head += `${n}: ${v}\r\n`;
  if (mux) {
    // RFC 8441 §5.1: no key on HTTP/2; the origin (HTTP/1.1) needs one — ours, whatever the client sent.
    key = randomBytes(16).toString('base64');
    head += `sec-websocket-key: ${key}\r\n`;
    if (!t.headers.some(([n]) => n === 'sec-websocket-version')) head += 'sec-websocket-version: 13\r\n';
  }
  origin.write(`${head}\r\n`, 'latin1');
  let answer: Answer;
  try {
    answer = await readHead(origin, t.headersTimeoutMs, () => originError);
  } catch (e) {
    origin.destroy();
    throw e;
  }
  if (answer.status !== 101) {
    if (mux && answer.status >= 200 && answer.status < 300) {
      origin.destroy();
      throw new OriginlinkError(
        ErrorCode.MALFORMED_RESPONSE,
        'remote',
        `origin answered the WebSocket upgrade with ${answer.status}, not 101 (RFC 8441 §5: a 2xx would tell the client the tunnel is open)`,
      );
    }
    return relayAnswer(origin, answer, method, t.bodyTimeoutMs);
  }
  const fields = new Map(answer.headers);
  if (
    key !== null &&
    fields.get('sec-websocket-accept') !==
      createHash('sha1')
        .update(key + WS_GUID)
        .digest('base64')
  ) {
    origin.destroy();
    throw new OriginlinkError(
      ErrorCode.MALFORMED_RESPONSE,
      'remote',
      'origin answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept',
    );
  }
  if (answer.rest.length) origin.unshift(answer.rest);
  const out: HeaderList = [];
  // RFC 9110 §7.6.1: the 101's connection-specific fields stay on the origin's hop (ours: Connection, Upgrade).
  const named = mux ? null : connectionNamed(answer.headers);
  for (const [n, v] of answer.headers) {
    if (mux ? WS_RESPONSE_FIELDS.has(n) : !isHopByHop(n, named as ReadonlySet<string>) && n !== 'content-length')
      out.push([n, v]);
  }
  if (!mux) out.unshift(['connection', 'upgrade'], ['upgrade', fields.get('upgrade') ?? protocol]);
  return {
    status: mux ? 200 : 101,
    headers: out,
    tunnel: (client) => {
      spliced = true;
      splice(client, origin);
    },
  };
}

/**
 * An origin's answer other than 101: the response it is, its body read by our response parser (framed by
 * length, chunks or the close) with backpressure; the origin connection closes after it (a tunnel's connection
 * never serves again).
 */
function relayAnswer(origin: Duplex, answer: Answer, method: string, bodyTimeoutMs: number): ServerResponse {
  let res: ServerResponse | null = null;
  let complete = false;
  const body = new PushBody(
    () => origin.resume(),
    () => origin.pause(),
    () => origin.destroy(),
  );
  let failure: Error | null = null;
  const fail = (e: Error): void => {
    failure ??= e;
    origin.destroy();
    abortBody(body, e);
  };
  // An origin that stops mid-body (nothing read for bodyTimeoutMs) fails the answer (504). Paused by the client's
  // backpressure, the wait is the client's: the deadline starts again. (A timer of ours, not the socket's: through an
  // HTTP/2 proxy node the origin's stream is a tunnel stream, not a socket.)
  const idle =
    bodyTimeoutMs > 0
      ? new LazyTimer(() => {
          if (complete) return;
          if (origin.isPaused()) idle?.set(bodyTimeoutMs);
          else
            fail(
              new OriginlinkError(
                ErrorCode.BODY_TIMEOUT,
                'remote',
                `origin sent no byte of its answer to the upgrade for ${bodyTimeoutMs} ms`,
              ),
            );
        })
      : null;
  idle?.set(bodyTimeoutMs);
  const parser = new H1ResponseParser(
    {
      onHead: (h) => {
        res = { status: h.status, headers: endToEnd(h.headers), body };
      },
      onBody: (c) => body.deliver(c, false),
      onTrailers: () => {},
      onComplete: () => {
        complete = true;
        body.deliver(Buffer.alloc(0), true);
        origin.destroy();
      },
    },
    { maxHeaderBytes: MAX_HEAD, maxHeaderCount: 200 },
  );
  parser.expect(method);
  const feed = (d: Buffer): void => {
    try {
      parser.execute(d);
    } catch (e) {
      fail(
        new OriginlinkError(
          ErrorCode.MALFORMED_RESPONSE,
          'remote',
          `origin's answer to the upgrade: ${(e as Error).message}`,
        ),
      );
    }
  };
  // The head again, whole, with what followed it: the parser frames the body from it (an interim 1xx is passed over).
  feed(answer.bytes);
  if (res === null) {
    // A malformed answer, or only an interim response in (the final one's head must follow within the same bounds:
    // rare enough to take plainly): a 502, the connection closed.
    origin.destroy();
    if (failure) throw failure;
    throw new OriginlinkError(
      ErrorCode.MALFORMED_RESPONSE,
      'remote',
      `origin answered the upgrade with an interim ${answer.status}, then not at once with a final response`,
    );
  }
  origin.on('data', (d: Buffer) => {
    idle?.set(bodyTimeoutMs);
    feed(d);
  });
  origin.on('end', () => {
    if (!complete) parser.eof();
  }); // ends a body read until the close
  origin.on('close', () => idle?.clear());
  origin.on('close', () => {
    if (!complete) fail(new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'origin closed mid-response'));
  });
  origin.resume();
  return res;
}

/** Bytes both ways with backpressure; an end is passed on, a failure or close on either side ends both. */
function splice(client: Duplex, origin: Duplex): void {
  client.pipe(origin);
  origin.pipe(client);
  const cut = (): void => {
    client.destroy();
    origin.destroy();
  };
  client.on('error', cut);
  origin.on('error', cut);
  client.on('close', () => origin.destroy());
  origin.on('close', () => client.destroy());
}

interface Answer {
  status: number;
  headers: HeaderList;
  /** The bytes after the head. */
  rest: Buffer;
  /** Every byte read: the head and the rest. */
  bytes: Buffer;
}

/** The origin's response head (status and fields) and the bytes after it, within `timeoutMs`. */
function readHead(s: Duplex, timeoutMs: number, socketError: () => Error | null): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const held = new HeldBytes();
    const timer = setTimeout(() => {
      done();
      reject(
        new OriginlinkError(
          ErrorCode.HEADERS_TIMEOUT,
          'remote',
          `origin did not answer the upgrade within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
    };
    const onData = (d: Buffer): void => {
      const buf = held.held ? held.take(d, MAX_HEAD) : d;
      if (buf === null) return;
      try {
        const h = splitHead(buf, MAX_HEAD, 'upgrade response');
        if (!h) {
          held.hold(buf, true);
          return;
        }
        const [statusLine, fieldsFrom] = firstLine(h.text);
        const m = /^HTTP\/1\.1 (\d{3})(?: .*)?$/.exec(statusLine);
        if (!m) throw new H1ParseError('malformed', `malformed status line ${JSON.stringify(statusLine.slice(0, 60))}`);
        done();
        s.pause();
        resolve({ status: Number(m[1]), headers: parseFieldLines(h.text, fieldsFrom), rest: h.rest, bytes: buf });
      } catch (e) {
        done();
        reject(
          new OriginlinkError(
            ErrorCode.MALFORMED_RESPONSE,
            'remote',
            `origin's answer to the upgrade: ${(e as Error).message}`,
          ),
        );
      }
    };
    const onClose = (): void => {
      done();
      const e = socketError();
      reject(
        new OriginlinkError(
          e ? ErrorCode.SOCKET_RESET : ErrorCode.SOCKET_CLOSED,
          'remote',
          `origin closed before answering the upgrade${e ? ` (${(e as NodeJS.ErrnoException).code ?? e.message})` : ''}`,
        ),
      );
    };
    s.on('data', onData);
    s.on('close', onClose);
  });
}
