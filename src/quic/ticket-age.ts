/**
 * A resumption ticket's age as BoringSSL (under quiche, both engines) reports it, made never to exceed the truth.
 *
 * RFC 8446 §4.2.11.1: a client sends the ticket's age in milliseconds since it received the ticket. BoringSSL keeps
 * the time it received a session in whole seconds (`SSL_SESSION` `time`) and reports 1000 × (the current second −
 * that second): a ticket that came at 12:00:00.900 and is used at 12:00:01.100, 200 ms old, is reported 1000 ms old.
 * A server that checks the age for 0-RTT (RFC 8446 §8.3) may refuse early data whose reported age is above its own
 * view: GnuTLS does (`server_ticket_age < client_ticket_age`), so ngtcp2's gtlsserver declined our 0-RTT whenever a
 * second of the clock began between a ticket's arrival and its use (4 of 48 runs of the interop test, whose tickets
 * are used ~60 ms old; for a ticket older than a second, by the arithmetic, about one use in two). The session
 * handed to quiche takes as its time the second after the one it came in, unless that is in the future: the
 * reported age is then at most the true one, under it by less than a second (servers allow for more: OpenSSL 10 s,
 * BoringSSL 60 s, GnuTLS its anti-replay window), and the session is never from the future (BoringSSL does not offer
 * one whose time is ahead of its clock). Its `timeout` is shortened by as much, so the ticket's end stays put.
 *
 * The blob is quiche's: [u64 length][SSL_SESSION in BoringSSL's DER][u64 length][transport parameters]
 * (quiche `Connection::set_session`). The DER (BoringSSL ssl_asn1.cc) opens with
 * SEQUENCE { version INTEGER, sslVersion INTEGER, cipher OCTET STRING, sessionID OCTET STRING,
 * secret OCTET STRING, time [1] EXPLICIT INTEGER, timeout [2] EXPLICIT INTEGER, ... }.
 * Anything that does not read as that is handed on unchanged (quiche then judges it as before).
 */

/** A DER element's tag, where its content starts and how long it is; null when it does not fit in `b` from `off`. */
function element(b: Uint8Array, off: number, end: number): { tag: number; start: number; len: number } | null {
  if (off + 2 > end) return null;
  const tag = b[off]!;
  let len = b[off + 1]!;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3 || start + n > end) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  return start + len <= end ? { tag, start, len } : null;
}

/** The unsigned value of a DER INTEGER's content of at most 6 bytes; null otherwise (or negative). */
function uint(b: Uint8Array, start: number, len: number): number | null {
  if (len < 1 || len > 6 || b[start]! & 0x80) return null;
  let v = 0;
  for (let i = 0; i < len; i++) v = v * 256 + b[start + i]!;
  return v;
}

/** Write `v` over an INTEGER's content of `len` bytes when its minimal encoding has that length; false if not. */
function putUint(b: Uint8Array, start: number, len: number, v: number): boolean {
  let need = 1;
  while (need < 7 && v >= 2 ** (8 * need - 1)) need++;
  if (need !== len) return false;
  for (let i = len - 1; i >= 0; i--) {
    b[start + i] = v % 256;
    v = Math.floor(v / 256);
  }
  return true;
}

/** The [1] time and [2] timeout INTEGERs of the session DER at `off..end`: where their contents are, or null. */
function timeFields(
  b: Uint8Array,
  off: number,
  end: number,
): { time: [number, number]; timeout: [number, number] } | null {
  const seq = element(b, off, end);
  if (!seq || seq.tag !== 0x30) return null;
  let p = seq.start;
  const stop = seq.start + seq.len;
  for (const tag of [0x02, 0x02, 0x04, 0x04, 0x04]) {
    const e = element(b, p, stop);
    if (!e || e.tag !== tag) return null;
    p = e.start + e.len;
  }
  const fields: Array<[number, number]> = [];
  for (const tag of [0xa1, 0xa2]) {
    const wrap = element(b, p, stop);
    if (!wrap || wrap.tag !== tag) return null;
    const int = element(b, wrap.start, wrap.start + wrap.len);
    if (!int || int.tag !== 0x02) return null;
    fields.push([int.start, int.len]);
    p = wrap.start + wrap.len;
  }
  return { time: fields[0]!, timeout: fields[1]! };
}

/**
 * The session `blob` with its receipt time moved to the next second (at most `nowMs`'s second) and its lifetime
 * shortened to match; `blob` itself when there is nothing to move or it does not read as expected. Never changes
 * `blob` (a store may hand out the bytes it keeps).
 */
export function boundTicketAge(blob: Uint8Array, nowMs: number = Date.now()): Uint8Array {
  if (blob.length < 8) return blob;
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const derLen = Number(dv.getBigUint64(0));
  if (derLen > blob.length - 8) return blob;
  const f = timeFields(blob, 8, 8 + derLen);
  if (!f) return blob;
  const time = uint(blob, f.time[0], f.time[1]);
  const timeout = uint(blob, f.timeout[0], f.timeout[1]);
  if (time === null || timeout === null) return blob;
  const moved = Math.min(Math.floor(nowMs / 1000), time + 1);
  if (moved <= time) return blob;
  const out = Uint8Array.from(blob);
  if (!putUint(out, f.time[0], f.time[1], moved)) return blob;
  // The end stays: a lifetime that cannot be shortened in place (its encoding would shrink) is left a second longer.
  if (timeout > 0) putUint(out, f.timeout[0], f.timeout[1], timeout - (moved - time));
  return out;
}
