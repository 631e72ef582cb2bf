import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const DELAY_SERVER = `
const http = require('node:http');
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end(String(req.headers['x-name']) + '\\n'); }, Number(req.headers['x-delay']) || 100));
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));
`;

/** The delay server: a child process answering after `X-Delay` ms. Resolves with its port and process. */
export function startDelayServer(run) {
  const p = run([process.execPath, '-e', DELAY_SERVER]);
  return new Promise((resolve, reject) => {
    p.stdout.once('data', (d) => resolve({ port: Number(String(d).trim()), proc: p }));
    p.once('exit', (code) => reject(new Error(`delay server exited ${code}`)));
  });
}

const temps = (dir, name) =>
  ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${name}-${t};`).join('\n  ');

export class Endpoint {
  /** `morePorts`: further ports this one process listens on (the cpu phase's three endpoints in one origin process). */
  constructor(dir, i, port, delayPort, certs, morePorts = []) {
    this.name = `e${i}`;
    this.port = port;
    this.ports = [port, ...morePorts];
    this.dir = dir;
    this.flags = join(dir, `${this.name}-flags`);
    this.accessLog = join(dir, `${this.name}-access.log`);
    this.conf = join(dir, `${this.name}.conf`);
    this.proc = null;
    writeFileSync(
      this.conf,
      `
daemon off; master_process off; worker_processes 1;
pid ${dir}/${this.name}.pid; error_log ${dir}/${this.name}-error.log error;
events { worker_connections 8192; }
http {
  log_format g '$msec $request_method $request_uri $status $connection';
  access_log ${this.accessLog} g;
  ${temps(dir, this.name)}
  keepalive_timeout 300s; keepalive_requests 100000000;
  server {
    ${this.ports.map((p) => `listen 127.0.0.1:${p} ssl http2;`).join(' ')}
    ssl_certificate ${certs.certPath}; ssl_certificate_key ${certs.keyPath};
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:${this.name}:1m;
    location /g/ {
      default_type text/plain;
      if (-f ${this.flags}-down) { return 444; }
      if (-f ${this.flags}-503) { return 503 "${this.name} down\\n"; }
      # \`return\` runs before any proxy_pass: the fast answer only when not slowed.
      if (!-f ${this.flags}-slow) { return 200 "${this.name}\\n"; }
      proxy_pass http://127.0.0.1:${delayPort};
      proxy_set_header X-Name ${this.name};
      proxy_set_header X-Delay 100;
    }
    location /c/ {
      if (-f ${this.flags}-down) { return 444; }
      proxy_pass http://127.0.0.1:${delayPort};
      proxy_set_header X-Name ${this.name};
      proxy_set_header X-Delay 200;
    }
    location = /health {
      default_type text/plain;
      if (-f ${this.flags}-down) { return 444; }
      if (-f ${this.flags}-503) { return 503 "down\\n"; }
      return 200 "ok\\n";
    }
  }
}`,
    );
  }

  get url() {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Flags: `slow`, `down` (444), `503`. */
  set(flag, on) {
    const f = `${this.flags}-${flag}`;
    if (on) writeFileSync(f, '1');
    else rmSync(f, { force: true });
  }

  start(run) {
    this.proc = run(['nginx', '-p', this.dir, '-c', this.conf, '-e', join(this.dir, `${this.name}-error.log`)]);
  }

  /** SIGKILL: the endpoint is gone at once, its connections reset, its port refusing. */
  kill() {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.killedByUs = true;
      process.kill(p.pid, 'SIGKILL');
    }
    return new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', r)));
  }

  /** Access-log lines: `{ at (ms since the epoch), method, uri, status, connection }`. */
  log() {
    if (!existsSync(this.accessLog)) return [];
    return readFileSync(this.accessLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [msec, method, uri, status, connection] = l.split(' ');
        return { at: Number(msec) * 1000, method, uri, status: Number(status), connection: Number(connection) };
      });
  }
}

/**
 * originlink: the origin `g` (`/`) over the endpoints by 127.0.0.1, and `c` (`/c/`, with `collapse`) over the same
 * endpoints by the name localhost — other URLs, so neither origin pays for sharing URLs with the other. `g` is the
 * first endpoint's URL alone (`single`), with the fields `group` (a group of one when there are any), or all three
 * endpoints with them.
 */
export function originlinkConfig({ port, endpoints, caPath, protocol, group, single, minWarm, weights }) {
  const eps = (host) =>
    `[${endpoints.map((e, i) => `{ url: "https://${host}:${e.port}"${weights ? `, weight: ${weights[i]}` : ''} }`).join(', ')}]`;
  const common = `protocol: ${protocol}, tls: { ca: ${caPath}, servername: localhost }, pool: { maxConnections: 64${minWarm ? `, minWarm: ${minWarm}` : ''} }, timeouts: { connectMs: 1000 }`;
  const target = single ? `url: "${endpoints[0].url}"` : `endpoints: ${eps('127.0.0.1')}`;
  return `
listeners: [{ name: front, kind: http, host: 127.0.0.1, port: ${port} }]
admin: false
logging: { level: info, requests: false }
origins:
  g: { ${target}, ${common}${group ? `, ${group}` : ''} }
  c: { endpoints: ${eps('localhost')}, ${common}, collapse: true }
routes: [{ path: /c/, origin: c }, { path: /, origin: g }]
`;
}

/**
 * nginx as the operator of issue 43 runs it: an upstream of the three endpoints with `max_fails=3 fail_timeout=10s`
 * (passive: three failures take a server out for 10 s), `proxy_next_upstream error timeout http_502 http_503
 * http_504` (a failed request goes to the next server; POSTs only when nothing was sent, nginx's own rule), warm
 * keepalive connections. No active checks (nginx open source has none). Its error log goes to stderr (the bench
 * reads when it marked a server down).
 */
export function nginxConfig({ dir, port, endpoints, caPath, balance }) {
  return `
daemon off; master_process on; worker_processes 1;
pid ${dir}/proxy-nginx.pid; error_log stderr warn;
events { worker_connections 8192; }
http {
  access_log off;
  ${temps(dir, 'proxy')}
  upstream g {
    ${balance === 'leastconn' ? 'least_conn;' : ''}
    ${endpoints.map((e) => `server 127.0.0.1:${e.port} max_fails=3 fail_timeout=10s;`).join('\n    ')}
    keepalive 64; keepalive_requests 100000000; keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 100000000;
    location / {
      proxy_pass https://g;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_connect_timeout 1s;
      proxy_ssl_server_name on; proxy_ssl_name localhost;
      proxy_ssl_verify on; proxy_ssl_trusted_certificate ${caPath};
      proxy_ssl_session_reuse on;
    }
  }
}`;
}

/**
 * HAProxy as the operator of issue 43 runs it: active checks (`option httpchk GET /health`, `check inter 1s fall 2
 * rise 1`, as originlink's health below), passive `observe layer7 error-limit 3 on-error mark-down`, `retry-on
 * all-retryable-errors` with `retries 3` and `option redispatch 1` (every retry to another server), `http-reuse
 * always`. Server state changes reach stderr (`-db`, not quiet).
 */
export function haproxyConfig({ port, endpoints, caPath, balance }) {
  return `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 30s
  timeout http-keep-alive 60s
  retries 3
  option redispatch 1
  retry-on all-retryable-errors
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance ${balance === 'leastconn' ? 'leastconn' : 'roundrobin'}
  http-reuse always
  option httpchk GET /health
  default-server ssl verify required ca-file ${caPath} sni str(localhost) alpn http/1.1 check check-sni localhost check-alpn http/1.1 inter 1s fall 2 rise 1 observe layer7 error-limit 3 on-error mark-down pool-max-conn 64
${endpoints.map((e) => `  server ${e.name} 127.0.0.1:${e.port}`).join('\n')}
`;
}

/**
 * When a proxy said it took endpoint `e` out of rotation, from its log lines (each with the time it arrived):
 * originlink's `ejected`/`unhealthy` lines, HAProxy's `Server be/eN is DOWN`, nginx's `upstream server temporarily
 * disabled` naming the endpoint's port.
 */
export function outMarker(kind, e) {
  if (kind === 'originlink') return (line) => line.includes(`:${e.port}`) && /"event":"(ejected|unhealthy)"/.test(line);
  if (kind === 'haproxy') return (line) => new RegExp(`Server be/${e.name} is DOWN`).test(line);
  return (line) => line.includes('temporarily disabled') && line.includes(`:${e.port}`);
}
