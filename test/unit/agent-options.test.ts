/**
 * An Agent refuses options it does not know (OL_INVALID_CONFIG naming the
 * field) instead of running with defaults the caller did not mean: a typo,
 * or a pool option written at the top level, was silently ignored before.
 */
import { describe, expect, it } from 'vitest';
import { Agent, OriginlinkError } from '../../src/index.js';

function refusal(opts: unknown): { code: string; message: string; field: unknown } | null {
  try {
    void new Agent(opts as ConstructorParameters<typeof Agent>[0]).close();
    return null;
  } catch (e) {
    const oe = e as OriginlinkError;
    return { code: oe.code, message: oe.message, field: oe.details?.['field'] };
  }
}

describe('Agent options', () => {
  it('refuses an unknown option, and names the place of a pool option written at the wrong level', () => {
    expect(refusal({ protocl: 'h2' })).toEqual({
      code: 'OL_INVALID_CONFIG',
      message: expect.stringMatching(/^protocl: unknown option \(allowed: protocol, earlyData, pool, tls, /),
      field: 'protocl',
    });
    expect(refusal({ bodyTimeoutMs: 500 })).toEqual({
      code: 'OL_INVALID_CONFIG',
      message: 'bodyTimeoutMs: unknown option (a pool option: pool.bodyTimeoutMs)',
      field: 'bodyTimeoutMs',
    });
    expect(refusal({ origins: { 'https://a.test:443': { maxConnections: 3 } } })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      message:
        'origins["https://a.test:443"].maxConnections: unknown option (a pool option: origins["https://a.test:443"].pool.maxConnections)',
    });
    expect(refusal({ origins: { 'https://a.test:443': { coalese: false } } })).toMatchObject({
      message: expect.stringMatching(
        /^origins\["https:\/\/a\.test:443"\]\.coalese: unknown option \(allowed: .*\bcoalesce\b/,
      ),
    });
    // Inside pool the pool's own check speaks (it did already).
    expect(refusal({ pool: { bodyTimeout: 5 } })).toMatchObject({
      message: expect.stringMatching(
        /^pool\.bodyTimeout: unknown option \(allowed: maxConnections, .*\bbodyTimeoutMs\b/,
      ),
    });
  });

  it('BBR tuning (quicBbr, per origin too): a loss threshold within 0.001–0.2, nothing else; pool.quickAck one of its words', () => {
    expect(
      refusal({
        quicBbr: { lossThreshold: 0.05 },
        origins: { 'https://a.test:443': { quicBbr: { lossThreshold: 0.015 } } },
        quicCongestionControl: 'bbr2',
      }),
    ).toBeNull();
    expect(refusal({ quicBbr: { lossThreshold: 2 } })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      message: 'quicBbr.lossThreshold: must be a number 0.001–0.2, got 2',
    });
    expect(refusal({ origins: { 'https://a.test:443': { quicBbr: { gain: 3 } } } })).toMatchObject({
      message: 'origins["https://a.test:443"].quicBbr.gain: unknown option (allowed: lossThreshold, bwLoReduction)',
    });
    expect(refusal({ quicBbr: { bwLoReduction: 'cwnd' } })).toBeNull();
    expect(refusal({ quicBbr: { bwLoReduction: 'fast' as 'cwnd' } })).toMatchObject({
      message: 'quicBbr.bwLoReduction: must be one of default, minrtt, inflight, cwnd, got "fast"',
    });
    expect(refusal({ pool: { quickAck: 'always' } })).toBeNull();
    expect(refusal({ pool: { quickAck: 'sometimes' } })).toMatchObject({
      message: 'pool.quickAck: must be one of auto, always, never, got "sometimes"',
    });
  });

  it('takes every documented option', () => {
    expect(
      refusal({
        protocol: 'h2',
        earlyData: 'never',
        pool: { bodyTimeoutMs: 500 },
        tls: { rejectUnauthorized: true },
        quicCongestionControl: 'cubic',
        maxRetries: 1,
        tfo: false,
        keepAliveProbes: null,
        origins: {
          'https://a.test:443': {
            protocol: 'h1',
            pool: { maxConnections: 3 },
            coalesce: false,
            earlyData: 'safe',
            tfo: true,
          },
        },
        selection: {},
        dns: {},
        maxOrigins: 16,
        originIdleTimeoutMs: 1000,
      }),
    ).toBeNull();
  });
});

describe('requests the Agent refuses at once', () => {
  it('protocol h3 with an http:// URL: OL_UNSUPPORTED_PROTOCOL before any dial (it spent 30.5 s in a QUIC timeout)', async () => {
    const agent = new Agent({ protocol: 'h3' });
    const t0 = performance.now();
    const e = await agent.request({ url: 'http://127.0.0.1:1/' }).catch((x: unknown) => x as OriginlinkError);
    expect(performance.now() - t0).toBeLessThan(100);
    expect([e.code, e.message]).toEqual([
      'OL_UNSUPPORTED_PROTOCOL',
      'protocol h3 needs an https:// URL (HTTP/3 runs over QUIC, always TLS): got http://127.0.0.1:1',
    ]);
    const r = await new Agent()
      .request({ url: 'http://127.0.0.1:1/', protocol: 'h3' })
      .catch((x: unknown) => x as OriginlinkError);
    expect(r.code).toBe('OL_UNSUPPORTED_PROTOCOL');
    await agent.close();
  });
});

describe('values the Agent refuses (issue 45: each was taken and failed later, or ran as something else)', () => {
  it('a store given as a URL or as an object without its methods (every request failed later, as a connect failure)', () => {
    expect(refusal({ sessionStore: 'redis://127.0.0.1:6379' as never })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      field: 'sessionStore',
      message: expect.stringMatching(/not a URL: open one first \(openStores/),
    });
    expect(refusal({ originCache: {} as never })).toMatchObject({
      field: 'originCache',
      message: 'originCache: must be a store object with get, put, delete (lacks get, put, delete)',
    });
    expect(refusal({ sessionStore: (() => {}) as never })).toMatchObject({ field: 'sessionStore' });
  });

  it('keepAliveProbes out of what Linux takes (they failed every dial, retried, and left its socket open)', () => {
    expect(refusal({ keepAliveProbes: { idleS: -1, intervalS: 1, count: 1 } })).toEqual({
      code: 'OL_INVALID_CONFIG',
      message: 'keepAliveProbes.idleS: must be an integer in 1..32767, got -1',
      field: 'keepAliveProbes.idleS',
    });
    expect(refusal({ keepAliveProbes: { idleS: 60, intervalS: 'x', count: 1 } as never })).toMatchObject({
      field: 'keepAliveProbes.intervalS',
    });
    expect(refusal({ keepAliveProbes: { idleS: 60, intervalS: 10, count: 128 } })).toMatchObject({
      field: 'keepAliveProbes.count',
    });
    expect(refusal({ keepAliveProbes: { idleS: 60, intervalS: 10, count: 3, every: 1 } as never })).toMatchObject({
      field: 'keepAliveProbes.every',
    });
    expect(refusal({ keepAliveProbes: 5 as never })).toMatchObject({ field: 'keepAliveProbes' });
    expect(refusal({ keepAliveProbes: { idleS: 60, intervalS: 10, count: 3 } })).toBeNull();
  });

  it('a protocol or earlyData that does not exist, at the top or per origin', () => {
    expect(refusal({ protocol: 'h4' })).toEqual({
      code: 'OL_INVALID_CONFIG',
      message: 'protocol: must be one of auto, h1, h2, h3, got "h4"',
      field: 'protocol',
    });
    expect(refusal({ origins: { 'https://a.test:443': { protocol: 'http2' } } })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      field: 'origins["https://a.test:443"].protocol',
    });
    expect(refusal({ earlyData: 'yes' })).toMatchObject({ code: 'OL_INVALID_CONFIG', field: 'earlyData' });
    expect(refusal({ origins: { 'a.test': {} } })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      message: 'origins["a.test"]: the key must be an origin, scheme://host:port',
    });
  });

  it('tls.ca given a file name, or text without a certificate; an unknown tls field', () => {
    expect(refusal({ tls: { ca: 'certs/ca.pem' } })).toEqual({
      code: 'OL_INVALID_CONFIG',
      message:
        'tls.ca: expects the certificate\'s PEM text, not a file name: read it first (tls: { ca: readFileSync("certs/ca.pem") })',
      field: 'tls.ca',
    });
    expect(refusal({ tls: { ca: [Buffer.from('not a certificate\n')] } })).toMatchObject({
      field: 'tls.ca',
      message: 'tls.ca: holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    });
    expect(refusal({ origins: { 'https://a.test:443': { tls: { ca: '/etc/ssl/ca.pem' } } } })).toMatchObject({
      field: 'origins["https://a.test:443"].tls.ca',
    });
    expect(refusal({ tls: { certificate: 'x' } })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      message: 'tls.certificate: unknown option (allowed: ca, rejectUnauthorized, servername, cert, key)',
    });
    // A client certificate needs its key, and must be PEM that fits it (mutual TLS).
    expect(refusal({ tls: { cert: 'x' } })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      message: 'tls.key: a client certificate needs tls.cert and tls.key',
    });
    expect(refusal({ tls: { cert: 'x', key: 'y' } })).toMatchObject({
      field: 'tls.cert',
      message: expect.stringMatching(/^tls\.cert: .*holds no certificate/),
    });
    expect(refusal({ tls: { rejectUnauthorized: 'no' } })).toMatchObject({ field: 'tls.rejectUnauthorized' });
    expect(refusal({ tls: { ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' } })).toBeNull();
  });

  it('a request field that does not exist (methd: POST sent a GET), a request protocol that does not exist', async () => {
    const agent = new Agent();
    const e = await agent
      .request({ url: 'http://127.0.0.1:1/', methd: 'POST' } as never)
      .catch((x: unknown) => x as OriginlinkError);
    expect(e).toBeInstanceOf(OriginlinkError);
    expect([e.code, e.details['field']]).toEqual(['OL_INVALID_ARGUMENT', 'methd']);
    expect(e.message).toMatch(/^request field "methd" is not known \(known: url, origin, path, group, method,/);
    const p = await agent
      .request({ url: 'http://127.0.0.1:1/', protocol: 'h4' } as never)
      .catch((x: unknown) => x as OriginlinkError);
    expect([p.code, p.details['field']]).toEqual(['OL_INVALID_ARGUMENT', 'protocol']);
    await agent.close();
  });

  it('every error a bad target gives is an OriginlinkError naming the field (a bad URL was a plain TypeError)', async () => {
    const agent = new Agent();
    const cases: Array<[unknown, string, string]> = [
      [{ url: 'not a url' }, 'OL_INVALID_ARGUMENT', 'url'],
      [{ url: 'http://exa mple.com/' }, 'OL_INVALID_ARGUMENT', 'url'],
      [{ url: 'ftp://example.com/' }, 'OL_INVALID_ARGUMENT', ''],
      [{ origin: 'nope', path: '/' }, 'OL_INVALID_ARGUMENT', 'origin'],
      [{ origin: ['http://a.test', '::'], path: '/' }, 'OL_INVALID_ARGUMENT', 'origin'],
      [{ origin: 'http://a.test' }, 'OL_INVALID_ARGUMENT', 'path'],
      [{}, 'OL_INVALID_ARGUMENT', 'url'],
    ];
    for (const [o, code, field] of cases) {
      const e = await agent.request(o as never).catch((x: unknown) => x);
      expect(e, JSON.stringify(o)).toBeInstanceOf(OriginlinkError);
      expect([(e as OriginlinkError).code, (e as OriginlinkError).details['field'] ?? ''], JSON.stringify(o)).toEqual([
        code,
        field,
      ]);
    }
    expect(() => agent.origin('::')).toThrow(OriginlinkError);
    expect(() => agent.pool('::')).toThrow(OriginlinkError);
    await agent.close();
  });
});
