/**
 * The late phases of forwarding (forward.ts): an origin's answer or failure as the client's response — its status
 * for an error, its head, the request log's fields of it — and the watch on a streamed body's end.
 */
import type { Readable } from 'node:stream';
import { propagation, ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import type { OriginResponse } from '../agent/response.js';
import { ErrorCode, type OriginlinkError } from '../errors.js';
import type { HeaderList } from '../http/types.js';
import { downstreamHeaders } from './headers.js';
import type { RequestRecord } from './request-log.js';

const VERSION: Record<string, string> = { h1: '1.1', h2: '2', h3: '3' };

/** The client's response fields for an origin's answer: ours Via, Alt-Svc when given (the origin's is dropped). */
export function clientHeaders(up: OriginResponse, via: string, altSvc: string | null): HeaderList {
  return downstreamHeaders(up.headers, VERSION[up.protocol] ?? '1.1', via, altSvc);
}

/** What the request log line says of the answer. */
export function logAnswer(log: RequestRecord, up: OriginResponse): void {
  log.upstream = up.origin;
  log.protocol = up.protocol;
  log.reused = up.reused;
  log.attempts = up.attempts;
  log.queueMs = ms(up.timings.queueMs);
  log.ttfbMs = ms(up.timings.ttfbMs);
  if (up.hedged) log.hedged = true;
  if (up.collapsed) log.collapsed = true;
}

/**
 * What a failed origin request's line can say of it (the probe of 2026-11-29 found a GET sent three times logged
 * without a trace of it): its attempts, whether the last one's connection was reused, and the origin it went to.
 */
export function logFailure(log: RequestRecord, err: OriginlinkError): void {
  const attempts = err.details['attempts'];
  log.attempts = typeof attempts === 'number' ? attempts : 1;
  if (err.facts) log.reused = err.facts.reused;
  const origin = err.details['origin'];
  if (log.upstream === undefined && typeof origin === 'string') log.upstream = origin;
}

/**
 * RFC 9110 §15.6: 502 for a bad or absent answer, 503 for our own overload, 504 for a timeout; and 408
 * (§15.5.9) when it was the client's request body that stalled on its way to the origin.
 */
export function statusForError(code: string): 408 | 502 | 503 | 504 {
  switch (code) {
    case ErrorCode.REQUEST_BODY_TIMEOUT:
      return 408;
    case ErrorCode.QUEUE_FULL:
    case ErrorCode.QUEUE_TIMEOUT:
    case ErrorCode.POOL_CLOSED:
      return 503;
    case ErrorCode.CONNECT_TIMEOUT:
    case ErrorCode.HEADERS_TIMEOUT:
    case ErrorCode.BODY_TIMEOUT: // before a head: the origin stopped taking the request body (nginx: 504 too)
      return 504;
    default:
      return 502;
  }
}

/**
 * Calls `end` once when the origin body is over: read to its end, or cut
 * (an origin failure, or the client leaving, which destroys it). Counts
 * bytes only when asked (the request log); otherwise no listener per chunk.
 */
export function watchBody(
  body: Readable,
  count: boolean,
  to: { bodyOver(bytes: number, failed: boolean): void },
): void {
  let bytes = 0;
  let over = false;
  const once = (failed: boolean): void => {
    if (!over) {
      over = true;
      to.bodyOver(bytes, failed);
    }
  };
  if (count)
    body.on('data', (c: Buffer) => {
      bytes += c.length;
    });
  body.once('end', () => once(false));
  body.once('close', () => once(!body.readableEnded));
  body.once('error', () => {
    /* reported through 'close' */
  });
}

/**
 * The EMFILE or ENFILE behind a failure (its cause chain, or its message: a dial's "every address failed (…)"), or
 * null.
 */
export function descriptorsOut(err: Error): NodeJS.ErrnoException | null {
  let e: unknown = err;
  for (let i = 0; i < 5 && e instanceof Error; i++, e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EMFILE' || code === 'ENFILE') return e as NodeJS.ErrnoException;
  }
  const m = /\b(EMFILE|ENFILE)\b/.exec(err.message);
  return m ? Object.assign(new Error(err.message), { code: m[1] }) : null;
}

export function shortReason(msg: string): string {
  const line = msg.split('\n')[0] ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

export function ms(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The trace context a request carries in traceparent/tracestate (W3C Trace Context), or null without one. */
export function traceContextOf(headers: ReadonlyArray<readonly [string, string]>): Context | null {
  let carrier: Record<string, string> | null = null;
  for (const [n, v] of headers) if (n === 'traceparent' || n === 'tracestate') (carrier ??= {})[n] = v;
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : null;
}
