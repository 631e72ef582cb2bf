/**
 * Response trailers through the connector on every front: an origin (our
 * HTTP/1.1 server) ends a streamed body with trailers; a client over the
 * http front gets them in the chunked encoding, one over the h2c front as an
 * HTTP/2 trailer section, one over the h3 front (our client) as HTTP/3
 * trailers. Framing fields in trailers are never passed on (RFC 9110 §6.5.1).
 * `/whole`: the origin sends body and trailers at once, so the response has
 * ended before the connector looks at it and leaves as bytes (forward.ts's
 * taken-whole path); the trailers must still reach every front.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { makeCerts } from '../helpers/certs.js';

const certs = makeCerts();
let origin: H1Server;
let svc: Service;
let a: Record<string, number>;

beforeAll(async () => {
  origin = await startH1Server({
    handler: (req) =>
      req.path === '/whole'
        ? {
            status: 200,
            headers: [['content-type', 'text/plain']],
            body: Buffer.from('all at once\n'),
            trailers: [
              ['x-checksum', 'beef'],
              ['content-length', '999'],
            ],
          }
        : {
            status: 200,
            headers: [['content-type', 'text/plain']],
            body: Readable.from([Buffer.from('part one, '), Buffer.from('part two\n')]),
            trailersLater: new Promise((r) =>
              setTimeout(
                () =>
                  r([
                    ['x-checksum', 'c0ffee'],
                    ['content-length', '999'],
                  ]),
                20,
              ),
            ),
          },
  });
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: clear2, kind: h2c, host: 127.0.0.1, port: 0 }
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
origins:
  o: { url: "http://127.0.0.1:${origin.address.port}", protocol: h1 }
routes:
  - { path: /, origin: o }
`;
  svc = await Service.start(parseConfig(yaml, 'trailers.yaml', certs.dir), { logDestination: { write: () => {} } });
  a = svc.addresses() as Record<string, number>;
});

afterAll(async () => {
  await svc?.shutdown(200);
  await origin?.close(100);
});

/** One GET over the http front on a raw socket: everything the connector wrote, until it closed. */
function h1Get(path: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = net.connect(a['plain']!, '127.0.0.1', () =>
      s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n`),
    );
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
    });
    s.on('close', () => resolve(got));
  });
}

/** One GET over the h2c front (node:http2 as the client): its body and its trailer section. */
async function h2cGet(path: string): Promise<{ body: string; trailers: http2.IncomingHttpHeaders }> {
  const c = http2.connect(`http://127.0.0.1:${a['clear2']}`);
  const s = c.request({ ':path': path, te: 'trailers' });
  let body = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    body += d;
  });
  const trailersP = new Promise<http2.IncomingHttpHeaders>((r) => s.once('trailers', r));
  await new Promise((r) => s.on('end', r));
  const trailers = await trailersP;
  c.close();
  return { body, trailers };
}

describe('trailers on every front', () => {
  it('http front: the chunked body ends with the trailer section', async () => {
    const text = await h1Get('/t');
    expect(text).toMatch(/transfer-encoding: chunked\r\n/);
    expect(text).toMatch(
      /\r\n(a\r\npart one, \r\n9\r\npart two\n|13\r\npart one, part two\n)\r\n0\r\nx-checksum: c0ffee\r\n\r\n$/,
    );
    expect(text).not.toMatch(/content-length: 999/);
  });

  it('http front, a response already whole with trailers: one chunk, then the trailer section', async () => {
    const text = await h1Get('/whole');
    expect(text).toMatch(/transfer-encoding: chunked\r\n/);
    expect(text).toMatch(/\r\n\r\nc\r\nall at once\n\r\n0\r\nx-checksum: beef\r\n\r\n$/);
    expect(text).not.toMatch(/content-length/);
  });

  it('h2c front, a response already whole with trailers', async () => {
    const { body, trailers } = await h2cGet('/whole');
    expect(body).toBe('all at once\n');
    expect(trailers['x-checksum']).toBe('beef');
    expect(trailers['content-length']).toBeUndefined();
  });

  it('h2c front: an HTTP/2 trailer section after the DATA', async () => {
    const { body, trailers } = await h2cGet('/t');
    expect(body).toBe('part one, part two\n');
    expect(trailers['x-checksum']).toBe('c0ffee');
    expect(trailers['content-length']).toBeUndefined();
  });

  it('h3 front: our HTTP/3 client gets the trailers', async () => {
    const agent = new Agent({ protocol: 'h3', tls: { ca: certs.ca } });
    try {
      const r = await agent.request({
        origin: `https://localhost:${a['quic']}`,
        path: '/t',
        headers: [['te', 'trailers']],
      });
      expect(await r.text()).toBe('part one, part two\n');
      expect(await r.trailers).toEqual([['x-checksum', 'c0ffee']]);
      // A response already whole with trailers (the connector relays it as bytes) keeps them on h3 too.
      const w = await agent.request({
        origin: `https://localhost:${a['quic']}`,
        path: '/whole',
        headers: [['te', 'trailers']],
      });
      expect(await w.text()).toBe('all at once\n');
      expect(await w.trailers).toEqual([['x-checksum', 'beef']]);
    } finally {
      await agent.close();
    }
  });
});

// This file's service has `admin: false`.
describe('a service without an admin listener', () => {
  it('collects no process series: nothing can scrape them (no 10 ms event-loop timer, no GC callback)', () => {
    expect(svc.metrics.processSeries).toBe(false);
    expect(svc.metrics.registry.getSingleMetric('process_cpu_user_seconds_total')).toBeUndefined();
    expect(svc.metrics.registry.getSingleMetric('nodejs_eventloop_lag_seconds')).toBeUndefined();
  });
});
