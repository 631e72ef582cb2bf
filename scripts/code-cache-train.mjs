#!/usr/bin/env node
// Makes dist/bundle/library.cache (scripts/bundle.mjs runs it in a fresh process of its own):
// `node scripts/code-cache-train.mjs DIR`. Loads DIR/library.cjs as the package's import does, makes one request of
// a new Agent over each protocol to the demo origins on loopback (dist/service/demo-origins.js, the demo's
// certificates, ephemeral ports), then writes V8's code cache of the library: the bytecode of every function compiled
// so far, so a user's first request finds its path compiled. Without the demo origins (a request fails, a dist
// without them) the cache holds what the import compiled, and says so.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { compileLibrary } from './code-cache.mjs';

const dir = process.argv[2];
if (!dir) throw new Error('usage: code-cache-train.mjs DIR');
const root = join(dir, '..', '..');
const cacheFile = join(dir, 'library.cache');
const library = compileLibrary(
  { readFileSync, createRequire, fileURLToPath, Script },
  pathToFileURL(join(dir, 'library.cjs')),
  pathToFileURL(join(dir, 'no-cache-yet')),
);

async function requests() {
  const certs = join(root, 'config', 'demo-certs');
  const { startDemoOrigins } = await import(pathToFileURL(join(dir, '..', 'service', 'demo-origins.js')).href);
  const origins = await startDemoOrigins({
    cert: readFileSync(join(certs, 'leaf.pem')),
    key: readFileSync(join(certs, 'leaf.key')),
    ports: { h1: 0, h2: 0, h3: 0 },
  });
  const ca = readFileSync(join(certs, 'ca.pem'));
  try {
    for (const o of origins) {
      const agent = new library.exports.Agent({ protocol: o.name, tls: { ca } });
      try {
        for (const method of ['GET', 'POST']) {
          const res = await agent.request({
            url: `https://localhost:${o.port}/`,
            method,
            ...(method === 'POST' ? { body: 'training' } : {}),
          });
          await res.text();
          if (res.status !== 200) throw new Error(`${o.name} ${method}: ${res.status}`);
        }
      } finally {
        await agent.close();
      }
    }
  } finally {
    await Promise.all(origins.map((o) => o.close()));
  }
}

let trained = 'requests over h1, h2 and h3';
await Promise.race([
  requests(),
  new Promise((_, reject) => setTimeout(() => reject(new Error('no answer in 20 s')), 20_000).unref()),
]).catch((e) => {
  trained = `the import only (training requests failed: ${e.message})`;
});
writeFileSync(`${cacheFile}.tmp`, library.script.createCachedData());
renameSync(`${cacheFile}.tmp`, cacheFile);
console.log(`bundle: code cache of the library after ${trained}`);
process.exit(0);
