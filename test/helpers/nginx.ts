/**
 * nginx as a real independent origin: started on a free loopback port with a
 * config in a temp dir, stopped by its pid. The access log records the
 * connection serial number of every request, so tests count connections
 * and requests at the origin.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from './certs.js';
import { freePort, waitForPort } from './ports.js';

export interface NginxOptions {
  /** Serve TLS (default true). */
  tls?: boolean;
  /** Enable h2 on the TLS listener (default true). */
  h2?: boolean;
  /**
   * nginx's own TLS defaults: no ssl_protocols line and no server-side session cache (by default we set
   * TLSv1.2 TLSv1.3 and a shared cache). So configured, nginx 1.22 with OpenSSL 3 resumes from tickets and
   * issues no new ticket after a resumed handshake.
   */
  tlsDefaults?: boolean;
  /** keepalive_timeout, e.g. '75s' or '1s'. */
  keepaliveTimeout?: string;
  /** Extra directives inside the server block. */
  serverExtra?: string;
  /** Extra directives in the http block. */
  httpExtra?: string;
  /** Files to create under the document root: name -> content. */
  files?: Record<string, string | Buffer>;
  port?: number;
}

/** Worker processes of an nginx master (its children). */
function workerPids(master: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(master)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export interface LogLine {
  connection: number;
  connRequests: number;
  method: string;
  uri: string;
  status: number;
  protocol: string;
}

export class Nginx {
  readonly dir: string;
  readonly port: number;
  readonly root: string;
  #proc: ChildProcess | null = null;
  #conf: string;

  private constructor(dir: string, port: number, conf: string) {
    this.dir = dir;
    this.port = port;
    this.root = join(dir, 'www');
    this.#conf = conf;
  }

  static async start(o: NginxOptions = {}): Promise<Nginx> {
    const dir = mkdtempSync(join(tmpdir(), 'ol-nginx-'));
    const port = o.port ?? (await freePort());
    const certs = makeCerts();
    const root = join(dir, 'www');
    mkdirSync(root, { recursive: true });
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    writeFileSync(join(root, 'index.html'), 'hello from nginx\n');
    writeFileSync(join(root, 'small.txt'), 'x'.repeat(1024));
    for (const [name, content] of Object.entries(o.files ?? {})) writeFileSync(join(root, name), content);
    const tlsOn = o.tls ?? true;
    const listen = tlsOn
      ? `listen 127.0.0.1:${port} ssl${(o.h2 ?? true) ? ' http2' : ''};`
      : `listen 127.0.0.1:${port};`;
    const conf = `
daemon off;
user root;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  log_format ol '$connection $connection_requests $request_method $request_uri $status $server_protocol';
  access_log ${dir}/access.log ol;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_timeout ${o.keepaliveTimeout ?? '75s'};
  keepalive_requests 1000000;
  default_type application/octet-stream;
  ${o.httpExtra ?? ''}
  server {
    ${listen}
    server_name localhost;
    ${tlsOn ? `ssl_certificate ${certs.certPath};\n    ssl_certificate_key ${certs.keyPath};${o.tlsDefaults ? '' : '\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:SSL:1m;'}` : ''}
    root ${root};
    location = /post { client_max_body_size 64m; return 200 "posted\\n"; }
    location = /slow { return 200 "slow\\n"; }
    ${o.serverExtra ?? ''}
  }
}
`;
    writeFileSync(join(dir, 'nginx.conf'), conf);
    const n = new Nginx(dir, port, join(dir, 'nginx.conf'));
    await n.#spawn();
    return n;
  }

  async #spawn(): Promise<void> {
    const p = spawn('nginx', ['-p', this.dir, '-c', this.#conf, '-e', join(this.dir, 'error.log')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr?.on('data', (d) => {
      err += String(d);
    });
    this.#proc = p;
    const cleanup = (): void => {
      if (!p.pid || p.exitCode !== null) return;
      for (const pid of [...workerPids(p.pid), p.pid]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    };
    process.once('exit', cleanup);
    try {
      await waitForPort(this.port);
    } catch (e) {
      throw new Error(
        `nginx did not start: ${err} ${existsSync(join(this.dir, 'error.log')) ? readFileSync(join(this.dir, 'error.log'), 'utf8') : ''}`,
        { cause: e },
      );
    }
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Graceful reload (SIGHUP): new workers; old ones finish in-flight and send GOAWAY / close idle. */
  reload(): void {
    if (this.#proc?.pid) process.kill(this.#proc.pid, 'SIGHUP');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    // Workers outlive a master killed after the grace period: note them now, end them after.
    const workers = p.pid ? workerPids(p.pid) : [];
    p.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await exited;
    }
    for (const w of workers) {
      try {
        process.kill(w, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    // Workers of a killed master may linger briefly; wait for the port to be free.
    const pidFile = join(this.dir, 'nginx.pid');
    if (existsSync(pidFile)) rmSync(pidFile, { force: true });
  }

  /**
   * Stop and start again on the same port. Default SIGQUIT, nginx's graceful
   * shutdown (what its service unit sends on restart): in-flight responses
   * finish, idle connections close, the port refuses until the new master is up.
   * SIGTERM is nginx's fast shutdown, which may cut a response mid-body.
   */
  async restart(signal: NodeJS.Signals = 'SIGQUIT'): Promise<void> {
    await this.stop(signal);
    await this.#spawn();
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Log lines after the first `from`, once there are `n` of them (nginx writes a
   * request's line just after its response left, so a fast client can look
   * before the last one is there), or as they are after `timeoutMs`.
   */
  async logSince(from: number, n: number, timeoutMs = 2000): Promise<LogLine[]> {
    const end = Date.now() + timeoutMs;
    let lines = this.log().slice(from);
    while (lines.length < n && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      lines = this.log().slice(from);
    }
    return lines;
  }

  log(): LogLine[] {
    const f = join(this.dir, 'access.log');
    if (!existsSync(f)) return [];
    return readFileSync(f, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [c, cr, method, uri, status, protocol] = l.split(' ');
        return {
          connection: Number(c),
          connRequests: Number(cr),
          method: method ?? '',
          uri: uri ?? '',
          status: Number(status),
          protocol: protocol ?? '',
        };
      });
  }

  /** Distinct connections that carried requests (by nginx's connection serial). */
  connectionsSeen(filter?: (l: LogLine) => boolean): number {
    return new Set(
      this.log()
        .filter(filter ?? (() => true))
        .map((l) => l.connection),
    ).size;
  }
}
