#!/usr/bin/env node
// node bench/lab/cli.mjs --delay 25 --loss 1 --seed 7 [--rate 100] [-- CMD ...]
// Creates a lab, self-checks it, prints the measured link figures, the
// congestion control and the kernel, then runs CMD in the client namespace
// (or waits for Ctrl-C) and removes everything.
import { parseArgs } from 'node:util';
import { createLab } from './index.mjs';

const HELP = `usage: node bench/lab/cli.mjs [options] [-- CMD ARGS...]
  --delay MS          one-way delay client->server (and back unless --reverse-delay)
  --reverse-delay MS  one-way delay server->client
  --jitter MS         jitter amplitude      --jitter-dist uniform|normal   --reorder
  --loss PCT          seeded loss per direction (--reverse-loss PCT for server->client)
  --seed N            loss/jitter seed (default 1)
  --rate MBIT         rate limit per direction (--reverse-rate MBIT)   --queue PACKETS
  --nft-loss PCT      nft ingress drop on the server device (client->server, TCP/UDP)
  --cc cubic|bbr|reno congestion control in both namespaces   --tfo N (default 3)
  --ipv6              also assign 2001:db8::1 / ::2
  --side client|server  namespace that runs CMD (default client)
  --no-check          skip the self-check      --ignore-check  run CMD even if it fails
  --json              print figures as JSON lines
addresses: client 192.0.2.1, server 192.0.2.2`;

const { values: v, positionals: cmd } = parseArgs({
  allowPositionals: true,
  options: {
    delay: { type: 'string' },
    'reverse-delay': { type: 'string' },
    jitter: { type: 'string' },
    'jitter-dist': { type: 'string' },
    reorder: { type: 'boolean' },
    loss: { type: 'string' },
    'reverse-loss': { type: 'string' },
    seed: { type: 'string' },
    rate: { type: 'string' },
    'reverse-rate': { type: 'string' },
    queue: { type: 'string' },
    'nft-loss': { type: 'string' },
    cc: { type: 'string' },
    tfo: { type: 'string' },
    ipv6: { type: 'boolean' },
    side: { type: 'string' },
    'no-check': { type: 'boolean' },
    'ignore-check': { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (v.help) {
  console.log(HELP);
  process.exit(0);
}
const num = (s) => (s === undefined ? undefined : Number(s));
const opts = {
  delayMs: num(v.delay) ?? 0,
  reverseDelayMs: num(v['reverse-delay']),
  jitterMs: num(v.jitter),
  jitterDist: v['jitter-dist'],
  reorder: v.reorder,
  lossPct: num(v.loss),
  reverseLossPct: num(v['reverse-loss']),
  seed: num(v.seed),
  rateMbit: num(v.rate),
  reverseRateMbit: num(v['reverse-rate']),
  queuePackets: num(v.queue),
  nftLossPct: num(v['nft-loss']),
  congestionControl: v.cc,
  tcpFastOpen: num(v.tfo),
  ipv6: v.ipv6,
};

const out = (label, obj, text) => console.log(v.json ? JSON.stringify({ event: label, ...obj }) : text);
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

let lab;
let running = null;
let stopping = false;
async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  const closed = lab
    ? await lab.close().catch((err) => {
        console.error(`lab: close: ${err.message}`);
        return null;
      })
    : null;
  const k = closed?.counters;
  if (k) {
    const dir = (d) => `fwd ${d.forwarded} lost ${d.lost} queue-drop ${d.queueDropped}`;
    out('counters', k, `link counters: c->s ${dir(k.clientToServer)}; s->c ${dir(k.serverToClient)}`);
  }
  process.exit(code);
}
// Registered before the lab exists, so the lab's own signal hook leaves the
// decision to exit to this handler.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (running && !stopping) {
      running.kill('SIGTERM');
      return;
    }
    void shutdown(sig === 'SIGINT' ? 130 : 143);
  });
}

try {
  lab = await createLab(opts);
  const f = await lab.facts();
  out(
    'facts',
    f,
    `lab ${lab.id}: client ${lab.client.ns} ${lab.client.addr}  server ${lab.server.ns} ${lab.server.addr}\n` +
      `kernel ${f.kernel}, congestion control ${f.congestionControl}, tcp_fastopen ${f.tcpFastOpen}, emulator pid ${f.emulatorPid}`,
  );
  if (!v['no-check']) {
    const sc = await lab.selfCheck();
    out(
      'selfCheck',
      sc,
      `self-check ${sc.ok ? 'ok' : 'FAILED'} in ${fmt(sc.durationMs, 0)} ms: ` +
        `RTT median ${fmt(sc.rttMs)} ms by ${sc.rttSource} (configured ${fmt(sc.expectedRttMs)}, off by ${fmt(sc.withinPct, 1)} %; ` +
        `UDP echo median ${fmt(sc.udpRttMs)} p10 ${fmt(sc.rtt?.p10)} p90 ${fmt(sc.rtt?.p90)}); round-trip UDP loss ${sc.lost}/${sc.sent} = ${fmt(sc.lossPct)} % ` +
        `(expected ${fmt(sc.expectedLossPct)} %, band ${fmt(sc.lossBand[0], 1)}..${fmt(sc.lossBand[1], 1)}); ` +
        `per direction c->s ${fmt(sc.link.clientToServer.lossPct)} % s->c ${fmt(sc.link.serverToClient.lossPct)} %`,
    );
    if (!sc.ok && !v['ignore-check']) {
      console.error('self-check failed; not running (use --ignore-check to run anyway)');
      await shutdown(3);
    }
  }
  if (cmd.length > 0) {
    const side = v.side ?? 'client';
    running = lab.spawn(side, cmd, { stdio: 'inherit' });
    const code = await new Promise((resolve) => {
      running.once('exit', (c, s) => resolve(c ?? (s ? 128 : 1)));
      running.once('error', (err) => {
        console.error(err.message);
        resolve(127);
      });
    });
    running = null;
    await shutdown(code);
  } else {
    console.error(`ready: ip netns exec ${lab.client.ns} CMD  (server: ${lab.server.ns}); Ctrl-C to stop`);
    setInterval(() => {}, 1 << 30);
  }
} catch (err) {
  console.error(`lab: ${err.code ? `${err.code}: ` : ''}${err.message}`);
  await shutdown(1);
}
