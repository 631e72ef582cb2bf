/**
 * The request log line (service/request-log.ts) is the line pino itself
 * writes for `log.info(fields, 'request')`: same keys, order and escaping,
 * the logger's bindings after `time`, nothing below the logger's level.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RequestLog } from '../../src/service/request-log.js';

function capture(level = 'info', base: Record<string, unknown> = { svc: 'originlink' }): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level, base }, { write: (s: string) => { lines.push(s); } });
  return { log, lines };
}

/** pino's `time` differs between the two lines: compare without it. */
const untimed = (line: string): string => line.replace(/"time":\d+/, '"time":0');

describe('RequestLog', () => {
  it('writes the line pino writes, fields then the extra ones, strings escaped', () => {
    const fields = {
      method: 'GET', path: '/a "quoted"\\path?x=\n\u0001é', client: '1.1', listener: 'front', remote: '::1', route: 0, origin: 'o',
      upstream: 'https://127.0.0.1:8443', protocol: 'h2', reused: true, attempts: 1, queueMs: 0.125, ttfbMs: 3, status: 200, totalMs: 4.5,
    };
    const more = { bytes: 1024, error: 'OL_UPSTREAM_BODY', reason: 'origin failed mid-response', skipped: undefined };
    const ours = capture();
    new RequestLog(ours.log).write(fields, more);
    const theirs = capture();
    theirs.log.info({ ...fields, ...more }, 'request');
    expect(ours.lines).toHaveLength(1);
    expect(untimed(ours.lines[0]!)).toBe(untimed(theirs.lines[0]!));
    expect(JSON.parse(ours.lines[0]!)).toMatchObject({ level: 30, svc: 'originlink', path: fields.path, bytes: 1024, msg: 'request' });
  });

  it("carries a child logger's bindings (a cluster worker's) and writes nothing below its level", () => {
    const ours = capture('info', { svc: 'originlink', worker: 2, pid: 1234 });
    const rl = new RequestLog(ours.log);
    rl.write({ status: 204 }, {});
    expect(JSON.parse(ours.lines[0]!)).toMatchObject({ svc: 'originlink', worker: 2, pid: 1234, status: 204, msg: 'request' });
    ours.log.level = 'warn'; // a reload may raise it
    rl.write({ status: 200 }, {});
    expect(ours.lines).toHaveLength(1);
  });

  it("to pino's own destination (SonicBoom), the lines of one turn leave in one write at its end; flush() sends them now", async () => {
    const writes: string[] = [];
    const dest = { write: (s: string) => { writes.push(s); return true; }, flushSync: () => {} }; // SonicBoom's shape
    const log = pino({ level: 'info', base: { svc: 'originlink' } }, dest);
    const rl = new RequestLog(log);
    rl.write({ status: 200 }, {});
    rl.write({ status: 404 }, {});
    expect(writes).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(1);
    expect(writes[0]!.trim().split('\n').map((l) => (JSON.parse(l) as { status: number }).status)).toEqual([200, 404]);
    rl.write({ status: 503 }, {});
    rl.flush();
    expect(writes).toHaveLength(2);
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(2); // nothing left for the turn's end
  });
});
