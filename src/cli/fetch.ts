/** `originlink fetch`: a curl-like client through the pool. */
import { createHash } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Agent } from '../agent/agent.js';
import type { AgentOptions } from '../agent/options.js';
import type { OriginResponse } from '../agent/response.js';
import { openStores } from '../agent/stores.js';
import type { HeaderList } from '../http/types.js';
import type { ProtocolPolicy } from '../connect/connect.js';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import { percentiles } from '../util/stats.js';
import { EGRESS_OPTIONS, EGRESS_USAGE, egressFromArgs } from './egress-args.js';
import type { ProxyFacts } from '../http/types.js';
import { redact } from '../util/redact.js';

export const FETCH_USAGE = `usage: originlink fetch URL [options]
  --protocol auto|h1|h2|h3   protocol policy (default auto)
  --repeat N                 send the request N times (default 1) and print a summary
  --concurrency C            requests in flight at once with --repeat (default 1)
  --cacert FILE              trust this CA certificate (PEM)
  -k, --insecure             do not verify the certificate
  -X, --method M             request method (default GET, POST with --data)
  -H, --header 'N: V'        add a request header (repeatable)
  -d, --data STRING|@FILE    request body
  -o FILE                    write the body to FILE (default: stdout, unless --json)
  --json                     print one JSON object with the result
  -v, --verbose              tell the connection's story on stderr, curl-style (address, protocol and ALPN,
                             TLS version, resumed, TFO, 0-RTT, reused, timings, request and response heads)
  --max-connections N        pool limit (default 32)
  --session-store FILE|URL   keep TLS sessions / QUIC tickets in FILE across runs (resumption, 0-RTT),
                             or share them with a fleet: redis://[user:pass@]HOST:PORT/DB (rediss:// for TLS;
                             ?prefix=P&keyFile=F&ca=F: key prefix, AES-256-GCM key file for tickets, CA for rediss)
  --origin-cache FILE|URL    keep per-origin protocol facts (Alt-Svc, broken h3) in FILE across runs, or in Redis (URL as above)
${EGRESS_USAGE}`;

interface One {
  url: string;
  protocol: string;
  status: number;
  bytes: number;
  sha256: string;
  connectMs: number;
  ttfbMs: number;
  totalMs: number;
  reused: boolean;
  resumed: boolean;
  earlyData: boolean;
  earlyDataRefused: 'rejected' | 'too-early' | null;
  tfo: boolean;
  attempts: number;
  connectionId: number;
  alpn: string | null;
  tlsVersion: string | null;
  remoteAddress: string;
  /** 4 or 6; null through a proxy (the proxy dialled). */
  family: 4 | 6 | null;
  /** Happy Eyeballs attempts that opened this request's connection (RFC 8305). */
  connectAttempts: number | null;
  proxy: ProxyFacts | null;
  headers?: HeaderList;
}

export async function runFetch(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      protocol: { type: 'string', default: 'auto' },
      repeat: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '1' },
      cacert: { type: 'string' },
      insecure: { type: 'boolean', short: 'k', default: false },
      method: { type: 'string', short: 'X' },
      header: { type: 'string', short: 'H', multiple: true },
      data: { type: 'string', short: 'd' },
      output: { type: 'string', short: 'o' },
      json: { type: 'boolean', default: false },
      verbose: { type: 'boolean', short: 'v', default: false },
      'max-connections': { type: 'string' },
      'session-store': { type: 'string' },
      'origin-cache': { type: 'string' },
      ...EGRESS_OPTIONS,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) { process.stdout.write(`${FETCH_USAGE}\n`); return 0; }
  const egress = egressFromArgs(values);
  const url = positionals[0];
  if (!url) throw usage('a URL is required');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw usage(`the URL must be http:// or https:// (got ${u.protocol})`);
  } catch (e) {
    if (e instanceof OriginlinkError) throw e;
    throw usage(`not a URL: ${JSON.stringify(redact(url))}`);
  }
  const protocol = values.protocol as ProtocolPolicy;
  if (!['auto', 'h1', 'h2', 'h3'].includes(protocol)) throw usage(`--protocol must be auto, h1, h2 or h3 (got ${values.protocol})`);
  const repeat = int(values.repeat, '--repeat', 1);
  const concurrency = Math.min(int(values.concurrency, '--concurrency', 1), repeat);
  const headers: HeaderList = [];
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw usage(`bad header ${JSON.stringify(h)} (want 'Name: value')`);
    headers.push([h.slice(0, i).trim(), h.slice(i + 1).trim()]);
  }
  const body = values.data === undefined ? null : values.data.startsWith('@') ? readFileSync(values.data.slice(1)) : values.data;
  const method = (values.method ?? (body !== null ? 'POST' : 'GET')).toUpperCase();
  const agentOpts: AgentOptions = { protocol, tls: { rejectUnauthorized: !values.insecure } };
  if (values.cacert) agentOpts.tls = { ...agentOpts.tls, ca: readFileSync(values.cacert) };
  if (values['max-connections']) agentOpts.pool = { maxConnections: int(values['max-connections'], '--max-connections', 1) };
  const stores = openStores({
    ...(values['session-store'] ? { sessionStore: values['session-store'] } : {}),
    ...(values['origin-cache'] ? { originCache: values['origin-cache'] } : {}),
  });
  if (stores.sessionStore) agentOpts.sessionStore = stores.sessionStore;
  if (stores.originCache) agentOpts.originCache = stores.originCache;
  // Startup, not per request: a fresh process takes what the fleet knows before its first request (bounded).
  await stores.ready(500);
  if (egress.proxy) agentOpts.proxy = egress.proxy;
  if (egress.dnsServers.length > 0) agentOpts.dns = { servers: egress.dnsServers };
  const agent = new Agent(agentOpts);
  const sink = values.output ? createWriteStream(values.output) : values.json || repeat > 1 ? null : process.stdout;

  const verbose = values.verbose ? (line: string): void => { process.stderr.write(`${line}\n`); } : null;
  const one = async (keepBody: boolean): Promise<One> => {
    const t0 = performance.now();
    let res: OriginResponse;
    try {
      if (verbose) tellRequest(verbose, url, method, headers, protocol);
      res = await agent.request({ url, method, headers, body });
    } catch (e) {
      if (verbose) tellError(verbose, toOriginlinkError(e));
      throw e;
    }
    if (verbose) tellResponse(verbose, res);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      if (keepBody && sink && !sink.write(chunk)) await new Promise<void>((r) => (sink as NodeJS.WritableStream).once('drain', () => r()));
    }
    const f = res.connection;
    if (verbose) verbose(`* ${bytes} body bytes in ${round(performance.now() - t0)} ms; ${res.attempts} attempt(s)`);
    return {
      url,
      protocol: res.protocol,
      status: res.status,
      bytes,
      sha256: hash.digest('hex'),
      connectMs: res.reused ? 0 : round(f.connectMs + f.tlsMs),
      ttfbMs: round(res.timings.ttfbMs),
      totalMs: round(performance.now() - t0),
      reused: res.reused,
      resumed: f.resumed,
      earlyData: res.earlyData,
      earlyDataRefused: res.earlyDataRefused,
      tfo: f.tfo,
      attempts: res.attempts,
      connectionId: res.connectionId,
      alpn: f.alpn,
      tlsVersion: f.tlsVersion,
      remoteAddress: f.remoteAddress,
      family: f.family ?? null,
      connectAttempts: f.attempts ?? null,
      proxy: f.proxy ?? null,
      ...(repeat === 1 ? { headers: res.headers } : {}),
    };
  };

  try {
    if (repeat === 1) {
      const r = await one(true);
      if (sink && sink !== process.stdout) await new Promise<void>((res) => sink.end(res));
      if (values.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      return r.status >= 400 ? 22 : 0; // like curl --fail
    }
    const results: One[] = [];
    const errors: Record<string, number> = {};
    let next = 0;
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (next < repeat) {
        const i = next++;
        try {
          results.push(await one(i === 0));
        } catch (e) {
          const err = toOriginlinkError(e);
          errors[err.code] = (errors[err.code] ?? 0) + 1;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const durationMs = performance.now() - t0;
    if (sink && sink !== process.stdout) await new Promise<void>((res) => sink.end(res));
    const st = agent.stats();
    const opened = st.reduce((a, s) => a + s.connectionsOpened, 0);
    const statuses: Record<string, number> = {};
    for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const summary = {
      url,
      protocol: results[0]?.protocol ?? null,
      requests: repeat,
      ok: results.length,
      failed: repeat - results.length,
      errors,
      statuses,
      concurrency,
      connectionsOpened: opened,
      reuseRate: round(Math.max(0, 1 - opened / Math.max(1, results.length)), 5),
      resumedConnections: st.reduce((a, s) => a + s.resumedHandshakes, 0),
      retries: st.reduce((a, s) => a + s.retries, 0),
      durationMs: round(durationMs),
      requestsPerSecond: round((results.length / durationMs) * 1000),
      latencyMs: percentiles(results.map((r) => r.totalMs)),
      ttfbMs: percentiles(results.map((r) => r.ttfbMs)),
      bytes: results.reduce((a, r) => a + r.bytes, 0),
      first: results[0] ?? null,
      proxies: agent.proxyStats(),
    };
    if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else {
      process.stdout.write(`${summary.ok}/${repeat} ok over ${opened} connection(s), reuse rate ${(summary.reuseRate * 100).toFixed(2)}%, ` +
        `p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, ${summary.requestsPerSecond} req/s (${summary.protocol})\n`);
      if (summary.failed) process.stdout.write(`errors: ${JSON.stringify(errors)}\n`);
    }
    return summary.failed > 0 ? 1 : 0;
  } finally {
    agent.destroy();
    // Sessions are saved as connections close; one turn later the stores give back what they own and flush.
    await new Promise((r) => setImmediate(r));
    await stores.close();
  }
}

function int(v: string | undefined, name: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw usage(`${name} must be an integer ≥ ${min} (got ${v})`);
  return n;
}

function usage(msg: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `${msg}\n${FETCH_USAGE}`);
}

function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

const HTTP_VERSION: Record<string, string> = { h1: 'HTTP/1.1', h2: 'HTTP/2', h3: 'HTTP/3' };

/** curl -v's shape: `*` for what happened, `>` what we sent, `<` what came back. */
function tellRequest(say: (l: string) => void, url: string, method: string, headers: HeaderList, policy: ProtocolPolicy): void {
  const u = new URL(url);
  say(`* ${method} ${redact(url)} (protocol policy ${policy})`);
  say(`> ${method} ${u.pathname}${u.search}`);
  say(`> host: ${u.host}`);
  for (const [n, v] of headers) say(`> ${n.toLowerCase()}: ${v}`);
  say('>');
}

function tellResponse(say: (l: string) => void, res: OriginResponse): void {
  const f = res.connection;
  const alpn = f.alpn ? `ALPN ${f.alpn}` : 'no ALPN';
  say(`* ${res.reused ? 'Re-using' : 'Connected:'} connection #${res.connectionId} to ${f.remoteAddress} port ${f.remotePort} from ${f.localAddress || '?'}:${f.localPort} over ${res.protocol} (${alpn})`);
  if (!res.reused && f.proxy) say(`* Through proxy ${f.proxy.node} (${f.proxy.kind} tunnel; HTTP/3 not attempted: TCP-only proxy)`);
  else if (!res.reused && f.family) say(`* IPv${f.family}, ${f.attempts ?? 1} connection attempt(s) (Happy Eyeballs)`);
  if (!res.reused) {
    const hs = res.protocol === 'h3' ? `QUIC handshake ${round(f.connectMs)} ms` : `TCP connect ${round(f.connectMs)} ms${f.tlsVersion ? `, TLS handshake ${round(f.tlsMs)} ms` : ''}`;
    say(`* ${hs}${f.tlsVersion ? `, ${f.tlsVersion}` : ', cleartext'}; session resumed: ${f.resumed ? 'yes' : 'no'}; TCP Fast Open: ${f.tfo ? 'yes (SYN data accepted)' : res.protocol === 'h3' ? 'n/a' : 'no'}`);
  }
  if (res.protocol === 'h3') {
    const early = res.earlyData ? 'yes (sent in 0-RTT, accepted)' : res.earlyDataRefused ? `refused (${res.earlyDataRefused}), resent after the handshake` : 'no';
    say(`* 0-RTT early data: ${early}`);
  }
  if (f.rttMs !== null) say(`* RTT estimate ${round(f.rttMs)} ms`);
  say(`* Response head after ${round(res.timings.ttfbMs)} ms (waited ${round(res.timings.queueMs)} ms for a connection)`);
  say(`< ${HTTP_VERSION[res.protocol] ?? res.protocol} ${res.status}`);
  for (const [n, v] of res.headers) say(`< ${n}: ${v}`);
  say('<');
}

function tellError(say: (l: string) => void, e: OriginlinkError): void {
  const facts = e.facts ? ` (request sent: ${e.facts.requestSent ? 'yes' : 'no'}, response started: ${e.facts.responseStarted ? 'yes' : 'no'}, reused connection: ${e.facts.reused ? 'yes' : 'no'})` : '';
  say(`* Failed: ${e.code} ${e.message}${facts}; ${String(e.details['attempts'] ?? 1)} attempt(s)`);
}
