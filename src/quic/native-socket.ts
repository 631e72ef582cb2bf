/**
 * A client's QUIC socket made by the native/udp addon (`udpOpen`: socket, bind and connect(2) in one synchronous
 * call) rather than by node:dgram, and the type the endpoint, its packet sink and its connections use for either.
 *
 * Why: a client endpoint has one peer and reads and writes its socket through the addon already (recvmmsg batches,
 * udp-rx.ts; sendmsg, udp-gso.ts). node:dgram was left doing only the socket's birth, and that birth was the largest
 * built-in cost of a fresh process's first HTTP/3 request: the module and its dependencies loaded and evaluated, a
 * socket object, an asynchronous connect through a lookup and an event (bench/RESULTS.md `startup`). A server
 * endpoint, a steered socket, a build without the addon's receive functions, ORIGINLINK_NO_RECVMMSG=1 and
 * EndpointOptions.batchReceive false keep dgram. See native-notes/udp.md.
 */
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import type { Socket } from 'node:dgram';
import { getSystemErrorName } from 'node:util';
import { rxAddon, socketFd, udpAddon } from './udp-native.js';
import type { HostPort } from './quiche.js';

type SendCallback = (error: Error | null) => void;

/** What a QUIC endpoint, its sink and its connections use of a UDP socket: node:dgram's, or a NativeUdpSocket. */
export interface UdpSocket {
  send(msg: Uint8Array, offset: number, length: number, callback: SendCallback): void;
  send(msg: Uint8Array, offset: number, length: number, port: number, address: string, callback: SendCallback): void;
  send(msg: Uint8Array, port: number, address: string): void;
  close(callback?: () => void): void;
  unref(): unknown;
}

/** The socket's file descriptor, or null (a dgram socket whose handle Node hides). */
export function fdOf(socket: UdpSocket): number | null {
  return socket instanceof NativeUdpSocket ? socket.fd : socketFd(socket as Socket);
}

const portOut = new Int32Array(1);

/**
 * A UDP socket of our own, bound to `host:port` and connected to `peer`, or null where the addon cannot make or read
 * one (then the caller uses dgram). Throws an errno error (code, syscall 'bind') when the kernel refuses the socket.
 */
export function openNativeSocket(
  host: string,
  port: number,
  peer: HostPort,
  bufferBytes: number,
): NativeUdpSocket | null {
  const a = rxAddon();
  if (!a?.udpOpen) return null;
  const fd = a.udpOpen(host, port, peer.host, peer.port, bufferBytes, portOut);
  if (fd < 0) {
    const code = getSystemErrorName(fd);
    throw Object.assign(new Error(`${code} ${host}:${port} → ${peer.host}:${peer.port}`), {
      code,
      errno: fd,
      syscall: 'bind',
    });
  }
  return new NativeUdpSocket(fd, { host, port: portOut[0]! });
}

/**
 * Connected to its one peer: what it sends goes there (a send naming an address throws, as dgram's does on a connected
 * socket). It has no reader of its own: the endpoint reads it with a batch receiver (udp-rx.ts), which also reports
 * its ICMP errors. `send` is the packet sink's fallback (a failed GSO run, ORIGINLINK_NO_GSO=1): one sendmsg a packet,
 * never queued — a packet the kernel has no room for is lost, and QUIC's loss recovery sends its frames again.
 */
export class NativeUdpSocket implements UdpSocket {
  readonly fd: number;
  readonly local: HostPort;
  #closed = false;
  /** Its batch receiver owns the fd (udp-rx.ts): it closes it when stopped. */
  #handedOver = false;

  constructor(fd: number, local: HostPort) {
    this.fd = fd;
    this.local = local;
  }

  send(msg: Uint8Array, offset: number, length: number, callback: SendCallback): void;
  send(msg: Uint8Array, offset: number, length: number, port: number, address: string, callback: SendCallback): void;
  send(msg: Uint8Array, port: number, address: string): void;
  send(msg: Uint8Array, a: number, b: number | string, c?: number | SendCallback, _d?: string, e?: SendCallback): void {
    if (typeof b === 'string' || typeof c === 'number') throw new Error('the socket is connected: no address is given');
    const cb = typeof c === 'function' ? c : e;
    const r = this.#closed ? -constants.errno.EBADF : udpAddon()!.sendSegments(this.fd, msg, a, b, b, '', 0);
    if (!cb) return;
    // UDP sends a datagram whole or not at all: a count is the datagram's length, anything else an errno.
    const code = r < 0 ? getSystemErrorName(r) : null;
    cb(code === null ? null : Object.assign(new Error(`send ${code}`), { code }));
  }

  /** The batch receiver reads the fd now, and closes it when it stops (rxStart's `adopt`). */
  handOver(): void {
    this.#handedOver = true;
  }

  /**
   * No more sends. The fd is closed here only when no receiver took it; the endpoint stops its receiver first, which
   * closes it.
   */
  close(callback?: () => void): void {
    if (!this.#closed) {
      this.#closed = true;
      if (!this.#handedOver) closeSync(this.fd);
    }
    if (callback) queueMicrotask(callback);
  }

  /** Nothing to unref: the receiver's poll handle is what holds the loop (BatchReceiver.unref). */
  unref(): void {}
}
