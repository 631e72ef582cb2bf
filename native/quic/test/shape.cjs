#!/usr/bin/env node
/*
 * Shape probe: drives two connections of a binding against each other in memory (no sockets) and
 * prints what every call the originlink driver makes returns — value types, object keys, error
 * messages. Run it against the old binding and ours and diff the outputs:
 *
 *   node native/quic/test/shape.cjs @matrixai/quic-linux-x64/node.napi.node > old.txt
 *   node native/quic/test/shape.cjs ./native/quic/build/quic.node > new.txt
 *   diff old.txt new.txt
 *
 * Values that differ by nature (random ids, timings, byte counts) are printed as their types.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const { mkdtempSync, rmSync, readFileSync, existsSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');
const { randomBytes } = require('node:crypto');

const target = process.argv[2] ?? '@matrixai/quic-linux-x64/node.napi.node';
const b = require(target.startsWith('.') || target.startsWith('/') ? resolve(target) : target);
const dir = mkdtempSync(join(tmpdir(), 'ol-shape-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const ossl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=ca',
  '-keyout', 'ca.key', '-out', 'ca.pem', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
require('node:fs').writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-keyout', 'leaf.key', '-out', 'leaf.csr');
ossl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'leaf.ext', '-out', 'leaf.pem');

const out = [];
function kind(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return `array[${v.map(kind).join(', ')}]`;
  if (v instanceof Uint8Array) return `${v.constructor.name}(${v.length})`;
  if (typeof v === 'bigint') return 'bigint';
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    const tag = proto === null ? 'nullproto' : proto === Object.prototype ? '' : (proto.constructor?.name ?? '?');
    const keys = Object.keys(v);
    if (typeof v[Symbol.iterator] === 'function' && keys.length === 0) return `iterable${tag ? ' ' + tag : ''}`;
    return `${tag}{${keys.map((k) => `${k}: ${kind(v[k])}`).join(', ')}}`;
  }
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  return typeof v;
}
function show(label, v, exact = false) { out.push(`${label} = ${exact ? JSON.stringify(v) : kind(v)}`); }
function attempt(label, fn, exact = false) {
  try { show(label, fn(), exact); } catch (e) { out.push(`${label} throws ${e?.constructor?.name}: ${e?.message}${e?.code ? ` [code ${e.code}]` : ''}`); }
}

show('Shutdown', b.Shutdown, true);
show('Type', b.Type, true);
attempt('versionIsSupported(1)', () => b.versionIsSupported(1), true);
attempt('versionIsSupported(0xbabababa)', () => b.versionIsSupported(0xbabababa), true);

const cfg = (role, extra = () => {}) => {
  const c = new b.Config();
  c.setApplicationProtos(['shape']);
  if (role === 'server') {
    c.loadCertChainFromPemFile(join(dir, 'leaf.pem'));
    c.loadPrivKeyFromPemFile(join(dir, 'leaf.key'));
    c.verifyPeer(false);
    c.setTicketKey(randomBytes(48));
  } else {
    c.verifyPeer(true);
    c.loadVerifyLocationsFromFile(join(dir, 'ca.pem'));
  }
  c.setMaxIdleTimeout(30000);
  c.setMaxRecvUdpPayloadSize(1350);
  c.setMaxSendUdpPayloadSize(1350);
  c.setInitialMaxData(1 << 20);
  c.setInitialMaxStreamDataBidiLocal(1 << 18);
  c.setInitialMaxStreamDataBidiRemote(1 << 18);
  c.setInitialMaxStreamDataUni(1 << 18);
  c.setInitialMaxStreamsBidi(8);
  c.setInitialMaxStreamsUni(8);
  c.setMaxConnectionWindow(24 << 20);
  c.setMaxStreamWindow(16 << 20);
  c.setActiveConnectionIdLimit(4);
  c.setDisableActiveMigration(false);
  c.setCcAlgorithmName('cubic');
  c.enablePacing(false);
  c.enableHystart(true);
  c.grease(true);
  c.enableEarlyData();
  extra(c);
  return c;
};

// Config setters and their errors.
{
  const c = new b.Config();
  for (const n of ['reno', 'cubic', 'bbr', 'bbr2', 'bbr2_gcongestion', 'nope']) attempt(`setCcAlgorithmName(${n})`, () => c.setCcAlgorithmName(n));
  attempt('setTicketKey(47 bytes)', () => c.setTicketKey(randomBytes(47)));
  attempt('setTicketKey(48 bytes)', () => c.setTicketKey(randomBytes(48)));
  attempt('loadCertChainFromPemFile(missing)', () => c.loadCertChainFromPemFile('/nonexistent.pem'));
  attempt('loadPrivKeyFromPemFile(missing)', () => c.loadPrivKeyFromPemFile('/nonexistent.pem'));
  attempt('loadVerifyLocationsFromFile(missing)', () => c.loadVerifyLocationsFromFile('/nonexistent.pem'));
  attempt('loadVerifyLocationsFromDirectory(dir)', () => c.loadVerifyLocationsFromDirectory(dir));
  attempt('setApplicationProtos([])', () => c.setApplicationProtos([]));
  attempt('logKeys()', () => c.logKeys());
}

const sAddr = { host: '127.0.0.1', port: 4433 };
const cAddr = { host: '127.0.0.1', port: 50000 };
const scfg = cfg('server');
const ccfg = cfg('client');
attempt('Connection.connect(bad host)', () => b.Connection.connect('localhost', randomBytes(16), { host: 'not an ip', port: 1 }, sAddr, ccfg));
const cl = b.Connection.connect('localhost', randomBytes(16), cAddr, sAddr, ccfg);
show('client.timeout() before send', cl.timeout());
const buf = Buffer.alloc(65536);
const first = cl.send(buf);
show('client.send()', first);
show('send()[1].at', first[1].at);
out.push(`send()[1].at proto null: ${Object.getPrototypeOf(first[1].at) === null}; typeof ${typeof first[1].at}`);
show('send()[1].from/to', [first[1].from, first[1].to], true);
const initial = Buffer.from(buf.subarray(0, first[0]));
attempt('Header.fromSlice(initial, 16)', () => b.Header.fromSlice(initial, 16));
{
  const h = b.Header.fromSlice(initial, 16);
  out.push(`header.ty=${h.ty} version=${h.version} dcid=${kind(h.dcid)} scid=${kind(h.scid)} token=${kind(h.token)} versions=${kind(h.versions)}`);
  out.push(`header own keys: ${Object.keys(h).join(',')}; proto keys: ${Object.getOwnPropertyNames(Object.getPrototypeOf(h)).join(',')}`);
  attempt('Header.fromSlice(garbage)', () => b.Header.fromSlice(Buffer.from([0xc0, 1, 2]), 16));
  attempt('negotiateVersion', () => b.negotiateVersion(h.scid, h.dcid, Buffer.alloc(1350)));
  attempt('retry', () => b.retry(h.scid, h.dcid, randomBytes(16), Buffer.from('token'), h.version, Buffer.alloc(1350)));
  attempt('retry(bad version)', () => b.retry(h.scid, h.dcid, randomBytes(16), Buffer.from('token'), 0xbabababa, Buffer.alloc(1350)));
  attempt('negotiateVersion(tiny out)', () => b.negotiateVersion(h.scid, h.dcid, Buffer.alloc(4)));
}
const hdr = b.Header.fromSlice(initial, 16);
const sv = b.Connection.accept(randomBytes(16), null, sAddr, cAddr, scfg);
attempt('server.recv(initial)', () => sv.recv(Buffer.from(initial), { from: cAddr, to: sAddr }));
attempt('server.recv(garbage short)', () => sv.recv(Buffer.from([0x40, 1, 2, 3]), { from: cAddr, to: sAddr }));
attempt('server.recv(bad host)', () => sv.recv(Buffer.from(initial), { from: { host: 'x', port: 1 }, to: sAddr }));

function pump(a, bb, aAddr, bAddr, rounds = 20) {
  for (let r = 0; r < rounds; r++) {
    let moved = 0;
    for (const [x, y, xa, ya] of [[a, bb, aAddr, bAddr], [bb, a, bAddr, aAddr]]) {
      for (;;) {
        const s = x.send(buf);
        if (s === null) break;
        moved++;
        try { y.recv(Buffer.from(buf.subarray(0, s[0])), { from: s[1].from, to: s[1].to }); } catch { /* dropped */ }
      }
    }
    if (!moved) break;
  }
}
pump(cl, sv, cAddr, sAddr);
show('client.isEstablished()', cl.isEstablished(), true);
show('server.isEstablished()', sv.isEstablished(), true);
show('client.applicationProto()', cl.applicationProto());
out.push(`applicationProto text: ${Buffer.from(cl.applicationProto()).toString()}`);
show('server.serverName()', sv.serverName(), true);
show('client.serverName()', cl.serverName(), true);
show('client.peerCertChain()', cl.peerCertChain() && cl.peerCertChain().map(() => 'der'), true);
show('server.peerCertChain()', sv.peerCertChain(), true);
show('client.session()', cl.session() === null ? null : 'bytes', true);
show('client.sourceId()', cl.sourceId());
show('client.destinationId()', cl.destinationId());
for (const g of ['isResumed', 'isInEarlyData', 'isDraining', 'isClosed', 'isTimedOut', 'isReadable', 'peerStreamsLeftBidi', 'peerStreamsLeftUni', 'maxSendUdpPayloadSize', 'availableDcids', 'sourceCidsLeft', 'peerError', 'localError']) attempt(`client.${g}()`, () => cl[g](), true);
attempt('client.timeout()', () => typeof cl.timeout());
show('client.stats()', cl.stats());
show('client.pathStats()', cl.pathStats());
show('pathStats()[0].localHost', cl.pathStats()[0].localHost, true);
show('readable()', cl.readable());
show('writable()', cl.writable());
out.push(`readable() spread: ${JSON.stringify([...cl.readable()])}; writable spread: ${JSON.stringify([...cl.writable()])}`);

// Streams.
attempt('client.streamSend(0, empty, false)', () => cl.streamSend(0, new Uint8Array(0), false), true);
attempt('client.streamSend(0, hello, false)', () => cl.streamSend(0, Buffer.from('hello'), false), true);
attempt('client.streamCapacity(0)', () => typeof cl.streamCapacity(0), true);
attempt('client.streamPriority(0, 3, true)', () => cl.streamPriority(0, 3, true), true);
attempt('client.streamPriority(400, 3, true)', () => cl.streamPriority(400, 3, true), true);
attempt('client.streamSend(1, x) (server-initiated id)', () => cl.streamSend(1, Buffer.from('x'), false), true);
attempt('client.streamRecv(0) before data', () => cl.streamRecv(0, buf), true);
attempt('client.streamRecv(999)', () => cl.streamRecv(999, buf), true);
attempt('client.streamReadable(999)', () => cl.streamReadable(999), true);
attempt('client.streamFinished(999)', () => cl.streamFinished(999), true);
attempt('client.streamCapacity(999)', () => cl.streamCapacity(999), true);
attempt('client.streamShutdown(999, Read, 1)', () => cl.streamShutdown(999, b.Shutdown.Read, 1), true);
pump(cl, sv, cAddr, sAddr);
out.push(`server readable: ${JSON.stringify([...sv.readable()])}; isReadable ${sv.isReadable()} streamReadable(0) ${sv.streamReadable(0)}`);
attempt('server.streamRecv(0)', () => sv.streamRecv(0, buf), true);
attempt('server.streamRecv(0) again', () => sv.streamRecv(0, buf), true);
attempt('server.streamSend(0, reply, true)', () => sv.streamSend(0, Buffer.from('reply'), true), true);
pump(cl, sv, cAddr, sAddr);
attempt('client.streamRecv(0)', () => cl.streamRecv(0, buf), true);
attempt('client.streamFinished(0)', () => cl.streamFinished(0), true);
attempt('client.streamSend(0, more, true)', () => cl.streamSend(0, Buffer.from('more'), true), true);
attempt('client.streamSend(0, after fin)', () => cl.streamSend(0, Buffer.from('x'), false), true);
pump(cl, sv, cAddr, sAddr);

// Reset and stop: client stream 4, server resets its side with 268 and stops reading with 256.
cl.streamSend(4, Buffer.from('req'), false);
pump(cl, sv, cAddr, sAddr);
sv.streamRecv(4, buf);
attempt('server.streamShutdown(4, Write, 268)', () => sv.streamShutdown(4, b.Shutdown.Write, 268), true);
attempt('server.streamShutdown(4, Write, 268) again', () => sv.streamShutdown(4, b.Shutdown.Write, 268), true);
attempt('server.streamShutdown(4, Read, 256)', () => sv.streamShutdown(4, b.Shutdown.Read, 256), true);
pump(cl, sv, cAddr, sAddr);
attempt('client.streamRecv(4) after reset', () => cl.streamRecv(4, buf), true);
attempt('client.streamRecv(4) again', () => cl.streamRecv(4, buf), true);
attempt('client.streamSend(4) after stop', () => cl.streamSend(4, Buffer.from('x'), false), true);
attempt('client.streamCapacity(4) after stop', () => cl.streamCapacity(4), true);
out.push(`client writable after stop: ${JSON.stringify([...cl.writable()])}`);
pump(cl, sv, cAddr, sAddr);
attempt('client.streamCapacity(4) later', () => cl.streamCapacity(4), true);

// Stream limit.
for (let id = 8; id < 8 * 4 + 8; id += 4) {
  const r = (() => { try { return cl.streamSend(id, Buffer.from('x'), false); } catch (e) { return e.message; } })();
  if (typeof r === 'string') { out.push(`streamSend(${id}) beyond the limit throws: ${r}`); break; }
}
out.push(`peerStreamsLeftBidi now: ${cl.peerStreamsLeftBidi()}`);

// Connection ids and path events.
attempt('server.sourceCidsLeft()', () => sv.sourceCidsLeft(), true);
attempt('server.newSourceCid', () => sv.newSourceCid(randomBytes(16), 0x1234n, false), true);
attempt('server.newSourceCid(bad token type)', () => sv.newSourceCid(randomBytes(16), 5, false));
pump(cl, sv, cAddr, sAddr);
attempt('client.availableDcids()', () => cl.availableDcids(), true);
attempt('server.retiredScidNext()', () => sv.retiredScidNext(), true);
const evs = [];
for (let i = 0; i < 10; i++) { const e = sv.pathEventNext(); if (!e) break; evs.push(e); }
show('server path events', evs, true);
const evc = [];
for (let i = 0; i < 10; i++) { const e = cl.pathEventNext(); if (!e) break; evc.push(e); }
show('client path events', evc, true);
attempt('client.pathEventNext() empty', () => cl.pathEventNext(), true);

// Migration: client moves to a new local port.
const cAddr2 = { host: '127.0.0.1', port: 50001 };
attempt('client.migrateSource', () => cl.migrateSource(cAddr2), true);
attempt('client.sendAckEliciting()', () => cl.sendAckEliciting(), true);
pump(cl, sv, cAddr2, sAddr);
const evm = [];
for (let i = 0; i < 10; i++) { const e = sv.pathEventNext(); if (!e) break; evm.push(e); }
show('server path events after migration', evm, true);
attempt('server.probePath(old)', () => sv.probePath(sAddr, cAddr), true);
show('server pathStats active', sv.pathStats().map((p) => [p.peerHost.port, p.active]), true);
attempt('client.migrateSource (no spare)', () => cl.migrateSource({ host: '127.0.0.1', port: 50002 }), true);

// Timers.
attempt('server.timeout() type', () => typeof sv.timeout(), true);
attempt('server.onTimeout()', () => sv.onTimeout(), true);

// Close.
attempt('client.close(true, 0x100, "bye")', () => cl.close(true, 0x100, Buffer.from('bye')), true);
attempt('client.close again', () => cl.close(true, 0x100, Buffer.from('bye')), true);
attempt('client.localError()', () => { const e = cl.localError(); return e && { ...e, reason: Buffer.from(e.reason).toString() }; }, true);
show('client.localError() kind', cl.localError());
pump(cl, sv, cAddr2, sAddr);
attempt('server.peerError()', () => { const e = sv.peerError(); return e && { ...e, reason: Buffer.from(e.reason).toString() }; }, true);
attempt('server.isDraining()', () => sv.isDraining(), true);
attempt('server.isClosed()', () => sv.isClosed(), true);
attempt('client.isClosed()', () => cl.isClosed(), true);
attempt('client.send() after close', () => cl.send(buf), true);

// Session resumption and 0-RTT.
{
  const c2 = b.Connection.connect('localhost', randomBytes(16), cAddr, sAddr, ccfg);
  const s2 = b.Connection.accept(randomBytes(16), null, sAddr, cAddr, scfg);
  pump(c2, s2, cAddr, sAddr);
  pump(c2, s2, cAddr, sAddr);
  const sess = c2.session();
  show('session after handshake', sess === null ? null : 'bytes', true);
  const c3 = b.Connection.connect('localhost', randomBytes(16), cAddr, sAddr, ccfg);
  attempt('setSession', () => c3.setSession(sess), true);
  attempt('setSession(garbage)', () => b.Connection.connect('localhost', randomBytes(16), cAddr, sAddr, ccfg).setSession(Buffer.from('garbage')), true);
  attempt('early streamSend', () => c3.streamSend(0, Buffer.from('early'), true), true);
  out.push(`c3 before first flight: isInEarlyData ${c3.isInEarlyData()}`);
  const f = c3.send(buf);
  out.push(`c3 after first packet: isInEarlyData ${c3.isInEarlyData()} len ${f[0] >= 1200}`);
  const s3 = b.Connection.accept(randomBytes(16), null, sAddr, cAddr, scfg);
  s3.recv(Buffer.from(buf.subarray(0, f[0])), { from: cAddr, to: sAddr });
  pump(c3, s3, cAddr, sAddr, 1);
  out.push(`s3 after first flight: isInEarlyData ${s3.isInEarlyData()} resumed ${s3.isResumed()} readable ${JSON.stringify([...s3.readable()])}`);
  pump(c3, s3, cAddr, sAddr);
  out.push(`c3 resumed ${c3.isResumed()} established ${c3.isEstablished()}`);
}

// Certificate failure: a client that trusts another CA.
{
  const bad = new b.Config();
  bad.setApplicationProtos(['shape']);
  bad.verifyPeer(true);
  const c4 = b.Connection.connect('localhost', randomBytes(16), cAddr, sAddr, bad);
  const s4 = b.Connection.accept(randomBytes(16), null, sAddr, cAddr, scfg);
  let recvErr = null;
  for (let r = 0; r < 10; r++) {
    for (const [x, y, xa, ya] of [[c4, s4, cAddr, sAddr], [s4, c4, sAddr, cAddr]]) {
      for (;;) {
        let s;
        try { s = x.send(buf); } catch (e) { recvErr ??= `send: ${e.message}`; break; }
        if (s === null) break;
        try { y.recv(Buffer.from(buf.subarray(0, s[0])), { from: xa, to: ya }); } catch (e) { recvErr ??= `recv: ${e.message}`; }
      }
    }
  }
  out.push(`bad CA: first error ${recvErr}`);
  show('bad CA client.localError()', c4.localError() && { ...c4.localError(), reason: Buffer.from(c4.localError().reason).toString() }, true);
  show('bad CA server.peerError()', s4.peerError() && { ...s4.peerError(), reason: Buffer.from(s4.peerError().reason).toString() }, true);
}

// Wrong server name with a DNS name.
{
  const c5 = b.Connection.connect('wrong.example', randomBytes(16), cAddr, sAddr, ccfg);
  const s5 = b.Connection.accept(randomBytes(16), null, sAddr, cAddr, scfg);
  pump(c5, s5, cAddr, sAddr);
  show('wrong name client.localError()', c5.localError() && { ...c5.localError(), reason: Buffer.from(c5.localError().reason).toString() }, true);
}

// Key log: logKeys() with SSLKEYLOGFILE set.
{
  const kl = join(dir, 'keys.log');
  process.env.SSLKEYLOGFILE = kl;
  const kc = cfg('client', (c) => c.logKeys());
  const c6 = b.Connection.connect('localhost', randomBytes(16), cAddr, sAddr, kc);
  const s6 = b.Connection.accept(randomBytes(16), null, sAddr, cAddr, scfg);
  pump(c6, s6, cAddr, sAddr);
  out.push(`keylog: established ${c6.isEstablished()}, SSLKEYLOGFILE written: ${existsSync(kl) ? readFileSync(kl, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[0]).join(',') : 'no file'}`);
  delete process.env.SSLKEYLOGFILE;
}

console.log(out.join('\n'));
