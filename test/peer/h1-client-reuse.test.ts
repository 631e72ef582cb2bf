/**
 * Regression: our HTTP/1.1 client paused its socket when a response body's
 * reader fell behind; when that happened on the body's last bytes, the
 * ended body never asked to resume, and the next response on the reused
 * connection was never read (found when the service's fronts started
 * relaying origin bodies with backpressure). Origin: our HTTP/1.1 server.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { startH1Server, type H1Server } from '../../src/transport/h1-server.js';

let server: H1Server;
const big = Buffer.alloc(1024 * 1024, 0x61);

beforeAll(async () => {
  server = await startH1Server({ handler: () => ({ status: 200, headers: [['content-type', 'application/octet-stream']], body: big }) });
});
afterAll(async () => { await server?.close(100); });

it('a body read slowly to its end leaves the connection readable for the next response', async () => {
  const agent = new Agent({ protocol: 'h1', pool: { maxConnections: 1 } });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await agent.request({ origin: `http://127.0.0.1:${server.address.port}`, path: `/${i}` });
      let n = 0;
      // A slow reader: one chunk per 5 ms via read(), so the body's buffer fills and the socket pauses.
      await new Promise<void>((resolve, reject) => {
        const pull = (): void => {
          let c: Buffer | null;
          while ((c = r.body.read() as Buffer | null) !== null) n += c.length;
          if (r.body.readableEnded) return resolve();
          setTimeout(pull, 5);
        };
        r.body.once('end', () => resolve());
        r.body.once('error', reject);
        setTimeout(pull, 20);
      });
      expect(n).toBe(big.length);
    }
    const s = agent.stats()[0]!;
    expect([s.requests, s.connectionsOpened]).toEqual([3, 1]);
  } finally {
    await agent.close();
  }
}, 30_000);
