/**
 * Caddy (quic-go) as an independent origin on h1, h2 and h3 behind the
 * connector; curl as the client. The chosen upstream protocol shows in the
 * request log and in the metrics.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/service/config.js';
import { Service } from '../../src/service/service.js';
import { makeCerts } from '../helpers/certs.js';
import { startCaddy, type Peer } from '../helpers/h3-peers.js';
import { freeTcpUdpPort } from '../helpers/ports.js';

const run = promisify(execFile);
const certs = makeCerts();

describe('Caddy behind the connector over h1, h2 and h3', () => {
  let caddy: Peer;
  let svc: Service;
  let root: string;
  const logs: Array<Record<string, unknown>> = [];
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const bigSha = createHash('sha256').update(big).digest('hex');

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ol-svc-caddy-'));
    writeFileSync(join(root, 'hello.txt'), 'hello from caddy\n');
    writeFileSync(join(root, 'big.bin'), big);
    caddy = await startCaddy({ port: await freeTcpUdpPort(), certFile: certs.certPath, keyFile: certs.keyPath, root });
    const yaml = `
listeners:
  - { name: plain, kind: http, host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
origins:
${['h1', 'h2', 'h3'].map((p) => `  caddy-${p}: { url: "https://127.0.0.1:${caddy.port}", protocol: ${p}, tls: { ca: ${certs.caPath}, servername: localhost } }`).join('\n')}
routes:
${['h1', 'h2', 'h3'].map((p) => `  - { path: /${p}, origin: caddy-${p}, stripPrefix: true }`).join('\n')}
`;
    svc = await Service.start(parseConfig(yaml, 'caddy.yaml', certs.dir), {
      logDestination: {
        write: (s: string) => {
          logs.push(JSON.parse(s) as Record<string, unknown>);
        },
      },
    });
  }, 60_000);
  afterAll(async () => {
    await svc?.shutdown(500);
    await caddy?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('small and 3 MiB files arrive intact through each upstream protocol, over one warm connection each', async () => {
    const port = svc.addresses()['plain'] as number;
    for (const p of ['h1', 'h2', 'h3']) {
      for (let i = 0; i < 5; i++) {
        const r = await run('curl', ['-sS', '-m', '20', `http://127.0.0.1:${port}/${p}/hello.txt`]);
        expect(r.stdout, p).toBe('hello from caddy\n');
      }
      const b = await run('curl', ['-sS', '-m', '30', `http://127.0.0.1:${port}/${p}/big.bin`], {
        encoding: 'buffer',
        maxBuffer: 16 << 20,
      });
      expect(createHash('sha256').update(b.stdout).digest('hex'), p).toBe(bigSha);
    }
    for (const p of ['h1', 'h2', 'h3']) {
      const mine = logs.filter((l) => l['msg'] === 'request' && l['origin'] === `caddy-${p}`);
      expect(mine.length).toBe(6);
      expect(new Set(mine.map((l) => l['protocol']))).toEqual(new Set([p]));
      expect(
        mine.map((l) => [l['status'], l['error'] ?? null, l['reason'] ?? null]),
        p,
      ).toEqual(Array.from({ length: 6 }, () => [200, null, null]));
    }
    const text = await (await fetch(`http://127.0.0.1:${svc.adminPort}/metrics`)).text();
    expect(text).toMatch(
      /originlink_upstream_handshakes_total\{origin="caddy-h3",upstream="https:\/\/127\.0\.0\.1:\d+",protocol="h3",resumed="false",early_data="false",tfo="false"\} 1/,
    );
    expect(text).toMatch(/originlink_upstream_protocol\{origin="caddy-h2",upstream="[^"]+",protocol="h2"\} 1/);
    expect(text).toMatch(/originlink_upstream_connections_opened_total\{origin="caddy-h3",upstream="[^"]+"\} 1/);
  });
});
