/**
 * QPACK offline interop (the qifs corpus): parse QIF header lists and
 * encoder outputs, decode an output with our decoder and compare. Pure:
 * callers read the files.
 *
 * Output file format: repeated (stream id u64 BE, length u32 BE, payload);
 * stream 0 is the encoder stream, stream N carries the Nth header list of
 * the QIF. Name: QIFNAME.out.TABLESIZE.MAXBLOCKED.ACKMODE.
 */
import { latin1Decode } from '../bytes.js';
import { QpackDecoder, type HeaderField } from './decoder.js';

export interface InteropRecord {
  streamId: number;
  payload: Uint8Array;
}

export interface InteropName {
  qif: string;
  tableSize: number;
  maxBlocked: number;
  ackMode: number;
}

/** Header lists of a QIF file, in order (comments and blank-line separators dropped). */
export function parseQif(text: string): HeaderField[][] {
  const lists: HeaderField[][] = [];
  let cur: HeaderField[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('#')) continue;
    if (line === '') {
      if (cur.length > 0) lists.push(cur);
      cur = [];
      continue;
    }
    const tab = line.indexOf('\t');
    cur.push(tab < 0 ? [line, ''] : [line.slice(0, tab), line.slice(tab + 1)]);
  }
  if (cur.length > 0) lists.push(cur);
  return lists;
}

/** Split an encoder output file into records; throws on a truncated record. */
export function parseInteropFile(bytes: Uint8Array): InteropRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: InteropRecord[] = [];
  let off = 0;
  while (off < bytes.length) {
    if (off + 12 > bytes.length) throw new Error(`truncated record header at offset ${off}`);
    const sid = view.getBigUint64(off);
    const len = view.getUint32(off + 8);
    off += 12;
    if (off + len > bytes.length) throw new Error(`truncated record payload at offset ${off}`);
    if (sid > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`stream id ${sid} too large`);
    out.push({ streamId: Number(sid), payload: bytes.subarray(off, off + len) });
    off += len;
  }
  return out;
}

export function parseInteropName(fileName: string): InteropName | null {
  const m = /^(.+)\.out\.(\d+)\.(\d+)\.(\d+)$/.exec(fileName);
  if (!m) return null;
  return { qif: m[1]!, tableSize: Number(m[2]), maxBlocked: Number(m[3]), ackMode: Number(m[4]) };
}

export interface DecodeOptions {
  tableSize: number;
  maxBlocked: number;
  /** Feed the encoder stream one byte at a time. */
  byteByByte?: boolean;
}

/**
 * Decode a whole output file. Returns header lists by stream id; throws on
 * any decoding error or when a section is still blocked at the end.
 */
export function decodeInteropFile(bytes: Uint8Array, opts: DecodeOptions): Map<number, HeaderField[]> {
  const dec = new QpackDecoder({
    maxTableCapacity: opts.tableSize,
    maxBlockedStreams: opts.maxBlocked,
    // The corpus predates RFC 9204's zero initial capacity: encoders start at the maximum.
    initialCapacity: opts.tableSize,
  });
  const result = new Map<number, HeaderField[]>();
  const put = (sid: number, h: HeaderField[]): void => {
    if (result.has(sid)) throw new Error(`stream ${sid} decoded twice`);
    result.set(sid, h);
  };
  for (const rec of parseInteropFile(bytes)) {
    if (rec.streamId === 0) {
      const chunks = opts.byteByByte
        ? Array.from({ length: rec.payload.length }, (_, i) => rec.payload.subarray(i, i + 1))
        : [rec.payload];
      for (const c of chunks) for (const u of dec.feedEncoderStream(c)) put(u.streamId, [...u.headers]);
    } else {
      const r = dec.decodeSection(rec.streamId, rec.payload);
      if (r.status === 'done') put(rec.streamId, [...r.headers]);
    }
    dec.takeDecoderStreamBytes();
  }
  if (dec.hasPartialEncoderInstruction) throw new Error('encoder stream ends inside an instruction');
  if (dec.blockedStreamCount > 0)
    throw new Error(`${dec.blockedStreamCount} field section(s) still blocked at end of input`);
  return result;
}

export interface InteropCheck {
  ok: boolean;
  reason: string;
}

/** Decode `bytes` (named `fileName`) and compare with the QIF lists. */
export function checkInteropFile(
  fileName: string,
  bytes: Uint8Array,
  qifLists: HeaderField[][],
  opts: { byteByByte?: boolean } = {},
): InteropCheck {
  const name = parseInteropName(fileName);
  if (!name) return { ok: false, reason: 'file name is not NAME.out.TABLESIZE.MAXBLOCKED.ACKMODE' };
  let decoded: Map<number, HeaderField[]>;
  try {
    decoded = decodeInteropFile(bytes, {
      tableSize: name.tableSize,
      maxBlocked: name.maxBlocked,
      byteByByte: opts.byteByByte ?? false,
    });
  } catch (e) {
    return { ok: false, reason: `decode error: ${(e as Error).message}` };
  }
  if (decoded.size !== qifLists.length) {
    return { ok: false, reason: `decoded ${decoded.size} header lists, QIF has ${qifLists.length}` };
  }
  for (let i = 0; i < qifLists.length; i++) {
    const got = decoded.get(i + 1);
    const want = qifLists[i]!;
    if (!got) return { ok: false, reason: `stream ${i + 1} missing` };
    if (got.length !== want.length)
      return { ok: false, reason: `stream ${i + 1}: ${got.length} fields, want ${want.length}` };
    for (let j = 0; j < want.length; j++) {
      const g = got[j]!;
      const w = want[j]!;
      if (g[0] !== w[0] || g[1] !== w[1]) {
        return { ok: false, reason: `stream ${i + 1} field ${j}: got ${JSON.stringify(g)}, want ${JSON.stringify(w)}` };
      }
    }
  }
  return { ok: true, reason: `${qifLists.length} header lists` };
}

/** Read QIF text from bytes as latin1 (octets preserved one-to-one). */
export function qifText(bytes: Uint8Array): string {
  return latin1Decode(bytes);
}

/**
 * Files of the corpus's `encoded/errors` folder that are well-formed under
 * RFC 9204: they target HPACK's 1-based, 61-entry static table, where
 * index 0 and 62 are invalid; QPACK's table is 0-based with 99 entries.
 * Keyed by content (hex), not by name, so a renamed file is still recognised.
 */
export const RFC9204_VALID_ERROR_CASES: ReadonlyMap<string, { streamId: number; headers: HeaderField[] }> = new Map([
  ['000000000000000100000003 0000c0'.replace(/ /g, ''), { streamId: 1, headers: [[':authority', '']] }],
  [
    '000000000000000100000003 0000fe'.replace(/ /g, ''),
    { streamId: 1, headers: [['x-xss-protection', '1; mode=block']] },
  ],
]);

/**
 * Check one file of the malformed corpus: it must be rejected, except the
 * RFC9204_VALID_ERROR_CASES, which must decode to their pinned lists.
 * Decoder settings: table 4096, 100 blocked streams (generous, so only
 * malformation can fail).
 */
export function checkErrorFile(bytes: Uint8Array, opts: { byteByByte?: boolean } = {}): InteropCheck {
  const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  const pinned = RFC9204_VALID_ERROR_CASES.get(key);
  let decoded: Map<number, HeaderField[]>;
  try {
    decoded = decodeInteropFile(bytes, { tableSize: 4096, maxBlocked: 100, byteByByte: opts.byteByByte ?? false });
  } catch (e) {
    if (pinned) return { ok: false, reason: `valid under RFC 9204 but rejected: ${(e as Error).message}` };
    return { ok: true, reason: `rejected: ${(e as Error).message}` };
  }
  if (!pinned) return { ok: false, reason: 'decoded without error' };
  const got = decoded.get(pinned.streamId);
  const same = decoded.size === 1 && JSON.stringify(got) === JSON.stringify(pinned.headers);
  return same
    ? { ok: true, reason: `valid under RFC 9204 (HPACK-era static index case), decodes to ${JSON.stringify(got)}` }
    : { ok: false, reason: `decoded to ${JSON.stringify([...decoded])}, want ${JSON.stringify(pinned.headers)}` };
}
