/**
 * connect/h3.ts quicCa: a TLS `ca` option as the QUIC config takes it. The QUIC client config cache names the CA by
 * its content id, which util/digest.ts remembers per object: each dial used to pass a fresh copy (`new Uint8Array`,
 * a `Buffer.concat` per list), so every new HTTP/3 connection hashed the CA again — in JavaScript, before the first
 * connection's handshake could start. Now the same option gives the same object, and a list one bundle.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quicCa } from '../../src/connect/h3.js';

const CA = readFileSync(join(import.meta.dirname, '..', '..', 'config', 'demo-certs', 'ca.pem'));

describe('quicCa', () => {
  it('bytes, PEM text and a path pass as they are (the same object each time)', () => {
    expect(quicCa(CA)).toBe(CA);
    const text = CA.toString();
    expect(quicCa(text)).toBe(text);
    expect(quicCa('/etc/some-ca.pem')).toBe('/etc/some-ca.pem');
    expect(quicCa(undefined)).toBeUndefined();
  });

  it('a list becomes one PEM bundle, made once per list', () => {
    const list = [CA, CA.toString()];
    const a = quicCa(list);
    expect(quicCa(list)).toBe(a);
    expect(quicCa([CA, CA.toString()])).not.toBe(a); // another list, another bundle (the same content)
    expect(Buffer.from(a as Uint8Array).toString()).toBe(`${CA.toString()}\n${CA.toString()}\n`);
  });

  it('blocks without a final newline still come out as separate PEM blocks', () => {
    const pem = CA.toString().trimEnd();
    const bundle = Buffer.from(quicCa([pem, pem]) as Uint8Array).toString();
    const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    expect(blocks).toHaveLength(2);
    for (const b of blocks) expect(new X509Certificate(b).subject).toBe(new X509Certificate(CA).subject);
  });
});
