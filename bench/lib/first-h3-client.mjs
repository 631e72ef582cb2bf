#!/usr/bin/env node
// One fresh process's first HTTP/3 request (bench startup, issue 58): `node first-h3-client.mjs ENTRY URL CA`.
// Times from the process's start (performance.now() counts from it): the package's import; the first h3 request of
// a new Agent, from the Agent's construction to the response read whole; then a second Agent's request to the same
// origin — another full handshake (no session ticket: a new Agent starts without one) — which the goal measures the
// first against. Prints one JSON line.
import { readFileSync } from 'node:fs';

const [entry, url, caPath] = process.argv.slice(2);
const ca = readFileSync(caPath);
const { Agent } = await import(entry);
const imported = performance.now();
const once = async () => {
  // From before the Agent is made: what `new Agent()` does for its first request is the first request's cost too.
  const t = performance.now();
  const agent = new Agent({ protocol: 'h3', tls: { ca } });
  const res = await agent.request({ url });
  await res.text();
  if (res.status !== 200 || res.protocol !== 'h3') throw new Error(`${res.status} over ${res.protocol}`);
  const ms = performance.now() - t;
  await agent.close();
  return ms;
};
const first = await once();
const second = await once();
console.log(JSON.stringify({ importMs: imported, firstMs: first, secondMs: second }));
