/**
 * Front listeners. Kinds:
 *  - `https`: TLS; ALPN picks h2 or http/1.1: an h2 socket is served by our
 *    HTTP/2 server (transport/h2-server.ts), an http/1.1 one goes to a
 *    node:http server that never listens itself;
 *  - `http`: cleartext HTTP/1.1 (node:http);
 *  - `h2c`: cleartext HTTP/2 with prior knowledge (our HTTP/2 server);
 *  - `h3`: HTTP/3 over QUIC (see h3-listener.ts).
 * Node's parser limits (header size, header timeout) stay in force for
 * sockets handed over by `emit('connection')`: the inner http.Server gets a
 * `listening` event so its connection checker runs.
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { LimitsConfig, ListenerConfig } from './config.js';
import type { FrontInfo, FrontRequest, FrontResponse } from './forward.js';
import type { Metrics } from './metrics.js';
import { H2ServerSession, type H2SessionOptions } from '../transport/h2-server.js';
import { muxFrontHandler } from './mux-front.js';

export interface ListenerHooks {
  handle(req: FrontRequest, res: FrontResponse, info: FrontInfo): void;
  log: Logger;
  metrics: Metrics;
}

export interface Listener {
  readonly config: ListenerConfig;
  readonly port: number;
  start(): Promise<void>;
  /** Apply settings that change without rebinding (TLS certificates, timeouts). */
  update(cfg: ListenerConfig, limits: LimitsConfig): void;
  /** Stop accepting; GOAWAY / Connection: close; wait for in-flight up to `graceMs`, then cut. */
  close(graceMs: number): Promise<void>;
}

/** A change in these needs a new socket; the rest is applied in place. */
export function rebindKey(l: ListenerConfig, limits: LimitsConfig): string {
  return `${l.kind}|${l.host}|${l.port}|${l.http2}|${limits.maxHeaderBytes}|${limits.maxHeaderCount}|${limits.maxConcurrentStreams}`;
}

export class TcpListener implements Listener {
  config: ListenerConfig;
  #limits: LimitsConfig;
  #hooks: ListenerHooks;
  #front: net.Server | null = null;
  #h1: http.Server | null = null;
  /** How h2 sockets are served (null: no h2 on this listener). */
  #h2: H2SessionOptions | null = null;
  #sockets = new Set<net.Socket>();
  #sessions = new Set<H2ServerSession>();
  #port = 0;
  #closing = false;

  constructor(cfg: ListenerConfig, limits: LimitsConfig, hooks: ListenerHooks) {
    this.config = cfg;
    this.#limits = limits;
    this.#hooks = hooks;
  }

  get port(): number { return this.#port; }

  async start(): Promise<void> {
    const cfg = this.config;
    const info: FrontInfo = { listener: cfg.name, secure: cfg.kind === 'https' };
    const handler = (req: FrontRequest, res: FrontResponse): void => this.#hooks.handle(req, res, info);
    const lim = this.#limits;
    if (cfg.kind === 'https' || cfg.kind === 'http') {
      this.#h1 = http.createServer({
        maxHeaderSize: lim.maxHeaderBytes + 8192, // Node counts the request line too; our own check gives 431 at the exact limit
        headersTimeout: lim.requestHeaderTimeoutMs,
        requestTimeout: 0,
        keepAliveTimeout: lim.keepAliveTimeoutMs,
        connectionsCheckingInterval: Math.min(1000, Math.max(50, lim.requestHeaderTimeoutMs / 4)),
      }, handler);
      this.#h1.maxHeadersCount = lim.maxHeaderCount * 2;
    }
    if (cfg.kind === 'h2c' || (cfg.kind === 'https' && cfg.http2)) {
      this.#h2 = {
        handler: muxFrontHandler(this.#hooks, info, 2),
        maxConcurrentStreams: lim.maxConcurrentStreams,
        // The forwarder's own check answers 431 at the exact limit; HPACK's cap leaves room for pseudo-headers.
        maxHeaderListSize: lim.maxHeaderBytes + 8192,
        firstRequestTimeoutMs: lim.requestHeaderTimeoutMs,
        idleTimeoutMs: Math.max(lim.keepAliveTimeoutMs, 1000),
        onError: (e) => this.#hooks.log.debug({ listener: cfg.name, err: (e as Error)?.message }, 'h2 handler error'),
      };
    }
    if (cfg.kind === 'https') {
      const t = cfg.tls as NonNullable<ListenerConfig['tls']>;
      const front = tls.createServer({
        cert: t.cert,
        key: t.key,
        ALPNProtocols: cfg.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
        handshakeTimeout: lim.requestHeaderTimeoutMs,
      });
      // Slowloris guard for the handshake itself (Node's handshakeTimeout starts only with a ClientHello).
      const pendingTls = new Map<string, NodeJS.Timeout>();
      front.on('connection', (s: net.Socket) => {
        const key = `${s.remoteAddress}|${s.remotePort}`;
        const t = setTimeout(() => s.destroy(), lim.requestHeaderTimeoutMs);
        t.unref();
        pendingTls.set(key, t);
        s.once('close', () => { clearTimeout(t); pendingTls.delete(key); });
      });
      front.on('secureConnection', (s) => {
        const key = `${s.remoteAddress}|${s.remotePort}`;
        clearTimeout(pendingTls.get(key));
        pendingTls.delete(key);
        if (this.#closing) { s.destroy(); return; }
        if (s.alpnProtocol === 'h2' && this.#h2) this.#serveH2(s, 'https');
        else this.#h1?.emit('connection', s);
      });
      front.on('tlsClientError', (e) => this.#hooks.log.debug({ listener: cfg.name, err: e.message }, 'tls handshake failed'));
      this.#front = front;
      this.#h1?.emit('listening'); // starts Node's header-timeout checker for handed-over sockets
    } else if (this.#h1) {
      this.#front = this.#h1;
    } else {
      this.#front = net.createServer((s) => this.#serveH2(s, 'http'));
    }
    this.#front.on('connection', (s: net.Socket) => this.#trackSocket(s));
    await new Promise<void>((resolve, reject) => {
      const f = this.#front as net.Server;
      f.once('error', (e: NodeJS.ErrnoException) => reject(new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `listener ${cfg.name}: cannot listen on ${cfg.host}:${cfg.port}: ${e.code ?? e.message}`, { cause: e })));
      f.listen({ host: cfg.host, port: cfg.port }, () => {
        f.removeAllListeners('error');
        f.on('error', (e) => this.#hooks.log.error({ listener: cfg.name, err: e.message }, 'listener error'));
        resolve();
      });
    });
    this.#port = (this.#front.address() as net.AddressInfo).port;
  }

  #trackSocket(s: net.Socket): void {
    this.#sockets.add(s);
    this.#hooks.metrics.front.connections.inc({ listener: this.config.name });
    s.once('close', () => {
      this.#sockets.delete(s);
      this.#hooks.metrics.front.connections.dec({ listener: this.config.name });
    });
    s.on('error', () => { /* reported by the server that owns the protocol */ });
  }

  #serveH2(socket: net.Socket, scheme: 'https' | 'http'): void {
    const session = new H2ServerSession(socket, this.#h2 as H2SessionOptions, scheme);
    this.#sessions.add(session);
    session.onClose(() => this.#sessions.delete(session));
    if (this.#closing) session.close();
  }

  update(cfg: ListenerConfig, limits: LimitsConfig): void {
    this.config = cfg;
    this.#limits = limits;
    if (cfg.tls && this.#front instanceof tls.Server) this.#front.setSecureContext({ cert: cfg.tls.cert, key: cfg.tls.key });
    if (this.#h1) {
      this.#h1.headersTimeout = limits.requestHeaderTimeoutMs;
      this.#h1.keepAliveTimeout = limits.keepAliveTimeoutMs;
    }
    if (this.#h2) this.#h2 = { ...this.#h2, firstRequestTimeoutMs: limits.requestHeaderTimeoutMs, idleTimeoutMs: Math.max(limits.keepAliveTimeoutMs, 1000) };
  }

  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const front = this.#front;
    if (!front) return;
    const closed = new Promise<void>((r) => front.close(() => r()));
    if (this.#h1 && this.#h1 !== front) this.#h1.close(() => { /* never listened; stops its checker */ });
    for (const s of this.#sessions) s.close(); // RFC 9113 §6.8: GOAWAY, then finish open streams
    const deadline = Date.now() + graceMs;
    while ((this.#sockets.size > 0 || this.#sessions.size > 0) && Date.now() < deadline) {
      this.#h1?.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const s of this.#sessions) s.destroy();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}
