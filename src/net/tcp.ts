/**
 * The TCP(+TLS) connector: how to get an established byte stream to an
 * origin. It knows nothing of HTTP; the caller picks h1 or h2 from the ALPN
 * result. TLS sessions are kept in a bounded store so reconnects resume.
 */
import { setMaxListeners } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  clientCertAlert,
  clientCertRefused,
  ErrorCode,
  NOT_SENT,
  OriginlinkError,
  toOriginlinkError,
} from '../errors.js';
import { clientContext, type ClientIdentity, type TrustedCa } from './tls-context.js';
import type { SessionStore } from '../store/session-store.js';
import { tfoSocketFactory } from './tfo.js';
import { ipFamily } from '../util/ip.js';
import { type DialSignal, LegSignal } from '../util/leg-signal.js';

export interface TcpConnectOptions {
  host: string;
  port: number;
  /** Wrap in TLS (https). */
  tls: boolean;
  /** SNI and the name the certificate must match; defaults to `host` unless it is an IP literal. */
  servername?: string | undefined;
  /** ALPN protocols offered, most preferred first. */
  alpn: string[];
  ca?: TrustedCa | undefined;
  /** The client certificate shown when the server asks for one (mutual TLS). */
  identity?: ClientIdentity | null | undefined;
  /** Verify the certificate chain and name. Default true. */
  rejectUnauthorized?: boolean | undefined;
  connectTimeoutMs: number;
  sessionStore?: SessionStore | undefined;
  /** Key for the session store (origin + TLS options). */
  sessionKey?: string | undefined;
  /** Try TCP Fast Open through the native addon when it is available. */
  tfo?: boolean | undefined;
  /** TCP keepalive probes for pooled sockets: [idleS, intervalS, count]; null leaves the OS default. */
  keepAliveProbes?: { idleS: number; intervalS: number; count: number } | null | undefined;
  signal?: DialSignal | undefined;
  /**
   * An already open stream to the origin (a proxy tunnel): no dial, no TFO; TLS goes on top of it. A
   * Duplex that is not a socket (an HTTP/2 CONNECT stream) gets no socket options; h1/h2 use only its
   * stream surface (data, write, end, destroy).
   */
  socket?: net.Socket | Duplex | undefined;
}

export interface TcpConnected {
  socket: net.Socket;
  alpn: string | null;
  connectMs: number;
  tlsMs: number;
  tlsVersion: string | null;
  resumed: boolean;
  tfo: boolean;
}

/** Socket factory for TFO and keepalive probes: the native addon's (./tfo.ts) unless a test swaps it. */
export interface SocketFactory {
  /**
   * A socket that is "connected" at once (the SYN leaves with the first write); null: no TFO here. Throws when the
   * connect was refused at once (a local RST).
   */
  connect(opts: { host: string; port: number }): net.Socket | null;
  /** After the handshake: did the SYN carry data that the server accepted? */
  synDataAccepted(socket: net.Socket): boolean;
  /** Its SYN is still unanswered (the kernel's TCP state is SYN_SENT). */
  synSent?(socket: net.Socket): boolean;
  setKeepAliveProbes(socket: net.Socket, probes: { idleS: number; intervalS: number; count: number }): boolean;
}
let tfoFactory: SocketFactory | null = tfoSocketFactory;
export function setTfoSocketFactory(f: SocketFactory | null): void {
  tfoFactory = f;
}

/** TFO sockets: "connected" at once, their handshake never confirmed to us (tfo.ts: no 'connect' event). */
const openedAtOnce = new WeakSet<object>();

/**
 * A socket whose TCP handshake may not have completed: a TFO socket that has not received a byte. Its
 * ECONNREFUSED, EHOSTUNREACH or ENETUNREACH (syscall read or write) are a failed connect — nothing reached the
 * origin — where on an established connection they would be a lost one (errors.ts socketFailure).
 */
export function handshakeUnconfirmed(s: object): boolean {
  return openedAtOnce.has(s) && (s as net.Socket).bytesRead === 0;
}

export function connectTcp(o: TcpConnectOptions): Promise<TcpConnected> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let tConnected = 0;
    let settled = false;
    let socket: net.Socket | null = null;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      socket?.destroy();
      reject(e instanceof OriginlinkError ? e : classifyConnectError(e, tConnected > 0, o));
    };
    const onAbort = (): void =>
      fail(new OriginlinkError(ErrorCode.ABORTED, 'local', 'connect aborted', { retrySafe: true }));
    const timer = setTimeout(() => {
      fail(
        new OriginlinkError(
          ErrorCode.CONNECT_TIMEOUT,
          'network',
          `connect to ${o.host}:${o.port} timed out after ${o.connectTimeoutMs} ms`,
          { retrySafe: true },
        ),
      );
    }, o.connectTimeoutMs);
    if (o.signal?.aborted) return onAbort();
    // One pool-wide signal serves every concurrent dial (up to maxConnections listeners, each removed when its dial
    // settles): Node's warns past 10 listeners (a leg of ours has no such limit).
    if (o.signal && !(o.signal instanceof LegSignal)) setMaxListeners(0, o.signal);
    o.signal?.addEventListener('abort', onAbort, { once: true });

    const isIp = ipFamily(o.host) !== 0;
    let tfoSocket: net.Socket | null = null;
    try {
      tfoSocket = o.tfo && tfoFactory && isIp && !o.socket ? tfoFactory.connect({ host: o.host, port: o.port }) : null;
    } catch (e) {
      // Refused at once (a local peer's RST inside connect()): a failed connect, nothing sent.
      return fail(e);
    }
    const raw = (o.socket ?? tfoSocket ?? net.connect({ host: o.host, port: o.port, noDelay: true })) as net.Socket;
    const open = tfoSocket !== null || o.socket !== undefined;
    if (tfoSocket !== null) openedAtOnce.add(tfoSocket);
    const isSocket = raw instanceof net.Socket;
    if (isSocket) raw.setNoDelay(true);
    socket = raw;
    const done = (s: net.Socket, r: Omit<TcpConnected, 'socket' | 'connectMs' | 'tfo'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      s.removeListener('error', fail);
      if (o.keepAliveProbes && isSocket) {
        // The factory falls back to socket.setKeepAlive itself when the addon is missing. Probes it cannot set (the
        // Agent checks their values) leave the connection as it is: nothing here may throw once its error listener
        // is gone (a connection with none dies with the process at its first reset).
        try {
          if (tfoFactory) tfoFactory.setKeepAliveProbes(raw, o.keepAliveProbes);
          else raw.setKeepAlive(true, o.keepAliveProbes.idleS * 1000);
        } catch {
          // the OS defaults stay
        }
      }
      const tfo = tfoSocket !== null && tfoFactory !== null && tfoFactory.synDataAccepted(raw);
      resolve({ socket: s, connectMs: (tConnected || performance.now()) - t0, tfo, ...r });
    };

    if (!o.tls) {
      raw.once('error', fail);
      const ready = (): void => {
        tConnected = performance.now();
        done(raw, { alpn: null, tlsMs: 0, tlsVersion: null, resumed: false });
      };
      if (open) ready();
      else raw.once('connect', ready);
      if (tfoSocket !== null) confirmWithin(tfoSocket, o, t0);
      return;
    }

    const servername = o.servername ?? (isIp ? undefined : o.host);
    // RFC 8446 §C.4: a ticket is for one connection; concurrent dials each take their own (or none).
    const session = o.sessionKey ? o.sessionStore?.take(o.sessionKey) : undefined;
    // With TFO the socket is "connected" at once (the SYN leaves with the ClientHello); a tunnel is open already.
    if (open) tConnected = performance.now();
    else
      raw.once('connect', () => {
        tConnected = performance.now();
      });
    const verify = o.rejectUnauthorized ?? true;
    const tlsOpts: tls.ConnectionOptions = { socket: raw, ALPNProtocols: o.alpn, rejectUnauthorized: verify };
    if (servername !== undefined) tlsOpts.servername = servername;
    else if (isIp) tlsOpts.checkServerIdentity = (_h, cert) => tls.checkServerIdentity(o.host, cert);
    tlsOpts.secureContext = clientContext(o.ca, o.identity, verify);
    if (session) tlsOpts.session = Buffer.from(session);
    const s = tls.connect(tlsOpts);
    socket = s;
    raw.once('error', fail);
    s.once('error', fail);
    let fresh = false;
    if (o.sessionKey && o.sessionStore) {
      const store = o.sessionStore;
      const key = o.sessionKey;
      s.on('session', (sess: Buffer) => {
        fresh = true;
        store.put(key, sess);
      });
    }
    s.once('secureConnect', () => {
      const now = performance.now();
      raw.removeListener('error', fail);
      // TLS 1.3: the server judges our certificate after our Finished (RFC 8446 §4.4.2), so its refusal arrives as
      // an error on the connection; tagged with the peer, it becomes OL_CLIENT_CERT_REFUSED naming it (errors.ts).
      s.prependOnceListener('error', (e: Error) => {
        if (clientCertAlert(e) === null) return;
        (e as { peer?: string }).peer = peerName(o);
        (e as { shown?: boolean }).shown = Boolean(o.identity);
      });
      // The ticket this dial resumed with goes back to the store. RFC 8446 §C.4 asks clients not to reuse a
      // ticket (observers could link the connections): between an edge and its origin the addresses link them
      // anyway, and over TCP we never send early data, so there is no replay to fear. A server that issues no
      // new ticket after a resumed handshake (nginx here) otherwise made every other dial a full handshake;
      // nginx's own upstream side (proxy_ssl_session_reuse) and HAProxy keep reusing one session too. A ticket
      // the server does send is stored after it and used first (newest out first).
      if (session && !fresh && o.sessionKey && o.sessionStore && s.isSessionReused())
        o.sessionStore.put(o.sessionKey, session);
      done(s, {
        alpn: typeof s.alpnProtocol === 'string' ? s.alpnProtocol : null,
        tlsMs: now - (tConnected || now),
        tlsVersion: s.getProtocol() ?? null,
        resumed: s.isSessionReused(),
      });
    });
  });
}

/**
 * A cleartext TCP Fast Open socket is handed out at once, so its request rides in the SYN; nothing but the TLS
 * handshake would notice a SYN that is never answered. Its connect deadline stays armed: still in SYN_SENT when
 * `connectTimeoutMs` has passed since the dial, it is destroyed with OL_CONNECT_TIMEOUT. Not retry-safe by itself:
 * the SYN's data may have reached the application while every SYN-ACK was lost (RFC 7413 §6.3.1); the retry policy
 * replays only what may be replayed (agent/policy.ts).
 */
function confirmWithin(s: net.Socket, o: TcpConnectOptions, t0: number): void {
  const check = (): void => {
    if (s.destroyed || !handshakeUnconfirmed(s) || tfoFactory?.synSent?.(s) !== true) return;
    s.destroy(
      new OriginlinkError(
        ErrorCode.CONNECT_TIMEOUT,
        'network',
        `connect to ${o.host}:${o.port} timed out after ${o.connectTimeoutMs} ms (TCP Fast Open: no SYN-ACK)`,
        { details: { tfo: true } },
      ),
    );
  };
  const t = setTimeout(check, Math.max(0, o.connectTimeoutMs - (performance.now() - t0)));
  t.unref();
  s.once('close', () => clearTimeout(t));
}

/** The server as errors name it: `host:port`, or `name (host:port)` when the name checked differs. */
function peerName(o: TcpConnectOptions): string {
  const peer = `${o.host}:${o.port}`;
  const name = o.servername ?? o.host;
  return name === o.host ? peer : `${name} (${peer})`;
}

function classifyConnectError(e: unknown, tcpUp: boolean, o: TcpConnectOptions): OriginlinkError {
  const err = toOriginlinkError(e, tcpUp ? ErrorCode.TLS_FAILED : ErrorCode.CONNECT_FAILED);
  // Nothing was sent as HTTP yet: a retry elsewhere is always safe. A TLS failure names the peer and what to set:
  // the same handshake with the same settings fails again (agent/policy.ts never repeats it on this URL).
  const who = peerName(o);
  const peer = `${o.host}:${o.port}`;
  const name = o.servername ?? o.host;
  // TLS 1.2 refuses a client certificate within the handshake (TLS 1.3 after it: the tag in connectTcp).
  const alert = clientCertAlert(e);
  if (alert !== null) return clientCertRefused(alert, who, e, Boolean(o.identity)).with({ facts: NOT_SENT });
  // RFC 7301 §3.2: the server speaks none of the protocols offered (an HTTP/1.1-only origin asked for h2 alone): not
  // a failed handshake but the protocol asked for not spoken, as when a server picks none (connect.ts).
  if ((e as NodeJS.ErrnoException).code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL')
    return new OriginlinkError(
      ErrorCode.UNSUPPORTED_PROTOCOL,
      'remote',
      `${who} speaks none of ${o.alpn.join(', ')} offered by ALPN (TLS alert no_application_protocol)`,
      { cause: e, retrySafe: true, facts: NOT_SENT, details: { host: name, address: peer } },
    );
  if (err.code === ErrorCode.CERT_INVALID) {
    const code = (e as NodeJS.ErrnoException).code;
    // The same field names in the Agent's options and the service's origins (`tls.ca`, `tls.servername`); the
    // service spells "do not verify" `tls.verify: false`.
    const hint =
      code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? 'it does not hold that name: set tls.servername to one it holds'
        : 'trust its issuer with tls.ca';
    return new OriginlinkError(
      ErrorCode.CERT_INVALID,
      'remote',
      `certificate of ${who} not accepted: ${err.message}; ${hint} (or skip verification: tls.rejectUnauthorized false, serve: tls.verify false)`,
      { cause: e, retrySafe: true, facts: NOT_SENT, details: { host: name, address: peer, verifyCode: code } },
    );
  }
  if (
    tcpUp &&
    (err.code === ErrorCode.SOCKET_CLOSED || err.code === ErrorCode.TLS_FAILED || err.code === ErrorCode.SOCKET_RESET)
  ) {
    // TLS 1.2 has no certificate_required alert: a server that wants a client certificate and got none (or none it
    // takes) sends handshake_failure (RFC 5246 §7.4.6), which says nothing of certificates; say what it may mean.
    const hint =
      (e as NodeJS.ErrnoException).code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE'
        ? o.identity
          ? ' (if it requires a client certificate: it did not take tls.cert)'
          : ' (if it requires a client certificate: set tls.cert and tls.key)'
        : '';
    return new OriginlinkError(
      ErrorCode.TLS_FAILED,
      'remote',
      `TLS handshake with ${who} failed: ${err.message}${hint}`,
      {
        cause: e,
        retrySafe: true,
        facts: NOT_SENT,
        details: { host: name, address: peer },
      },
    );
  }
  return err.with({ retrySafe: true, facts: NOT_SENT });
}
