/**
 * Map a closed quiche connection onto the public error tree. Transport and
 * crypto codes per RFC 9000 §20.1; TLS alerts ride in 0x0100–0x01ff
 * (RFC 9001 §4.8).
 */
import { clientCertRefused, ErrorCode, NOT_SENT, OriginlinkError } from '../errors.js';
import type { QuicheConnection, QuicheConnectionError } from './quiche.js';

/**
 * TLS alerts that mean "the certificate was not acceptable" (RFC 8446 §6.2), by name; certificate_required (116)
 * is a server's only: it asked for ours and got none.
 */
const CERT_ALERTS: ReadonlyMap<number, string> = new Map([
  [42, 'bad_certificate'],
  [43, 'unsupported_certificate'],
  [44, 'certificate_revoked'],
  [45, 'certificate_expired'],
  [46, 'certificate_unknown'],
  [48, 'unknown_ca'],
  [49, 'access_denied'],
  [116, 'certificate_required'],
]);

export const CRYPTO_ERROR_BASE = 0x100;

/** A close is clean with transport code 0, or with the application's own no-error code (HTTP/3: 0x100). */
function isClean(e: QuicheConnectionError, appNoError: number): boolean {
  return e.isApp ? e.errorCode === 0 || e.errorCode === appNoError : e.errorCode === 0;
}

function describe(e: QuicheConnectionError): string {
  const reason = e.reason.length ? ` "${Buffer.from(e.reason).toString('utf8').slice(0, 200)}"` : '';
  const kind = e.isApp
    ? 'application'
    : e.errorCode >= 0x100 && e.errorCode <= 0x1ff
      ? `TLS alert ${e.errorCode - 0x100}`
      : 'transport';
  return `${kind} error 0x${e.errorCode.toString(16)}${reason}`;
}

function fromWire(
  e: QuicheConnectionError,
  by: 'peer' | 'local',
  established: boolean,
  quicheError: string | null = null,
  peer: string | null = null,
  shown: boolean | null = null,
): OriginlinkError {
  const details = {
    wireCode: e.errorCode,
    isApp: e.isApp,
    closedBy: by,
    established,
    ...(quicheError ? { quicheError } : {}),
  };
  const isCrypto = !e.isApp && e.errorCode >= 0x100 && e.errorCode <= 0x1ff;
  const alert = isCrypto ? CERT_ALERTS.get(e.errorCode - 0x100) : undefined;
  // The peer's alert about a certificate: ours (a server refusing our client certificate); ours about theirs: a
  // server certificate we did not accept (a server refusing a client's is the front's business, not an error here).
  if (alert !== undefined && by === 'peer')
    return clientCertRefused(alert, peer ?? 'the QUIC peer', undefined, shown).with({ details, facts: NOT_SENT });
  if (alert !== undefined) {
    return new OriginlinkError(
      ErrorCode.CERT_INVALID,
      'remote',
      `QUIC handshake failed: the server certificate was rejected (${describe(e)})`,
      { details },
    );
  }
  const side = by === 'peer' ? 'remote' : 'local';
  return new OriginlinkError(ErrorCode.QUIC_FAILED, side, `QUIC connection closed by ${by}: ${describe(e)}`, {
    details,
    retrySafe: !established,
  });
}

/**
 * The error for a connection that quiche reports closed; null when clean.
 * `lastRecvError`: quiche's error name from the last failed recv(), kept in
 * `details.quicheError` of a local transport close (quiche closes with the
 * wire code of the error a received packet raised, e.g. InvalidState → 0xa).
 */
export function closeError(
  conn: QuicheConnection,
  established: boolean,
  lastRecvError: string | null = null,
  appNoError = 0,
  /** The peer as errors name it (`host:port`). */
  peerName: string | null = null,
  /** Client: whether we showed a certificate (null: unknown). */
  shown: boolean | null = null,
): OriginlinkError | null {
  if (conn.isTimedOut()) {
    if (!established) {
      return new OriginlinkError(
        ErrorCode.CONNECT_TIMEOUT,
        'network',
        'QUIC handshake timed out (no answer from the peer)',
        {
          retrySafe: true,
          details: { established },
        },
      );
    }
    return new OriginlinkError(ErrorCode.QUIC_FAILED, 'network', 'QUIC connection idle timeout', {
      details: { idle: true, established },
    });
  }
  const peer = conn.peerError();
  if (peer) return isClean(peer, appNoError) ? null : fromWire(peer, 'peer', established, null, peerName, shown);
  const local = conn.localError();
  if (local)
    return isClean(local, appNoError)
      ? null
      : fromWire(local, 'local', established, local.isApp ? null : lastRecvError);
  // Closed with no error either way and not timed out: quiche took a packet for a stateless reset (RFC 9000 §10.3).
  if (established)
    return new OriginlinkError(
      ErrorCode.QUIC_FAILED,
      'remote',
      'QUIC connection reset by the peer (a stateless reset: it holds no such connection any more)',
      { details: { statelessReset: true, established } },
    );
  return null;
}
