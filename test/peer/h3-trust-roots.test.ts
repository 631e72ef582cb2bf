/**
 * What an HTTP/3 client trusts, against Caddy over h3 and h2 alike. `tls.ca` replaces the system's roots — Node's
 * `ca` does so for h1/h2 — and over h3 it did not: quiche loads the system trust store into every TLS context and a
 * CA loaded after is added to it, so an origin pinned to a private CA was also accepted with a certificate of any
 * system root. BoringSSL reads the system store from SSL_CERT_FILE / SSL_CERT_DIR when set: here they name a second
 * CA, which stands for the system roots (Caddy's certificate chains to it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { type Caddy, startCaddy } from '../helpers/caddy.js';
import { makeCerts } from '../helpers/certs.js';
import { freeTcpUdpPort } from '../helpers/ports.js';

const ours = makeCerts();
const system = makeCerts({ fresh: true });
const emptyDir = mkdtempSync(join(tmpdir(), 'ol-no-roots-'));
const saved = { file: process.env['SSL_CERT_FILE'], dir: process.env['SSL_CERT_DIR'] };
let caddy: Caddy;
let url: string;

beforeAll(async () => {
  process.env['SSL_CERT_FILE'] = system.caPath;
  process.env['SSL_CERT_DIR'] = emptyDir;
  const port = await freeTcpUdpPort();
  caddy = await startCaddy({ port, certFile: system.certPath, keyFile: system.keyPath, files: { 'x.txt': 'x\n' } });
  url = `https://127.0.0.1:${port}/x.txt`;
});

afterAll(async () => {
  await caddy?.stop();
  for (const [k, v] of [
    ['SSL_CERT_FILE', saved.file],
    ['SSL_CERT_DIR', saved.dir],
  ] as const)
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  rmSync(emptyDir, { recursive: true, force: true });
});

async function ask(protocol: 'h2' | 'h3', ca: Buffer | Array<string | Buffer> | null): Promise<string> {
  const agent = new Agent({ protocol, maxRetries: 0, ...(ca ? { tls: { ca } } : {}) });
  try {
    const res = await agent.request({ url });
    await res.text();
    return `${res.status} ${res.protocol}`;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  } finally {
    await agent.close();
  }
}

describe('h3 trusts what h2 trusts', () => {
  it('tls.ca replaces the system roots: a certificate of a system root is refused over h3 as over h2', async () => {
    expect(await ask('h2', ours.ca)).toBe('OL_CERT_INVALID');
    expect(await ask('h3', ours.ca)).toBe('OL_CERT_INVALID');
  });

  it('the CA that signed it is trusted over both', async () => {
    expect(await ask('h2', system.ca)).toBe('200 h2');
    expect(await ask('h3', system.ca)).toBe('200 h3');
  });

  it('a list of CAs is trusted as a whole over both, a PEM without its final newline included', async () => {
    const list = [ours.ca.toString().trimEnd(), system.ca];
    expect(await ask('h2', list)).toBe('200 h2');
    expect(await ask('h3', list)).toBe('200 h3');
    expect(await ask('h3', [ours.ca])).toBe('OL_CERT_INVALID');
  });

  it('without tls.ca an h3 client verifies by the system roots', async () => {
    expect(await ask('h3', null)).toBe('200 h3');
  });
});
