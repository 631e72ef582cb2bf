/**
 * Client certificates on the fronts (`listeners[].tls.clientCa`, `clientAuth`, `clientCertHeader`): curl (OpenSSL)
 * against the https front, our own h3 client against the h3 front. A verified certificate's subject and SHA-256 reach
 * the origin in the configured field (the client's own field of that name never does) and the request log; a client
 * without one where one is required, or with one from another CA, gets the TLS alert and is counted in
 * `originlink_front_tls_refused_total{reason="client_cert"}`.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ErrorCode, OriginlinkError } from '../../src/index.js';
import { ensureH3 } from '../../src/service/upstream.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts, makeLeaf } from '../helpers/certs.js';

const certs = makeCerts();
const edge = makeLeaf(certs, 'front-edge', ['edge.test'], 'clientAuth');
const stranger = makeCerts({ fresh: true });
const strangerLeaf = makeLeaf(stranger, 'front-stranger', ['stranger.test'], 'clientAuth');
const edgeHash = new X509Certificate(readFileSync(edge.certPath)).fingerprint256.replaceAll(':', '').toLowerCase();
const edgeField = `Hash=${edgeHash};Subject="CN=edge.test"`;
const strangerArgs = ['--cacert', certs.caPath, '--cert', strangerLeaf.certPath, '--key', strangerLeaf.keyPath];

type Curl = { code: number; out: string; err: string };
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (_e, out, err) => resolve(`${out}${err}`));
  });
}
function curl(args: string[]): Promise<Curl> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], { timeout: 15_000 }, (e, out, err) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out, err }),
    );
  });
}

describe('client certificates on the https and h3 fronts', () => {
  let origin: http.Server;
  let originPort: number;
  let svc: Service;
  const logs: Array<Record<string, unknown>> = [];
  const port = (name: string): number => svc.addresses()[name] as number;

  beforeAll(async () => {
    // The origin answers with the field the front sent (or "-").
    origin = http.createServer((req, res) => res.end(`${req.headers['x-client-cert'] ?? '-'}`));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as AddressInfo).port;
    await ensureH3();
    const mtls = (mode: string): string =>
      `tls: { cert: ${certs.certPath}, key: ${certs.keyPath}, clientCa: ${certs.caPath}, clientAuth: ${mode}, clientCertHeader: X-Client-Cert }`;
    const yaml = `
listeners:
  - { name: strict, kind: https, host: 127.0.0.1, port: 0, ${mtls('require')} }
  - { name: loose, kind: https, host: 127.0.0.1, port: 0, ${mtls('optional')} }
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, ${mtls('require')} }
admin: { host: 127.0.0.1, port: 0 }
logging: { flushMs: 0 }
origins:
  o: { url: "http://127.0.0.1:${originPort}" }
routes:
  - { path: /, origin: o }
`;
    svc = await Service.start(parseConfig(yaml, 'front-mtls.yaml', certs.dir), {
      logDestination: { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) },
    });
  }, 30_000);
  afterAll(async () => {
    await svc?.shutdown(500);
    origin?.close();
  });

  async function refusedCount(): Promise<Record<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${svc.adminPort}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^originlink_front_tls_refused_total\{([^}]*)\} (\d+)/gm)) {
      const listener = /listener="([^"]+)"/.exec(m[1] as string)?.[1] ?? '';
      const reason = /reason="([^"]+)"/.exec(m[1] as string)?.[1] ?? '';
      out[`${listener}/${reason}`] = Number(m[2]);
    }
    return out;
  }

  it('https, require: curl with the edge certificate gets through, its subject and hash reach the origin (a forged field never does) and the log', async () => {
    const url = `https://localhost:${port('strict')}/x`;
    const ok = await curl([
      '--cacert',
      certs.caPath,
      '--cert',
      edge.certPath,
      '--key',
      edge.keyPath,
      '-H',
      'X-Client-Cert: Hash=forged;Subject="CN=admin"',
      url,
    ]);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toBe(edgeField);
    const line = logs.find((l) => l['msg'] === 'request' && l['listener'] === 'strict');
    expect(line?.['clientCert']).toBe('CN=edge.test');
    expect(line?.['clientCertSha256']).toBe(edgeHash);
  });

  it('https, require: none, or one from another CA, is refused (400 / GOAWAY with the reason) and counted', async () => {
    const before = await refusedCount();
    const url = `https://localhost:${port('strict')}/x`;
    // Refused after the handshake, in the client's protocol (as nginx answers 400): HTTP/1.1 400 with the reason,
    // HTTP/2 GOAWAY INADEQUATE_SECURITY; never forwarded.
    const none = await curl(['--http1.1', '-w', ' %{http_code}', '--cacert', certs.caPath, url]);
    expect(none.code, none.err).toBe(0);
    expect(none.out).toBe('client certificate required\n 400');
    const other = await curl([...strangerArgs, url]);
    expect(other.code, other.err).toBe(16); // curl: "Error in the HTTP2 framing layer" for a GOAWAY with an error
    expect(other.out).toBe('');
    // nghttp2's client shows the frame: GOAWAY, INADEQUATE_SECURITY, our reason as its debug data.
    const ng = await run('nghttp', ['-v', '--cert', strangerLeaf.certPath, '--key', strangerLeaf.keyPath, url]);
    expect(ng).toMatch(
      /recv GOAWAY frame[\s\S]*error_code=INADEQUATE_SECURITY\(0x0c\)[\s\S]*opaque_data\(\d+\)=\[client certificate not verified/,
    );
    await expect
      .poll(async () => ((await refusedCount())['strict/client_cert'] ?? 0) - (before['strict/client_cert'] ?? 0))
      .toBe(3);
  });

  it('https, optional: a client without one gets through with no field (its forged one dropped); one that does not verify is refused', async () => {
    const url = `https://localhost:${port('loose')}/x`;
    const none = await curl(['--cacert', certs.caPath, '-H', 'X-Client-Cert: Hash=forged', url]);
    expect(none.code, none.err).toBe(0);
    expect(none.out).toBe('-');
    const good = await curl(['--cacert', certs.caPath, '--cert', edge.certPath, '--key', edge.keyPath, url]);
    expect(good.out).toBe(edgeField);
    const before = await refusedCount();
    const other = await curl([...strangerArgs, url]);
    expect(other.code).not.toBe(0);
    expect(other.out).toBe('');
    await expect
      .poll(async () => ((await refusedCount())['loose/client_cert'] ?? 0) - (before['loose/client_cert'] ?? 0))
      .toBe(1);
  });

  it('h3, require: our client with the certificate gets through with the field; none → certificate_required, another CA → refused, counted', async () => {
    const url = `https://localhost:${port('quic')}/x`;
    const id = { cert: readFileSync(edge.certPath), key: readFileSync(edge.keyPath) };
    const good = new Agent({ protocol: 'h3', tls: { ca: certs.ca, ...id } });
    const none = new Agent({ protocol: 'h3', maxRetries: 0, tls: { ca: certs.ca } });
    const other = new Agent({
      protocol: 'h3',
      maxRetries: 0,
      tls: { ca: certs.ca, cert: readFileSync(strangerLeaf.certPath), key: readFileSync(strangerLeaf.keyPath) },
    });
    const before = await refusedCount();
    try {
      const r = await good.request({ url, headers: [['x-client-cert', 'Hash=forged']] });
      expect(r.protocol).toBe('h3');
      expect(await r.text()).toBe(edgeField);
      const e = await none.request({ url }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OriginlinkError);
      expect((e as OriginlinkError).code).toBe(ErrorCode.CLIENT_CERT_REFUSED);
      expect((e as OriginlinkError).details?.['alert']).toBe('certificate_required');
      const e2 = await other.request({ url }).catch((x: unknown) => x);
      expect((e2 as OriginlinkError).code).toBe(ErrorCode.CLIENT_CERT_REFUSED);
      await expect
        .poll(async () => ((await refusedCount())['quic/client_cert'] ?? 0) - (before['quic/client_cert'] ?? 0))
        .toBe(2);
    } finally {
      await good.close();
      await none.close();
      await other.close();
    }
  });

  it('--check: clientAuth without clientCa, or a field name that is not one, is the field error', () => {
    const y = (tls: string): string =>
      `listeners:\n  - { kind: https, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath}, ${tls} } }\norigins:\n  o: { url: "http://127.0.0.1:1" }\nroutes:\n  - { path: /, origin: o }\n`;
    expect(() => parseConfig(y('clientAuth: optional'), 'x.yaml', certs.dir)).toThrow(
      /listeners\[0\]\.tls\.clientAuth: needs tls\.clientCa/,
    );
    expect(() => parseConfig(y(`clientCa: ${certs.caPath}, clientCertHeader: "a b"`), 'x.yaml', certs.dir)).toThrow(
      /clientCertHeader: not a field name/,
    );
    expect(() => parseConfig(y(`clientCa: ${edge.keyPath}`), 'x.yaml', certs.dir)).toThrow(/clientCa/);
  });
});
