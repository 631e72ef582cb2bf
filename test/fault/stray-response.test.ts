/**
 * A response nobody asked for never reaches another request (RFC 9112 §9.3).
 *
 * The origin (a Node process of its own, Nagle's algorithm left on as a
 * plain socket server has it) answers `GET /late/D` with a complete
 * Content-Length response and D ms later writes a second, unsolicited one.
 * On a kept-alive connection, the next request — in the service, usually
 * another client's — read those bytes as its answer, and its own answer
 * was dropped (11 of 40 through the service, 14 of 20 through the Agent at
 * 20 ms). Two ways they reached it:
 *  - bytes already in the kernel's receive queue when the idle connection
 *    was handed out, not yet read by this turn of the event loop; and
 *  - the origin's second small write held by its Nagle algorithm until our
 *    delayed ACK, which then rode on our next request: the stray response
 *    arrived right behind it, ahead of its answer.
 * Now the connection acknowledges each response at once (TCP_QUICKACK), so
 * the stray comes while the connection is idle and closes it, and a
 * connection is handed out only with nothing unread (SIOCINQ). Either way
 * the close is counted (OL_UNSOLICITED_RESPONSE) and the service logs it
 * once per origin per interval.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { ErrorCode } from '../../src/errors.js';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';

const ORIGIN = `
const net = require('node:net');
let seen = 0;
const srv = net.createServer((s) => {
  let buf = '';
  s.on('error', () => {});
  s.on('data', (d) => {
    buf += d.toString('latin1');
    for (let i; (i = buf.indexOf('\\r\\n\\r\\n')) >= 0;) {
      const path = buf.slice(0, i).split(' ')[1];
      buf = buf.slice(i + 4);
      seen++;
      const body = 'real ' + path + '\\n';
      s.write('HTTP/1.1 200 OK\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n' + body);
      const m = /^\\/late\\/(\\d+)/.exec(path);
      if (m) setTimeout(() => s.write('HTTP/1.1 200 OK\\r\\ncontent-length: 9\\r\\n\\r\\nINJECTED\\n'), Number(m[1]));
    }
  });
});
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
`;

let child: ChildProcess;
let port = 0;

beforeAll(async () => {
  child = spawn(process.execPath, ['-e', ORIGIN], { stdio: ['ignore', 'pipe', 'inherit'] });
  port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (c) => reject(new Error(`origin exited ${c}`)));
  });
});

afterAll(() => {
  if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
});

const DELAYS = [0, 1, 3, 10, 30, 100, 300, 500];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a stray response on a kept-alive h1 connection', () => {
  it('the Agent: 0 of 48 across delays 0–500 ms; the closes are counted', { timeout: 30_000 }, async () => {
    const agent = new Agent({ protocol: 'h1', pool: { maxConnections: 1 } });
    let strays = 0;
    let n = 0;
    try {
      for (const d of DELAYS) {
        for (let k = 0; k < 6; k++) {
          const r1 = await agent.request({ url: `http://127.0.0.1:${port}/late/${d}` });
          expect(await r1.text()).toBe(`real /late/${d}\n`);
          // The next request at any point around the stray's arrival: before it, at it, after it.
          await sleep(Math.floor((k / 5) * (2 * d + 4)));
          const r2 = await agent.request({ url: `http://127.0.0.1:${port}/next/${d}/${k}` });
          if ((await r2.text()) !== `real /next/${d}/${k}\n`) strays++;
          n++;
        }
      }
      expect(`${strays} of ${n}`).toBe(`0 of ${n}`);
      const errors = agent.stats().reduce((a, s) => a + (s.errors[ErrorCode.UNSOLICITED_RESPONSE] ?? 0), 0);
      expect(errors).toBeGreaterThan(0); // the mechanism ran: stray bytes closed connections
    } finally {
      await agent.close();
    }
  });

  it('through the service, clients on connections of their own: none gets another request\'s answer; one warning per origin', { timeout: 30_000 }, async () => {
    const lines: Array<Record<string, unknown>> = [];
    const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: false
logging: { requests: false }
origins:
  o: { url: "http://127.0.0.1:${port}", protocol: h1, pool: { maxConnections: 1 } }
routes:
  - { path: /, origin: o }
`;
    const svc = await Service.start(parseConfig(yaml, 'stray.yaml', '/tmp'), { logDestination: { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); } } });
    const front = svc.addresses()['plain'] as number;
    const get = (path: string): Promise<string> => new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: front, path, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    let strays = 0;
    let n = 0;
    try {
      for (const d of DELAYS) {
        for (let k = 0; k < 3; k++) {
          expect(await get(`/late/${d}`)).toBe(`real /late/${d}\n`);
          await sleep(Math.floor((k / 2) * (2 * d + 4)));
          if ((await get(`/next/${d}/${k}`)) !== `real /next/${d}/${k}\n`) strays++;
          n++;
        }
      }
      expect(`${strays} of ${n}`).toBe(`0 of ${n}`);
      const warned = lines.filter((l) => l['code'] === ErrorCode.UNSOLICITED_RESPONSE);
      expect(warned.length).toBe(1); // once per origin per interval (60 s)
      expect(warned[0]?.['upstream']).toBe(`http://127.0.0.1:${port}`);
    } finally {
      await svc.shutdown(100);
    }
  });
});
