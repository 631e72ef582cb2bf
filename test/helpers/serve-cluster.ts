/**
 * `originlink serve --workers 2` as a child process for the tests: its JSON log lines, the worker pids it reported
 * (killed by PID at the end, never by name), and a bounded wait on a condition that returns what it saw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, ROOT } from './build.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll until `check` passes (bounded); returns its last value. */
export async function until<T>(
  what: string,
  fn: () => Promise<T> | T,
  check: (v: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 1000; i++) {
    const v = await fn();
    if (check(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** `serve --workers 2` as a child; its JSON log lines; the worker pids it reported (for cleanup). */
export class ServeCluster {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly pids = new Set<number>();
  #out = '';
  constructor(cfgFile: string, env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(process.execPath, [CLI, 'serve', '--config', cfgFile, '--workers', '2'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d) => {
      this.#out += String(d);
    });
    this.child.stderr?.on('data', (d) => {
      this.#out += String(d);
    });
    this.exited = new Promise((r) =>
      this.child.once('exit', (code, signal) => {
        // Said in the test output: a primary that goes away unasked leaves its last words here (one such, once in ~20
        // runs: a config whose listener and admin ports freePort() had given alike, refused; ports.ts now never hands
        // a port out twice).
        console.log(
          `serve --workers exited: code ${code}, signal ${signal}; last lines: ${this.#out
            .split('\n')
            .filter((l) => l && !l.includes('"msg":"request"'))
            .slice(-8)
            .join('\n')}`,
        );
        r(code);
      }),
    );
  }
  lines(): Array<Record<string, unknown>> {
    return this.#out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  /** The primary's "serving" line; fails as soon as the primary exits instead (a refused config: exit 78). */
  serving(): Promise<unknown> {
    let served = false;
    const gone = this.exited.then((code) => {
      if (!served) throw new Error(`serve --workers exited (code ${code}) before it served: ${this.#out.slice(-400)}`);
    });
    return Promise.race([
      until(
        'the primary to serve',
        () => this.lines(),
        (ls) => ls.some((l) => l['role'] === 'primary' && l['msg'] === 'originlink serving'),
        20_000,
      ).then((v) => {
        served = true;
        return v;
      }),
      gone,
    ]);
  }
  /** Only processes this test started: the primary, and the workers it reported. */
  kill(): void {
    for (const l of this.lines()) if (typeof l['workerPid'] === 'number') this.pids.add(l['workerPid']);
    for (const l of this.lines())
      if (Array.isArray(l['workerPids'])) for (const p of l['workerPids'] as number[]) this.pids.add(p);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}
