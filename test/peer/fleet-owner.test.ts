/**
 * docs/fleet.md with `serve --workers 2` in front of a real nginx origin that counts its own connections:
 * with `route: owner` every request reaches the origin through the owner's pool (the origin sees the connections
 * of one process, not one per worker) and each worker's /stats says who owns the origin; `direct` opens one per
 * worker, as before; the member port refuses a client without the run's token; the owner SIGKILLed under
 * sequential GETs fails none of them.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { buildIfStale } from '../helpers/build.js';
import { Nginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';
import { get } from '../helpers/serve-child.js';
import { ServeCluster, until } from '../helpers/serve-cluster.js';

/** A GET on a connection of its own: its status and header names. */
function getHead(port: number, path: string): Promise<{ status: number; names: string[] }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, names: Object.keys(res.headers) }));
      })
      .on('error', reject);
  });
}

/** A POST on a connection of its own, its body with a length or chunked. */
function post(
  port: number,
  path: string,
  body: Buffer,
  framing: 'length' | 'chunked',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: false,
        headers: framing === 'length' ? { 'content-length': body.length } : { 'transfer-encoding': 'chunked' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface FleetStats {
  self: string;
  members: Array<{ name: string; url: string; socketPath?: string }>;
  origins: Record<string, { owner: string | null; forwarded: number; received: number; route: string }>;
}

describe('fleet: the workers of serve --workers 2 share each origin through its owner', () => {
  let dir: string;
  let nginx: Nginx;
  /** An origin that answers after 2 s, counting what it is asked. */
  let slow: http.Server;
  /** An origin that closes idle connections after 2 s and says so (Node's `Keep-Alive: timeout=2`). */
  let brief: http.Server;
  let briefPort = 0;
  let slowPort = 0;
  let slowSeen = 0;
  let front: number;
  let admin: number;
  const clusters: ServeCluster[] = [];

  const configText = (route: 'owner' | 'direct' | 'auto', originExtra = ''): string => `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: ${front} }
admin: { host: 127.0.0.1, port: ${admin} }
shutdown: { graceMs: 2000 }
fleet: { route: ${route} }
origins:
  app: { url: "http://127.0.0.1:${nginx.port}", protocol: h1${originExtra} }
  slow: { url: "http://127.0.0.1:${slowPort}", protocol: h1, timeouts: { headersMs: 300 } }
  brief: { url: "http://127.0.0.1:${briefPort}", protocol: h1 }
routes:
  - { path: /slow/, origin: slow }
  - { path: /brief/, origin: brief }
  - { path: /, origin: app }
`;

  const start = async (route: 'owner' | 'direct' | 'auto'): Promise<ServeCluster> => {
    // Ports of its own: a cluster a failed test left behind holds the last ones until afterAll.
    [front, admin] = await Promise.all([freePort(), freePort()]);
    const cfg = join(dir, `${route}.yaml`);
    writeFileSync(cfg, configText(route));
    const sc = new ServeCluster(cfg);
    clusters.push(sc);
    await sc.serving();
    return sc;
  };

  const fleetStats = async (): Promise<FleetStats[]> => {
    const st = JSON.parse((await get(admin, '/stats')).body) as {
      workers: Array<{ worker: number; body: Record<string, unknown> | null }>;
    };
    return st.workers.map((w) => w.body?.['(fleet)'] as FleetStats).filter((x) => x !== undefined);
  };

  /** Both workers in each other's table (the primary tells them as each is ready): before any load. */
  const fleetKnown = (): Promise<unknown> =>
    until(
      'both workers to know the fleet',
      fleetStats,
      (s) => s.length === 2 && s.every((x) => x.members.length === 2),
    );

  /** `n` GETs, each on a connection of its own (node:cluster hands connections, not requests, to workers). */
  const gets = async (n: number, tag: string, prefix = '/small.txt'): Promise<Array<number | string>> => {
    const out: Array<number | string> = [];
    for (let i = 0; i < n; i++) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<string>((r) => {
        timer = setTimeout(() => r('no answer in 5 s'), 5000);
      });
      out.push(
        await Promise.race([
          get(front, `${prefix}?${tag}${i}`).then(
            (r) => r.status,
            (e: NodeJS.ErrnoException) => e.code ?? 'error',
          ),
          late,
        ]),
      );
      clearTimeout(timer);
    }
    return out;
  };

  const stop = async (sc: ServeCluster): Promise<void> => {
    sc.child.kill('SIGTERM');
    await Promise.race([sc.exited, new Promise((r) => setTimeout(r, 10_000))]);
    sc.kill();
  };

  beforeAll(async () => {
    buildIfStale();
    dir = mkdtempSync(join(tmpdir(), 'ol-fleet-'));
    nginx = await Nginx.start({ tls: false });
    slow = http.createServer((_req, res) => {
      slowSeen++;
      setTimeout(() => res.end('late\n'), 2000).unref();
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    slowPort = (slow.address() as { port: number }).port;
    brief = http.createServer((_req, res) => res.end('brief\n'));
    brief.keepAliveTimeout = 2000;
    await new Promise<void>((r) => brief.listen(0, '127.0.0.1', r));
    briefPort = (brief.address() as { port: number }).port;
  }, 30_000);

  afterAll(async () => {
    for (const sc of clusters) sc.kill();
    await nginx?.close();
    slow?.closeAllConnections();
    slow?.close();
    brief?.closeAllConnections();
    brief?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('owner: both workers serve, the origin sees one process worth of connections', async () => {
    const sc = await start('owner');
    await fleetKnown();
    const from = nginx.log().length;
    expect(new Set(await gets(40, 'o'))).toEqual(new Set([200]));
    const lines = await nginx.logSince(from, 40);
    expect(lines).toHaveLength(40);
    // Sequential requests through one owner's pool: one origin connection carries them all.
    expect(new Set(lines.map((l) => l.connection)).size).toBe(1);
    const stats = await fleetStats();
    // Each worker reachable as itself: a unix socket of its own, in a directory only this user may enter.
    const sockets = (stats[0] as FleetStats).members.map((m) => m.socketPath as string);
    expect(new Set(sockets).size).toBe(2);
    for (const p of sockets) {
      expect(statSync(p).isSocket()).toBe(true);
      expect(statSync(p).mode & 0o777).toBe(0o600);
      expect(statSync(dirname(p)).mode & 0o777).toBe(0o700);
    }
    const owners = new Set(stats.map((s) => s.origins['app']?.owner));
    expect(owners.size).toBe(1);
    const owner = [...owners][0] as string;
    const byName = new Map(stats.map((s) => [s.self, s.origins['app']]));
    const other = stats.find((s) => s.self !== owner) as FleetStats;
    // Requests that reached the other worker's front went to the owner: its forwarded ones are the owner's received.
    expect(byName.get(other.self)?.forwarded).toBeGreaterThan(0);
    expect(byName.get(owner)?.received).toBe(byName.get(other.self)?.forwarded);
    // The same in the primary's /metrics (summed over the workers).
    const metrics = (await get(admin, '/metrics')).body;
    const series = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    const fwd = byName.get(other.self)?.forwarded as number;
    expect(series('originlink_fleet_requests_total\\{origin="app",direction="forwarded"\\}')).toBe(fwd);
    expect(series('originlink_fleet_requests_total\\{origin="app",direction="received"\\}')).toBe(fwd);
    expect(series('originlink_fleet_members')).toBe(4);

    // A slow origin through its owner: the owner's own deadline answers (504), and the origin is asked each request
    // once (the link's deadlines are longer; a link timeout would never be replayed anyway).
    slowSeen = 0;
    expect(new Set(await gets(10, 's', '/slow/'))).toEqual(new Set([504]));
    expect(slowSeen).toBe(10);

    // Bodies cross the link both ways: 20 POSTs of 200 KiB (a body the front reads whole, then one it streams).
    const big = Buffer.alloc(200 * 1024, 0x61);
    const posts = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post(front, `/post?p${i}`, big, i % 2 === 0 ? 'length' : 'chunked')),
    );
    expect(posts).toEqual(Array.from({ length: 20 }, () => ({ status: 200, body: 'posted\n' })));

    // The member port is no open proxy: without the run's token, 403.
    const ownerMember = (stats[0] as FleetStats).members.find((m) => m.name === owner);
    const ownerUrl = ownerMember?.url as string;
    const stranger = new Agent({
      protocol: 'h2',
      origins: { [ownerUrl]: { socketPath: ownerMember?.socketPath as string } },
    });
    try {
      const res = await stranger.request({
        origin: ownerUrl,
        path: '/small.txt',
        headers: { 'originlink-fleet-origin': 'app', 'originlink-fleet-token': 'guess' },
      });
      expect(res.status).toBe(403);
      expect(res.headers.find(([n]) => n === 'x-originlink-error')?.[1]).toBe('fleet_untrusted');
      await res.text();
    } finally {
      await stranger.close();
    }

    // The owner SIGKILLed while GETs go on: no answer is an error status (the survivor's link loses the request and
    // sends it direct, then owns the origin). The one GET that may be on the victim's own front connection at that
    // moment loses its connection, as any client of a dying process does.
    const victim = sc
      .lines()
      .find((l) => l['msg'] === 'originlink serving' && l['worker'] === Number(owner.slice(1)))?.['pid'] as number;
    expect(typeof victim).toBe('number');
    const during = gets(30, 'k');
    await new Promise((r) => setTimeout(r, 20));
    process.kill(victim, 'SIGKILL');
    const got = await during;
    expect(got.filter((x) => typeof x === 'number' && x !== 200)).toEqual([]);
    // At most the one GET whose front connection was the victim's, lost with it: reset, or — a connection the
    // primary was handing to the victim as it died (node:cluster) — never answered. A forwarded GET is never lost.
    expect(got.filter((x) => typeof x === 'string').length).toBeLessThanOrEqual(1);
    await stop(sc);
  }, 90_000);

  it('a worker whose config of the origin differs is not sent its requests: they go direct, logged once', async () => {
    const sc = await start('owner');
    await fleetKnown();
    // One worker alone reloads a config where the origin differs (its retries): the two now disagree about it.
    writeFileSync(join(dir, 'owner.yaml'), configText('owner', ', retries: 1'));
    const serving = sc.lines().filter((l) => l['msg'] === 'originlink serving' && typeof l['worker'] === 'number');
    process.kill(serving[0]?.['pid'] as number, 'SIGHUP');
    await until(
      'the one worker to reload',
      () => sc.lines().filter((l) => l['msg'] === 'config reloaded'),
      (ls) => ls.length >= 1,
    );
    expect(new Set(await gets(40, 'm'))).toEqual(new Set([200]));
    const warned = sc
      .lines()
      .filter((l) => String(l['msg']).startsWith('fleet: a member serves this origin otherwise'));
    // The sender that met the other config said so once.
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ origin: 'app', why: 'fleet_config_mismatch' });
    const stats = await fleetStats();
    const forwarded = stats.reduce((n, s) => n + (s.origins['app']?.forwarded ?? 0), 0);
    const received = stats.reduce((n, s) => n + (s.origins['app']?.received ?? 0), 0);
    // One request was refused by the owner (421, before it counts a request received) and went direct; none was
    // sent to the owner after it.
    expect(forwarded).toBe(1);
    expect(received).toBe(0);
    await stop(sc);
  }, 60_000);

  it("auto: ~5 requests/s a worker go direct to an origin that keeps idle connections (nginx's 75 s), not to one whose Keep-Alive says 2 s", async () => {
    const sc = await start('auto');
    await fleetKnown();
    // Each origin twice a turn for 7 s and 40 turns at least, each request on a connection of its own, one after the
    // other (node:cluster hands connections to the workers in turn, so each origin's pair reaches both): ~5
    // requests/s a worker even when a turn takes 200 ms. Within its first idle period (the config's 30 s: nginx
    // hints none) `app` goes direct at a worker's 32nd request; r·T for `brief` is ≤ 10/s × 1 s (the hint less the
    // 1 s margin, told by the owner): below 32, the owner keeps serving it.
    const statuses = new Set<number | string>();
    const headers = new Set<string>();
    const t0 = performance.now();
    for (let i = 0; (performance.now() - t0 < 7000 || i < 40) && performance.now() - t0 < 20_000 && i < 200; i++) {
      for (const path of [`/small.txt?a${i}`, `/small.txt?c${i}`, `/brief/x?b${i}`, `/brief/x?d${i}`]) {
        const r = await getHead(front, path);
        statuses.add(r.status);
        for (const k of r.names) headers.add(k);
      }
      await new Promise((r) => setTimeout(r, 60));
    }
    expect(statuses).toEqual(new Set([200]));
    // The owner's word on the origin's idle period stops at the member: no client sees it.
    expect([...headers].filter((k) => k.startsWith('originlink-fleet'))).toEqual([]);
    const stats = await fleetStats();
    const routes = (origin: string): string[] => stats.map((s) => s.origins[origin]?.route as string).sort();
    expect(routes('app')).toEqual(['direct', 'self']);
    expect(routes('brief')).toEqual(['owner', 'self']);
    await stop(sc);
  }, 60_000);

  it('direct: each worker its own origin connections', async () => {
    const sc = await start('direct');
    const from = nginx.log().length;
    expect(new Set(await gets(40, 'd'))).toEqual(new Set([200]));
    const lines = await nginx.logSince(from, 40);
    expect(new Set(lines.map((l) => l.connection)).size).toBe(2);
    const stats = await fleetStats();
    for (const s of stats) expect(s.origins['app']?.forwarded ?? 0).toBe(0);
    await stop(sc);
  }, 60_000);
});
