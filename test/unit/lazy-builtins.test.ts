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

  it('in a package\'s form (`var tls_1=require("tls")`, one name in several modules), loads it at its first read', () => {
    const pkg = [
      'var init_r=()=>{};var m1=()=>{var tls_1=require("tls");var os=require("os");exports.c=()=>tls_1.connect;};',
      'var m2=()=>{var tls_1=require("tls");var crypto_1=require("crypto");',
      'exports.h=()=>(0,crypto_1.createHash)("sha256").update("a").digest("hex");exports.t=()=>tls_1.TLSSocket;};',
      'm1();m2();',
    ].join('\n');
    const out = lazyBuiltins(pkg, ['tls', 'crypto'], true);
    for (const [i, line] of pkg.split('\n').entries()) expect(out.split('\n')[i].length).toBe(line.length);
    const { exports, loads } = run(out);
    expect(loads).toEqual(['os']);
    expect(exports.h()).toMatch(/^ca978112/);
    expect(exports.c()).toBe(createRequire(import.meta.url)('tls').connect);
    expect(exports.t()).toBe(createRequire(import.meta.url)('tls').TLSSocket);
    expect(loads).toEqual(['os', 'crypto', 'tls']);
    expect(() => lazyBuiltins(`${pkg}\nexports.all=()=>tls_1;`, ['tls'], true)).toThrow(/used as a whole/);
  });

  it('refuses a built-in used whole, and a bundle that already names the loader', () => {
    expect(() => lazyBuiltins(`${BUNDLE}\nexports.all=()=>import_node_crypto;`)).toThrow(/used as a whole/);
    expect(() => lazyBuiltins(`${BUNDLE}\nexports.tls=()=>import_node_tls.default;`)).toThrow(/used as a whole/);
    expect(() => lazyBuiltins(`${BUNDLE}\nfunction lazyMod(){}`)).toThrow(/already names/);
  });
});
