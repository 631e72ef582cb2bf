/**
 * Optional batched UDP receive (native/udp, Linux): a dgram socket stops
 * reading (its handle's `recvStop`; a socket of the addon's own,
 * native-socket.ts, has no other reader) and a libuv poll handle on a dup of
 * its fd reads with recvmmsg(), up to SLOTS datagrams per call, into one buffer
 * shared by every receiver of the process. One JS call per batch instead of
 * one 'message' event per datagram (each with its own Buffer and rinfo).
 * The socket also gets UDP_GRO: same-size datagrams of one flow may arrive
 * as one buffer with their segment size, split here.
 *
 * A datagram is handed on as a view of the shared buffer, valid only during
 * the `onDatagram` call (the next batch overwrites it): the QUIC endpoint
 * feeds it to quiche synchronously. Receivers never nest (one thread, and a
 * batch is delivered from a libuv callback), so one buffer serves them all.
 *
 * Falls back to dgram's own reading (returns null) when the addon or its
 * receive functions are missing, ORIGINLINK_NO_RECVMMSG=1, or the handle
 * cannot be reached. See native-notes/udp.md.
 */
import type { Socket } from 'node:dgram';
import { constants } from 'node:os';
import { NativeUdpSocket, type UdpSocket } from './native-socket.js';
import { RX_META_STRIDE, rxAddon, socketHandle } from './udp-native.js';

/** Any UDP payload fits in a slot (IPv4 max 65507). */
const SLOT = 65536;
/** Datagrams per recvmmsg call (the addon caps it at 64). */
const SLOTS = 32;
const STRIDE = RX_META_STRIDE;

let shared: { buf: Buffer; meta: Int32Array; metaBytes: Uint8Array } | null = null;

export interface BatchReceiver {
  stop(): void;
  unref(): void;
  /**
   * recvmmsg batches delivered / datagrams dropped as truncated (larger than a slot) / buffers that held several
   * (UDP_GRO).
   */
  readonly stats: { batches: number; truncated: number; coalesced: number };
}

export function batchReceiver(
  socket: UdpSocket,
  onDatagram: (msg: Buffer, host: string, port: number) => void,
  onBatchEnd?: () => void,
  /** An ICMP report on a connected socket (ECONNREFUSED: port unreachable; EHOSTUNREACH, ENETUNREACH, EHOSTDOWN). */
  onUnreachable?: (code: string) => void,
): BatchReceiver | null {
  const a = rxAddon();
  if (!a?.rxStart || !a.rxStop || !a.rxRef) return null;
  // A socket of our own has no other reader to stop.
  const h =
    socket instanceof NativeUdpSocket
      ? { fd: socket.fd, recvStop: () => 0, recvStart: () => 0 }
      : (socketHandle(socket as Socket) as { fd?: number; recvStop?: () => number; recvStart?: () => number } | null);
  if (!h || typeof h.fd !== 'number' || typeof h.recvStop !== 'function' || typeof h.recvStart !== 'function')
    return null;
  if (!shared) {
    const buf = Buffer.alloc(SLOT * SLOTS);
    const meta = new Int32Array(SLOTS * STRIDE);
    shared = { buf, meta, metaBytes: new Uint8Array(meta.buffer) };
  }
  const { buf, meta, metaBytes } = shared;
  const stats = { batches: 0, truncated: 0, coalesced: 0 };
  const names = new HostCache(meta, metaBytes);
  const onBatch = (n: number): void => {
    if (n < 0) {
      onUnreachable?.(errnoCode(-n));
      return;
    }
    stats.batches++;
    for (let i = 0; i < n; i++) {
      const m = i * STRIDE;
      const len = meta[m]!;
      if (len < 0) {
        stats.truncated++;
        continue;
      }
      const host = names.host(m);
      const port = meta[m + 2]!;
      // UDP_GRO: same-size datagrams back to back, the last one possibly shorter.
      const seg = meta[m + 7]! || len;
      const start = i * SLOT;
      for (let off = 0; off < len; off += seg) {
        try {
          onDatagram(buf.subarray(start + off, start + Math.min(len, off + seg)), host, port);
        } catch {
          // The endpoint never throws; a bug there must not stop the reader.
        }
      }
      if (seg < len) stats.coalesced++;
    }
    // Not caught: a throw here is a bug in the pass, which must surface as it did from setImmediate.
    onBatchEnd?.();
  };
  h.recvStop();
  // A socket of our own is the receiver's from now on: it reads the fd itself and closes it when stopped (also when a
  // worker's environment goes first); a dgram socket's is read through a duplicate.
  const own = socket instanceof NativeUdpSocket;
  let handle: object | number;
  try {
    handle = a.rxStart(h.fd, buf, SLOT, meta, onBatch, own);
  } catch {
    handle = -1;
  }
  if (typeof handle === 'number') {
    h.recvStart();
    return null;
  }
  const rx = handle;
  if (own) socket.handOver();
  let stopped = false;
  return {
    stats,
    stop() {
      if (stopped) return;
      stopped = true;
      a.rxStop!(rx);
    },
    unref() {
      if (!stopped) a.rxRef!(rx, false);
    },
  };
}

/** Source address → string, remembering the last one (a connection's datagrams share a peer). */
class HostCache {
  #meta: Int32Array;
  #bytes: Uint8Array;
  /** family, then the 4 address words, of the cached host; family 0 = none. */
  #key = new Int32Array(5);
  #host = '';
  constructor(meta: Int32Array, metaBytes: Uint8Array) {
    this.#meta = meta;
    this.#bytes = metaBytes;
  }

  host(m: number): string {
    const x = this.#meta;
    const k = this.#key;
    if (k[0] === x[m + 1] && k[1] === x[m + 3] && k[2] === x[m + 4] && k[3] === x[m + 5] && k[4] === x[m + 6])
      return this.#host;
    k[0] = x[m + 1]!;
    for (let i = 0; i < 4; i++) k[i + 1] = x[m + 3 + i]!;
    const b = this.#bytes;
    const at = (m + 3) * 4;
    this.#host = k[0] === 6 ? formatIPv6(b.subarray(at, at + 16)) : `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
    return this.#host;
  }
}

/**
 * RFC 5952 text form (what inet_ntop and dgram's rinfo give): longest zero run as "::", IPv4-mapped as ::ffff:a.b.c.d.
 */
export function formatIPv6(b: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i]! << 8) | b[i + 1]!);
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** errno number → its code ('ECONNREFUSED'), as Node names socket errors. */
function errnoCode(n: number): string {
  for (const [k, v] of Object.entries(constants.errno)) if (v === n) return k;
  return `E${n}`;
}
