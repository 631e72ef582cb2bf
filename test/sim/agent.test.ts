/**
 * The Agent's request policy over scripted connections (the `connect`
 * option) with a fake clock: which failures are retried and which never,
 * failover across an origin's URLs, forgetting idle origins. No sockets;
 * deterministic; milliseconds.
 */
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { sharedTicker } from '../../src/pool/ticker.js';
import { ErrorCode, NOT_SENT, OriginlinkError } from '../../src/errors.js';
import type { PooledConnection } from '../../src/http/types.js';
import { FakeConnection } from '../helpers/fake-connection.js';
import type { OriginSpec } from '../../src/connect/connect.js';

type Step = { status: number } | { fail: string; retrySafe?: boolean; responseStarted?: boolean };

/** A connector that hands out scripted connections per origin host:port, or fails the dial. */
function scripted(plan: Record<string, Array<Step[] | 'refuse'>>): {
  connect: (o: OriginSpec) => Promise<PooledConnection>;
  conns: FakeConnection[];
  dials: string[];
} {
  const conns: FakeConnection[] = [];
  const dials: string[] = [];
  return {
    conns,
    dials,
    connect: async (o) => {
      const key = `${o.host}:${o.port}`;
      dials.push(key);
      const next = plan[key]?.shift() ?? [];
      if (next === 'refuse')
        throw new OriginlinkError(ErrorCode.CONNECT_FAILED, 'network', `connect ECONNREFUSED ${key}`, {
          retrySafe: true,
          facts: NOT_SENT,
        });
      // Each failure kills its connection, as a broken socket does.
      const c = new FakeConnection({
        auto: true,
        origin: key,
        script: next.map((st) => ('fail' in st ? { ...st, close: true } : null)),
      });
      conns.push(c);
      return c;
    },
  };
}

const text = async (r: { body: Readable }): Promise<string> => {
  let s = '';
  for await (const c of r.body) s += String(c);
  return s;
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
const agents: Agent[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) a.destroy();
  // Every pool and Agent left the shared ticker (nothing leaks a member across tests).
  expect(sharedTicker.size).toBe(0);
  vi.useRealTimers();
});

function track(a: Agent): Agent {
  agents.push(a);
  return a;
}

describe('which failures the Agent retries', () => {
  it('stale keep-alive: a GET that fails on a reused connection before any response byte is retried on a new one', async () => {
    const s = scripted({ 'o.test:80': [[{ status: 200 }, { fail: ErrorCode.SOCKET_CLOSED }], [{ status: 200 }]] });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect }));
    await text(await agent.request({ url: 'http://o.test/a' }));
    const r = await agent.request({ url: 'http://o.test/b' });
    expect([r.status, r.attempts, r.reused]).toEqual([200, 2, false]);
    expect(s.dials).toHaveLength(2);
  });

  it('…but a POST in the same situation is never replayed, unless it carries Idempotency-Key', async () => {
    const s = scripted({
      'o.test:80': [
        [{ status: 200 }, { fail: ErrorCode.SOCKET_CLOSED }],
        [{ status: 200 }, { fail: ErrorCode.SOCKET_CLOSED }],
        [{ status: 200 }],
      ],
    });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect }));
    await text(await agent.request({ url: 'http://o.test/a' }));
    const err = await agent
      .request({ url: 'http://o.test/post', method: 'POST', body: 'x' })
      .catch((e: unknown) => e as OriginlinkError);
    expect(err).toBeInstanceOf(OriginlinkError);
    expect([
      (err as OriginlinkError).code,
      (err as OriginlinkError).details['attempts'],
      (err as OriginlinkError).facts?.reused,
    ]).toEqual([ErrorCode.SOCKET_CLOSED, 1, true]);
    await text(await agent.request({ url: 'http://o.test/a2' }));
    const ok = await agent.request({
      url: 'http://o.test/post2',
      method: 'POST',
      body: 'x',
      headers: { 'idempotency-key': 'k1' },
    });
    expect([ok.status, ok.attempts]).toEqual([200, 2]);
  });

  it('never after a response byte arrived, never a streamed body it did not keep, never an idempotent request on a fresh connection', async () => {
    const s = scripted({
      'o.test:80': [
        [{ fail: ErrorCode.SOCKET_RESET, responseStarted: true }],
        [{ fail: ErrorCode.SOCKET_CLOSED }],
        [{ status: 200 }, { fail: ErrorCode.SOCKET_CLOSED }],
      ],
    });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect, retryBufferBytes: 0 }));
    const a = await agent.request({ url: 'http://o.test/started' }).catch((e: unknown) => e as OriginlinkError);
    expect([(a as OriginlinkError).code, (a as OriginlinkError).details['attempts']]).toEqual([
      ErrorCode.SOCKET_RESET,
      1,
    ]);
    const b = await agent.request({ url: 'http://o.test/fresh' }).catch((e: unknown) => e as OriginlinkError);
    expect([
      (b as OriginlinkError).code,
      (b as OriginlinkError).details['attempts'],
      (b as OriginlinkError).facts?.reused,
    ]).toEqual([ErrorCode.SOCKET_CLOSED, 1, false]);
    await text(await agent.request({ url: 'http://o.test/warm' }));
    async function* streamed(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('once');
    }
    const c = await agent
      .request({ url: 'http://o.test/put', method: 'PUT', body: streamed() })
      .catch((e: unknown) => e as OriginlinkError);
    expect([(c as OriginlinkError).code, (c as OriginlinkError).details['attempts']]).toEqual([
      ErrorCode.SOCKET_CLOSED,
      1,
    ]);
  });

  it('a streamed body whole in its retry buffer (retryBufferBytes, default 256 KiB) is retried like bytes', async () => {
    const s = scripted({ 'o.test:80': [[{ status: 200 }, { fail: ErrorCode.SOCKET_CLOSED }], [{ status: 200 }]] });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect }));
    await text(await agent.request({ url: 'http://o.test/warm' }));
    async function* streamed(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('twice');
    }
    // The stale keep-alive race (reused connection, no response byte, idempotent PUT): sent again on a new connection.
    const r = await agent.request({ url: 'http://o.test/put', method: 'PUT', body: streamed() });
    expect([r.status, r.attempts]).toEqual([200, 2]);
    expect(s.dials).toHaveLength(2);
  });

  it('a retry-safe failure (above GOAWAY) is retried even for a POST, within maxRetries', async () => {
    const unprocessed = { fail: ErrorCode.GOAWAY, retrySafe: true };
    const s = scripted({ 'o.test:80': [[unprocessed], [unprocessed], [unprocessed], [{ status: 200 }]] });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect, maxRetries: 2 }));
    const err = await agent
      .request({ url: 'http://o.test/p', method: 'POST', body: 'x' })
      .catch((e: unknown) => e as OriginlinkError);
    expect([(err as OriginlinkError).code, (err as OriginlinkError).details['attempts']]).toEqual([
      ErrorCode.GOAWAY,
      3,
    ]);
  });

  it('a refused stream goes back to the queue without spending a retry, even for a POST (RFC 9113 §8.7)', async () => {
    const refused = { fail: ErrorCode.STREAM_RESET, retrySafe: true };
    const s = scripted({ 'o.test:80': [[refused], [refused], [refused], [{ status: 200 }]] });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect, maxRetries: 2 }));
    const res = await agent.request({ url: 'http://o.test/p', method: 'POST', body: 'x' });
    expect([res.status, res.attempts]).toEqual([200, 4]);
  });

  it('a refused connect is answered at once, never retried against the same URL; during the backoff requests get it without a dial; after it, one dials again', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const s = scripted({ 'o.test:80': ['refuse', 'refuse', [{ status: 200 }]] });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect, maxRetries: 2 }));
    const first = await agent.request({ url: 'http://o.test/' }).catch((e: unknown) => e as OriginlinkError);
    expect([first.code, first.details['attempts'], first.details['origin'], s.dials.length]).toEqual([
      ErrorCode.CONNECT_FAILED,
      1,
      'http://o.test',
      1,
    ]);
    // Backoff after n failures: min(max, 100 × 2^(n−1)) × (0.5 + 0.5 × random) = 99.95 ms: inside it, no dial, no wait.
    await vi.advanceTimersByTimeAsync(50);
    const during = await agent.request({ url: 'http://o.test/' }).catch((e: unknown) => e as OriginlinkError);
    expect([during.code, during.details['attempts'], during.details['backoffMs'], s.dials.length]).toEqual([
      ErrorCode.CONNECT_FAILED,
      1,
      50,
      1,
    ]);
    expect(during.message).toMatch(/connects to http:\/\/o\.test failing/);
    // Nothing is dialled when the backoff runs out with nobody asking.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(s.dials).toHaveLength(1);
    // A request after it dials (refused again: a longer backoff), then the next after that one connects.
    expect((await agent.request({ url: 'http://o.test/' }).catch((e: unknown) => e as OriginlinkError)).code).toBe(
      ErrorCode.CONNECT_FAILED,
    );
    await vi.advanceTimersByTimeAsync(200);
    const r = await agent.request({ url: 'http://o.test/' });
    expect([r.status, r.attempts, s.dials.length]).toEqual([200, 1, 3]);
  });

  it('an aborted request is never retried', async () => {
    const s = scripted({ 'o.test:80': ['refuse', [{ status: 200 }]] });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect }));
    const ac = new AbortController();
    const p = agent.request({ url: 'http://o.test/', signal: ac.signal }).catch((e: unknown) => e as OriginlinkError);
    ac.abort();
    const err = await p;
    expect((err as OriginlinkError).details['attempts']).toBe(1);
  });
});

describe('an origin with several URLs', () => {
  it('an unreachable URL fails over to the next one at once; res.origin names the one that answered', async () => {
    const s = scripted({ 'a.test:80': ['refuse'], 'b.test:80': [[{ status: 200 }]] });
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect, maxRetries: 0 }));
    const r = await agent.request({
      origin: ['http://a.test', 'http://b.test'],
      path: '/x',
      method: 'POST',
      body: 'x',
    });
    expect([r.status, r.origin, r.attempts]).toEqual([200, 'http://b.test', 2]);
    expect(s.dials).toEqual(['a.test:80', 'b.test:80']);
  });
});

describe('the pool a request goes to', () => {
  it('a URL object the caller changes between requests goes where it points now; an origin string, to the same pool', async () => {
    const s = scripted({});
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect }));
    const u = new URL('http://a.test/x');
    await text(await agent.request({ url: u }));
    u.host = 'b.test';
    await text(await agent.request({ url: u }));
    for (let i = 0; i < 3; i++) await text(await agent.request({ origin: 'http://c.test', path: '/y' }));
    expect(s.dials).toEqual(['a.test:80', 'b.test:80', 'c.test:80']);
    expect(
      agent
        .pools()
        .map((p) => p.origin)
        .sort(),
    ).toEqual(['http://a.test', 'http://b.test', 'http://c.test']);
  });
});

describe('bounded for many origins', () => {
  it('a pool idle past originIdleTimeoutMs is closed and forgotten; its totals stay in stats()', async () => {
    const s = scripted({});
    const agent = track(
      new Agent({ protocol: 'h1', connect: s.connect, originIdleTimeoutMs: 5_000, pool: { idleTimeoutMs: 60_000 } }),
    );
    for (let i = 0; i < 10; i++) await text(await agent.request({ url: `http://o${i}.test/` }));
    expect(agent.poolCount).toBe(10);
    await vi.advanceTimersByTimeAsync(4_000);
    expect(agent.poolCount).toBe(10);
    await vi.advanceTimersByTimeAsync(2_500);
    expect(agent.poolCount).toBe(0);
    expect(s.conns.every((c) => c.state === 'closed')).toBe(true);
    const stats = agent.stats();
    expect(stats).toHaveLength(10);
    expect(stats.reduce((n, x) => n + x.requests, 0)).toBe(10);
    // Coming back continues the same totals.
    await text(await agent.request({ url: 'http://o3.test/' }));
    expect(agent.stats().find((x) => x.origin === 'http://o3.test')?.requests).toBe(2);
  });

  it('past maxOrigins the least recently used idle pools go; busy ones stay', async () => {
    const s = scripted({});
    const agent = track(new Agent({ protocol: 'h1', connect: s.connect, maxOrigins: 8 }));
    for (let i = 0; i < 20; i++) {
      await text(await agent.request({ url: `http://o${i}.test/` }));
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(agent.poolCount).toBeLessThanOrEqual(8);
    const live = agent.pools().map((p) => p.origin);
    expect(live).toContain('http://o19.test');
    expect(live).not.toContain('http://o0.test');
    expect(agent.stats().length).toBeLessThanOrEqual(16); // live pools + at most maxOrigins retired totals
  });
});
