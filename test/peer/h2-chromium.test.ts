/**
 * Headless Chromium (Debian's, its own HTTP/2 stack) as a client of our
 * HTTP/2 server over TLS with ALPN h2: a page that fetches 40 resources at
 * once, uploads 300 KiB and downloads 2 MiB, all over one connection. The
 * page reports what it got (and each resource's nextHopProtocol) into its
 * DOM, read over the DevTools protocol. The server records the connection each
 * request came on. Certificate trust by SPKI pin; the resolver is kept off
 * (LAB.md's flags).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { startH2Server, type H2Server } from '../../src/server/h2.js';
import type { RequestHandler } from '../../src/server/request.js';
import { makeCerts } from '../helpers/certs.js';
import { launchChromium, spki } from '../helpers/chromium.js';

const certs = makeCerts();
const big = randomBytes(2 * 1024 * 1024);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let server: H2Server;
const seen: Array<{ path: string; port: number; stream: number }> = [];

const PAGE = `<!doctype html><meta charset=utf-8><body><pre id=out>pending</pre><script>
(async () => {
  const gets = await Promise.all(Array.from({ length: 40 }, (_, i) => fetch('/r/' + i).then((r) => r.text())));
  const post = await fetch('/echo', { method: 'POST', body: 'x'.repeat(300 * 1024) }).then((r) => r.text());
  const buf = await fetch('/big').then((r) => r.arrayBuffer());
  const hash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buf)), (b) => b.toString(16).padStart(2, '0')).join('');
  const protos = [...new Set(performance.getEntriesByType('resource').map((e) => e.nextHopProtocol))];
  const nav = performance.getEntriesByType('navigation')[0].nextHopProtocol;
  document.getElementById('out').textContent = 'RESULT ' + JSON.stringify({
    gets: gets.filter((t, i) => t === 'r' + i).length, post: post.length, bigLen: buf.byteLength, hash, protos, nav,
  });
})().catch((e) => { document.getElementById('out').textContent = 'RESULT ' + JSON.stringify({ error: String(e) }); });
</script>`;

const handler: RequestHandler = async (req) => {
  seen.push({ path: req.path, port: req.remotePort, stream: req.streamId });
  if (req.path === '/') return { status: 200, headers: [['content-type', 'text/html']], body: PAGE };
  if (req.path === '/echo') {
    const chunks: Buffer[] = [];
    for await (const c of req.body) chunks.push(c as Buffer);
    return { status: 200, headers: [['content-type', 'text/plain']], body: Buffer.concat(chunks) };
  }
  if (req.path === '/big') return { status: 200, headers: [['content-type', 'application/octet-stream']], body: big };
  if (req.path.startsWith('/r/'))
    return {
      status: 200,
      headers: [
        ['content-type', 'text/plain'],
        ['cache-control', 'no-store'],
      ],
      body: 'r' + req.path.slice(3),
    };
  return { status: 404, body: 'no\n' };
};

beforeAll(async () => {
  server = await startH2Server({ handler, cert: certs.cert, key: certs.key });
});

afterAll(async () => {
  await server?.close(100);
});

/** Load `url` in a fresh headless Chromium and wait (bounded) for the page's RESULT line. */
async function chromium(url: string): Promise<string> {
  const b = await launchChromium({ flags: [`--ignore-certificate-errors-spki-list=${spki(certs.cert)}`] });
  try {
    await b.cdp.send('Page.navigate', { url });
    for (let i = 0; i < 600; i++) {
      const out = await b.cdp.eval<string>(`document.getElementById('out')?.textContent ?? ''`, 5000).catch(() => '');
      if (out.startsWith('RESULT ')) return out.slice(7);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the page reported no RESULT within 60 s');
  } finally {
    await b.close();
  }
}

describe('headless Chromium against our HTTP/2 server (TLS, ALPN h2)', () => {
  it('40 parallel GETs, a 300 KiB POST echo and a 2 MiB download, all h2 over one connection', async () => {
    const r = JSON.parse(await chromium(`https://localhost:${server.address.port}/`));
    expect(r).toEqual({ gets: 40, post: 300 * 1024, bigLen: big.length, hash: sha(big), protos: ['h2'], nav: 'h2' });
    const ports = new Set(seen.map((s) => s.port));
    expect(ports.size).toBe(1); // one connection carried the page and every fetch
    expect(seen.filter((s) => s.path.startsWith('/r/'))).toHaveLength(40);
    expect(new Set(seen.map((s) => s.stream)).size).toBe(seen.length);
  }, 90_000);
});
