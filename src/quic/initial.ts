/**
 * The server name a QUIC client asks for, read from its first Initial
 * packets before any connection state exists (sans-IO: bytes in, a name
 * out). quiche picks a certificate only through the Config given to
 * `accept`, so a server with several certificates must know the name before
 * it accepts (native-notes/quiche.md, "Certificate by SNI").
 *
 * Initial packets are protected with keys anyone can derive from the
 * client's Destination Connection ID (RFC 9001 §5.2): remove header
 * protection (§5.4), open the payload (AES-128-GCM, §5.3), gather the CRYPTO
 * frames (RFC 9000 §19.6) up to a whole ClientHello (RFC 8446 §4.1.2) — a
 * post-quantum key share makes it span two Initial packets — and read its
 * server_name extension (RFC 6066 §3).
 *
 * Invariant: this never decides for quiche. Whatever it cannot read (another
 * version, a damaged packet, a frame an Initial may not carry) ends the
 * reading with no name, and quiche, fed the same datagrams, judges them.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { encodeVarint, readVarint } from '../codec/varint.js';
import { QUIC_V1 } from './accept.js';

/** RFC 9001 §5.2: the version 1 salt. */
const INITIAL_SALT_V1 = Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex');
/** A ClientHello larger than this is not waited for (a real one is under 2 KiB, 1.8 with ML-KEM). */
export const MAX_CLIENT_HELLO = 16 * 1024;

export interface InitialKeys {
  key: Buffer;
  iv: Buffer;
  hp: Buffer;
}

function hmac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** RFC 8446 §7.1 HKDF-Expand-Label with an empty context (one HMAC block: every length here is ≤ 32). */
function expandLabel(secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0, 1])]);
  return hmac(secret, info).subarray(0, length);
}

/** One side's Initial keys for the client's Destination Connection ID (RFC 9001 §5.2, version 1). */
function initialKeys(dcid: Uint8Array, side: 'client in' | 'server in'): InitialKeys {
  const initial = hmac(INITIAL_SALT_V1, Buffer.from(dcid));
  const secret = expandLabel(initial, side, 32);
  return {
    key: expandLabel(secret, 'quic key', 16),
    iv: expandLabel(secret, 'quic iv', 12),
    hp: expandLabel(secret, 'quic hp', 16),
  };
}

/** The client's Initial keys for a Destination Connection ID (RFC 9001 §5.2, version 1). */
export function clientInitialKeys(dcid: Uint8Array): InitialKeys {
  return initialKeys(dcid, 'client in');
}

export interface OpenedInitial {
  /** Packet number (as sent: Initial packet numbers of a new connection are small). */
  pn: number;
  /** The decrypted frames. */
  payload: Buffer;
}

/**
 * Open every version 1 Initial packet in one datagram (coalesced packets of
 * other types are skipped by their Length). Null when a packet is not one we
 * can read: a wrong tag, a header cut short.
 */
export function openInitials(datagram: Uint8Array, keys: InitialKeys): OpenedInitial[] | null {
  const out: OpenedInitial[] = [];
  let off = 0;
  while (off < datagram.length) {
    const first = datagram[off]!;
    if ((first & 0x80) === 0) break; // a short header packet ends the datagram (RFC 9000 §12.2)
    if (datagram.length - off < 7) return null;
    const version =
      ((datagram[off + 1]! << 24) | (datagram[off + 2]! << 16) | (datagram[off + 3]! << 8) | datagram[off + 4]!) >>> 0;
    if (version !== QUIC_V1) return null;
    let p = off + 5;
    const dl = datagram[p++]!;
    p += dl;
    if (p >= datagram.length) return null;
    const sl = datagram[p++]!;
    p += sl;
    const type = (first & 0x30) >> 4;
    if (type === 0) {
      const tl = readVarint(datagram, p);
      if (!tl) return null;
      p += tl.length + tl.value;
    } else if (type === 3) {
      return out; // Retry has no Length; nothing follows it
    }
    const len = readVarint(datagram, p);
    if (!len || p + len.length + len.value > datagram.length) return null;
    const pnOff = p + len.length;
    const end = pnOff + len.value;
    if (type === 0) {
      const opened = openOne(datagram, off, pnOff, end, keys);
      if (!opened) return null;
      out.push(opened);
    }
    off = end;
  }
  return out;
}

function openOne(d: Uint8Array, start: number, pnOff: number, end: number, keys: InitialKeys): OpenedInitial | null {
  // RFC 9001 §5.4.2: the sample starts 4 bytes after the packet number's start, whatever its length.
  if (pnOff + 4 + 16 > end) return null;
  const ecb = createCipheriv('aes-128-ecb', keys.hp, null);
  ecb.setAutoPadding(false);
  const mask = ecb.update(d.subarray(pnOff + 4, pnOff + 20));
  const header = Buffer.from(d.subarray(start, pnOff + 4));
  header[0] = header[0]! ^ (mask[0]! & 0x0f);
  const pnLen = (header[0]! & 0x03) + 1;
  let pn = 0;
  const at = pnOff - start;
  for (let i = 0; i < pnLen; i++) {
    header[at + i] = header[at + i]! ^ mask[1 + i]!;
    pn = pn * 256 + header[at + i]!;
  }
  const aad = header.subarray(0, at + pnLen);
  const body = d.subarray(pnOff + pnLen, end);
  if (body.length < 16) return null;
  const nonce = Buffer.from(keys.iv);
  for (let i = 0; i < 4; i++) nonce[nonce.length - 1 - i] = nonce[nonce.length - 1 - i]! ^ ((pn / 2 ** (8 * i)) & 0xff);
  try {
    const gcm = createDecipheriv('aes-128-gcm', keys.key, nonce);
    gcm.setAAD(aad);
    gcm.setAuthTag(body.subarray(body.length - 16));
    const payload = Buffer.concat([gcm.update(body.subarray(0, body.length - 16)), gcm.final()]);
    return { pn, payload };
  } catch {
    return null;
  }
}

/**
 * The inverse of openInitials for one packet: a client Initial carrying `frames` (padded so the
 * datagram is 1200 bytes, RFC 9000 §14.1) with a 2-byte packet number and no token. For tests and
 * the fuzz harness: we are never the client of this code path (quiche builds our Initials).
 */
export function sealInitial(dcid: Uint8Array, pn: number, frames: Uint8Array): Buffer {
  return seal(clientInitialKeys(dcid), dcid, new Uint8Array(0), pn, frames, 1200);
}

/**
 * A server's Initial without any connection state: a CONNECTION_CLOSE with CONNECTION_REFUSED (0x02), the refusal
 * RFC 9000 §5.2.2 describes, for a client Initial whose Destination and Source Connection IDs are `dcid`, `scid`.
 * Protected with the server's Initial keys for `dcid` (RFC 9001 §5.2: after a Retry, the client's Initials use, and
 * their keys come from, the connection ID the Retry chose). Not padded: it is not ack-eliciting (RFC 9000 §14.1).
 */
export function refusalInitial(dcid: Uint8Array, scid: Uint8Array, reason: string): Buffer {
  const phrase = Buffer.from(reason.slice(0, 64), 'latin1');
  // RFC 9000 §19.19: type 0x1c, error code, the frame type that caused it (0: none), reason phrase length and text.
  const frame = Buffer.concat([Buffer.from([0x1c, 0x02, 0x00, phrase.length]), phrase]);
  return seal(initialKeys(dcid, 'server in'), scid, dcid, 0, frame, 0);
}

/** A long-header Initial (version 1) to `dcid` from `scid`, 2-byte packet number, no token; padded to `padTo` bytes. */
function seal(
  k: InitialKeys,
  dcid: Uint8Array,
  scid: Uint8Array,
  pn: number,
  frames: Uint8Array,
  padTo: number,
): Buffer {
  const pnLen = 2;
  // first byte, version, DCID length and DCID, SCID length and SCID, token length 0, Length (2-byte varint), packet
  // number
  const headLen = 6 + dcid.length + 1 + scid.length + 1 + 2 + pnLen;
  // RFC 9001 §5.4.2: the header protection sample is the 16 bytes from 4 after the packet number's start, so packet
  // number, payload and tag together take at least 20: a short payload is padded (PADDING frames are zeros).
  const payloadMin = Math.max(4 - pnLen, padTo - headLen - 16, 0);
  const padded = Buffer.concat([frames, Buffer.alloc(Math.max(0, payloadMin - frames.length))]);
  const length = pnLen + padded.length + 16;
  if (length > 0x3fff) throw new RangeError('frames too large for one Initial');
  const header = Buffer.concat([
    Buffer.from([0xc0 | (pnLen - 1), 0, 0, 0, 1, dcid.length]),
    Buffer.from(dcid),
    Buffer.from([scid.length]),
    Buffer.from(scid),
    Buffer.from([0]),
    Buffer.from([0x40 | (length >> 8), length & 0xff, (pn >> 8) & 0xff, pn & 0xff]),
  ]);
  const nonce = Buffer.from(k.iv);
  nonce[10] = nonce[10]! ^ ((pn >> 8) & 0xff);
  nonce[11] = nonce[11]! ^ (pn & 0xff);
  const gcm = createCipheriv('aes-128-gcm', k.key, nonce);
  gcm.setAAD(header);
  const sealed = Buffer.concat([gcm.update(padded), gcm.final(), gcm.getAuthTag()]);
  const ecb = createCipheriv('aes-128-ecb', k.hp, null);
  ecb.setAutoPadding(false);
  const mask = ecb.update(sealed.subarray(4 - pnLen, 4 - pnLen + 16));
  const pnOff = header.length - pnLen;
  header[0] = header[0]! ^ (mask[0]! & 0x0f);
  for (let i = 0; i < pnLen; i++) header[pnOff + i] = header[pnOff + i]! ^ mask[1 + i]!;
  return Buffer.concat([header, sealed]);
}

export function cryptoFrame(offset: number, data: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from([0x06]),
    Buffer.from(encodeVarint(offset)),
    Buffer.from(encodeVarint(data.length)),
    data,
  ]);
}

/** CRYPTO frame data in one Initial payload; null at a frame an Initial packet may not carry (RFC 9000 §12.4). */
export function cryptoFrames(payload: Uint8Array): Array<{ offset: number; data: Uint8Array }> | null {
  const out: Array<{ offset: number; data: Uint8Array }> = [];
  let p = 0;
  while (p < payload.length) {
    const t = payload[p]!;
    if (t === 0x00 || t === 0x01) {
      p++;
      continue;
    } // PADDING, PING
    if (t === 0x06) {
      const o = readVarint(payload, p + 1);
      if (!o) return null;
      const l = readVarint(payload, p + 1 + o.length);
      if (!l) return null;
      const s = p + 1 + o.length + l.length;
      if (s + l.value > payload.length) return null;
      out.push({ offset: o.value, data: payload.subarray(s, s + l.value) });
      p = s + l.value;
      continue;
    }
    if (t === 0x02 || t === 0x03) {
      // ACK (a client's second flight may carry one)
      let q = p + 1;
      const fields: number[] = [];
      for (let i = 0; i < 4; i++) {
        const v = readVarint(payload, q);
        if (!v) return null;
        fields.push(v.value);
        q += v.length;
      }
      for (let i = 0; i < 2 * fields[2]! + (t === 0x03 ? 3 : 0); i++) {
        const v = readVarint(payload, q);
        if (!v) return null;
        q += v.length;
      }
      p = q;
      continue;
    }
    return null; // CONNECTION_CLOSE or anything else: stop reading, quiche will judge
  }
  return out;
}

/**
 * The server_name of a whole ClientHello handshake message (type, 3-byte
 * length, body): the first host_name entry, lower-cased; null when there is
 * none. Throws RangeError on bytes that are not a ClientHello.
 */
export function clientHelloServerName(msg: Uint8Array): string | null {
  return clientHelloFacts(msg).serverName;
}

/** What a server reads of a ClientHello before accepting its connection. */
export interface ClientHelloFacts {
  serverName: string | null;
  /** It offers 0-RTT early data (RFC 8446 §4.2.10, the early_data extension). */
  earlyData: boolean;
}

/** RFC 8446 §4.2: extension types read here. */
const EXT_SERVER_NAME = 0;
const EXT_EARLY_DATA = 42;

/**
 * server_name and early_data of a whole ClientHello (see clientHelloServerName). Throws RangeError on bytes that are
 * not one.
 */
export function clientHelloFacts(msg: Uint8Array): ClientHelloFacts {
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  if (b.length < 4 || b[0] !== 0x01) throw new RangeError('not a ClientHello');
  const len = b.readUIntBE(1, 3);
  if (4 + len > b.length) throw new RangeError('ClientHello cut short');
  let p = 4 + 2 + 32; // legacy_version, random
  const need = (n: number): void => {
    if (p + n > 4 + len) throw new RangeError('ClientHello field past its end');
  };
  need(1);
  p += 1 + b[p]!; // legacy_session_id
  need(2);
  p += 2 + b.readUInt16BE(p); // cipher_suites
  need(1);
  p += 1 + b[p]!; // legacy_compression_methods
  const out: ClientHelloFacts = { serverName: null, earlyData: false };
  if (p === 4 + len) return out; // no extensions
  need(2);
  const extEnd = p + 2 + b.readUInt16BE(p);
  p += 2;
  if (extEnd > 4 + len) throw new RangeError('extensions past the ClientHello');
  while (p + 4 <= extEnd) {
    const type = b.readUInt16BE(p);
    const el = b.readUInt16BE(p + 2);
    p += 4;
    if (p + el > extEnd) throw new RangeError('extension past the list');
    if (type === EXT_EARLY_DATA) out.earlyData = true;
    if (type === EXT_SERVER_NAME && out.serverName === null) {
      // RFC 6066 §3: ServerNameList, entries of name_type(1) + HostName<1..2^16-1>.
      let q = p + 2;
      const listEnd = p + 2 + b.readUInt16BE(p);
      if (listEnd > p + el) throw new RangeError('server_name list past its extension');
      while (q + 3 <= listEnd) {
        const nt = b[q]!;
        const nl = b.readUInt16BE(q + 1);
        if (q + 3 + nl > listEnd) throw new RangeError('server name past its list');
        if (nt === 0 && nl > 0) {
          out.serverName = b.toString('latin1', q + 3, q + 3 + nl).toLowerCase();
          break;
        }
        q += 3 + nl;
      }
    }
    p += el;
  }
  return out;
}

/**
 * `replayKey`: for a ClientHello that offers early data, a digest of its bytes — a replay of a captured first
 * flight carries the same ClientHello byte for byte (its PSK binder covers it: RFC 8446 §4.2.11.2), a new one of
 * the same client never does (a fresh random and key share). Null otherwise.
 */
export type SniResult = { done: false } | { done: true; serverName: string | null; why?: string; replayKey?: string };

/**
 * Feed a new connection's datagrams in arrival order until its ClientHello
 * is whole; then `done` with the name (null: none sent, or not readable —
 * `why` says which).
 */
export class ClientHelloReader {
  readonly #keys: InitialKeys;
  readonly #chunks = new Map<number, Uint8Array>();
  #result: SniResult = { done: false };

  constructor(dcid: Uint8Array) {
    this.#keys = clientInitialKeys(dcid);
  }

  push(datagram: Uint8Array): SniResult {
    if (this.#result.done) return this.#result;
    try {
      return this.#push(datagram);
    } catch (e) {
      return this.#finish(null, (e as Error).message); // e.g. a varint past 2^53
    }
  }

  #push(datagram: Uint8Array): SniResult {
    const packets = openInitials(datagram, this.#keys);
    if (!packets) return this.#finish(null, 'unreadable Initial packet');
    for (const pkt of packets) {
      const frames = cryptoFrames(pkt.payload);
      if (!frames) return this.#finish(null, 'unexpected frame in an Initial packet');
      for (const f of frames) {
        if (f.offset + f.data.length > MAX_CLIENT_HELLO) return this.#finish(null, 'ClientHello too large');
        if (!this.#chunks.has(f.offset) || this.#chunks.get(f.offset)!.length < f.data.length)
          this.#chunks.set(f.offset, f.data);
      }
    }
    const hello = this.#contiguous();
    if (hello.length >= 4) {
      if (hello[0] !== 0x01) return this.#finish(null, 'first handshake message is not a ClientHello');
      const need = 4 + ((hello[1]! << 16) | (hello[2]! << 8) | hello[3]!);
      if (need > MAX_CLIENT_HELLO) return this.#finish(null, 'ClientHello too large');
      if (hello.length >= need) {
        try {
          const whole = hello.subarray(0, need);
          const facts = clientHelloFacts(whole);
          if (!facts.earlyData) return this.#finish(facts.serverName);
          this.#result = {
            done: true,
            serverName: facts.serverName,
            replayKey: createHash('sha256').update(whole).digest('base64'),
          };
          return this.#result;
        } catch (e) {
          return this.#finish(null, (e as Error).message);
        }
      }
    }
    return this.#result;
  }

  /** The CRYPTO stream's bytes from offset 0 as far as they are contiguous. */
  #contiguous(): Buffer {
    const parts: Uint8Array[] = [];
    let at = 0;
    for (const [o, d] of [...this.#chunks].sort((x, y) => x[0] - y[0])) {
      if (o > at) break;
      if (o + d.length <= at) continue;
      parts.push(d.subarray(at - o));
      at = o + d.length;
    }
    return Buffer.concat(parts);
  }

  #finish(serverName: string | null, why?: string): SniResult {
    this.#result = why === undefined ? { done: true, serverName } : { done: true, serverName, why };
    return this.#result;
  }
}
