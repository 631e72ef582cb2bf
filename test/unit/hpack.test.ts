/**
 * HPACK (src/codec/hpack): RFC 7541 Appendix C vectors decoded and re-encoded
 * byte for byte; the literal examples of C.2; every MUST of the decoder as a
 * case (sections listed in each title); limits against HPACK bombs; and
 * differential runs against an independent implementation (Debian's
 * python3-hpack) in both directions.
 *
 * RFC 7541 sections covered: §2.3.3 (index space, index 0, out of range),
 * §4.1/§4.4 (entry size, eviction, an entry larger than the table empties it),
 * §4.2 (size updates: only at the start of a block, within the limit, owed
 * after a lower setting), §5.1 (integer overflow), §5.2 (Huffman: EOS,
 * padding over 7 bits or not all ones), §6.1–§6.3 (every representation),
 * §7.1.3 (never-indexed literals for credentials).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HpackDecoder } from '../../src/codec/hpack/decoder.js';
import { HpackEncoder } from '../../src/codec/hpack/encoder.js';
import { HpackError } from '../../src/codec/errors.js';

interface Vector {
  hex: string;
  headers: Array<[string, string]>;
  tableSize: number;
}
const C = JSON.parse(
  readFileSync(new URL('../fixtures/hpack/rfc7541-appendix-c.json', import.meta.url), 'utf8'),
) as Record<string, Vector>;
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('a repeated block that changes nothing in the table', () => {
  // 0x82 :method GET (static), 0x04 + literal :path without indexing, 0xbe the newest dynamic entry (index 62).
  const staticOnly = hex('82 040c 2f73 616d 706c 652f 7061 7468');
  const insertA = hex('4003 782d 6101 31'); // literal with incremental indexing: x-a: 1
  const insertB = hex('4003 782d 6201 32'); // x-b: 2
  const newest = hex('be');

  it('comes back as the same list, also after the table changed', () => {
    const d = new HpackDecoder();
    const a = d.decode(staticOnly);
    expect(a.kept).toBe(true);
    expect(d.decode(Uint8Array.from(staticOnly))).toBe(a);
    d.decode(insertA);
    expect(d.decode(staticOnly)).toBe(a);
    expect(a.headers).toEqual([
      [':method', 'GET'],
      [':path', '/sample/path'],
    ]);
  });

  it('is decoded again when it inserts (RFC 7541 §6.2.1): each decode adds its entry', () => {
    const d = new HpackDecoder();
    const first = d.decode(insertA);
    expect(first.kept).toBe(false);
    expect(d.tableSize).toBe(36);
    expect(d.decode(insertA)).not.toBe(first);
    expect(d.tableSize).toBe(72);
  });

  it('refers to the entry the table holds now (§2.3.3), not the one it held when kept', () => {
    const d = new HpackDecoder();
    d.decode(insertA);
    const r = d.decode(newest);
    expect(r.headers).toEqual([['x-a', '1']]);
    expect(d.decode(newest)).toBe(r);
    d.decode(insertB);
    const now = d.decode(newest);
    expect(now.headers).toEqual([['x-b', '2']]);
    expect(d.decode(newest)).toBe(now); // kept in place of what the same bytes meant before
    // A size update changes what an index means too (§4.3: entries evicted).
    d.decode(hex('20')); // table size 0: empty
    expect(() => d.decode(newest)).toThrow(HpackError);
  });

  it("is kept when it indexes into a table of size 0, which stays empty (nginx's responses, §4.4)", () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('20 4003 782d 6101 31')).kept).toBe(false); // size 0 now: a change of the table
    const again = d.decode(insertA);
    expect([again.kept, d.tableSize]).toEqual([true, 0]);
    expect(d.decode(insertA)).toBe(again);
  });

  it('is not kept when its fields are large, though its bytes are few (a reference to a big entry)', () => {
    const d = new HpackDecoder();
    // x-big: 3,000 octets, inserted (RFC 7541 §6.2.1: 0x40, literal name, 7-bit length 3000 = 7f b9 16).
    d.decode(Uint8Array.from([...hex('4005 782d 6269 67 7fb916'), ...Buffer.alloc(3000, 'a')]));
    const first = d.decode(newest);
    expect([first.headers[0]![1].length, first.kept]).toEqual([3000, false]);
    expect(d.decode(newest)).not.toBe(first);
  });

  it('is not taken from the kept ones while a size update is owed (§4.2)', () => {
    const d = new HpackDecoder();
    d.decode(staticOnly);
    d.setMaxTableSize(0);
    expect(() => d.decode(staticOnly)).toThrow(/table size update/);
  });
});

describe('RFC 7541 Appendix C', () => {
  const groups: Array<[string, number, boolean | 'always']> = [
    ['C.3', 4096, false],
    ['C.4', 4096, 'always'],
    ['C.5', 256, false],
    ['C.6', 256, 'always'],
  ];
  for (const [g, size, huffman] of groups) {
    it(`${g}: three blocks decode to the RFC's lists and table sizes, and encode to the same bytes`, () => {
      const dec = new HpackDecoder({ maxTableSize: size });
      const enc = new HpackEncoder({ maxTableSize: size, peerTableSize: size, huffman });
      for (const k of [`${g}.1`, `${g}.2`, `${g}.3`]) {
        const v = C[k]!;
        const got = dec.decode(hex(v.hex));
        expect(got.headers, k).toEqual(v.headers);
        expect(dec.tableSize, k).toBe(v.tableSize);
        expect(toHex(enc.encode(v.headers)), k).toBe(v.hex);
        expect(enc.tableSize, k).toBe(v.tableSize);
      }
    });
  }

  it('C.2.1–C.2.4: literal with indexing, without indexing, never indexed, indexed', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')).headers).toEqual([
      ['custom-key', 'custom-header'],
    ]);
    expect(d.tableSize).toBe(55);
    const d2 = new HpackDecoder();
    expect(d2.decode(hex('040c 2f73 616d 706c 652f 7061 7468')).headers).toEqual([[':path', '/sample/path']]);
    expect(d2.tableSize).toBe(0);
    const d3 = new HpackDecoder();
    const never = d3.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'));
    expect(never).toEqual({ headers: [['password', 'secret']], neverIndexed: [0], kept: true });
    expect(d3.tableSize).toBe(0);
    expect(new HpackDecoder().decode(hex('82')).headers).toEqual([[':method', 'GET']]);
  });
});

describe('decoder MUSTs (each a COMPRESSION_ERROR)', () => {
  const bad = (name: string, block: string, o: { maxTableSize?: number } = {}): void => {
    it(name, () => {
      const e = (() => {
        try {
          new HpackDecoder(o).decode(hex(block));
          return null;
        } catch (x) {
          return x;
        }
      })();
      expect(e).toBeInstanceOf(HpackError);
      expect((e as HpackError).wireCode).toBe(0x9);
    });
  };
  bad('§6.1/§2.3.3: index 0', '80');
  bad('§2.3.3: an index past the dynamic table', 'be');
  bad('§4.2: a size update after a field', '82 3f e1 1f');
  bad('§4.2: a size update above SETTINGS_HEADER_TABLE_SIZE', '3f e2 1f', { maxTableSize: 4096 });
  bad('§5.1: an integer past 2^53', 'ff ff ff ff ff ff ff ff ff ff 01');
  // §5.1: past our octet-length limit (nghttp2's: 5 continuation octets), even for a small value padded with zeros.
  bad('§5.1: a valid size update (4096) written with 6 continuation octets', '3f e1 9f 80 80 80 00 82', {
    maxTableSize: 4096,
  });

  it('§5.1: an integer padded with zero continuation octets up to the limit (5) is read as its value', () => {
    const d = new HpackDecoder({ maxTableSize: 4096 });
    expect(d.decode(hex('3f e1 9f 80 80 00 82')).headers).toEqual([[':method', 'GET']]); // size update 31 + 4065 = 4096
  });
  bad('§5.2: Huffman padding longer than 7 bits', '00 01 61 82 ff ff');
  bad('§5.2: Huffman padding that is not all ones', '04 81 00');
  bad('§5.2: a string that runs past the block', '04 85 61 62');
  bad('a block that ends inside a representation', '7f');

  it('§4.2: after a lower setting, the next block must start with a size update within it', () => {
    const d = new HpackDecoder({ maxTableSize: 4096 });
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    d.setMaxTableSize(100);
    expect(() => d.decode(hex('82'))).toThrow(HpackError);
    const ok = new HpackDecoder({ maxTableSize: 4096 });
    ok.setMaxTableSize(100);
    expect(ok.decode(hex('3f 45 82')).headers).toEqual([[':method', 'GET']]); // update to 100, then a field
  });

  it('§4.4: an entry larger than the table empties it (not an error)', () => {
    const d = new HpackDecoder({ maxTableSize: 64 });
    d.decode(hex('4003 6162 6303 7878 78')); // abc: xxx (38 bytes)
    expect(d.tableSize).toBe(38);
    const long = Buffer.from('y'.repeat(40)).toString('hex');
    expect(d.decode(hex(`4003 6162 6328${long}`)).headers).toEqual([['abc', 'y'.repeat(40)]]);
    expect(d.tableSize).toBe(0);
  });
});

describe('limits (HPACK bombs, RFC 9113 §10.5.1)', () => {
  it('a list over maxHeaderListSize fails as tooLarge after keeping the table in sync', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder({ maxHeaderListSize: 1000 });
    const block = enc.encode(Array.from({ length: 30 }, (_, i) => [`x-h${i}`, 'v'.repeat(20)] as [string, string]));
    const e = (() => {
      try {
        dec.decode(block);
        return null;
      } catch (x) {
        return x as HpackError;
      }
    })();
    expect(e?.tooLarge).toBe(true);
    // The next block still decodes: the table saw every insertion.
    expect(dec.decode(enc.encode([['x-h29', 'v'.repeat(20)]])).headers).toEqual([['x-h29', 'v'.repeat(20)]]);
  });

  it('one indexed entry repeated 10,000 times (a 10 KB block) cannot expand past the cap', () => {
    const dec = new HpackDecoder({ maxHeaderListSize: 16 * 1024 });
    const insert = hex(`40 01 61 ${'7f'.repeat(0)}08 ${Buffer.from('b'.repeat(8)).toString('hex')}`); // a: bbbbbbbb
    const block = new Uint8Array(insert.length + 10_000);
    block.set(insert);
    block.fill(0xbe, insert.length); // index 62: the entry just inserted
    expect(() => dec.decode(block)).toThrow(/header list larger/);
  });

  it('a string literal longer than the list cap is refused before its bytes are awaited', () => {
    expect(() => new HpackDecoder({ maxHeaderListSize: 100 }).decode(hex('00 7f 90 4e'))).toThrow(HpackError);
  });
});

describe('encoder policy', () => {
  it('§7.1.3: authorization and short cookies are never indexed; long cookies are', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const r = dec.decode(
      enc.encode([
        ['authorization', 'Basic eA=='],
        ['cookie', 'a=1'],
        ['cookie', 'session=0123456789abcdef0123'],
        ['x-safe', '1'],
      ]),
    );
    expect(r.neverIndexed).toEqual([0, 1]);
    expect(enc.tableSize).toBe(dec.tableSize);
    expect(dec.tableSize).toBe('cookie'.length + 28 + 32 + 'x-safe'.length + 1 + 32);
  });

  it('a repeated block shrinks to indexes; a peer table size change is announced at the next block', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const fields: Array<[string, string]> = [
      [':method', 'GET'],
      [':path', '/a/b'],
      ['user-agent', 'originlink-test'],
      ['accept', '*/*'],
    ];
    const first = enc.encode(fields);
    const second = enc.encode(fields);
    expect(second.length).toBeLessThanOrEqual(fields.length);
    expect(dec.decode(first).headers).toEqual(fields);
    expect(dec.decode(second).headers).toEqual(fields);
    enc.setPeerMaxTableSize(0);
    const third = enc.encode(fields);
    expect(third[0]).toBe(0x20); // size update to 0
    dec.setMaxTableSize(0);
    expect(dec.decode(third).headers).toEqual(fields);
    expect(dec.tableSize).toBe(0);
  });
});

describe('encoder: a field at the same position as in the previous block', () => {
  it('is sent indexed only while its entry lives (a small table evicting), after a size change, and never when the caller marks it', () => {
    const enc = new HpackEncoder({ peerTableSize: 200, maxTableSize: 200 });
    const dec = new HpackDecoder({ maxTableSize: 200 });
    let seed = 3;
    const rnd = (k: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % k;
    for (let i = 0; i < 2000; i++) {
      // Fields that repeat at their position, and one that changes and pushes older entries out of the table.
      const fields: Array<[string, string]> = [
        [':method', 'GET'],
        ['x-stable', 'same-every-time'],
        ['x-churn', `value-${rnd(50)}-${'z'.repeat(rnd(60))}`],
        ['x-often', `v${rnd(3)}`],
      ];
      if (i === 700) {
        enc.setPeerMaxTableSize(100);
        dec.setMaxTableSize(100);
      }
      // ':method: GET' is static (always live): marked never-indexed it must leave as such, remembered or not.
      const never = i % 97 === 0;
      const block = enc.encode(fields, never ? (k) => k === 0 : undefined);
      const out = dec.decode(block);
      expect(out.headers, `block ${i}`).toEqual(fields);
      expect(out.neverIndexed).toEqual(never ? [0] : []);
      expect(enc.tableSize).toBe(dec.tableSize);
    }
  });

  it('is looked up again after a table size change renumbers the entries', () => {
    const enc = new HpackEncoder({ peerTableSize: 200, maxTableSize: 200 });
    const dec = new HpackDecoder({ maxTableSize: 200 });
    const one = (name: string, value: string): void => {
      expect(dec.decode(enc.encode([[name, value]])).headers).toEqual([[name, value]]);
    };
    one('x-f', 'a'.repeat(100)); // absolute 0
    one('x-f', 'b'.repeat(100)); // absolute 1, evicts 0
    one('x-m', 'm'); // absolute 2
    one('x-m', 'm'); // indexed: remembered at position 0 as absolute 2
    enc.setPeerMaxTableSize(150); // the live entries are inserted again as absolute 0 and 1
    dec.setMaxTableSize(150);
    one('x-q', 'q'); // a new absolute 2
    one('x-m', 'm'); // must not be sent as absolute 2
  });
});

/** Debian's python3-hpack (not the `python3` of a pyenv shim). */
const PY = '/usr/bin/python3';
const PY_CODEC = `
import sys, json, hpack
req = json.load(sys.stdin)
out = []
if req['op'] == 'decode':
    d = hpack.Decoder(); d.max_header_list_size = 1 << 20
    for b in req['blocks']:
        out.append([[n, v] for n, v in d.decode(bytes.fromhex(b), raw=False)])
else:
    e = hpack.Encoder()
    for h in req['lists']:
        out.append(e.encode([tuple(x) for x in h], huffman=True).hex())
print(json.dumps(out))
`;

function python(req: unknown): unknown {
  return JSON.parse(
    execFileSync(PY, ['-c', PY_CODEC], { input: JSON.stringify(req), encoding: 'utf8', maxBuffer: 64 << 20 }),
  );
}

function randomLists(n: number, seed: number): Array<Array<[string, string]>> {
  let s = seed;
  const rnd = (k: number): number => (s = (s * 1103515245 + 12345) >>> 0) % k;
  const names = [
    ':method',
    ':path',
    ':authority',
    ':scheme',
    'user-agent',
    'accept',
    'cookie',
    'x-request-id',
    'cache-control',
    'content-type',
    'x-custom',
  ];
  return Array.from({ length: n }, () =>
    Array.from({ length: 1 + rnd(12) }, () => {
      const name = names[rnd(names.length)]!;
      const value = rnd(3) === 0 ? randomBytes(1 + rnd(40)).toString('base64') : `v${rnd(20)}`;
      return [name, value] as [string, string];
    }),
  );
}

describe('differential against python3-hpack (independent implementation)', () => {
  it('200 blocks encoded by us decode identically there', () => {
    const lists = randomLists(200, 7);
    const enc = new HpackEncoder();
    const blocks = lists.map((l) => toHex(enc.encode(l)));
    expect(python({ op: 'decode', blocks })).toEqual(lists);
  });

  it('200 blocks encoded there decode identically here', () => {
    const lists = randomLists(200, 11);
    const blocks = python({ op: 'encode', lists }) as string[];
    const dec = new HpackDecoder();
    expect(blocks.map((b) => dec.decode(hex(b)).headers)).toEqual(lists);
  });
});
