/**
 * Our HTTP/3 server: the test origin, the demo origin and the service's h3
 * listener. Small node-ish API: the handler gets the request head and a
 * body Readable and returns status, headers and a body.
 */
import { ErrorCode, OriginlinkError } from '../errors.js';
import { H3Connection, type H3ConnectionOptions, type H3Event } from '../h3/connection.js';
import { QuicEndpoint, type EndpointStats, type ServerConfigs } from '../quic/endpoint.js';
import { StrikeRegister } from '../quic/strike-register.js';
import { CRYPTO_ERROR_BASE } from '../quic/errors.js';
import { clientCertificateFromDer, type ClientCertificate } from './client-certificate.js';
import { CertificateSet, certificateNames } from './certificates.js';
import { randomBytes } from 'node:crypto';
import { buildConfig, DEFAULT_UDP_PAYLOAD, loopbackPayload, type QuicOptions } from '../quic/config.js';
import type { QuicConnection, QuicStatsSnapshot } from '../quic/connection.js';
import type { HeaderList, SharedHeaderList } from '../http/types.js';
import { StreamBody, writeBody } from '../wire/h3-body.js';
import { h3Settings, type QpackOptions } from '../wire/h3-settings.js';
import { H3ErrorCode } from '../codec/errors.js';
import { abortBody } from '../util/body.js';
import { endedBody } from '../wire/body.js';
import { WindowCounter } from '../util/window-counter.js';
import { DEFAULT_FLOOD_LIMITS } from '../http/floods.js';
import { isSafeMethod } from '../http/methods.js';
import { DEFAULT_PRIORITY, type Priority } from '../h3/priority.js';
import { declaredLength } from '../http/field-section.js';
import {
  bodilessResponse,
  CONTINUE_HEAD,
  HANDLER_FAILED_HEAD,
  muxResponseHead,
  readRequestFields,
  wantsContinue,
  RequestAbort,
  ServedRequest,
  type RequestHandler,
  type ServerRequest,
  type ServerResponse,
} from './request.js';
import { IdMap } from '../util/id-map.js';
import { finishWithin } from './listen.js';

export type H3ServerRequest = ServerRequest;
export type H3ServerResponse = ServerResponse;
export type H3Handler = RequestHandler;

/** The server's active_connection_id_limit by default, which quiche also makes its bound on paths per connection. */
const SERVER_PATHS = 8;

export interface H3ServerOptions {
  /** Bind address. Default '127.0.0.1'. */
  host?: string;
  /** UDP port. Default 0 (ephemeral). */
  port?: number;
  /** PEM certificate chain: file path or PEM text/bytes. */
  cert: string | Uint8Array;
  /** PEM private key: file path or PEM text/bytes. */
  key: string | Uint8Array;
  /**
   * More certificates, each served to clients asking for a name it holds
   * (server/certificates.ts); `cert`/`key` is the default. The name is
   * read from the client's Initial packets before the connection is accepted
   * (quic/initial.ts), so these cost nothing once a connection is up.
   */
  certificates?: ReadonlyArray<{ cert: string | Uint8Array; key: string | Uint8Array }>;
  handler: H3Handler;
  /**
   * Client certificates (mutual TLS): the CAs (PEM) a client's certificate must chain to. Given, every handshake asks
   * for one (BoringSSL refuses one that does not verify) and the front takes no 0-RTT (a request's client is known
   * only once its handshake completes).
   */
  clientCa?: Uint8Array;
  /** With `clientCa`: `require` closes a connection that showed none (CRYPTO_ERROR certificate_required). Default require. */
  clientAuth?: 'require' | 'optional';
  /** Told of each client refused for its certificate: none where one is required, or one that did not verify. */
  onClientCertRefused?: () => void;
  /** UDP GSO batch sends (native/udp addon) when available. Default true. */
  gso?: boolean;
  /** One of several processes on this port, packets steered by connection ID (EndpointOptions.steer). */
  steer?: { mapFd: number; index: number };
  /** Key of the stateless reset tokens; given, stray packets get a stateless reset (EndpointOptions.resetKey). */
  resetKey?: Uint8Array;
  /** Stateless Retry before accepting connections. Default false. */
  retry?: boolean;
  /** The Retry tokens' key (32 bytes), shared by a fleet (service/ticket-keys.ts). Default: random per server. */
  retryKey?: Uint8Array;
  /** Pace what we send at 1.25 × cwnd / RTT (quic/pacer.ts). Default true. */
  pacing?: boolean;
  quic?: QuicOptions;
  /**
   * Requests accepted while still in 0-RTT (before the client's Finished):
   * 'safe' = GET, HEAD, OPTIONS, every other method is answered 425 Too
   * Early (RFC 8470 §5.2); 'all' = hand everything to the handler. Default 'safe'.
   * Whether 0-RTT is offered at all is `quic.earlyData` (default true).
   */
  earlyData?: 'safe' | 'all';
  /**
   * 48-byte session ticket key (alias of `quic.ticketKey`). Processes that
   * share it resume each other's tickets and accept their 0-RTT, also across
   * restarts. Default: random per process.
   */
  ticketKey?: Uint8Array;
  /**
   * Where processes share `ticketKey`, the record of 0-RTT ClientHellos they share (RFC 8446 §8: each accepted with
   * early data at most once by any of them): resolves true when this one is new and was recorded now. Asked after
   * this server's own register (quic/strike-register.ts) for each 0-RTT ClientHello new to it; no answer within
   * 100 ms, or a failure, refuses that connection's early data (a full handshake); null: no shared record now.
   * Default: the process's own only.
   */
  earlyDataRecord?: (key: string) => Promise<boolean> | null;
  /**
   * A request's head (its HEADERS frame, decoded) must arrive within this many ms of its stream's first
   * bytes; a stream still without one is rejected with H3_REQUEST_REJECTED both ways (RFC 9114 §8.1),
   * checked every half period. Bounds the stream-open flood (RFC 9114 §10.5): partial heads, or sections
   * blocked on QPACK inserts that never come, hold a stream window for at most this. Default 10,000.
   */
  headersTimeoutMs?: number;
  /**
   * A connection with no request open for this long is let go: a GOAWAY (RFC 9114 §5.2), then, still idle a sweep
   * later, CONNECTION_CLOSE with H3_NO_ERROR. Before its first request the allowance is `headersTimeoutMs`, whatever
   * this says: a connection that only did its handshake expires fast (an attacker's PINGs do not keep it). Default
   * none: after a request, only QUIC's idle timeout (30 s) ends a connection.
   */
  keepAliveTimeoutMs?: number;
  /**
   * What the connections of this server may hold together, bytes: each counts CONNECTION_BYTES (what an idle one
   * costs, measured) and what it holds queued for its client. Past it a new client gets a stateless Retry, and with
   * its address so validated a stateless CONNECTION_REFUSED (RFC 9000 §5.2.2); live connections are untouched.
   * Default 256 MiB (about 5,000 idle connections); 0: none.
   */
  memoryBudgetBytes?: number;
  /** Told when a connection is accepted (true) and when it ends (false): a gauge of live connections. */
  onConnection?: (open: boolean) => void;
  /** Told of each client refused for the memory budget. */
  onRefused?: () => void;
  /**
   * Our QPACK decoder (RFC 9204 §5): the dynamic table capacity and blocked streams we allow clients,
   * and how long its acknowledgments wait. Defaults (h3Settings): 4096 bytes, 16 streams, 25 ms.
   */
  qpack?: QpackOptions;
  /** Called for handler failures (the stream is reset with H3_INTERNAL_ERROR). */
  onError?: (err: unknown) => void;
}

export interface HandshakeCounts {
  connections: number;
  resumed: number;
  earlyData: number;
  earlyRequests: number;
  earlyStreams: number;
}

/**
 * What one idle connection costs the process, for the memory budget: 49.5 KB of RSS each for 4,000 connections that
 * did their handshake and nothing else (`npm run bench -- h3-conns`, quiche 0.30: its connection and TLS state, and
 * ours), rounded up.
 */
export const CONNECTION_BYTES = 52 * 1024;
/** H3ServerOptions.memoryBudgetBytes' default. */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;
/** One client address's share of the memory budget (its connections' CONNECTION_BYTES and what they hold queued). */
export const ADDRESS_SHARE = 0.25;

/** Client resets of unanswered requests tolerated per second on one connection: the same rule as HTTP/2's. */
const MAX_RESETS_PER_SECOND = DEFAULT_FLOOD_LIMITS.resets;

interface Counters extends HandshakeCounts {
  tooEarly: number;
  /** PRIORITY_UPDATE frames of closed connections (live ones are read from their H3Connection). */
  priorityUpdates: number;
  qpackDecoderInserts: number;
  qpackEncoderInserts: number;
  reprioritised: number;
  /** Connections closed with H3_EXCESSIVE_LOAD for resetting requests at line rate. */
  resetFloods: number;
  /** Request streams rejected for a head that did not arrive within headersTimeoutMs. */
  headTimeouts: number;
  /** Connections told to go (GOAWAY) for idling (keepAliveTimeoutMs; headersTimeoutMs before their first request). */
  idleClosed: number;
}

export interface H3Server {
  readonly address: { host: string; port: number };
  readonly connections: number;
  stats(): EndpointStats;
  /**
   * Replace the ticket key. Tickets sealed with the old key then fail to
   * resume (one full handshake each); BoringSSL keeps one key per context.
   */
  setTicketKey(key: Uint8Array): void;
  /**
   * Replace the certificates (`cert`/`key` and `certificates`, as in the
   * options): connections accepted from now on get them, live ones keep
   * theirs. The ticket key stays, so tickets issued before still resume.
   * Throws (and changes nothing) when a certificate or key is unusable.
   */
  setCertificates(c: Pick<H3ServerOptions, 'cert' | 'key' | 'certificates'>): void;
  /** Requests answered 425 Too Early so far. */
  readonly tooEarly: number;
  /** Response bytes every connection holds queued for its client now (what flow control has not taken yet). */
  readonly queuedBytes: number;
  /** Connections closed with H3_EXCESSIVE_LOAD for resetting requests at line rate (rapid reset). */
  readonly resetFloods: number;
  /** Request streams rejected because their head did not arrive within `headersTimeoutMs`. */
  readonly headTimeouts: number;
  /**
   * Connections told to go (GOAWAY, then closed) for idling: keepAliveTimeoutMs, or headersTimeoutMs before their first
   * request.
   */
  readonly idleClosed: number;
  /**
   * New values for these limits, for connections live and to come (a config reload); omitted ones take their defaults.
   */
  setLimits(l: Pick<H3ServerOptions, 'headersTimeoutMs' | 'keepAliveTimeoutMs' | 'memoryBudgetBytes'>): void;
  /**
   * Handshake facts over every connection so far: `connections` completed
   * handshakes, `resumed` of them with a session ticket (RFC 8446 §2.2),
   * `earlyData` of them that accepted the client's 0-RTT (RFC 9001 §4.6.1),
   * and `earlyRequests`: requests handled before the client's Finished (the
   * ones RFC 8470 §5.2 applies to; 0-RTT data read in the same pass as the
   * Finished is handled after it), and `earlyStreams`: request streams whose
   * data arrived in 0-RTT packets, handled before the Finished or after.
   */
  handshakes(): HandshakeCounts;
  /**
   * RFC 9218 §7.2 over every connection so far: PRIORITY_UPDATE frames
   * received, and `reprioritised`: those applied to a request already
   * received (the others set the starting priority of a request that came
   * after them, or were dropped beyond the bound of waiting ones).
   */
  priorityUpdates(): { frames: number; reprioritised: number };
  /**
   * QPACK dynamic-table use over all connections so far (RFC 9204): entries clients' encoders inserted
   * into our decoder's tables (needs `qpack.maxTableCapacity` > 0) and entries our encoder inserted
   * into theirs (when they offered a table).
   */
  qpackInserts(): { decoder: number; encoder: number };
  /** QUIC path events on all connections so far, by type (PeerMigrated = a client moved or was NAT-rebound). */
  pathEvents(): Record<string, number>;
  /** GOAWAY to every connection, wait up to `graceMs` for open streams, then close. */
  close(graceMs?: number): Promise<void>;
}

function abandon(s: ServerStream, why: Error): void {
  s.abort.abort(why);
}

/** The limits of H3ServerOptions, checked, with their defaults. */
function checkLimits(o: Pick<H3ServerOptions, 'headersTimeoutMs' | 'keepAliveTimeoutMs' | 'memoryBudgetBytes'>): {
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  memoryBudgetBytes: number;
} {
  const headersTimeoutMs = o.headersTimeoutMs ?? 10_000;
  if (!Number.isSafeInteger(headersTimeoutMs) || headersTimeoutMs < 100)
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `headersTimeoutMs must be an integer ≥ 100, got ${headersTimeoutMs}`,
    );
  const keepAliveTimeoutMs = o.keepAliveTimeoutMs ?? 0;
  if (!Number.isSafeInteger(keepAliveTimeoutMs) || (keepAliveTimeoutMs !== 0 && keepAliveTimeoutMs < 100))
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `keepAliveTimeoutMs must be 0 or an integer ≥ 100, got ${keepAliveTimeoutMs}`,
    );
  const memoryBudgetBytes = o.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET;
  if (!Number.isSafeInteger(memoryBudgetBytes) || memoryBudgetBytes < 0)
    throw new OriginlinkError(
      ErrorCode.INVALID_CONFIG,
      'local',
      `memoryBudgetBytes must be an integer ≥ 0, got ${memoryBudgetBytes}`,
    );
  return { headersTimeoutMs, keepAliveTimeoutMs, memoryBudgetBytes };
}

function checkTicketKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== 48) {
    throw new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', 'ticketKey must be 48 bytes');
  }
}

export async function startH3Server(opts: H3ServerOptions): Promise<H3Server> {
  // One ticket key for both configs, so tickets work whichever config a client meets.
  let ticketKey = opts.ticketKey ?? opts.quic?.ticketKey ?? randomBytes(48);
  checkTicketKey(ticketKey);
  const settings = h3Settings('server', opts.qpack); // throws OL_INVALID_CONFIG before anything is bound
  // Loopback clients get lo-MTU datagrams unless the caller fixed a size.
  const loPayload = opts.quic?.maxUdpPayload === undefined ? loopbackPayload() : null;
  const early = (opts.quic?.earlyData ?? true) && opts.clientCa === undefined;
  const clientCa = opts.clientCa;
  const configsFor = (cert: string | Uint8Array, key: string | Uint8Array): ServerConfigs => {
    const pair = (earlyData: boolean): Pick<ServerConfigs, 'config' | 'loopback'> => {
      // quiche keeps at most this many paths per connection and frees an old one only once no ID of the client's is
      // linked to it (a spare is re-linked when it is retired): a client's fourth port move found no room and its
      // packets were dropped (bench h3-front's soak). 8 takes seven moves; Chromium makes at most four per session.
      const paths = { activeConnectionIdLimit: SERVER_PATHS };
      const base = { ...paths, ...opts.quic, cert, key, ticketKey, earlyData, ...(clientCa ? { clientCa } : {}) };
      const out: Pick<ServerConfigs, 'config' | 'loopback'> = { config: buildConfig('server', base) };
      if (loPayload !== null && loPayload > DEFAULT_UDP_PAYLOAD)
        out.loopback = { config: buildConfig('server', { ...base, maxUdpPayload: loPayload }), maxPacket: loPayload };
      return out;
    };
    // With 0-RTT on, the same configs with it off, for a ClientHello seen before (quic/strike-register.ts).
    return early ? { ...pair(true), noEarly: pair(false) } : pair(false);
  };
  // Several certificates: one quiche Config each, chosen by the ClientHello's server name (null = the default).
  type Certs = Pick<H3ServerOptions, 'cert' | 'key' | 'certificates'>;
  const buildAll = (
    c: Certs,
  ): ServerConfigs & { byName?: (name: string | null) => ServerConfigs | null; all: ServerConfigs[] } => {
    const main = configsFor(c.cert, c.key);
    const all = [main];
    if (!c.certificates?.length) return { ...main, all };
    const extra = c.certificates.map((x) => ({ names: certificateNames(x.cert), item: configsFor(x.cert, x.key) }));
    for (const e of extra) all.push(e.item);
    const set = new CertificateSet<ServerConfigs | null>([{ names: certificateNames(c.cert), item: null }, ...extra]);
    return { ...main, byName: (name) => set.select(name), all };
  };
  let current = buildAll(opts);
  const { config, loopback, byName, noEarly } = current;
  let { headersTimeoutMs, keepAliveTimeoutMs, memoryBudgetBytes: budget } = checkLimits(opts);
  /** Bytes the connections held queued for their clients at the last sweep. */
  let queued = 0;
  /** Client addresses holding more than their share of the budget at the last sweep, and what they hold beyond it. */
  let overShare: Set<string> | null = null;
  let excess = 0;
  const counters: Counters = {
    tooEarly: 0,
    connections: 0,
    resumed: 0,
    earlyData: 0,
    earlyRequests: 0,
    earlyStreams: 0,
    priorityUpdates: 0,
    reprioritised: 0,
    resetFloods: 0,
    headTimeouts: 0,
    idleClosed: 0,
    qpackDecoderInserts: 0,
    qpackEncoderInserts: 0,
  };
  const pathEvents: Record<string, number> = {};
  const sessions = new Set<ServerSession>();
  const ep = await QuicEndpoint.bind({
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 0,
    appNoError: H3ErrorCode.NO_ERROR,
    ...(opts.gso === false ? { gso: false } : {}),
    ...(opts.pacing === false ? { pacing: false } : {}),
    ...(opts.steer ? { steer: opts.steer } : {}),
    ...(opts.resetKey ? { resetKey: opts.resetKey } : {}),
    server: {
      config,
      ...(loopback ? { loopback } : {}),
      ...(byName ? { byName } : {}),
      ...(noEarly ? { noEarly, strikes: new StrikeRegister() } : {}),
      ...(noEarly && opts.earlyDataRecord ? { fleetStrikes: opts.earlyDataRecord } : {}),
      retry: opts.retry ?? false,
      ...(opts.retryKey ? { retryKey: opts.retryKey } : {}),
      // One address past its share is refused alone, and what it holds beyond the share is not counted against
      // everyone else: a few connections of one client cannot shut the door on others.
      overBudget: (host) =>
        budget > 0 &&
        ((overShare !== null && overShare.has(host)) || sessions.size * CONNECTION_BYTES + queued - excess > budget),
      ...(opts.onRefused ? { onRefused: opts.onRefused } : {}),
      onConnection(quic) {
        const s = new ServerSession(quic, opts, counters, settings);
        sessions.add(s);
        opts.onConnection?.(true);
        quic.on((ev) => {
          if (ev.type === 'closed') {
            // BoringSSL refused the client's certificate (it did not verify): its alert, sent by us.
            if (clientCa && !quic.established && refusedClientCert(ev.error)) opts.onClientCertRefused?.();
            sessions.delete(s);
            opts.onConnection?.(false);
            counters.priorityUpdates += s.priorityUpdates;
            const q = s.qpackInserts;
            counters.qpackDecoderInserts += q.decoder;
            counters.qpackEncoderInserts += q.encoder;
          } else if (ev.type === 'established') {
            if (clientCa && opts.clientAuth !== 'optional' && s.clientCertificate() === null) {
              // RFC 8446 §4.4.2.4 / RFC 9001 §4.8: certificate_required (116) as CRYPTO_ERROR.
              quic.closeTransport(CRYPTO_ERROR_BASE + 116, 'client certificate required');
              opts.onClientCertRefused?.();
              return;
            }
            counters.connections++;
            if (quic.resumed) counters.resumed++;
            if (quic.earlyDataAccepted) counters.earlyData++;
            counters.earlyStreams += quic.earlyStreams;
          } else if (ev.type === 'path') pathEvents[ev.event.type] = (pathEvents[ev.event.type] ?? 0) + 1;
        });
      },
    },
  });
  // One sweep, every half of the shortest allowance: request heads that did not come, connections idle past theirs,
  // and the bytes queued that the budget counts (read here, so admitting a client stays O(1)).
  const sweepOnce = (): void => {
    const now = performance.now();
    let q = 0;
    const byAddress = new Map<string, number>();
    for (const s of sessions) {
      counters.headTimeouts += s.expireIncompleteHeads();
      if (s.expireIdle(now, headersTimeoutMs, keepAliveTimeoutMs)) counters.idleClosed++;
      const held = s.queuedBytes;
      q += held;
      byAddress.set(s.remoteHost, (byAddress.get(s.remoteHost) ?? 0) + CONNECTION_BYTES + held);
    }
    queued = q;
    const share = budget * ADDRESS_SHARE;
    let over: Set<string> | null = null;
    let beyond = 0;
    for (const [host, bytes] of byAddress) {
      if (budget === 0 || bytes <= share) continue;
      (over ??= new Set()).add(host);
      beyond += bytes - share;
    }
    overShare = over;
    excess = beyond;
  };
  const armSweep = (): NodeJS.Timeout => {
    const t = setInterval(sweepOnce, Math.min(headersTimeoutMs, keepAliveTimeoutMs || Infinity) / 2);
    t.unref();
    return t;
  };
  let sweep = armSweep();
  return {
    address: ep.address,
    get connections() {
      return sessions.size;
    },
    stats: () => ep.stats(),
    setTicketKey(key: Uint8Array) {
      checkTicketKey(key);
      ticketKey = key;
      for (const c of current.all) {
        for (const x of [c, c.noEarly]) {
          x?.config.setTicketKey(key);
          x?.loopback?.config.setTicketKey(key);
        }
      }
    },
    setCertificates(c: Certs) {
      // Built (and so checked: a bad PEM or a key not its certificate's throws) before anything changes.
      const next = buildAll(c);
      ep.setServerConfigs(next);
      current = next;
    },
    get tooEarly() {
      return counters.tooEarly;
    },
    get queuedBytes() {
      let q = 0;
      for (const s of sessions) q += s.queuedBytes;
      return q;
    },
    get resetFloods() {
      return counters.resetFloods;
    },
    get headTimeouts() {
      return counters.headTimeouts;
    },
    qpackInserts: () => {
      const live = [...sessions].map((s) => s.qpackInserts);
      return {
        decoder: counters.qpackDecoderInserts + live.reduce((n, q) => n + q.decoder, 0),
        encoder: counters.qpackEncoderInserts + live.reduce((n, q) => n + q.encoder, 0),
      };
    },
    priorityUpdates: () => ({
      frames: counters.priorityUpdates + [...sessions].reduce((n, s) => n + s.priorityUpdates, 0),
      reprioritised: counters.reprioritised,
    }),
    handshakes: () => ({
      connections: counters.connections,
      resumed: counters.resumed,
      earlyData: counters.earlyData,
      earlyRequests: counters.earlyRequests,
      earlyStreams: counters.earlyStreams,
    }),
    pathEvents: () => ({ ...pathEvents }),
    get idleClosed() {
      return counters.idleClosed;
    },
    setLimits(l: Pick<H3ServerOptions, 'headersTimeoutMs' | 'keepAliveTimeoutMs' | 'memoryBudgetBytes'>) {
      ({ headersTimeoutMs, keepAliveTimeoutMs, memoryBudgetBytes: budget } = checkLimits({ ...l }));
      clearInterval(sweep);
      sweep = armSweep();
    },
    async close(graceMs = 1000) {
      clearInterval(sweep);
      for (const s of sessions) s.goaway();
      // RFC 9114 §5.2: requests below the GOAWAY id are finished first — their answers handed over and gone out, not
      // just queued (quiche drops what it still holds at CONNECTION_CLOSE) — within graceMs; the GOAWAY frames too.
      await finishWithin(sessions, (s) => !s.settled(Date.now()), graceMs, true);
      for (const s of sessions) s.close();
      await ep.close();
    },
  };
}

interface ServerStream {
  /**
   * null for a request whose FIN came with its HEADERS (a GET): its handler gets an ended body made when first read.
   */
  body: StreamBody | null;
  /** Why the request was abandoned, told to its signal and listeners. */
  abort: RequestAbort;
  responding: boolean;
  done: boolean;
}

class ServerSession {
  #quic: QuicConnection;
  /** The client certificate its handshake verified, read on first ask (undefined: not yet). */
  #clientCert: ClientCertificate | null | undefined = undefined;

  clientCertificate(): ClientCertificate | null {
    if (this.#clientCert !== undefined) return this.#clientCert;
    if (!this.#quic.established) return null;
    this.#clientCert = clientCertificateFromDer(this.#quic.peerCertChain());
    return this.#clientCert;
  }

  #h3: H3Connection;
  #opts: H3ServerOptions;
  /** Requests in flight by stream id (IdMap, not Map: see util/id-map.ts). */
  #streams = new IdMap<ServerStream>();
  #counters: Counters;
  /** Requests whose head arrived in this receive pass: handed to the handler after it (see #dispatch). */
  #arrived: Array<[number, ServerStream, H3ServerRequest]> = [];
  #dispatchQueued = false;
  /** Client resets of requests not yet answered, per second (rapid reset, CVE-2023-44487). */
  #resets = new WindowCounter(MAX_RESETS_PER_SECOND);
  /** Requests this connection brought (its first one changes its idle allowance), and how many at the last sweep. */
  #served = 0;
  #servedAtSweep = 0;
  /** When a sweep first found it with no request open (null: busy then), and when it was sent a GOAWAY for idling. */
  #idleSince: number | null = null;
  #idleGoaway: number | null = null;
  /** handshakeDone's promise, made on first use. */
  #handshake: Promise<void> | null = null;

  constructor(quic: QuicConnection, opts: H3ServerOptions, counters: Counters, settings: H3ConnectionOptions) {
    this.#counters = counters;
    this.#quic = quic;
    this.#opts = opts;
    this.#h3 = new H3Connection(quic, settings);
    quic.setHandler(this.#h3);
    this.#h3.on((ev) => this.#onEvent(ev));
  }

  get active(): number {
    return this.#streams.size;
  }

  /** The client's address (its path now). */
  get remoteHost(): string {
    return this.#quic.remote.host;
  }

  get qpackInserts(): { decoder: number; encoder: number } {
    const q = this.#h3.stats().qpack;
    return { decoder: q.decoderInsertCount, encoder: q.encoderInsertCount };
  }

  get priorityUpdates(): number {
    return this.#h3.stats().priorityUpdates;
  }

  /** Resolves when the client's handshake completes (at once if it has); rejects if the connection closes first. */
  handshakeDone(): Promise<void> {
    if (this.#quic.established && !this.#quic.inEarlyData) return Promise.resolve();
    this.#handshake ??= new Promise<void>((resolve, reject) => {
      this.#quic.on((ev) => {
        if (ev.type === 'established' && !ev.early) resolve();
        else if (ev.type === 'closed')
          reject(
            new OriginlinkError(
              ErrorCode.SOCKET_CLOSED,
              'remote',
              "the client's connection closed before its handshake completed",
            ),
          );
      });
    });
    return this.#handshake;
  }

  /**
   * The QUIC connection's counters and its active path's RTT and congestion window (a handler reads them through
   * `req.connection`).
   */
  quicStats(): QuicStatsSnapshot {
    return this.#quic.stats();
  }

  goaway(): void {
    if (!this.#h3.closed) this.#h3.goaway();
  }

  /** The connection's bytes either way when last looked at, and since when they stood still (settled). */
  #traffic = { sent: -1, received: -1, since: 0 };

  /**
   * Nothing left to finish before a graceful close (polled by the server's close): no request open — a head still to
   * come counts, as its stream is below our GOAWAY id — nothing of ours waiting in our queue, and the connection quiet
   * (no byte sent or received) for a few RTTs, so what quiche still held went out and was acknowledged, or its loss
   * timer had its turn. A client that read its answers slowly keeps it busy as long as it reads.
   */
  settled(now: number): boolean {
    if (this.#h3.closed) return true;
    const st = this.#quic.stats();
    const t = this.#traffic;
    if (st.bytesSent !== t.sent || st.bytesReceived !== t.received) {
      t.sent = st.bytesSent;
      t.received = st.bytesReceived;
      t.since = now;
      return false;
    }
    if (this.#streams.size > 0 || this.#h3.activeStreams > 0 || st.bufferedBytes > 0) return false;
    return now - t.since >= Math.max(60, 4 * (st.rttMs ?? 0));
  }

  expireIncompleteHeads(): number {
    return this.#h3.closed ? 0 : this.#h3.expireIncompleteHeads();
  }

  /** Bytes queued for the client (the memory budget's share beyond the connection itself). */
  get queuedBytes(): number {
    return this.#quic.bufferedBytes;
  }

  /**
   * Idle past its allowance (`first` before any request, `keepAlive` after; 0: none): a GOAWAY, then the close at the
   * next sweep that finds it idle (a request below the GOAWAY id may still be on its way meanwhile; it is served; a
   * client with nothing open closes it itself on the GOAWAY). True when it sent that GOAWAY. Idle is no request open,
   * no head coming and none begun since the previous sweep (its period is half the shortest allowance): what only
   * QUIC does — PINGs, ACKs — does not count.
   */
  expireIdle(now: number, first: number, keepAlive: number): boolean {
    if (this.#h3.closed) return false;
    // Busy now, or between sweeps (requests came and went since the last one): not idle.
    if (this.#streams.size > 0 || this.#h3.activeStreams > 0 || this.#served !== this.#servedAtSweep) {
      this.#servedAtSweep = this.#served;
      this.#idleSince = null;
      return false;
    }
    this.#idleSince ??= now;
    if (this.#idleGoaway !== null) {
      // No new request comes after a GOAWAY: idle at any sweep after it (a period later at least), it closes.
      this.#h3.close(H3ErrorCode.NO_ERROR, 'idle');
      return false;
    }
    const allowed = this.#served === 0 ? first : keepAlive;
    if (allowed > 0 && now - this.#idleSince >= allowed) {
      this.#idleGoaway = now;
      this.#h3.goaway();
      return true;
    }
    return false;
  }

  close(): void {
    if (!this.#h3.closed) this.#h3.close(H3ErrorCode.NO_ERROR, 'server closing');
  }

  #onEvent(ev: H3Event): void {
    switch (ev.type) {
      case 'headers':
        // RFC 9218: the client's priority orders our response against the others on this connection.
        // A new stream already has the defaults (u=3, not incremental): nothing to tell the driver then.
        if (ev.priority && (ev.priority.urgency !== DEFAULT_PRIORITY.urgency || ev.priority.incremental)) {
          this.#quic.setPriority(ev.streamId, ev.priority.urgency, ev.priority.incremental);
        }
        this.#onRequest(ev.streamId, ev.headers, ev.end, ev.priority);
        return;
      case 'priority':
        // RFC 9218 §7.2: a PRIORITY_UPDATE for a request being answered, or whose answer is written but
        // possibly not all sent yet.
        this.#counters.reprioritised++;
        this.#quic.setPriority(ev.streamId, ev.priority.urgency, ev.priority.incremental, { written: ev.written });
        return;
      case 'data': {
        const s = this.#streams.get(ev.streamId);
        s?.body?.deliver(ev.data, ev.end);
        return;
      }
      case 'trailers': {
        const s = this.#streams.get(ev.streamId);
        s?.body?.deliver(new Uint8Array(0), true);
        return;
      }
      case 'reset': {
        const s = this.#streams.get(ev.streamId);
        if (!s) return;
        // RFC 9114 §8.1 H3_EXCESSIVE_LOAD: a client that cancels requests at line rate loses its connection.
        if (!s.responding && this.#resets.hit(performance.now()) && !this.#h3.closed) {
          this.#counters.resetFloods++;
          this.#h3.close(H3ErrorCode.EXCESSIVE_LOAD, `more than ${MAX_RESETS_PER_SECOND} requests reset per second`);
        }
        this.#streams.delete(ev.streamId);
        s.done = true;
        abandon(
          s,
          new OriginlinkError(
            ErrorCode.STREAM_RESET,
            'remote',
            `client reset stream ${ev.streamId} (0x${ev.code.toString(16)})`,
          ),
        );
        if (s.body) abortBody(s.body, new OriginlinkError(ErrorCode.STREAM_RESET, 'remote', 'request stream reset'));
        return;
      }
      case 'closed':
        for (const [, s] of this.#streams) {
          s.done = true;
          abandon(s, ev.error ?? new Error('connection closed'));
          if (s.body) abortBody(s.body, ev.error ?? undefined);
        }
        this.#streams.clear();
        return;
      default:
        return;
    }
  }

  #onRequest(id: number, headers: SharedHeaderList, end: boolean, priority: Priority | undefined): void {
    if (this.#streams.has(id)) return;
    this.#served++;
    const { method, path, authority, scheme, protocol, fields } = readRequestFields(headers, 'https');
    const s: ServerStream = {
      body: end ? null : new StreamBody(this.#quic, id, () => {}),
      abort: new RequestAbort(),
      responding: false,
      done: false,
    };
    this.#streams.set(id, s);
    const early = this.#quic.inEarlyData;
    if (early) this.#counters.earlyRequests++;
    // RFC 8470 §5.2: a request that is not safe to replay is refused while in early data.
    if (early && (this.#opts.earlyData ?? 'safe') === 'safe' && !isSafeMethod(method)) {
      this.#counters.tooEarly++;
      void this.#respond(id, s, null);
      return;
    }
    // RFC 9110 §10.1.1: 100 Continue once the handler wants the body (as the h1 and h2 fronts).
    if (s.body && wantsContinue(fields)) {
      s.body.onFirstRead = () => {
        if (!s.responding && !s.done && !this.#h3.closed) this.#h3.sendHeaders(id, CONTINUE_HEAD, false);
      };
    }
    const req = new ServedRequest(
      method,
      path,
      authority,
      scheme,
      fields,
      s.body ?? endedBody,
      id,
      this.#quic.remote.host,
      this.#quic.remote.port,
      '3',
      this,
      end ? 0 : declaredLength(fields),
      protocol,
      s.abort,
      priority,
    );
    if (early) req.earlyData = true;
    this.#arrived.push([id, s, req]);
    if (!this.#dispatchQueued) {
      this.#dispatchQueued = true;
      setImmediate(this.#dispatch);
    }
  }

  /**
   * Handlers run after the datagrams of this receive pass are processed, not at each HEADERS (as on
   * the HTTP/2 server): a request opened and reset in the same flight — rapid reset — never reaches
   * the handler, so it costs the origin nothing. One setImmediate per pass, not per request.
   */
  #dispatch = (): void => {
    this.#dispatchQueued = false;
    const list = this.#arrived;
    this.#arrived = [];
    for (const [id, s, req] of list) if (!s.done && this.#streams.get(id) === s) void this.#respond(id, s, req);
  };

  /** An interim response (InterimSender) on a stream whose answer has not started. */
  interim(id: number, status: number, headers: HeaderList): boolean {
    const s = this.#streams.get(id);
    if (!s || s.responding || s.done || this.#h3.closed) return false;
    this.#h3.sendHeaders(id, [[':status', String(status)], ...headers], false);
    return true;
  }

  async #respond(id: number, s: ServerStream, req: H3ServerRequest | null): Promise<void> {
    const gone = (): boolean => s.done || this.#h3.closed;
    try {
      const res: H3ServerResponse = req
        ? await this.#opts.handler(req)
        : { status: 425, headers: [['content-length', '0']] };
      if (gone()) return;
      const head = muxResponseHead(res.status, res.headers);
      const body = res.body ?? null;
      const empty =
        body === null ||
        (typeof body === 'string' && body.length === 0) ||
        (body instanceof Uint8Array && body.length === 0);
      const noBody = empty || bodilessResponse(req?.method ?? 'GET', res.status);
      const hasTrailers = (res.trailers?.length ?? 0) > 0;
      const later = !noBody && !hasTrailers ? (res.trailersLater ?? null) : null;
      s.responding = true;
      this.#h3.sendHeaders(id, head, noBody && !hasTrailers);
      if (!noBody) {
        const ok = await writeBody(this.#h3, this.#quic, id, body, gone, !hasTrailers && !later);
        if (!ok) return;
      }
      if (hasTrailers && !gone()) this.#h3.sendHeaders(id, res.trailers!, true);
      if (later) {
        const t = await later;
        if (gone()) return;
        if (t && t.length) this.#h3.sendHeaders(id, t, true);
        else this.#h3.endStream(id);
      }
      // Unread request body: RFC 9114 §4.1 lets the server stop it with H3_NO_ERROR (the client need not send the
      // rest).
      if (s.body && !s.body.readableEnded && !gone()) {
        s.body.destroy();
        this.#h3.stopReading(id, H3ErrorCode.NO_ERROR);
      }
    } catch (e) {
      this.#opts.onError?.(e);
      if (gone()) {
        /* the stream or connection went first */
      } else if (!s.responding) {
        try {
          this.#h3.sendHeaders(id, HANDLER_FAILED_HEAD, true);
        } catch {
          // Even the 500 head is over the client's SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §4.2.2).
          this.#h3.resetStream(id, H3ErrorCode.REQUEST_CANCELLED);
        }
      } else this.#h3.resetStream(id, H3ErrorCode.REQUEST_CANCELLED);
    } finally {
      s.done = true;
      this.#streams.delete(id);
    }
  }
}

/** A handshake our side ended for the client's certificate: our alert about it (RFC 9001 §4.8 CRYPTO_ERROR). */
function refusedClientCert(e: OriginlinkError | null): boolean {
  const d = e?.details;
  if (!d || d['closedBy'] !== 'local' || d['isApp'] === true) return false;
  const alert = Number(d['wireCode']) - CRYPTO_ERROR_BASE;
  return [42, 43, 44, 45, 46, 48, 49, 116].includes(alert);
}
