/**
 * What HTTP/3 connections may cost our server (issue 44: 4,000 idle connections took 264 KB each, 1 GB of V8
 * external memory, and were held until QUIC's idle timeout):
 * - past `memoryBudgetBytes` a new client gets a Retry, then — its address validated — a stateless
 *   CONNECTION_REFUSED (RFC 9000 §5.2.2): our client fails at once with the code, ngtcp2's client reads the same
 *   frame, and the connection already up keeps working;
 * - a connection that only did its handshake is let go after `headersTimeoutMs` (GOAWAY, then CONNECTION_CLOSE
 *   with H3_NO_ERROR), its PINGs notwithstanding; one idle after its requests after `keepAliveTimeoutMs`; one whose
 *   requests keep coming is not;
 * - every connection's stream reader shares one read slab (it was 256 KiB per connection, made with it): parallel
 *   uploads and downloads on several connections of one process arrive intact.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3PooledConnection } from '../../src/client/h3.js';
import type { ConnRequest } from '../../src/http/types.js';
import { startH3Server, type H3Server } from '../../src/server/h3.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { runClient } from '../helpers/h3-peers.js';

const certs = makeCerts();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function server(
  o: { memoryBudgetBytes?: number; headersTimeoutMs?: number; keepAliveTimeoutMs?: number } = {},
): Promise<H3Server> {
  const srv = await startH3Server({
    host: '127.0.0.1',
    cert: certs.certPath,
    key: certs.keyPath,
    ...o,
    async handler(r) {
      if (r.path.startsWith('/echo')) {
        const parts: Buffer[] = [];
        for await (const c of r.body) parts.push(c as Buffer);
        return { status: 200, body: Buffer.concat(parts) };
      }
      const n = /^\/bytes\/(\d+)\/(\d+)/.exec(r.path);
      if (n) return { status: 200, body: Readable.from(chunks(Number(n[1]), Number(n[2]))) };
      return { status: 200, body: `hello ${r.path}` };
    },
  });
  cleanups.push(() => srv.close(0));
  return srv;
}

/** `total` bytes from a seeded generator (the same seed, the same bytes), in 64 KiB chunks. */
function* chunks(total: number, seed: number): Generator<Buffer> {
  let x = seed || 1;
  for (let off = 0; off < total; off += 65_536) {
    const b = Buffer.allocUnsafe(Math.min(65_536, total - off));
    for (let i = 0; i < b.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    yield b;
  }
}

async function connect(port: number): Promise<H3PooledConnection> {
  const c = await connectH3({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.caPath });
  cleanups.push(() => c.destroy());
  return c;
}

function req(port: number, path: string, body: Uint8Array | null = null): ConnRequest {
  return {
    method: body ? 'POST' : 'GET',
    path,
    authority: `localhost:${port}`,
    scheme: 'https',
    headers: [],
    body: body ? Readable.from([body]) : null,
  };
}

async function get(c: H3PooledConnection, port: number, path: string, body: Uint8Array | null = null): Promise<Buffer> {
  const r = await c.request(req(port, path, body));
  const parts: Buffer[] = [];
  for await (const x of r.body) parts.push(x as Buffer);
  return Buffer.concat(parts);
}

describe("the h3 server's memory budget", () => {
  it('past it, a new client is refused at once with CONNECTION_REFUSED after a Retry; the live connection keeps working', async () => {
    const srv = await server({ memoryBudgetBytes: 1 }); // the first connection is admitted, then the budget is spent
    const port = srv.address.port;
    const first = await connect(port);
    const t0 = performance.now();
    const err = await connectH3({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.caPath }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(performance.now() - t0).toBeLessThan(1000); // was 3 s: the client waited out its draining period
    expect(err).toMatchObject({
      code: 'OL_QUIC_FAILED',
      details: { wireCode: 2, isApp: false, closedBy: 'peer', established: false },
    });
    expect((err as Error).message).toMatch(/transport error 0x2 "server busy"/);
    const st = srv.stats();
    expect(st.retriesSent).toBeGreaterThanOrEqual(1);
    expect(st.refused).toBeGreaterThanOrEqual(1);
    expect(st.accepted).toBe(1);
    expect((await get(first, port, '/still')).toString()).toBe('hello /still');
  });

  it("ngtcp2's client reads the refusal: CONNECTION_CLOSE(0x1c) CONNECTION_REFUSED in an Initial", async () => {
    const srv = await server({ memoryBudgetBytes: 1 });
    const port = srv.address.port;
    await connect(port);
    const r = await runClient(
      'gtlsclient',
      ['--exit-on-all-streams-close', '127.0.0.1', String(port), `https://localhost:${port}/x`],
      { timeoutMs: 10_000 },
    );
    expect(r.output).toMatch(/Initial CONNECTION_CLOSE\(0x1c\) error_code=CONNECTION_REFUSED\(0x2\)/);
    expect(srv.stats().accepted).toBe(1);
  });

  it('without a budget (0) the same clients are all admitted', async () => {
    const srv = await server({ memoryBudgetBytes: 0 });
    const port = srv.address.port;
    await connect(port);
    await connect(port);
    expect(srv.stats()).toMatchObject({ accepted: 2, refused: 0 });
  });
});

describe("the service's h3 listener: limits.h3MemoryBytes", () => {
  it('refuses past it, counts the refusals by reason, logs once, and counts the QUIC connections as front connections', async () => {
    const logs: Array<Record<string, unknown>> = [];
    const yaml = `
listeners:
  - { name: q, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: { host: 127.0.0.1, port: 0 }
logging: { requests: false }
limits: { h3MemoryBytes: 1 }
origins:
  o: { url: "http://127.0.0.1:9", protocol: h1 }
routes:
  - { path: /, origin: o }
`;
    const svc = await Service.start(parseConfig(yaml, 'budget.yaml', certs.dir), {
      logDestination: {
        write: (l: string) => {
          logs.push(JSON.parse(l) as Record<string, unknown>);
        },
      },
    });
    cleanups.push(() => svc.shutdown(100));
    const port = svc.addresses()['q'] as number;
    await connect(port);
    for (let i = 0; i < 3; i++) {
      await expect(
        connectH3({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.caPath }),
      ).rejects.toMatchObject({ details: { wireCode: 2 } });
    }
    const text = await (await fetch(`http://127.0.0.1:${svc.adminPort as number}/metrics`)).text();
    expect(text).toMatch(/originlink_front_refused_connections_total\{listener="q",reason="memory_budget"\} 3\n/);
    expect(text).toMatch(/originlink_front_connections\{listener="q"\} 1/);
    expect(logs.filter((l) => String(l['msg']).startsWith('h3 listener over limits.h3MemoryBytes')).length).toBe(1);
  });
});

describe('idle h3 connections are let go', () => {
  it('one that only did its handshake: after headersTimeoutMs, GOAWAY then H3_NO_ERROR; one with requests coming is kept', {
    timeout: 20_000,
  }, async () => {
    const srv = await server({ headersTimeoutMs: 400, keepAliveTimeoutMs: 600 });
    const port = srv.address.port;
    const idle = await connect(port);
    const busy = await connect(port);
    const seen: string[] = [];
    let closedAt = 0;
    const t0 = performance.now();
    const closed = new Promise<Error | null>((r) =>
      idle.on((ev) => {
        seen.push(ev.type);
        if (ev.type === 'close') {
          closedAt = performance.now();
          r(ev.error);
        }
      }),
    );
    // `busy` asks something every 100 ms for 2 s: never idle at a sweep, nor between two.
    for (let i = 0; i < 20; i++) {
      expect((await get(busy, port, `/b${i}`)).toString()).toBe(`hello /b${i}`);
      await sleep(100);
    }
    const why = await closed;
    const ms = closedAt - t0;
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(2000); // allowance + a sweep for the GOAWAY + a sweep for the close
    expect(why).toBe(null); // a clean close: H3_NO_ERROR
    expect(seen.indexOf('goaway')).toBeGreaterThanOrEqual(0);
    expect(seen.indexOf('goaway')).toBeLessThan(seen.indexOf('close'));
    expect(busy.isUsable()).toBe(true);
    expect(srv.idleClosed).toBe(1);
    // Requests over, `busy` goes after keepAliveTimeoutMs (+ sweeps).
    await sleep(2000);
    expect(busy.isUsable()).toBe(false);
    expect(srv.idleClosed).toBe(2);
  });

  it('without keepAliveTimeoutMs a connection that has served a request stays (QUIC idle timeout only)', {
    timeout: 10_000,
  }, async () => {
    const srv = await server({ headersTimeoutMs: 300 });
    const port = srv.address.port;
    const c = await connect(port);
    expect((await get(c, port, '/one')).toString()).toBe('hello /one');
    await sleep(1500);
    expect(c.isUsable()).toBe(true);
    expect(srv.idleClosed).toBe(0);
  });
});

describe('one read slab for every connection of a process', () => {
  it('50 connections (client and server side in this process) add far less than 256 KiB each of external memory', {
    timeout: 30_000,
  }, async () => {
    const srv = await server();
    const port = srv.address.port;
    const warm = await connect(port);
    expect((await get(warm, port, '/warm')).toString()).toBe('hello /warm'); // the slab, made once
    globalThis.gc?.();
    const before = process.memoryUsage().external;
    const conns: H3PooledConnection[] = [];
    for (let i = 0; i < 50; i++) conns.push(await connect(port));
    for (const c of conns) expect((await get(c, port, '/x')).toString()).toBe('hello /x');
    const grown = process.memoryUsage().external - before;
    console.log(`external memory: +${(grown / 1024).toFixed(0)} KiB for 50 connections`);
    // A slab per connection was 100 × 256 KiB = 25 MiB here (both ends of each connection).
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  });

  it('uploads and downloads on four connections at once arrive intact (client and server in this process)', {
    timeout: 60_000,
  }, async () => {
    const srv = await server();
    const port = srv.address.port;
    const conns = await Promise.all([0, 1, 2, 3].map(() => connect(port)));
    const jobs: Array<Promise<void>> = [];
    conns.forEach((c, i) => {
      const up = randomBytes(1_500_000 + i * 7_001);
      jobs.push(
        get(c, port, `/echo/${i}`, up).then((b) => {
          expect(sha(b)).toBe(sha(up));
        }),
      );
      const size = 3_000_000 + i * 12_345;
      const want = Buffer.concat([...chunks(size, i + 11)]);
      jobs.push(
        get(c, port, `/bytes/${size}/${i + 11}`).then((b) => {
          expect(b.length).toBe(size);
          expect(sha(b)).toBe(sha(want));
        }),
      );
    });
    await Promise.all(jobs);
  });
});
