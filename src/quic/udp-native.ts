/**
 * Loads the optional native/udp addon (Linux) once and finds the libuv
 * handle behind a Node dgram socket. Used by udp-gso.ts (batched sends) and
 * udp-rx.ts (batched receive); see native-notes/udp.md.
 *
 * ORIGINLINK_NO_NATIVE=1 disables every native piece; ORIGINLINK_UDP_ADDON
 * names another build of the addon.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:dgram';
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
  /** Older builds lack the receive functions. */
  rxStart?(
    fd: number,
    buf: Uint8Array,
    slotSize: number,
    meta: Int32Array,
    onBatch: (count: number) => void,
  ): object | number;
  rxStop?(handle: object): void;
  rxRef?(handle: object, ref: boolean): void;
  /** Int32 words per datagram in rxStart's `meta` (the layout version). */
  rxMetaStride?: number;
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
      addon = createRequire(import.meta.url)(path) as UdpAddon;
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

/** Why the addon is not loaded (null when it is). */
export function udpAddonReason(): string | null {
  udpAddon();
  return why;
}

/** The dgram socket's libuv handle wrapper (UDPWrap), or null when Node hides it. */
export function socketHandle(socket: Socket): { fd?: number; recvStop?: () => number } | null {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const st = (socket as unknown as Record<symbol, { handle?: { fd?: number; recvStop?: () => number } } | undefined>)[
      sym
    ];
    const h = st?.handle;
    if (h && typeof h.fd === 'number' && h.fd >= 0) return h;
  }
  return null;
}

/** The socket's file descriptor, or null. */
export function socketFd(socket: Socket): number | null {
  return socketHandle(socket)?.fd ?? null;
}
