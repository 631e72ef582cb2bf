/**
 * Certificates by server name on the https and h3 fronts (issue 17): a
 * listener's `tls.certificates` are served to clients asking for a name they
 * hold, exact before wildcard, the default certificate to everyone else.
 * Each client verifies the chain and the name against the test CA, so a
 * success means the right certificate came back. Peers: curl (OpenSSL) on
 * the https front; quiche (our client) and headless Chromium on the h3
 * front — Chromium's ClientHello, with its post-quantum key share, spans two
 * Initial packets, which the server must hold until the name is readable
 * (src/quic/initial.ts). Also: config refusals for a certificate that can
 * never be chosen and a key that does not match.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import { connectH3 } from '../../src/connect/h3.js';
import type { H3PooledConnection } from '../../src/client/h3.js';
import { startH3Server, type H3Server } from '../../src/server/h3.js';
import { makeCerts, makeLeaf } from '../helpers/certs.js';
import { freePort, freeTcpUdpPort } from '../helpers/ports.js';
import { launchChromium, PAGE_LIB, type Browser } from '../helpers/chromium.js';

const run = promisify(execFile);
const certs = makeCerts();
const one = makeLeaf(certs, 'one', ['one.test']);
const wild = makeLeaf(certs, 'wild', ['*.wild.test']);
let origin: H1Server;
let svc: Service;
let https = 0;
let quic = 0;

const two = makeLeaf(certs, 'two', ['two.test']);

/** The service's config, with these extra certificates on both fronts. */
function yamlWith(extra: Array<{ certPath: string; keyPath: string }>): string {
  const list = extra.map((c) => `{ cert: ${c.certPath}, key: ${c.keyPath} }`).join(', ');
  const tls = `{ cert: ${certs.certPath}, key: ${certs.keyPath}, certificates: [ ${list} ] }`;
  return `
listeners:
  - { name: s, kind: https, host: 127.0.0.1, port: ${https}, tls: ${tls} }
  - { name: q, kind: h3, host: 127.0.0.1, port: ${quic}, tls: ${tls} }
admin: false
logging: { requests: false }
origins:
  o: { url: "http://127.0.0.1:${origin.address.port}", protocol: h1 }
routes: [ { path: /, origin: o, hostHeader: preserve } ]
`;
}

/** GET / over our h3 client asking for `name` (verified against the test CA): the body, or why the handshake failed. */
async function h3Get(name: string): Promise<string> {
  const c = await connectH3({ host: '127.0.0.1', port: quic, servername: name, ca: certs.caPath }).catch(
    (e: Error) => e,
  );
  if (c instanceof Error) return `failed: ${c.message}`;
  try {
    return await h3GetOn(c, name);
  } finally {
    c.destroy();
  }
}

async function h3GetOn(c: H3PooledConnection, name: string): Promise<string> {
  const r = await c.request({ method: 'GET', path: '/', authority: name, scheme: 'https', headers: [], body: null });
  let text = '';
  for await (const x of r.body) text += String(x);
  return text.trim();
}

async function curlGet(name: string): Promise<string> {
  try {
    const { stdout } = await run('curl', [
      '-sS',
      '--resolve',
      `${name}:${https}:127.0.0.1`,
      '--cacert',
      certs.caPath,
      `https://${name}:${https}/`,
    ]);
    return stdout.trim();
  } catch (e) {
    return `curl exit ${(e as { code?: number }).code}`;
  }
}

beforeAll(async () => {
  origin = await startH1Server({ handler: (req) => ({ status: 200, body: `host ${req.authority}\n` }) });
  // Fixed ports, as a real config has: a reload keeps a listener (and its socket) only when its address is the same.
  https = await freePort();
  quic = await freeTcpUdpPort();
  svc = await Service.start(parseConfig(yamlWith([one, wild]), 'sni.yaml', certs.dir), {
    logDestination: { write: () => {} },
  });
}, 30_000);

afterAll(async () => {
  await svc?.shutdown(200);
  await origin?.close(100);
});

describe('certificates chosen by server name', () => {
  it('https front, curl: one.test and x.wild.test get their own certificates, localhost the default, an unknown name fails verification', async () => {
    expect(await curlGet('one.test')).toBe(`host one.test:${https}`);
    expect(await curlGet('x.wild.test')).toBe(`host x.wild.test:${https}`);
    expect(await curlGet('localhost')).toBe(`host localhost:${https}`);
    // The default certificate does not hold nobody.test: curl's name check fails (exit 60, peer certificate not OK).
    expect(await curlGet('nobody.test')).toBe('curl exit 60');
    // A wildcard covers one label only (RFC 6125 §6.4.3).
    expect(await curlGet('a.b.wild.test')).toBe('curl exit 60');
  });

  it('h3 front, quiche client: the same choices', async () => {
    expect(await h3Get('one.test')).toBe('host one.test');
    expect(await h3Get('x.wild.test')).toBe('host x.wild.test');
    expect(await h3Get('localhost')).toBe('host localhost');
    expect(await h3Get('nobody.test')).toMatch(/^failed: .*certificate/i);
  });

  it('a reload with other certificates: new connections on both fronts get them, a live h3 connection keeps working', async () => {
    const live = await connectH3({ host: '127.0.0.1', port: quic, servername: 'one.test', ca: certs.caPath });
    try {
      expect(await h3Get('two.test')).toMatch(/^failed: .*certificate/i);
      await svc.reload(parseConfig(yamlWith([two, wild]), 'sni.yaml', certs.dir));
      expect(svc.addresses()['q']).toBe(quic); // the same socket, not a rebind
      expect(await h3Get('two.test')).toBe('host two.test');
      expect(await curlGet('two.test')).toBe(`host two.test:${https}`);
      // one.test left the list: the default certificate does not hold it.
      expect(await h3Get('one.test')).toMatch(/^failed: .*certificate/i);
      expect(await curlGet('one.test')).toBe('curl exit 60');
      expect(await h3Get('x.wild.test')).toBe('host x.wild.test');
      // Opened under the old certificates, still served.
      expect(await h3GetOn(live, 'one.test')).toBe('host one.test');
    } finally {
      live.destroy();
      await svc.reload(parseConfig(yamlWith([one, wild]), 'sni.yaml', certs.dir));
    }
    expect(await h3Get('one.test')).toBe('host one.test');
  }, 30_000);

  it('h3, headless Chromium: a ClientHello over two Initial packets still finds its certificate', async () => {
    const srv: H3Server = await startH3Server({
      cert: certs.certPath,
      key: certs.keyPath,
      certificates: [
        { cert: one.certPath, key: one.keyPath },
        { cert: wild.certPath, key: wild.keyPath },
      ],
      handler: (req) => ({
        status: 200,
        headers: [
          ['content-type', 'text/plain'],
          ['access-control-allow-origin', '*'],
        ],
        body: `h3 ${req.authority}`,
      }),
    });
    const port = srv.address.port;
    let b: Browser | null = null;
    try {
      b = await launchChromium({
        trustCa: certs.caPath,
        hosts: ['one.test', 'x.wild.test'],
        flags: ['--enable-quic', `--origin-to-force-quic-on=one.test:${port},x.wild.test:${port}`],
      });
      const seen: Record<string, unknown> = {};
      for (const name of ['one.test', 'x.wild.test']) {
        await b.cdp.navigate(`https://${name}:${port}/`);
        seen[name] = await b.cdp.eval(
          `(async () => {
          ${PAGE_LIB}
          return { body: document.body.innerText, proto: performance.getEntriesByType('navigation')[0].nextHopProtocol };
        })()`,
          20_000,
        );
      }
      const st = srv.stats();
      console.log(
        `sni chromium: ${JSON.stringify(seen)}; held ${st.helloHeld}, unread ${st.helloUnread}, datagrams ${st.helloDatagrams}`,
      );
      expect(seen).toEqual({
        'one.test': { body: `h3 one.test:${port}`, proto: 'h3' },
        'x.wild.test': { body: `h3 x.wild.test:${port}`, proto: 'h3' },
      });
      expect(st.helloHeld).toBeGreaterThanOrEqual(2);
      expect(st.helloUnread).toBe(0);
      // Each name was read only once the second Initial datagram had come.
      expect(st.helloDatagrams).toBeGreaterThanOrEqual(2 * st.helloHeld);
    } finally {
      await b?.close();
      await srv.close(100);
    }
  }, 90_000);

  it('config: a certificate with no DNS name, or a key that is not its own, is refused with the field named', () => {
    const base = (extra: string): string => `
listeners:
  - { name: s, kind: https, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath}, certificates: [ ${extra} ] } }
origins: { o: { url: "http://127.0.0.1:1" } }
routes: [ { path: /, origin: o } ]
`;
    expect(() => parseConfig(base(`{ cert: ${one.certPath}, key: ${wild.keyPath} }`), 'bad.yaml', certs.dir)).toThrow(
      /certificates\[0\]\.key: .*wild\.key is not the key of .*one\.pem/,
    );
    const ipOnly = makeLeaf(certs, 'ip-only', ['127.0.0.2']);
    expect(() =>
      parseConfig(base(`{ cert: ${ipOnly.certPath}, key: ${ipOnly.keyPath} }`), 'bad.yaml', certs.dir),
    ).toThrow(/certificates.*entry 0: .*ip-only\.pem holds no DNS name/);
  });
});
