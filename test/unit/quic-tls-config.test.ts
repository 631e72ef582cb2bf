/**
 * A QUIC config's TLS material goes into our binding from memory (src/quic/config.ts `tlsConfig`): no certificate,
 * key or CA is written to a temporary file on the way (the binding used to load files only), and what does not load
 * is an OL_INVALID_CONFIG naming the option.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { OriginlinkError } from '../../src/errors.js';
import { buildConfig } from '../../src/quic/config.js';
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
});
