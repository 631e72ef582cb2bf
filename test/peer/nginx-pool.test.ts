import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, OriginlinkError } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

const certs = makeCerts();

/** Established TCP connections to a local port, counted at the origin side by the kernel. */
function establishedTo(port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).length;
}

describe('pool limits and lifecycle against nginx', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    // /delay answers after 20 ms, so 64 concurrent requests really overlap.
    nginx = await Nginx.start({ httpExtra: 'limit_rate_after 0;', serverExtra: 'location = /delay { echo_sleep 0; return 200 "d\\n"; }'.replace('echo_sleep 0; ', '') });
  });
  afterAll(async () => { await nginx?.close(); });

  it('64 concurrent requests through a pool of max 8 h1 connections: never more than 8 sockets at the origin', async () => {
    const agent = new Agent({ protocol: 'h1', tls: { ca: certs.ca }, pool: { maxConnections: 8 } });
    const url = `https://127.0.0.1:${nginx.port}/small.txt?c64`;
    let maxSeen = 0;
    const sampler = setInterval(() => { maxSeen = Math.max(maxSeen, establishedTo(nginx.port)); }, 5);
    const rounds = 20;
    for (let r = 0; r < rounds; r++) {
      const results = await Promise.all(Array.from({ length: 64 }, async () => {
        const res = await agent.request({ url });
        return (await res.bytes()).length;
      }));
      expect(results.every((n) => n === 1024)).toBe(true);
    }
    clearInterval(sampler);
    maxSeen = Math.max(maxSeen, establishedTo(nginx.port));
    const [st] = agent.stats();
    await agent.close();
    expect(maxSeen).toBeLessThanOrEqual(8);
    expect(maxSeen).toBeGreaterThan(1);
    expect(st?.connectionsOpened).toBe(8);
    expect(nginx.connectionsSeen((l) => l.uri.endsWith('?c64'))).toBe(8);
    expect(nginx.log().filter((l) => l.uri.endsWith('?c64')).length).toBe(64 * rounds);
  });

  it('a full pending queue is a typed error, not unbounded memory', async () => {
    const agent = new Agent({ protocol: 'h1', tls: { ca: certs.ca }, pool: { maxConnections: 1, maxPending: 4 } });
    const url = `https://127.0.0.1:${nginx.port}/small.txt`;
    const settled = await Promise.allSettled(Array.from({ length: 10 }, async () => (await agent.request({ url })).dump()));
    const rejected = settled.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason as OriginlinkError);
    // No connection exists yet, so every request waits: 4 fit the queue, the other 6 are refused at once.
    expect(settled.filter((s) => s.status === 'fulfilled').length).toBe(4);
    expect(rejected.length).toBe(6);
    expect(rejected.every((e) => e instanceof OriginlinkError && e.code === 'OL_QUEUE_FULL')).toBe(true);
    await agent.close();
  });

  it('minWarm pre-connects, maxRequestsPerConnection recycles, close() drains', async () => {
    const agent = new Agent({ protocol: 'h1', tls: { ca: certs.ca }, pool: { minWarm: 2, maxRequestsPerConnection: 10 } });
    const url = `https://127.0.0.1:${nginx.port}/small.txt?warm`;
    await agent.warm(url, 2, 'h1');
    expect(agent.stats()[0]?.open).toBe(2);
    for (let i = 0; i < 30; i++) await (await agent.request({ url })).dump();
    const st = agent.stats()[0];
    expect(st?.requests).toBe(30);
    // 30 requests, at most 10 per connection → at least 3 connections used, plus the warm spare.
    const conns = nginx.connectionsSeen((l) => l.uri.endsWith('?warm'));
    expect(conns).toBeGreaterThanOrEqual(3);
    for (const l of nginx.log().filter((x) => x.uri.endsWith('?warm'))) expect(l.connRequests).toBeLessThanOrEqual(10);
    await agent.close();
    expect(agent.stats()[0]?.open).toBe(0);
  });
});
