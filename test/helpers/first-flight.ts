/**
 * A captured QUIC first flight, as an on-path attacker records it: a relay on 127.0.0.1 passes a client's datagrams
 * to `serverPort` and back, keeping those the client sent before the server's first answer (its Initial and 0-RTT
 * packets); `replay` sends that record again from new ports (RFC 8446 §8, the replay 0-RTT anti-replay is about).
 */
import dgram from 'node:dgram';
import { connectH3, type H3PooledConnection } from '../../src/connect/h3.js';
import type { MemorySessionStore } from '../../src/store/session-store.js';
import { makeCerts } from './certs.js';

export interface FlightRecorder {
  /** The relay's port: dial it instead of the server's. */
  port: number;
  /** The client's datagrams before the server's first answer. */
  flight: Buffer[];
  /** How many client datagrams went through after the server's first answer (its Finished among them). */
  afterAnswer(): number;
  close(): void;
}

export async function recordFirstFlight(serverPort: number): Promise<FlightRecorder> {
  const relay = dgram.createSocket('udp4');
  const flight: Buffer[] = [];
  let answered = false;
  let after = 0;
  let client: dgram.RemoteInfo | null = null;
  relay.on('message', (m, from) => {
    if (from.port === serverPort) {
      answered = true;
      if (client) relay.send(m, client.port, client.address);
      return;
    }
    client = from;
    if (!answered) flight.push(Buffer.from(m));
    else after++;
    relay.send(m, serverPort, '127.0.0.1');
  });
  await new Promise<void>((r) => relay.bind(0, '127.0.0.1', () => r()));
  return { port: relay.address().port, flight, afterAnswer: () => after, close: () => relay.close() };
}

/** `flight` sent to `port` from `times` new sockets, each left `waitMs` for the server's answers before it closes. */
export async function replayFlight(flight: Buffer[], port: number, times: number, waitMs = 300): Promise<void> {
  for (let i = 0; i < times; i++) {
    const s = dgram.createSocket('udp4');
    s.on('message', () => {});
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    for (const m of flight) s.send(m, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, waitMs));
    s.close();
  }
}

/** A connection to `port` on 127.0.0.1 as `localhost` (the test CA), keeping its tickets in `store` under one key. */
export function dialResuming(port: number, store: MemorySessionStore): Promise<H3PooledConnection> {
  return connectH3({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: makeCerts().caPath,
    sessionStore: store,
    sessionKey: 'k',
  });
}

export { getAt, text } from './h3-request.js';
