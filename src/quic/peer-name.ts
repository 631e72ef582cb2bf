/**
 * Server identity check on the client side. BoringSSL (via quiche) checks
 * the chain, and the host name when one was given as SNI (a wrong name fails
 * the handshake with alert 42, tested); an IP literal is never sent as SNI
 * (RFC 6066 §3), so IP SANs are checked here, by the QUIC binding's BoringSSL (or node:crypto when it lacks the
 * call, and for the message of a mismatch). DNS names are not parsed again: BoringSSL checked them.
 */
import { X509Certificate } from 'node:crypto';
import { ipFamily } from '../util/ip.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { quiche, type QuicheConnection } from './quiche.js';

/** null when the leaf matches `host` (or no host is to be checked). */
export function checkPeerName(q: QuicheConnection, host: string | null): OriginlinkError | null {
  if (!host || !ipFamily(host)) return null;
  const der = q.peerCertChain()?.[0];
  if (!der) return new OriginlinkError(ErrorCode.CERT_INVALID, 'remote', 'QUIC peer presented no certificate');
  try {
    // The binding's BoringSSL where it has the call (a client then needs nothing of node:crypto), else Node's.
    if (quiche().certMatchesIp?.(der, host) === true) return null;
    const cert = new X509Certificate(der);
    if (cert.checkIP(host) !== undefined) return null;
    return new OriginlinkError(
      ErrorCode.CERT_INVALID,
      'remote',
      `QUIC server certificate does not match ${host} (subjectAltName: ${cert.subjectAltName ?? 'none'})`,
      {
        details: { host },
      },
    );
  } catch (e) {
    return new OriginlinkError(
      ErrorCode.CERT_INVALID,
      'remote',
      `QUIC server certificate unreadable: ${(e as Error).message}`,
      { cause: e },
    );
  }
}
