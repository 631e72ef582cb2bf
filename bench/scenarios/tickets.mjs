// Session resumption across the fronts' ticket-key rotations (issue 57, src/service/ticket-keys.ts): two `serve`
// instances (each as its launcher starts it) share a `tickets.secretFile` with a short period; CLIENTS clients each
// make a TLS 1.3 handshake every INTERVAL ms to either instance at random, offering the newest ticket they hold
// (node:tls, OpenSSL), for PERIODS periods. Prints the resumption rate per bin of BIN ms and around each boundary:
// node:tls opens tickets under one key, so the tickets of the period before cost a full handshake each, and the
// rate recovers as clients take new ones. Knobs: BENCH_TICKET_PERIOD_MS (4000), BENCH_TICKET_PERIODS (3),
// BENCH_TICKET_CLIENTS (16), BENCH_TICKET_INTERVAL_MS (200), BENCH_TICKET_BIN_MS (500).
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { makeCerts } from '../lib/certs.mjs';
import { DIST } from '../lib/dist.mjs';
import { freePort, scratch, serviceArgv, stopChild, waitPort } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';

const PERIOD = Number(process.env.BENCH_TICKET_PERIOD_MS ?? 4000);
const PERIODS = Number(process.env.BENCH_TICKET_PERIODS ?? 3);
const CLIENTS = Number(process.env.BENCH_TICKET_CLIENTS ?? 16);
const INTERVAL = Number(process.env.BENCH_TICKET_INTERVAL_MS ?? 200);
const BIN = Number(process.env.BENCH_TICKET_BIN_MS ?? 500);

const { dir, procs } = scratch('ol-bench-tickets-');
const certs = makeCerts();
const ca = readFileSync(certs.caPath);
const secretFile = join(dir, 'ticket.secret');
writeFileSync(secretFile, randomBytes(32).toString('hex'));

async function instance(name) {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `listeners: [{ name: tls, kind: https, host: 127.0.0.1, port: ${port}, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }]
admin: false
logging: { level: warn, requests: false }
tickets: { rotateMs: ${PERIOD}, secretFile: ${secretFile} }
origins: { o: { url: "http://127.0.0.1:1" } }
routes: [{ path: /, origin: o }]
`,
  );
  const [node, ...args] = serviceArgv(DIST);
  const proc = spawn(node, [...args, 'serve', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(proc);
  await waitPort(port);
  return { port, proc };
}

/** One handshake offering `session`: whether it resumed and the newest ticket seen (or the one offered). */
function handshake(port, session) {
  return new Promise((resolve) => {
    let ticket = null;
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca,
      ALPNProtocols: ['http/1.1'],
      ...(session ? { session } : {}),
    });
    const done = (resumed) => {
      s.destroy();
      resolve({ resumed, ticket: ticket ?? session ?? null });
    };
    s.on('session', (t) => {
      ticket = t;
    });
    s.once('error', () => done(false));
    s.once('secureConnect', () => {
      const resumed = s.isSessionReused();
      s.end('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
      s.on('data', () => {});
      s.once('close', () => done(resumed));
    });
  });
}

const a = await instance('a');
const b = await instance('b');
// Start just after a boundary, so the run spans PERIODS whole periods.
await new Promise((r) => setTimeout(r, PERIOD - (Date.now() % PERIOD) + 50));
const t0 = Date.now();
const end = t0 + PERIOD * PERIODS;
const samples = [];
await Promise.all(
  Array.from({ length: CLIENTS }, async (_, c) => {
    let ticket = null;
    await new Promise((r) => setTimeout(r, (c * INTERVAL) / CLIENTS));
    for (let i = 0; i < 100_000 && Date.now() < end; i++) {
      const port = Math.random() < 0.5 ? a.port : b.port;
      const at = Date.now();
      const r = await handshake(port, ticket);
      if (ticket) samples.push({ at: at - t0, resumed: r.resumed, cross: true });
      ticket = r.ticket;
      await new Promise((res) => setTimeout(res, Math.max(0, INTERVAL - (Date.now() - at))));
    }
  }),
);
await stopChild(a.proc);
await stopChild(b.proc);

const bins = [];
for (let s = 0; s < PERIOD * PERIODS; s += BIN) {
  const inBin = samples.filter((x) => x.at >= s && x.at < s + BIN);
  const resumed = inBin.filter((x) => x.resumed).length;
  bins.push({ fromMs: s, handshakes: inBin.length, resumed, rate: inBin.length ? resumed / inBin.length : null });
}
const rate = (xs) => (xs.length ? xs.filter((x) => x.resumed).length / xs.length : null);
// Right after each boundary (the first INTERVAL ms: every client's ticket is from before it) and the rest.
const afterBoundary = samples.filter((x) => x.at % PERIOD < INTERVAL && x.at >= PERIOD);
const steady = samples.filter((x) => x.at % PERIOD >= 2 * INTERVAL || x.at < PERIOD);
const pct = (x) => (x === null ? '—' : `${(x * 100).toFixed(1)} %`);
console.log(
  `Two instances sharing tickets.secretFile, rotateMs ${PERIOD}; ${CLIENTS} clients, a handshake every ${INTERVAL} ms each to either at random, offering their newest ticket, ${PERIODS} periods\n`,
);
console.log('| from (ms) | handshakes offering a ticket | resumed | rate |');
console.log('|---:|---:|---:|---:|');
for (const x of bins) console.log(`| ${x.fromMs} | ${x.handshakes} | ${x.resumed} | ${pct(x.rate)} |`);
console.log(
  `\noverall ${pct(rate(samples))}; within ${INTERVAL} ms after a boundary ${pct(rate(afterBoundary))} (${afterBoundary.length} handshakes); away from boundaries ${pct(rate(steady))}`,
);
const out = new ResultWriter('tickets').write({
  periodMs: PERIOD,
  periods: PERIODS,
  clients: CLIENTS,
  intervalMs: INTERVAL,
  binMs: BIN,
  bins,
  overall: rate(samples),
  afterBoundary: rate(afterBoundary),
  steady: rate(steady),
});
console.log(`\nwrote ${out}`);
process.exit(0);
