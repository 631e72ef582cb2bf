#!/usr/bin/env node
// Origins of the `egress` scenario, run in the lab's server namespace:
// `node egress-origins.mjs JSON` with { host, basePort, count, cert, key, keepAliveMs }.
// `count` HTTPS (HTTP/1.1) servers on consecutive ports, each answering 100
// bytes, idle keep-alive `keepAliveMs` (sent as `Keep-Alive: timeout=`, node's
// rule). Counts TLS connections accepted per port; prints {"event":"ready"}
// once listening and {"event":"stats", accepted: {port: n}} on SIGTERM.
import https from 'node:https';
import { readFileSync } from 'node:fs';

const o = JSON.parse(process.argv[2]);
const cert = readFileSync(o.cert);
const key = readFileSync(o.key);
const BODY = Buffer.alloc(100, 'x');
const accepted = {};
const servers = [];
for (let i = 0; i < o.count; i++) {
  const port = o.basePort + i;
  accepted[port] = 0;
  const s = https.createServer({ cert, key }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': String(BODY.length), 'content-type': 'application/octet-stream' });
    res.end(BODY);
  });
  s.keepAliveTimeout = o.keepAliveMs;
  s.on('secureConnection', () => accepted[port]++);
  await new Promise((res, rej) => {
    s.once('error', rej);
    s.listen(port, o.host, res);
  });
  servers.push(s);
}
const print = (j) => process.stdout.write(`${JSON.stringify(j)}\n`);
print({ event: 'ready', ports: servers.length });
process.once('SIGTERM', () => {
  print({ event: 'stats', accepted });
  for (const s of servers) s.closeAllConnections();
  process.exit(0);
});
