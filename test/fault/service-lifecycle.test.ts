/**
 * `originlink serve` as a real child process (node dist/cli/main.js):
 * config errors and exit codes, SIGHUP reload (good and broken config)
 * without dropping in-flight requests, SIGTERM under load.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { get, oneOriginConfig } from '../helpers/serve-child.js';
import { until } from '../helpers/wait.js';

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [CLI, ...args], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A tiny origin: `/who` names it; `/slow?ms=` answers late. */
async function startOrigin(name: string): Promise<{ port: number; server: http.Server }> {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const ms = Number(u.searchParams.get('ms') ?? 0);
    setTimeout(() => res.end(`${name} ${u.pathname}\n`), ms);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, server };
}

class Child {
  proc: ChildProcess;
  out = '';
  exit: Promise<number | null>;
  constructor(config: string) {
    this.proc = spawn('node', [CLI, 'serve', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout?.on('data', (d) => {
      this.out += String(d);
    });
    this.proc.stderr?.on('data', (d) => {
      this.out += String(d);
    });
    this.exit = new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }
  lines(): Array<Record<string, unknown>> {
    return this.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  kill(sig: NodeJS.Signals): void {
    if (this.proc.exitCode === null) this.proc.kill(sig);
  }
}

describe('serve as a child process: config errors, reload, graceful stop', () => {
  let dir: string;
  let one: Awaited<ReturnType<typeof startOrigin>>;
  let two: Awaited<ReturnType<typeof startOrigin>>;
  const children: Child[] = [];
  const config = (origin: number, port: number, h2cPort: number, extra = '', adminPort = 0): string =>
    oneOriginConfig({
      listeners: [
        `{ name: plain, kind: http, host: 127.0.0.1, port: ${port} }`,
        `{ name: h2c, kind: h2c, host: 127.0.0.1, port: ${h2cPort} }`,
      ],
      admin: adminPort ? `{ host: 127.0.0.1, port: ${adminPort} }` : 'false',
      graceMs: 5000,
      origin,
      extra,
    });

  beforeAll(async () => {
    buildIfStale();
    dir = mkdtempSync(join(tmpdir(), 'ol-svc-life-'));
    one = await startOrigin('one');
    two = await startOrigin('two');
  }, 180_000);
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    one?.server.close();
    two?.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a bad config is a clear error naming file, field and reason, exit code 78', async () => {
    const cases: Array<[string, RegExp]> = [
      [config(1, 1, 2).replace('protocol: h1', 'protocl: h1'), /bad\.yaml:\d+: origins\.app\.protocl: unknown field/],
      [
        config(1, 1, 2).replace('protocol: h1', 'protocol: h4'),
        /origins\.app\.protocol: must be one of auto, h1, h2, h3, got "h4"/,
      ],
      [config(1, 1, 2).replace('origin: app }', 'origin: nope }'), /routes\[0\]\.origin: unknown origin "nope"/],
      [config(1, 70000, 2), /listeners\[0\]\.port: must be between 0 and 65535, got 70000/],
      [
        config(1, 1, 2).replace('origins:', 'origins:\n  bad: { url: "ftp://x" }'),
        /origins\.bad\.url: scheme must be http or https/,
      ],
      [`${config(1, 1, 2)}\nlimits: { maxHeaderBytes: "big" }`, /limits\.maxHeaderBytes: must be an integer/],
      [
        config(1, 1, 2).replace('{ url:', '{ pool: { maxConections: 3 }, url:'),
        /origins\.app\.pool\.maxConections: unknown option \(allowed: maxConnections, /,
      ],
      ['listeners: [\n  - kind: http\n    port: 1\n  bad indent', /bad\.yaml:\d+: \(yaml\)/],
    ];
    for (const [text, want] of cases) {
      writeFileSync(join(dir, 'bad.yaml'), text);
      const r = await runCli(['serve', '--config', join(dir, 'bad.yaml')]);
      expect(r.code, text).toBe(78);
      expect(r.stderr).toMatch(want);
    }
    const missing = await runCli(['serve', '--config', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/nope\.yaml: \(file\): cannot read/);
    // A port in use: the listener's field on its line, exit 78 like any config error (not a silent exit 0).
    writeFileSync(join(dir, 'busy.yaml'), config(one.port, one.port, 0));
    const busy = await runCli(['serve', '--config', join(dir, 'busy.yaml')]);
    expect(busy.code).toBe(78);
    expect(busy.stderr).toMatch(/busy\.yaml:3: listeners\[0\]\.port: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    // The admin port in use: the same one line (was: a stack trace), and no stack for a user's mistakes on the command line.
    writeFileSync(join(dir, 'busy-admin.yaml'), config(one.port, 0, 0, '', one.port));
    const busyAdmin = await runCli(['serve', '--config', join(dir, 'busy-admin.yaml')]);
    expect(busyAdmin.code).toBe(78);
    expect(busyAdmin.stderr).toMatch(
      /busy-admin\.yaml:\d+: admin\.port: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/,
    );
    expect(busyAdmin.stderr).not.toMatch(/\n\s+at /);
    const noCa = await runCli(['fetch', 'https://127.0.0.1:1/', '--cacert', join(dir, 'no-such-ca.pem')]);
    expect([noCa.code, noCa.stderr.trim()]).toEqual([
      77,
      `originlink: (77) cannot read the CA file ${join(dir, 'no-such-ca.pem')}: ENOENT`,
    ]);
    const bogus = await runCli(['fetch', '--bogus']);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/^originlink: \(2\) option --bogus: is unknown/);
    expect(bogus.stderr).not.toMatch(/\n\s+at /);
    writeFileSync(join(dir, 'good.yaml'), config(one.port, 0, 0));
    const ok = await runCli(['serve', '--config', join(dir, 'good.yaml'), '--check']);
    expect(ok.code).toBe(0);
  });

  it('SIGHUP: a broken config keeps the old one (logged with field and reason); a good one swaps without dropping in-flight requests', async () => {
    const port = await freePort();
    const h2cPort = await freePort();
    const adminPort = await freePort();
    const file = join(dir, 'reload.yaml');
    writeFileSync(file, config(one.port, port, h2cPort, '', adminPort));
    const c = new Child(file);
    children.push(c);
    await waitForPort(port);
    expect((await get(port, '/who')).body).toBe('one /who\n');

    writeFileSync(
      file,
      config(one.port, port, h2cPort, '', adminPort).replace('protocol: h1', 'protocol: h1, colour: blue'),
    );
    c.kill('SIGHUP');
    const reloadFailed = (l: Record<string, unknown>): boolean =>
      typeof l['msg'] === 'string' && l['msg'].startsWith('config reload failed');
    await until(() => c.lines().some(reloadFailed));
    const failed = c.lines().find(reloadFailed);
    expect(failed).toMatchObject({ field: 'origins.app.colour' });
    expect(String(failed?.['reason'])).toMatch(/unknown field/);
    expect((await get(port, '/who')).body).toBe('one /who\n');
    // A file that does not parse counts as a failed reload (it was never counted: only a refused swap was).
    expect((await get(adminPort, '/metrics')).body).toMatch(/^originlink_config_reloads_total\{result="failed"\} 1$/m);

    // In flight across the reload: slow requests on the old origin must all finish.
    const slow = Array.from({ length: 10 }, () => get(port, '/slow?ms=600'));
    // All 10 in flight at the service before the reload.
    await until(
      async () => /^originlink_front_inflight (\d+)/m.exec((await get(adminPort, '/metrics')).body)?.[1] === '10',
      3000,
      10,
    );
    writeFileSync(file, config(two.port, port, h2cPort, '', adminPort));
    c.kill('SIGHUP');
    let body = '';
    for (let i = 0; i < 40 && body !== 'two /who\n'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      body = (await get(port, '/who')).body;
    }
    expect(body).toBe('two /who\n');
    const done = await Promise.all(slow);
    expect(done.map((d) => `${d.status} ${d.body}`)).toEqual(Array(10).fill('200 one /slow\n'));
    expect(c.lines().some((l) => l['msg'] === 'config reloaded')).toBe(true);
    c.kill('SIGTERM');
    expect(await c.exit).toBe(0);
  });

  it('SIGTERM under load: every in-flight request completes, h2 gets GOAWAY, new connections are refused, exit 0', async () => {
    const port = await freePort();
    const h2cPort = await freePort();
    const adminPort = await freePort();
    const file = join(dir, 'term.yaml');
    // The h2 connection's 20 streams all upstream at once (the default share of one client connection is 16).
    writeFileSync(file, config(one.port, port, h2cPort, 'limits: { maxUpstreamPerClient: 20 }', adminPort));
    const c = new Child(file);
    children.push(c);
    await waitForPort(port);
    await waitForPort(h2cPort);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 40 }); // all 40 really in flight at the service
    const h1 = Array.from({ length: 40 }, (_, i) => get(port, `/slow?ms=${500 + (i % 5) * 50}`, agent));
    const session = http2.connect(`http://127.0.0.1:${h2cPort}`);
    let goaway = false;
    session.on('goaway', () => {
      goaway = true;
    });
    session.on('error', () => {});
    const h2 = Array.from(
      { length: 20 },
      () =>
        new Promise<string>((resolve, reject) => {
          const s = session.request({ ':path': '/slow?ms=700' });
          let b = '';
          let status = 0;
          s.on('response', (h) => {
            status = Number(h[':status']);
          });
          s.setEncoding('utf8');
          s.on('data', (d: string) => {
            b += d;
          });
          s.on('end', () => resolve(`${status} ${b}`));
          s.on('error', reject);
          s.end();
        }),
    );
    // All 60 in flight at the service (accepted and being forwarded) before the signal: a connection still in the
    // kernel's accept queue when the listener closes is not in flight, and a loaded machine can keep it there a while.
    const inflight = async (): Promise<number> => {
      const text = await fetch(`http://127.0.0.1:${adminPort}/metrics`).then(
        (r) => r.text(),
        () => '',
      );
      return Number(/^originlink_front_inflight (\d+)/m.exec(text)?.[1] ?? 0);
    };
    for (let i = 0; i < 200 && (await inflight()) < 60; i++) await new Promise((r) => setTimeout(r, 25));
    const t0 = Date.now();
    c.kill('SIGTERM');
    // New connections are refused once the listener closed (within the drain, while the 60 are answered).
    let refused = false;
    await until(
      async () =>
        (refused = await get(port, '/who').then(
          () => false,
          () => true,
        )),
      2000,
      25,
    );
    const r1 = await Promise.allSettled(h1);
    const r2 = await Promise.allSettled(h2);
    expect(r1.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual(
      [],
    );
    expect(r1.map((r) => (r as PromiseFulfilledResult<{ status: number; body: string }>).value.status)).toEqual(
      Array(40).fill(200),
    );
    expect(r2.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason)))).toEqual(
      Array(20).fill('200 one /slow\n'),
    );
    expect(goaway).toBe(true);
    expect(refused).toBe(true);
    expect(await c.exit).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    session.destroy();
    agent.destroy();
  });
});
