/**
 * Admin listener (127.0.0.1 by default): `/metrics` (Prometheus text),
 * `/healthz` (200 while serving, 503 once draining), `/stats` (the agents'
 * PoolStats as JSON, for humans and scripts).
 */
import http from 'node:http';
import type net from 'node:net';

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

export async function startAdmin(host: string, port: number, hooks: AdminHooks): Promise<{ port: number; close(): Promise<void> }> {
  const srv = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (path === '/metrics') {
      hooks.metrics.registry.metrics().then(
        (text) => send(200, hooks.metrics.registry.contentType, text),
        (e: unknown) => send(500, 'text/plain', `metrics failed: ${(e as Error).message}\n`),
      );
      return;
    }
    if (path === '/healthz') return hooks.healthy() ? send(200, 'text/plain', 'ok\n') : send(503, 'text/plain', 'draining\n');
    if (path === '/stats') {
      Promise.resolve(hooks.stats()).then(
        (v) => send(200, 'application/json', `${JSON.stringify(v)}\n`),
        (e: unknown) => send(500, 'text/plain', `stats failed: ${(e as Error).message}\n`),
      );
      return;
    }
    send(404, 'text/plain', 'not found: try /metrics, /healthz, /stats\n');
  });
  srv.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port }, () => { srv.off('error', reject); resolve(); });
  });
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => { srv.close(() => r()); srv.closeAllConnections(); }),
  };
}
