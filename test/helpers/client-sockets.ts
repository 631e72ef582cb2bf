/**
 * The TCP sockets this process dials (Node's `net.client.socket` diagnostics channel), so a test can reach a
 * pool's socket to an origin it runs itself. `process._getActiveHandles()` cannot: a pooled socket is unref'd
 * (pool.ts keeps the process alive with one handle of its own), and that list holds ref'd handles only.
 * Sockets made from a file descriptor (TCP Fast Open, net/tfo.ts) are not published there: dial with `tfo: false`.
 */
import dc from 'node:diagnostics_channel';
import type net from 'node:net';

const dialled = new Set<net.Socket>();
const onSocket = (m: unknown): void => {
  const s = (m as { socket: net.Socket }).socket;
  dialled.add(s);
  s.once('close', () => dialled.delete(s));
};
dc.subscribe('net.client.socket', onSocket);

/** Our end of a connection whose other end (`peerSide`, accepted in this process) is given; null if none. */
export function ourEnd(peerSide: net.Socket): net.Socket | null {
  for (const s of dialled) {
    if (s !== peerSide && s.localPort === peerSide.remotePort && s.remotePort === peerSide.localPort) return s;
  }
  return null;
}

/** The sockets dialled and still open, oldest first. */
export function dialledSockets(): net.Socket[] {
  return [...dialled];
}
