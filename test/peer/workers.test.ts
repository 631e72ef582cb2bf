/**
 * `originlink serve --workers 2` as a real child process (node:cluster) in
 * front of one local origin: connections reach both workers, one /metrics
 * (the primary's admin listener) sums both, SIGHUP reloads both, a worker
 * SIGKILLed is restarted (and the event logged), SIGTERM drains both with
 * in-flight requests finishing.
 */
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale } from '../helpers/build.js';
import { freePort, freeTcpUdpPort } from '../helpers/ports.js';
import { makeCerts } from '../helpers/certs.js';
import { Agent } from '../../src/index.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { ConnRequest } from '../../src/http/types.js';
import { get, oneOriginConfig } from '../helpers/serve-child.js';
import { ServeCluster, until } from '../helpers/serve-cluster.js';
import { getAt } from '../helpers/h3-request.js';
import { dialResuming, recordFirstFlight, replayFlight, text } from '../helpers/first-flight.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import type { H3Response } from '../../src/client/h3.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Prometheus text → series name with labels → value. */
async function scrape(port: number): Promise<Map<string, number>> {
  const { status, body } = await get(port, '/metrics');
  expect(status).toBe(200);
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Worker slot → pid, from originlink_worker_info. */
function workerPids(m: Map<string, number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const k of m.keys()) {
    const g = /^originlink_worker_info\{worker="(\d+)",pid="(\d+)"\}$/.exec(k);
    if (g) out.set(Number(g[1]), Number(g[2]));
  }
  return out;
}

/** A tiny h1 origin: `?ms=` answers late. */
async function startOrigin(): Promise<http.Server> {
  const origin = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    setTimeout(() => res.end(`origin ${u.pathname}\n`), Number(u.searchParams.get('ms') ?? 0));
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  return origin;
}

describe('serve --workers 2 (node:cluster)', () => {
  let dir: string;
  let cfgFile: string;
  let origin: http.Server;
  let originPort: number;
  let front: number;
  let admin: number;
  let sc: ServeCluster;
  let child: ChildProcess;
  const lines = (): Array<Record<string, unknown>> => sc.lines();
  // GETs open a connection each: node:cluster hands connections, not requests, to workers.
  const config = (extra = ''): string =>
    oneOriginConfig({
      listeners: [`{ name: plain, kind: http, host: 127.0.0.1, port: ${front} }`],
      admin: `{ host: 127.0.0.1, port: ${admin} }`,
      graceMs: 8000,
      origin: originPort,
      // Each worker's own pools (the fleet's owner route is fleet.test.ts's): the counts below are per worker.
      extra: `${extra}fleet: { route: direct }\n`,
    });

  beforeAll(async () => {
    buildIfStale();
    dir = mkdtempSync(join(tmpdir(), 'ol-workers-'));
    origin = await startOrigin();
    originPort = (origin.address() as net.AddressInfo).port;
    [front, admin] = await Promise.all([freePort(), freePort()]);
    cfgFile = join(dir, 'c.yaml');
    writeFileSync(cfgFile, config());
    sc = new ServeCluster(cfgFile);
    child = sc.child;
    await sc.serving();
  }, 60_000);

  afterAll(async () => {
    sc?.kill();
    await new Promise<void>((r) => origin?.close(() => r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('connections reach both workers; one /metrics counts both', async () => {
    for (let i = 0; i < 20; i++) expect(await get(front, `/r${i}`)).toEqual({ status: 200, body: `origin /r${i}\n` });
    const m = await scrape(admin);
    const pids = workerPids(m);
    for (const p of pids.values()) sc.pids.add(p);
    expect([...pids.keys()].sort()).toEqual([1, 2]);
    expect(new Set(pids.values()).size).toBe(2);
    expect([...pids.values()]).not.toContain(child.pid);
    const w1 = m.get('originlink_worker_upstream_requests_total{worker="1"}') ?? 0;
    const w2 = m.get('originlink_worker_upstream_requests_total{worker="2"}') ?? 0;
    expect(w1).toBeGreaterThan(0);
    expect(w2).toBeGreaterThan(0);
    expect(w1 + w2).toBe(20);
    // The service's own counters, summed over the workers.
    expect(m.get('originlink_front_requests_total{listener="plain",protocol="1.1",status="200"}')).toBe(20);
    expect(m.get('originlink_workers{state="ready"}')).toBe(2);
    // The workers' process series reach the primary's /metrics (its scrape asked them: they start then).
    expect([...m.keys()].some((k) => k.startsWith('nodejs_eventloop_lag_seconds'))).toBe(true);
    expect(await get(admin, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    // /stats: each worker's pools (per origin name, a list of PoolStats).
    const st = JSON.parse((await get(admin, '/stats')).body) as {
      workers: Array<{ worker: number; body: Record<string, Array<{ requests: number }>> }>;
    };
    expect(st.workers.map((w) => w.worker).sort()).toEqual([1, 2]);
    expect(st.workers.reduce((n, w) => n + (w.body['app'] ?? []).reduce((k, p) => k + p.requests, 0), 0)).toBe(20);
    // Each worker logged its own requests (a worker's lines leave within logging.flushMs, 100 ms by default).
    const logged = await until(
      'both workers to log their requests',
      () => lines().filter((l) => l['msg'] === 'request'),
      (ls) => ls.length >= 20,
    );
    expect(logged).toHaveLength(20);
    expect([...new Set(logged.map((l) => l['worker']))].sort()).toEqual([1, 2]);
  }, 30_000);

  it('SIGHUP reloads every worker', async () => {
    writeFileSync(cfgFile, config('  - { path: /two/, origin: app }\n'));
    child.kill('SIGHUP');
    const ls = await until(
      'both workers to reload',
      () => lines().filter((l) => l['msg'] === 'config reloaded'),
      (r) => r.length >= 2,
    );
    expect(ls.map((l) => l['worker']).sort()).toEqual([1, 2]);
    const m = await scrape(admin);
    expect(m.get('originlink_config_reloads_total{result="ok"}')).toBe(2);
    expect((await get(front, '/two/x')).status).toBe(200);
    // A file that does not parse: refused once by the primary; each worker keeps its config and counts a failed reload.
    writeFileSync(cfgFile, `${config('  - { path: /two/, origin: app }\n')}\nbogus: [`);
    child.kill('SIGHUP');
    await until(
      'the primary to refuse the reload',
      () =>
        lines().filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('config reload failed')),
      (r) => r.length >= 1,
    );
    const f = await until(
      'the failed reloads in /metrics',
      () => scrape(admin),
      (x) => x.get('originlink_config_reloads_total{result="failed"}') === 2,
    );
    expect(f.get('originlink_config_reloads_total{result="ok"}')).toBe(2);
    expect((await get(front, '/two/x')).status).toBe(200);
    writeFileSync(cfgFile, config('  - { path: /two/, origin: app }\n'));
  }, 30_000);

  it('a worker killed is restarted with the config the others run, and the event is logged', async () => {
    const before = workerPids(await scrape(admin));
    const victim = before.get(2) as number;
    // The file edited but not reloaded: the restarted worker runs the primary's config (no /three/ route stripping its
    // prefix), as worker 1 does.
    writeFileSync(
      cfgFile,
      config('  - { path: /two/, origin: app }\n  - { path: /three/, origin: app, stripPrefix: true }\n'),
    );
    process.kill(victim, 'SIGKILL');
    const m = await until(
      'worker 2 back with a new pid',
      () => scrape(admin),
      (x) => {
        const p = workerPids(x).get(2);
        return p !== undefined && p !== victim && x.get('originlink_workers{state="ready"}') === 2;
      },
    );
    const pids = workerPids(m);
    for (const p of pids.values()) sc.pids.add(p);
    expect(pids.get(1)).toBe(before.get(1));
    expect(m.get('originlink_worker_restarts_total{worker="2"}')).toBe(1);
    const exitLog = lines().find((l) => l['msg'] === 'worker exited unexpectedly; restarting');
    expect(exitLog).toMatchObject({ role: 'primary', worker: 2, workerPid: victim, signal: 'SIGKILL' });
    expect(lines().find((l) => l['msg'] === 'worker restarted')).toMatchObject({ worker: 2, workerPid: pids.get(2) });
    for (let i = 0; i < 6; i++) expect((await get(front, `/after${i}`)).status).toBe(200);
    // A connection each, handed to either worker: none strips /three/.
    for (let i = 0; i < 6; i++)
      expect(await get(front, `/three/x${i}`)).toEqual({ status: 200, body: `origin /three/x${i}\n` });
    writeFileSync(cfgFile, config('  - { path: /two/, origin: app }\n'));
  }, 30_000);

  it('SIGTERM drains every worker: in-flight requests finish, then all exit 0', async () => {
    const slow = Array.from({ length: 6 }, (_, i) => get(front, `/slow${i}?ms=1500`));
    // All six in flight, on both workers, before the signal (a connection not yet handed to a worker is not in flight).
    await until(
      'all six requests in flight, on both workers',
      () => scrape(admin),
      (m) => {
        const w1 = m.get('originlink_worker_inflight{worker="1"}') ?? 0;
        const w2 = m.get('originlink_worker_inflight{worker="2"}') ?? 0;
        return w1 > 0 && w2 > 0 && w1 + w2 === 6;
      },
      5000,
    );
    child.kill('SIGTERM');
    const done = await Promise.all(slow);
    expect(done.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const code = await Promise.race([sc.exited, sleep(15_000).then(() => 'timeout' as const)]);
    expect(code).toBe(0);
    const stopped = lines().filter((l) => l['msg'] === 'originlink stopped');
    expect(
      stopped
        .filter((l) => l['worker'] !== undefined)
        .map((l) => [l['worker'], l['forced']])
        .sort(),
    ).toEqual([
      [1, false],
      [2, false],
    ]);
    expect(stopped.some((l) => l['role'] === 'primary')).toBe(true);
    // Nothing listens any more.
    await expect(get(front, '/late')).rejects.toThrow(/ECONNREFUSED/);
  }, 40_000);
});

describe('serve --workers 2 with an h3 front', () => {
  let dir: string;
  let origin: http.Server;
  let sc: ServeCluster;
  afterAll(async () => {
    sc?.kill();
    await new Promise<void>((r) => origin?.close(() => r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("both workers serve the h3 port, packets steered by connection ID: new connections spread, a client's port moves stay with its worker, a killed worker's clients get a stateless reset, every https front advertises the port", async () => {
    buildIfStale();
    const certs = makeCerts();
    dir = mkdtempSync(join(tmpdir(), 'ol-workers-h3-'));
    origin = await startOrigin();
    const [front, quic, tlsFront, adminPort] = await Promise.all([
      freePort(),
      freeTcpUdpPort(),
      freePort(),
      freePort(),
    ]);
    const cfgFile = join(dir, 'c.yaml');
    const tls = `tls: { cert: ${certs.certPath}, key: ${certs.keyPath} }`;
    writeFileSync(
      cfgFile,
      oneOriginConfig({
        listeners: [
          `{ name: plain, kind: http, host: 127.0.0.1, port: ${front} }`,
          `{ name: quic, kind: h3, host: 127.0.0.1, port: ${quic}, ${tls} }`,
          `{ name: tls, kind: https, host: 127.0.0.1, port: ${tlsFront}, ${tls} }`,
        ],
        admin: `{ host: 127.0.0.1, port: ${adminPort} }`,
        graceMs: 3000,
        origin: (origin.address() as net.AddressInfo).port,
      }),
    );
    sc = new ServeCluster(cfgFile);
    await sc.serving();
    const serving = sc.lines().filter((l) => l['msg'] === 'originlink serving' && l['worker'] !== undefined);
    expect(serving.map((l) => [l['worker'], l['listeners']]).sort()).toEqual([
      [1, { plain: front, quic, tls: tlsFront }],
      [2, { plain: front, quic, tls: tlsFront }],
    ]);
    // A new connection per request (node:cluster hands connections out round-robin): both workers answer, each
    // with the h3 port in Alt-Svc (RFC 7838 §3).
    const altSvc: Array<string | undefined> = [];
    for (let i = 0; i < 6; i++) {
      altSvc.push(
        await new Promise<string | undefined>((resolve, reject) => {
          https
            .get(
              {
                host: '127.0.0.1',
                port: tlsFront,
                path: `/s${i}`,
                ca: certs.ca,
                servername: 'localhost',
                agent: false,
              },
              (res) => {
                res.resume();
                res.on('end', () => resolve(res.headers['alt-svc']));
              },
            )
            .on('error', reject);
        }),
      );
    }
    expect(altSvc).toEqual(Array(6).fill(`h3=":${quic}"; ma=86400`));
    // New QUIC connections go by the hash of their 4-tuple: 16 of them reach both workers (all on one: 2^-15).
    for (let i = 0; i < 16; i++) {
      const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca } });
      try {
        const r = await agent.request({ url: `https://127.0.0.1:${quic}/q${i}` });
        expect([r.status, r.protocol, await r.text()]).toEqual([200, 'h3', `origin /q${i}\n`]);
      } finally {
        await agent.close();
      }
    }
    for (let i = 0; i < 6; i++) expect((await get(front, `/t${i}`)).status).toBe(200);
    const reqs = await until(
      'every request to be logged',
      () => sc.lines().filter((l) => l['msg'] === 'request'),
      (ls) => ls.length >= 28,
    );
    expect(new Set(reqs.filter((l) => l['listener'] === 'quic').map((l) => l['worker']))).toEqual(new Set([1, 2]));
    expect(new Set(reqs.filter((l) => l['listener'] === 'plain').map((l) => l['worker']))).toEqual(new Set([1, 2]));

    // Every worker opens the others' tickets and a copy of a first flight may reach any of them (new connections go
    // by the 4-tuple's hash): a 0-RTT GET captured on its way, sent again from 8 new ports, reaches the origin once
    // (RFC 8446 §8; the workers record their 0-RTT ClientHellos at the primary).
    const tickets = new MemorySessionStore();
    const c0 = await dialResuming(quic, tickets);
    await text((await c0.request(getAt('/prime', false))).body);
    c0.destroy();
    const rec = await recordFirstFlight(quic);
    try {
      const c1 = await dialResuming(rec.port, tickets);
      const r = (await c1.request(getAt('/zero-rtt-once', true))) as H3Response;
      expect({ early: r.earlyData, body: await text(r.body) }).toEqual({
        early: true,
        body: 'origin /zero-rtt-once\n',
      });
      c1.destroy();
    } finally {
      rec.close();
    }
    await replayFlight(rec.flight, quic, 8, 150);
    await sleep(300);
    expect(sc.lines().filter((l) => l['msg'] === 'request' && l['path'] === '/zero-rtt-once')).toHaveLength(1);

    const ask = (path: string): ConnRequest => getAt(path);
    // A connection that moves to new local ports twice (RFC 9000 §9: a new 4-tuple, the same connection IDs): its
    // requests stay with the worker that holds it, steered by the ID, not by the 4-tuple's hash.
    const mover = await connectH3({ host: '127.0.0.1', port: quic, servername: 'localhost', ca: certs.caPath });
    for (const path of ['/mover-0', '/mover-1', '/mover-2']) {
      if (path !== '/mover-0') await mover.migrate();
      const r = await mover.request(ask(path));
      for await (const _ of r.body) void _;
    }
    expect(mover.quicStats().migrations).toBe(2);
    mover.destroy();
    const moverBy = (
      await until(
        'the mover requests to be logged',
        () => sc.lines().filter((l) => l['msg'] === 'request' && String(l['path']).startsWith('/mover-')),
        (ls) => ls.length === 3,
      )
    ).map((l) => l['worker']);
    expect(new Set(moverBy).size).toBe(1);

    // One connection held; the worker that serves it is killed. Its next request reaches a process that does not
    // hold the connection (the other worker, or the replacement at its slot), which answers with a stateless reset.
    const held = await connectH3({ host: '127.0.0.1', port: quic, servername: 'localhost', ca: certs.caPath });
    const first = await held.request(ask('/held'));
    for await (const _ of first.body) void _;
    const heldBy = (
      await until(
        'the held request to be logged',
        () => sc.lines().find((l) => l['msg'] === 'request' && l['path'] === '/held'),
        (l) => l !== undefined,
      )
    )?.['worker'];
    const pidOf = (w: unknown): number =>
      sc
        .lines()
        .filter((l) => l['msg'] === 'worker starting' && l['worker'] === w)
        .map((l) => l['workerPid'] as number)
        .at(-1) as number;
    process.kill(pidOf(heldBy), 'SIGKILL');
    const t0 = Date.now();
    const after = await held.request(ask('/after-kill')).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    expect(after).toMatch(/stateless reset/);
    expect(Date.now() - t0).toBeLessThan(5000);
    held.destroy();
    // Per worker on the primary's /metrics: connections each accepted, resets sent (the survivor's or the
    // replacement's), and no stray packets besides the killed worker's connection.
    const metrics = await until(
      'the replacement worker and the counters',
      async () => {
        const r = await get(adminPort, '/metrics');
        return r.body;
      },
      (m) =>
        /originlink_worker_h3_stateless_resets_total\{worker="\d"\} [1-9]/.test(m) &&
        /originlink_worker_h3_accepted_total\{worker="1"\}/.test(m) &&
        /originlink_worker_h3_accepted_total\{worker="2"\}/.test(m),
      15_000,
    );
    const series = (name: string): number[] =>
      [...metrics.matchAll(new RegExp(`^${name}\\{worker="\\d"\\} (\\d+)`, 'gm'))].map((m) => Number(m[1]));
    expect(series('originlink_worker_h3_accepted_total').length).toBe(2);
    expect(series('originlink_worker_h3_stray_packets_total').reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3);
    sc.child.kill('SIGTERM');
    expect(await Promise.race([sc.exited, sleep(15_000).then(() => 'timeout' as const)])).toBe(0);
  }, 90_000);
});

describe('serve --workers 2 that cannot start', () => {
  it('a listener port in use fails the start: the error is logged, every worker goes, exit 1', async () => {
    buildIfStale();
    const dir = mkdtempSync(join(tmpdir(), 'ol-workers-busy-'));
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    const cfgFile = join(dir, 'c.yaml');
    writeFileSync(
      cfgFile,
      oneOriginConfig({
        listeners: [`{ name: plain, kind: http, host: 127.0.0.1, port: ${port} }`],
        admin: 'false',
        graceMs: 1000,
        origin: 1,
      }),
    );
    const sc = new ServeCluster(cfgFile);
    try {
      expect(await Promise.race([sc.exited, sleep(15_000).then(() => 'timeout' as const)])).toBe(1);
      const ls = sc.lines();
      expect(ls.find((l) => l['msg'] === 'cluster failed to start')).toMatchObject({
        role: 'primary',
        reason: expect.stringMatching(/worker \d exited during start/),
      });
      // Every worker it started is gone.
      const pids = ls.filter((l) => l['msg'] === 'worker starting').map((l) => l['workerPid'] as number);
      expect(pids.length).toBe(2);
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    } finally {
      sc.kill();
      busy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
