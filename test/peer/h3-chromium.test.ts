/**
 * Headless Chromium (Debian's, Google QUICHE inside) as an HTTP/3 client of
 * our HTTP/3 server, driven over the DevTools protocol (issue 17).
 *
 * QUIC is forced for the origin (`--origin-to-force-quic-on`), the
 * certificate is trusted by SPKI pin and the resolver is kept off (LAB.md).
 * The page is loaded once; each check is a script evaluated in it with
 * real-time timeouts of its own, so a response that never ends shows up as
 * a counted hang instead of a stuck browser.
 *
 * The sweep: responses whose body is one chunk written at once and ended
 * `d` ms later on a later turn (a zero-length FIN for the driver), d across
 * 0–50 ms. Chromium delays its ACKs (~25 ms), so for d near that the ACK of
 * the chunk arrives right after the end was handed over: the case quiche
 * 0.18 loses (src/quic/write-queue.ts). `H3_CHROMIUM_RUNS` sets the number
 * of fetches (default 400).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { H3Server } from '../../src/transport/h3-server.js';
import type { RequestHandler } from '../../src/transport/server-types.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const RUNS = Math.max(100, Number(process.env.H3_CHROMIUM_RUNS ?? 400));
const HANG_MS = 3000;
const certs = makeCerts();
const small = randomBytes(1000);
const big = randomBytes(8 * 1024 * 1024);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let server: H3Server;
let dir: string;
let browser: ChildProcess | null = null;
let cdp: Cdp;
/** Streamed responses whose end was handed to the server's h3 layer. */
let streamsEnded = 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const handler: RequestHandler = async (req) => {
  const u = new URL(req.path, 'https://x');
  if (u.pathname === '/') return { status: 200, headers: [['content-type', 'text/html']], body: '<!doctype html><title>h3</title><p>ok' };
  if (u.pathname === '/small') return { status: 200, headers: [['content-type', 'application/octet-stream']], body: small };
  if (u.pathname === '/big') return { status: 200, headers: [['content-type', 'application/octet-stream']], body: big };
  if (u.pathname === '/echo') {
    const chunks: Buffer[] = [];
    for await (const c of req.body) chunks.push(c as Buffer);
    return { status: 200, headers: [['content-type', 'application/octet-stream']], body: Buffer.concat(chunks) };
  }
  if (u.pathname === '/stream') {
    // One chunk now; the end `d` ms later (d = 0: the next turn).
    const d = Number(u.searchParams.get('d') ?? 0);
    const body = (async function* () {
      yield Buffer.from('x'.repeat(97));
      if (d > 0) await sleep(d);
      else await new Promise((r) => setImmediate(r));
      streamsEnded++;
    })();
    return { status: 200, headers: [['content-type', 'text/plain'], ['cache-control', 'no-store']], body };
  }
  return { status: 404, body: 'no\n' };
};

/** RFC 7469-style pin: base64 of SHA-256 over the leaf's SubjectPublicKeyInfo. */
function spki(pem: string | Uint8Array): string {
  const der = createPublicKey(Buffer.from(pem)).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/** A minimal DevTools protocol client over one page's WebSocket. */
class Cdp {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (m) => {
      const msg = JSON.parse(String(m)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id === undefined) return;
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result);
    });
  }
  static async open(url: string): Promise<Cdp> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20 });
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    return new Cdp(ws);
  }
  send(method: string, params: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<any> {
    const id = ++this.#id;
    this.#ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method} timed out`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    });
  }
  /** Evaluate an async expression in the page; its JSON-able result. */
  async eval<T>(expr: string, timeoutMs = 120_000): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression: expr, awaitPromise: true, returnByValue: true }, timeoutMs);
    if (r.exceptionDetails) throw new Error(`page threw: ${JSON.stringify(r.exceptionDetails).slice(0, 500)}`);
    return r.result.value as T;
  }
  close(): void {
    this.#ws.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-h3-chromium-'));
  server = await startTestH3Server({ handler });
  const host = `localhost:${server.address.port}`;
  const profile = join(dir, 'profile');
  browser = spawn('chromium', [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--metrics-recording-only',
    `--user-data-dir=${profile}`, '--remote-debugging-port=0',
    '--enable-quic', `--origin-to-force-quic-on=${host}`,
    `--ignore-certificate-errors-spki-list=${spki(certs.cert)}`,
    '--host-resolver-rules=MAP localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    'about:blank',
  ], { stdio: 'ignore' });
  // Chromium writes the port it chose to DevToolsActivePort (bounded wait).
  const portFile = join(profile, 'DevToolsActivePort');
  let port = 0;
  for (let i = 0; i < 300 && !port; i++) {
    if (existsSync(portFile)) port = Number(readFileSync(portFile, 'utf8').split('\n')[0]);
    if (!port) await sleep(100);
  }
  if (!port) throw new Error('chromium did not open its DevTools port');
  let pageUrl: string | undefined;
  for (let i = 0; i < 50 && !pageUrl; i++) {
    const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ type: string; webSocketDebuggerUrl: string }>;
    pageUrl = list.find((t) => t.type === 'page')?.webSocketDebuggerUrl;
    if (!pageUrl) await sleep(100);
  }
  if (!pageUrl) throw new Error('no page target');
  cdp = await Cdp.open(pageUrl);
  await cdp.send('Page.enable');
  await cdp.send('Page.navigate', { url: `https://${host}/` });
  for (let i = 0; i < 100; i++) {
    const ready = await cdp.eval<string>('document.readyState + "|" + location.protocol', 5000).catch(() => '');
    if (ready === 'complete|https:') break;
    await sleep(100);
  }
}, 60_000);

afterAll(async () => {
  cdp?.close();
  if (browser?.pid !== undefined && browser.exitCode === null) {
    const exited = new Promise((r) => browser!.once('exit', r));
    browser.kill('SIGTERM');
    await Promise.race([exited, sleep(3000)]);
    if (browser.exitCode === null) browser.kill('SIGKILL');
  }
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Page-side helpers: hex SHA-256 of a buffer, and a fetch that gives up after `ms`. */
const PAGE_LIB = `
// The resource timing buffer holds 250 entries by default; each check starts with an empty one.
performance.setResourceTimingBufferSize(100000);
performance.clearResourceTimings();
const hex = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buf)), (b) => b.toString(16).padStart(2, '0')).join('');
const timed = async (url, init, ms) => {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  try {
    const r = await fetch(url, { ...init, signal: ac.signal, cache: 'no-store' });
    const buf = await r.arrayBuffer();
    return { ok: true, status: r.status, len: buf.byteLength, buf };
  } catch (e) {
    return { ok: false, error: String(e) };
  } finally {
    clearTimeout(t);
  }
};
const proto = (path) => performance.getEntriesByType('resource').filter((e) => new URL(e.name).pathname === path).map((e) => e.nextHopProtocol);
`;

describe('headless Chromium against our HTTP/3 server', () => {
  it('loads the page over h3', async () => {
    const nav = await cdp.eval<string>('performance.getEntriesByType("navigation")[0].nextHopProtocol');
    expect(nav).toBe('h3');
  });

  it(`${RUNS} streamed responses ended 0–50 ms after their one chunk: none hangs`, async () => {
    const before = streamsEnded;
    const r = await cdp.eval<{ hung: number; wrong: number; done: number; protos: string[]; hungDelays: number[] }>(`(async () => {
      ${PAGE_LIB}
      let hung = 0, wrong = 0, done = 0;
      const hungDelays = [];
      // Four at a time; delays walk 0..50 ms so every ACK timing near Chromium's 25 ms is met.
      for (let i = 0; i < ${RUNS}; i += 4) {
        await Promise.all([0, 1, 2, 3].filter((k) => i + k < ${RUNS}).map(async (k) => {
          const d = (i + k) % 51;
          const r = await timed('/stream?d=' + d + '&i=' + (i + k), {}, ${HANG_MS});
          if (!r.ok) { hung++; hungDelays.push(d); }
          else if (r.len !== 97) wrong++;
          else done++;
        }));
      }
      return { hung, wrong, done, hungDelays, protos: [...new Set(proto('/stream'))] };
    })()`, 600_000);
    console.log(`h3-chromium sweep: ${RUNS} fetches, hung ${r.hung} (delays ${JSON.stringify(r.hungDelays)}), wrong ${r.wrong}`);
    expect(streamsEnded - before).toBeGreaterThanOrEqual(RUNS - r.hung);
    expect(r).toMatchObject({ hung: 0, wrong: 0, done: RUNS, protos: ['h3'] });
  }, 660_000);

  it('small and 8 MiB GETs byte-identical, a POST echo, all h3', async () => {
    const post = randomBytes(300 * 1024).toString('base64');
    const r = await cdp.eval<Record<string, unknown>>(`(async () => {
      ${PAGE_LIB}
      const s = await timed('/small', {}, 10000);
      const b = await timed('/big', {}, 60000);
      const body = ${JSON.stringify(post)};
      const p = await timed('/echo', { method: 'POST', body }, 20000);
      return {
        small: s.ok ? await hex(s.buf) : s.error,
        big: b.ok ? await hex(b.buf) : b.error,
        bigLen: b.len,
        echo: p.ok ? new TextDecoder().decode(p.buf) === body : p.error,
        protos: [...new Set([...proto('/small'), ...proto('/big'), ...proto('/echo')])],
      };
    })()`);
    expect(r).toEqual({ small: sha(small), big: sha(big), bigLen: big.length, echo: true, protos: ['h3'] });
  }, 120_000);
});
