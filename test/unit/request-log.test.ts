/**
 * The request log line (service/request-log.ts) is the line pino itself
 * writes for `log.info(fields, 'request')`: same keys, order and escaping,
 * the logger's bindings after `time`, nothing below the logger's level.
 * To pino's own destination the lines wait (a turn, or `flushMs`, or
 * MAX_PENDING records) and leave in one write.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { jsonNumber, jsonString, MAX_PENDING, RequestLog, RequestRecord } from '../../src/service/request-log.js';

function capture(
  level = 'info',
  base: Record<string, unknown> = { svc: 'originlink' },
): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino(
    { level, base },
    {
      write: (s: string) => {
        lines.push(s);
      },
    },
  );
  return { log, lines };
}

/** pino's `time` differs between the two lines: compare without it. */
const untimed = (line: string): string => line.replace(/"time":\d+/, '"time":0');

describe('RequestLog', () => {
  /** The fields pino would be given for `r`: its own, in order, without the unset ones and `time`. */
  const fieldsOf = (r: RequestRecord): Record<string, unknown> => {
    const o: Record<string, unknown> = {
      method: r.method,
      path: r.path,
      client: r.client,
      listener: r.listener,
      remote: r.remote,
    };
    for (const k of [
      'route',
      'origin',
      'clientWaitMs',
      'upstream',
      'protocol',
      'reused',
      'attempts',
      'queueMs',
      'ttfbMs',
      'status',
      'totalMs',
      'tunnel',
      'bytes',
      'error',
      'reason',
      'upstreamStatus',
    ] as const) {
      if (r[k] !== undefined) o[k] = r[k];
    }
    return o;
  };

  it('writes the line pino writes, every field in order, strings escaped', () => {
    const records: RequestRecord[] = [];
    // Every field set; escapes, non-ASCII, a lone surrogate, a number pino writes as null.
    const full = new RequestRecord('GET', '/a "quoted"\\path?x=\n\u0001é\ud800', '1.1', 'front "1"', '::1');
    Object.assign(full, {
      route: 0,
      origin: 'o',
      clientWaitMs: 0.25,
      upstream: 'https://127.0.0.1:8443',
      protocol: 'h2',
      reused: true,
      attempts: 1,
      queueMs: 0.125,
      ttfbMs: 3,
      status: 502,
      totalMs: Number.NaN,
      tunnel: 'websocket',
      bytes: 1024,
      error: 'OL_UPSTREAM_BODY',
      reason: 'origin failed mid-response\t(cut)',
      upstreamStatus: 200,
    });
    records.push(full);
    // A refusal before any route: only the front's fields, the status and the error.
    const refused = new RequestRecord('POST', '/', '2', 'front', '127.0.0.1');
    Object.assign(refused, {
      status: 400,
      totalMs: 0.5,
      error: 'bad_request',
      reason: 'Content-Length and Transfer-Encoding',
    });
    records.push(refused);
    for (const r of records) {
      const ours = capture();
      new RequestLog(ours.log).write(r);
      const theirs = capture();
      theirs.log.info(fieldsOf(r), 'request');
      expect(ours.lines).toHaveLength(1);
      expect(untimed(ours.lines[0]!)).toBe(untimed(theirs.lines[0]!));
      expect(JSON.parse(ours.lines[0]!)).toMatchObject({ level: 30, svc: 'originlink', path: r.path, msg: 'request' });
    }
  });

  it('writes the line pino writes for records whose shared members change from one line to the next', () => {
    // The members lines of a batch mostly share (client, listener; route to attempts) are made again when any changes.
    let seed = 5;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
    const ours = capture();
    const rl = new RequestLog(ours.log);
    const theirs = capture();
    for (let i = 0; i < 300; i++) {
      const r = new RequestRecord('GET', `/p${i}`, pick(['1.1', '2']), pick(['front', 'back']), '127.0.0.1');
      if (rnd(5) > 0) r.route = rnd(3);
      if (rnd(5) > 0) r.origin = pick(['o', 'p']);
      if (rnd(6) === 0) r.clientWaitMs = rnd(1000) / 1000;
      if (rnd(5) > 0) r.upstream = pick(['https://a:1', 'https://b:2']);
      if (rnd(5) > 0) r.protocol = pick(['h1', 'h2', 'h3']);
      if (rnd(5) > 0) r.reused = rnd(2) === 0;
      if (rnd(5) > 0) r.attempts = 1 + rnd(2);
      r.status = 200;
      r.totalMs = rnd(5000) / 1000;
      rl.write(r);
      theirs.log.info(fieldsOf(r), 'request');
    }
    expect(ours.lines.map(untimed)).toEqual(theirs.lines.map(untimed));
  });

  it("carries a child logger's bindings (a cluster worker's) and writes nothing below its level", () => {
    const ours = capture('info', { svc: 'originlink', worker: 2, pid: 1234 });
    const rl = new RequestLog(ours.log);
    rl.write(record(204));
    expect(JSON.parse(ours.lines[0]!)).toMatchObject({
      svc: 'originlink',
      worker: 2,
      pid: 1234,
      status: 204,
      msg: 'request',
    });
    ours.log.level = 'warn'; // a reload may raise it
    rl.write(record(200));
    expect(ours.lines).toHaveLength(1);
  });

  /** pino's own destination (SonicBoom) as RequestLog tells it apart: it has flushSync. */
  function sonicLike(): { log: pino.Logger; writes: string[]; statuses: () => number[][] } {
    const writes: string[] = [];
    const log = pino({ level: 'info', base: { svc: 'originlink' } }, {
      write: (s: string) => {
        writes.push(s);
        return true;
      },
      flushSync: () => {},
    } as unknown as pino.DestinationStream);
    const statuses = (): number[][] =>
      writes.map((w) =>
        w
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { status: number }).status),
      );
    return { log, writes, statuses };
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  it("to pino's own destination with flushMs 0, the lines of one turn leave in one write at its end; flush() sends them now", async () => {
    const { log, writes, statuses } = sonicLike();
    const rl = new RequestLog(log);
    rl.write(record(200));
    rl.write(record(404));
    expect(writes).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(statuses()).toEqual([[200, 404]]);
    rl.write(record(503));
    rl.flush();
    expect(statuses()).toEqual([[200, 404], [503]]);
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(2); // nothing left for the turn's end
  });

  it('with flushMs, lines wait that long (timed when written, not when they leave), or until MAX_PENDING records wait', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { log, writes, statuses } = sonicLike();
    const rl = new RequestLog(log);
    rl.write(record(200), 100);
    vi.advanceTimersByTime(60);
    rl.write(record(201), 100);
    vi.advanceTimersByTime(39);
    expect(writes).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(statuses()).toEqual([[200, 201]]);
    expect(
      writes[0]!
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { time: number }).time),
    ).toEqual([1_000_000, 1_000_060]);
    // A full batch leaves at once; the next line starts a new wait.
    for (let i = 0; i < MAX_PENDING; i++) rl.write(record(300 + (i % 100)), 100);
    expect(writes).toHaveLength(2);
    expect(statuses()[1]).toHaveLength(MAX_PENDING);
    rl.write(record(299), 100);
    vi.advanceTimersByTime(99);
    expect(writes).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(statuses()[2]).toEqual([299]);
    vi.advanceTimersByTime(1000);
    expect(writes).toHaveLength(3);
  });
});

function record(status: number): RequestRecord {
  const r = new RequestRecord('GET', '/', '1.1', 'front', '127.0.0.1');
  r.status = status;
  return r;
}

describe('request log number and string forms', () => {
  it('jsonNumber writes what JSON.stringify writes, for the times the forwarder rounds to three places and for anything else', () => {
    const values: number[] = [
      0,
      -0,
      1,
      -1,
      0.001,
      0.01,
      0.1,
      0.5,
      0.125,
      1.005,
      2.675,
      999.999,
      1000,
      1234.5,
      2 ** 31,
      -(2 ** 31),
      2 ** 31 - 1,
      1e12,
      1e12 - 0.001,
      999_999_999_999.999,
      -999_999_999_999.999,
      1e21,
      1e-7,
      0.1 + 0.2,
      Math.PI,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_VALUE,
      NaN,
      Infinity,
      -Infinity,
      1_764_000_000_000,
    ];
    // Milliseconds rounded as forward.ts does, over many magnitudes, and arbitrary doubles.
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 20_000; i++) {
      const x = rand() * 10 ** Math.floor(rand() * 13) * (rand() < 0.1 ? -1 : 1);
      values.push(Math.round(x * 1000) / 1000, x);
    }
    for (const v of values) expect(jsonNumber(v), String(v)).toBe(JSON.stringify(v));
  });

  it('jsonString writes what JSON.stringify writes', () => {
    for (const s of [
      '',
      'GET',
      '/a b',
      'say "hi"',
      'back\\slash',
      'tab\there',
      'é',
      '\u2028',
      '\ud800',
      '\u007f',
      'x'.repeat(500),
    ]) {
      expect(jsonString(s)).toBe(JSON.stringify(s));
    }
  });
});
