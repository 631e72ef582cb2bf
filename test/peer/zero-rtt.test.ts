/**
 * 0-RTT and session tickets: the file-backed session store (atomic, corrupt
 * and foreign files ignored with a warning), the real CLI run twice with
 * `--session-store` (second run resumed + early data) against our h3 server
 * and ngtcp2's gtlsserver, a shared ticket key across server restarts,
 * 425 Too Early for unsafe methods in early data, and the client resending
 * refused early requests after the handshake.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeTcpUdpPort } from '../helpers/ports.js';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { startNgtcp2Server, type Peer } from '../helpers/h3-peers.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3Response } from '../../src/client/h3.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { quicEngine } from '../../src/quic/quiche.js';
import { FileSessionStore } from '../../src/store/file-session-store.js';
import { MemorySessionStore } from '../../src/store/session-store.js';
import type { ConnRequest } from '../../src/http/types.js';

let certs: TestCerts;
let dir: string;
let ngtcp2: Peer | null = null;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile('node', [CLI, ...args], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const handler = async (r: {
  method: string;
  path: string;
  body: Readable;
}): Promise<{ status: number; body: string }> => {
  await readAll(r.body);
  return { status: 200, body: `${r.method} ${r.path}` };
};

beforeAll(async () => {
  certs = makeCerts();
  dir = mkdtempSync(join(tmpdir(), 'ol-0rtt-'));
  writeFileSync(join(dir, 'small.txt'), 'small file\n');
  buildIfStale();
}, 120_000);

afterAll(async () => {
  await ngtcp2?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('FileSessionStore', () => {
  it('persists entries atomically with mode 0600 and reloads them', () => {
    const p = join(dir, 'a.json');
    const s = new FileSessionStore(p);
    s.put('k1', new Uint8Array([1, 2, 3]));
    s.put('k2', new Uint8Array([4]));
    s.delete('k2');
    s.flush(); // changes are written together within 100 ms (and at exit): now, for the test
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const again = new FileSessionStore(p);
    expect(again.size).toBe(1);
    expect([...again.get('k1')!]).toEqual([1, 2, 3]);
  });

  it('ignores a corrupt or foreign file with a warning, then replaces it', () => {
    for (const text of ['{not json', JSON.stringify({ format: 'something-else', entries: [] }), '\u0000\u0001binary']) {
      const p = join(dir, `bad-${randomBytes(4).toString('hex')}.json`);
      writeFileSync(p, text);
      const warnings: string[] = [];
      const s = new FileSessionStore(p, { onWarning: (m) => warnings.push(m) });
      expect(s.size).toBe(0);
      expect(warnings.length).toBe(1);
      s.put('k', new Uint8Array([9]));
      s.flush();
      expect(new FileSessionStore(p).size).toBe(1);
    }
  });

  it('drops expired and malformed entries, bounds the count', () => {
    const p = join(dir, 'old.json');
    const now = Date.now();
    writeFileSync(
      p,
      JSON.stringify({
        format: 'originlink-session-store',
        version: 1,
        entries: [
          ['old', 'AQ==', now - 10_000],
          ['new', 'AQ==', now],
          ['bad', 5, now],
        ],
      }),
    );
    const warnings: string[] = [];
    const s = new FileSessionStore(p, { maxAgeMs: 5000, onWarning: (m) => warnings.push(m), maxEntries: 2 });
    expect(s.size).toBe(1);
    expect(s.get('new')).toBeDefined();
    expect(warnings.join()).toMatch(/malformed/);
    s.put('a', new Uint8Array([1]));
    s.put('b', new Uint8Array([1]));
    expect(s.size).toBe(2);
    s.flush();
    expect(new FileSessionStore(p).size).toBe(2);
  });

  it('survives an unwritable location with a warning', () => {
    const warnings: string[] = [];
    const s = new FileSessionStore(join(dir, 'no', 'such', 'dir', 's.json'), { onWarning: (m) => warnings.push(m) });
    s.put('k', new Uint8Array([1]));
    s.flush();
    expect(s.get('k')).toBeDefined();
    expect(warnings[0]).toMatch(/cannot write/);
  });

  it('a burst of changes is one write, within 100 ms; a symlink planted at a temp name the store once used is never followed', async () => {
    const p = join(dir, 'burst.json');
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'untouched');
    // The old temp names were .<file>.<pid>.<n>.tmp, opened without O_EXCL: a symlink there had its target truncated.
    for (let n = 1; n <= 5; n++) symlinkSync(victim, join(dir, `.burst.json.${process.pid}.${n}.tmp`));
    const s = new FileSessionStore(p);
    for (let i = 0; i < 500; i++) s.put(`k${i % 50}`, randomBytes(32));
    expect(existsSync(p)).toBe(false); // nothing written yet: 500 changes, not 500 rewrites of the whole file
    await new Promise((r) => setTimeout(r, 200));
    expect(new FileSessionStore(p).size).toBe(50);
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(statSync(p).mode & 0o777).toBe(0o600);
  });
});

describe('originlink fetch --session-store (real CLI, two runs)', () => {
  async function twice(url: string): Promise<Array<Record<string, unknown>>> {
    const file = join(dir, `store-${randomBytes(4).toString('hex')}.json`);
    const out: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 2; i++) {
      const r = await cli([
        'fetch',
        '--protocol',
        'h3',
        '--cacert',
        certs.caPath,
        '--session-store',
        file,
        '--json',
        url,
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      out.push(JSON.parse(r.stdout) as Record<string, unknown>);
    }
    return out;
  }

  it('our h3 server: the second run resumes and sends its request as 0-RTT', async () => {
    const srv = await startTestH3Server({ handler });
    try {
      const [a, b] = await twice(`https://localhost:${srv.address.port}/x`);
      expect(a).toMatchObject({ protocol: 'h3', status: 200, resumed: false, earlyData: false });
      expect(b).toMatchObject({ protocol: 'h3', status: 200, resumed: true, earlyData: true });
    } finally {
      await srv.close(50);
    }
  }, 30_000);

  it('fetch -v tells the connection story on stderr: address, protocol, resumption, 0-RTT, heads', async () => {
    const srv = await startTestH3Server({ handler });
    try {
      const file = join(dir, `store-v-${randomBytes(4).toString('hex')}.json`);
      const url = `https://localhost:${srv.address.port}/story`;
      const args = [
        'fetch',
        '--protocol',
        'h3',
        '--cacert',
        certs.caPath,
        '--session-store',
        file,
        '-v',
        '-o',
        join(dir, 'story.out'),
        url,
      ];
      const first = await cli(args);
      const second = await cli(args);
      expect(first.code).toBe(0);
      expect(second.code).toBe(0);
      expect(first.stderr).toMatch(
        new RegExp(
          `\\* Connected: connection #\\d+ to 127\\.0\\.0\\.1 port ${srv.address.port} from .* over h3 \\(ALPN h3\\)`,
        ),
      );
      expect(first.stderr).toMatch(/\* QUIC handshake [\d.]+ ms, TLSv1\.3; session resumed: no/);
      expect(first.stderr).toContain('* 0-RTT early data: no');
      expect(first.stderr).toContain('> GET /story');
      expect(first.stderr).toContain('< HTTP/3 200');
      expect(second.stderr).toMatch(/session resumed: yes/);
      expect(second.stderr).toContain('* 0-RTT early data: yes (sent in 0-RTT, accepted)');
    } finally {
      await srv.close(50);
    }
  }, 30_000);

  it('TCP too: a TLS 1.3 session kept by the first h2 run resumes the second', async () => {
    const srv = http2.createSecureServer({ cert: certs.cert, key: certs.key });
    srv.on('stream', (st) => {
      st.respond({ ':status': 200 });
      st.end('h2 ok');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      const file = join(dir, `store-h2-${randomBytes(4).toString('hex')}.json`);
      const out: Array<Record<string, unknown>> = [];
      for (let i = 0; i < 2; i++) {
        const r = await cli([
          'fetch',
          '--protocol',
          'h2',
          '--cacert',
          certs.caPath,
          '--session-store',
          file,
          '--json',
          `https://localhost:${port}/`,
        ]);
        expect(r.code).toBe(0);
        out.push(JSON.parse(r.stdout) as Record<string, unknown>);
      }
      expect(out[0]).toMatchObject({ protocol: 'h2', resumed: false });
      expect(out[1]).toMatchObject({ protocol: 'h2', resumed: true });
    } finally {
      srv.close();
    }
  }, 30_000);

  // GnuTLS (gtlsserver's TLS) rejects early data whose ticket age, as the client counts it, exceeds its own count
  // (lib/tls13/anti_replay.c), and BoringSSL (our client's TLS, through quiche) counts ticket age in whole seconds:
  // with a wall-clock second boundary between the ticket and the resumption the client's age can come out up to 1 s
  // larger, and the server resumes the session but declines its 0-RTT (seen on a loaded machine, where the two CLI
  // runs take longer: 2 of 6). Two runs inside one wall-clock second cannot meet that rule: such a pair must give
  // 0-RTT; a pair across a boundary may be declined (said as earlyDataRefused 'rejected'), and is tried again.
  it('ngtcp2 gtlsserver: the second run resumes and sends its request as 0-RTT', async () => {
    const port = await freeTcpUdpPort();
    ngtcp2 = await startNgtcp2Server({ port, certFile: certs.certPath, keyFile: certs.keyPath, root: dir });
    let fitted = 0;
    // Pairs until one fits in a second: on a loaded machine a CLI run can take most of one (5 pairs were not enough
    // once, with two CPU burners beside a full test run), so as many as 40 s allow.
    const until = Date.now() + 40_000;
    for (let attempt = 0; attempt < 40 && fitted === 0 && Date.now() < until; attempt++) {
      // Start just after a second boundary.
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
      const t0 = Date.now();
      const [a, b] = await twice(`https://localhost:${port}/small.txt`);
      const oneSecond = Math.floor(t0 / 1000) === Math.floor(Date.now() / 1000);
      expect(a).toMatchObject({ protocol: 'h3', status: 200, resumed: false });
      expect(b).toMatchObject({ protocol: 'h3', status: 200, resumed: true });
      if (oneSecond) {
        expect(b).toMatchObject({ earlyData: true });
        fitted++;
      } else if (b['earlyData'] !== true) {
        expect(b).toMatchObject({ earlyData: false, earlyDataRefused: 'rejected' });
      }
    }
    expect(fitted).toBe(1);
  }, 90_000);
});

describe('server ticket key, 425 Too Early, refused early data', () => {
  const req = (port: number, path: string, extra: Partial<ConnRequest> = {}): ConnRequest => ({
    method: 'GET',
    path,
    authority: `localhost:${port}`,
    scheme: 'https',
    headers: [],
    body: null,
    ...extra,
  });

  async function primed(port: number, store: MemorySessionStore): Promise<void> {
    const c = await connectH3({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: certs.caPath,
      sessionStore: store,
      sessionKey: 'k',
    });
    await readAll((await c.request(req(port, '/prime'))).body);
    c.destroy();
    expect(store.size).toBe(1);
  }

  it('a shared 48-byte ticket key gives 0-RTT across a server restart; a rotated key falls back to a full handshake and resends', async () => {
    const key = randomBytes(48);
    const store = new MemorySessionStore();
    const s1 = await startTestH3Server({ handler, ticketKey: key });
    const port = s1.address.port;
    await primed(port, store);
    await s1.close(20);
    const s2 = await startTestH3Server({ handler, ticketKey: key, port });
    try {
      const c = await connectH3({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: certs.caPath,
        sessionStore: store,
        sessionKey: 'k',
      });
      const r = (await c.request(req(port, '/after-restart'))) as H3Response;
      expect((await readAll(r.body)).toString()).toBe('GET /after-restart');
      expect(c.facts.resumed).toBe(true);
      expect(r.earlyData).toBe(true);
      c.destroy();

      s2.setTicketKey(randomBytes(48));
      const c2 = await connectH3({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: certs.caPath,
        sessionStore: store,
        sessionKey: 'k',
      });
      const r2 = (await c2.request(req(port, '/rotated'))) as H3Response;
      expect((await readAll(r2.body)).toString()).toBe('GET /rotated');
      expect(c2.facts.resumed).toBe(false);
      expect(r2.earlyData).toBe(false);
      expect(r2.earlyDataRefused).toBe('rejected');
      c2.destroy();
      expect(() => s2.setTicketKey(new Uint8Array(10))).toThrow(/48 bytes/);
    } finally {
      await s2.close(20);
    }
  }, 20_000);

  it('a server that resumes the session but declines its early data (restarted with 0-RTT off, same ticket key): the request arrives once, in 1-RTT, and says so', async () => {
    const key = randomBytes(48);
    const store = new MemorySessionStore();
    const s1 = await startTestH3Server({ handler, ticketKey: key });
    const port = s1.address.port;
    await primed(port, store);
    await s1.close(20);
    let seen = 0;
    const s2 = await startTestH3Server({
      handler: (r) => {
        seen++;
        return handler(r);
      },
      ticketKey: key,
      port,
      quic: { earlyData: false },
    });
    try {
      const c = await connectH3({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: certs.caPath,
        sessionStore: store,
        sessionKey: 'k',
      });
      const r = (await c.request(req(port, '/declined'))) as H3Response;
      expect((await readAll(r.body)).toString()).toBe('GET /declined');
      expect(c.facts.resumed).toBe(true);
      expect(seen).toBe(1);
      expect(s2.handshakes()).toMatchObject({ resumed: 1, earlyData: 0 });
      if (quicEngine().binding === 'originlink-quic') {
        // BoringSSL's early-data reason tells us (was reported as early data: quiche 0.18 cannot tell).
        expect(r.earlyData).toBe(false);
        expect(r.earlyDataRefused).toBe('rejected');
        expect(c.facts.earlyData).toBe(false);
      }
      c.destroy();
    } finally {
      await s2.close(20);
    }
  }, 20_000);

  it('answers an unsafe method in early data with 425; the client resends it after the handshake', async () => {
    const store = new MemorySessionStore();
    const srv = await startTestH3Server({ handler });
    const port = srv.address.port;
    try {
      await primed(port, store);
      const c = await connectH3({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: certs.caPath,
        sessionStore: store,
        sessionKey: 'k',
      });
      const get = c.request(req(port, '/safe'));
      const post = c.request(req(port, '/unsafe', { method: 'POST', body: 'payload', allowEarlyData: true }));
      const [g, p] = (await Promise.all([get, post])) as H3Response[];
      expect((await readAll(g!.body)).toString()).toBe('GET /safe');
      expect(g!.earlyData).toBe(true);
      expect(p!.status).toBe(200);
      expect((await readAll(p!.body)).toString()).toBe('POST /unsafe');
      expect(p!.earlyData).toBe(false);
      expect(p!.earlyDataRefused).toBe('too-early');
      expect(srv.tooEarly).toBe(1);
      // By default (policy 'safe') a POST waits for the handshake and is never refused.
      const c2 = await connectH3({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: certs.caPath,
        sessionStore: store,
        sessionKey: 'k',
      });
      const p2 = (await c2.request(req(port, '/post2', { method: 'POST', body: 'x' }))) as H3Response;
      expect((await readAll(p2.body)).toString()).toBe('POST /post2');
      expect(p2.earlyDataRefused).toBeUndefined();
      expect(srv.tooEarly).toBe(1);
      c.destroy();
      c2.destroy();
    } finally {
      await srv.close(20);
    }
  }, 20_000);
});
