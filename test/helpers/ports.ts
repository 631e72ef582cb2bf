/** Loopback ports for tests: free ones (freePort, the benches' own), a closed one, one free for TCP and UDP. */
import net from 'node:net';
import dgram from 'node:dgram';
import { freePort as freeLoopbackPort } from '../../bench/lib/host.mjs';

/** A free loopback port, never one this process handed out before (bench/lib/host.mjs). */
export const freePort = (host = '127.0.0.1'): Promise<number> => freeLoopbackPort(host) as Promise<number>;

/**
 * A loopback port nothing listens on, for tests that need a connection refused: 1 (tcpmux, privileged, below
 * the ephemeral range). A port from freePort() is free only for a moment: a server another test file starts
 * in parallel may be given it, and then the "dead" origin answers (seen: a refused-connection test got
 * "connection closed in the middle of the response" from such a neighbour).
 */
export const CLOSED_PORT = 1;

/** A port free for both TCP and UDP (HTTP/3 peers listen on both). */
export async function freeTcpUdpPort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort(host);
    const ok = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, host, () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free TCP+UDP port');
}

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect({ port, host });
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${host}:${port} did not open within ${timeoutMs} ms`);
}
