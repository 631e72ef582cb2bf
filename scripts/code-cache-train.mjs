#!/usr/bin/env node
// The code-cache training runs of scripts/bundle.mjs (it starts them with ORIGINLINK_CODE_CACHE_OUT,
// scripts/code-cache.mjs): requests over each protocol to the demo origins on loopback (dist/service/demo-origins.js,
// the demo's certificates, ephemeral ports), so a cache holds a first request's path as well as the import.
// - `library ENTRY`: imports the package from ENTRY (dist/bundle/index.js); a GET and a POST of a new Agent a protocol.
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
if ((mode !== 'library' && mode !== 'client') || !file)
  throw new Error('usage: code-cache-train.mjs library ENTRY | client CLIENT_CJS');
const root = join(file, '..', '..', '..');
setTimeout(() => {
  console.error(`code-cache-train ${mode}: no answer in 20 s`);
  process.exit(1);
}, 20_000).unref();
const certs = join(root, 'config', 'demo-certs');
const caPath = join(certs, 'ca.pem');

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
