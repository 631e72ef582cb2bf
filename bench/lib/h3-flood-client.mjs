// The attacker of `npm run bench -- h3-conns`: opens COUNT QUIC connections to HOST:PORT from one UDP
// socket (quiche through our binding, the client side of the handshake and nothing more), completes
// their handshakes, and then keeps every one of them alive with a PING every 5 s without ever opening
// a stream — what an attacker holding a server's memory does. Prints JSON lines:
//   {"event":"established","n":N,"ms":T}  each 500 connections and at the end of the opening phase
//   {"event":"held","open":N,"closedByPeer":M,"refused":R}  once a second
// and exits after HOLD_S seconds (or on SIGTERM), closing nothing: what it held is the server's to free.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { dist } from './dist.mjs';

const [host, portArg, countArg, holdArg] = process.argv.slice(2);
const port = Number(portArg);
const COUNT = Number(countArg ?? 4000);
const HOLD_S = Number(holdArg ?? 30);
/** Handshakes in flight at once. */
const WAVE = 200;
/** CONNECTION_REFUSED (RFC 9000 §20.1). */
const CONNECTION_REFUSED = 0x2;

const { quiche } = await dist('quic/quiche.js');
const { buildConfig } = await dist('quic/config.js');
const b = quiche();
const cfg = buildConfig('client', { verifyPeer: false, idleTimeoutMs: 600_000 });
const sock = dgram.createSocket('udp4');
await new Promise((r) => sock.bind(0, '127.0.0.1', r));
try {
  sock.setRecvBufferSize(16 << 20);
  sock.setSendBufferSize(16 << 20);
} catch {
  /* capped */
}
const local = { host: '127.0.0.1', port: sock.address().port };
const remote = { host, port };
const out = Buffer.allocUnsafe(65_535);
/** Our SCID (hex) → connection. */
const conns = new Map();
const state = new Map(); // conn → { established, closed }
let established = 0;
let closedByPeer = 0;
let refused = 0;
const t0 = performance.now();

function flush(c) {
  for (let i = 0; i < 64; i++) {
    let r;
    try {
      r = c.send(out);
    } catch {
      return;
    }
    if (r === null) return;
    sock.send(Buffer.from(out.subarray(0, r[0])), port, host);
  }
}

function check(c) {
  const s = state.get(c);
  if (!s || s.closed) return;
  if (!s.established && c.isEstablished()) {
    s.established = true;
    established++;
    if (established % 500 === 0)
      console.log(JSON.stringify({ event: 'established', n: established, ms: Math.round(performance.now() - t0) }));
  }
  if (c.isClosed()) {
    s.closed = true;
    const e = c.peerError();
    if (e && !e.isApp && Number(e.errorCode) === CONNECTION_REFUSED) refused++;
    else closedByPeer++;
  }
}

sock.on('message', (msg) => {
  // Long header: DCID length at byte 5; short header: our 16-byte SCID right after the first byte.
  const dcid = msg[0] & 0x80 ? msg.subarray(6, 6 + msg[5]) : msg.subarray(1, 17);
  const c = conns.get(dcid.toString('hex'));
  if (!c) return;
  try {
    c.recv(msg, { from: remote, to: local });
  } catch {
    /* quiche drops what it cannot use */
  }
  flush(c);
  check(c);
});

function open() {
  const scid = randomBytes(16);
  const c = b.Connection.connect('localhost', scid, local, remote, cfg);
  conns.set(scid.toString('hex'), c);
  state.set(c, { established: false, closed: false });
  flush(c);
}

// Timers of every connection, every 20 ms; keep-alive PINGs every 5 s.
let lastPing = performance.now();
const tick = setInterval(() => {
  const ping = performance.now() - lastPing > 5000;
  if (ping) lastPing = performance.now();
  for (const c of state.keys()) {
    const s = state.get(c);
    if (s.closed) continue;
    const t = c.timeout();
    if (t !== null && t <= 0) c.onTimeout();
    if (ping && s.established) {
      try {
        c.sendAckEliciting();
      } catch {
        /* closing */
      }
    }
    flush(c);
    check(c);
  }
}, 20);

let opened = 0;
while (opened < COUNT) {
  const inFlight = opened - established - closedByPeer - refused;
  if (inFlight < WAVE) {
    open();
    opened++;
    continue;
  }
  await new Promise((r) => setTimeout(r, 5));
  if (performance.now() - t0 > 120_000) break;
}
// Let the last handshakes finish (bounded).
for (let i = 0; i < 200 && established + closedByPeer + refused < opened; i++)
  await new Promise((r) => setTimeout(r, 25));
console.log(
  JSON.stringify({
    event: 'established',
    n: established,
    opened,
    refused,
    closedByPeer,
    ms: Math.round(performance.now() - t0),
  }),
);

const report = setInterval(() => {
  let open = 0;
  for (const s of state.values()) if (s.established && !s.closed) open++;
  console.log(JSON.stringify({ event: 'held', open, closedByPeer, refused }));
}, 1000);
const stop = () => {
  clearInterval(tick);
  clearInterval(report);
  sock.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
setTimeout(stop, HOLD_S * 1000);
