/**
 * An in-test UDP relay on 127.0.0.1 between one client and a server port:
 * one-way delay, seeded loss (xorshift, the same sequence every run) and an
 * optional bottleneck (serialised per direction). The queue is unbounded
 * unless `maxQueueMs` is given: then a datagram that would wait longer than
 * that at the bottleneck is dropped (drop-tail), which keeps the senders'
 * congestion windows near the path's capacity.
 */
import dgram from 'node:dgram';

export interface RelayOptions {
  /** One-way delay, ms. */
  delayMs: number;
  /** Fraction of datagrams dropped, each direction (0 … 1). */
  loss: number;
  /** Bottleneck, bytes per ms (0: none). */
  rate?: number;
  maxQueueMs?: number;
  seed?: number;
  /** Each datagram's wait at the bottleneck, ms (what a queue in the path costs), per direction. */
  onQueue?: (dir: 'up' | 'down', ms: number) => void;
}

export async function startUdpRelay(serverPort: number, o: RelayOptions): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  let seed = o.seed ?? 0x2545f491;
  const rand = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const rate = o.rate ?? 0;
  const maxQueueMs = o.maxQueueMs ?? Infinity;
  let client: { port: number; address: string } | null = null;
  const free = { up: 0, down: 0 };
  s.on('message', (msg, from) => {
    const toServer = !(from.port === serverPort && from.address === '127.0.0.1');
    if (toServer) client = { port: from.port, address: from.address };
    if (rand() < o.loss) return;
    const dest = toServer ? { port: serverPort, address: '127.0.0.1' } : client;
    if (!dest) return;
    let wait = o.delayMs;
    if (rate > 0) {
      const now = performance.now();
      const dir = toServer ? 'up' : 'down';
      if (free[dir] - now > maxQueueMs) return;
      free[dir] = Math.max(now, free[dir]) + msg.length / rate;
      wait += free[dir] - now;
      o.onQueue?.(dir, free[dir] - now - msg.length / rate);
    }
    setTimeout(() => {
      try {
        s.send(msg, dest.port, dest.address);
      } catch {
        // relay closed
      }
    }, wait);
  });
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  return s;
}
