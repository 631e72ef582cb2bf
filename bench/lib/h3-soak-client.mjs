#!/usr/bin/env node
// Migrating h3 clients for the `h3-front` scenario's soak: `node h3-soak-client.mjs JSON` with { port, ca, conns,
// seconds, moveEveryMs }. `conns` connections of ours to 127.0.0.1:port, each asking GET / in a loop; each moves to a
// new local port every `moveEveryMs` (staggered: RFC 9000 §9, a new 4-tuple under the same connection IDs). A
// connection that fails (its worker killed: a stateless reset, or any error) is counted and replaced by a new one.
// A connection moves `maxMoves` times (6), then closes and a new one takes its place: a quiche server keeps at most
// its active_connection_id_limit of paths per connection (our h3 server: 8) and frees an old one only once it holds
// no connection ID of ours, which a spare ID re-linked to it prevents, so packets from one port too many are dropped
// and the connection wedges (found with this soak at the limit of 4; native-notes/quic-addon.md). Prints one JSON line { requests, failed, moves, renewed, errors }.
import { readFileSync } from 'node:fs';
import { dist } from './dist.mjs';

const o = JSON.parse(process.argv[2]);
const { connectH3 } = await dist('connect/h3.js');
const ca = readFileSync(o.ca);
const end = Date.now() + o.seconds * 1000;
const out = { requests: 0, failed: 0, moves: 0, renewed: 0, errors: {} };
const maxMoves = o.maxMoves ?? 6;
const req = { method: 'GET', path: '/', authority: 'localhost', scheme: 'https', headers: [], body: null };

async function one(i) {
  while (Date.now() < end) {
    let c;
    try {
      c = await connectH3({
        host: '127.0.0.1',
        port: o.port,
        servername: 'localhost',
        ca,
        migrateAfterProbeTimeouts: 0,
      });
    } catch (e) {
      out.errors[e.message] = (out.errors[e.message] ?? 0) + 1;
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    let nextMove = Date.now() + ((i + 1) * o.moveEveryMs) / o.conns;
    let moves = 0;
    try {
      while (Date.now() < end && moves <= maxMoves) {
        const r = await c.request(req);
        for await (const _ of r.body) void _;
        out.requests++;
        if (Date.now() >= nextMove) {
          if (moves === maxMoves) {
            out.renewed++;
            break;
          }
          await c.migrate();
          moves++;
          out.moves++;
          nextMove = Date.now() + o.moveEveryMs;
        }
      }
      c.destroy();
    } catch (e) {
      out.failed++;
      out.errors[e.message] = (out.errors[e.message] ?? 0) + 1;
      c.destroy();
    }
  }
}
await Promise.all(Array.from({ length: o.conns }, (_, i) => one(i)));
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
