/**
 * A FIFO of body bytes in memory up to a bound, then in a temporary file: what lets a relay take an origin's
 * response as fast as the origin sends it while its client reads slowly (nginx's proxy_buffering with
 * proxy_max_temp_file_size), and a request body be read whole before an origin is asked (proxy_request_buffering).
 *
 * Invariants:
 * - Bytes leave in the order they came: the memory before the file, the file, the memory after it (`tail`:
 *   what came while the file could take nothing more). New bytes go to memory only while the file and the tail
 *   are empty.
 * - The file has no name: opened with O_TMPFILE (Linux), else created and unlinked before the first byte is
 *   written — nothing is left in the directory after a crash, however the process ends.
 * - The file is bounded per spool (`fileBytes`) and all spools together (`TempFileBudget`); past either, or
 *   after a disk error, bytes stay in memory (`tail`) and `put` says full: the caller paces its source, as
 *   without a file.
 * - One write and one read at a time: a read never passes the bytes whose write is done; the descriptor is
 *   closed only when neither is in flight (a number reused while a thread-pool write waits would write into
 *   another file).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/** Linux open(2) O_TMPFILE (__O_TMPFILE | O_DIRECTORY on x86-64 and arm64); Node does not name it. */
const O_TMPFILE = 0o20200000;
/** What a file read takes at once. */
const READ_CHUNK = 64 * 1024;

/** Bytes on disk for every spool of a process (`proxy.tempFileTotalBytes`), and what happened to them. */
export class TempFileBudget {
  limit: number;
  /** Bytes held by open spools' files now. */
  used = 0;
  /** Temporary files opened. */
  files = 0;
  /** Times a spool could put nothing more in its file: its own bound, the budget, or a disk error. */
  readonly fallbacks = { limit: 0, budget: 0, error: 0 };
  /** Told of every open or write error (the service logs and counts them; EMFILE goes to its descriptor guard). */
  onError: ((err: NodeJS.ErrnoException) => void) | null = null;

  constructor(limit: number) {
    this.limit = limit;
  }

  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }
}

export interface SpoolOptions {
  /** Bytes kept in memory before the file is used. */
  memoryBytes: number;
  /** Most bytes this spool's file may hold (0: no file). */
  fileBytes: number;
  budget: TempFileBudget;
  /** Directory of the temporary file. */
  dir: string;
}

let serial = 0;

export class Spool {
  readonly #o: SpoolOptions;
  #head: Buffer[] = [];
  #headBytes = 0;
  #tail: Buffer[] = [];
  #fd = -1;
  #opening = false;
  #failed = false;
  /** Bytes the file will hold when its writes are done; of them `#written` are, and `#readAt` were read back. */
  #end = 0;
  #written = 0;
  #readAt = 0;
  /** Bytes taken from the budget (released at close). */
  #held = 0;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #inflight: Buffer[] | null = null;
  #inflightBytes = 0;
  /** File operations in flight (a write, a read, an open). */
  #busy = 0;
  /** A take() waiting for a write to finish. */
  #awaitWrite: (() => void) | null = null;
  #closed = false;
  /** The caller paused its source because `put` said full. */
  #full = false;
  /** Called once the spool can take more after `put` said full. */
  onSpace: (() => void) | null = null;
  /** Called at close: whether every byte put was taken (a relay that reached its end). */
  onClose: ((delivered: boolean) => void) | null = null;
  /** Bytes put, and bytes taken (handed on by take()). */
  #putBytes = 0;
  #takenBytes = 0;

  /** Bytes put and not (yet) taken: what a relay that stops now leaves undelivered. */
  get untaken(): number {
    return this.#putBytes - this.#takenBytes;
  }

  constructor(o: SpoolOptions) {
    this.#o = o;
  }

  /** No byte held. */
  get empty(): boolean {
    return this.#headBytes === 0 && this.#readAt === this.#end && this.#tail.length === 0;
  }

  /** The file failed (open or write): what comes now stays in memory. */
  get fileFailed(): boolean {
    return this.#failed;
  }

  /**
   * Take up to `n` bytes of the budget now for this spool's file (a request body of a known length). False, and
   * nothing taken, when the budget cannot.
   */
  reserve(n: number): boolean {
    if (!this.#o.budget.take(n)) return false;
    this.#held += n;
    return true;
  }

  /** Keep `c` after what is held. False: full (the caller pauses its source until `onSpace`). */
  put(c: Buffer): boolean {
    if (this.#closed) return true;
    const n = c.length;
    this.#putBytes += n;
    if (this.#readAt === this.#end && this.#tail.length === 0 && this.#headBytes < this.#o.memoryBytes) {
      this.#head.push(c);
      this.#headBytes += n;
      return true;
    }
    if (this.#tail.length === 0 && this.#fileTakes(n)) {
      this.#pending.push(c);
      this.#pendingBytes += n;
      this.#end += n;
      this.#flush();
      // The disk is behind by more than the memory bound: wait for it.
      if (this.#pendingBytes + this.#inflightBytes < this.#o.memoryBytes) return true;
      this.#full = true;
      return false;
    }
    this.#tail.push(c);
    this.#full = true;
    return false;
  }

  /** The next bytes in order: a Buffer, null when nothing is held, or a promise of one (read from the file). */
  take(): Buffer | null | Promise<Buffer | null> {
    const h = this.#head.shift();
    if (h !== undefined) {
      this.#headBytes -= h.length;
      this.#takenBytes += h.length;
      return h;
    }
    if (this.#readAt < this.#end) {
      if (this.#readAt < this.#written) return this.#read();
      return new Promise<Buffer | null>((resolve, reject) => {
        this.#awaitWrite = () => {
          try {
            resolve(this.take());
          } catch (e) {
            reject(e as Error);
          }
        };
      });
    }
    const t = this.#tail.shift();
    if (t === undefined) return null;
    if (this.#tail.length === 0) this.#space();
    this.#takenBytes += t.length;
    return t;
  }

  /** Let go of every byte and the file; the budget gets its share back. `delivered`: every byte was taken. */
  close(delivered = false): void {
    if (this.#closed) return;
    this.#closed = true;
    const told = this.onClose;
    this.onClose = null;
    told?.(delivered);
    this.#head = [];
    this.#tail = [];
    this.#pending = [];
    this.#o.budget.give(this.#held);
    this.#held = 0;
    this.#awaitWrite = null;
    this.onSpace = null;
    this.#closeFd();
  }

  /** Whether the file takes `n` more bytes; opens it at its first use. */
  #fileTakes(n: number): boolean {
    const o = this.#o;
    if (this.#failed || o.fileBytes === 0) return false;
    if (this.#end + n > o.fileBytes) {
      o.budget.fallbacks.limit++;
      return false;
    }
    const more = this.#end + n - this.#held;
    if (more > 0) {
      if (!o.budget.take(more)) {
        o.budget.fallbacks.budget++;
        return false;
      }
      this.#held += more;
    }
    if (this.#fd < 0 && !this.#opening) this.#open();
    return true;
  }

  #open(): void {
    this.#opening = true;
    this.#busy++;
    const dir = this.#o.dir;
    fs.open(dir, O_TMPFILE | fs.constants.O_RDWR, 0o600, (err, fd) => {
      if (!err) return this.#opened(fd);
      // A file system without O_TMPFILE: a name of our own, unlinked before any byte is written.
      const name = join(dir, `.originlink-spool-${process.pid}-${++serial}`);
      fs.open(name, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600, (err2, fd2) => {
        if (err2) return this.#opened(-1, err2);
        fs.unlink(name, (err3) => {
          if (!err3) return this.#opened(fd2);
          fs.close(fd2, () => {});
          this.#opened(-1, err3);
        });
      });
    });
  }

  #opened(fd: number, err: NodeJS.ErrnoException | null = null): void {
    this.#busy--;
    this.#opening = false;
    this.#fd = fd;
    if (fd >= 0) this.#o.budget.files++;
    if (err) return this.#fail(err);
    if (this.#closed) return this.#closeFd();
    this.#flush();
  }

  /** Write what waits, one write at a time. */
  #flush(): void {
    if (this.#fd < 0 || this.#inflight !== null || this.#pending.length === 0 || this.#closed) return;
    const bufs = (this.#inflight = this.#pending);
    const bytes = (this.#inflightBytes = this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#busy++;
    fs.writev(this.#fd, bufs, this.#written, (err, n) => {
      this.#busy--;
      if (this.#closed) return this.#closeFd();
      if (!err && n !== bytes)
        err = Object.assign(new Error(`short write to a temporary file (${n} of ${bytes} bytes)`), { code: 'EIO' });
      if (err) {
        // What did not reach the disk is still here: it goes first of the memory after the file.
        this.#pending = [...bufs, ...this.#pending];
        this.#pendingBytes += bytes;
        this.#inflight = null;
        this.#inflightBytes = 0;
        return this.#fail(err);
      }
      this.#written += bytes;
      this.#inflight = null;
      this.#inflightBytes = 0;
      const w = this.#awaitWrite;
      this.#awaitWrite = null;
      w?.();
      this.#flush();
      if (this.#tail.length === 0 && this.#pendingBytes + this.#inflightBytes < this.#o.memoryBytes) this.#space();
    });
  }

  #read(): Promise<Buffer | null> {
    const n = Math.min(READ_CHUNK, this.#written - this.#readAt);
    const at = this.#readAt;
    this.#readAt += n;
    const buf = Buffer.allocUnsafe(n);
    this.#busy++;
    return new Promise<Buffer | null>((resolve, reject) => {
      fs.read(this.#fd, buf, 0, n, at, (err, got) => {
        this.#busy--;
        if (this.#closed) {
          this.#closeFd();
          return resolve(null);
        }
        if (err) return reject(err);
        if (got !== n)
          return reject(
            Object.assign(new Error(`short read from a temporary file (${got} of ${n} bytes)`), { code: 'EIO' }),
          );
        this.#takenBytes += n;
        resolve(buf);
      });
    });
  }

  /** The file takes no more: what waited for it (and what comes from now on) stays in memory. */
  #fail(err: NodeJS.ErrnoException): void {
    this.#failed = true;
    this.#o.budget.fallbacks.error++;
    this.#o.budget.onError?.(err);
    if (this.#closed) return;
    // Bytes never written leave the file's share: they are the first of the tail.
    this.#end = this.#written;
    this.#tail = [...this.#pending, ...this.#tail];
    this.#pending = [];
    this.#pendingBytes = 0;
    const w = this.#awaitWrite;
    this.#awaitWrite = null;
    w?.();
    this.#space();
  }

  #space(): void {
    if (!this.#full) return;
    this.#full = false;
    this.onSpace?.();
  }

  #closeFd(): void {
    if (this.#busy > 0 || this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    fs.close(fd, () => {});
  }
}

/** What a spool holds whole (a request body read to its end), as a stream; the spool is closed with it. */
export function spoolReadable(spool: Spool): Readable {
  return new Readable({
    read() {
      const c = spool.take();
      if (c instanceof Promise)
        c.then(
          (b) => this.push(b),
          (e: Error) => this.destroy(e),
        );
      else this.push(c);
    },
    destroy(err, cb) {
      spool.close();
      cb(err);
    },
  });
}
