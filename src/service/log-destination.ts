/**
 * Where the service's pino logs go: a file descriptor (standard output),
 * written synchronously when it is a regular file or a character device
 * other than a terminal (/dev/null), as nginx writes its logs and as Node
 * writes process.stdout to files; asynchronously, through libuv's thread
 * pool, when it is a pipe, a socket (a log collector) or a terminal, so a
 * reader that stalls never stalls the event loop.
 *
 * Measured on the proxy rig (2-core VM, lines of the request log in batches
 * of 256, ~85 KB a write): an asynchronous write cost 200–500 ns of CPU per
 * line, a synchronous one 25–30 (a thread-pool round trip and a copy of the
 * string per write); in the proxy bench the asynchronous writes were ~3 % of
 * the connector's CPU with the request log on.
 */
import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import { pino, type DestinationStream } from 'pino';

/**
 * True when writes to `fd` should be made synchronously (a regular file, or a character device that is no terminal).
 */
export function writesSynchronously(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFile() || (st.isCharacterDevice() && !isatty(fd));
  } catch {
    return false;
  }
}

/** pino's destination (SonicBoom) for `fd`, synchronous or not as above. */
export function logDestination(fd = 1): DestinationStream {
  return pino.destination({ dest: fd, sync: writesSynchronously(fd) });
}
