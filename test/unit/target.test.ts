/** The request path as the service routes it and sends it on (src/http/target.ts, RFC 3986 §6.2.2, §5.2.4). */
import { describe, expect, it } from 'vitest';
import { normalizeTarget, routingPath } from '../../src/http/target.js';

describe('normalizeTarget', () => {
  it.each([
    ['/index.html', '/index.html'],
    ['/api/v1/users/42?x=1', '/api/v1/users/42?x=1'],
    ['/public/../internal/', '/internal/'],
    ['/public/%2e%2e/internal/', '/internal/'],
    ['/public/%2E%2E/internal', '/internal'],
    ['/public//../internal/', '/internal/'], // slashes merged first (nginx), then the dot segment
    ['//admin', '/admin'],
    ['/./admin', '/admin'],
    ['/x/../admin', '/admin'],
    ['/%61dmin', '/admin'], // an unreserved character, encoded
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/a//', '/a/'],
    ['/', '/'],
    ['/a%2fb', '/a%2Fb'], // not unreserved: kept encoded, hex upper-cased
    ['/a%5c..%5cb', '/a%5C..%5Cb'], // %5C kept: one segment for us
    ['/admin;x', '/admin;x'], // `;` parameters are the origin's
    ['/ADMIN', '/ADMIN'], // paths are case-sensitive
    ['/p?q=/../x&r=%2e', '/p?q=/../x&r=%2e'], // the query is left alone
    ['/a/./b/../c?x', '/a/c?x'],
  ])('%s → %s', (input, want) => {
    expect(normalizeTarget(input)).toBe(want);
  });

  it('a `..` above the root is refused (null: a 400)', () => {
    for (const t of ['/..', '/../x', '/a/../../x', '/%2e%2e/etc/passwd']) expect(normalizeTarget(t), t).toBeNull();
  });

  it('a path with nothing to change comes back as the same string (no copy on the hot path)', () => {
    const t = '/static/app.js?v=3';
    expect(normalizeTarget(t)).toBe(t);
  });

  it('routingPath decodes every escape but ? and # before resolving: an encoded slash cannot hide a dot segment', () => {
    expect(routingPath('/public/..%2Finternal/x')).toBe('/internal/x');
    expect(routingPath('/public/..%2finternal')).toBe('/internal');
    expect(routingPath('/a%3Fb?c')).toBe('/a%3Fb?c');
    expect(routingPath('/a%23b')).toBe('/a%23b');
    expect(routingPath('/%2e%2e%2f')).toBeNull();
    expect(routingPath('/x')).toBe('/x');
  });
});
