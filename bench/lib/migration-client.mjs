#!/usr/bin/env node
// Client half of the `migration` scenario, run in the lab's client namespace:
// `node migration-client.mjs JSON` with { base, ca, bytes, atFraction, mode,
// capS }. Downloads `bytes` over h3; when `atFraction` has arrived the path
// changes (RFC 9000 §9):
//   active:   the client calls conn.migrate() (new local port); once it has
//             resolved (the server moved, the old path went quiet) the old
//             4-tuple is silently dropped (nft, ingress on both sides);
//   failover: the old 4-tuple is silently dropped and nothing else is done:
//             the connection must notice the dead path and migrate by itself.
// Reports the longest gap between body chunks after the change (the stall)
// and the bytes missing at the end (must be 0).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2]);
const print = (j) => process.stdout.write(`${JSON.stringify(j)}\n`);
const { Agent } = await dist('index.js');
const { H3PooledConnection } = await dist('connect/h3.js');
if (typeof H3PooledConnection?.prototype?.migrate !== 'function') {
  print({
    event: 'result',
    available: false,
    reason: 'migration API not available: H3PooledConnection has no migrate() in this build',
  });
  process.exit(0);
}

/**
 * The old path goes silent: datagrams to the old local port are dropped on
 * this namespace's ingress, and datagrams from it on the server namespace's
 * ingress. Both are ingress drops, so neither sender gets an error (an
 * OUTPUT-hook drop would fail sendmsg with EPERM instead of losing packets).
 */
function blockPort(port) {
  const nft = (ns, rule) =>
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
      input: `table inet ol_migration {\n chain in { type filter hook input priority 0; ${rule} counter drop; }\n}\n`,
    });
  nft(o.clientNs, `udp dport ${port}`);
  nft(o.serverNs, `udp sport ${port}`);
}

const agent = new Agent({
  protocol: 'h3',
  tls: { ca: readFileSync(o.ca) },
  maxRetries: 0,
  pool: { maxConnections: 1, pingIntervalMs: 0 },
});
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
let migratedAt = null; // first time the connection reports a migration after the change
const migrations0 = conn.quicStats?.().migrations ?? 0;
const poll = setInterval(() => {
  if (migrateAt !== null && migratedAt === null && (conn.quicStats?.().migrations ?? 0) > migrations0)
    migratedAt = performance.now() - t0;
}, 2);
try {
  for await (const chunk of res.body) {
    const now = performance.now();
    if (now - last > 20) gaps.push([now - t0, now - last]);
    last = now;
    got += chunk.length;
    if (migration === null && got >= o.bytes * o.atFraction) {
      migrateAt = now - t0;
      const oldPort = conn.facts.localPort;
      const step =
        o.mode === 'active'
          ? Promise.resolve()
              .then(() => conn.migrate())
              .then(() => {
                migrateDoneAt = performance.now() - t0;
              })
          : Promise.resolve();
      migration = step
        .then(() => {
          if (o.blockOld !== false) blockPort(oldPort);
        })
        .catch((e) => {
          migrateError = String(e?.code ?? e?.message ?? e);
        });
    }
  }
} catch (e) {
  error = cap.signal.aborted ? 'capped' : String(e?.code ?? e?.message ?? e);
}
const dropCounters = () => {
  const read = (ns) => {
    try {
      return (
        /packets (\d+)/.exec(
          execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'ol_migration'], {
            encoding: 'utf8',
          }),
        )?.[1] ?? null
      );
    } catch {
      return null;
    }
  };
  return { toOldPortDropped: Number(read(o.clientNs)), fromOldPortDropped: Number(read(o.serverNs)) };
};
const endAt = performance.now();
if (got !== o.bytes && endAt - last > 20) gaps.push([endAt - t0, endAt - last]); // the body stopped: the stall lasted until it gave up
await migration;
clearTimeout(capTimer);
clearInterval(poll);
const elapsedMs = performance.now() - t0;
const after = Array.isArray(gaps) ? gaps.filter(([at]) => migrateAt !== null && at >= migrateAt) : [];
print({
  event: 'result',
  available: true,
  bytes: o.bytes,
  received: got,
  lostBytes: o.bytes - got,
  finished: got === o.bytes && error === null,
  error,
  elapsedMs,
  migrateAtMs: migrateAt,
  migrateDoneAtMs: migrateDoneAt,
  migratedAtMs: migratedAt,
  migrateError,
  oldPathDrops: o.blockOld !== false ? dropCounters() : null,
  quic: conn.quicStats?.() ?? null,
  mode: o.mode,
  migrations: conn.quicStats?.().migrations ?? null,
  stallMs: after.length ? Math.max(...after.map(([, g]) => g)) : 0,
  gaps,
  // The same statistic over the second before the change: what a "gap" is without any migration.
  gapBeforeMs: Math.max(
    0,
    ...gaps.filter(([at]) => migrateAt !== null && at < migrateAt && at >= migrateAt - 1000).map(([, g]) => g),
  ),
  before,
  after: { local: `${conn.facts.localAddress}:${conn.facts.localPort}` },
  sameConnection: agent.stats()[0]?.connectionsOpened === 1,
});
agent.destroy();
process.exit(0);
