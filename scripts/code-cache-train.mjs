#!/usr/bin/env node
// The code-cache training runs of scripts/bundle.mjs (it starts them with ORIGINLINK_CODE_CACHE_OUT,
// scripts/code-cache.mjs): requests over each protocol to the demo origins on loopback (dist/service/demo-origins.js,
// the demo's certificates, ephemeral ports), so a cache holds a first request's path as well as the import.
// - `library ENTRY`: imports the package from ENTRY (dist/bundle/index.js); a GET and a POST of a new Agent a protocol.
// - `redis ENTRY`: the package's Redis stores (trainRedis), for the cache of dist/bundle/ioredis.cjs
//   (scripts/bundle.mjs runs it with another ORIGINLINK_CODE_CACHE_OUT and keeps that file's cache only: the
//   library's stays a request's).
// - `client CLIENT_CJS`: loads the one-shot commands' bundle (dist/bundle/client.cjs) as main.cjs does for `fetch`,
//   `probe` or `info`, and runs `fetch` a protocol: a cache of what a fetch compiles.
// A request that fails exits non-zero: the build then says the cache holds less.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { compileCached } from './code-cache.mjs';

const [mode, file] = process.argv.slice(2);
if (!['library', 'client', 'redis'].includes(mode) || !file)
  throw new Error('usage: code-cache-train.mjs library ENTRY | client CLIENT_CJS | redis ENTRY');
const root = join(file, '..', '..', '..');
setTimeout(() => {
  console.error(`code-cache-train ${mode}: no answer in 20 s`);
  process.exit(1);
}, 20_000).unref();
const certs = join(root, 'config', 'demo-certs');
const caPath = join(certs, 'ca.pem');

if (mode === 'redis') {
  await trainRedis();
  process.exit(0);
}

/** One origin's requests: `name` its protocol (h1, h2, h3), `url` its root. */
let train;
if (mode === 'library') {
  const { Agent } = await import(pathToFileURL(file).href);
  const ca = readFileSync(caPath);
  train = async (name, url) => {
    const agent = new Agent({ protocol: name, tls: { ca } });
    try {
      for (const method of ['GET', 'POST']) {
        const res = await agent.request({ url, method, ...(method === 'POST' ? { body: 'training' } : {}) });
        await res.text();
        if (res.status !== 200) throw new Error(`${name} ${method}: ${res.status}`);
      }
    } finally {
      await agent.close();
    }
  };
} else {
  const io = { readFileSync, renameSync, writeFileSync, createRequire, fileURLToPath, Script, env: process.env };
  const { commands } = compileCached(io, pathToFileURL(file)).exports;
  const flag = { h1: '--http1.1', h2: '--http2', h3: '--http3' };
  train = async (name, url) => {
    const code = await commands.get('fetch')(['-s', '-o', '/dev/null', '--cacert', caPath, flag[name], url]);
    if (code !== 0) throw new Error(`fetch ${name} exited ${code}`);
  };
}

const { startDemoOrigins } = await import(pathToFileURL(join(root, 'dist', 'service', 'demo-origins.js')).href);
const origins = await startDemoOrigins({
  cert: readFileSync(join(certs, 'leaf.pem')),
  key: readFileSync(join(certs, 'leaf.key')),
  ports: { h1: 0, h2: 0, h3: 0 },
});
try {
  for (const o of origins) await train(o.name, `https://localhost:${o.port}/`);
} finally {
  await Promise.all(origins.map((o) => o.close()));
}

/**
 * The package's Redis stores on a `redis-server` of its own (an ephemeral port) when one is installed: tickets put,
 * read and taken, origin facts read, the writes flushed at close; else stores on a refused port, which still loads
 * ioredis and makes its client.
 */
async function trainRedis() {
  const { openStores } = await import(pathToFileURL(file).href);
  const { spawn, spawnSync } = await import('node:child_process');
  const { createServer } = await import('node:net');
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  const server = installed
    ? spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: 'ignore',
      })
    : null;
  const url = `redis://127.0.0.1:${port}/0?prefix=train:`;
  const stores = openStores({ sessionStore: url, originCache: url });
  try {
    await stores.ready(server ? 3_000 : 200).catch(() => {});
    for (let i = 0; i < 4; i++) {
      stores.sessionStore.put(`origin-${i}`, Buffer.alloc(200, i));
      stores.sessionStore.get(`origin-${i}`);
      stores.sessionStore.take(`origin-${i}`);
      stores.originCache.get(`https://origin-${i}:443`);
    }
  } finally {
    await stores.close();
    server?.kill();
  }
}
