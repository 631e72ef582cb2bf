#!/usr/bin/env node
// Client half of the `egress` scenario, run in the lab's client namespace:
// `node egress-client.mjs JSON` with { ca, cases: [{ name, proxy, ports }], requests, durationMs, seed }.
// Every case is its own Agent with its own origins (`ports`, on the server's
// loopback, reached only through the proxies), all cases at once. Open loop:
// request i of a case leaves at i × durationMs / requests, to an origin drawn
// from a seeded generator (the same sequence in every case). Per request:
// the node, reused or not, the handshake of a new connection (tunnel + TLS,
// from the connection's facts), the time to the response head.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dist } from './dist.mjs';
import { rng } from './rng.mjs';

const { Agent } = await dist('index.js');
const o = JSON.parse(process.argv[2]);
const ca = readFileSync(o.ca);
const print = (j) => process.stdout.write(`${JSON.stringify(j)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function runCase(c) {
  const agent = new Agent({ tls: { ca }, proxy: c.proxy, protocol: 'h1', maxRetries: 2 });
  const next = rng(o.seed);
  const gap = o.durationMs / o.requests;
  const t0 = performance.now();
  const samples = [];
  const inflight = [];
  // http2 nodes: the most connections to the nodes at once (sampled every 250 ms).
  let peakNodeConnections = 0;
  const sampler = setInterval(() => {
    const n = agent.proxyStats().reduce((a, s) => a + (s.nodeConnections ?? 0), 0);
    peakNodeConnections = Math.max(peakNodeConnections, n);
  }, 250);
  for (let i = 0; i < o.requests; i++) {
    const due = t0 + i * gap;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const port = c.ports[Math.floor(next() * c.ports.length)];
    inflight.push(
      (async () => {
        const start = performance.now();
        try {
          const res = await agent.request({ origin: `https://127.0.0.1:${port}`, path: '/small' });
          const ms = performance.now() - start;
          await res.dump();
          const f = res.connection;
          samples.push({
            i,
            at: +(start - t0).toFixed(1),
            port,
            node: f.proxy?.node ?? null,
            reused: res.reused,
            ms: +ms.toFixed(2),
            handshakeMs: res.reused ? 0 : +(f.connectMs + f.tlsMs).toFixed(2),
            attempts: res.attempts ?? 1,
          });
        } catch (e) {
          samples.push({ i, at: +(start - t0).toFixed(1), port, error: e?.code ?? String(e) });
        }
      })(),
    );
    if (i % 100 === 99) print({ event: 'progress', note: `${c.name} ${i + 1}/${o.requests}` });
  }
  await Promise.all(inflight);
  clearInterval(sampler);
  const proxyStats = agent.proxyStats();
  await agent.close();
  samples.sort((a, b) => a.i - b.i);
  return { name: c.name, samples, proxyStats, peakNodeConnections };
}

const cases = await Promise.all(o.cases.map(runCase));
// A long line: exit only once it is written (a pipe is asynchronous).
process.stdout.write(`${JSON.stringify({ event: 'result', cases })}\n`, () => process.exit(0));
