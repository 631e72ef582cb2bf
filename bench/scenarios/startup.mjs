// What a fresh process costs (issue 58): wall time from spawn to exit of `node -e 0` (the floor), importing the
// package (an `import()` from `-e`, the goal's measure, and an ES module app's static import), `originlink
// --version`, and `originlink fetch` of a local HTTP/1.1 URL beside curl's — over cleartext, and over TLS with
// `--cacert` (a local https origin with the bench's own certificates; run through the tree's own bin/originlink,
// which starts that command as a user's shell does) — and `originlink serve` from its spawn to its first response
// through it, each the median of BENCH_RUNS (15) runs, interleaved so a slow minute lands on all alike;
// ratios against `node -e 0` of the same run. The service again before that https origin: from its spawn until it
// listens, and its first and second responses after that.
// The package and the command as they are loaded: dist/bundle/ (scripts/bundle.mjs) where the build has one, and then
// tsc's modules too (rows marked "modules": what the bundle saves, in the same run).
// Then a fresh process's first HTTP/3 request to our h3 origin on loopback (bench/lib/first-h3-client.mjs, BENCH_RUNS
// processes): the import, the first request of a new Agent and a second Agent's (a full handshake again) — issue 58's
// goal: the first response, from the process's start, within the import time + 1.5× the second request's. The same
// again to `localhost`, so the first request looks a name up.
// Every process here starts without NODE_EXTRA_CA_CERTS (BENCH_KEEP_NODE_ENV=1 keeps the caller's environment): Node
// reads and parses that file's certificates before any script runs, ~140 of them twice for a system bundle
// (/etc/ssl/certs/ca-certificates.crt, which some machines set it to): ~60 ms of every start, `node -e 0`'s as much
// as ours — the ratios below would then measure that file more than the package.
// BENCH_ANCHOR_DIST (another build's dist/, e.g. a worktree of the commit before): its import, `--version`, `fetch`,
// `serve` (started with its own launcher's flags) and first h3 request interleaved with this build's, rows marked
// "(anchor)" — a start-up change judged in one run, not against a run minutes apart on a machine that drifts.
// Knobs: BENCH_RUNS, BENCH_DIST, BENCH_ANCHOR_DIST, BENCH_KEEP_NODE_ENV.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '../lib/certs.mjs';
import { DIST } from '../lib/dist.mjs';
import { alive, commandArgv, freePort, serviceArgv, stopChild, waitPort } from '../lib/host.mjs';
import { ResultWriter } from '../lib/results.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const ANCHOR_DIST = process.env.BENCH_ANCHOR_DIST ?? null;
const extraCa = process.env.NODE_EXTRA_CA_CERTS;
if (process.env.BENCH_KEEP_NODE_ENV !== '1') delete process.env.NODE_EXTRA_CA_CERTS;
const port = await freePort();
const url = `http://127.0.0.1:${port}/`;
const bundled = existsSync(join(DIST, 'bundle', 'index.js'));
/** The package's entry in `dist`: the bundle where the build has one. */
const indexOf = (dist) => join(dist, existsSync(join(dist, 'bundle', 'index.js')) ? 'bundle' : '', 'index.js');
// The command as bin/originlink runs it: its node flags, then the bundle where the build has one.
const cli = commandArgv(DIST);
const index = indexOf(DIST);
// The origin in a child of its own: spawnSync blocks this process's loop.
const origin = spawn(
  process.execPath,
  ['-e', "require('http').createServer((q,r)=>r.end('ok\\n')).listen(+process.argv[1],'127.0.0.1')", String(port)],
  { stdio: 'ignore' },
);
await waitPort(port);
// The same over TLS: an https origin with the bench's own certificates (makeCerts: a CA and a leaf for 127.0.0.1).
const certs = makeCerts();
const tlsPort = await freePort();
const tlsOrigin = spawn(
  process.execPath,
  [
    '-e',
    "const f=require('fs');require('https').createServer({cert:f.readFileSync(process.argv[2]),key:f.readFileSync(process.argv[3])},(q,r)=>r.end('ok\\n')).listen(+process.argv[1],'127.0.0.1')",
    String(tlsPort),
    certs.certPath,
    certs.keyPath,
  ],
  { stdio: 'ignore' },
);
await waitPort(tlsPort);
const tlsUrl = `https://127.0.0.1:${tlsPort}/`;
/** A tree's launcher (bin/originlink beside its dist/), as a user runs the command. */
const launcherOf = (dist) => join(dist, '..', 'bin', 'originlink');
const tlsFetch = (dist) => [launcherOf(dist), 'fetch', '-s', '-o', '/dev/null', '--cacert', certs.caPath, tlsUrl];

// An application's own start: an ES module file that imports the package statically, as a program written against it
// does. Node's loader has then read the app through fs/promises already, so the entry's form weighs differently than
// at a first `import()` from `-e` (a CommonJS entry read 0.8 ms faster there and 0.8 ms slower here: RESULTS.md).
const appDir = mkdtempSync(join(tmpdir(), 'ol-bench-startup-app-'));
const appOf = (entry, name) => {
  const file = join(appDir, `${name}.mjs`);
  writeFileSync(
    file,
    `import { Agent } from ${JSON.stringify(entry)};\nif (typeof Agent !== 'function') process.exit(1);\n`,
  );
  return file;
};
const cases = [
  ['node -e 0', [process.execPath, '-e', '0']],
  ['import the package', [process.execPath, '--input-type=module', '-e', `await import(${JSON.stringify(index)})`]],
  ['an ES module app importing the package', [process.execPath, appOf(index, 'app')]],
  ['originlink --version', [...cli, '--version']],
  ['originlink fetch (local h1)', [...cli, 'fetch', '-s', '-o', '/dev/null', url]],
  ['curl (local h1)', ['curl', '-s', '-o', '/dev/null', url]],
  ['originlink fetch --cacert (local h1, TLS)', tlsFetch(DIST)],
  ['curl --cacert (local h1, TLS)', ['curl', '-s', '-o', '/dev/null', '--cacert', certs.caPath, tlsUrl]],
];
if (bundled)
  cases.push(
    [
      'import the package (modules)',
      [process.execPath, '--input-type=module', '-e', `await import(${JSON.stringify(join(DIST, 'index.js'))})`],
    ],
    [
      'originlink fetch (modules)',
      [process.execPath, join(DIST, 'cli', 'main.js'), 'fetch', '-s', '-o', '/dev/null', url],
    ],
  );
if (ANCHOR_DIST !== null) {
  const anchorCli = commandArgv(ANCHOR_DIST);
  cases.push(
    [
      'import the package (anchor)',
      [process.execPath, '--input-type=module', '-e', `await import(${JSON.stringify(indexOf(ANCHOR_DIST))})`],
    ],
    ['an ES module app importing the package (anchor)', [process.execPath, appOf(indexOf(ANCHOR_DIST), 'anchor-app')]],
    ['originlink --version (anchor)', [...anchorCli, '--version']],
    ['originlink fetch (local h1) (anchor)', [...anchorCli, 'fetch', '-s', '-o', '/dev/null', url]],
    ['originlink fetch --cacert (local h1, TLS) (anchor)', tlsFetch(ANCHOR_DIST)],
  );
}
const times = new Map(cases.map(([name]) => [name, []]));

// `originlink serve` from its spawn to its first response: the service as its launcher starts it (serviceArgv), one
// HTTP/1.1 front before the local origin, asked with a plain GET every 2 ms until one is answered.
const SERVE = 'originlink serve: spawn to first response';
const servePort = await freePort();
const serveDir = mkdtempSync(join(tmpdir(), 'ol-bench-startup-'));
/** A config file `name`: one HTTP/1.1 front on servePort before one origin, `origin` its flow-mapping's fields. */
function serviceConfig(name, origin) {
  const file = join(serveDir, name);
  writeFileSync(
    file,
    `listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: ${servePort} }
admin: false
shutdown: { graceMs: 100 }
origins:
  app: { ${origin} }
routes:
  - { path: /, origin: app }
`,
  );
  return file;
}
const serveConfig = serviceConfig('serve.yaml', `url: "http://127.0.0.1:${port}", protocol: h1`);
const answered = () =>
  new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port: servePort, path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
      })
      .on('error', () => resolve(false));
  });
/**
 * `originlink serve --config <config>` of `dist`, as its launcher starts it; `poll` (every `everyMs`) until it is
 * true, then `then(t0)` (t0: the spawn); the service stopped after, whatever happened.
 */
async function withServe(dist, config, poll, everyMs, then) {
  const [node, ...args] = serviceArgv(dist);
  const t0 = performance.now();
  const child = spawn(node, [...args, 'serve', '--config', config], { stdio: 'ignore' });
  try {
    while (!(await poll())) {
      if (performance.now() - t0 > 15_000 || !alive(child)) throw new Error(`serve (${config}): nothing in 15 s`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
    return await then(t0);
  } finally {
    await stopChild(child);
  }
}
const serveFirstResponse = (dist) => withServe(dist, serveConfig, answered, 2, (t0) => performance.now() - t0);
times.set(SERVE, []);
const SERVE_ANCHOR = `${SERVE} (anchor)`;
if (ANCHOR_DIST !== null) times.set(SERVE_ANCHOR, []);

// The same service before the https origin (`tls.ca`: the bench's CA): from its spawn until it listens, then its first
// response after that — what its first client waits for — and a second one's.
const tlsConfig = serviceConfig(
  'serve-tls.yaml',
  `url: "https://127.0.0.1:${tlsPort}", protocol: h1, tls: { ca: ${certs.caPath} }`,
);
const listening = () =>
  new Promise((resolve) => {
    const s = net.connect(servePort, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
const serveTlsFirst = (dist) =>
  withServe(dist, tlsConfig, listening, 1, async (t0) => {
    const t1 = performance.now();
    if (!(await answered())) throw new Error('serve (TLS origin): no answer');
    const t2 = performance.now();
    if (!(await answered())) throw new Error('serve (TLS origin): no second answer');
    return { listenMs: t1 - t0, firstMs: t2 - t1, secondMs: performance.now() - t2 };
  });
const serveTls = [];
const serveTlsAnchor = [];
try {
  for (let i = 0; i < RUNS; i++) {
    for (const [name, argv] of cases) {
      const t0 = performance.now();
      const r = spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`${name} exited ${r.status}`);
      times.get(name).push(ms);
    }
    times.get(SERVE).push(await serveFirstResponse(DIST));
    if (ANCHOR_DIST !== null) times.get(SERVE_ANCHOR).push(await serveFirstResponse(ANCHOR_DIST));
    serveTls.push(await serveTlsFirst(DIST));
    if (ANCHOR_DIST !== null) serveTlsAnchor.push(await serveTlsFirst(ANCHOR_DIST));
  }
} finally {
  rmSync(serveDir, { recursive: true, force: true });
  rmSync(appDir, { recursive: true, force: true });
  // A case that fails ends the run: the origins go with it, not left serving.
  origin.kill();
  tlsOrigin.kill();
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

// The first h3 request of a fresh process: our h3 origin (bench/lib/origin.mjs) on a loopback UDP port.
const h3Port = await freePort();
const h3Origin = spawn(
  process.execPath,
  [
    join(import.meta.dirname, '..', 'lib', 'origin.mjs'),
    JSON.stringify({ kind: 'h3', host: '127.0.0.1', port: h3Port, cert: certs.certPath, key: certs.keyPath }),
  ],
  { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BENCH_DIST: DIST } },
);
const firstH3 = [];
const anchorFirstH3 = [];
// The same to `localhost`: a name to look up first (src/net/resolver.ts).
const firstH3Name = [];
const anchorFirstH3Name = [];
try {
  await new Promise((resolve, reject) => {
    h3Origin.stdout.on('data', (d) => String(d).includes('"ready"') && resolve());
    h3Origin.once('exit', (c) => reject(new Error(`h3 origin exited ${c}`)));
    setTimeout(() => reject(new Error('h3 origin not ready in 15 s')), 15_000).unref();
  });
  const runs = [
    [index, '127.0.0.1', firstH3],
    ...(ANCHOR_DIST === null ? [] : [[indexOf(ANCHOR_DIST), '127.0.0.1', anchorFirstH3]]),
    [index, 'localhost', firstH3Name],
    ...(ANCHOR_DIST === null ? [] : [[indexOf(ANCHOR_DIST), 'localhost', anchorFirstH3Name]]),
  ];
  for (let i = 0; i < RUNS; i++) {
    for (const [entry, host, into] of runs) {
      const r = spawnSync(
        process.execPath,
        [
          join(import.meta.dirname, '..', 'lib', 'first-h3-client.mjs'),
          entry,
          `https://${host}:${h3Port}/small`,
          certs.caPath,
        ],
        { encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(`first h3 request exited ${r.status}: ${r.stderr.slice(0, 300)}`);
      into.push(JSON.parse(r.stdout.trim().split('\n').pop()));
    }
  }
} finally {
  h3Origin.kill();
}
const floor = med(times.get('node -e 0'));
const caNote =
  extraCa === undefined
    ? 'NODE_EXTRA_CA_CERTS unset'
    : process.env.NODE_EXTRA_CA_CERTS === undefined
      ? `NODE_EXTRA_CA_CERTS (${extraCa}) removed`
      : `NODE_EXTRA_CA_CERTS=${extraCa} kept`;
console.log(`Fresh processes, wall time spawn to exit, median of ${RUNS} interleaved runs (${DIST}; ${caNote})\n`);
console.log('| command | ms | ÷ node -e 0 |');
console.log('|---|---:|---:|');
// Every case, then serve (and the anchor's): the order they were timed in.
const rows = [...times.keys()].map((name) => {
  const m = med(times.get(name));
  console.log(`| ${name} | ${m.toFixed(0)} | ${(m / floor).toFixed(2)} |`);
  return { name, ms: m, ratio: m / floor };
});
function firstH3Line(label, runs) {
  const h3 = {
    importMs: med(runs.map((x) => x.importMs)),
    firstMs: med(runs.map((x) => x.firstMs)),
    secondMs: med(runs.map((x) => x.secondMs)),
    // Per run: the first response from the process's start against the import + 1.5 × the second request.
    goalRatio: med(runs.map((x) => (x.importMs + x.firstMs) / (x.importMs + 1.5 * x.secondMs))),
  };
  console.log(
    `\nFirst h3 request of a fresh process${label} (median of ${RUNS}): import ${h3.importMs.toFixed(0)} ms, first request ${h3.firstMs.toFixed(1)} ms, a second Agent's ${h3.secondMs.toFixed(1)} ms; (import + first) ÷ (import + 1.5 × second) = ${h3.goalRatio.toFixed(2)} (goal ≤ 1)`,
  );
  return h3;
}
function serveTlsLine(label, runs) {
  const r = {
    listenMs: med(runs.map((x) => x.listenMs)),
    firstMs: med(runs.map((x) => x.firstMs)),
    secondMs: med(runs.map((x) => x.secondMs)),
  };
  console.log(
    `\nserve before an https origin${label} (median of ${RUNS}): listening ${r.listenMs.toFixed(0)} ms after its spawn, its first response ${r.firstMs.toFixed(1)} ms after that, a second ${r.secondMs.toFixed(1)} ms`,
  );
  return r;
}
const tlsServe = serveTlsLine('', serveTls);
const anchorTlsServe = ANCHOR_DIST === null ? undefined : serveTlsLine(` (anchor, ${ANCHOR_DIST})`, serveTlsAnchor);
const h3 = firstH3Line('', firstH3);
const anchorH3 = ANCHOR_DIST === null ? undefined : firstH3Line(` (anchor, ${ANCHOR_DIST})`, anchorFirstH3);
const h3Name = firstH3Line(', to localhost', firstH3Name);
const anchorH3Name =
  ANCHOR_DIST === null ? undefined : firstH3Line(`, to localhost (anchor, ${ANCHOR_DIST})`, anchorFirstH3Name);
console.log(
  `\nresults: ${new ResultWriter('startup').write({ runs: RUNS, dist: DIST, anchorDist: ANCHOR_DIST ?? undefined, bundled, nodeExtraCaCerts: process.env.NODE_EXTRA_CA_CERTS ?? null, rows, firstH3: h3, anchorFirstH3: anchorH3, firstH3Name: h3Name, anchorFirstH3Name: anchorH3Name, serveTls: tlsServe, anchorServeTls: anchorTlsServe })}`,
);
