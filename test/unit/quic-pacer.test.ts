/** The pacer (src/quic/pacer.ts): a token bucket filled at 1.25 × cwnd / RTT (RFC 9002 §7.7). */
import { describe, expect, it } from 'vitest';
import { MIN_BURST_PACKETS, Pacer, PACING_GAIN, TIMER_SLACK_MS } from '../../src/quic/pacer.js';

const MTU = 1350;

/** Send full packets for `ms` of simulated time, waking when told; returns bytes sent. */
function run(p: Pacer, start: number, ms: number): number {
  let now = start;
  let sent = 0;
  for (let guard = 0; guard < 1_000_000 && now < start + ms; guard++) {
    const wait = p.allow(now);
    if (wait > 0) {
      now += Math.max(1, Math.ceil(wait)); // the driver's timer: whole ms, at least 1
      continue;
    }
    p.sent(MTU);
    sent += MTU;
  }
  return sent;
}

describe('Pacer', () => {
  it('before any RTT sample, and under 1 ms of RTT (loopback), nothing is held back', () => {
    const p = new Pacer(MTU, 0);
    for (let i = 0; i < 1000; i++) p.sent(MTU);
    expect(p.allow(0)).toBe(0);
    p.update(1_000_000, 0, 0);
    for (let i = 0; i < 1000; i++) p.sent(MTU);
    expect(p.allow(0)).toBe(0);
  });

  it('a first burst of 10 packets, then the rate: 1.25 × cwnd / RTT over a second, within one packet per timer tick', () => {
    const p = new Pacer(MTU, 0);
    const cwnd = 100 * MTU;
    p.update(cwnd, 50, 0);
    let burst = 0;
    while (p.allow(0) === 0 && burst < 1000) {
      p.sent(MTU);
      burst++;
    }
    expect(burst).toBe(Math.max(MIN_BURST_PACKETS, Math.ceil((((PACING_GAIN * cwnd) / 50) * TIMER_SLACK_MS) / MTU)));
    const sent = run(p, 0, 1000);
    const expected = PACING_GAIN * cwnd * (1000 / 50);
    expect(sent).toBeGreaterThan(0.97 * expected);
    expect(sent).toBeLessThan(1.03 * expected + burst * MTU);
  });

  it('idle time does not build a burst beyond the bucket; a smaller window slows it at once', () => {
    const p = new Pacer(MTU, 0);
    p.update(1000 * MTU, 10, 0);
    let n = 0;
    while (p.allow(10_000) === 0 && n < 100_000) {
      p.sent(MTU);
      n++;
    }
    // At 125 packets/ms the bucket holds TIMER_SLACK_MS of sending, not 10 s of it.
    expect(n).toBeLessThanOrEqual(Math.ceil(((PACING_GAIN * 1000) / 10) * TIMER_SLACK_MS) + 1);
    p.update(10 * MTU, 10, 10_000);
    expect(p.allow(10_000)).toBeGreaterThan(0);
    expect(run(p, 10_000, 100)).toBeLessThan(1.1 * PACING_GAIN * 10 * MTU * (100 / 10) + 10 * MTU);
  });
});
