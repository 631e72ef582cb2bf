/** Body helpers shared by every transport. */
import type { Readable } from 'node:stream';
import type { RequestBody } from '../pool/types.js';

/** A body that can be sent again on a retry. */
export function isReplayable(body: RequestBody | undefined): boolean {
  return body == null || typeof body === 'string' || body instanceof Uint8Array;
}

/** Known length in bytes, or null for streamed bodies. */
export function knownLength(body: RequestBody | undefined): number | null {
  if (body == null) return 0;
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof Uint8Array) return body.byteLength;
  return null;
}

/** Bytes of a replayable body (empty for null). */
export function bodyBytes(body: string | Uint8Array | null | undefined): Buffer {
  if (body == null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body);
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** Iterate any body as Buffers. */
export async function* bodyChunks(body: RequestBody | undefined): AsyncGenerator<Buffer> {
  if (body == null) return;
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const b = bodyBytes(body);
    if (b.length > 0) yield b;
    return;
  }
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : bodyBytes(chunk);
    if (b.length > 0) yield b;
  }
}

/** Methods that are idempotent by definition (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Methods that are safe (RFC 9110 §9.2.1): the only ones sent as 0-RTT by default. */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

export function isIdempotent(method: string, headers: ReadonlyArray<readonly [string, string]>): boolean {
  if (IDEMPOTENT.has(method)) return true;
  return headers.some(([n]) => n === 'idempotency-key');
}

/** Wait until a writable drains, closes or errors — removing every listener it added. */
export function waitDrain(w: NodeJS.EventEmitter): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      w.off('drain', done);
      w.off('close', done);
      w.off('error', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
    w.on('error', done);
  });
}

/**
 * End a response or request body whose stream or connection failed (or
 * whose request was aborted). The error reaches the listeners present when
 * it is emitted (on the next tick) and stays readable as `body.errored`, so
 * a later reader fails with it; a consumer that stopped listening in
 * between (a proxy that finished with the body on the same tick) must not
 * turn it into an unhandled 'error' that kills the process.
 */
export function abortBody(body: Readable, err?: Error): void {
  if (body.readableEnded || body.destroyed) return;
  if (err) body.once('error', ignoreError);
  body.destroy(err);
}

function ignoreError(): void {}
