// One loader for the library's code cache, written into dist/bundle/index.js by scripts/bundle.mjs (as its text)
// and run by scripts/code-cache-train.mjs, which makes the cache: V8 takes a cache only for the very source it was
// made from, so both must wrap the file alike. Its text is copied, so it imports nothing: `io` brings what it uses.

/** What compileLibrary uses, as the stub and the trainer import it. */
export const LOADER_IMPORTS = `import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';`;

/**
 * Compiles `file` (the URL of a CommonJS file) with the V8 code cache at `cacheFile` when one fits, runs it as a
 * CommonJS module and returns `{ exports, script, cached }` (`cached`: V8 took the cache).
 */
export function compileLibrary(io, file, cacheFile) {
  const path = io.fileURLToPath(file);
  let cachedData;
  try {
    cachedData = io.readFileSync(io.fileURLToPath(cacheFile));
  } catch {
    // No cache (a build without one): compiled as any file is.
  }
  const source = io.readFileSync(path, 'utf8');
  const script = new io.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: path,
    cachedData,
  });
  const module = { exports: {} };
  script
    .runInThisContext()
    .call(module.exports, module.exports, io.createRequire(path), module, path, path.slice(0, path.lastIndexOf('/')));
  return { exports: module.exports, script, cached: cachedData !== undefined && script.cachedDataRejected === false };
}
