/**
 * The service's log destination (service/log-destination.ts): synchronous
 * writes to a regular file or /dev/null, asynchronous ones to a pipe, decided
 * from what the descriptor is. Each case runs a child whose standard output
 * is that kind of file and which reports on standard error.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const dist = pathToFileURL(join(process.cwd(), 'dist', 'service', 'log-destination.js')).href;
// The child logs one line through the destination and tells on stderr whether it was made synchronous.
const child = `import(${JSON.stringify(dist)}).then(async ({ logDestination, writesSynchronously }) => {
  const d = logDestination(1);
  d.write('{"msg":"hello"}\\n');
  process.stderr.write(JSON.stringify({ sync: writesSynchronously(1), boom: d.sync }));
  d.flushSync?.();
});`;
const dir = mkdtempSync(join(tmpdir(), 'ol-logdest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(stdout: 'pipe' | number): { report: { sync: boolean; boom: boolean }; out: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], {
    stdio: ['ignore', stdout, 'pipe'],
    encoding: 'utf8',
    timeout: 10_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return { report: JSON.parse(r.stderr) as { sync: boolean; boom: boolean }, out: r.stdout ?? '' };
}

describe('logDestination', () => {
  it('writes a regular file synchronously, and the line is there', () => {
    const file = join(dir, 'out.log');
    const fd = openSync(file, 'w');
    try {
      expect(run(fd).report).toEqual({ sync: true, boom: true });
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(file, 'utf8')).toBe('{"msg":"hello"}\n');
  });

  it('writes /dev/null synchronously', () => {
    const fd = openSync('/dev/null', 'w');
    try {
      expect(run(fd).report).toEqual({ sync: true, boom: true });
    } finally {
      closeSync(fd);
    }
  });

  it('writes a pipe asynchronously (a stalled reader must not stall the event loop), and the line arrives', () => {
    const r = run('pipe');
    expect(r.report).toEqual({ sync: false, boom: false });
    expect(r.out).toBe('{"msg":"hello"}\n');
  });
});
