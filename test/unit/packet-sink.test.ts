/**
 * quic/packet-sink.ts over real UDP sockets on loopback: each flush sends the packets committed since the last one,
 * in order, once — the sink keeps its arrays between flushes (a count of the committed entries, not a truncation), so
 * a later, smaller batch must not send a former batch's entries again. Through the native sender (sendmsg, with
 * UDP_SEGMENT for runs of equal sizes) and through dgram alike.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { PacketSink } from '../../src/quic/packet-sink.js';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s;
}

/** The datagrams `to` receives until `count` have come (or 2 s passed). */
function receive(to: dgram.Socket, count: number): Promise<string[]> {
  return new Promise((resolve) => {
    const got: string[] = [];
    const timer = setTimeout(() => resolve(got), 2000);
    to.on('message', (m) => {
      got.push(m.toString());
      if (got.length === count) {
        clearTimeout(timer);
        setTimeout(() => resolve(got), 100); // and nothing more after them
      }
    });
  });
}

function commit(sink: PacketSink, text: string, to: { host: string; port: number }): void {
  const view = sink.reserve(64);
  const n = view.write(text, 'latin1');
  sink.commit(n, to);
}

describe('PacketSink', () => {
  for (const gso of [true, false]) {
    it(`sends each batch once and only its own packets (${gso ? 'native sender' : 'dgram'})`, async () => {
      const [from, to] = [await udp(), await udp()];
      const dest = { host: '127.0.0.1', port: to.address().port };
      const sink = new PacketSink(from, 1200, { gso });
      const all = receive(to, 5);
      // Equal sizes (one GSO run), then a lone shorter one.
      for (const t of ['aaaa', 'bbbb', 'cccc', 'dd']) commit(sink, t, dest);
      sink.flush();
      commit(sink, 'e', dest);
      sink.flush();
      sink.flush(); // nothing committed: nothing sent
      expect(await all).toEqual(['aaaa', 'bbbb', 'cccc', 'dd', 'e']);
      expect(sink.packetsOut).toBe(5);
      expect(sink.bytesOut).toBe(15);
    });
  }
});
