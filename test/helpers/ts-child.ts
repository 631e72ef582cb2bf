/**
 * Child scripts that import the project's TypeScript sources directly (so they
 * never depend on a stale dist/): writes Node module hooks that transpile `.ts`
 * on load and map `./x.js` imports inside `.ts` files to `./x.ts`, and returns
 * the `node --import …` arguments that install them.
 */
import { type ChildProcess, execFile } from 'node:child_process';
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
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`,
  );
  return ['--import', join(dir, 'register.mjs')];
}

/** The first stdout line of a child script, parsed as JSON (its stderr in the error when it fails or stays silent). */
export function firstJsonLine(child: ChildProcess, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => rej(new Error(`no output within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        res(JSON.parse(out.slice(0, nl)) as Record<string, unknown>);
      } catch (e) {
        rej(new Error(`bad output ${out.slice(0, nl)}; stderr: ${err}; ${String(e)}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`exited ${code} before output; stderr: ${err}`));
    });
  });
}

const CLI = join(ROOT, 'src', 'cli', 'main.ts');

/** `originlink ARGS` from the TypeScript sources (hooks written into `dir` by writeTsHooks); exit code and output. */
export function runCli(
  dir: string,
  args: readonly string[],
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      ['--import', join(dir, 'register.mjs'), CLI, ...args],
      { timeout: timeoutMs },
      (err, stdout, stderr) => {
        res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}
