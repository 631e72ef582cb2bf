/** `--proxy`, `--proxy-policy`, `--sticky-window`, `--proxy-http2`, `--dns-server`: shared by fetch and probe. */
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { ProxyOptions, ProxyPolicy } from '../net/proxy.js';

export const EGRESS_USAGE = `  --proxy URL                egress proxy node: http://, https:// (CONNECT) or socks5://, [user:pass@]host:port
                             (repeatable: several nodes, spread by --proxy-policy)
  --proxy-policy P           sticky | per-origin | round-robin (default sticky)
  --sticky-window MS         window of the sticky policy (default 60000)
  --proxy-http2              HTTP/2 CONNECT to https:// nodes: every tunnel a stream of one connection per node
  --dns-server ADDR:PORT     ask this DNS server for A/AAAA with TTLs (repeatable; default the system resolver)`;

export const EGRESS_OPTIONS = {
  proxy: { type: 'string', multiple: true },
  'proxy-policy': { type: 'string' },
  'sticky-window': { type: 'string' },
  'proxy-http2': { type: 'boolean' },
  'dns-server': { type: 'string', multiple: true },
} as const;

export interface EgressValues {
  proxy?: string[] | undefined;
  'proxy-policy'?: string | undefined;
  'sticky-window'?: string | undefined;
  'proxy-http2'?: boolean | undefined;
  'dns-server'?: string[] | undefined;
}

/** The proxy options and DNS servers the flags ask for (validated further by ProxyRotation / Resolver). */
export function egressFromArgs(v: EgressValues): { proxy: ProxyOptions | null; dnsServers: string[] } {
  let proxy: ProxyOptions | null = null;
  if (v.proxy && v.proxy.length > 0) {
    const policy = (v['proxy-policy'] ?? 'sticky') as ProxyPolicy;
    if (!['sticky', 'per-origin', 'round-robin'].includes(policy))
      throw bad(`--proxy-policy must be sticky, per-origin or round-robin (got ${policy})`);
    proxy = { nodes: v.proxy, policy, ...(v['proxy-http2'] ? { http2: true } : {}) };
    if (v['sticky-window'] !== undefined) {
      const w = Number(v['sticky-window']);
      if (!Number.isInteger(w) || w < 1)
        throw bad(`--sticky-window must be a positive integer (ms), got ${v['sticky-window']}`);
      proxy.stickyWindowMs = w;
    }
  } else if (v['proxy-policy'] !== undefined || v['sticky-window'] !== undefined || v['proxy-http2'] !== undefined) {
    throw bad('--proxy-policy, --sticky-window and --proxy-http2 need --proxy');
  }
  return { proxy, dnsServers: v['dns-server'] ?? [] };
}

function bad(msg: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', msg);
}
