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
import { fdOf, type UdpSocket } from './native-socket.js';
import { udpAddon } from './udp-native.js';
import { knobs } from '../util/knobs.js';

/** Linux UDP_MAX_SEGMENTS is 64 (128 since 5.x); stay under both and under 64 KiB per call. */
export const GSO_MAX_SEGMENTS = 64;
export const GSO_MAX_BYTES = 65000;

function load(): ReturnType<typeof udpAddon> {
  return knobs.noGso ? null : udpAddon();
}

export interface GsoSender {
  /** Bytes sent, or a negative errno (nothing was sent: fall back). */
  send(buf: Uint8Array, offset: number, length: number, segSize: number, host: string, port: number): number;
}

/** A GSO sender bound to a bound socket, or null when GSO is unavailable. */
export function gsoSender(socket: UdpSocket): GsoSender | null {
  const a = load();
  if (!a) return null;
  const fd = fdOf(socket);
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
