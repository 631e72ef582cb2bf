/**
 * Issue 45, "serve --check passes what serve then dies on": a `tls.key` that is a certificate, a key that does not
 * go with its certificate, listeners on 0.0.0.0:P and 127.0.0.1:P. On the start commit `--check` said "ok" (exit
 * 0) to all three and `serve` exited 1 with OpenSSL's text and a stack. Now `--check`, `serve` and a SIGHUP reload
 * refuse each with one line `file:line: field: reason` (exit 78 for the first two; a reload keeps the running
 * config). Runs the built CLI (`node dist/cli/main.js`) as a child, as a user would.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { parseConfig } from '../../src/service/config.js';
import { reloadFromFile } from '../../src/service/reload.js';
import { Service } from '../../src/service/service.js';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';
import { makeCerts } from '../helpers/certs.js';
import { freePort } from '../helpers/ports.js';

const certs = makeCerts();
const other = makeCerts({ fresh: true });
let dir: string;

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [CLI, ...args], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A config with `listeners` (YAML lines, each a flow mapping) and one origin nobody will reach. */
const config = (listeners: string[]): string => `listeners:
${listeners.map((l) => `  - ${l}`).join('\n')}
admin: false
origins:
  app: { url: "http://127.0.0.1:1" }
routes:
  - { path: /, origin: app }
`;

beforeAll(() => {
  buildIfStale();
  dir = mkdtempSync(join(tmpdir(), 'ol-check-'));
}, 180_000);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('serve --check builds what serve builds', () => {
  it('a tls.key that is a certificate, a key of another certificate, 0.0.0.0:P beside 127.0.0.1:P: --check and serve both refuse, one line, exit 78', async () => {
    const port = await freePort();
    const cases: Array<[string, string, RegExp]> = [
      [
        'key-is-cert',
        config([
          `{ name: front, kind: https, host: 127.0.0.1, port: ${port}, tls: { cert: ${certs.certPath}, key: ${certs.certPath} } }`,
        ]),
        /^originlink: config error: .*key-is-cert\.yaml:2: listeners\[0\]\.tls\.key: .*leaf\.pem holds no private key \(PEM found: CERTIFICATE\)$/,
      ],
      [
        'key-mismatch',
        config([
          `{ name: front, kind: https, host: 127.0.0.1, port: ${port}, tls: { cert: ${certs.certPath}, key: ${other.keyPath} } }`,
        ]),
        /^originlink: config error: .*key-mismatch\.yaml:2: listeners\[0\]\.tls\.key: .*leaf\.key is not the key of .*leaf\.pem \(their public keys differ\)$/,
      ],
      [
        'overlap',
        config([
          `{ name: any, kind: http, host: 0.0.0.0, port: ${port} }`,
          `{ name: local, kind: http, host: 127.0.0.1, port: ${port} }`,
        ]),
        new RegExp(
          `^originlink: config error: .*overlap\\.yaml:3: listeners\\[1\\]\\.port: 127\\.0\\.0\\.1:${port} is already taken by listener "any" \\(0\\.0\\.0\\.0:${port}: 0\\.0\\.0\\.0 takes the port on every IPv4 address\\)$`,
        ),
      ],
    ];
    for (const [name, text, want] of cases) {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(file, text);
      for (const args of [
        ['serve', '--check', '--config', file],
        ['serve', '--config', file],
      ]) {
        const r = await runCli(args);
        expect([r.code, r.stdout], `${args.join(' ')}: ${r.stderr}`).toEqual([78, '']);
        expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
        expect(r.stderr.trimEnd()).toMatch(want);
      }
    }
  });

  it('a stores URL whose keyFile is missing or short: --check and serve refuse it naming the field (check said ok, serve then failed late)', async () => {
    const short = join(dir, 'short.key');
    writeFileSync(short, 'abcd\n');
    for (const keyFile of [join(dir, 'nope.key'), short]) {
      const file = join(dir, 'keyfile.yaml');
      writeFileSync(
        file,
        `${config(['{ name: a, kind: http, host: 127.0.0.1, port: 0 }'])}stores:\n  sessions: "redis://127.0.0.1:1/0?keyFile=${keyFile}"\n`,
      );
      for (const args of [
        ['serve', '--config', file, '--check'],
        ['serve', '--config', file],
      ]) {
        const r = await runCli(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(78);
        expect(r.stderr).toMatch(/^originlink: config error: .*keyfile\.yaml:\d+: stores\.sessions: .*key/);
      }
    }
  });

  it('a port another process holds: serve says which listener, on its line, exit 78 (was: exit 1); its log says why', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const file = join(dir, 'busy.yaml');
      writeFileSync(
        file,
        config([
          `{ name: free, kind: http, host: 127.0.0.1, port: 0 }`,
          `{ name: busy, kind: http, host: 127.0.0.1, port: ${port} }`,
        ]),
      );
      const r = await runCli(['serve', '--config', file]);
      expect(r.code, r.stderr).toBe(78);
      expect(r.stderr.trimEnd()).toMatch(
        new RegExp(
          `^originlink: config error: .*busy\\.yaml:3: listeners\\[1\\]\\.port: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\(another socket holds the port\\)$`,
        ),
      );
      // The log says why the start failed, not that a service stopped (it never served).
      const log = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; err?: string });
      expect(log.map((l) => l.msg)).toEqual(['originlink could not start']);
      expect(log[0]?.err).toMatch(/listener busy: cannot listen on .*EADDRINUSE/);
    } finally {
      holder.close();
    }
  });

  it('a reload to a key of another certificate is refused with file, line and field; the running config stays', async () => {
    const file = join(dir, 'reload.yaml');
    const good = config([
      `{ name: front, kind: https, host: 127.0.0.1, port: 0, tls: { cert: ${certs.certPath}, key: ${certs.keyPath} } }`,
    ]);
    writeFileSync(file, good);
    const lines: Array<Record<string, unknown>> = [];
    const svc = await Service.start(parseConfig(good, file, dir), {
      logger: pino(
        { level: 'error' },
        {
          write: (s: string) => {
            lines.push(JSON.parse(s) as Record<string, unknown>);
          },
        },
      ),
    });
    try {
      writeFileSync(file, good.replace(certs.keyPath, other.keyPath));
      expect(await reloadFromFile(svc, file)).toBe(false);
      expect(lines.at(-1)).toMatchObject({ field: 'listeners[0].tls.key', line: 2 });
      expect(String(lines.at(-1)?.['msg'])).toMatch(/is not the key of/);
      expect(svc.config.listeners[0]?.tls?.key.equals(certs.key)).toBe(true);
    } finally {
      await svc.shutdown(0);
    }
  });
});
