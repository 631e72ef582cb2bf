/**
 * Sans-IO parts of selection: the policy, race delay, broken-h3 backoff, the
 * origin cache (bounds, TTL at load, atomic file), and the race dialer with
 * fake connections. No peer needed (kept under test/peer/selection* by file
 * ownership; it belongs with the unit tests).
 */
import { describe, expect, it, vi } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAltSvc } from '../../src/probe/alt-svc.js';
import { FileOriginCache, MemoryOriginCache, type OriginFacts } from '../../src/store/origin-cache.js';
import { raceDial, type QuicOutcome } from '../../src/probe/race.js';
import { OriginState, emptyFacts, raceDelayFor, selectProtocol } from '../../src/probe/state.js';
import type { ConnEvent, PooledConnection, Protocol } from '../../src/http/types.js';

const T = 1_800_000_000_000;
const facts = (p: Partial<OriginFacts>): OriginFacts => ({ ...emptyFacts(T), ...p });

describe('selectProtocol', () => {
  it('forced policy wins', () => {
    expect(
      selectProtocol(facts({ h3: { host: '', port: 1, expiresAt: T + 1, source: 'alt-svc' } }), 'h1', T),
    ).toMatchObject({ transport: 'tcp', protocol: 'h1' });
    expect(selectProtocol(undefined, 'h3', T)).toMatchObject({ transport: 'quic', protocol: 'h3' });
  });
  it('h3 when advertised, fresh and not broken; else ALPN', () => {
    const h3 = { host: '', port: 443, expiresAt: T + 60_000, source: 'alt-svc' as const };
    expect(selectProtocol(facts({ h3, alpn: 'h2' }), 'auto', T)).toMatchObject({ transport: 'quic', protocol: 'h3' });
    expect(selectProtocol(facts({ h3, alpn: 'h2', brokenUntil: T + 1000, brokenCount: 1 }), 'auto', T)).toMatchObject({
      transport: 'tcp',
      protocol: 'h2',
      reason: expect.stringMatching(/marked broken/),
    });
    expect(selectProtocol(facts({ h3, alpn: 'http/1.1' }), 'auto', T + 60_000)).toMatchObject({
      transport: 'tcp',
      protocol: 'h1',
      reason: expect.stringMatching(/expired/),
    });
    expect(selectProtocol(undefined, 'auto', T)).toMatchObject({ transport: 'tcp', protocol: null });
  });
  it('race delay: 300 ms unknown, clamp(2·RTT + 25, 25, 300), configured wins', () => {
    expect(raceDelayFor(undefined, null)).toBe(300);
    expect(raceDelayFor(facts({ rttMs: 0.1 }), null)).toBe(25);
    expect(raceDelayFor(facts({ rttMs: 50 }), null)).toBe(125);
    expect(raceDelayFor(facts({ rttMs: 500 }), null)).toBe(300);
    expect(raceDelayFor(facts({ rttMs: 50 }), 7)).toBe(7);
  });
});

describe('OriginState', () => {
  it('learns Alt-Svc, honours clear, and writes through to the cache', () => {
    const cache = new MemoryOriginCache();
    const s = new OriginState('https://x:443', cache);
    expect(s.learnAltSvc(parseAltSvc('h3=":8443"; ma=60'), T)).toBe('learned');
    expect(cache.get('https://x:443')?.h3).toMatchObject({ port: 8443, expiresAt: T + 60_000 });
    expect(s.learnAltSvc(parseAltSvc('h3=":8443"; ma=60'), T + 1000)).toBe('refreshed');
    expect(s.learnAltSvc(parseAltSvc('h2=":1"'), T)).toBe('none');
    expect(s.learnAltSvc(parseAltSvc('clear'), T)).toBe('cleared');
    expect(cache.get('https://x:443')?.h3).toBeNull();
  });
  it('broken-h3 backoff doubles from the base, is capped, and resets on success', () => {
    const s = new OriginState('https://x:443', new MemoryOriginCache());
    const o = { brokenBackoffMs: 300_000, brokenBackoffMaxMs: 1_000_000 };
    expect(s.h3Failed(T, o)).toBe(300_000);
    expect(s.h3Failed(T, o)).toBe(600_000);
    expect(s.h3Failed(T, o)).toBe(1_000_000);
    expect(s.h3Failed(T, o)).toBe(1_000_000);
    expect(s.isBroken(T + 999_999)).toBe(true);
    expect(s.isBroken(T + 1_000_000)).toBe(false);
    s.h3Succeeded(T);
    expect(s.facts).toMatchObject({ brokenCount: 0, brokenUntil: 0 });
  });
});

describe('origin caches', () => {
  it('memory cache is a bounded LRU', () => {
    const c = new MemoryOriginCache(2);
    c.put('a', facts({}));
    c.put('b', facts({}));
    c.get('a');
    c.put('c', facts({}));
    expect([c.get('a') !== undefined, c.get('b') !== undefined, c.get('c') !== undefined]).toEqual([true, false, true]);
  });
  it('file cache: atomic writes, stale entries dropped at load, wrong format ignored with a warning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ol-oc-'));
    try {
      const file = join(dir, 'c.json');
      const c = new FileOriginCache(file);
      c.put(
        'fresh',
        facts({ h3: { host: '', port: 1, expiresAt: T + 10_000, source: 'alt-svc' }, updatedAt: T - 8 * 86_400_000 }),
      );
      c.put('stale', facts({ updatedAt: T - 8 * 86_400_000 }));
      c.flush(); // written within 100 ms and at exit; now, for the test
      expect(readdirSync(dir)).toEqual(['c.json']);
      const loaded = new FileOriginCache(file, { now: T });
      expect(loaded.get('fresh')?.h3?.port).toBe(1);
      expect(loaded.get('stale')).toBeUndefined();
      writeFileSync(file, JSON.stringify({ format: 'other', origins: {} }));
      const warn: string[] = [];
      expect(new FileOriginCache(file, { warn: (m) => warn.push(m) }).size).toBe(0);
      expect(warn[0]).toMatch(/not a originlink-origin-cache/);
      expect(existsSync(file)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

class FakeConn implements PooledConnection {
  readonly facts;
  readonly createdAt = 0;
  readonly lastActiveAt = 0;
  readonly capacity = 1;
  readonly active = 0;
  readonly served = 0;
  state: 'ready' | 'closed' = 'ready';
  /** Set: handed out at 0-RTT readiness, handshake pending until `confirm()` or `refuse()`. */
  #hs: { p: Promise<void>; ok: () => void; no: (e: Error) => void } | null = null;
  yielded = 0;
  constructor(
    readonly id: number,
    readonly protocol: Protocol,
  ) {
    this.facts = {
      protocol,
      alpn: null,
      remoteAddress: '',
      remotePort: 0,
      localAddress: '',
      localPort: 0,
      connectMs: 0,
      tlsMs: 0,
      tlsVersion: null,
      resumed: false,
      earlyData: false,
      tfo: false,
      keepAliveHintMs: null,
      peerMaxConcurrentStreams: null,
      rttMs: null,
    };
  }
  request(): never {
    throw new Error('fake');
  }
  peerCertificate(): null {
    return null;
  }
  isUsable(): boolean {
    return this.state === 'ready';
  }
  drain(): void {
    this.state = 'closed';
  }
  destroy(): void {
    this.state = 'closed';
    this.#hs?.no(new Error('destroyed'));
  }
  on(_l: (ev: ConnEvent) => void): void {}
  early(): this {
    let ok!: () => void;
    let no!: (e: Error) => void;
    const p = new Promise<void>((a, b) => {
      ok = a;
      no = b;
    });
    p.catch(() => {});
    this.#hs = {
      p,
      ok: () => {
        ok();
        this.#hs = null;
      },
      no,
    };
    return this;
  }
  confirm(): void {
    this.#hs?.ok();
  }
  refuse(): void {
    this.#hs?.no(new Error('handshake failed'));
  }
  handshakePending(): Promise<void> | null {
    return this.#hs?.p ?? null;
  }
  yieldToFallback(): void {
    this.yielded++;
  }
}

const after = <T>(ms: number, v: T | Error, signal?: AbortSignal): Promise<T> =>
  new Promise((res, rej) => {
    const t = setTimeout(() => (v instanceof Error ? rej(v) : res(v)), ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        rej(new Error('aborted'));
      },
      { once: true },
    );
  });

describe('raceDial', () => {
  it('QUIC fast: QUIC wins, TCP never starts', async () => {
    let tcpStarted = false;
    const outcomes: QuicOutcome[] = [];
    const c = await raceDial({
      quic: (s) => after(10, new FakeConn(1, 'h3'), s),
      tcp: (s) => {
        tcpStarted = true;
        return after(5, new FakeConn(2, 'h2'), s);
      },
      delayMs: 100,
      quicTimeoutMs: 1000,
      signal: new AbortController().signal,
      onQuic: (o) => {
        outcomes.push(o);
      },
    });
    expect(c.protocol).toBe('h3');
    expect(tcpStarted).toBe(false);
    expect(outcomes[0]).toMatchObject({ ok: true, late: false });
  });
  it('QUIC blackholed: TCP wins after the delay; the QUIC timeout is reported later', async () => {
    // A fake clock: the times are the race's own, whatever the machine's load.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const outcomes: QuicOutcome[] = [];
      let c: PooledConnection | null = null;
      void raceDial({
        quic: (s) => after(10_000, new FakeConn(1, 'h3'), s),
        tcp: (s) => after(5, new FakeConn(2, 'h2'), s),
        delayMs: 50,
        quicTimeoutMs: 200,
        signal: new AbortController().signal,
        onQuic: (o) => {
          outcomes.push(o);
        },
      }).then((x) => {
        c = x;
      });
      await vi.advanceTimersByTimeAsync(54);
      expect(c).toBeNull(); // TCP starts at the delay (50 ms) and takes 5
      await vi.advanceTimersByTimeAsync(1);
      expect((c as PooledConnection | null)?.protocol).toBe('h2');
      expect(outcomes).toEqual([]);
      await vi.advanceTimersByTimeAsync(145);
      expect(outcomes[0]).toMatchObject({ ok: false, error: { code: 'OL_CONNECT_TIMEOUT' } });
    } finally {
      vi.useRealTimers();
    }
  });
  it('QUIC fails fast: TCP starts at once, before the delay', async () => {
    const t0 = Date.now();
    const c = await raceDial({
      quic: () => after(5, new Error('ICMP unreachable')),
      tcp: (s) => after(5, new FakeConn(2, 'h1'), s),
      delayMs: 1000,
      quicTimeoutMs: 2000,
      signal: new AbortController().signal,
      onQuic: () => {},
    });
    expect(c.protocol).toBe('h1');
    expect(Date.now() - t0).toBeLessThan(500);
  });
  it('a late QUIC success is offered to the caller, else closed; both failing rejects', async () => {
    const late: FakeConn[] = [];
    await raceDial({
      quic: (s) => after(60, new FakeConn(1, 'h3'), s),
      tcp: (s) => after(1, new FakeConn(2, 'h2'), s),
      delayMs: 0,
      quicTimeoutMs: 1000,
      signal: new AbortController().signal,
      onQuic: (o) => {
        if (o.ok === true && o.late) late.push(o.conn as FakeConn);
        return false;
      },
    });
    await after(100, null);
    expect(late.length).toBe(1);
    expect(late[0]?.state).toBe('closed');
    await expect(
      raceDial({
        quic: () => after(5, new Error('q')),
        tcp: () => after(5, new Error('t')),
        delayMs: 0,
        quicTimeoutMs: 1000,
        signal: new AbortController().signal,
        onQuic: () => {},
      }),
    ).rejects.toThrow();
  });
});

describe('raceDial: early start on a resumable ticket (0-RTT)', () => {
  const ready = <T>(ms: number, v: T): Promise<T> => after(ms, v);

  it('resolves at 0-RTT readiness, before the delay; a handshake completing first means TCP never starts', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const q = new FakeConn(1, 'h3').early();
      let tcpStarted = false;
      const outcomes: QuicOutcome[] = [];
      let c: PooledConnection | null = null;
      void raceDial({
        quic: () => ready(5, q),
        tcp: (s) => {
          tcpStarted = true;
          return after(5, new FakeConn(2, 'h2'), s);
        },
        delayMs: 100,
        quicTimeoutMs: 1000,
        signal: new AbortController().signal,
        onQuic: (o) => {
          outcomes.push(o);
        },
      }).then((x) => {
        c = x;
      });
      await vi.advanceTimersByTimeAsync(5);
      expect(c).toBe(q); // at readiness (5 ms), not at the delay (100)
      expect(outcomes).toEqual([]);
      q.confirm();
      await vi.advanceTimersByTimeAsync(150);
      expect(tcpStarted).toBe(false);
      expect(outcomes).toEqual([{ ok: true, conn: q, late: false, early: true }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('blackholed handshake: TCP still starts after the delay and is handed over as the fallback; the QUIC timeout is reported later', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const q = new FakeConn(1, 'h3').early();
      const fallbacks: Array<[PooledConnection, PooledConnection]> = [];
      const outcomes: QuicOutcome[] = [];
      const t0 = Date.now();
      let fellBackAt = 0;
      let c: PooledConnection | null = null;
      void raceDial({
        quic: (s) => {
          s.addEventListener('abort', () => q.destroy(), { once: true });
          return ready(1, q);
        },
        tcp: (s) => after(5, new FakeConn(2, 'h2'), s),
        delayMs: 50,
        quicTimeoutMs: 300,
        signal: new AbortController().signal,
        onQuic: (o) => {
          outcomes.push(o);
        },
        onFallback: (tcp, quic) => {
          fellBackAt = Date.now() - t0;
          fallbacks.push([tcp, quic]);
        },
      }).then((x) => {
        c = x;
      });
      await vi.advanceTimersByTimeAsync(1);
      expect(c).toBe(q);
      await vi.advanceTimersByTimeAsync(119);
      expect(fallbacks.length).toBe(1);
      expect(fallbacks[0]![0].protocol).toBe('h2');
      expect(fallbacks[0]![1]).toBe(q);
      // The early win at 1 ms, TCP's delay (50) counted from it, TCP's 5: handed over at 56.
      expect(fellBackAt).toBe(56);
      expect(outcomes).toEqual([]);
      await vi.advanceTimersByTimeAsync(300);
      expect(outcomes[0]).toMatchObject({ ok: false, error: { code: 'OL_CONNECT_TIMEOUT' } });
      expect(q.state).toBe('closed');
    } finally {
      vi.useRealTimers();
    }
  });

  it('a handshake completing after the fallback is a late success (the caller drains TCP); one failing before the delay stops TCP', async () => {
    const q = new FakeConn(1, 'h3').early();
    const outcomes: QuicOutcome[] = [];
    let fell = 0;
    await raceDial({
      quic: () => ready(1, q),
      tcp: (s) => after(1, new FakeConn(2, 'h2'), s),
      delayMs: 0,
      quicTimeoutMs: 1000,
      signal: new AbortController().signal,
      onQuic: (o) => {
        outcomes.push(o);
      },
      onFallback: () => {
        fell++;
      },
    });
    await after(30, null);
    q.confirm();
    await after(5, null);
    expect(fell).toBe(1);
    expect(outcomes).toEqual([{ ok: true, conn: q, late: true, early: true }]);

    const q2 = new FakeConn(3, 'h3').early();
    const outcomes2: QuicOutcome[] = [];
    let tcpStarted = false;
    await raceDial({
      quic: () => ready(1, q2),
      tcp: (s) => {
        tcpStarted = true;
        return after(1, new FakeConn(4, 'h2'), s);
      },
      delayMs: 60,
      quicTimeoutMs: 1000,
      signal: new AbortController().signal,
      onQuic: (o) => {
        outcomes2.push(o);
      },
    });
    q2.refuse();
    await after(100, null);
    expect(tcpStarted).toBe(false);
    expect(outcomes2[0]).toMatchObject({ ok: false });
  });

  it("TCP's delay counts from the early win (the first flight), not from the start of the QUIC leg's set-up", async () => {
    const q = new FakeConn(1, 'h3').early();
    const t0 = Date.now();
    let tcpAt = 0;
    await raceDial({
      quic: () => ready(40, q),
      tcp: (s) => {
        tcpAt = Date.now() - t0;
        return after(1, new FakeConn(2, 'h2'), s);
      },
      delayMs: 50,
      quicTimeoutMs: 1000,
      signal: new AbortController().signal,
      onQuic: () => {},
      onFallback: (c) => c.destroy(),
    });
    await after(150, null);
    expect(tcpAt).toBeGreaterThanOrEqual(88);
    q.destroy();
  });

  it('the caller giving up after an early win (pool destroyed) stops the TCP leg and the handshake', async () => {
    const q = new FakeConn(1, 'h3').early();
    const ctl = new AbortController();
    let tcpStarted = false;
    const outcomes: QuicOutcome[] = [];
    const c = await raceDial({
      quic: (s) => {
        s.addEventListener('abort', () => q.destroy(), { once: true });
        return ready(1, q);
      },
      tcp: (s) => {
        tcpStarted = true;
        return after(1, new FakeConn(2, 'h2'), s);
      },
      delayMs: 30,
      quicTimeoutMs: 1000,
      signal: ctl.signal,
      onQuic: (o) => {
        outcomes.push(o);
      },
    });
    expect(c).toBe(q);
    ctl.abort();
    await after(60, null);
    expect(tcpStarted).toBe(false);
    expect(q.state).toBe('closed');
    expect(outcomes).toEqual([{ ok: 'aborted' }]);
  });

  it('a QUIC leg that only reaches 0-RTT readiness after TCP won is offered late, once its handshake completes', async () => {
    const q = new FakeConn(1, 'h3').early();
    const outcomes: QuicOutcome[] = [];
    const c = await raceDial({
      quic: () => ready(40, q),
      tcp: (s) => after(1, new FakeConn(2, 'h2'), s),
      delayMs: 0,
      quicTimeoutMs: 1000,
      signal: new AbortController().signal,
      onQuic: (o) => {
        outcomes.push(o);
        return false;
      },
    });
    expect(c.protocol).toBe('h2');
    await after(60, null);
    expect(outcomes).toEqual([]);
    q.confirm();
    await after(5, null);
    expect(outcomes).toEqual([{ ok: true, conn: q, late: true, early: false }]);
    expect(q.state).toBe('closed');
  });
});
