/**
 * Several server certificates on one listener, chosen by the name a client
 * asks for (TLS server_name, RFC 6066 §3), as nginx does with server blocks
 * and HAProxy with a `crt` list: each certificate answers for the DNS names
 * in its subjectAltName (its subject CN when it has no subjectAltName), a wildcard
 * `*.example.com` for one label (RFC 6125 §6.4.3), an exact name before a
 * wildcard, the first certificate listed before a later one with the same
 * name; a client that sends no name or a name no certificate holds gets the
 * default. One rule for the https front (node:tls SNICallback) and the h3
 * front (the quiche Config chosen before accept, quic/initial.ts).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorCode, OriginlinkError } from '../errors.js';

/** The DNS names a PEM certificate (its first, the leaf) answers for, lower-cased; `pem` may be a file path. */
export function certificateNames(pem: Uint8Array | string): string[] {
  let x: X509Certificate;
  try {
    const bytes = typeof pem !== 'string' ? Buffer.from(pem) : pem.includes('-----BEGIN') ? pem : readFileSync(pem);
    x = new X509Certificate(bytes);
  } catch (e) {
    throw new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', `not a PEM certificate: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const names: string[] = [];
  for (const part of (x.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) names.push(part.slice(4).toLowerCase());
  }
  if (x.subjectAltName === undefined) {
    // RFC 6125 §6.4.4: the subject CN only when there is no subjectAltName at all.
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
    if (cn) names.push(cn.toLowerCase());
  }
  return names;
}

export class CertificateSet<T> {
  readonly #exact = new Map<string, T>();
  readonly #wild = new Map<string, T>();
  readonly default: T;

  /** `entries[0]` is the default; each entry answers for `names` (see certificateNames). */
  constructor(entries: ReadonlyArray<{ names: readonly string[]; item: T }>) {
    if (entries.length === 0)
      throw new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', 'a certificate set needs at least one certificate');
    this.default = entries[0]!.item;
    for (const { names, item } of entries) {
      for (const n of names) {
        const name = n.toLowerCase();
        if (name.startsWith('*.')) {
          if (!this.#wild.has(name.slice(2))) this.#wild.set(name.slice(2), item);
        } else if (!this.#exact.has(name)) {
          this.#exact.set(name, item);
        }
      }
    }
  }

  /** How many distinct names are served. */
  get size(): number {
    return this.#exact.size + this.#wild.size;
  }

  /** The certificate for a requested name; the default for none or an unknown one. */
  select(serverName: string | null | undefined): T {
    if (!serverName) return this.default;
    const name = serverName.toLowerCase().replace(/\.$/, '');
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wild = this.#wild.get(name.slice(dot + 1));
      if (wild !== undefined) return wild;
    }
    return this.default;
  }
}
