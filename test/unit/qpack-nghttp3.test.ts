/**
 * Our QPACK encoder (static and dynamic table) against an independent
 * decoder: nghttp3's, via the small C peer in nghttp3-qpack-peer.c.
 * Needs gcc and the Debian package libnghttp3-dev; fails loudly without.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeaderField } from '../../src/codec/qpack/decoder.js';
import { QpackDecoder } from '../../src/codec/qpack/decoder.js';
import { QpackEncoder } from '../../src/codec/qpack/encoder.js';
import { parseQif, qifText } from '../../src/codec/qpack/interop.js';

const VECTORS = process.env['QPACK_VECTORS'] ?? fileURLToPath(new URL('../fixtures/qpack', import.meta.url));
const SRC = fileURLToPath(new URL('./nghttp3-qpack-peer.c', import.meta.url));
let dir = '';
let bin = '';
let buildError = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ol-nghttp3-'));
  bin = join(dir, 'peer');
  if (!existsSync('/usr/include/nghttp3/nghttp3.h')) {
    buildError =
      'nghttp3 headers missing: install the Debian package libnghttp3-dev (apt-get install -y --no-install-recommends libnghttp3-dev)';
    return;
  }
  const r = spawnSync('gcc', ['-O1', '-o', bin, SRC, '-lnghttp3'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) buildError = `building the nghttp3 QPACK peer failed: ${r.error?.message ?? r.stderr}`;
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  decoderStream: Uint8Array;
  sections: Array<{ streamId: number; headers: HeaderField[] }>;
}

interface EncodeReply {
  status: number;
  encoderStream: Uint8Array;
  section: Uint8Array;
}

/** Parse an encoder-mode reply from `b`; returns it and its length, or null when incomplete. */
function parseEncodeReply(b: Buffer): [EncodeReply, number] | null {
  if (b.length < 8) return null;
  const el = b.readUInt32BE(4);
  if (b.length < 8 + el + 4) return null;
  const sl = b.readUInt32BE(8 + el);
  const end = 8 + el + 4 + sl;
  if (b.length < end) return null;
  return [
    {
      status: b.readUInt32BE(0),
      encoderStream: Uint8Array.from(b.subarray(8, 8 + el)),
      section: Uint8Array.from(b.subarray(12 + el, end)),
    },
    end,
  ];
}

/** One nghttp3 QPACK peer in a child process; `send` returns its reply to one record. */
class Peer<R = Reply> {
  readonly #p: ChildProcessWithoutNullStreams;
  readonly #parseReply: ((b: Buffer) => [R, number] | null) | null;
  #buf = Buffer.alloc(0);
  #waiting: Array<(r: R) => void> = [];
  #stderr = '';

  constructor(args: string[], parse: ((b: Buffer) => [R, number] | null) | null = null) {
    this.#parseReply = parse;
    this.#p = spawn(bin, args);
    this.#p.stdout.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#drain();
    });
    this.#p.stderr.on('data', (d: Buffer) => (this.#stderr += d.toString()));
  }

  send(streamId: number, payload: Uint8Array): Promise<R> {
    const hdr = Buffer.alloc(12);
    hdr.writeBigUInt64BE(BigInt(streamId), 0);
    hdr.writeUInt32BE(payload.length, 8);
    this.#p.stdin.write(Buffer.concat([hdr, payload]));
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`nghttp3 peer did not answer (stderr: ${this.#stderr})`)), 10_000);
      this.#waiting.push((r) => {
        clearTimeout(t);
        res(r);
      });
    });
  }

  close(): void {
    this.#p.stdin.end();
    this.#p.kill();
  }

  #drain(): void {
    for (;;) {
      let r: R | null;
      if (this.#parseReply) {
        const got = this.#parseReply(this.#buf);
        if (!got) return;
        this.#buf = this.#buf.subarray(got[1]);
        r = got[0];
      } else r = this.#parse() as R | null;
      if (!r) return;
      this.#waiting.shift()?.(r);
    }
  }

  /** Parse one complete reply from the buffer, or null. */
  #parse(): Reply | null {
    const b = this.#buf;
    let o = 0;
    const need = (n: number): boolean => o + n <= b.length;
    if (!need(8)) return null;
    const status = b.readUInt32BE(o);
    const dlen = b.readUInt32BE(o + 4);
    o += 8;
    if (!need(dlen + 4)) return null;
    const decoderStream = Uint8Array.from(b.subarray(o, o + dlen));
    o += dlen;
    const n = b.readUInt32BE(o);
    o += 4;
    const sections: Reply['sections'] = [];
    for (let i = 0; i < n; i++) {
      if (!need(12)) return null;
      const streamId = Number(b.readBigUInt64BE(o));
      const count = b.readUInt32BE(o + 8);
      o += 12;
      const headers: HeaderField[] = [];
      for (let j = 0; j < count; j++) {
        if (!need(4)) return null;
        const nl = b.readUInt32BE(o);
        if (!need(4 + nl + 4)) return null;
        const name = b.subarray(o + 4, o + 4 + nl).toString('latin1');
        o += 4 + nl;
        const vl = b.readUInt32BE(o);
        if (!need(4 + vl)) return null;
        const value = b.subarray(o + 4, o + 4 + vl).toString('latin1');
        o += 4 + vl;
        headers.push([name, value]);
      }
      sections.push({ streamId, headers });
    }
    this.#buf = b.subarray(o);
    return { status, decoderStream, sections };
  }
}

function qif(name: string): HeaderField[][] {
  const p = join(VECTORS, 'qifs', name);
  expect(existsSync(p), `QIF ${p} not found; set QPACK_VECTORS`).toBe(true);
  return parseQif(qifText(readFileSync(p)));
}

async function encodeAll(
  lists: HeaderField[][],
  capacity: number,
  ourMax: number,
  ackEvery: number,
): Promise<{ bytes: number }> {
  expect(buildError, buildError).toBe('');
  const peer = new Peer([String(capacity), '0']);
  const enc = new QpackEncoder({ maxTableCapacity: ourMax });
  enc.setPeerSettings(capacity);
  let bytes = 0;
  let feedback: Uint8Array[] = [];
  try {
    for (let i = 0; i < lists.length; i++) {
      const sid = 4 * (i + 1);
      const block = enc.encode(lists[i]!, sid);
      bytes += block.length;
      const ins = enc.takeEncoderStreamBytes();
      // The section goes first: it must never depend on the inserts that follow it.
      const r1 = await peer.send(sid, block);
      expect(r1.status, `nghttp3 rejected section ${i}`).toBe(0);
      expect(r1.sections, `section ${i} decoded without blocking`).toEqual([{ streamId: sid, headers: lists[i] }]);
      feedback.push(r1.decoderStream);
      if (ins) {
        bytes += ins.length;
        const r2 = await peer.send(0, ins);
        expect(r2.status, `nghttp3 rejected encoder stream after section ${i}`).toBe(0);
        expect(r2.sections).toEqual([]);
        feedback.push(r2.decoderStream);
      }
      if ((i + 1) % ackEvery === 0) {
        for (const f of feedback) if (f.length > 0) enc.feedDecoderStream(f);
        feedback = [];
      }
    }
  } finally {
    peer.close();
  }
  return { bytes };
}

describe('QPACK: our encoder, nghttp3 decoder', () => {
  it('the nghttp3 peer builds', () => {
    expect(buildError, buildError).toBe('');
  });

  it('decodes every QIF list (static only)', async () => {
    for (const f of readdirSync(join(VECTORS, 'qifs')).filter((x) => x.endsWith('.qif'))) {
      await encodeAll(qif(f), 0, 0, 1);
    }
  });

  it('decodes netbsd and fb-resp with our dynamic table at several capacities and ack delays', async () => {
    for (const name of ['netbsd.qif', 'fb-resp.qif']) {
      const lists = qif(name).slice(0, 150);
      for (const [capacity, ackEvery] of [
        [256, 1],
        [4096, 1],
        [4096, 5],
        [1024, 2],
      ] as const) {
        await encodeAll(lists, capacity, capacity, ackEvery);
      }
    }
  });

  it('the dynamic table saves bytes with nghttp3 as the decoder too', async () => {
    const lists = qif('fb-req.qif').slice(0, 150);
    const stat = await encodeAll(lists, 4096, 0, 1);
    const dyn = await encodeAll(lists, 4096, 4096, 1);
    expect(dyn.bytes).toBeLessThan(stat.bytes * 0.8);
  });
});

function headerListPayload(l: HeaderField[]): Uint8Array {
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(l.length);
  for (const [n, v] of l) {
    for (const x of [n, v]) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(x.length);
      parts.push(len, Buffer.from(x, 'latin1'));
    }
  }
  return Buffer.concat(parts);
}

describe('QPACK: nghttp3 encoder, our decoder (live feedback)', () => {
  it('decodes everything nghttp3 encodes, with blocking, and nghttp3 accepts our decoder stream', async () => {
    expect(buildError, buildError).toBe('');
    for (const [capacity, blocked, delay] of [
      [4096, 16, 3],
      [256, 4, 1],
      [4096, 0, 0],
    ] as const) {
      const lists = qif('fb-req.qif').slice(0, 200);
      const peer = new Peer<EncodeReply>(['encode', String(capacity), String(blocked)], parseEncodeReply);
      const dec = new QpackDecoder({ maxTableCapacity: capacity, maxBlockedStreams: blocked });
      const decoded = new Map<number, HeaderField[]>();
      // Encoder stream bytes are held back `delay` sections, so sections arrive before their inserts.
      const held: Uint8Array[] = [];
      let blockedSeen = 0;
      const feedback = async (): Promise<void> => {
        const fb = dec.takeDecoderStreamBytes();
        if (fb) expect((await peer.send(0, fb)).status, 'nghttp3 rejected our decoder stream').toBe(0);
      };
      try {
        for (let i = 0; i < lists.length; i++) {
          const sid = 4 * (i + 1);
          const r = await peer.send(sid, headerListPayload(lists[i]!));
          expect(r.status).toBe(0);
          if (r.encoderStream.length > 0) held.push(r.encoderStream);
          const out = dec.decodeSection(sid, r.section);
          if (out.status === 'done') decoded.set(sid, out.headers);
          else blockedSeen++;
          while (held.length > delay)
            for (const u of dec.feedEncoderStream(held.shift()!)) decoded.set(u.streamId, u.headers);
          await feedback();
        }
        while (held.length > 0)
          for (const u of dec.feedEncoderStream(held.shift()!)) decoded.set(u.streamId, u.headers);
        await feedback();
      } finally {
        peer.close();
      }
      expect(dec.blockedStreamCount).toBe(0);
      lists.forEach((l, i) => expect(decoded.get(4 * (i + 1)), `list ${i} (cap ${capacity})`).toEqual(l));
      if (blocked > 0 && delay > 0) expect(blockedSeen).toBeGreaterThan(0);
    }
  });
});
