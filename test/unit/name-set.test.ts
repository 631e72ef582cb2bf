import { describe, expect, it } from 'vitest';
import { NameSet } from '../../src/util/name-set.js';

describe('NameSet', () => {
  // 'host' twice: a name given again is still in it.
  const given = ['te', 'host', 'upgrade', 'trailer', 'connection', 'keep-alive', 'host'];
  const set = new NameSet(given);

  it('answers as a Set of the same names would, for names cut fresh from bytes', () => {
    const asked = [
      'te',
      'tf',
      'host',
      'hosT',
      'upgrade',
      'trailer',
      'trailers',
      'connection',
      'keep-alive',
      'keep_alive',
    ];
    const bytes = Buffer.from(asked.join('\n'), 'latin1');
    const reference = new Set(given);
    let at = 0;
    for (const name of asked) {
      const fresh = bytes.toString('latin1', at, at + name.length); // a string of its own, not the literal
      at += name.length + 1;
      expect(set.has(fresh)).toBe(reference.has(name));
    }
  });

  it('a length no name has, the empty name and one longer than every name are not in it', () => {
    expect(set.has('')).toBe(false);
    expect(set.has('abc')).toBe(false);
    expect(set.has('x'.repeat(200))).toBe(false);
  });
});
