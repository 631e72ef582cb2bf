/** The Agent's request policy (src/agent/policy.ts, src/http/early-data.ts): pure, table-driven. */
import { describe, expect, it } from 'vitest';
import { MAX_REQUEUES, retryDecision, type RetryInput } from '../../src/agent/policy.js';
import { earlyDataAllowed, earlyReplayAllowed } from '../../src/http/early-data.js';
import { isIdempotentRequest, isSafeMethod } from '../../src/http/methods.js';
import { endToEnd } from '../../src/http/fields.js';
import { ErrorCode, NOT_SENT, OriginlinkError, socketFailure, type ExchangeFacts } from '../../src/errors.js';

const base: RetryInput = {
  attempt: 1,
  maxRetries: 2,
  replayable: true,
  idempotent: true,
  aborted: false,
  urls: 1,
  untried: 0,
  requeues: 0,
};
const twoUrls = { ...base, urls: 2, untried: 1 };
const err = (code: string, retrySafe: boolean, facts: ExchangeFacts | null): OriginlinkError =>
  new OriginlinkError(code, 'remote', 'x', { retrySafe, facts });
const staleReuse: ExchangeFacts = { reused: true, requestSent: true, responseStarted: false };
const fresh: ExchangeFacts = { reused: false, requestSent: true, responseStarted: false };
const answered: ExchangeFacts = { reused: true, requestSent: true, responseStarted: true };

describe('retryDecision', () => {
  it.each([
    // A failure the same URL would give again (issue 45: each request waited out the backoff up to 28 s to meet it).
    ['connect refused, one URL: refused again', err(ErrorCode.CONNECT_FAILED, true, NOT_SENT), base, false],
    ['connect refused, another URL to try', err(ErrorCode.CONNECT_FAILED, true, NOT_SENT), twoUrls, true],
    ['connect timeout, one URL', err(ErrorCode.CONNECT_TIMEOUT, true, NOT_SENT), base, false],
    ['untrusted certificate, one URL', err(ErrorCode.CERT_INVALID, true, NOT_SENT), base, false],
    ['untrusted certificate, another URL to try', err(ErrorCode.CERT_INVALID, true, NOT_SENT), twoUrls, true],
    ['TLS handshake failed, one URL', err(ErrorCode.TLS_FAILED, true, NOT_SENT), base, false],
    ['no h2 by ALPN, one URL', err(ErrorCode.UNSUPPORTED_PROTOCOL, true, NOT_SENT), base, false],
    ['name does not resolve, one URL', err(ErrorCode.DNS_FAILED, true, NOT_SENT), base, false],
    ['name does not resolve, another URL to try', err(ErrorCode.DNS_FAILED, true, NOT_SENT), twoUrls, true],
    ['refused stream / above GOAWAY', err(ErrorCode.GOAWAY, true, fresh), { ...base, idempotent: false }, true],
    // Never sent, so retry-safe (the fleet's member link sends it direct), but the Agent stays closed.
    ['pool or Agent closed under the request', err(ErrorCode.POOL_CLOSED, true, NOT_SENT), twoUrls, false],
    [
      'stale keep-alive: idempotent, reused, no response byte',
      err(ErrorCode.SOCKET_CLOSED, false, staleReuse),
      base,
      true,
    ],
    [
      'stale keep-alive but POST',
      err(ErrorCode.SOCKET_CLOSED, false, staleReuse),
      { ...base, idempotent: false },
      false,
    ],
    ['idempotent on a fresh connection', err(ErrorCode.SOCKET_CLOSED, false, fresh), base, false],
    // An origin group's endpoint died under it (SIGKILL): another endpoint not tried yet takes it, as nginx's proxy_next_upstream.
    [
      'idempotent on a fresh connection, another server of the group next',
      err(ErrorCode.SOCKET_CLOSED, false, fresh),
      { ...base, otherServer: true },
      true,
    ],
    [
      'reset on a fresh connection, another server next',
      err(ErrorCode.SOCKET_RESET, false, fresh),
      { ...base, otherServer: true },
      true,
    ],
    [
      'POST on a fresh connection, another server next',
      err(ErrorCode.SOCKET_CLOSED, false, fresh),
      { ...base, otherServer: true, idempotent: false },
      false,
    ],
    [
      'a response byte had arrived, another server next',
      err(ErrorCode.SOCKET_RESET, false, answered),
      { ...base, otherServer: true },
      false,
    ],
    [
      'headers timeout, another server next (a slow server, not a lost one)',
      err(ErrorCode.HEADERS_TIMEOUT, false, fresh),
      { ...base, otherServer: true },
      false,
    ],
    ['a response byte had arrived', err(ErrorCode.SOCKET_RESET, false, answered), base, false],
    ['unknown facts', err(ErrorCode.SOCKET_CLOSED, false, null), base, false],
    ['streamed body', err(ErrorCode.GOAWAY, true, NOT_SENT), { ...base, replayable: false }, false],
    ['caller aborted', err(ErrorCode.GOAWAY, true, NOT_SENT), { ...base, aborted: true }, false],
    ['ABORTED code', err(ErrorCode.ABORTED, true, NOT_SENT), base, false],
    ['budget spent', err(ErrorCode.GOAWAY, true, NOT_SENT), { ...base, attempt: 3 }, false],
    ['timeout after the request was sent', err(ErrorCode.HEADERS_TIMEOUT, false, fresh), base, false],
    ['stale keep-alive, reset (h1) or QUIC closed (h3)', err(ErrorCode.SOCKET_RESET, false, staleReuse), base, true],
    ['stale keep-alive, QUIC connection closed', err(ErrorCode.QUIC_FAILED, false, staleReuse), base, true],
    // The origin's answer to this request, not the stale race: sent again, a slow origin gets it 1 + retries times.
    ['headers timeout on a reused connection', err(ErrorCode.HEADERS_TIMEOUT, false, staleReuse), base, false],
    ['our queue full, one URL: queuing again helps nothing', err(ErrorCode.QUEUE_FULL, true, NOT_SENT), base, false],
    ['our queue waited out, one URL', err(ErrorCode.QUEUE_TIMEOUT, true, NOT_SENT), base, false],
    ['our queue waited out, another URL to try', err(ErrorCode.QUEUE_TIMEOUT, true, NOT_SENT), twoUrls, true],
    [
      'our queue waited out, every URL tried',
      err(ErrorCode.QUEUE_TIMEOUT, true, NOT_SENT),
      { ...base, urls: 2, attempt: 2 },
      false,
    ],
    ['body timeout on a reused connection', err(ErrorCode.BODY_TIMEOUT, false, staleReuse), base, false],
    [
      "our client's upload stalled on a reused connection",
      err(ErrorCode.REQUEST_BODY_TIMEOUT, false, staleReuse),
      base,
      false,
    ],
    ['malformed answer on a reused connection', err(ErrorCode.MALFORMED_RESPONSE, false, staleReuse), base, false],
    [
      '0-RTT request abandoned before the handshake, idempotent',
      err(ErrorCode.EARLY_DATA_ABANDONED, false, fresh),
      base,
      true,
    ],
    [
      '0-RTT request abandoned before the handshake, POST',
      err(ErrorCode.EARLY_DATA_ABANDONED, false, fresh),
      { ...base, idempotent: false },
      false,
    ],
    // A TCP Fast Open SYN never answered, its request in the SYN's data: as uncertain as 0-RTT, the same rule.
    ['TFO SYN unanswered, idempotent, another URL to try', err(ErrorCode.CONNECT_TIMEOUT, false, fresh), twoUrls, true],
    [
      'TFO SYN unanswered, POST, another URL to try',
      err(ErrorCode.CONNECT_TIMEOUT, false, fresh),
      { ...twoUrls, idempotent: false },
      false,
    ],
    ['TFO SYN unanswered, idempotent, one URL', err(ErrorCode.CONNECT_TIMEOUT, false, fresh), base, false],
    [
      '0-RTT request abandoned after a response byte',
      err(ErrorCode.EARLY_DATA_ABANDONED, false, { ...fresh, responseStarted: true }),
      base,
      false,
    ],
  ] as const)('%s → retry %s', (_name, e, input, want) => {
    expect(retryDecision(e, input).retry).toBe(want);
  });

  it('an unreachable URL fails over to the next, each URL once, with one more attempt per further URL', () => {
    const e = err(ErrorCode.CONNECT_FAILED, true, NOT_SENT);
    expect(retryDecision(e, { ...base, urls: 3, untried: 2 })).toEqual({ retry: true, failover: true, requeue: false });
    expect(retryDecision(e, { ...base, urls: 3, untried: 1, attempt: 4 })).toEqual({
      retry: true,
      failover: true,
      requeue: false,
    });
    expect(retryDecision(e, { ...base, urls: 3, untried: 1, attempt: 5 }).retry).toBe(false);
    // Every URL tried: never back to one that was unreachable.
    expect(retryDecision(e, { ...base, urls: 3, untried: 0, attempt: 3 }).retry).toBe(false);
    // A stale-connection retry stays on the same URL.
    expect(retryDecision(err(ErrorCode.SOCKET_CLOSED, false, staleReuse), { ...base, urls: 3, untried: 2 })).toEqual({
      retry: true,
      failover: false,
      requeue: false,
    });
  });

  it('a refused stream goes back to its queue without spending a retry, at most MAX_REQUEUES times (RFC 9113 §8.7)', () => {
    const refused = err(ErrorCode.STREAM_RESET, true, fresh);
    // The attempt budget is spent (attempt 3 of 1 + 2): a refusal still requeues, the decision says so.
    expect(retryDecision(refused, { ...base, attempt: 3 })).toEqual({ retry: true, failover: false, requeue: true });
    expect(retryDecision(refused, { ...base, requeues: MAX_REQUEUES - 1 })).toEqual({
      retry: true,
      failover: false,
      requeue: true,
    });
    // Past the requeues, a refusal is an ordinary retry-safe failure: the attempt budget decides.
    expect(retryDecision(refused, { ...base, requeues: MAX_REQUEUES })).toEqual({
      retry: true,
      failover: false,
      requeue: false,
    });
    expect(retryDecision(refused, { ...base, requeues: MAX_REQUEUES, attempt: MAX_REQUEUES + 3 }).retry).toBe(false);
    // Requeues spend no attempt: after 8 requeues and one failure, two retries are left.
    expect(
      retryDecision(err(ErrorCode.GOAWAY, true, fresh), { ...base, requeues: MAX_REQUEUES, attempt: MAX_REQUEUES + 2 })
        .retry,
    ).toBe(true);
    // A stream reset that was not a refusal (retrySafe false: the origin may have processed it) never requeues.
    expect(retryDecision(err(ErrorCode.STREAM_RESET, false, fresh), base).retry).toBe(false);
    // A body that cannot be sent again, or a caller who left, never.
    expect(retryDecision(refused, { ...base, replayable: false }).retry).toBe(false);
    expect(retryDecision(refused, { ...base, aborted: true }).retry).toBe(false);
  });
});

describe('socketFailure: an errno on a pooled connection', () => {
  const errno = (code: string): Error => Object.assign(new Error(`read ${code}`), { code, syscall: 'read' });
  it.each([
    // [errno, handshake unconfirmed (a TFO socket that received nothing), code, retry-safe]
    ['ECONNREFUSED', true, ErrorCode.CONNECT_FAILED, true], // the SYN refused: never established
    ['ECONNREFUSED', false, ErrorCode.SOCKET_RESET, false], // an established socket's soft ICMP error, reported at its timeout
    ['EHOSTUNREACH', true, ErrorCode.CONNECT_FAILED, true], // the SYN did not get there
    ['EHOSTUNREACH', false, ErrorCode.SOCKET_RESET, false], // an established connection lost: the request may have been processed
    ['ENETUNREACH', false, ErrorCode.SOCKET_RESET, false],
    ['ETIMEDOUT', true, ErrorCode.SOCKET_RESET, false], // a SYN with the request in its data may have reached the application (RFC 7413 §6.3.1)
    ['ETIMEDOUT', false, ErrorCode.SOCKET_RESET, false],
    ['ECONNRESET', false, ErrorCode.SOCKET_RESET, false],
    ['EPIPE', false, ErrorCode.SOCKET_CLOSED, false],
  ] as const)('%s (handshake unconfirmed: %s) → %s, retry-safe %s', (code, unconfirmed, want, safe) => {
    const e = socketFailure(errno(code), unconfirmed);
    expect([e.code, e.retrySafe]).toEqual([want, safe]);
  });
});

describe('method table, hop-by-hop rule, 0-RTT rule', () => {
  it('RFC 9110 §9.2: safe and idempotent methods; names are case-sensitive', () => {
    expect(['GET', 'HEAD', 'OPTIONS', 'TRACE'].every(isSafeMethod)).toBe(true);
    expect(['POST', 'PUT', 'DELETE', 'PATCH', 'CONNECT', 'get'].some(isSafeMethod)).toBe(false);
    expect(isIdempotentRequest('PUT', [])).toBe(true);
    expect(isIdempotentRequest('POST', [])).toBe(false);
    expect(isIdempotentRequest('POST', [['idempotency-key', 'k1']])).toBe(true);
    expect(isIdempotentRequest('POST', [['idempotency-key', '"8e03978e-40d5"']])).toBe(true);
  });

  it('an empty Idempotency-Key makes nothing idempotent: the server has no key to de-duplicate on (a POST is never hedged or replayed on it)', () => {
    for (const v of ['', '  ', '""', ' "" ']) {
      expect(isIdempotentRequest('POST', [['idempotency-key', v]])).toBe(false);
      expect(earlyReplayAllowed('POST', [['idempotency-key', v]])).toBe(false);
    }
  });

  it('RFC 9110 §7.6.1: connection fields and the fields Connection names are stripped; te only as trailers', () => {
    const out = endToEnd([
      ['connection', 'close, x-secret'],
      ['x-secret', '1'],
      ['keep-alive', 'timeout=5'],
      ['proxy-authorization', 'p'],
      ['upgrade', 'h2c'],
      ['transfer-encoding', 'chunked'],
      ['te', 'gzip, trailers'],
      ['accept', '*/*'],
      ['expect', '100-continue'],
    ]);
    expect(out).toEqual([
      ['te', 'trailers'],
      ['accept', '*/*'],
    ]);
  });

  it('RFC 8470: safe methods go early by default; the request may say otherwise', () => {
    expect(earlyDataAllowed('safe', 'GET')).toBe(true);
    expect(earlyDataAllowed('safe', 'POST')).toBe(false);
    expect(earlyDataAllowed('never', 'GET')).toBe(false);
    expect(earlyDataAllowed('always', 'POST')).toBe(true);
    expect(earlyDataAllowed('safe', 'GET', false)).toBe(false);
    expect(earlyDataAllowed('never', 'POST', true)).toBe(true);
  });

  it('early data abandoned before the handshake goes again only when idempotent, whatever let it go early', () => {
    expect(earlyReplayAllowed('GET', [])).toBe(true);
    expect(earlyReplayAllowed('PUT', [])).toBe(true);
    expect(earlyReplayAllowed('POST', [])).toBe(false); // `always` sends it early; it is never replayed
    expect(earlyReplayAllowed('POST', [['idempotency-key', 'k']])).toBe(true);
  });
});
