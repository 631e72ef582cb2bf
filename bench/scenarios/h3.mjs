#!/usr/bin/env node
// HTTP/3 benchmark: our h3 client vs our h2 client (Agent, protocol 'h2',
// against node:http2) vs Bun's h3 client (`fetch(url, {protocol: "http3"})`),
// all against origins in one child process (our h3 server + node:http2) on
// loopback, in one bounded run (< 150 s).
//
// Our h2 and h3 are measured in alternating blocks (ABBA) within the run.
// Measures: warm request median/p99 (sequential, one connection), 100
// concurrent requests (time per batch), one 50 MiB stream (MiB/s), client
// CPU per request (process.cpuUsage over the warm loop), and first-response
// times for a new connection: fresh, resumed (no early data), 0-RTT.
// Our h3 client is also measured alone in a child process, exactly as Bun's
// script is (same counts and loops): the like-for-like row for the ratio to Bun;
// and so is our h2 client, against node:http2, for the like-for-like h3 ÷ h2
// ratio (h3 h2 Bun h2 h3, the second pair without bulk streams; CPU the mean of two).
// Prints a Markdown table with ratios to h2 and writes
// bench/out/h3-<ISO date>.json with every sample and machine facts.
//
// Knobs (env): BENCH_WARM (sequential requests, default 5000, after
// BENCH_WARMUP = 10000 unmeasured ones per client — with 500, V8 had not
// finished optimising the request path and both our clients measured about
// twice their steady-state CPU per request; Bun gets the same), BENCH_ROUNDS
// (100-concurrent batches, default 30, after BENCH_CONC_WARMUP = 200 unmeasured
// ones per client, Bun's too), BENCH_BULK_MIB (default 50),
// BENCH_BULK_ROUNDS (streams per client, alternating; median reported, default 6),
// BENCH_FIRST (first-response samples per kind, default 12), BENCH_BUN=0 skips Bun, BENCH_PAIRED_ROUNDS (default 5)
// rounds of our h3 and h2 clients at the same time on one CPU, each warmed for BENCH_PAIRED_WARMUP_MS (4000) and
// measured for BENCH_PAIRED_WINDOW_MS (4000): the h3 ÷ h2 CPU ratio a drift of the machine does not move (0 skips).
// BENCH_PAIRED=1 with BENCH_ANCHOR_DIST (another build's dist/): instead of all that, our h3 client of this build and of
// the anchor build in those paired rounds (BENCH_PAIRED_ROUNDS, default 7): this ÷ anchor CPU a request, per round and
// its median — how a change to the h3 request path is judged (an A/A of one build reads within ±1 %).
// Needs a built dist/ (npx tsc -p .), or BENCH_DIST naming a snapshot (bench/lib/dist.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DIST, dist } from '../lib/dist.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CERTS = join(ROOT, 'config', 'demo-certs');
const BUN = join(ROOT, 'node_modules', '@oven', 'bun-linux-x64', 'bin', 'bun');
const SMALL = 'x'.repeat(64);

// ---- origin process ----

async function serve() {
  const { startH3Server } = await dist('server/h3.js');
  const bulk = Buffer.alloc(64 * 1024 * 1024, 0x61);
  const body = (path) => {
    const u = new URL(path, 'https://x');
    if (u.pathname === '/bulk') return bulk.subarray(0, Number(u.searchParams.get('n') ?? 0));
    if (u.pathname === '/cpu') {
      const c = process.cpuUsage();
      {
        const st = h3?.stats();
        return JSON.stringify({
          us: c.user + c.system,
          gso: st?.gsoSends ?? null,
          avgPacket: st ? Math.round(st.bytesOut / st.packetsOut) : null,
        });
      }
    }
    return SMALL;
  };
  const cert = readFileSync(join(CERTS, 'leaf.pem'));
  const key = readFileSync(join(CERTS, 'leaf.key'));
  let h3 = null;
  h3 = await startH3Server({ host: '127.0.0.1', cert, key, handler: (r) => ({ status: 200, body: body(r.path) }) });
  const h2 = http2.createSecureServer({ cert, key, allowHTTP1: false, settings: { maxConcurrentStreams: 256 } });
  h2.on('session', (sess) => sess.on('error', () => {}));
  h2.on('stream', (s, h) => {
    s.on('error', () => {});
    s.respond({ ':status': 200 });
    s.end(body(h[':path']));
  });
  await new Promise((r) => h2.listen(0, '127.0.0.1', r));
  process.stdout.write(`${JSON.stringify({ h3: h3.address.port, h2: h2.address().port })}\n`);
  process.stdin.resume();
  process.stdin.on('end', async () => {
    h2.close();
    await h3.close(50);
    process.exit(0);
  });
}

// ---- client (bench) process ----

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : null;
};

async function drain(body) {
  let n = 0;
  for await (const c of body) n += c.length;
  return n;
}

/**
 * Our h2 and h3 clients measured in alternating blocks (ABBA order), so a
 * change in background load on this shared machine hits both alike.
 */
async function measureBoth(Agent, ports, o) {
  const ca = readFileSync(join(CERTS, 'ca.pem'));
  const mk = (protocol, port) => {
    const agent = new Agent({ protocol, tls: { ca } });
    const base = `https://127.0.0.1:${port}`;
    const get = async (path) => drain((await agent.request({ url: base + path })).body);
    return { protocol, agent, get, r: { warm: [], cpuUs: 0, conc: [], bulk: [] } };
  };
  const sides = [mk('h2', ports.h2), mk('h3', ports.h3)];
  const order = (k) => (k % 2 === 0 ? sides : [...sides].reverse());
  try {
    // JIT warm-up for both sides: the warm figures are meant as steady state.
    for (const s of sides) for (let i = 0; i < o.warmup; i++) await s.get('/s');
    const blocks = 8;
    const per = Math.ceil(o.warm / blocks);
    for (let b = 0; b < blocks; b++) {
      for (const s of order(b)) {
        const cpu0 = process.cpuUsage();
        for (let i = 0; i < per; i++) {
          const t = performance.now();
          await s.get('/s');
          s.r.warm.push(performance.now() - t);
        }
        const cpu = process.cpuUsage(cpu0);
        s.r.cpuUs += cpu.user + cpu.system;
      }
    }
    // The same for the concurrent path (queueing, stream credit, the early sends): with the 30 measured batches
    // alone, V8 was still optimising it during them (h3 ÷ h2 1.69× over 30 batches, 1.03× over 300; RESULTS.md h3);
    // our client alone in its process still had batches of 2 ms after 50 warm-up batches, 1.0 ms after 200.
    for (let k = 0; k < o.concWarmup; k++)
      for (const s of order(k)) await Promise.all(Array.from({ length: 100 }, () => s.get('/s')));
    for (let k = 0; k < o.rounds; k++) {
      for (const s of order(k)) {
        const t = performance.now();
        await Promise.all(Array.from({ length: 100 }, () => s.get('/s')));
        s.r.conc.push(performance.now() - t);
      }
    }
    for (let k = 0; k < o.bulkRounds; k++) {
      for (const s of order(k)) {
        const t = performance.now();
        const n = await s.get(`/bulk?n=${o.bulkMiB * 1024 * 1024}`);
        if (n !== o.bulkMiB * 1024 * 1024) throw new Error(`${s.protocol} bulk: got ${n} bytes`);
        s.r.bulk.push(o.bulkMiB / ((performance.now() - t) / 1000));
      }
    }
    return sides.map((s) => ({ ...s.r, cpuUsPerReq: s.r.cpuUs / s.r.warm.length }));
  } finally {
    for (const s of sides) await s.agent.close();
  }
}

async function firstResponses(m, ports, n) {
  const { Agent } = m.agent;
  const { MemorySessionStore } = m.store;
  const { connectH3 } = m.h3;
  const ca = readFileSync(join(CERTS, 'ca.pem'));
  const req = (port) => ({
    method: 'GET',
    path: '/s',
    authority: `localhost:${port}`,
    scheme: 'https',
    headers: [],
    body: null,
  });
  const h3Once = async (store, policy) => {
    const t = performance.now();
    const c = await connectH3({
      host: '127.0.0.1',
      port: ports.h3,
      servername: 'localhost',
      ca,
      sessionStore: store,
      sessionKey: 'bench',
      earlyDataPolicy: policy,
      keepAliveMs: 0,
    });
    const r = await c.request(req(ports.h3));
    const ms = performance.now() - t;
    await drain(r.body);
    const early = r.earlyData === true;
    const resumed = c.facts.resumed;
    await new Promise((res) => setTimeout(res, 5)); // the ticket rides after the response
    c.destroy();
    return { ms, early, resumed };
  };
  const h2Once = async (store) => {
    const agent = new Agent({ protocol: 'h2', tls: { ca }, sessionStore: store });
    const t = performance.now();
    const r = await agent.request({ url: `https://localhost:${ports.h2}/s` });
    const ms = performance.now() - t;
    await drain(r.body);
    const resumed = r.connection.resumed;
    await new Promise((res) => setTimeout(res, 5));
    agent.destroy();
    return { ms, resumed };
  };
  const out = {
    h3: { fresh: [], resumed: [], zeroRtt: [] },
    h2: { fresh: [], resumed: [] },
    flags: { h3Resumed: 0, h3Early: 0, h2Resumed: 0 },
  };
  const h3Store = new MemorySessionStore();
  const h2Store = new MemorySessionStore();
  await h3Once(h3Store, 'never');
  await h2Once(h2Store);
  for (let i = 0; i < n; i++) {
    out.h3.fresh.push((await h3Once(new MemorySessionStore(), 'never')).ms);
    const a = await h3Once(h3Store, 'never');
    out.h3.resumed.push(a.ms);
    if (a.resumed) out.flags.h3Resumed++;
    const b = await h3Once(h3Store, 'safe');
    out.h3.zeroRtt.push(b.ms);
    if (b.early) out.flags.h3Early++;
    out.h2.fresh.push((await h2Once(new MemorySessionStore())).ms);
    const c = await h2Once(h2Store);
    out.h2.resumed.push(c.ms);
    if (c.resumed) out.flags.h2Resumed++;
  }
  return out;
}

/**
 * One of our clients measured the way Bun's is: alone in a process of its own (same warm-up, counts and loops as
 * runBun's script), so the comparison with Bun is like for like. In measureBoth our h3 client shares its process
 * with our h2 client, whose code paths (the Agent, pool and exchange are shared) make V8's inline caches
 * polymorphic; that costs each 10-20 µs per request there. Our h2 client runs the same way (against node:http2),
 * so the h3 ÷ h2 ratio has a like-for-like form too.
 */
async function solo(port, o, protocol = 'h3') {
  const { Agent } = await dist('agent/agent.js');
  const agent = new Agent({ protocol, tls: { ca: readFileSync(join(CERTS, 'ca.pem')) } });
  const url = `https://127.0.0.1:${port}`;
  const get = async (p) => (await (await agent.request({ url: url + p })).bytes()).length;
  const now = () => performance.now();
  const first = now();
  await get('/s');
  const firstMs = now() - first;
  // Paired (pairedSolo): warm-up and measurement for set times, so that two clients started together measure the same
  // seconds of this machine; otherwise for set counts, as Bun's script does.
  const timed = Boolean(o.windowMs);
  const start = now();
  for (let i = 0; timed ? now() - start < o.warmupMs : i < o.warmup; i++) await get('/s');
  const warm = [];
  const c0 = process.cpuUsage();
  const from = now();
  for (let i = 0; timed ? now() - from < o.windowMs : i < o.warm; i++) {
    const t = now();
    await get('/s');
    warm.push(now() - t);
  }
  const c = process.cpuUsage(c0);
  if (timed) {
    await agent.close();
    console.log(`RESULT ${JSON.stringify({ firstMs, warm, cpuUsPerReq: (c.user + c.system) / warm.length })}`);
    return;
  }
  for (let i = 0; i < o.concWarmup; i++) await Promise.all(Array.from({ length: 100 }, () => get('/s')));
  const conc = [];
  for (let i = 0; i < o.rounds; i++) {
    const t = now();
    await Promise.all(Array.from({ length: 100 }, () => get('/s')));
    conc.push(now() - t);
  }
  const bulk = [];
  for (let i = 0; i < o.bulkRounds; i++) {
    const t = now();
    const n = await get(`/bulk?n=${o.bulkMiB * 1024 * 1024}`);
    if (n !== o.bulkMiB * 1024 * 1024) throw new Error(`bulk ${n}`);
    bulk.push(o.bulkMiB / ((now() - t) / 1000));
  }
  await agent.close();
  console.log(`RESULT ${JSON.stringify({ firstMs, warm, cpuUsPerReq: (c.user + c.system) / o.warm, conc, bulk })}`);
}

/** Run a client process that prints one `RESULT {json}` line; bounded at 40 s. */
async function runChild(cmd, args, env) {
  const outText = await new Promise((res) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => process.kill(p.pid, 'SIGKILL'), 40_000);
    p.on('exit', () => {
      clearTimeout(t);
      res(out);
    });
  });
  const line = outText.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) return { error: outText.slice(-500) };
  return JSON.parse(line.slice(7));
}

async function runBun(port, o) {
  if (!existsSync(BUN) || process.env.BENCH_BUN === '0') return null;
  const dir = mkdtempSync(join(tmpdir(), 'ol-bench-bun-'));
  const script = join(dir, 'b.mjs');
  writeFileSync(
    script,
    `const url = 'https://127.0.0.1:${port}';
const get = async (p) => { const r = await fetch(url + p, { protocol: 'http3' }); return (await r.arrayBuffer()).byteLength; };
const now = () => performance.now();
const first = now(); await get('/s'); const firstMs = now() - first;
for (let i = 0; i < ${o.warmup}; i++) await get('/s');
const warm = []; const c0 = process.cpuUsage();
for (let i = 0; i < ${o.warm}; i++) { const t = now(); await get('/s'); warm.push(now() - t); }
const c = process.cpuUsage(c0);
for (let i = 0; i < ${o.concWarmup}; i++) await Promise.all(Array.from({ length: 100 }, () => get('/s')));
const conc = [];
for (let i = 0; i < ${o.rounds}; i++) { const t = now(); await Promise.all(Array.from({ length: 100 }, () => get('/s'))); conc.push(now() - t); }
const bulk = [];
for (let i = 0; i < ${o.bulkRounds}; i++) { const t = now(); const n = await get('/bulk?n=${o.bulkMiB * 1024 * 1024}'); if (n !== ${o.bulkMiB * 1024 * 1024}) throw new Error('bulk ' + n); bulk.push(${o.bulkMiB} / ((now() - t) / 1000)); }
console.log('RESULT ' + JSON.stringify({ firstMs, warm, cpuUsPerReq: (c.user + c.system) / ${o.warm}, conc, bulk }));
`,
  );
  try {
    return await runChild(BUN, [script], { NODE_EXTRA_CA_CERTS: join(CERTS, 'ca.pem') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Our h3 and h2 clients, each in its own process, at the same time on one CPU (the origin process on another), for
 * `rounds` rounds: a slow phase of the machine lands on both alike, which the sequential runs above (h3 h2 Bun h2 h3)
 * cannot promise (how far their ratio moved between runs of one build: bench/RESULTS.md `h3`). Each round's ratio of
 * CPU per request (h3 ÷ h2); null where the machine has one CPU (no core to pin them apart).
 */
async function pairedSolo(serverPid, ports, rounds, warmupMs, windowMs) {
  const out = await pairedRounds(serverPid, rounds, warmupMs, windowMs, [
    { proto: 'h3', port: ports.h3, env: {} },
    { proto: 'h2', port: ports.h2, env: {} },
  ]);
  if (out === null || out.error) return out;
  return out.map(([h3, h2]) => ({
    h3: h3.cpuUsPerReq,
    h2: h2.cpuUsPerReq,
    ratio: h3.cpuUsPerReq / h2.cpuUsPerReq,
    requests: [h3.warm.length, h2.warm.length],
  }));
}

/**
 * `rounds` rounds of two own-process clients (`--solo`, each `{ proto, port, env }`) started together on the last
 * CPU, the origin process on CPU 0, in turn the one and the other started first: each round's two results, in the
 * order of `clients`; null where the machine has one CPU.
 */
async function pairedRounds(serverPid, rounds, warmupMs, windowMs, clients) {
  const cpus = os.cpus().length;
  if (cpus < 2 || rounds < 1) return null;
  const clientCpu = String(cpus - 1);
  spawnSync('taskset', ['-a', '-p', '-c', '0', String(serverPid)], { stdio: 'ignore' });
  const oo = JSON.stringify({ windowMs, warmupMs });
  const run = (c) =>
    runChild(
      'taskset',
      ['-c', clientCpu, process.execPath, fileURLToPath(import.meta.url), '--solo', String(c.port), oo, c.proto],
      c.env,
    );
  const out = [];
  try {
    for (let i = 0; i < rounds; i++) {
      // Started in turn first and second (the first one started read up to ~1.5 % apart from the second in A/As).
      const order = i % 2 === 0 ? clients : [...clients].reverse();
      const pair = await Promise.all(order.map(run));
      if (i % 2 === 1) pair.reverse();
      const failed = pair.find((r) => r.error);
      if (failed) return { error: failed.error };
      out.push(pair);
    }
  } finally {
    spawnSync('taskset', ['-a', '-p', '-c', `0-${cpus - 1}`, String(serverPid)], { stdio: 'ignore' });
  }
  return out;
}

/**
 * Whether the modules of `dir` load as ES modules by their package's `"type": "module"` (a package.json above them).
 * A dist/ copied where none is above loads by Node's syntax detection instead, and its requests read ~3 % dearer
 * than the same files beside the package's package.json: two builds compared must both have it.
 */
function inModulePackage(dir) {
  for (let d = dir; ; d = dirname(d)) {
    const file = join(d, 'package.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')).type === 'module';
    if (dirname(d) === d) return false;
  }
}

/** The addon variables bench/lib/dist.mjs reads, for the addons built in the tree at `root`; none where it has none. */
function ownAddons(root) {
  const env = {};
  const built = {
    ORIGINLINK_QUIC_BINDING: join(root, 'native', 'quic', 'build', 'quic.node'),
    ORIGINLINK_UDP_ADDON: join(root, 'native', 'udp', 'build', 'Release', 'udp.node'),
    ORIGINLINK_TFO_ADDON: join(root, 'native', 'tfo', 'build', 'Release', 'tfo.node'),
  };
  for (const [k, file] of Object.entries(built)) if (existsSync(file)) env[k] = file;
  return env;
}

/** BENCH_PAIRED with BENCH_ANCHOR_DIST: this build's h3 client and the anchor's, paired rounds; printed and kept. */
async function pairedBuilds(serverPid, ports, anchor) {
  const rounds = Number(process.env.BENCH_PAIRED_ROUNDS ?? 7);
  const out = await pairedRounds(
    serverPid,
    rounds,
    Number(process.env.BENCH_PAIRED_WARMUP_MS ?? 3000),
    Number(process.env.BENCH_PAIRED_WINDOW_MS ?? 4000),
    // Both named by BENCH_DIST, so that both load the addons as bench/lib/dist.mjs names them; the anchor its own
    // where its tree has them built (a worktree with a native/ of its own), so that a change to an addon is judged too.
    [
      { proto: 'h3', port: ports.h3, env: { BENCH_DIST: DIST } },
      { proto: 'h3', port: ports.h3, env: { BENCH_DIST: anchor, ...ownAddons(dirname(anchor)) } },
    ],
  );
  if (out === null) throw new Error('bench/h3: BENCH_PAIRED needs two CPUs');
  if (out.error) throw new Error(`bench/h3: a paired client failed: ${out.error}`);
  const rows = out.map(([mine, theirs]) => ({
    cpuUs: mine.cpuUsPerReq,
    anchorCpuUs: theirs.cpuUsPerReq,
    ratio: mine.cpuUsPerReq / theirs.cpuUsPerReq,
    requests: [mine.warm.length, theirs.warm.length],
  }));
  const med = (f) => pct(rows.map(f), 50);
  console.log(
    `h3 client, this build ÷ the anchor (${anchor}), paired on one CPU, ${rows.length} rounds: ` +
      `${rows.map((r) => r.ratio.toFixed(3)).join(', ')}; median **${med((r) => r.ratio).toFixed(3)}** ` +
      `(this ${med((r) => r.cpuUs).toFixed(1)} µs, anchor ${med((r) => r.anchorCpuUs).toFixed(1)} µs a request)`,
  );
  writeResult('h3-paired', { anchor, rounds: rows });
}

/** The paired rounds in one line: each round's h3 ÷ h2 CPU ratio, their median, the median µs of each client. */
function pairedLine(paired) {
  const med = (f) => pct(paired.map(f), 50);
  const ratios = paired.map((r) => r.ratio.toFixed(2)).join(', ');
  return `paired, both in their own processes at the same time on one CPU (${paired.length} rounds): h3 ÷ h2 CPU/request ${ratios}; median **${med((r) => r.ratio).toFixed(2)}** (h3 ${med((r) => r.h3).toFixed(0)} µs, h2 ${med((r) => r.h2).toFixed(0)} µs)`;
}

async function main() {
  if (!existsSync(join(DIST, 'connect', 'h3.js'))) {
    console.error('bench/h3: build first (npx tsc -p .)');
    process.exit(2);
  }
  const o = {
    warm: Number(process.env.BENCH_WARM ?? 5000),
    warmup: Number(process.env.BENCH_WARMUP ?? 10000),
    rounds: Number(process.env.BENCH_ROUNDS ?? 30),
    concWarmup: Number(process.env.BENCH_CONC_WARMUP ?? 200),
    bulkMiB: Number(process.env.BENCH_BULK_MIB ?? 50),
    bulkRounds: Number(process.env.BENCH_BULK_ROUNDS ?? 6),
    first: Number(process.env.BENCH_FIRST ?? 12),
  };
  const anchor = process.env.BENCH_ANCHOR_DIST;
  if (process.env.BENCH_PAIRED === '1') {
    if (!anchor) throw new Error("bench/h3: BENCH_PAIRED=1 needs BENCH_ANCHOR_DIST (the other build's dist/)");
    for (const d of [DIST, anchor])
      if (!inModulePackage(d))
        throw new Error(
          `bench/h3: ${d} has no package.json of "type": "module" above it: build it in a worktree (or copy the package.json beside it)`,
        );
  }
  const t0 = performance.now();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const stop = () => {
    try {
      child.stdin.end();
    } catch {
      // gone
    }
  };
  const killer = setTimeout(() => {
    console.error('bench/h3: over 150 s, stopping');
    if (child.pid) process.kill(child.pid, 'SIGKILL');
    process.exit(1);
  }, 150_000);
  killer.unref();
  try {
    const ports = await new Promise((res, rej) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl >= 0) res(JSON.parse(buf.slice(0, nl)));
      });
      child.once('exit', (c) => rej(new Error(`origin exited ${c}`)));
    });
    if (process.env.BENCH_PAIRED === '1') {
      await pairedBuilds(child.pid, ports, anchor);
      return;
    }
    const m = {
      agent: await dist('agent/agent.js'),
      store: await dist('store/session-store.js'),
      h3: await dist('connect/h3.js'),
    };
    const [h2, h3] = await measureBoth(m.agent.Agent, ports, o);
    const first = await firstResponses(m, ports, o.first);
    // Each of our clients alone in a process, twice, in the order h3 h2 Bun h2 h3 (the second pair without the bulk
    // streams): a drift of this machine's speed between the runs then hits both alike, and Bun's run, in the middle,
    // as much as the mean of each of our pairs (run after them, its ratio moved by ±5 % between runs of one build).
    const soloRun = (proto, oo) =>
      runChild(
        process.execPath,
        [fileURLToPath(import.meta.url), '--solo', String(ports[proto]), JSON.stringify(oo), proto],
        {},
      );
    const noBulk = { ...o, bulkRounds: 0 };
    const soloH3a = await soloRun('h3', o);
    const soloH2a = await soloRun('h2', o);
    const bun = await runBun(ports.h3, o);
    const soloH2b = await soloRun('h2', noBulk);
    const soloH3b = await soloRun('h3', noBulk);
    const mine = mergeSolo(soloH3a, soloH3b);
    const mineH2 = mergeSolo(soloH2a, soloH2b);
    const paired = await pairedSolo(
      child.pid,
      ports,
      Number(process.env.BENCH_PAIRED_ROUNDS ?? 5),
      Number(process.env.BENCH_PAIRED_WARMUP_MS ?? 4000),
      Number(process.env.BENCH_PAIRED_WINDOW_MS ?? 4000),
    );
    const row = (name, r) =>
      r && !r.error
        ? {
            name,
            warmP50: pct(r.warm, 50),
            warmP99: pct(r.warm, 99),
            conc100: pct(r.conc, 50),
            bulkMiBs: pct(r.bulk, 50),
            bulkBest: Math.max(...r.bulk),
            cpuUs: r.cpuUsPerReq,
          }
        : { name, error: r?.error ?? 'skipped' };
    const rows = [
      row('originlink h2', h2),
      row('originlink h3', h3),
      row('originlink h3, own process (as Bun)', mine),
      row('Bun h3 fetch', bun),
      row('originlink h2, own process', mineH2),
    ];
    const base = rows[0];
    const ratio = (v, b) => (v == null || !b ? '' : ` (${(v / b).toFixed(2)}×)`);
    const f = (v, d = 3) => (v == null ? '–' : v.toFixed(d));
    const x = (v, b) => (v == null || !b ? '–' : `${(v / b).toFixed(2)}×`);
    const lines = [
      '| client | warm p50 ms | warm p99 ms | 100 concurrent ms | 50 MiB stream MiB/s (median; best) | CPU µs/request |',
      '|---|---|---|---|---|---|',
      ...rows.map((r) =>
        r.error
          ? `| ${r.name} | ${r.error.split('\n')[0]} | | | | |`
          : `| ${r.name} | ${f(r.warmP50)}${ratio(r.warmP50, base.warmP50)} | ${f(r.warmP99)}${ratio(r.warmP99, base.warmP99)} | ${f(r.conc100, 1)}${ratio(r.conc100, base.conc100)} | ${f(r.bulkMiBs, 1)}${ratio(r.bulkMiBs, base.bulkMiBs)}; ${f(r.bulkBest, 0)} | ${f(r.cpuUs, 0)}${ratio(r.cpuUs, base.cpuUs)} |`,
      ),
      '',
      '| first response on a new connection (median ms) | fresh | resumed | 0-RTT |',
      '|---|---|---|---|',
      `| originlink h2 (TCP+TLS 1.3) | ${f(pct(first.h2.fresh, 50))} | ${f(pct(first.h2.resumed, 50))} | – |`,
      `| originlink h3 | ${f(pct(first.h3.fresh, 50))} | ${f(pct(first.h3.resumed, 50))} | ${f(pct(first.h3.zeroRtt, 50))} |`,
      `| Bun h3 fetch (first request of the process) | ${bun && !bun.error ? f(bun.firstMs) : '–'} | – | – |`,
      '',
      ...(rows[3].error
        ? []
        : [
            `against Bun's client (issue 17 goals: warm p50 ≤ 1.2×, CPU/request ≤ 2×): own process ${x(rows[2].warmP50, rows[3].warmP50)} p50, ${x(rows[2].cpuUs, rows[3].cpuUs)} CPU; beside our h2 client ${x(rows[1].warmP50, rows[3].warmP50)} p50, ${x(rows[1].cpuUs, rows[3].cpuUs)} CPU`,
            '',
          ]),
      ...(rows[2].error || rows[4].error
        ? []
        : [
            `our h3 client against our h2 client, each in its own process (h3 h2 Bun h2 h3): CPU/request ${x(rows[2].cpuUs, rows[4].cpuUs)}, warm p50 ${x(rows[2].warmP50, rows[4].warmP50)}`,
            '',
          ]),
      ...(paired === null
        ? []
        : paired.error
          ? [`paired h3 ÷ h2: ${paired.error.split('\n')[0]}`, '']
          : [pairedLine(paired), '']),
      `resumed h3 ${first.flags.h3Resumed}/${o.first}, 0-RTT accepted ${first.flags.h3Early}/${o.first}, resumed h2 ${first.flags.h2Resumed}/${o.first}; run ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    ];
    console.log(lines.join('\n'));
    writeResult('h3', {
      options: o,
      summary: rows,
      samples: { h2, h3, h3Solo: mine, h2Solo: mineH2, bun, first, paired },
    });
  } finally {
    stop();
    clearTimeout(killer);
  }
}

/** bench/out/<name>-<ISO date>.json: `data` with the date and the machine's facts. */
function writeResult(name, data) {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
  const file = join(ROOT, 'bench', 'out', `${name}-${stamp}.json`);
  const machine = {
    cpus: os.cpus().map((c) => c.model),
    kernel: os.release(),
    node: process.version,
    platform: process.platform,
    loadavg: os.loadavg(),
  };
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), machine, ...data }, null, 1));
  console.log(`\nwrote ${file}`);
}

/** Two own-process runs of one client as one: their warm samples and batches together, the mean CPU per request. */
function mergeSolo(a, b) {
  if (!a || a.error) return a;
  if (!b || b.error) return a;
  return {
    firstMs: a.firstMs,
    warm: [...a.warm, ...b.warm],
    cpuUsPerReq: (a.cpuUsPerReq + b.cpuUsPerReq) / 2,
    conc: [...a.conc, ...b.conc],
    bulk: a.bulk.length ? a.bulk : b.bulk,
    runs: [a.cpuUsPerReq, b.cpuUsPerReq],
  };
}

function tmpdir() {
  return os.tmpdir();
}

if (process.argv[2] === '--serve') await serve();
else if (process.argv[2] === '--solo')
  await solo(Number(process.argv[3]), JSON.parse(process.argv[4]), process.argv[5] ?? 'h3');
else await main();
