/**
 * No request is sent twice unless the failure proves it was not processed (src/agent/policy.ts), through the
 * service to real origins:
 * - an established origin connection that fails with ETIMEDOUT or EHOSTUNREACH (a keepalive or retransmission
 *   timeout, an ICMP unreachable: the kernel's word for a dead path) after a POST reached the origin: not sent again,
 *   not moved to the next URL — the errno was read as a failed connect (retry-safe, unreachable URL);
 * - an HTTP/2 origin that ends its connection with GOAWAY(last-stream-id ≥ the stream, REFUSED_STREAM) after it took
 *   the POST: RFC 9113 §6.8 says a stream at or below the last id may have been processed; the code was read as the
 *   stream's own REFUSED_STREAM (§8.7: not processed);
 * - a GET that times out on a reused connection is not sent again (the stale keep-alive rule is for a connection
 *   lost, not for an origin too slow to answer: each retry was the same request again to an origin already behind).
 * The kernel's errno is put on our real socket with destroy(err) (a dead path is slow to make on loopback).
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { ourEnd } from '../helpers/client-sockets.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function service(origin: string): Promise<number> {
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: false
origins:
  o:
${origin}
    tfo: false
routes:
  - { path: /, origin: o }
`;
  const svc = await Service.start(parseConfig(yaml, 'replay.yaml', '/tmp'), { logDestination: { write: () => {} } });
  cleanups.push(() => svc.shutdown(0));
  return svc.addresses()['plain'] as number;
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        (server as http.Server).closeAllConnections?.();
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

/** Our end of the origin connection that `originSide` accepted (same process): a real socket of the service's. */
function ourSocket(originSide: net.Socket): net.Socket {
  const s = ourEnd(originSide);
  if (!s) throw new Error('our socket to the origin not found');
  return s;
}

const kernelError = (code: string): Error => Object.assign(new Error(`read ${code}`), { code, syscall: 'read' });

describe('a request that may have been processed is not sent again', () => {
  it.each(['ETIMEDOUT', 'EHOSTUNREACH'])(
    'a POST on a connection that then fails with %s: processed once, 502, not moved to the next URL',
    async (errno) => {
      const seen: string[] = [];
      const origin = (name: string): http.Server =>
        http.createServer((req, res) => {
          let body = '';
          req.on('data', (c: Buffer) => {
            body += c.toString();
          });
          req.on('end', () => {
            seen.push(`${name} ${req.method} ${body}`);
            if (req.method === 'POST')
              setTimeout(() => ourSocket(req.socket).destroy(kernelError(errno)), 20); // processed; the path dies before the answer
            else res.end('ok');
          });
        });
      const p1 = await listen(origin('first'));
      const p2 = await listen(origin('second'));
      const port = await service(`    urls: [http://127.0.0.1:${p1}, http://127.0.0.1:${p2}]\n    protocol: h1`);
      const res = await fetch(`http://127.0.0.1:${port}/orders`, { method: 'POST', body: 'charge 42' });
      expect(res.status).toBe(502);
      expect(res.headers.get('x-originlink-error') ?? (await res.text())).toMatch(/SOCKET_RESET|connection lost/);
      expect(seen).toEqual(['first POST charge 42']);
    },
  );

  it('a POST the HTTP/2 origin took before GOAWAY(last id = its stream, REFUSED_STREAM): processed once, 502', async () => {
    const seen: string[] = [];
    const origin = http2.createServer();
    origin.on('stream', (stream, headers) => {
      let body = '';
      stream.on('data', (c: Buffer) => {
        body += c.toString();
      });
      stream.on('end', () => {
        seen.push(`${headers[':method']} ${body}`);
        stream.session?.goaway(http2.constants.NGHTTP2_REFUSED_STREAM, stream.id);
      });
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    origin.on('session', (s) => {
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
    });
    cleanups.push(() => {
      for (const s of sessions) s.destroy();
    });
    const port = await service(`    url: http://127.0.0.1:${await listen(origin)}\n    protocol: h2`);
    const res = await fetch(`http://127.0.0.1:${port}/orders`, { method: 'POST', body: 'charge 43' });
    expect(res.status).toBe(502);
    await res.text();
    expect(seen).toEqual(['POST charge 43']);
  });

  it.each(['h1', 'h2'] as const)(
    'a GET that times out on a reused %s connection is asked once: 504 after headersMs, not 1 + retries times that',
    async (protocol) => {
      let slow = 0;
      const handler = (path: string, answer: () => void): void => {
        if (path === '/slow') slow++;
        else answer();
      };
      const origin =
        protocol === 'h1'
          ? http.createServer((req, res) => handler(req.url ?? '', () => res.end('ok')))
          : http2.createServer((req, res) => handler(req.url, () => res.end('ok')));
      if (protocol === 'h2') {
        const sessions = new Set<http2.ServerHttp2Session>();
        (origin as http2.Http2Server).on('session', (s) => {
          sessions.add(s);
          s.on('close', () => sessions.delete(s));
        });
        cleanups.push(() => {
          for (const s of sessions) s.destroy();
        });
      }
      const port = await service(
        `    url: http://127.0.0.1:${await listen(origin)}\n    protocol: ${protocol}\n    timeouts: { headersMs: 300 }\n    pool: { maxConnections: 1 }`,
      );
      expect((await fetch(`http://127.0.0.1:${port}/warm`)).status).toBe(200); // the connection is reused from here on
      const t0 = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}/slow`);
      expect(res.status).toBe(504);
      expect(Date.now() - t0).toBeLessThan(800);
      expect(slow).toBe(1);
    },
  );

  it('a GET on a reused HTTP/2 connection that the origin ends with GOAWAY(INTERNAL_ERROR) before answering goes again (a lost connection, as on h3)', async () => {
    let flaky = 0;
    const origin = http2.createServer();
    origin.on('stream', (stream, headers) => {
      if (headers[':path'] === '/flaky' && ++flaky === 1) {
        stream.session?.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR, stream.id);
        return;
      }
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    origin.on('session', (x) => {
      sessions.add(x);
      x.on('close', () => sessions.delete(x));
    });
    cleanups.push(() => {
      for (const x of sessions) x.destroy();
    });
    const port = await service(`    url: http://127.0.0.1:${await listen(origin)}\n    protocol: h2`);
    expect((await fetch(`http://127.0.0.1:${port}/warm`)).status).toBe(200);
    const res = await fetch(`http://127.0.0.1:${port}/flaky`);
    expect(res.status).toBe(200);
    expect(flaky).toBe(2);
  });
});
