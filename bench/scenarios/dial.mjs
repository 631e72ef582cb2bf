#!/usr/bin/env node
// TLS dial CPU (issue 14's per-connection cost): the client-side CPU of one full TLS 1.3 handshake to a local
// nginx origin over TCP, measured in this process (nginx runs in its own), for
//  - originlink: the connector (net/tcp.ts connectTcp, TFO off), whose TLS context is shared per CA;
//  - tls.connect({ ca }) per dial: what Node's https.Agent and undici do when given a CA (a new SSL_CTX each);
//  - tls.connect({ secureContext }): Node's floor for a dial with a shared context;
//  - BENCH_ANCHOR_DIST: another build's connector, as one more row.
// No session tickets: every dial is a full handshake. BENCH_DIALS dials per round (default 300), BENCH_ROUNDS
// rounds alternating the clients (default 5); the median round per client, as µs of CPU per dial and as a ratio
// to tls.connect({ ca }). Prints a Markdown table and writes bench/out/dial-DATE.json.
// Needs nginx (Debian nginx-light) and a built dist/.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { DIST } from '../lib/dist.mjs';
import { freePort, waitPort } from '../lib/host.mjs';
import { ResultWriter, ROOT } from '../lib/results.mjs';

const DIALS = Number(process.env.BENCH_DIALS ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CERTS = join(ROOT, 'config', 'demo-certs');
const ca = readFileSync(join(CERTS, 'ca.pem'));

const dir = mkdtempSync(join(tmpdir(), 'ol-bench-dial-'));
const port = await freePort();
const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${t};`).join(' ');
writeFileSync(
  join(dir, 'nginx.conf'),
  `daemon off; master_process off; worker_processes 1; user root; pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn; events { worker_connections 4096; }
http { access_log off; ${temp} ssl_session_tickets off; ssl_session_cache off;
  server { listen 127.0.0.1:${port} ssl; ssl_certificate ${CERTS}/leaf.pem; ssl_certificate_key ${CERTS}/leaf.key; return 204; } }`,
);
const nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
  stdio: 'ignore',
});
const stop = () => {
  try {
    process.kill(nginx.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', stop);

try {
  await waitPort(port);
  // net/tcp.js since the layout (issue 41); an anchor built before it has transport/tcp.js.
  const connector = async (distDir) =>
    (await import(join(distDir, existsSync(join(distDir, 'net', 'tcp.js')) ? 'net' : 'transport', 'tcp.js')))
      .connectTcp;
  const ours = await connector(DIST);
  const anchor = process.env.BENCH_ANCHOR_DIST ? await connector(process.env.BENCH_ANCHOR_DIST) : null;
  const viaTls = (opts) => () =>
    new Promise((resolve, reject) => {
      const s = tls.connect(
        { host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['http/1.1'], ...opts },
        () => {
          s.destroy();
          resolve();
        },
      );
      s.once('error', reject);
    });
  const viaConnector = (connect) => async () => {
    const c = await connect({
      host: '127.0.0.1',
      port,
      tls: true,
      servername: 'localhost',
      alpn: ['http/1.1'],
      ca,
      connectTimeoutMs: 5000,
      tfo: false,
    });
    c.socket.destroy();
  };
  const shared = tls.createSecureContext({ ca });
  const clients = [
    ['originlink connector', viaConnector(ours)],
    ['tls.connect({ ca }) per dial (Node https, undici)', viaTls({ ca })],
    ['tls.connect({ secureContext }) (floor)', viaTls({ secureContext: shared })],
    ...(anchor ? [['originlink connector (previous)', viaConnector(anchor)]] : []),
  ];
  const samples = new Map(clients.map(([n]) => [n, []]));
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [name, dial] of clients) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < DIALS; i++) await dial();
      const d = process.cpuUsage(c0);
      if (round > 0) samples.get(name).push((d.user + d.system) / DIALS); // round 0 warms up
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(samples.get(clients[1][0]));
  console.log(
    `TLS dial CPU: ${DIALS} full TLS 1.3 handshakes per round to nginx on loopback, ${ROUNDS} rounds (median), client process CPU\n`,
  );
  console.log('| client | µs CPU per dial | ÷ tls.connect({ ca }) |\n|---|---:|---:|');
  const rows = [];
  for (const [name] of clients) {
    const m = median(samples.get(name));
    rows.push({ name, usPerDial: m, ratio: m / base, samples: samples.get(name) });
    console.log(`| ${name} | ${m.toFixed(0)} | ${(m / base).toFixed(2)}× |`);
  }
  const w = new ResultWriter('dial');
  console.log(`\nwrote ${w.write({ dials: DIALS, rounds: ROUNDS, rows })}`);
} finally {
  stop();
}
