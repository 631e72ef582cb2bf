/**
 * Debian's redis-server as the fleet store: started on a loopback port with
 * no persistence and its working files in a temp dir, stopped (or killed, to
 * test an outage) by its pid, and restartable on the same port.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPeer, stopProc, type Peer } from './h3-peers.js';
import { freePort } from './ports.js';

export interface RedisPeer {
  port: number;
  url: string;
  pid(): number | undefined;
  /** SIGKILL, no goodbye to clients (an outage). */
  kill(): Promise<void>;
  /** Start again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(
  o: { port?: number; password?: string /** More redis-server options (`--replicaof`, …). */; extra?: string[] } = {},
): Promise<RedisPeer> {
  const port = o.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'ol-redis-'));
  const argv = [
    'redis-server',
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    ...(o.password ? ['--requirepass', o.password] : []),
    ...(o.extra ?? []),
  ];
  const start = (): Promise<Peer> => startPeer({ argv, port, ready: /Ready to accept connections/, timeoutMs: 10_000 });
  let peer: Peer | null = await start();
  const kill = async (): Promise<void> => {
    const p = peer;
    peer = null;
    if (!p || p.proc.exitCode !== null || p.proc.pid === undefined) return;
    const gone = new Promise((r) => p.proc.once('exit', r));
    process.kill(p.proc.pid, 'SIGKILL');
    await gone;
  };
  return {
    port,
    url: `redis://${o.password ? `:${o.password}@` : ''}127.0.0.1:${port}/0`,
    pid: () => peer?.proc.pid,
    kill,
    restart: async () => {
      await kill();
      peer = await start();
    },
    stop: async () => {
      const p = peer;
      peer = null;
      if (p) await stopProc(p.proc);
      const { rmSync } = await import('node:fs');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Redis Sentinel (redis-server --sentinel) watching the master on `masterPort` as `name`: quick to act (the master
 * down after `downAfterMs`, fail-over within `failoverMs`), as a test needs. Its config file lives in a folder of its
 * own (Sentinel rewrites it).
 */
export async function startSentinel(o: {
  masterPort: number;
  name: string;
  quorum: number;
  downAfterMs?: number;
  failoverMs?: number;
}): Promise<RedisPeer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ol-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${o.name} 127.0.0.1 ${o.masterPort} ${o.quorum}`,
      `sentinel down-after-milliseconds ${o.name} ${o.downAfterMs ?? 500}`,
      `sentinel failover-timeout ${o.name} ${o.failoverMs ?? 3000}`,
      `sentinel parallel-syncs ${o.name} 1`,
      '',
    ].join('\n'),
  );
  const p = await startPeer({
    argv: ['redis-server', conf, '--sentinel'],
    port,
    ready: /\+monitor master/,
    timeoutMs: 10_000,
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => p.proc.pid,
    kill: async () => {
      if (p.proc.pid !== undefined && p.proc.exitCode === null) process.kill(p.proc.pid, 'SIGKILL');
    },
    restart: async () => {
      throw new Error('a sentinel is not restarted here');
    },
    stop: async () => {
      await stopProc(p.proc);
      const { rmSync } = await import('node:fs');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisClusterPeer {
  nodes: RedisPeer[];
  /** `redis-cluster://` with every node as a seed. */
  url: string;
  /** `redis-cli cluster nodes` as seen by a live node: port → role (master, slave) and whether it is failed. */
  roles(): Map<number, { master: boolean; failed: boolean }>;
  /** `cluster_state:ok` on every live node. */
  ok(): boolean;
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` masters with one replica each (redis-server --cluster-enabled, joined by
 * `redis-cli --cluster create`), quick to fail over (`nodeTimeoutMs`). Waits until the cluster says ok.
 */
export async function startRedisCluster(
  o: { masters?: number; nodeTimeoutMs?: number } = {},
): Promise<RedisClusterPeer> {
  const n = (o.masters ?? 3) * 2;
  const nodes: RedisPeer[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push(
      await startRedis({
        // Validity factor 0: a replica fails over however long it was cut off (a test kills masters soon after start).
        extra: [
          '--cluster-enabled',
          'yes',
          '--cluster-node-timeout',
          String(o.nodeTimeoutMs ?? 1000),
          '--cluster-replica-validity-factor',
          '0',
        ],
      }),
    );
  }
  const { execFileSync } = await import('node:child_process');
  execFileSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((x) => `127.0.0.1:${x.port}`), '--cluster-replicas', '1', '--cluster-yes'],
    { stdio: 'pipe', timeout: 30_000 },
  );
  const live = (): RedisPeer[] => nodes.filter((x) => x.pid() !== undefined);
  const cli = (port: number, ...args: string[]): string =>
    execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 5000 });
  const c: RedisClusterPeer = {
    nodes,
    url: `redis-cluster://${nodes.map((x) => `127.0.0.1:${x.port}`).join(',')}`,
    roles: () => {
      const out = new Map<number, { master: boolean; failed: boolean }>();
      const from = live()[0];
      if (!from) return out;
      for (const line of cli(from.port, 'cluster', 'nodes').split('\n')) {
        const f = line.split(' ');
        const port = Number(/:(\d+)@/.exec(f[1] ?? '')?.[1]);
        if (!port) continue;
        out.set(port, { master: (f[2] ?? '').includes('master'), failed: (f[2] ?? '').includes('fail') });
      }
      return out;
    },
    ok: () => live().every((x) => /cluster_state:ok/.test(cli(x.port, 'cluster', 'info'))),
    stop: async () => {
      for (const x of nodes) await x.stop();
    },
  };
  const t0 = Date.now();
  while (!c.ok()) {
    if (Date.now() - t0 > 20_000) throw new Error('the Redis cluster did not come up');
    await new Promise((r) => setTimeout(r, 100));
  }
  return c;
}
