#!/usr/bin/env node
// Client half of the `handshake` scenario, run in the lab's client namespace:
// `node handshake-client.mjs JSON` with { url, ca, proto: 'h1'|'h2'|'h3', samples }.
// For each sample it walks every connection case of the protocol with fresh
// Agents (fresh session stores) and prints one {"event":"result", samples}.
// Time to first byte = from the request call to the response head, including
// any connection setup, measured here with performance.now(); totalMs: to the body's end.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dist } from './dist.mjs';

const { Agent } = await dist('index.js');
const o = JSON.parse(process.argv[2]);
const ca = readFileSync(o.ca);
const url = new URL(o.url);
const out = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const print = (j) => process.stdout.write(`${JSON.stringify(j)}\n`);

/** Forget TFO cookies (and cached metrics) so the next connect is cold. */
const flushMetrics = () => execFileSync('ip', ['tcp_metrics', 'flush'], { stdio: 'ignore' });

const newAgent = (tfo) =>
  new Agent({ protocol: o.proto, tls: { ca }, tfo, maxRetries: 0, pool: { maxConnections: 1, pingIntervalMs: 0 } });

/** early: undefined = Agent.request (its default policy), true/false = pool.request with allowEarlyData set. */
async function timed(agent, kase, sample, early) {
  const t0 = performance.now();
  let res;
  let facts;
  let reused;
  let earlyData;
  if (early !== undefined) {
    const r = await agent.pool(url, 'h3').request({
      method: 'GET',
      path: `${url.pathname}${url.search}`,
      authority: url.host,
      scheme: 'https',
      headers: [],
      body: null,
      allowEarlyData: early,
    });
    res = r.res;
    facts = r.conn.facts;
    reused = r.reused;
    earlyData = r.res.earlyData ?? false;
  } else {
    res = await agent.request({ url });
    facts = res.connection;
    reused = res.reused;
    earlyData = res.earlyData;
  }
  const ms = performance.now() - t0;
  for await (const _ of res.body) {
    /* drain */
  }
  const totalMs = performance.now() - t0;
  out.push({
    proto: o.proto,
    case: kase,
    sample,
    ms,
    totalMs,
    reused,
    earlyData,
    tfo: facts.tfo,
    resumed: facts.resumed,
    connectMs: facts.connectMs,
    tlsMs: facts.tlsMs,
    tlsVersion: facts.tlsVersion,
  });
}

async function dropConnections(agent) {
  for (const p of agent.pools()) for (const c of p.connections()) c.destroy();
  await sleep(30);
}

for (let s = 0; s < o.samples; s++) {
  if (o.proto === 'h3') {
    const a = newAgent(false);
    await timed(a, 'fresh', s);
    await sleep(20);
    await timed(a, 'warm', s);
    await dropConnections(a);
    await timed(a, 'resumed', s, false); // resumed, request held until the handshake completes
    await dropConnections(a);
    await timed(a, '0-rtt', s, true);
    await a.close();
  } else {
    flushMetrics();
    const a = newAgent(false);
    await timed(a, 'fresh', s);
    await sleep(20);
    await timed(a, 'warm', s);
    await dropConnections(a);
    await timed(a, 'resumed', s);
    await a.close();
    flushMetrics();
    const b = newAgent(true);
    await timed(b, 'tfo-cold', s); // no cookie yet: the SYN only asks for one
    await b.close();
    const c = newAgent(true);
    await timed(c, 'tfo', s);
    await dropConnections(c);
    await timed(c, 'tfo-resumed', s);
    await c.close();
  }
  print({ event: 'progress', note: `${o.proto} sample ${s + 1}/${o.samples}` });
}
print({ event: 'result', samples: out });
process.exit(0);
