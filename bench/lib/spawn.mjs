// Run a node script inside a lab namespace and follow its JSON lines live:
// {"event":"progress", note} lines call onProgress; the result is the last
// JSON line with event "result". Killed (by pid) after timeoutMs.
import { createInterface } from 'node:readline';

export function runScript(lab, ns, script, arg, { onProgress = () => {}, timeoutMs = 300_000, env } = {}) {
  const child = lab.spawn(ns, [process.execPath, script, JSON.stringify(arg)], env ? { env } : {});
  const lines = [];
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      return;
    }
    if (j?.event === 'progress') onProgress(j);
    else lines.push(j);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const result = lines.filter((l) => l?.event === 'result').at(-1);
      if (code === 0 && result) resolve(result);
      else
        reject(
          new Error(
            `${script} exited ${code ?? signal}${result ? '' : ' without a result'}: ${stderr.trim().slice(-1500)}`,
          ),
        );
    });
  });
}

/** Start the benchmark origin in the server namespace. */
export async function startOrigin(lab, arg) {
  const { fileURLToPath } = await import('node:url');
  const script = fileURLToPath(new URL('./origin.mjs', import.meta.url));
  return lab.startNode('server', script, [JSON.stringify(arg)], { readyTimeoutMs: 15_000 });
}
