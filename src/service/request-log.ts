/**
 * The per-request log line (`logging.requests`), written without pino's
 * per-call work: the line pino would write for `log.info(fields, 'request')`
 * — level, time, the logger's bindings, the fields in order, `msg` — made
 * here and handed to the logger's own destination (through `log.info` with
 * object spreads a logged request cost ~60 µs more than an unlogged one).
 *
 * Lines wait and leave together, in one write: at the end of the event-loop
 * turn (`logging.flushMs` 0), or up to `flushMs`, or until MAX_PENDING
 * records wait (nginx's `access_log … buffer= flush=`). A line pino writes
 * meanwhile (a warning) may come before them; each carries its time. What
 * waits is the request's RequestRecord, not its text: the lines are made at
 * the flush, in one loop. Measured on the proxy rig (h1 front, h2 upstream,
 * bench/RESULTS.md): with a line made per request and a write per turn, a
 * logged request cost ~16 µs more than an unlogged one — the line ~7 µs (a
 * generic writer: for-in over an object whose shape grew along the request,
 * its loads through V8's megamorphic path; code and data cold amid the
 * request's other work), the write per turn (an `fs.write` on the thread
 * pool and its callback) most of the rest. Now ~5–6 µs.
 *
 * A record has one shape, written in a fixed order (the order in which the
 * forwarder learns its fields, as a pino object built along the way had
 * them); strings JSON-escaped (a path or a reason may carry anything),
 * `undefined` left out, numbers that are not finite written as null — as pino.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

/** pino's level number for `info`. */
const INFO = 30;
/** Records waiting for their lines that make them leave at once, whatever `flushMs` says. */
export const MAX_PENDING = 256;

export class RequestLog {
  #log: Logger;
  #stream: DestinationStream;
  /** `,"svc":"originlink"` …: the logger's bindings as pino writes them after `time`. */
  #bindings: string;
  /**
   * Join the lines: the stream is pino's own destination (SonicBoom: any amount of text per write, one
   * `fs.write` each). A plain `{ write }` stream gets one line per call, as from pino itself.
   */
  #batch: boolean;
  /**
   * The records waiting for their lines. Lines are made at the flush, all in one loop: made one per
   * request, amid the rest of the request's work, a line cost ~3 µs to build and ~2 µs to copy out on
   * the proxy rig (cold code and data), several times what the same code costs when it runs hot; and a
   * line kept as a string until the flush is a tree of a few dozen pieces the young-generation
   * collector copies. A record is one small object.
   */
  #pending: RequestRecord[] = [];
  /** The flush to come: at the turn's end (flushMs 0) or on a timer; null when nothing waits. */
  #dueImmediate: NodeJS.Immediate | null = null;
  #dueTimer: NodeJS.Timeout | null = null;

  constructor(log: Logger) {
    this.#log = log;
    const own = log as unknown as Record<symbol, unknown>;
    this.#stream = own[pino.symbols.streamSym] as DestinationStream;
    // pino's own rendering of its bindings (`bindings()` would leave out pid and hostname).
    this.#bindings = own[pino.symbols.chindingsSym] as string;
    this.#batch = typeof (this.#stream as { flushSync?: unknown }).flushSync === 'function';
  }

  /**
   * One line for `r` (which is not changed after this call), timed now. It leaves at the end of this
   * event-loop turn (`flushMs` 0) or within `flushMs` with the lines that follow it, at once when
   * MAX_PENDING records wait.
   */
  write(r: RequestRecord, flushMs = 0): void {
    if (!this.#log.isLevelEnabled('info')) return;
    r.time = Date.now();
    if (!this.#batch) {
      this.#stream.write(this.#line(r));
      return;
    }
    const n = this.#pending.push(r);
    if (n >= MAX_PENDING) this.#flush();
    else if (n === 1) {
      if (flushMs > 0) this.#dueTimer = setTimeout(this.#flush, flushMs).unref();
      else this.#dueImmediate = setImmediate(this.#flush);
    }
  }

  /** Hand the waiting lines to the stream now (shutdown). */
  flush(): void {
    this.#flush();
  }

  #line(r: RequestRecord): string {
    return `${r.json(`{"level":${INFO},"time":${r.time}${this.#bindings}`)},"msg":"request"}\n`;
  }

  #flush = (): void => {
    if (this.#dueTimer !== null) clearTimeout(this.#dueTimer);
    if (this.#dueImmediate !== null) clearImmediate(this.#dueImmediate);
    this.#dueTimer = this.#dueImmediate = null;
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    let text = '';
    for (let i = 0; i < pending.length; i++) text += this.#line(pending[i]!);
    this.#stream.write(text);
  };
}

/** Printable ASCII other than `"` and `\\`: written between quotes as it is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const str = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));
/** pino writes a number through JSON.stringify: NaN and the infinities as null. */
const num = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

/** The fields of one request's log line, in the order they are written (docs/config.md `logging.requests`). */
export class RequestRecord {
  /** Milliseconds since the epoch when the line was written (RequestLog sets it). */
  time = 0;
  route: number | undefined = undefined;
  origin: string | undefined = undefined;
  /** Time spent waiting for a turn under `limits.maxUpstreamPerClient`. */
  clientWaitMs: number | undefined = undefined;
  upstream: string | undefined = undefined;
  protocol: string | undefined = undefined;
  reused: boolean | undefined = undefined;
  attempts: number | undefined = undefined;
  queueMs: number | undefined = undefined;
  ttfbMs: number | undefined = undefined;
  status = 0;
  totalMs = 0;
  /** The protocol of an Upgrade or extended CONNECT tunnel. */
  tunnel: string | undefined = undefined;
  bytes: number | undefined = undefined;
  error: string | undefined = undefined;
  reason: string | undefined = undefined;
  /** The origin's status when the response failed after its head. */
  upstreamStatus: number | undefined = undefined;

  constructor(
    readonly method: string,
    readonly path: string,
    /** The front's HTTP version. */
    readonly client: string,
    readonly listener: string,
    readonly remote: string,
  ) {}

  /** `head` followed by this record's fields as JSON members (`,"name":value` each). */
  json(head: string): string {
    let s = `${head},"method":${str(this.method)},"path":${str(this.path)},"client":${str(this.client)},"listener":${str(this.listener)},"remote":${str(this.remote)}`;
    if (this.route !== undefined) s += `,"route":${num(this.route)}`;
    if (this.origin !== undefined) s += `,"origin":${str(this.origin)}`;
    if (this.clientWaitMs !== undefined) s += `,"clientWaitMs":${num(this.clientWaitMs)}`;
    if (this.upstream !== undefined) s += `,"upstream":${str(this.upstream)}`;
    if (this.protocol !== undefined) s += `,"protocol":${str(this.protocol)}`;
    if (this.reused !== undefined) s += `,"reused":${this.reused}`;
    if (this.attempts !== undefined) s += `,"attempts":${num(this.attempts)}`;
    if (this.queueMs !== undefined) s += `,"queueMs":${num(this.queueMs)}`;
    if (this.ttfbMs !== undefined) s += `,"ttfbMs":${num(this.ttfbMs)}`;
    s += `,"status":${num(this.status)},"totalMs":${num(this.totalMs)}`;
    if (this.tunnel !== undefined) s += `,"tunnel":${str(this.tunnel)}`;
    if (this.bytes !== undefined) s += `,"bytes":${num(this.bytes)}`;
    if (this.error !== undefined) s += `,"error":${str(this.error)}`;
    if (this.reason !== undefined) s += `,"reason":${str(this.reason)}`;
    if (this.upstreamStatus !== undefined) s += `,"upstreamStatus":${num(this.upstreamStatus)}`;
    return s;
  }
}
