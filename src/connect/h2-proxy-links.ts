/**
 * Tunnels as HTTP/2 CONNECT streams (RFC 9113 §8.5): to an `https://` proxy
 * node with `http2`, every tunnel is one stream of a TLS connection to the
 * node that negotiated h2 by ALPN, so N origin connections through a node
 * cost one TCP+TLS handshake to it, not N. The stream's DATA frames carry the
 * tunnel's bytes both ways; END_STREAM is a half-close (§8.5: like a TCP
 * FIN), RST_STREAM an abort.
 *
 * The connections to the node are our own HTTP/2 client (H2PooledConnection)
 * with no headers or body timers (a tunnel may idle as long as the pooled
 * origin connection inside it); one per node and credentials (the node's
 * `key`: never shared across credentials), another only when one is at the
 * node's stream limit; a connection with no tunnel left closes after
 * `LINK_IDLE_MS`. A CONNECT's final status means what it means for
 * HTTP/1.1 CONNECT (one rule: tunnel.ts `connectStatusError`).
 *
 * Liveness (RFC 9113 §6.7): a connection to a node from which nothing has
 * come for `pingIntervalMs` is sent a PING; no answer within
 * `pingTimeoutMs` closes it, and with it every tunnel it carries — a silently
 * dead path (a middlebox that dropped the flow, a frozen proxy) would
 * otherwise keep taking new CONNECT streams that never open, and hold the
 * pooled origin connections inside it until their own timers. A CONNECT that
 * times out on a connection probes it at once. The intervals are the pool
 * options of the request that dialled the connection.
 *
 * A node that chooses HTTP/1.1 by ALPN (we offer h2, then http/1.1; one that
 * chooses nothing counts the same) gets an HTTP/1.1 CONNECT on that very TLS
 * connection, as curl's `--proxy-http2` falls back, and one connection per
 * tunnel from then on; it is asked for h2 again after `H1_RECHECK_MS`.
 */
import { type Duplex, PassThrough, type Readable } from 'node:stream';
import tls from 'node:tls';
import { ErrorCode, NOT_SENT, OriginlinkError } from '../errors.js';
import { LazyDuplex } from '../util/lazy-base.js';
import type { ConnResponse, ConnectionFacts, HeaderList } from '../http/types.js';
import type { H2PooledConnection } from '../client/h2.js';
import { pingOrClose } from '../client/ping.js';
import { h2ClientFor } from './h2-client.js';
import type { ProxyNode } from '../net/proxy.js';
import {
  connectAuthority,
  connectStatusError,
  openTunnel,
  proxyAuthorization,
  proxyError,
  proxyTlsOptions,
  type TunnelOptions,
} from '../net/tunnel.js';
import { abortSignalOf } from '../util/leg-signal.js';

/** A connection to a node with no tunnel left closes after this long, ms. */
export const LINK_IDLE_MS = 30_000;
/** A node that answered HTTP/1.1 by ALPN is offered h2 again after this long, ms. */
export const H1_RECHECK_MS = 10 * 60_000;

/** A dial found the node speaking HTTP/1.1: its TLS connection, for the first caller to claim. */
class ChoseHttp1 extends Error {
  #socket: tls.TLSSocket | null;
  constructor(socket: tls.TLSSocket) {
    super('the proxy chose HTTP/1.1 by ALPN');
    this.#socket = socket;
    // Claimed in the rejection's microtasks; if every caller gave up meanwhile, nobody will.
    setImmediate(() => this.claim()?.destroy());
  }
  claim(): tls.TLSSocket | null {
    const s = this.#socket;
    this.#socket = null;
    return s;
  }
}

export interface H2TunnelOptions extends TunnelOptions {
  /** Our receive window per stream, bytes, and the header list limit, for the connection to the node. */
  windowSize: number;
  maxHeaderListSize: number;
  /** Quiet time before a PING, ms (0 = no liveness checks), and how long its answer may take. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
}

interface Link {
  conn: H2PooledConnection;
  idle: NodeJS.Timeout | null;
  health: NodeJS.Timeout | null;
  pinging: boolean;
}

/** HTTP/2 connections to proxy nodes, per node and credentials; one set per Agent. */
export class H2ProxyLinks {
  #links = new Map<string, Link[]>();
  #dialing = new Map<string, Promise<Link>>();
  #ids = 0;
  #closed = false;
  #dead = new Map<string, number>();
  /** Nodes that chose HTTP/1.1, by key: until when they get HTTP/1.1 CONNECT without asking (performance.now() ms). */
  #h1Until = new Map<string, number>();

  /** Connections to the node (any state), for stats and tests. */
  connections(node: ProxyNode): H2PooledConnection[] {
    return (this.#links.get(node.key) ?? []).map((l) => l.conn);
  }

  /**
   * A tunnel to host:port through `node` as a byte stream; TLS to the origin goes on top of it.
   * `http2`: whether it is an HTTP/2 CONNECT stream (false: the node chose HTTP/1.1).
   */
  async open(
    node: ProxyNode,
    host: string,
    port: number,
    o: H2TunnelOptions,
  ): Promise<{ socket: Duplex; http2: boolean }> {
    const until = this.#h1Until.get(node.key);
    if (until !== undefined) {
      if (performance.now() < until) return { socket: await openTunnel(node, host, port, o), http2: false };
      this.#h1Until.delete(node.key);
    }
    const deadline = AbortSignal.timeout(o.timeoutMs);
    const signal = o.signal ? AbortSignal.any([abortSignalOf(o.signal), deadline]) : deadline;
    const authority = connectAuthority(host, port);
    const failed = (): OriginlinkError =>
      o.signal?.aborted
        ? new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true, facts: NOT_SENT })
        : new OriginlinkError(
            ErrorCode.CONNECT_TIMEOUT,
            'network',
            `tunnel through ${node.id} to ${authority} not open within ${o.timeoutMs} ms`,
            { retrySafe: true, facts: NOT_SENT, details: { proxy: node.id } },
          );
    let link: Link;
    try {
      link = await raceSignal(this.#link(node, o), signal, failed);
    } catch (e) {
      if (!(e instanceof ChoseHttp1)) throw e;
      // HTTP/1.1 CONNECT over the connection the dial made (callers merged on that dial open their own).
      return { socket: await openTunnel(node, host, port, o, e.claim()), http2: false };
    }
    const out = new PassThrough();
    const stop = new AbortController();
    const headers: HeaderList = [];
    const auth = proxyAuthorization(node);
    if (auth) headers.push(['proxy-authorization', auth]);
    let res: ConnResponse;
    try {
      res = await raceSignal(
        link.conn.request({
          method: 'CONNECT',
          path: '',
          authority,
          scheme: 'https',
          headers,
          body: out,
          signal: stop.signal,
        }),
        signal,
        failed,
      );
    } catch (e) {
      stop.abort();
      // No answer to the CONNECT: is the connection to the node itself still alive?
      if (e instanceof OriginlinkError && e.code === ErrorCode.CONNECT_TIMEOUT) this.#probe(link, node, o);
      throw e instanceof OriginlinkError &&
        (e.code === ErrorCode.CONNECT_TIMEOUT || e.code === ErrorCode.ABORTED || e.code === ErrorCode.PROXY_FAILED)
        ? e
        : proxyError(node, `HTTP/2 CONNECT ${authority} failed: ${(e as Error).message}`, e);
    }
    const err = connectStatusError(node, authority, res.status);
    if (err) {
      stop.abort();
      res.body.resume();
      throw err;
    }
    return { socket: new StreamTunnel(out, res.body, stop), http2: true };
  }

  /** Connections to the node (per its key: node and credentials) closed because a PING went unanswered. */
  deadConnections(node: ProxyNode): number {
    return this.#dead.get(node.key) ?? 0;
  }

  /** Close every connection to every node (tunnels inside them end). */
  close(): void {
    this.#closed = true;
    for (const links of this.#links.values()) for (const l of links) l.conn.destroy();
    this.#links.clear();
  }

  /** A connection to the node with a free stream, dialled when none has one (concurrent dials merged). */
  async #link(node: ProxyNode, o: H2TunnelOptions): Promise<Link> {
    for (;;) {
      const free = (this.#links.get(node.key) ?? []).find((l) => l.conn.isUsable() && l.conn.active < l.conn.capacity);
      if (free) {
        if (free.idle) clearTimeout(free.idle);
        free.idle = null;
        return free;
      }
      let dial = this.#dialing.get(node.key);
      if (!dial) {
        dial = this.#dial(node, o).finally(() => this.#dialing.delete(node.key));
        this.#dialing.set(node.key, dial);
      }
      const l = await dial;
      if (l.conn.isUsable() && l.conn.active < l.conn.capacity) return l;
    }
  }

  /**
   * Bounded by its own timer only: a merged dial outlives the caller that started it (callers race their own signals).
   */
  async #dial(node: ProxyNode, o: H2TunnelOptions): Promise<Link> {
    if (this.#closed) throw proxyError(node, 'the agent is closed');
    const t0 = performance.now();
    const socket = tls.connect(proxyTlsOptions(node, o, ['h2', 'http/1.1']));
    // Many tunnels share this socket: with Nagle a tunnel's small write waits for the ACK of another's.
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no TLS within ${o.timeoutMs} ms`)), o.timeoutMs);
      const fail = (e: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(proxyError(node, `cannot reach the proxy: ${e.message}`, e));
      };
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.removeListener('error', fail);
        resolve();
      });
    });
    if (socket.alpnProtocol !== 'h2') {
      this.#h1Until.set(node.key, performance.now() + H1_RECHECK_MS);
      throw new ChoseHttp1(socket);
    }
    const now = performance.now();
    const facts: ConnectionFacts = {
      protocol: 'h2',
      alpn: 'h2',
      remoteAddress: socket.remoteAddress ?? node.host,
      remotePort: socket.remotePort ?? node.port,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      connectMs: now - t0,
      tlsMs: 0,
      tlsVersion: socket.getProtocol() ?? null,
      resumed: socket.isSessionReused(),
      earlyData: false,
      tfo: false,
      keepAliveHintMs: null,
      keepAliveObservedMs: null,
      peerMaxConcurrentStreams: null,
      rttMs: null,
    };
    // No headers/body timers: a tunnel lives as long as the origin connection inside it.
    const { H2PooledConnection } = await h2ClientFor(socket);
    const conn = new H2PooledConnection(++this.#ids, socket, facts, {
      headersTimeoutMs: 0,
      bodyTimeoutMs: 0,
      windowSize: o.windowSize,
      maxHeaderListSize: o.maxHeaderListSize,
    });
    const link: Link = { conn, idle: null, health: null, pinging: false };
    if (o.pingIntervalMs > 0) {
      link.health = setInterval(
        () => {
          if (performance.now() - conn.lastReadAt >= o.pingIntervalMs) this.#probe(link, node, o);
        },
        Math.max(250, o.pingIntervalMs / 2),
      );
      link.health.unref();
    }
    const list = this.#links.get(node.key) ?? [];
    list.push(link);
    this.#links.set(node.key, list);
    conn.on((ev) => {
      if (ev.type === 'close') {
        if (link.idle) clearTimeout(link.idle);
        if (link.health) clearInterval(link.health);
        const left = (this.#links.get(node.key) ?? []).filter((l) => l !== link);
        if (left.length) this.#links.set(node.key, left);
        else this.#links.delete(node.key);
      } else if (ev.type === 'capacity' && conn.active === 0 && !link.idle) {
        link.idle = setTimeout(() => {
          link.idle = null;
          if (conn.active === 0) conn.drain();
        }, LINK_IDLE_MS);
        link.idle.unref();
      }
    });
    return link;
  }

  /** PING the node now (unless a PING is out already); no answer in time closes the connection and its tunnels. */
  #probe(link: Link, node: ProxyNode, o: H2TunnelOptions): void {
    const conn = link.conn;
    if (!conn.isUsable()) return;
    pingOrClose(link, conn, o.pingTimeoutMs, (e) => {
      this.#dead.set(node.key, (this.#dead.get(node.key) ?? 0) + 1);
      return new OriginlinkError(
        ErrorCode.PING_TIMEOUT,
        'network',
        `proxy ${node.id}: HTTP/2 connection answered no PING within ${o.pingTimeoutMs} ms; closed with its ${conn.active} tunnel(s)`,
        { cause: e, details: { proxy: node.id } },
      );
    });
  }
}

/**
 * One CONNECT stream as a byte stream: writes leave as DATA, DATA arrives as reads; end() half-closes, destroy()
 * resets.
 */
class StreamTunnel extends LazyDuplex {
  #out: PassThrough;
  #in: Readable;
  #stop: AbortController;

  constructor(out: PassThrough, inbound: Readable, stop: AbortController) {
    super();
    this.#out = out;
    this.#in = inbound;
    this.#stop = stop;
    inbound.on('data', (d: Buffer) => {
      if (!this.push(d)) inbound.pause();
    });
    inbound.once('end', () => this.push(null));
    inbound.once('error', (e) => this.destroy(e));
  }

  override _read(): void {
    this.#in.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.#out.write(chunk)) cb();
    else this.#out.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.#out.end(); // END_STREAM (RFC 9113 §8.5: the half-close of a tunnel)
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.#stop.abort(); // RST_STREAM CANCEL unless the stream ended both ways already
    this.#in.destroy();
    cb(err);
  }
}

function raceSignal<T>(p: Promise<T>, signal: AbortSignal, err: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(err());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(err());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
