/**
 * service/fd-guard.ts: an accepted connection whose descriptor is within the headroom of the limit trips the
 * guard (refused, one warning, the reserve let go); every connection in the next pause is refused, counted but not
 * logged again; after it the reserve is taken back and connections are served; an EMFILE met elsewhere trips it too.
 */
import { describe, expect, it } from 'vitest';
import { FdGuard, openFileLimit } from '../../src/service/fd-guard.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function logger(): { warn: (o: Record<string, unknown>, msg: string) => void; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return {
    lines,
    warn: (o, msg) => {
      lines.push({ ...o, msg });
    },
  };
}

describe('FdGuard', () => {
  it('trips near the limit, refuses for the pause, logs once, lets the reserve go and takes it back', async () => {
    const log = logger();
    const g = new FdGuard(log as never, { limit: 1024, reserve: 4, pauseMs: 100, logIntervalMs: 10_000 });
    try {
      expect(g.headroom).toBe(64);
      expect(g.held).toBe(4);
      expect(g.admit({ _handle: { fd: 900 } }, 'front')).toBe(true);
      expect(g.admit({ _handle: { fd: 960 } }, 'front')).toBe(false); // 1024 - 64
      expect(g.held).toBe(0);
      for (let i = 0; i < 10; i++) expect(g.admit({ _handle: { fd: 20 } }, 'front')).toBe(false);
      expect(g.refused).toBe(11);
      expect(log.lines).toHaveLength(1);
      expect(log.lines[0]).toMatchObject({ listener: 'front', fd: 960, limit: 1024, headroom: 64, released: 4 });
      await sleep(150);
      expect(g.held).toBe(4);
      expect(g.admit({ _handle: { fd: 20 } }, 'front')).toBe(true);
      // Met elsewhere: trips without a connection; within the log interval, counted only.
      g.exhausted(Object.assign(new Error('socket: too many open files'), { code: 'EMFILE' }), 'origin o');
      expect(g.trips).toBe(2);
      expect(g.admit({ _handle: { fd: 20 } }, 'front')).toBe(false);
      expect(log.lines).toHaveLength(1);
      g.exhausted(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'origin o');
      expect(g.trips).toBe(2);
    } finally {
      g.close();
    }
    expect(g.held).toBe(0);
  });

  it('reads the soft limit of this process', () => {
    expect(openFileLimit()).toBeGreaterThan(64);
  });
});
