/**
 * A fresh process's first HTTP/3 request loads no `node:crypto`, `node:net`, `node:tls`, `node:dns` or `node:dgram`
 * (issue 58):
 * its random connection IDs and its check of an IP literal against the certificate come from the QUIC binding's
 * BoringSSL, the pool key's CA digest from src/util/digest.ts, IP literals are told by src/util/ip.ts, and the UDP
 * socket is made, bound and connected by the native/udp addon (src/quic/native-socket.ts). Each of those built-ins costs
 * a fresh process milliseconds to load (bench/RESULTS.md `startup`), before its first response. Against our h3
 * server on loopback, the package's bundle imported by a plain `node`: to 127.0.0.1 so the IP check runs, and to
 * `localhost` so a name is looked up (by the binding's getaddrinfo: `node:dns`'s lookup tests each name with
 * `net.isIP`, whose regular expression costs a fresh process milliseconds to compile).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { H3Server } from '../../src/server/h3.js';
import { buildIfStale, ROOT } from '../helpers/build.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const run = promisify(execFile);
let h3: H3Server;

beforeAll(async () => {
  buildIfStale();
  h3 = await startTestH3Server({ handler: (() => ({ status: 200, headers: [], body: 'first' })) as never });
});
afterAll(() => h3?.close(0));

describe('the first h3 request of a fresh process', () => {
  it.each(['127.0.0.1', 'localhost'])(
    'to %s loads neither node:crypto, node:net, node:tls, node:dns nor node:dgram, and its answer is read',
    async (host) => {
      const script = `
      import { readFileSync } from 'node:fs';
      const ca = readFileSync(${JSON.stringify(makeCerts().caPath)});
      const { Agent } = await import(${JSON.stringify(join(ROOT, 'dist', 'bundle', 'index.js'))});
      const before = new Set(process.moduleLoadList);
      const agent = new Agent({ protocol: 'h3', tls: { ca } });
      const res = await agent.request({ url: 'https://${host}:${h3.address.port}/' });
      const body = await res.text();
      const loaded = process.moduleLoadList.filter((m) => !before.has(m));
      await agent.close();
      const fs = before.has('NativeModule fs');
      process.stdout.write(JSON.stringify({ status: res.status, protocol: res.protocol, body, loaded, fs }));`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, NODE_OPTIONS: '' },
        timeout: 20_000,
      });
      const r = JSON.parse(stdout) as { status: number; protocol: string; body: string; loaded: string[]; fs: boolean };
      expect([r.status, r.protocol, r.body]).toEqual([200, 'h3', 'first']);
      // The list names built-ins as this test expects (the import loaded node:fs before the request).
      expect(r.fs).toBe(true);
      for (const id of ['crypto', 'net', 'tls', 'dns', 'dns/promises', 'dgram'])
        expect(r.loaded).not.toContain(`NativeModule ${id}`);
    },
  );
});
