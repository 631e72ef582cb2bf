/**
 * Admin listener (127.0.0.1 by default): `/metrics` (Prometheus text),
 * `/healthz` (200 while serving, 503 once draining), `/stats` (the agents'
 * PoolStats as JSON, for humans and scripts).
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import { startH1Server } from '../transport/h1-server.js';
import type { ServerResponse } from '../transport/server-types.js';

/** What /metrics reads: a service's Metrics, or a cluster primary's aggregate of its workers. */
export interface MetricsSource {
  registry: { metrics(): Promise<string>; readonly contentType: string };
}

export interface AdminHooks {
  metrics: MetricsSource;
  healthy(): boolean;
  /** A cluster primary asks its workers: may be a promise. */
  stats(): unknown;
}

/** The admin endpoints on our HTTP/1.1 server. */
export async function startAdmin(host: string, port: number, hooks: AdminHooks): Promise<{ port: number; close(): Promise<void> }> {
  const send = (status: number, type: string, body: string): ServerResponse => ({ status, headers: [['content-type', type], ['cache-control', 'no-store']], body });
  const srv = await startH1Server({
    host,
    port,
    keepAliveTimeoutMs: 5000,
    handler: async (req) => {
      const path = req.path.split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
      if (path === '/metrics') {
        try {
          return send(200, hooks.metrics.registry.contentType, await hooks.metrics.registry.metrics());
        } catch (e) {
          return send(500, 'text/plain', `metrics failed: ${(e as Error).message}\n`);
        }
      }
      if (path === '/healthz') return hooks.healthy() ? send(200, 'text/plain', 'ok\n') : send(503, 'text/plain', 'draining\n');
      if (path === '/stats') {
        try {
          return send(200, 'application/json', `${JSON.stringify(await hooks.stats())}\n`);
        } catch (e) {
          return send(500, 'text/plain', `stats failed: ${(e as Error).message}\n`);
        }
      }
      return send(404, 'text/plain', 'not found: try /metrics, /healthz, /stats\n');
    },
  }).catch((e: unknown) => {
    // As a front listener's (listeners.ts): one line naming the address, not a stack.
    throw new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `admin: cannot listen on ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  });
  return { port: srv.address.port, close: () => srv.close(0) };
}
