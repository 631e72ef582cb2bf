/** RFC 9218 §4 priority field values: urgency, incremental, and what must be ignored. */
import { describe, expect, it } from 'vitest';
import { parsePriority } from '../../src/h3/priority.js';

describe('parsePriority', () => {
  const cases: Array<[string | null, number, boolean]> = [
    [null, 3, false],
    ['', 3, false],
    ['u=0', 0, false],
    ['u=7, i', 7, true],
    ['i, u=5', 5, true],
    ['u=1, i=?0', 1, false],
    ['u=2, i=?1', 2, true],
    ['u=8', 3, false], // out of range: ignored (§4.1)
    ['u=-1', 3, false],
    ['u=1.5', 3, false], // not an Integer
    ['u="1"', 3, false],
    ['i=1', 3, false], // not a Boolean
    ['u=4;x=1, foo=bar, i', 4, true], // parameters and unknown members ignored
    ['u=1, u=6', 6, false], // RFC 8941 §3.2: the last instance of a key wins
    ['  u=0 ,i  ', 0, true],
  ];
  for (const [v, u, i] of cases) {
    it(`${JSON.stringify(v)} → u=${u} i=${i}`, () => {
      expect(parsePriority(v)).toEqual({ urgency: u, incremental: i });
    });
  }
});
