#!/usr/bin/env node
// `npm run bench -- fleet-reuse`: a long-tail workload over many origins (docs/fleet.md, issue 56) in front of one
// nginx serving every origin on a TLS port of its own and counting its own connections (`$connection` in its access
// log). The same load through each configuration: originlink as one process, `serve --workers W` with the fleet's
// `direct`, `auto` and `owner` routes, and nginx with W workers (`keepalive` per upstream) as the anchor. Each row:
// origin connections opened and reuse at the origin (counted at the origin: 1 − connections ÷ requests), client
// p50/p99, CPU per request of the proxy's processes summed, failed requests. Configurations run in rounds, their order
// reversed every other round (this machine drifts); the table gives each configuration's median over the rounds.
// Knobs (env), by default issue 56's long-tail workload: BENCH_ORIGINS (500), BENCH_RATE (300 req/s, all origins
// together), BENCH_ZIPF (1.0: the exponent of the Zipf law over the origins), BENCH_KEEPALIVE (15: the origin's
// keepalive_timeout, s), BENCH_KEEPALIVE_HINT=1 (the origin says it too: `Keep-Alive: timeout=N`, nginx's second
// keepalive_timeout parameter), BENCH_WARMUP (60 s of load before the counted window), BENCH_DURATION (120 s: the
// counted window; each configuration runs WARMUP + DURATION, so the six default ones take ~20 min),
// BENCH_WORKERS (2; 1 for F instances of one worker each, fleet-* configurations and the anchors only),
// BENCH_ROUNDS (1), BENCH_CONFIGS (a list; default one,direct,auto,owner,nginx,haproxy (HAProxy with W threads,
// `http-reuse always`, one backend per origin); also
// fleet-direct, fleet-auto, fleet-owner: BENCH_INSTANCES `serve --workers W` processes naming each other in
// `fleet.members`, mutual TLS between members, the load spread over their fronts round robin), BENCH_INSTANCES (3),
// BENCH_CONNECTIONS (16: the load's client connections to the front, per front), BENCH_DIST,
// BENCH_KILL (`instance` or `worker`, fleet-* configurations only): halfway through the window, the owner of the most
// requested origin is SIGKILLed — its whole instance (primary and workers; the load stops sending to its front, as a
// load balancer would) or that one worker (its primary restarts it). Reported: requests that failed with an HTTP
// status (a forwarded request the fleet did not save) apart from those whose client connection was the killed
// process's own (lost with it, as with any proxy), and how long until no surviving member names a killed member as
// the owner of any origin.
// BENCH_JOIN=1 (fleet-* configurations): one more instance starts with the others, naming every member but named by
// none and sent no load; halfway through the window the others are reloaded (SIGHUP) with it in their lists and the
// load goes to its front too. Reported: the share of the origins (those the first instances' workers have
// seen) whose owner changed, against the joiner's share (its members ÷ all), the origin
// connections opened in the 3 s after the join that the origin had not seen before, the origins they went to, and
// the burst beyond their number (connections past the first to each such origin).
// BENCH_MAX_CONNECTIONS: pool.maxConnections of every origin (default: the product's). Every configuration also
// samples the origin's established connections per origin port every 250 ms (ss, at the origin's side) and reports
// the most any origin held at once: with `owner` a fleet-wide cap, with `direct` one per member.
// Needs: nginx (Debian: nginx-light), haproxy, a built dist/.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { makeCerts } from '../lib/certs.mjs';
import { DIST } from '../lib/dist.mjs';
import { haproxyHead } from '../lib/haproxy.mjs';
import { alive, freePort, scratch, serviceArgv, stopChild, treeCpuNs, treePids, waitPort } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';
import { quantile } from '../lib/stats.mjs';

const env = process.env;
const ORIGINS = Number(env.BENCH_ORIGINS ?? 500);
const RATE = Number(env.BENCH_RATE ?? 300);
const ZIPF = Number(env.BENCH_ZIPF ?? 1);
const KEEPALIVE = Number(env.BENCH_KEEPALIVE ?? 15);
const KEEPALIVE_HINT = env.BENCH_KEEPALIVE_HINT === '1';
const DURATION = Number(env.BENCH_DURATION ?? 120);
const WARMUP = Number(env.BENCH_WARMUP ?? 60);
const WORKERS = Number(env.BENCH_WORKERS ?? 2);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 1);
const CONNS = Number(env.BENCH_CONNECTIONS ?? 16);
const INSTANCES = Number(env.BENCH_INSTANCES ?? 3);
const KILL = env.BENCH_KILL ?? null;
const JOIN = env.BENCH_JOIN === '1';
const MAX_CONNS = env.BENCH_MAX_CONNECTIONS ? Number(env.BENCH_MAX_CONNECTIONS) : null;
const KINDS = ['one', 'direct', 'auto', 'owner', 'nginx', 'haproxy', 'fleet-direct', 'fleet-auto', 'fleet-owner'];
const CONFIGS = (env.BENCH_CONFIGS ?? 'one,direct,auto,owner,nginx,haproxy').split(',').filter(Boolean);
for (const [k, ok] of [
  ['BENCH_ORIGINS', Number.isInteger(ORIGINS) && ORIGINS >= 1 && ORIGINS <= 2000],
  ['BENCH_RATE', RATE > 0 && RATE <= 20_000],
  ['BENCH_ZIPF', ZIPF >= 0 && ZIPF <= 4],
  ['BENCH_KEEPALIVE', KEEPALIVE >= 1 && KEEPALIVE <= 3600],
  ['BENCH_DURATION', DURATION >= 1 && DURATION <= 3600],
  ['BENCH_WARMUP', WARMUP >= 0 && WARMUP <= 3600],
  [
    'BENCH_WORKERS',
    Number.isInteger(WORKERS) &&
      WORKERS >= (CONFIGS.some((c) => c === 'direct' || c === 'auto' || c === 'owner') ? 2 : 1) &&
      WORKERS <= 64,
  ],
  ['BENCH_ROUNDS', Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 20],
  ['BENCH_CONFIGS', CONFIGS.every((c) => KINDS.includes(c))],
  ['BENCH_INSTANCES', Number.isInteger(INSTANCES) && INSTANCES >= 2 && INSTANCES <= 16],
  ['BENCH_JOIN', !JOIN || (KILL === null && CONFIGS.every((c) => c.startsWith('fleet-')))],
  ['BENCH_MAX_CONNECTIONS', MAX_CONNS === null || (Number.isInteger(MAX_CONNS) && MAX_CONNS >= 1)],
  [
    'BENCH_KILL',
    KILL === null || ((KILL === 'instance' || KILL === 'worker') && CONFIGS.every((c) => c.startsWith('fleet-'))),
  ],
]) {
  if (!ok) {
    console.error(`bench/fleet-reuse: bad ${k}`);
    process.exit(2);
  }
}

const { dir, procs } = scratch('ol-fleet-reuse-');
const certs = makeCerts();

// The origins: one nginx process, a TLS port per origin, each request's connection serial in one access log.
const originPorts = [];
for (let i = 0; i < ORIGINS; i++) originPorts.push(await freePort());
const originDir = join(dir, 'origin');
mkdirSync(join(originDir, 'www'), { recursive: true });
writeFileSync(
  join(originDir, 'nginx.conf'),
  `daemon off;
worker_processes 1;
pid ${originDir}/nginx.pid;
error_log ${originDir}/error.log warn;
events { worker_connections 16384; }
http {
  log_format c '$connection $server_port';
  access_log ${originDir}/access.log c;
  keepalive_timeout ${KEEPALIVE}s${KEEPALIVE_HINT ? ` ${KEEPALIVE}s` : ''};
  keepalive_requests 1000000;
  ssl_certificate ${certs.certPath};
  ssl_certificate_key ${certs.keyPath};
  ssl_session_cache shared:SSL:8m;
  root ${originDir}/www;
${originPorts.map((p) => `  server { listen 127.0.0.1:${p} ssl; location / { return 200 "${'x'.repeat(512)}"; } }`).join('\n')}
}
`,
);
const origin = spawn(
  'nginx',
  ['-p', originDir, '-c', join(originDir, 'nginx.conf'), '-e', join(originDir, 'error.log')],
  {
    stdio: 'ignore',
  },
);
procs.push(origin);
await waitPort(originPorts[ORIGINS - 1]);
const originLog = join(originDir, 'access.log');
const logLines = () => {
  try {
    return readFileSync(originLog, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

// The proxies: origin `oN` behind the path prefix /oN/ (stripped), on one cleartext HTTP/1.1 front.
const originlinkConfig = (front, admin, route, fleet = null) => `
listeners:
  - { name: front, kind: http, host: 127.0.0.1, port: ${front} }
admin: { host: 127.0.0.1, port: ${admin} }
logging: { requests: false, level: warn }
fleet:
  route: ${route}${
    fleet
      ? `
  members: [${fleet.members.map((m) => `"${m}"`).join(', ')}]
  member: { host: 127.0.0.1, port: ${fleet.port}, tls: { cert: ${certs.certPath}, key: ${certs.keyPath}, ca: ${certs.caPath} } }`
      : ''
  }
origins:
${originPorts.map((p, i) => `  o${i}: { url: "https://127.0.0.1:${p}", protocol: h1, tls: { ca: ${certs.caPath} }${MAX_CONNS ? `, pool: { maxConnections: ${MAX_CONNS} }` : ''} }`).join('\n')}
routes:
${originPorts.map((_, i) => `  - { path: /o${i}/, origin: o${i}, stripPrefix: true }`).join('\n')}
`;
const nginxProxyConfig = (front, d) => `daemon off;
worker_processes ${WORKERS};
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  proxy_ssl_trusted_certificate ${certs.caPath};
  proxy_ssl_verify on;
  proxy_ssl_name localhost;
  proxy_ssl_session_reuse on;
${originPorts.map((p, i) => `  upstream o${i} { server 127.0.0.1:${p}; keepalive 32; }`).join('\n')}
  server {
    listen 127.0.0.1:${front};
${originPorts
  .map(
    (_, i) =>
      `    location /o${i}/ { proxy_pass https://o${i}/; proxy_http_version 1.1; proxy_set_header Connection ""; }`,
  )
  .join('\n')}
  }
}
`;

const haproxyConfig = (front) => `${haproxyHead(WORKERS)}
frontend fe
  bind 127.0.0.1:${front}
  use_backend %[path,field(2,/)]
${originPorts
  .map(
    (p, i) => `backend o${i}
  http-reuse always
  server s 127.0.0.1:${p} ssl verify required ca-file ${certs.caPath} sni str(localhost) alpn http/1.1`,
  )
  .join('\n')}
`;

/** `n` consecutive free ports (a `serve --workers` member's slots listen on port + slot − 1). */
async function freeRun(n) {
  const net = await import('node:net');
  for (let i = 0; i < 200; i++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const servers = [];
    try {
      for (let k = 0; k < n; k++) {
        const s = net.createServer();
        await new Promise((res, rej) => {
          s.once('error', rej);
          s.listen(base + k, '127.0.0.1', res);
        });
        servers.push(s);
      }
      return base;
    } catch {
      /* taken: another base */
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error('no run of free ports');
}

/**
 * BENCH_INSTANCES `serve --workers W` processes that name each other (fleet.members): their fronts and pids. With
 * BENCH_JOIN, one more instance's ports are set aside, and `join()` starts it naming every member, then reloads the
 * others (SIGHUP) with it in their `fleet.members`.
 */
async function startInstances(route) {
  const bases = [];
  const total = INSTANCES + (JOIN ? 1 : 0);
  for (let i = 0; i < total; i++) bases.push(await freeRun(WORKERS));
  const slotsOf = (n) =>
    bases.slice(0, n).flatMap((b) => Array.from({ length: WORKERS }, (_, s) => `127.0.0.1:${b + s}`));
  const members = slotsOf(INSTANCES);
  const out = [];
  const spawnOne = async (i, list) => {
    const front = await freePort();
    const admin = await freePort();
    const d = join(dir, `fleet-${route}-${front}`);
    mkdirSync(d, { recursive: true });
    const file = join(d, 'c.yaml');
    writeFileSync(file, originlinkConfig(front, admin, route, { members: list, port: bases[i] }));
    const [node, ...args] = serviceArgv(DIST);
    const p = spawn(node, [...args, 'serve', '--config', file, '--workers', String(WORKERS)], { stdio: 'ignore' });
    procs.push(p);
    return { p, front, admin, file, base: bases[i] };
  };
  for (let i = 0; i < INSTANCES; i++) out.push(await spawnOne(i, members));
  for (const x of out) await waitPort(x.front, 30_000);
  for (const b of bases.slice(0, INSTANCES)) for (let s = 0; s < WORKERS; s++) await waitPort(b + s, 30_000);
  await linked(out);
  // The joiner starts first (warm: its processes up and its links to the others open, serving nothing: no one lists
  // it yet and its front takes no load); then the others are reloaded with it in their lists.
  let joiner = null;
  const prepare = async () => {
    joiner = await spawnOne(INSTANCES, slotsOf(total));
    await waitPort(joiner.front, 30_000);
    for (let s = 0; s < WORKERS; s++) await waitPort(joiner.base + s, 30_000);
    return joiner;
  };
  const announce = () => {
    const all = slotsOf(total);
    for (const o of out) {
      writeFileSync(o.file, originlinkConfig(o.front, o.admin, route, { members: all, port: o.base }));
      o.p.kill('SIGHUP');
    }
    out.push(joiner);
    return joiner;
  };
  return Object.assign(out, { prepare, announce });
}

/**
 * Until every worker's heartbeats reach every other member (a member not heard yet is out of the hash: requests
 * meanwhile go to another owner, whose connections then idle out at the origin). At most 30 s.
 */
async function linked(xs) {
  const n = xs.length * WORKERS;
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    const views = await fleetViews(xs);
    const ok =
      views.length === n &&
      views.every((v) => Object.values(v.links).length === n - 1 && Object.values(v.links).every((l) => l.up));
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Each origin's owner as the first worker of instance 0 names it (the origins it has seen). */
async function ownersSeen(ps) {
  // Every worker of the first INSTANCES instances (the joiner's are not asked): together they have seen about
  // every origin, each its share. Where two name different owners at that moment, the first asked counts.
  const out = new Map();
  for (const v of await fleetViews(ps.slice(0, INSTANCES)))
    for (const [o, x] of Object.entries(v.origins)) if (!out.has(o)) out.set(o, x.owner);
  return out;
}

async function startProxy(kind) {
  const front = await freePort();
  const admin = await freePort();
  const d = join(dir, `${kind}-${front}`);
  mkdirSync(d, { recursive: true });
  let p;
  if (kind === 'nginx') {
    writeFileSync(join(d, 'nginx.conf'), nginxProxyConfig(front, d));
    p = spawn('nginx', ['-p', d, '-c', join(d, 'nginx.conf'), '-e', join(d, 'error.log')], { stdio: 'ignore' });
  } else if (kind === 'haproxy') {
    writeFileSync(join(d, 'haproxy.cfg'), haproxyConfig(front));
    p = spawn('haproxy', ['-db', '-f', join(d, 'haproxy.cfg')], { stdio: 'ignore' });
  } else {
    const route = kind === 'one' ? 'direct' : kind;
    writeFileSync(join(d, 'c.yaml'), originlinkConfig(front, admin, route));
    const [node, ...args] = serviceArgv(DIST);
    const workers = kind === 'one' ? [] : ['--workers', String(WORKERS)];
    p = spawn(node, [...args, 'serve', '--config', join(d, 'c.yaml'), ...workers], { stdio: 'ignore' });
  }
  procs.push(p);
  await waitPort(front, 30_000);
  // The workers of `serve --workers` learn the member table once each is ready: the load starts when every worker
  // knows every other (until then a worker sends direct).
  if (kind !== 'nginx' && kind !== 'haproxy' && kind !== 'one') {
    const end = Date.now() + 30_000;
    while (Date.now() < end && (await fleetMembers(admin)) < WORKERS * WORKERS)
      await new Promise((r) => setTimeout(r, 100));
  }
  return { p, front, admin: kind === 'nginx' || kind === 'haproxy' ? null : admin };
}

/** Members known, summed over the workers (WORKERS² once every worker knows every other). */
async function fleetMembers(admin) {
  const st = await statsOf(admin);
  let n = 0;
  for (const w of st.workers ?? []) n += w.body?.['(fleet)']?.members?.length ?? 0;
  return n;
}

async function statsOf(admin) {
  const body = await new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port: admin, path: '/stats' }, (res) => {
        let b = '';
        res.on('data', (d) => {
          b += d;
        });
        res.on('end', () => resolve(b));
      })
      .on('error', () => resolve('{}'));
  });
  try {
    return JSON.parse(body);
  } catch {
    return {};
  }
}

/** The fleet's counters of every worker (/stats): requests forwarded to an owner, received as one, lost links. */
async function fleetCounts(admin) {
  if (admin === null) return null;
  const st = await statsOf(admin);
  let forwarded = 0;
  let received = 0;
  let links = 0;
  // `auto`'s choices at the end: origins a member sends direct, to their owner, and how often it changed one.
  let direct = 0;
  let toOwner = 0;
  let routeChanges = 0;
  for (const w of st.workers ?? [{ body: st }]) {
    const f = w.body?.['(fleet)'];
    if (!f) continue;
    for (const o of Object.values(f.origins)) {
      forwarded += o.forwarded;
      received += o.received;
      if (o.route === 'direct') direct++;
      else if (o.route === 'owner') toOwner++;
      routeChanges += o.routeChanges ?? 0;
    }
    for (const l of f.linkPools ?? []) links += l.connectionsOpened ?? 0;
  }
  return { forwarded, received, linkConnections: links, direct, toOwner, routeChanges };
}

const originPortSet = new Set(originPorts);
/**
 * The origin's established connections now, per origin port (its side of each connection: `ss` sport), from the
 * kernel: what the origin holds at this moment, idle or carrying a request.
 */
async function originHeld() {
  const { execFile } = await import('node:child_process');
  const out = await new Promise((resolve) =>
    execFile('ss', ['-Htn', 'state', 'established'], { maxBuffer: 64 << 20 }, (_e, so) => resolve(so ?? '')),
  );
  const held = new Map();
  for (const line of out.split('\n')) {
    // Recv-Q Send-Q Local:Port Peer:Port
    const local = line.trim().split(/\s+/)[2];
    const port = Number(local?.slice(local.lastIndexOf(':') + 1));
    if (originPortSet.has(port)) held.set(port, (held.get(port) ?? 0) + 1);
  }
  return held;
}

/** Zipf(s) over n ranks: the cumulative weights, for an inverse-CDF draw. */
const cdf = (() => {
  const w = Array.from({ length: ORIGINS }, (_, i) => 1 / (i + 1) ** ZIPF);
  const total = w.reduce((a, b) => a + b, 0);
  let acc = 0;
  return w.map((x) => (acc += x / total));
})();
const draw = () => {
  const u = Math.random();
  let lo = 0;
  let hi = ORIGINS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
};

/** A fixed request rate for DURATION s over CONNS keep-alive connections to the front: latencies and failures. */
/**
 * The load for WARMUP + DURATION s; `onWindow` is called when the counted window starts (after the warm-up), and
 * the latencies and failures are the window's.
 */
async function load(fronts, onWindow) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNS });
  const lat = [];
  let failed = 0;
  let connLost = 0;
  let sent = 0;
  const statuses = {};
  const t0 = performance.now();
  const windowAt = t0 + WARMUP * 1000;
  const end = windowAt + DURATION * 1000;
  const inflight = new Set();
  let counting = false;
  let counted = 0;
  while (performance.now() < end) {
    if (!counting && performance.now() >= windowAt) {
      counting = true;
      onWindow();
    }
    const due = t0 + (sent * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sent++;
    if (counting) counted++;
    const i = draw();
    const s = performance.now();
    const inWindow = counting;
    const p = new Promise((resolve) => {
      const req = http.get(
        { host: '127.0.0.1', port: fronts[sent % fronts.length], path: `/o${i}/r`, agent },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) {
              if (inWindow) lat.push(performance.now() - s);
            } else {
              failed++;
              statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
            }
            resolve();
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        failed++;
        connLost++;
        statuses[e.code ?? e.message] = (statuses[e.code ?? e.message] ?? 0) + 1;
        resolve();
      });
    });
    inflight.add(p);
    p.then(() => inflight.delete(p));
  }
  await Promise.all(inflight);
  agent.destroy();
  lat.sort((a, b) => a - b);
  return {
    sent,
    counted,
    ok: lat.length,
    failed,
    connLost,
    statuses,
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
  };
}

/** Every worker's fleet view of every instance: [{ instance, self, pid, owners: Map origin → owner }]. */
async function fleetViews(ps) {
  const out = [];
  for (let i = 0; i < ps.length; i++) {
    const st = await statsOf(ps[i].admin);
    for (const w of st.workers ?? []) {
      const f = w.body?.['(fleet)'];
      if (f) out.push({ instance: i, self: f.self, pid: w.pid, origins: f.origins, links: f.links ?? {} });
    }
  }
  return out;
}

/**
 * BENCH_KILL: the owner of o0 (the most requested origin) SIGKILLed — its instance, or that worker — then how long
 * until no surviving member names a killed member the owner of any origin it has seen (polled every 20 ms, ≤ 10 s).
 */
async function killOwner(ps, fronts) {
  const views = await fleetViews(ps);
  const owner = views.find((v) => v.origins.o0?.owner)?.origins.o0.owner;
  const victimView = views.find((v) => v.self === owner);
  if (!owner || !victimView) return { error: 'no owner of o0 found' };
  const inst = ps[victimView.instance];
  let dead;
  if (KILL === 'instance') {
    // Every member of that instance is dead: its primary and its workers, by PID.
    dead = new Set(views.filter((v) => v.instance === victimView.instance).map((v) => v.self));
    const i = fronts.indexOf(inst.front);
    if (i >= 0) fronts.splice(i, 1);
    for (const pid of treePids(inst.p.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  } else {
    dead = new Set([owner]);
    const st = await statsOf(inst.admin);
    const w = (st.workers ?? []).find((x) => x.body?.['(fleet)']?.self === owner);
    if (!w?.pid) return { error: `no pid for worker ${owner}` };
    process.kill(w.pid, 'SIGKILL');
  }
  const t0 = performance.now();
  const alive = ps.filter((_, k) => KILL !== 'instance' || k !== victimView.instance);
  const downsBefore = new Map(views.filter((v) => !dead.has(v.self)).map((v) => [v.self, v.links[owner]?.downs ?? 0]));
  // Per surviving member, when it first named no killed member as an owner: a killed worker is restarted under its
  // name and takes its origins back, so the members need not be clear of it all at the same moment.
  const out = new Map();
  for (let n = 0; n < 500; n++) {
    const vs = (await fleetViews(alive)).filter((v) => !dead.has(v.self));
    const at = performance.now() - t0;
    for (const v of vs)
      if (!out.has(v.self) && !Object.values(v.origins).some((o) => dead.has(o.owner))) out.set(v.self, at);
    if (vs.length > 0 && vs.every((v) => out.has(v.self)))
      return { killed: [...dead], movedMs: Math.max(...out.values()), members: vs.length };
    // A killed worker restarted under its name takes its origins back: what the others saw is its link going down.
    if (KILL === 'worker' && at > 3000) {
      const sawDown = vs.filter((v) => (v.links[owner]?.downs ?? 0) > (downsBefore.get(v.self) ?? 0)).length;
      const back = vs.filter((v) => v.links[owner]?.up === true).length;
      return { killed: [...dead], movedMs: null, clearAtOnce: out.size, members: vs.length, sawDown, backUp: back };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { killed: [...dead], movedMs: null, clear: out.size };
}

/**
 * BENCH_JOIN: one more instance joins (started, then the others reloaded with it); owners before and 3 s after at
 * the first instances' workers; new origin connections in those 3 s, against the origins that moved.
 */
async function joinOne(ps, fronts) {
  const before = await ownersSeen(ps);
  const logAt = logLines().length;
  const seen = new Set(logLines());
  const t0 = performance.now();
  const x = ps.announce();
  fronts.push(x.front);
  await linked(ps);
  const linkedMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 3000));
  const after = await ownersSeen(ps);
  let moved = 0;
  let compared = 0;
  for (const [o, owner] of before) {
    const now = after.get(o);
    if (now === undefined) continue;
    compared++;
    if (now !== owner) moved++;
  }
  const freshLines = new Set(
    logLines()
      .slice(logAt)
      .filter((c) => !seen.has(c)),
  );
  const fresh = freshLines.size;
  // Origins that got a new connection (a line is the connection's serial and its origin port), over all origins.
  const freshOrigins = new Set([...freshLines].map((l) => l.split(' ')[1])).size;
  return {
    linkedMs: Math.round(linkedMs),
    origins: compared,
    moved,
    movedShare: compared ? moved / compared : null,
    joinerShare: 1 / (INSTANCES + 1),
    newOriginConnections3s: fresh,
    originsWithNewConnections3s: freshOrigins,
    // The burst beyond their number: new connections past the first to each origin that got one.
    extraConnections3s: fresh - freshOrigins,
  };
}

async function run(kind) {
  const ps = kind.startsWith('fleet-') ? await startInstances(kind.slice(6)) : [await startProxy(kind)];
  const cpu = () => ps.reduce((n, x) => n + treeCpuNs(x.p.pid), 0);
  const before = logLines().length;
  let windowFrom = before;
  let cpu0 = cpu();
  // The origin's own CPU over the same window (nginx: its master and worker), for the goal "the origin's CPU per
  // request below direct's": what the connections a configuration opens cost the origin.
  let originCpu0 = treeCpuNs(origin.pid);
  // And from cold: from the first request of the run (the processes started, none served yet) to its end.
  const cpuCold0 = cpu0;
  const originCpuCold0 = originCpu0;
  const fronts = ps.map((x) => x.front);
  let kill = null;
  let joined = null;
  const preparing = JOIN ? ps.prepare() : null;
  // The most connections any one origin held at once, sampled every 250 ms through the run.
  let maxHeld = 0;
  let maxHeldO0 = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const held = await originHeld();
      for (const n of held.values()) maxHeld = Math.max(maxHeld, n);
      maxHeldO0 = Math.max(maxHeldO0, held.get(originPorts[0]) ?? 0);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const r = await load(fronts, () => {
    windowFrom = logLines().length;
    cpu0 = cpu();
    originCpu0 = treeCpuNs(origin.pid);
    if (KILL)
      setTimeout(
        () => {
          kill = killOwner(ps, fronts);
        },
        (DURATION * 1000) / 2,
      );
    if (JOIN)
      setTimeout(
        () => {
          joined = preparing.then(() => joinOne(ps, fronts));
        },
        (DURATION * 1000) / 2,
      );
  });
  const cpuEnd = cpu();
  const originCpuEnd = treeCpuNs(origin.pid);
  const cpuNs = cpuEnd - cpu0;
  const originCpuNs = originCpuEnd - originCpu0;
  const cpuColdNs = cpuEnd - cpuCold0;
  const originCpuColdNs = originCpuEnd - originCpuCold0;
  if (kill) kill = await kill;
  if (joined) joined = await joined;
  sampling = false;
  await sampler;
  // nginx writes a request's line just after its response: a moment for the last ones.
  await new Promise((res) => setTimeout(res, 300));
  const all = logLines();
  const lines = all.slice(before);
  const conns = new Set(lines).size;
  // In the window: connections that carried a request there and none before it (opened in the window).
  const earlier = new Set(all.slice(before, windowFrom));
  const win = all.slice(windowFrom);
  const winConns = new Set(win.filter((c) => !earlier.has(c))).size;
  const counts = await Promise.all(ps.map((x) => fleetCounts(x.admin)));
  const fleet = counts[0]
    ? {
        forwarded: counts.reduce((n, c) => n + (c?.forwarded ?? 0), 0),
        received: counts.reduce((n, c) => n + (c?.received ?? 0), 0),
        linkConnections: counts.reduce((n, c) => n + (c?.linkConnections ?? 0), 0),
        direct: counts.reduce((n, c) => n + (c?.direct ?? 0), 0),
        toOwner: counts.reduce((n, c) => n + (c?.toOwner ?? 0), 0),
        routeChanges: counts.reduce((n, c) => n + (c?.routeChanges ?? 0), 0),
      }
    : null;
  for (const x of ps) await stopChild(x.p, 5000);
  return {
    config: kind,
    requests: r.sent,
    failed: r.failed,
    failedWithStatus: r.failed - r.connLost,
    lostWithConnection: r.connLost,
    failures: r.statuses,
    kill,
    join: joined,
    maxHeldByAnOrigin: maxHeld,
    maxHeldByO0: maxHeldO0,
    originRequests: lines.length,
    originConnections: conns,
    reuse: lines.length ? 1 - conns / lines.length : 0,
    windowRequests: win.length,
    windowConnections: winConns,
    windowReuse: win.length ? 1 - winConns / win.length : 0,
    p50: r.p50,
    p99: r.p99,
    cpuUsPerRequest: r.ok ? cpuNs / 1000 / r.ok : null,
    originCpuUsPerRequest: r.ok ? originCpuNs / 1000 / r.ok : null,
    cpuColdUsPerRequest: r.sent ? cpuColdNs / 1000 / r.sent : null,
    originCpuColdUsPerRequest: r.sent ? originCpuColdNs / 1000 / r.sent : null,
    fleet,
  };
}

const rounds = [];
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? CONFIGS : [...CONFIGS].reverse();
  const rows = [];
  for (const c of order) {
    const row = await run(c);
    rows.push(row);
    console.log(
      `round ${round + 1}: ${c}: ${row.kill ? `kill ${JSON.stringify(row.kill)}, ${row.failedWithStatus} failed with a status, ${row.lostWithConnection} lost with their client connection; ` : ''}${row.join ? `join ${JSON.stringify(row.join)}; ` : ''}most held by one origin at once ${row.maxHeldByAnOrigin} (o0 ${row.maxHeldByO0}); from cold ${row.originConnections} origin connections for ${row.originRequests} requests (reuse ${(100 * row.reuse).toFixed(1)} %); window ${row.windowConnections} for ${row.windowRequests} (${(100 * row.windowReuse).toFixed(1)} %); p50 ${row.p50?.toFixed(2)} ms, p99 ${row.p99?.toFixed(2)} ms, ${row.cpuUsPerRequest?.toFixed(0)} µs CPU/req (origin ${row.originCpuUsPerRequest?.toFixed(0)}; from cold ${row.cpuColdUsPerRequest?.toFixed(0)}, origin ${row.originCpuColdUsPerRequest?.toFixed(0)}), ${row.failed} failed ${JSON.stringify(row.failures)}, fleet ${JSON.stringify(row.fleet)}`,
    );
  }
  rounds.push(rows);
}
if (alive(origin)) await stopChild(origin);

/** The median over the rounds: of an even count, the mean of the middle two (it was the lower one). */
const med = (xs) => {
  const s = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
};
const rowsFor = (c) => rounds.map((rs) => rs.find((r) => r.config === c));
const label = {
  one: 'originlink, one process',
  direct: `originlink, ${WORKERS} workers, direct`,
  auto: `originlink, ${WORKERS} workers, auto`,
  owner: `originlink, ${WORKERS} workers, owner`,
  nginx: `nginx, ${WORKERS} workers (keepalive 32)`,
  haproxy: `HAProxy, ${WORKERS} threads (http-reuse always)`,
  'fleet-direct': `originlink, ${INSTANCES} instances × ${WORKERS} worker${WORKERS === 1 ? '' : 's'}, direct`,
  'fleet-auto': `originlink, ${INSTANCES} instances × ${WORKERS} worker${WORKERS === 1 ? '' : 's'}, auto`,
  'fleet-owner': `originlink, ${INSTANCES} instances × ${WORKERS} worker${WORKERS === 1 ? '' : 's'}, owner`,
};
const one = med(rowsFor('one').map((r) => r?.originConnections));
const oneWin = med(rowsFor('one').map((r) => r?.windowConnections));
const ratio = (x, base) => (base ? (x / base).toFixed(2) : '–');
console.log(
  `\n${ORIGINS} origins (Zipf ${ZIPF}), ${RATE} req/s for ${WARMUP} s of warm-up then a counted window of ${DURATION} s, over ${CONNS} client connections, origin keep-alive ${KEEPALIVE} s${KEEPALIVE_HINT ? ' (hinted)' : ''}; medians of ${ROUNDS} round(s). Connections counted at the origin; "window": opened in the window.\n`,
);
console.log(
  '| in front of the origins | origin connections from cold (÷ one process) | in the window (÷ one process) | reuse at the origin, cold / window | p50 ms | p99 ms | CPU µs/req, window (all processes) | origin CPU µs/req, window | CPU µs/req from cold, ours / origin | failed | most held by one origin at once |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
const table = CONFIGS.map((c) => {
  const rs = rowsFor(c);
  const row = {
    config: c,
    originConnections: med(rs.map((r) => r.originConnections)),
    windowConnections: med(rs.map((r) => r.windowConnections)),
    reuse: med(rs.map((r) => r.reuse)),
    windowReuse: med(rs.map((r) => r.windowReuse)),
    p50: med(rs.map((r) => r.p50)),
    p99: med(rs.map((r) => r.p99)),
    cpuUsPerRequest: med(rs.map((r) => r.cpuUsPerRequest)),
    originCpuUsPerRequest: med(rs.map((r) => r.originCpuUsPerRequest)),
    cpuColdUsPerRequest: med(rs.map((r) => r.cpuColdUsPerRequest)),
    originCpuColdUsPerRequest: med(rs.map((r) => r.originCpuColdUsPerRequest)),
    failed: rs.reduce((n, r) => n + r.failed, 0),
    maxHeldByAnOrigin: Math.max(...rs.map((r) => r.maxHeldByAnOrigin ?? 0)),
  };
  console.log(
    `| ${label[c]} | ${row.originConnections} (${ratio(row.originConnections, one)}) | ${row.windowConnections} (${ratio(row.windowConnections, oneWin)}) | ${(100 * row.reuse).toFixed(1)} % / ${(100 * row.windowReuse).toFixed(1)} % | ${row.p50?.toFixed(2)} | ${row.p99?.toFixed(2)} | ${row.cpuUsPerRequest?.toFixed(0)} | ${row.originCpuUsPerRequest?.toFixed(0)} | ${row.cpuColdUsPerRequest?.toFixed(0)} / ${row.originCpuColdUsPerRequest?.toFixed(0)} | ${row.failed} | ${row.maxHeldByAnOrigin} |`,
  );
  return row;
});
const w = new ResultWriter('fleet-reuse');
console.log(
  `\nresults: ${w.write({ knobs: { ORIGINS, RATE, ZIPF, KEEPALIVE, KEEPALIVE_HINT, WARMUP, DURATION, WORKERS, INSTANCES, ROUNDS, CONNS, CONFIGS, KILL, MAX_CONNS }, rounds, table })}`,
);
