#!/usr/bin/env node
// Builds the optional native addons (native/tfo: TCP Fast Open; native/udp: UDP GSO batch send) with node-gyp, and
// native/quic (our QUIC binding over quiche, a Rust crate) with cargo.
// Never fails the install: when a build is impossible it prints one line and exits 0,
// and the transports run without them (no TFO; QUIC sends packet by packet; HTTP/3 on the prebuilt
// @matrixai/quic-linux-x64 binding). Skips a build when its .node file is newer than every source file.
// ORIGINLINK_NO_NATIVE=1 skips building altogether.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
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
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('gyp info'));
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

// ---- native/quic: cargo ----

/**
 * Cargo's target directory is shared by every install of this user (CARGO_TARGET_DIR wins): a cold build compiles
 * BoringSSL and quiche (minutes), a later install of another copy of the package (a tarball, another checkout) reuses
 * them and compiles only this crate. Cargo locks the directory while it builds.
 */
const QUIC_TARGET =
  process.env.CARGO_TARGET_DIR ||
  join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'originlink', 'quic-target');
const QUIC = {
  dir: join(root, 'native', 'quic'),
  out: join(root, 'native', 'quic', 'build', 'quic.node'),
  lib: join(QUIC_TARGET, 'release', 'liboriginlink_quic.so'),
  without: 'HTTP/3 uses the prebuilt @matrixai/quic-linux-x64 binding',
};
/** quiche's rust-version (its Cargo.toml): older toolchains cannot build it. */
const QUIC_MIN_RUST = [1, 88];
/** A cold build (BoringSSL with cmake, quiche, napi) takes ~2.5 min on 2 cores; this bounds a stuck one. */
const QUIC_BUILD_TIMEOUT_MS = 20 * 60_000;
/** Debian packages the crate's build needs: cmake + a C/C++ compiler for BoringSSL, libclang for bindgen, git for boring-sys's patches. */
const QUIC_DEBIAN_DEPS = ['cmake', 'g++', 'make', 'libclang-dev', 'git'];

function quicSources() {
  const files = ['Cargo.toml', 'Cargo.lock', 'build.rs'].map((f) => join(QUIC.dir, f)).filter((f) => existsSync(f));
  const walk = (d) => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  if (existsSync(join(QUIC.dir, 'src'))) walk(join(QUIC.dir, 'src'));
  return files;
}

function quicUpToDate() {
  if (!existsSync(QUIC.out)) return false;
  const built = statSync(QUIC.out).mtimeMs;
  return quicSources().every((f) => statSync(f).mtimeMs <= built);
}

function findCargo() {
  const dirs = [process.env.CARGO_HOME ? join(process.env.CARGO_HOME, 'bin') : null, join(homedir(), '.cargo', 'bin')];
  for (const d of (process.env.PATH ?? '').split(':')) if (d !== '') dirs.push(d);
  for (const d of dirs)
    if (d && existsSync(join(d, 'cargo')))
      return { cargo: join(d, 'cargo'), rustc: existsSync(join(d, 'rustc')) ? join(d, 'rustc') : 'rustc' };
  return null;
}

function rustVersion(rustc) {
  const r = spawnSync(rustc, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const m = /rustc (\d+)\.(\d+)/.exec(r.stdout ?? '');
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** As root on Debian: install what the build needs and is missing (one dpkg-query when all is there). */
function debianDeps() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  if (!existsSync('/usr/bin/dpkg-query') || !existsSync('/usr/bin/apt-get')) return null;
  const q = spawnSync('/usr/bin/dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\n', ...QUIC_DEBIAN_DEPS], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  const installed = new Set(
    (q.stdout ?? '')
      .split('\n')
      .filter((l) => l.endsWith(' installed'))
      .map((l) => l.split(' ')[0]),
  );
  const missing = QUIC_DEBIAN_DEPS.filter((p) => !installed.has(p));
  if (missing.length === 0) return null;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync('/usr/bin/apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], {
      encoding: 'utf8',
      timeout: 600_000,
      env,
    });
  let r = install();
  if (r.status !== 0) {
    spawnSync('/usr/bin/apt-get', ['update', '-q'], { encoding: 'utf8', timeout: 300_000, env });
    r = install();
  }
  return r.status === 0 ? `installed ${missing.join(' ')}` : `could not install ${missing.join(' ')}`;
}

/** cargo in its own process group, killed as a group past the time limit. */
function runCargo(cargo, args) {
  return new Promise((res) => {
    const env = { ...process.env, CARGO_TARGET_DIR: QUIC_TARGET };
    const child = spawn(cargo, args, { cwd: QUIC.dir, env, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      err = (err + d.toString()).slice(-20_000);
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, QUIC_BUILD_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      res({ status: null, err: e.message });
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      res({ status, signal, err });
    });
  });
}

function cargoReason(text) {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const pick =
    lines.find((l) => /^error(\[E\d+\])?:/.test(l)) ?? lines.find((l) => /\berror\b/i.test(l)) ?? lines.at(-1);
  return (pick ?? 'cargo failed').slice(0, 240);
}

async function buildQuic() {
  if (process.platform !== 'linux') return `skipped (${process.platform}: only Linux builds are set up)`;
  if (!existsSync(join(QUIC.dir, 'Cargo.toml'))) return 'skipped (no crate sources)';
  if (!force && quicUpToDate()) return 'up to date';
  const found = findCargo();
  if (!found) return 'cannot build: no Rust toolchain (cargo) found';
  const v = rustVersion(found.rustc);
  if (v && (v[0] < QUIC_MIN_RUST[0] || (v[0] === QUIC_MIN_RUST[0] && v[1] < QUIC_MIN_RUST[1]))) {
    return `cannot build: rustc ${v.join('.')} is older than quiche's ${QUIC_MIN_RUST.join('.')}`;
  }
  const deps = debianDeps();
  const started = performance.now();
  const r = await runCargo(found.cargo, ['build', '--release', '--locked', '-j2']);
  const secs = Math.round((performance.now() - started) / 1000);
  if (r.signal === 'SIGKILL')
    return `cannot build: cargo build did not finish in ${QUIC_BUILD_TIMEOUT_MS / 60_000} min`;
  if (r.status !== 0) return `cannot build: ${cargoReason(r.err)}${deps ? ` (${deps})` : ''}`;
  if (!existsSync(QUIC.lib)) return 'cannot build: cargo succeeded but produced no library';
  // Copy, then rename: a process loading the old file never sees a half-written one.
  const tmp = `${QUIC.out}.tmp`;
  mkdirSync(dirname(QUIC.out), { recursive: true });
  copyFileSync(QUIC.lib, tmp);
  renameSync(tmp, QUIC.out);
  return `built in ${secs} s${deps ? ` (${deps})` : ''}`;
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
if (process.env.ORIGINLINK_NO_NATIVE === '1') {
  console.log('originlink: native quic addon skipped (ORIGINLINK_NO_NATIVE=1)');
} else {
  let result;
  try {
    result = await buildQuic();
  } catch (err) {
    result = `cannot build: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (result.startsWith('cannot build')) console.log(`originlink: native quic addon ${result}; ${QUIC.without}`);
  else if (result !== 'up to date') console.log(`originlink: native quic addon ${result}`);
}
process.exitCode = 0;
