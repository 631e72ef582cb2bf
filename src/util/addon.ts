/**
 * A native addon (.node) loaded by `process.dlopen`, once per path and process. `require` of the file does the same
 * after the CommonJS loader's resolution (the path's package scope read, its stat and realpath calls), which costs a
 * fresh process about as much again as the dlopen itself (bench/RESULTS.md `startup`). The cache is process-wide, as
 * require's is, so every copy of these modules in a process (tsc's dist/ modules beside the bundle) shares one
 * binding; a missing file throws as `require` would (`code: 'MODULE_NOT_FOUND'`).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const loaded: Map<string, unknown> = ((globalThis as Record<symbol, Map<string, unknown> | undefined>)[
  Symbol.for('originlink.addons')
] ??= new Map());

export function loadAddon<T>(path: string): T {
  const file = resolve(path);
  let exports = loaded.get(file);
  if (exports === undefined) {
    if (!existsSync(file)) throw Object.assign(new Error(`Cannot find module '${file}'`), { code: 'MODULE_NOT_FOUND' });
    const m = { exports: {} };
    process.dlopen(m, file);
    exports = m.exports;
    loaded.set(file, exports);
  }
  return exports as T;
}
