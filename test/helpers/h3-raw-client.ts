/**
 * A raw QUIC client with ALPN h3 for abuse tests: it sends whatever bytes a test gives it on the streams
 * it opens, after a control stream with an empty SETTINGS frame (RFC 9114 §6.2.1), and records what the
 * server does to its streams.
 */
import { QuicEndpoint } from '../../src/quic/endpoint.js';
import { buildConfig } from '../../src/quic/config.js';
import type { QuicConnection } from '../../src/quic/connection.js';

/** Stream type control, then SETTINGS with no parameters (RFC 9114 §7.2.4). */
export const CONTROL_WITH_SETTINGS = Uint8Array.from([0x00, 0x04, 0x00]);

export interface RawH3Client {
  conn: QuicConnection;
  ep: QuicEndpoint;
  /** The connection's end: its error (null for a clean close). */
  closed: Promise<Error | null>;
  /** Streams the server reset, with its code. */
  resets: Map<number, number>;
  /** Streams the server sent STOP_SENDING on, with its code. */
  stops: Map<number, number>;
  /** Bytes the server sent per stream. */
  received: Map<number, number>;
}

/** `control`: the control stream's bytes (stream type and SETTINGS); default CONTROL_WITH_SETTINGS. */
export async function rawH3Client(
  port: number,
  caPath: string,
  control: Uint8Array = CONTROL_WITH_SETTINGS,
  quic: { maxStreamData?: number } = {},
  bindHost = '127.0.0.1',
): Promise<RawH3Client> {
  const ep = await QuicEndpoint.bind({ host: bindHost });
  const conn = ep.connect({
    config: buildConfig('client', { alpn: ['h3'], caFile: caPath, ...quic }),
    host: '127.0.0.1',
    port,
    serverName: 'localhost',
  });
  let ready!: () => void;
  let closed!: (e: Error | null) => void;
  const resets = new Map<number, number>();
  const stops = new Map<number, number>();
  const received = new Map<number, number>();
  const r: RawH3Client = {
    conn,
    ep,
    resets,
    stops,
    received,
    closed: new Promise<Error | null>((res) => (closed = res)),
  };
  const isReady = new Promise<void>((res) => (ready = res));
  conn.setHandler({
    onConnected: (early) => !early && ready(),
    onStreamData(id, d) {
      received.set(id, (received.get(id) ?? 0) + d.length);
    },
    onStreamReset(id, code) {
      resets.set(id, code);
    },
    onStopSending(id, code) {
      stops.set(id, code);
    },
    onStreamsAvailable() {},
    onClosed: (e) => {
      closed(e);
      void ep.close();
    },
  });
  conn.process();
  await isReady;
  const ctl = conn.openUni()!;
  conn.send(ctl, control, false);
  return r;
}
