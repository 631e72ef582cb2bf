/**
 * Every request our servers hand a handler has one hidden class (V8 map) per
 * server kind. An object literal with `get` accessors got a map of its own
 * each time; the maps stayed linked from the transition tree, and V8's
 * scavenger keeps what they reach, so every request's objects were promoted
 * to the old generation (see ServedRequest in server/request.ts and
 * bench/RESULTS.md `proxy`). `%HaveSameMap` and `%HasFastProperties` are
 * V8's own checks.
 */
import { afterAll, describe, expect, it } from 'vitest';
import v8 from 'node:v8';
import { Agent } from '../../src/index.js';
import { startH1Server } from '../../src/server/h1.js';
import { startH2Server } from '../../src/server/h2.js';
import type { SessionServer } from '../../src/server/listen.js';
import type { ServerRequest } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

v8.setFlagsFromString('--allow-natives-syntax');
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- V8's intrinsic is only reachable from code compiled after the flag
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- as above
const fastProperties = new Function('a', 'return %HasFastProperties(a)') as (a: object) => boolean;

const certs = makeCerts();
const servers: Array<{ close(graceMs?: number): Promise<void> }> = [];
const agent = new Agent({ tls: { ca: certs.ca, servername: 'localhost' } });

afterAll(async () => {
  await agent.close();
  for (const s of servers) await s.close(100);
});

/** Four requests (three GETs, one POST with a body) to a server; the request objects its handler saw. */
async function seen(kind: 'h1' | 'h2' | 'h3'): Promise<ServerRequest[]> {
  const reqs: ServerRequest[] = [];
  const handler = async (req: ServerRequest): Promise<{ status: number; body: string }> => {
    reqs.push(req);
    let n = 0;
    for await (const c of req.body) n += (c as Buffer).length;
    void req.signal;
    return { status: 200, body: `${n}\n` };
  };
  let url: string;
  if (kind === 'h3') {
    const s = await startTestH3Server({ port: 0, handler });
    servers.push(s);
    url = `https://127.0.0.1:${s.address.port}`;
  } else {
    const s: SessionServer = kind === 'h1' ? await startH1Server({ handler }) : await startH2Server({ handler });
    servers.push(s);
    url = `http://127.0.0.1:${s.address.port}`;
  }
  const protocol = kind === 'h3' ? 'h3' : kind === 'h2' ? 'h2' : 'h1';
  for (const [i, method] of ['GET', 'GET', 'POST', 'GET'].entries()) {
    const r = await agent.request({
      url: `${url}/r${i}`,
      method,
      protocol,
      headers: [],
      ...(method === 'POST' ? { body: 'hello' } : {}),
    });
    expect(await r.text()).toBe(method === 'POST' ? '5\n' : '0\n');
  }
  return reqs;
}

describe('the request a handler gets', () => {
  for (const kind of ['h1', 'h2', 'h3'] as const) {
    it(`${kind}: every request has the same hidden class (no map per request)`, async () => {
      const reqs = await seen(kind);
      expect(reqs).toHaveLength(4);
      // Fast properties (not a dictionary: V8 shares dictionary maps, so the map check alone could pass) and one map.
      for (const r of reqs) expect(fastProperties(r as object)).toBe(true);
      for (const r of reqs.slice(1)) expect(sameMap(reqs[0] as object, r as object)).toBe(true);
    });
  }
});
