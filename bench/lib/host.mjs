// Loopback helpers the bench scripts share: a free port, waiting for one to open, a process tree's CPU time, a run's
// scratch folder and children.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A free loopback port (bind 0, read it, close), never one this process handed out before: the kernel may give a
 * port just closed to the next bind(0), and two calls in a row then named one port twice (seen: a config whose
 * listener and admin port were the same, refused at start). Small race; fine for tests and benches alike (the tests'
 * helper, test/helpers/ports.ts, is this one).
 */
const handedOut = new Set();
export const freePort = async (host = '127.0.0.1') => {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, host, () => {
        const { port: p } = s.address();
        s.close(() => resolve(p));
      });
    });
    if (handedOut.has(port)) continue;
    if (handedOut.size >= 4096) handedOut.clear();
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port not handed out before');
};
export const waitPort = async (port, ms = 10_000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise((r) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        r(true);
      });
      c.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} did not open`);
};
// CPU time (user + system, µs) of a process and all its descendants (nginx's workers, node's threads are in its stat).
const CLK =
  Number(
    (() => {
      try {
        return execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
      } catch {
        return '100';
      }
    })(),
  ) || 100;
/** Every process's parent and CPU ticks, from /proc/PID/stat. */
const procStats = () => {
  const stats = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(d), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      /* exited */
    }
  }
  return stats;
};
/** `root` and its descendants. */
const tree = (root, stats) => {
  const want = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, s] of stats)
      if (!want.has(pid) && want.has(s.ppid)) {
        want.add(pid);
        grew = true;
      }
  }
  return want;
};
/** `root`'s pid and its descendants' (a `serve --workers` primary and its workers). */
export const treePids = (root) => [...tree(root, procStats())];
export const treeCpuUs = (root) => {
  const stats = procStats();
  let ticks = 0;
  for (const pid of tree(root, stats)) ticks += stats.get(pid)?.ticks ?? 0;
  return (ticks * 1e6) / CLK;
};
// The same in ns, from each thread's /proc/PID/task/TID/schedstat (its time on a CPU): the precision that clock ticks
// (10 ms) lack for runs of a few seconds. A thread that has exited is no longer counted: for long-lived processes.
export const treeCpuNs = (root) => {
  let ns = 0;
  for (const pid of tree(root, procStats())) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`))
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* exited */
    }
  }
  return ns;
};
// The same for one process's main thread alone (its task whose id is the pid): for node, the event loop's JavaScript
// and the work it does itself, without TurboFan's and the GC's helper threads.
export const mainCpuNs = (pid) => {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return 0;
  }
};
/**
 * The command line of the build at `dist` as bin/originlink runs it: the CommonJS bundle (scripts/bundle.mjs), an
 * older build's ES module bundle, or tsc's modules where a build has no bundle.
 */
export function buildMain(dist) {
  for (const f of ['main.cjs', 'main.js']) if (existsSync(join(dist, 'bundle', f))) return join(dist, 'bundle', f);
  return join(dist, 'cli', 'main.js');
}

/**
 * The command that runs `serve` of the build at `dist` as its launcher starts it: node with the service's node flags
 * (bin/service-node-flags beside that build's dist/, one a line; an older build keeps them in its launcher's
 * SERVICE_NODE_FLAGS line; none for a build without either, none either when `launcher` is false), then `nodeArgs` (a
 * bench's BENCH_NODE_ARGS), then the script (the bundle where the build has one). A bench measures the service as
 * started.
 */
export const serviceArgv = (dist, nodeArgs = [], launcher = true) => {
  let flags = '';
  if (launcher) {
    const bin = join(dist, '..', 'bin');
    try {
      flags = readFileSync(join(bin, 'service-node-flags'), 'utf8');
    } catch {
      try {
        flags = /^SERVICE_NODE_FLAGS="([^"]*)"$/m.exec(readFileSync(join(bin, 'originlink'), 'utf8'))?.[1] ?? '';
      } catch {
        /* a build without the launcher */
      }
    }
  }
  // The command as bin/originlink runs it: the bundle where the build has one (scripts/bundle.mjs), else tsc's modules.
  const main = buildMain(dist);
  return [process.execPath, ...flags.split(/\s+/).filter(Boolean), ...nodeArgs, main];
};
/**
 * The `serve` config the benches give one build: a cleartext front (`front`: http or h2c) on 127.0.0.1:`port`, no
 * admin listener, every path to one origin `o` whose fields (`origin`: url, protocol, tls, pool…, YAML flow style
 * without the braces) the bench names; `logging` the logging section, `extra` more top-level lines before `origins`.
 */
export const oneOriginConfig = ({
  port,
  origin,
  front = 'http',
  logging = '{ level: warn, requests: false }',
  extra = '',
}) =>
  `listeners: [{ name: front, kind: ${front}, host: 127.0.0.1, port: ${port} }]
admin: false
logging: ${logging}
${extra}origins:
  o: { ${origin} }
routes: [{ path: /, origin: o }]
`;
/**
 * The command that runs a one-shot command (fetch, probe, info, --version) of the build at `dist` as its launcher
 * starts it: node without flags (this launcher; why: bin/originlink), or with the service's V8 flags but node's code on
 * huge pages where an older launcher passed them (its COMMAND_NODE_FLAGS line: that build's commands' V8 code cache
 * is made under them); none for a launcher older still.
 */
export const commandArgv = (dist) => {
  const argv = serviceArgv(dist);
  let launcher = '';
  try {
    launcher = readFileSync(join(dist, '..', 'bin', 'originlink'), 'utf8');
  } catch {
    /* a build without the launcher */
  }
  const flags = launcher.includes('COMMAND_NODE_FLAGS')
    ? argv.slice(1, -1).filter((f) => !f.startsWith('--use-largepages'))
    : [];
  return [argv[0], ...flags, argv.at(-1)];
};
/** A child process still running. */
export const alive = (p) => p.exitCode === null && p.signalCode === null;
/** End a child of ours: SIGTERM, SIGKILL after `graceMs`; resolves when it has exited. `killedByUs` marks the exit ours. */
export const stopChild = async (p, graceMs = 3000) => {
  if (!alive(p)) return;
  p.killedByUs = true;
  const done = new Promise((r) => p.once('exit', r));
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, graceMs))]);
  if (alive(p)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await done;
  }
};

/**
 * A run's scratch folder (under the system's temporary one, named from `prefix`) and the list its children go in: on
 * exit every child still alive is killed and the folder removed; SIGINT exits (and so cleans up).
 */
export function scratch(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const procs = [];
  // Each process with its descendants (nginx's workers outlive a SIGKILLed master; a `serve --workers` primary's too).
  process.on('exit', () => {
    for (const p of procs) {
      if (!alive(p)) continue;
      for (const pid of treePids(p.pid).reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  process.on('SIGINT', () => process.exit(130));
  return { dir, procs };
}
