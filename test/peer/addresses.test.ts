/**
 * Every address of an origin, end to end: a name in a real DNS server
 * (dnsmasq on a loopback port) with three addresses, each with its own
 * HTTPS listener; connections spread over them, a dead address is skipped
 * (Happy Eyeballs moves on at once on a refusal, RFC 8305 §5) and marked
 * down, a record change sends new connections to the new address while the
 * old ones live on until their idle timeout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { type Dnsmasq, startDnsmasq } from '../helpers/dnsmasq.js';
import { freePort } from '../helpers/ports.js';
import { runCli, writeTsHooks } from '../helpers/ts-child.js';

const NAME = 'a.test'; // in the test leaf's SANs
const servers = new Map<string, https.Server>();
let port = 0;
let dns: Dnsmasq;
const certs = makeCerts();

function listen(host: string): Promise<void> {
  const s = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'https://x').searchParams.get('delay') ?? 0);
    setTimeout(() => res.end((req.socket as net.Socket).localAddress), delay);
  });
  s.keepAliveTimeout = 60_000; // no short Keep-Alive hint: the pool's own idle rules stay out of the way
  servers.set(host, s);
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, host, () => resolve());
  });
}

function close(host: string): Promise<void> {
  const s = servers.get(host);
  servers.delete(host);
  if (!s) return Promise.resolve();
  s.closeAllConnections();
  return new Promise((r) => s.close(() => r()));
}

beforeAll(async () => {
  port = await freePort('127.0.0.2');
  for (const h of ['127.0.0.2', '127.0.0.3', '::1', '127.0.0.4']) await listen(h);
  dns = await startDnsmasq({ [NAME]: ['127.0.0.2', '127.0.0.3', '::1'] }, 1);
});
afterAll(async () => {
  for (const h of [...servers.keys()]) await close(h);
  await dns?.close();
});

const agentFor = (pool: { maxAgeMs?: number; maxAgeJitter?: number; pingIntervalMs?: number } = {}): Agent =>
  new Agent({
    protocol: 'h1',
    tls: { ca: certs.ca },
    dns: { servers: [dns.server], addressDownBaseMs: 5000 },
    pool: { maxConnecting: 6, idleTimeoutMs: 30_000, ...pool },
  });

async function burst(agent: Agent, n: number, delay: number): Promise<string[]> {
  const rs = await Promise.all(
    Array.from({ length: n }, () => agent.request({ url: `https://${NAME}:${port}/?delay=${delay}` })),
  );
  return Promise.all(rs.map((r) => r.text()));
}

describe('every address of an origin (dnsmasq + three listeners)', () => {
  it('spreads new connections over the addresses, fewest first, families in the facts', async () => {
    const agent = agentFor();
    try {
      const served = await burst(agent, 6, 150);
      const conns = agent.pool(`https://${NAME}:${port}`).connections();
      expect(conns).toHaveLength(6);
      const per = new Map<string, number>();
      for (const c of conns) per.set(c.facts.remoteAddress, (per.get(c.facts.remoteAddress) ?? 0) + 1);
      expect(Object.fromEntries(per)).toEqual({ '127.0.0.2': 2, '127.0.0.3': 2, '::1': 2 });
      expect(served.sort()).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3', '::1', '::1']);
      for (const c of conns) {
        expect(c.facts.family).toBe(c.facts.remoteAddress.includes(':') ? 6 : 4);
        expect(c.facts.attempts).toBe(1);
      }
      expect(agent.addresses.report(NAME, port).map((a) => a.connections)).toEqual([2, 2, 2]);
    } finally {
      await agent.close();
    }
  });

  it('a refused address: the next one is tried at once, the dead one marked down and skipped', async () => {
    const agent = agentFor();
    await close('::1'); // AAAA is first in the order: every first attempt meets the dead address
    try {
      const t0 = performance.now();
      const r = await agent.request({ url: `https://${NAME}:${port}/` });
      const ms = performance.now() - t0;
      expect(await r.text()).toMatch(/^127\.0\.0\.[23]$/);
      expect(r.connection.attempts).toBe(2);
      expect(ms).toBeLessThan(250); // a refusal does not wait for the attempt delay
      const down = agent.addresses.report(NAME, port).find((a) => a.address === '::1');
      expect(down?.downForMs).toBeGreaterThan(3000);
      // Now skipped: the next connections need one attempt each.
      const more = await burst(agent, 4, 100);
      expect(more.every((a) => a.startsWith('127.0.0.'))).toBe(true);
      const conns = agent.pool(`https://${NAME}:${port}`).connections();
      expect(conns.filter((c) => c.facts.attempts === 1).length).toBeGreaterThanOrEqual(3);
    } finally {
      await agent.close();
      await listen('::1');
    }
  });

  it('a record change: new connections follow DNS, old ones are not drained but retire at max age', async () => {
    const agent = agentFor({ maxAgeMs: 4000, maxAgeJitter: 0, pingIntervalMs: 500 });
    try {
      await burst(agent, 2, 100);
      const pool = agent.pool(`https://${NAME}:${port}`);
      const old = pool.connections();
      expect(new Set(old.map((c) => c.facts.remoteAddress)).size).toBe(2); // spread
      const oldAddr = old[1]?.facts.remoteAddress as string;
      await dns.setRecords({ [NAME]: ['127.0.0.4'] });
      await new Promise((r) => setTimeout(r, 1100)); // TTL 1 s
      // A burst larger than the idle connections: the new ones go to the new address only.
      const served = await burst(agent, 4, 150);
      const fresh = pool.connections().filter((c) => !old.includes(c));
      expect(fresh.length).toBeGreaterThanOrEqual(2);
      expect(fresh.every((c) => c.facts.remoteAddress === '127.0.0.4')).toBe(true);
      expect(served.filter((a) => a === '127.0.0.4').length).toBe(fresh.length);
      // No mass drain: the old connections are still open right after the change.
      expect(old.map((c) => c.state)).toEqual(['ready', 'ready']);
      const rep = agent.addresses.report(NAME, port);
      expect(rep.find((a) => a.address === oldAddr)).toMatchObject({ current: false, connections: 1 });
      // They retire at their maximum age (4 s), as any connection does.
      const deadline = Date.now() + 6000;
      while (old.some((c) => c.state !== 'closed') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(old.every((c) => c.state === 'closed')).toBe(true);
    } finally {
      await agent.close();
      await dns.setRecords({ [NAME]: ['127.0.0.2', '127.0.0.3', '::1'] });
    }
  });

  it('CLI: fetch --dns-server --json carries remoteAddress, family and the connection attempts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'addr-cli-'));
    writeTsHooks(dir);
    try {
      const r = await runCli(dir, [
        'fetch',
        `https://${NAME}:${port}/`,
        '--dns-server',
        dns.server,
        '--cacert',
        certs.caPath,
        '--protocol',
        'h1',
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(['127.0.0.2', '127.0.0.3', '::1']).toContain(j.remoteAddress);
      expect(j).toMatchObject({
        status: 200,
        family: j.remoteAddress === '::1' ? 6 : 4,
        connectAttempts: 1,
        proxy: null,
      });
      expect(typeof j.tfo).toBe('boolean');
      const v = await runCli(dir, [
        'fetch',
        `https://${NAME}:${port}/`,
        '--dns-server',
        dns.server,
        '--cacert',
        certs.caPath,
        '-v',
        '-o',
        '/dev/null',
      ]);
      expect(v.stderr).toMatch(/IPv[46], 1 connection attempt\(s\) \(Happy Eyeballs\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
