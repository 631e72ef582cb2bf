// Node built-ins a bundle loads when first used, not when it is imported (scripts/bundle.mjs applies it to each
// CommonJS bundle esbuild writes). An import of the package would otherwise load `tls`, `net`, `crypto` and
// `dns/promises` for requests it has not made yet (bench/RESULTS.md `startup` measures what that costs a fresh
// process); the same idea as the "inline requires" of Meta's Metro bundler, done on the bundle's text so that the
// source keeps its ordinary static imports and tsc's dist/ modules stay as they are.
//
// esbuild turns `import tls from 'node:tls'` into `import_node_tls=__toESM(require("node:tls"),1)` and every use into
// a property read on that variable (`import_node_tls.default.connect`, `(0,import_node_crypto.createHash)`). Each such
// `require("node:X")` becomes `lazyMod("node:X")` — the same length, so the source map's columns still hold — which
// returns an object with a getter for every name the bundle reads from X; the first read loads X. A variable used in
// any other way (passed whole, spread) makes the build fail here rather than load late and wrongly.

/**
 * The built-ins loaded late: what a fresh import loaded and no import needs, and `cluster`, which only `serve
 * --workers` and its workers use (src/service/worker-slot.ts). Our classes that extend a `stream` class extend a
 * stand-in until their first instance (src/util/lazy-base.ts).
 */
export const LAZY_BUILTINS = [
  'node:tls',
  'node:net',
  'node:crypto',
  'node:dns/promises',
  'node:dgram',
  'node:os',
  'node:stream',
  'node:cluster',
];

const FN = 'lazyMod';

/**
 * `text` (a CommonJS bundle by esbuild) with LAZY_BUILTINS loaded at their first use. `packageForm`: also (only) the
 * form an npm package compiled by TypeScript has in a bundle, `var tls_1=require("tls")` (dist/bundle/ioredis.cjs).
 */
export function lazyBuiltins(text, builtins = LAZY_BUILTINS, packageForm = false) {
  if (new RegExp(`\\b${FN}\\b`).test(text)) throw new Error(`lazy-builtins: the bundle already names ${FN}`);
  if ('require'.length !== FN.length) throw new Error('lazy-builtins: the replacement must keep the columns');
  const wanted = new Set(builtins);
  const decl = packageForm
    ? /\bvar ([\w$]+_1)=()require\("([\w/]+)"\)/g
    : /\b(import_[\w$]+)=(__toESM\()?require\("(node:[\w/]+)"\)/g;
  /** Per built-in, the names read from it. */
  const names = new Map();
  const vars = [];
  for (const m of text.matchAll(decl)) {
    if (!wanted.has(m[3])) continue;
    const at = m.index + m[0].indexOf(m[1]);
    vars.push({ name: m[1], id: m[3], esm: m[2] !== undefined && m[2] !== '', at });
    if (!names.has(m[3])) names.set(m[3], new Set());
  }
  // The same name may be declared by several modules of the bundle (each package module has its own `tls_1`).
  const declaredAt = new Set(vars.map((v) => v.at));
  // esbuild declares a lazily initialised module's variables up front (`var import_promises,import_node_net;`).
  const declared = new Set();
  for (const m of text.matchAll(/\bvar ((?:[\w$]+,)*[\w$]+);/g)) {
    let at = m.index + 'var '.length;
    for (const name of m[1].split(',')) {
      declared.add(at);
      at += name.length + 1;
    }
  }
  for (const v of vars) {
    const read = new Set(names.get(v.id));
    // Every use but the declaration: `.name`, or `.default.name` where the import was a default one.
    const use = new RegExp(`\\b${v.name.replace(/\$/g, '\\$')}\\b(\\.default)?(\\.([\\w$]+))?`, 'g');
    for (const u of text.matchAll(use)) {
      if (declaredAt.has(u.index) || declared.has(u.index)) continue;
      const member = u[3];
      if (member === undefined || (u[1] === undefined && member === 'default') || (u[1] !== undefined && !v.esm))
        throw new Error(`lazy-builtins: ${v.name} (${v.id}) is used as a whole at ${u.index}: cannot load it late`);
      read.add(member);
    }
    names.set(v.id, read);
  }
  let out = text;
  // From the end, so the positions found stay valid.
  for (const v of [...vars].sort((a, b) => b.at - a.at)) {
    const at = out.indexOf('require("', v.at);
    out = `${out.slice(0, at)}${FN}${out.slice(at + 'require'.length)}`;
  }
  if (vars.length === 0) return out;
  const table = JSON.stringify(Object.fromEntries([...names].map(([id, set]) => [id, [...set].sort()])));
  // A function declaration: hoisted, so callable from the top of the bundle though it is written after everything
  // the source map describes. The module is loaded on the first read of any of its names; the getters stay live
  // (a built-in's mutable properties, `tls.DEFAULT_MIN_VERSION`, read as they are then).
  const fn = `function ${FN}(id){const made=${FN}.made??=new Map();let o=made.get(id);if(o!==undefined)return o;let mod;o={};for(const k of ${table}[id])Object.defineProperty(o,k,{enumerable:true,get(){return(mod??=require(id))[k]}});made.set(id,o);return o}`;
  const map = out.lastIndexOf('\n//# sourceMappingURL=');
  return map === -1 ? `${out}\n${fn}\n` : `${out.slice(0, map)}\n${fn}${out.slice(map)}`;
}
