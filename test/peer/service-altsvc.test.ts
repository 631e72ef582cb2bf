/**
 * Alt-Svc on the https front for the service's h3 listener (RFC 7838): curl sees it (with the
 * configured `ma`), the origin's own Alt-Svc is not passed on, the h3 front does not advertise
 * itself, a client that discovers through Alt-Svc (our Agent with `protocol: auto`) moves to
 * HTTP/3, and without an h3 listener nothing is advertised.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { makeCerts } from '../helpers/certs.js';

const run = promisify(execFile);
const certs = makeCerts();
let origin: H1Server;
let svc: Service;
let plainSvc: Service;
let a: Record<string, number>;

beforeAll(async () => {
  origin = await startH1Server({
    handler: (req) => ({
      status: 200,
      headers: [
        ['alt-svc', 'h3=":9999"; ma=60'],
        ['content-type', 'text/plain'],
      ],
      body: `hello ${req.path}\n`,
    }),
  });
  const listeners = (h3: boolean): string => `
listeners:
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
${h3 ? `  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }` : ''}
admin: false
proxy: { altSvcMaxAge: 3600 }
origins:
  o: { url: "http://127.0.0.1:${origin.address.port}", protocol: h1 }
routes:
  - { path: /, origin: o }
`;
  svc = await Service.start(parseConfig(listeners(true), 'altsvc.yaml', certs.dir), {
    logDestination: { write: () => {} },
  });
  plainSvc = await Service.start(parseConfig(listeners(false), 'altsvc-none.yaml', certs.dir), {
    logDestination: { write: () => {} },
  });
  a = svc.addresses() as Record<string, number>;
});

afterAll(async () => {
  await svc?.shutdown(200);
  await plainSvc?.shutdown(200);
  await origin?.close(100);
});

describe('Alt-Svc for the h3 listener', () => {
  it('the https front (h1 and h2) advertises the h3 listener with the configured ma; the origin’s own Alt-Svc is dropped', async () => {
    for (const v of ['--http1.1', '--http2']) {
      const { stdout } = await run('curl', [
        '-sS',
        '-D',
        '-',
        '-o',
        '/dev/null',
        v,
        '--cacert',
        certs.caPath,
        `https://localhost:${a['tls']}/x`,
      ]);
      const alt = stdout.split('\r\n').filter((l) => /^alt-svc:/i.test(l));
      expect(alt).toEqual([`alt-svc: h3=":${a['quic']}"; ma=3600`]);
    }
  });

  it('a client that discovers by Alt-Svc moves to HTTP/3; the h3 front does not advertise itself', async () => {
    const agent = new Agent({ protocol: 'auto', tls: { ca: certs.ca } });
    try {
      const protocols: string[] = [];
      for (let i = 0; i < 6 && protocols.at(-1) !== 'h3'; i++) {
        const r = await agent.request({ origin: `https://localhost:${a['tls']}`, path: `/p${i}` });
        protocols.push(r.protocol);
        if (r.protocol === 'h3') expect(r.headers.some(([n]) => n === 'alt-svc')).toBe(false);
        await r.text();
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(protocols[0]).not.toBe('h3');
      expect(protocols.at(-1)).toBe('h3');
    } finally {
      await agent.close();
    }
  });

  it('without an h3 listener nothing is advertised', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-D',
      '-',
      '-o',
      '/dev/null',
      '--cacert',
      certs.caPath,
      `https://localhost:${plainSvc.addresses()['tls']}/x`,
    ]);
    expect(stdout).not.toMatch(/alt-svc/i);
  });
});
