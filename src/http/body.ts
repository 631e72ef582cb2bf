/** Request bodies: what can be replayed, what length is known, how to iterate any of them. */
import { Readable } from 'node:stream';
import type { RequestBody } from './types.js';

/** A body that can be sent again on a retry: absent, a string or bytes. */
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

/**
 * Any streamed body as a byte stream, for the one relay that moves bodies by events (util/body.ts
 * relayBody): a Readable as it is, an iterable through Readable.from.
 */
export function bodyStream(body: RequestBody | Readable | undefined): Readable {
  return body instanceof Readable ? body : Readable.from(bodyChunks(body), { objectMode: false });
}

/** Iterate any body as Buffers (empty chunks skipped). */
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
