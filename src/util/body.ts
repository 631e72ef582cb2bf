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
