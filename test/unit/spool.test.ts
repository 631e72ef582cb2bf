/**
 * util/spool.ts and relayBody through it: bytes leave in order from memory, the temporary file and the memory
 * after it; the file has no name in its directory; past its own bound or the process budget, or when the file
 * cannot be made, bytes stay in memory and `put` says full until the reader has taken them; a relayed body ends
 * (its source is done) while a slow sink still has most of it to take.
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { relayBody, withSpool, type BodySink } from '../../src/util/body.js';
import { Spool, spoolReadable, TempFileBudget } from '../../src/util/spool.js';
import { until } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ol-spool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const chunk = (i: number, n = 1000): Buffer => Buffer.alloc(n, i % 251);

async function drainAll(s: Spool): Promise<Buffer> {
  const out: Buffer[] = [];
  for (;;) {
    const c = await s.take();
    if (c === null) return Buffer.concat(out);
    out.push(c);
  }
}

/** This process's descriptors open on a file of the test's directory (an unlinked or O_TMPFILE temporary file). */
function tempFdPaths(): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => `/proc/self/fd/${fd}`)
    .filter((p) => {
      try {
        return readlinkSync(p).startsWith(dir);
      } catch {
        return false;
      }
    });
}

/** What those descriptors point at (a deleted file's path ends in " (deleted)"). */
function tempFds(): string[] {
  return tempFdPaths().map((p) => {
    try {
      return readlinkSync(p);
    } catch {
      return '';
    }
  });
}

/** Bytes in the one temporary file open (-1: none, or more than one). */
function tempSize(): number {
  const fds = tempFdPaths();
  try {
    return fds.length === 1 ? statSync(fds[0] as string).size : -1;
  } catch {
    return -1;
  }
}

describe('Spool', () => {
  it('keeps the order through memory, file and memory again; the file has no name in its directory; close frees the budget', async () => {
    const budget = new TempFileBudget(1 << 20);
    const s = new Spool({ memoryBytes: 4000, fileBytes: 1 << 20, budget, dir });
    const want: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const c = chunk(i);
      want.push(c);
      s.put(c);
    }
    // The file's open and writes go through libuv's threads and land in later turns: wait for them (bounded).
    await until(() => budget.files === 1 && tempSize() === 46_000, 5000, 5);
    expect(readdirSync(dir)).toEqual([]);
    expect(tempFds().length).toBe(1);
    expect(tempFds()[0]).toMatch(/\(deleted\)$/);
    expect(budget.used).toBe(46_000);
    expect(budget.files).toBe(1);
    // Some out (memory, then a first read from the file), then more in (behind the file), then all out.
    const first: Buffer[] = [];
    for (let i = 0; i < 5; i++) first.push((await s.take()) as Buffer);
    expect(first.map((b) => b.length)).toEqual([1000, 1000, 1000, 1000, 46_000]);
    for (let i = 50; i < 60; i++) {
      const c = chunk(i);
      want.push(c);
      s.put(c);
    }
    const rest = await drainAll(s);
    expect(Buffer.concat([...first, rest]).equals(Buffer.concat(want))).toBe(true);
    expect(s.empty).toBe(true);
    // Emptied, it takes memory first again.
    s.put(chunk(99));
    expect(((await s.take()) as Buffer).equals(chunk(99))).toBe(true);
    s.close();
    expect(budget.used).toBe(0);
    await until(() => tempFdPaths().length === 0, 5000, 5);
    expect(tempFds()).toEqual([]);
  });

  it('past its own bound and past the budget: full, the rest in memory, in order; onSpace once the reader took it', async () => {
    for (const [fileBytes, limit, reason] of [
      [10_000, 1 << 20, 'limit'],
      [1 << 20, 5000, 'budget'],
    ] as const) {
      const budget = new TempFileBudget(limit);
      const s = new Spool({ memoryBytes: 2000, fileBytes, budget, dir });
      let space = 0;
      s.onSpace = () => {
        space++;
      };
      const want: Buffer[] = [];
      let refused = -1;
      for (let i = 0; i < 20; i++) {
        const c = chunk(i);
        want.push(c);
        if (!s.put(c) && refused < 0) refused = i;
      }
      expect(refused, reason).toBeGreaterThan(2);
      expect(budget.fallbacks[reason]).toBeGreaterThan(0);
      expect(space).toBe(0);
      expect((await drainAll(s)).equals(Buffer.concat(want))).toBe(true);
      expect(space).toBe(1);
      s.close();
      expect(budget.used).toBe(0);
    }
  });

  it('a directory it cannot use: the file fails once, every byte stays in memory, in order, and the error is told', async () => {
    const budget = new TempFileBudget(1 << 20);
    const errors: string[] = [];
    budget.onError = (e) => errors.push(String(e.code));
    const s = new Spool({ memoryBytes: 1000, fileBytes: 1 << 20, budget, dir: join(dir, 'missing') });
    const want: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      const c = chunk(i);
      want.push(c);
      s.put(c);
    }
    expect((await drainAll(s)).equals(Buffer.concat(want))).toBe(true);
    expect(s.fileFailed).toBe(true);
    expect(errors).toEqual(['ENOENT']);
    expect(budget.fallbacks.error).toBe(1);
    s.close();
    expect(budget.used).toBe(0);
  });

  it('spoolReadable: a body held whole, read back as a stream; the spool closes with it', async () => {
    const budget = new TempFileBudget(1 << 20);
    const s = new Spool({ memoryBytes: 1000, fileBytes: 1 << 20, budget, dir });
    const want = Buffer.concat(Array.from({ length: 30 }, (_, i) => chunk(i, 4096)));
    for (let i = 0; i < want.length; i += 4096) s.put(want.subarray(i, i + 4096));
    const parts: Buffer[] = [];
    for await (const c of spoolReadable(s)) parts.push(c as Buffer);
    expect(Buffer.concat(parts).equals(want)).toBe(true);
    expect(budget.used).toBe(0);
  });
});

describe('relayBody with a spool', () => {
  it('the body ends while a slow sink still has most of it to take; the sink gets every byte in order', async () => {
    const budget = new TempFileBudget(1 << 24);
    const want = Buffer.concat(Array.from({ length: 256 }, (_, i) => chunk(i, 16_384))); // 4 MiB
    const body = new Readable({ read() {} });
    let endedAt = 0;
    body.on('end', () => {
      endedAt = performance.now();
    });
    withSpool(body, () => new Spool({ memoryBytes: 65_536, fileBytes: 1 << 24, budget, dir }));
    const got: Buffer[] = [];
    let queued = 0;
    const sink: BodySink = {
      write: (c) => {
        got.push(c);
        queued += c.length;
        return queued < 65_536;
      },
      // A reader of 64 KiB every 5 ms: ~13 MB/s, slower than the source below.
      room: () =>
        new Promise((r) =>
          setTimeout(() => {
            queued = 0;
            r(true);
          }, 5),
        ),
    };
    const relay = relayBody(body, sink, () => false);
    for (let i = 0; i < want.length; i += 16_384) body.push(want.subarray(i, i + 16_384));
    body.push(null);
    const how = await relay;
    const doneAt = performance.now();
    expect(how).toBe('end');
    expect(Buffer.concat(got).equals(want)).toBe(true);
    expect(endedAt).toBeGreaterThan(0);
    expect(doneAt - endedAt).toBeGreaterThan(100); // the source was done long before the reader
    expect(budget.used).toBe(0);
    expect(budget.files).toBe(1);
  });

  it('without a spool the body is paused with the sink (as before): it ends only when the reader has taken it', async () => {
    const body = new Readable({ read() {}, highWaterMark: 16_384 });
    let n = 0;
    const sink: BodySink = { write: () => ++n % 4 !== 0, room: () => new Promise((r) => setTimeout(() => r(true), 2)) };
    for (let i = 0; i < 64; i++) body.push(chunk(i, 16_384));
    body.push(null);
    expect(await relayBody(body, sink, () => false)).toBe('end');
    expect(n).toBe(64);
  });
});
