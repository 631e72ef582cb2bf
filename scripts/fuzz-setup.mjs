#!/usr/bin/env node
// Makes Jazzer.js's prebuilt libFuzzer addon load on this machine kind (Debian 12: glibc 2.36, libstdc++
// of GCC 12). The linux-x64 prebuild of @jazzer.js/fuzzer 4 was linked against glibc 2.38 and GCC 13's
// libstdc++; it needs three symbols they added: __isoc23_strtol, __isoc23_strtoul (C23 spellings of
// strtol/strtoul) and std::ios_base_library_init() (GCC 13's iostream start-up). We compile a tiny shim
// providing them (native/fuzz-shim), drop the symbols' version requirements, point the two version
// needs at versions the system has, and add the shim as a needed library next to the addon.
// Idempotent: a marker file records the patched addon's hash. See native-notes/jazzer.md.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const dir = join(dirname(require.resolve('@jazzer.js/fuzzer/package.json')), 'prebuilds');
const addon = join(dir, `fuzzer-${process.platform}-${process.arch}.node`);
const marker = `${addon}.patched`;
const sha = (f) => createHash('sha256').update(readFileSync(f)).digest('hex');

function loads() {
  try {
    execFileSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { stdio: 'pipe' });
    return true;
  } catch (e) {
    return String(e.stderr ?? e.message);
  }
}

if (existsSync(marker) && readFileSync(marker, 'utf8') === sha(addon)) process.exit(0);
// Start from the addon as shipped (a half-patched one from an interrupted run is thrown away).
if (existsSync(`${addon}.orig`)) copyFileSync(`${addon}.orig`, addon);
const first = loads();
if (first === true) {
  writeFileSync(marker, sha(addon));
  process.exit(0);
}
if (process.platform !== 'linux' || process.arch !== 'x64' || !/GLIBC_2\.38|GLIBCXX_3\.4\.32/.test(first)) {
  console.error(`fuzz-setup: the Jazzer.js addon does not load, and not for the known reason:\n${first}`);
  process.exit(1);
}
const shimSrc = join(root, 'native', 'fuzz-shim');
const shim = join(dir, 'libolfuzzshim.so');
execFileSync(
  'g++',
  [
    '-shared',
    '-fPIC',
    '-O2',
    '-o',
    shim,
    '-x',
    'c',
    join(shimSrc, 'isoc23.c'),
    '-x',
    'c++',
    join(shimSrc, 'ios_init.cc'),
  ],
  { stdio: 'inherit' },
);
if (!existsSync(`${addon}.orig`)) copyFileSync(addon, `${addon}.orig`);
copyFileSync(`${addon}.orig`, addon);
execFileSync('patchelf', [
  '--clear-symbol-version',
  '__isoc23_strtol',
  '--clear-symbol-version',
  '__isoc23_strtoul',
  '--clear-symbol-version',
  '_ZSt21ios_base_library_initv',
  addon,
]);
// Two calls: patchelf 0.14 mixes up --add-needed and --set-rpath given together.
execFileSync('patchelf', ['--add-needed', 'libolfuzzshim.so', addon]);
execFileSync('patchelf', ['--set-rpath', '$ORIGIN', addon]);
execFileSync('python3', [join(shimSrc, 'verneed.py'), addon, 'GLIBC_2.38', 'GLIBC_2.2.5']);
execFileSync('python3', [join(shimSrc, 'verneed.py'), addon, 'GLIBCXX_3.4.32', 'GLIBCXX_3.4.30']);
const after = loads();
if (after !== true) {
  console.error(`fuzz-setup: patched, still does not load:\n${after}`);
  process.exit(1);
}
writeFileSync(marker, sha(addon));
console.log('fuzz-setup: Jazzer.js addon patched for this glibc/libstdc++ (native-notes/jazzer.md)');
