#!/usr/bin/env node
/*
 * Per-call cost of the hot binding calls, old binding against ours, each in its own process:
 *
 *   node native/quic/bench/calls.cjs                  # both, 5 rounds each, median ns per call
 *   node native/quic/bench/calls.cjs --one PATH       # one binding (what the first form runs)
 *
 * Two connections of the binding talk in memory (no sockets). Measured, each as the mean of a batch:
 * - send(): on an idle established connection (nothing to send: null);
 * - recv(): a fresh 1350-byte 1-RTT packet carrying stream data (AEAD open, frame parsing, buffering);
 * - streamSend(): 100 bytes on an open stream (copy into quiche; the connection is drained between batches);
 * - timeout(): on an idle connection;
 * - isClosed(): the floor of any call across N-API.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');
const { randomBytes } = require('node:crypto');

const OLD = '@matrixai/quic-linux-x64/node.napi.node';
const NEW = resolve(__dirname, '..', 'build', 'quic.node');

function one(target) {
  const b = require(target);
  const dir = mkdtempSync(join(tmpdir(), 'ol-bench-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const ossl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-keyout', 'key.pem', '-out', 'cert.pem', '-addext', 'subjectAltName=DNS:localhost');
  const cfg = (server) => {
    const c = new b.Config();
    c.setApplicationProtos(['bench']);
    if (server) {
      c.loadCertChainFromPemFile(join(dir, 'cert.pem'));
      c.loadPrivKeyFromPemFile(join(dir, 'key.pem'));
    }
    c.verifyPeer(false);
    c.setMaxIdleTimeout(600_000);
    c.setMaxRecvUdpPayloadSize(1350);
    c.setMaxSendUdpPayloadSize(1350);
    c.setInitialMaxData(1 << 30);
    c.setInitialMaxStreamDataBidiLocal(1 << 30);
    c.setInitialMaxStreamDataBidiRemote(1 << 30);
    c.setInitialMaxStreamsBidi(1000);
    c.setInitialMaxStreamsUni(10);
    c.setMaxConnectionWindow(1 << 30);
    c.setMaxStreamWindow(1 << 30);
    c.setCcAlgorithmName('cubic');
    return c;
  };
  const sA = { host: '127.0.0.1', port: 4433 };
  const cA = { host: '127.0.0.1', port: 50000 };
  const cl = b.Connection.connect('localhost', randomBytes(16), cA, sA, cfg(false));
  const sv = b.Connection.accept(randomBytes(16), null, sA, cA, cfg(true));
  const buf = Buffer.alloc(1500);
  const moveAll = (from, to, fromA, toA, keep) => {
    let n = 0;
    for (;;) {
      const r = from.send(buf);
      if (r === null) break;
      const pkt = Buffer.from(buf.subarray(0, r[0]));
      if (keep) keep.push(pkt);
      else to.recv(pkt, { from: fromA, to: toA });
      n++;
    }
    return n;
  };
  for (let i = 0; i < 20 && !(cl.isEstablished() && sv.isEstablished()); i++) {
    moveAll(cl, sv, cA, sA);
    moveAll(sv, cl, sA, cA);
  }
  if (!cl.isEstablished()) throw new Error('no handshake');
  for (let i = 0; i < 5; i++) {
    moveAll(cl, sv, cA, sA);
    moveAll(sv, cl, sA, cA);
  }
  const ns = (t0) => Number(process.hrtime.bigint() - t0);
  const res = {};

  // send() on an idle connection: null.
  {
    const N = 200_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) cl.send(buf);
    res.sendIdle = ns(t0) / N;
  }
  // timeout() on an idle connection.
  {
    const N = 200_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) cl.timeout();
    res.timeout = ns(t0) / N;
  }
  // isClosed(): the N-API floor.
  {
    const N = 500_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) cl.isClosed();
    res.isClosed = ns(t0) / N;
  }
  // streamSend(100 bytes): the server writes to the client's stream 0 (the client opens it first).
  {
    cl.streamSend(0, Buffer.from('go'), false);
    moveAll(cl, sv, cA, sA);
    sv.streamRecv(0, Buffer.alloc(100));
    const chunk = randomBytes(100);
    let calls = 0;
    let total = 0n;
    let sendTotal = 0n;
    let sent = 0;
    const recvPkts = [];
    while (calls < 100_000) {
      const t0 = process.hrtime.bigint();
      let k = 0;
      for (; k < 100; k++) if (sv.streamSend(0, chunk, false) === null) break;
      total += process.hrtime.bigint() - t0;
      calls += k;
      // Drain: the server's packets (send() timed as the busy case), the client's ACKs back.
      const t1 = process.hrtime.bigint();
      for (;;) {
        const r = sv.send(buf);
        if (r === null) break;
        recvPkts.push(Buffer.from(buf.subarray(0, r[0])));
        sent++;
      }
      sendTotal += process.hrtime.bigint() - t1;
      if (recvPkts.length >= 2000 || k < 100) {
        for (const p of recvPkts.splice(0)) cl.recv(p, { from: sA, to: cA });
        const rb = Buffer.alloc(65536);
        while (cl.streamRecv(0, rb) !== null);
        moveAll(cl, sv, cA, sA);
      }
    }
    res.streamSend100 = Number(total) / calls;
    res.sendBusy1350 = Number(sendTotal) / sent;
  }
  // recv() of fresh 1350-byte packets of stream data.
  {
    const pkts = [];
    const chunk = randomBytes(64 * 1024);
    let timed = 0n;
    let n = 0;
    const rb = Buffer.alloc(65536);
    while (n < 30_000) {
      while (sv.streamSend(0, chunk, false) !== null);
      moveAll(sv, cl, sA, cA, pkts);
      const t0 = process.hrtime.bigint();
      for (const p of pkts) cl.recv(p, { from: sA, to: cA });
      timed += process.hrtime.bigint() - t0;
      n += pkts.length;
      pkts.length = 0;
      while (cl.streamRecv(0, rb) !== null);
      moveAll(cl, sv, cA, sA);
    }
    res.recv1350 = Number(timed) / n;
  }
  return res;
}

if (process.argv[2] === '--one') {
  process.stdout.write(JSON.stringify(one(process.argv[3])));
} else {
  const rounds = Number(process.env.ROUNDS ?? 5);
  const runs = { old: [], new: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [k, p] of [['old', OLD], ['new', NEW]]) {
      runs[k].push(JSON.parse(execFileSync(process.execPath, [__filename, '--one', p], { cwd: resolve(__dirname, '..', '..', '..'), encoding: 'utf8' })));
    }
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const rows = [
    ['send() idle → null', 'sendIdle'],
    ['send() 1350 B packet (stream data)', 'sendBusy1350'],
    ['recv() 1350 B packet (stream data)', 'recv1350'],
    ['streamSend() 100 B', 'streamSend100'],
    ['timeout()', 'timeout'],
    ['isClosed() (N-API floor)', 'isClosed'],
  ];
  console.log(`median of ${rounds} runs, ns per call (range)`);
  console.log('| call | old (quiche 0.18) | new (quiche 0.30) |');
  console.log('|---|---:|---:|');
  for (const [label, key] of rows) {
    const f = (k) => {
      const v = runs[k].map((x) => x[key]);
      return `${med(v).toFixed(0)} (${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)})`;
    };
    console.log(`| ${label} | ${f('old')} | ${f('new')} |`);
  }
}
