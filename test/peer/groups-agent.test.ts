/**
 * The Agent takes the same origin-group definition as the service (`origins[KEY].endpoints` …): through undici's
 * fetch with the Agent as its dispatcher over three nginx endpoints, and over HTTP/3 to three of our own h3
 * servers — where a hedge's loser must be cancelled with STOP_SENDING/RESET_STREAM (the server sees its
 * request aborted), health checks go over QUIC, an endpoint that goes away is ejected while no GET fails,
 * and a collapsed response of a megabyte is streamed whole to every waiter.
 */
import diagnostics from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { fetch as undiciFetch } from 'undici';
import { Agent } from '../../src/agent/agent.js';
import { Pool } from '../../src/pool/pool.js';
import type { EndpointEvent } from '../../src/group/diagnostics.js';
import type { H3Server } from '../../src/server/h3.js';
import type { ServerRequest } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { startNginxGroup, type NginxGroup } from '../helpers/nginx-group.js';

const certs = makeCerts();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const events: EndpointEvent[] = [];
const onEvent = (m: unknown): void => {
  events.push(m as EndpointEvent);
};

beforeAll(() => diagnostics.subscribe('originlink:endpoint', onEvent));
afterAll(() => diagnostics.unsubscribe('originlink:endpoint', onEvent));

describe('the Agent as an undici dispatcher over a group of nginx endpoints', () => {
  let group: NginxGroup;
  beforeAll(async () => {
    group = await startNginxGroup(3);
  }, 30_000);
  afterAll(async () => {
    await group?.close();
  });

  it('fetch(url, { dispatcher: agent }) to the group key spreads over the endpoints; checks reach each endpoint', async () => {
    const agent = new Agent({
      tls: { ca: certs.ca },
      origins: {
        'https://api.internal': {
          endpoints: group.endpoints.map((e) => ({ url: e.url })),
          health: { path: '/health', intervalMs: 100, timeoutMs: 90 },
        },
      },
    });
    const before = group.endpoints.map((e) => e.nginx.log().length);
    const bodies = await Promise.all(
      Array.from({ length: 90 }, () =>
        undiciFetch('https://api.internal/g/x', { dispatcher: agent as never }).then((r) => r.text()),
      ),
    );
    await sleep(250);
    await agent.close();
    // nginx writes a request's log line after its response: wait (≤ 2 s) until the lines of all 90 are in.
    await settled(
      () =>
        group.endpoints.reduce(
          (a, e, i) =>
            a +
            e.nginx
              .log()
              .slice(before[i])
              .filter((l) => l.uri === '/g/x').length,
          0,
        ) >= 90,
    );
    for (const [i, e] of group.endpoints.entries()) {
      const lines = e.nginx.log().slice(before[i]);
      expect(lines.filter((l) => l.uri === '/g/x').length).toBe(bodies.filter((b) => b === `${e.name}\n`).length);
      expect(lines.filter((l) => l.uri === '/health').length).toBeGreaterThanOrEqual(1);
    }
    expect(new Set(bodies).size).toBe(3);
    const st = agent.groupStats()[0];
    expect(st?.name).toBe('https://api.internal');
    expect(st?.endpoints.reduce((a, e) => a + e.requests, 0)).toBe(90);
  }, 30_000);

  it("a health check reaches the pool as a request of the same shape as a proxied one (one map for V8's inline caches)", async () => {
    // Both spies call through and only record what reaches the pool: a proxied request enters by `request`, a check
    // by `check` (which runs it on an idle connection itself, or hands it to `request` — which of the two depends on
    // timing, so the check is looked for where it always enters).
    const spy = vi.spyOn(Pool.prototype, 'request');
    const checkSpy = vi.spyOn(Pool.prototype, 'check');
    const seen = (): Array<{ path: string; keys: string[] }> =>
      [...spy.mock.calls, ...checkSpy.mock.calls].map(([req]) => ({ path: req.path, keys: Object.keys(req) }));
    const agent = new Agent({
      tls: { ca: certs.ca },
      origins: {
        'https://shape.internal': {
          endpoints: [{ url: group.endpoints[0]!.url }],
          health: { path: '/health', intervalMs: 50, timeoutMs: 45 },
        },
      },
    });
    try {
      await (await agent.request({ url: 'https://shape.internal/g/shape', responseBufferBytes: 32_768 })).text();
      await settled(() => seen().some((x) => x.path === '/health'));
    } finally {
      await agent.close();
    }
    const check = seen().find((x) => x.path === '/health');
    const proxied = seen().find((x) => x.path === '/g/shape');
    spy.mockRestore();
    checkSpy.mockRestore();
    expect(proxied?.keys).toContain('responseBufferBytes');
    expect(check?.keys).toEqual(proxied?.keys);
  }, 30_000);

  it('an origin override holding only a group field makes its own URL a group of one (collapse on a plain origin)', async () => {
    const e = group.endpoints[0]!;
    const agent = new Agent({ tls: { ca: certs.ca }, origins: { [e.url]: { collapse: true } } });
    const before = e.nginx.log().length;
    const res = await Promise.all(Array.from({ length: 20 }, () => agent.request({ url: `${e.url}/s/one?delay=300` })));
    expect((await Promise.all(res.map((r) => r.text()))).every((t) => t === `${e.name}\n`)).toBe(true);
    expect(res.filter((r) => r.collapsed)).toHaveLength(19);
    const shared = (): number =>
      e.nginx
        .log()
        .slice(before)
        .filter((l) => l.uri.startsWith('/s/')).length;
    await settled(() => shared() >= 1); // its log line comes after its response
    await new Promise((r) => setTimeout(r, 100)); // and a second one, were there one, as soon
    expect(shared()).toBe(1);
    await agent.close();
  }, 30_000);
});

describe('an origin group over HTTP/3 (our h3 servers)', () => {
  const servers: H3Server[] = [];
  /** Per server: requests seen by path, requests whose stream the client cancelled, a delay for `/slow`. */
  const seen: Array<{ paths: string[]; aborted: number; slowMs: number }> = [];
  let agent: Agent | null = null;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const me = { paths: [] as string[], aborted: 0, slowMs: 0 };
      seen.push(me);
      servers.push(
        await startTestH3Server({
          handler: async (req: ServerRequest) => {
            me.paths.push(`${req.version} ${req.path}`);
            if (req.path.startsWith('/slow') && me.slowMs > 0) {
              let gone = false;
              req.onAbort(() => {
                gone = true;
                me.aborted++;
              });
              await sleep(me.slowMs);
              if (gone) return { status: 499 };
            }
            if (req.path.startsWith('/big')) {
              await sleep(200);
              return {
                status: 200,
                headers: [['content-type', 'application/octet-stream']],
                body: Buffer.alloc(1 << 20, 0x61 + i),
              };
            }
            return { status: 200, headers: [['content-type', 'text/plain']], body: `h3-${i}\n` };
          },
        }),
      );
    }
  }, 30_000);
  afterEach(async () => {
    await agent?.close();
    agent = null;
    events.length = 0;
    for (const s of seen) {
      s.paths.length = 0;
      s.aborted = 0;
      s.slowMs = 0;
    }
  });
  afterAll(async () => {
    for (const s of servers) await s.close(0);
  });

  const make = (o: Record<string, unknown>, n = 3): Agent =>
    new Agent({
      protocol: 'h3',
      tls: { ca: certs.ca },
      pool: { connectTimeoutMs: 1000 },
      origins: {
        'https://h3.internal': {
          endpoints: servers.slice(0, n).map((s) => ({ url: `https://localhost:${s.address.port}` })),
          ...o,
        },
      },
    });

  it("p2c spreads over h3 endpoints; active checks go over each endpoint's own QUIC connection", async () => {
    agent = make({ health: { path: '/health', intervalMs: 100, timeoutMs: 90 } });
    const res = await Promise.all(
      Array.from({ length: 60 }, () => agent!.request({ url: 'https://h3.internal/x' }).then((r) => r.text())),
    );
    await sleep(250);
    for (const [i, s] of seen.entries()) {
      expect(s.paths.filter((p) => p === '3 /x').length).toBe(res.filter((b) => b === `h3-${i}\n`).length);
      expect(s.paths.filter((p) => p === '3 /health').length).toBeGreaterThanOrEqual(1);
    }
    expect(new Set(res).size).toBe(3);
  }, 30_000);

  it('hedge over h3: the slow attempt is cancelled (the server sees its stream reset), the other answers', async () => {
    agent = make({ balance: 'round-robin', hedge: { afterMs: 20 }, retryBudget: { ratio: 1, minPerSecond: 100 } });
    await Promise.all(
      Array.from({ length: 6 }, () => agent!.request({ url: 'https://h3.internal/warm' }).then((r) => r.text())),
    );
    seen[0]!.slowMs = 300;
    const t0 = performance.now();
    const res = await Promise.all(
      Array.from({ length: 30 }, () => agent!.request({ url: 'https://h3.internal/slow' })),
    );
    const bodies = await Promise.all(res.map((r) => r.text()));
    expect(performance.now() - t0).toBeLessThan(300);
    expect(bodies.every((b) => b !== 'h3-0\n')).toBe(true);
    const atSlow = seen[0]!.paths.filter((p) => p === '3 /slow').length;
    // Round robin sends every third first attempt to the slow server: each of those 10 is hedged. (On a loaded machine
    // a fast server's answer may take past 20 ms too: a hedge of its request may go to the slow server as well.)
    expect(atSlow).toBeGreaterThanOrEqual(10);
    expect(res.filter((r) => r.hedged).length).toBeGreaterThanOrEqual(10);
    // Every attempt the slow server got lost to a hedge and was reset by us: the server saw each of them aborted.
    await vi.waitFor(() => expect(seen[0]!.aborted).toBe(atSlow), { timeout: 2000, interval: 20 });
    const st = agent.groupStats()[0]!;
    expect(
      st.endpoints
        .filter((e) => e.url !== `https://localhost:${servers[0]!.address.port}`)
        .reduce((a, e) => a + e.hedgesWon, 0),
    ).toBeGreaterThanOrEqual(atSlow);
  }, 30_000);

  it('an h3 endpoint that goes away: no GET fails, it is ejected (told once)', async () => {
    const spare = await startTestH3Server({ handler: () => ({ status: 200, body: 'spare\n' }) });
    agent = new Agent({
      protocol: 'h3',
      tls: { ca: certs.ca },
      pool: { connectTimeoutMs: 500 },
      origins: {
        'https://h3.internal': {
          endpoints: [servers[0]!, servers[1]!, spare].map((s) => ({ url: `https://localhost:${s.address.port}` })),
          outlier: { consecutiveFailures: 2, maxEjectionPercent: 34 },
        },
      },
    });
    await Promise.all(
      Array.from({ length: 9 }, () => agent!.request({ url: 'https://h3.internal/x' }).then((r) => r.text())),
    );
    await spare.close(0);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await agent.request({ url: 'https://h3.internal/x' });
      statuses.push(r.status);
      await r.text();
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    const gone = `https://localhost:${spare.address.port}`;
    expect(events.filter((e) => e.event === 'ejected' && e.endpoint === gone)).toHaveLength(1);
    expect(agent.groupStats()[0]!.endpoints.find((e) => e.url === gone)?.health).toBe('ejected');
  }, 30_000);

  it('collapse: a megabyte streamed to twenty waiters, each whole, from one origin request', async () => {
    agent = make({ collapse: true }, 1);
    const res = await Promise.all(Array.from({ length: 20 }, () => agent!.request({ url: 'https://h3.internal/big' })));
    const bodies = await Promise.all(res.map((r) => r.bytes()));
    expect(seen[0]!.paths.filter((p) => p === '3 /big')).toHaveLength(1);
    for (const b of bodies) expect(b.equals(Buffer.alloc(1 << 20, 0x61))).toBe(true);
    expect(res.filter((r) => r.collapsed)).toHaveLength(19);
  }, 30_000);
});

/** Waits until `cond` holds, 2 s at most (then the assertions that follow say what is missing). */
async function settled(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
}
