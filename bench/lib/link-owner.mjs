#!/usr/bin/env node
// The owner's end of `bench fleet-link`: `node link-owner.mjs JSON` with { cert, key, ca (file names), bytes } — our HTTP/2 server
// over TLS and our HTTP/3 server, both asking every client for a certificate of the fleet's CA (the member listener's
// mutual TLS), both answering every request `bytes` bytes (what a proxied response's body is). Prints
// {"h2": port, "h3": port} once listening; ends on SIGTERM.
import { readFileSync } from 'node:fs';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2]);
const { startH2Server } = await dist('server/h2.js');
const { startH3Server } = await dist('server/h3.js');
const body = Buffer.alloc(o.bytes, 'x');
const handler = () => ({ status: 200, headers: [['content-type', 'application/octet-stream']], body });
const [cert, key, ca] = [o.cert, o.key, o.ca].map((f) => readFileSync(f));
const h2 = await startH2Server({ host: '127.0.0.1', port: 0, cert, key, clientCa: ca, handler });
const h3 = await startH3Server({ host: '127.0.0.1', port: 0, cert, key, clientCa: ca, handler });
console.log(JSON.stringify({ h2: h2.address.port, h3: h3.address.port }));
process.once('SIGTERM', () => {
  void Promise.all([h2.close(), h3.close()]).finally(() => process.exit(0));
});
