#!/usr/bin/env node
// The library's code-cache training run (scripts/bundle.mjs starts it with ORIGINLINK_CODE_CACHE_OUT, scripts/code-cache.mjs):
// `node scripts/code-cache-train.mjs ENTRY` imports the package from ENTRY (dist/bundle/index.js) and makes a GET
// and a POST of a new Agent over each protocol to the demo origins on loopback (dist/service/demo-origins.js, the
// demo's certificates, ephemeral ports), so the cache holds a first request's path as well as the import. A request
// that fails exits non-zero: the build then says the cache holds less.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const entry = process.argv[2];
if (!entry) throw new Error('usage: code-cache-train.mjs ENTRY');
const root = join(entry, '..', '..', '..');
setTimeout(() => {
  console.error('code-cache-train: no answer in 20 s');
  process.exit(1);
}, 20_000).unref();
const { Agent } = await import(pathToFileURL(entry).href);
const certs = join(root, 'config', 'demo-certs');
const { startDemoOrigins } = await import(pathToFileURL(join(root, 'dist', 'service', 'demo-origins.js')).href);
const origins = await startDemoOrigins({
  cert: readFileSync(join(certs, 'leaf.pem')),
  key: readFileSync(join(certs, 'leaf.key')),
  ports: { h1: 0, h2: 0, h3: 0 },
});
const ca = readFileSync(join(certs, 'ca.pem'));
try {
  for (const o of origins) {
    const agent = new Agent({ protocol: o.name, tls: { ca } });
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
