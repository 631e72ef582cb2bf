/**
 * Loads the optional native/udp addon (Linux) once and finds the libuv
 * handle behind a Node dgram socket. Used by udp-gso.ts (batched sends) and
 * udp-rx.ts (batched receive); see native-notes/udp.md. Binds a socket's
 * handle itself where dgram's bind would load node:cluster (bindDirect).
 *
 * ORIGINLINK_NO_NATIVE=1 disables every native piece; ORIGINLINK_UDP_ADDON
 * names another build of the addon.
 */
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:dgram';
import { ipFamily } from '../util/ip.js';
import { getSystemErrorName } from 'node:util';
import { loadAddon } from '../util/addon.js';
import { knobs } from '../util/knobs.js';

export interface UdpAddon {
  sendSegments(
    fd: number,
    buf: Uint8Array,
    offset: number,
    length: number,
    segSize: number,
    ip: string,
    port: number,
  ): number;
  gsoSupported(fd: number): boolean;
  /**
   * Batched receive (older builds lack the receive functions). `adopt`: read `fd` itself (not a duplicate) and close it
   * when the receiver stops; on failure it stays the caller's.
   */
  rxStart?(
    fd: number,
    buf: Uint8Array,
    slotSize: number,
    meta: Int32Array,
    onBatch: (count: number) => void,
    adopt?: boolean,
  ): object | number;
  rxStop?(handle: object): void;
  rxRef?(handle: object, ref: boolean): void;
  /** Int32 words per datagram in rxStart's `meta` (the layout version). */
  rxMetaStride?: number;
  /**
   * A non-blocking UDP socket bound to ip:port and connected to peerIp:peerPort (none when peerIp is ''), SO_RCVBUF
   * and SO_SNDBUF set to bufBytes when > 0: its fd (out[0] = the local port) or -errno. Older builds lack it.
   */
  udpOpen?(ip: string, port: number, peerIp: string, peerPort: number, bufBytes: number, out: Int32Array): number;
  /** steer.c (older builds lack them): a SO_REUSEPORT socket bound to ip:port, its fd or -errno. */
  reuseportBind?(ip: string, port: number): number;
  /** The REUSEPORT_SOCKARRAY map of `slots` entries: its fd or -errno. */
  steerMap?(slots: number): number;
  /** Attach the steering program to `sockFd`'s group and put it at `index` of the map: 0, -errno or the verifier's log. */
  steerJoin?(sockFd: number, mapFd: number, index: number): number | string;
}

let addon: UdpAddon | null | undefined;
let why: string | null = null;

/** Where the addon is loaded from (ORIGINLINK_UDP_ADDON, else the package's own build). */
export function udpAddonPath(): string {
  return knobs.udpAddon ?? fileURLToPath(new URL('../../native/udp/build/Release/udp.node', import.meta.url));
}

export function udpAddon(): UdpAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (knobs.noNative) why = 'disabled by ORIGINLINK_NO_NATIVE=1';
  else if (process.platform !== 'linux') why = `not supported on ${process.platform}`;
  else {
    const path = udpAddonPath();
    try {
      addon = loadAddon<UdpAddon>(path);
    } catch (err) {
      addon = null;
      why =
        (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
          ? `addon not built (${path}; run node scripts/build-native.mjs)`
          : `addon failed to load (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
    }
  }
  return addon;
}

/** Int32 words per datagram in rxStart's metadata (must match META_STRIDE in udp.c). */
export const RX_META_STRIDE = 8;

/**
 * The addon when batched receive can be used: its receive functions present with our metadata layout (a stale build's
 * differs), and ORIGINLINK_NO_RECVMMSG unset. Null otherwise: dgram's events deliver.
 */
export function rxAddon(): UdpAddon | null {
  if (knobs.noRecvmmsg) return null;
  const a = udpAddon();
  return a?.rxStart && a.rxStop && a.rxRef && a.rxMetaStride === RX_META_STRIDE ? a : null;
}

/** Why the addon is not loaded (null when it is). */
export function udpAddonReason(): string | null {
  udpAddon();
  return why;
}

/** Node's UDP handle (udp_wrap's UDPWrap), as much of it as this file uses. */
interface UdpHandle {
  fd?: number;
  recvStop?: () => number;
  bind(ip: string, port: number, flags: number): number;
  bind6(ip: string, port: number, flags: number): number;
  connect: unknown;
  connect6: unknown;
  recvStart(): number;
  close(): void;
}

/** The dgram socket's libuv handle wrapper (UDPWrap), kept in its internal state (a symbol-keyed object), or null. */
function stateHandle(socket: Socket): UdpHandle | null {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const h = (socket as unknown as Record<symbol, { handle?: UdpHandle } | undefined>)[sym]?.handle;
    if (h && typeof h.recvStart === 'function') return h;
  }
  return null;
}

/** The bound dgram socket's handle, or null when Node hides it. */
export function socketHandle(socket: Socket): { fd?: number; recvStop?: () => number } | null {
  const h = stateHandle(socket);
  return h && typeof h.fd === 'number' && h.fd >= 0 ? h : null;
}

/** The socket's file descriptor, or null. */
export function socketFd(socket: Socket): number | null {
  return socketHandle(socket)?.fd ?? null;
}

/**
 * Bind an unbound dgram socket to `host:port` without dgram's own bind, or return false (nothing done) where Node's
 * internals are not as expected or `host` is not an IP address; the caller then calls socket.bind.
 *
 * Why: dgram's bind loads `node:cluster` (and with it `child_process`) on every path through it, to ask whether
 * this is a cluster worker: eight built-in modules a fresh process would load for its first QUIC socket. Its
 * one other path takes a UDP handle already bound — the one a cluster primary sends its workers: a new handle of
 * the socket's own class, bound here (exclusively, as the caller's `exclusive: true` asks), is handed to it.
 * dgram copies only bind, send and lookup onto a replacement handle, so an IPv6 one gets its connect here.
 * Throws an errno error (code, syscall) when the bind itself fails.
 */
export function bindDirect(socket: Socket, host: string, port: number, ipv6: boolean): boolean {
  const family = ipFamily(host);
  if (family === 0 || (family === 6) !== ipv6) return false;
  const current = stateHandle(socket);
  if (current === null || typeof current.bind6 !== 'function') return false;
  const Handle = current.constructor as new () => UdpHandle;
  const h = new Handle();
  if (ipv6) h.connect = h.connect6;
  const err = ipv6 ? h.bind6(host, port, 0) : h.bind(host, port, 0);
  if (err < 0) {
    const name = getSystemErrorName(err);
    h.close();
    throw Object.assign(new Error(`bind ${name} ${host}:${port}`), { code: name, errno: err, syscall: 'bind' });
  }
  socket.bind(h as unknown as number);
  return true;
}
