/**
 * HTTP/1.1 over one TCP/TLS socket: one request at a time (exclusive
 * reservation), keep-alive between them. The wire format lives in src/h1,
 * the request lifecycle in exchange.ts; this file owns the socket and the
 * framing.
 *
 * Invariant: the connection is offered again (`capacity`) only once the
 * response is complete AND the whole request was written (an early response
 * may arrive while a body is still leaving). HTTP/1.1 cannot cancel one
 * request: any failure closes the connection — except a request our side
 * gave up after sending it whose response has at most DRAIN_MAX_BYTES left:
 * that rest is read out and thrown away, and the connection serves again.
 */
import type { X509Certificate } from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';
import { ErrorCode, NOT_SENT, OriginlinkError, socketFailure } from '../errors.js';
import { H1ParseError, H1ResponseParser, notHttpStart, type H1Head } from '../h1/parser.js';
import { serializeRequestHead } from '../h1/request.js';
import { chunkedFrame, CHUNKED_END } from '../h1/chunked.js';
import { knownLength } from '../http/body.js';
import type {
  ConnEvent,
  ConnRequest,
  ConnResponse,
  ConnState,
  ConnectionFacts,
  PooledConnection,
} from '../http/types.js';
import { waitDrain, yes } from '../util/body.js';
import { Exchange, ExchangeTimers, type ExchangeWire } from './exchange.js';
import { PushBody } from '../wire/body.js';
import { turnNow } from '../util/clock.js';
import { readChunks, type SocketReads } from '../net/socket-reads.js';
import { handshakeUnconfirmed } from '../net/tcp.js';
import { quickAck, socketFd, unreadBytes } from '../net/tfo.js';
import { atTurnEnd, type TurnEnd } from '../util/turn-end.js';

/** Turns a fresh TLS connection may sit out for unread bytes (#settle); past them the bytes are judged a stray. */
const SETTLE_MAX = 3;

/**
 * A connection handed out within this long of its socket's last read, the socket read throughout, is not asked
 * for unread bytes (isUsable): what reached the kernel since can be no older than this, and bytes that young are
 * the race no check closes (they may as well land just after it). Well under the 5 ms the stray test holds us to.
 */
const FRESH_READ_MS = 1;

/** A connection switched by a 101 (H1PooledConnection.upgrade): now the caller's, for the new protocol. */
export interface Switched {
  switched: true;
  /** The 101's fields. */
  headers: ConnResponse['headers'];
  socket: net.Socket;
  /** Bytes of the new protocol read with the 101, to be read before the socket's own. */
  head: Buffer;
}

export interface H1Options {
  maxHeaderBytes: number;
  maxHeaderCount: number;
  /** Time allowed from the end of the request to the response head. */
  headersTimeoutMs: number;
  /**
   * Longest silence while a request body leaves or a response body arrives (not while our reader is behind:
   * Exchange.timedOut).
   */
  bodyTimeoutMs: number;
}

/**
 * A response body its reader dropped is read out and thrown away, so that the connection can serve again,
 * when what is left is at most this many bytes and arrives within DRAIN_MAX_MS (Chromium's
 * HttpResponseBodyDrainer: 16 KiB, 5 s); past either, the connection closes, as it must otherwise
 * (HTTP/1.1 cannot cancel one request).
 */
export const DRAIN_MAX_BYTES = 16 * 1024;
export const DRAIN_MAX_MS = 5000;

const EMPTY = Buffer.alloc(0);

export class H1PooledConnection implements PooledConnection {
  readonly id: number;
  readonly protocol = 'h1' as const;
  readonly facts: ConnectionFacts;
  readonly createdAt = performance.now();
  lastActiveAt = this.createdAt;
  served = 0;
  #state: ConnState = 'ready';
  #socket: net.Socket;
  #parser: H1ResponseParser;
  #opts: H1Options;
  #cert: X509Certificate | null;
  #cur: Exchange | null = null;
  #listeners: Array<(ev: ConnEvent) => void> = [];
  /** Peer closed or sent bytes while idle: never reuse. */
  #tainted = false;
  /** Acknowledge each response at once (PoolOptions.quickAck, set by the pool). */
  #quickAck = false;
  /** Sitting a turn out while the TLS layer reads what followed the handshake (#settle), and how often it did. */
  #settling = false;
  #settled = 0;
  /**
   * The socket's fd for the unread-bytes check (net/tfo.ts unreadBytes); -1: none to ask (a tunnel stream, no addon).
   */
  #fd = -2;
  /** When #onData last ran (performance.now()); -Infinity once the socket's reads were paused since. */
  #readAt = Number.NEGATIVE_INFINITY;
  /** Inside the parser's execute (#onData), and a release that waits for it to return (#release). */
  #parsing = false;
  #releaseAfterParse = false;
  /** An answered request's body still leaving: its idle deadline (#watchUpload). */
  #uploadWatch: NodeJS.Timeout | null = null;
  /** One pair of timers for every exchange of this connection (they are sequential). */
  #timers = new ExchangeTimers();
  /** Reading out the rest of a body its reader dropped: the bytes it may still take, and its deadline. */
  #drain: { budget: number; timer: NodeJS.Timeout } | null = null;
  #reads: SocketReads;
  /** The request on now asked to switch protocols (upgrade()). */
  #upgrading = false;
  /**
   * The request taken and not yet written: it leaves at the end of this loop turn's poll phase, with every other
   * connection's (util/turn-end.ts: written at once, each request left between two reads, waking the origin for
   * each). Null: none waits.
   */
  #pendingX: Exchange | null = null;
  #pendingHead = '';
  #pendingFraming: 'none' | 'length' | 'chunked' = 'none';
  #pendingDeclared = -1;
  /** What writes it at the turn's end, with every other connection's (util/turn-end.ts). */
  #flusher: TurnEnd = { turnEnd: () => this.#flush() };
  /** Switched by a 101: the bytes that followed it (held for #detach); the connection reads nothing more. */
  #switched: Buffer | null = null;
  /** drain() was called: the pool closes this connection. */
  #closing = false;
  #wire: ExchangeWire = {
    closing: () => this.#closing,
    cancel: (x, err) => {
      if (this.#cur !== x) {
        this.#teardown(err);
        return;
      }
      this.#cur = null;
      if (this.#pendingX === x) {
        // Given up before it was written (an abort, a deadline): nothing went out, the connection serves on.
        this.#dropPending();
        if (this.#state === 'ready') this.#emit({ type: 'capacity' });
        else this.#teardown(null);
        return;
      }
      if (!this.#startDrain(x, err)) this.#teardown(err);
    },
    settled: (x) => {
      // Success: reuse once the request is out too (else after the pump, see #write).
      if (this.#cur !== x) return;
      if (x.facts.requestSent) this.#release();
      else this.#watchUpload();
    },
  };

  constructor(
    id: number,
    socket: net.Socket,
    facts: ConnectionFacts,
    opts: H1Options,
    cert: X509Certificate | null = null,
  ) {
    this.id = id;
    this.#socket = socket;
    this.facts = facts;
    this.#opts = opts;
    this.#cert = cert;
    this.#parser = new H1ResponseParser(
      {
        onHead: (h) => this.#onHead(h),
        onInterim: (status, headers, reason) => {
          if (!this.#drain) this.#cur?.interim(status, headers, reason);
        },
        onBody: (b) => {
          if (this.#drain) this.#drained(b.length);
          else this.#cur?.data(b);
        },
        onTrailers: (t) => {
          if (this.#cur) this.#cur.trailers = t;
        },
        onComplete: () => {
          if (this.#drain) this.#endDrain(true);
          else this.#cur?.end();
        },
      },
      { maxHeaderBytes: opts.maxHeaderBytes, maxHeaderCount: opts.maxHeaderCount },
    );
    this.#reads = readChunks(socket, (d) => this.#onData(d));
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  get state(): ConnState {
    return this.#state;
  }
  get capacity(): number {
    return 1;
  }
  get active(): number {
    return this.#cur || this.#drain ? 1 : 0;
  }

  on(listener: (ev: ConnEvent) => void): void {
    this.#listeners.push(listener);
  }
  #emit(ev: ConnEvent): void {
    for (const l of this.#listeners) l(ev);
  }

  peerCertificate(): X509Certificate | null {
    return this.#cert;
  }

  unref(): void {
    // A tunnel's stream (an HTTP/2 CONNECT stream) has no handle of its own: its node connection is let go or not.
    (this.#socket as Partial<Pick<net.Socket, 'unref'>>).unref?.();
  }

  /**
   * Ready for a request: open, never tainted — and nothing unread in the kernel's receive queue. Bytes there
   * while no request is out are no answer to the next one (RFC 9112 §9.3): an origin's late second response
   * that reached the kernel before this turn's reads did would otherwise be read as the next request's answer
   * (the pool asks this before every reuse). Those bytes close the connection instead. A connection read less than
   * FRESH_READ_MS ago is not asked: what waits there is that young at most.
   */
  isUsable(): boolean {
    if (!this.#open()) return false;
    if (this.#cur === null && this.#drain === null && !this.#freshlyRead() && this.#unreadInKernel()) {
      if (this.#handshakeTail()) this.#settle();
      else this.#unsolicited('while idle, not read yet');
      return false;
    }
    return true;
  }

  /** Open, never tainted, not sitting a turn out (#settle): isUsable without the kernel's receive queue. */
  #open(): boolean {
    const s = this.#socket;
    return !(
      this.#state !== 'ready' ||
      this.#tainted ||
      s.destroyed ||
      s.readableEnded ||
      !s.writable ||
      this.#settling
    );
  }

  settling(): boolean {
    return this.#settling;
  }

  quickAck(on: boolean): void {
    this.#quickAck = on;
  }

  /**
   * A TLS connection that has carried no request yet: what the kernel holds is most likely the end of its handshake,
   * not a stray — RFC 8446 §4.6.1: a TLS 1.3 server sends its NewSessionTicket messages after the handshake, and
   * they wait unread until the poll after the one that completed it (the TLS layer reads them; no data comes of
   * them). A stray is an answer to an earlier request: there is none. Judged as a stray, a fresh connection to nginx
   * was closed unused and its pool acknowledged every response at once from then on (bench groups: 5–7 of ~25
   * connections). It may also be the origin's close (close_notify): so the connection sits this turn out (#settle).
   */
  #handshakeTail(): boolean {
    return (
      this.served === 0 && (this.#socket as Partial<tls.TLSSocket>).encrypted === true && this.#settled < SETTLE_MAX
    );
  }

  /**
   * Not usable until the next poll has read what waits: tickets leave the connection as it was, and it offers
   * itself again ('capacity'); the origin's close ends it ('end'/'close') with no request lost on it. setImmediate
   * twice: the first runs on this loop turn's check phase, before that poll.
   */
  #settle(): void {
    if (this.#settling) return;
    this.#settling = true;
    this.#settled++;
    setImmediate(() =>
      setImmediate(() => {
        this.#settling = false;
        if (this.#state === 'ready' && this.#cur === null && this.#drain === null) this.#emit({ type: 'capacity' });
      }),
    );
  }

  /**
   * Read within FRESH_READ_MS, reading all along, and not acknowledging each response at once: that ACK is sent to
   * make an origin known for strays send its held one now, so those connections are always asked.
   */
  #freshlyRead(): boolean {
    return !this.#quickAck && performance.now() - this.#readAt < FRESH_READ_MS;
  }

  #unreadInKernel(): boolean {
    if (this.#fd === -2) this.#fd = socketFd(this.#socket);
    const n = unreadBytes(this.#fd);
    return n !== null && n > 0;
  }

  /** The origin sent what no request of ours asked for: the connection goes, counted under OL_UNSOLICITED_RESPONSE. */
  #unsolicited(when: string, bytes?: Buffer): void {
    this.#tainted = true;
    this.#releaseAfterParse = false;
    const err = new OriginlinkError(
      ErrorCode.UNSOLICITED_RESPONSE,
      'remote',
      `origin ${this.facts.remoteAddress}:${this.facts.remotePort} sent bytes with no request outstanding (${when}); connection closed`,
    );
    const x = this.#cur;
    // Bytes that cannot begin a response, before the request left (an h2c-only server's SETTINGS, sent as it
    // accepts): another protocol, which the next connection speaks too: the request fails as the parser would
    // fail it, not sent and not sent again (it was, each time, until the pool's budget of requeues ran out).
    const alien = bytes !== undefined && x !== null && !x.done && this.served === 1 ? notHttpStart(bytes) : null;
    if (alien !== null && x !== null) {
      x.fail(new OriginlinkError(ErrorCode.MALFORMED_RESPONSE, 'remote', alien, { retrySafe: false, facts: NOT_SENT }));
    } else if (x && !x.done) x.fail(this.#unsent(x, err));
    this.#cur = null;
    this.#teardown(err);
  }

  request(req: ConnRequest): Promise<ConnResponse> {
    // While a dropped body is read out the connection is busy (`active` 1), not unusable. The kernel's receive queue
    // is not asked again here: the pool asked it (isUsable) as it picked this connection, in the same synchronous
    // call, so this second look could only race the same bytes the first did — one ioctl per request, not two.
    if (this.#cur || this.#drain || !this.#open()) {
      return Promise.reject(
        new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', 'connection is not available', {
          retrySafe: true,
          facts: NOT_SENT,
        }),
      );
    }
    let head: ReturnType<typeof serializeRequestHead>;
    try {
      head = serializeRequestHead(req);
    } catch (e) {
      return Promise.reject(
        new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', (e as Error).message, { facts: NOT_SENT }),
      );
    }
    const x = new Exchange(req, this.#wire, this.#opts, this.served > 0, this.#timers);
    this.#cur = x;
    this.served++;
    this.#parser.expect(req.method, this.#upgrading);
    this.#pendingX = x;
    this.#pendingHead = head.head;
    this.#pendingFraming = head.framing;
    this.#pendingDeclared = head.declared;
    atTurnEnd(this.#flusher);
    return x.promise;
  }

  /**
   * One request asking to switch protocols (RFC 9110 §7.8): `req` carries its Upgrade and `Connection: upgrade`.
   * A 101 hands the socket over, with any bytes of the new protocol read with it; any other answer is a response as
   * any other (its body framed and timed as ever), after which the connection closes. Either way it serves no more.
   */
  upgrade(req: ConnRequest): Promise<Switched | { switched: false; response: ConnResponse }> {
    this.#upgrading = true;
    const p = this.request(req);
    this.drain();
    return p.then((response) => {
      if (this.#switched === null) return { switched: false, response };
      return { switched: true, headers: response.headers, socket: this.#socket, head: this.#detach() };
    });
  }

  /** The socket leaves this connection (after a 101): its listeners go, its reads go back to its stream. */
  #detach(): Buffer {
    const s = this.#socket;
    s.off('end', this.#onEnd);
    s.off('error', this.#onError);
    s.off('close', this.#onClose);
    this.#state = 'closed';
    this.#timers.clear();
    this.#emit({ type: 'close', error: null });
    if (s.destroyed)
      throw new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'origin closed the connection right after its 101');
    return this.#switched as Buffer;
  }

  /** This turn is over: the waiting request leaves (unless the connection closed meanwhile: its close failed it). */
  #flush(): void {
    const x = this.#pendingX;
    if (x === null) return;
    if (this.#state !== 'closed' && !x.done && this.#firstAfterHandshake() && this.#unreadInKernel()) {
      // What the server sent after its handshake arrived since the pool picked this connection: read first (the next
      // poll), then the request leaves from that turn's check phase. Tickets change nothing; an alert refusing our
      // certificate fails the request unsent, where a request written onto the connection the server is closing drew
      // its RST, which drops the alert still queued for us (OL_SOCKET_RESET instead of OL_CLIENT_CERT_REFUSED).
      this.#settled++;
      atTurnEnd(this.#flusher); // asked from within the turn's end: the next one's
      return;
    }
    const head = this.#pendingHead;
    const framing = this.#pendingFraming;
    const declared = this.#pendingDeclared;
    this.#dropPending();
    if (this.#state === 'closed' || x.done) return;
    this.#write(x, head, framing, declared);
  }

  /** The connection's first request waits (#flush), on TLS, within the turns a fresh connection may sit out. */
  #firstAfterHandshake(): boolean {
    return (
      this.served === 1 && (this.#socket as Partial<tls.TLSSocket>).encrypted === true && this.#settled < SETTLE_MAX
    );
  }

  #dropPending(): void {
    this.#pendingX = null;
    this.#pendingHead = '';
  }

  /**
   * `err` for `x`, retry-safe when `x` had not been written yet (its head waiting for the turn's end): nothing of it
   * reached the origin, whatever the method (the policy's retrySafe, agent/policy.ts).
   */
  #unsent(x: Exchange, err: OriginlinkError): OriginlinkError {
    if (this.#pendingX !== x) return err;
    this.#dropPending();
    return err.with({ retrySafe: true });
  }

  #write(x: Exchange, head: string, framing: 'none' | 'length' | 'chunked', declared: number): void {
    const s = this.#socket;
    const body = x.req.body;
    const len = knownLength(body);
    if (len !== null) {
      // Replayable body: one write, head and body together.
      // Header bytes are latin1, as in node:http and undici (a one-byte string is written without transcoding).
      if (len === 0) s.write(head, 'latin1');
      else {
        s.cork();
        s.write(head, 'latin1');
        s.write(typeof body === 'string' ? body : (body as Uint8Array));
        s.uncork();
      }
      x.sent();
      return;
    }
    s.write(head, 'latin1');
    const chunked = framing === 'chunked';
    // A streamed body under the caller's Content-Length must come to it exactly: a byte past it would be read as the
    // start of another request (RFC 9112 §6.3, request smuggling), one short leaves the origin waiting. Either way the
    // request fails and the connection goes, with nothing past the length written.
    let left = declared;
    const wrongLength = (what: string): false => {
      const err = new OriginlinkError(
        ErrorCode.INVALID_ARGUMENT,
        'local',
        `request body ${what} its Content-Length (${declared})`,
        { details: { field: 'headers.content-length' } },
      );
      this.#teardown(err);
      x.fail(err);
      return false;
    };
    void x
      .pump({
        write: (c) => {
          this.#uploadWatch?.refresh();
          if (declared >= 0) {
            if (c.length > left) return wrongLength('is longer than');
            left -= c.length;
          }
          return s.write(chunked ? chunkedFrame(c) : c);
        },
        room: () => waitDrain(s).then(yes),
        end: () => {
          if (chunked) s.write(CHUNKED_END);
          else if (left > 0) wrongLength('ended short of');
        },
      })
      .then(() => {
        this.#stopUploadWatch();
        if (!x.done || this.#cur !== x) return;
        // The response may have completed first (early response): only now may the connection be reused —
        // and only when the whole request left; a body cut after the response leaves the origin waiting for the rest.
        if (x.facts.requestSent) this.#release();
        else this.#teardown(null);
      });
  }

  /**
   * The answer came while the request body still leaves (an origin's early 413): the exchange's timers are over, so
   * the rest of the body gets its own idle deadline — an origin that takes none of it for bodyTimeoutMs loses the
   * connection, which can carry nothing else until the body is out (RFC 9112 §9.5). Was: busy for ever, a pool slot
   * gone.
   */
  #watchUpload(): void {
    this.#stopUploadWatch();
    const ms = this.#opts.bodyTimeoutMs;
    this.#uploadWatch = setTimeout(() => {
      this.#uploadWatch = null;
      this.#teardown(
        new OriginlinkError(
          ErrorCode.BODY_TIMEOUT,
          'remote',
          `origin stopped reading the request body after its answer (${ms} ms)`,
        ),
      );
    }, ms);
    this.#uploadWatch.unref();
  }

  #stopUploadWatch(): void {
    if (this.#uploadWatch) clearTimeout(this.#uploadWatch);
    this.#uploadWatch = null;
  }

  #onData(d: Buffer): void {
    this.#readAt = performance.now();
    // While a dropped body is read out (#startDrain) there is no exchange: the bytes go to the parser alone.
    const x = this.#drain ? null : this.#cur;
    if (!this.#drain) {
      if (!x || x.done || this.#pendingX === x) {
        // RFC 9112 §9.3: a server has no reason to send while idle (or after the response, or before our request
        // left: its head waits for the turn's end); never reuse.
        this.#unsolicited(x === null || x.done ? 'while idle' : 'before the request was sent', d);
        return;
      }
      x.started();
    }
    let extra: Buffer | null = null;
    this.#parsing = true;
    try {
      extra = this.#parser.execute(d);
    } catch (e) {
      this.#parsing = false;
      this.#releaseAfterParse = false;
      if (!x) {
        this.#teardown(null); // a malformed rest of a dropped body
        return;
      }
      const pe = e as H1ParseError;
      const code = pe.kind === 'too-large' ? ErrorCode.HEADERS_TOO_LARGE : ErrorCode.MALFORMED_RESPONSE;
      x.fail(new OriginlinkError(code, 'remote', pe.message ?? String(e), { cause: e }));
      return;
    }
    this.#parsing = false;
    if (this.#switched !== null) {
      // A 101 (upgrade()): what follows is the new protocol's, not ours to read.
      this.#switched = extra ?? Buffer.alloc(0);
      this.#releaseAfterParse = false;
      this.#reads.release();
      this.#socket.pause();
      return;
    }
    if (extra && extra.length > 0) {
      // Bytes after a complete response (a body on a HEAD/204/304 answer, more than its length, anything after the
      // last chunk): RFC 9112 §9.3, unsolicited — the connection is never reused.
      this.#unsolicited('after a complete response');
      return;
    }
    if (this.#releaseAfterParse) {
      this.#releaseAfterParse = false;
      this.#release();
    }
  }

  #onHead(h: H1Head): void {
    const x = this.#cur;
    if (!x) return;
    if (h.status === 101) this.#switched = EMPTY;
    if (h.keepAliveTimeoutMs !== null) {
      this.facts.keepAliveHintMs = h.keepAliveTimeoutMs;
      this.#emit({ type: 'keepalive-hint', timeoutMs: h.keepAliveTimeoutMs });
    }
    if (!h.keepAlive && this.#state === 'ready') {
      this.#state = 'draining';
      this.#emit({ type: 'goaway', lastStreamId: null });
    }
    const sock = this.#socket;
    // A reader that drops the body ends the request (wire.cancel: the rest is drained or the connection goes).
    // Without this hook the socket stayed paused for the destroyed body, the connection busy for ever.
    const makeBody = (): PushBody =>
      new PushBody(
        () => sock.resume(),
        () => sock.pause(),
        () => x.readerGone(),
        x.req.responseBufferBytes,
      );
    x.head(
      h.status,
      h.headers,
      makeBody,
      x.req.method === 'HEAD' || h.status === 204 || h.status === 304,
      undefined,
      h.contentLength,
      h.reason,
    );
  }

  /**
   * The request `x` was given up by our side (its reader or caller left, OL_ABORTED local) after it was
   * sent: if the rest of its response is small and the connection may carry another, read that rest out
   * instead of closing (false: close).
   */
  #startDrain(x: Exchange, err: OriginlinkError): boolean {
    if (err.code !== ErrorCode.ABORTED || err.side !== 'local' || !x.facts.requestSent) return false;
    if (this.#state !== 'ready' || this.#tainted || !this.#parser.keepAlive) return false;
    const left = this.#parser.bodyLeft;
    if (left === null || (left !== 'chunked' && left > DRAIN_MAX_BYTES)) return false;
    const ms = Math.min(DRAIN_MAX_MS, this.#opts.bodyTimeoutMs);
    this.#drain = { budget: DRAIN_MAX_BYTES, timer: setTimeout(() => this.#endDrain(false), ms) };
    this.#socket.resume(); // the dropped reader may have left it paused
    return true;
  }

  #drained(n: number): void {
    const d = this.#drain;
    if (d && (d.budget -= n) < 0) this.#endDrain(false);
  }

  /** The drained body ended (`done`: the connection serves again) or took too much or too long (it closes). */
  #endDrain(done: boolean): void {
    if (!this.#drain) return;
    clearTimeout(this.#drain.timer);
    this.#drain = null;
    if (done) this.#release();
    else this.#teardown(null);
  }

  #release(): void {
    if (this.#switched !== null) return; // the socket is the caller's (upgrade())
    // A response that completed inside a parse: the connection is handed back only once the parse is over and left
    // nothing behind. Handed back at once, the pool's next request reset the parser, which then read the rest of this
    // read — another response's bytes, or an origin's injection — as that request's response.
    if (this.#parsing) {
      this.#releaseAfterParse = true;
      return;
    }
    this.#cur = null;
    this.lastActiveAt = turnNow();
    // A body that ended while its reader held the socket paused never asks to resume (an ended Readable is not read
    // again): the next response on this connection would never be read. The message is over; read on.
    if (this.#socket.isPaused()) {
      this.#readAt = Number.NEGATIVE_INFINITY; // bytes may have waited in the kernel all that time
      this.#socket.resume();
    }
    if (this.#state === 'ready' && this.#parser.keepAlive) {
      // Our ACK for the response leaves now: an origin's Nagle-held stray write comes while we are idle (and is
      // caught: #onData, isUsable), not with the ACK on our next request, ahead of that request's answer.
      if (this.#quickAck) {
        if (this.#fd === -2) this.#fd = socketFd(this.#socket);
        quickAck(this.#fd);
      }
      this.#emit({ type: 'capacity' });
    } else {
      this.#state = 'draining';
      this.#teardown(null);
    }
  }

  #onError = (e: Error): void => {
    this.destroy(socketFailure(e, handshakeUnconfirmed(this.#socket)));
  };

  #onEnd = (): void => {
    const res = this.#parser.eof();
    if (res === 'complete') return; // read-until-close body ended; onComplete ran
    const x = this.#cur;
    if (x && !x.done) {
      x.fail(
        new OriginlinkError(
          ErrorCode.SOCKET_CLOSED,
          'remote',
          // The parser waits for a head from the request's start: 'truncated' with no byte is none begun.
          res === 'truncated' && this.#parser.receivedAny
            ? 'connection closed in the middle of the response'
            : 'connection closed before the response',
        ),
      );
    } else {
      this.#tainted = true;
    }
    this.#socket.end();
  };

  #onClose = (): void => {
    const x = this.#cur;
    if (x && !x.done) {
      x.fail(this.#unsent(x, new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'remote', 'connection closed')));
      return;
    }
    this.#cur = null;
    this.#teardown(null);
  };

  drain(): void {
    this.#closing = true;
    if (this.#state !== 'ready') return;
    this.#state = 'draining';
    if (!this.#cur) this.#teardown(null);
  }

  destroy(error?: Error): void {
    const x = this.#cur;
    if (x && !x.done) {
      x.fail(
        this.#unsent(
          x,
          error instanceof OriginlinkError
            ? error
            : new OriginlinkError(ErrorCode.SOCKET_CLOSED, 'local', error?.message ?? 'connection destroyed', {
                cause: error,
              }),
        ),
      );
      return;
    }
    this.#cur = null;
    this.#teardown(error ?? null);
  }

  #teardown(error: Error | null): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#timers.clear();
    this.#stopUploadWatch();
    if (this.#drain) {
      clearTimeout(this.#drain.timer);
      this.#drain = null;
    }
    this.#socket.destroy();
    this.#emit({ type: 'close', error });
  }
}
