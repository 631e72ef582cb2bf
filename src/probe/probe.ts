/**
 * Capability probe of one origin: TCP+TLS with ALPN, a request for the
 * Alt-Svc and keep-alive facts, a second TCP connection (TLS resumption,
 * TFO data accepted), an active QUIC handshake, and a resumed QUIC
 * connection trying 0-RTT. Every step has its own deadline; a failed step
 * is reported, never thrown, and later steps that need it are skipped.
 */
import { ErrorCode, OriginlinkError, toOriginlinkError } from '../errors.js';
import { resolvePoolOptions } from '../pool/options.js';
import { MemorySessionStore } from '../store/session-store.js';
import type { HeaderList, PooledConnection, Protocol } from '../http/types.js';
import { connectAltH3, connectOrigin, type ConnectContext, type OriginSpec } from '../connect/connect.js';
import { tfoAvailable } from '../net/tfo.js';
import { AddressBook } from '../net/addresses.js';
import { Resolver, type LookupFn } from '../net/resolver.js';
import type { ProxyNode } from '../net/proxy.js';
import type { ClientIdentity } from '../net/tls-context.js';
import { findH3, parseAltSvc, type AltService } from './alt-svc.js';
import type { OriginCache, OriginFacts } from '../store/origin-cache.js';
import { DEFAULT_SELECTION, emptyFacts, selectProtocol } from './state.js';

export interface ProbeOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  rejectUnauthorized?: boolean;
  servername?: string;
  /** A client certificate shown to an origin that asks for one (mutual TLS). */
  identity?: ClientIdentity;
  /** Deadline of each step (TCP+TLS, request, QUIC handshake, 0-RTT), ms. Default 3000. */
  stepTimeoutMs?: number;
  lookup?: LookupFn;
  /**
   * Resolver for the origin's name (default: the system resolver, or `lookup`); the name is resolved here, so TFO
   * applies to names too.
   */
  resolver?: Resolver;
  /** Try TCP Fast Open (native addon). Default true. */
  tfo?: boolean;
  /** Skip the QUIC steps. */
  noQuic?: boolean;
  /** Probe through this egress proxy node: TCP steps run in a tunnel, QUIC is not attempted (TCP-only proxy). */
  proxy?: ProxyNode;
  /** Wall clock for the facts (tests); default Date.now(). */
  now?: number;
  /** Store the established facts here (keyed by origin), e.g. a FileOriginCache an Agent will read. */
  cache?: OriginCache;
}

export interface StepError {
  code: string;
  message: string;
}

export interface ProbeResult {
  url: string;
  origin: string;
  tcp: {
    ok: boolean;
    error?: StepError;
    alpnOffered: string[];
    alpn: string | null;
    protocol: Protocol | null;
    connectMs: number | null;
    tlsMs: number | null;
    tlsVersion: string | null;
    remoteAddress: string | null;
    family: 4 | 6 | null;
    /** Happy Eyeballs attempts (RFC 8305), one per address tried. */
    attempts: number | null;
    certificate?: { subject: string; issuer: string; validTo: string; subjectAltName: string | null };
  };
  http: {
    ok: boolean;
    error?: StepError;
    status: number | null;
    altSvc: string | null;
    h3Advertised: { host: string; port: number; maxAgeS: number } | null;
    altSvcClear: boolean;
    keepAliveTimeoutMs: number | null;
    maxConcurrentStreams: number | null;
  };
  reconnect: {
    ok: boolean;
    error?: StepError;
    tlsResumed: boolean;
    tfoAttempted: boolean;
    tfoAccepted: boolean;
    connectMs: number | null;
  };
  quic: {
    attempted: boolean;
    ok: boolean;
    error?: StepError;
    port: number;
    handshakeMs: number | null;
    rttMs: number | null;
    maxConcurrentStreams: number | null;
    notAttempted?: string;
  };
  /** The egress proxy node the TCP steps went through (null: direct). */
  proxy: string | null;
  earlyData: { attempted: boolean; ok: boolean; error?: StepError; resumed: boolean; accepted: boolean };
  rttMs: number | null;
  chosen: { protocol: Protocol; reason: string };
  /** The facts this probe establishes (what an OriginCache would keep). */
  facts: OriginFacts;
  durationMs: number;
}

const errOf = (e: unknown): StepError => {
  const o = toOriginlinkError(e);
  return { code: o.code, message: o.message };
};

/** Reject after `ms` (aborting `ctl`), with a probe-step timeout error. */
async function step<T>(
  name: string,
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
  cleanup?: (v: T) => void,
): Promise<T> {
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let timedOut = false;
  const p = fn(ctl.signal);
  const to = new Promise<never>((_, rej) => {
    timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
      rej(new OriginlinkError(ErrorCode.CONNECT_TIMEOUT, 'network', `${name} did not complete within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, to]);
  } finally {
    if (timer) clearTimeout(timer);
    if (timedOut && cleanup) p.then(cleanup, () => {});
  }
}

async function drainBody(r: { body: NodeJS.ReadableStream }, ms: number): Promise<void> {
  await step(
    'reading the response body',
    ms,
    () =>
      new Promise<void>((res, rej) => {
        r.body.on('end', res);
        r.body.on('error', rej);
        r.body.resume();
      }),
  );
}

function header(h: HeaderList, name: string): string[] {
  return h.filter(([k]) => k === name).map(([, v]) => v);
}

export async function probeOrigin(url: string | URL, o: ProbeOptions = {}): Promise<ProbeResult> {
  const t0 = performance.now();
  const u = typeof url === 'string' ? new URL(url) : url;
  if (u.protocol !== 'https:')
    throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', 'probe needs an https:// URL');
  const port = u.port ? Number(u.port) : 443;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const origin = `https://${u.hostname}:${port}`;
  const ms = o.stepTimeoutMs ?? 3000;
  const now = o.now ?? Date.now();
  const tfoOn = o.tfo ?? true;
  // One resolver for every step (the 0-RTT step's own connect too): with --dns-server, a name only that server knows.
  const resolver = o.resolver ?? new Resolver({ lookup: o.lookup });
  const spec: OriginSpec = {
    scheme: 'https',
    host,
    port,
    servername: o.servername,
    protocol: 'auto',
    ca: o.ca,
    rejectUnauthorized: o.rejectUnauthorized ?? true,
    identity: o.identity,
    tfo: tfoOn,
    keepAliveProbes: null,
    addresses: new AddressBook(resolver),
    proxy: o.proxy,
  };
  const pool = resolvePoolOptions({ connectTimeoutMs: ms, headersTimeoutMs: ms, bodyTimeoutMs: ms });
  let ids = 0;
  const sessions = new MemorySessionStore(8);
  const ctx = (signal: AbortSignal): ConnectContext => ({
    pool,
    sessionStore: sessions,
    sessionKey: `probe|${origin}`,
    nextId: () => ++ids,
    signal,
  });
  const path = `${u.pathname}${u.search}`;
  const req = {
    method: 'GET',
    path,
    authority: u.host,
    scheme: 'https' as const,
    headers: [['user-agent', 'originlink-probe']] as HeaderList,
    body: null,
  };

  const r: ProbeResult = {
    url: u.href,
    origin,
    tcp: {
      ok: false,
      alpnOffered: ['h2', 'http/1.1'],
      alpn: null,
      protocol: null,
      connectMs: null,
      tlsMs: null,
      tlsVersion: null,
      remoteAddress: null,
      family: null,
      attempts: null,
    },
    http: {
      ok: false,
      status: null,
      altSvc: null,
      h3Advertised: null,
      altSvcClear: false,
      keepAliveTimeoutMs: null,
      maxConcurrentStreams: null,
    },
    reconnect: { ok: false, tlsResumed: false, tfoAttempted: false, tfoAccepted: false, connectMs: null },
    quic: { attempted: false, ok: false, port, handshakeMs: null, rttMs: null, maxConcurrentStreams: null },
    earlyData: { attempted: false, ok: false, resumed: false, accepted: false },
    rttMs: null,
    proxy: o.proxy?.id ?? null,
    chosen: { protocol: 'h1', reason: '' },
    facts: emptyFacts(now),
    durationMs: 0,
  };
  const destroy = (c: PooledConnection): void => c.destroy();

  // 1. TCP + TLS, ALPN h2/http1.1, then one request on that connection.
  let alt: AltService | null = null;
  try {
    const conn = await step('TCP+TLS connect', ms + 100, (signal) => connectOrigin(spec, ctx(signal)), destroy);
    const f = conn.facts;
    Object.assign(r.tcp, {
      ok: true,
      alpn: f.alpn,
      protocol: conn.protocol,
      connectMs: f.connectMs,
      tlsMs: f.tlsMs,
      tlsVersion: f.tlsVersion,
      remoteAddress: f.remoteAddress,
      family: f.family ?? null,
      attempts: f.attempts ?? null,
    });
    const cert = conn.peerCertificate();
    if (cert)
      r.tcp.certificate = {
        subject: commonName(cert.subject),
        issuer: commonName(cert.issuer),
        validTo: cert.validTo,
        subjectAltName: cert.subjectAltName ?? null,
      };
    try {
      const res = await step('HTTP request', ms, () => conn.request(req));
      r.http.status = res.status;
      await drainBody(res, ms).catch(() => {});
      const av = header(res.headers, 'alt-svc');
      if (av.length) {
        r.http.altSvc = av.join(', ');
        const parsed = parseAltSvc(av);
        r.http.altSvcClear = parsed.type === 'clear';
        alt = findH3(parsed);
        if (alt) r.http.h3Advertised = { host: alt.host, port: alt.port, maxAgeS: alt.maxAge };
      }
      const ka = header(res.headers, 'keep-alive')[0];
      const m = ka ? /(?:^|[,\s])timeout\s*=\s*(\d+)/i.exec(ka) : null;
      r.http.keepAliveTimeoutMs = m ? Number(m[1]) * 1000 : conn.facts.keepAliveHintMs;
      r.http.maxConcurrentStreams = conn.protocol === 'h1' ? 1 : conn.facts.peerMaxConcurrentStreams;
      r.http.ok = true;
    } catch (e) {
      r.http.error = errOf(e);
    }
    conn.destroy();
  } catch (e) {
    r.tcp.error = errOf(e);
  }

  // 2. A second TCP connection: TLS resumption and TFO (the first one only fetched the TFO cookie).
  if (r.tcp.ok) {
    // The name was resolved above and an address is dialled: TFO applies to names and literals alike (not inside a
    // tunnel).
    r.reconnect.tfoAttempted = tfoOn && tfoAvailable() && !o.proxy;
    try {
      const c2 = await step('TCP+TLS reconnect', ms + 100, (signal) => connectOrigin(spec, ctx(signal)), destroy);
      Object.assign(r.reconnect, {
        ok: true,
        tlsResumed: c2.facts.resumed,
        tfoAccepted: c2.facts.tfo,
        connectMs: c2.facts.connectMs,
      });
      c2.destroy();
    } catch (e) {
      r.reconnect.error = errOf(e);
    }
  }

  // 3. QUIC handshake on the advertised port (or the origin's), then a request so a ticket is issued.
  if (o.proxy && !o.noQuic) r.quic.notAttempted = `TCP-only proxy ${o.proxy.id}`;
  if (!o.noQuic && !o.proxy) {
    const target = { host: alt?.host ?? '', port: alt?.port ?? port };
    r.quic = { ...r.quic, attempted: true, port: target.port };
    try {
      const q = await step(
        'QUIC handshake',
        ms + 100,
        (signal) => connectAltH3(spec, target, ctx(signal), ms),
        destroy,
      );
      Object.assign(r.quic, {
        ok: true,
        handshakeMs: q.facts.connectMs,
        rttMs: q.facts.rttMs,
        maxConcurrentStreams: q.facts.peerMaxConcurrentStreams,
      });
      try {
        const res = await step('HTTP/3 request', ms, () => q.request(req));
        await drainBody(res, ms).catch(() => {});
      } catch {
        // The handshake result stands; the 0-RTT step will say whether a ticket came.
      }
      // A server may send its NewSessionTicket after the answer (quic-go does, under load later still): the ticket
      // is waited for a little (bounded by the step deadline) before the connection goes, or the 0-RTT step below
      // would find none and report a server that resumes as one that does not.
      const key = `h3:probe|${origin}`;
      for (
        const until = performance.now() + Math.min(ms, 1000);
        sessions.get(key) === undefined && performance.now() < until;
      ) {
        await new Promise((r) => setTimeout(r, 10));
      }
      q.destroy();
    } catch (e) {
      r.quic.error = errOf(e);
    }
    // 4. Resume with the stored ticket and send the request as 0-RTT early data.
    if (r.quic.ok) {
      r.earlyData.attempted = true;
      try {
        const { connectH3: h3, quicCa } = await import('../connect/h3.js');
        const q2 = await step(
          'QUIC 0-RTT reconnect',
          ms + 100,
          (signal) =>
            h3({
              host: target.host || host,
              resolver,
              port: target.port,
              servername: o.servername ?? host,
              ca: quicCa(o.ca),
              rejectUnauthorized: o.rejectUnauthorized ?? true,
              identity: o.identity,
              connectTimeoutMs: ms,
              headersTimeoutMs: ms,
              bodyTimeoutMs: ms,
              sessionStore: sessions,
              sessionKey: `h3:probe|${origin}`,
              earlyData: true,
              signal,
            }),
          destroy,
        );
        try {
          const res = await step('0-RTT request', ms, () => q2.request({ ...req, allowEarlyData: true }));
          await drainBody(res, ms).catch(() => {});
          await q2.ready(false);
          Object.assign(r.earlyData, { ok: true, resumed: q2.facts.resumed, accepted: res.earlyData === true });
        } finally {
          q2.destroy();
        }
      } catch (e) {
        r.earlyData.error = errOf(e);
      }
    }
  }

  // RTT: the QUIC estimate, else the TCP connect time (one round trip) when TFO did not shortcut it.
  r.rttMs = r.quic.rttMs ?? r.tcp.connectMs;
  const facts = emptyFacts(now);
  facts.alpn = r.tcp.alpn;
  facts.rttMs = r.rttMs;
  if (r.quic.ok) {
    facts.h3 = {
      host: alt?.host ?? '',
      port: r.quic.port,
      expiresAt: now + (alt?.maxAge ?? 86_400) * 1000,
      source: alt ? 'alt-svc' : 'probe',
    };
  } else if (alt && r.quic.attempted) {
    facts.h3 = { host: alt.host, port: alt.port, expiresAt: now + alt.maxAge * 1000, source: 'alt-svc' };
    facts.brokenCount = 1;
    facts.brokenUntil = now + DEFAULT_SELECTION.brokenBackoffMs;
  } else if (alt) {
    facts.h3 = { host: alt.host, port: alt.port, expiresAt: now + alt.maxAge * 1000, source: 'alt-svc' };
  }
  r.facts = facts;
  const choice = selectProtocol(facts, 'auto', now);
  let protocol: Protocol = choice.protocol ?? r.tcp.protocol ?? 'h1';
  let reason = choice.reason;
  if (!r.tcp.ok && !r.quic.ok)
    reason = `origin unreachable (TCP: ${r.tcp.error?.message ?? 'not tried'}; QUIC: ${r.quic.error?.message ?? 'not tried'})`;
  else if (!r.tcp.ok && r.quic.ok) {
    protocol = 'h3';
    reason = `only QUIC answered (TCP: ${r.tcp.error?.message ?? ''})`;
  } else if (r.quic.ok && !alt)
    reason = `h3 answered an active QUIC probe on port ${r.quic.port} (no Alt-Svc); racing QUIC against TCP`;
  r.chosen = { protocol, reason };
  r.durationMs = performance.now() - t0;
  o.cache?.put(origin, { ...facts, probe: { at: new Date(now).toISOString(), chosen: r.chosen } });
  return r;
}

/** The CN of an X.509 distinguished name as Node prints it (one `KEY=value` per line). */
function commonName(dn: string): string {
  for (const line of dn.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return '';
}
