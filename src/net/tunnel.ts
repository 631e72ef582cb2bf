/**
 * A byte stream to host:port through one egress proxy node: an HTTP/1.1
 * CONNECT tunnel over TCP or TLS to the proxy (RFC 9110 §9.3.6, Basic
 * credentials in Proxy-Authorization, RFC 9110 §11.7.2 / RFC 7617), or a
 * SOCKS5 CONNECT (RFC 1928, user/pass RFC 1929). The caller puts TLS to the
 * origin on top of the returned socket.
 *
 * Errors: refused credentials are OL_PROXY_AUTH_FAILED (never retried:
 * another node would be a silent change of identity); anything else about
 * the proxy is OL_PROXY_FAILED. Nothing of the request has left either way.
 */
import net from 'node:net';
import tls from 'node:tls';
import { ErrorCode, NOT_SENT, OriginlinkError } from '../errors.js';
import { clientContext, clientIdentity, type TrustedCa } from './tls-context.js';
import { MAX_INTERIM_RESPONSES } from '../http/status.js';
import type { ProxyNode } from './proxy.js';
import {
  ProxyReplyError,
  readConnectReply,
  readSocks5AuthStatus,
  readSocks5Method,
  readSocks5Reply,
  SOCKS_REPLY,
  type Read,
} from './proxy-replies.js';
import { ipFamily } from '../util/ip.js';
import type { DialSignal } from '../util/leg-signal.js';

export interface TunnelOptions {
  signal?: DialSignal | undefined;
  timeoutMs: number;
  /** Trust for an `https://` proxy's own certificate. */
  ca?: TrustedCa | undefined;
  rejectUnauthorized?: boolean | undefined;
}

/** Longest CONNECT response head read, bytes. */
const MAX_HEAD = 16 * 1024;

/**
 * `over`: a connection to the node already made (an `http2` node that chose HTTP/1.1 by ALPN,
 * connect/h2-proxy-links.ts).
 */
export function openTunnel(
  node: ProxyNode,
  host: string,
  port: number,
  o: TunnelOptions,
  over: net.Socket | null = null,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let done = false;
    let socket: net.Socket;
    if (over) {
      socket = over;
    } else if (node.kind === 'https') {
      socket = tls.connect(proxyTlsOptions(node, o, ['http/1.1']));
      socket.setNoDelay(true); // as for http:// nodes: a tunnel's small writes must not wait for an ACK (Nagle)
    } else {
      socket = net.connect({ host: node.host, port: node.port, noDelay: true });
    }
    const reader = new Reader(socket);
    const fail = (e: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(
        e instanceof OriginlinkError
          ? e
          : e instanceof ProxyReplyError
            ? proxyError(node, e.message, undefined, e.details)
            : proxyError(node, `cannot reach the proxy: ${(e as Error).message}`, e),
      );
    };
    const onAbort = (): void =>
      fail(new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true, facts: NOT_SENT }));
    const timer = setTimeout(
      () =>
        fail(
          new OriginlinkError(
            ErrorCode.CONNECT_TIMEOUT,
            'network',
            `tunnel through ${node.id} to ${host}:${port} not open within ${o.timeoutMs} ms`,
            { retrySafe: true, facts: NOT_SENT, details: { proxy: node.id } },
          ),
        ),
      o.timeoutMs,
    );
    if (o.signal?.aborted) {
      onAbort();
      return;
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once('close', () => fail(proxyError(node, 'the proxy closed the connection during the tunnel setup')));
    const handshake =
      node.kind === 'socks5' ? socks5(node, socket, reader, host, port) : httpConnect(node, socket, reader, host, port);
    handshake.then(() => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      socket.removeListener('error', fail);
      socket.removeAllListeners('close');
      reader.release();
      resolve(socket);
    }, fail);
  });
}

async function httpConnect(
  node: ProxyNode,
  socket: net.Socket,
  reader: Reader,
  host: string,
  port: number,
): Promise<void> {
  const authority = connectAuthority(host, port);
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  const auth = proxyAuthorization(node);
  if (auth) head += `Proxy-Authorization: ${auth}\r\n`;
  socket.write(`${head}\r\n`);
  // Interim heads are read one at a time and dropped (each read starts at the next head, not at the first), at
  // most MAX_INTERIM_RESPONSES of them: a proxy streaming 100 Continue held a tunnel set-up at full CPU, its
  // bytes growing, until the timeout.
  let status = await reader.parse((b) => readConnectReply(b, MAX_HEAD));
  for (let interims = 1; status < 200; interims++) {
    if (interims > MAX_INTERIM_RESPONSES)
      throw new ProxyReplyError(`more than ${MAX_INTERIM_RESPONSES} interim responses to CONNECT`);
    status = await reader.parse((b) => readConnectReply(b, MAX_HEAD));
  }
  const err = connectStatusError(node, authority, status);
  if (err) throw err;
}

/** `host:port` as a CONNECT request names it (RFC 9110 §9.3.6: authority-form; an IPv6 literal in brackets). */
export function connectAuthority(host: string, port: number): string {
  return `${ipFamily(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** Proxy-Authorization: Basic (RFC 9110 §11.7.2, RFC 7617), or none. */
export function proxyAuthorization(node: ProxyNode): string | null {
  return node.auth ? `Basic ${Buffer.from(`${node.auth.user}:${node.auth.pass}`).toString('base64')}` : null;
}

/** What a CONNECT's final status means (HTTP/1.1 or HTTP/2 CONNECT alike); null: the tunnel is open (2xx). */
export function connectStatusError(node: ProxyNode, authority: string, status: number): OriginlinkError | null {
  // RFC 9110 §15.5.8: 407 = the proxy wants (other) credentials; tinyproxy 1.11 answers 401 instead.
  if (status === 407 || status === 401)
    return authError(
      node,
      `${node.auth ? 'the proxy refused the credentials' : 'the proxy requires credentials'} (${status})`,
    );
  if (status < 200 || status > 299)
    return proxyError(node, `CONNECT ${authority} answered ${status}`, undefined, { status });
  return null;
}

/** TLS to an `https://` proxy itself: SNI by its name, trust from `o`. */
export function proxyTlsOptions(
  node: ProxyNode,
  o: Pick<TunnelOptions, 'ca' | 'rejectUnauthorized'>,
  alpn: string[],
): tls.ConnectionOptions {
  // The node's own trust settings when configured (ProxyOptions.tls), else the origin's.
  const t = node.tls ?? o;
  const verify = t.rejectUnauthorized ?? true;
  const to: tls.ConnectionOptions = {
    host: node.host,
    port: node.port,
    rejectUnauthorized: verify,
    ALPNProtocols: alpn,
  };
  if (ipFamily(node.host) === 0) to.servername = node.host;
  const own = node.tls;
  to.secureContext = clientContext(
    t.ca,
    own?.cert !== undefined && own.key !== undefined ? clientIdentity(own.cert, own.key, 'proxy.tls') : null,
    verify,
  );
  return to;
}

async function socks5(node: ProxyNode, socket: net.Socket, reader: Reader, host: string, port: number): Promise<void> {
  // RFC 1928 §3: version 5, the methods we offer: 0x00 none, 0x02 username/password (RFC 1929).
  socket.write(Buffer.from(node.auth ? [5, 2, 0, 2] : [5, 1, 0]));
  const method = await reader.parse(readSocks5Method);
  if (method === 0xff)
    throw authError(
      node,
      node.auth ? 'the SOCKS5 server accepts none of our methods' : 'the SOCKS5 server requires credentials',
    );
  if (method === 2) {
    if (!node.auth) throw authError(node, 'the SOCKS5 server requires credentials');
    const u = Buffer.from(node.auth.user);
    const p = Buffer.from(node.auth.pass);
    // RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD; reply VER, STATUS (0 = success).
    socket.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
    const status = await reader.parse(readSocks5AuthStatus);
    if (status !== 0) throw authError(node, `the SOCKS5 server refused the credentials (status ${status})`);
  } else if (method !== 0) {
    throw proxyError(node, `the SOCKS5 server chose a method we did not offer (${method})`);
  }
  // RFC 1928 §4: CONNECT; a name goes as ATYP 3 (the proxy resolves it), addresses as ATYP 1 / 4.
  const fam = ipFamily(host);
  const addr =
    fam === 4
      ? Buffer.from([1, ...host.split('.').map(Number)])
      : fam === 6
        ? Buffer.concat([Buffer.from([4]), ipv6Bytes(host)])
        : Buffer.concat([Buffer.from([3, Buffer.byteLength(host)]), Buffer.from(host)]);
  if (fam === 0 && Buffer.byteLength(host) > 255) throw proxyError(node, 'host name longer than 255 bytes');
  socket.write(Buffer.concat([Buffer.from([5, 1, 0]), addr, Buffer.from([port >> 8, port & 0xff])]));
  // RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT
  const rep = await reader.parse(readSocks5Reply);
  if (rep !== 0)
    throw proxyError(
      node,
      `SOCKS5 CONNECT to ${host}:${port} failed: ${SOCKS_REPLY[rep] ?? `reply ${rep}`}`,
      undefined,
      { socksReply: rep },
    );
}

function ipv6Bytes(host: string): Buffer {
  const [head = '', tail = ''] = host.split('::');
  const h = head ? head.split(':') : [];
  const t = host.includes('::') && tail ? tail.split(':') : [];
  const groups = host.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g as string, 16), i * 2));
  return b;
}

export function proxyError(
  node: ProxyNode,
  msg: string,
  cause?: unknown,
  details: Record<string, unknown> = {},
): OriginlinkError {
  return new OriginlinkError(ErrorCode.PROXY_FAILED, 'remote', `proxy ${node.id}: ${msg}`, {
    cause,
    retrySafe: true,
    facts: NOT_SENT,
    details: { proxy: node.id, ...details },
  });
}

export function authError(node: ProxyNode, msg: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.PROXY_AUTH_FAILED, 'local', `proxy ${node.id}: ${msg}`, {
    retrySafe: false,
    facts: NOT_SENT,
    details: { proxy: node.id },
  });
}

/**
 * Feeds a socket's bytes to the reply readers (proxy-replies.ts) during a handshake; release() hands leftovers back to
 * the stream.
 */
class Reader {
  #socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #want: (() => void) | null = null;
  #onData = (d: Buffer): void => {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    this.#want?.();
  };

  constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', this.#onData);
  }

  /** What `read` makes of the bytes so far; waits for more while it returns null; consumes what it used. */
  async parse<T>(read: (buf: Buffer) => Read<T> | null): Promise<T> {
    for (;;) {
      const r = read(this.#buf);
      if (r) {
        this.#buf = this.#buf.subarray(r.length);
        return r.value;
      }
      await new Promise<void>((res) => {
        this.#want = res;
      });
    }
  }

  /** Call in the same turn as the consumer attaches (no I/O callback may run in between: the stream keeps flowing). */
  release(): void {
    this.#socket.removeListener('data', this.#onData);
    if (this.#buf.length > 0) this.#socket.unshift(this.#buf);
  }
}
