/**
 * The package as users get it: `npm pack`, then an install of the tarball
 * into an empty project (what installing from the registry does — no
 * `prepare`, only the `install` script). Both native addons must be built
 * and loaded there (`originlink info --json` from the installed package),
 * the module must import (and be required from CommonJS), and its CLI must fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildIfStale, ROOT } from '../helpers/build.js';

let dir: string;
let app: string;
let server: http.Server;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-pack-'));
  // dist/ as built for the suite; packing without `prepare` keeps tsc from rewriting dist/ under other tests' children.
  buildIfStale();
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], {
    cwd: ROOT,
    stdio: 'pipe',
    timeout: 120_000,
  });
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error('npm pack produced no tarball');
  app = join(dir, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }),
  );
  execFileSync('npm', ['install', '--no-audit', '--no-fund', join(dir, tgz)], {
    cwd: app,
    stdio: 'pipe',
    timeout: 240_000,
  });
  server = http.createServer((_req, res) => res.end('hello from a local origin'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
}, 300_000);

afterAll(() => {
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('npm pack → npm install of the tarball in an empty project', () => {
  it('builds and loads the native addons, our QUIC engine included (originlink info --json from the installed package)', () => {
    const out = execFileSync(join(app, 'node_modules', '.bin', 'originlink'), ['info', '--json'], {
      cwd: app,
      encoding: 'utf8',
    });
    const info = JSON.parse(out) as {
      addons: { tfo: { loaded: boolean; path: string }; udp: { loaded: boolean; path: string } };
      quic: { loaded: boolean; quiche: string; binding: string; path: string | null; fallbackReason: string | null };
      kernelFeatures: { transparentHugePages: string | null };
    };
    expect(info.addons.tfo).toMatchObject({ loaded: true });
    expect(info.addons.udp).toMatchObject({ loaded: true });
    expect(info.addons.tfo.path.startsWith(join(app, 'node_modules', 'originlink'))).toBe(true);
    // Our engine (native/quic, quiche 0.30.0), built by the installed package's own install script — not the
    // prebuilt fallback (quiche 0.18), which it would name with the reason in fallbackReason.
    expect(info.quic).toMatchObject({
      loaded: true,
      binding: 'originlink-quic',
      quiche: '0.30.0',
      fallbackReason: null,
    });
    expect(info.quic.path?.startsWith(join(app, 'node_modules', 'originlink'))).toBe(true);
    // The command npm linked is the shell launcher (bin/originlink), and it ran the installed script; info reads the
    // kernel's huge-page mode that `serve` relies on.
    expect(realpathSync(join(app, 'node_modules', '.bin', 'originlink'))).toBe(
      join(realpathSync(app), 'node_modules', 'originlink', 'bin', 'originlink'),
    );
    let thp: string | null = null;
    try {
      thp = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
    } catch {
      /* none */
    }
    expect(info.kernelFeatures.transparentHugePages).toBe(thp);
  });

  // The origin runs in this process: the children run asynchronously so it can answer.
  it('the module imports, is required from CommonJS, and its Agent and CLI reach an origin', async () => {
    const run = promisify(execFile);
    const port = (server.address() as AddressInfo).port;
    const script = `import { Agent } from 'originlink';
      const a = new Agent();
      const r = await a.request({ url: 'http://127.0.0.1:${port}/' });
      console.log(r.status, await r.text());
      await a.close();`;
    expect(
      (
        await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8' })
      ).stdout.trim(),
    ).toBe('200 hello from a local origin');
    // A CommonJS project requires it (Node ≥ 20.19 loads an ES module without top-level await through require): the
    // same module instance as an import, so one process never holds two copies of the pools.
    const cjs = `const { Agent } = require('originlink');
      import('originlink').then(async (m) => {
        const a = new Agent();
        const r = await a.request({ url: 'http://127.0.0.1:${port}/' });
        console.log(m.Agent === Agent, r.status);
        await a.close();
      });`;
    const required = await run(process.execPath, ['-e', cjs], { cwd: app, encoding: 'utf8' });
    expect(required.stdout.trim()).toBe('true 200');
    expect(required.stderr).toBe('');
    const cli = JSON.parse(
      (
        await run(join(app, 'node_modules', '.bin', 'originlink'), ['fetch', `http://127.0.0.1:${port}/`, '--json'], {
          cwd: app,
          encoding: 'utf8',
        })
      ).stdout,
    ) as { status: number; bytes: number };
    expect(cli).toMatchObject({ status: 200, bytes: 25 });
  });
});
