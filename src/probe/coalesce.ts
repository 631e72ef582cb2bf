/**
 * Connection coalescing (RFC 9113 §9.1.1, RFC 9114 §3.3): a request for host
 * B may use an h2 or h3 connection opened for host A when B resolves to the
 * connection's remote address, the port is the same, and A's certificate is
 * valid for B. Every connection tells its verified leaf (`peerCertificate()`).
 */
import type { X509Certificate } from 'node:crypto';
import type { Pool } from '../pool/pool.js';
import type { PooledConnection, Protocol } from '../http/types.js';
import { ipFamily } from '../util/ip.js';

const H2_ONLY: ReadonlySet<Protocol> = new Set<Protocol>(['h2']);

export interface CoalesceCandidate {
  pool: Pool;
  conn: PooledConnection;
}

/** Does the certificate cover `host` (RFC 9110 §4.3.4 / RFC 6125 matching, as Node checks it)? */
export function certCovers(cert: X509Certificate, host: string): boolean {
  return ipFamily(host) !== 0 ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

/**
 * A connection of another pool in `pools`, of one of `protocols` (h2, h3),
 * that may carry a request for host:port. `compatible(pool)` says whether
 * that pool's TLS settings (trust roots, verification) are the same as the
 * requesting origin's.
 */
export async function findCandidate(
  pools: Iterable<Pool>,
  self: Pool,
  host: string,
  port: number,
  resolve: (host: string) => Promise<string[]>,
  compatible: (p: Pool) => boolean,
  protocols: ReadonlySet<Protocol> = H2_ONLY,
): Promise<CoalesceCandidate | null> {
  const byPort: CoalesceCandidate[] = [];
  for (const p of pools) {
    if (p === self || !compatible(p)) continue;
    for (const c of p.connections()) {
      if (!protocols.has(c.protocol) || c.state !== 'ready' || c.facts.remotePort !== port || c.active >= c.capacity)
        continue;
      byPort.push({ pool: p, conn: c });
    }
  }
  if (byPort.length === 0) return null;
  let addrs: string[];
  try {
    addrs = await resolve(host);
  } catch {
    return null;
  }
  const norm = (a: string): string => (a.startsWith('::ffff:') ? a.slice(7) : a);
  const want = new Set(addrs.map(norm));
  for (const cand of byPort) {
    if (!want.has(norm(cand.conn.facts.remoteAddress))) continue;
    const cert = cand.conn.peerCertificate();
    if (cert && certCovers(cert, host)) return cand;
  }
  return null;
}
