/**
 * Optional UDP GSO sender (native/udp, Linux): one sendmsg() with
 * UDP_SEGMENT carries a run of equal-size packets to one destination, so a
 * bulk flight costs one syscall per ~48 packets instead of one each.
 *
 * Falls back silently to dgram.send when the addon is missing
 * (ORIGINLINK_NO_NATIVE=1, ORIGINLINK_NO_GSO=1, not built, not Linux), when
 * the kernel lacks UDP_SEGMENT, or per call when sendmsg fails (EAGAIN,
 * EIO from a device without checksum offload...): the caller then sends the
 * same bytes packet by packet. See native-notes/udp.md.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:dgram';

interface Addon {
  sendSegments(fd: number, buf: Uint8Array, offset: number, length: number, segSize: number, ip: string, port: number): number;
  gsoSupported(fd: number): boolean;
}

/** Linux UDP_MAX_SEGMENTS is 64 (128 since 5.x); stay under both and under 64 KiB per call. */
export const GSO_MAX_SEGMENTS = 64;
export const GSO_MAX_BYTES = 65000;

let addon: Addon | null | undefined;

function load(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env['ORIGINLINK_NO_NATIVE'] === '1' || process.env['ORIGINLINK_NO_GSO'] === '1' || process.platform !== 'linux') return null;
  const path = process.env['ORIGINLINK_UDP_ADDON'] ?? fileURLToPath(new URL('../../native/udp/build/Release/udp.node', import.meta.url));
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch {
    addon = null;
  }
  return addon;
}

/** The socket's file descriptor (libuv handle), or null when Node hides it. */
function socketFd(socket: Socket): number | null {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const st = (socket as unknown as Record<symbol, { handle?: { fd?: number } } | undefined>)[sym];
    const fd = st?.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  return null;
}

export interface GsoSender {
  /** Bytes sent, or a negative errno (nothing was sent: fall back). */
  send(buf: Uint8Array, offset: number, length: number, segSize: number, host: string, port: number): number;
}

/** A GSO sender bound to a bound socket, or null when GSO is unavailable. */
export function gsoSender(socket: Socket): GsoSender | null {
  const a = load();
  if (!a) return null;
  const fd = socketFd(socket);
  if (fd === null) return null;
  try {
    if (!a.gsoSupported(fd)) return null;
  } catch {
    return null;
  }
  return { send: (buf, off, len, seg, host, port) => a.sendSegments(fd, buf, off, len, seg, host, port) };
}

export function gsoAvailable(): boolean {
  return load() !== null;
}
