/**
 * Services in one test run never collide on a port: two started at once, each with its admin listener on port 0,
 * both serve; and one that would take the default admin port (9464: no `admin:` section) fails at once with
 * EADDRINUSE, because the run holds that port (test/setup/hold-default-ports.ts) — so a test file that forgets
 * `admin: false` fails on every run, not only when another file holds the port at the same moment.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { startH1Server, type H1Server } from '../../src/server/h1.js';
import holdDefaultPorts from '../setup/hold-default-ports.js';

let origin: H1Server;
beforeAll(async () => {
  origin = await startH1Server({ handler: (req) => ({ status: 200, body: `hello ${req.path}\n` }) });
});
afterAll(async () => {
  await origin?.close(0);
});

const config = (admin: string): string => `
listeners: [{ name: plain, kind: http, host: 127.0.0.1, port: 0 }]
${admin}
logging: { requests: false }
origins: { o: { url: "http://127.0.0.1:${origin.address.port}", protocol: h1 } }
routes: [{ path: /, origin: o }]
`;

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      })
      .on('error', reject);
  });
}

describe('two services in one vitest run', () => {
  it('start side by side (admin on port 0): both serve their fronts and their admin listeners', async () => {
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        Service.start(parseConfig(config('admin: { host: 127.0.0.1, port: 0 }'), 'side.yaml', '/'), {
          logDestination: { write: () => {} },
        }),
      ),
    );
    try {
      expect(a!.adminPort).not.toBe(b!.adminPort);
      for (const s of [a!, b!]) {
        expect(await get(s.addresses()['plain'] as number, '/x')).toBe('200 hello /x\n');
        expect(await get(s.adminPort as number, '/healthz')).toBe('200 ok\n');
      }
    } finally {
      await Promise.all([a?.shutdown(0), b?.shutdown(0)]);
    }
  });

  it('a service left on the default admin port fails at once: the run holds 9464', async () => {
    // The run's setup left 9464 to whoever held it when the run began (a demo, another run); if they have let it go
    // since, the same hold takes it for this test's span — else this service would get it.
    const release = await holdDefaultPorts();
    try {
      await expect(
        Service.start(parseConfig(config(''), 'default-admin.yaml', '/'), { logDestination: { write: () => {} } }),
      ).rejects.toThrow(/admin: cannot listen on 127\.0\.0\.1:9464: EADDRINUSE/);
    } finally {
      await release();
    }
  });
});
