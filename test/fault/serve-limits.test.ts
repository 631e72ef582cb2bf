/**
 * `originlink serve` as a child process at its limits (node dist/cli/main.js):
 * - with a low RLIMIT_NOFILE (prlimit), clients that take every descriptor: one log line says so, the refusals are
 *   counted, and the admin listener and origin requests keep working on the descriptors kept for them;
 * - limits.maxClientConnections: connections past it are closed as they are accepted, counted, logged once;
 * - killed (SIGKILL) while it spools responses to temporary files: nothing is left in their directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const BIG = Buffer.alloc(10 << 20, 0x62);

let origin: http.Server;
let originPort = 0;
let dir: string;
const children: ChildProcess[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  buildIfStale();
  dir = mkdtempSync(join(tmpdir(), 'ol-serve-limits-'));
  origin = http.createServer({ keepAlive: true }, (req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': BIG.length });
      res.end(BIG);
      return;
    }
    res.end(`origin ${req.url}\n`);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  originPort = (origin.address() as net.AddressInfo).port;
}, 180_000);
afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  origin?.closeAllConnections();
  await new Promise((r) => origin?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

interface Serve {
  proc: ChildProcess;
  lines: () => Array<Record<string, unknown>>;
  ports: { plain: number; admin: number };
}

/** Start `serve` (under `prefix`, e.g. prlimit) with `extra` YAML; resolves once it logged its ports. */
async function serve(name: string, extra: string, prefix: string[] = []): Promise<Serve> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
logging: { requests: false }
${extra}
origins:
  app: { url: "http://127.0.0.1:${originPort}", protocol: h1 }
routes:
  - { path: /, origin: app }
`,
  );
  const argv = [...prefix, process.execPath, CLI, 'serve', '--config', file];
  const proc = spawn(argv[0] as string, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += String(d);
  });
  proc.stderr?.on('data', (d) => {
    out += String(d);
  });
  const lines = (): Array<Record<string, unknown>> =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  for (let i = 0; i < 200; i++) {
    const up = lines().find((l) => l['msg'] === 'originlink serving');
    if (up)
      return {
        proc,
        lines,
        ports: { plain: (up['listeners'] as Record<string, number>)['plain'] as number, admin: up['admin'] as number },
      };
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`serve did not start: ${out}`);
}

function get(port: number, path: string, agent?: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: agent ?? false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** `n` connections that stay open (no request); resolves with how many the peer has not closed after `settleMs`. */
async function hold(port: number, n: number, settleMs: number): Promise<net.Socket[]> {
  const mine: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    mine.push(s);
    sockets.push(s);
  }
  await sleep(settleMs);
  return mine.filter((s) => !s.destroyed && !s.readableEnded);
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('serve at its limits', () => {
  it('RLIMIT_NOFILE 128 and 200 clients: one line logged, refusals counted, the admin listener and origin requests still served', async () => {
    const s = await serve('fds', 'limits: { keepAliveTimeoutMs: 60000, requestHeaderTimeoutMs: 60000 }', [
      'prlimit',
      '--nofile=128:128',
    ]);
    // A client connection made first, kept: it asks the origin once the descriptors are gone.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    expect(await get(s.ports.plain, '/before', agent)).toBe('200 origin /before\n');
    const open = await hold(s.ports.plain, 200, 1500);
    expect(open.length).toBeLessThan(150);
    // The guard's line, once for the whole flood.
    const warned = s.lines().filter((l) => String(l['msg']).startsWith('file descriptors nearly exhausted'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, listener: 'plain', limit: 128, headroom: 16, released: 8 });
    console.log(`logged at the descriptor limit: ${JSON.stringify(warned[0])}`);
    // Origin requests and the admin listener keep working on what the fronts leave.
    expect(await get(s.ports.plain, '/during', agent)).toBe('200 origin /during\n');
    const m = await get(s.ports.admin, '/metrics');
    expect(m).toMatch(/^200 /);
    expect(metric(m, 'originlink_front_refused_connections_total', 'reason="descriptors"')).toBeGreaterThanOrEqual(
      200 - open.length,
    );
    // The flood leaves: new clients are served again.
    for (const c of open) c.destroy();
    await sleep(800);
    expect(await get(s.ports.plain, '/after')).toBe('200 origin /after\n');
    agent.destroy();
    s.proc.kill('SIGTERM');
  }, 60_000);

  it('limits.maxClientConnections: connections past it are closed as accepted, counted and logged once', async () => {
    const s = await serve(
      'maxconn',
      'limits: { maxClientConnections: 20, keepAliveTimeoutMs: 60000, requestHeaderTimeoutMs: 60000 }',
    );
    const open = await hold(s.ports.plain, 50, 1000);
    expect(open.length).toBe(20);
    const m = await get(s.ports.admin, '/metrics');
    expect(metric(m, 'originlink_front_refused_connections_total', 'reason="max_connections"')).toBe(30);
    expect(
      s.lines().filter((l) => String(l['msg']).startsWith('listener at limits.maxClientConnections')),
    ).toHaveLength(1);
    for (const c of open) c.destroy();
    await sleep(300);
    expect(await get(s.ports.plain, '/again')).toBe('200 origin /again\n');
    s.proc.kill('SIGTERM');
  }, 60_000);

  it('killed while it spools responses to temporary files: nothing is left in the directory (the files never had a name there)', async () => {
    const tmp = mkdtempSync(join(dir, 'spool-'));
    const s = await serve('spool', `proxy: { tempDir: ${JSON.stringify(tmp)} }`);
    const stuck = Array.from({ length: 3 }, () => {
      const c = net.connect(s.ports.plain, '127.0.0.1', () => {
        c.write('GET /big HTTP/1.1\r\nhost: a\r\n\r\n');
        c.pause();
      });
      c.on('error', () => {});
      sockets.push(c);
      return c;
    });
    const pid = s.proc.pid as number;
    const spooled = (): string[] =>
      readdirSync(`/proc/${pid}/fd`)
        .map((fd) => {
          try {
            return readlinkSync(`/proc/${pid}/fd/${fd}`);
          } catch {
            return '';
          }
        })
        .filter((l) => l.startsWith(tmp));
    for (let i = 0; i < 100 && spooled().length < 3; i++) await sleep(50);
    expect(spooled().length).toBe(3);
    expect(spooled().every((l) => l.endsWith('(deleted)'))).toBe(true);
    expect(readdirSync(tmp)).toEqual([]);
    s.proc.kill('SIGKILL');
    await new Promise((r) => s.proc.once('exit', r));
    expect(readdirSync(tmp)).toEqual([]);
    for (const c of stuck) c.destroy();
  }, 60_000);
});
