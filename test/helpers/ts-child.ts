/**
 * Child scripts that import the project's TypeScript sources directly (so they
 * never depend on a stale dist/): writes Node module hooks that transpile `.ts`
 * on load and map `./x.js` imports inside `.ts` files to `./x.ts`, and returns
 * the `node --import …` arguments that install them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..', '..');
const TS_LIB = pathToFileURL(join(ROOT, 'node_modules/typescript/lib/typescript.js')).href;

const HOOKS = `
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from ${JSON.stringify(TS_LIB)};
export async function resolve(specifier, context, next) {
  try { return await next(specifier, context); }
  catch (err) {
    if (specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) return next(specifier.slice(0, -3) + '.ts', context);
    throw err;
  }
}
export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const fileName = fileURLToPath(url);
  const out = ts.transpileModule(readFileSync(fileName, 'utf8'), {
    fileName,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  });
  return { format: 'module', source: out.outputText, shortCircuit: true };
}
`;

/** Write hooks.mjs + register.mjs into `dir`; returns the node arguments that load them before a script. */
export function writeTsHooks(dir: string): string[] {
  writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
  writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`);
  return ['--import', join(dir, 'register.mjs')];
}
