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
    expect(refusal({ protocl: 'h2' })).toEqual({ code: 'OL_INVALID_CONFIG', message: 'protocl: unknown option', field: 'protocl' });
    expect(refusal({ bodyTimeoutMs: 500 })).toEqual({ code: 'OL_INVALID_CONFIG', message: 'bodyTimeoutMs: unknown option (a pool option: pool.bodyTimeoutMs)', field: 'bodyTimeoutMs' });
    expect(refusal({ origins: { 'https://a.test:443': { maxConnections: 3 } } })).toMatchObject({
      code: 'OL_INVALID_CONFIG',
      message: 'origins["https://a.test:443"].maxConnections: unknown option (a pool option: origins["https://a.test:443"].pool.maxConnections)',
    });
    expect(refusal({ origins: { 'https://a.test:443': { coalese: false } } })).toMatchObject({ message: 'origins["https://a.test:443"].coalese: unknown option' });
    // Inside pool the pool's own check speaks (it did already).
    expect(refusal({ pool: { bodyTimeout: 5 } })).toMatchObject({ message: 'pool.bodyTimeout: unknown option' });
  });

  it('takes every documented option', () => {
    expect(refusal({
      protocol: 'h2', earlyData: 'never', pool: { bodyTimeoutMs: 500 }, tls: { rejectUnauthorized: true }, quicCongestionControl: 'cubic',
      maxRetries: 1, tfo: false, keepAliveProbes: null, origins: { 'https://a.test:443': { protocol: 'h1', pool: { maxConnections: 3 }, coalesce: false, earlyData: 'safe', tfo: true } },
      selection: {}, dns: {}, maxOrigins: 16, originIdleTimeoutMs: 1000,
    })).toBeNull();
  });
});

describe('requests the Agent refuses at once', () => {
  it('protocol h3 with an http:// URL: OL_UNSUPPORTED_PROTOCOL before any dial (it spent 30.5 s in a QUIC timeout)', async () => {
    const agent = new Agent({ protocol: 'h3' });
    const t0 = performance.now();
    const e = await agent.request({ url: 'http://127.0.0.1:1/' }).catch((x: unknown) => x as OriginlinkError);
    expect(performance.now() - t0).toBeLessThan(100);
    expect([e.code, e.message]).toEqual(['OL_UNSUPPORTED_PROTOCOL', 'protocol h3 needs an https:// URL (HTTP/3 runs over QUIC, always TLS): got http://127.0.0.1:1']);
    const r = await new Agent().request({ url: 'http://127.0.0.1:1/', protocol: 'h3' }).catch((x: unknown) => x as OriginlinkError);
    expect(r.code).toBe('OL_UNSUPPORTED_PROTOCOL');
    await agent.close();
  });
});
