import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_AGE_S, findH3, parseAltSvc } from '../../src/probe/alt-svc.js';

describe('Alt-Svc parser (RFC 7838 §3)', () => {
  it('parses the examples of RFC 7838 §3', () => {
    expect(parseAltSvc('h2=":8000"')).toEqual({
      type: 'alternatives',
      alternatives: [{ protocol: 'h2', host: '', port: 8000, maxAge: DEFAULT_MAX_AGE_S, persist: false }],
    });
    expect(parseAltSvc('h2="new.example.org:80"')).toEqual({
      type: 'alternatives',
      alternatives: [{ protocol: 'h2', host: 'new.example.org', port: 80, maxAge: 86400, persist: false }],
    });
    const r = parseAltSvc('h2="alt.example.com:8000", h2=":443"');
    expect(r.type === 'alternatives' && r.alternatives.map((a) => [a.host, a.port])).toEqual([
      ['alt.example.com', 8000],
      ['', 443],
    ]);
    expect(parseAltSvc('h2=":443"; ma=3600')).toMatchObject({ alternatives: [{ maxAge: 3600 }] });
    expect(parseAltSvc('h2=":443"; ma=2592000; persist=1')).toMatchObject({
      alternatives: [{ maxAge: 2592000, persist: true }],
    });
  });

  it('clear', () => {
    expect(parseAltSvc('clear')).toEqual({ type: 'clear' });
    expect(parseAltSvc(' clear ')).toEqual({ type: 'clear' });
    expect(findH3(parseAltSvc('clear'))).toBeNull();
  });

  it("Caddy's form and findH3", () => {
    const r = parseAltSvc('h3=":8443"; ma=2592000,h3-29=":8443"; ma=2592000');
    expect(findH3(r)).toEqual({ protocol: 'h3', host: '', port: 8443, maxAge: 2592000, persist: false });
  });

  it('percent-decodes protocol ids and handles IPv6 and quoted params', () => {
    const r = parseAltSvc('w%3D%3D=":443", h3="[::1]:4433"; ma="60"; foo=bar');
    expect(r).toEqual({
      type: 'alternatives',
      alternatives: [
        { protocol: 'w==', host: '', port: 443, maxAge: 86400, persist: false },
        { protocol: 'h3', host: '::1', port: 4433, maxAge: 60, persist: false },
      ],
    });
  });

  it('joins several field lines', () => {
    const r = parseAltSvc(['h2=":1"', 'h3=":2"; ma=5']);
    expect(r.type === 'alternatives' && r.alternatives.length).toBe(2);
    expect(findH3(r)?.port).toBe(2);
  });

  it('skips malformed members without throwing', () => {
    for (const bad of [
      'h3=:443',
      'h3="443"',
      'h3=":0"',
      'h3=":99999"',
      '=":443"',
      'h 3=":443"',
      'h3=":443',
      'h3="\\"',
      '',
      ';;',
      'h3=":44a"',
    ]) {
      const r = parseAltSvc(bad);
      expect(r.type === 'alternatives' ? r.alternatives : []).toEqual([]);
    }
    const r = parseAltSvc('junk, h3=":443"; ma=bad, h2=":1"');
    expect(r.type === 'alternatives' && r.alternatives.map((a) => [a.protocol, a.maxAge])).toEqual([
      ['h3', 86400],
      ['h2', 86400],
    ]);
  });

  it('commas and semicolons inside quoted strings do not split', () => {
    const r = parseAltSvc('h3="a,b;c:443"; x="1,2;3"; ma=7');
    expect(r).toEqual({
      type: 'alternatives',
      alternatives: [{ protocol: 'h3', host: 'a,b;c', port: 443, maxAge: 7, persist: false }],
    });
  });
});
