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
 *   (end-to-end fields, the body framed by our HTTP/1.1 client, client/h1.ts), then the
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
import { connectionNamed, endToEnd, isHopByHop } from '../http/fields.js';
import type { ConnRequest, HeaderList } from '../http/types.js';
import type { ServerRequest, ServerResponse } from '../server/request.js';
import type { Upstream } from './upstream.js';

/** RFC 6455 §1.3: the GUID a server appends to the key before hashing it. */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
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
  let key: string | null = null;
  // RFC 8441 §5: extended CONNECT stands for a GET; an HTTP/1.1 Upgrade keeps its method (the h1 server takes no
  // Upgrade on a request with content: the bytes after its head are the new protocol's).
  const method = mux ? 'GET' : req.method;
  const headers: HeaderList = [
    ['connection', 'upgrade'],
    ['upgrade', mux ? 'websocket' : protocol],
  ];
  // RFC 8441 §5: an HTTP/2 client's own Sec-WebSocket-Key (it sends none by the RFC) must not reach the origin beside
  // ours.
  for (const f of t.headers) if (!mux || f[0] !== 'sec-websocket-key') headers.push(f);
  if (mux) {
    // RFC 8441 §5.1: no key on HTTP/2; the origin (HTTP/1.1) needs one — ours, whatever the client sent.
    key = randomBytes(16).toString('base64');
    headers.push(['sec-websocket-key', key]);
    if (!t.headers.some(([n]) => n === 'sec-websocket-version')) headers.push(['sec-websocket-version', '13']);
  }
  const up: ConnRequest = {
    method,
    path: t.path,
    authority: t.authority,
    scheme: 'http',
    headers,
    body: null,
    signal: req.signal,
    allowEarlyData: false,
    responseBufferBytes: undefined,
    onInformational: undefined,
  };
  // On an HTTP/1.1 connection of its own, dialled as the origin's requests are (the Agent's dial stack: its resolver,
  // every address, TFO, its egress proxy, failover across its URLs), asked through our HTTP/1.1 client.
  const answer = await t.upstream.upgrade(up, {
    signal: req.signal,
    connectTimeoutMs: t.connectTimeoutMs,
    headersTimeoutMs: t.headersTimeoutMs,
    bodyTimeoutMs: t.bodyTimeoutMs,
  });
  if (!answer.switched) {
    // Not switched: the origin's answer as the response it is (its body framed and timed by our client), then that
    // connection closes — except a 2xx to an extended CONNECT, which the client would read as the tunnel open.
    const res = answer.response;
    if (mux && res.status >= 200 && res.status < 300) {
      res.body.destroy();
      throw new OriginlinkError(
        ErrorCode.MALFORMED_RESPONSE,
        'remote',
        `origin answered the WebSocket upgrade with ${res.status}, not 101 (RFC 8441 §5: a 2xx would tell the client the tunnel is open)`,
      );
    }
    return { status: res.status, headers: endToEnd(res.headers), body: res.body };
  }
  const origin = answer.socket;
  // The origin socket's failures (a reset) end it with 'close', which the splice watches: an 'error' without a
  // listener would end the process.
  origin.on('error', () => {});
  // Until the tunnel is spliced, the origin connection is ours to end: when the client leaves (its stream or
  // connection closes, or the 101 can no longer be written to it), it goes too. Spliced, the tunnel ends both.
  let spliced = false;
  req.onAbort(() => {
    if (!spliced) origin.destroy();
  });
  if (req.signal.aborted) origin.destroy();
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
  if (answer.head.length) origin.unshift(answer.head);
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
