/**
 * A socket's reads handed to one callback, without Node's stream machinery per read.
 *
 * A `'data'` listener costs, per read: a new ArrayBuffer for the bytes (swept by the next scavenge),
 * `Readable.push` → `addChunk` → `emit`, and a `process.nextTick` (`maybeReadMore`). Node has a way
 * around it: a socket made with `onread: { buffer, callback }` has every read copied by libuv into one
 * buffer and the callback called straight from the handle's read (`net.Socket` and `tls.connect`
 * without `socket:` take the option). The sockets we read are made elsewhere — accepted by a server
 * (no such option), or TLS over a socket we dialled (the option is dropped then) — so `readChunks`
 * sets the same two slots a constructed one would have
 * (Node 20's `kBuffer`/`kBufferCb` own symbols) and points the handle at the buffer
 * (`handle.useUserBuffer`, what the constructor calls). When either is missing (another Node), it
 * falls back to a `'data'` listener: same behaviour, the old cost. `SocketReads.fast` says which one a
 * socket got (tests check the fast one is in use on the Node we ship for).
 *
 * Each read is copied out of the shared buffer into its own Buffer before the callback (from Node's
 * pool for reads under 4 KiB: no ArrayBuffer per read), so the callback may keep it, as with 'data'.
 * `pause()`/`resume()` keep working (net.Socket stops and starts the handle's reads itself in this
 * mode), with one difference: over TLS, the records already decrypted from one TCP read still come to
 * the callback after a `pause()` made during it (with 'data' they waited in the stream's buffer) — so a
 * caller keeps what arrives while it is paused (ours do: the h1 server holds it, a response body buffers
 * it). `'end'`, `'close'` and `'error'` come as before. A small read is a slice of Node's 8 KiB buffer
 * pool: a fragment a parser keeps (a partial head) holds its slab, as Buffer.concat's results did.
 * Measured on the proxy bench's rig: 8 % less CPU per request with an h1 front and h1 origin, 5 % with an
 * h2 origin (bench/RESULTS.md, `proxy`).
 *
 * `release()` gives the socket back to the stream API (a tunnel that pipes it): later reads are pushed
 * into the Readable as Node would have, so `'data'`, `pipe` and `unshift` work from then on. The
 * handle cannot go back to Node's own allocator, so the copy per read stays.
 */
import type net from 'node:net';

export interface SocketReads {
  /** The socket's later reads go to its Readable side ('data', pipe), not to the callback. */
  release(): void;
  /** True when reads bypass the stream (false: the 'data' fallback). */
  readonly fast: boolean;
}

/** One buffer for every socket's reads: a read is copied out before anything else runs. */
const SHARED = Buffer.allocUnsafe(64 * 1024);

interface Slots {
  buffer: symbol;
  callback: symbol;
}

/** Found on the first socket that has them (a stream that is not a socket — a tunnel's — has none). */
let slots: Slots | null = null;

/** The socket's onread slots when this Node has them and they are unused. */
function slotsOf(socket: net.Socket): Slots | null {
  if (slots === null) {
    const own = Object.getOwnPropertySymbols(socket);
    const buffer = own.find((s) => s.description === 'kBuffer');
    const callback = own.find((s) => s.description === 'kBufferCb');
    if (!buffer || !callback) return null;
    slots = { buffer, callback };
  }
  const s = socket as unknown as Record<symbol, unknown> & { _handle?: { useUserBuffer?: unknown } | null };
  if (!(slots.buffer in s) || s[slots.buffer] !== null || s[slots.callback] !== null) return null;
  if (typeof s._handle?.useUserBuffer !== 'function') return null;
  return slots;
}

class FastReads implements SocketReads {
  readonly fast = true;
  #onChunk: ((d: Buffer) => void) | null;
  readonly #socket: net.Socket;

  constructor(socket: net.Socket, onChunk: (d: Buffer) => void) {
    this.#socket = socket;
    this.#onChunk = onChunk;
  }

  /** The handle's read callback: `false` stops the handle's reads (the stream's backpressure after release). */
  read = (n: number, buf: Buffer): boolean => {
    const d = Buffer.allocUnsafe(n);
    buf.copy(d, 0, 0, n);
    const fn = this.#onChunk;
    if (fn === null) return this.#socket.push(d);
    fn(d);
    return true;
  };

  release(): void {
    this.#onChunk = null;
  }
}

/**
 * `socket`'s reads go to `onChunk` (each a Buffer it may keep), by the fast path when this Node allows
 * it, else by a 'data' listener. Call before anything else reads the socket. Bytes the stream already
 * holds (read before this call) come first, in a tick (before an 'end' already due).
 */
export function readChunks(socket: net.Socket, onChunk: (d: Buffer) => void): SocketReads {
  const k = slotsOf(socket);
  if (k === null) {
    socket.on('data', onChunk);
    return {
      fast: false,
      release: () => {
        socket.off('data', onChunk);
      },
    };
  }
  const r = new FastReads(socket, onChunk);
  const s = socket as unknown as Record<symbol, unknown> & { _handle: { useUserBuffer(b: Buffer): void } };
  s[k.buffer] = SHARED;
  s[k.callback] = r.read;
  s._handle.useUserBuffer(SHARED);
  // Bytes already in the Readable's buffer — a TLS socket may have decrypted application data with the
  // handshake's end; a tunnel gives back what it read past its reply — are taken out now (a flowing stream
  // would otherwise emit them to no listener) and handed over in a tick: after the caller's setup, before
  // the next read (reads come from the event loop), and before an 'end' the emptying schedules (the tick
  // is queued first).
  if (socket.readableLength > 0) {
    const held: Buffer[] = [];
    process.nextTick(() => {
      for (const d of held) r.read(d.length, d);
    });
    for (let d = socket.read() as Buffer | null; d !== null; d = socket.read() as Buffer | null) held.push(d);
  }
  return r;
}
