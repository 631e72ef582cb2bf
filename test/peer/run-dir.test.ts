/**
 * Run directories (src/util/run-dir.ts): the workers' member-socket directory of a `serve --workers` primary that was
 * SIGKILLed (its exit handler never ran) is removed by the next primary of the host; one of a process that still
 * runs, of another host, or not a directory, is left alone. Every process here gets a TMPDIR of the test's own.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale, ROOT } from '../helpers/build.js';
import { freePort } from '../helpers/ports.js';
import { ServeCluster, until } from '../helpers/serve-cluster.js';

const HOST =
  hostname()
    .replace(/[^A-Za-z0-9._]/g, '_')
    .slice(0, 64) || 'host';

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

describe('run directories', () => {
  let tmp: string;
  const clusters: ServeCluster[] = [];

  beforeAll(() => {
    buildIfStale();
    tmp = mkdtempSync(join(tmpdir(), 'ol-rundir-'));
  });

  afterAll(() => {
    for (const sc of clusters) sc.kill();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("the first one of a prefix removes the directories of this host's processes that are gone, only those", () => {
    const dir = join(tmp, 'unit');
    mkdirSync(dir);
    const dead = deadPid();
    const stale = join(dir, `originlink-quic-${HOST}-${dead}-abc123`);
    const alive = join(dir, `originlink-quic-${HOST}-${process.pid}-abc123`);
    const elsewhere = join(dir, `originlink-quic-otherhost-${dead}-abc123`);
    const other = join(dir, `originlink-fleet-${HOST}-${dead}-abc123`);
    const file = join(dir, `originlink-quic-${HOST}-${dead}-file`);
    for (const d of [stale, alive, elsewhere, other]) mkdirSync(d);
    writeFileSync(join(stale, 'cert.pem'), 'x');
    writeFileSync(file, 'x');
    const made = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { makeRunDir } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'util', 'run-dir.js')).href)});
        const a = makeRunDir('originlink-quic');
        console.log(JSON.stringify({ a, mode: (await import('node:fs')).statSync(a).mode & 0o777 }));`,
      ],
      { encoding: 'utf8', env: { ...process.env, TMPDIR: dir } },
    );
    const { a, mode } = JSON.parse(made) as { a: string; mode: number };
    expect(a.startsWith(join(dir, `originlink-quic-${HOST}-`))).toBe(true);
    expect(mode).toBe(0o700);
    expect(existsSync(a)).toBe(false); // removed at that process's exit
    expect(existsSync(stale)).toBe(false);
    for (const kept of [alive, elsewhere, other, file]) expect(existsSync(kept)).toBe(true);
  });

  it('a SIGKILLed primary leaves its member sockets; the next primary removes them', async () => {
    const dir = join(tmp, 'serve');
    mkdirSync(dir);
    const env = { ...process.env, TMPDIR: dir };
    const fleetDirs = (): string[] => readdirSync(dir).filter((n) => n.startsWith('originlink-fleet-'));
    const start = async (): Promise<ServeCluster> => {
      const cfg = join(tmp, 'serve.yaml');
      writeFileSync(
        cfg,
        `listeners:\n  - { name: plain, kind: http, host: 127.0.0.1, port: ${await freePort()} }\n` +
          `admin: { host: 127.0.0.1, port: ${await freePort()} }\n` +
          'origins:\n  app: { url: "http://127.0.0.1:9" }\nroutes:\n  - { path: /, origin: app }\n',
      );
      const sc = new ServeCluster(cfg, env);
      clusters.push(sc);
      await sc.serving();
      return sc;
    };
    const first = await start();
    const [left] = fleetDirs();
    expect(left).toBeDefined();
    expect(readdirSync(join(dir, left as string)).sort()).toEqual(['w1.sock', 'w2.sock']);
    first.child.kill('SIGKILL');
    await first.exited;
    first.kill(); // the workers by PID, had they not gone with their primary
    expect(fleetDirs()).toEqual([left]);
    const second = await start();
    const now = fleetDirs();
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(left);
    second.child.kill('SIGTERM');
    await until(
      'the primary to exit',
      () => second.child.exitCode,
      (c) => c !== null,
      15_000,
    );
    second.kill();
    expect(fleetDirs()).toEqual([]);
  }, 60_000);
});
