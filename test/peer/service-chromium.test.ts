/**
 * Headless Chromium as a client of the connector's fronts (issue 17): the
 * service with an `https` front and an `h3` front, forwarding to an HTTP/1.1
 * origin that records the `Via` each request came with (`2 originlink` from
 * the h2 front, `3 originlink` from the h3 front).
 *
 * 1. Chromium with QUIC off, as an HTTP/2 client of the https front: 40
 *    parallel GETs, a 300 KiB POST echo and a 2 MiB download byte-identical.
 * 2. Discovery without forcing QUIC for the front: Chromium first speaks h2
 *    to the https front, reads `Alt-Svc: h3=":PORT"` (RFC 7838) and moves its
 *    later requests to the h3 front (nextHopProtocol h2 → h3). The test CA
 *    is a trusted root in an NSS db of a temporary HOME (test/helpers/chromium.ts),
 *    so the https front's chain really verifies. That is enough for TLS over
 *    TCP but not for QUIC: Chromium's QUIC certificate check (net/quic/crypto/
 *    proof_verifier_chromium.cc) refuses any chain not issued by a *known*
 *    (public) root unless the host name is in `hostnames_to_allow_unknown_roots`,
 *    which Chromium fills only from the hosts of `--origin-to-force-quic-on`
 *    (measured, netlog: QUIC_SESSION_CLOSED "TLS handshake failure … 46:
 *    certificate unknown", every one of 60 fetches staying h2). So QUIC is
 *    forced for `localhost:1`, a port nothing listens on and no page asks for:
 *    it exempts the name `localhost` from the known-root rule and forces
 *    nothing for the front's origin, which Chromium reaches only through
 *    Alt-Svc. (With that exemption the SPKI pin instead of the NSS root also
 *    discovers h3: Alt-Svc itself only needs a certificate without errors.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { makeCerts } from '../helpers/certs.js';
import { launchChromium, PAGE_LIB, spki, type Browser } from '../helpers/chromium.js';

const certs = makeCerts();
const big = randomBytes(2 * 1024 * 1024);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let origin: H1Server;
let svc: Service;
let ports: Record<string, number>;
/** Path → the Via the origin saw (which front the request came through). */
const via = new Map<string, string>();

beforeAll(async () => {
  origin = await startH1Server({
    handler: async (req) => {
      via.set(req.path, req.headers.find(([n]) => n === 'via')?.[1] ?? '');
      if (req.path === '/')
        return {
          status: 200,
          headers: [['content-type', 'text/html']],
          body: '<!doctype html><title>front</title><p>ok',
        };
      if (req.path === '/big')
        return { status: 200, headers: [['content-type', 'application/octet-stream']], body: big };
      if (req.path === '/echo') {
        const chunks: Buffer[] = [];
        for await (const c of req.body) chunks.push(c as Buffer);
        return { status: 200, headers: [['content-type', 'application/octet-stream']], body: Buffer.concat(chunks) };
      }
      return {
        status: 200,
        headers: [
          ['content-type', 'text/plain'],
          ['cache-control', 'no-store'],
        ],
        body: 'r' + req.path,
      };
    },
  });
  const yaml = `
listeners:
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
  - { name: quic, kind: h3, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
proxy: { altSvcMaxAge: 3600 }
origins:
  o: { url: "http://127.0.0.1:${origin.address.port}", protocol: h1 }
routes:
  - { path: /, origin: o }
`;
  svc = await Service.start(parseConfig(yaml, 'chromium.yaml', certs.dir), { logDestination: { write: () => {} } });
  ports = svc.addresses();
}, 30_000);

afterAll(async () => {
  await svc?.shutdown(200);
  await origin?.close(100);
});

describe('headless Chromium against the connector', () => {
  it('HTTP/2 client of the https front: 40 parallel GETs, a POST echo and a 2 MiB GET, all h2', async () => {
    let b: Browser | null = null;
    try {
      b = await launchChromium({
        flags: ['--disable-quic', `--ignore-certificate-errors-spki-list=${spki(certs.cert)}`],
      });
      await b.cdp.navigate(`https://localhost:${ports['tls']}/`);
      const post = randomBytes(300 * 1024).toString('base64');
      const r = await b.cdp.eval<Record<string, unknown>>(
        `(async () => {
        ${PAGE_LIB}
        const gets = await Promise.all(Array.from({ length: 40 }, (_, i) => timed('/r/' + i, {}, 20000)));
        const body = ${JSON.stringify(post)};
        const p = await timed('/echo', { method: 'POST', body }, 20000);
        const g = await timed('/big', {}, 30000);
        return {
          gets: gets.filter((r, i) => r.ok && new TextDecoder().decode(r.buf) === 'r/r/' + i).length,
          echo: p.ok ? new TextDecoder().decode(p.buf) === body : p.error,
          big: g.ok ? await hex(g.buf) : g.error,
          nav: performance.getEntriesByType('navigation')[0].nextHopProtocol,
          protos: [...new Set(performance.getEntriesByType('resource').map((e) => e.nextHopProtocol))],
        };
      })()`,
        90_000,
      );
      expect(r).toEqual({ gets: 40, echo: true, big: sha(big), nav: 'h2', protos: ['h2'] });
      expect(via.get('/big')).toBe('2 originlink');
    } finally {
      await b?.close();
    }
  }, 120_000);

  it('discovers the h3 front through Alt-Svc without forcing QUIC: h2 first, then h3', async () => {
    let b: Browser | null = null;
    try {
      // Only localhost:1 (nothing there, never asked for) is forced: see the header for why the flag is given at all.
      b = await launchChromium({
        flags: ['--enable-quic', '--origin-to-force-quic-on=localhost:1'],
        trustCa: certs.caPath,
      });
      await b.cdp.navigate(`https://localhost:${ports['tls']}/`);
      // One fetch at a time until one goes over h3 (bounded), then 10 more.
      const r = await b.cdp.eval<{ seq: string[]; after: string[]; nav: string }>(
        `(async () => {
        ${PAGE_LIB}
        const seq = [];
        for (let i = 0; i < 50 && seq.at(-1) !== 'h3'; i++) {
          const r = await timed('/d/' + i, {}, 10000);
          seq.push(r.ok ? proto('/d/' + i)[0] : 'failed: ' + r.error);
          await new Promise((res) => setTimeout(res, 100));
        }
        const after = [];
        for (let i = 0; i < 10; i++) {
          const r = await timed('/a/' + i, {}, 10000);
          after.push(r.ok ? proto('/a/' + i)[0] : 'failed: ' + r.error);
        }
        return { seq, after, nav: performance.getEntriesByType('navigation')[0].nextHopProtocol };
      })()`,
        90_000,
      );
      console.log(
        `service-chromium Alt-Svc discovery: navigation ${r.nav}, fetches ${JSON.stringify(r.seq)}, then ${JSON.stringify(r.after)}`,
      );
      expect(r.nav).toBe('h2');
      expect(r.seq.at(-1)).toBe('h3');
      expect(r.after).toEqual(Array(10).fill('h3'));
      // The origin saw the same: the page through the h2 front, the later requests through the h3 front.
      expect(via.get('/')).toBe('2 originlink');
      expect(Array.from({ length: 10 }, (_, i) => via.get(`/a/${i}`))).toEqual(Array(10).fill('3 originlink'));
    } finally {
      await b?.close();
    }
  }, 120_000);
});
