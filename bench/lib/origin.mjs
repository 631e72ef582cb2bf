#!/usr/bin/env node
// Benchmark origin, run inside a lab namespace: `node origin.mjs JSON` with
// { kind: 'tcp' | 'h3', host, port, cert, key, tfo, quic? (QuicOptions, e.g. { cc: 'bbr' }), pacing? (h3: false = unpaced), altSvc? (an
// Alt-Svc field value the tcp kind sends on every response) }. kind 'tcp' serves h2 and
// HTTP/1.1 over TLS (ALPN) on a TCP Fast Open listener when the addon allows;
// 'h3' is our HTTP/3 server. Routes:
//   /small              100 bytes
//   /bytes?n=N          N bytes, streamed in 64 KiB chunks
//   /delay?ms=L         100 bytes after L ms (the origin latency of `reuse`)
// `tag=T` in the query groups requests; per tag it counts requests, the
// distinct client (address, port) pairs that sent them (connections used) and
// the pairs first seen under the tag (connections opened). Prints
// {"event":"ready"} once listening and {"event":"stats"} on SIGTERM.
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2] ?? '{}');
const SMALL = Buffer.alloc(100, 'x');
const CHUNK = Buffer.alloc(64 * 1024, 'b');
const tags = new Map();
const firstTag = new Map(); // peer -> tag of its first request: connections opened per tag
let connections = 0;
let open = 0;
let peakOpen = 0;

function account(url, addr, port) {
  const tag = url.searchParams.get('tag') ?? '-';
  let t = tags.get(tag);
  if (!t) tags.set(tag, (t = { requests: 0, peers: new Set(), opened: 0, inflight: 0, peakInflight: 0 }));
  t.requests++;
  const peer = `${addr}:${port}`;
  t.peers.add(peer);
  if (!firstTag.has(peer)) {
    firstTag.set(peer, tag);
    t.opened++;
  }
  // Host-wide monotonic clock (same in every namespace): arrival times line up with the client's.
  if (t.arrivals === undefined) t.arrivals = [];
  if (url.searchParams.has('trace') && t.arrivals.length < 1000)
    t.arrivals.push(+(Number(process.hrtime.bigint()) / 1e6).toFixed(3));
  return t;
}

function* bytes(n) {
  for (let left = n; left > 0; left -= CHUNK.length) yield left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
}

/** Route a request: { status, body: Buffer | Iterable<Buffer>, delayMs }. */
function route(url) {
  if (url.pathname === '/bytes') {
    const n = Math.max(0, Math.min(Number(url.searchParams.get('n') ?? 0), 2 ** 31));
    return { status: 200, length: n, body: bytes(n), delayMs: 0 };
  }
  if (url.pathname === '/delay')
    return {
      status: 200,
      length: SMALL.length,
      body: SMALL,
      delayMs: Math.min(Number(url.searchParams.get('ms') ?? 0), 60_000),
    };
  if (url.pathname === '/small' || url.pathname === '/')
    return { status: 200, length: SMALL.length, body: SMALL, delayMs: 0 };
  return { status: 404, length: 0, body: Buffer.alloc(0), delayMs: 0 };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let close;

if (o.kind === 'h3') {
  const { startH3Server } = await dist('server/h3.js');
  const srv = await startH3Server({
    host: o.host,
    port: o.port,
    cert: o.cert,
    key: o.key,
    ...(o.quic ? { quic: o.quic } : {}),
    ...(o.pacing === false ? { pacing: false } : {}),
    async handler(req) {
      const url = new URL(req.path, 'https://x');
      const t = account(url, req.remoteAddress, req.remotePort);
      const r = route(url);
      t.inflight++;
      t.peakInflight = Math.max(t.peakInflight, t.inflight);
      try {
        if (r.delayMs) await sleep(r.delayMs);
      } finally {
        t.inflight--;
      }
      req.body.resume();
      if (o.traceQuic && r.length >= 1 << 20) traceQuic(req);
      const body = Buffer.isBuffer(r.body) ? r.body : Readable.from(r.body, { objectMode: false });
      return {
        status: r.status,
        headers: [
          ['content-length', String(r.length)],
          ['content-type', 'application/octet-stream'],
        ],
        body,
      };
    },
  });
  close = () => srv.close(200);
  print({ event: 'ready', kind: 'h3', port: srv.address.port });
} else {
  const cert = readFileSync(o.cert);
  const key = readFileSync(o.key);
  const server = http2.createSecureServer({
    cert,
    key,
    allowHTTP1: true,
    settings: { maxConcurrentStreams: 1000, initialWindowSize: 4 * 1024 * 1024 },
  });
  // HTTP/1.1 keep-alive like a typical origin (nginx's default 75 s), not node's 5 s.
  server.keepAliveTimeout = 75_000;
  server.on('secureConnection', (s) => {
    connections++;
    open++;
    peakOpen = Math.max(peakOpen, open);
    s.once('close', () => open--);
  });
  server.on('session', (s) => {
    try {
      s.setLocalWindowSize(16 * 1024 * 1024);
    } catch {
      /* closed */
    }
  });
  server.on('request', async (req, res) => {
    const url = new URL(req.url, 'https://x');
    const sock = req.socket;
    const t = account(url, sock.remoteAddress, sock.remotePort);
    const r = route(url);
    t.inflight++;
    t.peakInflight = Math.max(t.peakInflight, t.inflight);
    try {
      if (r.delayMs) await sleep(r.delayMs);
    } finally {
      t.inflight--;
    }
    req.resume();
    res.writeHead(r.status, {
      'content-length': String(r.length),
      'content-type': 'application/octet-stream',
      ...(o.altSvc ? { 'alt-svc': o.altSvc } : {}),
    });
    if (Buffer.isBuffer(r.body)) {
      res.end(r.body);
      return;
    }
    Readable.from(r.body, { objectMode: false })
      .on('error', () => res.destroy())
      .pipe(res);
  });
  let tfo = false;
  let fd = null;
  if (o.tfo !== false) {
    const { listenTfo } = await dist('net/tfo.js');
    fd = listenTfo({ host: o.host, port: o.port });
    tfo = fd !== null;
  }
  await new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(fd !== null ? { fd } : { host: o.host, port: o.port }, res);
  });
  close = () =>
    new Promise((r) => {
      server.close(() => r());
      setTimeout(r, 300);
    });
  print({ event: 'ready', kind: 'tcp', port: server.address()?.port ?? o.port, tfo });
}

// o.traceQuic: while a response of 1 MiB or more is sent, the connection's congestion window, RTT, losses, bytes
// sent, BBR's bandwidth estimate and its startup exit, flow-control blocks every 100 ms (the loss bench shows what quiche's controller did).
const quicTrace = [];
function traceQuic(req) {
  const t0 = performance.now();
  let idle = 0;
  const sample = () => {
    let s;
    try {
      s = req.connection.quicStats();
    } catch {
      stop();
      return;
    }
    const prev = quicTrace.at(-1);
    // Stop a second after the connection stopped sending (the response is done).
    idle = prev && prev.bytesSent === s.bytesSent ? idle + 1 : 0;
    if (idle >= 10) {
      stop();
      return;
    }
    quicTrace.push({
      ms: Math.round(performance.now() - t0),
      cwnd: s.cwnd,
      rttMs: s.rttMs,
      lost: s.lost,
      bytesSent: s.bytesSent,
      buffered: s.bufferedBytes,
      bandwidth: s.bandwidth,
      startupExit: s.startupExit,
      blocked: s.flowBlocked?.sent ?? null,
    });
  };
  sample();
  const timer = setInterval(sample, 100);
  const stop = () => clearInterval(timer);
  req.onAbort(stop);
  setTimeout(stop, 60_000).unref();
  return stop;
}

function print(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function stats() {
  return {
    event: 'stats',
    tcpConnections: connections,
    tcpPeakOpen: peakOpen,
    ...(quicTrace.length ? { quicTrace } : {}),
    tags: Object.fromEntries(
      [...tags].map(([k, t]) => [
        k,
        {
          requests: t.requests,
          connections: t.peers.size,
          opened: t.opened,
          peakInflight: t.peakInflight,
          ...(t.arrivals?.length ? { arrivalsHrMs: t.arrivals } : {}),
        },
      ]),
    ),
  };
}

process.on('SIGUSR2', () => print(stats()));
process.once('SIGTERM', async () => {
  print(stats());
  await Promise.race([close?.(), sleep(500)]);
  process.exit(0);
});
