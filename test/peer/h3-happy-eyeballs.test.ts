/**
 * Happy Eyeballs (RFC 8305) for QUIC dials too: our HTTP/3 server on some
 * loopback addresses of a name; on others a UDP socket that reads and never
 * answers (a silent path to QUIC), or nothing at all (the kernel's ICMP port
 * unreachable refuses the attempt at once). The Agent's `lookup` gives the
 * name's addresses in a fixed order, so which attempt wins, and when, is known.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, MemorySessionStore } from '../../src/index.js';
import type { H3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const certs = makeCerts();
const DELAY = 150;
let v4: H3Server;
let v6: H3Server;
let port = 0;
/** Sockets on the silent addresses (127.0.0.2, 127.0.0.4): they take every datagram and answer none. */
const silent: dgram.Socket[] = [];

beforeAll(async () => {
  v4 = await startTestH3Server({ host: '127.0.0.3', handler: (r) => ({ status: 200, body: `v4 ${r.path}` }) });
  port = v4.address.port;
  v6 = await startTestH3Server({ host: '::1', port, handler: (r) => ({ status: 200, body: `v6 ${r.path}` }) });
  for (const host of ['127.0.0.2', '127.0.0.4']) {
    const s = dgram.createSocket('udp4');
    s.on('message', () => {});
    await new Promise<void>((r) => s.bind(port, host, () => r()));
    silent.push(s);
  }
});

afterAll(async () => {
  await v4?.close(0);
  await v6?.close(0);
  for (const s of silent) s.close();
});

const mk = (addrs: string[], sessions?: MemorySessionStore): Agent =>
  new Agent({
    protocol: 'h3',
    tls: { ca: certs.ca },
    lookup: async () => addrs,
    dns: { attemptDelayMs: DELAY },
    ...(sessions ? { sessionStore: sessions } : {}),
  });

describe('Happy Eyeballs for QUIC', () => {
  it('a silent first address: the second attempt starts after the attempt delay and wins; the silent one is marked down, the next dial goes straight to the live one', async () => {
    const agent = mk(['127.0.0.2', '127.0.0.3']);
    const url = `https://localhost:${port}/he`;
    const t0 = performance.now();
    const r = await agent.request({ url });
    const ms = performance.now() - t0;
    expect(await r.text()).toBe('v4 /he');
    expect(r.protocol).toBe('h3');
    expect(r.connection).toMatchObject({ remoteAddress: '127.0.0.3', family: 4, attempts: 2 });
    expect(ms).toBeGreaterThanOrEqual(DELAY - 5);
    expect(ms).toBeLessThan(DELAY + 1500); // the delay plus one loopback handshake (loaded machine: generous)
    const down = agent.addresses.udp.report('localhost', port).find((a) => a.address === '127.0.0.2');
    expect(down?.downForMs).toBeGreaterThan(0);
    for (const c of agent.pool(url).connections()) c.destroy();
    const again = await agent.request({ url });
    expect(await again.text()).toBe('v4 /he');
    expect(again.connection).toMatchObject({ remoteAddress: '127.0.0.3', attempts: 1 });
    await agent.close();
  }, 20_000);

  it('a refusing first address (nothing on its UDP port: ICMP port unreachable): the next attempt starts at once, not after the attempt delay', async () => {
    const agent = mk(['127.0.0.5', '127.0.0.3']);
    const t0 = performance.now();
    const r = await agent.request({ url: `https://localhost:${port}/refused` });
    const ms = performance.now() - t0;
    expect(await r.text()).toBe('v4 /refused');
    expect(r.connection).toMatchObject({ remoteAddress: '127.0.0.3', attempts: 2 });
    expect(ms).toBeLessThan(DELAY); // RFC 8305 §5: a failed attempt starts the next one without waiting
    expect(
      agent.addresses.udp.report('localhost', port).find((a) => a.address === '127.0.0.5')?.downForMs,
    ).toBeGreaterThan(0);
    await agent.close();
  }, 20_000);

  it('families interleaved (RFC 8305 §4): 127.0.0.2, 127.0.0.4, ::1 are tried as 127.0.0.2, ::1, …: IPv6 wins on the second attempt', async () => {
    const agent = mk(['127.0.0.2', '127.0.0.4', '::1']);
    const t0 = performance.now();
    const r = await agent.request({ url: `https://localhost:${port}/fam` });
    const ms = performance.now() - t0;
    expect(await r.text()).toBe('v6 /fam');
    expect(r.connection).toMatchObject({ remoteAddress: '::1', family: 6, attempts: 2 });
    expect(ms).toBeLessThan(2 * DELAY + 1000); // not after a third attempt delay
    await agent.close();
  }, 20_000);

  it('with a ticket the lead attempt goes 0-RTT at once (as with one address); when its address is silent, the handshake timeout marks it down and the GET goes again to the live one', async () => {
    const sessions = new MemorySessionStore();
    const first = mk(['127.0.0.3'], sessions);
    await (await first.request({ url: `https://localhost:${port}/t` })).text();
    await first.close();
    // The live address first: the resumed connection wins at 0-RTT readiness and the GET rides in early data.
    const ok = mk(['127.0.0.3', '127.0.0.2'], sessions);
    const e = await ok.request({ url: `https://localhost:${port}/t1` });
    expect(await e.text()).toBe('v4 /t1');
    expect(e.connection).toMatchObject({ remoteAddress: '127.0.0.3', attempts: 1, resumed: true });
    expect(e.earlyData).toBe(true);
    await ok.close();
    // The silent address first, with a ticket: it leads; 1 s later (connectTimeoutMs) its handshake fails, it is marked down.
    const agent = new Agent({
      protocol: 'h3',
      tls: { ca: certs.ca },
      lookup: async () => ['127.0.0.2', '127.0.0.3'],
      dns: { attemptDelayMs: DELAY },
      sessionStore: sessions,
      pool: { connectTimeoutMs: 1000 },
    });
    const t0 = performance.now();
    const r = await agent.request({ url: `https://localhost:${port}/t2` });
    expect(await r.text()).toBe('v4 /t2');
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(r.connection.remoteAddress).toBe('127.0.0.3');
    expect(
      agent.addresses.udp.report('localhost', port).find((a) => a.address === '127.0.0.2')?.downForMs,
    ).toBeGreaterThan(0);
    await agent.close();
  }, 20_000);
});
