#!/usr/bin/env node
// Client half of the `migration` scenario, run in the lab's client namespace:
// `node migration-client.mjs JSON` with { base, ca, bytes, atFraction, newAddr,
// dropOld, capS }. Downloads `bytes` over h3; when `atFraction` has arrived it
// moves the connection to a socket on `newAddr` (connection migration,
// RFC 9000 §9) and, with dropOld, deletes the old address so the old path is
// gone. Reports the longest gap between body chunks around the change (the
// stall) and the bytes missing at the end (must be 0).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2]);
const print = (j) => process.stdout.write(`${JSON.stringify(j)}\n`);
const { Agent } = await dist('index.js');
const { H3PooledConnection } = await dist('transport/h3.js');
if (typeof H3PooledConnection?.prototype?.migrate !== 'function') {
  print({ event: 'result', available: false, reason: 'migration API not available: H3PooledConnection has no migrate() in this build' });
  process.exit(0);
}

const agent = new Agent({ protocol: 'h3', tls: { ca: readFileSync(o.ca) }, maxRetries: 0, pool: { maxConnections: 1, pingIntervalMs: 0 } });
const warm = await agent.request({ url: `${o.base}/small?tag=warm` });
await warm.bytes();
const conn = agent.pools()[0].connections()[0];
const before = { local: `${conn.facts.localAddress}:${conn.facts.localPort}` };
const cap = new AbortController();
const capTimer = setTimeout(() => cap.abort(), o.capS * 1000);
const t0 = performance.now();
const res = await agent.request({ url: `${o.base}/bytes?n=${o.bytes}&tag=migration`, signal: cap.signal });
let got = 0;
let last = performance.now();
const gaps = []; // [atMs, gapMs] of every gap > 20 ms
let migrateAt = null;
let migrateDoneAt = null;
let migrateError = null;
let migration = null;
let error = null;
try {
  for await (const chunk of res.body) {
    const now = performance.now();
    if (now - last > 20) gaps.push([now - t0, now - last]);
    last = now;
    got += chunk.length;
    if (migration === null && got >= o.bytes * o.atFraction) {
      migrateAt = now - t0;
      migration = Promise.resolve()
        .then(() => conn.migrate({ localAddress: o.newAddr }))
        .then(() => { migrateDoneAt = performance.now() - t0; })
        .catch((e) => { migrateError = String(e?.code ?? e?.message ?? e); });
      if (o.dropOld) migration = migration.then(() => execFileSync('ip', ['addr', 'del', `${o.oldAddr}/24`, 'dev', o.dev]));
    }
  }
} catch (e) {
  error = cap.signal.aborted ? 'capped' : String(e?.code ?? e?.message ?? e);
}
await migration;
clearTimeout(capTimer);
const elapsedMs = performance.now() - t0;
const after = Array.isArray(gaps) ? gaps.filter(([at]) => migrateAt !== null && at >= migrateAt) : [];
print({
  event: 'result', available: true, bytes: o.bytes, received: got, lostBytes: o.bytes - got, finished: got === o.bytes && error === null, error,
  elapsedMs, migrateAtMs: migrateAt, migrateDoneAtMs: migrateDoneAt, migrateError,
  stallMs: after.length ? Math.max(...after.map(([, g]) => g)) : 0, gaps,
  before, after: { local: `${conn.facts.localAddress}:${conn.facts.localPort}` }, sameConnection: agent.stats()[0]?.connectionsOpened === 1,
});
agent.destroy();
process.exit(0);
