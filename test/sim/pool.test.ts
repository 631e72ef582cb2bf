/**
 * The Pool over fake connections with a fake clock: merged dials,
 * maxConnecting, backoff with jitter, queue bounds, surplus idle, the
 * server's keep-alive hint, max age with jitter, GOAWAY drain, request and
 * error limits, PING health checks, close/destroy. Deterministic; no sockets.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, OriginlinkError } from '../../src/errors.js';
import type { ConnRequest, PooledConnection, Protocol } from '../../src/http/types.js';
import { resolvePoolOptions, type PoolOptions } from '../../src/pool/options.js';
import { Pool, type PoolResult } from '../../src/pool/pool.js';
import { sharedTicker } from '../../src/pool/ticker.js';
import { FakeConnection, type FakeOptions } from '../helpers/fake-connection.js';

const req = (path = '/'): ConnRequest => ({
  method: 'GET',
  path,
  authority: 'o.test',
  scheme: 'http',
  headers: [],
  body: null,
});

/** A dialer whose dials the test resolves (`open`) or fails (`refuse`), or that answers at once with `auto`. */
class Dialer {
  readonly conns: FakeConnection[] = [];
  pending: Array<{ resolve: (c: PooledConnection) => void; reject: (e: Error) => void }> = [];
  constructor(
    private readonly fake: FakeOptions = {},
    private readonly immediate = true,
  ) {}
  dial = (): Promise<PooledConnection> => {
    if (this.immediate) return Promise.resolve(this.#make());
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  };
  #make(): FakeConnection {
    const c = new FakeConnection(this.fake);
    this.conns.push(c);
    return c;
  }
  open(): FakeConnection {
    const c = this.#make();
    this.pending.shift()!.resolve(c);
    return c;
  }
  refuse(): void {
    this.pending.shift()!.reject(new OriginlinkError(ErrorCode.CONNECT_FAILED, 'network', 'connect ECONNREFUSED'));
  }
}

const pools: Pool[] = [];
function pool(d: Dialer, opts: Partial<PoolOptions> = {}, protocol: Protocol | null = 'h1'): Pool {
  const p = new Pool('k', 'http://o.test', resolvePoolOptions({ pingIntervalMs: 0, ...opts }), d.dial, protocol);
  pools.push(p);
  return p;
}

const tick = (ms = 0): Promise<void> => vi.advanceTimersByTimeAsync(ms);
const finish = async (r: Promise<PoolResult>): Promise<PoolResult> => {
  const x = await r;
  x.res.body.resume();
  await tick();
  return x;
};

beforeEach(() => {
  // setImmediate too: util/clock.ts keeps one reading per turn of the loop, forgotten by an Immediate — faked, it
  // runs as the fake time advances, so each step of a simulation reads the fake clock anew.
  vi.useFakeTimers({
    toFake: [
      'setTimeout',
      'clearTimeout',
      'setInterval',
      'clearInterval',
      'setImmediate',
      'clearImmediate',
      'performance',
      'Date',
    ],
  });
});
afterEach(() => {
  for (const p of pools.splice(0)) p.destroy();
  expect(sharedTicker.size).toBe(0);
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('dialling', () => {
  it('a multiplexed (or not yet known) protocol merges concurrent dials into one', async () => {
    const d = new Dialer({ protocol: 'h2', auto: true }, false);
    const p = pool(d, {}, null);
    const rs = Array.from({ length: 20 }, () => p.request(req()));
    await tick();
    expect(d.pending).toHaveLength(1);
    d.open();
    await Promise.all(rs.map(finish));
    expect(d.conns).toHaveLength(1);
    expect(p.stats()).toMatchObject({ requests: 20, connectionsOpened: 1 });
  });

  it('h1: at most maxConnecting dials in flight; a connection freed meanwhile serves the queue', async () => {
    const d = new Dialer({ auto: true }, false);
    const p = pool(d, { maxConnecting: 3 });
    const rs = Array.from({ length: 10 }, (_, i) => p.request(req(`/${i}`)));
    await tick();
    expect(d.pending).toHaveLength(3);
    d.open();
    // The first connection serves the whole queue, one request at a time, while the other dials are still out.
    for (const r of rs) {
      await finish(r);
      expect(d.pending.length).toBeLessThanOrEqual(3); // never more than maxConnecting dials in flight
    }
    expect(d.conns[0]!.served).toBe(10);
    while (d.pending.length) d.open();
    await tick();
    expect(p.stats().requests).toBe(10);
  });

  it('connect failures back off 100 ms doubling with jitter; waiters fail at once, retry-safe, each with its own error; requests during the backoff are answered at once', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const d = new Dialer({ auto: true }, false);
    const p = pool(d);
    const a = p.request(req()).catch((e: unknown) => e as OriginlinkError);
    const b = p.request(req()).catch((e: unknown) => e as OriginlinkError);
    await tick();
    expect(d.pending).toHaveLength(2); // h1: one dial per waiter (up to maxConnecting)
    d.refuse();
    d.refuse();
    const [ea, eb] = await Promise.all([a, b]);
    expect([ea.code, ea.retrySafe, ea.facts?.requestSent]).toEqual([ErrorCode.CONNECT_FAILED, true, false]);
    expect(ea).not.toBe(eb); // errors are values: each waiter gets its own
    expect(eb.retrySafe).toBe(true);
    // Two failures so far: the next dial waits min(max, 100 × 2^(2−1)) × (0.5 + 0.5 × random) = 100 ms. A request
    // inside it is answered at once with the last failure, naming the origin (issue 45), and dials nothing.
    const c = await p.request(req()).catch((e: unknown) => e as OriginlinkError);
    expect([c.code, c.retrySafe, c.details['origin'], c.details['backoffMs'], d.pending.length]).toEqual([
      ErrorCode.CONNECT_FAILED,
      true,
      p.origin,
      100,
      0,
    ]);
    await tick(99);
    expect((await p.request(req()).catch((e: unknown) => e as OriginlinkError)).code).toBe(ErrorCode.CONNECT_FAILED);
    expect(d.pending).toHaveLength(0);
    await tick(1);
    // The backoff is over: the next request dials (and waits for that dial).
    const c2 = p.request(req()).catch((e: unknown) => e as OriginlinkError);
    await tick();
    expect(d.pending).toHaveLength(1);
    d.refuse();
    expect((await c2).code).toBe(ErrorCode.CONNECT_FAILED);
    // Third failure: 400 × 0.5 = 200 ms.
    await tick(200);
    const e = p.request(req());
    await tick();
    expect(d.pending).toHaveLength(1);
    d.open().exchanges.length;
    await tick();
    d.conns.at(-1)!.exchanges[0]!.respond();
    await finish(e);
  });

  it('h1: a request takes the most recently released idle connection without looking at the others', async () => {
    const d = new Dialer({ auto: false }, true);
    const p = pool(d, { maxConnections: 40, maxConnecting: 40 });
    const first = Array.from({ length: 40 }, () => p.request(req()));
    await tick();
    expect(d.conns).toHaveLength(40);
    // Answer them in order: the last one answered is the most recently released.
    for (const c of d.conns) c.exchanges[0]!.respond();
    await Promise.all(first.map(finish));
    let looks = 0;
    for (const c of d.conns) {
      const usable = c.isUsable.bind(c);
      c.isUsable = () => {
        looks++;
        return usable();
      };
    }
    const used = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const r = p.request(req());
      await tick();
      const c = d.conns.find((x) => x.active === 1)!;
      used.add(c.id);
      c.exchanges[c.exchanges.length - 1]!.respond();
      await finish(r);
    }
    expect([...used]).toEqual([d.conns[39]!.id]);
    // One look per request (the connection taken), not one per connection of the pool.
    expect(looks).toBeLessThanOrEqual(200);
  });

  it('never more than maxConnections', async () => {
    const d = new Dialer({}, true);
    const p = pool(d, { maxConnections: 2, maxConnecting: 8 });
    const rs = Array.from({ length: 5 }, () => p.request(req()));
    await tick();
    expect(d.conns).toHaveLength(2);
    expect(p.stats()).toMatchObject({ busy: 2, pending: 3 });
    // Answer whatever is on the two connections until all five are done: no third connection.
    let answered = 0;
    for (let i = 0; i < 10 && answered < 5; i++) {
      for (const c of d.conns)
        for (const x of c.exchanges.splice(0)) {
          x.respond();
          answered++;
        }
      await tick();
      for (const r of rs) void r.then((x) => x.res.body.resume());
      await tick();
    }
    await Promise.all(rs);
    expect(answered).toBe(5);
    expect(d.conns).toHaveLength(2);
  });
});

describe('load (what p2c and ewma read)', () => {
  // The pool keeps the count as requests come and go (#recount), not summing its connections at each read: the
  // truth is recomputed here from the connections themselves at every step.
  const truth = (d: Dialer, queued: number): number =>
    d.conns.reduce((n, c) => n + (c.state === 'closed' ? 0 : c.active), 0) + queued;

  it('h1: requests on connections plus queued ones, through answers, failures, a queue and a close', async () => {
    const d = new Dialer({}, true);
    const p = pool(d, { maxConnections: 3, maxConnecting: 3 });
    expect(p.load).toBe(0);
    const rs = Array.from({ length: 5 }, () => p.request(req()));
    await tick();
    expect(d.conns).toHaveLength(3);
    expect(p.load).toBe(5);
    expect(p.load).toBe(truth(d, 2));
    d.conns[0]!.exchanges[0]!.respond();
    await finish(rs[0]!);
    // The freed connection took a queued request.
    expect(p.load).toBe(4);
    expect(p.load).toBe(truth(d, 1));
    d.conns[1]!.exchanges[0]!.fail(ErrorCode.SOCKET_RESET, { close: true });
    await expect(rs[1]!).rejects.toThrow();
    await tick();
    expect(d.conns[1]!.state).toBe('closed');
    expect(p.load).toBe(truth(d, p.stats().pending));
    // Answer everything still open until nothing is left.
    for (let i = 0; i < 10 && p.load > 0; i++) {
      for (const c of d.conns) for (const x of c.exchanges) if (c.state !== 'closed') x.respond();
      await tick(1);
      for (const r of rs)
        void r.then(
          (x) => x.res.body.resume(),
          () => {},
        );
      await tick(1);
    }
    expect(p.load).toBe(0);
    expect(truth(d, 0)).toBe(0);
  });

  it('h2: streams count, one connection carrying many; a connection closed under its streams takes them out', async () => {
    const d = new Dialer({ protocol: 'h2' }, true);
    const p = pool(d, {}, 'h2');
    const rs = Array.from({ length: 7 }, () => p.request(req()));
    await tick();
    expect(d.conns).toHaveLength(1);
    expect(p.load).toBe(7);
    d.conns[0]!.exchanges[0]!.respond();
    d.conns[0]!.exchanges[1]!.respond();
    await Promise.all([finish(rs[0]!), finish(rs[1]!)]);
    expect(p.load).toBe(5);
    expect(p.load).toBe(truth(d, 0));
    for (const r of rs.slice(2)) r.catch(() => {});
    d.conns[0]!.destroy(new OriginlinkError(ErrorCode.SOCKET_RESET, 'remote', 'gone'));
    await tick();
    expect(p.load).toBe(0);
  });
});

describe('queue bounds', () => {
  it('maxPending: one more fails OL_QUEUE_FULL (retry-safe); pendingTimeoutMs: OL_QUEUE_TIMEOUT; abort while queued: OL_ABORTED', async () => {
    const d = new Dialer({}, false);
    const p = pool(d, { maxPending: 2, pendingTimeoutMs: 1000, maxConnections: 1 });
    // The first is the dial's: not pending. Two more wait.
    const first = p.request(req()).catch((e: unknown) => e as OriginlinkError);
    const a = p.request(req()).catch((e: unknown) => e as OriginlinkError);
    const ac = new AbortController();
    const b = p.request({ ...req(), signal: ac.signal }).catch((e: unknown) => e as OriginlinkError);
    const full = await p.request(req()).catch((e: unknown) => e as OriginlinkError);
    expect([full.code, full.retrySafe]).toEqual([ErrorCode.QUEUE_FULL, true]);
    ac.abort();
    expect((await b).code).toBe(ErrorCode.ABORTED);
    await tick(1000);
    expect((await a).code).toBe(ErrorCode.QUEUE_TIMEOUT);
    expect((await first).code).toBe(ErrorCode.QUEUE_TIMEOUT);
  });

  it('maxPending counts no request a dial under way will take: maxConnections 2, maxPending 3 accept 5 of 10, cold as warm', async () => {
    /** How many of `rs` were refused as full within the current turn of the fake clock. */
    const refused = async (rs: Array<Promise<unknown>>): Promise<number> => {
      let n = 0;
      for (const r of rs)
        void r.then(
          () => {},
          (e: unknown) => {
            if ((e as OriginlinkError).code === ErrorCode.QUEUE_FULL) n++;
          },
        );
      await tick(10);
      return n;
    };
    const cold = new Dialer({}, false);
    const p = pool(cold, { maxConnections: 2, maxPending: 3, pendingTimeoutMs: 60_000 });
    const coldRs = Array.from({ length: 10 }, () => p.request(req()));
    expect(await refused(coldRs)).toBe(5);
    expect(cold.pending).toHaveLength(2);

    const warm = new Dialer({}, true);
    const q = pool(warm, { maxConnections: 2, maxPending: 3, pendingTimeoutMs: 60_000 });
    const held = [q.request(req()), q.request(req())];
    await tick();
    expect(warm.conns).toHaveLength(2);
    expect(await refused([...held, ...Array.from({ length: 8 }, () => q.request(req()))])).toBe(5);
  });
});

describe('abort', () => {
  it('a request whose signal already fired is refused at once (OL_ABORTED), never queued nor dialled; aborts are counted', async () => {
    const d = new Dialer({}, false);
    const p = pool(d);
    const ac = new AbortController();
    ac.abort();
    const e = await p.request({ ...req(), signal: ac.signal }).catch((x: unknown) => x as OriginlinkError);
    expect([e.code, e.retrySafe]).toEqual([ErrorCode.ABORTED, true]);
    await tick();
    expect(d.pending).toHaveLength(0);
    expect(p.stats().errors[ErrorCode.ABORTED]).toBe(1);
  });
});

describe('idle, age and limits', () => {
  it('a surplus idle h1 connection closes after idleTimeoutMs/8; the last idle one after the full timeout', async () => {
    const d = new Dialer({ auto: true }, true);
    const p = pool(d, { idleTimeoutMs: 8000 });
    await Promise.all([p.request(req()), p.request(req())].map(finish));
    expect(d.conns).toHaveLength(2);
    await tick(999);
    expect(d.conns.map((c) => c.state)).toEqual(['ready', 'ready']);
    await tick(2);
    expect(d.conns.filter((c) => c.state === 'closed')).toHaveLength(1);
    await tick(7000);
    expect(d.conns.filter((c) => c.state === 'closed')).toHaveLength(2);
  });

  it('a surplus close dialled again within the idle timeout (a regret) makes the surplus stage the whole timeout; each idle timeout without one halves it back', async () => {
    const d = new Dialer({ auto: true }, true);
    const p = pool(d, { idleTimeoutMs: 8000 });
    const closed = (): number => d.conns.filter((c) => c.state === 'closed').length;
    /** Two requests at once (two connections in use), then idle: how long until one of them closes as surplus. */
    const surplusAfter = async (): Promise<number> => {
      await Promise.all([p.request(req()), p.request(req())].map(finish));
      const before = closed();
      for (let ms = 0; ms < 9000; ms += 250) {
        await tick(250);
        if (closed() > before) return ms + 250;
      }
      return -1;
    };
    expect(await surplusAfter()).toBe(1000);
    // The next pair needed a dial 1 s after that close: a regret, and the stage is the whole 8 s (the idle timeout
    // itself closes the connection then, surplus or not).
    const dials = d.conns.length;
    expect(await surplusAfter()).toBe(8000);
    expect(d.conns.length).toBe(dials + 1);
    // No regret since (the last close came at the full timeout): halved once for each idle timeout, at the next
    // connection going idle — 4 s, then 2 s, then back at an eighth.
    expect(await surplusAfter()).toBe(4000);
    await tick(9000);
    expect(await surplusAfter()).toBe(2000);
    await tick(9000);
    expect(await surplusAfter()).toBe(1000);
    await tick(9000);
    expect(await surplusAfter()).toBe(1000);
  });

  it("the server's Keep-Alive timeout shortens idle to the hint minus keepAliveMarginMs", async () => {
    const d = new Dialer({ auto: true }, true);
    const p = pool(d, { idleTimeoutMs: 30_000, keepAliveMarginMs: 1000 });
    const r = p.request(req());
    await tick();
    d.conns[0]!.emit({ type: 'keepalive-hint', timeoutMs: 5000 });
    await finish(r);
    await tick(3999); // surplus phase ends at 4000/8 = 500 ms; the lone connection waits the full 4000 ms
    expect(d.conns[0]!.state).toBe('ready');
    await tick(2);
    expect(d.conns[0]!.state).toBe('closed');
  });

  it('an origin that closes idle connections without saying when: two closes agreeing set idle to that less the margin', async () => {
    const d = new Dialer({ auto: true }, true);
    const p = pool(d, { idleTimeoutMs: 30_000, keepAliveMarginMs: 1000 });
    await finish(p.request(req()));
    await tick(15_000);
    d.conns[0]!.destroy(); // the origin's close of an idle connection: one is not enough
    expect(p.stats().idleObservedMs).toBeUndefined();
    await finish(p.request(req()));
    await tick(15_200);
    d.conns[1]!.destroy();
    expect(p.stats().idleObservedMs).toBe(15_000);
    expect(d.conns[1]!.facts.keepAliveObservedMs).toBe(15_000);
    await finish(p.request(req()));
    expect(d.conns[2]!.facts.keepAliveObservedMs).toBe(15_000);
    await tick(13_999); // ours goes at 15000 − 1000, before the origin's close
    expect(d.conns[2]!.state).toBe('ready');
    await tick(2);
    expect(d.conns[2]!.state).toBe('closed');
    expect(p.stats().idleObservedMs).toBe(15_000); // our own close is no observation
  });

  it('closes at once (a restart), or after less idle than a connection survived, are no idle timeout', async () => {
    const d = new Dialer({ auto: true }, true);
    const p = pool(d, { idleTimeoutMs: 60_000 });
    const a = p.request(req());
    const b = p.request(req());
    await finish(a);
    await finish(b);
    await tick(5_000);
    d.conns[0]!.destroy();
    d.conns[1]!.destroy(); // the same idle period, the same moment: one event
    expect(p.stats().idleObservedMs).toBeUndefined();
    await finish(p.request(req()));
    await tick(20_000);
    await finish(p.request(req())); // handed out after 20 s idle: the origin keeps connections that long
    await tick(10_000);
    d.conns[2]!.destroy();
    await finish(p.request(req()));
    await tick(10_000);
    d.conns[3]!.destroy();
    expect(p.stats().idleObservedMs).toBeUndefined();
  });

  it('minWarm connections are opened ahead and kept', async () => {
    const d = new Dialer({ auto: true }, true);
    pool(d, { minWarm: 2, idleTimeoutMs: 1000 });
    await tick();
    expect(d.conns).toHaveLength(2);
    await tick(5000);
    expect(d.conns.every((c) => c.state === 'ready')).toBe(true);
  });

  it('max age with jitter: maxAgeMs × (1 − jitter × random); the next request dials anew', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const d = new Dialer({ auto: true, protocol: 'h2' }, true);
    const p = pool(d, { maxAgeMs: 10_000, maxAgeJitter: 0.2, idleTimeoutMs: 60_000 }, 'h2');
    await finish(p.request(req()));
    await tick(8999); // 10000 × (1 − 0.2 × 0.5) = 9000
    await finish(p.request(req()));
    expect(d.conns).toHaveLength(1);
    await tick(2);
    await finish(p.request(req()));
    expect(d.conns).toHaveLength(2);
    expect(d.conns[0]!.state).toBe('closed');
  });

  it('maxRequestsPerConnection drains; maxConsecutiveErrors drains', async () => {
    const d = new Dialer({ auto: true }, true);
    const p = pool(d, { maxRequestsPerConnection: 2 });
    for (let i = 0; i < 4; i++) await finish(p.request(req()));
    expect(d.conns).toHaveLength(2);
    const e = new Dialer(
      { script: [{ fail: ErrorCode.STREAM_RESET }, { fail: ErrorCode.STREAM_RESET }], auto: true, protocol: 'h2' },
      true,
    );
    const q = pool(e, { maxConsecutiveErrors: 2 }, 'h2');
    await q.request(req()).catch(() => {});
    await q.request(req()).catch(() => {});
    await tick();
    expect(e.conns[0]!.state).toBe('closed');
  });

  it('requests our side gave up (callers aborting) do not count against the connection', async () => {
    const aborted = { fail: ErrorCode.ABORTED, side: 'local' as const };
    const d = new Dialer(
      {
        script: [aborted, aborted, aborted, aborted, { fail: ErrorCode.STREAM_RESET }, null],
        auto: true,
        protocol: 'h2',
      },
      true,
    );
    const p = pool(d, { maxConsecutiveErrors: 2 }, 'h2');
    for (let i = 0; i < 4; i++) await p.request(req()).catch(() => {});
    await tick();
    const c = d.conns[0]!;
    expect(c.state).toBe('ready');
    expect(p.stats().errors[ErrorCode.ABORTED]).toBe(4);
    // One failure of the origin's after them is the first in a row, not the fifth; a success then resets the count.
    await p.request(req()).catch(() => {});
    await finish(p.request(req()));
    expect(c.state).toBe('ready');
    expect(d.conns).toHaveLength(1);
  });
});

describe('GOAWAY and liveness', () => {
  it('after GOAWAY no new request lands on the connection; in-flight ones finish; the next request dials', async () => {
    const d = new Dialer({ protocol: 'h2' }, true);
    const p = pool(d, {}, 'h2');
    const first = p.request(req('/a'));
    await tick();
    const c = d.conns[0]!;
    c.goaway();
    const second = p.request(req('/b'));
    await tick();
    expect(d.conns).toHaveLength(2);
    expect(c.exchanges).toHaveLength(1);
    c.exchanges[0]!.respond();
    d.conns[1]!.exchanges[0]!.respond();
    await Promise.all([finish(first), finish(second)]);
    expect(c.state).toBe('closed');
  });

  it('an idle multiplexed connection is PINGed after pingIntervalMs and destroyed when the PING fails', async () => {
    const d = new Dialer({ protocol: 'h2', auto: true, ping: 'fail' }, true);
    const p = new Pool(
      'k',
      'http://o.test',
      resolvePoolOptions({ pingIntervalMs: 2000, idleTimeoutMs: 60_000 }),
      d.dial,
      'h2',
    );
    pools.push(p);
    await finish(p.request(req()));
    await tick(1500);
    expect(d.conns[0]!.pings).toBe(0);
    await tick(1500);
    expect(d.conns[0]!.pings).toBe(1);
    expect(d.conns[0]!.state).toBe('closed');
    expect(p.stats().errors[ErrorCode.PING_TIMEOUT]).toBe(1);
  });

  it('a headers timeout on a shared connection proves it alive with a PING first', async () => {
    const d = new Dialer({ protocol: 'h2', script: [{ fail: ErrorCode.HEADERS_TIMEOUT }], auto: true }, true);
    const p = pool(d, {}, 'h2');
    await p.request(req()).catch(() => {});
    await tick();
    expect(d.conns[0]!.pings).toBe(1);
    expect(d.conns[0]!.state).toBe('ready');
  });
});

describe('close and destroy', () => {
  it('close() waits for in-flight requests, then resolves; destroy() rejects the queue with its error', async () => {
    const d = new Dialer({}, true);
    const p = pool(d);
    const r = p.request(req());
    await tick();
    let closed = false;
    const done = p.close().then(() => {
      closed = true;
    });
    await tick(100);
    expect(closed).toBe(false);
    d.conns[0]!.exchanges[0]!.respond();
    await finish(r);
    await done;
    expect(closed).toBe(true);
    const q = pool(new Dialer({}, false));
    const w = q.request(req()).catch((e: unknown) => e as Error);
    q.destroy(new Error('going away'));
    expect((await w).message).toBe('going away');
  });
});

describe('predictive warmth (preconnectRatio)', () => {
  /** `n` concurrent requests answered together: a burst of concurrency n. */
  async function burst(p: Pool, d: Dialer, n: number): Promise<PoolResult[]> {
    const rs = Array.from({ length: n }, () => p.request(req()));
    await tick();
    for (const c of d.conns) for (const x of c.exchanges.splice(0)) x.respond();
    return Promise.all(rs.map(finish));
  }
  const open = (d: Dialer): number => d.conns.filter((c) => c.state !== 'closed').length;

  it('off by default: a burst after a lull dials every connection again', async () => {
    const d = new Dialer({}, true);
    const p = pool(d, { idleTimeoutMs: 1000 });
    await burst(p, d, 8);
    expect(d.conns).toHaveLength(8);
    await tick(3000);
    expect(open(d)).toBe(0);
    const rs = await burst(p, d, 8);
    expect(d.conns).toHaveLength(16);
    expect(rs.filter((r) => r.reused)).toHaveLength(0);
  });

  it('ratio 1.5: the peak of 8 keeps 12 ready; a burst after a 3 s lull finds them warm (no request waits for a dial)', async () => {
    const d = new Dialer({}, true);
    const p = pool(d, { idleTimeoutMs: 1000, maxConnecting: 8, preconnectRatio: 1.5, preconnectHalfLifeMs: 10_000 });
    await burst(p, d, 8);
    await tick(300); // the ticker tops up to ⌈1.5 × 8⌉
    expect(open(d)).toBe(12);
    await tick(3000); // idle 3 s (3 idle timeouts): the peak decayed to 8 × 2^−0.33 = 6.4 → keep ⌈9.6⌉ = 10
    expect(open(d)).toBe(10);
    const dialled = d.conns.length;
    const warm = new Set<PooledConnection>(d.conns.filter((c) => c.state === 'ready'));
    const rs = await burst(p, d, 8);
    expect(rs.every((r) => warm.has(r.conn))).toBe(true); // every request found a connection opened before the burst
    expect(p.warmTarget).toBe(12); // the burst renewed the peak…
    expect(d.conns.length - dialled).toBe(2); // …and the pool tops up from 10 to 12 for the next one
    expect(open(d)).toBe(12);
  });

  it('decays when demand falls: connections retire at their idle timeout as ⌈1.5 × 8 × 2^(−t/10 s)⌉ falls; the peak is forgotten at last', async () => {
    const d = new Dialer({}, true);
    const p = pool(d, { idleTimeoutMs: 1000, maxConnecting: 8, preconnectRatio: 1.5, preconnectHalfLifeMs: 10_000 });
    await burst(p, d, 8);
    const seen: number[] = [];
    const at = [10, 20, 30, 38, 60];
    for (const [i, t] of at.entries()) {
      await tick((t - (i > 0 ? at[i - 1]! : 0)) * 1000);
      seen.push(open(d));
    }
    // Peak 8 × 2^(−t/10): 10 s → 4 (keep 6), 20 s → 2 (3), 30 s → 1 (⌈1.5⌉ = 2), 38 s → 0.57 (⌈0.86⌉ = 1),
    // 60 s → 0.125 < 0.5: forgotten (0).
    // A surplus connection goes at its next idle check (≤ idleTimeoutMs later), so each count is the target or one idle period behind it.
    expect(seen[0]).toBeGreaterThanOrEqual(6);
    expect(seen[0]).toBeLessThanOrEqual(7);
    expect(seen[1]).toBeGreaterThanOrEqual(3);
    expect(seen[1]).toBeLessThanOrEqual(4);
    expect(seen[2]).toBe(2);
    expect(seen[3]).toBe(1);
    expect(seen[4]).toBe(0);
    expect(p.warmTarget).toBe(0);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
  });

  it('h2: the target counts connections, not streams: 150 concurrent at 100 streams each keeps ⌈1.5 × 150 / 100⌉ = 3', async () => {
    const d = new Dialer({ protocol: 'h2' }, true);
    const p = pool(d, { idleTimeoutMs: 1000, preconnectRatio: 1.5 }, 'h2');
    await burst(p, d, 150);
    await tick(300);
    expect(open(d)).toBe(3);
    await tick(2000);
    expect(open(d)).toBe(3);
  });

  it('never above maxConnections; preconnectRatio between 0 and 1 is a config error naming the field', async () => {
    const d = new Dialer({}, true);
    const p = pool(d, { idleTimeoutMs: 1000, maxConnections: 10, maxConnecting: 8, preconnectRatio: 3 });
    await burst(p, d, 8);
    await tick(300);
    expect(open(d)).toBe(10);
    expect(() => resolvePoolOptions({ preconnectRatio: 0.5 }, 'origins.api.pool')).toThrow(
      /origins\.api\.pool\.preconnectRatio: must be 0 \(off\) or 1 … 10/,
    );
    expect(() => resolvePoolOptions({ preconnectRatio: 11 })).toThrow(/pool\.preconnectRatio: must be ≤ 10/);
    // setTimeout fires at once past 2^31 − 1 ms: such a queue timeout answered every waiter at once.
    for (const key of ['pendingTimeoutMs', 'connectTimeoutMs', 'idleTimeoutMs', 'headersTimeoutMs']) {
      expect(() => resolvePoolOptions({ [key]: 2 ** 31 })).toThrow(
        new RegExp(`pool\\.${key}: must be ≤ 2147483647 ms`),
      );
      expect(resolvePoolOptions({ [key]: 2 ** 31 - 1 })[key as keyof PoolOptions]).toBe(2 ** 31 - 1);
    }
  });
});
