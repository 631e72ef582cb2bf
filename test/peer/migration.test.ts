/**
 * QUIC connection migration between our h3 client and our h3 server over
 * real UDP on 127.0.0.1: on-demand port migration in the middle of a 10 MiB
 * download and of 100 concurrent requests (every byte, every request, the
 * path change in stats on both ends), also at 50 ms RTT with the old port
 * dying as soon as migrate() resolves; automatic migration after probe
 * timeouts when a relay blackholes the current client port; the server
 * riding through NAT rebinding (the relay changes its upstream port), also
 * when an event-loop stall makes quiche fail the new path's validation and
 * when the old mapping loses the server's packets at that moment.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { connectH3, type H3ConnectOptions } from '../../src/connect/h3.js';
import type { H3Server } from '../../src/server/h3.js';
import { startTestH3Server } from '../helpers/h3-server.js';
import { startNgtcp2Server } from '../helpers/h3-peers.js';
import { freeTcpUdpPort } from '../helpers/ports.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnRequest } from '../../src/http/types.js';

let certs: TestCerts;
let server: H3Server;
const big = randomBytes(10 * 1024 * 1024);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function req(path: string): ConnRequest {
  return { method: 'GET', path, authority: 'localhost', scheme: 'https', headers: [], body: null };
}

async function readAll(r: Readable, onChunk?: (n: number) => Promise<void> | void): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of r) {
    parts.push(c as Buffer);
    n += (c as Buffer).length;
    await onChunk?.(n);
  }
  return Buffer.concat(parts);
}

/**
 * Relay sockets get large receive buffers so the relay itself drops nothing
 * under a bulk transfer; loss at the moment of rebinding is its own test
 * (RebindOptions.loseOldUntilNew). See native-notes/quiche.md.
 */
const RELAY_BUF = 8 * 1024 * 1024;

/** Block the event loop (client, relay and server share it), as a busy machine does. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy
  }
}

/** What happens around a rebind. */
interface RebindOptions {
  /** Block the event loop for `ms` once the server sent `afterDatagrams` datagrams to the new mapping. */
  stall?: { afterDatagrams: number; ms: number };
  /**
   * Lose every datagram the server sends to the old mapping from the rebind
   * until its first datagram to the new one (loss at the moment of
   * rebinding); the old mapping delivers again afterwards.
   */
  loseOldUntilNew?: boolean;
}

/**
 * A UDP relay between the client and the server, like a NAT: one upstream
 * socket per client address. `blackhole(port)` drops everything from and
 * to that client port, also what is already on its way (a dead path);
 * `slowNewPorts(ms)` delays datagrams from ports not seen so far on their
 * way to the server (a slower new path); `rebind()` moves every mapping to a fresh
 * upstream socket (NAT rebinding, as the server sees it).
 */
class Relay {
  readonly front = dgram.createSocket('udp4');
  #maps = new Map<string, dgram.Socket>();
  #dead = new Set<number>();
  #sockets: dgram.Socket[] = [];
  clientPorts = new Set<number>();
  /** Datagrams from the server, per upstream socket (in creation order). */
  fromServer: number[] = [];
  /** Server datagrams the relay lost on purpose (RebindOptions.loseOldUntilNew). */
  lost = 0;
  #losing = new Set<dgram.Socket>();
  /** `delayMs`: one-way delay added to every datagram (a path with RTT ≈ 2 × delayMs). */
  constructor(
    private readonly target: number,
    private readonly delayMs = 0,
  ) {}

  #closed = false;
  #later(fn: () => void, extraMs = 0): void {
    // Datagrams still held back when the relay closes are dropped.
    if (this.delayMs + extraMs > 0) setTimeout(() => this.#closed || fn(), this.delayMs + extraMs);
    else fn();
  }
  /** Client ports known when `slowNewPorts` was called, and the extra delay towards the server for every other port. */
  #slow: { known: Set<number>; ms: number } | null = null;

  async start(): Promise<number> {
    this.front.on('message', (msg, r) => {
      this.clientPorts.add(r.port);
      if (this.#dead.has(r.port)) return;
      const key = `${r.address}:${r.port}`;
      let up = this.#maps.get(key);
      if (!up) {
        up = this.#upstream(r.address, r.port);
        this.#maps.set(key, up);
      }
      const via = up;
      const extra = this.#slow && !this.#slow.known.has(r.port) ? this.#slow.ms : 0;
      this.#later(() => via.send(msg, this.target, '127.0.0.1'), extra);
    });
    await new Promise<void>((res) => this.front.bind(0, '127.0.0.1', res));
    this.front.setRecvBufferSize(RELAY_BUF);
    return this.front.address().port;
  }

  #upstream(host: string, port: number, opts: RebindOptions = {}): dgram.Socket {
    const s = dgram.createSocket('udp4');
    const i = this.fromServer.push(0) - 1;
    const stall = opts.stall;
    s.on('message', (msg) => {
      if (++this.fromServer[i]! === 1) this.#losing.clear();
      if (this.#losing.has(s)) this.lost++;
      // A dead port also loses what was already on its way (checked on delivery).
      else if (!this.#dead.has(port)) this.#later(() => this.#dead.has(port) || this.front.send(msg, port, host));
      if (this.fromServer[i] === stall?.afterDatagrams) setImmediate(() => spin(stall.ms));
    });
    s.on('error', () => {});
    s.bind(0, '127.0.0.1', () => s.setRecvBufferSize(RELAY_BUF));
    this.#sockets.push(s);
    return s;
  }

  /** Datagrams from client ports not seen so far take `ms` longer to the server (a slower new path). */
  slowNewPorts(ms: number): void {
    this.#slow = { known: new Set(this.clientPorts), ms };
  }

  blackhole(port: number): void {
    this.#dead.add(port);
  }

  rebind(opts: RebindOptions = {}): void {
    for (const key of [...this.#maps.keys()]) {
      const [host, port] = [key.slice(0, key.lastIndexOf(':')), Number(key.slice(key.lastIndexOf(':') + 1))];
      const old = this.#maps.get(key);
      if (opts.loseOldUntilNew && old) this.#losing.add(old);
      this.#maps.set(key, this.#upstream(host, port, opts));
    }
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#sockets) s.close();
    this.front.close();
  }
}

beforeAll(async () => {
  certs = makeCerts();
  server = await startTestH3Server({
    handler(r) {
      if (r.path === '/big') return { status: 200, body: big };
      if (r.path === '/slow') return new Promise((res) => setTimeout(() => res({ status: 200, body: 'slow' }), 2500));
      return { status: 200, body: `hello ${r.path}` };
    },
  });
});

afterAll(async () => {
  await server?.close(50);
});

const base = (port: number): H3ConnectOptions => ({
  host: '127.0.0.1',
  port,
  servername: 'localhost',
  ca: certs.caPath,
});

describe('QUIC connection migration', () => {
  it('migrates on demand in the middle of a 10 MiB download: every byte arrives, both ends see the path change', async () => {
    const before = server.pathEvents()['PeerMigrated'] ?? 0;
    const c = await connectH3(base(server.address.port));
    const port0 = c.facts.localPort;
    const dcid0 = c.quicStats().destinationCid;
    const r = await c.request(req('/big'));
    let done = false;
    const body = await readAll(r.body, async (n) => {
      if (!done && n >= 4 * 1024 * 1024) {
        done = true;
        await c.migrate();
      }
    });
    expect(body.length).toBe(big.length);
    expect(sha(body)).toBe(sha(big));
    const st = c.quicStats();
    expect(st.migrations).toBe(1);
    expect(st.localPort).not.toBe(port0);
    expect(c.facts.localPort).toBe(st.localPort);
    // RFC 9000 §9.5: packets from the new port carry a connection id never used from the old one.
    expect(st.destinationCid).not.toBe(dcid0);
    expect((server.pathEvents()['PeerMigrated'] ?? 0) - before).toBeGreaterThanOrEqual(1);
    // The connection keeps working on the new path.
    expect((await readAll((await c.request(req('/after'))).body)).toString()).toBe('hello /after');
    c.destroy();
  }, 30_000);

  // The server keeps sending on the old path until the client's first
  // non-probing packet from the new port reaches it (RFC 9000 §9.3), half
  // an RTT after the switch at best, and quiche 0.18 never resends what it
  // sent there once that path stops delivering (per-path loss recovery):
  // with the old port dead the moment migrate() returned, the tail in
  // flight stranded the stream at its flow-control limit (without the fix
  // 9 of 10 runs of this test stalled). migrate() now resolves only once
  // the server has moved and the old path has gone quiet.
  it('active migration at 50 ms RTT, old port dead as soon as migrate() resolves: every byte arrives', async () => {
    const relay = new Relay(server.address.port, 25);
    const port = await relay.start();
    try {
      // Lab-sized datagrams (1350 bytes): the window is spread over many packets, as on a real link.
      const c = await connectH3({
        ...base(port),
        migrateAfterProbeTimeouts: 0,
        bodyTimeoutMs: 5_000,
        quic: { maxUdpPayload: 1350 },
      });
      const ports = [c.facts.localPort];
      const r = await c.request(req('/big'));
      // The new path is slower towards the server: its first packet lands later, more leaves on the old one meanwhile.
      relay.slowNewPorts(50);
      let moving: Promise<void> | null = null;
      const body = await readAll(r.body, (n) => {
        // The body keeps flowing while the migration settles, as in the lab bench.
        if (!moving && n >= (ports.length === 1 ? 3 : 6) * 1024 * 1024 && ports.length < 3) {
          const left = c.facts.localPort;
          moving = c.migrate().then(() => {
            relay.blackhole(left);
            ports.push(c.facts.localPort);
            moving = null;
          });
        }
      });
      await moving;
      expect(sha(body)).toBe(sha(big));
      expect(c.quicStats().migrations).toBe(2);
      expect(new Set(ports).size).toBe(3);
      c.destroy();
    } finally {
      relay.close();
    }
  }, 30_000);

  it('migrates during 100 concurrent requests: none is lost', async () => {
    const c = await connectH3(base(server.address.port));
    const port0 = c.facts.localPort;
    await readAll((await c.request(req('/warm'))).body);
    let switching = false;
    let afterSwitch = 0;
    const all = Array.from({ length: 100 }, (_, i) =>
      c.request(req(`/r${i}`)).then(async (r) => {
        const b = await readAll(r.body);
        if (switching) afterSwitch++;
        return b;
      }),
    );
    await new Promise((r) => setImmediate(r));
    // migrate() moves the client to the new port at once and resolves only
    // once the server followed and the old path went quiet (make before
    // break), so requests may well all finish before it resolves.
    switching = true;
    await c.migrate();
    const bodies = await Promise.all(all);
    bodies.forEach((b, i) => expect(b.toString()).toBe(`hello /r${i}`));
    // The switch began while requests were still open.
    expect(afterSwitch).toBeGreaterThan(0);
    expect(c.quicStats().migrations).toBe(1);
    expect(c.quicStats().localPort).not.toBe(port0);
    c.destroy();
  }, 30_000);

  /**
   * /big through `relay`; at 2 MiB the client's path goes dead (blackholed): the client must migrate by itself after
   * two probe timeouts (a new local port, seen by the relay) and get every byte.
   */
  async function bigAcrossDeadPath(relay: Relay, extra: { bodyTimeoutMs?: number }): Promise<void> {
    const port = await relay.start();
    const c = await connectH3({ ...base(port), migrateAfterProbeTimeouts: 2, ...extra });
    try {
      const port0 = c.facts.localPort;
      const r = await c.request(req('/big'));
      let cut = false;
      let got = 0;
      const body = await readAll(r.body, (n) => {
        got = n;
        if (!cut && n >= 2 * 1024 * 1024) {
          cut = true;
          relay.blackhole(port0);
        }
      }).catch((e: Error) => {
        // A stall says where it stopped: the client's view of its paths and the server's path events (seen beside a
        // CPU burner on the fallback engine, about 1 run in 12, with or without this stop's path changes).
        throw new Error(
          `${e.message}; after ${got} bytes; client ${JSON.stringify(c.quicStats())}; server path events ${JSON.stringify(server.pathEvents())}; relay client ports ${relay.clientPorts.size}`,
          { cause: e },
        );
      });
      expect(sha(body)).toBe(sha(big));
      const st = c.quicStats();
      expect(st.migrations).toBeGreaterThanOrEqual(1);
      expect(st.localPort).not.toBe(port0);
      expect(relay.clientPorts.size).toBeGreaterThanOrEqual(2);
    } finally {
      c.destroy();
    }
  }

  // The server side of this case is quiche's, and quiche ≥ 0.22 leaves the data it had in flight on a path that
  // died unannounced unrecovered (cloudflare/quiche#2452; native-notes/quic-addon.md item 2): the stream stranded at
  // the client's flow-control limit, every run on quiche 0.30 and 2-3 of 15 on 0.18. The path guard now sends the
  // challenge for the path left behind to the client's new address (src/quic/path-guard.ts #leftBehind): its ACK
  // declares the stranded packets lost. Without that, this case fails 2 of 3 runs even with two retries each.
  it('migrates by itself after consecutive probe timeouts when the current path goes dead (our server)', {
    timeout: 40_000,
  }, async () => {
    const relay = new Relay(server.address.port);
    try {
      // A stalled try shows within 6 s (the migration's own gap is a few probe timeouts, under 3 s here).
      await bigAcrossDeadPath(relay, { bodyTimeoutMs: 6000 });
    } finally {
      relay.close();
    }
  });

  it("migrates by itself after consecutive probe timeouts when the current path goes dead (ngtcp2's server)", async () => {
    const root = mkdtempSync(join(tmpdir(), 'ol-migrate-ngtcp2-'));
    writeFileSync(join(root, 'big'), big);
    const peerPort = await freeTcpUdpPort();
    const peer = await startNgtcp2Server({ port: peerPort, certFile: certs.certPath, keyFile: certs.keyPath, root });
    const relay = new Relay(peerPort);
    try {
      await bigAcrossDeadPath(relay, {});
    } finally {
      relay.close();
      await peer.stop();
      rmSync(root, { recursive: true, force: true });
    }
  }, 40_000);

  // A client that only waits for a response has nothing in flight but its
  // liveness PINGs; each restarts quiche's probe timer, so at 100 ms RTT the
  // timer alone never expires twice in a row: unanswered PINGs must count.
  it('migrates by itself while only waiting for a response, at 100 ms RTT', async () => {
    const relay = new Relay(server.address.port, 50);
    const port = await relay.start();
    try {
      const c = await connectH3({ ...base(port), migrateAfterProbeTimeouts: 2 });
      const port0 = c.facts.localPort;
      const pending = c.request(req('/slow'));
      await new Promise((r) => setTimeout(r, 300));
      relay.blackhole(port0);
      const r = await pending;
      expect((await readAll(r.body)).toString()).toBe('slow');
      const st = c.quicStats();
      expect(st.migrations).toBeGreaterThanOrEqual(1);
      expect(st.localPort).not.toBe(port0);
      c.destroy();
    } finally {
      relay.close();
    }
  }, 30_000);

  it('the server rides through NAT rebinding (the client address changes under it)', async () => {
    const relay = new Relay(server.address.port);
    const port = await relay.start();
    const before = server.pathEvents()['PeerMigrated'] ?? 0;
    try {
      const c = await connectH3({ ...base(port), migrateAfterProbeTimeouts: 0 });
      const r = await c.request(req('/big'));
      let rebound = false;
      const body = await readAll(r.body, (n) => {
        if (!rebound && n >= 3 * 1024 * 1024) {
          rebound = true;
          relay.rebind();
        }
      });
      expect(sha(body)).toBe(sha(big));
      expect(c.quicStats().migrations).toBe(0);
      expect((server.pathEvents()['PeerMigrated'] ?? 0) - before).toBeGreaterThanOrEqual(1);
      expect((await readAll((await c.request(req('/again'))).body)).toString()).toBe('hello /again');
      c.destroy();
    } finally {
      relay.close();
    }
  }, 40_000);

  // Under CPU load a late timer makes quiche 0.18 declare the rebound path
  // failed (the PATH_CHALLENGE counts as lost before the PATH_RESPONSE
  // waiting in the socket is read); the client's next packet from there
  // used to close the connection with PROTOCOL_VIOLATION (0xa) from our own
  // server. The stall after the server's third datagram to the new mapping
  // recreates that (without the fix: 5 of 8 connections closed with 0xa).
  it('the server keeps a NAT-rebound connection when validating the new path stalls', async () => {
    const ev = (t: string): number => server.pathEvents()[t] ?? 0;
    const failed0 = ev('FailedValidation');
    // Three fresh connections: quiche fails the path in ~11 of 12 attempts under load, 8 of 8 without.
    for (let attempt = 0; attempt < 3; attempt++) {
      const relay = new Relay(server.address.port);
      const port = await relay.start();
      try {
        const c = await connectH3({ ...base(port), migrateAfterProbeTimeouts: 0 });
        const r = await c.request(req('/big'));
        let rebound = false;
        const body = await readAll(r.body, (n) => {
          if (!rebound && n >= 3 * 1024 * 1024) {
            rebound = true;
            relay.rebind({ stall: { afterDatagrams: 3, ms: 100 } });
          }
        });
        expect(sha(body)).toBe(sha(big));
        expect(c.quicStats().migrations).toBe(0);
        // The server ends on the new mapping: the next response comes only through it.
        const sent = [...relay.fromServer];
        expect((await readAll((await c.request(req('/again'))).body)).toString()).toBe('hello /again');
        expect(relay.fromServer[0]).toBe(sent[0]);
        expect(relay.fromServer[1]! - sent[1]!).toBeGreaterThan(0);
        c.destroy();
      } finally {
        relay.close();
      }
    }
    expect(ev('FailedValidation') - failed0).toBeGreaterThanOrEqual(1);
  }, 40_000);

  // quiche 0.18 keeps loss recovery per path and only runs loss detection
  // for a path when an ACK acknowledges one of its own packets: what the
  // server lost on the old mapping was never resent once it moved, and the
  // stream stalled at its flow-control limit (3 of 10 runs through a lossy
  // relay before; this loss pattern stalls every time). The server now
  // probes the path it left; the probe's ACK declares those packets lost.
  it('NAT rebinding with the old mapping losing packets at that moment: every byte arrives', async () => {
    const relay = new Relay(server.address.port);
    const port = await relay.start();
    try {
      const c = await connectH3({ ...base(port), migrateAfterProbeTimeouts: 0, bodyTimeoutMs: 10_000 });
      const r = await c.request(req('/big'));
      let rebound = false;
      const body = await readAll(r.body, (n) => {
        if (!rebound && n >= 3 * 1024 * 1024) {
          rebound = true;
          relay.rebind({ loseOldUntilNew: true });
        }
      });
      expect(sha(body)).toBe(sha(big));
      expect(relay.lost).toBeGreaterThan(0);
      expect(c.quicStats().migrations).toBe(0);
      expect((await readAll((await c.request(req('/again'))).body)).toString()).toBe('hello /again');
      c.destroy();
    } finally {
      relay.close();
    }
  }, 40_000);
});
