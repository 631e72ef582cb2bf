/**
 * A handful of clients cannot starve an origin (issue 44): against a pool of 8 HTTP/1.1 connections, 12 clients
 * that never read a 10 MiB response, 9 uploads of 100 kB sent a byte at a time, or 3 HTTP/2 connections keeping 40
 * streams' windows shut — and a probe request from another client is served within 3 s each time. Responses a
 * client does not keep up with go to temporary files that have no name in their directory (the origin connection
 * is free when the origin is done); request bodies are read whole before an origin is asked; past the temporary
 * files' budget, `limits.maxUpstreamPerAddress` keeps one address's requests to their share; a body sent a byte
 * at a time gets 408 within `limits.clientBodyTimeoutMs`.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';

const BIG = Buffer.alloc(10 << 20, 0x62);
const MID = Buffer.alloc(1 << 20, 0x6d);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let origin: http.Server;
let originPort = 0;
/** Requests the origin is serving now, and the most at once. */
let active = 0;
let peak = 0;
const dir = mkdtempSync(join(tmpdir(), 'ol-starve-'));

beforeAll(async () => {
  origin = http.createServer({ keepAlive: true }, (req, res) => {
    active++;
    peak = Math.max(peak, active);
    res.on('close', () => {
      active--;
    });
    if (req.url === '/big' || req.url === '/mid') {
      const body = req.url === '/big' ? BIG : MID;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
      return;
    }
    if (req.url === '/slow') {
      setTimeout(() => res.end('slow\n'), 1000);
      return;
    }
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => res.end(`${req.method} ${req.url} ${n}\n`));
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  originPort = (origin.address() as net.AddressInfo).port;
});
afterAll(async () => {
  origin?.closeAllConnections();
  await new Promise((r) => origin?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A service with one h1 origin, a pool of 8 (or the `origins` given); its temporary files in `dir` (TMPDIR: the
 * default of proxy.tempDir); its log lines to `write`.
 */
async function start(
  extra = '',
  origins = `o: { url: "http://127.0.0.1:${originPort}", protocol: h1, pool: { maxConnections: 8 } }`,
  write: (line: string) => void = () => {},
): Promise<Service> {
  const was = process.env['TMPDIR'];
  process.env['TMPDIR'] = dir;
  try {
    return await Service.start(
      parseConfig(
        `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: h2c, kind: h2c, host: 127.0.0.1, port: 0 }
admin: false
logging: { requests: false }
${extra}
origins:
  ${origins}
routes: [{ path: /, origin: o }]
`,
        'starve.yaml',
        '/',
      ),
      { logDestination: { write } },
    );
  } finally {
    if (was === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = was;
  }
}

/** GET /probe from 127.0.0.1 on a connection of its own: its status, or 0 when it took longer than 3 s. */
function probe(port: number): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/probe', agent: false, timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve({ status: 0, ms: performance.now() - t0 });
    });
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0 }));
  });
}

/** Raw clients, each writing `head` from `localAddress` and then reading nothing. */
function stuckClients(port: number, n: number, head: string, localAddress = '127.0.0.2'): net.Socket[] {
  return Array.from({ length: n }, () => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    s.on('error', () => {});
    s.on('connect', () => {
      s.write(head);
      s.pause();
    });
    return s;
  });
}

/** This process's descriptors on files in `dir` (a temporary file that has no name shows as "(deleted)"). */
function tempFiles(): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((l) => l.startsWith(dir));
}

describe('a pool of 8 HTTP/1.1 connections, and clients that misbehave', () => {
  it('12 clients that never read a 10 MiB response: the origin is done at once (temporary files, no name in the directory); a probe is served within 3 s', async () => {
    const svc = await start();
    const port = svc.addresses()['plain'] as number;
    const clients = stuckClients(port, 12, 'GET /big HTTP/1.1\r\nhost: a\r\n\r\n');
    try {
      await sleep(1500);
      const p = await probe(port);
      expect(p.status).toBe(200);
      expect(p.ms).toBeLessThan(3000);
      expect(active).toBe(0); // every /big was sent whole: no origin connection waits for a reader
      expect(readdirSync(dir)).toEqual([]);
      const files = tempFiles();
      expect(files.length).toBeGreaterThanOrEqual(8);
      expect(files.every((f) => f.endsWith('(deleted)'))).toBe(true);
    } finally {
      for (const c of clients) c.destroy();
      await svc.shutdown(500);
    }
    await sleep(100);
    expect(tempFiles()).toEqual([]);
  }, 30_000);

  it('9 uploads of 100 kB at a byte a second: bodies are read whole before the origin is asked; a probe is served within 3 s', async () => {
    const svc = await start();
    const port = svc.addresses()['plain'] as number;
    peak = 0;
    const clients = Array.from({ length: 9 }, () => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      s.on('error', () => {});
      s.on('connect', () => s.write('POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 100000\r\n\r\n'));
      return s;
    });
    const drip = setInterval(() => {
      for (const c of clients) if (!c.destroyed) c.write('x');
    }, 1000);
    try {
      await sleep(1500);
      const p = await probe(port);
      expect(p.status).toBe(200);
      expect(p.ms).toBeLessThan(3000);
      expect(peak).toBe(1); // the probe alone reached the origin
    } finally {
      clearInterval(drip);
      for (const c of clients) c.destroy();
      await svc.shutdown(500);
    }
  }, 30_000);

  it("3 HTTP/2 connections keeping 40 streams' windows shut: responses go to temporary files; a probe is served within 3 s", async () => {
    const svc = await start();
    const port = svc.addresses()['h2c'] as number;
    const sessions = Array.from({ length: 3 }, () => {
      const c = http2.connect(`http://127.0.0.1:${port}`, {
        settings: { initialWindowSize: 0 },
        localAddress: '127.0.0.2',
      } as http2.ClientSessionOptions);
      c.on('error', () => {});
      for (let i = 0; i < 40; i++) {
        const s = c.request({ ':path': '/mid' });
        s.on('error', () => {});
        s.pause();
      }
      return c;
    });
    try {
      await sleep(2000);
      const p = await probe(svc.addresses()['plain'] as number);
      expect(p.status).toBe(200);
      expect(p.ms).toBeLessThan(3000);
      expect(active).toBe(0);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      for (const c of sessions) c.destroy();
      await svc.shutdown(500);
    }
  }, 30_000);

  it('past proxy.tempFileTotalBytes responses are paced to their readers again, and limits.maxUpstreamPerAddress keeps one address to its share', async () => {
    const svc = await start('limits: { maxUpstreamPerAddress: 4 }\nproxy: { tempFileTotalBytes: 4194304 }');
    const port = svc.addresses()['plain'] as number;
    const clients = stuckClients(port, 12, 'GET /big HTTP/1.1\r\nhost: a\r\n\r\n');
    try {
      await sleep(1500);
      const p = await probe(port);
      expect(p.status).toBe(200);
      expect(p.ms).toBeLessThan(3000);
      expect(active).toBeLessThanOrEqual(4); // the budget spent, 4 of the address's requests hold the origin, no more
    } finally {
      for (const c of clients) c.destroy();
      await svc.shutdown(500);
    }
  }, 30_000);

  it('by default one client connection holds at most half a pool: another is not queued behind its 100 streams; a pool at or below the limit is warned of', async () => {
    const lines: string[] = [];
    const svc = await start(
      '',
      `o: { url: "http://127.0.0.1:${originPort}", protocol: h1 }
  small: { url: "http://127.0.0.1:${originPort}", protocol: h1, pool: { maxConnections: 4 } }`,
      (l) => void lines.push(l),
    );
    const c = http2.connect(`http://127.0.0.1:${svc.addresses()['h2c'] as number}`);
    c.on('error', () => {});
    try {
      const warned = lines
        .map((l) => JSON.parse(l) as { level: number; origin?: string })
        .filter((l) => l.level === 40);
      expect(warned.map((l) => l.origin)).toEqual(['small']); // o's default pool of 32 is above the default limit
      peak = 0;
      for (let i = 0; i < 100; i++) {
        const st = c.request({ ':path': '/slow' });
        st.on('error', () => {});
        st.resume();
      }
      await sleep(200);
      const p = await probe(svc.addresses()['plain'] as number);
      // Before (limit 32 = the pool's 32): the probe waited for a /slow to end, ~1 s.
      expect(p.status).toBe(200);
      expect(p.ms).toBeLessThan(700);
      expect(peak).toBeLessThanOrEqual(17); // 16 of the client's, and the probe
    } finally {
      c.destroy();
      await svc.shutdown(500);
    }
  }, 30_000);

  it('a body read whole into a temporary file whose client leaves while it waits for its turn: the file is closed, the budget given back', async () => {
    const svc = await start('limits: { maxUpstreamPerClient: 1 }');
    const c = http2.connect(`http://127.0.0.1:${svc.addresses()['h2c'] as number}`);
    c.on('error', () => {});
    try {
      const slow = c.request({ ':path': '/slow' });
      slow.on('error', () => {});
      slow.resume();
      await sleep(100);
      const up = c.request({ ':method': 'POST', ':path': '/upload', 'content-length': '100000' });
      up.on('error', () => {});
      up.end(Buffer.alloc(100_000, 0x75));
      await sleep(300); // read whole into its spool; waits for the client's one turn
      expect(tempFiles()).toHaveLength(1);
      up.close(http2.constants.NGHTTP2_CANCEL);
      await sleep(200);
      expect(tempFiles()).toEqual([]);
      const held = await svc.metrics.registry.getSingleMetricAsString('originlink_temp_file_bytes');
      expect(held).toMatch(/^originlink_temp_file_bytes 0$/m);
    } finally {
      c.destroy();
      await svc.shutdown(500);
    }
  }, 30_000);

  it("a body sent a byte at a time (never silent for the origin's body timeout) gets 408 within limits.clientBodyTimeoutMs, the connection closed", async () => {
    const svc = await start('limits: { clientBodyTimeoutMs: 2000 }');
    const port = svc.addresses()['plain'] as number;
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    const closed = new Promise<number>((r) => s.on('close', () => r(performance.now())));
    const t0 = performance.now();
    s.write('POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 8000\r\n\r\n');
    const drip = setInterval(() => {
      if (!s.destroyed) s.write('x');
    }, 300);
    try {
      const at = await Promise.race([closed, sleep(6000).then(() => 0)]);
      expect(at).toBeGreaterThan(0);
      expect(at - t0).toBeLessThan(4000);
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
      expect(text).toMatch(/x-originlink-error: OL_REQUEST_BODY_TIMEOUT/i);
    } finally {
      clearInterval(drip);
      s.destroy();
      await svc.shutdown(500);
    }
  }, 30_000);
});
