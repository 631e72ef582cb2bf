/**
 * service/ticket-keys.ts: keys derived from a fleet secret and the wall clock — equal for equal secrets and epochs,
 * different across epochs and secrets, switched at the boundary (a fake clock); and the Retry token key derived from
 * the same secret, so a token one instance minted is taken by another (quic/retry.ts).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { RetryTokens } from '../../src/quic/retry.js';
import { derive, TicketKeys } from '../../src/service/ticket-keys.js';

describe('ticket keys', () => {
  it('the same secret and epoch give the same 48-byte key; another epoch or secret another', () => {
    const s = randomBytes(32);
    const k = derive(s, 'x', 7, 48);
    expect(k).toHaveLength(48);
    expect(derive(Buffer.from(s), 'x', 7, 48).equals(k)).toBe(true);
    expect(derive(s, 'x', 8, 48).equals(k)).toBe(false);
    expect(derive(randomBytes(32), 'x', 7, 48).equals(k)).toBe(false);
    expect(derive(s, 'y', 7, 48).equals(k)).toBe(false);
  });

  it('rotates at the epoch boundary: listeners get the next key, two holders of the secret agree', () => {
    vi.useFakeTimers();
    try {
      let now = 10_000_500;
      const clock = (): number => now;
      const s = randomBytes(32);
      const a = new TicketKeys(s, 1000, 'file', clock);
      const b = new TicketKeys(s, 1000, 'file', clock);
      expect(a.key().equals(b.key())).toBe(true);
      const seen: Buffer[] = [];
      a.onRotate((k) => seen.push(k));
      const before = a.key();
      now += 500;
      vi.advanceTimersByTime(500);
      expect(seen).toHaveLength(1);
      expect(a.key().equals(before)).toBe(false);
      expect(a.epoch).toBe(10_001);
      now += 1000;
      vi.advanceTimersByTime(1000);
      expect(seen).toHaveLength(2);
      b.stop();
      a.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('Retry tokens: minted under the fleet key by one instance, checked by another; not under another key', () => {
    const s = randomBytes(32);
    const a = new TicketKeys(s, 3_600_000, 'file');
    const b = new TicketKeys(s, 3_600_000, 'file');
    const odcid = randomBytes(8);
    const t = new RetryTokens(a.fleetKey('originlink retry token')).mint('192.0.2.1', 4433, odcid);
    expect(new RetryTokens(b.fleetKey('originlink retry token')).check('192.0.2.1', 4433, t)).toEqual(odcid);
    expect(new RetryTokens().check('192.0.2.1', 4433, t)).toBeNull();
    a.stop();
    b.stop();
  });
});
