/**
 * Headless Chromium moves a QUIC connection to a new local port when the path looks degraded (its port migration:
 * no ACK for a while, with a request in flight), and when the probe of the new port gets no answer it retires the
 * connection id it probed with (RETIRE_CONNECTION_ID, RFC 9000 §19.16), resending that frame until it is
 * acknowledged (§13.3). A server that stalls (here: its process stopped; a loaded CI machine stalled ours) then
 * reads the probes, the retire and its retransmission in one batch.
 *
 * quiche fails the whole connection (PROTOCOL_VIOLATION) when a RETIRE_CONNECTION_ID arrives while it holds one id
 * of ours, even a retransmission for an id already retired: its id list checks the count before the sequence number.
 * Chromium allows two ids (active_connection_id_limit 2), so after the first retire one is left and the
 * retransmission ended the connection: a response under way failed (the 8 MiB GET in CI), one not yet begun was sent
 * again by Chromium on a new connection (here, without the fix: 2 connections). The driver now issues the next id
 * between two datagrams of a batch when quiche is down to one (src/quic/paths.ts issueCids). This was the CI's
 * one-in-twenty "8 MiB stall" of h3-chromium.test.ts.
 *
 * When the probe is answered (a shorter stall: under a second), Chromium moves the connection to the new port and
 * the server follows (RFC 9000 §9.3). Two faults then stalled a response under way until Chromium's fetch gave up
 * (the CI's 8 MiB AbortError, both engines), each alone enough (checked by undoing it: 3 of 3 runs failed):
 * - quiche applies the peer's max_udp_payload_size (§18.2) only to the path active when the transport parameters
 *   arrived: the new path started from our configured size (16383 bytes on loopback), and Chromium, which takes
 *   1472, dropped every such datagram (net log: UDP_RECEIVE_ERROR, ERR_MSG_TOO_BIG). Each datagram is now capped by
 *   the peer's limit (native/quic send_packets, quiche.ts sendPackets).
 * - Chromium ignores the server's PATH_CHALLENGE that arrives with the answer to its probe, and quiche challenges
 *   again only at a probe timeout, which the client's ACKs keep from expiring: the path stayed unvalidated and the
 *   server limited to three times what it received (§8.1), ~130 bytes per ACK. The server's path guard now
 *   challenges again while the peer sends from the new address (src/quic/path-guard.ts #unanswered).
 * A third, under CPU load (~1 run in 60 with four test processes beside four CPU burners; the CI's "Failed to
 * fetch" and AbortError of the 8 MiB GET): what the server sent to the port Chromium was leaving (here 134 packets,
 * 190 KB, while its probe was being answered) is lost with that socket, and quiche 0.30 never declares it lost
 * (cloudflare/quiche#2452: the old path looks for losses only when one of its own packets is acknowledged, and its
 * probe timeout resends its two oldest packets only): the response stopped at Chromium's 6 MiB stream limit with
 * the hole never filled. The challenge for the path left behind now goes to the peer's new address, and its ACK
 * declares the tail lost (src/quic/path-guard.ts #leftBehind; test/peer/migration.test.ts shows it every run).
 *
 * The server runs in a child process (the TypeScript sources) so it can be stopped; Chromium's net log, read after
 * it exits, proves each case was met: a port migration and one connection id retired twice while the server was
 * stopped, or a port migration that succeeded while the response was under way. Chromium declares a black hole and
 * closes the connection itself ~6.5 s into a stall, so the long stop is 5.5 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { udpAddon } from '../../src/quic/udp-native.js';
import { makeCerts } from '../helpers/certs.js';
import { launchChromium, PAGE_LIB, spki, type Browser } from '../helpers/chromium.js';
import { writeTsHooks } from '../helpers/ts-child.js';

const ROOT = join(import.meta.dirname, '..', '..');
const STOP_MS = 5500;
const ATTEMPTS = 4;
/**
 * Tries of the retire case (~10 s each): under a whole `npm test` on 2 cores, all 4 once missed its precondition
 * (Chromium's second retire fell after the server came back: its probe timeouts stretch with a loaded machine).
 */
const RETIRE_ATTEMPTS = 8;
const certs = makeCerts();
let dir: string;
let child: ChildProcess | null = null;
let b: Browser | null = null;
/** Set while the server child is two servers on one port, steered by connection ID (the eBPF map, its descriptor 3). */
let pair: { map: number } | null = null;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ol-chr-portmig-'));
});
afterAll(async () => {
  await b?.close();
  if (child?.pid !== undefined && child.exitCode === null) {
    try {
      process.kill(child.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    child.kill('SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

/** One event of Chromium's net log. */
interface NetEvent {
  name: string;
  time: number;
  params: Record<string, unknown>;
}

/** Chromium's net log events by name with their time (the file may end mid-event: lines that do not parse are skipped). */
function netlogEvents(file: string): NetEvent[] {
  const txt = readFileSync(file, 'utf8');
  const at = txt.indexOf('"events"');
  if (at < 0) {
    console.log(`h3-chromium port migration: the net log ${file} holds no events (${txt.length} bytes)`);
    return []; // nothing proves the case was met: the try does not count
  }
  const constants = JSON.parse(txt.slice(0, at).trimEnd().replace(/,$/, '') + '}') as {
    constants: { logEventTypes: Record<string, number> };
  };
  const names = new Map(Object.entries(constants.constants.logEventTypes).map(([k, v]) => [v, k]));
  const out: NetEvent[] = [];
  for (const line of txt.slice(at).split('\n').slice(1)) {
    const s = line.trim().replace(/,$/, '');
    if (!s.startsWith('{')) continue;
    try {
      const e = JSON.parse(s) as { type: number; time: string; params?: Record<string, unknown> };
      out.push({ name: names.get(e.type) ?? String(e.type), time: Number(e.time), params: e.params ?? {} });
    } catch {
      // The last line of a log cut short.
    }
  }
  return out;
}

/** A server child and a browser that has loaded the page from it over h3; the child's stdout lines as they come. */
async function start(n: number): Promise<{ lines: Array<Record<string, unknown>>; netlog: string; pid: number }> {
  const lines: Array<Record<string, unknown>> = [];
  child = spawn(process.execPath, [...writeTsHooks(dir), script()], {
    stdio: ['pipe', 'pipe', 'inherit', ...(pair ? [pair.map] : [])],
  });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  for (let i = 0; i < 300 && !lines.some((l) => l['port']); i++) await sleep(100);
  const port = lines.find((l) => l['port'])?.['port'] as number;
  expect(port, 'server child started').toBeGreaterThan(0);

  const host = `localhost:${port}`;
  const netlog = join(dir, `netlog-${n}.json`);
  b = await launchChromium({
    flags: [
      '--enable-quic',
      `--origin-to-force-quic-on=${host}`,
      `--ignore-certificate-errors-spki-list=${spki(certs.cert)}`,
      `--log-net-log=${netlog}`,
    ],
  });
  await b.cdp.navigate(`https://${host}/`);
  return { lines, netlog, pid: child.pid! };
}

/** The browser closed (its net log complete) and the server child ended; the most connections it reported. */
async function stop(lines: Array<Record<string, unknown>>): Promise<number> {
  await b!.close();
  b = null;
  child!.stdin!.end();
  child = null;
  // A pair says, as it exits, how many short-header packets reached a server without their connection.
  for (let i = 0; pair && i < 100 && !lines.some((l) => l['stray']); i++) await sleep(50);
  return Math.max(...lines.map((l) => Number(l['conns'] ?? 0)));
}

/**
 * One try: a first GET, then the server stopped for STOP_MS while a second GET goes out. What the log says Chromium
 * did before the server came back (port migrations, retires of one id), how many connections the server accepted,
 * and how the second GET ended.
 */
async function attempt(n: number): Promise<{
  migrations: number;
  retiresBeforeCont: number;
  conns: number;
  late: { ok: boolean; status?: number; error?: string; protos: string[] };
}> {
  const { lines, netlog, pid } = await start(n);
  const first = await b!.cdp.eval<{ ok: boolean }>(
    `(async () => { ${PAGE_LIB} return await timed('/first', {}, 10000); })()`,
  );
  expect(first.ok).toBe(true);

  // The server stops; a request goes out (a retransmittable packet in flight, so Chromium's path-degrading timer runs).
  process.kill(pid, 'SIGSTOP');
  await b!.cdp.eval(
    `(() => { ${PAGE_LIB} window.__late = timed('/late', {}, 30000).then((r) => ({ ok: r.ok, status: r.status, len: r.len, error: r.error, protos: proto('/late') })); return 1; })()`,
  );
  await sleep(STOP_MS);
  process.kill(pid, 'SIGCONT');
  const late = await b!.cdp.eval<{ ok: boolean; status?: number; error?: string; protos: string[] }>(
    'window.__late',
    40_000,
  );
  const conns = await stop(lines);

  const events = netlogEvents(netlog);
  const sentAt =
    events.find(
      (e) =>
        e.name === 'HTTP_TRANSACTION_QUIC_SEND_REQUEST_HEADERS' && JSON.stringify(e.params).includes(':path: /late'),
    )?.time ?? Infinity;
  // Sent while the server was stopped (a margin short of STOP_MS for the time between SIGSTOP and the request).
  const stopped = (e: NetEvent): boolean => e.time >= sentAt && e.time < sentAt + STOP_MS - 300;
  const retires = new Map<unknown, number>();
  for (const e of events)
    if (e.name === 'QUIC_SESSION_RETIRE_CONNECTION_ID_FRAME_SENT' && stopped(e))
      retires.set(e.params['sequence_number'], (retires.get(e.params['sequence_number']) ?? 0) + 1);
  return {
    migrations: events.filter((e) => e.name === 'QUIC_PORT_MIGRATION_TRIGGERED' && stopped(e)).length,
    retiresBeforeCont: Math.max(0, ...retires.values()),
    conns,
    late,
  };
}

const BIG = 8 * 1024 * 1024;
/** The body of /big, made again in the child from this source (an xorshift stream: no imports, so no bindings to carry). */
function bigBody(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x9e3779b9;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

/**
 * One try: an 8 MiB GET, and once the server has begun to answer it, the server stopped for `stopMs` while a small
 * GET goes out (a packet Chromium waits to see acknowledged, so its path-degrading timer runs), long enough for
 * Chromium to probe a new port, short enough that the probe is answered. What the log says (port migrations that
 * succeeded, datagrams Chromium refused), connections, and both GETs.
 */
async function bulkAttempt(
  n: number,
  stopMs: number,
): Promise<{
  succeeded: number;
  tooBig: number;
  conns: number;
  big: { ok: boolean; len?: number; sha?: string; error?: string; protos: string[] };
  small: { ok: boolean; status?: number };
  /** Each request the server saw: its path, and how many connections the server had accepted by then. */
  reqs: Array<[string, number]>;
  /** A pair's servers: short-header packets each got for a connection it does not hold (null: one server). */
  stray: number[] | null;
}> {
  const { lines, netlog, pid } = await start(n);
  await b!.cdp.eval(
    `(() => { ${PAGE_LIB} window.__big = timed('/big', {}, 20000).then(async (r) => ({ ok: r.ok, len: r.len, sha: r.ok ? await hex(r.buf) : undefined, error: r.error, protos: proto('/big') })); return 1; })()`,
  );
  for (let i = 0; i < 400 && !lines.some((l) => l['big']); i++) await sleep(5);
  await sleep(20);
  process.kill(pid, 'SIGSTOP');
  await b!.cdp.eval(
    `(() => { ${PAGE_LIB} window.__small = timed('/small', {}, 20000).then((r) => ({ ok: r.ok, status: r.status })); return 1; })()`,
  );
  await sleep(stopMs);
  process.kill(pid, 'SIGCONT');
  const big = await b!.cdp.eval<{ ok: boolean; len?: number; sha?: string; error?: string; protos: string[] }>(
    'window.__big',
    40_000,
  );
  const small = await b!.cdp.eval<{ ok: boolean; status?: number }>('window.__small', 40_000);
  const conns = await stop(lines);
  const events = netlogEvents(netlog);
  return {
    succeeded: events.filter((e) => e.name === 'QUIC_PORT_MIGRATION_SUCCESS').length,
    reqs: lines.filter((l) => l['req']).map((l) => [String(l['req']), Number(l['conns'])]),
    stray: (lines.find((l) => l['stray'])?.['stray'] as number[] | undefined) ?? null,
    tooBig: events.filter((e) => e.name === 'UDP_RECEIVE_ERROR').length,
    conns,
    big,
    small,
  };
}

function script(): string {
  const file = join(dir, 'server.mjs');
  writeFileSync(
    file,
    `
const { startH3Server } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'server', 'h3.ts')).href)});
const big = (${bigBody.toString()})(${BIG});
let conns = 0;
const one = (port, steer) => startH3Server({
  host: '127.0.0.1', port, cert: ${JSON.stringify(certs.certPath)}, key: ${JSON.stringify(certs.keyPath)}, steer,
  onConnection(open) { if (open) process.stdout.write(JSON.stringify({ conns: ++conns }) + '\\n'); },
  handler: (req) => {
    process.stdout.write(JSON.stringify({ req: req.path, conns }) + '\\n');
    if (req.path === '/') return { status: 200, headers: [['content-type', 'text/html']], body: '<p>ok' };
    if (req.path === '/big') {
      process.stdout.write(JSON.stringify({ big: 1 }) + '\\n');
      return { status: 200, headers: [['content-type', 'application/octet-stream'], ['cache-control', 'no-store']], body: big };
    }
    return { status: 200, headers: [['content-type', 'text/plain'], ['cache-control', 'no-store']], body: 'answer ' + req.path };
  },
});
const servers = [await one(0, ${pair ? '{ mapFd: 3, index: 0 }' : 'undefined'})];
if (${pair !== null}) servers.push(await one(servers[0].address.port, { mapFd: 3, index: 1 }));
process.stdout.write(JSON.stringify({ port: servers[0].address.port }) + '\\n');
process.stdin.resume();
process.stdin.on('end', () => {
  if (servers.length > 1) process.stdout.write(JSON.stringify({ stray: servers.map((x) => x.stats().strayShort) }) + '\\n');
  process.exit(0);
});
`,
  );
  return file;
}

it(`a request in flight survives a server stalled ${STOP_MS / 1000} s while Chromium migrates ports and retires ids`, async () => {
  // Chromium resends the retire at its next probe timeout, 2-3 s after the first: before the server comes back on
  // most tries, after it on some (then the case was not met, and it is tried again with a new connection).
  for (let n = 1; n <= RETIRE_ATTEMPTS; n++) {
    const r = await attempt(n);
    console.log(
      `h3-chromium port migration, try ${n}: ${r.migrations} triggered, one id retired ${r.retiresBeforeCont}× while stopped, server connections ${r.conns}, late ${JSON.stringify(r.late)}`,
    );
    if (r.migrations < 1 || r.retiresBeforeCont < 2) continue;
    // The request was answered on the connection it went out on.
    expect({ ok: r.late.ok, status: r.late.status, protos: r.late.protos, conns: r.conns }).toEqual({
      ok: true,
      status: 200,
      protos: ['h3'],
      conns: 1,
    });
    return;
  }
  expect.fail(
    `in ${RETIRE_ATTEMPTS} tries Chromium never resent a retire while the server was stopped: the case was not met`,
  );
}, 150_000);

it('an 8 MiB response under way survives Chromium moving the connection to a new port', async () => {
  const sha = createHash('sha256').update(bigBody(BIG)).digest('hex');
  // Whether Chromium probes a new port during the stop, and whether the probe is answered before it gives up on it,
  // depends on its timers against the stop: tries alternate the stop's length until a migration succeeded.
  for (let n = 1; n <= ATTEMPTS; n++) {
    const r = await bulkAttempt(100 + n, n % 2 ? 600 : 900);
    console.log(
      `h3-chromium port migration mid-response, try ${n}: ${r.succeeded} succeeded, ${r.tooBig} datagrams refused, server connections ${r.conns} (requests ${JSON.stringify(r.reqs)}), small ${JSON.stringify(r.small)}, big ${JSON.stringify({ ...r.big, sha: r.big.sha === sha })}`,
    );
    if (r.succeeded < 1) continue;
    // The response was not asked for again: /big reached the server once, and came whole. (Which connection it went
    // on is Chromium's: under load it may open a second one for the small GET while the path degrades, or leave its
    // first one unused and send the whole page on a second — seen once in a full suite; both are reported, not
    // refused.)
    expect({
      ok: r.big.ok,
      len: r.big.len,
      sha: r.big.sha,
      protos: r.big.protos,
      small: r.small,
      bigAsked: r.reqs.filter((q) => q[0] === '/big').length,
      tooBig: r.tooBig,
    }).toEqual({ ok: true, len: BIG, sha, protos: ['h3'], small: { ok: true, status: 200 }, bigAsked: 1, tooBig: 0 });
    return;
  }
  expect.fail(
    `in ${ATTEMPTS} tries no port migration of Chromium's succeeded while the response was under way: the case was not met`,
  );
}, 150_000);

it('with two servers on the port, steered by connection ID (serve --workers): the response under way survives the move, no packet strays', async () => {
  // Both servers in the child, stopped together; Chromium's probe from its new port (a new 4-tuple, the same
  // connection ID) must reach the server that holds the connection (native/udp/src/steer.c), not the 4-tuple's hash.
  const map = udpAddon()?.steerMap?.(2) ?? -1;
  expect(map, 'a REUSEPORT_SOCKARRAY map from the udp addon (BPF: root or CAP_BPF)').toBeGreaterThan(0);
  pair = { map };
  try {
    const sha = createHash('sha256').update(bigBody(BIG)).digest('hex');
    for (let n = 1; n <= ATTEMPTS; n++) {
      const r = await bulkAttempt(200 + n, n % 2 ? 600 : 900);
      console.log(
        `h3-chromium port migration, two steered servers, try ${n}: ${r.succeeded} succeeded, stray ${JSON.stringify(r.stray)}, requests ${JSON.stringify(r.reqs)}, big ${JSON.stringify({ ...r.big, sha: r.big.sha === sha })}`,
      );
      if (r.succeeded < 1) continue;
      expect({
        ok: r.big.ok,
        len: r.big.len,
        sha: r.big.sha,
        small: r.small,
        bigAsked: r.reqs.filter((q) => q[0] === '/big').length,
        stray: r.stray,
      }).toEqual({ ok: true, len: BIG, sha, small: { ok: true, status: 200 }, bigAsked: 1, stray: [0, 0] });
      return;
    }
    expect.fail(
      `in ${ATTEMPTS} tries no port migration of Chromium's succeeded while the response was under way: the case was not met`,
    );
  } finally {
    pair = null;
    closeSync(map);
  }
}, 150_000);
