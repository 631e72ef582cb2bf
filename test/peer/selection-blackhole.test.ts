/**
 * A known-h3 origin whose UDP is dropped: Caddy in one network namespace,
 * a node client (running src/ through a transpile-on-load hook) in the other,
 * an nft rule in the client namespace dropping UDP to the origin. The request
 * still succeeds over TCP within the race delay plus one TCP handshake, h3
 * is marked broken, the mark expires (short configured backoff), h3 is tried
 * again (and fails again: backoff doubles), and once UDP flows again h3
 * comes back and the mark is reset. Needs root, `nftables`, `caddy`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.js';
import { makeCerts } from '../helpers/certs.js';
import { startCaddy, type Caddy } from '../helpers/caddy.js';
import { writeTsHooks } from '../helpers/ts-child.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PORT = 8443;

const CLIENT = `
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
const { Agent, MemorySessionStore } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/index.ts')).href)});
const { MemoryOriginCache } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/store/origin-cache.ts')).href)});
const a = JSON.parse(process.env.SEL_ARGS);
const ca = readFileSync(a.ca);
const lookup = async (h) => { if (h === 'a.test') return [a.serverIp]; throw new Error('unknown ' + h); };
const url = 'https://a.test:' + a.port + '/index.html';
const cache = new MemoryOriginCache();
const sessionStore = new MemorySessionStore();
const selection = { quicTimeoutMs: 800, brokenBackoffMs: 1500, brokenBackoffMaxMs: 60000 };
const mk = () => new Agent({ tls: { ca }, lookup, originCache: cache, sessionStore, selection });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = {};
const nft = (...args) => execFileSync('nft', args, { stdio: 'pipe' });

// 1. Learn h3 through Alt-Svc with UDP open.
let agent = mk();
const protos = [];
// Bounded by count and time (10 s): on a loaded machine the background QUIC upgrade can take seconds.
for (let i = 0, end = Date.now() + 10_000; i < 400 && Date.now() < end && protos.at(-1) !== 'h3'; i++) { const r = await agent.request({ url }); await r.dump(); protos.push(r.protocol); await sleep(25); }
out.learn = { protos: [...new Set(protos)], last: protos.at(-1), facts: agent.origin(url).facts };
await agent.close();

// 2. Drop UDP to the origin; a fresh agent (same caches: h3 known, a QUIC ticket stored) must fall back to TCP.
nft('add', 'table', 'inet', 'olsel');
nft('add', 'chain', 'inet', 'olsel', 'out', '{ type filter hook output priority 0; }');
nft('add', 'rule', 'inet', 'olsel', 'out', 'ip', 'daddr', a.serverIp, 'udp', 'dport', String(a.port), 'drop');
agent = mk();
const before = agent.origin(url);
const t0 = performance.now();
const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => agent.request({ url: url + '?i=' + i })));
const elapsed = performance.now() - t0;
const texts = await Promise.all(rs.map((r) => r.text()));
out.fallback = {
  choiceBefore: before.choice, raceDelayMs: agent.selector.state(before.origin).raceDelay(null),
  elapsedMs: elapsed, protocols: [...new Set(rs.map((r) => r.protocol))], ok: texts.filter((t) => t === 'hello from caddy\\n').length,
  connectMs: rs[0].connection.connectMs, tlsMs: rs[0].connection.tlsMs, attempts: [...new Set(rs.map((r) => r.attempts))],
};
await sleep(1300); // the losing QUIC attempt runs to its 800 ms deadline
let now = Date.now();
let f = agent.origin(url);
out.broken = { brokenCount: f.facts.brokenCount, brokenForMs: f.facts.brokenUntil - now, choice: f.choice, counters: { ...f.counters } };

// 3. The mark expires; the next response's Alt-Svc makes the agent try h3 again (fails again: backoff doubles).
await sleep(Math.max(0, f.facts.brokenUntil - Date.now()) + 100);
const afterExpiry = agent.origin(url).choice;
const r3 = await agent.request({ url }); await r3.dump();
await sleep(1200);
now = Date.now();
f = agent.origin(url);
out.retry = { choiceAfterExpiry: afterExpiry, protocol: r3.protocol, brokenCount: f.facts.brokenCount, brokenForMs: f.facts.brokenUntil - now, quicAttempts: f.counters.quicAttempts };

// 4. UDP flows again; after the (doubled) mark expires, h3 comes back and the mark is reset.
nft('delete', 'table', 'inet', 'olsel');
await sleep(Math.max(0, f.facts.brokenUntil - Date.now()) + 100);
const protos4 = [];
for (let i = 0, end = Date.now() + 10_000; i < 400 && Date.now() < end && protos4.at(-1) !== 'h3'; i++) { const r = await agent.request({ url }); await r.dump(); protos4.push(r.protocol); await sleep(25); }
f = agent.origin(url);
out.recovered = { last: protos4.at(-1), brokenCount: f.facts.brokenCount, brokenUntil: f.facts.brokenUntil };
await agent.close();
console.log(JSON.stringify(out));
process.exit(0);
`;

describe('blackholed QUIC path', () => {
  let pair: NetnsPair;
  let caddy: Caddy;
  let dir: string;
  const certs = makeCerts();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ol-selbh-'));
    writeTsHooks(dir);
    writeFileSync(join(dir, 'client.mjs'), CLIENT);
    pair = createNetnsPair();
    caddy = await startCaddy({
      port: PORT,
      bind: pair.serverIp,
      certFile: certs.certPath,
      keyFile: certs.keyPath,
      spawn: (argv, opts) => pair.spawn(pair.server, argv, opts),
    });
  }, 30_000);

  afterAll(async () => {
    await caddy?.stop();
    pair?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('falls back to TCP within the race delay, marks h3 broken, retries after the backoff, recovers', async () => {
    const child = pair.spawn(
      pair.client,
      [process.execPath, '--import', join(dir, 'register.mjs'), join(dir, 'client.mjs')],
      {
        env: { ...process.env, SEL_ARGS: JSON.stringify({ ca: certs.caPath, serverIp: pair.serverIp, port: PORT }) },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        r(null);
      }, 40_000);
      child.once('exit', (c) => {
        clearTimeout(t);
        r(c);
      });
    });
    expect(code, stderr).toBe(0);
    const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    console.log(JSON.stringify(out, null, 1));
    expect(out.learn.last).toBe('h3');
    expect(out.learn.facts.h3.port).toBe(PORT);
    // 2: known h3 → a race; TCP wins within the race delay plus one TCP+TLS handshake; nothing lost.
    expect(out.fallback.choiceBefore.transport).toBe('quic');
    expect(out.fallback.protocols).toEqual(['h2']);
    expect(out.fallback.ok).toBe(10);
    expect(out.fallback.elapsedMs).toBeLessThan(
      out.fallback.raceDelayMs + out.fallback.connectMs + out.fallback.tlsMs + 150,
    );
    expect(out.broken.brokenCount).toBe(1);
    expect(out.broken.brokenForMs).toBeGreaterThan(0);
    expect(out.broken.brokenForMs).toBeLessThanOrEqual(1500);
    expect(out.broken.choice.transport).toBe('tcp');
    // The ticket from step 1 made it an early start: the GETs left as 0-RTT into the void, TCP took over
    // after the delay and each GET was sent once more there (idempotent: EARLY_DATA_ABANDONED is replayed).
    expect(out.broken.counters).toMatchObject({ races: 1, quicFailures: 1, tcpWins: 1, earlyStarts: 1, fallbacks: 1 });
    expect(out.fallback.attempts).toEqual([2]);
    // 3: after expiry h3 is tried again; still dropped → backoff doubles.
    expect(out.retry.choiceAfterExpiry.transport).toBe('quic');
    expect(out.retry.quicAttempts).toBe(2);
    expect(out.retry.brokenCount).toBe(2);
    expect(out.retry.brokenForMs).toBeGreaterThan(1500);
    expect(out.retry.brokenForMs).toBeLessThanOrEqual(3000);
    // 4: UDP back → h3 again, mark reset.
    expect(out.recovered).toMatchObject({ last: 'h3', brokenCount: 0, brokenUntil: 0 });
  }, 50_000);
});
