import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { H3Response } from '../../src/client/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import { dialResuming as dial, getAt, recordFirstFlight, replayFlight, text } from '../helpers/first-flight.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { until } from '../helpers/wait.js';

let srv: H3Server;
const hits: string[] = [];

beforeAll(async () => {
  srv = await startTestH3Server({
    handler: (r) => {
      hits.push(r.path);
      return { status: 200, body: `ok ${r.path}\n` };
    },
  });
});
afterAll(async () => {
  await srv?.close(50);
});

describe('0-RTT anti-replay on our h3 server', () => {
  it('a captured first flight replayed from new ports after its connection is gone: the request is handled once, the copies get no early data', async () => {
    const port = srv.address.port;
    const store = new MemorySessionStore();
    const c0 = await dial(port, store);
    expect(await text((await c0.request(getAt('/prime', false))).body)).toBe('ok /prime\n');
    c0.destroy();

    const rec = await recordFirstFlight(port);
    try {
      const c1 = await dial(rec.port, store);
      const r = (await c1.request(getAt('/replay-me', true))) as H3Response;
      expect(r.earlyData).toBe(true);
      expect(await text(r.body)).toBe('ok /replay-me\n');
      // The answer came with the server's first flight (0.5-RTT): let the client's Finished leave, then close.
      await until(() => rec.afterAnswer() > 0, 2000);
      c1.destroy();
      // Its CONNECTION_CLOSE goes through the relay: the server forgets the connection (and its DCID).
      await until(() => srv.connections === 0, 5000);
    } finally {
      rec.close();
    }
    expect(rec.flight.length).toBeGreaterThan(0);
    expect(srv.connections).toBe(0);

    const before = srv.stats().replayedEarly;
    await replayFlight(rec.flight, port, 3);
    expect(hits.filter((p) => p === '/replay-me')).toHaveLength(1);
    expect(srv.stats().replayedEarly - before).toBeGreaterThanOrEqual(1);
  });

  it('a resumed client is not held back by it: each new connection of its own gets 0-RTT', async () => {
    const port = srv.address.port;
    const store = new MemorySessionStore();
    const c0 = await dial(port, store);
    await text((await c0.request(getAt('/prime2', false))).body);
    c0.destroy();
    for (let i = 0; i < 3; i++) {
      const c = await dial(port, store);
      const r = (await c.request(getAt(`/again/${i}`, true))) as H3Response;
      expect(await text(r.body)).toBe(`ok /again/${i}\n`);
      expect(r.earlyData).toBe(true);
      c.destroy();
    }
  });

  it('a fleet record that does not answer within 100 ms refuses that connection its early data: 1-RTT, answered', async () => {
    const silent = await startTestH3Server({
      handler: (r) => ({ status: 200, body: `ok ${r.path}\n` }),
      earlyDataRecord: () => new Promise<boolean>(() => {}),
    });
    try {
      const port = silent.address.port;
      const store = new MemorySessionStore();
      const c0 = await dial(port, store);
      await text((await c0.request(getAt('/prime3', false))).body);
      c0.destroy();
      const c = await dial(port, store);
      const r = (await c.request(getAt('/unanswered', true))) as H3Response;
      expect({ early: r.earlyData, body: await text(r.body) }).toEqual({ early: false, body: 'ok /unanswered\n' });
      c.destroy();
      expect(silent.stats()).toMatchObject({ replayedEarly: 1, fleetUnanswered: 1 });
    } finally {
      await silent.close(50);
    }
  });
});
