/**
 * HTTP/1.1 field lines (RFC 9112 §5) and the parse error both parsers throw.
 */
import type { HeaderList } from '../http/types.js';

/**
 * Why a message could not be parsed. A server answers `malformed` with 400,
 * `too-large` with 431 (header section) or 413, `unsupported` with 501
 * (a transfer coding we do not implement, RFC 9112 §6.1) and `version` with
 * 505, then closes (the framing of what follows is unknown).
 */
export class H1ParseError extends Error {
  /**
   * `target-too-long`: a request line longer than the whole head's limit (414, RFC 9112 §3); `too-large`: the head
   * (431).
   */
  readonly kind: 'malformed' | 'too-large' | 'target-too-long' | 'unsupported' | 'version';
  constructor(kind: H1ParseError['kind'], message: string) {
    super(message);
    this.name = 'H1ParseError';
    this.kind = kind;
  }
}

import { BAD_FIELD_VALUE_RE, TOKEN_RE, trimOws } from '../http/fields.js';

export { TOKEN_RE, trimOws };

/**
 * The codings of a Transfer-Encoding value, lower-case. RFC 9110 §5.6.1 would have empty list elements
 * ignored, but parsers disagree on `chunked,` (llhttp reads its final coding as empty, not chunked): the
 * message's framing hangs on it (RFC 9112 §6.1, §6.3), so an empty element is refused, and so is a
 * coding that is not a token.
 */
export function transferCodings(te: string): string[] {
  const out = te.split(',').map((s) => trimOws(s).toLowerCase());
  if (out.includes('')) throw new H1ParseError('malformed', 'empty element in Transfer-Encoding');
  // RFC 9112 §7: a transfer-coding is a token (parameters, which no registered coding takes, are refused too).
  for (const c of out)
    if (!TOKEN_RE.test(c))
      throw new H1ParseError('malformed', `invalid transfer coding ${JSON.stringify(c.slice(0, 40))}`);
  return out;
}

/** Connection options (RFC 9110 §7.6.1) that HTTP/1.1 framing acts on, as bits of `connectionOptions`. */
export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_UPGRADE = 4;

/**
 * The options named by a message's Connection field values (its lines joined with ','), as CONN_* bits;
 * others (field names to drop, RFC 9110 §7.6.1) are the forwarder's business (http/fields.ts). The usual
 * single option costs a lower-casing and a comparison, no list.
 */
export function connectionOptions(value: string): number {
  if (value.indexOf(',') < 0) return optionBit(trimOws(value).toLowerCase());
  let bits = 0;
  for (const part of value.split(',')) bits |= optionBit(trimOws(part).toLowerCase());
  return bits;
}

function optionBit(t: string): number {
  return t === 'close' ? CONN_CLOSE : t === 'keep-alive' ? CONN_KEEP_ALIVE : t === 'upgrade' ? CONN_UPGRADE : 0;
}

/**
 * Field names as they come on the wire (any case) → their lower-case form, for names already checked to
 * be tokens: most lines of most messages carry one of a few dozen names, which then cost a comparison in
 * place instead of a string, a token check and a lower-casing copy each. Kept by length and the first byte's
 * low five bits (a letter's two cases share them), so a lookup compares against a few spellings. Seeded with
 * the common names in the two spellings peers send; it learns up to LEARNED_NAMES more and then stops growing
 * (a peer inventing names cannot make it grow without bound, nor push the common ones out). An array indexed
 * by length and those bits, and a comparison by char codes: a Map and String.prototype.startsWith made this
 * ~15 % slower. 2,048 slots: the whole first byte would make eight times as many.
 */
const MAX_TABLE_NAME = 64;
type NameTable = Array<Array<readonly [wire: string, lower: string]> | undefined>;
/** Made and seeded at the first name looked up (seedNames): an import that parses no HTTP/1.1 pays nothing for it. */
let NAMES: NameTable | null = null;
const LEARNED_NAMES = 256;
let learned = 0;
/** Where the spellings of a name of this length and first byte are kept (lengths under MAX_TABLE_NAME). */
const nameKey = (length: number, first: number): number => length * 32 + (first & 31);
function remember(names: NameTable, wire: string, lower: string): void {
  if (wire.length >= MAX_TABLE_NAME) return;
  const k = nameKey(wire.length, wire.charCodeAt(0));
  const list = names[k];
  if (!list) names[k] = [[wire, lower]];
  else if (!list.some(([w]) => w === wire)) list.push([wire, lower]);
}
const SEED_NAMES = [
  'accept',
  'accept-encoding',
  'accept-language',
  'accept-ranges',
  'access-control-allow-origin',
  'age',
  'alt-svc',
  'authorization',
  'cache-control',
  'connection',
  'content-disposition',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-range',
  'content-security-policy',
  'content-type',
  'cookie',
  'date',
  'etag',
  'expect',
  'expires',
  'forwarded',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'keep-alive',
  'last-modified',
  'link',
  'location',
  'origin',
  'pragma',
  'range',
  'referer',
  'retry-after',
  'server',
  'set-cookie',
  'strict-transport-security',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'vary',
  'via',
  'www-authenticate',
  'x-content-type-options',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-frame-options',
  'x-request-id',
  'traceparent',
  'tracestate',
  'sec-fetch-site',
  'sec-fetch-mode',
  'sec-fetch-dest',
  'sec-fetch-user',
  'upgrade-insecure-requests',
];

function seedNames(): NameTable {
  const names: NameTable = new Array(MAX_TABLE_NAME * 32);
  for (const n of SEED_NAMES) {
    remember(names, n, n);
    remember(
      names,
      n.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase()),
      n,
    );
  }
  remember(names, 'ETag', 'etag');
  remember(names, 'WWW-Authenticate', 'www-authenticate');
  remember(names, 'TE', 'te');
  return names;
}

/**
 * A copy of `s` that does not keep the string it was sliced from alive. V8 makes a slice of 13 characters or
 * more a view of its parent; a concatenation, once flattened by the slice taken of it, is a new string of its
 * own, so the view returned holds just that (an engine that copies slices anyway only copies twice).
 */
function detached(s: string): string {
  return s.length < 13 ? s : `${s}\n`.slice(0, -1);
}

/** The lower-case form of the field name `text[start..end)`; throws H1ParseError when it is not a token. */
function fieldName(text: string, start: number, end: number): string {
  const len = end - start;
  const first = text.charCodeAt(start);
  const names = NAMES ?? (NAMES = seedNames());
  const list = len < MAX_TABLE_NAME ? names[nameKey(len, first)] : undefined;
  if (list !== undefined) {
    next: for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      const w = e[0];
      for (let k = 0; k < len; k++) if (text.charCodeAt(start + k) !== w.charCodeAt(k)) continue next;
      return e[1];
    }
  }
  // Its own string: a name learned by the table, kept by a FieldMemory or handed out lower-case already (toLowerCase
  // returns the same string) must not keep the head it was sliced from alive.
  const raw = detached(text.slice(start, end));
  // RFC 9112 §5.1: no whitespace between the field name and the colon (a 400 for a request).
  if (!TOKEN_RE.test(raw))
    throw new H1ParseError('malformed', `invalid header name ${JSON.stringify(raw.slice(0, 60))}`);
  const lower = raw.toLowerCase();
  // Only names the table can hold use up its learning budget.
  if (learned < LEARNED_NAMES && raw.length < MAX_TABLE_NAME) {
    learned++;
    remember(names, raw, lower);
  }
  return lower;
}

/** A head's first line (start line) and the offset where its field lines begin. */
export function firstLine(text: string): [line: string, fieldsFrom: number] {
  const eol = text.indexOf('\r\n');
  return eol < 0 ? [text, text.length] : [text.slice(0, eol), eol + 2];
}

/** Lines of `text` from `from` on (each but the last ends with CRLF), counted up to `max + 1`. */
function countLines(text: string, from: number, max: number): number {
  let n = 1;
  for (let i = text.indexOf('\r\n', from); i >= 0 && n <= max; i = text.indexOf('\r\n', i + 2)) n++;
  return n;
}

/** The field lines a FieldMemory keeps (the first ones of a head), the longest line it keeps, the longest head. */
const MEMORY_LINES = 16;
const MEMORY_LINE_MAX = 256;
const MEMORY_HEAD_MAX = 4096;

/**
 * The field lines of the last head one parser read, for the next head of the same connection: most heads on
 * a connection repeat most lines of the one before — a browser's User-Agent, Accept and Cookie lines, an
 * origin's Server, Content-Type and Cache-Control — the repetition HPACK's dynamic table (RFC 7541 §2.3.2)
 * exploits on HTTP/2. A line equal to the one remembered at the same position is read as the same name and
 * value (a new pair of the same strings) without its name lookup, trimming and value check: the remembered
 * line passed them, and equal text passes them again. Lines are kept as copies of their own (a slice would
 * keep its whole head alive), at most MEMORY_LINES of at most MEMORY_LINE_MAX characters per parser; the last
 * head itself too when all its lines are and it is at most MEMORY_HEAD_MAX characters (an equal head is then one
 * comparison), and its length (where the next head most likely ends).
 */
export class FieldMemory<Made extends object = object> {
  readonly #lines: Array<string | undefined> = [];
  readonly #names: string[] = [];
  readonly #values: string[] = [];
  /**
   * The last head (as splitHead gave it: its own string, no larger one behind it) when every one of its field
   * lines is remembered and it is at most MEMORY_HEAD_MAX characters, else null; and its number of lines.
   */
  #head: string | null = null;
  get head(): string | null {
    return this.#head;
  }
  #count = 0;
  /** Bytes of the last head with its final CRLF CRLF: where the connection's next head most likely ends (splitHead). */
  headBytes = 0;
  /**
   * What the parser made of the last head besides its field lines (start line, framing), which the same text
   * makes again: given by the parser once that head is read (`keep`), dropped with the head.
   */
  #made: Made | null = null;
  get made(): Made | null {
    return this.#made;
  }

  /**
   * Keep what the parser made of the head just read — only while that head is kept: its strings are slices of
   * the head's text, which then holds nothing more (a head not kept would be kept alive through them).
   */
  keep(made: Made): void {
    this.#made = this.#head !== null ? made : null;
  }

  /** Lines recalled so far (for tests and diagnostics). */
  recalled = 0;

  /**
   * The field lines of `text` when it is the last head again (one comparison), at most `maxCount` of them; else
   * null, and the last head is forgotten (the lines read next replace its lines, even when a later one throws).
   */
  again(text: string, maxCount: number): HeaderList | null {
    if (this.#head !== text || this.#count > maxCount) {
      this.#head = null;
      this.#made = null;
      return null;
    }
    const out: HeaderList = [];
    for (let i = 0; i < this.#count; i++) out.push(this.pair(i));
    return out;
  }

  /** The head `text` was read, with `count` field lines; `kept`: every one of them is remembered. */
  read(text: string, count: number, kept: boolean): void {
    this.headBytes = text.length + 4;
    this.#made = null;
    this.#head = kept && text.length <= MEMORY_HEAD_MAX ? text : null;
    this.#count = count;
  }

  /**
   * Where line `i` of a head that starts at `text[pos]` ends (its CRLF, or the end of `text`) when it is the
   * line remembered at `i`, else -1.
   */
  recall(i: number, text: string, pos: number): number {
    const line = this.#lines[i];
    if (line === undefined) return -1;
    const end = pos + line.length;
    const len = text.length;
    if (end > len || (end < len && (text.charCodeAt(end) !== 0x0d || text.charCodeAt(end + 1) !== 0x0a))) return -1;
    return text.substring(pos, end) === line ? end : -1;
  }

  /**
   * A new pair of line `i`'s name and value: the lists a parser makes reach the application (a response's, a
   * request's headers), whose code may write into them; none of ours does (HeaderList's fields are read-only).
   */
  pair(i: number): readonly [string, string] {
    this.recalled++;
    return [this.#names[i] as string, this.#values[i] as string];
  }

  /** Line `i` was `text[pos..end)`, its name `name` and its value `text[a..b)`; false when it is too long to keep. */
  remember(i: number, text: string, pos: number, end: number, name: string, a: number, b: number): boolean {
    if (end - pos > MEMORY_LINE_MAX) {
      this.#lines[i] = undefined;
      return false;
    }
    const line = detached(text.slice(pos, end));
    this.#lines[i] = line;
    this.#names[i] = name;
    this.#values[i] = line.slice(a - pos, b - pos);
    return true;
  }
}

/**
 * The field lines of `text` from offset `from` to its end (lines end with CRLF; `text` is a head without
 * its final empty line, see splitHead), as a list with lower-case names, values without OWS. More than
 * `maxCount` lines is `too-large` ("more than N `what` fields", the text made only then), whatever else is
 * wrong with them. `memory`: the connection's FieldMemory (lines repeated from its last head are recalled).
 * Throws H1ParseError. Walks the text in place: per line, one string for the value (and one for a name
 * the table does not know), no line strings. The lines are counted as they are read (a count before
 * reading them cost a second walk of every head; a malformed head is counted again, for the answer).
 */
export function parseFieldLines(
  text: string,
  from: number,
  maxCount = Infinity,
  what = 'header',
  memory?: FieldMemory,
): HeaderList {
  if (memory !== undefined) {
    const same = memory.again(text, maxCount);
    if (same !== null) return same;
  }
  const out: HeaderList = [];
  const len = text.length;
  let pos = from;
  let n = 0;
  // Every line of this head is in the memory (recalled or remembered).
  let whole = memory !== undefined;
  try {
    while (pos < len || (pos === len && n > 0)) {
      if (++n > maxCount) throw new H1ParseError('too-large', `more than ${maxCount} ${what} fields`);
      const kept = memory !== undefined && n <= MEMORY_LINES;
      if (!kept) whole = false;
      if (kept) {
        const known = memory.recall(n - 1, text, pos);
        if (known >= 0) {
          out.push(memory.pair(n - 1));
          pos = known + 2;
          continue;
        }
      }
      let end = text.indexOf('\r\n', pos);
      if (end < 0) end = len;
      const c = text.charCodeAt(pos);
      // RFC 9112 §5.2: obs-fold is refused (a proxy cannot repair it safely).
      if (c === 0x20 || c === 0x09) throw new H1ParseError('malformed', 'obsolete line folding in header section');
      const colon = text.indexOf(':', pos);
      if (colon <= pos || colon > end)
        throw new H1ParseError(
          'malformed',
          `malformed header line ${JSON.stringify(text.slice(pos, Math.min(end, pos + 60)))}`,
        );
      const name = fieldName(text, pos, colon);
      // RFC 9110 §5.5: OWS around the value is not part of it.
      let a = colon + 1;
      let b = end;
      while (a < b && (text.charCodeAt(a) === 0x20 || text.charCodeAt(a) === 0x09)) a++;
      let tabAfter = false;
      for (let w = text.charCodeAt(b - 1); b > a && (w === 0x20 || w === 0x09); w = text.charCodeAt(--b - 1))
        if (w === 0x09) tabAfter = true;
      // llhttp reads a Transfer-Encoding whose `chunked` is followed by a tab as not chunked (it skips only spaces
      // there), where RFC 9110 §5.6.3 makes the tab OWS: parsers disagree on the message's framing (RFC 9112 §6.1,
      // §11.2), so such a value is refused, as `chunked,` is (transferCodings).
      if (tabAfter && name === 'transfer-encoding')
        throw new H1ParseError('malformed', 'Transfer-Encoding value followed by a tab');
      const value = text.slice(a, b);
      if (BAD_FIELD_VALUE_RE.test(value)) throw new H1ParseError('malformed', `invalid header value for ${name}`);
      out.push([name, value]);
      if (kept && !memory.remember(n - 1, text, pos, end, name, a, b)) whole = false;
      pos = end + 2;
    }
  } catch (e) {
    // Too many lines is the answer even when an earlier line is malformed (the count is not bounded by the
    // lines read so far): counted only on this path, so a well-formed head is walked once.
    if (
      e instanceof H1ParseError &&
      e.kind === 'malformed' &&
      maxCount !== Infinity &&
      countLines(text, from, maxCount) > maxCount
    ) {
      throw new H1ParseError('too-large', `more than ${maxCount} ${what} fields`);
    }
    throw e;
  }
  if (memory !== undefined) memory.read(text, n, whole);
  return out;
}

const HEADER_END = Buffer.from('\r\n\r\n');
/** The bytes after a head that ends its read (the usual case): one shared empty buffer, no view per head. */
const NOTHING = Buffer.alloc(0);
const LF_LF = Buffer.from('\n\n');

/**
 * The bytes a parser holds between reads: the start of a head (or trailer section) in which `splitHead` found no
 * end, or a few bytes of framing. A head's start grows in a buffer of its own (doubling) and only the new bytes, with
 * the three before them, are searched for its end: joined and searched again on every read, a head sent a byte at a
 * time cost its length squared (a 60 KiB response head: 0.42 s of the thread; a 16 KiB request head: 42 ms).
 */
export class HeldBytes {
  /** The held bytes; a view at the start of `#room` while they grow there. */
  #bytes: Buffer | null = null;
  /** Storage of our own for a growing head's start; never written again once its bytes were handed out. */
  #room: Buffer | null = null;
  /** `#bytes` is a head's start that holds no end (nor a bare LF LF): new bytes alone need a search. */
  #headStart = false;

  get held(): boolean {
    return this.#bytes !== null;
  }

  clear(): void {
    this.#bytes = null;
    this.#room = null;
  }

  /** Keep `chunk` until more bytes come; `headStart`: splitHead found no end in it. */
  hold(chunk: Buffer, headStart: boolean): void {
    this.#bytes = chunk;
    this.#room = null;
    this.#headStart = headStart;
  }

  /**
   * The held bytes followed by `data`, or null when they are the start of a head whose end cannot be in them yet
   * (not in `data`, nor across its start, and at most `maxBytes` in all): then all of it stays held.
   */
  take(data: Buffer, maxBytes: number): Buffer | null {
    const held = this.#bytes as Buffer;
    if (!this.#headStart) {
      this.clear();
      return Buffer.concat([held, data]);
    }
    const length = held.length + data.length;
    const edge = Buffer.concat([held.subarray(Math.max(0, held.length - 3)), data.subarray(0, 3)]);
    const mayEnd =
      edge.indexOf(HEADER_END) >= 0 ||
      edge.indexOf(LF_LF) >= 0 ||
      data.indexOf(HEADER_END) >= 0 ||
      data.indexOf(LF_LF) >= 0;
    let room = this.#room;
    if (room === null || room.length < length) {
      room = Buffer.allocUnsafe(Math.max(256, 2 * length));
      held.copy(room, 0);
    }
    data.copy(room, held.length);
    const bytes = room.subarray(0, length);
    if (mayEnd || length > maxBytes) {
      this.clear();
      return bytes;
    }
    this.#bytes = bytes;
    this.#room = room;
    return null;
  }
}

/**
 * A complete head (start line and field lines, up to the empty line) at the
 * start of `chunk`: its text without the final empty line (latin1) and the
 * bytes after it, or null when more are needed. Past `maxBytes` without its
 * end it is `too-large` (the 431 / the response error), so a peer cannot make
 * us buffer without bound.
 */
export function splitHead(
  chunk: Buffer,
  maxBytes: number,
  what: string,
  memory: FieldMemory | null = null,
): { text: string; rest: Buffer } | null {
  // `memory`: the connection's last head. When this one ends where that one did (FieldMemory.headBytes) — CRLF CRLF
  // there, none earlier (in the text, or from a CRLF just before those four bytes) — it is taken without a search of
  // the bytes (a call into Node's binding, dearer than a search of the text already made); and when it is that head
  // again, which held no CRLF CRLF, without a search of the text either.
  const likely = memory === null ? 0 : memory.headBytes;
  if (
    likely >= 8 &&
    likely <= chunk.length &&
    likely <= maxBytes &&
    chunk[likely - 1] === 0x0a &&
    chunk[likely - 2] === 0x0d &&
    chunk[likely - 3] === 0x0a &&
    chunk[likely - 4] === 0x0d &&
    !(chunk[likely - 5] === 0x0a && chunk[likely - 6] === 0x0d)
  ) {
    const text = chunk.toString('latin1', 0, likely - 4);
    if (text === (memory as FieldMemory).head || text.indexOf('\r\n\r\n') < 0)
      return { text, rest: likely === chunk.length ? NOTHING : chunk.subarray(likely) };
  }
  const end = chunk.indexOf(HEADER_END);
  if ((end < 0 ? chunk.length : end + 4) > maxBytes) {
    // RFC 9112 §3: a request-target longer than the server will parse is a 414, not a 431.
    const lineEnd = what === 'request' ? chunk.indexOf(0x0d) : 0;
    if (lineEnd < 0 || lineEnd > maxBytes)
      throw new H1ParseError('target-too-long', `request line exceeds ${maxBytes} bytes`);
    throw new H1ParseError('too-large', `${what} header section exceeds ${maxBytes} bytes`);
  }
  if (end < 0) {
    // A head whose lines end in bare LFs (RFC 9112 §2.2 lets a recipient take them; we refuse them, as in a field)
    // would otherwise wait for a CRLF CRLF that never comes, until the headers timeout: refused at its empty line.
    if (chunk.indexOf(LF_LF) >= 0) throw new H1ParseError('malformed', `${what} head with bare LF line endings`);
    return null;
  }
  return { text: chunk.toString('latin1', 0, end), rest: end + 4 === chunk.length ? NOTHING : chunk.subarray(end + 4) };
}
