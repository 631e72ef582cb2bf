/**
 * Two network namespaces joined by a veth pair, for tests that need a real
 * link (TFO, loss, counters) without touching the host's namespace. Needs root.
 *
 *   client ns  veth0 192.0.2.1/24  2001:db8::1/64
 *   server ns  veth0 192.0.2.2/24  2001:db8::2/64
 *
 * The addresses (RFC 5737 TEST-NET-1, RFC 3849 documentation prefix) exist
 * only inside the two namespaces, so parallel pairs never collide. The veth
 * ends are created directly inside the namespaces: nothing appears in the
 * host namespace. Names carry the pid (olt-<pid>-<seq>-c|s); namespaces of
 * dead test processes are swept on the next create.
 *
 * Cleanup always runs: call destroy() in afterAll; a process 'exit' hook and
 * SIGINT/SIGTERM hooks remove whatever is left (children first, then namespaces).
 */
import { type ChildProcess, type SpawnOptions, execFileSync, spawn } from 'node:child_process';

export interface NetnsPair {
  readonly client: string;
  readonly server: string;
  readonly clientIp: string;
  readonly serverIp: string;
  readonly clientIp6: string;
  readonly serverIp6: string;
  /** Runs argv inside `ns`, returns stdout; throws on a non-zero exit. */
  exec(ns: string, argv: readonly string[], opts?: { timeoutMs?: number; input?: string }): string;
  /** Spawns argv inside `ns`; the child is killed (by pid) on destroy(). */
  spawn(ns: string, argv: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** `nstat -asz` inside `ns` as name -> absolute value. */
  counters(ns: string): Map<string, number>;
  /** Kills spawned children, deletes both namespaces (and the veth pair with them). Idempotent. */
  destroy(): void;
}

export interface NetnsOptions {
  /** net.ipv4.tcp_fastopen in both namespaces (3 = client + server). Default 3. */
  tcpFastOpen?: number;
  /** Extra `sysctl -w` settings applied in both namespaces. */
  sysctls?: Readonly<Record<string, string | number>>;
  /** Namespace name prefix, so one team's tests never clash with another's. Default `olt`. */
  prefix?: string;
}

const PREFIX = 'olt';
const EXEC_TIMEOUT_MS = 10_000;
const live = new Set<Pair>();
let seq = 0;
let hooksInstalled = false;

function ip(args: readonly string[], timeoutMs = EXEC_TIMEOUT_MS): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryIp(args: readonly string[]): void {
  try {
    ip(args);
  } catch {
    // already gone
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes <prefix>-<pid>-* namespaces whose creating process no longer exists. */
export function sweepStaleNetns(prefix = PREFIX): void {
  let list = '';
  try {
    list = ip(['netns', 'list']);
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${prefix}-(\\d+)-\\d+-[cs]$`).exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) tryIp(['netns', 'del', name]);
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', destroyAllNetns);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      destroyAllNetns();
      process.kill(process.pid, sig);
    });
  }
}

export function destroyAllNetns(): void {
  for (const p of [...live]) p.destroy();
}

class Pair implements NetnsPair {
  readonly client: string;
  readonly server: string;
  readonly clientIp = '192.0.2.1';
  readonly serverIp = '192.0.2.2';
  readonly clientIp6 = '2001:db8::1';
  readonly serverIp6 = '2001:db8::2';
  #children = new Set<ChildProcess>();
  #destroyed = false;

  constructor(base: string) {
    this.client = `${base}-c`;
    this.server = `${base}-s`;
  }

  exec(ns: string, argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): string {
    return execFileSync('ip', ['netns', 'exec', ns, ...argv], {
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? EXEC_TIMEOUT_MS,
      ...(opts.input === undefined ? { stdio: ['ignore', 'pipe', 'pipe'] } : { input: opts.input }),
    });
  }

  spawn(ns: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    // `ip netns exec` execs the command, so child.pid is the command's own pid.
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  counters(ns: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const line of this.exec(ns, ['nstat', '-asz']).split('\n')) {
      const [name, value] = line.trim().split(/\s+/);
      if (name && value && /^\d+$/.test(value)) out.set(name, Number(value));
    }
    return out;
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    for (const child of this.#children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
    }
    this.#children.clear();
    tryIp(['netns', 'del', this.client]);
    tryIp(['netns', 'del', this.server]);
  }
}

export function createNetnsPair(opts: NetnsOptions = {}): NetnsPair {
  installHooks();
  const prefix = opts.prefix ?? PREFIX;
  sweepStaleNetns(prefix);
  const pair = new Pair(`${prefix}-${process.pid}-${seq++}`);
  live.add(pair);
  try {
    ip(['netns', 'add', pair.client]);
    ip(['netns', 'add', pair.server]);
    ip(['link', 'add', 'veth0', 'netns', pair.client, 'type', 'veth', 'peer', 'name', 'veth0', 'netns', pair.server]);
    const sysctls: Record<string, string | number> = {
      'net.ipv4.tcp_fastopen': opts.tcpFastOpen ?? 3,
      ...opts.sysctls,
    };
    const sides = [
      [pair.client, pair.clientIp, pair.clientIp6],
      [pair.server, pair.serverIp, pair.serverIp6],
    ] as const;
    for (const [ns, v4, v6] of sides) {
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'addr', 'add', `${v4}/24`, 'dev', 'veth0']);
      ip(['-n', ns, 'addr', 'add', `${v6}/64`, 'dev', 'veth0', 'nodad']);
      ip(['-n', ns, 'link', 'set', 'veth0', 'up']);
      for (const [key, value] of Object.entries(sysctls)) pair.exec(ns, ['sysctl', '-qw', `${key}=${value}`]);
    }
  } catch (err) {
    pair.destroy();
    throw err;
  }
  return pair;
}
