import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

describe('nginx over TLS: one connection serves every sequential request', () => {
  let nginx: Nginx;
  let ticketsOnly: Nginx;
  const certs = makeCerts();
  beforeAll(async () => {
    nginx = await Nginx.start();
    ticketsOnly = await Nginx.start({ tlsDefaults: true });
  });
  afterAll(async () => {
    await nginx?.close();
    await ticketsOnly?.close();
  });

  for (const protocol of ['h1', 'h2'] as const) {
    it(`${protocol}: 10,000 sequential requests open exactly one connection`, async () => {
      const agent = new Agent({ protocol, tls: { ca: certs.ca } });
      const url = `https://localhost:${nginx.port}/small.txt?p=${protocol}`;
      const before = nginx.log().length;
      for (let i = 0; i < 10_000; i++) {
        const res = await agent.request({ url });
        expect(res.status).toBe(200);
        const body = await res.bytes();
        if (body.length !== 1024) throw new Error(`short body ${body.length}`);
      }
      const [st] = agent.stats();
      expect(st?.connectionsOpened).toBe(1);
      expect(st?.requests).toBe(10_000);
      expect(st?.reuseRate).toBeCloseTo(0.9999, 4);
      await agent.close();
      const lines = await nginx.logSince(before, 10_000);
      expect(lines.length).toBe(10_000);
      expect(new Set(lines.map((l) => l.connection)).size).toBe(1);
      expect(lines[0]?.protocol).toBe(protocol === 'h2' ? 'HTTP/2.0' : 'HTTP/1.1');
    });
  }

  it('auto picks h2 from ALPN; a reconnect resumes the TLS session', async () => {
    const agent = new Agent({ tls: { ca: certs.ca }, pool: { maxConnections: 1 } });
    const url = `https://localhost:${nginx.port}/index.html`;
    const r1 = await agent.request({ url });
    expect(r1.protocol).toBe('h2');
    expect(await r1.text()).toBe('hello from nginx\n');
    expect(r1.connection.resumed).toBe(false);
    // Close the pool's connection, keep the agent (and its session store).
    for (const p of agent.pools()) for (const c of p.connections()) c.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const r2 = await agent.request({ url });
    await r2.dump();
    expect(r2.reused).toBe(false);
    expect(r2.connection.resumed).toBe(true);
    await agent.close();
  });

  for (const protocol of ['h1', 'h2'] as const) {
    it(`${protocol}: every reconnect resumes, though nginx with its TLS defaults sends no new ticket after a resumed handshake`, async () => {
      const agent = new Agent({ protocol, tls: { ca: certs.ca }, pool: { maxConnections: 1 } });
      const url = `https://localhost:${ticketsOnly.port}/index.html`;
      const resumed: boolean[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await agent.request({ url });
        await r.dump();
        expect(r.reused).toBe(false);
        resumed.push(r.connection.resumed);
        for (const p of agent.pools()) for (const c of p.connections()) c.destroy();
        await new Promise((res) => setTimeout(res, 50));
      }
      // With tickets used once: false, true, false, true (the one ticket of each full handshake spent by the next dial).
      expect(resumed).toEqual([false, true, true, true]);
      expect(agent.stats()[0]).toMatchObject({ connectionsOpened: 4, resumedHandshakes: 3 });
      await agent.close();
    });
  }
});
