// The loader of a bundle compiled through V8's code cache (scripts/bundle.mjs writes its text into each ES module
// stub it makes: dist/bundle/index.js, the library; the command table's, inside dist/bundle/main.cjs). Its text
// is copied, so it imports nothing: `io` brings what it uses.
//
// A cache is made by a run of the real thing: a process started with ORIGINLINK_CODE_CACHE_OUT=DIR writes, at its exit, the
// cache of each bundle it loaded to DIR/<name>.cache — the bytecode of every function that run compiled, its import
// and the requests it made. V8 takes a cache only for the same source, V8 version and V8 flags, so the training run
// is started with the flags the bundle runs under; anywhere else V8 compiles as usual.

/**
 * What compileCached uses, as a stub takes it: through `process.getBuiltinModule` (Node ≥ 20.16), not an ES module
 * import — that makes Node build a module facade of the built-in's exports, and `createRequire` a require function:
 * a cost at every fresh import (bench/RESULTS.md `startup`).
 */
export const LOADER_IMPORTS = `const { readFileSync, renameSync, writeFileSync } = process.getBuiltinModule('node:fs');
const { createRequire } = process.getBuiltinModule('node:module');
const { fileURLToPath } = process.getBuiltinModule('node:url');
const { Script } = process.getBuiltinModule('node:vm');`;
/** The `io` argument of compileCached, in a stub that has LOADER_IMPORTS. */
export const LOADER_IO =
  '{ readFileSync, renameSync, writeFileSync, createRequire, fileURLToPath, Script, env: process.env }';

/**
 * The first and last lines scripts/bundle.mjs gives each file it loads (NAME.cjs): the CommonJS module wrapper, so
 * the file's text is what V8 compiles. A wrapper added here would copy the whole text into a second string (~0.5 MB
 * a bundle), allocated in V8's young generation like the first: a scavenge earlier in every fresh process.
 */
export const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname) {\n';
export const WRAPPER_TAIL = '\n})';

/**
 * Compiles `file` (the URL of a wrapped CommonJS file, NAME.cjs: WRAPPER_HEAD) with the V8 code cache NAME.cache
 * beside it when one fits, runs it as a CommonJS module and returns `{ exports, cached }` (`cached`: V8 took the
 * cache). Under `--enable-source-maps` Node's own loader compiles it instead (as the value of `module.exports`, on
 * the wrapper's line: the map's lines hold), without the cache: Node maps the stack traces of what its loader
 * compiled (to src/, through NAME.cjs.map), not of a vm.Script's.
 */
export function compileCached(io, file) {
  const path = io.fileURLToPath(file);
  const dir = path.slice(0, path.lastIndexOf('/'));
  const run = (wrapper) => {
    const module = { exports: {} };
    wrapper.call(module.exports, module.exports, io.createRequire(path), module, path, dir);
    return module.exports;
  };
  if (process.sourceMapsEnabled) {
    const { Module } = process.getBuiltinModule('node:module');
    const loader = new Module(path);
    loader.filename = path;
    loader._compile(`module.exports = ${io.readFileSync(path, 'latin1')}`, path);
    return { exports: run(loader.exports), cached: false };
  }
  const name = path.slice(dir.length + 1).replace(/\.cjs$/, '');
  let cachedData;
  try {
    cachedData = io.readFileSync(`${dir}/${name}.cache`);
  } catch {
    // No cache (a build without one): compiled as any file is.
  }
  // The bundle is ASCII (scripts/bundle.mjs checks): read as latin1, without UTF-8's decoding (~3 ms a megabyte).
  const source = io.readFileSync(path, 'latin1');
  const script = new io.Script(source, { filename: path, cachedData });
  const out = io.env.ORIGINLINK_CODE_CACHE_OUT;
  if (out)
    process.once('exit', () => {
      const to = `${out}/${name}.cache`;
      io.writeFileSync(`${to}.${process.pid}`, script.createCachedData());
      io.renameSync(`${to}.${process.pid}`, to);
    });
  return {
    exports: run(script.runInThisContext()),
    cached: cachedData !== undefined && script.cachedDataRejected === false,
  };
}
