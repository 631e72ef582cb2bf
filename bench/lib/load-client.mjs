#!/usr/bin/env node
// Open-loop load for the `reuse` scenario, run in the lab's client namespace:
// `node load-client.mjs JSON` with { mode: 'agent' | 'http', rate, warmS,
// durationS, path, tag, lullS (quiet seconds between warm-up and the measured phase), and for
// 'agent': base, ca, proto, maxConnections, preconnectRatio; for 'http': target }.
// Requests start on a fixed schedule (rate per second) whether or not earlier
// ones finished. 'agent' drives the originlink Agent in this process; 'http'
// sends cleartext HTTP/1.1 (keep-alive) to a proxy on loopback. Latency is
// request start to last body byte. Prints one {"event":"result"}.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2]);
const print = (j) => process.stdout.write(`${JSON.stringify(j)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let send;
let agent = null;
let httpAgent = null;
let generatorRetries = 0;
if (o.mode === 'agent') {
  const { Agent } = await dist('index.js');
  agent = new Agent({
    protocol: o.proto,
    tls: { ca: readFileSync(o.ca) },
    pool: {
      ...(o.maxConnections ? { maxConnections: o.maxConnections } : {}),
      ...(o.preconnectRatio ? { preconnectRatio: o.preconnectRatio } : {}),
      maxPending: 100_000,
    },
  });
  send = async (url) => {
    const res = await agent.request({ url: `${o.base}${url}` });
    await res.bytes();
    return res.status;
  };
} else {
  httpAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
  const target = new URL(o.target);
  // A kept-alive socket the proxy closed just as a request went out fails with ECONNRESET;
  // resend a GET once in that case (node's documented pattern: req.reusedSocket).
  const once = (url) =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: target.hostname, port: target.port, path: url, agent: httpAgent }, (res) => {
        res
          .on('data', () => {})
          .once('end', () => resolve(res.statusCode))
          .once('error', reject);
      });
      req.once('error', (e) => {
        e.reused = req.reusedSocket;
        reject(e);
      });
      req.end();
    });
  send = (url) =>
    once(url).catch((e) => {
      if (!(e.reused && e.code === 'ECONNRESET')) throw e;
      generatorRetries++;
      return once(url);
    });
}

async function phase(tag, seconds) {
  const n = Math.round(o.rate * seconds);
  const samples = new Array(n);
  const pending = [];
  const t0 = performance.now();
  let late = 0;
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / o.rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    else if (wait < -5) late++;
    const s0 = performance.now();
    pending.push(
      send(`${o.path}${o.path.includes('?') ? '&' : '?'}tag=${tag}`).then(
        (status) => {
          samples[i] = { ms: performance.now() - s0, status };
        },
        (e) => {
          samples[i] = { ms: null, error: String(e?.code ?? e?.message ?? e) };
        },
      ),
    );
  }
  const sentS = (performance.now() - t0) / 1000;
  await Promise.race([Promise.all(pending), sleep(30_000)]);
  return {
    tag,
    requests: n,
    offeredRate: o.rate,
    sentS,
    lateStarts: late,
    samples: samples.map((s) => s ?? { ms: null, error: 'unfinished' }),
  };
}

const warm = await phase(`${o.tag}-warm`, o.warmS);
print({ event: 'progress', note: `${o.tag}: warm-up done` });
if (o.lullS > 0) await sleep(o.lullS * 1000); // a lull: the measured phase is a burst after it
const statsBefore = agent?.stats()[0] ?? null;
const openBefore = agent?.pools()[0]?.connections().length ?? null;
const main = await phase(o.tag, o.durationS);
const statsAfter = agent?.stats()[0] ?? null;
const pool = agent?.pools()[0];
print({
  event: 'result',
  tag: o.tag,
  warm: { requests: warm.requests, errors: warm.samples.filter((s) => s.ms === null).length },
  ...main,
  agentStats: statsAfter,
  agentStatsBefore: statsBefore,
  agentOpenConnections: pool ? pool.connections().length : null,
  agentOpenBeforeRun: openBefore,
  generatorRetries,
});
agent?.destroy();
httpAgent?.destroy();
process.exit(0);
