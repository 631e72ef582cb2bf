/**
 * SHA-256 of a few small parts — the content ids of configured material (a CA list, a QUIC config's bytes) that
 * pool keys, session-ticket keys and config caches are made of, and that other processes of a fleet must compute
 * alike. Once the QUIC binding is loaded its BoringSSL hashes (useNativeSha256); before it, small inputs are hashed here
 * (FIPS 180-4 §6.2) so that a first HTTP/3 request does not load `node:crypto` for it (a few ms in a fresh process,
 * bench/RESULTS.md `startup`; HTTP/3 needs nothing else of it), large ones by `node:crypto`, which is faster once
 * loaded. All give the same digest (test/unit/digest, test/peer/quic-binding).
 */
import { createHash } from 'node:crypto';

/** Inputs above this many bytes go to `node:crypto`. */
const LOCAL_MAX = 16 * 1024;

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
/** The initial hash value (§5.3.3). */
const H0 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** A native SHA-256 writing 32 bytes into `out` (the QUIC binding's BoringSSL: quic/quiche.ts registers it). */
export type NativeSha256 = (data: Uint8Array, out: Uint8Array) => void;
let native: NativeSha256 | null = null;

/**
 * Hash with `fn` from now on: a binding already loaded for HTTP/3 hashes a content id in microseconds where the code
 * below runs interpreted in a fresh process (and allocates a number per 32-bit step until V8 optimizes it).
 */
export function useNativeSha256(fn: NativeSha256): void {
  native = fn;
}

/** SHA-256 of the parts one after the other (strings as UTF-8). */
export function sha256(parts: ReadonlyArray<string | Uint8Array>): Buffer {
  const bufs = parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
  let len = 0;
  for (const b of bufs) len += b.length;
  if (native !== null) {
    const out = Buffer.allocUnsafe(32);
    native(bufs.length === 1 ? (bufs[0] as Uint8Array) : Buffer.concat(bufs, len), out);
    return out;
  }
  if (len > LOCAL_MAX) {
    const h = createHash('sha256');
    for (const b of bufs) h.update(b);
    return h.digest();
  }
  // The message, a 0x80 byte, zeros to 56 mod 64, the bit length in 8 bytes (§5.1.1).
  const padded = Buffer.alloc((((len + 8) >> 6) + 1) << 6);
  let at = 0;
  for (const b of bufs) {
    padded.set(b, at);
    at += b.length;
  }
  padded[len] = 0x80;
  padded.writeUInt32BE(Math.floor(len / 0x20000000), padded.length - 8);
  padded.writeUInt32BE((len << 3) >>> 0, padded.length - 4);
  // Words kept as signed 32-bit values (Int32Array, `| 0`): a fresh process runs this in V8's interpreter, where a
  // number past 2^31 (what an unsigned word is half the time) is a heap allocation, a small integer is not.
  const H = Int32Array.from(H0);
  const W = new Int32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let t = 0, i = off; t < 16; t++, i += 4)
      W[t] = (padded[i]! << 24) | (padded[i + 1]! << 16) | (padded[i + 2]! << 8) | padded[i + 3]!;
    for (let t = 16; t < 64; t++) {
      const w15 = W[t - 15]!;
      const w2 = W[t - 2]!;
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      W[t] = (((W[t - 16]! + s0) | 0) + ((W[t - 7]! + s1) | 0)) | 0;
    }
    let a = H[0]!;
    let b = H[1]!;
    let c = H[2]!;
    let d = H[3]!;
    let e = H[4]!;
    let f = H[5]!;
    let g = H[6]!;
    let h = H[7]!;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (((h + S1) | 0) + ((ch + ((K[t]! + W[t]!) | 0)) | 0)) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    H[0] = (H[0]! + a) | 0;
    H[1] = (H[1]! + b) | 0;
    H[2] = (H[2]! + c) | 0;
    H[3] = (H[3]! + d) | 0;
    H[4] = (H[4]! + e) | 0;
    H[5] = (H[5]! + f) | 0;
    H[6] = (H[6]! + g) | 0;
    H[7] = (H[7]! + h) | 0;
  }
  const out = Buffer.allocUnsafe(32);
  for (let i = 0; i < 8; i++) out.writeInt32BE(H[i]!, 4 * i);
  return out;
}

/**
 * The content id of one piece of certificate material (a CA's PEM text or bytes, a certificate, a key): SHA-256 of its
 * length, `:` and itself, base64url — what a pool key names its CA by (agent/target.ts) and what the QUIC config cache
 * keys by (quic/config.ts), computed once for both. Once per object for bytes (treated as immutable once given, as the
 * Agent's options are), once per text among the last 64 for strings.
 */
export function contentId(v: string | Uint8Array): string {
  if (typeof v !== 'string') {
    let id = bytesIds.get(v);
    if (id === undefined) bytesIds.set(v, (id = lengthPrefixed([v])));
    return id;
  }
  let id = textIds.get(v);
  if (id === undefined) {
    if (textIds.size >= TEXT_IDS_MAX) textIds.delete(textIds.keys().next().value as string);
    textIds.set(v, (id = lengthPrefixed([v])));
  }
  return id;
}

/** SHA-256 of each part's length, `:` and the part, one after the other, base64url (several CAs in one id). */
export function lengthPrefixed(parts: ReadonlyArray<string | Uint8Array>): string {
  return sha256(parts.flatMap((p) => [String(p.length), ':', p])).toString('base64url');
}

const bytesIds = new WeakMap<Uint8Array, string>();
const textIds = new Map<string, string>();
const TEXT_IDS_MAX = 64;
