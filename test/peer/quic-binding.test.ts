/**
 * Loading the native binding: present here; when missing, one clear
 * UNSUPPORTED_PROTOCOL error instead of a crash. Binding error parsing.
 */
import { describe, expect, it, vi } from 'vitest';
import { ErrorCode, type OriginlinkError } from '../../src/errors.js';

describe('quiche binding adapter', () => {
  it('loads the binding on this platform', async () => {
    const m = await import('../../src/quic/quiche.js');
    expect(m.quicheAvailable()).toBe(true);
    expect(typeof m.quiche().Connection.connect).toBe('function');
  });

  it('hashes content ids with BoringSSL once loaded: sha256Into equals node:crypto, and util/digest goes through it', async () => {
    const { createHash, randomBytes } = await import('node:crypto');
    const m = await import('../../src/quic/quiche.js');
    const digest = await import('../../src/util/digest.js');
    const into = m.quiche().sha256Into as (data: Uint8Array, out: Uint8Array) => void;
    expect(typeof into).toBe('function');
    let calls = 0;
    digest.useNativeSha256((data, out) => {
      calls++;
      into(data, out);
    });
    try {
      for (const n of [0, 1, 55, 56, 64, 656, 20_000]) {
        const b = randomBytes(n);
        const ref = createHash('sha256').update(b).digest('hex');
        expect(digest.sha256([b]).toString('hex'), `length ${n}`).toBe(ref);
        expect(digest.sha256([b.subarray(0, n >> 1), b.subarray(n >> 1)]).toString('hex')).toBe(ref);
      }
      expect(calls).toBe(14);
      expect(() => into(Buffer.from('abc'), Buffer.alloc(31))).toThrow(/fewer than 32 bytes/);
    } finally {
      digest.useNativeSha256(into);
    }
  });

  it('looks names up with getaddrinfo once loaded, as node:dns does, and the resolver goes through it', async () => {
    const { lookup } = await import('node:dns/promises');
    const { hostname } = await import('node:os');
    const { execFile } = await import('node:child_process');
    const m = await import('../../src/quic/quiche.js');
    const { Resolver } = await import('../../src/net/resolver.js');
    const b = m.quiche();
    const native = b.lookupSystem as (host: string) => Promise<string[] | string>;
    expect(typeof native).toBe('function');
    const viaDns = (name: string): Promise<string[] | string> =>
      lookup(name, { all: true, verbatim: true }).then(
        (all) => all.map((a) => a.address),
        (e: { code?: string }) => e.code ?? 'none',
      );
    // The same answers, in the same order: `localhost` from /etc/hosts, no query sent.
    expect(await native('localhost')).toEqual(await viaDns('localhost'));
    // Names that may reach a DNS server are asked in a network namespace of their own (`unshare --net`: no resolver
    // reachable, nothing leaves the machine), by the binding and by node:dns alike: the same answer or failure code.
    const names = [hostname(), 'no-such-name.invalid'];
    const script = `const b = require(${JSON.stringify(m.quicEngine().path)});
      const dns = require('node:dns/promises');
      const viaDns = (n) => dns.lookup(n, { all: true, verbatim: true }).then((a) => a.map((x) => x.address), (e) => e.code ?? 'none');
      Promise.all(${JSON.stringify(names)}.map(async (n) => [await b.lookupSystem(n), await viaDns(n)]))
        .then((r) => process.stdout.write(JSON.stringify(r)));`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile('unshare', ['--net', '--', process.execPath, '-e', script], { timeout: 20_000 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    const pairs = JSON.parse(out) as Array<[string[] | string, string[] | string]>;
    pairs.forEach(([ours, theirs], i) => expect(ours, names[i]).toEqual(theirs));
    const code = pairs[1]![1] as string;
    expect(typeof code).toBe('string');
    // The resolver goes through the binding: calls counted; the unresolvable name answered with the code seen above,
    // here without a lookup.
    let calls = 0;
    b.lookupSystem = (host: string) => {
      calls++;
      return host === 'no-such-name.invalid' ? Promise.resolve(code) : native(host);
    };
    try {
      const r = new Resolver();
      const res = await r.resolve('localhost');
      expect(calls).toBe(1);
      expect(res.source).toBe('system');
      expect(res.addresses).toEqual(
        (await lookup('localhost', { all: true, verbatim: true })).map((a) => ({
          address: a.address,
          family: a.family,
        })),
      );
      await expect(r.resolve('no-such-name.invalid')).rejects.toMatchObject({
        code: ErrorCode.DNS_FAILED,
        details: { name: 'no-such-name.invalid', dnsCode: code },
      });
      expect(calls).toBe(2);
    } finally {
      b.lookupSystem = native;
    }
  });

  it('reports a missing binary as UNSUPPORTED_PROTOCOL, once, without throwing from quicheAvailable', async () => {
    const prev = process.env['ORIGINLINK_QUIC_BINDING'];
    process.env['ORIGINLINK_QUIC_BINDING'] = '/nonexistent/quiche.node';
    try {
      vi.resetModules();
      const m = await import('../../src/quic/quiche.js');
      expect(m.quicheAvailable()).toBe(false);
      let err: unknown;
      try {
        m.quiche();
      } catch (e) {
        err = e;
      }
      // Fresh module graph after resetModules: compare by name, not class identity.
      expect((err as Error).name).toBe('OriginlinkError');
      expect((err as OriginlinkError).code).toBe(ErrorCode.UNSUPPORTED_PROTOCOL);
      expect((err as OriginlinkError).message).toMatch(
        /HTTP\/3 unavailable: cannot load the QUIC binding .*\/nonexistent\/quiche\.node/,
      );
      const ep = await import('../../src/quic/endpoint.js');
      await expect(ep.QuicEndpoint.bind({})).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED_PROTOCOL });
    } finally {
      if (prev === undefined) delete process.env['ORIGINLINK_QUIC_BINDING'];
      else process.env['ORIGINLINK_QUIC_BINDING'] = prev;
      vi.resetModules();
    }
  });

  it('parses thrown binding errors', async () => {
    const { parseQuicheError } = await import('../../src/quic/quiche.js');
    expect(parseQuicheError(new Error('StreamReset(268)'))).toEqual({ name: 'StreamReset', code: 268 });
    expect(parseQuicheError(new Error('TlsFail'))).toEqual({ name: 'TlsFail', code: null });
  });
});
