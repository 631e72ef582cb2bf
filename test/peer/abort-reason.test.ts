/**
 * A caller's `abort(reason)` reaches the caller as OL_ABORTED with that reason as `cause` (issue 54, smaller
 * findings), wherever the request was: already aborted, queued for a connection, or on the wire.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type OriginlinkError } from '../../src/index.js';

let slow: http.Server;
let url = '';

beforeAll(async () => {
  slow = http.createServer((_req, res) => {
    setTimeout(() => res.end('late\n'), 400);
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/`;
});
afterAll(() => {
  slow.closeAllConnections();
  slow.close();
});

const mine = (): Error => Object.assign(new Error('mine'), { mine: true });

describe('abort(reason): the reason is the cause', () => {
  it('on the wire', async () => {
    const agent = new Agent();
    const ac = new AbortController();
    const p = agent.request({ url, signal: ac.signal }).catch((e: unknown) => e as OriginlinkError);
    setTimeout(() => ac.abort(mine()), 50);
    const e = await p;
    expect(e.code).toBe('OL_ABORTED');
    expect((e.cause as Error & { mine?: boolean }).mine).toBe(true);
    await agent.destroy();
  });

  it('queued behind a busy connection (maxConnections 1)', async () => {
    const agent = new Agent({ pool: { maxConnections: 1 } });
    const first = agent.request({ url }).then((r) => r.text());
    const ac = new AbortController();
    const p = agent.request({ url, signal: ac.signal }).catch((e: unknown) => e as OriginlinkError);
    setTimeout(() => ac.abort(mine()), 50);
    const e = await p;
    expect(e.code).toBe('OL_ABORTED');
    expect((e.cause as Error).message).toBe('mine');
    await first;
    await agent.close();
  });

  it('aborted before the call', async () => {
    const agent = new Agent();
    const ac = new AbortController();
    ac.abort(mine());
    const e = await agent.request({ url, signal: ac.signal }).catch((x: unknown) => x as OriginlinkError);
    expect(e.code).toBe('OL_ABORTED');
    expect((e.cause as Error).message).toBe('mine');
    await agent.close();
  });
});
