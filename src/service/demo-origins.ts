/**
 * The demo's local origins: node:https for HTTP/1.1, our HTTP/2 server for h2
 * and our HTTP/3 server for h3. Each answers the same small API:
 *   GET /            a greeting naming the origin and protocol
 *   GET /bytes/N     N bytes (N ≤ 16 MiB)
 *   POST /echo       the request body back
 *   anything else    the greeting with the path
 */
import https from 'node:https';
import type net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from '../transport/server-types.js';

export interface DemoOrigin {
  name: 'h1' | 'h2' | 'h3';
  port: number;
  close(): Promise<void>;
}

type Answer = { status: number; type: string; body: Buffer | AsyncIterable<Buffer> };

async function answer(proto: string, method: string, path: string, body: AsyncIterable<Buffer>, headers: Record<string, string | undefined>): Promise<Answer> {
  const p = path.split('?')[0] ?? '/';
  if (p === '/echo') return { status: 200, type: 'application/octet-stream', body };
  const m = /^\/bytes\/(\d+)$/.exec(p);
  if (m) {
    const n = Math.min(Number(m[1]), 16 * 1024 * 1024);
    return { status: 200, type: 'application/octet-stream', body: Buffer.alloc(n, 0x61) };
  }
  for await (const _ of body) { /* drain */ }
  const via = headers['via'] ?? '-';
  const xff = headers['x-forwarded-for'] ?? '-';
  return { status: 200, type: 'text/plain; charset=utf-8', body: Buffer.from(`hello from the ${proto} demo origin: ${method} ${path}\nvia: ${via}\nx-forwarded-for: ${xff}\n`) };
}

async function nodeHandler(proto: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const a = await answer(proto, req.method ?? 'GET', req.url ?? '/', req as AsyncIterable<Buffer>, req.headers as Record<string, string | undefined>);
  const r = res as ServerResponse;
  if (Buffer.isBuffer(a.body)) {
    r.writeHead(a.status, { 'content-type': a.type, 'content-length': a.body.length, 'x-demo-origin': proto });
    r.end(a.body);
    return;
  }
  r.writeHead(a.status, { 'content-type': a.type, 'x-demo-origin': proto });
  for await (const c of a.body) if (!r.write(c)) await new Promise((ok) => r.once('drain', ok));
  r.end();
}

function listen(srv: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port }, () => resolve((srv.address() as net.AddressInfo).port));
  });
}

export async function startDemoOrigins(o: { cert: Buffer; key: Buffer; ports: { h1: number; h2: number; h3: number }; h3?: boolean; onError?: (e: unknown) => void }): Promise<DemoOrigin[]> {
  const out: DemoOrigin[] = [];
  const fail = (res: { destroy(): void }) => (e: unknown): void => { o.onError?.(e); res.destroy(); };
  const s1 = https.createServer({ cert: o.cert, key: o.key, ALPNProtocols: ['http/1.1'] }, (req, res) => { nodeHandler('HTTP/1.1', req, res).catch(fail(res)); });
  s1.keepAliveTimeout = 60_000;
  out.push({ name: 'h1', port: await listen(s1, o.ports.h1), close: () => new Promise((r) => { s1.close(() => r()); s1.closeAllConnections(); }) });
  // Our HTTP/2 and HTTP/3 servers share one handler shape.
  const handler = (proto: string): RequestHandler => async (req) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of req.headers) headers[k] = v;
    const a = await answer(proto, req.method, req.path, req.body as AsyncIterable<Buffer>, headers);
    return { status: a.status, headers: [['content-type', a.type], ['x-demo-origin', proto]], body: a.body as Buffer };
  };
  const { startH2Server } = await import('../transport/h2-server.js');
  const s2 = await startH2Server({ host: '127.0.0.1', port: o.ports.h2, cert: o.cert, key: o.key, handler: handler('HTTP/2'), ...(o.onError ? { onError: o.onError } : {}) });
  out.push({ name: 'h2', port: s2.address.port, close: () => s2.close(200) });
  if (o.h3 !== false) {
    const { startH3Server } = await import('../transport/h3-server.js');
    const s3 = await startH3Server({
      host: '127.0.0.1',
      port: o.ports.h3,
      cert: new Uint8Array(o.cert),
      key: new Uint8Array(o.key),
      handler: handler('HTTP/3'),
      ...(o.onError ? { onError: o.onError } : {}),
    });
    out.push({ name: 'h3', port: s3.address.port, close: () => s3.close(200) });
  }
  return out;
}
