/**
 * Caddy (Debian `caddy`, quic-go) as an h1/h2/h3 origin that sends Alt-Svc,
 * for selection tests. Any host name (SNI picks the certificate), bound to
 * `bind` (default 127.0.0.1), optionally started through a custom spawn
 * (e.g. inside a network namespace). Stopped by pid.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { caddyEnv, startPeer } from './h3-peers.js';

export interface CaddyOptions {
  port: number;
  certFile: string;
  keyFile: string;
  /** Address to listen on (TCP and UDP). Default 127.0.0.1. */
  bind?: string;
  /** Files under the document root: name -> content. */
  files?: Record<string, string | Buffer>;
  /** Enabled protocols. Default h1 h2 h3. */
  protocols?: Array<'h1' | 'h2' | 'h3'>;
  /** How to start the process (default child_process.spawn). */
  spawn?: (argv: string[], opts: SpawnOptions) => ChildProcess;
}

export interface Caddy {
  port: number;
  root: string;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export async function startCaddy(o: CaddyOptions): Promise<Caddy> {
  const dir = mkdtempSync(join(tmpdir(), 'ol-caddy-sel-'));
  const root = join(dir, 'www');
  mkdirSync(root);
  writeFileSync(join(root, 'index.html'), 'hello from caddy\n');
  for (const [n, c] of Object.entries(o.files ?? {})) writeFileSync(join(root, n), c);
  const protocols = (o.protocols ?? ['h1', 'h2', 'h3']).join(' ');
  writeFileSync(
    join(dir, 'Caddyfile'),
    `{\n  admin off\n  auto_https disable_redirects\n  storage file_system ${dir}/data\n  servers {\n    protocols ${protocols}\n  }\n}\n` +
      `https://:${o.port} {\n  bind ${o.bind ?? '127.0.0.1'}\n  tls ${o.certFile} ${o.keyFile}\n  root * ${root}\n  file_server\n}\n`,
  );
  const peer = await startPeer({
    argv: ['caddy', 'run', '--adapter', 'caddyfile', '--config', join(dir, 'Caddyfile')],
    opts: { env: caddyEnv(dir) },
    ready: /server running|serving initial configuration/,
    port: o.port,
    dir,
    settleMs: 200,
    ...(o.spawn ? { spawn: o.spawn } : {}),
  });
  return { ...peer, root };
}
