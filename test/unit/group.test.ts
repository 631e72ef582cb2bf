/**
 * The decisions of an origin group (src/group/), without sockets: the balancers, passive ejection and its
 * bounds, panic, active checks' rise and fall (never more than one in flight), the retry budget's window,
 * the hedge delay, and the check of its options.
 */
import diagnostics from 'node:diagnostics_channel';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, OriginlinkError } from '../../src/errors.js';
import { RetryBudget } from '../../src/group/budget.js';
import type { EndpointEvent } from '../../src/group/diagnostics.js';
import { Group } from '../../src/group/group.js';
import { HedgeTimer } from '../../src/group/hedge-timer.js';
import { RecentLatency } from '../../src/group/latency.js';
import { resolveGroupOptions, type GroupOptions } from '../../src/group/options.js';

const eps = (n: number, weights: number[] = []): GroupOptions['endpoints'] =>
  Array.from({ length: n }, (_, i) => ({ url: `https://e${i}.test`, weight: weights[i] ?? 1 }));
const group = (o: Partial<GroupOptions> & { n?: number; weights?: number[] } = {}): Group => {
  const { n, weights, ...rest } = o;
  return new Group('https://g.test', resolveGroupOptions({ endpoints: eps(n ?? 3, weights), ...rest }, 'g'));
};
const load = (g: Group, loads: number[]): void => {
  g.endpoints.forEach((e, i) => {
    e.pool = { load: loads[i] ?? 0 };
  });
};
const reset = new OriginlinkError(ErrorCode.SOCKET_RESET, 'network', 'reset');
const events: EndpointEvent[] = [];
const onEvent = (m: unknown): void => {
  events.push(m as EndpointEvent);
};
diagnostics.subscribe('originlink:endpoint', onEvent);
afterEach(() => {
  events.length = 0;
  vi.useRealTimers();
});

describe('balance', () => {
  it('p2c: of two endpoints drawn, the one with fewer requests in flight wins', () => {
    const g = group({ n: 2 });
    load(g, [5, 0]);
    for (let i = 0; i < 50; i++) expect(g.pick(performance.now())).toBe(g.endpoints[1]);
  });

  it('p2c: with three endpoints the busiest is never picked (two distinct draws always hold a less busy one)', () => {
    const g = group();
    load(g, [1, 9, 1]);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(g.pick(performance.now()).index);
    expect([...seen].sort()).toEqual([0, 2]);
  });

  it('p2c weighs the count by the weight: an endpoint of weight 3 costs as much with 2 in flight as one of weight 1 with none', () => {
    const g = group({ n: 2, weights: [3, 1] });
    load(g, [1, 0]);
    for (let i = 0; i < 30; i++) expect(g.pick(performance.now()).index).toBe(0);
    load(g, [3, 0]);
    for (let i = 0; i < 30; i++) expect(g.pick(performance.now()).index).toBe(1);
  });

  it('round-robin is smooth and weighted (nginx): 4, 1, 1 gives 4, 1, 1 in every 6, never two of the light ones in a row', () => {
    const g = group({ balance: 'round-robin', weights: [4, 1, 1] });
    const seq = Array.from({ length: 12 }, () => g.pick(performance.now()).index);
    expect(seq.filter((i) => i === 0)).toHaveLength(8);
    for (let i = 1; i < seq.length; i++) expect(seq[i] !== 0 && seq[i - 1] !== 0).toBe(false);
  });

  it('ewma: the endpoint with the lower Peak-EWMA wins; a peak is taken whole; an estimate left alone decays', () => {
    const g = group({ balance: 'ewma', n: 2 });
    const now = performance.now();
    g.answered(g.endpoints[0]!, 200, 100, now);
    g.answered(g.endpoints[1]!, 200, 2, now);
    for (let i = 0; i < 20; i++) expect(g.pick(now).index).toBe(1);
    g.answered(g.endpoints[1]!, 200, 300, now + 1); // a peak: taken whole at once
    expect(g.stats().endpoints[1]?.ewmaMs).toBeGreaterThanOrEqual(299);
    expect(g.pick(now + 1).index).toBe(0);
    // 10 s of silence (the decay time) later, the estimates are 1/e of themselves.
    expect(g.stats().endpoints[0]!.ewmaMs).toBeGreaterThan(99);
  });

  it('ewma: a lower sample weighs at least 1/16 however soon it follows (a peak fades within ~50 answers); a clock read earlier never makes the estimate older', () => {
    const g = group({ balance: 'ewma', n: 2 });
    const e = g.endpoints[0]!;
    const now = performance.now() + 60_000;
    g.answered(e, 200, 100, now);
    g.answered(e, 200, 1, now); // the same turn's reading (util/clock.ts)
    expect(e.state.ewmaMs).toBeCloseTo(100 - 99 / 16, 9);
    g.answered(e, 200, 1, now - 5_000); // an attempt whose answer's turn began before the last sample was taken
    expect(e.state.ewmaAt).toBe(now);
    for (let i = 1; i <= 60; i++) g.answered(e, 200, 1, now + i); // 1 ms apart: by time alone each would weigh 1/10000
    expect(e.state.ewmaMs).toBeLessThan(5);
  });

  it('failover: each request starts at the next endpoint in turn (the urls rotation); a retry moves down the list', () => {
    const g = group({ balance: 'failover' });
    expect([0, 1, 2, 3].map(() => g.pick(performance.now()).index)).toEqual([0, 1, 2, 0]);
    expect(g.pickAgain([g.endpoints[1]!], performance.now()).index).toBe(2);
    expect(g.pickAgain([g.endpoints[2]!, g.endpoints[0]!], performance.now()).index).toBe(1);
  });

  it('a retry or hedge goes to an endpoint not tried, usable if any is', () => {
    const g = group({ outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 } });
    const now = performance.now();
    g.failed(g.endpoints[2]!, reset, 1, now);
    for (let i = 0; i < 30; i++) expect(g.pickAgain([g.endpoints[0]!], now).index).toBe(1);
    // Everything tried: any other than the last one.
    expect(g.pickAgain([g.endpoints[0]!, g.endpoints[1]!], now).index).not.toBe(1);
  });
});

describe('outlier ejection', () => {
  it('consecutiveFailures in a row eject (told once); an answer between them resets the count; our own failures count nothing', () => {
    const g = group({ outlier: { consecutiveFailures: 3, maxEjectionPercent: 50 } });
    const e = g.endpoints[0]!;
    const now = performance.now();
    g.failed(e, reset, 1, now);
    g.failed(e, reset, 1, now);
    g.answered(e, 200, 1, now);
    g.failed(e, reset, 1, now);
    g.failed(e, new OriginlinkError(ErrorCode.ABORTED, 'local', 'aborted'), 1, now);
    g.failed(e, new OriginlinkError(ErrorCode.QUEUE_FULL, 'local', 'full'), 1, now);
    g.answered(e, 503, 1, now);
    expect(e.usable(now)).toBe(true);
    g.answered(e, 504, 1, now);
    expect(e.usable(now)).toBe(false);
    expect(events.map((x) => [x.event, x.endpoint])).toEqual([['ejected', 'https://e0.test']]);
    expect(events[0]?.forMs).toBe(30_000);
    for (let i = 0; i < 50; i++) expect(g.pick(now).index).not.toBe(0);
  });

  it('maxEjectionPercent: past it an endpoint stays in however it fails (at least one may always go)', () => {
    const g = group({ outlier: { consecutiveFailures: 1, maxEjectionPercent: 10 } });
    const now = performance.now();
    g.failed(g.endpoints[0]!, reset, 1, now);
    g.failed(g.endpoints[1]!, reset, 1, now);
    expect(g.stats().endpoints.map((e) => e.health)).toEqual(['ejected', 'healthy', 'healthy']);
  });

  it('an ejection ends on time with no request to notice (re-admitted, told once)', async () => {
    const g = group({ outlier: { consecutiveFailures: 1, baseEjectionMs: 40, maxEjectionPercent: 50 } });
    const t = performance.now();
    g.failed(g.endpoints[0]!, reset, 1, t);
    expect(events.at(-1)?.forMs).toBe(40);
    try {
      await vi.waitFor(() => expect(events.map((x) => x.event)).toEqual(['ejected', 'readmitted']), {
        timeout: 1000,
        interval: 5,
      });
      expect(performance.now() - t).toBeGreaterThanOrEqual(39);
      expect(g.stats().endpoints[0]?.health).toBe('healthy');
    } finally {
      g.close();
    }
  });

  it('an ejection lasts baseEjectionMs × times ejected; time spent admitted lowers the count by one per baseEjectionMs', () => {
    const g = group({ outlier: { consecutiveFailures: 1, baseEjectionMs: 40, maxEjectionPercent: 50 } });
    const e = g.endpoints[0]!;
    const t = performance.now();
    try {
      g.failed(e, reset, 1, t);
      expect(events.at(-1)?.forMs).toBe(40);
      g.pick(t + 41); // the ejection is over: re-admitted at t + 41
      g.failed(e, reset, 1, t + 42);
      expect(events.at(-1)?.forMs).toBe(80);
      g.pick(t + 123); // re-admitted at t + 123, then admitted for two and a half base lengths: the count falls by two
      g.failed(e, reset, 1, t + 123 + 100); // (not + 80: in floating point t + 203 − (t + 123) may be 79.999…)
      expect(events.at(-1)?.forMs).toBe(40);
      expect(events.map((x) => x.event)).toEqual(['ejected', 'readmitted', 'ejected', 'readmitted', 'ejected']);
    } finally {
      g.close();
    }
  });

  it('panic: with every endpoint out, all are used again (told once as it begins and as it ends)', () => {
    const g = group({ n: 2, outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 } });
    const now = performance.now();
    g.failed(g.endpoints[0]!, reset, 1, now);
    g.failed(g.endpoints[1]!, reset, 1, now);
    expect(g.stats().panic).toBe(true);
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) seen.add(g.pick(now).index);
    expect(seen.size).toBe(2);
    expect(events.filter((x) => x.event === 'panic')).toHaveLength(1);
    g.close();
  });
});

describe('active checks', () => {
  it('fall failures make an endpoint unhealthy, rise passes healthy again; a pass ends an ejection', async () => {
    const g = group({
      n: 2,
      health: { intervalMs: 20, timeoutMs: 10, rise: 2, fall: 2 },
      outlier: { consecutiveFailures: 1, maxEjectionPercent: 50 },
    });
    let status = 503;
    g.startChecks(async (ep) => (ep.index === 0 ? status : 200));
    await vi.waitFor(() => expect(g.stats().endpoints[0]?.health).toBe('unhealthy'), { timeout: 2000 });
    status = 200;
    await vi.waitFor(() => expect(g.stats().endpoints[0]?.health).toBe('healthy'), { timeout: 2000 });
    g.failed(g.endpoints[1]!, reset, 1, performance.now());
    expect(g.stats().endpoints[1]?.health).toBe('ejected');
    await vi.waitFor(() => expect(g.stats().endpoints[1]?.health).toBe('healthy'), { timeout: 2000 });
    g.close();
    expect(events.filter((e) => e.endpoint === 'https://e0.test').map((e) => e.event)).toEqual([
      'unhealthy',
      'healthy',
    ]);
    expect(events.filter((e) => e.endpoint === 'https://e1.test').map((e) => e.event)).toEqual([
      'ejected',
      'readmitted',
    ]);
  });

  it("a check goes out with a signal of our own, not an AbortSignal (one beside the service's signals cost every request ~12 % CPU)", async () => {
    const g = group({ n: 1, health: { intervalMs: 20, timeoutMs: 10 } });
    const signals: unknown[] = [];
    g.startChecks(async (_ep, _path, signal) => {
      signals.push(signal);
      return 200;
    });
    await vi.waitFor(() => expect(signals.length).toBeGreaterThanOrEqual(1), { timeout: 1000 });
    g.close();
    expect(signals[0]).not.toBeInstanceOf(AbortSignal);
    expect((signals[0] as { aborted: boolean }).aborted).toBe(false);
  });

  it('a check that does not answer within timeoutMs fails, and no second check starts while one runs', async () => {
    const g = group({ n: 1, health: { intervalMs: 30, timeoutMs: 25, rise: 1, fall: 1 } });
    let inFlight = 0;
    let most = 0;
    let calls = 0;
    g.startChecks(
      (_ep, _path, signal) =>
        new Promise((_res, rej) => {
          calls++;
          most = Math.max(most, ++inFlight);
          signal.addEventListener('abort', () => {
            inFlight--;
            rej(signal.reason);
          });
        }),
    );
    await new Promise((r) => setTimeout(r, 200));
    // The check in flight at close() (none when close falls between a timeout and the next check, as a loaded
    // machine's late timers make it) is aborted by close, not counted as failed.
    const open = inFlight;
    g.close();
    expect(most).toBe(1);
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(g.stats().endpoints[0]).toMatchObject({ health: 'unhealthy', checkFailures: calls - open });
  });
});

describe('retry budget', () => {
  it('retries in the last second ≤ ratio × first attempts + minPerSecond; refusals counted; old buckets leave', () => {
    const b = new RetryBudget(0.2, 2);
    const t = 10_000;
    for (let i = 0; i < 10; i++) b.request(t);
    expect([1, 2, 3, 4, 5].map(() => b.take(t + 10))).toEqual([true, true, true, true, false]);
    expect(b.refused).toBe(1);
    expect(b.take(t + 1100)).toBe(true); // a second later the window is empty: minPerSecond again
    expect(b.take(t + 1100)).toBe(true);
    expect(b.take(t + 1100)).toBe(false);
  });

  it('first attempts fund retries at the rate of now: a second of traffic before an outage does not pay for its retries', () => {
    const takes = (b: RetryBudget, now: number): number => {
      let n = 0;
      while (n < 1000 && b.take(now)) n++;
      return n;
    };
    const steady = (b: RetryBudget, t: number): void => {
      for (let ms = 0; ms < 1000; ms += 10) b.request(t + ms); // 100 a second, for a second
    };
    const t = 20_000;
    // The rate goes on: the whole second funds them (0.2 × 100 + 2).
    const on = new RetryBudget(0.2, 2);
    steady(on, t);
    expect(takes(on, t + 995)).toBe(22);
    // The rate falls to nothing (every attempt waits on failures): 300 ms later only minPerSecond is left, where the
    // second before would have funded 0.2 × 70 + 2.
    const off = new RetryBudget(0.2, 2);
    steady(off, t);
    expect(takes(off, t + 1250)).toBe(2);
    // A burst of failures at one moment draws on the rate that carried them.
    const burst = new RetryBudget(0.2, 2);
    for (let i = 0; i < 50; i++) burst.request(t + 5);
    expect(takes(burst, t + 6)).toBe(12);
  });

  it('first attempts fund retries in the measure that attempts are answered: when nearly all fail, minPerSecond is left', () => {
    const t = 30_000;
    const b = new RetryBudget(0.2, 2);
    for (let ms = 0; ms < 1000; ms += 10) b.request(t + ms);
    for (let i = 0; i < 16; i++) b.outcome(false); // the share of answered attempts: (15/16)^16, 0.36
    let n = 0;
    while (n < 100 && b.take(t + 995)) n++;
    expect(n).toBe(9); // 0.2 × 100 × 0.36 + 2
    for (let i = 0; i < 200; i++) b.outcome(false);
    expect(b.take(t + 995)).toBe(false); // the nine, and nothing funded beyond minPerSecond
    for (let i = 0; i < 200; i++) b.outcome(true);
    expect(b.take(t + 995)).toBe(true);
  });
});

describe('hedge delay', () => {
  it('afterMs as given; a percentile of recent head latencies once there are enough, never below minMs', () => {
    expect(group({ hedge: { afterMs: 7 } }).hedgeDelay()).toBe(7);
    const g = group({ hedge: { percentile: 90, minMs: 3 } });
    expect(g.hedgeDelay()).toBe(-1);
    // Worked out again every 64 samples: after 144, over all 144 of them.
    for (let i = 1; i <= 144; i++) g.answered(g.endpoints[0]!, 200, i, performance.now());
    expect(g.hedgeDelay()).toBe(130);
    const r = new RecentLatency(50);
    for (let i = 0; i < 64; i++) r.add(1);
    expect(r.value).toBe(1);
    const fast = group({ hedge: { percentile: 50, minMs: 3 } });
    for (let i = 0; i < 64; i++) fast.answered(fast.endpoints[0]!, 200, 1, performance.now());
    expect(fast.hedgeDelay()).toBe(3);
  });

  it('one timer for many: entries fire in order, each once, at their time', async () => {
    const t = new HedgeTimer();
    const fired: number[] = [];
    const late: number[] = [];
    const now = performance.now();
    for (const [i, d] of [
      [1, 10],
      [2, 20],
      [3, 20],
      [4, 40],
    ] as const)
      t.add({
        hedgeAt: now + d,
        hedgeDue: () => {
          fired.push(i);
          late.push(performance.now() - (now + d));
        },
      });
    // Read when the first three have fired, not after a fixed sleep: on a loaded machine the sleep itself may end
    // after the fourth entry's time too.
    await vi.waitFor(() => expect(fired.length).toBeGreaterThanOrEqual(3), { timeout: 2000, interval: 1 });
    if (performance.now() - now < 39) expect(fired).toEqual([1, 2, 3]);
    await vi.waitFor(() => expect(fired).toEqual([1, 2, 3, 4]), { timeout: 2000 });
    // None before its time (timers fire on whole milliseconds: the timer takes an entry due within the next one).
    for (const l of late) expect(l).toBeGreaterThanOrEqual(-1);
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toEqual([1, 2, 3, 4]);
    t.close();
  });
});

describe('options', () => {
  it.each([
    [{ endpoints: [] }, 'g.endpoints: needs at least one endpoint'],
    [{ endpoints: [{ url: 'https://a.test/x' }] }, 'g.endpoints[0].url: must be scheme://host[:port] only'],
    [
      { endpoints: [{ url: 'https://a.test' }, { url: 'https://a.test:443' }] },
      'g.endpoints[1].url: https://a.test is already an endpoint',
    ],
    [{ endpoints: eps(1), balance: 'least' }, 'g.balance: must be one of p2c, ewma, round-robin, failover'],
    [{ endpoints: [{ url: 'https://a.test', weight: 0 }] }, 'g.endpoints[0].weight: must be an integer 1 … 1000'],
    [{ endpoints: eps(1), health: { intervalMs: 100, timeoutMs: 200 } }, 'g.health.timeoutMs: must be ≤ intervalMs'],
    [{ endpoints: eps(1), health: { expectStatus: '2xx' } }, 'g.health.expectStatus: must be a status'],
    [
      { endpoints: eps(1), outlier: { consecutiveFailures: 0 } },
      'g.outlier.consecutiveFailures: must be between 1 and 1000',
    ],
    [{ endpoints: eps(1), hedge: {} }, 'g.hedge: give exactly one of afterMs or percentile'],
    [{ endpoints: eps(1), hedge: { percentile: 10 } }, 'g.hedge.percentile: must be between 50 and 99.9'],
    [
      { endpoints: eps(1), collapse: { key: ['Cookie'] } },
      'g.collapse.key[0]: cookie: a request carrying it is never collapsed',
    ],
    [{ endpoints: eps(1), retryBudget: { ratio: -1 } }, 'g.retryBudget.ratio: must be between 0 and 10'],
    [{ endpoints: eps(1), outlier: { maxEjections: 1 } }, 'g.outlier.maxEjections: unknown option'],
  ])('refuses %j', (o, msg) => {
    expect(() => resolveGroupOptions(o as unknown as GroupOptions, 'g')).toThrow(msg);
  });

  it('fills the defaults (HAProxy check inter 2s rise 2 fall 3; Envoy outlier 5, 30 s, 10 %; Linkerd budget 0.2 + 10/s)', () => {
    const r = resolveGroupOptions({ endpoints: eps(2), health: {}, outlier: {}, retryBudget: {}, collapse: true }, 'g');
    expect(r).toMatchObject({
      balance: 'p2c',
      health: { path: '/', intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3, expect: [[200, 399]] },
      outlier: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 10 },
      retryBudget: { ratio: 0.2, minPerSecond: 10 },
      collapse: { key: [], maxWaiters: 256 },
      hedge: null,
    });
  });
});
