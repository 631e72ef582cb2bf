/**
 * scripts/lazy-builtins.mjs on esbuild's CommonJS forms: each `require("node:X")` of a lazy built-in becomes a call of
 * the same length (the source map's columns hold), the module loads at the first read of a name, and a variable used
 * whole makes the build fail instead of loading late and wrongly.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { lazyBuiltins } from '../../scripts/lazy-builtins.mjs';

const BUNDLE = [
  'var import_promises,import_node_path;',
  'var init_r=()=>{import_promises=require("node:dns/promises");import_node_path=require("node:path")};',
  'var import_node_tls=__toESM(require("node:tls"),1);var import_node_crypto=require("node:crypto");',
  'exports.hash=(s)=>(0,import_node_crypto.createHash)("sha256").update(s).digest("hex");',
  'exports.tlsConnect=()=>import_node_tls.default.connect;exports.resolver=()=>new import_promises.Resolver();',
].join('\n');

/** `text` run as a CommonJS module with a require that records what it loads; esbuild's __toESM in node mode. */
function run(text: string): { exports: Record<string, () => unknown>; loads: string[] } {
  const loads: string[] = [];
  const real = createRequire(import.meta.url);
  const req = (id: string) => {
    loads.push(id);
    return real(id);
  };
  const toEsm = (mod: object) => {
    const out: Record<string, unknown> = { default: mod };
    for (const k of Object.getOwnPropertyNames(mod))
      if (k !== 'default') Object.defineProperty(out, k, { get: () => (mod as never)[k] });
    return out;
  };
  const module = { exports: {} as Record<string, () => unknown> };
  new Function('exports', 'require', 'module', '__toESM', `${text}\ninit_r();`)(module.exports, req, module, toEsm);
  return { exports: module.exports, loads };
}

describe('lazy built-ins in a bundle', () => {
  it('replaces each require of a lazy built-in in place, and loads it at the first read of a name', () => {
    const out = lazyBuiltins(BUNDLE);
    const lines = out.split('\n');
    // Every line the source map describes keeps its length; the loader is appended.
    for (const [i, line] of BUNDLE.split('\n').entries()) expect(lines[i].length).toBe(line.length);
    expect(out).not.toMatch(/require\("node:(tls|crypto|dns\/promises)"\)/);
    expect(out).toContain('require("node:path")');
    const { exports, loads } = run(out);
    expect(loads).toEqual(['node:path']);
    expect(exports.hash('a')).toMatch(/^ca978112/);
    expect(loads).toEqual(['node:path', 'node:crypto']);
    expect(exports.tlsConnect()).toBe(createRequire(import.meta.url)('node:tls').connect);
    expect(exports.resolver()).toBeInstanceOf(createRequire(import.meta.url)('node:dns/promises').Resolver);
    expect(loads).toEqual(['node:path', 'node:crypto', 'node:tls', 'node:dns/promises']);
    // Loaded once each.
    exports.hash('b');
    expect(loads.length).toBe(4);
  });

  it('refuses a built-in used whole, and a bundle that already names the loader', () => {
    expect(() => lazyBuiltins(`${BUNDLE}\nexports.all=()=>import_node_crypto;`)).toThrow(/used as a whole/);
    expect(() => lazyBuiltins(`${BUNDLE}\nexports.tls=()=>import_node_tls.default;`)).toThrow(/used as a whole/);
    expect(() => lazyBuiltins(`${BUNDLE}\nfunction lazyMod(){}`)).toThrow(/already names/);
  });
});
