/**
 * dnsmasq on a loopback UDP port, answering from a hosts file the test
 * rewrites (setRecords + SIGHUP re-reads it and clears dnsmasq's cache).
 * Every other name is NXDOMAIN (`--local=/#/`): nothing is forwarded.
 * Queries are logged to stdout and counted by name.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface Dnsmasq {
  readonly port: number;
  /** `127.0.0.1:PORT`, for Resolver servers. */
  readonly server: string;
  /** Replace every record: name → addresses. Resolves once dnsmasq has re-read the file. */
  setRecords(records: Record<string, readonly string[]>): Promise<void>;
  /** Queries seen for `name` (A and AAAA each count) in the log read so far. */
  queries(name: string): number;
  /**
   * The same once dnsmasq's log (a pipe, read asynchronously) has caught up: at least `atLeast`
   * lines and no new line for 100 ms (bounded, 3 s). A query logged late is counted, not missed.
   */
  settledQueries(name: string, atLeast?: number): Promise<number>;
  stop(): Promise<void>;
  /** Start again on the same port after stop() (serve-stale tests). */
  restart(): Promise<void>;
  /** stop() and remove the temp dir. */
  close(): Promise<void>;
}

export async function startDnsmasq(records: Record<string, readonly string[]>, ttlS = 2): Promise<Dnsmasq> {
  const dir = mkdtempSync(join(tmpdir(), 'addr-dns-'));
  const hosts = join(dir, 'hosts');
  const port = await freePort();
  let log = '';
  let child: ChildProcess | null = null;
  const write = (r: Record<string, readonly string[]>): void => {
    writeFileSync(
      hosts,
      Object.entries(r)
        .flatMap(([name, addrs]) => addrs.map((a) => `${a} ${name}`))
        .join('\n') + '\n',
    );
  };
  const waitLog = async (needle: string, from: number, ms = 5000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (log.indexOf(needle, from) >= 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`dnsmasq: no "${needle}" within ${ms} ms; log: ${log.slice(-500)}`);
  };
  const start = async (): Promise<void> => {
    const from = log.length;
    const c = spawn(
      'dnsmasq',
      [
        '--no-daemon',
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--local=/#/',
        `--addn-hosts=${hosts}`,
        `--local-ttl=${ttlS}`,
        '--user=root',
        '--log-queries',
        '--log-facility=-',
        '--cache-size=0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    c.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    child = c;
    await waitLog(`read ${hosts}`, from);
  };
  write(records);
  await start();
  return {
    port,
    server: `127.0.0.1:${port}`,
    async setRecords(r) {
      write(r);
      const from = log.length;
      if (child?.pid) process.kill(child.pid, 'SIGHUP');
      await waitLog(`read ${hosts}`, from);
    },
    queries(name) {
      let n = 0;
      for (const line of log.split('\n')) if (/query\[(A|AAAA)\] /.test(line) && line.includes(` ${name} from`)) n++;
      return n;
    },
    async settledQueries(name, atLeast = 0) {
      const deadline = Date.now() + 3000;
      let len = -1;
      while (Date.now() < deadline && (len !== log.length || this.queries(name) < atLeast)) {
        len = log.length;
        await new Promise((r) => setTimeout(r, 100));
      }
      return this.queries(name);
    },
    async stop() {
      const c = child;
      child = null;
      if (!c || c.exitCode !== null || c.pid === undefined) return;
      const gone = new Promise((r) => c.once('exit', r));
      process.kill(c.pid, 'SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
    },
    async restart() {
      await start();
    },
    async close() {
      await this.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
