/**
 * A QUIC config's TLS material goes into our binding from memory (src/quic/config.ts `tlsConfig`): no certificate,
 * key or CA is written to a temporary file on the way (the binding used to load files only), and what does not load
 * is an OL_INVALID_CONFIG naming the option.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OriginlinkError } from '../../src/errors.js';
import { buildConfig, clientConfig } from '../../src/quic/config.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();
const other = makeCerts({ fresh: true });
const tmp = process.env['TMPDIR'];
afterEach(() => {
  if (tmp === undefined) delete process.env['TMPDIR'];
  else process.env['TMPDIR'] = tmp;
});

function optionOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    expect(e).toBeInstanceOf(OriginlinkError);
    expect((e as OriginlinkError).code).toBe('OL_INVALID_CONFIG');
    return String((e as OriginlinkError).details?.['option']);
  }
}

describe('QUIC TLS config from memory', () => {
  it('a client with its own CA and certificate, and a server asking for client certificates, touch no temp dir', () => {
    // A temp dir that cannot be made: a config that wrote its PEM to files would fail here.
    process.env['TMPDIR'] = '/nonexistent/originlink-no-tmp';
    expect(() => buildConfig('client', { caFile: certs.ca, cert: certs.cert, key: certs.key })).not.toThrow();
    expect(() =>
      buildConfig('server', { cert: certs.cert, key: certs.key, clientCa: certs.ca, alpn: ['h3'] }),
    ).not.toThrow();
  });

  it('PEM that does not load names its option', () => {
    expect(optionOf(() => buildConfig('client', { caFile: '-----BEGIN CERTIFICATE-----\nnope\n' }))).toBe('caFile');
    expect(optionOf(() => buildConfig('client', { cert: certs.cert, key: '-----BEGIN PRIVATE KEY-----\nx\n' }))).toBe(
      'cert/key',
    );
    // A key of another certificate.
    expect(optionOf(() => buildConfig('server', { cert: certs.cert, key: other.key }))).toBe('cert/key');
    expect(optionOf(() => buildConfig('server', { cert: certs.cert, key: certs.key, clientCa: 'x'.repeat(3) }))).toBe(
      'clientCa',
    );
  });

  it('client configs are cached by the content of their certificate material, a Buffer CA by its bytes', () => {
    const ca = readFileSync(certs.caPath);
    const first = clientConfig({ caFile: ca, verifyPeer: true });
    // The same bytes in another Buffer, and as PEM text: one config each way, built once.
    expect(clientConfig({ caFile: Buffer.from(ca), verifyPeer: true })).toBe(first);
    const pem = ca.toString('latin1');
    const fromText = clientConfig({ caFile: pem, verifyPeer: true });
    expect(clientConfig({ caFile: ca.toString('latin1'), verifyPeer: true })).toBe(fromText);
    // Other bytes, another config.
    expect(clientConfig({ caFile: readFileSync(other.caPath), verifyPeer: true })).not.toBe(first);
    // A CA bundle as large as a system store: keyed by its digest, never written into the key as a JSON byte array.
    const bundle = Buffer.concat(Array.from({ length: 150 }, () => ca));
    const toJson = vi.spyOn(Buffer.prototype, 'toJSON');
    try {
      const big = clientConfig({ caFile: bundle, verifyPeer: true });
      expect(clientConfig({ caFile: bundle, verifyPeer: true })).toBe(big);
      expect(toJson).not.toHaveBeenCalled();
    } finally {
      toJson.mockRestore();
    }
  });
});
