#!/usr/bin/env node
// QPACK dynamic table: what it saves and what it costs on the wire (issue 17). Our h3 client and our h3
// server on loopback, one connection per setting, BENCH_REQUESTS warm sequential GETs (default 1000,
// after 100 unmeasured) with a browser-like request head (user-agent, accept, accept-language, a session
// cookie-sized token, a traceparent that changes per request) and a response head with a few fixed fields.
// Settings, both ends alike: capacity 0 (static table only), 4096 with the decoder's acknowledgments sent
// at once (ackDelayMs 0), and the default (4096, acknowledgments batched over 25 ms). Per request: datagrams and bytes each way (quiche's counters), and latency p50.
// Prints a Markdown table and writes bench/out/qpack-DATE.json. Needs a built dist/.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ResultWriter, ROOT } from '../lib/results.mjs';

const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const { startH3Server } = await dist('server/h3.js');
const { connectH3 } = await dist('connect/h3.js');
const CERTS = join(ROOT, 'config', 'demo-certs');
const N = Number(process.env.BENCH_REQUESTS ?? 1000);
const WARMUP = 100;

const SETTINGS = [
  { name: 'no table', qpack: { maxTableCapacity: 0 } },
  { name: 'table 4096, acks at once', qpack: { maxTableCapacity: 4096, ackDelayMs: 0 } },
  { name: 'table 4096, acks batched 25 ms (default)', qpack: {} },
];

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function measure(qpack) {
  const server = await startH3Server({
    host: '127.0.0.1',
    cert: readFileSync(join(CERTS, 'leaf.pem')),
    key: readFileSync(join(CERTS, 'leaf.key')),
    qpack,
    handler: () => ({
      status: 200,
      headers: [
        ['content-type', 'application/json'],
        ['cache-control', 'private, max-age=0'],
        ['server', 'originlink-bench'],
        ['x-request-cost', 'low'],
      ],
      body: '{"ok":true}',
    }),
  });
  const c = await connectH3({
    host: '127.0.0.1',
    port: server.address.port,
    servername: 'localhost',
    ca: join(CERTS, 'ca.pem'),
    qpack,
  });
  const head = (i) => [
    [
      'user-agent',
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0 Safari/537.36',
    ],
    ['accept', 'application/json, text/plain, */*'],
    ['accept-language', 'en-GB,en;q=0.9,de;q=0.8'],
    ['x-session', 'sess-7f3a9c2e4b1d8a6f0e5c3b2a1d9e8f7a'],
    ['traceparent', `00-${i.toString(16).padStart(32, '0')}-${(i * 7).toString(16).padStart(16, '0')}-01`],
  ];
  const one = async (i) => {
    const r = await c.request({
      method: 'GET',
      path: `/api/items/${i % 50}`,
      authority: 'localhost',
      scheme: 'https',
      headers: head(i),
      body: null,
    });
    for await (const _ of r.body) {
      /* drain */
    }
  };
  for (let i = 0; i < WARMUP; i++) await one(i);
  await new Promise((r) => setTimeout(r, 100)); // batched acknowledgments of the warm-up leave
  const c0 = c.quicStats();
  const s0 = server.stats();
  const lat = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await one(WARMUP + i);
    lat.push(performance.now() - t);
  }
  await new Promise((r) => setTimeout(r, 100));
  const c1 = c.quicStats();
  const s1 = server.stats();
  const q = c.h3Stats().qpack;
  const inserts = server.qpackInserts();
  c.destroy();
  await server.close(50);
  return {
    clientDatagramsPerReq: (c1.packetsSent - c0.packetsSent) / N,
    serverDatagramsPerReq: (s1.packetsOut - s0.packetsOut) / N,
    clientBytesPerReq: (c1.bytesSent - c0.bytesSent) / N,
    serverBytesPerReq: (s1.bytesOut - s0.bytesOut) / N,
    p50Ms: pct(lat, 50),
    p99Ms: pct(lat, 99),
    inserts: { clientEncoder: q.encoderInsertCount, serverEncoder: inserts.encoder },
  };
}

const rows = [];
for (const s of SETTINGS) rows.push({ name: s.name, qpack: s.qpack, ...(await measure(s.qpack)) });
const f = (x, d = 2) => x.toFixed(d);
console.log(`\nQPACK dynamic table, our h3 client ↔ our h3 server on loopback, ${N} warm sequential GETs each\n`);
console.log(
  '| setting | client datagrams/req | server datagrams/req | client bytes/req | server bytes/req | p50 ms | p99 ms | inserts (client enc / server enc) |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.name} | ${f(r.clientDatagramsPerReq)} | ${f(r.serverDatagramsPerReq)} | ${f(r.clientBytesPerReq, 0)} | ${f(r.serverBytesPerReq, 0)} | ${f(r.p50Ms, 3)} | ${f(r.p99Ms, 3)} | ${r.inserts.clientEncoder} / ${r.inserts.serverEncoder} |`,
  );
const w = new ResultWriter('qpack');
console.log(`\nwrote ${w.write({ requests: N, rows })}`);
