/**
 * OpenTelemetry through @opentelemetry/api: with the SDK's in-memory exporter
 * registered, every upstream request is a CLIENT span with the HTTP semantic
 * conventions and the pool's facts; the trace context reaches the origin in
 * `traceparent`, and through the service the upstream span continues the
 * client's trace. Without an SDK nothing is added.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Agent } from '../../src/index.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';

const exporter = new InMemorySpanExporter();
let origin: http.Server;
let port: number;
const seen: Array<string | undefined> = [];

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    seen.push(req.headers['traceparent'] as string | undefined);
    res.statusCode = req.url === '/boom' ? 503 : 200;
    res.end('traced');
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  port = (origin.address() as AddressInfo).port;
});

afterAll(() => {
  origin?.close();
  trace.disable();
  propagation.disable();
});

describe('tracing', () => {
  it('without an SDK: no span, no traceparent added', async () => {
    const agent = new Agent({ protocol: 'h1' });
    try {
      const r = await agent.request({ url: `http://127.0.0.1:${port}/plain` });
      expect(await r.text()).toBe('traced');
      expect(seen.at(-1)).toBeUndefined();
    } finally {
      await agent.close();
    }
  });

  it('with the SDK: a CLIENT span per upstream request, semantic-convention attributes, traceparent at the origin', async () => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    exporter.reset();
    const agent = new Agent({ protocol: 'h1' });
    try {
      await (await agent.request({ url: `http://127.0.0.1:${port}/a?x=1` })).text();
      await (await agent.request({ url: `http://127.0.0.1:${port}/boom` })).text();
      await agent.request({ url: 'http://127.0.0.1:1/refused' }).catch(() => {});
      await new Promise((r) => setTimeout(r, 20));
      const spans = exporter.getFinishedSpans();
      expect(spans).toHaveLength(3);
      const [ok, boom, refused] = spans;
      expect(ok!.name).toBe('GET');
      expect(ok!.kind).toBe(SpanKind.CLIENT);
      expect(ok!.attributes).toMatchObject({
        'http.request.method': 'GET',
        'server.address': '127.0.0.1',
        'server.port': port,
        'url.full': `http://127.0.0.1:${port}/a?x=1`,
        'http.response.status_code': 200,
        'network.protocol.version': '1.1',
        'network.peer.address': '127.0.0.1',
        'originlink.protocol': 'h1',
        'originlink.reused': false,
        'originlink.attempts': 1,
      });
      expect(boom!.attributes['originlink.reused']).toBe(true);
      expect(boom!.status.code).toBe(SpanStatusCode.ERROR);
      expect(refused!.attributes['error.type']).toBe('OL_CONNECT_FAILED');
      expect(refused!.status.code).toBe(SpanStatusCode.ERROR);
      // The origin saw this span's context: 00-<trace id>-<span id>-01.
      const sc = ok!.spanContext();
      expect(seen.at(-2)).toBe(`00-${sc.traceId}-${sc.spanId}-01`);
      // url.full is the origin and the target sent, whichever form named them (and never user info or a fragment).
      exporter.reset();
      await (await agent.request({ origin: `http://127.0.0.1:${port}`, path: '/o?y=2' })).text();
      await (await agent.request({ url: `http://user:pw@127.0.0.1:${port}/a/../f?z#frag` })).text();
      await new Promise((r) => setTimeout(r, 20));
      expect(exporter.getFinishedSpans().map((x) => x.attributes['url.full'])).toEqual([
        `http://127.0.0.1:${port}/o?y=2`,
        `http://127.0.0.1:${port}/f?z`,
      ]);
    } finally {
      await agent.close();
    }
  });

  it('through the service, the upstream span continues the client’s trace (traceparent in, a child’s traceparent out)', async () => {
    exporter.reset();
    const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
origins:
  o: { url: "http://127.0.0.1:${port}", protocol: h1 }
routes:
  - { path: /, origin: o }
logging: { requests: false }
admin: false
`;
    const svc = await Service.start(parseConfig(yaml, 'trace.yaml', '/tmp'), { logDestination: { write: () => {} } });
    try {
      const front = svc.addresses()['plain'] as number;
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const parent = '00f067aa0ba902b7';
      const r = await fetch(`http://127.0.0.1:${front}/via`, {
        headers: { traceparent: `00-${traceId}-${parent}-01` },
      });
      expect(await r.text()).toBe('traced');
      await new Promise((res) => setTimeout(res, 20));
      const span = exporter.getFinishedSpans().at(-1)!;
      expect(span.spanContext().traceId).toBe(traceId);
      expect(span.parentSpanContext?.spanId).toBe(parent);
      expect(seen.at(-1)).toBe(`00-${traceId}-${span.spanContext().spanId}-01`);
    } finally {
      await svc.shutdown(500);
    }
  });
});
