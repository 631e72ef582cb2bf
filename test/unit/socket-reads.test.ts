/**
 * net/socket-reads.ts over real loopback sockets: the fast path is the one in use on this Node (plain
 * accepted sockets and TLS over a dialled socket), every read is the callback's own copy, pause/resume and
 * 'end' keep working, bytes the stream held before are not lost, and a released socket reads as a stream.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { readChunks } from '../../src/net/socket-reads.js';
import { makeCerts } from '../helpers/certs.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A server on loopback; resolves its first accepted socket (plain or TLS) and the client. */
async function pair(secure: boolean): Promise<{ server: net.Socket; client: net.Socket }> {
  const certs = makeCerts();
  return new Promise((resolve) => {
    let accepted: net.Socket | null = null;
    let client: net.Socket | null = null;
    const done = (): void => {
      if (accepted && client) resolve({ server: accepted, client });
    };
    const srv = secure
      ? tls.createServer({ cert: certs.cert, key: certs.key }, (s) => {
          accepted = s;
          done();
        })
      : net.createServer((s) => {
          accepted = s;
          done();
        });
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      const c = secure
        ? tls.connect({ socket: net.connect(port, '127.0.0.1'), ca: certs.ca, servername: 'localhost' }, () => {
            client = c;
            done();
          })
        : net.connect(port, '127.0.0.1', () => {
            client = c;
            done();
          });
      closers.push(() => {
        c.destroy();
        accepted?.destroy();
        srv.close();
      });
    });
  });
}

/** Resolves when `cond` holds (checked every 5 ms, at most 2 s). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

describe('readChunks', () => {
  it('a stream that is no socket falls back without turning the fast path off for sockets (first in the file: the slots are found once)', async () => {
    const { PassThrough } = await import('node:stream');
    const pt = new PassThrough();
    const got: string[] = [];
    expect(readChunks(pt as unknown as net.Socket, (d) => got.push(d.toString())).fast).toBe(false);
    pt.write('through');
    await until(() => got.join('') === 'through');
    const { server } = await pair(false);
    expect(readChunks(server, () => {}).fast).toBe(true);
  });

  it('reads an accepted plain socket by the fast path: each chunk its own copy, then end', async () => {
    const { server, client } = await pair(false);
    const got: Buffer[] = [];
    let ended = false;
    const r = readChunks(server, (d) => got.push(d));
    server.on('end', () => {
      ended = true;
    });
    expect(r.fast).toBe(true);
    client.write('first');
    await until(() => got.length === 1);
    client.write('second!');
    await until(() => got.length === 2);
    // The first chunk was copied out of the shared buffer: the second read did not overwrite it.
    expect(got.map((b) => b.toString())).toEqual(['first', 'second!']);
    client.end();
    await until(() => ended);
  });

  it('pause stops the reads and resume brings what came meanwhile', async () => {
    const { server, client } = await pair(false);
    const got: string[] = [];
    readChunks(server, (d) => got.push(d.toString()));
    server.pause();
    client.write('while paused');
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([]);
    server.resume();
    await until(() => got.join('') === 'while paused');
  });

  it('reads TLS over a dialled socket (an origin connection) and an accepted TLS socket by the fast path', async () => {
    const { server, client } = await pair(true);
    const got: string[] = [];
    const r = readChunks(client, (d) => got.push(d.toString()));
    expect(r.fast).toBe(true);
    // And the accepted side of a TLS server (an https front).
    const back: string[] = [];
    expect(readChunks(server, (d) => back.push(d.toString())).fast).toBe(true);
    client.write('ping');
    await until(() => back.join('') === 'ping');
    server.write('x'.repeat(100_000)); // more than the shared buffer: several reads, all intact
    await until(() => got.join('').length === 100_000);
    expect(got.join('')).toBe('x'.repeat(100_000));
  });

  it('hands over bytes the stream held before the call, first and in order', async () => {
    const { server, client } = await pair(false);
    client.write('early');
    await until(() => server.readableLength === 5); // read by Node into the Readable's buffer, nobody listening
    const got: string[] = [];
    const r = readChunks(server, (d) => got.push(d.toString()));
    expect(r.fast).toBe(true);
    client.write('-late');
    await until(() => got.join('') === 'early-late');
  });

  it('bytes held before the call come before an end that was already read', async () => {
    const { server, client } = await pair(false);
    client.end('request');
    await until(() => server.readableLength === 7);
    await new Promise((r) => setTimeout(r, 50)); // the FIN is read too (nobody reads the stream: no 'end' yet)
    const order: string[] = [];
    // From a timer callback, as a session made on an I/O event would be: ticks before microtasks.
    await new Promise<void>((done) =>
      setTimeout(() => {
        readChunks(server, (d) => order.push(`data:${d.toString()}`));
        server.on('end', () => {
          order.push('end');
          done();
        });
      }, 0),
    );
    expect(order).toEqual(['data:request', 'end']);
  });

  it('takes over a flowing socket a tunnel gave back with bytes unshifted (none emitted to no listener)', async () => {
    const { server, client } = await pair(false);
    const seen: string[] = [];
    const early = (d: Buffer): void => {
      seen.push(d.toString());
    };
    server.on('data', early);
    client.write('reply+rest');
    await until(() => seen.length === 1);
    // What a tunnel does after its reply: its listener goes, the bytes past the reply go back in front (still flowing).
    server.removeListener('data', early);
    server.unshift(Buffer.from('rest'));
    const got: string[] = [];
    expect(readChunks(server, (d) => got.push(d.toString())).fast).toBe(true);
    await new Promise((r) => setImmediate(r)); // ticks and microtasks run: a flowing stream would have emitted 'rest' by now
    client.write('+more');
    await until(() => got.join('') === 'rest+more');
  });

  it('after release the socket reads as a stream again (data events, unshift, pipe)', async () => {
    const { server, client } = await pair(false);
    const got: string[] = [];
    const r = readChunks(server, (d) => got.push(d.toString()));
    client.write('mine');
    await until(() => got.length === 1);
    r.release();
    server.unshift(Buffer.from('held+'));
    const streamed: string[] = [];
    server.on('data', (d: Buffer) => streamed.push(d.toString()));
    client.write('theirs');
    await until(() => streamed.join('') === 'held+theirs');
    expect(got).toEqual(['mine']);
  });

  it('falls back to a data listener where the fast path cannot be set (a socket without a handle yet)', async () => {
    const srv = net.createServer((s) => s.end('hello'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const s = new net.Socket();
    closers.push(() => {
      s.destroy();
      srv.close();
    });
    const got: string[] = [];
    const r = readChunks(s, (d) => got.push(d.toString()));
    expect(r.fast).toBe(false);
    s.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    await until(() => got.join('') === 'hello');
  });
});
