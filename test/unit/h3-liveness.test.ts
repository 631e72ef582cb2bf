/**
 * Active migration (src/client/h3-liveness.ts) binds a new UDP socket only when it can be used: with no spare
 * connection id from the peer none is bound, and one bound for a migration that fails is closed. A path that died
 * left every attempt's socket and receiver open until the connection closed (18 fds for three migrations).
 */
import { describe, expect, it } from 'vitest';
import { H3Liveness } from '../../src/client/h3-liveness.js';
import type { QuicConnection } from '../../src/quic/connection.js';
import type { QuicEndpoint } from '../../src/quic/endpoint.js';

function fakes(
  spareDcids: number,
  migrateFails: boolean,
): { quic: QuicConnection; ep: QuicEndpoint; bound: string[]; dropped: string[] } {
  const bound: string[] = [];
  const dropped: string[] = [];
  const quic = {
    established: true,
    closed: false,
    stats: () => ({ spareDcids }),
    nextPacket: () => new Promise<void>(() => {}),
    migrateTo: () => {
      if (migrateFails) throw new Error('QUIC migration failed: no path');
      return Promise.resolve();
    },
  } as unknown as QuicConnection;
  let port = 40000;
  const ep = {
    address: { host: '127.0.0.1', port: 1 },
    addSocket: async () => {
      const local = { host: '127.0.0.1', port: ++port };
      bound.push(`${local.port}`);
      return local;
    },
    dropSocket: (local: { port: number }) => {
      dropped.push(`${local.port}`);
    },
  } as unknown as QuicEndpoint;
  return { quic, ep, bound, dropped };
}

const gone = (): never => {
  throw new Error('gone');
};

describe('H3Liveness.migrate', () => {
  it('binds no socket without a spare connection id from the peer (after waiting up to about a second for one)', async () => {
    const f = fakes(0, false);
    await expect(new H3Liveness(f.quic, f.ep, () => 1).migrate(gone as never)).rejects.toThrow(
      /no spare connection id/,
    );
    expect(f.bound).toEqual([]);
  });

  it('closes the socket it bound when the migration fails; keeps it when it succeeds', async () => {
    const failing = fakes(2, true);
    await expect(new H3Liveness(failing.quic, failing.ep, () => 1).migrate(gone as never)).rejects.toThrow(
      /migration failed/,
    );
    expect(failing.dropped).toEqual(failing.bound);
    const ok = fakes(2, false);
    expect(await new H3Liveness(ok.quic, ok.ep, () => 1).migrate(gone as never)).toBe(40001);
    expect(ok.dropped).toEqual([]);
  });
});
