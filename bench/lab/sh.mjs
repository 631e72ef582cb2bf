// Process helpers for the lab: run a command to completion, read JSON lines.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export class LabError extends Error {
  /** @param {string} code @param {string} message @param {object} [detail] */
  constructor(code, message, detail) {
    super(message);
    this.name = 'LabError';
    this.code = code;
    if (detail !== undefined) this.detail = detail;
  }
}

/**
 * Runs argv[0] with argv[1..] and resolves with its output. Rejects with a
 * LabError('LAB_CMD') on a non-zero exit unless allowFail; kills the child by
 * pid with SIGKILL after timeoutMs.
 */
export function run(argv, opts = {}) {
  const { input, timeoutMs = 30_000, env, cwd, allowFail = false, track } = opts;
  const [cmd, ...args] = argv;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: env ?? process.env,
      cwd,
    });
    track?.(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killQuietly(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new LabError(err.code === 'ENOENT' ? 'LAB_MISSING_TOOL' : 'LAB_CMD', `${cmd}: ${err.message}`, { argv }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res = { code, signal, stdout, stderr, durationMs: performance.now() - started, timedOut };
      if ((code === 0 && !timedOut) || allowFail) return resolve(res);
      const why = timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${code ?? signal}`;
      reject(new LabError('LAB_CMD', `${argv.join(' ')} ${why}: ${stderr.trim().slice(-500)}`, res));
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

/** Sends a signal to a pid, ignoring ESRCH (already gone). Returns whether it was delivered. */
export function killQuietly(pid, signal = 'SIGTERM') {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether pid is a running process. A zombie counts as gone: it holds no
 * resources any more, and one whose parent exited waits for init to reap it.
 */
export function pidAlive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Parses every stdout line that is a JSON object; other lines are skipped. */
export function jsonLines(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      out.push(JSON.parse(t));
    } catch {
      // not JSON: plain log output from the program
    }
  }
  return out;
}

/**
 * Calls onJson for each JSON line a child writes on stdout, keeping the raw
 * text too. Returns an accessor for all lines seen so far.
 */
export function watchJson(child, onJson) {
  const seen = [];
  let buf = '';
  child.stdout?.setEncoding('utf8').on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const [obj] = jsonLines(line);
      if (obj !== undefined) {
        seen.push(obj);
        onJson?.(obj);
      }
    }
  });
  return () => seen;
}

/** Resolves with the first JSON line matching pred, rejects on exit or timeout. */
export function waitForJson(child, pred, timeoutMs, what = 'line') {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d) => {
      stderr += d;
    });
    const done = (fn, v) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      fn(v);
    };
    const onExit = (code, signal) =>
      done(
        reject,
        new LabError(
          'LAB_CHILD_EXIT',
          `process exited with ${code ?? signal} before ${what}: ${stderr.trim().slice(-500)}`,
        ),
      );
    const timer = setTimeout(
      () =>
        done(reject, new LabError('LAB_TIMEOUT', `no ${what} within ${timeoutMs} ms: ${stderr.trim().slice(-500)}`)),
      timeoutMs,
    );
    child.on('exit', onExit);
    watchJson(child, (obj) => {
      if (pred(obj)) done(resolve, obj);
    });
  });
}
