/**
 * bin/originlink, the command npm links and `npm start` runs: `serve` and `demo` start node with the flags of
 * bin/service-node-flags (no allocation-site pretenuring), the one-shot commands without
 * flags (V8 takes node's code cache of its built-ins only then) — but for `--cacert FILE`, which makes the process's
 * OpenSSL store that file (`--use-openssl-ca`, SSL_CERT_FILE); the launcher execs node
 * (one process: its pid is the service's), found through a symlink as npm links it.
 */
import { execFile, spawn } from 'node:child_process';
import { createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildIfStale, ROOT } from '../helpers/build.js';
import { makeCerts } from '../helpers/certs.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { oneOriginConfig } from '../helpers/serve-child.js';

const LAUNCHER = join(ROOT, 'bin', 'originlink');
/** The script the launcher runs: dist/ beside its own bin/. */
const MAIN = join(ROOT, 'dist', 'bundle', 'main.cjs');
const dir = mkdtempSync(join(tmpdir(), 'ol-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * What the launcher runs, with a `node` first on PATH that prints its arguments instead of running them — and
 * `SSL_CERT_FILE=…` first when the launcher set it.
 */
function argsOf(launcher: string, args: string[], cwd?: string): Promise<string[]> {
  const fake = join(dir, 'fake-bin');
  mkdirSync(fake, { recursive: true });
  writeFileSync(
    join(fake, 'node'),
    '#!/bin/sh\n[ -n "${SSL_CERT_FILE+x}" ] && printf "SSL_CERT_FILE=%s\\n" "$SSL_CERT_FILE"\nfor a in "$@"; do printf "%s\\n" "$a"; done\n',
  );
  chmodSync(join(fake, 'node'), 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${fake}:${process.env.PATH ?? ''}` };
  delete env.SSL_CERT_FILE;
  return new Promise((resolve, reject) => {
    execFile(launcher, args, { env, timeout: 10_000, ...(cwd ? { cwd } : {}) }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout.split('\n').filter(Boolean));
    });
  });
}

describe('bin/originlink', () => {
  it('starts serve and demo with the service flags, the one-shot commands without flags, through a symlink too', async () => {
    const flags = readFileSync(join(ROOT, 'bin', 'service-node-flags'), 'utf8')
      .split('\n')
      .filter(Boolean);
    expect(flags).toEqual(['--no-allocation-site-pretenuring']);
    expect(await argsOf(LAUNCHER, ['serve', '--config', 'a b.yaml'])).toEqual([
      ...flags,
      MAIN,
      'serve',
      '--config',
      'a b.yaml',
    ]);
    expect(await argsOf(LAUNCHER, ['demo'])).toEqual([...flags, MAIN, 'demo']);
    expect(await argsOf(LAUNCHER, ['fetch', 'https://x.test/'])).toEqual([MAIN, 'fetch', 'https://x.test/']);
    const link = join(dir, 'originlink');
    symlinkSync(LAUNCHER, link);
    expect(await argsOf(link, ['probe', 'https://x.test/'])).toEqual([MAIN, 'probe', 'https://x.test/']);
    // Run by a relative path (as `npm start` does, from the package's directory) or from inside bin/: the package
    // root is found without readlink, the same main.
    expect(await argsOf('bin/originlink', ['info'], ROOT)).toEqual(['./dist/bundle/main.cjs', 'info']);
    expect(await argsOf('./originlink', ['info'], join(ROOT, 'bin'))).toEqual(['../dist/bundle/main.cjs', 'info']);
    expect(await argsOf('./originlink', ['demo'], join(ROOT, 'bin'))).toEqual([
      ...flags,
      '../dist/bundle/main.cjs',
      'demo',
    ]);
    // npm start runs the launcher.
    expect(
      (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
        .start,
    ).toBe('bin/originlink demo');
  });

  it("--cacert FILE: the one-shot command starts with OpenSSL's store made of that file", async () => {
    const ssl = ['--use-openssl-ca', MAIN];
    expect(await argsOf(LAUNCHER, ['fetch', '--cacert', 'my ca.pem', 'https://x.test/'])).toEqual([
      'SSL_CERT_FILE=my ca.pem',
      ...ssl,
      'fetch',
      '--cacert',
      'my ca.pem',
      'https://x.test/',
    ]);
    expect(await argsOf(LAUNCHER, ['probe', '-s', '--cacert=/etc/ca.pem', 'https://x.test/'])).toEqual([
      'SSL_CERT_FILE=/etc/ca.pem',
      ...ssl,
      'probe',
      '-s',
      '--cacert=/etc/ca.pem',
      'https://x.test/',
    ]);
    // The last one counts, as for the command; after `--` it is an operand, not the option; without it, nothing
    // changes (Node's own store, built when used).
    expect(await argsOf(LAUNCHER, ['fetch', '--cacert', 'a.pem', '--cacert=b.pem', 'https://x.test/'])).toEqual([
      'SSL_CERT_FILE=b.pem',
      ...ssl,
      'fetch',
      '--cacert',
      'a.pem',
      '--cacert=b.pem',
      'https://x.test/',
    ]);
    expect(await argsOf(LAUNCHER, ['fetch', '--', '--cacert', 'x'])).toEqual([MAIN, 'fetch', '--', '--cacert', 'x']);
    expect(await argsOf(LAUNCHER, ['fetch', '-k', 'https://x.test/'])).toEqual([
      MAIN,
      'fetch',
      '-k',
      'https://x.test/',
    ]);
  });

  it('fetch --cacert through the launcher trusts that CA alone; -k verifies nothing', async () => {
    buildIfStale();
    const certs = makeCerts();
    const other = makeCerts({ fresh: true });
    const server = createSecureServer({ cert: certs.cert, key: certs.key, allowHTTP1: true }, (_q, r) => r.end('ok\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    delete env.SSL_CERT_FILE;
    const run = (args: string[]): Promise<{ code: number; out: string }> =>
      new Promise((resolve) => {
        execFile(LAUNCHER, ['fetch', '-s', ...args], { env, timeout: 15_000 }, (err, stdout) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, out: stdout }),
        );
      });
    try {
      expect(await run(['--cacert', certs.caPath, url])).toEqual({ code: 0, out: 'ok\n' });
      expect(await run([`--cacert=${certs.caPath}`, '--http2', url])).toEqual({ code: 0, out: 'ok\n' });
      // Another CA: exit 60 (not trusted), as curl.
      expect((await run(['--cacert', other.caPath, url])).code).toBe(60);
      // Node's default roots do not know the test CA either; -k asks nothing.
      expect((await run([url])).code).toBe(60);
      expect(await run(['-k', url])).toEqual({ code: 0, out: 'ok\n' });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('serve runs as one node process; NODE_OPTIONS puts its code on huge pages where the kernel allows them', async () => {
    buildIfStale();
    const port = await freePort();
    const conf = join(dir, 'serve.yaml');
    writeFileSync(
      conf,
      oneOriginConfig({
        listeners: [`{ name: plain, kind: http, host: 127.0.0.1, port: ${port} }`],
        admin: 'false',
        graceMs: 100,
        origin: await freePort(),
      }),
    );
    // Node's own code on 2 MiB pages is not a default (bin/originlink says why); NODE_OPTIONS reaches the service.
    const child = spawn(LAUNCHER, ['serve', '--config', conf], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '--use-largepages=silent' },
    });
    let err = '';
    child.stderr?.on('data', (d) => {
      err += String(d);
    });
    try {
      await waitForPort(port);
      const pid = child.pid as number;
      // exec: the launcher's pid is node's, with the flag and the script on its command line.
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('node');
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(
        expect.arrayContaining(['--no-allocation-site-pretenuring', MAIN, 'serve']),
      );
      let thp = '[never]';
      try {
        thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
      } catch {
        /* a kernel without THP */
      }
      let hugeKb = 0;
      for (const m of readFileSync(`/proc/${pid}/smaps`, 'utf8').matchAll(/^AnonHugePages:\s+(\d+) kB$/gm))
        hugeKb += Number(m[1]);
      // `[never]` (or no THP): no huge pages and, `silent`, no warning; `madvise` or `always`: node's code remapped (MBs).
      if (thp.includes('[never]')) expect(hugeKb).toBe(0);
      else expect(hugeKb).toBeGreaterThanOrEqual(4096);
      expect(err).not.toMatch(/large ?pages/i);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
