/**
 * Three (or n) TLS nginx endpoints for origin-group tests, each told how to behave by flag files (no reload, so
 * warm connections stay as they are): `503` answers 503 to everything, `close` closes the connection without an
 * answer (nginx's 444), `slow` sends `/g/` through a local server that waits `slowMs` before its head. Each
 * answers `/g/…` with its own name, `/s/…?delay=MS` through the slow server, `/p/…` the same with
 * `Cache-Control: private`, `/t/…?delay=MS` through it unbuffered in two parts (the head and `first` after the
 * delay, `second` and the end one more delay later), and `/health` with 200.
 * An endpoint can be killed (SIGKILL), stopped (SIGSTOP: master and worker, its sockets left open) and
 * continued, and started again on its port. Access logs (helpers/nginx.ts) are the origin's own account.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Nginx, type NginxOptions } from './nginx.js';

export type Flag = '503' | 'slow' | 'close';

export class GroupEndpoint {
  constructor(
    readonly name: string,
    readonly nginx: Nginx,
    readonly flags: string,
  ) {}

  get url(): string {
    return `https://localhost:${this.nginx.port}`;
  }

  set(flag: Flag, on: boolean): void {
    const f = join(this.flags, flag);
    if (on) writeFileSync(f, '1');
    else rmSync(f, { force: true });
  }

  /** Requests to `/g/` in the access log (health checks are `/health`). */
  served(from = 0): number {
    return this.nginx
      .log()
      .slice(from)
      .filter((l) => l.uri.startsWith('/g/')).length;
  }

  #pids(): number[] {
    const master = this.nginx.pid;
    if (master === undefined) return [];
    let workers: number[] = [];
    try {
      workers = execFileSync('pgrep', ['-P', String(master)], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      /* none */
    }
    return [master, ...workers];
  }

  /** SIGSTOP: connections stay open, nothing answers (connects still complete in the kernel's backlog). */
  stop(): void {
    for (const p of this.#pids()) process.kill(p, 'SIGSTOP');
  }
  cont(): void {
    for (const p of this.#pids()) process.kill(p, 'SIGCONT');
  }
  kill(): Promise<void> {
    return this.nginx.stop('SIGKILL');
  }
  /** Started again on its port (after kill). */
  start(): Promise<void> {
    return this.nginx.restart();
  }
}

export interface NginxGroup {
  endpoints: GroupEndpoint[];
  close(): Promise<void>;
}

export async function startNginxGroup(
  n = 3,
  o: { slowMs?: number; h2?: boolean; extra?: NginxOptions } = {},
): Promise<NginxGroup> {
  const slowMs = o.slowMs ?? 100;
  // The slow backend: its answer's head leaves `slowMs` after the request, naming the endpoint that asked.
  const slow = http.createServer((req, res) => {
    const delay = Number(req.headers['x-delay']) || slowMs;
    if (req.url?.startsWith('/t/')) {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first\n');
        setTimeout(() => res.end('second\n'), delay);
      }, delay);
      return;
    }
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`${String(req.headers['x-name'])}\n`);
    }, delay);
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  const slowPort = (slow.address() as net.AddressInfo).port;
  const endpoints: GroupEndpoint[] = [];
  for (let i = 0; i < n; i++) {
    const name = `e${i}`;
    const flags = mkdtempSync(join(tmpdir(), 'ol-group-flags-'));
    const nginx = await Nginx.start({
      h2: o.h2 ?? true,
      ...o.extra,
      serverExtra: `
    location /g/ {
      default_type text/plain;
      if (-f ${flags}/503) { return 503 "${name} down\\n"; }
      if (-f ${flags}/close) { return 444; }
      # \`return\` runs in the rewrite phase, before any proxy_pass: the fast answer only when not slowed.
      if (!-f ${flags}/slow) { return 200 "${name}\\n"; }
      proxy_pass http://127.0.0.1:${slowPort};
      proxy_set_header X-Name ${name};
    }
    location /s/ {
      proxy_pass http://127.0.0.1:${slowPort};
      proxy_set_header X-Name ${name};
      proxy_set_header X-Delay $arg_delay;
    }
    location /p/ {
      proxy_pass http://127.0.0.1:${slowPort};
      proxy_set_header X-Name ${name};
      proxy_set_header X-Delay $arg_delay;
      add_header Cache-Control private;
    }
    location /t/ {
      proxy_pass http://127.0.0.1:${slowPort};
      proxy_buffering off;
      proxy_set_header X-Name ${name};
      proxy_set_header X-Delay $arg_delay;
    }
    location = /health {
      default_type text/plain;
      if (-f ${flags}/503) { return 503 "down\\n"; }
      return 200 "ok\\n";
    }
    ${o.extra?.serverExtra ?? ''}`,
    });
    endpoints.push(new GroupEndpoint(name, nginx, flags));
  }
  return {
    endpoints,
    close: async () => {
      for (const e of endpoints) {
        try {
          e.cont();
        } catch {
          /* gone */
        }
        await e.nginx.close();
        rmSync(e.flags, { recursive: true, force: true });
      }
      await new Promise<void>((r) => slow.close(() => r()));
      slow.closeAllConnections();
    },
  };
}
