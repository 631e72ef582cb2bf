#!/usr/bin/env node
// One side of `npm run bench -- gc`, run by that scenario with --trace-gc-nvp:
//   node gc-peer.mjs DIST server h1|h2 PORT      our HTTP/1.1 or HTTP/2 (cleartext) server answering 1 KiB
//   node gc-peer.mjs DIST server h2s PORT CERT KEY  the HTTP/2 server over TLS (the service target's origin)
//   node gc-peer.mjs DIST client h1|h2 PORT MS   an Agent with 32 requests in flight for MS ms; prints {"requests":N,"cpuUs":N} on stderr
// The server runs until SIGTERM.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [dist, role, proto, portArg, msArg] = process.argv.slice(2);
const load = (rel) => import(pathToFileURL(join(dist, rel)).href);
const port = Number(portArg);

if (role === 'server') {
  const body = Buffer.alloc(1024, 0x61);
  const handler = () => ({ status: 200, headers: [['content-type', 'application/octet-stream']], body });
  const { startH1Server } = await load('server/h1.js');
  const { startH2Server } = await load('server/h2.js');
  const { readFileSync } = await import('node:fs');
  const tls = proto === 'h2s' ? { cert: readFileSync(process.argv[7]), key: readFileSync(process.argv[8]) } : {};
  const srv =
    proto === 'h1'
      ? await startH1Server({ host: '127.0.0.1', port, handler })
      : await startH2Server({ host: '127.0.0.1', port, handler, ...tls });
  process.stderr.write('ready\n');
  process.once('SIGTERM', () => {
    void srv.close(100).then(() => process.exit(0));
  });
} else {
  const { Agent } = await load('index.js');
  const agent = new Agent({});
  const url = `http://127.0.0.1:${port}/x`;
  const end = performance.now() + Number(msArg);
  const cpu0 = process.cpuUsage();
  let n = 0;
  const worker = async () => {
    while (performance.now() < end) {
      const r = await agent.request({ url, method: 'GET', protocol: proto, headers: [] });
      await r.dump();
      n++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const cpu = process.cpuUsage(cpu0);
  process.stderr.write(`${JSON.stringify({ requests: n, cpuUs: cpu.user + cpu.system })}\n`);
  await agent.close();
  process.exit(0);
}
