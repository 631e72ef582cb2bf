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

export interface UdpAddon {
  sendSegments(fd: number, buf: Uint8Array, offset: number, length: number, segSize: number, ip: string, port: number): number;
  gsoSupported(fd: number): boolean;
  /** Older builds lack the receive functions. */
  rxStart?(fd: number, buf: Uint8Array, slotSize: number, meta: Int32Array, onBatch: (count: number) => void): object | number;
  rxStop?(handle: object): void;
  rxRef?(handle: object, ref: boolean): void;
  /** Int32 words per datagram in rxStart's `meta` (the layout version). */
  rxMetaStride?: number;
}

let addon: UdpAddon | null | undefined;

export function udpAddon(): UdpAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env['ORIGINLINK_NO_NATIVE'] === '1' || process.platform !== 'linux') return null;
  const path = process.env['ORIGINLINK_UDP_ADDON'] ?? fileURLToPath(new URL('../../native/udp/build/Release/udp.node', import.meta.url));
  try {
    addon = createRequire(import.meta.url)(path) as UdpAddon;
  } catch {
    addon = null;
  }
  return addon;
}

/** The dgram socket's libuv handle wrapper (UDPWrap), or null when Node hides it. */
export function socketHandle(socket: Socket): { fd?: number; recvStop?: () => number } | null {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const st = (socket as unknown as Record<symbol, { handle?: { fd?: number; recvStop?: () => number } } | undefined>)[sym];
    const h = st?.handle;
    if (h && typeof h.fd === 'number' && h.fd >= 0) return h;
  }
  return null;
}

/** The socket's file descriptor, or null. */
export function socketFd(socket: Socket): number | null {
  return socketHandle(socket)?.fd ?? null;
}
