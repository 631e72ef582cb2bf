import { describe, expect, it } from 'vitest';
import {
  appendRequestFields,
  checkFieldSection,
  contentLengthOf,
  declaredLength,
  fieldSectionSize,
} from '../../src/http/field-section.js';
import { markClean } from '../../src/http/fields.js';
import type { HeaderList } from '../../src/http/types.js';

const REQ: HeaderList = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':authority', 'a.example'],
  [':path', '/'],
];

describe('HTTP/3 field section rules (RFC 9114 §4.1.2, §4.2, §4.3)', () => {
  it('accepts well-formed requests, responses and trailers', () => {
    expect(checkFieldSection(REQ, 'request')).toBeNull();
    expect(checkFieldSection([...REQ, ['te', 'trailers'], ['x-a', ' spaced value ']], 'request')).toBeNull();
    expect(
      checkFieldSection(
        [
          [':method', 'CONNECT'],
          [':authority', 'a.example:443'],
        ],
        'request',
      ),
    ).toBeNull();
    expect(
      checkFieldSection(
        [
          [':method', 'GET'],
          [':scheme', 'https'],
          [':path', '/'],
          ['host', 'a.example'],
        ],
        'request',
      ),
    ).toBeNull();
    // The same host in both, told apart only by case or the default port: the same authority.
    expect(
      checkFieldSection(
        [
          [':method', 'GET'],
          [':scheme', 'https'],
          [':authority', 'A.example:443'],
          [':path', '/'],
          ['host', 'a.example'],
        ],
        'request',
      ),
    ).toBeNull();
    expect(
      checkFieldSection(
        [
          [':method', 'OPTIONS'],
          [':scheme', 'https'],
          [':authority', 'a'],
          [':path', '*'],
        ],
        'request',
      ),
    ).toBeNull();
    expect(
      checkFieldSection(
        [
          [':status', '200'],
          ['content-type', 'text/plain'],
        ],
        'response',
      ),
    ).toBeNull();
    expect(checkFieldSection([[':status', '103']], 'response')).toBeNull();
    expect(checkFieldSection([['x-checksum', 'abc']], 'trailers')).toBeNull();
    expect(checkFieldSection([], 'trailers')).toBeNull();
  });

  const bad: Array<[string, HeaderList, 'request' | 'response' | 'trailers']> = [
    ['upper-case name', [...REQ, ['X-A', '1']], 'request'],
    ['space in name', [...REQ, ['x a', '1']], 'request'],
    ['empty name', [...REQ, ['', '1']], 'request'],
    [
      'pseudo after regular',
      [
        [':method', 'GET'],
        ['x', '1'],
        [':scheme', 'https'],
        [':authority', 'a'],
        [':path', '/'],
      ],
      'request',
    ],
    ['duplicate pseudo', [...REQ, [':path', '/again']], 'request'],
    ['unknown pseudo', [...REQ, [':protocol', 'websocket']], 'request'],
    ['response pseudo in request', [...REQ, [':status', '200']], 'request'],
    ['missing :method', REQ.slice(1), 'request'],
    ['missing :path', REQ.filter(([k]) => k !== ':path'), 'request'],
    ['empty :path', [...REQ.filter(([k]) => k !== ':path'), [':path', '']], 'request'],
    ['no authority or host', REQ.filter(([k]) => k !== ':authority'), 'request'],
    ['empty authority', [...REQ.filter(([k]) => k !== ':authority'), [':authority', '']], 'request'],
    [
      'CONNECT with :path',
      [
        [':method', 'CONNECT'],
        [':authority', 'a'],
        [':path', '/'],
      ],
      'request',
    ],
    ['connection header', [...REQ, ['connection', 'close']], 'request'],
    ['keep-alive', [...REQ, ['keep-alive', '5']], 'request'],
    ['transfer-encoding', [...REQ, ['transfer-encoding', 'chunked']], 'request'],
    ['upgrade', [...REQ, ['upgrade', 'h2c']], 'request'],
    ['TE not trailers', [...REQ, ['te', 'gzip']], 'request'],
    ['CR in value', [...REQ, ['x', 'a\rb']], 'request'],
    ['NUL in value', [...REQ, ['x', 'a\0b']], 'request'],
    [
      'a control character in a value (RFC 9113 §8.2.1: MAY be malformed; we refuse, one rule for every protocol)',
      [...REQ, ['x', 'a\x18b']],
      'request',
    ],
    ['DEL in a value', [...REQ, ['x', 'a\x7fb']], 'request'],
    ['non-latin1 value', [...REQ, ['x', 'caf\u00e9 \u20ac']], 'request'],
    // RFC 9113 §8.3.1 / RFC 9114 §4.3.1 with RFC 9112 §3.2: what an HTTP/1.1 request line made of it would break.
    ['a :path with a space', [...REQ.filter(([k]) => k !== ':path'), [':path', '/x?y=1 z']], 'request'],
    ['a :path with a tab', [...REQ.filter(([k]) => k !== ':path'), [':path', '/a\tHTTP/1.0']], 'request'],
    ['a :path with a fragment', [...REQ.filter(([k]) => k !== ':path'), [':path', '/a#frag']], 'request'],
    [
      'an extended CONNECT :path with a space',
      [
        [':method', 'CONNECT'],
        [':protocol', 'websocket'],
        [':scheme', 'https'],
        [':authority', 'a'],
        [':path', '/a b'],
      ],
      'request',
    ],
    ['a :method that is no token (RFC 9110 §9.1)', [[':method', 'G(E)T'], ...REQ.slice(1)], 'request'],
    [
      'an :authority with userinfo',
      [...REQ.filter(([k]) => k !== ':authority'), [':authority', 'user@a.example']],
      'request',
    ],
    ['an :authority with a space', [...REQ.filter(([k]) => k !== ':authority'), [':authority', 'a b']], 'request'],
    [
      'an :authority and a Host that differ (RFC 9114 §4.3.1, RFC 9113 §8.3.1)',
      [...REQ.filter(([k]) => k !== ':authority'), [':authority', 'a.example'], ['host', 'b.example']],
      'request',
    ],
    ['missing :status', [['content-type', 'x']], 'response'],
    ['non-numeric :status', [[':status', '2xx']], 'response'],
    ['101 in HTTP/3', [[':status', '101']], 'response'],
    [
      'request pseudo in response',
      [
        [':status', '200'],
        [':path', '/'],
      ],
      'response',
    ],
    ['pseudo in trailers', [[':status', '200']], 'trailers'],
  ];
  for (const [why, h, kind] of bad) {
    it(`rejects ${why}`, () => expect(checkFieldSection(h, kind)).not.toBeNull());
  }

  it('a value with whitespace at its start or end: malformed when received over HTTP/2 (RFC 9113 §8.2.1), not over HTTP/3 (RFC 9114 has no such rule)', () => {
    for (const v of [' padded', 'padded ', '\tpadded', 'padded\t']) {
      expect(checkFieldSection([...REQ, ['x-v', v]], 'request', false, true)).toMatch(/whitespace/);
      expect(checkFieldSection([...REQ, ['x-v', v]], 'request')).toBeNull();
    }
    expect(checkFieldSection([...REQ, ['x-v', 'in side'], ['x-e', '']], 'request', false, true)).toBeNull();
  });

  it('parses content-length', () => {
    expect(contentLengthOf(REQ)).toBeNull();
    expect(contentLengthOf([['content-length', '42']])).toBe(42);
    expect(contentLengthOf([['content-length', '42, 42']])).toBe(42);
    expect(
      contentLengthOf([
        ['content-length', '42'],
        ['content-length', '42'],
      ]),
    ).toBe(42);
    expect(
      contentLengthOf([
        ['content-length', '42'],
        ['content-length', '43'],
      ]),
    ).toHaveProperty('error');
    expect(contentLengthOf([['content-length', '-1']])).toHaveProperty('error');
    expect(contentLengthOf([['content-length', '']])).toHaveProperty('error');
    expect(contentLengthOf([['content-length', '1e3']])).toHaveProperty('error');
  });

  it('declaredLength: the same rule as a number, null when absent or refused (never a guess)', () => {
    expect(declaredLength(REQ)).toBeNull();
    expect(declaredLength([['content-length', '42, 42']])).toBe(42);
    expect(
      declaredLength([
        ['content-length', '42'],
        ['content-length', '42'],
      ]),
    ).toBe(42);
    // The servers' and exchange's old readers took the first value: '42' then '43' gave 42.
    expect(
      declaredLength([
        ['content-length', '42'],
        ['content-length', '43'],
      ]),
    ).toBeNull();
    expect(declaredLength([['content-length', '05, 5']])).toBeNull();
  });

  it('sizes a section as name + value + 32 per line', () => {
    expect(
      fieldSectionSize([
        ['ab', 'cde'],
        ['x', ''],
      ]),
    ).toBe(2 + 3 + 32 + 1 + 32);
  });

  it("a request's fields after its pseudo-headers: lower-cased and checked, or, clean (our parsers'), sent as they are with only their names classed", () => {
    const user: HeaderList = [
      ['X-A', 'one'],
      ['Content-Length', '3'],
    ];
    const h1: HeaderList = [...REQ];
    expect(appendRequestFields(h1, user, 3)).toBe(h1.length); // nothing trusted
    expect(h1.slice(4)).toEqual([
      ['x-a', 'one'],
      ['content-length', '3'],
    ]);
    const h2: HeaderList = [...REQ];
    appendRequestFields(h2, [['x-a', 'one']], 5);
    expect(h2.slice(4)).toEqual([
      ['x-a', 'one'],
      ['content-length', '5'],
    ]);
    // A clean list is shared pair by pair, and its values are not scanned again.
    const pair: [string, string] = ['x-b', 'two'];
    const clean = markClean([pair]) as HeaderList;
    const h3: HeaderList = [...REQ];
    expect(appendRequestFields(h3, clean, null)).toBe(4);
    expect(h3[4]).toBe(pair);
    // What the scan would have found (a control character) passes only where the caller vouches for the values…
    const odd: HeaderList = [...REQ, ['x-c', 'a\x01b']];
    expect(checkFieldSection(odd, 'request')).toMatch(/forbidden character/);
    expect(checkFieldSection(odd, 'request', false, false, 4)).toBeNull();
    // …and the names are classed whatever it says: a connection-specific field or a TE other than trailers is refused.
    expect(checkFieldSection([...REQ, ['connection', 'close']], 'request', false, false, 4)).toMatch(
      /connection-specific/,
    );
    expect(checkFieldSection([...REQ, ['te', 'gzip']], 'request', false, false, 4)).toMatch(/TE other/);
  });
});
