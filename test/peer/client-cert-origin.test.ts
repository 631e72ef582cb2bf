/**
 * Client certificates to origins (mutual TLS, RFC 8446 §4.4.2): the Agent's `tls.cert`/`tls.key` shown to nginx
 * with `ssl_verify_client on` over h1 and h2, to Caddy requiring and verifying one over h1, h2 and h3 (quic-go), and
 * to a strict OpenSSL server (node:tls) that refuses a handshake without one, over TLS 1.3 and 1.2: a refusal is
 * OL_CLIENT_CERT_REFUSED naming the origin, sent once (never retried), and the identity is part of the reuse key.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';
import { makeCerts, makeLeaf } from '../helpers/certs.js';
import { caddyEnv, startPeer, type Peer } from '../helpers/h3-peers.js';
import { Nginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';

const certs = makeCerts();
const edge = makeLeaf(certs, 'edge-client', ['edge.test'], 'clientAuth');
const stranger = makeCerts({ fresh: true });
const strangerLeaf = makeLeaf(stranger, 'stranger-client', ['stranger.test'], 'clientAuth');
const id = { cert: readFileSync(edge.certPath), key: readFileSync(edge.keyPath) };
const strangerId = { cert: readFileSync(strangerLeaf.certPath), key: readFileSync(strangerLeaf.keyPath) };

async function refusal(p: Promise<unknown>): Promise<OriginlinkError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OriginlinkError);
  return e as OriginlinkError;
}

describe('nginx with ssl_verify_client on', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await Nginx.start({
      serverExtra: `ssl_client_certificate ${certs.caPath};\n    ssl_verify_client on;\n    location = /who { return 200 "$ssl_client_verify $ssl_client_s_dn\\n"; }`,
    });
  }, 30_000);
  afterAll(async () => {
    await nginx?.stop();
  });

  it.each(['h1', 'h2'] as const)(
    '%s: the certificate is shown and verified; 10 requests share one connection; without it nginx answers 400',
    async (protocol) => {
      const url = `https://localhost:${nginx.port}/who`;
      const agent = new Agent({ protocol, maxRetries: 0, tls: { ca: certs.ca, ...id } });
      const bare = new Agent({ protocol, maxRetries: 0, tls: { ca: certs.ca } });
      try {
        const mark = nginx.log().length;
        for (let i = 0; i < 10; i++) {
          const r = await agent.request({ url });
          expect(r.status).toBe(200);
          expect(await r.text()).toBe('SUCCESS CN=edge.test\n');
        }
        // The answered ones: the case before may have its last line, the refused request's 400, logged after `mark`.
        const lines = (await nginx.logSince(mark, 10, 3000)).filter((l) => l.uri === '/who' && l.status === 200);
        expect(lines).toHaveLength(10);
        expect(new Set(lines.map((l) => l.connection)).size).toBe(1);
        expect(lines[0]?.protocol).toBe(protocol === 'h2' ? 'HTTP/2.0' : 'HTTP/1.1');
        // nginx completes the handshake and refuses in HTTP (its 400 "No required SSL certificate was sent").
        const r = await bare.request({ url });
        expect(r.status).toBe(400);
        expect(await r.text()).toContain('No required SSL certificate was sent');
      } finally {
        await agent.close();
        await bare.close();
      }
    },
    30_000,
  );

  it('the identity is part of the reuse key: one origin, two identities, two pools, never one connection', async () => {
    const url = `https://localhost:${nginx.port}/who`;
    const agent = new Agent({
      protocol: 'h2',
      maxRetries: 0,
      tls: { ca: certs.ca },
      origins: { [`https://localhost:${nginx.port}`]: { tls: id } },
    });
    try {
      expect(await (await agent.request({ url })).text()).toBe('SUCCESS CN=edge.test\n');
      // The same server by its IP: no identity configured for that name, so no coalescing onto the edge's connection.
      const r = await agent.request({ url: `https://127.0.0.1:${nginx.port}/who` });
      expect(r.status).toBe(400);
      await r.text();
      const keys = agent.pools().map((p) => p.key);
      expect(keys).toHaveLength(2);
      expect(keys.filter((k) => k.includes('|cert=')).length).toBe(1);
    } finally {
      await agent.close();
    }
  });
});

describe('a strict OpenSSL server (node:tls requestCert, rejectUnauthorized)', () => {
  const servers: https.Server[] = [];
  const counts = new Map<number, { ok: number; refused: number }>();
  async function strict(maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<number> {
    const s = https.createServer(
      { cert: certs.cert, key: certs.key, ca: certs.ca, requestCert: true, rejectUnauthorized: true, maxVersion },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.end(`${peer.subject?.CN ?? '-'}\n`);
      },
    );
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    const c = { ok: 0, refused: 0 };
    counts.set(port, c);
    s.on('secureConnection', () => c.ok++);
    s.on('tlsClientError', () => c.refused++);
    servers.push(s);
    return port;
  }
  afterAll(() => {
    for (const s of servers) s.close();
  });

  it.each(['TLSv1.3', 'TLSv1.2'] as const)(
    '%s: shown → 200; none → refused in one handshake, never retried (maxRetries 3)',
    async (v) => {
      const port = await strict(v);
      const url = `https://localhost:${port}/`;
      const c = counts.get(port) as { ok: number; refused: number };
      const good = new Agent({ protocol: 'h1', tls: { ca: certs.ca, ...id } });
      const none = new Agent({ protocol: 'h1', maxRetries: 3, tls: { ca: certs.ca } });
      try {
        const r = await good.request({ url });
        expect(await r.text()).toBe('edge.test\n');
        const e = await refusal(none.request({ url }));
        if (v === 'TLSv1.3') {
          // RFC 8446 §4.4.2.4: certificate_required, after our Finished: an error of the connection, named.
          expect(e.code).toBe(ErrorCode.CLIENT_CERT_REFUSED);
          expect(e.message).toContain(`localhost (127.0.0.1:${port}) requires a client certificate and we showed none`);
          expect(e.message).toContain('tls.cert');
          expect(e.details?.['alert']).toBe('certificate_required');
        } else {
          // TLS 1.2 has no such alert: OpenSSL sends handshake_failure, which says nothing of certificates; the
          // message says what it may mean.
          expect(e.code).toBe(ErrorCode.TLS_FAILED);
          expect(e.message).toContain('tls.cert');
        }
        await expect.poll(() => c.refused, { timeout: 3000 }).toBe(1);
        await new Promise((r) => setTimeout(r, 100));
        expect(c.refused).toBe(1);
        expect(c.ok).toBe(1);
      } finally {
        await good.close();
        await none.close();
      }
    },
    30_000,
  );
});

describe('Caddy requiring and verifying a client certificate (h1, h2; h3 over quic-go)', () => {
  let caddy: Peer;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    // Caddy's own folder (startPeer removes it at stop): never the certificates' one, which later tests read.
    const dir = mkdtempSync(join(tmpdir(), 'ol-caddy-mtls-'));
    const file = join(dir, `Caddyfile-mtls-${port}`);
    writeFileSync(
      file,
      `{\n  admin off\n  auto_https disable_redirects\n  storage file_system ${dir}/caddy-mtls-${port}\n  servers {\n    protocols h1 h2 h3\n  }\n}\n` +
        `https://localhost:${port} {\n  tls ${certs.certPath} ${certs.keyPath} {\n    client_auth {\n      mode require_and_verify\n      trusted_ca_cert_file ${certs.caPath}\n    }\n  }\n  respond "{http.request.proto} {http.request.tls.client.subject}"\n}\n`,
    );
    caddy = await startPeer({
      argv: ['caddy', 'run', '--adapter', 'caddyfile', '--config', file],
      opts: { env: caddyEnv(dir) },
      ready: /server running|serving initial configuration/,
      port,
      dir,
      settleMs: 200,
    });
  }, 30_000);
  afterAll(async () => {
    await caddy?.stop();
  });

  it.each([
    ['h1', 'HTTP/1.1'],
    ['h2', 'HTTP/2.0'],
    ['h3', null],
  ] as const)(
    "%s: shown → accepted, our subject seen; none, or another CA's → OL_CLIENT_CERT_REFUSED",
    async (protocol, proto) => {
      const url = `https://localhost:${port}/`;
      const good = new Agent({ protocol, tls: { ca: certs.ca, ...id } });
      const none = new Agent({ protocol, maxRetries: 2, tls: { ca: certs.ca } });
      const other = new Agent({ protocol, maxRetries: 2, tls: { ca: certs.ca, ...strangerId } });
      try {
        const r = await good.request({ url });
        const body = await r.text();
        if (proto !== null) {
          expect(r.status).toBe(200);
          expect(body).toBe(`${proto} CN=edge.test`);
        } else {
          // Caddy 2.6 passed our certificate in the QUIC handshake (require_and_verify: it would have refused it) but
          // answers h3 requests on a client-auth site 421 (its SNI/Host check); our own h3 front shows the subject
          // (client-cert-front.test.ts).
          expect(r.status).toBe(421);
        }
        // Over h2 our preface leaves with our Finished: the server closes with it unread, and Linux drops the alert
        // still queued for us when the RST it sends arrives first (the alert is then lost to any client). h1 writes
        // nothing before a request, QUIC has no RST.
        const codes =
          protocol === 'h2' ? [ErrorCode.CLIENT_CERT_REFUSED, ErrorCode.SOCKET_RESET] : [ErrorCode.CLIENT_CERT_REFUSED];
        const e = await refusal(none.request({ url }));
        expect(codes).toContain(e.code);
        if (e.code === ErrorCode.CLIENT_CERT_REFUSED)
          expect(e.message).toMatch(new RegExp(`:${port}\\)? requires a client certificate and we showed none`));
        const e2 = await refusal(other.request({ url }));
        expect(codes).toContain(e2.code);
        if (e2.code === ErrorCode.CLIENT_CERT_REFUSED)
          expect(e2.message).toContain('did not accept our client certificate');
      } finally {
        await good.close();
        await none.close();
        await other.close();
      }
    },
    30_000,
  );
});

describe('options', () => {
  it('a key of another certificate, or a cert without its key: OL_INVALID_CONFIG naming the field, at once', () => {
    expect(() => new Agent({ tls: { cert: id.cert, key: strangerId.key } })).toThrow(/tls\.key: .*not the key of/);
    expect(() => new Agent({ tls: { cert: id.cert } })).toThrow(/tls\.key/);
    expect(() => new Agent({ origins: { 'https://a.test': { tls: { key: id.key } } } })).toThrow(
      /origins\["https:\/\/a\.test"\]\.tls\.cert|tls\.cert/,
    );
  });
});

describe('the service: origins.NAME.tls.cert / tls.key', () => {
  const yaml = (port: number, tls: string): string => `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
logging: { requests: false }
origins:
  o:
    url: https://localhost:${port}
    protocol: h2
    tls: { ca: ${certs.caPath}${tls} }
routes:
  - { path: /, origin: o }
`;

  it('forwards with the certificate to nginx requiring one; a key of another certificate fails the config, naming it', async () => {
    const nginx = await Nginx.start({
      serverExtra: `ssl_client_certificate ${certs.caPath};\n    ssl_verify_client on;\n    location = /who { return 200 "$ssl_client_verify $ssl_client_s_dn\\n"; }`,
    });
    const { parseConfig } = await import('../../src/service/config.js');
    const { Service } = await import('../../src/service/service.js');
    const svc = await Service.start(
      parseConfig(yaml(nginx.port, `, cert: ${edge.certPath}, key: ${edge.keyPath}`), 'mtls.yaml', certs.dir),
    );
    try {
      const port = svc.addresses()['plain'] as number;
      const r = await fetch(`http://127.0.0.1:${port}/who`);
      expect(await r.text()).toBe('SUCCESS CN=edge.test\n');
      expect(() =>
        parseConfig(yaml(nginx.port, `, cert: ${edge.certPath}, key: ${strangerLeaf.keyPath}`), 'mtls.yaml', certs.dir),
      ).toThrow(/origins\.o\.tls\.key.*is not the key of/);
      // A group endpoint's own certificate (endpoints[].tls), the origin having none.
      const group = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
logging: { requests: false }
origins:
  g:
    endpoints: [{ url: "https://localhost:${nginx.port}", tls: { cert: ${edge.certPath}, key: ${edge.keyPath} } }]
    protocol: h2
    tls: { ca: ${certs.caPath} }
routes:
  - { path: /, origin: g }
`;
      const svc2 = await Service.start(parseConfig(group, 'group.yaml', certs.dir));
      try {
        const r2 = await fetch(`http://127.0.0.1:${svc2.addresses()['plain'] as number}/who`);
        expect(await r2.text()).toBe('SUCCESS CN=edge.test\n');
      } finally {
        await svc2.shutdown(500);
      }
      expect(() => parseConfig(yaml(nginx.port, `, cert: ${edge.certPath}`), 'mtls.yaml', certs.dir)).toThrow(
        /origins\.o\.tls\.key.*needs both cert and key/,
      );
    } finally {
      await svc.shutdown(500);
      await nginx.stop();
    }
  }, 30_000);
});
