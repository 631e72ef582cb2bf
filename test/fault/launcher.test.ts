/**
 * bin/originlink, the command npm links and `npm start` runs: `serve` and `demo` start node with the flags of
 * bin/service-node-flags (no allocation-site pretenuring), the one-shot commands without
 * flags (V8 takes node's code cache of its built-ins only then); the launcher execs node
 * (one process: its pid is the service's), found through a symlink as npm links it.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildIfStale, ROOT } from '../helpers/build.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { oneOriginConfig } from '../helpers/serve-child.js';

const LAUNCHER = join(ROOT, 'bin', 'originlink');
/** The script the launcher runs: dist/ beside its own bin/. */
const MAIN = join(ROOT, 'dist', 'bundle', 'main.cjs');
const dir = mkdtempSync(join(tmpdir(), 'ol-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What the launcher runs, with a `node` first on PATH that prints its arguments instead of running them. */
function argsOf(launcher: string, args: string[], cwd?: string): Promise<string[]> {
  const fake = join(dir, 'fake-bin');
  mkdirSync(fake, { recursive: true });
  writeFileSync(join(fake, 'node'), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n');
  chmodSync(join(fake, 'node'), 0o755);
  return new Promise((resolve, reject) => {
    execFile(
      launcher,
      args,
      { env: { ...process.env, PATH: `${fake}:${process.env.PATH ?? ''}` }, timeout: 10_000, ...(cwd ? { cwd } : {}) },
      (err, stdout) => {
        if (err) reject(err);
        else resolve(stdout.split('\n').filter(Boolean));
      },
    );
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
