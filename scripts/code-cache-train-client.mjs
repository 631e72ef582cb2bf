#!/usr/bin/env node
// The one-shot commands' code-cache training run (scripts/bundle.mjs starts it with ORIGINLINK_CODE_CACHE_OUT and the
// commands' node flags): `node scripts/code-cache-train-client.mjs COMMANDS_CJS` loads the commands bundle as
// main.cjs does for `fetch`, `probe` or `info` (its cache named commands.client, scripts/code-cache.mjs) and runs
// `fetch` over each protocol to the demo origins on loopback (dist/service/demo-origins.js, the demo's certificates,
// ephemeral ports), so the cache holds what a fetch compiles and not the service's code. A fetch that fails exits
// non-zero: the build then says the cache holds less.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { compileCached } from './code-cache.mjs';

const file = process.argv[2];
if (!file) throw new Error('usage: code-cache-train-client.mjs COMMANDS_CJS');
const root = join(file, '..', '..', '..');
setTimeout(() => {
  console.error('code-cache-train-client: no answer in 20 s');
  process.exit(1);
}, 20_000).unref();
const io = { readFileSync, renameSync, writeFileSync, createRequire, fileURLToPath, Script, env: process.env };
const { commands } = compileCached(io, pathToFileURL(file), 'commands.client').exports;
const certs = join(root, 'config', 'demo-certs');
const { startDemoOrigins } = await import(pathToFileURL(join(root, 'dist', 'service', 'demo-origins.js')).href);
const origins = await startDemoOrigins({
  cert: readFileSync(join(certs, 'leaf.pem')),
  key: readFileSync(join(certs, 'leaf.key')),
  ports: { h1: 0, h2: 0, h3: 0 },
});
const flag = { h1: '--http1.1', h2: '--http2', h3: '--http3' };
try {
  for (const o of origins) {
    const argv = [
      '-s',
      '-o',
      '/dev/null',
      '--cacert',
      join(certs, 'ca.pem'),
      flag[o.name],
      `https://localhost:${o.port}/`,
    ];
    const code = await commands.get('fetch')(argv);
    if (code !== 0) throw new Error(`fetch ${o.name} exited ${code}`);
  }
} finally {
  await Promise.all(origins.map((o) => o.close()));
}
