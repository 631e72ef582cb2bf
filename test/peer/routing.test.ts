/**
 * Routes see the decoded, normalised path (src/http/target.ts), as nginx matches a location: a client cannot reach a
 * path no route serves, nor step around a route that guards one, with dot segments, encoded dots or slashes, or
 * doubled slashes (matched raw, `/public/../internal/` passed as `/public` and nginx, the origin here, resolved it
 * to `/internal/`). The request goes on as written (nginx's proxy_pass without a URI); a route that strips its
 * prefix sends the normalised path. `proxy.normalizePath: false` matches the bytes as sent.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { Nginx } from '../helpers/nginx.js';
import { rawExchange } from '../helpers/raw.js';

let nginx: Nginx;
const services: Service[] = [];

async function start(normalize: boolean | null): Promise<number> {
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: false
${normalize === null ? '' : `proxy: { normalizePath: ${normalize} }`}
origins:
  web: { url: "https://127.0.0.1:${nginx.port}", protocol: h1, tls: { verify: false } }
routes:
  - { path: /public/, origin: web }
  - { path: /admin/, origin: web, hostHeader: admin.test }
  - { path: /api/, origin: web, stripPrefix: true }
`;
  const svc = await Service.start(parseConfig(yaml, 'routing.yaml', '/tmp'), { logDestination: { write: () => {} } });
  services.push(svc);
  return svc.addresses()['plain'] as number;
}

/** The status and body of a raw HTTP/1.1 GET (curl and fetch would normalise the path themselves). */
async function get(port: number, target: string): Promise<{ status: number; body: string }> {
  const text = await rawExchange(port, `GET ${target} HTTP/1.1\r\nhost: x.test\r\nconnection: close\r\n\r\n`);
  return { status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

beforeAll(async () => {
  // nginx echoes the path it received (and resolves dot segments itself, as origins do).
  // nginx answers with the path it resolved ($uri) and the one it received ($request_uri).
  nginx = await Nginx.start({
    serverExtra:
      'location /public/ { return 200 "public $uri $request_uri\\n"; } location /internal/ { return 200 "INTERNAL $uri\\n"; } location /admin/ { return 200 "admin $uri $host\\n"; } location /v1/ { return 200 "api $uri $request_uri\\n"; }',
  });
});

afterAll(async () => {
  for (const s of services) await s.shutdown(0);
  await nginx?.close();
});

describe('routing on the normalised path', () => {
  it('dot segments, encoded dots and doubled slashes route as what they resolve to, and the origin gets that path', async () => {
    const port = await start(null);
    for (const t of [
      '/public/../internal/',
      '/public/%2e%2e/internal/',
      '/public//../internal/',
      '/public/./../internal/x',
      '/public/..%2Finternal/x',
      '/public/..%2finternal/',
    ]) {
      const r = await get(port, t);
      expect([t, r.status]).toEqual([t, 404]); // no route serves /internal/
      expect(r.body).not.toContain('INTERNAL');
    }
    expect(await get(port, '/public/%2e%2e/admin/x')).toEqual({ status: 200, body: 'admin /admin/x admin.test\n' }); // the /admin/ route's, Host and all
    expect(await get(port, '//admin//x')).toEqual({ status: 200, body: 'admin /admin/x admin.test\n' });
    expect(await get(port, '/public/a/../b?q=/../x')).toEqual({
      status: 200,
      body: 'public /public/b /public/a/../b?q=/../x\n',
    }); // sent as written
    expect((await get(port, '/../etc/passwd')).status).toBe(400);
    // A prefix-stripping route sends the normalised path without its prefix (nginx's proxy_pass with a URI).
    expect(await get(port, '/api/x/../v1//y?z')).toEqual({ status: 200, body: 'api /v1/y /v1/y?z\n' });
    expect((await get(port, '/api%2Fv1/y')).status).toBe(400); // matches /api/ only decoded: no form to strip from
  });

  it("HTTP/1.0 without Host routes by path and reaches the origin with the origin's own name (it was a 400); HTTP/1.1 without Host stays a 400", async () => {
    const port = await start(null);
    const text = await rawExchange(port, 'GET /admin/x HTTP/1.0\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.endsWith('admin /admin/x admin.test\n')).toBe(true); // the route's hostHeader
    const pub = await rawExchange(port, 'GET /public/y HTTP/1.0\r\n\r\n');
    expect(pub).toMatch(/^HTTP\/1\.1 200 [^]*public \/public\/y \/public\/y\n$/);
    expect(await rawExchange(port, 'GET /public/y HTTP/1.1\r\nconnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('proxy.normalizePath: false sends the bytes as the client sent them', async () => {
    const port = await start(false);
    expect(await get(port, '/public/../internal/')).toEqual({ status: 200, body: 'INTERNAL /internal/\n' });
  });
});
