/**
 * Our encoder with the dynamic table against our decoder: every QIF list
 * round-trips under several capacities and feedback timings, the encoder
 * never makes the decoder block, and the table actually saves bytes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { QpackError, QpackErrorCode } from '../../src/codec/errors.js';
import { QpackDecoder, type HeaderField } from '../../src/codec/qpack/decoder.js';
import { QpackEncoder, type QpackEncoderOptions } from '../../src/codec/qpack/encoder.js';
import { parseQif, qifText } from '../../src/codec/qpack/interop.js';

const VECTORS = process.env['QPACK_VECTORS'] ?? fileURLToPath(new URL('../fixtures/qpack', import.meta.url));

function qifs(): Array<[string, HeaderField[][]]> {
  const dir = join(VECTORS, 'qifs');
  expect(existsSync(dir), `QIF files not found at ${dir}; set QPACK_VECTORS`).toBe(true);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.qif'))
    .map((f) => [f, parseQif(qifText(readFileSync(join(dir, f))))]);
}

function bytewise(feed: (b: Uint8Array) => void, bytes: Uint8Array | null, byteByByte: boolean): void {
  if (!bytes) return;
  if (!byteByByte) feed(bytes);
  else for (let i = 0; i < bytes.length; i++) feed(bytes.subarray(i, i + 1));
}

interface RunOpts {
  capacity: number;
  ourMax?: number;
  /** Deliver decoder feedback only every N sections (delayed acknowledgments). */
  ackEvery: number;
  byteByByte: boolean;
}

/** Encode every list, decode it, return total encoded section bytes. */
function roundTrip(lists: HeaderField[][], o: RunOpts): { sectionBytes: number; encoderBytes: number } {
  const enc = new QpackEncoder({ maxTableCapacity: o.ourMax ?? o.capacity });
  const dec = new QpackDecoder({ maxTableCapacity: o.capacity, maxBlockedStreams: 0 });
  enc.setPeerSettings(o.capacity);
  let sectionBytes = 0;
  let encoderBytes = 0;
  let pendingFeedback: Uint8Array[] = [];
  lists.forEach((l, i) => {
    const streamId = i * 4;
    const block = enc.encode(l, streamId);
    sectionBytes += block.length;
    const ins = enc.takeEncoderStreamBytes();
    encoderBytes += ins?.length ?? 0;
    // Section first, then inserts: it must not depend on them (never blocks).
    const r = dec.decodeSection(streamId, block);
    expect(r.status, `list ${i}`).toBe('done');
    if (r.status === 'done') expect(r.headers).toEqual(l);
    bytewise((b) => expect(dec.feedEncoderStream(b)).toEqual([]), ins, o.byteByByte);
    const fb = dec.takeDecoderStreamBytes();
    if (fb) pendingFeedback.push(fb);
    if ((i + 1) % o.ackEvery === 0) {
      for (const f of pendingFeedback) bytewise((b) => enc.feedDecoderStream(b), f, o.byteByByte);
      pendingFeedback = [];
    }
  });
  expect(dec.blockedStreamCount).toBe(0);
  return { sectionBytes, encoderBytes };
}

describe('QPACK encoder with the dynamic table', () => {
  it('round-trips every QIF list for several capacities and feedback delays', () => {
    for (const [name, lists] of qifs()) {
      for (const capacity of [0, 256, 4096]) {
        for (const ackEvery of [1, 7]) {
          const r = roundTrip(lists, { capacity, ackEvery, byteByByte: false });
          expect(r.sectionBytes, `${name} ${capacity}`).toBeGreaterThan(0);
        }
      }
    }
  });

  it('round-trips with encoder and decoder streams fed one byte at a time', () => {
    const [, lists] = qifs().find(([n]) => n === 'netbsd.qif')!;
    roundTrip(lists, { capacity: 512, ackEvery: 3, byteByByte: true });
  });

  it('saves bytes compared with static-only encoding', () => {
    const [, lists] = qifs().find(([n]) => n === 'fb-req.qif')!;
    const stat = roundTrip(lists, { capacity: 4096, ourMax: 0, ackEvery: 1, byteByByte: false });
    const dyn = roundTrip(lists, { capacity: 4096, ackEvery: 1, byteByByte: false });
    expect(stat.encoderBytes).toBe(0);
    expect(dyn.sectionBytes + dyn.encoderBytes).toBeLessThan(stat.sectionBytes * 0.8);
  });

  it('stays static until SETTINGS allow a table, and respects our own cap', () => {
    const enc = new QpackEncoder({ maxTableCapacity: 1000 });
    const l: HeaderField[] = [['x-custom', 'v']];
    expect(enc.encode(l, 0)[0]).toBe(0);
    expect(enc.takeEncoderStreamBytes()).toBeNull();
    enc.setPeerSettings(4096);
    expect(enc.tableCapacity).toBe(1000);
    // Set Dynamic Table Capacity 1000: 001 11111 + 969 -> 3f c9 07.
    expect(Buffer.from(enc.takeEncoderStreamBytes()!).toString('hex')).toBe('3fc907');
    const none = new QpackEncoder();
    none.setPeerSettings(0);
    expect(none.tableCapacity).toBe(0);
  });

  it('a cancelled stream releases its references; bad feedback is QPACK_DECODER_STREAM_ERROR', () => {
    const enc = new QpackEncoder({ insertOnSecondUse: false, minReferenceSaving: 0 });
    const dec = new QpackDecoder({ maxTableCapacity: 4096, maxBlockedStreams: 0 });
    enc.setPeerSettings(4096);
    const l: HeaderField[] = [
      ['x-a', '1'],
      ['x-b', '2'],
    ];
    dec.decodeSection(0, enc.encode(l, 0));
    dec.feedEncoderStream(enc.takeEncoderStreamBytes()!);
    enc.feedDecoderStream(dec.takeDecoderStreamBytes()!); // Insert Count Increment 2
    expect(enc.knownReceivedCount).toBe(2);
    const block = enc.encode(l, 4); // now references both entries
    expect(block[0]).not.toBe(0);
    enc.feedDecoderStream(Uint8Array.of(0x44)); // Stream Cancellation 4
    const code = (fn: () => void): number | null => {
      try {
        fn();
        return null;
      } catch (e) {
        expect(e).toBeInstanceOf(QpackError);
        return (e as QpackError).wireCode;
      }
    };
    expect(code(() => enc.feedDecoderStream(Uint8Array.of(0x84)))).toBe(QpackErrorCode.DECODER_STREAM_ERROR);
    expect(code(() => new QpackEncoder().feedDecoderStream(Uint8Array.of(0x01)))).toBe(
      QpackErrorCode.DECODER_STREAM_ERROR,
    );
    expect(code(() => enc.feedDecoderStream(Uint8Array.of(0x00)))).toBe(QpackErrorCode.DECODER_STREAM_ERROR);
  });

  it('never evicts an entry still referenced by an unacknowledged section', () => {
    // Capacity fits four 43-octet entries; references held by stream 4 must survive later inserts.
    const enc = new QpackEncoder({ maxTableCapacity: 200, insertOnSecondUse: false, minReferenceSaving: 0 });
    const dec = new QpackDecoder({ maxTableCapacity: 200, maxBlockedStreams: 0 });
    enc.setPeerSettings(200);
    dec.feedEncoderStream(enc.takeEncoderStreamBytes()!);
    const a: HeaderField[] = [['x-a', 'aaaaaaaa']];
    dec.decodeSection(0, enc.encode(a, 0));
    dec.feedEncoderStream(enc.takeEncoderStreamBytes()!);
    enc.feedDecoderStream(dec.takeDecoderStreamBytes()!);
    const held = enc.encode(a, 4); // references x-a, unacknowledged
    expect(held[0]).not.toBe(0);
    for (let i = 0; i < 10; i++) {
      const l: HeaderField[] = [[`x-${i}`, 'bbbbbbbb']];
      const r = dec.decodeSection(8 + 4 * i, enc.encode(l, 8 + 4 * i));
      expect(r.status).toBe('done');
      const ins = enc.takeEncoderStreamBytes();
      if (ins) dec.feedEncoderStream(ins);
      const fb = dec.takeDecoderStreamBytes();
      if (fb) enc.feedDecoderStream(fb);
    }
    // The held section still decodes: its entry was not evicted.
    expect(dec.table.has(0)).toBe(true);
    expect(dec.decodeSection(4, held)).toMatchObject({ status: 'done', headers: a });
    // Once acknowledged, the pin is released and x-a can be evicted by new inserts.
    enc.feedDecoderStream(dec.takeDecoderStreamBytes()!);
    for (let i = 10; i < 20; i++) {
      const r = dec.decodeSection(100 + 4 * i, enc.encode([[`x-${i}`, 'cccccccc']], 100 + 4 * i));
      expect(r.status).toBe('done');
      const ins = enc.takeEncoderStreamBytes();
      if (ins) dec.feedEncoderStream(ins);
      const fb = dec.takeDecoderStreamBytes();
      if (fb) enc.feedDecoderStream(fb);
    }
    expect(dec.table.has(0)).toBe(false);
  });
});

describe('encoder: a field used in every section does not pin the oldest slot (RFC 9204 §2.1.1.1)', () => {
  it('100 sections, each with the same :authority and a fresh token, in a 256-byte table: the encoder keeps inserting and every section decodes', () => {
    const enc = new QpackEncoder({ maxTableCapacity: 256, insertOnSecondUse: false, minReferenceSaving: 0 });
    const dec = new QpackDecoder({ maxTableCapacity: 256, maxBlockedStreams: 16 });
    enc.setPeerSettings(256);
    for (let i = 0; i < 100; i++) {
      const fields: Array<[string, string]> = [
        [':authority', 'origin.example'],
        ['x-token', `t-${i}`],
      ];
      const block = enc.encode(fields, i * 4);
      const es = enc.takeEncoderStreamBytes();
      if (es) dec.feedEncoderStream(es);
      const r = dec.decodeSection(i * 4, block);
      expect(r.status).toBe('done');
      expect(r.status === 'done' ? r.headers : null).toEqual(fields);
      const ds = dec.takeDecoderStreamBytes();
      if (ds) enc.feedDecoderStream(ds);
    }
    // Before the draining rule: the :authority entry, referenced by every section, stayed the oldest and
    // could never be evicted, so inserts stopped after 5 (the table full) and every later token went literal.
    expect(enc.insertCount).toBeGreaterThan(100);
  });
});

/**
 * An encoder and a decoder that hear each other at once (4096-byte tables): `send` one section, checked to decode to
 * its fields; its block and the Section Acknowledgments it drew (1xxxxxxx, RFC 9204 §4.4.1; an Insert Count
 * Increment is 00xxxxxx).
 */
function linked(opts: QpackEncoderOptions = {}) {
  const enc = new QpackEncoder({ maxTableCapacity: 4096, ...opts });
  const dec = new QpackDecoder({ maxTableCapacity: 4096, maxBlockedStreams: 16 });
  enc.setPeerSettings(4096);
  const send = (id: number, fields: Array<[string, string]>): { block: Uint8Array; acks: number } => {
    const block = enc.encode(fields, id);
    const es = enc.takeEncoderStreamBytes();
    if (es) dec.feedEncoderStream(es);
    const r = dec.decodeSection(id, block);
    expect(r.status === 'done' ? r.headers : null).toEqual(fields);
    const ds = dec.takeDecoderStreamBytes();
    if (ds) enc.feedDecoderStream(ds);
    return { block, acks: ds ? [...ds].filter((b) => (b & 0x80) !== 0).length : 0 };
  };
  return { enc, send };
}

describe('encoder: a field is inserted the second time it is sent', () => {
  it('a value that never repeats (a trace id) is never inserted; one that repeats is, on its second use, and referenced from its third', () => {
    const { enc, send: sent } = linked();
    const send = (id: number, fields: Array<[string, string]>): Uint8Array => sent(id, fields).block;
    for (let i = 0; i < 50; i++)
      send(i * 4, [['traceparent', `00-${i.toString(16).padStart(32, '0')}-00f067aa0ba902b7-01`]]);
    expect(enc.insertCount).toBe(0);
    const ua: Array<[string, string]> = [['user-agent', 'bench/1.0 (a client that says the same thing every time)']];
    const first = send(400, ua);
    expect(enc.insertCount).toBe(0);
    send(404, ua);
    expect(enc.insertCount).toBe(1);
    const third = send(408, ua);
    expect(third.length).toBeLessThan(first.length / 4); // a one-byte reference instead of the literal
  });
});

describe('encoder: a peer that never acknowledges sections', () => {
  it("past 1024 streams with unacknowledged sections, new sections refer to no entry (each was kept for the connection's life, 0.5 KB a request)", () => {
    const enc = new QpackEncoder({ maxTableCapacity: 4096, insertOnSecondUse: false, minReferenceSaving: 0 });
    const dec = new QpackDecoder({ maxTableCapacity: 4096, maxBlockedStreams: 16 });
    enc.setPeerSettings(4096);
    const fields: HeaderField[] = [
      [':authority', 'origin.example'],
      ['x-app', 'shop'],
    ];
    let dynamicSections = 0;
    let known = 0;
    for (let i = 0; i < 1500; i++) {
      const block = enc.encode(fields, i * 4);
      const es = enc.takeEncoderStreamBytes();
      if (es) dec.feedEncoderStream(es);
      expect(dec.decodeSection(i * 4, block)).toMatchObject({ status: 'done', headers: fields });
      if (block[0] !== 0) dynamicSections++; // Required Insert Count 0: a section that refers to no entry
      // The peer's decoder stream: Insert Count Increments (RFC 9204 §4.4.3, 00xxxxxx) for our inserts, and never
      // a Section Acknowledgment.
      dec.takeDecoderStreamBytes();
      if (enc.insertCount > known) {
        enc.feedDecoderStream(new Uint8Array([enc.insertCount - known]));
        known = enc.insertCount;
      }
    }
    expect(dynamicSections).toBeGreaterThan(0);
    expect(dynamicSections).toBeLessThanOrEqual(1024);
  });
});

describe('encoder: a section refers to the table only when that saves enough (minReferenceSaving)', () => {
  const run = (fields: Array<[string, string]>, opts: { minReferenceSaving?: number } = {}) => {
    const { send } = linked({ insertOnSecondUse: false, ...opts });
    return [0, 4, 8].map((id) => send(id, fields));
  };

  it('a short :authority alone stays a literal: no section owes an acknowledgment', () => {
    const out = run([
      [':method', 'GET'],
      [':authority', 'origin.example:8443'],
      [':path', '/x'],
    ]);
    // Inserted on first use (insertOnSecondUse off), yet never referred to: the Required Insert Count stays 0.
    for (const o of out) {
      expect(o.block[0]).toBe(0);
      expect(o.acks).toBe(0);
    }
  });

  it('the same fields with minReferenceSaving 0 refer to the entry from the second section, each acknowledged', () => {
    const out = run(
      [
        [':method', 'GET'],
        [':authority', 'origin.example:8443'],
        [':path', '/x'],
      ],
      { minReferenceSaving: 0 },
    );
    expect(out[1]!.block[0]).not.toBe(0);
    expect(out[1]!.acks).toBe(1);
    expect(out[1]!.block.length).toBeLessThan(out[0]!.block.length);
  });

  it('a section whose repeated fields save more (a long user-agent) refers to the table as before', () => {
    const out = run([
      [':authority', 'origin.example:8443'],
      ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) a browser that says the same thing every time'],
    ]);
    expect(out[1]!.block[0]).not.toBe(0);
    expect(out[1]!.acks).toBe(1);
    expect(out[2]!.block.length).toBeLessThan(out[0]!.block.length / 4);
  });
});
