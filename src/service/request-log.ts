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
  /** The start of a line up to the bindings, for the time it was made for. */
  #lastTime = -1;
  #head = '';

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
    // Lines written together mostly share their millisecond: its text is made once.
    if (r.time !== this.#lastTime) {
      this.#lastTime = r.time;
      this.#head = `{"level":${INFO},"time":${r.time}${this.#bindings}`;
    }
    return `${r.json(this.#head)},"msg":"request"}\n`;
  }

  #flush = (): void => {
    if (this.#dueTimer !== null) clearTimeout(this.#dueTimer);
    if (this.#dueImmediate !== null) clearImmediate(this.#dueImmediate);
    this.#dueTimer = this.#dueImmediate = null;
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    // Joined, not concatenated: one flat string, where `+=` leaves a rope of thousands of pieces that the
    // stream's byte count and the write then walk and flatten (a fifth of the log's cost, measured).
    const lines = new Array<string>(pending.length);
    for (let i = 0; i < pending.length; i++) lines[i] = this.#line(pending[i]!);
    this.#stream.write(lines.join(''));
  };
}

/** Printable ASCII other than `"` and `\\`: written between quotes as it is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
export const jsonString = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));

/**
 * The quoted form of the fields that take few values (method, listener, origin, upstream, protocol…),
 * remembered: a lookup instead of a scan and a new string per line. Bounded: emptied when full.
 */
const QUOTED_MAX = 256;
const quoted = new Map<string, string>();
const strFew = (s: string): string => {
  let q = quoted.get(s);
  if (q === undefined) {
    if (quoted.size >= QUOTED_MAX) quoted.clear();
    q = jsonString(s);
    quoted.set(s, q);
  }
  return q;
};

/** Digits of 0…999 as a fraction's three places with the trailing zeros left out ('5' for 500, '05' for 50). */
const FRACTION: readonly string[] = Array.from({ length: 1000 }, (_, i) =>
  String(i).padStart(3, '0').replace(/0+$/, ''),
);

/**
 * A number as JSON.stringify writes it (pino does): NaN and the infinities as null. The forwarder's times
 * are milliseconds rounded to three places; V8's shortest-form conversion of such a double is what this
 * writes from its integer thousandths, several times cheaper (the log's largest cost before, measured):
 * below 1e12 the decimal `whole.fraction` is the one shortest string that reads back as the same double
 * (two decimals at least 0.001 apart cannot both lie within half a unit in the last place of it, below
 * 0.0002 there), and JSON writes no exponent for them. Anything else goes to String().
 */
export function jsonNumber(n: number): string {
  if ((n | 0) === n) return String(n); // an int32 (and -0 → '0', as JSON): V8's small-integer path
  if (!Number.isFinite(n)) return 'null';
  if (!(n > -1e12 && n < 1e12)) return String(n); // |n| < 2^40: one unit in the last place is < 0.001 / 4
  const t = Math.round(n * 1000);
  if (t / 1000 !== n) return String(n);
  const a = t < 0 ? -t : t;
  const frac = a % 1000;
  const whole = (a - frac) / 1000;
  const digits = frac === 0 ? String(whole) : `${whole}.${FRACTION[frac]}`;
  return t < 0 ? `-${digits}` : digits;
}

/**
 * The last text made for the members that lines of a batch mostly share, with the values it was made of
 * (compared by value; the text is a pure function of them, so one memo serves every RequestLog).
 */
const front = { client: '', listener: '', text: ',"client":"","listener":"","remote":' }; // text always made of the values beside it
const middle: {
  route: number | undefined;
  origin: string | undefined;
  upstream: string | undefined;
  protocol: string | undefined;
  reused: boolean | undefined;
  attempts: number | undefined;
  text: string;
} = {
  route: -1,
  origin: undefined,
  upstream: undefined,
  protocol: undefined,
  reused: undefined,
  attempts: undefined,
  text: ',"route":-1',
};

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
  /** An origin group sent a second attempt to another endpoint (`hedge`); `upstream` is the one that answered. */
  hedged: true | undefined = undefined;
  /** It shared another request's origin request (`collapse`). */
  collapsed: true | undefined = undefined;
  /** The client certificate its front verified (mutual TLS): subject and SHA-256 fingerprint. */
  clientCert: string | undefined = undefined;
  clientCertSha256: string | undefined = undefined;

  constructor(
    readonly method: string,
    readonly path: string,
    /** The front's HTTP version. */
    readonly client: string,
    readonly listener: string,
    readonly remote: string,
  ) {}

  /** The members from `route` to `attempts` (`clientWaitMs` among them). */
  #routeToAttempts(): string {
    let s = '';
    if (this.route !== undefined) s += `,"route":${jsonNumber(this.route)}`;
    if (this.origin !== undefined) s += `,"origin":${strFew(this.origin)}`;
    if (this.clientWaitMs !== undefined) s += `,"clientWaitMs":${jsonNumber(this.clientWaitMs)}`;
    if (this.upstream !== undefined) s += `,"upstream":${strFew(this.upstream)}`;
    if (this.protocol !== undefined) s += `,"protocol":${strFew(this.protocol)}`;
    if (this.reused !== undefined) s += `,"reused":${this.reused}`;
    if (this.attempts !== undefined) s += `,"attempts":${jsonNumber(this.attempts)}`;
    return s;
  }

  /** `head` followed by this record's fields as JSON members (`,"name":value` each). */
  json(head: string): string {
    if (this.client !== front.client || this.listener !== front.listener) {
      front.client = this.client;
      front.listener = this.listener;
      front.text = `,"client":${strFew(this.client)},"listener":${strFew(this.listener)},"remote":`;
    }
    let s = `${head},"method":${strFew(this.method)},"path":${jsonString(this.path)}${front.text}${jsonString(this.remote)}`;
    if (this.clientWaitMs === undefined) {
      // Route to attempts: the same text for most lines of a batch, made again only when one of them changes.
      const m = middle;
      if (
        this.route !== m.route ||
        this.origin !== m.origin ||
        this.upstream !== m.upstream ||
        this.protocol !== m.protocol ||
        this.reused !== m.reused ||
        this.attempts !== m.attempts
      ) {
        m.route = this.route;
        m.origin = this.origin;
        m.upstream = this.upstream;
        m.protocol = this.protocol;
        m.reused = this.reused;
        m.attempts = this.attempts;
        m.text = this.#routeToAttempts();
      }
      s += m.text;
    } else {
      s += this.#routeToAttempts();
    }
    if (this.queueMs !== undefined) s += `,"queueMs":${jsonNumber(this.queueMs)}`;
    if (this.ttfbMs !== undefined) s += `,"ttfbMs":${jsonNumber(this.ttfbMs)}`;
    s += `,"status":${jsonNumber(this.status)},"totalMs":${jsonNumber(this.totalMs)}`;
    if (this.tunnel !== undefined) s += `,"tunnel":${strFew(this.tunnel)}`;
    if (this.bytes !== undefined) s += `,"bytes":${jsonNumber(this.bytes)}`;
    if (this.error !== undefined) s += `,"error":${strFew(this.error)}`;
    if (this.reason !== undefined) s += `,"reason":${jsonString(this.reason)}`;
    if (this.upstreamStatus !== undefined) s += `,"upstreamStatus":${jsonNumber(this.upstreamStatus)}`;
    if (this.hedged !== undefined) s += ',"hedged":true';
    if (this.collapsed !== undefined) s += ',"collapsed":true';
    if (this.clientCert !== undefined)
      s += `,"clientCert":${jsonString(this.clientCert)},"clientCertSha256":${strFew(this.clientCertSha256 ?? '')}`;
    return s;
  }
}
