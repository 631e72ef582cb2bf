// Where bench scripts load the product from: dist/ (npx tsc -p .), or a
// snapshot named by BENCH_DIST (a build other work cannot rewrite mid-run:
// `npx tsc -p . --outDir .tmp/bench-dist`). A snapshot outside dist/ cannot
// find the native addons by their relative paths, so they are named explicitly.
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fromEnv = process.env.BENCH_DIST;
export const DIST = fromEnv ? (isAbsolute(fromEnv) ? fromEnv : join(ROOT, fromEnv)) : join(ROOT, 'dist');
if (fromEnv) {
  process.env.ORIGINLINK_TFO_ADDON ??= join(ROOT, 'native', 'tfo', 'build', 'Release', 'tfo.node');
  process.env.ORIGINLINK_UDP_ADDON ??= join(ROOT, 'native', 'udp', 'build', 'Release', 'udp.node');
  // Our QUIC engine, where it was built; else the snapshot takes the fallback engine as a fresh install would.
  if (
    process.env.ORIGINLINK_QUIC_ENGINE !== 'matrixai' &&
    existsSync(join(ROOT, 'native', 'quic', 'build', 'quic.node'))
  ) {
    process.env.ORIGINLINK_QUIC_BINDING ??= join(ROOT, 'native', 'quic', 'build', 'quic.node');
  }
}

export const dist = (rel) => import(join(DIST, rel));
