/**
 * WebSocket through the connector (service/upgrade.ts) to a real WebSocket
 * server (the `ws` package) as the origin:
 *  - HTTP/1.1 `Upgrade` from a real client (`ws`) on the http front: text
 *    and a 1 MiB binary message both ways, the origin speaking first, a close
 *    code passed through, an abort on either side ending the other;
 *  - WebSocket over HTTP/2 by extended CONNECT (RFC 8441) on the https front:
 *    node's HTTP/2 client sends `:protocol websocket` once the front
 *    advertised SETTINGS_ENABLE_CONNECT_PROTOCOL; frames are written and read
 *    raw (RFC 6455 §5), the origin sees an ordinary HTTP/1.1 upgrade.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { rawExchange } from '../helpers/raw.js';
import { launchChromium, spki } from '../helpers/chromium.js';

const certs = makeCerts();
let svc: Service;
let wss: WebSocketServer;
let originHttp: http.Server;
let browserTalked: Promise<void>;
let talked: () => void = () => {};
browserTalked = new Promise<void>((r) => {
  talked = r;
});
const PAGE = `<!doctype html><body><pre id=out>pending</pre><script>
fetch('/ws/hold');
const ws = new WebSocket('wss://' + location.host + '/ws/browser');
const got = [];
ws.onmessage = (m) => { got.push(m.data); if (got.length === 2) { document.getElementById('out').textContent = 'RESULT ' + JSON.stringify(got); ws.close(4003, 'browser done'); } else ws.send('from chromium'); };
ws.onerror = () => { document.getElementById('out').textContent = 'RESULT error'; };
</script>`;
let plain = 0;
let tls = 0;
const closes: Array<{ code: number; reason: string }> = [];
const upgrades: Array<Record<string, string | string[] | undefined>> = [];
const upgradesPaths = new Map<object, string>();
/** An origin that does not play along (raw): what it saw, and how many of its connections are open. */
let odd: net.Server;
const oddSeen: string[] = [];
let oddOpen = 0;

beforeAll(async () => {
  // The origin: a page for the browser test, and the ws server on the same port.
  originHttp = http.createServer((req, res) => {
    if (req.url === '/ws/hold') {
      // Headless Chromium's virtual time stands still while a fetch is pending; the page holds one until its WebSocket talked.
      void Promise.race([browserTalked, new Promise((r) => setTimeout(r, 8000))]).then(() =>
        setTimeout(() => res.end('ok'), 300),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(PAGE);
  });
  wss = new WebSocketServer({
    server: originHttp,
    verifyClient: (info, cb) => cb(!info.req.url?.includes('forbidden'), 403),
  });
  await new Promise<void>((r) => originHttp.listen(0, '127.0.0.1', () => r()));
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    upgradesPaths.set(req.headers, req.url ?? '');
    ws.send(`hello ${req.url}`);
    ws.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'please hang up') {
        ws.terminate();
        return;
      }
      if (!isBinary && data.toString() === 'from chromium') talked();
      ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }));
  });
  const port = (originHttp.address() as net.AddressInfo).port;
  odd = net.createServer((s) => {
    oddOpen++;
    s.on('close', () => {
      oddOpen--;
    });
    s.on('error', () => {});
    let head = '';
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 || oddSeen.length > 100) return;
      oddSeen.push(head);
      const line = head.slice(0, head.indexOf('\r\n'));
      if (line.includes('/odd/silent')) return; // never answers
      if (line.includes('/odd/reset')) {
        s.resetAndDestroy();
        return;
      } // a TCP RST instead of an answer
      if (line.includes('/odd/part-')) {
        // A refusal whose body stops after 3 of 100 bytes: then a reset, or nothing more.
        s.write('HTTP/1.1 403 Forbidden\r\ncontent-length: 100\r\n\r\nabc');
        if (line.includes('/odd/part-reset')) setTimeout(() => s.resetAndDestroy(), 50);
        return;
      }
      if (line.includes('/odd/page')) {
        // Not switching: a page, chunked, then the close.
        s.end(
          'HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nlocation: /elsewhere\r\ntransfer-encoding: chunked\r\n\r\n9\r\n<p>no ws \r\n6\r\nhere</\r\n2\r\np>\r\n0\r\n\r\n',
        );
      } else if (line.includes('/odd/hop')) {
        s.write(
          'HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade, x-conn-only\r\nupgrade: foo\r\nx-conn-only: 1\r\nproxy-authenticate: Basic\r\nkeep-alive: timeout=5\r\nx-end: 1\r\n\r\nfoo-bytes',
        );
      } else {
        const body = `${line} ${head.length - end - 4}`;
        s.end(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
    });
  });
  await new Promise<void>((r) => odd.listen(0, '127.0.0.1', () => r()));
  const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
  - { name: tls, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }
admin: false
origins:
  ws: { url: "http://127.0.0.1:${port}", protocol: h1 }
  odd: { url: "http://127.0.0.1:${(odd.address() as net.AddressInfo).port}", protocol: h1, timeouts: { headersMs: 600, bodyMs: 400 } }
routes:
  - { path: /ws, origin: ws }
  - { path: /odd, origin: odd }
`;
  svc = await Service.start(parseConfig(yaml, 'ws.yaml', certs.dir), { logDestination: { write: () => {} } });
  plain = svc.addresses()['plain'] as number;
  tls = svc.addresses()['tls'] as number;
});

afterAll(async () => {
  await svc?.shutdown(200);
  await new Promise<void>((r) => wss.close(() => r()));
  await new Promise<void>((r) => originHttp.close(() => r()));
  await new Promise<void>((r) => odd.close(() => r()));
});

function open(url: string): Promise<{ ws: WebSocket; first: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('message', (d) => resolve({ ws, first: d.toString() }));
    ws.once('error', reject);
  });
}
const next = (ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> =>
  new Promise((r) => ws.once('message', (data, binary) => r({ data: data as Buffer, binary })));

describe('WebSocket over HTTP/1.1 Upgrade', () => {
  it('text and a 1 MiB binary message both ways; the origin speaks first; Via and X-Forwarded-For reach the origin', async () => {
    const { ws, first } = await open(`ws://127.0.0.1:${plain}/ws/chat?room=1`);
    expect(first).toBe('hello /ws/chat?room=1');
    ws.send('ping one');
    expect((await next(ws)).data.toString()).toBe('ping one');
    const big = Buffer.alloc(1024 * 1024, 0x5a);
    ws.send(big);
    const echoed = await next(ws);
    expect([echoed.binary, echoed.data.length, echoed.data.equals(big)]).toEqual([true, big.length, true]);
    const h = upgrades.at(-1)!;
    expect([h['upgrade'], typeof h['sec-websocket-key'], h['x-forwarded-for']]).toEqual([
      'websocket',
      'string',
      '127.0.0.1',
    ]);
    expect(String(h['via'])).toMatch(/1\.1 originlink/);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.close(4001, 'bye');
    expect(await closed).toBe(4001);
    await until(() => closes.some((c) => c.code === 4001 && c.reason === 'bye'));
  });

  it('a client that vanishes (no close frame) ends the origin side; an origin that vanishes ends the client side', async () => {
    const a = await open(`ws://127.0.0.1:${plain}/ws/a`);
    const before = closes.length;
    a.ws.terminate();
    await until(() => closes.length > before && closes.at(-1)!.code === 1006);
    const b = await open(`ws://127.0.0.1:${plain}/ws/b`);
    const closed = new Promise<number>((r) => b.ws.once('close', (code) => r(code)));
    b.ws.send('please hang up');
    expect(await closed).toBe(1006);
  });

  it('an upgrade the origin refuses gets the origin’s status (403), one with no route gets 404; neither is a tunnel', async () => {
    const status = (path: string): Promise<string> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${plain}${path}`);
        ws.once('error', (e) => resolve(e.message));
        ws.once('open', () => resolve('open'));
      });
    expect(await status('/ws/forbidden')).toMatch(/403/);
    expect(await status('/nowhere')).toMatch(/404/);
  });
});

/** RFC 6455 §5.2: a client frame (FIN, masked). */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, 0x80 | len])
      : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

/** Server frames (unmasked) in `buf`: whole ones and the bytes left. */
function serverFrames(buf: Buffer): { frames: Array<{ opcode: number; payload: Buffer }>; rest: Buffer } {
  const frames: Array<{ opcode: number; payload: Buffer }> = [];
  let o = 0;
  for (;;) {
    if (buf.length - o < 2) break;
    let len = buf[o + 1]! & 0x7f;
    let hl = 2;
    if (len === 126) {
      if (buf.length - o < 4) break;
      len = buf.readUInt16BE(o + 2);
      hl = 4;
    }
    if (buf.length - o < hl + len) break;
    frames.push({ opcode: buf[o]! & 0x0f, payload: buf.subarray(o + hl, o + hl + len) });
    o += hl + len;
  }
  return { frames, rest: buf.subarray(o) };
}

describe('WebSocket over HTTP/2 (RFC 8441 extended CONNECT)', () => {
  it('the front advertises extended CONNECT; a :protocol websocket stream is a tunnel to the HTTP/1.1 origin', async () => {
    const c = http2.connect(`https://localhost:${tls}`, { ca: certs.ca });
    await new Promise<void>((r) => c.once('remoteSettings', () => r()));
    expect(c.remoteSettings.enableConnectProtocol).toBe(true);
    // A key of the client's own (RFC 8441 §5 has none on HTTP/2) must not reach the origin beside ours: two keys, a wrong Accept.
    const s = c.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': '/ws/h2',
      ':authority': `localhost:${tls}`,
      'sec-websocket-version': '13',
      'sec-websocket-key': 'Y2xpZW50cyBvd24ga2V5IQ==',
    });
    const status = await new Promise<number>((r) => s.once('response', (h) => r(Number(h[':status']))));
    expect(status).toBe(200);
    let buf = Buffer.alloc(0);
    const got: string[] = [];
    s.on('data', (d: Buffer) => {
      const r = serverFrames(Buffer.concat([buf, d]));
      buf = r.rest;
      for (const f of r.frames) got.push(`${f.opcode}:${f.payload.toString()}`);
    });
    await until(() => got.length >= 1);
    expect(got[0]).toBe('1:hello /ws/h2');
    s.write(clientFrame(1, Buffer.from('over h2')));
    await until(() => got.length >= 2);
    expect(got[1]).toBe('1:over h2');
    // Close handshake (RFC 6455 §5.5.1): code 4002; the origin answers with its close frame, then the stream ends.
    s.write(clientFrame(8, Buffer.from([0x0f, 0xa2, ...Buffer.from('done')])));
    await until(() => got.some((g) => g.startsWith('8:')));
    await until(() => closes.some((c) => c.code === 4002 && c.reason === 'done'));
    const h = upgrades.at(-1)!;
    expect([h['upgrade'], h['sec-websocket-version'], typeof h['sec-websocket-key']]).toEqual([
      'websocket',
      '13',
      'string',
    ]);
    expect(h['sec-websocket-key']).not.toMatch(/Y2xpZW50cyBvd24ga2V5IQ==/);
    s.close();
    c.close();
  });
});

const rawFront = (bytes: string, ms = 3000, leaveAfterMs?: number): Promise<string> =>
  rawExchange(plain, bytes, { ms, leaveAfterMs });

describe('tunnels to an origin that does not play along', () => {
  const up = (path: string, extra = ''): string =>
    `GET ${path} HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: foo\r\n${extra}\r\n`;

  it('an origin that never answers the upgrade: 504 after its headersMs; a client that leaves first takes the origin connection with it', async () => {
    const t0 = Date.now();
    expect(await rawFront(up('/odd/silent/1'))).toMatch(/^HTTP\/1\.1 504 /);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    expect(Date.now() - t0).toBeLessThan(2500);
    await until(() => oddOpen === 0);
    // Three clients leave 200 ms in, before the origin's (never coming) answer: none of their origin connections stays.
    await Promise.all([1, 2, 3].map((i) => rawFront(up(`/odd/silent/leave${i}`), 3000, 200)));
    await until(() => oddOpen === 0, 300); // well before the 600 ms timeout
    // Over HTTP/2: a stream the client resets before the answer, likewise.
    const c = http2.connect(`https://localhost:${tls}`, { ca: certs.ca });
    await new Promise<void>((r) => c.once('remoteSettings', () => r()));
    const s = c.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': '/odd/silent/h2',
      ':authority': `localhost:${tls}`,
    });
    s.on('error', () => {});
    await until(() => oddSeen.some((h) => h.includes('/odd/silent/h2')) && oddOpen === 1);
    s.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => oddOpen === 0, 300);
    c.close();
  });

  it('an origin that answers an upgrade with a page: an HTTP/1.1 client gets the page whole; an HTTP/2 one a 502 (RFC 8441 §5: a 2xx means open)', async () => {
    const text = await rawFront(up('/odd/page'));
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toMatch(/\r\nlocation: \/elsewhere\r\n/);
    expect(text).toMatch(/content-type: text\/html/);
    expect(text.slice(text.indexOf('\r\n\r\n') + 4).replace(/\r\n[0-9a-f]+\r\n|^[0-9a-f]+\r\n|\r\n$/g, '')).toBe(
      '<p>no ws here</p>',
    );
    const c = http2.connect(`https://localhost:${tls}`, { ca: certs.ca });
    const s = c.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': '/odd/page',
      ':authority': `localhost:${tls}`,
    });
    expect(await new Promise<number>((r) => s.once('response', (h) => r(Number(h[':status']))))).toBe(502);
    c.close();
  });

  it("an origin that resets the connection instead of answering, or in the middle of its refusal's body, or stalls there: the client gets a 502 or a cut answer, the service keeps serving", async () => {
    // Before: the origin socket had no 'error' listener between connect and splice — an unhandled 'error' ended the process.
    expect(await rawFront(up('/odd/reset'))).toMatch(/^HTTP\/1\.1 502 /);
    const cut = await rawFront(up('/odd/part-reset'));
    expect(cut).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[^]*\r\n\r\nabc$/); // the 3 bytes, then the connection closed short of 100
    // A body that stalls ends after the origin's bodyMs (400), not never.
    const t0 = Date.now();
    expect(await rawFront(up('/odd/part-stall'), 5000)).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[^]*\r\n\r\nabc$/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(Date.now() - t0).toBeLessThan(3000);
    await until(() => oddOpen === 0);
    expect(await rawFront(up('/odd/page'))).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it('a 101 passes on no field of the origin’s hop (RFC 9110 §7.6.1): Connection-named, Proxy-*, Keep-Alive stay behind', async () => {
    const text = await rawFront(up('/odd/hop'), 800);
    expect(text).toMatch(
      /^HTTP\/1\.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: foo\r\nx-end: 1\r\n\r\nfoo-bytes$/,
    );
  });

  it('an Upgrade on a request with content is ignored: the POST and its body reach the origin as an ordinary request', async () => {
    const text = await rawFront(
      'POST /odd/post HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: foo\r\ncontent-length: 11\r\n\r\nhello=world',
      800,
    );
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nPOST \/odd\/post HTTP\/1\.1 11$/);
    const seen = oddSeen.find((h) => h.startsWith('POST /odd/post'))!;
    expect(seen).not.toMatch(/^upgrade:/im);
    expect(seen.endsWith('\r\n\r\nhello=world')).toBe(true);
  });
});

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Chromium as the WebSocket client', () => {
  it('a page loaded over the https front (h2) opens wss:// through the connector: it echoes, and the close code reaches the origin', async () => {
    // Driven over the DevTools protocol and polled (bounded), not --dump-dom with a virtual-time budget: under a
    // loaded CI machine the dump could come before the page's WebSocket had finished ("pending").
    const b = await launchChromium({ flags: [`--ignore-certificate-errors-spki-list=${spki(certs.cert)}`] });
    let out = '';
    try {
      await b.cdp.send('Page.navigate', { url: `https://localhost:${tls}/ws/page` });
      for (let i = 0; i < 600 && !out.startsWith('RESULT '); i++) {
        out = await b.cdp.eval<string>(`document.getElementById('out')?.textContent ?? ''`, 5000).catch(() => '');
        if (!out.startsWith('RESULT ')) await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await b.close();
    }
    expect(out).toBe('RESULT ["hello /ws/browser","from chromium"]');
    await until(() => closes.some((c) => c.code === 4003 && c.reason === 'browser done'));
    const h = upgrades.find(
      (x) => x['x-forwarded-proto'] === 'https' && x['via'] !== undefined && upgradesPaths.get(x) === '/ws/browser',
    );
    // Chromium used the HTTP/2 connection of the page: RFC 8441 extended CONNECT (the front's Via says the client spoke 2).
    expect(h?.['via']).toBe('2 originlink');
  }, 90_000);
});
