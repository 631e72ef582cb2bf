/**
 * Headless Chromium (Debian's) driven over the DevTools protocol: the
 * browser tests' launcher. The browser runs in a process group of its own
 * (its renderer, GPU and network children too), ended by that group's id,
 * and its profile lives in a temp dir removed at close.
 *
 * Certificates are trusted either by SPKI pin (`--ignore-certificate-errors-spki-list`)
 * or, with `trustCa`, through an NSS database in `$HOME/.pki/nssdb` of a
 * temporary HOME holding the test CA as a trusted root (Chromium on Linux
 * reads user roots there), so the chain really verifies. Either way QUIC
 * still refuses a root that is not a public one unless the host is forced
 * to QUIC (test/peer/service-chromium.test.ts explains). The resolver is
 * kept off (LAB.md's flags).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** RFC 7469-style pin: base64 of SHA-256 over the leaf's SubjectPublicKeyInfo. */
export function spki(pem: string | Uint8Array): string {
  const der = createPublicKey(Buffer.from(pem)).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/** The flags every test browser gets: headless, quiet, no outside traffic, local names only. */
export function baseFlags(profile: string, hosts: readonly string[] = []): string[] {
  return [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-extensions',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--metrics-recording-only',
    `--user-data-dir=${profile}`,
    `--host-resolver-rules=${['localhost', ...hosts].map((h) => `MAP ${h} 127.0.0.1`).join(', ')}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1`,
  ];
}

/** A minimal DevTools protocol client over one page's WebSocket. */
export class Cdp {
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
    const r = await this.send(
      'Runtime.evaluate',
      { expression: expr, awaitPromise: true, returnByValue: true },
      timeoutMs,
    );
    if (r.exceptionDetails) throw new Error(`page threw: ${JSON.stringify(r.exceptionDetails).slice(0, 500)}`);
    return r.result.value as T;
  }
  /** Navigate and wait (bounded) until the document is complete on https. */
  async navigate(url: string): Promise<void> {
    await this.send('Page.navigate', { url });
    for (let i = 0; i < 100; i++) {
      const ready = await this.eval<string>('document.readyState + "|" + location.href', 5000).catch(() => '');
      if (ready === `complete|${url}`) return;
      await sleep(100);
    }
    throw new Error(`page ${url} did not load`);
  }
  close(): void {
    this.#ws.close();
  }
}

export interface Browser {
  cdp: Cdp;
  /** The browser's temp dir (profile, and HOME with the NSS db when `trustCa`). */
  dir: string;
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** Extra flags (QUIC, certificate pins). */
  flags?: string[];
  /** PEM of a CA to trust as a root through an NSS db in a temporary HOME (certutil, libnss3-tools). */
  trustCa?: string;
  /** More names that resolve to 127.0.0.1 (besides localhost). */
  hosts?: string[];
}

/** Start headless Chromium on about:blank and attach to its page. */
export async function launchChromium(opts: LaunchOptions = {}): Promise<Browser> {
  const dir = mkdtempSync(join(tmpdir(), 'ol-chromium-'));
  const profile = join(dir, 'profile');
  const env = { ...process.env };
  if (opts.trustCa !== undefined) {
    // Chromium on Linux reads user roots from $HOME/.pki/nssdb (shared NSS db, sql: format).
    const home = join(dir, 'home');
    const db = join(home, '.pki', 'nssdb');
    mkdirSync(db, { recursive: true });
    execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password'], { stdio: 'pipe' });
    execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-n', 'originlink test CA', '-t', 'C,,', '-i', opts.trustCa], {
      stdio: 'pipe',
    });
    env['HOME'] = home;
  }
  let browser: ChildProcess | null = spawn(
    'chromium',
    [...baseFlags(profile, opts.hosts), '--remote-debugging-port=0', ...(opts.flags ?? []), 'about:blank'],
    {
      stdio: 'ignore',
      detached: true, // its own process group: close() ends the browser and every child it started
      env,
    },
  );
  const close = async (): Promise<void> => {
    const b = browser;
    browser = null;
    if (b?.pid !== undefined) {
      // The browser process first: on SIGTERM it shuts down as on a window close, ends its children and completes
      // what they write (a --log-net-log file; SIGTERM sent to the whole group left one empty under load). Then the
      // group, even when its first process already exited: renderer and network children may remain.
      if (b.exitCode === null && b.signalCode === null) {
        const exited = new Promise((r) => b.once('exit', r));
        try {
          process.kill(b.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        await Promise.race([exited, sleep(3000)]);
      }
      try {
        process.kill(-b.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
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
      const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{
        type: string;
        webSocketDebuggerUrl: string;
      }>;
      pageUrl = list.find((t) => t.type === 'page')?.webSocketDebuggerUrl;
      if (!pageUrl) await sleep(100);
    }
    if (!pageUrl) throw new Error('no page target');
    const cdp = await Cdp.open(pageUrl);
    await cdp.send('Page.enable');
    return {
      cdp,
      dir,
      close: async () => {
        cdp.close();
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Page-side helpers: hex SHA-256 of a buffer, a fetch that gives up after `ms`, and nextHopProtocol by path. */
export const PAGE_LIB = `
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
