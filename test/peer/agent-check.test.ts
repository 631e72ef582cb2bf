/**
 * Agent.check (docs/module.md "Health checks") against a real nginx: the answer's status and fields on the origin's
 * own pool, no diagnostics request events; a refused port rejects at once, and dials again at the next check even
 * while the pool's connects back off.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, channels } from '../../src/index.js';
import { Nginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';

describe('Agent.check', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await Nginx.start({ tls: false });
  }, 30_000);
  afterAll(async () => {
    await nginx?.close();
  });

  it("answers the origin's status and fields, on the origin's pool, with no request events", async () => {
    const agent = new Agent({ protocol: 'h1' });
    const seen: unknown[] = [];
    const on = (m: unknown): void => {
      seen.push(m);
    };
    subscribe(channels.requestEnd.name, on);
    try {
      const origin = `http://127.0.0.1:${nginx.port}`;
      const r = await agent.check(origin, '/small.txt', [['user-agent', 't']], new AbortController().signal);
      expect(r.status).toBe(200);
      expect(r.headers.find(([n]) => n === 'server')?.[1]).toMatch(/nginx/);
      const missing = await agent.check(origin, '/no-such-file', [], new AbortController().signal);
      expect(missing.status).toBe(404);
      expect(seen).toEqual([]);
      // The same pool as requests: the check's connection is the one a request then reuses.
      const st = agent.stats().find((p) => p.origin === origin);
      expect(st?.connectionsOpened).toBe(1);
    } finally {
      unsubscribe(channels.requestEnd.name, on);
      await agent.close();
    }
  });

  it('a refused port rejects at once, and the next check dials again through the backoff', async () => {
    const agent = new Agent({ protocol: 'h1', pool: { connectBackoffBaseMs: 5000, connectBackoffMaxMs: 5000 } });
    try {
      const origin = `http://127.0.0.1:${await freePort()}`;
      const t0 = performance.now();
      await expect(agent.check(origin, '/', [], new AbortController().signal)).rejects.toMatchObject({
        code: 'OL_CONNECT_FAILED',
      });
      await expect(agent.check(origin, '/', [], new AbortController().signal)).rejects.toMatchObject({
        code: 'OL_CONNECT_FAILED',
      });
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(agent.stats().find((p) => p.origin === origin)?.connectFailures).toBe(2);
    } finally {
      await agent.close();
    }
  });
});
