// Builds the link emulator with the machine's gcc on first use; a no-op when
// bench/lab/build/linkem is newer than linkem.c and linkem.h.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from './sh.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const LINKEM_SRC = join(here, 'linkem.c');
const SOURCES = [LINKEM_SRC, join(here, 'linkem.h')];
export const LINKEM_BIN = join(here, 'build', 'linkem');
export const CFLAGS = ['-O2', '-Wall', '-Wextra', '-std=gnu11'];

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Returns the path of an up-to-date linkem binary, compiling it if needed. */
export function ensureLinkem({ force = false } = {}) {
  if (!force && mtime(LINKEM_BIN) >= Math.max(...SOURCES.map(mtime))) return LINKEM_BIN;
  mkdirSync(dirname(LINKEM_BIN), { recursive: true });
  // Compile to a private name and rename: concurrent builders never see a partial file.
  const tmp = `${LINKEM_BIN}.${process.pid}.tmp`;
  const res = spawnSync('gcc', [...CFLAGS, '-o', tmp, LINKEM_SRC, '-lm'], { encoding: 'utf8' });
  if (res.error) {
    const code = res.error.code === 'ENOENT' ? 'LAB_NO_GCC' : 'LAB_BUILD';
    throw new LabError(
      code,
      code === 'LAB_NO_GCC'
        ? 'gcc not found: the lab builds bench/lab/linkem.c on first use (apt-get install gcc libc6-dev)'
        : `gcc failed to start: ${res.error.message}`,
    );
  }
  if (res.status !== 0) {
    rmSync(tmp, { force: true });
    throw new LabError('LAB_BUILD', `gcc failed building linkem:\n${res.stderr}`);
  }
  renameSync(tmp, LINKEM_BIN);
  return LINKEM_BIN;
}
