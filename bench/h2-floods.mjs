#!/usr/bin/env node
// HTTP/2 floods against our server (dist/server/h2.js, the one
// behind the service's h2/h2c fronts): for each attack of RFC 9113 §10.5 and
// its known variants, the connection's fate (what the server sent before the
// socket closed) and the server's CPU time spent on it, read from the server
// process itself (process.cpuUsage, µs). The anchor in the same run: the
// server's CPU for 1000 ordinary requests on one connection (h2load).
//
// `npm run bench -- h2-floods` (loopback, a few seconds). Knobs: BENCH_FLOOD_N
// frames per flood (default 10000), BENCH_DIST (default dist).
// Needs: a built dist/ (`npx tsc -p .`), h2load (Debian nghttp2-client).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = resolve(ROOT, process.env.BENCH_DIST ?? 'dist');
const N = Number(process.env.BENCH_FLOOD_N ?? 10000);
const imp = (p) => import(pathToFileURL(join(DIST, p)).href);
const { CLIENT_PREFACE, H2FrameReader, encodeHeaders, encodeRstStream, encodeSettings, encodePing, dataFrameHeader } =
  await imp('codec/h2frame.js');
const { H2ErrorCode } = await imp('codec/errors.js');
const { HpackEncoder } = await imp('codec/hpack/encoder.js');
const CODE_NAME = Object.fromEntries(Object.entries(H2ErrorCode).map(([k, v]) => [v, k]));

// The server in its own process, so its CPU is its own; it answers "cpu" on stdin with its cpuUsage.
const serverSrc = `
import { startH2Server } from ${JSON.stringify(pathToFileURL(join(DIST, 'server/h2.js')).href)};
import { createInterface } from 'node:readline';
const s = await startH2Server({ handler: () => ({ status: 200, headers: [['content-type', 'text/plain']], body: 'ok\\n' }) });
console.log(JSON.stringify({ port: s.address.port }));
createInterface({ input: process.stdin }).on('line', () => { const u = process.cpuUsage(); console.log(JSON.stringify({ cpuUs: u.user + u.system })); });
`;
const server = spawn(process.execPath, ['--input-type=module', '-e', serverSrc], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = createInterface({ input: server.stdout });
const waiters = [];
lines.on('line', (l) => waiters.shift()?.(JSON.parse(l)));
const nextLine = () => new Promise((r) => waiters.push(r));
const cleanup = () => {
  try {
    server.kill('SIGTERM');
  } catch {
    /* gone */
  }
};
process.on('exit', cleanup);
const { port } = await nextLine();
const cpu = async () => {
  const p = nextLine();
  server.stdin.write('cpu\n');
  return (await p).cpuUs;
};

const enc = () => new HpackEncoder();
const get = (e) =>
  e.encode([
    [':method', 'GET'],
    [':scheme', 'http'],
    [':authority', 'x'],
    [':path', '/'],
  ]);
const post = (e) =>
  e.encode([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':authority', 'x'],
    [':path', '/'],
  ]);
const floods = {
  'rapid reset (HEADERS + RST_STREAM)': () => {
    const e = enc();
    const out = [];
    for (let i = 0, id = 1; i < N; i++, id += 2)
      out.push(...encodeHeaders(id, get(e), true, 16384), encodeRstStream(id, H2ErrorCode.CANCEL));
    return out;
  },
  'SETTINGS flood': () => Array.from({ length: N }, () => encodeSettings([])),
  'PING flood': () => Array.from({ length: N }, (_, i) => encodePing(Buffer.alloc(8, i & 0xff))),
  'empty DATA flood': () => [
    ...encodeHeaders(1, post(enc()), false, 16384),
    ...Array.from({ length: N }, () => dataFrameHeader(1, 0, false)),
  ],
  'CONTINUATION flood (1-byte fragments)': () => {
    const block = enc().encode([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':authority', 'x'],
      [':path', '/'],
      ['x-pad', 'p'.repeat(N)],
    ]);
    return encodeHeaders(1, block, true, 1);
  },
  'HPACK bomb (one 4 KiB field indexed, then referenced)': () => {
    const fields = [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':authority', 'x'],
      [':path', '/'],
      ...Array.from({ length: Math.min(N, 4000) }, () => ['x-bomb', 'b'.repeat(4000)]),
    ];
    return encodeHeaders(1, new HpackEncoder({ huffman: false }).encode(fields), true, 16384);
  },
  'stream limit (more open streams than MAX_CONCURRENT_STREAMS)': () => {
    const e = enc();
    const out = [];
    for (let i = 0, id = 1; i < Math.min(N, 1000); i++, id += 2) out.push(...encodeHeaders(id, post(e), false, 16384));
    return out;
  },
};

const attack = async (name, frames) => {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r, j) => {
    sock.once('connect', r);
    sock.once('error', j);
  });
  const reader = new H2FrameReader();
  reader.maxFrameSize = 16_777_215;
  const seen = { goaway: null, resets: 0, responses: 0, bytes: 0 };
  sock.on('data', (d) => {
    seen.bytes += d.length;
    let fr = [];
    try {
      fr = reader.push(d);
    } catch {
      /* what follows a GOAWAY does not matter */
    }
    for (const f of fr) {
      if (f.type === 'goaway' && !seen.goaway) seen.goaway = CODE_NAME[f.code] ?? f.code;
      if (f.type === 'rst-stream') seen.resets++;
      if (f.type === 'headers') seen.responses++;
    }
  });
  sock.on('error', () => {});
  const closed = new Promise((r) => sock.once('close', () => r(true)));
  const c0 = await cpu();
  const t0 = performance.now();
  sock.write(Buffer.concat([CLIENT_PREFACE, encodeSettings([]), ...frames]));
  const wasClosed = await Promise.race([closed, new Promise((r) => setTimeout(() => r(false), 3000))]);
  const ms = performance.now() - t0;
  sock.destroy();
  const cpuMs = ((await cpu()) - c0) / 1000;
  const fate = seen.goaway
    ? `GOAWAY ${seen.goaway}${wasClosed ? ', closed' : ', still open'}`
    : wasClosed
      ? 'closed without GOAWAY'
      : 'still open after 3 s';
  process.stderr.write(`done: ${name}\n`);
  return {
    flood: name,
    frames: frames.length,
    fate,
    resetsSent: seen.resets,
    responses: seen.responses,
    serverCpuMs: cpuMs,
    wallMs: ms,
  };
};

const rows = [];
// Anchor: ordinary requests on one connection.
{
  const c0 = await cpu();
  execFileSync('h2load', ['-n', '1000', '-c', '1', '-m', '100', `http://127.0.0.1:${port}/`], { stdio: 'pipe' });
  rows.push({
    flood: '(anchor) 1000 ordinary GETs, h2load -c1 -m100',
    frames: 1000,
    fate: 'served',
    resetsSent: 0,
    responses: 1000,
    serverCpuMs: ((await cpu()) - c0) / 1000,
    wallMs: NaN,
  });
}
for (const [name, build] of Object.entries(floods)) rows.push(await attack(name, build()));
// Still serving afterwards.
const after = execFileSync('h2load', ['-n', '100', '-c', '1', `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
const stillServing = /100 succeeded/.test(after);
cleanup();

const anchorCpu = rows[0].serverCpuMs;
console.log(
  `HTTP/2 floods against our server, ${N} frames per flood (fewer where noted), server in its own process; after all floods: ${stillServing ? '100 of 100 requests served' : 'NOT serving'}\n`,
);
console.log(
  '| flood | frames sent | fate | RST_STREAM from server | responses | server CPU ms | × anchor (1000 GETs) |',
);
console.log('|---|---:|---|---:|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.flood} | ${r.frames} | ${r.fate} | ${r.resetsSent} | ${r.responses} | ${r.serverCpuMs.toFixed(1)} | ${(r.serverCpuMs / anchorCpu).toFixed(2)} |`,
  );
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
const out = join(ROOT, 'bench', 'out', `h2-floods-${stamp}.json`);
writeFileSync(
  out,
  JSON.stringify(
    { date: new Date().toISOString(), node: process.version, framesPerFlood: N, stillServing, rows },
    null,
    2,
  ),
);
console.log(`\nwrote ${out}`);
process.exit(stillServing ? 0 : 1);
