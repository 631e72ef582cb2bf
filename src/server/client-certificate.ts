/**
 * The client certificate a front verified (mutual TLS, RFC 8446 §4.4.2): what the forwarder may pass on to the origin
 * and log. One shape for the TCP fronts (node:tls, verified against the listener's client CAs) and the h3 front
 * (BoringSSL through quiche, the same CAs); read once per connection.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

export interface ClientCertificate {
  /** The subject's distinguished name, RDNs joined by commas as OpenSSL prints them one per line (`CN=edge.test`). */
  subject: string;
  /** SHA-256 of the DER certificate, lower-case hex without separators (Envoy's XFCC `Hash`). */
  fingerprint: string;
}

function describe(x: X509Certificate): ClientCertificate {
  return { subject: x.subject.split('\n').join(','), fingerprint: x.fingerprint256.replaceAll(':', '').toLowerCase() };
}

/** A TLS socket's client certificate when its handshake verified one, else null (none shown, or not verified). */
export function verifiedClientCertificate(s: object): ClientCertificate | null {
  const t = s as Partial<TLSSocket>;
  if (typeof t.getPeerX509Certificate !== 'function' || t.authorized !== true) return null;
  const x = t.getPeerX509Certificate();
  return x ? describe(x) : null;
}

/** The leaf of a DER chain a QUIC handshake verified (quiche refuses one that does not verify), or null. */
export function clientCertificateFromDer(chain: readonly Uint8Array[] | null): ClientCertificate | null {
  const leaf = chain?.[0];
  if (!leaf) return null;
  try {
    return describe(new X509Certificate(leaf));
  } catch {
    return null;
  }
}
