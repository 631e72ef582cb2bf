/**
 * HTTP/1.1 message body decoding, the same for requests and responses
 * (RFC 9112 §6, §7.1): a counted body (Content-Length), the chunked coding
 * with its trailer section, or (responses only) everything until close.
 * Sans-IO: bytes in, callbacks out. Used by both parsers (parser.ts for
 * responses, request-parser.ts for requests).
 */
import type { HeaderList } from '../http/types.js';
import { H1ParseError, HeldBytes, parseFieldLines, splitHead } from './fields.js';

/** What a body decoder reports: the bytes of the body and its trailer section. */
export interface BodyEvents {
  onBody(chunk: Buffer): void;
  onTrailers(trailers: HeaderList): void;
}

const enum St {
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Done,
}

const CRLF = Buffer.from('\r\n');
/** A chunk-size line (size and extensions, RFC 9112 §7.1.1) longer than this is refused. */
const MAX_CHUNK_LINE = 1024;
/** 13 hex digits: below 2^53, so the size is exact (a longer size is an overflow attempt). */
const CHUNK_SIZE_RE = /^[0-9a-fA-F]{1,13}$/;
/**
 * RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), a name a
 * token, a value a token or a quoted-string (RFC 9110 §5.6.4). Extensions are ignored, but one that does
 * not follow the grammar is refused: another parser could read the line otherwise. The optional
 * whitespace (BWS) is refused too, as llhttp's strict mode does: no client needs it, and whitespace
 * around chunk sizes and extensions is where parsers have disagreed (request smuggling).
 */
const EXT_TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const EXT_QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
const CHUNK_EXT_RE = new RegExp(`^(?:;${EXT_TOKEN}(?:=(?:${EXT_TOKEN}|${EXT_QUOTED}))?)*$`);

export class H1BodyDecoder {
  #sink: BodyEvents;
  #maxTrailerBytes: number;
  #st: St = St.Done;
  #remaining = 0;
  readonly #held = new HeldBytes();

  #strictTrailers: boolean;

  /**
   * `strictTrailers` (a server reading requests): Transfer-Encoding or Content-Length in the trailer
   * section is refused (RFC 9110 §6.5.1: framing cannot be decided after the content; llhttp refuses them
   * too). A client reading an origin's response drops them instead (they are never relayed: hop-by-hop
   * and framing fields leave every trailer list), so a sloppy origin's response still arrives.
   */
  constructor(sink: BodyEvents, maxTrailerBytes: number, strictTrailers = false) {
    this.#sink = sink;
    this.#maxTrailerBytes = maxTrailerBytes;
    this.#strictTrailers = strictTrailers;
  }

  get done(): boolean {
    return this.#st === St.Done;
  }
  /** Reading until the connection closes (a response without length, RFC 9112 §6.3 item 8). */
  get untilClose(): boolean {
    return this.#st === St.UntilClose;
  }
  /**
   * Bytes still to come of a counted body; null for a chunked one (its end is not known yet) or one read until close.
   */
  get lengthLeft(): number | null {
    return this.#st === St.Length ? this.#remaining : this.#st === St.Done ? 0 : null;
  }

  start(framing: 'length' | 'chunked' | 'close', length = 0): void {
    this.#held.clear();
    if (framing === 'length') {
      this.#st = length > 0 ? St.Length : St.Done;
      this.#remaining = length;
    } else {
      this.#st = framing === 'chunked' ? St.ChunkSize : St.UntilClose;
    }
  }

  /** The connection closed: a body read until close is complete. */
  finishAtClose(): void {
    if (this.#st === St.UntilClose) this.#st = St.Done;
  }

  /** Feed bytes; returns those beyond the body's end (once `done`), else null. Throws H1ParseError. */
  feed(data: Buffer): Buffer | null {
    let chunk: Buffer | null = data;
    if (this.#held.held) {
      chunk = this.#held.take(data, this.#maxTrailerBytes);
      if (chunk === null) return null;
    }
    while (chunk && chunk.length > 0) {
      switch (this.#st) {
        case St.Done:
          return chunk;
        case St.Length:
          chunk = this.#counted(chunk);
          if (this.#remaining === 0) this.#st = St.Done;
          break;
        case St.UntilClose:
          this.#sink.onBody(chunk);
          return null;
        case St.ChunkSize:
          chunk = this.#chunkSize(chunk);
          break;
        case St.ChunkData:
          chunk = this.#counted(chunk);
          if (this.#remaining === 0) this.#st = St.ChunkDataEnd;
          break;
        case St.ChunkDataEnd:
          if (chunk.length < 2) {
            this.#held.hold(chunk, false);
            return null;
          }
          if (chunk[0] !== 0x0d || chunk[1] !== 0x0a)
            throw new H1ParseError('malformed', 'chunk data not followed by CRLF');
          chunk = chunk.subarray(2);
          this.#st = St.ChunkSize;
          break;
        case St.Trailers:
          chunk = this.#trailers(chunk);
          break;
      }
    }
    return null;
  }

  /** Deliver up to `#remaining` bytes (a counted body or one chunk); returns the rest. */
  #counted(chunk: Buffer): Buffer | null {
    const n = Math.min(this.#remaining, chunk.length);
    this.#remaining -= n;
    if (n === chunk.length) {
      this.#sink.onBody(chunk);
      return null;
    }
    this.#sink.onBody(chunk.subarray(0, n));
    return chunk.subarray(n);
  }

  #chunkSize(chunk: Buffer): Buffer | null {
    const eol = chunk.indexOf(CRLF);
    if (eol < 0) {
      if (chunk.length > MAX_CHUNK_LINE) throw new H1ParseError('malformed', 'chunk size line too long');
      this.#held.hold(chunk, false);
      return null;
    }
    if (eol > MAX_CHUNK_LINE) throw new H1ParseError('malformed', 'chunk size line too long');
    const line = chunk.toString('latin1', 0, eol);
    // A bare CR or LF inside the line could end it differently for another parser (RFC 9112 §2.2).
    if (line.includes('\r') || line.includes('\n'))
      throw new H1ParseError('malformed', 'bare CR or LF in a chunk size line');
    const semi = line.indexOf(';'); // chunk extensions are ignored (RFC 9112 §7.1.1)
    const hex = semi < 0 ? line : line.slice(0, semi);
    if (!CHUNK_SIZE_RE.test(hex))
      throw new H1ParseError('malformed', `invalid chunk size ${JSON.stringify(line.slice(0, 40))}`);
    if (semi >= 0 && !CHUNK_EXT_RE.test(line.slice(semi)))
      throw new H1ParseError('malformed', `invalid chunk extension ${JSON.stringify(line.slice(semi, semi + 40))}`);
    const size = parseInt(hex, 16);
    if (size === 0) this.#st = St.Trailers;
    else {
      this.#st = St.ChunkData;
      this.#remaining = size;
    }
    return chunk.subarray(eol + 2);
  }

  #trailers(chunk: Buffer): Buffer | null {
    if (chunk.length >= 2 && chunk[0] === 0x0d && chunk[1] === 0x0a) {
      this.#st = St.Done;
      return chunk.subarray(2);
    }
    if (chunk.length < 2) {
      this.#held.hold(chunk, false);
      return null;
    }
    const h = splitHead(chunk, this.#maxTrailerBytes, 'trailer');
    if (!h) {
      this.#held.hold(chunk, true);
      return null;
    }
    const trailers = parseFieldLines(h.text, 0);
    if (this.#strictTrailers) {
      for (const [n] of trailers)
        if (n === 'transfer-encoding' || n === 'content-length')
          throw new H1ParseError('malformed', `${n} in the trailer section`);
    }
    this.#sink.onTrailers(trailers);
    this.#st = St.Done;
    return h.rest;
  }
}
