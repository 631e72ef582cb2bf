// Traffic probes run inside a lab namespace: `node probe.mjs '<json spec>'`.
// Servers print {"event":"ready"} once bound; every mode prints one final
// {"event":"result",...} line. Every loop is bounded in count and time.
import dgram from 'node:dgram';
import net from 'node:net';

const spec = JSON.parse(process.argv[2] ?? '{}');
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const maxMs = spec.maxMs ?? 60_000;
setTimeout(() => finish({ error: 'maxMs reached' }), maxMs).unref();

let finisher = () => ({});
function finish(extra = {}) {
  emit({ event: 'result', mode: spec.mode, ...finisher(), ...extra });
  process.exit(0);
}
process.on('SIGTERM', () => finish());
process.on('SIGINT', () => finish());

function summary(samples) {
  if (samples.length === 0) return null;
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, min: s[0], p10: at(0.1), median: at(0.5), p90: at(0.9), max: s[s.length - 1], mean };
}

// 4 MiB (net.core.rmem_max here) so a briefly starved process does not drop.
const udpSocket = () => dgram.createSocket({ type: 'udp4', recvBufferSize: spec.rcvbuf ?? 4 << 20 });

async function udpEcho() {
  const sock = udpSocket();
  let received = 0;
  finisher = () => ({ received });
  sock.on('message', (msg, rinfo) => {
    received++;
    sock.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise((r) => sock.bind(spec.port, spec.host, r));
  emit({ event: 'ready', port: sock.address().port });
}

async function udpSink() {
  const sock = udpSocket();
  let received = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  let highest = -1;
  let reordered = 0;
  finisher = () => ({ received, bytes, reordered, spanMs: last - first });
  sock.on('message', (msg) => {
    last = nowMs();
    // Senders in this file put a sequence number in the first 4 bytes.
    const seq = msg.length >= 4 ? msg.readUInt32BE(0) : -1;
    if (seq < highest) reordered++;
    else highest = seq;
    if (received++ === 0) first = last;
    bytes += msg.length;
    if (spec.expect !== undefined && received >= spec.expect) finish();
  });
  if (spec.idleMs) {
    setInterval(() => {
      if (received > 0 && nowMs() - last > spec.idleMs) finish();
    }, 20);
  }
  await new Promise((r) => sock.bind(spec.port, spec.host, r));
  emit({ event: 'ready', port: sock.address().port });
}

// Sends `count` datagrams in bursts of `burst` every `intervalMs`. With echo
// set, records the RTT of each reply (seq in the first 4 bytes).
async function udpSend(echo) {
  const { host, port, count = 100, burst = 1, intervalMs = 10, size = 64 } = spec;
  const waitMs = spec.waitMs ?? 500;
  const sock = udpSocket();
  const sentAt = new Float64Array(count);
  const rtt = new Float64Array(count).fill(-1);
  let sent = 0;
  let sendErrors = 0;
  let received = 0;
  finisher = () => {
    const all = [];
    const lead = [];
    for (let i = 0; i < count; i++) {
      if (rtt[i] < 0) continue;
      all.push(rtt[i]);
      if (i % burst === 0) lead.push(rtt[i]);
    }
    return echo
      ? { sent, sendErrors, received, lost: sent - received, rttMs: summary(all), leadRttMs: summary(lead) }
      : { sent, sendErrors };
  };
  sock.on('message', (msg) => {
    const seq = msg.readUInt32BE(0);
    if (seq >= count || rtt[seq] >= 0) return;
    rtt[seq] = nowMs() - sentAt[seq];
    received++;
    if (received === count) finish();
  });
  await new Promise((r) => sock.bind(0, r));
  sock.connect(port, host);
  await new Promise((r) => sock.once('connect', r));
  const t0 = nowMs();
  for (let seq = 0; seq < count; seq++) {
    if (seq > 0 && seq % burst === 0) {
      const due = t0 + (seq / burst) * intervalMs;
      const wait = due - nowMs();
      if (wait > 0) await sleep(wait);
    }
    const buf = Buffer.alloc(Math.max(size, 4));
    buf.writeUInt32BE(seq, 0);
    sentAt[seq] = nowMs();
    sock.send(buf, (err) => {
      if (err) sendErrors++;
    });
    sent++;
  }
  await sleep(waitMs);
  finish({ sendMs: nowMs() - t0 });
}

// Discard server: for each connection, counts bytes until FIN, then replies
// with one JSON line of what it saw and closes.
async function tcpServer() {
  let conns = 0;
  finisher = () => ({ conns });
  const server = net.createServer((sock) => {
    conns++;
    let bytes = 0;
    let first = 0;
    sock.on('data', (d) => {
      if (bytes === 0) first = nowMs();
      bytes += d.length;
    });
    sock.on('end', () => {
      sock.end(`${JSON.stringify({ bytes, firstToEndMs: bytes ? nowMs() - first : 0 })}\n`);
    });
    sock.on('error', () => {});
  });
  await new Promise((r) => server.listen(spec.port, spec.host, r));
  emit({ event: 'ready', port: server.address().port });
}

function connectOnce(host, port) {
  return new Promise((resolve, reject) => {
    const t = nowMs();
    const sock = net.connect({ host, port, noDelay: true });
    sock.once('connect', () => resolve({ sock, ms: nowMs() - t }));
    sock.once('error', reject);
  });
}

async function tcpConnect() {
  const { host, port, count = 10, intervalMs = 0 } = spec;
  const samples = [];
  finisher = () => ({ connectMs: summary(samples) });
  for (let i = 0; i < count; i++) {
    const { sock, ms } = await connectOnce(host, port);
    samples.push(ms);
    sock.destroy();
    if (intervalMs) await sleep(intervalMs);
  }
  finish();
}

async function tcpSend() {
  const { host, port, bytes = 1 << 20, chunk = 64 * 1024 } = spec;
  const { sock, ms } = await connectOnce(host, port);
  const t0 = nowMs();
  let reply = '';
  finisher = () => ({ bytes, connectMs: ms });
  sock.setEncoding('utf8').on('data', (d) => {
    reply += d;
  });
  const block = Buffer.alloc(chunk, 0x61);
  for (let left = bytes; left > 0; left -= chunk) {
    const part = left >= chunk ? block : block.subarray(0, left);
    if (!sock.write(part)) await new Promise((r) => sock.once('drain', r));
  }
  sock.end();
  await new Promise((r) => sock.once('close', r));
  const server = JSON.parse(reply.trim() || '{}');
  const totalMs = nowMs() - t0;
  const mbit = (b, ms) => (ms > 0 ? (b * 8) / (ms * 1000) : null);
  finish({
    totalMs,
    server,
    senderMbit: mbit(bytes, totalMs),
    receiverMbit: mbit(server.bytes ?? 0, server.firstToEndMs ?? 0),
  });
}

const modes = {
  'udp-echo': udpEcho,
  'udp-sink': udpSink,
  'udp-ping': () => udpSend(true),
  'udp-blast': () => udpSend(false),
  'tcp-server': tcpServer,
  'tcp-connect': tcpConnect,
  'tcp-send': tcpSend,
};
const fn = modes[spec.mode];
if (!fn) {
  emit({ event: 'result', error: `unknown mode ${spec.mode}; modes: ${Object.keys(modes).join(', ')}` });
  process.exit(2);
}
fn().catch((err) => finish({ error: String(err?.message ?? err) }));
