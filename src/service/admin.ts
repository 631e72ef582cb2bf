/**
 * Admin listener (127.0.0.1 by default): `/metrics` (Prometheus text),
 * `/healthz` (200 while serving, 503 once draining), `/stats` (the agents'
 * PoolStats as JSON, for humans and scripts).
 */
import { ipFamily } from '../util/ip.js';
import { hostname } from 'node:os';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { bindReason } from './listeners.js';
import { startH1Server } from '../server/h1.js';
import type { ServerResponse } from '../server/request.js';
import { hostOnly } from './router.js';

/** What /metrics reads: a service's Metrics, or a cluster primary's aggregate of its workers. */
export interface MetricsSource {
  registry: { metrics(): Promise<string>; readonly contentType: string };
  /** Before a scrape: what starts only once someone scrapes (a service's process series). */
  prepare?(): Promise<void>;
}

export interface AdminHooks {
  metrics: MetricsSource;
  healthy(): boolean;
  /** A cluster primary asks its workers: may be a promise. */
  stats(): unknown;
  /**
   * Host names this listener answers to beyond its addresses (`admin.hosts`), read per request: a reload changes them
   * in place.
   */
  names(): readonly string[];
}

/**
 * Whether a request's Host names this admin listener: an IP address (a page from elsewhere cannot make a browser send
 * one in its own name), `localhost`, this machine's host name, the bind address, or a name in `admin.hosts`. Any other
 * name is what DNS rebinding sends — a name an attacker's page owns, re-pointed at this address — and gets 421
 * (RFC 9110 §15.5.20), so such a page never reads /metrics or /stats. No Host (HTTP/1.0) is no browser's.
 */
export function adminAnswers(authority: string, bindHost: string, names: readonly string[]): boolean {
  if (authority === '') return true;
  let host = hostOnly(authority);
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (ipFamily(host) !== 0 || host === 'localhost' || host.endsWith('.localhost') || host === bindHost.toLowerCase())
    return true;
  if (host === hostname().toLowerCase()) return true;
  for (const n of names) if (n.toLowerCase() === host) return true;
  return false;
}

/** The admin endpoints on our HTTP/1.1 server. */
export async function startAdmin(
  host: string,
  port: number,
  hooks: AdminHooks,
): Promise<{ port: number; close(): Promise<void> }> {
  const send = (status: number, type: string, body: string): ServerResponse => ({
    status,
    headers: [
      ['content-type', type],
      ['cache-control', 'no-store'],
    ],
    body,
  });
  const srv = await startH1Server({
    host,
    port,
    keepAliveTimeoutMs: 5000,
    handler: async (req) => {
      if (!adminAnswers(req.authority, host, hooks.names()))
        return send(
          421,
          'text/plain',
          'misdirected request: this admin listener answers its own addresses and admin.hosts only\n',
        );
      const path = req.path.split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
      if (path === '/metrics') {
        try {
          await hooks.metrics.prepare?.();
          return send(200, hooks.metrics.registry.contentType, await hooks.metrics.registry.metrics());
        } catch (e) {
          return send(500, 'text/plain', `metrics failed: ${(e as Error).message}\n`);
        }
      }
      if (path === '/healthz')
        return hooks.healthy() ? send(200, 'text/plain', 'ok\n') : send(503, 'text/plain', 'draining\n');
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
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `admin: cannot listen on ${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { cause: e, details: { admin: true, reason: `cannot listen on ${host}:${port}: ${bindReason(e)}` } },
    );
  });
  return { port: srv.address.port, close: () => srv.close(0) };
}

type AdminListener = { port: number; close(): Promise<void> };
type AdminAt = { host: string; port: number } | null | undefined;

/**
 * The admin listener after a reload moved it from `was` to `now` (both the service and the cluster primary): the
 * new one starts first, so one that cannot bind leaves the old one serving; only when the new address needs the
 * old one's port (the same port, another host) is the old one closed first — and started again if the new one
 * still cannot bind. What failed goes to `warn`. Returns the listener now serving (null: none wanted).
 */
export async function moveAdmin(
  current: AdminListener | null,
  was: AdminAt,
  now: AdminAt,
  start: (at: { host: string; port: number }) => Promise<AdminListener>,
  warn: (err: Error) => void,
): Promise<AdminListener | null> {
  if (!now) {
    await current?.close();
    return null;
  }
  try {
    const next = await start(now);
    await current?.close();
    return next;
  } catch (e) {
    if (!current || !was || was.port !== now.port) {
      warn(e as Error);
      return current;
    }
  }
  await current.close();
  try {
    return await start(now);
  } catch (e) {
    warn(e as Error);
    return await start(was).catch(() => null);
  }
}
