/**
 * A CA given as a string is identified by a hash of the whole PEM: two bundles of the same length that end alike
 * (they were identified by length and last 32 characters) never share a pool key or coalescing eligibility, so a
 * name configured with another trust root never rides a connection verified against the first.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();

describe('CA identity is a hash of the whole PEM', () => {
  let dir: string;
  let server: http2.Http2SecureServer;
  let port: number;
  let caA: string;
  let caB: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ol-ca-'));
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
        '/CN=another test CA',
        '-keyout',
        join(dir, 'k.pem'),
        '-out',
        join(dir, 'c.pem'),
      ],
      { stdio: 'pipe' },
    );
    // Two bundles of the same length that end in the same 32 characters (text
    // after a PEM block is ignored by TLS): only the certificates differ.
    const a = certs.ca.toString();
    const b = readFileSync(join(dir, 'c.pem'), 'utf8');
    const len = Math.max(a.length, b.length) + 8;
    const tail = `\n${'#'.repeat(40)}\n`;
    caA = `${a}${' '.repeat(len - a.length)}${tail}`;
    caB = `${b}${' '.repeat(len - b.length)}${tail}`;
    expect(caA.length).toBe(caB.length);
    expect(caA.slice(-32)).toBe(caB.slice(-32));
    server = http2.createSecureServer({ cert: certs.cert, key: certs.key, allowHTTP1: false }, (_req, res) =>
      res.end('hello'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a name trusting another CA never coalesces onto a connection verified with the first', async () => {
    const lookup = async (): Promise<string[]> => ['127.0.0.1'];
    const agent = new Agent({
      lookup,
      protocol: 'h2',
      maxRetries: 0,
      origins: {
        [`https://a.test:${port}`]: { tls: { ca: caA } },
        [`https://b.test:${port}`]: { tls: { ca: caB } },
      },
    });
    try {
      const a = await agent.request({ url: `https://a.test:${port}/` });
      expect(await a.text()).toBe('hello');
      // The server's leaf covers b.test, but b.test trusts only the other CA: its own dial must fail verification.
      const err = await agent.request({ url: `https://b.test:${port}/` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OriginlinkError);
      expect((err as OriginlinkError).code).toBe(ErrorCode.CERT_INVALID);
      expect(new Set(agent.pools().map((p) => p.key.split('|ca=')[1])).size).toBe(2);
    } finally {
      agent.destroy();
    }
  });
});
