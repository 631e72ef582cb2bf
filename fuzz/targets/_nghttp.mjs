// nghttp2's HPACK and nghttp3's QPACK decoders for the differential targets (fuzz/native/nghttp-diff.c).
// Built here with gcc on first use into .fuzz/build/ (again when the source is newer); needs the Debian
// packages libnghttp2-dev and libnghttp3-dev (scripts/ensure-peers.mjs installs them). native-notes/nghttp-diff.md.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'fuzz', 'native', 'nghttp-diff.c');
const out = join(root, '.fuzz', 'build', 'nghttp-diff.node');

function build() {
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return;
  mkdirSync(dirname(out), { recursive: true });
  const nodeInclude = join(dirname(process.execPath), '..', 'include', 'node');
  const tmp = `${out}.${process.pid}`;
  // Another target process may build at the same time: each writes its own file, then renames.
  execFileSync(
    'gcc',
    ['-shared', '-fPIC', '-O2', '-std=gnu11', `-I${nodeInclude}`, '-o', tmp, src, '-lnghttp2', '-lnghttp3'],
    { stdio: 'pipe' },
  );
  renameSync(tmp, out);
}

build();
/** @type {{ hpackDecode(blocks: Buffer[], maxTableSize: number): Array<Array<[string, string]> | number>, qpackDecode(enc: Buffer, section: Buffer, cap: number, blocked: number): [number, Array<[string, string]> | 'blocked' | number | null] }} */
export const nghttp = createRequire(import.meta.url)(out);

/** Two field lists as one comparable string. */
export const show = (fields) => fields.map(([n, v]) => `${JSON.stringify(n)}: ${JSON.stringify(v)}`).join('\n');
