/**
 * With TCP Fast Open (the default), a cleartext connection is handed out at once so its request rides in the SYN
 * (issue 54, finding 4). An origin whose port never answers the SYN must still fail within `connectTimeoutMs`
 * as OL_CONNECT_TIMEOUT, counted as a connect failure, and an ordered failover must move on to the next URL — not
 * wait out the headers timeout (3 s here, 30 s by default) as before.
 *
 * The SYNs go unanswered without touching the machine's firewall: a listener (Python, listen(0)) that never
 * accepts, its accept queue filled first, drops every further SYN (Linux: a full accept queue drops the SYN).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type OriginlinkError } from '../../src/index.js';
import { tfoAvailable } from '../../src/net/tfo.js';

let deaf: ChildProcess;
let deafPort = 0;
const fillers: net.Socket[] = [];
let alive: http.Server;
let alivePort = 0;

beforeAll(async () => {
  deaf = spawn('python3', [
    '-c',
    'import socket,time\ns=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(0); print(s.getsockname()[1], flush=True); time.sleep(120)',
  ]);
  deafPort = await new Promise<number>((r) => deaf.stdout?.once('data', (d: Buffer) => r(Number(String(d)))));
  for (let i = 0; i < 3; i++) fillers.push(net.connect(deafPort, '127.0.0.1').on('error', () => {}));
  // The first fills the queue; the others' SYNs are already being dropped.
  await new Promise<void>((r) => fillers[0]?.once('connect', () => r()));
  alive = http.createServer((_req, res) => res.end('alive\n'));
  await new Promise<void>((r) => alive.listen(0, '127.0.0.1', r));
  alivePort = (alive.address() as net.AddressInfo).port;
});
afterAll(() => {
  for (const s of fillers) s.destroy();
  if (deaf?.pid !== undefined && deaf.exitCode === null) process.kill(deaf.pid, 'SIGKILL');
  alive?.close();
});

describe('TCP Fast Open to a cleartext origin whose SYNs go unanswered', () => {
  it('the TFO addon is in use (the case under test)', () => {
    expect(tfoAvailable()).toBe(true);
  });

  it('fails with OL_CONNECT_TIMEOUT after connectTimeoutMs, counted as a connect failure', async () => {
    const agent = new Agent({ pool: { connectTimeoutMs: 500, headersTimeoutMs: 3000 } });
    const t0 = performance.now();
    const err = await agent.request({ url: `http://127.0.0.1:${deafPort}/` }).then(
      () => null,
      (e: unknown) => e as OriginlinkError,
    );
    const ms = performance.now() - t0;
    expect(err?.code).toBe('OL_CONNECT_TIMEOUT');
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(2500);
    const st = agent.stats().find((s) => s.origin === `http://127.0.0.1:${deafPort}`);
    expect(st?.connectFailures).toBe(1);
    await agent.destroy();
  });

  it('a GET fails over to the next URL at the connect deadline', async () => {
    const agent = new Agent({ pool: { connectTimeoutMs: 500, headersTimeoutMs: 3000 } });
    const t0 = performance.now();
    const res = await agent.request({
      origin: [`http://127.0.0.1:${deafPort}`, `http://127.0.0.1:${alivePort}`],
      path: '/',
    });
    expect(await res.text()).toBe('alive\n');
    expect(performance.now() - t0).toBeLessThan(2500);
    await agent.close();
  });

  it('a POST is not replayed elsewhere: its data may have ridden in the SYN (RFC 7413 §6.3.1)', async () => {
    let posts = 0;
    const counting = http.createServer((req, res) => {
      posts++;
      req.resume();
      res.end('took it\n');
    });
    await new Promise<void>((r) => counting.listen(0, '127.0.0.1', r));
    const port = (counting.address() as net.AddressInfo).port;
    const agent = new Agent({ pool: { connectTimeoutMs: 500, headersTimeoutMs: 3000 } });
    const err = await agent
      .request({
        origin: [`http://127.0.0.1:${deafPort}`, `http://127.0.0.1:${port}`],
        path: '/',
        method: 'POST',
        body: 'x',
      })
      .then(
        () => null,
        (e: unknown) => e as OriginlinkError,
      );
    expect(err?.code).toBe('OL_CONNECT_TIMEOUT');
    expect(posts).toBe(0);
    await agent.destroy();
    counting.close();
  });
});
