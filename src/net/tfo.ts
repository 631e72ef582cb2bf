/**
 * TCP Fast Open (RFC 7413) and keepalive-probe tuning through the optional
 * native addon in native/tfo. Everything here degrades: without the addon
 * (not built, unloadable, ORIGINLINK_NO_NATIVE=1, not Linux) connectTfo and
 * listenTfo return null and the caller uses plain net.connect / listen; one
 * line says so, once per process.
 *
 * Invariant: a socket from connectTfo never emits 'connect' and reports
 * `connecting === false` from the start. Its connection errors (ECONNREFUSED,
 * ETIMEDOUT...) arrive as an 'error' event (syscall 'read' or 'write'), which
 * tls.connect({ socket }) forwards to the TLS socket.
 */
import { closeSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { loadAddon } from '../util/addon.js';
import { knobs } from '../util/knobs.js';
import { ipFamily } from '../util/ip.js';

export interface TcpInfo {
  /** The SYN-ACK acknowledged the data sent in the SYN (TCPI_OPT_SYN_DATA). */
  synDataAccepted: boolean;
  /** tcpi_fastopen_client_fail: see TFO_CLIENT_FAIL. */
  fastopenClientFail: number;
  rttUs: number;
  rttVarUs: number;
  retransmits: number;
  totalRetrans: number;
  /** Kernel TCP state number: see TCP_STATE. */
  state: number;
}

export interface KeepAliveProbes {
  /** Seconds idle before the first probe (TCP_KEEPIDLE), 1..32767. */
  idleS: number;
  /** Seconds between unanswered probes (TCP_KEEPINTVL), 1..32767. */
  intervalS: number;
  /** Unanswered probes before the connection is dropped (TCP_KEEPCNT), 1..127. */
  count: number;
}

export interface KeepAliveState extends KeepAliveProbes {
  enabled: boolean;
}

/** Cloudflare's origin-side defaults: probe after 300 s idle, every 75 s, give up after 9. */
export const DEFAULT_KEEPALIVE: Readonly<KeepAliveProbes> = Object.freeze({ idleS: 300, intervalS: 75, count: 9 });

/** Values of tcpi_fastopen_client_fail (linux/tcp.h, enum tcp_fastopen_client_fail). */
export const TFO_CLIENT_FAIL = {
  UNSPEC: 0,
  NO_COOKIE: 1,
  DATA_NOT_ACKED: 2,
  SYN_RETRANSMITTED: 3,
} as const;

/** Linux TCP states as reported by tcpi_state (include/net/tcp_states.h). */
export const TCP_STATE = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT1: 4,
  FIN_WAIT2: 5,
  TIME_WAIT: 6,
  CLOSE: 7,
  CLOSE_WAIT: 8,
  LAST_ACK: 9,
  LISTEN: 10,
  CLOSING: 11,
} as const;

interface Addon {
  connect(ip: string, port: number, family: 4 | 6, localIp?: string): number;
  listen(ip: string, port: number, family: 4 | 6, backlog: number, tfoQueueLen: number): number;
  tcpInfo(fd: number): TcpInfo;
  setKeepalive(fd: number, idleS: number, intervalS: number, count: number): void;
  getKeepalive(fd: number): KeepAliveState;
  socketError(fd: number): string | null;
  unread(fd: number): number;
  quickAck(fd: number): void;
}

type Logger = (message: string) => void;

let logger: Logger = (m) => console.warn(m);
let loaded: { addon: Addon | null; reason: string | null } | null = null;
const warned = new Set<string>();

/** Where the one-time "running without TFO" lines go (default console.warn). */
export function setTfoLogger(fn: Logger): void {
  logger = fn;
}

function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  logger(message);
}

// src/net/ and dist/net/ both sit two levels below the package root.
function addonPath(): string {
  const fromEnv = knobs.tfoAddon;
  if (fromEnv !== undefined) return fromEnv;
  return fileURLToPath(new URL('../../native/tfo/build/Release/tfo.node', import.meta.url));
}

function load(): Addon | null {
  if (loaded) return loaded.addon;
  let reason: string | null = null;
  let addon: Addon | null = null;
  if (knobs.noNative) reason = 'disabled by ORIGINLINK_NO_NATIVE=1';
  else if (process.platform !== 'linux') reason = `not supported on ${process.platform}`;
  else {
    const path = addonPath();
    try {
      addon = loadAddon<Addon>(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      reason =
        code === 'MODULE_NOT_FOUND'
          ? `addon not built (${path}; run node scripts/build-native.mjs)`
          : `addon failed to load (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
    }
  }
  loaded = { addon, reason };
  if (reason !== null) warnOnce('load', `originlink: TCP Fast Open unavailable: ${reason}; using plain TCP connects`);
  return addon;
}

export function tfoAvailable(): boolean {
  return load() !== null;
}

/** The addon's path and why it did not load (null when it did). */
export function tfoAddonStatus(): { path: string; reason: string | null } {
  load();
  return { path: addonPath(), reason: loaded?.reason ?? null };
}

/** net.ipv4.tcp_fastopen of this process's network namespace (bit 0x1 client, 0x2 server), or null. */
export function tfoSysctl(): number | null {
  try {
    const v = Number.parseInt(readFileSync('/proc/sys/net/ipv4/tcp_fastopen', 'utf8').trim(), 10);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * A TCP socket with TCP_FASTOPEN_CONNECT set and connect() already issued, or
 * null when the addon is unavailable, `host` is not an IP literal, or the
 * kernel refused (the caller then uses net.connect, which reports any real
 * connect error itself).
 *
 * With a cookie cached for `host` the SYN is held back until the first write
 * and carries it: hand the socket to tls.connect({ socket }) so the
 * ClientHello rides in the SYN. A protocol where the server speaks first
 * must not use this (nothing would ever send the SYN).
 */
export function connectTfo(opts: { host: string; port: number; localAddress?: string }): net.Socket | null {
  const addon = load();
  if (addon === null) return null;
  const family = ipFamily(opts.host);
  if (family !== 4 && family !== 6) return null;
  let fd: number;
  try {
    fd = addon.connect(opts.host, opts.port, family, opts.localAddress);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.syscall === 'setsockopt') {
      warnOnce(
        `refused:${e.code}`,
        `originlink: kernel refused TCP Fast Open (${e.code}; net.ipv4.tcp_fastopen=${tfoSysctl() ?? '?'}, client needs bit 0x1); using plain TCP connects`,
      );
    }
    return null;
  }
  let socket: net.Socket;
  try {
    socket = new net.Socket({ fd, readable: true, writable: true });
  } catch {
    closeSync(fd);
    return null;
  }
  // A local peer's RST is processed inside connect(): the socket is already
  // CLOSE with the reason in SO_ERROR. The caller's first write (TLS: the
  // ClientHello, written synchronously by tls.connect) would consume that
  // error and TLSWrap drops write errors, leaving only a vague ECONNRESET
  // "disconnected before secure TLS connection". Thrown here instead, at once:
  // as an 'error' event on a socket that looked connected it came a tick or
  // two after a plain-TCP caller had taken the socket as open (no listener
  // left: an uncaught exception).
  const early = failedAtOnce(addon, fd);
  if (early !== null) {
    socket.destroy();
    throw Object.assign(new Error(`connect ${early} ${opts.host}:${opts.port}`), {
      code: early,
      errno: -(osConstants.errno[early as keyof typeof osConstants.errno] ?? 0),
      syscall: 'connect',
      address: opts.host,
      port: opts.port,
    });
  }
  return socket;
}

function failedAtOnce(addon: Addon, fd: number): string | null {
  try {
    return addon.tcpInfo(fd).state === TCP_STATE.CLOSE ? (addon.socketError(fd) ?? 'ECONNRESET') : null;
  } catch {
    return null;
  }
}

/** The OS fd under a net.Socket or a tls.TLSSocket wrapping one; -1 when there is none (yet). */
export function socketFd(socket: net.Socket): number {
  type Handle = { fd?: unknown; _parent?: Handle } | null | undefined;
  let h = (socket as unknown as { _handle?: Handle })._handle;
  for (let depth = 0; depth < 3 && h; depth++) {
    if (typeof h.fd === 'number' && h.fd >= 0) return h.fd;
    h = h._parent;
  }
  return -1;
}

/**
 * Bytes waiting in the kernel's receive queue of `fd` (a socket's, socketFd) that nobody has read yet (SIOCINQ),
 * or null without the addon or for an fd it cannot ask. One ioctl.
 */
export function unreadBytes(fd: number): number | null {
  const addon = load();
  if (addon === null || fd < 0) return null;
  try {
    return addon.unread(fd);
  } catch {
    return null;
  }
}

/**
 * Acknowledge what `fd` has received now, not after the delayed-ACK timer (TCP_QUICKACK); false without the addon or an
 * fd.
 */
export function quickAck(fd: number): boolean {
  const addon = load();
  if (addon === null || fd < 0) return false;
  try {
    addon.quickAck(fd);
    return true;
  } catch {
    return false;
  }
}

/** Selected TCP_INFO fields for the socket, or null without the addon or an fd. */
export function tcpInfo(socket: net.Socket): TcpInfo | null {
  const addon = load();
  const fd = socketFd(socket);
  if (addon === null || fd < 0) return null;
  try {
    return addon.tcpInfo(fd);
  } catch {
    return null;
  }
}

/** Keepalive settings as the kernel holds them, or null without the addon or an fd. */
export function readKeepAliveProbes(socket: net.Socket): KeepAliveState | null {
  const addon = load();
  const fd = socketFd(socket);
  if (addon === null || fd < 0) return null;
  try {
    return addon.getKeepalive(fd);
  } catch {
    return null;
  }
}

/** Linux's bounds: TCP_KEEPIDLE and TCP_KEEPINTVL 1..32767 s (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL), TCP_KEEPCNT 1..127. */
const KEEPALIVE_MAX: Readonly<Record<keyof KeepAliveProbes, number>> = { idleS: 32767, intervalS: 32767, count: 127 };

/** Why `p` cannot be set as keepalive probes (the field, '' for the whole, and the reason), or null. */
export function keepAliveProbesProblem(p: unknown): { field: string; reason: string } | null {
  if (p === null || typeof p !== 'object') return { field: '', reason: 'must be { idleS, intervalS, count } or null' };
  for (const k of Object.keys(p))
    if (!(k in KEEPALIVE_MAX)) return { field: k, reason: 'unknown option (allowed: idleS, intervalS, count)' };
  for (const [k, max] of Object.entries(KEEPALIVE_MAX)) {
    const v = (p as Record<string, unknown>)[k];
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max)
      return { field: k, reason: `must be an integer in 1..${max}, got ${JSON.stringify(v)}` };
  }
  return null;
}

/**
 * SO_KEEPALIVE with TCP_KEEPIDLE/KEEPINTVL/KEEPCNT. Returns true when all
 * three were applied natively. Fallback (false): socket.setKeepAlive(true,
 * idleS*1000), which sets only the idle time (libuv then picks its own
 * interval and count). A later socket.setKeepAlive() call overwrites the
 * interval and count set here.
 */
export function setKeepAliveProbes(socket: net.Socket, probes: KeepAliveProbes = DEFAULT_KEEPALIVE): boolean {
  const bad = keepAliveProbesProblem(probes);
  if (bad) throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `keepalive ${bad.field} ${bad.reason}`);
  const addon = load();
  const fd = socketFd(socket);
  if (addon !== null && fd >= 0) {
    try {
      addon.setKeepalive(fd, probes.idleS, probes.intervalS, probes.count);
      return true;
    } catch {
      // fall through to the portable setting
    }
  }
  socket.setKeepAlive(true, probes.idleS * 1000);
  return false;
}

/**
 * A listening fd with TCP_FASTOPEN (queue of `queueLen` pending TFO requests)
 * and SO_REUSEADDR, for server.listen({ fd }); null without the addon, for a
 * non-IP host, or on any error (the caller's plain listen reports real ones).
 * The server side also needs bit 0x2 in net.ipv4.tcp_fastopen.
 */
export function listenTfo(opts: { host: string; port: number; backlog?: number; queueLen?: number }): number | null {
  const addon = load();
  if (addon === null) return null;
  const family = ipFamily(opts.host);
  if (family !== 4 && family !== 6) return null;
  try {
    return addon.listen(opts.host, opts.port, family, opts.backlog ?? 511, opts.queueLen ?? 256);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.syscall === 'setsockopt')
      warnOnce(`listen:${e.code}`, `originlink: kernel refused TCP Fast Open on listen (${e.code})`);
    return null;
  }
}

/** Shaped for setTfoSocketFactory() in ./tcp.ts. */
export const tfoSocketFactory = {
  connect: (opts: { host: string; port: number }): net.Socket | null => connectTfo(opts),
  synDataAccepted: (socket: net.Socket): boolean => tcpInfo(socket)?.synDataAccepted ?? false,
  synSent: (socket: net.Socket): boolean => tcpInfo(socket)?.state === TCP_STATE.SYN_SENT,
  setKeepAliveProbes: (socket: net.Socket, probes: KeepAliveProbes): boolean => setKeepAliveProbes(socket, probes),
};

/** Test hook: forget the loaded addon and the warnings already given. */
export function resetTfoForTests(): void {
  loaded = null;
  warned.clear();
}
