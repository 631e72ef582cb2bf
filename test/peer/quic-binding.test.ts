/**
 * Loading the native binding: present here; when missing, one clear
 * UNSUPPORTED_PROTOCOL error instead of a crash. Binding error parsing.
 */
import { describe, expect, it, vi } from 'vitest';
import { ErrorCode, type OriginlinkError } from '../../src/errors.js';

describe('quiche binding adapter', () => {
  it('loads the binding on this platform', async () => {
    const m = await import('../../src/quic/quiche.js');
    expect(m.quicheAvailable()).toBe(true);
    expect(typeof m.quiche().Connection.connect).toBe('function');
  });

  it('reports a missing binary as UNSUPPORTED_PROTOCOL, once, without throwing from quicheAvailable', async () => {
    const prev = process.env['ORIGINLINK_QUIC_BINDING'];
    process.env['ORIGINLINK_QUIC_BINDING'] = '/nonexistent/quiche.node';
    try {
      vi.resetModules();
      const m = await import('../../src/quic/quiche.js');
      expect(m.quicheAvailable()).toBe(false);
      let err: unknown;
      try {
        m.quiche();
      } catch (e) {
        err = e;
      }
      // Fresh module graph after resetModules: compare by name, not class identity.
      expect((err as Error).name).toBe('OriginlinkError');
      expect((err as OriginlinkError).code).toBe(ErrorCode.UNSUPPORTED_PROTOCOL);
      expect((err as OriginlinkError).message).toMatch(
        /HTTP\/3 unavailable: cannot load the QUIC binding .*\/nonexistent\/quiche\.node/,
      );
      const ep = await import('../../src/quic/endpoint.js');
      await expect(ep.QuicEndpoint.bind({})).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED_PROTOCOL });
    } finally {
      if (prev === undefined) delete process.env['ORIGINLINK_QUIC_BINDING'];
      else process.env['ORIGINLINK_QUIC_BINDING'] = prev;
      vi.resetModules();
    }
  });

  it('parses thrown binding errors', async () => {
    const { parseQuicheError } = await import('../../src/quic/quiche.js');
    expect(parseQuicheError(new Error('StreamReset(268)'))).toEqual({ name: 'StreamReset', code: 268 });
    expect(parseQuicheError(new Error('TlsFail'))).toEqual({ name: 'TlsFail', code: null });
  });
});
