/**
 * The fronts' session-ticket keys (https: node:tls `setTicketKeys`; h3: quiche's `set_ticket_key`), rotated on a
 * period and shared by every process that holds the same secret. RFC 8446 §C.4 and RFC 5077 §5.5 ask for rotation: a
 * ticket key that lives for months undoes forward secrecy for every session it sealed.
 *
 * One mechanism: a fleet secret (32 bytes, from `tickets.secretFile`, else from the stores' Redis sealed with their
 * encryption key, else made by the `serve --workers` primary for its workers, else this process's own) and the
 * wall clock. The key of epoch e = floor(now / rotateMs) is HKDF-SHA256(secret, salt = e, info = "originlink
 * ticket key"), 48 bytes: processes that share the secret switch together at the same boundaries without talking
 * to each other, and a key is never stored anywhere. Other fleet secrets derive from the same secret under their own
 * labels (`derive`).
 *
 * What the stacks allow: node:tls and quiche each take one ticket key and open tickets under it alone (neither
 * exposes OpenSSL's/BoringSSL's ticket key callback through the APIs we use), so a ticket sealed before a rotation
 * costs its client a full handshake after it. The resumption rate dips at each boundary and recovers as clients
 * take new tickets (bench/RESULTS.md `tickets`).
 */
import { hkdfSync, randomBytes } from 'node:crypto';

export const DEFAULT_TICKET_ROTATE_MS = 3_600_000;
const TICKET_LABEL = 'originlink ticket key';

/** HKDF-SHA256 of the fleet secret for `label` and `epoch`: `length` bytes. */
export function derive(secret: Uint8Array, label: string, epoch: number, length: number): Buffer {
  const salt = Buffer.alloc(8);
  salt.writeBigUInt64BE(BigInt(epoch));
  return Buffer.from(hkdfSync('sha256', secret, salt, label, length));
}

export type TicketSecretSource = 'file' | 'redis' | 'primary' | 'process';

export class TicketKeys {
  #secret: Buffer;
  #rotateMs: number;
  #source: TicketSecretSource;
  #epoch: number;
  #key: Buffer;
  #timer: NodeJS.Timeout | null = null;
  #listeners = new Set<(key: Buffer) => void>();
  readonly #now: () => number;

  constructor(secret: Uint8Array, rotateMs: number, source: TicketSecretSource, now: () => number = Date.now) {
    this.#now = now;
    this.#secret = Buffer.from(secret);
    this.#rotateMs = rotateMs;
    this.#source = source;
    this.#epoch = Math.floor(now() / rotateMs);
    this.#key = derive(this.#secret, TICKET_LABEL, this.#epoch, 48);
    this.#arm();
  }

  /** The key of the current epoch (48 bytes: name, HMAC and AES keys as node:tls and quiche take them). */
  key(): Buffer {
    return this.#key;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get source(): TicketSecretSource {
    return this.#source;
  }

  get rotateMs(): number {
    return this.#rotateMs;
  }

  /** A key of `length` bytes for `label` from the fleet secret, not rotated (the h3 front's Retry tokens). */
  fleetKey(label: string, length = 32): Buffer {
    return derive(this.#secret, label, 0, length);
  }

  /** `fn` gets each new key as its epoch begins (and after `reconfigure`); the returned function unsubscribes. */
  onRotate(fn: (key: Buffer) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Another secret or period (a reload): the new key at once when it differs. */
  reconfigure(secret: Uint8Array, rotateMs: number, source: TicketSecretSource): void {
    if (this.#secret.equals(Buffer.from(secret)) && rotateMs === this.#rotateMs) return;
    this.#secret = Buffer.from(secret);
    this.#rotateMs = rotateMs;
    this.#source = source;
    this.#tick();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#listeners.clear();
  }

  #tick(): void {
    this.#epoch = Math.floor(this.#now() / this.#rotateMs);
    this.#key = derive(this.#secret, TICKET_LABEL, this.#epoch, 48);
    for (const fn of this.#listeners) fn(this.#key);
    this.#arm();
  }

  /** A timer to the next boundary (unreferenced: it never holds the process). */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    const next = (this.#epoch + 1) * this.#rotateMs;
    this.#timer = setTimeout(() => this.#tick(), Math.max(1, next - this.#now()));
    this.#timer.unref();
  }
}

/** A fresh secret for a process (or a primary's workers) that shares none. */
export function freshSecret(): Buffer {
  return randomBytes(32);
}
