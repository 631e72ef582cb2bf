/**
 * `originlink serve --workers 2` as a real child process (node:cluster) in
 * front of one local origin: connections reach both workers, one /metrics
 * (the primary's admin listener) sums both, SIGHUP reloads both, a worker
 * SIGKILLed is restarted (and the event logged), SIGTERM drains both with
 * in-flight requests finishing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { freePort } from '../helpers/ports.js';
import { get, oneOriginConfig } from '../helpers/serve-child.js';

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

/** Poll until `check` passes (bounded); returns its last value. */
async function until<T>(what: string, fn: () => Promise<T> | T, check: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 1000; i++) {
    const v = await fn();
    if (check(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('serve --workers 2 (node:cluster)', () => {
  let dir: string;
  let cfgFile: string;
  let origin: http.Server;
  let originPort: number;
  let front: number;
  let admin: number;
  let child: ChildProcess;
  let out = '';
  let exited: Promise<number | null>;
  const seenPids = new Set<number>();
  const lines = (): Array<Record<string, unknown>> => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  // GETs open a connection each: node:cluster hands connections, not requests, to workers.
  const config = (extra = ''): string => oneOriginConfig({
    listeners: [`{ name: plain, kind: http, host: 127.0.0.1, port: ${front} }`],
    admin: `{ host: 127.0.0.1, port: ${admin} }`,
    graceMs: 8000,
    origin: originPort,
    extra,
  });

  beforeAll(async () => {
    buildIfStale();
    dir = mkdtempSync(join(tmpdir(), 'ol-workers-'));
    origin = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      setTimeout(() => res.end(`origin ${u.pathname}\n`), Number(u.searchParams.get('ms') ?? 0));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as net.AddressInfo).port;
    [front, admin] = await Promise.all([freePort(), freePort()]);
    cfgFile = join(dir, 'c.yaml');
    writeFileSync(cfgFile, config());
    child = spawn(process.execPath, [CLI, 'serve', '--config', cfgFile, '--workers', '2'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d) => { out += String(d); });
    child.stderr?.on('data', (d) => { out += String(d); });
    exited = new Promise((r) => child.once('exit', (code) => r(code)));
    await until('the primary to serve', () => lines(), (ls) => ls.some((l) => l['role'] === 'primary' && l['msg'] === 'originlink serving'), 20_000);
  }, 60_000);

  afterAll(async () => {
    // Only processes this test started: the primary, and the workers it reported.
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const pid of seenPids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    await new Promise<void>((r) => origin?.close(() => r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('connections reach both workers; one /metrics counts both', async () => {
    for (let i = 0; i < 20; i++) expect(await get(front, `/r${i}`)).toEqual({ status: 200, body: `origin /r${i}\n` });
    const m = await scrape(admin);
    const pids = workerPids(m);
    for (const p of pids.values()) seenPids.add(p);
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
    // Each worker logged its own requests.
    const served = new Set(lines().filter((l) => l['msg'] === 'request').map((l) => l['worker']));
    expect([...served].sort()).toEqual([1, 2]);
  }, 30_000);

  it('SIGHUP reloads every worker', async () => {
    writeFileSync(cfgFile, config('  - { path: /two/, origin: app }\n'));
    child.kill('SIGHUP');
    const ls = await until('both workers to reload', () => lines().filter((l) => l['msg'] === 'config reloaded'), (r) => r.length >= 2);
    expect(ls.map((l) => l['worker']).sort()).toEqual([1, 2]);
    const m = await scrape(admin);
    expect(m.get('originlink_config_reloads_total{result="ok"}')).toBe(2);
    expect((await get(front, '/two/x')).status).toBe(200);
  }, 30_000);

  it('a worker killed is restarted, and the event is logged', async () => {
    const before = workerPids(await scrape(admin));
    const victim = before.get(2) as number;
    process.kill(victim, 'SIGKILL');
    const m = await until('worker 2 back with a new pid', () => scrape(admin), (x) => {
      const p = workerPids(x).get(2);
      return p !== undefined && p !== victim && x.get('originlink_workers{state="ready"}') === 2;
    });
    const pids = workerPids(m);
    for (const p of pids.values()) seenPids.add(p);
    expect(pids.get(1)).toBe(before.get(1));
    expect(m.get('originlink_worker_restarts_total{worker="2"}')).toBe(1);
    const exitLog = lines().find((l) => l['msg'] === 'worker exited unexpectedly; restarting');
    expect(exitLog).toMatchObject({ role: 'primary', worker: 2, workerPid: victim, signal: 'SIGKILL' });
    expect(lines().find((l) => l['msg'] === 'worker restarted')).toMatchObject({ worker: 2, workerPid: pids.get(2) });
    for (let i = 0; i < 6; i++) expect((await get(front, `/after${i}`)).status).toBe(200);
  }, 30_000);

  it('SIGTERM drains every worker: in-flight requests finish, then all exit 0', async () => {
    const slow = Array.from({ length: 6 }, (_, i) => get(front, `/slow${i}?ms=1500`));
    await until('in-flight requests on both workers', () => scrape(admin), (m) =>
      (m.get('originlink_worker_inflight{worker="1"}') ?? 0) > 0 && (m.get('originlink_worker_inflight{worker="2"}') ?? 0) > 0, 5000);
    child.kill('SIGTERM');
    const done = await Promise.all(slow);
    expect(done.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
    expect(code).toBe(0);
    const stopped = lines().filter((l) => l['msg'] === 'originlink stopped');
    expect(stopped.filter((l) => l['worker'] !== undefined).map((l) => [l['worker'], l['forced']]).sort()).toEqual([[1, false], [2, false]]);
    expect(stopped.some((l) => l['role'] === 'primary')).toBe(true);
    // Nothing listens any more.
    await expect(get(front, '/late')).rejects.toThrow(/ECONNREFUSED/);
  }, 40_000);
});
