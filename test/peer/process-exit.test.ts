/**
 * Issue 45, "a script that forgets agent.close() lives 30 s more": the Agent never keeps a process alive by
 * itself. A child script (the TypeScript sources) makes requests over h1, h2 and h3 to our demo origins, reads
 * them, and forgets close(): it must exit within 2 s, as with Node's own fetch(). A request in flight keeps the
 * process alive until its answer is read.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoOrigins, type DemoOrigin } from '../../src/service/demo-origins.js';
import { makeCerts } from '../helpers/certs.js';
import { writeTsHooks } from '../helpers/ts-child.js';

const ROOT = join(import.meta.dirname, '..', '..');
const certs = makeCerts();
let dir: string;
let hooks: string[];
let origins: DemoOrigin[];
let slow: http.Server;
let slowPort = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-exit-'));
  hooks = writeTsHooks(dir);
  origins = await startDemoOrigins({ cert: certs.cert, key: certs.key, ports: { h1: 0, h2: 0, h3: 0 } });
  slow = http.createServer((_req, res) => {
    setTimeout(() => res.end('late answer\n'), 600);
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  slowPort = (slow.address() as net.AddressInfo).port;
});
afterAll(async () => {
  for (const o of origins ?? []) await o.close();
  slow?.close();
  rmSync(dir, { recursive: true, force: true });
});

const port = (name: string): number => (origins.find((o) => o.name === name) as DemoOrigin).port;

/**
 * Runs `body` in a child with an Agent `agent` (trusting the test CA) and no close(); resolves with how long the
 * child lived after printing "idle" (the script's last line), its stdout, and its exit code (killed `limitMs` after
 * "idle": what is measured is the life after the last request, not how long a loaded machine takes to start Node,
 * compile the sources and load the QUIC engine; 45 s at most before it).
 */
function runScript(
  name: string,
  body: string,
  limitMs = 8000,
): Promise<{ afterIdleMs: number; out: string; code: number | null }> {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    `
import { readFileSync } from 'node:fs';
const { Agent } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'index.ts')).href)});
const agent = new Agent({ tls: { ca: readFileSync(${JSON.stringify(certs.caPath)}) } });
${body}
process.stdout.write('idle\\n');
`,
  );
  return new Promise((resolve) => {
    let idleAt = 0;
    let out = '';
    let killer: NodeJS.Timeout | undefined;
    const child = execFile(process.execPath, [...hooks, file], { timeout: 45_000, killSignal: 'SIGKILL' }, (err) => {
      clearTimeout(killer);
      resolve({
        afterIdleMs: idleAt ? Math.round(performance.now() - idleAt) : -1,
        out,
        code: err ? (typeof err.code === 'number' ? err.code : null) : 0,
      });
    });
    child.stdout?.on('data', (d: Buffer) => {
      out += String(d);
      if (!idleAt && out.includes('idle\n')) {
        idleAt = performance.now();
        killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
      }
    });
  });
}

describe('the Agent never keeps a process alive by itself', () => {
  it('h1 and h2 (TLS, our servers): requests read, no close(): the script exits within 2 s (30 s before: the idle sockets held it)', async () => {
    const r = await runScript(
      'tcp',
      `
for (const [p, port] of [['h1', ${port('h1')}], ['h2', ${port('h2')}]]) {
  for (let i = 0; i < 3; i++) {
    const res = await agent.request({ url: 'https://localhost:' + port + '/', protocol: p });
    await res.text();
    if (res.protocol !== p) throw new Error('wrong protocol ' + res.protocol);
  }
}
// An idle connection PINGed by the pool holds nothing either.
`,
    );
    expect(r.code, r.out).toBe(0);
    expect(r.afterIdleMs).toBeGreaterThanOrEqual(0);
    expect(r.afterIdleMs, `lived ${r.afterIdleMs} ms after its last request`).toBeLessThan(2000);
  });

  it('a request in flight keeps the process alive until its answer is read', async () => {
    const r = await runScript(
      'inflight',
      `
agent.request({ url: 'http://127.0.0.1:${slowPort}/' }).then((res) => res.text()).then((t) => process.stdout.write('got ' + t));
`,
    );
    expect(r.code).toBe(0);
    expect(r.out).toContain('got late answer');
  });

  it("h3: the idle connection lets go of its UDP socket (the endpoint is unref'd while nothing is in flight)", async () => {
    const r = await runScript(
      'h3-handles',
      `
const res = await agent.request({ url: 'https://localhost:${port('h3')}/', protocol: 'h3' });
await res.text();
if (res.protocol !== 'h3') throw new Error('wrong protocol ' + res.protocol);
await new Promise((r) => setImmediate(r));
process.stdout.write(JSON.stringify(process.getActiveResourcesInfo()) + '\\n');
process.exit(0);
`,
    );
    expect(r.code, r.out).toBe(0);
    const resources = JSON.parse(r.out.split('\n')[0] as string) as string[];
    expect(resources).not.toContain('UDPWrap');
  });

  // The QUIC connection's timer for quiche's deadline (src/quic/connection.ts #armTimer) was a referenced Timeout:
  // an idle h3 connection held the process until the pool's idle timeout (30 s).
  it('h3: requests read, no close(): the script exits within 2 s', async () => {
    const r = await runScript(
      'h3',
      `
const res = await agent.request({ url: 'https://localhost:${port('h3')}/', protocol: 'h3' });
await res.text();
`,
      4000,
    );
    expect(r.code).toBe(0);
    expect(r.afterIdleMs).toBeLessThan(2000);
  });
});
