/**
 * The Agent's request policy as pure functions: when a failed attempt is
 * sent again, and where. The service forwards through the same Agent, so
 * this is the only retry rule in the product.
 */
import { ErrorCode, type OriginlinkError } from '../errors.js';

export interface RetryInput {
  /** The attempt that just failed, from 1 (requeues included: see `requeues`). */
  attempt: number;
  /** Retries allowed on top of the first attempt. */
  maxRetries: number;
  /**
   * The body can be sent again (none, string or bytes, or a streamed body whole in its retry buffer: replay-body.ts).
   */
  replayable: boolean;
  /** Idempotent method or an Idempotency-Key (RFC 9110 §9.2.2). */
  idempotent: boolean;
  /** The caller's signal fired. */
  aborted: boolean;
  /** URLs of the origin (ordered failover); 1 for a plain URL. */
  urls: number;
  /** URLs of the failover list this request has not tried yet (0 for a plain URL). */
  untried: number;
  /** The next attempt goes to another server than the one that failed: an origin group's endpoint not tried yet. */
  otherServer?: boolean;
  /** Times the request went back to its queue after a refused stream (see `requeue` below). */
  requeues: number;
}

export type RetryDecision =
  | { retry: false }
  /**
   * `failover`: the next attempt goes to the next URL (the origin could not be reached). `requeue`: the stream was
   * refused unprocessed; the request goes back to its queue without spending a retry (nor a group's retry budget).
   */
  | { retry: true; failover: boolean; requeue: boolean };

/**
 * Requeues a request may take besides its retries. A refused stream (RFC 9113 §8.7 REFUSED_STREAM, RFC 9114 §4.1.1
 * H3_REQUEST_REJECTED) says the origin did not process it — typically a burst above its stream limit — so it waits
 * for a slot like any queued request; an origin that refuses everything still fails within a few.
 */
export const MAX_REQUEUES = 8;

/**
 * How a reused connection fails when the origin closed it as we sent (the stale keep-alive race): the connection
 * is gone. A timeout, a malformed answer or a stream reset is the origin's answer to this request, not that race:
 * sent again, a slow origin would get each request 1 + retries times, and the client its 504 that much later.
 */
const CONNECTION_LOST: ReadonlySet<string> = new Set([
  ErrorCode.SOCKET_CLOSED,
  ErrorCode.SOCKET_RESET,
  ErrorCode.QUIC_FAILED,
]);

/**
 * Failures that say this URL's server could not be reached or spoken to: its name does not resolve, its port
 * refuses or does not answer, its TLS handshake fails or its certificate is not trusted, it does not speak the
 * protocol asked for (ALPN). Tried again within the request they fail the same way (its pool answers at once while
 * its connects back off, pool.ts), so only the next URL of an ordered failover is tried, never this one again — as
 * nginx's proxy_next_upstream moves to the next server and never back to the one that failed.
 */
const UNREACHABLE: ReadonlySet<string> = new Set([
  ErrorCode.DNS_FAILED,
  ErrorCode.CONNECT_FAILED,
  ErrorCode.CONNECT_TIMEOUT,
  ErrorCode.TLS_FAILED,
  ErrorCode.CERT_INVALID,
  ErrorCode.CLIENT_CERT_REFUSED,
  ErrorCode.UNSUPPORTED_PROTOCOL,
]);

/**
 * The failure says this URL's server could not be reached: an ordered failover moves to the next URL (requests and
 * tunnels alike).
 */
export function unreachable(err: OriginlinkError): boolean {
  return UNREACHABLE.has(err.code);
}

/**
 * The connection carrying the request was lost (closed, reset, QUIC failed) before any byte of its response: what
 * an idempotent request may be sent again after (never a timeout, a malformed answer or a stream reset: those are
 * the answer). The fleet's member link reads it too (service/upstream.ts).
 */
export function lostBeforeAnswer(err: OriginlinkError): boolean {
  return CONNECTION_LOST.has(err.code) && err.facts !== null && !err.facts.responseStarted;
}

/**
 * May a request the origin may already have processed be sent again: an idempotent one (RFC 9110 §9.2.2: its
 * method, or an `Idempotency-Key`) whose body can be sent again. The retry rule's test for the stale keep-alive
 * race and an abandoned 0-RTT attempt below, and the only test a hedge (a second attempt sent while the first
 * may be processing: agent/hedge.ts) has to pass.
 */
export function replaySafe(r: Pick<RetryInput, 'replayable' | 'idempotent'>): boolean {
  return r.replayable && r.idempotent;
}

/**
 * Never a silent replay of anything but:
 *  - a replayable body, not aborted by the caller, within the attempt budget
 *    (`1 + maxRetries`, plus one per further URL when failing over),
 *  - never to a URL that was unreachable or whose queue was full (only to a URL not tried yet), and
 *  - either the failure proves the origin did not process the request
 *    (`retrySafe`: never connected, refused stream, above GOAWAY's last id,
 *    early data rejected), or the request is idempotent and its reused
 *    connection was lost before any response byte (the stale keep-alive race),
 *    or its connection, fresh or not, was lost before any response byte and
 *    the next attempt goes to another server of its group (nginx's
 *    proxy_next_upstream `error` for idempotent requests; RFC 9110 §9.2.2
 *    lets a client retry an idempotent request automatically),
 *    or left as 0-RTT early data on a connection abandoned before its
 *    handshake completed (EARLY_DATA_ABANDONED; same uncertainty, same rule).
 */
export function retryDecision(err: OriginlinkError, r: RetryInput): RetryDecision {
  if (!r.replayable || r.aborted || err.code === ErrorCode.ABORTED) return NO;
  // Refused proxy credentials: the same node refuses again, another node would be a silent change of identity.
  if (err.code === ErrorCode.PROXY_AUTH_FAILED) return NO;
  const facts = err.facts;
  const unanswered = replaySafe(r) && facts !== null && !facts.responseStarted;
  const lost = unanswered && CONNECTION_LOST.has(err.code);
  const staleReuse = lost && facts.reused;
  const lostElsewhere = lost && r.otherServer === true;
  const abandonedEarly = unanswered && err.code === ErrorCode.EARLY_DATA_ABANDONED;
  // A TCP Fast Open SYN never answered (net/tcp.ts confirmWithin): its data may have arrived, as 0-RTT's may.
  const unansweredSyn = unanswered && err.code === ErrorCode.CONNECT_TIMEOUT;
  if (!err.retrySafe && !staleReuse && !lostElsewhere && !abandonedEarly && !unansweredSyn) return NO;
  // Closed under the request (never sent: retry-safe for a caller with somewhere else to send it, the fleet's member
  // link), the same Agent stays closed: a retry here could only fail again.
  if (err.code === ErrorCode.POOL_CLOSED) return NO;
  if (err.code === ErrorCode.STREAM_RESET && r.requeues < MAX_REQUEUES) return REQUEUE;
  // Our own queue full or waited out: the same pool again only queues again (at the back, three timeouts long);
  // another URL of the origin may have room. An unreachable URL: only another URL may answer.
  const failover = unreachable(err) || err.code === ErrorCode.QUEUE_FULL || err.code === ErrorCode.QUEUE_TIMEOUT;
  if (failover && r.untried <= 0) return NO;
  const budget = 1 + r.maxRetries + (failover ? r.urls - 1 : 0);
  if (r.attempt - r.requeues >= budget) return NO;
  return failover ? FAILOVER : RETRY;
}

const NO: RetryDecision = { retry: false };
const RETRY: RetryDecision = { retry: true, failover: false, requeue: false };
const FAILOVER: RetryDecision = { retry: true, failover: true, requeue: false };
const REQUEUE: RetryDecision = { retry: true, failover: false, requeue: true };
