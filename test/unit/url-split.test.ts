/**
 * agent/url.ts: the Agent's split of a URL string into origin and request
 * target must give what the WHATWG parser (`new URL()`) gives, whenever it
 * answers at all.
 */
import { describe, expect, it } from 'vitest';
import { splitSimpleUrl } from '../../src/agent/url.js';

/** What the Agent used before: the full parse. */
function parsed(s: string): { origin: string; target: string } {
  const u = new URL(s);
  return { origin: u.origin, target: `${u.pathname}${u.search}` };
}

function agrees(s: string): void {
  const fast = splitSimpleUrl(s);
  if (fast === null) return;
  expect({ origin: new URL(fast.origin).origin, target: fast.target }, s).toEqual(parsed(s));
}

describe('splitSimpleUrl', () => {
  it('takes plain URLs as they are', () => {
    expect(splitSimpleUrl('https://127.0.0.1:4433/s')).toEqual({ origin: 'https://127.0.0.1:4433', target: '/s' });
    expect(splitSimpleUrl('http://example.com/a/b?x=1&y=%20z')).toEqual({
      origin: 'http://example.com',
      target: '/a/b?x=1&y=%20z',
    });
    expect(splitSimpleUrl('https://[::1]:8443/')).toEqual({ origin: 'https://[::1]:8443', target: '/' });
    for (const s of [
      'https://127.0.0.1:4433/s',
      'http://example.com/a/b?x=1&y=%20z',
      'https://[::1]:8443/',
      'https://EXAMPLE.com:443/p',
      'http://h/a:b@c;d=e,f*g+h',
    ])
      agrees(s);
  });

  it('leaves to the full parse whatever the parser would rewrite', () => {
    for (const s of [
      'https://h/a b', // space: percent-encoded
      'https://h/a"b',
      'https://h/<x>',
      'https://h/{x}',
      'https://h/a`b',
      "https://h/p?q='", // ' in a special scheme's query
      'https://h/a\\b', // backslash: a slash
      'https://h/a/./b',
      'https://h/a/../b',
      'https://h/a/%2e%2E/b',
      'https://h/.well-known/x', // dot segments (and the conservative .well-known)
      'https://h/p#frag',
      'https://h/p?', // fragment, empty query
      'https://user:pw@h/p', // user info
      'https://h', // no path: the parser adds "/"
      'https://h/é', // non-ASCII
      'HTTPS://h/p',
      'ftp://h/p',
      'https://h%41/p',
    ])
      expect(splitSimpleUrl(s), s).toBeNull();
  });

  it('agrees with new URL() on 20,000 random URLs of tricky characters', () => {
    const alphabet = [
      'a',
      'Z',
      '0',
      '/',
      '.',
      '%',
      '2',
      'e',
      'E',
      '?',
      '#',
      '&',
      '=',
      "'",
      '"',
      ' ',
      '\\',
      '@',
      ':',
      '[',
      ']',
      '~',
      '-',
      '_',
      '!',
      '$',
      '(',
      ')',
      '*',
      '+',
      ',',
      ';',
      '`',
      '{',
      '}',
      '<',
      '>',
      '^',
      '|',
      'é',
      '\t',
    ];
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let fast = 0;
    for (let i = 0; i < 20_000; i++) {
      let tail = '/';
      const len = 1 + rnd(12);
      for (let j = 0; j < len; j++) tail += alphabet[rnd(alphabet.length)];
      const s = `${rnd(2) ? 'https' : 'http'}://host${rnd(3) ? `:${1000 + rnd(9000)}` : ''}${tail}`;
      let valid = true;
      try {
        new URL(s);
      } catch {
        valid = false;
      }
      if (!valid) {
        expect(splitSimpleUrl(s), s).toBeNull();
        continue;
      }
      if (splitSimpleUrl(s)) fast++;
      agrees(s);
    }
    // The property is not empty: a fair share took the fast path.
    expect(fast).toBeGreaterThan(1000);
  });
});
