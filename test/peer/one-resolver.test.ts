/**
 * One resolver (net/resolver.ts): every name lookup in originlink goes
 * through a `Resolver`, so a name that only a configured DNS server knows
 * works at every step that dials it. Here `a.test` exists only in a dnsmasq
 * on a loopback port (the system resolver has never heard of it), and Caddy
 * serves h1/h2/h3 with a certificate for it.
 *
 * Before the resolver had one home, the probe's 0-RTT step handed the name
 * to the h3 connector, which asked the system resolver (ENOTFOUND), and the
 * Agent's coalescing check kept answers for a fixed 30 s of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectH3 } from '../../src/connect/h3.js';
import { Resolver } from '../../src/net/resolver.js';
import { probeOrigin } from '../../src/probe/probe.js';
import { startCaddy, type Caddy } from '../helpers/caddy.js';
import { makeCerts } from '../helpers/certs.js';
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js';
import { freeTcpUdpPort } from '../helpers/ports.js';
import { runCli, writeTsHooks } from '../helpers/ts-child.js';

const certs = makeCerts();
let caddy: Caddy;
let dns: Dnsmasq;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-one-resolver-'));
  writeTsHooks(dir);
  [caddy, dns] = await Promise.all([
    freeTcpUdpPort().then((port) => startCaddy({ port, certFile: certs.certPath, keyFile: certs.keyPath })),
    startDnsmasq({ 'a.test': ['127.0.0.1'] }, 30),
  ]);
}, 30_000);

afterAll(async () => {
  await Promise.all([caddy?.stop(), dns?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('one resolver', () => {
  it('probe with a DNS server only it knows the name on: every step completes, the 0-RTT one too', async () => {
    const resolver = new Resolver({ servers: [dns.server], systemFallback: false });
    const r = await probeOrigin(`https://a.test:${caddy.port}/`, { ca: certs.ca, resolver, stepTimeoutMs: 3000 });
    expect(r.tcp, JSON.stringify(r.tcp.error)).toMatchObject({ ok: true, remoteAddress: '127.0.0.1' });
    expect(r.http.ok).toBe(true);
    expect(r.reconnect.ok).toBe(true);
    expect(r.quic, JSON.stringify(r.quic.error)).toMatchObject({ attempted: true, ok: true });
    expect(r.earlyData, JSON.stringify(r.earlyData.error)).toMatchObject({
      attempted: true,
      ok: true,
      resumed: true,
      accepted: true,
    });
    expect(await dns.settledQueries('a.test', 2)).toBeGreaterThan(0);
  });

  it('`originlink probe --dns-server`: the same from the command line', async () => {
    const out = await runCli(dir, [
      'probe',
      `https://a.test:${caddy.port}/`,
      '--json',
      '--cacert',
      certs.caPath,
      '--dns-server',
      dns.server,
    ]);
    expect(out.code, out.stderr).toBe(0);
    const j = JSON.parse(out.stdout) as {
      earlyData: { ok: boolean; accepted: boolean; error?: unknown };
      quic: { ok: boolean };
    };
    expect(j.quic.ok).toBe(true);
    expect(j.earlyData, JSON.stringify(j.earlyData.error)).toMatchObject({ ok: true, accepted: true });
  }, 30_000);

  it('connectH3 resolves a name with the resolver it is given (the system resolver knows none of it)', async () => {
    const resolver = new Resolver({ servers: [dns.server], systemFallback: false });
    const c = await connectH3({ host: 'a.test', port: caddy.port, resolver, ca: certs.caPath });
    try {
      expect(c.facts.remoteAddress).toBe('127.0.0.1');
      const res = await c.request({
        method: 'GET',
        path: '/',
        authority: `a.test:${caddy.port}`,
        scheme: 'https',
        headers: [],
        body: null,
      });
      expect(res.status).toBe(200);
      await res.body.resume();
    } finally {
      c.destroy();
    }
    await expect(
      connectH3({ host: 'a.test', port: caddy.port, ca: certs.caPath, connectTimeoutMs: 2000 }),
    ).rejects.toMatchObject({ code: 'OL_DNS_FAILED' });
  });
});
