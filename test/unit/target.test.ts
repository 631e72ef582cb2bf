/**
 * agent/target.ts: a target resolved once from the Agent's options, its reuse key computed from its fields, and the
 * coalescing trust rule reading those fields (no key string is parsed back).
 */
import { describe, expect, it } from 'vitest';
import { resolveTarget, sameTrustForCoalescing } from '../../src/agent/target.js';
import type { AgentOptions } from '../../src/agent/options.js';

const none = new Map();
const t = (url: string, opts: AgentOptions = {}, protocol?: 'h1' | 'h2' | 'h3') =>
  resolveTarget(new URL(url), protocol, null, opts, none, true);

describe('typed target', () => {
  it('fields from the URL and the options; the default port written', () => {
    const a = t('https://[::1]/x', { earlyData: 'never', origins: { 'https://[::1]': { protocol: 'h2' } } });
    expect(a).toMatchObject({
      scheme: 'https',
      host: '::1',
      port: 443,
      origin: 'https://[::1]:443',
      authority: '[::1]',
      policy: 'h2',
      earlyData: 'never',
      coalesce: true,
      proxy: null,
    });
    expect(a.tls).toMatchObject({ servername: undefined, verify: true, caId: '-' });
  });

  it('one key for one set of fields; any field that changes who may share a connection changes it', () => {
    const base = t('https://a.test:8443');
    expect(t('https://a.test:8443/other?q').key).toBe(base.key);
    const variants = [
      t('https://a.test:8443', {}, 'h2'),
      t('https://a.test:8443', { tls: { rejectUnauthorized: false } }),
      t('https://a.test:8443', { tls: { servername: 'b.test' } }),
      t('https://a.test:8443', { tls: { ca: '-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n' } }),
      t('https://a.test:8444'),
      t('http://a.test:8443'),
    ];
    const keys = new Set([base.key, ...variants.map((v) => v.key)]);
    expect(keys.size).toBe(variants.length + 1);
  });

  it('coalescing trust: both verified by their own name against the same CAs', () => {
    const a = t('https://a.test');
    expect(sameTrustForCoalescing(a, t('https://b.test'))).toBe(true);
    expect(sameTrustForCoalescing(a, t('https://b.test', { tls: { rejectUnauthorized: false } }))).toBe(false);
    expect(sameTrustForCoalescing(a, t('https://b.test', { tls: { servername: 'a.test' } }))).toBe(false);
    const ca = '-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n';
    expect(sameTrustForCoalescing(a, t('https://b.test', { tls: { ca } }))).toBe(false);
    expect(sameTrustForCoalescing(t('https://a.test', { tls: { ca } }), t('https://b.test', { tls: { ca } }))).toBe(
      true,
    );
  });

  it('h3 over http is refused at once, a scheme other than http(s) too', () => {
    expect(() => t('http://a.test', {}, 'h3')).toThrow(/h3 needs an https/);
    expect(() => t('ftp://a.test')).toThrow(/unsupported URL scheme/);
  });
});
