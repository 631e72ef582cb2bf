/**
 * The resolver against a real DNS server (dnsmasq on a loopback port): A and
 * AAAA with TTLs, the cache and its clamps, records changed mid-test,
 * serve-stale while the server is gone (RFC 8767), the system fallback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Resolver } from '../../src/net/resolver.js';
import { type Dnsmasq, startDnsmasq } from '../helpers/dnsmasq.js';

let dns: Dnsmasq;
beforeAll(async () => {
  dns = await startDnsmasq({ 'multi.test': ['127.0.0.2', '127.0.0.3', '::1'], 'other.test': ['127.0.0.4'] }, 2);
});
afterAll(async () => {
  await dns?.close();
});

describe('Resolver (dnsmasq)', () => {
  it('answers A and AAAA with the TTL, AAAA first, and caches for the TTL', async () => {
    let now = 1_000_000;
    const r = new Resolver({ servers: [dns.server], now: () => now });
    const a = await r.resolve('multi.test');
    expect(a.source).toBe('dns');
    expect(a.addresses).toEqual([
      { address: '::1', family: 6 },
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.3', family: 4 },
    ]);
    expect(a.ttlMs).toBe(2000);
    const q = await dns.settledQueries('multi.test', 2);
    expect(q).toBe(2);
    now += 1500;
    await r.resolve('MULTI.test');
    expect(await dns.settledQueries('multi.test')).toBe(q); // cached, case-insensitive
    now += 600;
    await r.resolve('multi.test');
    expect(await dns.settledQueries('multi.test', q + 2)).toBe(q + 2); // expired: asked again
    expect(r.stats()).toMatchObject({ cacheHits: 1, entries: 1 });
  });

  it('clamps TTLs to [minTtlMs, maxTtlMs]', async () => {
    const lo = new Resolver({ servers: [dns.server], minTtlMs: 10_000 });
    expect((await lo.resolve('other.test')).ttlMs).toBe(10_000);
    const hi = new Resolver({ servers: [dns.server], minTtlMs: 0, maxTtlMs: 500 });
    expect((await hi.resolve('other.test')).ttlMs).toBe(500);
  });

  it('follows a record change after the TTL, and merges concurrent queries', async () => {
    let now = 5_000_000;
    const r = new Resolver({ servers: [dns.server], now: () => now });
    await dns.setRecords({ 'change.test': ['127.0.0.5'] });
    const before = await dns.settledQueries('change.test');
    const all = await Promise.all([r.resolve('change.test'), r.resolve('change.test'), r.resolve('change.test')]);
    expect(all.map((x) => x.addresses[0]?.address)).toEqual(['127.0.0.5', '127.0.0.5', '127.0.0.5']);
    expect((await dns.settledQueries('change.test', before + 2)) - before).toBe(2); // one A + one AAAA for three callers
    await dns.setRecords({
      'change.test': ['127.0.0.6'],
      'multi.test': ['127.0.0.2', '127.0.0.3', '::1'],
      'other.test': ['127.0.0.4'],
    });
    expect((await r.resolve('change.test')).addresses[0]?.address).toBe('127.0.0.5'); // within TTL
    now += 2001;
    expect((await r.resolve('change.test')).addresses.map((a) => a.address)).toEqual(['127.0.0.6']);
  });

  it('serves a stale answer while the server is down, for a bounded time (RFC 8767)', async () => {
    let now = 9_000_000;
    const r = new Resolver({
      servers: [dns.server],
      now: () => now,
      serveStaleMs: 10_000,
      staleRecheckMs: 1000,
      queryTimeoutMs: 300,
      queryTries: 1,
    });
    const fresh = await r.resolve('other.test');
    await dns.stop();
    try {
      now += 3000;
      const stale = await r.resolve('other.test');
      expect(stale.source).toBe('stale');
      expect(stale.addresses).toEqual(fresh.addresses);
      expect(stale.expiresAt).toBe(now + 1000); // rechecked after staleRecheckMs
      now += 500;
      expect((await r.resolve('other.test')).source).toBe('stale'); // cached stale, no query
      now += 9000; // past fresh expiry + serveStaleMs
      await expect(r.resolve('other.test')).rejects.toMatchObject({ code: 'OL_DNS_FAILED' });
      expect(r.stats().staleServed).toBe(1);
    } finally {
      await dns.restart();
    }
    expect((await r.resolve('other.test')).source).toBe('dns');
  });

  it('never serves stale over "no such name"; falls back to the system resolver (hosts, localhost)', async () => {
    let now = 20_000_000;
    const r = new Resolver({ servers: [dns.server], now: () => now });
    await dns.setRecords({ 'gone.test': ['127.0.0.7'] });
    await r.resolve('gone.test');
    await dns.setRecords({ 'multi.test': ['127.0.0.2', '127.0.0.3', '::1'], 'other.test': ['127.0.0.4'] });
    now += 3000;
    await expect(r.resolve('gone.test')).rejects.toMatchObject({
      code: 'OL_DNS_FAILED',
      details: { dnsCode: 'ENOTFOUND' },
    });
    const lh = await r.resolve('localhost');
    expect(lh.source).toBe('system');
    expect(lh.addresses.some((a) => a.address === '127.0.0.1' || a.address === '::1')).toBe(true);
    const before = await dns.settledQueries('localhost');
    expect(before).toBe(0); // RFC 6761 §6.3: never sent to the servers
    const noFallback = new Resolver({ servers: [dns.server], systemFallback: false });
    await expect(noFallback.resolve('nothing-here.test')).rejects.toMatchObject({ code: 'OL_DNS_FAILED' });
  });

  it('without servers uses getaddrinfo; IP literals need no query; a bad config is named', async () => {
    const r = new Resolver();
    expect((await r.resolve('localhost')).source).toBe('system');
    expect(await r.resolve('[::1]')).toMatchObject({ source: 'literal', addresses: [{ address: '::1', family: 6 }] });
    expect(() => new Resolver({ servers: ['not an address'] })).toThrow(/dns\.servers/);
    expect(() => new Resolver({ minTtlMs: 10, maxTtlMs: 5 })).toThrow(/dns\.minTtlMs/);
  });

  it('bounds the cache at maxEntries', async () => {
    const r = new Resolver({ servers: [dns.server], maxEntries: 2 });
    await r.resolve('multi.test');
    await r.resolve('other.test');
    await r.resolve('localhost');
    expect(r.stats().entries).toBe(2);
    expect(r.peek('multi.test')).toBeUndefined();
  });
});
