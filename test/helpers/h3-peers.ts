/**
 * Independent HTTP/3 peers for interop tests: Caddy (quic-go), ngtcp2's
 * gtlsserver/gtlsclient (GnuTLS) and Bun (lsquic) server/client. Each is
 * started by PID on a loopback port and stopped by that PID.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, waitForPort } from './ports.js';

export const BUN = resolve('node_modules/@oven/bun-linux-x64/bin/bun');

export interface Peer {
  port: number;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function track(proc: ChildProcess): { output: () => string } {
  let out = '';
  const add = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout?.on('data', add);
  proc.stderr?.on('data', add);
  return { output: () => out };
}

export function stopProc(proc: ChildProcess, timeoutMs = 3000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(() => {
      try {
        process.kill(proc.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    proc.once('exit', () => {
      clearTimeout(t);
      res();
    });
    try {
      process.kill(proc.pid!, 'SIGTERM');
    } catch {
      clearTimeout(t);
      res();
    }
  });
}

export function waitOutput(proc: ChildProcess, get: () => string, re: RegExp, timeoutMs = 10_000): Promise<void> {
  return new Promise((res, rej) => {
    const deadline = setTimeout(() => {
      clearInterval(poll);
      rej(new Error(`peer did not print ${re} within ${timeoutMs} ms; output:\n${get().slice(-2000)}`));
    }, timeoutMs);
    const poll = setInterval(() => {
      if (re.test(get())) {
        clearInterval(poll);
        clearTimeout(deadline);
        res();
      } else if (proc.exitCode !== null) {
        clearInterval(poll);
        clearTimeout(deadline);
        rej(new Error(`peer exited with ${proc.exitCode}; output:\n${get().slice(-2000)}`));
      }
    }, 20);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface PeerStart {
  argv: string[];
  opts?: SpawnOptions;
  /** Output that says the peer is ready; without it, the peer must still run after `settleMs`. */
  ready?: RegExp;
  port: number;
  /** A scratch folder of the peer's, removed at stop (and on a failed start). */
  dir?: string;
  /** Wait this long after readiness (listeners bound), ms. */
  settleMs?: number;
  timeoutMs?: number;
  /** How to start the process (default child_process.spawn; e.g. inside a network namespace). */
  spawn?: (argv: string[], opts: SpawnOptions) => ChildProcess;
}

/** Start a peer process, follow its output, wait until it is ready; stop() ends it by PID and removes its folder. */
export async function startPeer(o: PeerStart): Promise<Peer> {
  const opts: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], ...o.opts };
  const proc = o.spawn ? o.spawn(o.argv, opts) : spawn(o.argv[0]!, o.argv.slice(1), opts);
  const t = track(proc);
  const stop = async (): Promise<void> => {
    await stopProc(proc);
    if (o.dir) rmSync(o.dir, { recursive: true, force: true });
  };
  try {
    if (o.ready) await waitOutput(proc, t.output, o.ready, o.timeoutMs ?? 15_000);
    await sleep(o.settleMs ?? 0);
    if (proc.exitCode !== null)
      throw new Error(`${o.argv[0]} exited with ${proc.exitCode}: ${t.output().slice(-2000)}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port: o.port, proc, output: t.output, stop };
}

/** The environment Caddy gets: its own HOME and XDG folders under `dir` (it writes there). */
export function caddyEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'xdg-data'), XDG_CONFIG_HOME: join(dir, 'xdg-config') };
}

/**
 * Caddy serving `root` over h1/h2/h3 on 127.0.0.1:port, with `/echo*`
 * reverse-proxied to `echoPort` (an HTTP/1.1 echo server) when given.
 */
export async function startCaddy(o: {
  port: number;
  certFile: string;
  keyFile: string;
  root: string;
  echoPort?: number;
}): Promise<Peer> {
  const dir = mkdtempSync(join(tmpdir(), 'ol-caddy-'));
  const echo = o.echoPort ? `  reverse_proxy /echo* 127.0.0.1:${o.echoPort}\n` : '';
  writeFileSync(
    join(dir, 'Caddyfile'),
    `{\n  admin off\n  auto_https disable_redirects\n  storage file_system ${dir}/data\n  servers {\n    protocols h1 h2 h3\n  }\n}\n` +
      `https://127.0.0.1:${o.port}, https://localhost:${o.port} {\n  tls ${o.certFile} ${o.keyFile}\n${echo}  root * ${o.root}\n  file_server\n}\n`,
  );
  return startPeer({
    argv: ['caddy', 'run', '--adapter', 'caddyfile', '--config', join(dir, 'Caddyfile')],
    opts: { env: caddyEnv(dir) },
    ready: /server running|serving initial configuration/,
    port: o.port,
    dir,
    settleMs: 200,
  });
}

/** ngtcp2's example HTTP/3 server: GET serves files from `root`; POST answers with the file. */
export async function startNgtcp2Server(o: {
  port: number;
  certFile: string;
  keyFile: string;
  root: string;
}): Promise<Peer> {
  return startPeer({
    argv: ['gtlsserver', '-q', '-d', o.root, '127.0.0.1', String(o.port), o.keyFile, o.certFile],
    port: o.port,
    settleMs: 400,
  });
}

/** Bun.serve with http3 (lsquic): `/big` → the file, `/echo` → the request body with x-sha256, else text. */
export async function startBunServer(o: {
  port: number;
  certFile: string;
  keyFile: string;
  bigFile: string;
}): Promise<Peer> {
  const dir = mkdtempSync(join(tmpdir(), 'ol-bun-'));
  const script = join(dir, 'server.mjs');
  writeFileSync(
    script,
    `import { createHash } from 'node:crypto';
const big = new Uint8Array(await Bun.file(${JSON.stringify(o.bigFile)}).arrayBuffer());
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: ${o.port},
  http3: true,
  tls: { cert: Bun.file(${JSON.stringify(o.certFile)}), key: Bun.file(${JSON.stringify(o.keyFile)}) },
  async fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === '/big') return new Response(big, { headers: { 'content-type': 'application/octet-stream' } });
    if (url.pathname === '/echo') {
      const body = new Uint8Array(await req.arrayBuffer());
      return new Response(body, { headers: { 'x-sha256': createHash('sha256').update(body).digest('hex') } });
    }
    return new Response('hello ' + url.pathname);
  },
});
console.log('bun-ready', server.port);
`,
  );
  return startPeer({ argv: [BUN, script], opts: { cwd: dir }, ready: /bun-ready/, port: o.port, dir, settleMs: 100 });
}

export interface RunResult {
  code: number | null;
  output: string;
}

/** Run a client to completion (bounded by `timeoutMs`, then killed). */
export function runClient(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((res) => {
    const proc = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const t = track(proc);
    const timer = setTimeout(() => void stopProc(proc, 500), opts.timeoutMs ?? 20_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      res({ code, output: t.output() });
    });
  });
}

/**
 * Bun's HTTP/3 client: fetches each URL with `protocol: "http3"` (trust via
 * NODE_EXTRA_CA_CERTS) and prints one JSON line per response.
 */
export async function bunFetch(
  urls: Array<{ url: string; method?: string; bodyFile?: string }>,
  caFile: string,
  timeoutMs = 20_000,
): Promise<Array<{ status: number; sha256: string; bytes: number; text: string; error?: string }>> {
  const dir = mkdtempSync(join(tmpdir(), 'ol-bunc-'));
  const script = join(dir, 'client.mjs');
  writeFileSync(
    script,
    `import { createHash } from 'node:crypto';
const jobs = ${JSON.stringify(urls)};
const out = await Promise.all(jobs.map(async (j) => {
  try {
    const init = { protocol: 'http3', method: j.method ?? 'GET' };
    if (j.bodyFile) init.body = new Uint8Array(await Bun.file(j.bodyFile).arrayBuffer());
    const r = await fetch(j.url, init);
    const b = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, sha256: createHash('sha256').update(b).digest('hex'), bytes: b.length, text: b.length < 200 ? new TextDecoder().decode(b) : '' };
  } catch (e) { return { status: 0, sha256: '', bytes: 0, text: '', error: String(e) }; }
}));
console.log('RESULT ' + JSON.stringify(out));
`,
  );
  try {
    const r = await runClient(BUN, [script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile }, timeoutMs });
    const line = r.output.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`bun client printed no result (exit ${r.code}):\n${r.output.slice(-2000)}`);
    return JSON.parse(line.slice(7)) as Array<{
      status: number;
      sha256: string;
      bytes: number;
      text: string;
      error?: string;
    }>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * nghttpd (nghttp2) serving cleartext HTTP/2 by prior knowledge only (h2c, `--no-tls`) on 127.0.0.1, from a folder
 * of its own holding `index.html` ("hello\n"): an origin that answers HTTP/1.1 in HTTP/2 frames.
 */
export async function startH2cOnly(): Promise<Peer> {
  const dir = mkdtempSync(join(tmpdir(), 'ol-h2c-'));
  writeFileSync(join(dir, 'index.html'), 'hello\n');
  const port = await freePort();
  const peer = await startPeer({
    argv: ['nghttpd', '-a', '127.0.0.1', '-d', dir, '--no-tls', String(port)],
    port,
    dir,
  });
  await waitForPort(port);
  return peer;
}
