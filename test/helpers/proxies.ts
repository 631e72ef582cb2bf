/**
 * Real forward proxies on loopback ports, each in its own temp dir, started
 * in the foreground and stopped by pid: squid and tinyproxy (HTTP/1.1
 * CONNECT, optional Basic credentials), microsocks (SOCKS5, optional
 * RFC 1929 user/pass). `tunnels()` counts the tunnels a proxy opened, read
 * from its own log (squid access.log, tinyproxy's log); microsocks logs
 * nothing useful, so the origin counts for it. nghttpx (`--http2-proxy`) is a
 * TLS front (h2 and HTTP/1.1 by ALPN) before another proxy: `clients()` counts
 * the client connections that carried tunnels, from its access log.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';

export interface ProxyPeer {
  readonly kind: 'squid' | 'tinyproxy' | 'microsocks' | 'nghttpx';
  readonly port: number;
  /** Proxy URL, with credentials when the proxy has them. */
  readonly url: string;
  /** Tunnels opened to `target` (`host:port`) per the proxy's log (not for microsocks). */
  tunnels(target: string): number;
  stop(): Promise<void>;
}

export interface ProxyAuth {
  user: string;
  pass: string;
}

async function run(
  kind: ProxyPeer['kind'],
  dir: string,
  argv: string[],
  port: number,
  url: string,
  log: string | null,
  count: (text: string, target: string) => number,
): Promise<ProxyPeer> {
  const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await waitForPort(port, '127.0.0.1', 15_000);
  } catch (e) {
    if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    throw new Error(`${kind} did not start: ${(e as Error).message}; output: ${out.slice(-800)}`);
  }
  return {
    kind,
    port,
    url,
    tunnels(target) {
      if (!log || !existsSync(log)) return 0;
      return count(readFileSync(log, 'utf8'), target);
    },
    async stop() {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        process.kill(child.pid, 'SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const withAuth = (scheme: string, port: number, auth?: ProxyAuth): string =>
  `${scheme}://${auth ? `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@` : ''}127.0.0.1:${port}`;

/** `auth`: the users squid accepts (the URL carries the first). */
export async function startSquid(auth?: ProxyAuth | ProxyAuth[]): Promise<ProxyPeer> {
  const users = auth === undefined ? [] : Array.isArray(auth) ? auth : [auth];
  const dir = mkdtempSync(join(tmpdir(), 'addr-squid-'));
  chmodSync(dir, 0o777); // squid drops to its own user
  const port = await freePort();
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `pid_filename ${dir}/squid.pid`,
    `access_log stdio:${dir}/access.log squid`,
    `cache_log ${dir}/cache.log`,
    `coredump_dir ${dir}`,
    'cache deny all',
    'shutdown_lifetime 0 seconds',
    'dns_v4_first on',
  ];
  if (users.length > 0) {
    const rows = users.map(
      (u) => `${u.user}:${execFileSync('openssl', ['passwd', '-1', u.pass], { encoding: 'utf8' }).trim()}\n`,
    );
    writeFileSync(join(dir, 'passwd'), rows.join(''));
    chmodSync(join(dir, 'passwd'), 0o644);
    lines.push(
      `auth_param basic program /usr/lib/squid/basic_ncsa_auth ${dir}/passwd`,
      'auth_param basic children 2',
      'acl authed proxy_auth REQUIRED',
      'http_access allow authed',
    );
  } else {
    lines.push('http_access allow all');
  }
  lines.push('http_access deny all');
  writeFileSync(join(dir, 'squid.conf'), `${lines.join('\n')}\n`);
  // squid's access.log line per CONNECT: "... TCP_TUNNEL/200 ... CONNECT host:port ..." (written when the tunnel closes).
  return run(
    'squid',
    dir,
    ['squid', '-N', '-f', join(dir, 'squid.conf')],
    port,
    withAuth('http', port, users[0]),
    join(dir, 'access.log'),
    (text, target) => text.split('\n').filter((l) => l.includes(` CONNECT ${target} `) && l.includes('/200 ')).length,
  );
}

export async function startTinyproxy(auth?: ProxyAuth): Promise<ProxyPeer> {
  const dir = mkdtempSync(join(tmpdir(), 'addr-tinyproxy-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  const lines = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 60',
    `LogFile "${dir}/tinyproxy.log"`,
    'LogLevel Connect',
    'MaxClients 100',
  ];
  if (auth) lines.push(`BasicAuth ${auth.user} ${auth.pass}`);
  writeFileSync(join(dir, 'tinyproxy.conf'), `${lines.join('\n')}\n`);
  // tinyproxy logs 'Request (file descriptor N): CONNECT host:port HTTP/1.1' per tunnel request.
  return run(
    'tinyproxy',
    dir,
    ['tinyproxy', '-d', '-c', join(dir, 'tinyproxy.conf')],
    port,
    withAuth('http', port, auth),
    join(dir, 'tinyproxy.log'),
    (text, target) => text.split('\n').filter((l) => l.includes(`CONNECT ${target} HTTP/1.1`)).length,
  );
}

export async function startMicrosocks(auth?: ProxyAuth): Promise<ProxyPeer> {
  const dir = mkdtempSync(join(tmpdir(), 'addr-socks-'));
  const port = await freePort();
  const argv = [
    'microsocks',
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    ...(auth ? ['-u', auth.user, '-P', auth.pass] : []),
  ];
  return run('microsocks', dir, argv, port, withAuth('socks5', port, auth), null, () => 0);
}

export interface NghttpxPeer extends ProxyPeer {
  /** Tunnels to `target` per client connection (the client's port), from the access log: one entry = one connection to the proxy. */
  clients(target: string): Map<number, { tunnels: number; alpn: string; statuses: number[] }>;
}

/**
 * nghttpx in HTTP/2 proxy mode: TLS on a loopback port with `cert`/`key`, CONNECT (HTTP/1.1 or HTTP/2, by
 * ALPN) forwarded to `backend` (an HTTP proxy: squid, which checks the credentials). The URL is `https://`
 * with `auth` in it when given. `maxStreams`: its SETTINGS_MAX_CONCURRENT_STREAMS; `extra`: more nghttpx flags.
 */
export async function startNghttpx(
  backend: ProxyPeer,
  certPath: string,
  keyPath: string,
  auth?: ProxyAuth,
  maxStreams = 100,
  extra: string[] = [],
): Promise<NghttpxPeer> {
  const dir = mkdtempSync(join(tmpdir(), 'addr-nghttpx-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  const log = join(dir, 'access.log');
  const argv = [
    'nghttpx',
    '--conf=/dev/null',
    '--http2-proxy',
    '--single-process',
    `--frontend=127.0.0.1,${port}`,
    `--backend=127.0.0.1,${backend.port}`,
    '--workers=1',
    '--no-ocsp',
    `--frontend-http2-max-concurrent-streams=${maxStreams}`,
    `--accesslog-file=${log}`,
    '--accesslog-format=$remote_port $method $path $status $alpn',
    `--errorlog-file=${join(dir, 'error.log')}`,
    `--pid-file=${join(dir, 'nghttpx.pid')}`,
    ...extra,
    keyPath,
    certPath,
  ];
  // One line per finished request: "PORT CONNECT host:port STATUS ALPN" (a tunnel's line is written when it ends).
  const parse = (text: string, target: string): Map<number, { tunnels: number; alpn: string; statuses: number[] }> => {
    const by = new Map<number, { tunnels: number; alpn: string; statuses: number[] }>();
    for (const line of text.split('\n')) {
      const [p, method, path, status, alpn] = line.split(' ');
      if (method !== 'CONNECT' || path !== target) continue;
      const e = by.get(Number(p)) ?? { tunnels: 0, alpn: alpn ?? '', statuses: [] };
      e.tunnels++;
      e.statuses.push(Number(status));
      by.set(Number(p), e);
    }
    return by;
  };
  const peer = await run('nghttpx', dir, argv, port, withAuth('https', port, auth), log, (text, target) =>
    [...parse(text, target).values()].reduce((a, e) => a + e.statuses.filter((s) => s === 200).length, 0),
  );
  return { ...peer, clients: (target) => parse(existsSync(log) ? readFileSync(log, 'utf8') : '', target) };
}
