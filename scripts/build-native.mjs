#!/usr/bin/env node
// Builds the optional native addons (native/tfo: TCP Fast Open; native/udp: UDP GSO batch send) with node-gyp.
// Never fails the install: when a build is impossible it prints one line and exits 0,
// and the transports run without them (no TFO; QUIC sends packet by packet). Skips the build when the .node file is newer
// than every source file. ORIGINLINK_NO_NATIVE=1 skips building altogether.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ADDONS = [
  { name: 'tfo', dir: join(root, 'native', 'tfo'), without: 'continuing without TCP Fast Open' },
  { name: 'udp', dir: join(root, 'native', 'udp'), without: 'QUIC sends one packet per syscall' },
];
const BUILD_TIMEOUT_MS = 180_000;
const force = process.argv.includes('--force');

function newestSourceMtime(dir) {
  let newest = 0;
  const walk = (d) => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      if (ent.name === 'build' || ent.name === 'node_modules') continue;
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

function upToDate(addon) {
  const out = join(addon.dir, 'build', 'Release', `${addon.name}.node`);
  return existsSync(out) && statSync(out).mtimeMs >= newestSourceMtime(addon.dir);
}

// node-gyp ships inside npm; prefer that copy (no download), then a local one.
function findNodeGyp() {
  const candidates = [];
  const npmExec = process.env.npm_execpath;
  if (npmExec) candidates.push(join(dirname(npmExec), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  return candidates.find((p) => existsSync(p)) ?? null;
}

// Headers installed next to the running node (e.g. /usr/include/node) avoid a header download.
function findNodeDir() {
  const fromEnv = process.env.npm_config_nodedir;
  if (fromEnv && existsSync(join(fromEnv, 'include', 'node', 'node_api.h'))) return fromEnv;
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return null;
}

function onPath(cmd) {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, cmd)));
}

// node-gyp needs python3, make and a C compiler; naming the missing one beats a gyp stack trace.
function missingTool() {
  if (!process.env.PYTHON && !onPath('python3') && !onPath('python')) return 'python3';
  if (!onPath('make')) return 'make';
  const cc = process.env.CC?.split(' ')[0];
  if (cc ? !existsSync(cc) && !onPath(cc) : !onPath('cc') && !onPath('gcc')) return 'a C compiler (cc/gcc)';
  return null;
}

// The first compiler error or gyp stack error line says why; the tail only says "not ok".
function reason(text) {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('gyp info'));
  const pick =
    lines.find((l) => /\berror:/.test(l) && !l.startsWith('gyp ERR!')) ??
    lines.find((l) => l.startsWith('gyp ERR! stack Error:')) ??
    lines.find((l) => l.startsWith('gyp ERR!'));
  return (pick ?? 'node-gyp failed').slice(0, 240);
}

function build(addon) {
  if (process.platform !== 'linux') return `skipped (${process.platform}: the ${addon.name} addon is Linux-only)`;
  if (!force && upToDate(addon)) return 'up to date';
  const gyp = findNodeGyp();
  if (!gyp) return 'cannot build: node-gyp not found';
  const missing = missingTool();
  if (missing) return `cannot build: ${missing} not found on PATH`;
  const args = [gyp, 'rebuild'];
  const nodedir = findNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const r = spawnSync(process.execPath, args, {
    cwd: addon.dir,
    encoding: 'utf8',
    timeout: BUILD_TIMEOUT_MS,
    env: { ...process.env, JOBS: '1' },
  });
  if (r.error) return `cannot build: ${r.error.message}`;
  if (r.status !== 0) return `cannot build: ${reason(`${r.stdout}\n${r.stderr}`)}`;
  return upToDate(addon) ? 'built' : 'cannot build: node-gyp succeeded but produced no .node file';
}

for (const addon of ADDONS) {
  if (process.env.ORIGINLINK_NO_NATIVE === '1') {
    console.log(`originlink: native ${addon.name} addon skipped (ORIGINLINK_NO_NATIVE=1)`);
    continue;
  }
  let result;
  try {
    result = build(addon);
  } catch (err) {
    result = `cannot build: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (result.startsWith('cannot build')) {
    console.log(`originlink: native ${addon.name} addon ${result}; ${addon.without}`);
  } else if (result !== 'up to date') {
    console.log(`originlink: native ${addon.name} addon ${result}`);
  }
}
process.exitCode = 0;
