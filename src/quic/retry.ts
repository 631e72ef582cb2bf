/**
 * Stateless Retry tokens (RFC 9000 §8.1.2): the server proves the client's
 * address before committing state. Token = expiry(4) | odcidLen(1) | odcid |
 * HMAC-SHA256(key, addr|port|expiry|odcid)[0..16). Keyed per process, or by a key a fleet shares (a token
 * one instance minted is taken by another that the client's next Initial reaches).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const MAC_LEN = 16;
const LIFETIME_S = 10;

export class RetryTokens {
  /** Made at the first token (a client's endpoint never needs one, nor node:crypto for it). */
  #key: Uint8Array | undefined;

  constructor(key?: Uint8Array) {
    this.#key = key;
  }

  #mac(host: string, port: number, expiry: number, odcid: Uint8Array): Buffer {
    this.#key ??= randomBytes(32);
    return createHmac('sha256', this.#key)
      .update(`${host}|${port}|${expiry}|`)
      .update(odcid)
      .digest()
      .subarray(0, MAC_LEN);
  }

  mint(host: string, port: number, odcid: Uint8Array): Buffer {
    const expiry = Math.floor(Date.now() / 1000) + LIFETIME_S;
    const head = Buffer.alloc(5);
    head.writeUInt32BE(expiry >>> 0, 0);
    head[4] = odcid.length;
    return Buffer.concat([head, odcid, this.#mac(host, port, expiry, odcid)]);
  }

  /** The original DCID when the token is valid for this address, else null. */
  check(host: string, port: number, token: Uint8Array): Uint8Array | null {
    if (token.length < 5 + MAC_LEN) return null;
    const t = Buffer.from(token.buffer, token.byteOffset, token.byteLength);
    const expiry = t.readUInt32BE(0);
    const len = t[4]!;
    if (t.length !== 5 + len + MAC_LEN || len > 20) return null;
    if (expiry < Math.floor(Date.now() / 1000)) return null;
    const odcid = t.subarray(5, 5 + len);
    const mac = t.subarray(5 + len);
    return timingSafeEqual(mac, this.#mac(host, port, expiry, odcid)) ? Buffer.from(odcid) : null;
  }
}
