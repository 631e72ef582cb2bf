/** Config parsing and validation, routing and header rules of the service (pure parts, no sockets). */
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_LIMITS, interpolateEnv, parseConfig } from '../../src/service/config.js';
import { downstreamHeaders, inspectRequest, upstreamHeaders } from '../../src/service/headers.js';
import type { HeaderList } from '../../src/http/types.js';
import { pathMatches, rewritePath, Router } from '../../src/service/router.js';
import { DEFAULT_POOL_OPTIONS } from '../../src/pool/options.js';
import { statusForError } from '../../src/service/forward.js';

const base = `
listeners:
  - { kind: http, port: 8080 }
origins:
  a: { url: "http://127.0.0.1:9000" }
routes:
  - { path: /, origin: a }
`;

function fails(text: string): string {
  try {
    parseConfig(text, 'c.yaml', '/tmp');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('config was accepted');
}

describe('service config', () => {
  it('fills every default', () => {
    const c = parseConfig(base, 'c.yaml', '/tmp');
    expect(c.listeners[0]).toMatchObject({
      name: 'http:8080',
      kind: 'http',
      host: '0.0.0.0',
      port: 8080,
      tls: null,
      http2: true,
    });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9464, hosts: [] });
    expect(c.limits).toEqual(DEFAULT_LIMITS);
    expect(c.proxy).toEqual({
      via: 'originlink',
      xForwardedFor: 'append',
      altSvcMaxAge: 86_400,
      responseBufferBytes: 65_536,
      requestBufferBytes: 16_384,
      normalizePath: true,
      underscoresInHeaders: false,
      errorDetails: false,
      maxTempFileBytes: 1 << 30,
      maxRequestTempFileBytes: 1 << 20,
      tempFileTotalBytes: 2 ** 31,
      tempDir: tmpdir(),
    });
    expect(c.shutdown.graceMs).toBe(10_000);
    expect(c.logging).toEqual({ level: 'info', requests: true, flushMs: 100 });
    const a = c.origins.get('a');
    expect(a).toMatchObject({
      urls: ['http://127.0.0.1:9000'],
      protocol: 'auto',
      earlyData: 'safe',
      retries: 2,
      tfo: true,
      tls: { ca: null, servername: null, verify: true },
    });
    expect(a?.pool).toEqual(DEFAULT_POOL_OPTIONS);
    expect(c.routes[0]).toEqual({
      host: null,
      path: '/',
      origin: 'a',
      hostHeader: 'origin',
      stripPrefix: false,
      requestBuffering: true,
    });
  });

  it('maps timeouts onto pool options and refuses setting one twice', () => {
    const c = parseConfig(
      base.replace(
        '{ url:',
        '{ timeouts: { connectMs: 1500, headersMs: 2000, queueMs: 100 }, pool: { maxConnections: 3 }, url:',
      ),
      'c.yaml',
      '/tmp',
    );
    expect(c.origins.get('a')?.pool).toMatchObject({
      connectTimeoutMs: 1500,
      headersTimeoutMs: 2000,
      pendingTimeoutMs: 100,
      maxConnections: 3,
    });
    expect(fails(base.replace('{ url:', '{ timeouts: { connectMs: 1 }, pool: { connectTimeoutMs: 2 }, url:'))).toMatch(
      /origins\.a\.timeouts\.connectMs: also set as pool\.connectTimeoutMs/,
    );
  });

  it('rejects unknown fields at every level, with the line', () => {
    expect(fails(`${base}\nextra: 1`)).toMatch(/^c\.yaml:9: extra: unknown field/);
    expect(fails(base.replace('port: 8080', 'port: 8080, tls2: x'))).toMatch(/listeners\[0\]\.tls2: unknown field/);
    expect(fails(base.replace('path: /,', 'path: /, weight: 2,'))).toMatch(/routes\[0\]\.weight: unknown field/);
    expect(fails(`${base}\nlimits: { maxHeaders: 3 }`)).toMatch(/limits\.maxHeaders: unknown field/);
    expect(fails(base.replace('{ url:', '{ tls: { verfy: false }, url:'))).toMatch(
      /origins\.a\.tls\.verfy: unknown field/,
    );
  });

  it('origin groups: endpoints with weights, urls as ordered failover, a group field on one url; errors name the field and its line', () => {
    const at = (origin: string): ReturnType<typeof parseConfig> =>
      parseConfig(base.replace('{ url: "http://127.0.0.1:9000" }', origin), 'c.yaml', '/tmp');
    const g = at(
      '{ endpoints: [{ url: "http://127.0.0.1:9000", weight: 3 }, { url: "http://127.0.0.1:9001/" }], balance: ewma, health: { path: /h }, hedge: { percentile: 95 } }',
    ).origins.get('a');
    expect(g?.urls).toEqual(['http://127.0.0.1:9000', 'http://127.0.0.1:9001']);
    expect(g?.group).toEqual({
      name: 'a',
      endpoints: [{ url: 'http://127.0.0.1:9000', weight: 3 }, { url: 'http://127.0.0.1:9001' }],
      balance: 'ewma',
      health: { path: '/h' },
      hedge: { percentile: 95 },
    });
    expect(at('{ urls: ["http://127.0.0.1:9000", "http://127.0.0.1:9001"] }').origins.get('a')?.group).toMatchObject({
      balance: 'failover',
    });
    expect(at('{ url: "http://127.0.0.1:9000" }').origins.get('a')?.group).toBeNull();
    expect(at('{ url: "http://127.0.0.1:9000", collapse: true }').origins.get('a')?.group).toEqual({
      name: 'a',
      endpoints: [{ url: 'http://127.0.0.1:9000' }],
      collapse: true,
    });
    const bad = (origin: string): string => fails(base.replace('{ url: "http://127.0.0.1:9000" }', origin));
    expect(bad('{ url: "http://x", endpoints: [{ url: "http://y" }] }')).toMatch(
      /origins\.a\.endpoints: give exactly one of url, urls or endpoints/,
    );
    expect(bad('{ endpoints: [{ url: "http://x", weight: 0 }] }')).toMatch(
      /origins\.a\.endpoints\[0\]\.weight: must be between 1 and 1000/,
    );
    expect(bad('{ endpoints: [{ url: "http://x" }, { url: "http://x:80" }] }')).toMatch(
      /origins\.a\.endpoints\[1\]\.url: http:\/\/x is already an endpoint/,
    );
    expect(bad('{ url: "http://x", health: { intervalMs: 100, timeoutMs: 500 } }')).toMatch(
      /^c\.yaml:5: origins\.a\.health\.timeoutMs: must be ≤ intervalMs/,
    );
    expect(bad('{ url: "http://x", hedge: { afterMs: 5, percentile: 90 } }')).toMatch(
      /origins\.a\.hedge: give exactly one of afterMs or percentile/,
    );
    expect(bad('{ url: "http://x", balance: random }')).toMatch(
      /origins\.a\.balance: must be one of p2c, ewma, round-robin, failover/,
    );
    expect(bad('{ url: "http://x", collapse: { key: [authorization] } }')).toMatch(
      /origins\.a\.collapse\.key\[0\]: authorization: a request carrying it is never collapsed/,
    );
    expect(bad('{ url: "http://x", outlier: { after: 3 } }')).toMatch(/origins\.a\.outlier\.after: unknown option/);
  });

  it('explains bad values', () => {
    expect(fails(base.replace('kind: http', 'kind: https'))).toMatch(/listeners\[0\]\.tls: required/);
    expect(fails(base.replace('kind: http,', 'kind: http, tls: { cert: a, key: b },'))).toMatch(
      /listeners\[0\]\.tls: not allowed for kind http/,
    );
    expect(fails(base.replace('{ url: "http://127.0.0.1:9000" }', '{ url: "http://x/path" }'))).toMatch(
      /origins\.a\.url: must be scheme:\/\/host\[:port\] only/,
    );
    expect(fails(base.replace('{ url: "http://127.0.0.1:9000" }', '{ url: "http://x", urls: ["http://y"] }'))).toMatch(
      /exactly one of url, urls or endpoints/,
    );
    expect(fails(base.replace('{ url: "http://127.0.0.1:9000" }', '{ url: "http://x", protocol: h3 }'))).toMatch(
      /origins\.a\.protocol: h3 needs https URLs/,
    );
    expect(fails(base.replace('{ url:', '{ pool: { maxConnections: 0 }, url:'))).toMatch(
      /origins\.a\.pool\.maxConnections: must be ≥ 1, got 0/,
    );
    // Predictive warmth reaches the pool options; a ratio between 0 and 1 is refused by name.
    expect(
      parseConfig(
        base.replace('{ url:', '{ pool: { preconnectRatio: 1.5, preconnectHalfLifeMs: 10000 }, url:'),
        'c.yaml',
        '/tmp',
      ).origins.get('a')?.pool,
    ).toMatchObject({ preconnectRatio: 1.5, preconnectHalfLifeMs: 10_000 });
    expect(fails(base.replace('{ url:', '{ pool: { preconnectRatio: 0.5 }, url:'))).toMatch(
      /origins\.a\.pool\.preconnectRatio: must be 0 \(off\) or 1 … 10/,
    );
    expect(fails(base.replace('path: /,', 'path: api,'))).toMatch(/routes\[0\]\.path: must start with "\/"/);
    expect(
      fails(
        base.replace('  - { kind: http, port: 8080 }', '  - { kind: http, port: 8080 }\n  - { kind: h2c, port: 8080 }'),
      ),
    ).toMatch(/listeners\[1\]\.port: 0\.0\.0\.0:8080 is already taken by listener "http:8080" \(0\.0\.0\.0:8080\)$/);
    expect(fails(`${base}\nproxy: { via: "two words" }`)).toMatch(/proxy\.via: must be a token/);
    expect(fails(`${base}\nproxy: { requestBufferBytes: -1 }`)).toMatch(/proxy\.requestBufferBytes: must be/);
    expect(fails(`${base}\nproxy: { requestBufferBytes: 67108865 }`)).toMatch(/proxy\.requestBufferBytes: must be/);
    expect(fails(`${base}\nproxy: { normalizePath: 1 }`)).toMatch(/proxy\.normalizePath/);
    expect(fails(`${base}\nproxy: { requestBufferBytes: "16k" }`)).toMatch(/proxy\.requestBufferBytes/);
    expect(fails(`${base}\nproxy: { tempDir: /nonexistent-ol-dir }`)).toMatch(
      /proxy\.tempDir: cannot write to \/nonexistent-ol-dir: ENOENT/,
    );
    expect(fails(`${base}\nproxy: { maxTempFileBytes: -1 }`)).toMatch(/proxy\.maxTempFileBytes: must be/);
    expect(fails(`${base}\nlimits: { clientBodyTimeoutMs: 10 }`)).toMatch(
      /limits\.clientBodyTimeoutMs: must be between 100 and 3600000, got 10/,
    );
    expect(fails(base.replace('path: /,', 'path: /, requestBuffering: off,'))).toMatch(/routes\[0\]\.requestBuffering/);
    expect(parseConfig(`${base}\nproxy: { tempDir: . }`, 'c.yaml', '/tmp').proxy.tempDir).toBe('/tmp');
    expect(fails('- a\n- b\n')).toMatch(/\(root\): the document must be a mapping/);
    expect(fails(base.replace('listeners:\n  - { kind: http, port: 8080 }', 'listeners: []'))).toMatch(
      /listeners: needs at least 1 entry/,
    );
    expect(fails(`${base}\nlogging: { level: loud }`)).toMatch(/logging\.level: must be one of/);
    expect(fails(`${base}\nlogging: { flushMs: -1 }`)).toMatch(/logging\.flushMs: must be between 0 and 60000, got -1/);
    expect(fails(`${base}\nlogging: { flushMs: 60001 }`)).toMatch(
      /logging\.flushMs: must be between 0 and 60000, got 60001/,
    );
    expect(fails(`${base}\nlogging: { flushMs: soon }`)).toMatch(/logging\.flushMs: must be an integer/);
    expect(parseConfig(`${base}\nlogging: { flushMs: 0 }`, 'c.yaml', '/tmp').logging.flushMs).toBe(0);
    expect(fails(`${base}\norigins: {}`)).toMatch(/c\.yaml:\d+: \(yaml\): Map keys must be unique/);
  });

  it('interpolates ${VAR} and ${VAR:-default}', () => {
    expect(interpolateEnv('port: ${P:-80} host: ${H}', { H: 'x' })).toBe('port: 80 host: x');
    expect(interpolateEnv('${P:-80}', { P: '90' })).toBe('90');
  });
});

describe('router', () => {
  const r = new Router([
    { host: null, path: '/', origin: 'any', hostHeader: 'origin', stripPrefix: false },
    { host: null, path: '/api', origin: 'api', hostHeader: 'origin', stripPrefix: true },
    { host: '*.example.com', path: '/', origin: 'wild', hostHeader: 'origin', stripPrefix: false },
    { host: 'www.example.com', path: '/', origin: 'www', hostHeader: 'origin', stripPrefix: false },
    { host: 'www.example.com', path: '/api/v2/', origin: 'www-api', hostHeader: 'origin', stripPrefix: false },
  ]);
  it('prefers exact host, then wildcard, then any; then the longest prefix', () => {
    expect(r.match('www.example.com', '/x')?.route.origin).toBe('www');
    expect(r.match('WWW.Example.com.', '/api/v2/users')?.route.origin).toBe('www-api');
    expect(r.match('img.example.com', '/api')?.route.origin).toBe('wild');
    expect(r.match('example.com', '/api?q=1')?.route.origin).toBe('api');
    expect(r.match('other', '/apix')?.route.origin).toBe('any');
    // An authority as the client sent it: the port and IPv6 brackets are not part of the host.
    expect(r.match('www.example.com:8443', '/x')?.route.origin).toBe('www');
    expect(r.match('IMG.example.com.:80', '/')?.route.origin).toBe('wild');
    expect(r.match('[::1]:8080', '/api/x')?.route.origin).toBe('api');
    expect(r.match('www.example.com', '/x')).toBe(r.match('www.example.com', '/y')); // the route's own match
    expect(
      new Router([{ host: 'a', path: '/', origin: 'a', hostHeader: 'origin', stripPrefix: false }]).match('b', '/'),
    ).toBeNull();
  });
  it('matches prefixes on segment boundaries and strips them', () => {
    expect(pathMatches('/api', '/api')).toBe(true);
    expect(pathMatches('/api', '/api/x')).toBe(true);
    expect(pathMatches('/api', '/apix')).toBe(false);
    expect(pathMatches('/api/', '/api/x')).toBe(true);
    const route = { host: null, path: '/api', origin: 'a', hostHeader: 'origin', stripPrefix: true };
    expect(rewritePath(route, '/api/x?y')).toBe('/x?y');
    expect(rewritePath(route, '/api')).toBe('/');
    expect(rewritePath(route, '/api?q')).toBe('/?q');
    expect(rewritePath({ ...route, path: '/api/' }, '/api/x')).toBe('/x');
  });
});

describe('header rules', () => {
  it('checks framing, limits and Host', () => {
    const l = { ...DEFAULT_LIMITS, maxHeaderCount: 3, maxHeaderBytes: 1024, maxBodyBytes: 10 };
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['content-length', '5'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ contentLength: 5, chunked: false, authority: 'a' });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['content-length', '50'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 413 });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['content-length', '5'],
          ['transfer-encoding', 'chunked'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 400 });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['content-length', '5'],
          ['content-length', '5'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 400, reason: 'duplicate Content-Length' });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['content-length', '-1'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 400 });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['transfer-encoding', 'gzip, chunked'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 400 });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['host', 'b'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 400 });
    expect(inspectRequest([['transfer-encoding', 'chunked']], 'a', true, l)).toMatchObject({ status: 400 });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['a', '1'],
          ['b', '2'],
          ['c', '3'],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 431 });
    expect(
      inspectRequest(
        [
          ['host', 'a'],
          ['a', 'x'.repeat(2000)],
        ],
        null,
        false,
        l,
      ),
    ).toMatchObject({ status: 431 });
    expect(inspectRequest([['host', 'a b']], null, false, l)).toMatchObject({ status: 400, reason: 'invalid Host' });
  });

  it('builds upstream fields: hop-by-hop out, Via and X-Forwarded-* in, TE trailers kept as a fact', () => {
    const out = upstreamHeaders(
      [
        ['host', 'h'],
        ['connection', 'close, X-A'],
        ['x-a', '1'],
        ['keep-alive', 'x'],
        ['te', 'trailers'],
        ['upgrade', 'ws'],
        ['proxy-authorization', 'p'],
        ['via', '1.0 far'],
        ['x-forwarded-for', '1.2.3.4'],
        ['x-forwarded-proto', 'spoof'],
        ['accept', '*/*'],
      ],
      {
        clientIp: '10.0.0.1',
        proto: 'https',
        authority: 'h',
        clientVersion: '1.1',
        via: 'ol',
        xff: 'append',
        teTrailers: true,
      },
    );
    expect(out).toEqual([
      ['accept', '*/*'],
      ['via', '1.0 far, 1.1 ol'],
      ['x-forwarded-for', '1.2.3.4, 10.0.0.1'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'h'],
      ['te', 'trailers'],
    ]);
    const replace = upstreamHeaders([['x-forwarded-for', '1.2.3.4']], {
      clientIp: '10.0.0.1',
      proto: 'http',
      authority: 'h',
      clientVersion: '2',
      via: 'ol',
      xff: 'replace',
      teTrailers: false,
    });
    expect(replace).toContainEqual(['x-forwarded-for', '10.0.0.1']);
    // replace: nor may a client write the other fields that describe the hop (Spring prefers Forwarded); append keeps them.
    const spoof: HeaderList = [
      ['forwarded', 'for=6.6.6.6;proto=https'],
      ['x-real-ip', '6.6.6.6'],
      ['x-forwarded-port', '443'],
      ['x-forwarded-prefix', '/x'],
      ['accept', '*/*'],
    ];
    const base = {
      clientIp: '10.0.0.1',
      proto: 'http',
      authority: 'h',
      clientVersion: '1.1',
      via: 'ol',
      teTrailers: false,
    } as const;
    expect(upstreamHeaders(spoof, { ...base, xff: 'replace' }).map(([n]) => n)).toEqual([
      'accept',
      'via',
      'x-forwarded-for',
      'x-forwarded-proto',
      'x-forwarded-host',
    ]);
    expect(upstreamHeaders(spoof, { ...base, xff: 'append' }).slice(0, 5)).toEqual(spoof);
  });

  it('builds response fields: hop-by-hop out, Via appended, repeated fields kept', () => {
    const out = downstreamHeaders(
      [
        ['connection', 'x-b'],
        ['x-b', '1'],
        ['keep-alive', 't'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
        ['vary', 'a'],
        ['vary', 'b'],
        ['transfer-encoding', 'chunked'],
        ['via', '1.1 up'],
      ],
      '2',
      'ol',
    );
    expect(out).toEqual([
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['vary', 'a'],
      ['vary', 'b'],
      ['via', '1.1 up, 2 ol'],
    ]);
    // RFC 7838 §2: the origin's Alt-Svc names the origin's alternatives, not ours: dropped; ours added when given.
    const alt: HeaderList = [
      ['alt-svc', 'h3=":443"'],
      ['x', '1'],
    ];
    expect(downstreamHeaders(alt, '1.1', 'ol')).toEqual([
      ['x', '1'],
      ['via', '1.1 ol'],
    ]);
    expect(downstreamHeaders(alt, '1.1', 'ol', 'h3=":8443"; ma=60')).toEqual([
      ['x', '1'],
      ['via', '1.1 ol'],
      ['alt-svc', 'h3=":8443"; ma=60'],
    ]);
  });

  it('maps error codes to 502/503/504', () => {
    expect(statusForError('OL_QUEUE_FULL')).toBe(503);
    expect(statusForError('OL_HEADERS_TIMEOUT')).toBe(504);
    expect(statusForError('OL_CONNECT_TIMEOUT')).toBe(504);
    expect(statusForError('OL_BODY_TIMEOUT')).toBe(504); // the origin stopped taking the request body (nginx: 504)
    expect(statusForError('OL_CONNECT_FAILED')).toBe(502);
    expect(statusForError('OL_CERT_INVALID')).toBe(502);
    expect(statusForError('OL_REQUEST_BODY_TIMEOUT')).toBe(408); // the client's body stalled, not the origin
  });
});

describe('metrics across workers', () => {
  it('ratios and RTTs are averaged over worker processes, h3 backoff is the max — not summed (2 workers read a reuse ratio of 1.96)', async () => {
    const { Metrics } = await import('../../src/service/metrics.js');
    const { AggregatorRegistry } = await import('prom-client');
    const m = new Metrics(() => []);
    const json = await m.registry.getMetricsAsJSON();
    const agg = (name: string): string | undefined =>
      (json.find((x) => x.name === name) as { aggregator?: string } | undefined)?.aggregator;
    expect(agg('originlink_upstream_reuse_ratio')).toBe('average');
    expect(agg('originlink_upstream_rtt_seconds')).toBe('average');
    expect(agg('originlink_upstream_h3_broken')).toBe('max');
    // What the primary does with two workers' values of one series.
    const worker = (v: number): unknown[] => [
      {
        name: 'originlink_upstream_reuse_ratio',
        help: 'x',
        type: 'gauge',
        aggregator: agg('originlink_upstream_reuse_ratio'),
        values: [{ labels: { origin: 'a' }, value: v }],
      },
    ];
    const text = await AggregatorRegistry.aggregate([worker(0.98), worker(0.98)] as never).metrics();
    expect(text).toMatch(/originlink_upstream_reuse_ratio\{origin="a"\} 0\.98/);
    m.close();
  });
});
