/**
 * QLOGDIR (our quiche 0.30 engine): every connection made or accepted while it is set writes its qlog,
 * `<QLOGDIR>/<client|server>-<scid hex>.sqlog`, JSON-SEQ as quiche writes it (RFC 7464 records), with the
 * packets sent and the recovery metrics that told us what limited a lossy bulk download (native-notes/quic-addon.md).
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectH3 } from '../../src/connect/h3.js';
import { quicEngine } from '../../src/quic/quiche.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestH3Server } from '../helpers/h3-server.js';

const certs = makeCerts();

describe('qlog', () => {
  it('QLOGDIR: one qlog per connection, client and server, with packets and recovery metrics; none without it', async () => {
    // This file runs in the default project only, on our engine (the fallback has no qlog): a fallback here is a failure, not a skip.
    expect(quicEngine().binding).toBe('originlink-quic');
    const dir = mkdtempSync(join(tmpdir(), 'ol-qlog-'));
    const server = await startTestH3Server({ port: 0, handler: () => ({ status: 200, body: 'x'.repeat(100_000) }) });
    const get = async (): Promise<void> => {
      const c = await connectH3({
        host: '127.0.0.1',
        port: server.address.port,
        servername: 'localhost',
        ca: certs.caPath,
      });
      try {
        const r = await c.request({
          method: 'GET',
          path: '/',
          authority: 'localhost',
          scheme: 'https',
          headers: [],
          body: null,
        });
        for await (const _ of r.body) void _;
      } finally {
        c.destroy();
      }
    };
    try {
      process.env['QLOGDIR'] = dir;
      await get();
      delete process.env['QLOGDIR'];
      await get();
      // Written a record at a time: both files are whole once the exchange is over.
      const files = readdirSync(dir);
      expect(files.map((f) => f.replace(/-[0-9a-f]+\.sqlog$/, '')).sort()).toEqual(['client', 'server']);
      for (const f of files) {
        const records = readFileSync(join(dir, f), 'utf8')
          .split('\x1e')
          .filter((r) => r.endsWith('\n'))
          .map((r) => JSON.parse(r) as { name?: string });
        const names = new Set(records.map((r) => r.name));
        expect(names.has('quic:packet_sent')).toBe(true);
        expect(names.has('quic:recovery_metrics_updated')).toBe(true);
      }
    } finally {
      delete process.env['QLOGDIR'];
      await server.close(100);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
