#!/usr/bin/env node
// The floor of a proxy written on Node's net and tls: the least JavaScript that relays the proxy bench's
// traffic (cleartext HTTP/1.1 in, TLS HTTP/1.1 to one origin over kept-alive connections, content-length
// responses), as an anchor for bench/proxy.mjs — what Node's sockets and TLS cost per request before any
// of our code runs. Not a proxy anyone should use: no header rewriting, no chunked bodies, no request
// bodies, no pipelining, no timeouts; a request or response it does not expect closes the connection.
//
// Usage: node-floor-proxy.mjs PORT ORIGIN_HOST ORIGIN_PORT CA_FILE SERVERNAME
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';

const [port, originHost, originPort, caFile, servername] = process.argv.slice(2);
const ca = readFileSync(caFile);
const HEAD_END = Buffer.from('\r\n\r\n');
const idle = [];
let ticket = null;

function dial() {
  const s = tls.connect({
    host: originHost,
    port: Number(originPort),
    ca,
    servername,
    ALPNProtocols: ['http/1.1'],
    session: ticket ?? undefined,
  });
  s.setNoDelay(true);
  s.on('session', (t) => {
    ticket = t;
  });
  s.on('error', () => {});
  s.on('close', () => {
    const i = idle.indexOf(s);
    if (i >= 0) idle.splice(i, 1);
    s.reply?.(null);
  });
  s.reply = null;
  s.buf = null;
  s.on('data', (d) => {
    const buf = s.buf ? Buffer.concat([s.buf, d]) : d;
    const end = buf.indexOf(HEAD_END);
    if (end < 0) {
      s.buf = buf;
      return;
    }
    const m = /\r\ncontent-length: *(\d+)/i.exec(buf.toString('latin1', 0, end));
    if (!m) {
      s.destroy();
      return;
    }
    const total = end + 4 + Number(m[1]);
    if (buf.length < total) {
      s.buf = buf;
      return;
    }
    if (buf.length > total) {
      s.destroy();
      return;
    }
    s.buf = null;
    const reply = s.reply;
    s.reply = null;
    idle.push(s);
    reply?.(buf.subarray(0, end + 2), buf.subarray(end + 4));
  });
  return s;
}

net
  .createServer((c) => {
    c.setNoDelay(true);
    c.on('error', () => {});
    c.on('data', (d) => {
      const end = d.indexOf(HEAD_END);
      if (end < 0 || end + 4 !== d.length) {
        c.destroy();
        return;
      }
      const head = d.toString('latin1', 0, end);
      const sp = head.indexOf(' ');
      const target = head.slice(sp + 1, head.indexOf(' ', sp + 1));
      const up = idle.pop() ?? dial();
      up.reply = (resHead, body) => {
        if (resHead === null) {
          c.destroy();
          return;
        }
        // The origin's status line and fields minus its Connection, then the body: one write.
        const text = resHead.toString('latin1').replace(/\r\nconnection:[^\r]*/i, '') + '\r\n';
        const out = Buffer.allocUnsafe(text.length + body.length);
        out.write(text, 0, 'latin1');
        out.set(body, text.length);
        c.write(out);
      };
      up.write(`GET ${target} HTTP/1.1\r\nhost: ${servername}\r\nuser-agent: node-floor\r\n\r\n`, 'latin1');
    });
  })
  .listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
