/**
 * One JSON-ish file a store rewrites as its content changes (the session store, the origin cache):
 *
 * - atomically: a temp file beside it, written, fsynced and renamed over it, so a reader never sees half of one;
 *   the temp name is random and created exclusively (O_EXCL: a symlink or file planted at a guessable name made
 *   us truncate and write its target), with the mode given (0600 for resumption secrets);
 * - at most every `delayMs` (the changes in between make one write): rewriting the whole file on every change
 *   blocked the event loop 6 ms per ticket with 1,024 entries;
 * - and at the latest when the process exits (a CLI run that stores its ticket then ends still leaves it).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Write `body` to `path` atomically (see above). Throws what the file system says. */
export function writeFileAtomic(path: string, body: string, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx', mode);
    writeSync(fd, body);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // Never created, or already renamed.
    }
    throw e;
  }
}

/** Writers with a change not yet written: flushed when the process exits. */
const pending = new Set<DeferredFileWriter>();
let exitHooked = false;

export class DeferredFileWriter {
  readonly path: string;
  #render: () => string;
  #mode: number;
  #delayMs: number;
  #onError: (e: Error) => void;
  #timer: NodeJS.Timeout | null = null;

  /** `render`: the file's content now; `onError`: a failed write (the store keeps working in memory). */
  constructor(path: string, render: () => string, o: { mode: number; delayMs?: number; onError: (e: Error) => void }) {
    this.path = path;
    this.#render = render;
    this.#mode = o.mode;
    this.#delayMs = o.delayMs ?? 100;
    this.#onError = o.onError;
  }

  /** The content changed: written within `delayMs`. */
  changed(): void {
    if (this.#timer !== null) return;
    pending.add(this);
    if (!exitHooked) {
      exitHooked = true;
      process.once('exit', () => {
        for (const w of [...pending]) w.flush();
      });
    }
    this.#timer = setTimeout(() => this.flush(), this.#delayMs);
    this.#timer.unref();
  }

  /** Write now if a change is waiting. */
  flush(): void {
    if (this.#timer === null) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    pending.delete(this);
    try {
      writeFileAtomic(this.path, this.#render(), this.#mode);
    } catch (e) {
      this.#onError(e as Error);
    }
  }
}
