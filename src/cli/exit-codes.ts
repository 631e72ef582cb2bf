/**
 * `originlink fetch` exits as curl does (curl(1), EXIT CODES), so a script written for curl branches the same
 * way: 6 a name that does not resolve, 7 a refused connect, 28 a timeout, 35 a TLS handshake that failed, 60 a
 * certificate not trusted, 22 an HTTP error status only with -f. One table: the mapping and the text --help and
 * the README print.
 */
import { ErrorCode, type OriginlinkError } from '../errors.js';

/** The codes we use, with curl's meaning. */
export const EXIT_CODES: ReadonlyArray<readonly [number, string]> = [
  [0, 'success (any HTTP status without -f)'],
  [
    1,
    'protocol not supported (not http/https; h3 with http://; the origin does not speak the protocol asked for); anything else',
  ],
  [2, 'bad option or argument'],
  [3, 'malformed URL'],
  [6, 'could not resolve the host name'],
  [7, 'could not connect (refused, unreachable)'],
  [8, 'weird server reply (malformed response head)'],
  [16, 'HTTP/2 error (GOAWAY, protocol error)'],
  [18, 'partial body: the connection closed before the whole body (short of Content-Length, no last chunk)'],
  [22, 'HTTP status 400 or more, with -f/--fail only'],
  [23, 'could not write the body (-o)'],
  [26, 'could not read the request body (-d @FILE)'],
  [28, 'timeout (connect, response head, body, --max-time)'],
  [35, 'TLS handshake failed'],
  [47, 'too many redirects (-L, --max-redirs)'],
  [52, 'empty reply: the connection closed before any response byte'],
  [
    56,
    'failure receiving: the connection reset mid-response, or closed in its head; the origin refused our client certificate',
  ],
  [58, 'cannot read the client certificate or key (--cert, --key), or they do not fit'],
  [60, 'the server certificate is not trusted or not valid for the name'],
  [77, 'cannot read the CA file (--cacert)'],
  [92, 'HTTP/2 stream reset'],
  [95, 'HTTP/3 or QUIC error'],
  [97, 'egress proxy failed or refused the credentials'],
];

export const EXIT_TABLE = EXIT_CODES.map(([n, what]) => `  ${String(n).padStart(2)}  ${what}`).join('\n');

/** curl's exit code for a failed request. */
export function exitCodeFor(e: OriginlinkError): number {
  switch (e.code) {
    case ErrorCode.DNS_FAILED:
      return 6;
    case ErrorCode.CONNECT_FAILED:
      return 7;
    case ErrorCode.MALFORMED_RESPONSE:
    case ErrorCode.HEADERS_TOO_LARGE:
    case ErrorCode.UNSOLICITED_RESPONSE:
      return 8;
    case ErrorCode.GOAWAY:
    case ErrorCode.PROTOCOL_ERROR:
      return 16;
    case ErrorCode.BODY_MISMATCH:
      return 18;
    case ErrorCode.REQUEST_BODY_FAILED:
      return 26;
    case ErrorCode.CONNECT_TIMEOUT:
    case ErrorCode.HEADERS_TIMEOUT:
    case ErrorCode.BODY_TIMEOUT:
    case ErrorCode.QUEUE_TIMEOUT:
    case ErrorCode.PING_TIMEOUT:
      return 28;
    case ErrorCode.TLS_FAILED:
      return 35;
    case ErrorCode.SOCKET_CLOSED:
      return e.facts?.responseStarted ? 56 : 52;
    case ErrorCode.SOCKET_RESET:
    case ErrorCode.CLIENT_CERT_REFUSED:
      return 56;
    case ErrorCode.CERT_INVALID:
      return 60;
    case ErrorCode.STREAM_RESET:
      return 92;
    case ErrorCode.QUIC_FAILED:
    case ErrorCode.H3_ERROR:
    case ErrorCode.QPACK_ERROR:
    case ErrorCode.EARLY_DATA_REJECTED:
    case ErrorCode.EARLY_DATA_ABANDONED:
      return 95;
    case ErrorCode.PROXY_FAILED:
    case ErrorCode.PROXY_AUTH_FAILED:
      return 97;
    case ErrorCode.INVALID_ARGUMENT:
    case ErrorCode.INVALID_CONFIG:
      return 2;
    default:
      return 1;
  }
}
