/**
 * The client's TLS contexts (net/tls-context.ts): one per set of
 * trusted CAs, shared by the connections dialled with it, and trust never
 * crossing from one set to another. Origins: two node:tls servers, each with
 * a leaf from its own test CA; connections through the connector (connectTcp).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectTcp } from '../../src/net/tcp.js';
import { clientContext } from '../../src/net/tls-context.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';

let a: TestCerts;
let b: TestCerts;
const servers: tls.Server[] = [];
let portA = 0;
let portB = 0;

async function serve(c: TestCerts): Promise<number> {
  const s = tls.createServer({ cert: c.cert, key: c.key }, (sock) => sock.end('hi'));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

beforeAll(async () => {
  a = makeCerts();
  b = makeCerts({ fresh: true });
  portA = await serve(a);
  portB = await serve(b);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

const dial = (port: number, ca: string | Buffer) =>
  connectTcp({
    host: '127.0.0.1',
    port,
    tls: true,
    servername: 'localhost',
    alpn: ['http/1.1'],
    ca,
    connectTimeoutMs: 5000,
    tfo: false,
  });

describe('client TLS contexts', () => {
  it('one context per CA: the same object or text gives the same context, another CA another', () => {
    const pem = a.ca.toString('latin1');
    expect(clientContext(a.ca)).toBe(clientContext(a.ca));
    expect(clientContext(pem)).toBe(clientContext(`${pem}`));
    expect(clientContext(b.ca)).not.toBe(clientContext(a.ca));
    expect(clientContext(undefined)).toBe(clientContext(undefined));
    expect(clientContext(undefined)).not.toBe(clientContext(a.ca));
  });

  it('trust does not cross: each server verifies under its own CA only, in any order, over shared contexts', async () => {
    for (let i = 0; i < 3; i++) {
      const ok = await dial(portA, a.ca);
      expect(ok.socket.authorized).toBe(true);
      ok.socket.destroy();
      await expect(dial(portB, a.ca)).rejects.toMatchObject({ code: 'OL_CERT_INVALID' });
      const okB = await dial(portB, readFileSync(`${b.dir}/ca.pem`, 'latin1'));
      expect(okB.socket.authorized).toBe(true);
      okB.socket.destroy();
      await expect(dial(portA, b.ca)).rejects.toMatchObject({ code: 'OL_CERT_INVALID' });
    }
  });
});
