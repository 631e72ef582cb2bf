/**
 * Debian's redis-server as the fleet store: started on a loopback port with
 * no persistence and its working files in a temp dir, stopped (or killed, to
 * test an outage) by its pid, and restartable on the same port.
 */
import { mkdtempSync } from 'node:fs';
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

export async function startRedis(o: { port?: number; password?: string } = {}): Promise<RedisPeer> {
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
