/**
 * TCP Fast Open end to end between two network namespaces (test/helpers/netns.ts),
 * with src/net/tfo.ts running in both: a TLS server listening on a
 * listenTfo() fd in the server namespace and a client script in the client
 * namespace. Child scripts load the TypeScript source through a tiny
 * transpile-on-load hook, so they test src/, not a possibly stale dist/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NetnsPair, createNetnsPair } from '../helpers/netns.js';
import { firstJsonLine, writeTsHooks } from '../helpers/ts-child.js';

const ROOT = resolve(import.meta.dirname, '../..');
const ADDON = join(ROOT, 'native/tfo/build/Release/tfo.node');
const TFO_MODULE = pathToFileURL(join(ROOT, 'src/net/tfo.ts')).href;
const PORT = 4433;
const CLOSED_PORT = 4434;
const PLAIN_PORT = 4435;
/** Temp dir with the certificate, the module hooks and the child scripts (set in beforeAll). */
let dir = '';

// Server namespace: TLS line echo over TFO listen fds (v4 and v6); reports the server-side SYN-data flag per connection.
const SERVER = `
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
const tfo = await import(process.env.TFO_MODULE);
const a = JSON.parse(process.env.TFO_ARGS);
setTimeout(() => process.exit(0), 55_000).unref();
const opts = { key: readFileSync(a.key), cert: readFileSync(a.cert), ALPNProtocols: ['x-tfo'] };
const listening = [];
for (const host of a.hosts) {
  const fd = tfo.listenTfo({ host, port: a.port, queueLen: 16 });
  if (fd === null) { console.log(JSON.stringify({ error: 'listenTfo returned null for ' + host })); process.exit(1); }
  const server = tls.createServer(opts, (s) => {
    const serverSynData = tfo.tcpInfo(s)?.synDataAccepted ?? null;
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\\n');
      if (nl >= 0) s.write('pong ' + buf.slice(0, nl) + ' serverSynData=' + serverSynData + '\\n');
    });
    s.on('error', () => {});
  });
  server.on('tlsClientError', () => {});
  listening.push(new Promise((r) => server.listen({ fd }, r)));
}
// A listener without TCP_FASTOPEN: a cookie-bearing SYN's data is ignored and must be resent by the client.
const plain = tls.createServer(opts, (s) => { s.once('data', () => s.write('pong plain\\n')); s.on('error', () => {}); });
listening.push(new Promise((r) => plain.listen(a.plainPort, a.hosts[0], r)));
await Promise.all(listening);
console.log(JSON.stringify({ ready: true }));
`;

// Client namespace: cold refused, two v4 connections (cookie, then SYN data), warm refused (deferred SYN), v6 pair.
const CLIENT = `
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
const tfo = await import(process.env.TFO_MODULE);
const a = JSON.parse(process.env.TFO_ARGS);
const ca = readFileSync(a.ca);
setTimeout(() => { console.log(JSON.stringify({ error: 'client timed out' })); process.exit(1); }, 30_000).unref();

function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(what + ' timed out')), ms))]);
}
async function exchange(host, tag, keepalive, port = a.port, localAddress) {
  const raw = tfo.connectTfo(localAddress ? { host, port, localAddress } : { host, port });
  if (raw === null) throw new Error('connectTfo returned null');
  const s = tls.connect({ socket: raw, host, ca, ALPNProtocols: ['x-tfo'] });
  await withTimeout(new Promise((res, rej) => { s.once('secureConnect', res); s.once('error', rej); }), 5000, 'handshake ' + tag);
  s.setEncoding('utf8');
  s.write('ping ' + tag + '\\n');
  const reply = await withTimeout(new Promise((res, rej) => {
    let buf = '';
    s.on('data', (d) => { buf += d; if (buf.includes('\\n')) res(buf.trim()); });
    s.once('error', rej);
  }), 5000, 'reply ' + tag);
  const out = { reply, alpn: s.alpnProtocol, info: tfo.tcpInfo(raw), infoViaTls: tfo.tcpInfo(s), localAddress: raw.localAddress };
  if (keepalive) {
    out.keepaliveBefore = tfo.readKeepAliveProbes(raw);
    out.keepaliveApplied = tfo.setKeepAliveProbes(raw);
    out.keepaliveAfter = tfo.readKeepAliveProbes(raw);
    out.ss = execFileSync('ss', ['-tnoi', 'dst', host], { encoding: 'utf8', timeout: 5000 });
  }
  s.end();
  await withTimeout(new Promise((res) => s.once('close', res)), 5000, 'close ' + tag);
  return out;
}
async function refused(viaTls) {
  let raw;
  try {
    raw = tfo.connectTfo({ host: a.serverIp, port: a.closedPort });
  } catch (e) {
    return { code: e.code, syscall: e.syscall, thrown: true };
  }
  if (raw === null) return { nullSocket: true };
  const stateBefore = tfo.tcpInfo(raw)?.state ?? null;
  const target = viaTls ? tls.connect({ socket: raw, host: a.serverIp, ca }) : raw;
  const rawErrors = [];
  if (viaTls) raw.on('error', (e) => rawErrors.push(e.code));
  else raw.write('x');
  const err = await withTimeout(new Promise((res) => target.once('error', res)), 5000, 'refused error');
  await new Promise((r) => setImmediate(r));
  return { code: err.code, syscall: err.syscall, stateBefore, rawDestroyed: raw.destroyed, rawErrors };
}
if (a.mode === 'blackhole') {
  const t0 = performance.now();
  const r = await exchange(a.serverIp, 'bh', false);
  console.log(JSON.stringify({ ...r, ms: performance.now() - t0 }));
  process.exit(0);
}
const out = { tfoAvailable: tfo.tfoAvailable(), sysctl: tfo.tfoSysctl() };
out.refusedCold = await refused(true);
out.conn1 = await exchange(a.serverIp, 'v4-1', false);
out.conn2 = await exchange(a.serverIp, 'v4-2', true, a.port, a.clientIp);
out.refusedWarmTls = await refused(true);
out.refusedWarmRaw = await refused(false);
out.conn3 = await exchange(a.serverIp, 'v4-3', false, a.plainPort);
out.conn6a = await exchange(a.serverIp6, 'v6-1', false);
out.conn6b = await exchange(a.serverIp6, 'v6-2', false);
out.metrics = execFileSync('ip', ['tcp_metrics', 'show'], { encoding: 'utf8', timeout: 5000 });
console.log(JSON.stringify(out));
`;

// Kernel refusal: with net.ipv4.tcp_fastopen=0 setsockopt(TCP_FASTOPEN_CONNECT) fails; connectTfo returns null, warns once.
const REFUSAL = `
const tfo = await import(process.env.TFO_MODULE);
const a = JSON.parse(process.env.TFO_ARGS);
const lines = [];
tfo.setTfoLogger((m) => lines.push(m));
const first = tfo.connectTfo({ host: a.serverIp, port: a.port });
const second = tfo.connectTfo({ host: a.serverIp, port: a.port });
console.log(JSON.stringify({ available: tfo.tfoAvailable(), first: first === null, second: second === null, lines }));
`;

function nodeArgv(script: string): string[] {
  return [process.execPath, '--import', join(dir, 'register.mjs'), join(dir, script)];
}

function childEnv(args: object): NodeJS.ProcessEnv {
  const { ORIGINLINK_NO_NATIVE: _off, ...env } = process.env;
  return { ...env, TFO_MODULE, TFO_ARGS: JSON.stringify(args) };
}

interface Exchange {
  reply: string;
  alpn: string;
  localAddress: string;
  info: { synDataAccepted: boolean; fastopenClientFail: number; state: number; rttUs: number; totalRetrans: number };
  infoViaTls: { synDataAccepted: boolean } | null;
  keepaliveBefore?: { enabled: boolean };
  keepaliveApplied?: boolean;
  keepaliveAfter?: { enabled: boolean; idleS: number; intervalS: number; count: number };
  ss?: string;
}
interface Refused {
  nullSocket?: true;
  code: string;
  syscall: string;
  stateBefore: number | null;
  rawDestroyed: boolean;
  rawErrors: string[];
}
interface ClientResult {
  error?: string;
  tfoAvailable: boolean;
  sysctl: number;
  refusedCold: Refused;
  conn1: Exchange;
  conn2: Exchange;
  refusedWarmTls: Refused;
  refusedWarmRaw: Refused;
  conn3: Exchange;
  conn6a: Exchange;
  conn6b: Exchange;
  metrics: string;
}

const get = (m: Map<string, number>, k: string): number => m.get(k) ?? 0;

describe('TCP Fast Open between two network namespaces', () => {
  let pair: NetnsPair;
  let result: ClientResult;
  let before: { client: Map<string, number>; server: Map<string, number> };
  let after: { client: Map<string, number>; server: Map<string, number> };

  beforeAll(async () => {
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-native.mjs')], {
      cwd: ROOT,
      stdio: 'pipe',
      timeout: 180_000,
      env: childEnv({}),
    });
    expect(existsSync(ADDON), 'native/tfo must build on this machine (g++, python3, node headers)').toBe(true);
    pair = createNetnsPair({ tcpFastOpen: 3 });
    dir = mkdtempSync(join(tmpdir(), 'ol-tfo-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=originlink tfo test',
        '-addext',
        `subjectAltName=IP:${pair.serverIp},IP:${pair.serverIp6}`,
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'pipe', timeout: 10_000 },
    );
    writeTsHooks(dir);
    writeFileSync(join(dir, 'server.mjs'), SERVER);
    writeFileSync(join(dir, 'client.mjs'), CLIENT);
    writeFileSync(join(dir, 'refusal.mjs'), REFUSAL);

    const serverArgs = {
      hosts: [pair.serverIp, pair.serverIp6],
      port: PORT,
      plainPort: PLAIN_PORT,
      key: join(dir, 'key.pem'),
      cert: join(dir, 'cert.pem'),
    };
    const server = pair.spawn(pair.server, nodeArgv('server.mjs'), { env: childEnv(serverArgs) });
    expect(await firstJsonLine(server, 20_000)).toEqual({ ready: true });

    before = { client: pair.counters(pair.client), server: pair.counters(pair.server) };
    const clientArgs = {
      clientIp: pair.clientIp,
      serverIp: pair.serverIp,
      serverIp6: pair.serverIp6,
      port: PORT,
      closedPort: CLOSED_PORT,
      plainPort: PLAIN_PORT,
      ca: join(dir, 'cert.pem'),
    };
    const client = pair.spawn(pair.client, nodeArgv('client.mjs'), { env: childEnv(clientArgs) });
    result = (await firstJsonLine(client, 40_000)) as unknown as ClientResult;
    after = { client: pair.counters(pair.client), server: pair.counters(pair.server) };
  });

  afterAll(() => {
    pair?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs with the addon and TFO enabled in the namespace', () => {
    expect(result.error).toBeUndefined();
    expect(result.tfoAvailable).toBe(true);
    expect(result.sysctl).toBe(3);
  });

  it('first connection fetches a cookie; the second carries the ClientHello in its SYN', () => {
    expect(result.conn1.info.synDataAccepted).toBe(false);
    expect(result.conn1.info.fastopenClientFail).toBe(1); // TFO_CLIENT_FAIL.NO_COOKIE
    expect(result.metrics).toMatch(new RegExp(`${pair.serverIp.replaceAll('.', '\\.')}.*fo_cookie`));
    expect(result.conn2.info.synDataAccepted).toBe(true);
    expect(result.conn2.infoViaTls?.synDataAccepted).toBe(true);
    expect(result.conn2.reply).toBe('pong ping v4-2 serverSynData=true');
    expect(result.conn1.reply).toBe('pong ping v4-1 serverSynData=false');
    expect(result.conn2.localAddress).toBe(pair.clientIp);
  });

  it('kernel counters rise on both sides', () => {
    const active = get(after.client, 'TcpExtTCPFastOpenActive') - get(before.client, 'TcpExtTCPFastOpenActive');
    const passive = get(after.server, 'TcpExtTCPFastOpenPassive') - get(before.server, 'TcpExtTCPFastOpenPassive');
    // conn2 (v4) and conn6b (v6) each sent SYN data that was accepted.
    expect(active).toBeGreaterThanOrEqual(2);
    expect(passive).toBeGreaterThanOrEqual(2);
    // conn3: SYN data to a listener without TFO is not acked and is resent after the handshake.
    expect(get(after.client, 'TcpExtTCPFastOpenActiveFail') - get(before.client, 'TcpExtTCPFastOpenActiveFail')).toBe(
      1,
    );
  });

  it('completes TLS request/response over TFO sockets on IPv4 and IPv6', () => {
    for (const c of [result.conn1, result.conn2, result.conn6a, result.conn6b]) expect(c.alpn).toBe('x-tfo');
    expect(result.conn6a.info.synDataAccepted).toBe(false);
    expect(result.conn6b.info.synDataAccepted).toBe(true);
    expect(result.conn6b.reply).toBe('pong ping v6-2 serverSynData=true');
  });

  it('falls back inside the kernel when the server ignores the SYN data', () => {
    expect(result.conn3.reply).toBe('pong plain');
    expect(result.conn3.info.synDataAccepted).toBe(false);
    expect(result.conn3.info.fastopenClientFail).toBe(2); // TFO_CLIENT_FAIL.DATA_NOT_ACKED
  });

  it('a refused port surfaces ECONNREFUSED: thrown at once cold, an error event with a deferred (cookie) connect', () => {
    for (const r of [result.refusedCold, result.refusedWarmTls, result.refusedWarmRaw]) {
      expect(r.nullSocket).toBeUndefined();
      expect(r.code, JSON.stringify(r)).toBe('ECONNREFUSED');
    }
    // No cookie: the local RST is processed inside connect(); connectTfo throws it as a 'connect' error (an 'error'
    // event a tick later reached a plain-TCP caller that had already taken the socket as open: uncaught).
    expect(result.refusedCold.syscall).toBe('connect');
    expect(result.refusedCold.thrown).toBe(true);
    // Cached cookie: the SYN waits for the first write (SYN_SENT until then); the RST comes back on the read side.
    for (const r of [result.refusedWarmTls, result.refusedWarmRaw]) {
      expect(r.stateBefore).toBe(2);
      expect(r.syscall).toBe('read');
      expect(r.rawDestroyed).toBe(true);
    }
  });

  it('survives a middlebox that drops SYNs carrying data (one SYN timeout, then plain TCP)', async () => {
    pair.exec(pair.client, ['sysctl', '-qw', 'net.ipv4.tcp_fastopen=3']);
    // Server-side ingress: drop SYNs (without ACK) longer than a bare SYN with options and a cookie.
    pair.exec(pair.server, ['nft', '-f', '-'], {
      input:
        'table inet oltfo {\n chain in {\n  type filter hook input priority 0;\n  tcp flags & (syn | ack) == syn ip length > 160 drop\n }\n}\n',
    });
    const failBefore = get(pair.counters(pair.client), 'TcpExtTCPFastOpenActiveFail');
    const args = { serverIp: pair.serverIp, port: PORT, ca: join(dir, 'cert.pem'), mode: 'blackhole' };
    const child = pair.spawn(pair.client, nodeArgv('client.mjs'), { env: childEnv(args) });
    const r = (await firstJsonLine(child, 20_000)) as unknown as Exchange & { ms: number; error?: string };
    pair.exec(pair.server, ['nft', 'delete', 'table', 'inet', 'oltfo']);
    expect(r.error).toBeUndefined();
    expect(r.reply).toBe('pong ping bh serverSynData=false');
    expect(r.info.synDataAccepted).toBe(false);
    expect(r.info.fastopenClientFail).toBe(3); // TFO_CLIENT_FAIL.SYN_RETRANSMITTED
    expect(r.info.totalRetrans).toBeGreaterThanOrEqual(1);
    expect(r.ms).toBeGreaterThan(900); // initial SYN RTO is 1 s
    expect(get(pair.counters(pair.client), 'TcpExtTCPFastOpenActiveFail') - failBefore).toBe(1);
  });

  it('returns null and warns once when the kernel refuses TFO (sysctl 0)', async () => {
    pair.exec(pair.client, ['sysctl', '-qw', 'net.ipv4.tcp_fastopen=0']);
    const args = { serverIp: pair.serverIp, port: PORT };
    const child = pair.spawn(pair.client, nodeArgv('refusal.mjs'), { env: childEnv(args) });
    const r = await firstJsonLine(child, 20_000);
    expect(r).toMatchObject({ available: true, first: true, second: true });
    expect(r['lines']).toHaveLength(1);
    expect((r['lines'] as string[])[0]).toMatch(/kernel refused TCP Fast Open \(EOPNOTSUPP; net\.ipv4\.tcp_fastopen=0/);
  });

  it('applies keepalive probe settings (getsockopt and ss timer)', () => {
    const c = result.conn2;
    expect(c.keepaliveBefore?.enabled).toBe(false);
    expect(c.keepaliveApplied).toBe(true);
    expect(c.keepaliveAfter).toEqual({ enabled: true, idleS: 300, intervalS: 75, count: 9 });
    expect(c.ss).toMatch(/timer:\(keepalive,/);
  });
});

describe('TFO wrapper in this process', () => {
  it('falls back with ORIGINLINK_NO_NATIVE=1: null sockets, one warning line', async () => {
    const tfo = await import('../../src/net/tfo.js');
    const lines: string[] = [];
    const saved = process.env['ORIGINLINK_NO_NATIVE'];
    process.env['ORIGINLINK_NO_NATIVE'] = '1';
    try {
      tfo.resetTfoForTests();
      tfo.setTfoLogger((m) => lines.push(m));
      expect(tfo.tfoAvailable()).toBe(false);
      expect(tfo.connectTfo({ host: '127.0.0.1', port: 9 })).toBeNull();
      expect(tfo.connectTfo({ host: '127.0.0.1', port: 9 })).toBeNull();
      expect(tfo.listenTfo({ host: '127.0.0.1', port: 0 })).toBeNull();
      const s = new net.Socket();
      expect(tfo.tcpInfo(s)).toBeNull();
      expect(tfo.setKeepAliveProbes(s)).toBe(false);
      s.destroy();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/TCP Fast Open unavailable: disabled by ORIGINLINK_NO_NATIVE=1/);
    } finally {
      if (saved === undefined) delete process.env['ORIGINLINK_NO_NATIVE'];
      else process.env['ORIGINLINK_NO_NATIVE'] = saved;
      tfo.resetTfoForTests();
      tfo.setTfoLogger((m) => console.warn(m));
    }
  });

  it('loads the addon from src/, finds the fd under a TLS socket, validates keepalive values', async () => {
    const tfo = await import('../../src/net/tfo.js');
    tfo.resetTfoForTests();
    expect(tfo.tfoAvailable()).toBe(true);
    const addon = createRequire(import.meta.url)(ADDON) as { getKeepalive(fd: number): { idleS: number } };
    expect(typeof addon.getKeepalive).toBe('function');
    const server = net.createServer((c) => c.on('error', () => {}));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const raw = net.connect({ host: '127.0.0.1', port });
    await new Promise((r) => raw.once('connect', r));
    // A TLSSocket over `raw` that never handshakes: only the fd walk through TLSWrap matters here.
    const wrapped = new tls.TLSSocket(raw);
    try {
      expect(tfo.tcpInfo(raw)?.state).toBe(1);
      expect(tfo.tcpInfo(wrapped)?.state).toBe(1);
      expect(tfo.setKeepAliveProbes(wrapped, { idleS: 30, intervalS: 5, count: 3 })).toBe(true);
      expect(tfo.readKeepAliveProbes(raw)).toEqual({ enabled: true, idleS: 30, intervalS: 5, count: 3 });
      expect(() => tfo.setKeepAliveProbes(raw, { idleS: 0, intervalS: 5, count: 3 })).toThrow(/idleS/);
      expect(() => tfo.setKeepAliveProbes(raw, { idleS: 1, intervalS: 5, count: 200 })).toThrow(/count/);
      expect(tfo.DEFAULT_KEEPALIVE).toEqual({ idleS: 300, intervalS: 75, count: 9 });
    } finally {
      wrapped.destroy();
      raw.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
