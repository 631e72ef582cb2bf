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

  it('BBR tuning (quicBbr, per origin too): a loss threshold within 0.001–0.2, nothing else; pool.quickAck one of its words', () => {
    expect(refusal({ quicBbr: { lossThreshold: 0.05 }, origins: { 'https://a.test:443': { quicBbr: { lossThreshold: 0.015 } } }, quicCongestionControl: 'bbr2' })).toBeNull();
    expect(refusal({ quicBbr: { lossThreshold: 2 } })).toMatchObject({ code: 'OL_INVALID_CONFIG', message: 'quicBbr.lossThreshold: must be a number 0.001–0.2, got 2' });
    expect(refusal({ origins: { 'https://a.test:443': { quicBbr: { gain: 3 } } } })).toMatchObject({ message: 'origins["https://a.test:443"].quicBbr.gain: unknown option (allowed: lossThreshold)' });
    expect(refusal({ pool: { quickAck: 'always' } })).toBeNull();
    expect(refusal({ pool: { quickAck: 'sometimes' } })).toMatchObject({ message: 'pool.quickAck: must be one of auto, always, never, got "sometimes"' });
  });

  it('takes every documented option', () => {
    expect(refusal({
      protocol: 'h2', earlyData: 'never', pool: { bodyTimeoutMs: 500 }, tls: { rejectUnauthorized: true }, quicCongestionControl: 'cubic',
      maxRetries: 1, tfo: false, keepAliveProbes: null, origins: { 'https://a.test:443': { protocol: 'h1', pool: { maxConnections: 3 }, coalesce: false, earlyData: 'safe', tfo: true } },
      selection: {}, dns: {}, maxOrigins: 16, originIdleTimeoutMs: 1000,
    })).toBeNull();
  });
});
