/**
 * Every promise the public API returns holds the process from the call until it settles, and no longer (issue 53).
 * Each operation runs in a child process with nothing else alive — no server, no timer of its own — 30 times in a
 * row, each run from a fresh Agent: the line after every `await` must run (a promise whose work no longer holds the
 * event loop ends the process with exit code 13, "unsettled top-level await"), the child exits 0, and it exits
 * within 1 s of its last line (idle connections and maintenance timers do not hold it).
 *
 * Before the fix, `await agent.close()` over h2 to nginx ended the process in 1 run of 3–20: what close() waits for
 * (the socket's end after GOAWAY) was an unreferenced socket.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, ROOT } from '../helpers/build.js';
import { startCaddy, type Caddy } from '../helpers/caddy.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';
import { freeTcpUdpPort } from '../helpers/ports.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';

const RUNS = 30;
const certs = makeCerts();
const DIST = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
let dir: string;
let nginx: Nginx;
let caddy: Caddy;
let redis: RedisPeer;

beforeAll(async () => {
  buildIfStale();
  dir = mkdtempSync(join(tmpdir(), 'ol-hold-'));
  const port = await freeTcpUdpPort();
  [nginx, caddy, redis] = await Promise.all([
    Nginx.start(),
    startCaddy({ port, certFile: certs.certPath, keyFile: certs.keyPath }),
    startRedis(),
  ]);
});
afterAll(async () => {
  await Promise.all([nginx?.stop(), caddy?.stop(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

type Proto = 'h1' | 'h2' | 'h3';
const url = (p: Proto): string =>
  p === 'h3' ? `https://127.0.0.1:${caddy.port}/` : `https://127.0.0.1:${nginx.port}/`;

/**
 * One operation, as the body of a loop run RUNS times: `agent` is a fresh Agent for `protocol`; `mark(name)` says a
 * line after an `await` ran. The body leaves nothing of its own alive.
 */
const OPS: Record<string, string> = {
  'close()': `
    const res = await agent.request({ url });
    await res.text();
    await agent.close(); mark('close');`,
  'destroy()': `
    const res = await agent.request({ url });
    await res.text();
    await agent.destroy(); mark('destroy');`,
  'request() and its body, never closed': `
    const res = await agent.request({ url }); mark('request');
    if (res.protocol !== protocol) throw new Error('wrong protocol ' + res.protocol);
    for await (const _ of res.body) { /* read */ }
    mark('body');`,
  'fetch() through the Dispatcher, then close()': `
    const res = await fetch(url, { dispatcher: agent }); mark('fetch');
    await res.text(); mark('body');
    await agent.close(); mark('close');`,
  'a file session store flushed by close()': `
    const file = join(dir, 'sessions-' + protocol + '-' + i + '.json');
    const sessions = new FileSessionStore(file);
    const a = new Agent({ protocol, tls: { ca }, sessionStore: sessions });
    const res = await a.request({ url });
    await res.text();
    await a.close(); mark('close');
    if (!existsSync(file)) throw new Error('close() left no session file');`,
  'Redis stores closed after the Agent': `
    const stores = openStores({ sessionStore: redisUrl, originCache: redisUrl });
    await stores.ready(2000); mark('ready');
    const a = new Agent({ protocol, tls: { ca }, sessionStore: stores.sessionStore, originCache: stores.originCache });
    const res = await a.request({ url });
    await res.text();
    await a.close(); mark('close');
    await stores.close(); mark('stores');`,
};

interface Run {
  code: number | null;
  marks: Map<string, number>;
  afterDoneMs: number;
  err: string;
}

/** Runs `op` RUNS times in a child with nothing else alive. */
function runChild(name: string, protocol: Proto, op: string): Promise<Run> {
  const file = join(dir, `${name.replace(/\W+/g, '-')}-${protocol}.mjs`);
  writeFileSync(
    file,
    `
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
const { Agent, FileSessionStore, openStores } = await import(${JSON.stringify(DIST)});
const ca = readFileSync(${JSON.stringify(certs.caPath)});
const protocol = ${JSON.stringify(protocol)};
const url = ${JSON.stringify(url(protocol))};
const redisUrl = ${JSON.stringify(redis.url)};
const dir = ${JSON.stringify(dir)};
const mark = (m) => process.stdout.write(m + '\\n');
for (let i = 0; i < ${RUNS}; i++) {
  const agent = new Agent({ protocol, tls: { ca } });
  ${op}
}
process.stdout.write('done\\n');
`,
  );
  return new Promise((resolve) => {
    let out = '';
    let doneAt = 0;
    const child = execFile(
      process.execPath,
      [file],
      { timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 1 << 22 },
      (e, _so, se) => {
        const afterDoneMs = doneAt ? performance.now() - doneAt : -1;
        const marks = new Map<string, number>();
        for (const l of out.split('\n')) if (l) marks.set(l, (marks.get(l) ?? 0) + 1);
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, marks, afterDoneMs, err: se });
      },
    );
    child.stdout?.on('data', (d: Buffer) => {
      out += String(d);
      if (!doneAt && out.includes('done\n')) doneAt = performance.now();
    });
  });
}

function expectAllRan(r: Run, marks: string[]): void {
  expect(r.code, `exit code (13: an await never settled); stderr: ${r.err.slice(-600)}`).toBe(0);
  for (const m of marks) expect(r.marks.get(m) ?? 0, `lines after "${m}"`).toBe(RUNS);
  expect(r.marks.get('done')).toBe(1);
  expect(r.afterDoneMs, 'the process lived this long after its last line').toBeLessThan(1000);
}

describe.each(['h1', 'h2', 'h3'] as const)(
  '%s: every awaited promise settles with the process held for it',
  (protocol) => {
    for (const [name, op] of Object.entries(OPS)) {
      it(`${name}: ${RUNS} runs`, async () => {
        const r = await runChild(name, protocol, op);
        const marks = [...op.matchAll(/mark\('(\w+)'\)/g)].map((m) => m[1] as string);
        expectAllRan(r, marks);
      });
    }
  },
);

describe('probeOrigin', () => {
  it(`a probe of an h1/h2/h3 origin settles with the process held: ${RUNS} runs`, async () => {
    const r = await runChild(
      'probe',
      'h3',
      `
    const { probeOrigin } = await import(${JSON.stringify(DIST)});
    const p = await probeOrigin(url, { ca }); mark('probe');
    if (!p.quic.ok) throw new Error('probe found no QUIC');`,
    );
    expectAllRan(r, ['probe']);
  });
});

describe('the Redis stores wrote what close() promised', () => {
  it('tickets and origin facts are in Redis after the runs above', () => {
    const keys = execFileSync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', 'originlink:*'], {
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean);
    expect(keys.length).toBeGreaterThan(0);
  });
});
