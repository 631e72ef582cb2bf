/**
 * A QUIC endpoint binds its UDP socket without dgram's bind (src/quic/udp-native.ts bindDirect): dgram's would load
 * `node:cluster` and `child_process` into a fresh process for its first QUIC connection. Checked in a fresh node,
 * where nothing else has loaded them; the bind's failures stay typed errors. (An IPv6 endpoint connected to its
 * peer — the replaced handle's connect — is test/peer/h3-happy-eyeballs's `::1` case.)
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, ROOT } from '../helpers/build.js';

const ENDPOINT = pathToFileURL(join(ROOT, 'dist', 'quic', 'endpoint.js')).href;

function fresh(script: string): unknown {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return JSON.parse(out.trim().split('\n').at(-1) as string);
}

describe('a QUIC endpoint binds without dgram.bind', () => {
  beforeAll(() => buildIfStale(), 120_000);

  it('binds IPv4 and IPv6 without loading node:cluster or child_process, and takes datagrams', () => {
    const r = fresh(`
      import dgram from 'node:dgram';
      const { QuicEndpoint } = await import(${JSON.stringify(ENDPOINT)});
      const v4 = await QuicEndpoint.bind({ host: '127.0.0.1' });
      const v6 = await QuicEndpoint.bind({ host: '::1' });
      const loaded = process.moduleLoadList.filter((m) => /\\b(cluster|child_process)\\b/.test(m));
      // A datagram to each (from dgram sockets, whose own bind loads them): the endpoints' sockets are live.
      const junk = Buffer.from('not quic');
      const s = dgram.createSocket('udp4');
      const s6 = dgram.createSocket('udp6');
      await new Promise((r) => s.send(junk, v4.address.port, '127.0.0.1', r));
      await new Promise((r) => s6.send(junk, v6.address.port, '::1', r));
      const until = Date.now() + 5000;
      while ((v4.stats().datagramsIn < 1 || v6.stats().datagramsIn < 1) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 10));
      s.close(); s6.close();
      console.log(JSON.stringify({
        v4: v4.address, v6: v6.address, loaded, in: [v4.stats().datagramsIn, v6.stats().datagramsIn],
      }));
      process.exit(0);
    `) as {
      v4: { host: string; port: number };
      v6: { host: string; port: number };
      loaded: string[];
      in: number[];
    };
    expect(r.loaded).toEqual([]);
    expect(r.v4.host).toBe('127.0.0.1');
    expect(r.v4.port).toBeGreaterThan(0);
    expect(r.v6.host).toBe('::1');
    expect(r.v6.port).toBeGreaterThan(0);
    expect(r.in).toEqual([1, 1]);
  });

  it('a port in use and an address not on this host are typed errors', () => {
    const r = fresh(`
      const { QuicEndpoint } = await import(${JSON.stringify(ENDPOINT)});
      const a = await QuicEndpoint.bind({ host: '127.0.0.1' });
      const fail = (o) => QuicEndpoint.bind(o).then(() => null, (e) => ({ code: e.code, message: e.message }));
      console.log(JSON.stringify({
        inUse: await fail({ host: '127.0.0.1', port: a.address.port }),
        foreign: await fail({ host: '192.0.2.1' }),
      }));
      process.exit(0);
    `) as Record<string, { code: string; message: string } | null>;
    expect(r.inUse).toMatchObject({ code: 'OL_CONNECT_FAILED' });
    expect(r.inUse?.message).toMatch(/EADDRINUSE/);
    expect(r.foreign).toMatchObject({ code: 'OL_CONNECT_FAILED' });
    expect(r.foreign?.message).toMatch(/EADDRNOTAVAIL/);
  });
});

describe("a client endpoint's socket is the addon's own (src/quic/native-socket.ts)", () => {
  beforeAll(() => buildIfStale(), 120_000);

  it('has no dgram handle, is connected to its peer, is read in batches, and frees its port at close', () => {
    const r = fresh(`
      import { closeSync } from 'node:fs';
      const { QuicEndpoint } = await import(${JSON.stringify(ENDPOINT)});
      const { udpAddon } = await import(${JSON.stringify(ENDPOINT.replace('endpoint.js', 'udp-native.js'))});
      // The peer: a socket of the addon's too, so that the endpoint's would be the only dgram handle (UDPWrap).
      const a = udpAddon();
      const out = new Int32Array(1);
      const peerFd = a.udpOpen('127.0.0.1', 0, '', 0, 0, out);
      const ep = await QuicEndpoint.bind({ host: '127.0.0.1', peer: { host: '127.0.0.1', port: out[0] } });
      const handles = process.getActiveResourcesInfo().filter((h) => h === 'UDPWrap').length;
      const { default: dgram } = await import('node:dgram');
      const other = dgram.createSocket('udp4');
      const junk = Buffer.from('not quic');
      // From another port first: the connected socket's kernel drops it; then from the peer.
      await new Promise((r) => other.send(junk, ep.address.port, '127.0.0.1', r));
      const sent = a.sendSegments(peerFd, junk, 0, junk.length, junk.length, '127.0.0.1', ep.address.port);
      const until = Date.now() + 5000;
      while (ep.stats().datagramsIn < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50));
      const st = ep.stats();
      const port = ep.address.port;
      await ep.close();
      // The port is free again: neither the fd nor the receiver's duplicate of it is left open.
      const again = dgram.createSocket('udp4');
      const rebound = await new Promise((r) => { again.once('error', (e) => r(e.code)); again.bind(port, '127.0.0.1', () => r('ok')); });
      again.close(); other.close(); closeSync(peerFd);
      console.log(JSON.stringify({ handles, sent, in: st.datagramsIn, batches: st.rxBatches, rebound }));
      process.exit(0);
    `) as { handles: number; sent: number; in: number; batches: number; rebound: string };
    expect(r).toEqual({ handles: 0, sent: 8, in: 1, batches: 1, rebound: 'ok' });
  });

  it('goes with a worker thread that ends or is terminated with it open: no descriptor is left', () => {
    const r = fresh(`
      import { readdirSync, readlinkSync } from 'node:fs';
      import { Worker } from 'node:worker_threads';
      const sockets = () => readdirSync('/proc/self/fd').filter((f) => {
        try { return readlinkSync('/proc/self/fd/' + f).startsWith('socket:'); } catch { return false; }
      }).length;
      // The worker counts the process's sockets itself once its endpoint is bound (they share the descriptor table).
      const body = \`
        const { readdirSync, readlinkSync } = await import('node:fs');
        const { parentPort, workerData } = await import('node:worker_threads');
        const { QuicEndpoint } = await import(${JSON.stringify(ENDPOINT)});
        const ep = await QuicEndpoint.bind({ host: '127.0.0.1', peer: { host: '127.0.0.1', port: 9 } });
        if (workerData.mode === 'exit') ep.unref();
        parentPort.postMessage((\${sockets.toString()})() - workerData.before);\`;
      const before = sockets();
      const seen = {};
      for (const mode of ['exit', 'terminate']) {
        const w = new Worker(body, { eval: true, workerData: { mode, before } });
        await new Promise((res) => {
          w.on('message', async (n) => { seen[mode] = n; if (mode === 'terminate') await w.terminate(); });
          w.on('exit', res);
          w.on('error', (e) => { seen[mode] = String(e); res(); });
        });
      }
      console.log(JSON.stringify({ seen, left: sockets() - before }));
      process.exit(0);
    `) as { seen: Record<string, number | string>; left: number };
    // While it ran, the worker's endpoint held one socket (its fd, read by the receiver itself); none is left after.
    expect(r).toEqual({ seen: { exit: 1, terminate: 1 }, left: 0 });
  });

  it('sends without GSO one sendmsg a packet, refuses an address, and reports a send after close', () => {
    const r = fresh(`
      import dgram from 'node:dgram';
      const { openNativeSocket } = await import(${JSON.stringify(ENDPOINT.replace('endpoint.js', 'native-socket.js'))});
      const peer = dgram.createSocket('udp4');
      await new Promise((r) => peer.bind(0, '127.0.0.1', r));
      const got = new Promise((r) => peer.once('message', (m) => r(String(m))));
      const s = openNativeSocket('127.0.0.1', 0, { host: '127.0.0.1', port: peer.address().port }, 0);
      const msg = Buffer.from('xx-one packet-xx');
      const sent = await new Promise((r) => s.send(msg, 3, 10, (e) => r(e ? e.code : 'ok')));
      let addressed = null;
      try { s.send(msg, 0, 3, 9, '127.0.0.1', () => {}); } catch (e) { addressed = e.message; }
      s.close();
      const late = await new Promise((r) => s.send(msg, 0, 3, (e) => r(e ? e.code : 'ok')));
      console.log(JSON.stringify({ sent, body: await got, addressed, late }));
      peer.close();
      process.exit(0);
    `) as Record<string, string | null>;
    expect(r).toEqual({ sent: 'ok', body: 'one packet', addressed: expect.stringMatching(/connected/), late: 'EBADF' });
  });

  it('a peer of the other family and an address not on this host are typed errors', () => {
    const r = fresh(`
      const { QuicEndpoint } = await import(${JSON.stringify(ENDPOINT)});
      const fail = (o) => QuicEndpoint.bind(o).then(() => null, (e) => ({ code: e.code, message: e.message }));
      console.log(JSON.stringify({
        family: await fail({ host: '::1', peer: { host: '127.0.0.1', port: 443 } }),
        foreign: await fail({ host: '192.0.2.1', peer: { host: '192.0.2.2', port: 443 } }),
      }));
      process.exit(0);
    `) as Record<string, { code: string; message: string } | null>;
    expect(r.family).toMatchObject({ code: 'OL_CONNECT_FAILED' });
    expect(r.family?.message).toMatch(/EINVAL/);
    expect(r.foreign).toMatchObject({ code: 'OL_CONNECT_FAILED' });
    expect(r.foreign?.message).toMatch(/EADDRNOTAVAIL/);
  });
});
