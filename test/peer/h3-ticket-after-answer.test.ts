/**
 * An HTTP/3 connection saves its session ticket after its first answer has been handed over, not while (issue 58):
 * the request settles while its response is being delivered, and the store's work (the ticket's lifetime read, a
 * shared store's write) would delay its reader. The ticket is in the store one turn later, and a second Agent on
 * the same store resumes with it in 0-RTT. Against our h3 server on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, MemorySessionStore } from '../../src/index.js';
import type { H3Server } from '../../src/server/h3.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

/** A memory store that counts its puts. */
class CountingStore extends MemorySessionStore {
  puts = 0;
  override put(key: string, value: Uint8Array): void {
    this.puts++;
    super.put(key, value);
  }
}

let h3: H3Server;
beforeAll(async () => {
  h3 = await startTestH3Server({ handler: (() => ({ status: 200, headers: [], body: 'answer' })) as never });
});
afterAll(() => h3?.close(0));

describe('h3 session ticket saved after the first answer', () => {
  it('no put before the reader has the answer; one a turn later; the next Agent resumes in 0-RTT', async () => {
    const store = new CountingStore();
    const url = `https://127.0.0.1:${h3.address.port}/`;
    const ca = makeCerts().ca;
    const a = new Agent({ protocol: 'h3', tls: { ca }, sessionStore: store });
    try {
      const res = await a.request({ url });
      // The answer (small, whole in its first packets) has settled the request by now: its ticket is not saved yet.
      expect(store.puts).toBe(0);
      expect(await res.text()).toBe('answer');
      // The ticket comes with the server's first flight; bounded wait for the turn that saves it.
      for (let i = 0; i < 100 && store.puts === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(store.puts).toBe(1);
    } finally {
      await a.close();
    }
    const b = new Agent({ protocol: 'h3', tls: { ca }, sessionStore: store });
    try {
      const res = await b.request({ url });
      expect(await res.text()).toBe('answer');
      expect([res.connection.resumed, res.earlyData]).toEqual([true, true]);
    } finally {
      await b.close();
    }
  });
});
