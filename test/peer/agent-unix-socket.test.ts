/**
 * `origins[URL].socketPath`: an origin reached over a unix-domain stream socket (curl's --unix-socket, undici's
 * socketPath), against nginx listening on two: cleartext HTTP/1.1, and TLS with h2 by ALPN (the URL's host is the
 * name the certificate is checked against). A path where nothing listens fails the dial as a refused connect does;
 * h3 and a proxy are refused at construction. The fleet's workers link over such sockets (fleet-owner.test.ts). The
 * service's `origins.NAME.socketPath` is the same (nginx's `server unix:PATH`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/index.js';
import { ConfigError, parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { Nginx } from '../helpers/nginx.js';

const certs = makeCerts();
const dir = mkdtempSync(join(tmpdir(), 'ol-unix-'));
const plain = join(dir, 'plain.sock');
const secure = join(dir, 'tls.sock');
let nginx: Nginx;

beforeAll(async () => {
  nginx = await Nginx.start({
    httpExtra: `
  server { listen unix:${plain}; location / { return 200 "plain $server_protocol $request_uri\\n"; } }
  server {
    listen unix:${secure} ssl http2;
    ssl_certificate ${certs.certPath};
    ssl_certificate_key ${certs.keyPath};
    location / { return 200 "tls $server_protocol $request_uri\\n"; }
  }`,
  });
});

afterAll(async () => {
  await nginx?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('an origin over a unix socket', () => {
  it('h1 cleartext and h2 over TLS, connections reused', async () => {
    const agent = new Agent({
      tls: { ca: certs.ca },
      origins: { 'http://app.internal': { socketPath: plain }, 'https://localhost': { socketPath: secure } },
    });
    try {
      const seen: string[] = [];
      for (const url of [
        'http://app.internal/a',
        'http://app.internal/b',
        'https://localhost/c',
        'https://localhost/d',
      ]) {
        const res = await agent.request({ url });
        seen.push(`${res.protocol} ${res.reused} ${(await res.text()).trim()}`);
      }
      expect(seen).toEqual([
        'h1 false plain HTTP/1.1 /a',
        'h1 true plain HTTP/1.1 /b',
        'h2 false tls HTTP/2.0 /c',
        'h2 true tls HTTP/2.0 /d',
      ]);
    } finally {
      await agent.close();
    }
  });

  it('the certificate is checked against the URL host', async () => {
    const agent = new Agent({
      tls: { ca: certs.ca },
      maxRetries: 0,
      origins: { 'https://other.invalid': { socketPath: secure } },
    });
    try {
      await expect(agent.request({ url: 'https://other.invalid/x' })).rejects.toMatchObject({
        code: 'OL_CERT_INVALID',
      });
    } finally {
      await agent.close();
    }
  });

  it('nothing at the path: a failed connect, at once', async () => {
    const agent = new Agent({
      maxRetries: 0,
      origins: { 'http://gone.internal': { socketPath: join(dir, 'none.sock') } },
    });
    try {
      const t = performance.now();
      await expect(agent.request({ url: 'http://gone.internal/' })).rejects.toMatchObject({
        code: 'OL_CONNECT_FAILED',
      });
      expect(performance.now() - t).toBeLessThan(1000);
    } finally {
      await agent.close();
    }
  });

  it('a relative path, h3 or a proxy: refused at construction, naming the field', () => {
    const field = (o: ConstructorParameters<typeof Agent>[0]): string => {
      try {
        new Agent(o);
        return 'accepted';
      } catch (e) {
        const m = (e as Error).message;
        return m.slice(0, m.indexOf(': '));
      }
    };
    const at = 'origins["http://x.internal"].socketPath';
    expect(field({ origins: { 'http://x.internal': { socketPath: 'rel.sock' } } })).toBe(at);
    expect(field({ protocol: 'h3', origins: { 'http://x.internal': { socketPath: plain } } })).toBe(at);
    expect(
      field({ origins: { 'http://x.internal': { socketPath: plain, proxy: { url: 'http://127.0.0.1:1' } } } }),
    ).toBe(at);
  });
});

describe('the service: origins.NAME.socketPath', () => {
  const config = (origins: string): string => `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
logging: { requests: false }
admin: false
origins:
${origins}
routes:
  - { path: /, origin: app }
`;

  it('forwards to an origin on a unix socket, h2 over TLS by the URL name', async () => {
    const svc = await Service.start(
      parseConfig(
        config(`  app: { url: "https://localhost", socketPath: ${secure}, tls: { ca: ${certs.caPath} } }`),
        'unix.yaml',
        dir,
      ),
      { logDestination: { write: () => {} } },
    );
    try {
      const port = svc.addresses()['plain'] as number;
      const res = await fetch(`http://127.0.0.1:${port}/via`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('tls HTTP/2.0 /via\n');
    } finally {
      await svc.shutdown();
    }
  });

  it('a relative path, a group or h3 is a config error on its line', () => {
    const reason = (origin: string): string => {
      try {
        parseConfig(config(origin), 'unix.yaml', dir);
        return 'accepted';
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return `${(e as ConfigError).details['field']}: ${(e as ConfigError).details['reason']}`;
      }
    };
    expect(reason('  app: { url: "http://a.internal", socketPath: rel.sock }')).toBe(
      'origins.app.socketPath: must be an absolute path of at most 107 bytes',
    );
    expect(reason(`  app: { urls: ["http://a.internal", "http://b.internal"], socketPath: ${plain} }`)).toBe(
      'origins.app.socketPath: a unix socket is one origin: give `url`, not a group',
    );
    expect(reason(`  app: { url: "https://a.internal", protocol: h3, socketPath: ${plain} }`)).toBe(
      'origins.app.socketPath: a unix socket carries h1 or h2, not h3',
    );
  });
});
