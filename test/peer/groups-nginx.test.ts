/**
 * Origin groups (docs/origin-groups.md) in the service, against three real TLS nginx endpoints that are
 * killed (SIGKILL), stopped (SIGSTOP), slowed and made to answer 503. Each behaviour is read from the
 * endpoints' own access logs where they can tell it, and from the service's log lines.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { startNginxGroup, type GroupEndpoint, type NginxGroup } from '../helpers/nginx-group.js';
import type { LogLine } from '../helpers/nginx.js';

const certs = makeCerts();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Running {
  svc: Service;
  port: number;
  logs: Array<Record<string, unknown>>;
  admin: number;
}

async function serve(origin: string): Promise<Running> {
  const logs: Array<Record<string, unknown>> = [];
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
logging: { flushMs: 0 }
origins:
  g:
${origin}
routes:
  - { path: /, origin: g }
`;
  const svc = await Service.start(parseConfig(yaml, 'groups.yaml', certs.dir), {
    logDestination: {
      write: (s: string) => {
        logs.push(JSON.parse(s) as Record<string, unknown>);
      },
    },
  });
  return { svc, port: svc.addresses()['plain'] as number, logs, admin: svc.adminPort as number };
}

async function get(port: number, path: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, init);
  return { status: r.status, body: await r.text() };
}

/** Requests `concurrency` at a time until `stop()` resolves: their statuses, bodies and times. */
async function loadUntil(
  port: number,
  stop: Promise<unknown>,
  concurrency: number,
  path = '/g/x',
  init: RequestInit = {},
): Promise<Array<{ status: number; body: string; ms: number }>> {
  let over = false;
  void stop.then(() => {
    over = true;
  });
  const out: Array<{ status: number; body: string; ms: number }> = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < 100_000 && !over; i++) {
        const t0 = performance.now();
        try {
          out.push({ ...(await get(port, path, init)), ms: performance.now() - t0 });
        } catch (e) {
          out.push({ status: 0, body: String(e), ms: performance.now() - t0 });
        }
      }
    }),
  );
  return out;
}

/** `n` requests, `concurrency` at a time (`init`: the same for all, or made per request): their statuses and bodies. */
async function load(
  port: number,
  n: number,
  concurrency: number,
  path = '/g/x',
  init: RequestInit | ((i: number) => RequestInit) = {},
): Promise<Array<{ status: number; body: string; ms: number }>> {
  const out: Array<{ status: number; body: string; ms: number }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const t0 = performance.now();
        try {
          const r = await get(port, path, typeof init === 'function' ? init(i) : init);
          out.push({ ...r, ms: performance.now() - t0 });
        } catch (e) {
          out.push({ status: 0, body: String(e), ms: performance.now() - t0 });
        }
      }
    }),
  );
  return out;
}

const endpointsYaml = (g: NginxGroup, extra: string, protocol = 'h1'): string =>
  `    endpoints:\n${g.endpoints.map((e) => `      - { url: "${e.url}" }`).join('\n')}\n    protocol: ${protocol}\n    tls: { ca: ${certs.caPath} }\n${extra}`;

describe('origin groups over nginx endpoints', () => {
  let group: NginxGroup;
  let run: Running | null = null;

  beforeAll(async () => {
    group = await startNginxGroup(3, { slowMs: 100 });
  }, 30_000);
  afterEach(async () => {
    await run?.svc.shutdown(500);
    run = null;
    for (const e of group.endpoints) {
      for (const f of ['503', 'slow', 'close'] as const) e.set(f, false);
      try {
        e.cont();
      } catch {
        /* not running */
      }
      if (e.nginx.pid === undefined || !(await alive(e))) await e.start();
    }
  });
  afterAll(async () => {
    await group?.close();
  });

  it.each(['h1', 'h2'])(
    'p2c spreads requests over every endpoint (%s); the request log names the endpoint each access log saw',
    async (protocol) => {
      run = await serve(endpointsYaml(group, '', protocol));
      const before = logMarks(group);
      const res = await load(run.port, 300, 12);
      expect(res.every((r) => r.status === 200)).toBe(true);
      const served = await servedBy(group, before, 300);
      expect(served.reduce((a, b) => a + b, 0)).toBe(300);
      for (const n of served) expect(n).toBeGreaterThan(30);
      // Every answer's body is the name of the nginx that gave it; the request log names that endpoint as often.
      for (const [i, e] of group.endpoints.entries())
        expect(res.filter((r) => r.body === `${e.name}\n`).length).toBe(served[i]);
      const lines = await logged(run, (l) => l['msg'] === 'request', 300);
      for (const [i, e] of group.endpoints.entries())
        expect(lines.filter((l) => l['upstream'] === e.url).length).toBe(served[i]);
    },
  );

  it('weights: an endpoint of weight 4 gets about 4 times the share of one of weight 1 (round-robin)', async () => {
    const [a, b, c] = group.endpoints as [GroupEndpoint, GroupEndpoint, GroupEndpoint];
    run = await serve(
      `    endpoints:\n      - { url: "${a.url}", weight: 4 }\n      - { url: "${b.url}" }\n      - { url: "${c.url}" }\n    balance: round-robin\n    protocol: h1\n    tls: { ca: ${certs.caPath} }\n`,
    );
    const before = logMarks(group);
    const res = await load(run.port, 120, 1);
    expect(res.every((r) => r.status === 200)).toBe(true);
    expect(await servedBy(group, before, 120)).toEqual([80, 20, 20]);
  });

  it('SIGKILL of one endpoint under load: no GET fails, only POSTs it held are lost; out within 1 s, back within one health interval of its restart', async () => {
    run = await serve(
      endpointsYaml(
        group,
        `    health: { path: /health, intervalMs: 500, timeoutMs: 400, rise: 1, fall: 2 }\n    outlier: { consecutiveFailures: 3, maxEjectionPercent: 34 }\n`,
      ),
    );
    const victim = group.endpoints[1] as GroupEndpoint;
    let end = (): void => {};
    const over = new Promise<void>((r) => {
      end = r;
    });
    const gets = loadUntil(run.port, over, 6);
    const posts = loadUntil(run.port, over, 2, '/g/post', { method: 'POST', body: 'x' });
    await sleep(400);
    const killedAt = Date.now();
    await victim.kill();
    await sleep(1200);
    const before = victim.nginx.log().length;
    await victim.start();
    const restartedAt = Date.now();
    await sleep(1000); // two health intervals: the endpoint is back and serves its share
    end();
    const [g, p] = await Promise.all([gets, posts]);
    expect(g.filter((r) => r.status !== 200)).toEqual([]);
    const lines = await logged(run, (l) => l['msg'] === 'request', g.length + p.length);
    // A lost POST is one the killed endpoint had taken: its line names it, and its connection was lost (not refused).
    const lost = lines.filter((l) => l['method'] === 'POST' && l['status'] !== 200);
    expect(p.filter((r) => r.status !== 200).length).toBe(lost.length);
    for (const l of lost) {
      expect(l['upstream']).toBe(victim.url);
      expect(['OL_SOCKET_CLOSED', 'OL_SOCKET_RESET']).toContain(l['error']);
    }
    const ejected = run.logs.filter((l) => l['event'] === 'ejected' && l['endpoint'] === victim.url);
    expect(ejected).toHaveLength(1);
    expect((ejected[0]?.['time'] as number) - killedAt).toBeLessThan(1000);
    // Back: a check passed within one interval (500 ms) of the restart, logged once, and the endpoint serves again.
    const back = run.logs.filter(
      (l) => (l['event'] === 'readmitted' || l['event'] === 'healthy') && l['endpoint'] === victim.url,
    );
    expect(back.length).toBeGreaterThanOrEqual(1);
    expect((back[0]?.['time'] as number) - restartedAt).toBeLessThan(500 + 150);
    expect(victim.served(before)).toBeGreaterThan(0);
  }, 30_000);

  it.each(['h1', 'h2'])(
    'SIGSTOP: hedged GETs all answer from the others, the stopped nginx logs the cancelled attempts as 499 (%s); checks mark it unhealthy',
    async (protocol) => {
      run = await serve(
        endpointsYaml(
          group,
          `    balance: round-robin\n    hedge: { afterMs: 30 }\n    health: { path: /health, intervalMs: 300, timeoutMs: 250, rise: 1, fall: 2 }\n    timeouts: { headersMs: 5000 }\n`,
          protocol,
        ),
      );
      const victim = group.endpoints[2] as GroupEndpoint;
      // Through nginx's proxy (a 5 ms backend): nginx, waiting on it, notices a client that went and logs 499.
      const path = '/s/x?delay=5';
      // Warm connections to every endpoint on another URI: nginx logs a line after its response has gone, so the
      // warm-up's last lines may land after `before` is read; only the stopped phase's URI is counted below.
      await load(run.port, 30, 3, `${path}&warm=1`);
      const before = victim.nginx.log().length;
      victim.stop();
      const res = await load(run.port, 60, 3, path);
      await sleep(800);
      victim.cont();
      expect(res.filter((r) => r.status !== 200)).toEqual([]);
      const lines = await logged(run, (l) => l['msg'] === 'request', 90);
      const hedged = lines.slice(30).filter((l) => l['hedged'] === true);
      expect(hedged.length).toBeGreaterThan(0);
      for (const l of hedged) expect(l['upstream']).not.toBe(victim.url);
      // nginx, continued, finds those requests' clients gone: each cancelled attempt is a 499 in its own log.
      const cancelled = (await victim.nginx.logSince(before, hedged.length, 3000)).filter((l) => l.uri === path);
      expect(cancelled.length).toBeGreaterThan(0);
      for (const l of cancelled) expect(l.status).toBe(499);
      expect(run.logs.filter((l) => l['event'] === 'unhealthy' && l['endpoint'] === victim.url)).toHaveLength(1);
    },
    30_000,
  );

  it('a slow endpoint (100 ms) under ewma gets almost nothing, and the p99 stays that of the fast ones', async () => {
    run = await serve(endpointsYaml(group, '    balance: ewma\n'));
    const slow = group.endpoints[0] as GroupEndpoint;
    await load(run.port, 30, 3);
    slow.set('slow', true);
    // Until its first slow answer comes back the endpoint looks as fast as it was: a few requests learn it.
    await load(run.port, 60, 6);
    const before = slow.nginx.log().length;
    const res = await load(run.port, 600, 6);
    expect(res.every((r) => r.status === 200)).toBe(true);
    expect(slow.served(before)).toBeLessThan(600 * 0.01);
    const ms = res.map((r) => r.ms).sort((a, b) => a - b);
    expect(ms[Math.floor(ms.length * 0.99)]).toBeLessThan(100);
  }, 30_000);

  it('hedge: requests that meet a slow endpoint are answered by another; the slow nginx logs the losers as 499', async () => {
    // A third of the requests meet the slow endpoint: a budget that lets every one of them hedge (the default, 20 %
    // of the requests and 10 a second, would refuse some: they would wait the 100 ms).
    run = await serve(
      endpointsYaml(
        group,
        '    balance: round-robin\n    hedge: { afterMs: 20 }\n    retryBudget: { ratio: 0.5, minPerSecond: 50 }\n',
        'h2',
      ),
    );
    const slow = group.endpoints[0] as GroupEndpoint;
    await load(run.port, 30, 3); // warm connections everywhere: a hedge is not a handshake
    type Hedges = { g: { endpoints: Array<{ hedgesSent: number; hedgesWon: number }> } };
    const sum = (st: Hedges, k: 'hedgesSent' | 'hedgesWon'): number => st.g.endpoints.reduce((a, e) => a + e[k], 0);
    const warm = (await adminJson(run, '/stats')) as Hedges;
    slow.set('slow', true);
    const before = slow.nginx.log().length;
    const res = await load(run.port, 90, 3);
    expect(res.every((r) => r.status === 200 && r.body !== `${slow.name}\n`)).toBe(true);
    const ms = res.map((r) => r.ms).sort((a, b) => a - b);
    expect(ms[Math.floor(ms.length * 0.99)]).toBeLessThan(90);
    const lines = (await logged(run, (l) => l['msg'] === 'request', 120)).slice(30);
    const hedged = lines.filter((l) => l['hedged'] === true);
    expect(hedged.length).toBeGreaterThanOrEqual(25);
    for (const l of hedged) expect(l['upstream']).not.toBe(slow.url);
    // Each loser was cancelled: the slow nginx, waiting on its backend, saw its client go and logged 499.
    const losers = await slow.nginx.logSince(before, hedged.length, 3000);
    expect(losers.filter((l) => l.uri.startsWith('/g/') && l.status === 499).length).toBe(hedged.length);
    const stats = (await adminJson(run, '/stats')) as Hedges;
    expect(sum(stats, 'hedgesWon') - sum(warm, 'hedgesWon')).toBe(hedged.length);
    expect(sum(stats, 'hedgesSent') - sum(warm, 'hedgesSent')).toBe(hedged.length);
  }, 30_000);

  it('an endpoint answering 503 is ejected after consecutiveFailures: its access log shows them and then nothing; re-admitted once it passes a check', async () => {
    run = await serve(
      endpointsYaml(
        group,
        `    balance: round-robin\n    outlier: { consecutiveFailures: 3, baseEjectionMs: 60000, maxEjectionPercent: 34 }\n    health: { path: /health, intervalMs: 300, timeoutMs: 250, rise: 1, fall: 2 }\n`,
      ),
    );
    const sick = group.endpoints[1] as GroupEndpoint;
    sick.set('503', true);
    const before = sick.nginx.log().length;
    const res = await load(run.port, 60, 1);
    expect(res.filter((r) => r.status === 503)).toHaveLength(3);
    const seen = sick.nginx
      .log()
      .slice(before)
      .filter((l) => l.uri.startsWith('/g/'));
    expect(seen.map((l) => l.status)).toEqual([503, 503, 503]);
    expect(run.logs.filter((l) => l['event'] === 'ejected' && l['endpoint'] === sick.url)).toHaveLength(1);
    sick.set('503', false);
    await sleep(700);
    expect(run.logs.filter((l) => l['event'] === 'readmitted' && l['endpoint'] === sick.url)).toHaveLength(1);
    const again = group.endpoints.map((e) => e.nginx.log().length);
    await load(run.port, 30, 1);
    expect((await servedBy(group, again, 30))[1]).toBe(10);
  }, 30_000);

  it('retry budget: with every endpoint closing its connections, the origins see at most (1 + ratio) × the requests + minPerSecond', async () => {
    const budget = '    retries: 5\n    retryBudget: { ratio: 0.1, minPerSecond: 3 }\n';
    run = await serve(endpointsYaml(group, budget));
    await load(run.port, 240, 24); // connections that served requests, warm at every endpoint
    await sleep(1100); // the budget's window forgets them
    const before = logMarks(group);
    for (const e of group.endpoints) e.set('close', true);
    const res = await load(run.port, 30, 3);
    expect(res.every((r) => r.status === 502)).toBe(true);
    const seen = await linesSince(group, before, (l) => l.status === 444, 30);
    expect(seen).toBeGreaterThanOrEqual(30);
    expect(seen).toBeLessThanOrEqual(30 * 1.1 + 3 + 1);
    const stats = (await adminJson(run, '/stats')) as { g: { endpoints: Array<{ retriesRefused: number }> } };
    expect(stats.g.endpoints.reduce((a, e) => a + e.retriesRefused, 0)).toBeGreaterThan(0);
  }, 30_000);

  it('collapse: 100 concurrent identical GETs of a 300 ms resource are one origin request, every client gets the whole answer', async () => {
    run = await serve(endpointsYaml(group, '    collapse: { maxWaiters: 200 }\n'));
    await load(run.port, 9, 3);
    const before = logMarks(group);
    const res = await load(run.port, 100, 100, '/s/thing?delay=300');
    expect(res.every((r) => r.status === 200 && /^e\d\n$/.test(r.body))).toBe(true);
    expect(new Set(res.map((r) => r.body)).size).toBe(1);
    const seen = await linesSince(group, before, (l) => l.uri.startsWith('/s/'), 1);
    expect(seen).toBe(1);
    const lines = await logged(run, (l) => l['msg'] === 'request' && String(l['path']).startsWith('/s/'), 100);
    expect(lines.filter((l) => l['collapsed'] === true)).toHaveLength(99);
  }, 30_000);

  it('collapse: a response that says Cache-Control: private is not shared, each waiter sends its own', async () => {
    run = await serve(endpointsYaml(group, '    collapse: true\n'));
    const before = logMarks(group);
    const res = await load(run.port, 10, 10, '/p/mine?delay=300');
    expect(res.every((r) => r.status === 200)).toBe(true);
    const seen = await linesSince(group, before, (l) => l.uri.startsWith('/p/'), 10);
    expect(seen).toBe(10);
  }, 30_000);

  it('hedge only for requests the retry policy may replay: a POST waits for the slow endpoint, a POST with Idempotency-Key is hedged', async () => {
    run = await serve(
      endpointsYaml(
        group,
        '    balance: round-robin\n    hedge: { afterMs: 20 }\n    retryBudget: { ratio: 1, minPerSecond: 100 }\n',
        'h2',
      ),
    );
    const slow = group.endpoints[0] as GroupEndpoint;
    await load(run.port, 30, 3); // warm connections everywhere
    slow.set('slow', true);
    const before = slow.nginx.log().length;
    const plain = await load(run.port, 30, 3, '/g/post', { method: 'POST', body: 'x' });
    expect(plain.every((r) => r.status === 200)).toBe(true);
    // nginx writes a request's log line just after its response left: wait for as many as answers came from there.
    const fromSlow = plain.filter((r) => r.body === `${slow.name}\n`).length;
    const atSlow = (await slow.nginx.logSince(before, Math.max(8, fromSlow), 3000)).filter((l) => l.method === 'POST');
    // A POST may have been processed: never sent twice. Those that met the slow endpoint waited for it, answered there.
    expect(atSlow.length).toBeGreaterThanOrEqual(8);
    expect(atSlow.every((l) => l.status === 200)).toBe(true);
    expect(fromSlow).toBe(atSlow.length);
    const mid = slow.nginx.log().length;
    const keyed = await load(run.port, 30, 3, '/g/post', (i) => ({
      method: 'POST',
      body: 'x',
      headers: { 'idempotency-key': `k${i}` },
    }));
    expect(keyed.every((r) => r.status === 200 && r.body !== `${slow.name}\n`)).toBe(true);
    const lines = (await logged(run, (l) => l['msg'] === 'request' && l['method'] === 'POST', 60)).slice(30);
    const hedged = lines.filter((l) => l['hedged'] === true);
    expect(hedged.length).toBeGreaterThanOrEqual(8);
    const losers = await slow.nginx.logSince(mid, hedged.length, 3000);
    expect(losers.filter((l) => l.method === 'POST' && l.status === 499)).toHaveLength(hedged.length);
  }, 30_000);

  it('hedges spend the retry budget: past it no hedge goes (the request waits for its first attempt), each refusal counted', async () => {
    run = await serve(
      endpointsYaml(
        group,
        '    balance: round-robin\n    hedge: { afterMs: 20 }\n    retryBudget: { ratio: 0, minPerSecond: 2 }\n',
        'h2',
      ),
    );
    const slow = group.endpoints[0] as GroupEndpoint;
    await load(run.port, 30, 3);
    await sleep(1100); // the warm-up's first attempts leave the budget's window: it allows minPerSecond alone
    slow.set('slow', true);
    const before = slow.nginx.log().length;
    const res = await load(run.port, 30, 3);
    expect(res.every((r) => r.status === 200)).toBe(true);
    const lines = (await logged(run, (l) => l['msg'] === 'request', 60)).slice(30);
    const hedged = lines.filter((l) => l['hedged'] === true).length;
    expect(hedged).toBeGreaterThanOrEqual(1);
    expect(hedged).toBeLessThanOrEqual(4); // 2 a second; the run may span two windows
    const stats = (await adminJson(run, '/stats')) as {
      g: { endpoints: Array<{ url: string; retriesRefused: number }> };
    };
    const refused = stats.g.endpoints.find((e) => e.url === slow.url)?.retriesRefused ?? -1;
    // Every attempt the slow endpoint took was either hedged or refused its hedge. nginx writes a line as a response
    // ends (a hedge's loser when it sees the stream reset): waited for until that many are in (a CI run looked at 8
    // of 9 and found one refusal more than lines), then none more may be there.
    const atSlow = (await slow.nginx.logSince(before, refused + hedged, 3000)).filter((l) => l.uri.startsWith('/g/'));
    // The slow endpoint answered every attempt no hedge raced (200), and logged the hedged ones' losers as 499.
    expect(atSlow.filter((l) => l.status === 499)).toHaveLength(hedged);
    expect(atSlow.filter((l) => l.status === 200).length).toBeGreaterThanOrEqual(5);
    expect(refused).toBe(atSlow.length - hedged);
  }, 30_000);

  it('health checks go over the warm connection requests use (h2: one connection per endpoint, checks and requests alike)', async () => {
    // This run's lines carry `run=warm` in their query: nginx may still write a line of an earlier test's run (a
    // hedge's loser, logged when its connection closes) after the marks, on a connection this run never used.
    run = await serve(
      endpointsYaml(group, '    health: { path: "/health?run=warm", intervalMs: 100, timeoutMs: 90 }\n', 'h2'),
    );
    // Past the cold start: a first check and a first request may each dial before either connection is up (seen in
    // CI: two connections, the second carrying one check); what is claimed is the steady state.
    await load(run.port, 6, 6, '/g/x?run=cold');
    await sleep(300);
    const before = logMarks(group);
    await load(run.port, 60, 6, '/g/x?run=warm');
    await sleep(400);
    for (const [i, e] of group.endpoints.entries()) {
      const lines = e.nginx
        .log()
        .slice(before[i])
        .filter((l) => l.uri.endsWith('run=warm'));
      const checks = lines.filter((l) => l.uri.startsWith('/health'));
      expect(checks.length).toBeGreaterThanOrEqual(2);
      expect(checks.every((l) => l.protocol === 'HTTP/2.0')).toBe(true);
      expect(new Set(lines.map((l) => l.connection)).size, JSON.stringify(lines)).toBe(1);
    }
  }, 30_000);

  // Issue 54, finding 2: checks went through the endpoint's request queue, behind live requests and within
  // maxConnections, and their timeout counted our own queue as the endpoint's failure — every busy endpoint was
  // declared dead while its nginx saw no check at all.
  it('health checks reach a saturated endpoint over a connection of their own: 12 slow requests over maxConnections 2 each, no endpoint marked unhealthy', async () => {
    run = await serve(
      endpointsYaml(
        group,
        '    pool: { maxConnections: 2 }\n    health: { path: /health, intervalMs: 250, timeoutMs: 250 }\n',
      ),
    );
    await load(run.port, 9, 3);
    const before = logMarks(group);
    const res = await load(run.port, 12, 12, '/s/busy?delay=2500');
    expect(res.every((r) => r.status === 200)).toBe(true);
    expect(run.logs.filter((l) => l['event'] === 'unhealthy')).toEqual([]);
    // Every endpoint answered checks while it was saturated (2.5 s at 200 ms each, fewer while a check's own connection opens).
    for (const e of group.endpoints) {
      const checks = e.nginx
        .log()
        .slice(before[group.endpoints.indexOf(e)])
        .filter((l) => l.uri === '/health');
      expect(checks.length, e.name).toBeGreaterThanOrEqual(5);
    }
  }, 30_000);

  it('collapse: never for a request carrying Authorization or Cookie (each its own origin request)', async () => {
    run = await serve(endpointsYaml(group, '    collapse: true\n'));
    for (const headers of [{ authorization: 'Bearer a' }, { cookie: 'session=a' }]) {
      const before = logMarks(group);
      const res = await load(run.port, 10, 10, '/s/secret?delay=300', { headers });
      expect(res.every((r) => r.status === 200)).toBe(true);
      const seen = await linesSince(group, before, (l) => l.uri.startsWith('/s/'), 10);
      expect(seen).toBe(10);
    }
  }, 30_000);

  it('collapse: at most maxWaiters share one origin request; the others send their own', async () => {
    run = await serve(endpointsYaml(group, '    collapse: { maxWaiters: 4 }\n'));
    await load(run.port, 9, 3);
    const before = logMarks(group);
    const res = await load(run.port, 12, 12, '/s/bounded?delay=300');
    expect(res.every((r) => r.status === 200)).toBe(true);
    const seen = await linesSince(group, before, (l) => l.uri.startsWith('/s/'), 1 + 8);
    expect(seen).toBe(1 + 8);
    const lines = await logged(run, (l) => l['msg'] === 'request' && String(l['path']).startsWith('/s/'), 12);
    expect(lines.filter((l) => l['collapsed'] === true)).toHaveLength(3);
  }, 30_000);

  it('collapse: every waiter gets the body as it arrives (its first part long before the origin sends the rest)', async () => {
    run = await serve(endpointsYaml(group, '    collapse: true\n'));
    await load(run.port, 9, 3);
    const before = logMarks(group);
    const res = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const r = await fetch(`http://127.0.0.1:${run!.port}/t/stream?delay=400`);
        const reader = (r.body as ReadableStream<Uint8Array>).getReader();
        let text = '';
        let firstAt = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString();
          if (firstAt === 0 && text.includes('first\n')) firstAt = performance.now();
        }
        return { text, firstAt, endAt: performance.now() };
      }),
    );
    for (const r of res) {
      expect(r.text).toBe('first\nsecond\n');
      expect(r.endAt - r.firstAt).toBeGreaterThan(250);
    }
    const seen = await linesSince(group, before, (l) => l.uri.startsWith('/t/'), 1);
    expect(seen).toBe(1);
  }, 30_000);

  it('a reload that changes the group keeps an ejected endpoint ejected (and its counters)', async () => {
    const cfg = (extra: string): string =>
      endpointsYaml(
        group,
        `    balance: round-robin\n    outlier: { consecutiveFailures: 2, baseEjectionMs: 60000, maxEjectionPercent: 34 }\n${extra}`,
      );
    run = await serve(cfg(''));
    const sick = group.endpoints[0] as GroupEndpoint;
    sick.set('503', true);
    await load(run.port, 12, 1);
    sick.set('503', false);
    const yaml = (extra: string): string =>
      `listeners:\n  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\nlogging: { flushMs: 0 }\norigins:\n  g:\n${cfg(extra)}routes:\n  - { path: /, origin: g }\n`;
    // Another field of the group: a new Upstream and Agent; the endpoint state must carry over.
    const next = parseConfig(yaml('    retryBudget: { ratio: 0.5 }\n'), 'groups.yaml', certs.dir);
    await run.svc.reload(next);
    run.port = run.svc.addresses()['plain'] as number;
    const before = sick.nginx.log().length;
    const res = await load(run.port, 30, 1);
    expect(res.filter((r) => r.status !== 200)).toEqual([]);
    expect(sick.served(before)).toBe(0);
    const stats = (await adminJson(run, '/stats')) as {
      g: { endpoints: Array<{ url: string; health: string; ejections: number; failures: number }> };
    };
    expect(stats.g.endpoints.find((e) => e.url === sick.url)).toMatchObject({
      health: 'ejected',
      ejections: 1,
      failures: 2,
    });
    const metrics = await (await fetch(`http://127.0.0.1:${run.admin}/metrics`)).text();
    expect(metrics).toContain(`originlink_endpoint_state{origin="g",endpoint="${sick.url}",state="ejected"} 1`);
    expect(metrics).toContain(`originlink_endpoint_ejections_total{origin="g",endpoint="${sick.url}"} 1`);
  }, 30_000);
});

/** The service's log lines that `pick` keeps, once there are `n` of them (lines leave at the end of a turn). */
/** Where each endpoint's access log stands now. */
function logMarks(group: NginxGroup): number[] {
  return group.endpoints.map((e) => e.nginx.log().length);
}

/** The access-log lines of all endpoints since `before` that `keep` takes. */
/**
 * The lines `keep` picks in the endpoints' access logs since `before`, once there are `want` (at most 2 s): nginx writes
 * a line after its response ends, so the last answers can arrive before their lines (a CI run read 9 of 10 at once).
 * A count above `want`, or one that never gets there, is still what the caller's expectation sees.
 */
async function linesSince(
  group: NginxGroup,
  before: number[],
  keep: (l: LogLine) => boolean,
  want: number,
): Promise<number> {
  let n = 0;
  for (let i = 0; i < 100; i++) {
    n = group.endpoints.reduce((a, e, k) => a + e.nginx.log().slice(before[k]).filter(keep).length, 0);
    if (n >= want) break;
    await sleep(20);
  }
  return n;
}

/**
 * Each endpoint's /g/ requests in its access log since `before`, once they add up to `total` (at most 2 s): nginx
 * writes a request's log line after its response, so the last answers can arrive before their lines.
 */
async function servedBy(group: NginxGroup, before: number[], total: number): Promise<number[]> {
  let served: number[] = [];
  for (let i = 0; i < 100; i++) {
    served = group.endpoints.map((e, k) => e.served(before[k]));
    if (served.reduce((a, b) => a + b, 0) >= total) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return served;
}

async function logged(
  run: Running,
  pick: (l: Record<string, unknown>) => boolean,
  n: number,
): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < 100; i++) {
    const lines = run.logs.filter(pick);
    if (lines.length >= n) return lines;
    await sleep(20);
  }
  return run.logs.filter(pick);
}

async function adminJson(run: Running, path: string): Promise<unknown> {
  return (await fetch(`http://127.0.0.1:${run.admin}${path}`)).json();
}

async function alive(e: { nginx: { pid: number | undefined } }): Promise<boolean> {
  const pid = e.nginx.pid;
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
