#!/usr/bin/env node
// HTTP/1.1 head parsing (issue 14): our sans-IO parsers (src/h1) against llhttp, the C parser inside Node
// (its HTTPParser binding, as node:http drives it), on the heads the proxy benchmark carries: nginx's
// response to a static file (9 fields, 1 KiB body) and a browser's GET (12 fields). Each message parsed
// BENCH_MESSAGES times (default 300,000) after a warm-up, in rounds alternating the parsers; the best
// round of BENCH_ROUNDS (default 5) per parser, as ns per message and as a ratio to llhttp.
// BENCH_ANCHOR_DIST: another build's dist/ (e.g. a worktree of an earlier commit) as one more row.
// Prints a Markdown table and writes bench/out/h1-parse-DATE.json. Needs a built dist/.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ResultWriter, ROOT } from '../lib/results.mjs';

const N = Number(process.env.BENCH_MESSAGES ?? 300_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const { HTTPParser } = createRequire(import.meta.url)('_http_common');

const RESPONSE = Buffer.concat([
  Buffer.from(
    'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 23 Nov 2026 15:30:00 GMT\r\nContent-Type: text/plain\r\n' +
      'Content-Length: 1024\r\nLast-Modified: Mon, 23 Nov 2026 15:00:00 GMT\r\nConnection: keep-alive\r\n' +
      'ETag: "6745f0a0-400"\r\nAccept-Ranges: bytes\r\nCache-Control: max-age=60\r\n\r\n',
    'latin1',
  ),
  Buffer.alloc(1024, 0x78),
]);
const REQUEST = Buffer.from(
  'GET /assets/app.js?v=3 HTTP/1.1\r\nHost: www.example.test\r\nConnection: keep-alive\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0 Safari/537.36\r\n' +
    'Accept: */*\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: script\r\n' +
    'Referer: https://www.example.test/\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n' +
    'Cookie: session=0123456789abcdef0123456789abcdef\r\nIf-None-Match: "6745f0a0-400"\r\n\r\n',
  'latin1',
);

/** llhttp: one parser per kind, reused across messages as node:http does (keep-alive). */
function llhttp(kind) {
  const p = new HTTPParser();
  p.initialize(kind === 'response' ? HTTPParser.RESPONSE : HTTPParser.REQUEST, {});
  let done = 0;
  p[HTTPParser.kOnHeadersComplete] = () => {};
  p[HTTPParser.kOnBody] = () => {};
  p[HTTPParser.kOnMessageComplete] = () => {
    done++;
  };
  return { parse: (buf) => p.execute(buf), done: () => done };
}

async function ours(dist, kind) {
  const load = (rel) => import(pathToFileURL(join(dist, rel)).href);
  let done = 0;
  if (kind === 'response') {
    const { H1ResponseParser } = await load('h1/parser.js');
    const p = new H1ResponseParser(
      {
        onHead: () => {},
        onBody: () => {},
        onTrailers: () => {},
        onComplete: () => {
          done++;
        },
      },
      { maxHeaderBytes: 65536, maxHeaderCount: 100 },
    );
    return {
      parse: (buf) => {
        p.expect('GET');
        p.execute(buf);
      },
      done: () => done,
    };
  }
  const { H1RequestParser } = await load('h1/request-parser.js');
  const p = new H1RequestParser(
    {
      onHead: () => {},
      onBody: () => {},
      onTrailers: () => {},
      onComplete: () => {
        done++;
      },
    },
    { maxHeaderBytes: 65536, maxHeaderCount: 100 },
  );
  return { parse: (buf) => p.execute(buf), done: () => done };
}

function round(parser, msg) {
  const before = parser.done();
  const t0 = process.hrtime.bigint();
  // A fresh Buffer per message, as a socket hands each read: no parser may keep state keyed on the object.
  for (let i = 0; i < N; i++) parser.parse(Buffer.from(msg));
  const ns = Number(process.hrtime.bigint() - t0) / N;
  if (parser.done() - before !== N) throw new Error(`parsed ${parser.done() - before} of ${N} messages`);
  return ns;
}

const builds = [
  ['originlink', join(ROOT, 'dist')],
  ...(process.env.BENCH_ANCHOR_DIST ? [['originlink (previous)', process.env.BENCH_ANCHOR_DIST]] : []),
];
const rows = [];
for (const [kind, msg] of [
  ['response', RESPONSE],
  ['request', REQUEST],
]) {
  const parsers = [['llhttp (Node)', llhttp(kind)]];
  for (const [name, dist] of builds) parsers.push([name, await ours(dist, kind)]);
  for (const [, p] of parsers) round(p, msg); // warm-up: JIT and caches
  const best = new Map();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, p] of parsers) best.set(name, Math.min(best.get(name) ?? Infinity, round(p, msg)));
  }
  const anchor = best.get('llhttp (Node)');
  for (const [name] of parsers)
    rows.push({
      message: kind,
      parser: name,
      nsPerMessage: Math.round(best.get(name)),
      vsLlhttp: +(best.get(name) / anchor).toFixed(2),
    });
}

console.log(`\nHTTP/1.1 head parsing, ${N} messages per round, best of ${ROUNDS} rounds (node ${process.version})\n`);
console.log('| message | parser | ns per message | × llhttp |\n|---|---|---:|---:|');
for (const r of rows) console.log(`| ${r.message} | ${r.parser} | ${r.nsPerMessage} | ${r.vsLlhttp.toFixed(2)} |`);
const w = new ResultWriter('h1-parse');
console.log(`\nwrote ${w.write({ messages: N, rounds: ROUNDS, rows })}`);
