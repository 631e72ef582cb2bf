/**
 * Egress proxy nodes and which one carries a request.
 *
 * A node is `http://`, `https://` (HTTP/1.1 CONNECT, RFC 9110 §9.3.6) or
 * `socks5://` (RFC 1928; user/pass RFC 1929) with optional credentials in the
 * URL. Its `key` names the node and a hash of its credentials: pools are keyed
 * by it, so a tunnel is never reused across credentials. The credentials
 * themselves never appear in a key, a log or the facts (`id` is the URL
 * without them).
 */
import { createHash } from 'node:crypto';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { redact } from '../util/redact.js';
import { clientIdentity } from './tls-context.js';

export type ProxyKind = 'http' | 'https' | 'socks5';

export interface ProxyNode {
  kind: ProxyKind;
  host: string;
  port: number;
  /** Decoded credentials, or null. */
  auth: { user: string; pass: string } | null;
  /** `kind://host:port`: safe to log and show. */
  id: string;
  /** `id` + `#` + a hash of the credentials (+ `#h2`): the pool-key part. */
  key: string;
  /** `https://` only: tunnels are HTTP/2 CONNECT streams of shared connections to the node (RFC 9113 §8.5). */
  http2: boolean;
  /** `https://` only: how the node's certificate is checked (ProxyOptions.tls), or null for the origin's settings. */
  tls: ProxyTls | null;
}

/** TLS to an `https://` node: the CA that signs its certificate (default: the system roots) and whether to check it. */
export interface ProxyTls {
  ca?: string | Buffer | Array<string | Buffer>;
  rejectUnauthorized?: boolean;
  /** A client certificate (PEM) shown to a node that asks for one (mutual TLS), with its `key`. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** How requests are spread over the nodes. */
export type ProxyPolicy = 'sticky' | 'per-origin' | 'round-robin';

export interface ProxyOptions {
  /** Proxy URLs, at least one. */
  nodes: readonly string[];
  /**
   * `sticky` (default): one node for every origin during a window, the next
   * node in the next window (warm connections per node); `per-origin`: an
   * origin always goes through the same node (a hash of the origin);
   * `round-robin`: the next node for each request.
   */
  policy?: ProxyPolicy;
  /** Window of `sticky`, ms. Default 60000. */
  stickyWindowMs?: number;
  /**
   * HTTP/2 CONNECT to `https://` nodes (ALPN h2): every tunnel to a node is a
   * stream of one TLS connection to it (more only past its stream limit)
   * instead of a TCP+TLS connection each. Default false (HTTP/1.1 CONNECT).
   */
  http2?: boolean;
  /**
   * TLS to `https://` nodes. Default: the origin's own `ca` / verification
   * (what a single CA for the whole lab needs); a proxy with a certificate of
   * its own names its CA here, or the system roots with `{}`.
   */
  tls?: ProxyTls;
}

const DEFAULT_PORT: Record<ProxyKind, number> = { http: 80, https: 443, socks5: 1080 };

export function parseProxy(url: string, http2 = false, tlsOpts: ProxyTls | null = null): ProxyNode {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw proxyConfigError('nodes', `not a URL: ${JSON.stringify(redact(url))}`);
  }
  const kind = u.protocol.slice(0, -1);
  if (kind !== 'http' && kind !== 'https' && kind !== 'socks5')
    throw proxyConfigError('nodes', `unsupported proxy scheme ${u.protocol} (http, https, socks5)`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '')
    throw proxyConfigError('nodes', `a proxy URL is scheme://[user:pass@]host:port (got a path in ${redact(url)})`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port ? Number(u.port) : DEFAULT_PORT[kind];
  const auth =
    u.username || u.password ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : null;
  if (kind === 'socks5' && auth && (Buffer.byteLength(auth.user) > 255 || Buffer.byteLength(auth.pass) > 255)) {
    throw proxyConfigError('nodes', 'SOCKS5 user and password are at most 255 bytes each (RFC 1929 §2)');
  }
  if (http2 && kind !== 'https')
    throw proxyConfigError('http2', `HTTP/2 CONNECT needs an https:// node (ALPN), got ${u.protocol}//${u.host}`);
  const id = `${kind}://${u.host}`;
  const cred = auth
    ? createHash('sha256').update(`${auth.user.length}:${auth.user}:${auth.pass}`).digest('base64url').slice(0, 16)
    : '-';
  const t = kind === 'https' ? tlsOpts : null;
  if (t && (t.cert === undefined) !== (t.key === undefined))
    throw proxyConfigError('tls', 'a client certificate needs both tls.cert and tls.key');
  // The trust settings are part of the key too: a tunnel made without verification is never reused by a verifying
  // config.
  const trust = t
    ? `#tls=${
        t.rejectUnauthorized === false
          ? 'noverify'
          : createHash('sha256')
              .update(String(t.ca ?? 'system'))
              .digest('base64url')
              .slice(0, 12)
      }${t.cert !== undefined && t.key !== undefined ? `#cert=${clientIdentity(t.cert, t.key, 'proxy.tls').id}` : ''}`
    : '';
  return { kind, host, port, auth, id, key: `${id}#${cred}${http2 ? '#h2' : ''}${trust}`, http2, tls: t };
}

/** Picks the node for each request under a policy. Small and pure but for the round-robin counter. */
export class ProxyRotation {
  readonly nodes: readonly ProxyNode[];
  readonly policy: ProxyPolicy;
  readonly stickyWindowMs: number;
  #next = 0;

  constructor(o: ProxyOptions) {
    if (!Array.isArray(o.nodes) || o.nodes.length === 0) throw proxyConfigError('nodes', 'at least one proxy URL');
    if (o.http2 !== undefined && typeof o.http2 !== 'boolean') throw proxyConfigError('http2', 'must be true or false');
    this.nodes = Object.freeze(o.nodes.map((u) => parseProxy(u, o.http2 ?? false, o.tls ?? null)));
    this.policy = o.policy ?? 'sticky';
    if (!['sticky', 'per-origin', 'round-robin'].includes(this.policy))
      throw proxyConfigError(
        'policy',
        `must be sticky, per-origin or round-robin (got ${JSON.stringify(this.policy)})`,
      );
    this.stickyWindowMs = o.stickyWindowMs ?? 60_000;
    if (!(this.stickyWindowMs > 0)) throw proxyConfigError('stickyWindowMs', 'must be a positive number of ms');
  }

  /** The node for a request to `origin` at wall-clock `now` (ms). */
  pick(origin: string, now: number): ProxyNode {
    const n = this.nodes.length;
    let i = 0;
    if (n > 1) {
      if (this.policy === 'round-robin') i = this.#next++ % n;
      else if (this.policy === 'per-origin') i = hashIndex(origin, n);
      else i = Math.floor(now / this.stickyWindowMs) % n;
    }
    return this.nodes[i] as ProxyNode;
  }
}

function hashIndex(s: string, n: number): number {
  return createHash('sha256').update(s).digest().readUInt32BE(0) % n;
}

function proxyConfigError(field: string, reason: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `proxy.${field}: ${reason}`, {
    details: { field: `proxy.${field}`, reason },
  });
}
