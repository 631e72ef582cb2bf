/**
 * The fronts' session-ticket keys, shared and rotated (issue 57; service/ticket-keys.ts): a TLS 1.3 session from
 * instance A resumes on instance B when both hold the same secret (a file, or the one Redis keeps sealed), not when
 * they do not; after a rotation a ticket from before it costs a full handshake (node:tls opens tickets under one key
 * only), and a ticket from after it resumes on both again. Clients are node:tls (OpenSSL) with the session given back.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { ServeCluster } from '../helpers/serve-cluster.js';
import { connectH3 } from '../../src/connect/h3.js';
import { ensureH3 } from '../../src/service/upstream.js';
import { MemorySessionStore } from '../../src/store/session-store.js';

const certs = makeCerts();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TLS 1.3 handshake to `port` (resuming `session` if given): whether it resumed, and the ticket it got. */
function handshake(port: number, session?: Buffer): Promise<{ resumed: boolean; ticket: Buffer }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | null = null;
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: certs.ca,
      ALPNProtocols: ['http/1.1'],
      ...(session ? { session } : {}),
    });
    s.on('session', (t: Buffer) => {
      ticket ??= t;
    });
    s.once('error', reject);
    s.once('secureConnect', () => {
      const resumed = s.isSessionReused();
      // TLS 1.3 tickets come after the handshake: a request and its answer bring them.
      s.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
      s.on('data', () => {});
      s.once('end', () => {
        s.destroy();
        if (ticket) resolve({ resumed, ticket });
        else if (session) resolve({ resumed, ticket: session });
        else reject(new Error('no ticket'));
      });
    });
  });
}

function yaml(extra: string): string {
  return `
listeners:
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
logging: { requests: false }
origins:
  o: { url: "http://127.0.0.1:1" }
routes:
  - { path: /, origin: o }
${extra}`;
}

async function pair(extra: string): Promise<[Service, Service]> {
  const a = await Service.start(parseConfig(yaml(extra), 'a.yaml', certs.dir));
  const b = await Service.start(parseConfig(yaml(extra), 'b.yaml', certs.dir));
  return [a, b];
}
const portOf = (s: Service): number => s.addresses()['tls'] as number;

/** Waits until the next boundary of `periodMs` has passed by `afterMs` (an epoch of the ticket keys begins). */
async function nextEpoch(periodMs: number, afterMs = 150): Promise<void> {
  await sleep(periodMs - (Date.now() % periodMs) + afterMs);
}

describe('ticket keys shared across instances and rotated', () => {
  let redis: RedisPeer;
  const secretFile = join(certs.dir, 'ticket.secret');
  const storesKey = join(certs.dir, 'stores.key');
  beforeAll(async () => {
    writeFileSync(secretFile, randomBytes(32).toString('hex'));
    writeFileSync(storesKey, randomBytes(32).toString('base64'));
    redis = await startRedis();
  }, 30_000);
  afterAll(async () => {
    await redis?.stop();
  });

  it('without a shared secret, a session from A does not resume on B (the issue: every instance its own keys)', async () => {
    const [a, b] = await pair('');
    try {
      const first = await handshake(portOf(a));
      expect((await handshake(portOf(a), first.ticket)).resumed).toBe(true);
      expect((await handshake(portOf(b), first.ticket)).resumed).toBe(false);
    } finally {
      await a.shutdown(0);
      await b.shutdown(0);
    }
  });

  it('tickets.secretFile: A → B resumes; after a rotation the old ticket does not, a new one resumes on both', async () => {
    const period = 2000;
    const [a, b] = await pair(`tickets: { rotateMs: ${period}, secretFile: ${secretFile} }`);
    try {
      await nextEpoch(period);
      const t0 = Date.now();
      const first = await handshake(portOf(a));
      const onB = await handshake(portOf(b), first.ticket);
      expect(Date.now() - t0).toBeLessThan(period - 300); // both within the epoch
      expect(onB.resumed).toBe(true);
      await nextEpoch(period);
      // Sealed under the previous key: node:tls holds one key, so a full handshake (documented, measured).
      const late = await handshake(portOf(b), first.ticket);
      expect(late.resumed).toBe(false);
      // The ticket B just gave (under the new key) resumes on A: they rotated together.
      expect((await handshake(portOf(a), late.ticket)).resumed).toBe(true);
    } finally {
      await a.shutdown(0);
      await b.shutdown(0);
    }
  }, 20_000);

  it('stores Redis with encryptionKeyFile: the secret is made once, sealed in Redis, and A → B resumes', async () => {
    const stores = `stores: { sessions: "${redis.url}", prefix: "tk${Date.now()}:", encryptionKeyFile: ${storesKey} }`;
    const [a, b] = await pair(stores);
    try {
      const first = await handshake(portOf(a));
      expect((await handshake(portOf(b), first.ticket)).resumed).toBe(true);
      // A third start later takes the same secret.
      const c = await Service.start(parseConfig(yaml(stores), 'c.yaml', certs.dir));
      try {
        expect((await handshake(portOf(c), first.ticket)).resumed).toBe(true);
      } finally {
        await c.shutdown(0);
      }
    } finally {
      await a.shutdown(0);
      await b.shutdown(0);
    }
  }, 20_000);

  it('two `serve` processes of other config files share the secret file: A → B resumes (node:tls ties sessions to argv unless told)', async () => {
    buildIfStale();
    const procs: ChildProcess[] = [];
    try {
      const ports: number[] = [];
      for (const name of ['one', 'two']) {
        const port = await freePort();
        const file = join(certs.dir, `tickets-${name}.yaml`);
        writeFileSync(
          file,
          yaml(`tickets: { secretFile: ${secretFile} }`).replace(
            'host: 127.0.0.1, port: 0,',
            `host: 127.0.0.1, port: ${port},`,
          ),
        );
        procs.push(spawn(process.execPath, [CLI, 'serve', '--config', file], { cwd: ROOT, stdio: 'ignore' }));
        await waitForPort(port);
        ports.push(port);
      }
      const first = await handshake(ports[0] as number);
      expect((await handshake(ports[1] as number, first.ticket)).resumed).toBe(true);
    } finally {
      for (const p of procs) p.kill('SIGKILL');
    }
  }, 30_000);

  it('serve --workers 2 without a secret file: the primary gives its workers one, a ticket resumes on any worker', async () => {
    buildIfStale();
    const port = await freePort();
    const file = join(certs.dir, 'tickets-workers.yaml');
    writeFileSync(
      file,
      yaml('fleet: { route: direct }').replace('host: 127.0.0.1, port: 0,', `host: 127.0.0.1, port: ${port},`),
    );
    const c = new ServeCluster(file);
    try {
      await c.serving();
      await waitForPort(port);
      let t = (await handshake(port)).ticket;
      const resumed: boolean[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await handshake(port, t);
        resumed.push(r.resumed);
        t = r.ticket;
      }
      expect(resumed).toEqual(Array(8).fill(true));
      const sources = c.lines().filter((l) => l['msg'] === 'originlink serving' && l['role'] !== 'primary');
      expect(sources.map((l) => l['ticketKeys'])).toContain('primary');
    } finally {
      c.kill();
    }
  }, 30_000);

  it('h3 fronts too: a QUIC ticket from A resumes on B under the shared secret (quiche set_ticket_key)', async () => {
    await ensureH3();
    const h3 = (extra: string): string =>
      yaml(extra).replace(
        '  - { name: tls, kind: https',
        `  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }\n  - { name: tls, kind: https`,
      );
    const a = await Service.start(parseConfig(h3(`tickets: { secretFile: ${secretFile} }`), 'a.yaml', certs.dir));
    const b = await Service.start(parseConfig(h3(`tickets: { secretFile: ${secretFile} }`), 'b.yaml', certs.dir));
    const sessions = new MemorySessionStore();
    const dial = async (s: Service): Promise<boolean> => {
      const c = await connectH3({
        host: '127.0.0.1',
        port: s.addresses()['quic'] as number,
        servername: 'localhost',
        ca: new Uint8Array(certs.ca),
        sessionStore: sessions,
        sessionKey: 'one-name',
        earlyData: false,
      });
      const resumed = c.facts.resumed;
      // The ticket comes after the handshake: a request and its answer bring it.
      const r = await c.request({ method: 'GET', path: '/', authority: 'localhost', scheme: 'https', headers: [] });
      await r.body?.resume();
      await new Promise((res) => setTimeout(res, 100));
      c.destroy();
      return resumed;
    };
    try {
      expect(await dial(a)).toBe(false);
      expect(await dial(b)).toBe(true);
    } finally {
      await a.shutdown(0);
      await b.shutdown(0);
    }
  }, 20_000);

  it('tickets.secretFile that is not a 32-byte key is the field error', () => {
    const bad = join(certs.dir, 'short.secret');
    writeFileSync(bad, 'abcd');
    expect(() => parseConfig(yaml(`tickets: { secretFile: ${bad} }`), 'x.yaml', certs.dir)).toThrow(
      /tickets\.secretFile: .*32 bytes/,
    );
    expect(() => parseConfig(yaml('tickets: { rotateMs: 10 }'), 'x.yaml', certs.dir)).toThrow(/tickets\.rotateMs/);
  });
});
