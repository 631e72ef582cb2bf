/**
 * The demo's local origins, on our own servers (HTTP/1.1, HTTP/2, HTTP/3, all
 * over TLS). Each answers the same small API:
 *   GET /            a greeting naming the origin and protocol
 *   GET /bytes/N     N bytes (N ≤ 16 MiB)
 *   POST /echo       the request body back
 *   anything else    the greeting with the path
 */
import type { RequestHandler } from '../server/request.js';

export interface DemoOrigin {
  name: 'h1' | 'h2' | 'h3';
  port: number;
  close(): Promise<void>;
}

type Answer = { status: number; type: string; body: Buffer | AsyncIterable<Buffer> };

async function answer(
  proto: string,
  method: string,
  path: string,
  body: AsyncIterable<Buffer>,
  headers: Record<string, string | undefined>,
): Promise<Answer> {
  const p = path.split('?')[0] ?? '/';
  if (p === '/echo') return { status: 200, type: 'application/octet-stream', body };
  const m = /^\/bytes\/(\d+)$/.exec(p);
  if (m) {
    const n = Math.min(Number(m[1]), 16 * 1024 * 1024);
    return { status: 200, type: 'application/octet-stream', body: Buffer.alloc(n, 0x61) };
  }
  for await (const _ of body) {
    /* drain */
  }
  const via = headers['via'] ?? '-';
  const xff = headers['x-forwarded-for'] ?? '-';
  return {
    status: 200,
    type: 'text/plain; charset=utf-8',
    body: Buffer.from(`hello from the ${proto} demo origin: ${method} ${path}\nvia: ${via}\nx-forwarded-for: ${xff}\n`),
  };
}

export async function startDemoOrigins(o: {
  cert: Buffer;
  key: Buffer;
  ports: { h1: number; h2: number; h3: number };
  h3?: boolean;
  onError?: (e: unknown) => void;
}): Promise<DemoOrigin[]> {
  const out: DemoOrigin[] = [];
  // Our three servers share one handler shape.
  const handler =
    (proto: string): RequestHandler =>
    async (req) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of req.headers) headers[k] = v;
      const a = await answer(proto, req.method, req.path, req.body as AsyncIterable<Buffer>, headers);
      return {
        status: a.status,
        headers: [
          ['content-type', a.type],
          ['x-demo-origin', proto],
        ],
        body: a.body as Buffer,
      };
    };
  const { startH1Server } = await import('../server/h1.js');
  const s1 = await startH1Server({
    host: '127.0.0.1',
    port: o.ports.h1,
    cert: o.cert,
    key: o.key,
    keepAliveTimeoutMs: 60_000,
    handler: handler('HTTP/1.1'),
    ...(o.onError ? { onError: o.onError } : {}),
  });
  out.push({ name: 'h1', port: s1.address.port, close: () => s1.close(200) });
  const { startH2Server } = await import('../server/h2.js');
  const s2 = await startH2Server({
    host: '127.0.0.1',
    port: o.ports.h2,
    cert: o.cert,
    key: o.key,
    handler: handler('HTTP/2'),
    ...(o.onError ? { onError: o.onError } : {}),
  });
  out.push({ name: 'h2', port: s2.address.port, close: () => s2.close(200) });
  if (o.h3 !== false) {
    const { startH3Server } = await import('../server/h3.js');
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
