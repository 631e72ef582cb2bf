/** Stream helpers shared by every transport. */
import type { Readable } from 'node:stream';

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

/**
 * Every byte of a body stream when all of them are already buffered (it
 * ended: nothing is left to come), read out now; else null and the stream is
 * untouched. A relayed small response is usually whole by the time the
 * handler returns (its last DATA came in the same read as its head), and then
 * the servers send it without iterating the stream (an async iterator, its
 * end-of-stream listeners and a turn per chunk).
 */
export function bufferedWhole(body: Readable): Buffer | null {
  if (!isBufferedWhole(body)) return null;
  const parts: Buffer[] = [];
  let c: Buffer | string | null;
  while ((c = body.read() as Buffer | string | null) !== null) parts.push(typeof c === 'string' ? Buffer.from(c) : c);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** The body stream ended and is not destroyed: what is left of it is buffered (see `bufferedWhole`). */
export function isBufferedWhole(body: Readable): boolean {
  const st = (body as Readable & { _readableState?: { ended?: boolean } })._readableState;
  return st?.ended === true && !body.destroyed;
}
