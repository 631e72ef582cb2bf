/**
 * `originlink fetch`: a curl-like client through the pool. It exits as curl does (exit-codes.ts); its timings are
 * read on the real clock here (performance.now() around each step), not the Agent's once-per-turn reading.
 */
import { createHash } from 'node:crypto';
import { close, openSync, write as writeFd } from 'node:fs';
import { Agent } from '../agent/agent.js';
import type { AgentOptions } from '../agent/options.js';
import type { OriginResponse } from '../agent/response.js';
import { openStores } from '../store/open-stores.js';
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import type { HeaderList, ProxyFacts } from '../http/types.js';
import { sha256 } from '../util/digest.js';
import { percentiles } from '../util/stats.js';
import { exitCodeFor } from './exit-codes.js';
import { CliExit, FETCH_USAGE, parseFetchArgs, type FetchPlan } from './fetch-args.js';
import { HTTP_VERSION, round, tellError, tellRequest, tellResponse } from './fetch-verbose.js';
import { versionText } from './version.js';
import { writeOut, type WriteOutVars } from './write-out.js';

export { FETCH_USAGE } from './fetch-args.js';

interface One {
  url: string;
  protocol: string;
  status: number;
  bytes: number;
  /** The body's SHA-256, in hex: for --json only (the hash is the one use of node:crypto a fetch over http has). */
  sha256: string | null;
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
  /** Redirects followed (-L). */
  redirects: number;
  headers?: HeaderList;
}

/**
 * 3xx statuses -L follows (RFC 9110 §15.4); 303, and 301/302 after a POST, continue as GET (curl's and browsers' way).
 */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function runFetch(argv: string[]): Promise<number> {
  let plan: FetchPlan;
  try {
    plan = parseFetchArgs(argv);
  } catch (e) {
    if (!(e instanceof CliExit)) throw e;
    process.stderr.write(`originlink: (${e.exitCode}) ${e.message}\n`);
    return e.exitCode;
  }
  if (plan.help) {
    process.stdout.write(`${FETCH_USAGE}\n`);
    return 0;
  }
  if (plan.version) {
    process.stdout.write(`${versionText()}\n`);
    return 0;
  }
  const say = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const agentOpts: AgentOptions = {
    protocol: plan.protocol,
    tls: {
      rejectUnauthorized: !plan.insecure,
      ...(plan.ca ? { ca: plan.ca } : {}),
      ...(plan.identity ? { cert: plan.identity.cert, key: plan.identity.key } : {}),
    },
  };
  const pool: NonNullable<AgentOptions['pool']> = {};
  if (plan.maxConnections !== null) pool.maxConnections = plan.maxConnections;
  if (plan.connectTimeoutMs !== null) pool.connectTimeoutMs = plan.connectTimeoutMs;
  if (Object.keys(pool).length > 0) agentOpts.pool = pool;
  let stores: ReturnType<typeof openStores>;
  try {
    stores = openStores({
      ...(plan.sessionStore ? { sessionStore: plan.sessionStore } : {}),
      ...(plan.originCache ? { originCache: plan.originCache } : {}),
    });
  } catch (e) {
    // A store URL or its keyFile that will not do: a bad argument, one line (was a stack trace and exit 1).
    const err = toOriginlinkError(e);
    process.stderr.write(`originlink: (2) ${err.code}: ${err.message}\n`);
    return 2;
  }
  if (stores.sessionStore) agentOpts.sessionStore = stores.sessionStore;
  if (stores.originCache) agentOpts.originCache = stores.originCache;
  // Startup, not per request: a fresh process takes what the fleet knows before its first request (bounded).
  await stores.ready(500);
  if (plan.egress.proxy) agentOpts.proxy = plan.egress.proxy;
  if (plan.egress.dnsServers.length > 0) agentOpts.dns = { servers: plan.egress.dnsServers };
  const agent = new Agent(agentOpts);
  const t0 = performance.now();
  let sink: Sink | null = null;
  try {
    if (plan.output !== null) sink = fileSink(plan.output);
    else if (!plan.json && plan.repeat === 1) sink = streamSink(process.stdout);
    if (plan.repeat === 1) return await single(agent, plan, sink, t0, say);
    return await repeated(agent, plan, sink, say);
  } catch (e) {
    if (!(e instanceof CliExit)) throw e;
    return failed(plan, e.exitCode, e.message, null, t0, answeredBy.get(e));
  } finally {
    await sink?.close();
    agent.destroy();
    // Sessions are saved as connections close; one turn later the stores give back what they own and flush.
    await new Promise((r) => setImmediate(r));
    await stores.close();
  }
}

/** Where the head (-i, -I) and the body go: stdout, or the file of -o. A write that fails is exit 23 (curl's). */
interface Sink {
  write(data: string | Buffer): Promise<void>;
  close(): Promise<void>;
}

function writeError(e: Error): CliExit {
  return new CliExit(23, `cannot write the body: ${(e as NodeJS.ErrnoException).code ?? e.message}`);
}

/**
 * -o FILE, opened now: a file that cannot be written is exit 23 before anything is sent. Written through its
 * descriptor: a WriteStream would load Node's file streams for one file (bench/RESULTS.md `startup`).
 */
function fileSink(path: string): Sink {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw new CliExit(23, `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const writeAll = (buf: Buffer, from: number, done: (e: Error | null) => void): void =>
    writeFd(fd, buf, from, buf.length - from, null, (e, n) => {
      if (e) done(e);
      else if (from + n < buf.length) writeAll(buf, from + n, done);
      else done(null);
    });
  return {
    write: (data) =>
      new Promise((resolve, reject) =>
        writeAll(typeof data === 'string' ? Buffer.from(data) : data, 0, (e) =>
          e ? reject(writeError(e)) : resolve(),
        ),
      ),
    close: () => new Promise((resolve) => close(fd, () => resolve())),
  };
}

/** A stream (stdout) as a sink: a write waits for 'drain' when the stream asks it to. */
function streamSink(stream: NodeJS.WritableStream): Sink {
  return {
    async write(data) {
      if (stream.write(data)) return;
      await new Promise<void>((r, j) => {
        const onErr = (e: Error): void => {
          stream.removeListener('drain', onDrain);
          j(writeError(e));
        };
        const onDrain = (): void => {
          stream.removeListener('error', onErr);
          r();
        };
        stream.once('drain', onDrain);
        stream.once('error', onErr);
      });
    },
    close: async () => {},
  };
}

/** The one-line error curl prints (unless -s), --json's error object, -w's output; the exit code. */
function failed(
  plan: FetchPlan,
  code: number,
  message: string,
  err: OriginlinkError | null,
  t0: number,
  seen?: Answered,
): number {
  // The Agent's hint names its option (tls.ca); on this command line that is --cacert, or -k.
  if (err?.code === ErrorCode.CERT_INVALID) message += ' (here: --cacert FILE, or -k)';
  if (err?.code === ErrorCode.CLIENT_CERT_REFUSED) message += ' (here: --cert FILE --key FILE)';
  if (plan.showErrors) process.stderr.write(`originlink: (${code}) ${err ? `${err.code}: ` : ''}${message}\n`);
  if (plan.json) {
    const error = err
      ? {
          code: err.code,
          message: err.message,
          side: err.side,
          retrySafe: err.retrySafe,
          attempts: err.details['attempts'] ?? 1,
          details: err.details,
        }
      : { code: 'CLI', message };
    process.stdout.write(`${JSON.stringify({ url: plan.url, error, exitCode: code })}\n`);
  }
  if (plan.writeOut !== null) {
    const res = seen?.res;
    const none: WriteOutVars = {
      http_code: res?.status ?? 0,
      http_version: res ? (HTTP_VERSION[res.protocol] ?? '').replace('HTTP/', '') : '0',
      size_download: seen?.bytes ?? 0,
      time_total: (performance.now() - t0) / 1000,
      time_connect: 0,
      time_appconnect: 0,
      time_starttransfer: 0,
      remote_ip: '',
      remote_port: '',
      local_ip: '',
      local_port: '',
      num_redirects: seen?.redirects ?? 0,
      url_effective: seen?.url ?? plan.url,
      content_type: res?.header('content-type') ?? '',
      scheme: schemeOf(seen?.url ?? plan.url),
      exitcode: code,
      errormsg: message,
    };
    process.stdout.write(writeOut(plan.writeOut, none, (w) => process.stderr.write(`originlink: warning: ${w}\n`)));
  }
  return code;
}

async function single(
  agent: Agent,
  plan: FetchPlan,
  sink: Sink | null,
  t0: number,
  say: (l: string) => void,
): Promise<number> {
  let r: { one: One; res: OriginResponse };
  try {
    r = await transfer(agent, plan, sink, t0, plan.verbose ? say : null);
  } catch (e) {
    if (e instanceof CliExit) throw e;
    const err = toOriginlinkError(e);
    return failed(plan, exitOf(err), err.message, err, t0, answeredBy.get(e as object) ?? answeredBy.get(err));
  }
  const { one, res } = r;
  const exit = plan.fail && one.status >= 400 ? 22 : 0;
  if (exit !== 0 && plan.showErrors)
    process.stderr.write(`originlink: (22) The requested URL returned error: ${one.status}\n`);
  if (plan.json) process.stdout.write(`${JSON.stringify({ ...one, exitCode: exit })}\n`);
  if (plan.writeOut !== null) {
    const f = res.connection;
    const connectS = one.reused ? 0 : f.connectMs / 1000;
    const vars: WriteOutVars = {
      http_code: one.status,
      http_version: (HTTP_VERSION[one.protocol] ?? '').replace('HTTP/', ''),
      size_download: one.bytes,
      time_total: one.totalMs / 1000,
      time_connect: connectS,
      time_appconnect: one.reused ? 0 : connectS + f.tlsMs / 1000,
      time_starttransfer: one.ttfbMs / 1000,
      remote_ip: f.remoteAddress,
      remote_port: f.remotePort,
      local_ip: f.localAddress,
      local_port: f.localPort,
      num_redirects: one.redirects,
      url_effective: one.url,
      content_type: res.header('content-type') ?? '',
      scheme: schemeOf(one.url),
      exitcode: exit,
      errormsg: exit ? `The requested URL returned error: ${one.status}` : '',
    };
    process.stdout.write(writeOut(plan.writeOut, vars, (w) => process.stderr.write(`originlink: warning: ${w}\n`)));
  }
  return exit;
}

/** One request (following redirects with -L), its body read; `sink` gets the head (-i, -I) and the body. */
async function transfer(
  agent: Agent,
  plan: FetchPlan,
  sink: Sink | null,
  t0: number,
  verbose: ((l: string) => void) | null,
): Promise<{ one: One; res: OriginResponse }> {
  const deadline = plan.maxTimeMs === null ? undefined : AbortSignal.timeout(plan.maxTimeMs);
  let url = plan.url;
  let method = plan.method;
  let body = plan.body;
  let headers = plan.headers;
  let redirects = 0;
  let res: OriginResponse;
  let tHead: number;
  const timedOut = (e: unknown): never => {
    if (deadline?.aborted)
      throw new OriginlinkError(
        ErrorCode.HEADERS_TIMEOUT,
        'local',
        `Operation timed out after ${plan.maxTimeMs} ms (--max-time)`,
        { cause: e },
      );
    throw e;
  };
  for (;;) {
    try {
      if (verbose) tellRequest(verbose, url, method, headers, plan.protocol);
      res = await agent.request({
        url,
        method,
        headers,
        body,
        ...(deadline ? { signal: deadline } : {}),
      });
    } catch (e) {
      if (verbose) tellError(verbose, toOriginlinkError(e));
      return timedOut(e);
    }
    tHead = performance.now();
    const location = res.header('location');
    if (!plan.follow || !REDIRECTS.has(res.status) || location === undefined) break;
    if (plan.maxRedirs >= 0 && redirects >= plan.maxRedirs)
      throw answered(new CliExit(47, `Maximum (${plan.maxRedirs}) redirects followed`), res, url, redirects, 0);
    if (verbose) tellResponse(verbose, res, tHead - t0);
    // -i: every response's head, the redirects' too (curl's).
    if (sink && (plan.include || plan.head)) await sink.write(headText(res));
    await res.dump();
    redirects++;
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new CliExit(3, `URL rejected: a Location that is not a URL: ${JSON.stringify(location.slice(0, 200))}`);
    }
    // Credentials are for the origin they were given to: another scheme, host or port gets none of them (curl's,
    // and Fetch's for Authorization) unless --location-trusted.
    if (!plan.trusted && next.origin !== new URL(url).origin)
      headers = headers.filter(([n]) => !CREDENTIALS.has(n.toLowerCase()));
    url = next.href;
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
      if (method !== 'HEAD') method = 'GET';
      body = null;
    }
  }
  if (verbose) tellResponse(verbose, res, tHead - t0);
  // -f: an error status writes no body (curl's --fail); with -i its head still goes out, as curl's.
  const quiet = plan.fail && res.status >= 400;
  let bytes = 0;
  let digest: () => string | null = () => null;
  try {
    if (sink && (plan.include || plan.head)) await sink.write(headText(res));
    // A body that ended before it was read (a small one, usually) is taken whole: no stream, no async iterator, and
    // its digest for --json made after the transfer's clock stops (util/digest.ts: the QUIC binding's SHA-256 once
    // loaded).
    const whole = res.takeComplete();
    if (whole !== null) {
      bytes = whole.bytes.length;
      if (sink && !quiet && !plan.head) await sink.write(whole.bytes);
      if (plan.json) digest = () => sha256([whole.bytes]).toString('hex');
    } else {
      const hash = plan.json ? createHash('sha256') : null;
      try {
        for await (const chunk of res.body) {
          hash?.update(chunk as Buffer);
          bytes += (chunk as Buffer).length;
          if (sink && !quiet && !plan.head) await sink.write(chunk as Buffer);
        }
      } catch (e) {
        // The connection closed with the body short (fewer bytes than its length, no last chunk): curl's partial file.
        if (e instanceof OriginlinkError && e.code === ErrorCode.SOCKET_CLOSED) cutShort.add(e);
        timedOut(e);
      }
      if (hash) digest = () => hash.digest('hex');
    }
  } catch (e) {
    throw answered(e, res, url, redirects, bytes);
  }
  const f = res.connection;
  const end = performance.now();
  if (verbose)
    verbose(
      `* ${bytes} body bytes in ${round(end - t0)} ms; ${res.attempts} attempt(s)${redirects ? `, ${redirects} redirect(s)` : ''}`,
    );
  return {
    res,
    one: {
      url,
      protocol: res.protocol,
      status: res.status,
      bytes,
      sha256: digest(),
      connectMs: res.reused ? 0 : round(f.connectMs + f.tlsMs),
      ttfbMs: round(tHead - t0),
      totalMs: round(end - t0),
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
      redirects,
      ...(plan.repeat === 1 ? { headers: res.headers } : {}),
    },
  };
}

/** Fields that carry credentials: not sent to another origin a redirect leads to (without --location-trusted). */
const CREDENTIALS = new Set(['authorization', 'cookie', 'proxy-authorization']);

/** Errors that cut a body short after its head: exit 18 (curl's CURLE_PARTIAL_FILE), not 56. */
const cutShort = new WeakSet<Error>();

/** A failed transfer's exit code: curl's for the error, 18 for a body cut short. */
function exitOf(err: OriginlinkError): number {
  return cutShort.has(err) ? 18 : exitCodeFor(err);
}

/** What had come when a transfer failed after a response head: -w reports it, as curl's does (not 000 and 0). */
interface Answered {
  res: OriginResponse;
  url: string;
  redirects: number;
  bytes: number;
}
const answeredBy = new WeakMap<object, Answered>();

function answered(e: unknown, res: OriginResponse, url: string, redirects: number, bytes: number): unknown {
  if (typeof e === 'object' && e !== null) answeredBy.set(e, { res, url, redirects, bytes });
  return e;
}

function headText(res: OriginResponse): string {
  let s = `${HTTP_VERSION[res.protocol] ?? res.protocol} ${res.status}${res.statusText ? ` ${res.statusText}` : ''}\r\n`;
  for (const [n, v] of res.headers) s += `${n}: ${v}\r\n`;
  return `${s}\r\n`;
}

function schemeOf(url: string): string {
  return url.slice(0, Math.max(0, url.indexOf(':'))).toLowerCase();
}

/** --repeat N: the requests, C at a time, and one summary (the exit code of the first failure, if any). */
async function repeated(agent: Agent, plan: FetchPlan, sink: Sink | null, say: (l: string) => void): Promise<number> {
  const results: One[] = [];
  const errors: Record<string, number> = {};
  let firstFailure: OriginlinkError | null = null;
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < plan.repeat) {
      const i = next++;
      try {
        results.push(
          (await transfer(agent, plan, i === 0 ? sink : null, performance.now(), plan.verbose ? say : null)).one,
        );
      } catch (e) {
        if (e instanceof CliExit) throw e;
        const err = toOriginlinkError(e);
        firstFailure ??= err;
        errors[err.code] = (errors[err.code] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  const durationMs = performance.now() - t0;
  const st = agent.stats();
  const opened = st.reduce((a, s) => a + s.connectionsOpened, 0);
  const statuses: Record<string, number> = {};
  for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const failure = firstFailure as OriginlinkError | null;
  const exitCode = failure ? exitOf(failure) : plan.fail && results.some((r) => r.status >= 400) ? 22 : 0;
  const summary = {
    url: plan.url,
    protocol: results[0]?.protocol ?? null,
    requests: plan.repeat,
    ok: results.length,
    failed: plan.repeat - results.length,
    errors,
    statuses,
    concurrency: plan.concurrency,
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
    exitCode,
  };
  if (plan.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(
      `${summary.ok}/${plan.repeat} ok over ${opened} connection(s), reuse rate ${(summary.reuseRate * 100).toFixed(2)}%, ` +
        `p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, ${summary.requestsPerSecond} req/s (${summary.protocol})\n`,
    );
    if (summary.failed) process.stdout.write(`errors: ${JSON.stringify(errors)}\n`);
  }
  if (failure && plan.showErrors)
    process.stderr.write(`originlink: (${exitCode}) ${failure.code}: ${failure.message}\n`);
  return exitCode;
}
