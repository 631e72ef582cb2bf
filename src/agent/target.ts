/**
 * What a connection is for: one origin as the Agent's options describe it — its address, the protocol policy, the TLS
 * trust and name, the egress proxy node, 0-RTT and coalescing — resolved once, with its reuse key computed once from
 * those fields (as Pingora's `HttpPeer` carries its reuse hash). Pools are keyed by `key`; coalescing, pool lookup and
 * stats read the fields, never the key. A group is the other kind of target (group/group.ts): the endpoints it picks
 * among are origin targets.
 */
import type { ProtocolPolicy } from '../connect/connect.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { EarlyDataPolicy } from '../http/early-data.js';
import type { ProxyNode } from '../net/proxy.js';
import { clientIdentity, type ClientIdentity } from '../net/tls-context.js';
import { contentId, lengthPrefixed } from '../util/digest.js';
import type { AgentOptions, OriginOverrides, TlsOptions } from './options.js';

/** How a connection's peer is trusted: the name it must prove and the CAs it is checked against. */
export interface TlsTrust {
  /** The SNI and the name checked, when it is not the origin's host. */
  readonly servername: string | undefined;
  /** The peer's certificate is verified (rejectUnauthorized). */
  readonly verify: boolean;
  readonly ca: TlsOptions['ca'];
  /** A SHA-256 of every CA byte ('-': the system's): two CA sets never share a connection. */
  readonly caId: string;
  /** The client certificate shown when the origin asks (mutual TLS), or null. */
  readonly identity: ClientIdentity | null;
}

export interface OriginTarget {
  readonly scheme: 'http' | 'https';
  /** The host without IPv6 brackets, and the port (the scheme's default when the URL has none). */
  readonly host: string;
  readonly port: number;
  /** `scheme://hostname:port` (brackets kept): the selection state's and the stats' name. */
  readonly origin: string;
  /** host[:port] as the URL writes it: a request's default Host / :authority. */
  readonly authority: string;
  readonly policy: ProtocolPolicy;
  readonly tls: TlsTrust;
  readonly proxy: ProxyNode | null;
  readonly earlyData: EarlyDataPolicy;
  /** Requests may ride another name's connection (never through a proxy). */
  readonly coalesce: boolean;
  /** The origin's own overrides (or its group's), for what is resolved when a pool is made. */
  readonly overrides: OriginOverrides;
  /** The reuse key: connections are shared only among requests whose target has the same key. */
  readonly key: string;
}

/**
 * The target a URL names under this Agent's options (`endpointOverrides`: a group's overrides for endpoints without
 * their own). Throws OL_INVALID_ARGUMENT on a scheme other than http(s), OL_UNSUPPORTED_PROTOCOL for h3 over http.
 */
export function resolveTarget(
  u: URL,
  protocol: ProtocolPolicy | undefined,
  proxy: ProxyNode | null,
  opts: AgentOptions,
  endpointOverrides: ReadonlyMap<string, OriginOverrides>,
  coalesceDefault: boolean,
): OriginTarget {
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `unsupported URL scheme ${u.protocol}`);
  const scheme = u.protocol === 'https:' ? 'https' : 'http';
  const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const overrides =
    opts.origins?.[`${scheme}://${u.host}`] ??
    opts.origins?.[`${scheme}://${u.hostname}:${port}`] ??
    endpointOverrides.get(u.origin) ??
    {};
  const policy: ProtocolPolicy = protocol ?? overrides.protocol ?? opts.protocol ?? 'auto';
  // RFC 9114 §3.1: HTTP/3 is for https origins only (QUIC always carries TLS); refused now, not after a QUIC timeout.
  if (policy === 'h3' && scheme === 'http')
    throw new OriginlinkError(
      ErrorCode.UNSUPPORTED_PROTOCOL,
      'local',
      `protocol h3 needs an https:// URL (HTTP/3 runs over QUIC, always TLS): got http://${u.host}`,
      { details: { origin: `http://${u.host}` } },
    );
  const t = { ...opts.tls, ...overrides.tls };
  const tls: TlsTrust = {
    servername: t.servername,
    verify: t.rejectUnauthorized !== false,
    ca: t.ca,
    caId: caId(t.ca),
    identity: identityOf(t),
  };
  // The proxy node and a hash of its credentials: a tunnel is never shared across nodes or credentials.
  const key =
    `${scheme}://${host}:${port}|${policy}|sni=${tls.servername ?? ''}|verify=${tls.verify}|ca=${tls.caId}` +
    (tls.identity ? `|cert=${tls.identity.id}` : '') +
    (proxy ? `|proxy=${proxy.key}` : '');
  return {
    scheme,
    host,
    port,
    origin: `${scheme}://${u.hostname}:${port}`,
    authority: u.host,
    policy,
    tls,
    proxy,
    earlyData: overrides.earlyData ?? opts.earlyData ?? 'safe',
    coalesce: proxy ? false : (overrides.coalesce ?? coalesceDefault),
    overrides,
    key,
  };
}

/**
 * A connection made for `b` may carry a request for `a` (RFC 9113 §9.1.1, RFC 9114 §3.3) only when both verify their
 * peer against the same CAs by the origin's own name — a name override or an unverified peer proves nothing of the
 * other name — and show the origin the same client certificate (or none): a request never rides a connection that
 * proved an identity its own origin was not configured to present.
 */
export function sameTrustForCoalescing(a: OriginTarget, b: OriginTarget): boolean {
  return (
    a.tls.verify &&
    b.tls.verify &&
    a.tls.servername === undefined &&
    b.tls.servername === undefined &&
    a.tls.caId === b.tls.caId &&
    (a.tls.identity?.id ?? null) === (b.tls.identity?.id ?? null)
  );
}

/** `cert` and `key` together or neither (OL_INVALID_ARGUMENT); checked as a pair once per pair of values. */
function identityOf(t: TlsOptions): ClientIdentity | null {
  if (t.cert === undefined && t.key === undefined) return null;
  if (t.cert === undefined || t.key === undefined)
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `tls.${t.cert === undefined ? 'cert' : 'key'} is missing: a client certificate needs both tls.cert and tls.key`,
    );
  return clientIdentity(t.cert, t.key);
}

/** One CA's id is its content id (util/digest.ts, shared with the QUIC config cache); a list's, hashed once a list. */
const listIds = new WeakMap<object, string>();
function caId(ca: TlsOptions['ca']): string {
  if (ca === undefined) return '-';
  if (!Array.isArray(ca)) return contentId(ca as string | Buffer);
  let id = listIds.get(ca);
  if (id === undefined) listIds.set(ca, (id = lengthPrefixed(ca)));
  return id;
}
