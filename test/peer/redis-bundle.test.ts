/**
 * The Redis client as the package's bundle runs it: ioredis from dist/bundle/ioredis.cjs (scripts/bundle.mjs
 * `PREBUILT`), whose `tls` and `crypto` load at their first use (scripts/lazy-builtins.mjs). Against Debian's
 * redis-server over TLS (`rediss://`, its own TLS port, our test CA), in a fresh process: a ticket stored by one set of
 * stores is read back by the next through Redis — the lazily loaded `tls` carried both — and nothing came from
 * node_modules. Over plain TCP the same process never loads `tls`, nor `assert` or `tty` (ioredis's `debug` and
 * redis-errors' `assert`, which would create the process's stderr stream to decide on colours: scripts/bundle.mjs
 * `quietLoad`) unless DEBUG asks for ioredis's log.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, ROOT } from '../helpers/build.js';
import { makeCerts } from '../helpers/certs.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';

const run = promisify(execFile);
const certs = makeCerts();
let plain: RedisPeer;
let secure: RedisPeer;

beforeAll(async () => {
  buildIfStale();
  plain = await startRedis();
  const port = await freePort();
  secure = await startRedis({
    port,
    extra: [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--tls-cert-file',
      certs.certPath,
      '--tls-key-file',
      certs.keyPath,
      '--tls-ca-cert-file',
      certs.caPath,
      '--tls-auth-clients',
      'no',
    ],
  });
}, 30_000);
afterAll(async () => {
  await plain?.stop();
  await secure?.stop();
});

/** A fresh process: stores on `url` put a ticket, closed; new stores read it back from Redis. What it loaded. */
async function roundTrip(
  url: string,
  env: Record<string, string> = {},
): Promise<{ back: string | null; builtins: string[]; fromNodeModules: string[]; stderr: string }> {
  const script = `
    const { openStores } = await import(${JSON.stringify(join(ROOT, 'dist', 'bundle', 'index.js'))});
    const before = new Set(process.moduleLoadList);
    const url = ${JSON.stringify(url)};
    const a = openStores({ sessionStore: url });
    await a.ready(5000);
    a.sessionStore.put('origin-key', Buffer.from('ticket-bytes'));
    await a.close();
    const b = openStores({ sessionStore: url });
    await b.ready(5000);
    const back = b.sessionStore.get('origin-key');
    await b.close();
    const { createRequire } = await import('node:module');
    process.stdout.write(JSON.stringify({
      back: back ? Buffer.from(back).toString() : null,
      builtins: process.moduleLoadList.filter((m) => !before.has(m) && m.startsWith('NativeModule ')).map((m) => m.slice(13)),
      fromNodeModules: Object.keys(createRequire(process.cwd() + '/').cache).filter((f) => f.includes('node_modules')),
    }));`;
  const { DEBUG: _, ...rest } = process.env;
  const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...rest, NODE_OPTIONS: '', ...env },
    timeout: 20_000,
  });
  return { ...JSON.parse(stdout), stderr };
}

describe("Redis stores from the package's bundle", () => {
  it('over TLS (rediss://): a ticket goes to Redis and back, ioredis from its one-file copy', async () => {
    const r = await roundTrip(`rediss://127.0.0.1:${secure.port}/0?prefix=b1:&ca=${encodeURIComponent(certs.caPath)}`);
    expect(r.back).toBe('ticket-bytes');
    expect(r.builtins).toContain('tls');
    expect(r.fromNodeModules).toEqual([]);
  });

  it('over TCP: the same, and neither tls nor crypto is loaded', async () => {
    const r = await roundTrip(`${plain.url}?prefix=b2:`);
    expect(r.back).toBe('ticket-bytes');
    expect(r.builtins).not.toContain('tls');
    expect(r.builtins).not.toContain('crypto');
    for (const quiet of ['assert', 'tty', 'internal/util/colors']) expect(r.builtins).not.toContain(quiet);
    expect(r.fromNodeModules).toEqual([]);
  });

  it("with DEBUG naming ioredis: ioredis's own log on stderr, from the copy's real `debug`", async () => {
    const r = await roundTrip(`${plain.url}?prefix=b3:`, { DEBUG: 'ioredis:redis' });
    expect(r.back).toBe('ticket-bytes');
    expect(r.stderr).toMatch(/ioredis:redis status\[127\.0\.0\.1:\d+\]: \w+ -> connect/);
    expect(r.fromNodeModules).toEqual([]);
  });
});
