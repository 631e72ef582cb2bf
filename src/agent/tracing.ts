/**
 * Tracing through @opentelemetry/api only: a CLIENT span per upstream
 * request (retries included), named by the method and carrying the HTTP
 * semantic-convention attributes plus what only a pool knows (protocol,
 * reused, resumed, 0-RTT, attempts, connection). The trace context goes out
 * in `traceparent`/`tracestate` (W3C Trace Context) through whatever
 * propagator the application registered. With no SDK installed every call
 * here is the API's no-op: no span is recorded and no header is added.
 *
 * The API is loaded only once something registered with it (its global, which every registration — a tracer
 * provider, a propagator, a context manager — sets): in a process without OpenTelemetry it never loads (~20 ms of a
 * start, issue 58) and a request's span is a no-op of our own.
 */
import { createRequire } from 'node:module';
import type * as Otel from '@opentelemetry/api';
import type { Context, Span } from '@opentelemetry/api';
import type { OriginlinkError } from '../errors.js';
import type { HeaderList } from '../http/types.js';
import type { OriginResponse } from './response.js';

/** Where @opentelemetry/api 1.x keeps what was registered with it (its `global-utils`). */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1');
let api: typeof Otel | null = null;
let tracer: Otel.Tracer | null = null;

/** The API once anything registered with it, else null (nothing to trace, nothing to propagate). */
function otel(): typeof Otel | null {
  if (api !== null) return api;
  if ((globalThis as Record<symbol, unknown>)[OTEL_GLOBAL] === undefined) return null;
  api = createRequire(import.meta.url)('@opentelemetry/api') as typeof Otel;
  tracer = api.trace.getTracer('originlink');
  return api;
}

/** A request's span when nothing registered with OpenTelemetry: records nothing, carries no context. */
const NOOP_SPAN = {
  spanContext: () => ({ traceId: '', spanId: '', traceFlags: 0 }),
  setAttribute: () => NOOP_SPAN,
  setAttributes: () => NOOP_SPAN,
  addEvent: () => NOOP_SPAN,
  addLink: () => NOOP_SPAN,
  addLinks: () => NOOP_SPAN,
  setStatus: () => NOOP_SPAN,
  updateName: () => NOOP_SPAN,
  end: () => {},
  isRecording: () => false,
  recordException: () => {},
} as unknown as Span;

const VERSION: Record<string, string> = { h1: '1.1', h2: '2', h3: '3' };
/** SpanKind.CLIENT and SpanStatusCode.ERROR of the API (stable enum values). */
const CLIENT = { kind: 2 };
const STATUS_ERROR = 2;

/**
 * `target`: the request target sent (path and query); `url.full` is the origin and it, never user info or a fragment.
 */
export function startRequestSpan(method: string, url: URL, target: string, parent: Context | undefined): Span {
  const o = otel();
  if (o === null) return NOOP_SPAN;
  const span = (tracer as Otel.Tracer).startSpan(method, CLIENT, parent ?? o.context.active());
  // Attributes only for a recording span: without an SDK this is the API's no-op span and costs nothing more.
  if (span.isRecording()) {
    span.setAttributes({
      'http.request.method': method,
      'server.address': url.hostname,
      'server.port': url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
      'url.full': `${url.origin}${target}`,
    });
  }
  return span;
}

/**
 * The request's header list with this span's trace context in place of any incoming one (unchanged when nothing is
 * traced).
 */
export function withTraceContext(span: Span, headers: HeaderList): HeaderList {
  if (span === NOOP_SPAN || api === null) return headers;
  const o = api;
  const sc = span.spanContext();
  // The API's no-op span (no SDK, no incoming context) carries this very object: no regexp tests of its ids.
  if (sc === o.INVALID_SPAN_CONTEXT || !o.trace.isSpanContextValid(sc)) return headers;
  const carrier: Record<string, string> = {};
  o.propagation.inject(o.trace.setSpan(o.context.active(), span), carrier);
  const names = Object.keys(carrier);
  if (names.length === 0) return headers;
  const out: HeaderList = headers.filter(([n]) => !names.includes(n));
  for (const n of names) out.push([n, carrier[n] as string]);
  return out;
}

/** The response head arrived: record what the pool knows; the span ends with the body. */
export function responseSpan(span: Span, res: OriginResponse): void {
  const f = res.connection;
  span.setAttributes({
    'http.response.status_code': res.status,
    'network.protocol.name': 'http',
    'network.protocol.version': VERSION[res.protocol] ?? res.protocol,
    'network.peer.address': f.remoteAddress,
    'network.peer.port': f.remotePort,
    'http.request.resend_count': res.attempts - 1,
    'originlink.protocol': res.protocol,
    'originlink.reused': res.reused,
    'originlink.resumed': f.resumed,
    'originlink.early_data': res.earlyData,
    'originlink.attempts': res.attempts,
    'originlink.connection_id': res.connectionId,
  });
  // RFC 9110 §15.6 / semconv: a 5xx is an error of the request.
  if (res.status >= 500) span.setStatus({ code: STATUS_ERROR });
  const body = res.body;
  if (body.readableEnded || body.destroyed) {
    span.end();
    return;
  }
  body.once('close', () => {
    if (body.errored) failSpan(span, body.errored as Error, res.attempts);
    else span.end();
  });
}

export function failSpan(span: Span, err: Error | OriginlinkError, attempts: number): void {
  const code = (err as OriginlinkError).code ?? err.name;
  span.setAttributes({
    'error.type': code,
    'originlink.attempts': attempts,
    'http.request.resend_count': attempts - 1,
  });
  span.recordException(err);
  span.setStatus({ code: STATUS_ERROR, message: err.message });
  span.end();
}
