/** What `Agent.request()` resolves with: the response head, a streaming body, and the facts behind it. */
import type { Readable } from 'node:stream';
import type { ConnectionFacts, HeaderList, Protocol } from './types.js';

export interface ResponseTimings {
  /** Time waiting for a connection slot (includes dialing), ms. */
  queueMs: number;
  /** From `request()` to the response head, ms, across all attempts. */
  ttfbMs: number;
}

export class OriginResponse {
  readonly status: number;
  readonly headers: HeaderList;
  readonly body: Readable;
  readonly trailers: Promise<HeaderList>;
  readonly protocol: Protocol;
  /** The connection had served earlier requests. */
  readonly reused: boolean;
  /** How many times the request was sent (1 = no retry). */
  readonly attempts: number;
  /** Carried as 0-RTT early data. */
  readonly earlyData: boolean;
  readonly connectionId: number;
  readonly connection: Readonly<ConnectionFacts>;
  readonly timings: ResponseTimings;

  constructor(init: {
    status: number; headers: HeaderList; body: Readable; trailers: Promise<HeaderList>; protocol: Protocol;
    reused: boolean; attempts: number; earlyData: boolean; connectionId: number; connection: ConnectionFacts; timings: ResponseTimings;
  }) {
    this.status = init.status;
    this.headers = init.headers;
    this.body = init.body;
    this.trailers = init.trailers;
    this.protocol = init.protocol;
    this.reused = init.reused;
    this.attempts = init.attempts;
    this.earlyData = init.earlyData;
    this.connectionId = init.connectionId;
    this.connection = init.connection;
    this.timings = init.timings;
  }

  /** First value of a header (names are case-insensitive). */
  header(name: string): string | undefined {
    const n = name.toLowerCase();
    for (const [k, v] of this.headers) if (k === n) return v;
    return undefined;
  }

  async bytes(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of this.body) parts.push(c as Buffer);
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  /** Read and discard the body (frees the connection for reuse). */
  async dump(): Promise<number> {
    let n = 0;
    for await (const c of this.body) n += (c as Buffer).length;
    return n;
  }
}
