/**
 * Capability probes against real peers (Caddy with h3 and Alt-Svc, nginx
 * without h3) and against failures: a closed port, a plain-TCP (non-TLS)
 * port, a certificate for another name. Every step has a deadline: no probe
 * hangs. The CLI (`originlink probe URL --json`) prints one JSON object.
 * Needs Debian `caddy`, `nginx`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Agent, FileOriginCache, probeOrigin } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';
import { startCaddy, type Caddy } from '../helpers/caddy.js';
import { CLOSED_PORT, freeTcpUdpPort } from '../helpers/ports.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TS_LIB = pathToFileURL(join(ROOT, 'node_modules/typescript/lib/typescript.js')).href;
const certs = makeCerts();
let caddy: Caddy;
let nginx: Nginx;
let plain: http.Server;
let wrong: https.Server;
let dir: string;

const listen = async (s: net.Server): Promise<number> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as net.AddressInfo).port;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-probe-'));
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from ${JSON.stringify(TS_LIB)};
export async function resolve(s, c, next) {
  try { return await next(s, c); } catch (e) { if (s.endsWith('.js') && c.parentURL?.endsWith('.ts')) return next(s.slice(0, -3) + '.ts', c); throw e; }
}
export async function load(url, c, next) {
  if (!url.endsWith('.ts')) return next(url, c);
  const fileName = fileURLToPath(url);
  const out = ts.transpileModule(readFileSync(fileName, 'utf8'), { fileName, compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  return { format: 'module', source: out.outputText, shortCircuit: true };
}
`,
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`,
  );
  plain = http.createServer((_q, s) => s.end('plain\n'));
  wrong = https.createServer(
    { cert: readFileSync(certs.wrongCertPath), key: readFileSync(certs.wrongKeyPath) },
    (_q, s) => s.end('wrong\n'),
  );
  await Promise.all([listen(plain), listen(wrong)]);
  [caddy, nginx] = await Promise.all([
    freeTcpUdpPort().then((port) => startCaddy({ port, certFile: certs.certPath, keyFile: certs.keyPath })),
    Nginx.start(),
  ]);
}, 30_000);

afterAll(async () => {
  await Promise.all([
    caddy?.stop(),
    nginx?.close(),
    new Promise((r) => plain?.close(r)),
    new Promise((r) => wrong?.close(r)),
  ]);
  rmSync(dir, { recursive: true, force: true });
});

const port = (s: net.Server): number => (s.address() as net.AddressInfo).port;

describe('probe', () => {
  it('Caddy: ALPN h2, Alt-Svc h3 with ma, QUIC handshake, 0-RTT attempt, RTT; would choose h3', async () => {
    const r = await probeOrigin(`https://localhost:${caddy.port}/`, { ca: certs.ca });
    expect(r.tcp).toMatchObject({
      ok: true,
      alpnOffered: ['h2', 'http/1.1'],
      alpn: 'h2',
      protocol: 'h2',
      tlsVersion: 'TLSv1.3',
    });
    expect(r.tcp.certificate?.subjectAltName).toMatch(/DNS:a\.test/);
    expect(r.http).toMatchObject({
      ok: true,
      status: 200,
      h3Advertised: { host: '', port: caddy.port, maxAgeS: 2592000 },
    });
    expect(r.http.maxConcurrentStreams).toBeGreaterThan(1);
    expect(r.reconnect).toMatchObject({ ok: true, tlsResumed: true });
    expect(r.quic).toMatchObject({ attempted: true, ok: true, port: caddy.port });
    expect(r.quic.handshakeMs).toBeGreaterThan(0);
    expect(r.quic.maxConcurrentStreams).toBeGreaterThan(1);
    expect(r.earlyData).toMatchObject({ attempted: true, ok: true, resumed: true });
    expect(r.earlyData.accepted).toBe(true); // quic-go accepts 0-RTT
    expect(r.rttMs).not.toBeNull();
    expect(r.chosen.protocol).toBe('h3');
    expect(r.chosen.reason).toMatch(/h3 advertised by alt-svc/);
    expect(r.facts.h3?.port).toBe(caddy.port);
  });

  it('nginx: h2, no Alt-Svc, QUIC fails within its deadline; would choose h2', async () => {
    const r = await probeOrigin(`https://localhost:${nginx.port}/index.html`, { ca: certs.ca, stepTimeoutMs: 800 });
    expect(r.tcp).toMatchObject({ ok: true, alpn: 'h2' });
    expect(r.http).toMatchObject({ ok: true, status: 200, altSvc: null, h3Advertised: null });
    expect(r.quic.ok).toBe(false);
    expect(r.quic.error?.code).toMatch(/^OL_/);
    expect(r.earlyData.attempted).toBe(false);
    expect(r.chosen).toMatchObject({ protocol: 'h2' });
    expect(r.chosen.reason).toMatch(/no h3 advertised; ALPN offers h2/);
    expect(r.durationMs).toBeLessThan(3000);
  });

  it('nginx with h2 off: h1, keep-alive timeout hint', async () => {
    const n = await Nginx.start({ h2: false, keepaliveTimeout: '75s 60s' });
    try {
      const r = await probeOrigin(`https://localhost:${n.port}/index.html`, { ca: certs.ca, noQuic: true });
      expect(r.tcp).toMatchObject({ ok: true, alpn: 'http/1.1', protocol: 'h1' });
      expect(r.http).toMatchObject({ ok: true, keepAliveTimeoutMs: 60_000, maxConcurrentStreams: 1 });
      expect(r.quic.attempted).toBe(false);
      expect(r.chosen.protocol).toBe('h1');
    } finally {
      await n.close();
    }
  });

  it('a closed port, a non-TLS port and a bad certificate give clear results quickly', async () => {
    const closed = CLOSED_PORT;
    const t0 = Date.now();
    const [rc, rp, rw] = await Promise.all([
      probeOrigin(`https://127.0.0.1:${closed}/`, { ca: certs.ca, stepTimeoutMs: 1000 }),
      probeOrigin(`https://127.0.0.1:${port(plain)}/`, { ca: certs.ca, stepTimeoutMs: 1000 }),
      probeOrigin(`https://localhost:${port(wrong)}/`, { ca: certs.ca, stepTimeoutMs: 1000 }),
    ]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(rc.tcp.ok).toBe(false);
    expect(rc.tcp.error?.code).toBe('OL_CONNECT_FAILED');
    expect(rc.tcp.error?.message).toMatch(/ECONNREFUSED|refused/i);
    expect(rc.quic.ok).toBe(false);
    expect(rc.chosen.reason).toMatch(/origin unreachable/);
    expect(rp.tcp.ok).toBe(false);
    expect(rp.tcp.error?.code).toMatch(/OL_TLS_FAILED|OL_SOCKET_CLOSED|OL_PROTOCOL_ERROR/);
    expect(rw.tcp.ok).toBe(false);
    expect(rw.tcp.error?.code).toMatch(/OL_CERT_INVALID|OL_TLS_FAILED/);
    expect(rw.tcp.error?.message).toMatch(/wrong\.invalid|altnames|certificate/i);
    for (const r of [rc, rp, rw]) expect(r.http.ok).toBe(false);
  });

  it('CLI: `originlink probe URL --json` prints one JSON object; --cache feeds an Agent', async () => {
    const cacheFile = join(dir, 'cache.json');
    const run = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((res) => {
        execFile(
          process.execPath,
          ['--import', join(dir, 'register.mjs'), join(ROOT, 'src/cli/main.ts'), 'probe', ...args],
          { timeout: 20_000 },
          (err, stdout, stderr) => {
            res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
          },
        );
      });
    const ok = await run([
      `https://localhost:${caddy.port}/`,
      '--json',
      '--cacert',
      certs.caPath,
      '--cache',
      cacheFile,
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    const j = JSON.parse(ok.stdout);
    expect(j.chosen.protocol).toBe('h3');
    const human = await run([`https://127.0.0.1:${CLOSED_PORT}/`, '--timeout', '500']);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/tcp\+tls\s+FAILED OL_CONNECT_FAILED/);
    expect(human.stdout).toMatch(/would choose/);
    const url = `https://localhost:${caddy.port}/index.html`;
    // The cached choice starts QUIC at once and lets TCP join 25 ms later on loopback (docs/selection.md,
    // raceDelayMs derived from the RTT); a loaded CI machine took longer for the Agent's QUIC handshake twice, and
    // TCP won. What is tested here is the cache's choice, so TCP joins after a second.
    const agent = new Agent({
      tls: { ca: certs.ca },
      originCache: new FileOriginCache(cacheFile),
      selection: { raceDelayMs: 1000 },
    });
    expect(agent.origin(url).choice.protocol).toBe('h3');
    const r = await agent.request({ url });
    await r.dump();
    expect(r.protocol).toBe('h3');
    await agent.close();
  }, 30_000);
});
