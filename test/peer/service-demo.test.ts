/**
 * `originlink demo` end to end (child process: selftest through every front
 * to the h1, h2 and h3 origins; bounded run printing the plain table), and
 * the HTTP/3 front listener with our HTTP/3 client.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { Agent } from '../../src/index.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { pickPorts } from '../../src/cli/demo.js';

const CERTS = join(ROOT, 'config', 'demo-certs');

function demo(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(
      'node',
      [CLI, 'demo', '--random-ports', ...args],
      { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, ms: Date.now() - t0 });
      },
    );
  });
}

describe('originlink demo', () => {
  beforeAll(() => buildIfStale(), 180_000);

  it('--selftest: every front (https h1/h2, http, h2c) reaches every origin (h1, h2, h3), exit 0', async () => {
    const r = await demo(['--selftest']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/selftest: 12\/12 passed/);
    expect(r.stdout).toMatch(/curl --cacert .*ca\.pem https:\/\/localhost:\d+\/h3\//);
    expect(r.stdout).toMatch(/^demo-h3\s+h3\s+\d+/m);
    expect(r.ms).toBeLessThan(15_000);
  });

  it('--duration: runs, prints plain table lines without a TTY, stops cleanly', async () => {
    const r = await demo(['--duration', '2']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/origin\s+protocol\s+requests\s+reuse\s+conns\s+opened\s+p50 ttfb\s+errors/);
    expect(r.stdout).toMatch(/^demo-h2\s+h2\s+[1-9]\d*\s+\d+\.\d%/m); // background traffic moved the counters
    expect(r.stdout).not.toContain('\x1b[');
    expect(r.stdout).toMatch(/stopped\n$/);
  });
});

describe('the demo leaves nothing behind and says where it moved (issue 45)', () => {
  beforeAll(() => buildIfStale(), 180_000);

  it('stopped with Ctrl-C (SIGINT), its request log is removed; --keep-log keeps it', async () => {
    for (const keep of [false, true]) {
      const child = spawn('node', [CLI, 'demo', '--random-ports', '--no-traffic', ...(keep ? ['--keep-log'] : [])], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      const log = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`no log line: ${out}`));
        }, 20_000);
        child.stdout?.on('data', (d: Buffer) => {
          out += String(d);
          const m = /request log \(JSON lines\): (\S+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1] as string);
          }
        });
      });
      expect(existsSync(log)).toBe(true);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(existsSync(log), out).toBe(keep);
      if (keep) rmSync(log, { force: true });
    }
  });

  it('a busy default port is replaced by a free one, and the demo says which', async () => {
    const busy = new Set([8443, 9443]);
    let next = 40000;
    const probe = async (port: number): Promise<number | null> => (port === 0 ? next++ : busy.has(port) ? null : port);
    const { env, moved } = await pickPorts({ DEMO_ADMIN_PORT: '7000' }, false, probe);
    expect(moved).toEqual(['8443 → 40000', '9443 → 40001']);
    expect([
      env['DEMO_FRONT_TLS_PORT'],
      env['DEMO_FRONT_HTTP_PORT'],
      env['DEMO_ADMIN_PORT'],
      env['DEMO_ORIGIN_H3_PORT'],
    ]).toEqual(['40000', '8080', '7000', '40001']);
    // --random-ports: every port a free one, nothing reported as moved.
    expect((await pickPorts({}, true, probe)).moved).toEqual([]);
  });

  it('--random-ports never gives two listeners one port, though the kernel may hand one out twice', async () => {
    // Port 0 is free again once a probe closes it: the kernel may give the same one next (a CI run's demo exited 78).
    const given = [7000, 41000, 41000, 41001, 41001, 41001, 41002, 41003, 41004, 41005, 41006, 41007, 41008, 41009];
    const probe = async (): Promise<number | null> => given.shift() ?? null;
    const { env } = await pickPorts({ DEMO_ADMIN_PORT: '7000' }, true, probe); // nor the port a user gave one
    const ports = Object.entries(env)
      .filter(([k]) => k.startsWith('DEMO_') && k.endsWith('_PORT'))
      .map(([, v]) => v);
    expect(ports.length).toBeGreaterThan(3);
    expect(new Set(ports).size).toBe(ports.length);
  });
});

describe('HTTP/3 front listener', () => {
  let origin: http.Server;
  let svc: Service;
  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
      });
      req.on('end', () =>
        res.end(`${req.method} ${req.url} ${n} via=${req.headers['via']} xfp=${req.headers['x-forwarded-proto']}\n`),
      );
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const yaml = `
listeners:
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${CERTS}/leaf.pem, key: ${CERTS}/leaf.key } }
admin: false
origins:
  app: { url: "http://127.0.0.1:${(origin.address() as net.AddressInfo).port}", protocol: h1 }
routes:
  - { path: /, origin: app }
`;
    svc = await Service.start(parseConfig(yaml, 'h3.yaml', CERTS), { logDestination: { write: () => {} } });
  });
  afterAll(async () => {
    await svc?.shutdown(200);
    origin?.close();
  });

  it('GETs and a 1 MiB upload over HTTP/3 reach an h1 origin with Via 3', async () => {
    const agent = new Agent({
      protocol: 'h3',
      tls: { ca: readFileSync(join(CERTS, 'ca.pem')), servername: 'localhost' },
    });
    const base = `https://127.0.0.1:${svc.addresses()['quic']}`;
    try {
      for (let i = 0; i < 5; i++) {
        const r = await agent.request({ url: `${base}/get?i=${i}` });
        expect(r.protocol).toBe('h3');
        expect(await r.text()).toBe(`GET /get?i=${i} 0 via=3 originlink xfp=https\n`);
        expect(r.header('via')).toBe('1.1 originlink');
      }
      const up = await agent.request({ url: `${base}/up`, method: 'POST', body: Buffer.alloc(1 << 20, 7) });
      expect(await up.text()).toBe(`POST /up ${1 << 20} via=3 originlink xfp=https\n`);
      const [st] = agent.stats();
      expect(st?.connectionsOpened).toBe(1);
    } finally {
      agent.destroy();
    }
  });
});
