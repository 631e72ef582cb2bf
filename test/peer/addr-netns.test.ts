/**
 * Origin addressing on a real link between two network namespaces (prefix
 * `addr-`), with the Agent running in the client namespace and dnsmasq
 * answering there:
 * - a name whose first address (AAAA 2001:db8::3) is blackholed by an nft
 *   drop on the server side: Happy Eyeballs (RFC 8305 §5) wins on the IPv4
 *   address within the attempt delay plus one RTT;
 * - TCP Fast Open for a host name (tcp_fastopen=3): the name is resolved,
 *   the address dialled with TFO, the name kept for SNI and the certificate.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts } from '../helpers/certs.js';
import { type NetnsPair, createNetnsPair } from '../helpers/netns.js';
import { firstJsonLine, writeTsHooks } from '../helpers/ts-child.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PORT = 4443;
const DNS_PORT = 5353;
const BLACKHOLE6 = '2001:db8::3';
const DELAY_MS = 250;

const SERVER = `
import https from 'node:https';
import { readFileSync } from 'node:fs';
const tfo = await import(process.env.SRC + '/net/tfo.ts');
const a = JSON.parse(process.env.ADDR_ARGS);
setTimeout(() => process.exit(0), 60_000).unref();
const opts = { key: readFileSync(a.key), cert: readFileSync(a.cert) };
const up = [];
for (const host of a.hosts) {
  const fd = tfo.listenTfo({ host, port: a.port, queueLen: 16 });
  if (fd === null) { console.log(JSON.stringify({ error: 'listenTfo null for ' + host })); process.exit(1); }
  const s = https.createServer(opts, (req, res) => {
    res.end(JSON.stringify({ local: req.socket.localAddress, synData: tfo.tcpInfo(req.socket)?.synDataAccepted ?? null }));
  });
  up.push(new Promise((r) => s.listen({ fd }, r)));
}
await Promise.all(up);
console.log(JSON.stringify({ ready: true }));
`;

const CLIENT = `
import { readFileSync } from 'node:fs';
const { Agent } = await import(process.env.SRC + '/index.ts');
const a = JSON.parse(process.env.ADDR_ARGS);
setTimeout(() => { console.log(JSON.stringify({ error: 'client timed out' })); process.exit(1); }, 30_000).unref();
const ca = readFileSync(a.ca);
const mk = () => new Agent({ protocol: 'h1', tls: { ca }, dns: { servers: [a.dns], attemptDelayMs: a.delay } });
const out = {};
{
  const agent = mk();
  const t0 = performance.now();
  const r = await agent.request({ url: 'https://a.test:' + a.port + '/' });
  const body = JSON.parse(await r.text());
  out.he = { ms: performance.now() - t0, attempts: r.connection.attempts, family: r.connection.family, remote: r.connection.remoteAddress, body, report: agent.addresses.report('a.test', a.port) };
  // The next connections skip the blackholed address (marked down): one attempt each.
  const first = agent.pool('https://a.test:' + a.port).connections()[0];
  const t1 = performance.now();
  await agent.warm('https://a.test:' + a.port, 3);
  out.after = agent.pool('https://a.test:' + a.port).connections().filter((c) => c !== first).map((c) => ({ attempts: c.facts.attempts, remote: c.facts.remoteAddress }));
  out.afterMs = performance.now() - t1;
  await agent.close();
}
out.tfo = [];
for (let i = 0; i < 3; i++) {
  const agent = mk();
  const r = await agent.request({ url: 'https://b.test:' + a.port + '/' });
  out.tfo.push({ tfo: r.connection.tfo, remote: r.connection.remoteAddress, body: JSON.parse(await r.text()) });
  await agent.close();
}
console.log(JSON.stringify(out));
`;

interface Result {
  error?: string;
  he: {
    ms: number;
    attempts: number;
    family: number;
    remote: string;
    body: { local: string };
    report: Array<{ address: string; downForMs: number; connections: number }>;
  };
  after: Array<{ attempts: number; remote: string }>;
  afterMs: number;
  tfo: Array<{ tfo: boolean; remote: string; body: { synData: boolean | null } }>;
}

describe('Happy Eyeballs and TFO for host names between two namespaces', () => {
  let pair: NetnsPair;
  let dir = '';
  let result: Result;
  let rttMs = 0;

  beforeAll(async () => {
    const certs = makeCerts(); // leaf covers a.test and b.test
    pair = createNetnsPair({ tcpFastOpen: 3, prefix: 'addr' });
    dir = mkdtempSync(join(tmpdir(), 'addr-ns-'));
    const hooks = writeTsHooks(dir);
    writeFileSync(join(dir, 'server.mjs'), SERVER);
    writeFileSync(join(dir, 'client.mjs'), CLIENT);
    writeFileSync(join(dir, 'hosts'), `${BLACKHOLE6} a.test\n${pair.serverIp} a.test\n${pair.serverIp} b.test\n`);
    // The blackholed address exists on the server's link, but every packet to it is dropped on arrival.
    pair.exec(pair.server, ['ip', 'addr', 'add', `${BLACKHOLE6}/64`, 'dev', 'veth0', 'nodad']);
    pair.exec(pair.server, ['nft', '-f', '-'], {
      input: `table inet addrbh {\n chain in {\n  type filter hook input priority 0;\n  ip6 daddr ${BLACKHOLE6} drop\n }\n}\n`,
    });
    const env = (args: object): NodeJS.ProcessEnv => {
      const { ORIGINLINK_NO_NATIVE: _off, ...rest } = process.env;
      return { ...rest, SRC: pathToFileURL(join(ROOT, 'src')).href, ADDR_ARGS: JSON.stringify(args) };
    };
    const server = pair.spawn(pair.server, [process.execPath, ...hooks, join(dir, 'server.mjs')], {
      env: env({
        hosts: [pair.serverIp, pair.serverIp6, BLACKHOLE6],
        port: PORT,
        key: certs.keyPath,
        cert: certs.certPath,
      }),
    });
    expect(await firstJsonLine(server, 20_000)).toEqual({ ready: true });
    const dns = pair.spawn(pair.client, [
      'dnsmasq',
      '--no-daemon',
      `--port=${DNS_PORT}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--local=/#/',
      `--addn-hosts=${join(dir, 'hosts')}`,
      '--local-ttl=60',
      '--user=root',
    ]);
    await new Promise((r) => setTimeout(r, 300));
    expect(dns.exitCode).toBeNull();
    const ping = pair.exec(pair.client, ['ping', '-c', '3', '-i', '0.2', '-q', pair.serverIp]);
    rttMs = Number(/= [\d.]+\/([\d.]+)\//.exec(ping)?.[1] ?? '0');
    const client = pair.spawn(pair.client, [process.execPath, ...hooks, join(dir, 'client.mjs')], {
      env: env({ dns: `127.0.0.1:${DNS_PORT}`, port: PORT, ca: certs.caPath, delay: DELAY_MS }),
    });
    result = (await firstJsonLine(client, 40_000)) as unknown as Result;
    console.info(
      `addr-netns: rtt ${rttMs} ms, HE first request ${result.he?.ms?.toFixed(1)} ms (delay ${DELAY_MS}), warm 2 more ${(result as { afterMs?: number }).afterMs?.toFixed(1)} ms`,
    );
  }, 90_000);

  afterAll(() => {
    pair?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('blackholed first address: wins on the next within the attempt delay plus one RTT', () => {
    expect(result.error).toBeUndefined();
    expect(result.he.attempts).toBe(2);
    expect(result.he.family).toBe(4);
    expect(result.he.remote).toBe(pair.serverIp);
    expect(result.he.body.local).toBe(pair.serverIp);
    // The whole first request: attempt delay, then TCP + TLS + one request on a fresh connection (a few RTTs, slack for 2 shared cores).
    expect(result.he.ms).toBeGreaterThanOrEqual(DELAY_MS);
    expect(result.he.ms).toBeLessThan(DELAY_MS + rttMs + 250);
    const bh = result.he.report.find((a) => a.address === BLACKHOLE6);
    expect(bh?.downForMs).toBeGreaterThan(0);
  });

  it('later connections skip the blackholed address (marked down): one attempt each', () => {
    expect(result.after.length).toBeGreaterThanOrEqual(2);
    for (const c of result.after) expect(c).toEqual({ attempts: 1, remote: pair.serverIp });
    expect(result.afterMs).toBeLessThan(DELAY_MS); // no attempt delay paid again
  });

  it('TFO for a host name: the address is dialled with SYN data (cookie from the earlier connections to it), the name verified', () => {
    expect(result.tfo).toHaveLength(3);
    for (const c of result.tfo) {
      expect(c.remote).toBe(pair.serverIp);
      expect(c.tfo).toBe(true);
      expect(c.body.synData).toBe(true); // the server saw data in the SYN
    }
  });
});
