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
 * - Anything but 101 from the origin is passed on as that status with an
 *   empty body, and the origin connection is closed.
 * Then bytes flow both ways with backpressure (pipe) until either side
 * ends or fails; a failure on one side destroys the other.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type net from 'node:net';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { firstLine, H1ParseError, parseFieldLines, splitHead } from '../h1/fields.js';
import type { HeaderList } from '../http/types.js';
import { connectTcp } from '../transport/tcp.js';
import type { ServerRequest, ServerResponse } from '../transport/server-types.js';
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
}

export async function openTunnel(req: ServerRequest, t: TunnelTarget): Promise<ServerResponse> {
  const protocol = req.protocol as string;
  const mux = req.version === '2' || req.version === '3';
  if (mux && protocol.toLowerCase() !== 'websocket') return { status: 501, headers: [['content-type', 'text/plain']], body: `extended CONNECT for ${protocol} is not supported (websocket is)\n` };
  const url = new URL(t.upstream.config.urls[0] as string);
  const tlsCfg = t.upstream.config.tls;
  const secure = url.protocol === 'https:';
  const conn = await connectTcp({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || (secure ? 443 : 80)),
    tls: secure,
    servername: tlsCfg.servername ?? undefined,
    alpn: ['http/1.1'],
    ca: tlsCfg.ca ?? undefined,
    rejectUnauthorized: tlsCfg.verify,
    connectTimeoutMs: t.connectTimeoutMs,
  });
  const origin = conn.socket;
  let key: string | null = null;
  let head = `GET ${t.path} HTTP/1.1\r\nhost: ${t.authority}\r\nconnection: upgrade\r\nupgrade: ${mux ? 'websocket' : protocol}\r\n`;
  for (const [n, v] of t.headers) head += `${n}: ${v}\r\n`;
  if (mux) {
    // RFC 8441 §5.1: no key on HTTP/2; the origin (HTTP/1.1) needs one.
    key = randomBytes(16).toString('base64');
    head += `sec-websocket-key: ${key}\r\n`;
    if (!t.headers.some(([n]) => n === 'sec-websocket-version')) head += 'sec-websocket-version: 13\r\n';
  }
  origin.write(`${head}\r\n`, 'latin1');
  let answer: { status: number; headers: HeaderList; rest: Buffer };
  try {
    answer = await readHead(origin);
  } catch (e) {
    origin.destroy();
    throw e;
  }
  if (answer.status !== 101) {
    origin.destroy();
    return { status: answer.status, headers: answer.headers.filter(([n]) => n === 'content-type' || n.startsWith('www-') || n === 'retry-after'), body: '' };
  }
  const fields = new Map(answer.headers);
  if (key !== null && fields.get('sec-websocket-accept') !== createHash('sha1').update(key + WS_GUID).digest('base64')) {
    origin.destroy();
    throw new OriginlinkError(ErrorCode.MALFORMED_RESPONSE, 'remote', 'origin answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept');
  }
  if (answer.rest.length) origin.unshift(answer.rest);
  const out: HeaderList = [];
  for (const [n, v] of answer.headers) {
    if (mux ? WS_RESPONSE_FIELDS.has(n) : n !== 'connection' && n !== 'upgrade' && n !== 'content-length' && n !== 'transfer-encoding' && n !== 'keep-alive') out.push([n, v]);
  }
  if (!mux) out.unshift(['connection', 'upgrade'], ['upgrade', fields.get('upgrade') ?? protocol]);
  return { status: mux ? 200 : 101, headers: out, tunnel: (client) => splice(client, origin) };
}

/** Bytes both ways with backpressure; an end is passed on, a failure or close on either side ends both. */
function splice(client: Duplex, origin: net.Socket): void {
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

/** The origin's response head (status and fields) and the bytes after it. */
function readHead(s: net.Socket): Promise<{ status: number; headers: HeaderList; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (): void => {
      s.off('data', onData);
      s.off('close', onClose);
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      try {
        const h = splitHead(buf, MAX_HEAD, 'upgrade response');
        if (!h) return;
        const [statusLine, fieldsFrom] = firstLine(h.text);
        const m = /^HTTP\/1\.1 (\d{3})(?: .*)?$/.exec(statusLine);
        if (!m) throw new H1ParseError('malformed', `malformed status line ${JSON.stringify(statusLine.slice(0, 60))}`);
        done();
        s.pause();
        resolve({ status: Number(m[1]), headers: parseFieldLines(h.text, fieldsFrom), rest: h.rest });
      } catch (e) {
        done();
        reject(new OriginlinkError(ErrorCode.MALFORMED_RESPONSE, 'remote', `origin's answer to the upgrade: ${(e as Error).message}`));
      }
    };
    const onClose = (): void => {
      done();
      reject(new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'origin closed before answering the upgrade'));
    };
    s.on('data', onData);
    s.on('close', onClose);
  });
}
