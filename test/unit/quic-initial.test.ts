/**
 * Reading the server name from a client's Initial packets (src/quic/initial.ts)
 * and choosing a certificate by it (src/server/certificates.ts):
 * RFC 9001 Appendix A's keys and client Initial, and ClientHellos split over
 * packets the way post-quantum key shares make them (Chromium's spans two).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CertificateSet, certificateNames } from '../../src/server/certificates.js';
import { makeCerts, makeLeaf } from '../helpers/certs.js';
import {
  ClientHelloReader,
  clientHelloServerName,
  clientInitialKeys,
  cryptoFrame as crypto,
  cryptoFrames,
  openInitials,
  sealInitial as protect,
} from '../../src/quic/initial.js';

const A2 = Buffer.from(
  readFileSync(new URL('../fixtures/quic/rfc9001-a2-client-initial.hex', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join(''),
  'hex',
);
const A_DCID = Buffer.from('8394c8f03e515708', 'hex');

/** A ClientHello with the given server name (absent: no extension) and `pad` bytes of another extension (a big key share). */
function clientHello(name: string | null, pad = 0): Buffer {
  const exts: Buffer[] = [];
  if (name !== null) {
    const n = Buffer.from(name, 'latin1');
    const entry = Buffer.concat([Buffer.from([0, n.length >> 8, n.length & 0xff]), n]);
    const list = Buffer.concat([Buffer.from([entry.length >> 8, entry.length & 0xff]), entry]);
    exts.push(Buffer.from([0, 0, list.length >> 8, list.length & 0xff]), list);
  }
  if (pad) exts.push(Buffer.from([0x00, 0x33, pad >> 8, pad & 0xff]), Buffer.alloc(pad, 7));
  const e = Buffer.concat(exts);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 1),
    Buffer.from([0]),
    Buffer.from([0, 2, 0x13, 0x01]),
    Buffer.from([1, 0]),
    Buffer.from([e.length >> 8, e.length & 0xff]),
    e,
  ]);
  return Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

describe('client Initial keys and packets (RFC 9001 Appendix A)', () => {
  it('derives the client keys of A.1', () => {
    const k = clientInitialKeys(A_DCID);
    expect(k.key.toString('hex')).toBe('1f369613dd76d5467730efcbe3b1a22d');
    expect(k.iv.toString('hex')).toBe('fa044b2f42a3fd3b46fb255c');
    expect(k.hp.toString('hex')).toBe('9f50449e04a0e810283a1e9933adedd2');
  });

  it('opens the A.2 client Initial: packet number 2, one CRYPTO frame with a ClientHello for example.com', () => {
    const opened = openInitials(A2, clientInitialKeys(A_DCID));
    expect(opened).toHaveLength(1);
    expect(opened![0]!.pn).toBe(2);
    const frames = cryptoFrames(opened![0]!.payload)!;
    expect(frames).toHaveLength(1);
    expect(frames[0]!.offset).toBe(0);
    expect(clientHelloServerName(frames[0]!.data)).toBe('example.com');
    expect(new ClientHelloReader(A_DCID).push(A2)).toEqual({ done: true, serverName: 'example.com' });
  });

  it('a flipped bit anywhere in the protected payload, or another DCID, reads as no name (quiche judges the packet)', () => {
    const bad = Buffer.from(A2);
    bad[600] = bad[600]! ^ 1;
    expect(openInitials(bad, clientInitialKeys(A_DCID))).toBeNull();
    expect(new ClientHelloReader(A_DCID).push(bad)).toMatchObject({
      done: true,
      serverName: null,
      why: 'unreadable Initial packet',
    });
    expect(new ClientHelloReader(Buffer.from('0001020304050607', 'hex')).push(A2)).toMatchObject({
      done: true,
      serverName: null,
    });
  });
});

describe('ClientHelloReader', () => {
  const dcid = Buffer.from('a1a2a3a4a5a6a7a8a9', 'hex');

  it('waits for a ClientHello split over two Initial packets, in either order', () => {
    const ch = clientHello('Two.Example', 1800);
    const cut = 1000;
    const p1 = protect(dcid, 0, crypto(0, ch.subarray(0, cut)));
    const p2 = protect(dcid, 1, crypto(cut, ch.subarray(cut)));
    const r = new ClientHelloReader(dcid);
    expect(r.push(p1)).toEqual({ done: false });
    expect(r.push(p2)).toEqual({ done: true, serverName: 'two.example' });
    const back = new ClientHelloReader(dcid);
    expect(back.push(p2)).toEqual({ done: false });
    expect(back.push(p1)).toEqual({ done: true, serverName: 'two.example' });
  });

  it('a ClientHello without server_name is done with null and no complaint', () => {
    expect(new ClientHelloReader(dcid).push(protect(dcid, 0, crypto(0, clientHello(null))))).toEqual({
      done: true,
      serverName: null,
    });
  });

  it('gives up on a ClientHello announced larger than 16 KiB, a frame an Initial may not carry, a malformed extension list', () => {
    const huge = Buffer.from([1, 0x01, 0x00, 0x00, 3, 3]);
    expect(new ClientHelloReader(dcid).push(protect(dcid, 0, crypto(0, huge)))).toMatchObject({
      done: true,
      serverName: null,
      why: 'ClientHello too large',
    });
    const stream = Buffer.from([0x08, 0x00, 0x01, 0x41]); // STREAM in an Initial (RFC 9000 §12.4)
    expect(new ClientHelloReader(dcid).push(protect(dcid, 0, stream))).toMatchObject({
      done: true,
      serverName: null,
      why: 'unexpected frame in an Initial packet',
    });
    const ch = clientHello('x.test');
    ch.writeUInt16BE(0xfff0, ch.length - 2 - 'x.test'.length - 3 - 2 - 4 + 2); // the server_name extension's length, far past the end
    expect(new ClientHelloReader(dcid).push(protect(dcid, 0, crypto(0, ch)))).toMatchObject({
      done: true,
      serverName: null,
    });
  });

  it('ACK, PING and PADDING beside CRYPTO are read past', () => {
    const ack = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00]);
    const frames = Buffer.concat([Buffer.from([0x01]), ack, crypto(0, clientHello('a.test'))]);
    expect(new ClientHelloReader(dcid).push(protect(dcid, 3, frames))).toEqual({ done: true, serverName: 'a.test' });
  });
});

describe('CertificateSet (the rule both TLS fronts pick by)', () => {
  it('exact before wildcard, a wildcard for one label, case and a trailing dot ignored, first listed wins, default otherwise', () => {
    const set = new CertificateSet([
      { names: ['localhost', 'a.test'], item: 'default' },
      { names: ['*.wild.test', 'exact.wild.test'], item: 'wild' },
      { names: ['Exact.Wild.Test'], item: 'later' },
      { names: ['a.test', 'b.test'], item: 'second' },
    ]);
    expect(set.select('x.wild.test')).toBe('wild');
    expect(set.select('EXACT.wild.test.')).toBe('wild'); // listed first with that exact name
    expect(set.select('a.b.wild.test')).toBe('default'); // RFC 6125 §6.4.3: one label
    expect(set.select('wild.test')).toBe('default');
    expect(set.select('a.test')).toBe('default'); // the default listed it first
    expect(set.select('b.test')).toBe('second');
    expect(set.select(null)).toBe('default');
    expect(set.select('')).toBe('default');
  });

  it('names of a certificate: its DNS subjectAltNames; an IP-only one has none', () => {
    const certs = makeCerts();
    expect(certificateNames(certs.cert)).toEqual(['localhost', 'a.test', 'b.test']);
    expect(certificateNames(readFileSync(makeLeaf(certs, 'ip-only', ['127.0.0.3']).certPath))).toEqual([]);
    expect(() => certificateNames('not a certificate')).toThrow(/not a PEM certificate|ENOENT/);
  });
});
