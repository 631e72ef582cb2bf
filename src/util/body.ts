/** Stream helpers shared by every transport. */
import type { Readable } from 'node:stream';
import { bodyBytes } from '../http/body.js';
import { IdleDeadline } from './coarse-ticker.js';
import type { Spool } from './spool.js';

/**
 * Wait until a writable drains, closes or errors — removing every listener it added. One already destroyed: at once
 * (its 'close' is past).
 */
export function waitDrain(w: NodeJS.EventEmitter & { readonly destroyed?: boolean }): Promise<void> {
  return new Promise<void>((resolve) => {
    if (w.destroyed === true) {
      resolve();
      return;
    }
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

/** `.then(yes)`: a wait for room that always ends with room (BodySink.room). */
export function yes(): true {
  return true;
}

/**
 * A body somebody still reads: a 'data' listener (a relay, a retry buffer), not destroyed, not ended. The servers
 * ask it of a request body answered early: such a body goes on to its reader, else it is dropped.
 */
export function hasReader(body: Readable): boolean {
  return !body.destroyed && !body.readableEnded && body.listenerCount('data') > 0;
}

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
  let c: Uint8Array | string | null;
  // An object-mode stream gives its chunks as they were pushed: a string as UTF-8, a plain Uint8Array as a Buffer
  // over its bytes (callers read a Buffer: its latin1 string, its length).
  while ((c = body.read() as Uint8Array | string | null) !== null) parts.push(bodyBytes(c));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** The body stream ended and is not destroyed: what is left of it is buffered (see `bufferedWhole`). */
export function isBufferedWhole(body: Readable): boolean {
  const st = (body as Readable & { _readableState?: { ended?: boolean } })._readableState;
  return st?.ended === true && !body.destroyed;
}

/**
 * Where a body's chunks go: `relayBody`'s target on every server, and a client connection's request body
 * (Exchange.pump, which also ends it). One shape for both roles.
 */
export interface BodySink {
  /** Take one chunk; false when the sink holds enough and the body should wait for `room`. */
  write(chunk: Buffer): boolean;
  /** Resolves true once there is room again, false when none came in time (the reader stalled). */
  room(): Promise<boolean>;
}

/**
 * Bodies to relay through a spool (util/spool.ts) once their sink is full: the maker runs at the first 'full',
 * so a reader that keeps up costs nothing but this entry. Set by whoever hands the body to a server (the
 * forwarder: `proxy.maxTempFileBytes`); every server's relay finds it here, whatever it knows of spools.
 */
const spoolMakers = new WeakMap<Readable, () => Spool>();

/** `body`, marked to be relayed through the spool `make` returns (see relayBody). */
export function withSpool<B extends Readable>(body: B, make: () => Spool): B {
  spoolMakers.set(body, make);
  return body;
}

/**
 * Relay a body stream into a sink by its 'data' events, paused while the sink is full. Not async
 * iteration: `for await` over a Readable reads everything buffered as one new concatenated Buffer
 * per step (Readable.read) and costs a promise per chunk — on 100 KiB responses through the h2c
 * front that was 14 % of the CPU (bench/RESULTS.md). Resolves 'end' at the body's end, 'gone' when
 * `gone()` turned true (checked at each chunk and after a wait), 'stalled' when `room` said no; the
 * body is destroyed in both. Rejects with the body's error, or when it closed before its end.
 *
 * A body marked `withSpool` is not paused when the sink is full: what comes meanwhile goes to the spool (memory,
 * then its temporary file) and leaves from there, in order, as the sink makes room — so the body's source (an
 * origin connection, a stream's flow-control credit) is done when it is done, not when the reader is. The body
 * is paused only while the spool says full (its file bounds, a disk error); 'end' waits until the spool is
 * empty; an error of the body still ends the relay at once.
 */
export function relayBody(body: Readable, sink: BodySink, gone: () => boolean): Promise<'end' | 'gone' | 'stalled'> {
  const makeSpool = spoolMakers.get(body) ?? null;
  return new Promise((resolve, reject) => {
    let over = false;
    let spool: Spool | null = null;
    /** The sink was full: chunks go through the spool until it is empty again. */
    let spooling = false;
    /** The body ended while the spool still held bytes. */
    let ended = false;
    /** A read from the spool's file is in flight (its bytes are no longer counted in the spool). */
    let reading = false;
    let paused = false;
    const finish = (how: 'end' | 'gone' | 'stalled' | Error): void => {
      if (over) return;
      over = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      spool?.close(how === 'end');
      if (how instanceof Error) return reject(how);
      if (how !== 'end') body.destroy();
      resolve(how);
    };
    const pause = (): void => {
      if (paused) return;
      paused = true;
      body.pause();
    };
    const resume = (): void => {
      if (!paused || over) return;
      paused = false;
      body.resume();
    };
    /** Out of the spool into the sink as it makes room, until the spool is empty (then chunks go straight again). */
    const drain = async (): Promise<void> => {
      const sp = spool as Spool;
      for (;;) {
        const ok = await sink.room();
        if (over) return;
        if (!ok) return finish('stalled');
        if (gone()) return finish('gone');
        let full = false;
        for (;;) {
          let c = sp.take();
          if (c instanceof Promise) {
            reading = true;
            try {
              c = await c;
            } finally {
              reading = false;
            }
            if (over) return;
            if (gone()) return finish('gone');
          }
          if (c === null) break;
          if (!sink.write(c)) {
            full = true;
            break;
          }
        }
        if (full) continue;
        spooling = false;
        if (ended) return finish(gone() ? 'gone' : 'end');
        resume();
        return;
      }
    };
    const onData = (c: Uint8Array | string): void => {
      if (gone()) return finish('gone');
      const b =
        typeof c === 'string'
          ? Buffer.from(c)
          : Buffer.isBuffer(c)
            ? c
            : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      if (spooling) {
        if (!(spool as Spool).put(b)) pause();
        return;
      }
      if (sink.write(b)) return;
      if (makeSpool !== null) {
        if (spool === null) {
          spool = makeSpool();
          spool.onSpace = resume;
        }
        spooling = true;
        drain().catch((e: unknown) => finish(e instanceof Error ? e : new Error(String(e))));
        return;
      }
      body.pause();
      sink.room().then((ok) => {
        if (over) return;
        if (!ok) finish('stalled');
        else if (gone()) finish('gone');
        else body.resume();
      }, finish);
    };
    const onEnd = (): void => {
      // Bytes still in the spool (or on their way out of its file) leave first; an empty spool is the end, as
      // without one (the sink's last bytes are its own to write).
      if (spooling && (reading || !(spool as Spool).empty)) ended = true;
      else finish(gone() ? 'gone' : 'end');
    };
    const onError = (e: Error): void => finish(e);
    const onClose = (): void => {
      if (!body.readableEnded) finish(new Error('body closed before its end'));
    };
    if (body.readableEnded) return finish('end');
    if (body.destroyed) return finish(body.errored ?? new Error('body destroyed'));
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
  });
}

/**
 * Why `readWhole` or `spoolWhole` gave up: the source stalled (`idle`), took longer than its whole deadline
 * (`total`), or failed or was destroyed (`gone`: a client that left).
 */
export class ReadWholeError extends Error {
  constructor(
    readonly why: 'idle' | 'total' | 'gone',
    message: string,
  ) {
    super(message);
  }
}

/** The two deadlines of a body read whole: `idleMs` of silence, `totalMs` in all (each 0: none). */
class WholeDeadlines {
  readonly #idle: IdleDeadline;
  readonly #total: IdleDeadline;

  constructor(idleMs: number, totalMs: number, fail: (e: ReadWholeError) => void) {
    this.#idle = new IdleDeadline(idleMs, () =>
      fail(new ReadWholeError('idle', `the request body sent nothing for ${idleMs} ms`)),
    );
    this.#total = new IdleDeadline(totalMs, () =>
      fail(new ReadWholeError('total', `the request body was not in within ${totalMs} ms`)),
    );
  }

  start(): void {
    this.#idle.start();
    this.#total.start();
  }

  touch(): void {
    this.#idle.touch();
  }

  stop(): void {
    this.#idle.stop();
    this.#total.stop();
  }
}

/** A body that can hand itself over whole without being streamed (wire/body.ts PushBody). */
interface Collectable {
  collect?(onChunk: () => void): Promise<Buffer> | null;
}

/**
 * Every byte of `body` (a request body whose server holds it to its declared length: one that ends
 * short fails its stream), as one Buffer. `idleMs` (0: none) bounds the silence between chunks and
 * `totalMs` (0: none) the whole read — one byte every two seconds is never silent for long, and held a
 * client connection for ever; the deadlines (util/coarse-ticker.ts IdleDeadline: the shared ticker for a
 * second or more, no Timeout) start only for a body not already in by the end of the current turn (a
 * small body often comes in the read that brought its head). A body that is not a PushBody, or was read already, is
 * read by events (not iterated: no promise per chunk). On failure the stream is left as it is —
 * destroyed by its own server when the client left.
 */
export function readWhole(body: Readable, idleMs: number, totalMs = 0): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let over = false;
    let unhook: () => void = noop;
    const idle = new WholeDeadlines(idleMs, totalMs, (e) => {
      finish();
      reject(e);
    });
    const finish = (): void => {
      over = true;
      idle.stop();
      unhook();
    };
    const ok = (b: Buffer): void => {
      if (!over) {
        finish();
        resolve(b);
      }
    };
    const gone = (): void => {
      if (!over) {
        finish();
        reject(new ReadWholeError('gone', 'the request body ended before its length'));
      }
    };
    const taken = (body as Readable & Collectable).collect?.(() => idle.touch()) ?? null;
    if (taken) {
      taken.then(ok, gone);
    } else {
      const parts: Buffer[] = [];
      const onData = (c: Buffer): void => {
        parts.push(c);
        idle.touch();
      };
      const onEnd = (): void => ok(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      body.on('data', onData);
      body.on('end', onEnd);
      body.on('error', gone);
      body.on('close', gone);
      unhook = (): void => {
        body.off('data', onData);
        body.off('end', onEnd);
        body.off('error', gone);
        body.off('close', gone);
      };
    }
    // The deadline starts only for a body not in by the end of this turn (see above).
    queueMicrotask(() => {
      if (!over) idle.start();
    });
  });
}

/**
 * Every byte of `body` (a request body of a declared length) into `spool`, memory then its temporary file, with
 * readWhole's deadlines. The body waits while the disk is behind (`put` says full), not when the file failed:
 * the rest then stays in memory, bounded by the declared length the caller checked.
 */
export function spoolWhole(body: Readable, spool: Spool, idleMs: number, totalMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let over = false;
    const deadlines = new WholeDeadlines(idleMs, totalMs, (e) => {
      finish();
      reject(e);
    });
    const finish = (): void => {
      over = true;
      deadlines.stop();
      spool.onSpace = null;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', gone);
      body.off('close', gone);
    };
    const onData = (c: Buffer): void => {
      deadlines.touch();
      if (!spool.put(c) && !spool.fileFailed) body.pause();
    };
    const onEnd = (): void => {
      if (!over) {
        finish();
        resolve();
      }
    };
    const gone = (): void => {
      if (!over) {
        finish();
        reject(new ReadWholeError('gone', 'the request body ended before its length'));
      }
    };
    // Waiting for the disk is not the client's silence.
    spool.onSpace = () => {
      deadlines.touch();
      body.resume();
    };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', gone);
    body.on('close', gone);
    deadlines.start();
  });
}

function noop(): void {}
