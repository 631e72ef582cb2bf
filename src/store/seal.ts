/**
 * Encryption at rest for resumption secrets kept in a shared store:
 * AES-256-GCM (node:crypto), a fresh 96-bit nonce per entry (NIST SP 800-38D
 * §8.2.2: random nonces stay safe far beyond the entry counts of a ticket
 * store), the store key as additional data so an entry copied under another
 * key fails to open.
 *
 * Sealed layout: 0x01 | nonce (12) | ciphertext | tag (16).
 * `open` returns null for anything that does not authenticate (wrong key,
 * tampered, truncated, or not sealed at all): callers ignore the entry.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorCode, OriginlinkError } from '../errors.js';

const VERSION = 0x01;
const NONCE = 12;
const TAG = 16;

export class Sealer {
  #key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== 32)
      throw new OriginlinkError(
        ErrorCode.INVALID_ARGUMENT,
        'local',
        `an encryption key must be 32 bytes (AES-256), got ${key.length}`,
      );
    this.#key = Buffer.from(key);
  }

  seal(plain: Uint8Array, aad: string): Buffer {
    const nonce = randomBytes(NONCE);
    const c = createCipheriv('aes-256-gcm', this.#key, nonce);
    c.setAAD(Buffer.from(aad));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([Buffer.of(VERSION), nonce, body, c.getAuthTag()]);
  }

  open(sealed: Uint8Array, aad: string): Buffer | null {
    if (sealed.length < 1 + NONCE + TAG || sealed[0] !== VERSION) return null;
    const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    try {
      const d = createDecipheriv('aes-256-gcm', this.#key, b.subarray(1, 1 + NONCE));
      d.setAAD(Buffer.from(aad));
      d.setAuthTag(b.subarray(b.length - TAG));
      return Buffer.concat([d.update(b.subarray(1 + NONCE, b.length - TAG)), d.final()]);
    } catch {
      return null;
    }
  }
}

/** A key as 64 hex digits or base64 of 32 bytes (surrounding whitespace ignored). */
export function parseKey(text: string, where = 'encryption key'): Buffer {
  const t = text.trim();
  const k = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (k.length !== 32)
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `${where}: want 32 bytes as 64 hex digits or base64, got ${k.length} bytes`,
    );
  return k;
}

export function readKeyFile(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new OriginlinkError(
      ErrorCode.INVALID_ARGUMENT,
      'local',
      `cannot read encryption key file ${path}: ${(e as Error).message}`,
    );
  }
  return parseKey(text, path);
}
