/**
 * Front listeners, all on our own servers. Kinds:
 *  - `https`: TLS; ALPN picks h2 (our HTTP/2 server, server/h2.ts)
 *    or http/1.1 (our HTTP/1.1 server, server/h1.ts);
 *  - `http`: cleartext HTTP/1.1;
 *  - `h2c`: cleartext HTTP/2 with prior knowledge;
 *  - `h3`: HTTP/3 over QUIC (see h3-listener.ts).
 * Every request reaches the forwarder as a RequestHandler call
 * (server/request.ts), whatever the protocol.
 */
import type { EndpointStats } from '../quic/endpoint.js';
import net from 'node:net';
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { H1ParseError } from '../h1/fields.js';
import { H1ServerSession, type H1SessionOptions } from '../server/h1.js';
import { H2ServerSession, type H2SessionOptions } from '../server/h2.js';
import { finishWithin, type ServedSession } from '../server/listen.js';
import type { RequestHandler, ServerRequest, ServerResponse } from '../server/request.js';
import type { FrontClientAuth, LimitsConfig, ListenerConfig } from './config.js';
import type { TicketKeys } from './ticket-keys.js';
import type { FrontInfo } from './forward.js';
import type { Metrics } from './metrics.js';
import { CertificateSet, certificateNames } from '../server/certificates.js';
import type { FdGuard } from './fd-guard.js';
import { IntervalGate } from '../util/interval-gate.js';

export interface ListenerHooks {
  handle(req: ServerRequest, info: FrontInfo): ServerResponse | Promise<ServerResponse>;
  log: Logger;
  metrics: Metrics;
  /** The process's file descriptor guard (fd-guard.ts): every TCP front asks it about each accepted connection. */
  fds: FdGuard;
  /** The fronts' session-ticket keys (ticket-keys.ts): the current one, and each new one as it rotates in. */
  tickets: TicketKeys;
  /** The fleet's record of 0-RTT handshakes (early-data-record.ts): null while there is none (keys not shared). */
  earlyData: (key: string) => Promise<boolean> | null;
}

export interface Listener {
  readonly config: ListenerConfig;
  readonly port: number;
  start(): Promise<void>;
  /** Apply settings that change without rebinding (TLS certificates, timeouts). */
  update(cfg: ListenerConfig, limits: LimitsConfig): void;
  /** An h3 listener's QUIC endpoint counters (null before it started); other kinds have none. */
  quicStats?(): EndpointStats | null;
  /** Stop accepting; GOAWAY / Connection: close; wait for in-flight up to `graceMs`, then cut. */
  close(graceMs: number): Promise<void>;
}

/**
 * A change in these needs a new socket (the ALPN list of an https listener is the TLS server's; an h3 listener's
 * client certificate settings are in the quiche configs it made at start); the rest — certificates, an https
 * listener's client CAs, timeouts, parser limits — is applied in place to the connections accepted from then on.
 */
export function rebindKey(l: ListenerConfig): string {
  const c = l.kind === 'h3' ? l.tls?.client : null;
  const mtls = c ? `|mtls=${c.mode}:${createHash('sha256').update(c.ca).digest('base64url')}` : '';
  return `${l.kind}|${l.host}|${l.port}|${l.http2}${mtls}`;
}

/** A bind's errno in words (what `serve` prints for a listener that cannot start). */
export function bindReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return 'EADDRINUSE (another socket holds the port)';
  if (code === 'EACCES') return 'EACCES (a port below 1024 needs privileges)';
  if (code === 'EADDRNOTAVAIL') return 'EADDRNOTAVAIL (no interface has that address)';
  return code ?? (e as Error).message;
}

/** A listener that cannot bind: a config error naming it (serve.ts turns it into `file:line: listeners[i].port: …`). */
export function cannotListen(cfg: ListenerConfig, e: unknown): OriginlinkError {
  const reason = `cannot listen on ${cfg.host}:${cfg.port}: ${bindReason(e)}`;
  return new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `listener ${cfg.name}: ${reason}`, {
    cause: e,
    details: { listener: cfg.name, reason },
  });
}

/** The first bytes of the HTTP/2 client preface (RFC 9113 §3.4); no HTTP/1.1 method is PRI. */
const PRI = Buffer.from('PRI * HTTP/2.0');

/** The forwarder as the handler of one listener's servers. */
export function frontHandler(hooks: Pick<ListenerHooks, 'handle'>, info: FrontInfo): RequestHandler {
  return (req) => hooks.handle(req, info);
}

/**
 * node:tls server options for a front's client certificates (none asked without `tls.clientCa`). Never node:tls's
 * own `rejectUnauthorized`: it closes a connection whose certificate does not verify without a word (no alert, no
 * event to count), and its close after certificate_required races the client's first bytes (a reset that loses the
 * alert). The front judges the certificate itself once the handshake is done and says why (refuseClientCert).
 */
function clientAuthOptions(c: FrontClientAuth | null): {
  requestCert: boolean;
  rejectUnauthorized: boolean;
  ca?: Buffer;
} {
  if (c === null) return { requestCert: false, rejectUnauthorized: false };
  return { requestCert: true, rejectUnauthorized: false, ca: c.ca };
}

/** RFC 9113 §4.1 frame header + payload: an empty SETTINGS (the server preface, §3.4), then GOAWAY. */
function h2Refusal(reason: string): Buffer {
  const debug = Buffer.from(reason);
  const goaway = Buffer.alloc(9 + 8 + debug.length);
  goaway.writeUIntBE(8 + debug.length, 0, 3);
  goaway[3] = 0x7; // GOAWAY (§6.8): last stream 0, INADEQUATE_SECURITY (0xc, §7)
  goaway.writeUInt32BE(0xc, 13);
  debug.copy(goaway, 17);
  return Buffer.concat([Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), goaway]);
}

/**
 * A client whose certificate is refused gets the reason in its own protocol, as nginx answers 400 "No required SSL
 * certificate was sent": HTTP/1.1 400, or HTTP/2 GOAWAY INADEQUATE_SECURITY with the reason as its debug data. Then
 * a FIN, and what the client still sends is read and dropped until it closes (at most `lingerMs`): a close with its
 * request unread would send a reset that can overtake the answer.
 */
function refuseClientCert(s: tls.TLSSocket, reason: string, lingerMs: number): void {
  const body = `${reason}\n`;
  s.end(
    s.alpnProtocol === 'h2'
      ? h2Refusal(reason)
      : `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
  );
  s.on('data', () => {});
  const t = setTimeout(() => s.destroy(), lingerMs);
  t.unref();
  s.once('close', () => clearTimeout(t));
}

/** The certificate set of a listener with more than its default certificate, or null. */
function sniSet(t: NonNullable<ListenerConfig['tls']>): CertificateSet<tls.SecureContext | null> | null {
  if (t.certificates.length === 0) return null;
  return new CertificateSet<tls.SecureContext | null>([
    { names: certificateNames(t.cert), item: null },
    ...t.certificates.map((c) => ({
      names: certificateNames(c.cert),
      // The client CAs too: a context chosen by name verifies client certificates as the default one does.
      item: tls.createSecureContext({ cert: c.cert, key: c.key, ...(t.client ? { ca: t.client.ca } : {}) }),
    })),
  ]);
}

export class TcpListener implements Listener {
  config: ListenerConfig;
  #limits: LimitsConfig;
  #hooks: ListenerHooks;
  #front: net.Server | null = null;
  /** How HTTP/1.1 sockets are served (null: no h1 on this listener). */
  #h1: H1SessionOptions | null = null;
  /** How h2 sockets are served (null: no h2 on this listener). */
  #h2: H2SessionOptions | null = null;
  #sessions = new Set<ServedSession>();
  /** Every accepted socket (TLS handshakes in progress too): what is left at the end of a close is cut. */
  #sockets = new Set<net.Socket>();
  #port = 0;
  #closing = false;
  /** One line per interval for connections refused at limits.maxClientConnections. */
  #refusals = new IntervalGate(10_000, 16);
  /** https with `tls.certificates`: the context for each server name (null: the default). */
  #sni: CertificateSet<tls.SecureContext | null> | null = null;
  /** Stops the ticket key rotation's calls (https). */
  #untick: (() => void) | null = null;

  constructor(cfg: ListenerConfig, limits: LimitsConfig, hooks: ListenerHooks) {
    this.config = cfg;
    this.#limits = limits;
    this.#hooks = hooks;
  }

  get port(): number {
    return this.#port;
  }

  #options(cfg: ListenerConfig, lim: LimitsConfig): void {
    const info: FrontInfo = {
      listener: cfg.name,
      secure: cfg.kind === 'https',
      ...(cfg.tls?.client ? { clientCertHeader: cfg.tls.client.header } : {}),
    };
    const handler = frontHandler(this.#hooks, info);
    const onError = (e: unknown): void => {
      if (e instanceof H1ParseError) {
        // Refused by the HTTP/1.1 parser before any handler saw it (smuggling probes, oversized heads, bad targets):
        // counted and logged like the forwarder's own refusals, not only at debug level.
        const reason =
          e.kind === 'too-large'
            ? 'headers'
            : e.kind === 'target-too-long'
              ? 'target'
              : e.kind === 'version'
                ? 'version'
                : 'framing';
        this.#hooks.metrics.front.rejected.inc({ listener: cfg.name, reason });
        this.#hooks.log.info(
          { listener: cfg.name, reason, kind: e.kind, err: e.message.slice(0, 200) },
          'request refused by the parser',
        );
        return;
      }
      this.#hooks.log.debug({ listener: cfg.name, err: (e as Error)?.message }, 'front request error');
    };
    if (cfg.kind === 'https' || cfg.kind === 'http') {
      this.#h1 = {
        handler,
        // Room for the request line: the forwarder's own check answers 431 at the exact field limit.
        maxHeaderBytes: lim.maxHeaderBytes + 8192,
        maxHeaderCount: lim.maxHeaderCount,
        headersTimeoutMs: lim.requestHeaderTimeoutMs,
        keepAliveTimeoutMs: lim.keepAliveTimeoutMs,
        sendTimeoutMs: lim.clientSendTimeoutMs,
        onError,
      };
    }
    if (cfg.kind === 'h2c' || cfg.kind === 'http' || (cfg.kind === 'https' && cfg.http2)) {
      this.#h2 = {
        handler,
        maxConcurrentStreams: lim.maxConcurrentStreams,
        // The forwarder's own check answers 431 at the exact limit; HPACK's cap leaves room for pseudo-headers.
        maxHeaderListSize: lim.maxHeaderBytes + 8192,
        firstRequestTimeoutMs: lim.requestHeaderTimeoutMs,
        idleTimeoutMs: Math.max(lim.keepAliveTimeoutMs, 1000),
        sendTimeoutMs: lim.clientSendTimeoutMs,
        // RFC 8441: WebSocket over HTTP/2 by extended CONNECT (upgrade.ts).
        enableConnectProtocol: true,
        onError,
      };
    }
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const lim = this.#limits;
    this.#options(cfg, lim);
    if (cfg.kind === 'https') {
      const t = cfg.tls as NonNullable<ListenerConfig['tls']>;
      this.#sni = sniSet(t);
      const front = tls.createServer({
        cert: t.cert,
        key: t.key,
        // Mutual TLS (RFC 8446 §4.3.2 CertificateRequest): checked against tls.clientCa, judged once the handshake
        // is done (#clientCertRefused).
        ...clientAuthOptions(t.client),
        // node:tls's default is a hash of this process's argv, and OpenSSL resumes a session only under the context
        // it was made in: two instances started with other config paths never resumed each other's tickets, shared
        // keys or not. The ticket key already tells fleets apart.
        sessionIdContext: 'originlink',
        // Several certificates: the one holding the client's server_name (server/certificates.ts), else the default.
        SNICallback: (name, cb) => cb(null, this.#sni?.select(name) ?? undefined),
        ALPNProtocols: cfg.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
        handshakeTimeout: lim.requestHeaderTimeoutMs,
      });
      // Slowloris guard for the handshake itself (Node's handshakeTimeout starts only with a ClientHello).
      const pendingTls = new Map<string, NodeJS.Timeout>();
      front.on('connection', (s: net.Socket) => {
        if (!this.#admit(s)) return;
        const key = `${s.remoteAddress}|${s.remotePort}`;
        const t = setTimeout(() => s.destroy(), lim.requestHeaderTimeoutMs);
        t.unref();
        pendingTls.set(key, t);
        s.once('close', () => {
          clearTimeout(t);
          pendingTls.delete(key);
        });
      });
      front.on('secureConnection', (s) => {
        const key = `${s.remoteAddress}|${s.remotePort}`;
        clearTimeout(pendingTls.get(key));
        pendingTls.delete(key);
        const refused = this.#clientCertRefused(s);
        if (refused !== null) {
          this.#hooks.metrics.front.tlsRefused.inc({ listener: cfg.name, reason: 'client_cert' });
          this.#hooks.log.debug({ listener: cfg.name, err: refused }, 'client certificate refused');
          refuseClientCert(s, refused, lim.requestHeaderTimeoutMs);
          return;
        }
        this.#serve(s, s.alpnProtocol === 'h2' && this.#h2 ? 'h2' : 'h1', 'https');
      });
      // Tickets sealed under the fleet's key of the hour (ticket-keys.ts), re-keyed as it rotates.
      front.setTicketKeys(this.#hooks.tickets.key());
      this.#untick = this.#hooks.tickets.onRotate((k) => front.setTicketKeys(k));
      front.on('tlsClientError', (e) => {
        this.#hooks.metrics.front.tlsRefused.inc({ listener: cfg.name, reason: 'handshake' });
        this.#hooks.log.debug({ listener: cfg.name, err: e.message }, 'tls handshake failed');
      });
      this.#front = front;
    } else {
      // h2c: HTTP/2 with prior knowledge only; http: HTTP/1.1 or HTTP/2 told by the first bytes (#sniff).
      const front = net.createServer();
      front.on('connection', (s: net.Socket) => {
        if (!this.#admit(s)) return;
        if (cfg.kind === 'h2c') this.#serve(s, 'h2', 'http');
        else this.#sniff(s);
      });
      this.#front = front;
    }
    // limits.maxClientConnections: past it, Node closes a connection as it is accepted (its 'drop'), before any
    // socket object or TLS state is made for it — as nginx does past worker_connections.
    this.#front.maxConnections = lim.maxClientConnections;
    this.#front.on('drop', () => this.#refused('max_connections'));
    await new Promise<void>((resolve, reject) => {
      const f = this.#front as net.Server;
      f.once('error', (e: NodeJS.ErrnoException) => reject(cannotListen(cfg, e)));
      f.listen({ host: cfg.host, port: cfg.port }, () => {
        f.removeAllListeners('error');
        f.on('error', (e) => this.#hooks.log.error({ listener: cfg.name, err: e.message }, 'listener error'));
        resolve();
      });
    });
    this.#port = (this.#front.address() as net.AddressInfo).port;
  }

  /**
   * Why a TLS connection's client certificate is refused (null: it is not): none shown where `require` asks for one,
   * or one shown that did not verify against tls.clientCa (under `optional` too, as nginx's `optional`).
   */
  #clientCertRefused(s: tls.TLSSocket): string | null {
    const c = this.config.tls?.client;
    if (!c || s.authorized) return null;
    const shown = s.getPeerX509Certificate() !== undefined;
    if (shown) return `client certificate not verified (${String(s.authorizationError)})`;
    return c.mode === 'require' ? 'client certificate required' : null;
  }

  /**
   * A connection just accepted: refused (closed at once) while descriptors run short (FdGuard), else counted and
   * kept for the close. The first 'connection' listener of the listener.
   */
  #admit(s: net.Socket): boolean {
    if (!this.#hooks.fds.admit(s as unknown as { _handle?: { fd?: number } | null }, this.config.name)) {
      s.destroy();
      this.#refused('descriptors');
      return false;
    }
    this.#trackSocket(s);
    return true;
  }

  #refused(reason: 'max_connections' | 'descriptors'): void {
    this.#hooks.metrics.front.refusedConnections.inc({ listener: this.config.name, reason });
    if (reason !== 'max_connections') return; // the descriptor guard logs its own
    const pass = this.#refusals.pass(reason);
    if (pass)
      this.#hooks.log.warn(
        { listener: this.config.name, maxClientConnections: this.#limits.maxClientConnections, since: pass.since },
        'listener at limits.maxClientConnections: new connections are closed as they are accepted (more within the interval are counted, not logged)',
      );
  }

  #trackSocket(s: net.Socket): void {
    this.#sockets.add(s);
    this.#hooks.metrics.front.connections.inc({ listener: this.config.name });
    s.once('close', () => {
      this.#sockets.delete(s);
      this.#hooks.metrics.front.connections.dec({ listener: this.config.name });
    });
    s.on('error', () => {
      /* reported by the server that owns the protocol */
    });
  }

  /**
   * An `http` listener's connection: HTTP/1.1, or HTTP/2 with prior knowledge when it opens with the HTTP/2
   * preface (RFC 9113 §3.3: `PRI * HTTP/2.0`), told by its first bytes as nginx (`http2 on`) and Envoy (codec
   * AUTO) tell it. Answered in HTTP/1.1, such a client got a 505 it cannot read: curl said "Empty reply".
   */
  #sniff(s: net.Socket): void {
    const timer = setTimeout(() => s.destroy(), this.#limits.requestHeaderTimeoutMs);
    timer.unref();
    s.once('close', () => clearTimeout(timer));
    s.once('data', (first: Buffer) => {
      clearTimeout(timer);
      s.pause();
      s.unshift(first); // the session's reader takes what is buffered first (net/socket-reads.ts)
      this.#serve(s, first.length >= PRI.length && first.subarray(0, PRI.length).equals(PRI) ? 'h2' : 'h1', 'http');
    });
  }

  #serve(socket: net.Socket, protocol: 'h1' | 'h2', scheme: 'https' | 'http'): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const session: ServedSession =
      protocol === 'h2'
        ? new H2ServerSession(socket, this.#h2 as H2SessionOptions, scheme)
        : new H1ServerSession(socket, this.#h1 as H1SessionOptions, scheme);
    this.#sessions.add(session);
    session.onClose(() => this.#sessions.delete(session));
  }

  update(cfg: ListenerConfig, limits: LimitsConfig): void {
    this.config = cfg;
    this.#limits = limits;
    if (cfg.tls && this.#front instanceof tls.Server) {
      const client = clientAuthOptions(cfg.tls.client);
      this.#front.setSecureContext({ cert: cfg.tls.cert, key: cfg.tls.key, ...(client.ca ? { ca: client.ca } : {}) });
      // Read by node:tls for each connection it accepts: new connections ask (or not) as the new config says.
      Object.assign(this.#front, { requestCert: client.requestCert, rejectUnauthorized: client.rejectUnauthorized });
      // A new default context has keys of its own: the fleet's again.
      this.#front.setTicketKeys(this.#hooks.tickets.key());
      this.#sni = sniSet(cfg.tls);
    }
    // New connections get the new timeouts (sessions keep the options they started with).
    this.#options(cfg, limits);
    if (this.#front) this.#front.maxConnections = limits.maxClientConnections;
  }

  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#untick?.();
    const front = this.#front;
    if (!front) return;
    const closed = new Promise<void>((r) => front.close(() => r()));
    for (const s of this.#sessions) s.close(); // h2: GOAWAY (RFC 9113 §6.8); h1: the last answer closes
    await finishWithin(this.#sessions, (s) => s.active > 0, graceMs);
    for (const s of this.#sessions) s.destroy();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}
