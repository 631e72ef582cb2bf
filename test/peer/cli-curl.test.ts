/**
 * Issue 45, "the CLI is curl-like until it fails": `originlink fetch` and curl run side by side on the same
 * failure, and exit with the same code — 6 a name that does not resolve, 7 a refused port, 28 a timeout, 35 a TLS
 * handshake that fails, 60 a certificate not trusted or not for the name, 22 an HTTP error only with -f, and the
 * rest of curl's codes we give (3, 1, 2, 47, 52, 77). On the start commit every transport failure exited 1, a 404
 * exited 22 without -f, and -f, -L, -w, -s were refused by Node's parser. `--json` prints an error object.
 * The name that does not resolve is asked inside a network namespace of its own (`unshare --net`, loopback down:
 * no resolver reachable), for both programs; every other peer is on loopback. Runs the built CLI (dist/).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, makeLeaf } from '../helpers/certs.js';
import { CLOSED_PORT } from '../helpers/ports.js';
import { buildIfStale, CLI } from '../helpers/build.js';

/** A body larger than one read of it: several writes to -o's file. */
const BIG = randomBytes(700 * 1024);
const certs = makeCerts();
const stranger = makeCerts({ fresh: true });
const edge = makeLeaf(certs, 'cli-edge', ['edge.test'], 'clientAuth');
let dir: string;
const servers: net.Server[] = [];
const port: Record<string, number> = {};
const seen: Array<{
  method: string | undefined;
  host: string | undefined;
  url: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
}> = [];

type Run = { code: number; stdout: string; stderr: string; ms: number };

function run(argv: string[], timeoutMs = 15_000): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(argv[0] as string, argv.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      resolve({
        code: err ? (typeof err.code === 'number' ? err.code : -1) : 0,
        stdout,
        stderr,
        ms: Math.round(performance.now() - t0),
      });
    });
  });
}
const curl = (args: string[], netns = false): Promise<Run> =>
  run([...(netns ? ['unshare', '--net', '--'] : []), 'curl', '-sS', '-o', '/dev/null', ...args]);
const ours = (args: string[], netns = false): Promise<Run> =>
  run([...(netns ? ['unshare', '--net', '--'] : []), process.execPath, CLI, 'fetch', '-o', '/dev/null', ...args]);

async function listen(name: string, s: net.Server): Promise<void> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  port[name] = (s.address() as net.AddressInfo).port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ol-cli-curl-'));
  buildIfStale();
  await listen(
    'plain',
    http.createServer((req, res) => {
      if (req.url === '/loop') {
        res.writeHead(302, { location: '/loop' });
        res.end();
        return;
      }
      if (req.url === '/moved') {
        res.writeHead(301, { location: '/ok' });
        res.end();
        return;
      }
      if (req.url === '/ok') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok\n');
        return;
      }
      if (req.url === '/big') {
        res.end(BIG);
        return;
      }
      if (req.url === '/never') return; // no answer: --max-time
      res.writeHead(404);
      res.end('not here\n');
    }),
  );
  // Accepts TCP, never says a word: a TLS handshake that never completes (--connect-timeout).
  await listen(
    'silent',
    net.createServer(() => {}),
  );
  // A head, then fewer body bytes than it announced, then the close (Content-Length; chunked without its last chunk).
  await listen(
    'short',
    net.createServer((s) =>
      s.once('data', (d: Buffer) => {
        const chunked = d.toString('latin1').startsWith('GET /chunked ');
        s.end(
          chunked
            ? 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n'
            : 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc',
        );
      }),
    ),
  );
  // Records what each request carried (requests as curl sends them, below); /cross redirects to another origin.
  await listen(
    'recorder',
    http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString('latin1');
      });
      req.on('end', () => {
        seen.push({ method: req.method, host: req.headers.host, url: req.url, headers: req.headers, body });
        if (req.url === '/cross') res.writeHead(302, { location: `http://localhost:${port['recorder']}/ok` });
        res.end('ok\n');
      });
    }),
  );
  // Reads the request and closes: an empty reply.
  await listen(
    'closer',
    net.createServer((s) => s.on('data', () => s.destroy())),
  );
  await listen(
    'untrusted',
    https.createServer({ cert: stranger.cert, key: stranger.key }, (_q, r) => r.end('x')),
  );
  // Mutual TLS (TLS 1.3): a client certificate signed by the test CA, or the alert certificate_required.
  await listen(
    'mtls',
    https.createServer(
      { cert: certs.cert, key: certs.key, ca: certs.ca, requestCert: true, rejectUnauthorized: true },
      (_q, r) => r.end('x'),
    ),
  );
  await listen(
    'wrongname',
    https.createServer({ cert: readFileSync(certs.wrongCertPath), key: readFileSync(certs.wrongKeyPath) }, (_q, r) =>
      r.end('x'),
    ),
  );
}, 180_000);
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('originlink fetch exits as curl does, on the same failure', () => {
  const cases: Array<[string, number, () => string[], boolean?]> = [
    ['a name that does not resolve', 6, () => ['http://nonexistent.invalid/'], true],
    ['a refused port', 7, () => [`http://127.0.0.1:${CLOSED_PORT}/`]],
    [
      'a TLS handshake that never completes (--connect-timeout 1)',
      28,
      () => ['--connect-timeout', '1', `https://127.0.0.1:${port['silent']}/`],
    ],
    ['an answer that never comes (-m 1)', 28, () => ['-m', '1', `http://127.0.0.1:${port['plain']}/never`]],
    ['TLS to a cleartext server', 35, () => [`https://127.0.0.1:${port['plain']}/`]],
    [
      'a certificate from a CA nobody trusts',
      60,
      () => ['--cacert', certs.caPath, `https://localhost:${port['untrusted']}/`],
    ],
    [
      'a trusted certificate for other names',
      60,
      () => ['--cacert', certs.caPath, `https://localhost:${port['wrongname']}/`],
    ],
    ['404 with -f', 22, () => ['-f', `http://127.0.0.1:${port['plain']}/missing`]],
    ['404 without -f', 0, () => [`http://127.0.0.1:${port['plain']}/missing`]],
    ['-L through a 301', 0, () => ['-L', '-f', `http://127.0.0.1:${port['plain']}/moved`]],
    [
      '-L round a redirect loop (--max-redirs 2)',
      47,
      () => ['-L', '--max-redirs', '2', `http://127.0.0.1:${port['plain']}/loop`],
    ],
    ['an empty reply', 52, () => [`http://127.0.0.1:${port['closer']}/`]],
    ['a body short of its Content-Length, then the close', 18, () => [`http://127.0.0.1:${port['short']}/`]],
    ['a chunked body without its last chunk, then the close', 18, () => [`http://127.0.0.1:${port['short']}/chunked`]],
    ['a malformed URL', 3, () => ['http://[::1/']],
    ['a scheme not spoken', 1, () => ['foo://example.test/']],
    [
      'a CA file that is not there',
      77,
      () => ['--cacert', join(dir, 'nope.pem'), `https://localhost:${port['wrongname']}/`],
    ],
    [
      'a client certificate shown to a server that requires one',
      0,
      () => [
        '--cacert',
        certs.caPath,
        '--cert',
        edge.certPath,
        '--key',
        edge.keyPath,
        `https://localhost:${port['mtls']}/`,
      ],
    ],
    [
      'a server that requires a client certificate, none shown (TLS 1.3 certificate_required)',
      56,
      () => ['--cacert', certs.caPath, `https://localhost:${port['mtls']}/`],
    ],
    [
      'a client certificate file that is not there',
      58,
      () => ['--cacert', certs.caPath, '--cert', join(dir, 'nope.pem'), `https://localhost:${port['mtls']}/`],
    ],
    ['an option that does not exist', 2, () => ['--no-such-option', `http://127.0.0.1:${port['plain']}/`]],
  ];
  for (const [name, want, args, netns] of cases) {
    it(`${name}: both exit ${want}`, async () => {
      const [c, o] = await Promise.all([curl(args(), netns), ours(args(), netns)]);
      expect([c.code, o.code], `curl: ${c.stderr.trim()} | originlink: ${o.stderr.trim()}`).toEqual([want, want]);
      if (want !== 0) expect(o.stderr.trimEnd().split('\n'), o.stderr).toHaveLength(1);
      if (want !== 0) expect(o.stderr).toMatch(new RegExp(`^originlink: \\(${want}\\) `));
    });
  }
});

/**
 * What reaches the origin, curl's request and ours for the same command line: the fields named, the body, each hop
 * of -L. Found by a comparison with curl 7.88 (2026-11-29): -u and -H credentials went on to another origin, a
 * second -d replaced the first, -d @FILE kept its line ends, -H 'N:' and 'N;' were refused or sent, the URL's
 * user:pass@ was dropped.
 */
describe('requests as curl sends them', () => {
  const cases: Array<[string, () => string[], string[]]> = [
    [
      '-L to another origin: no Authorization or Cookie there (-u, -H)',
      () => ['-L', '-u', 'user:pw', '-H', 'Cookie: c=1', `http://127.0.0.1:${port['recorder']}/cross`],
      ['authorization', 'cookie'],
    ],
    [
      '--location-trusted: they go on',
      () => ['--location-trusted', '-u', 'user:pw', `http://127.0.0.1:${port['recorder']}/cross`],
      ['authorization'],
    ],
    [
      "the URL's user:pass@ as Basic authentication",
      () => [`http://us%40er:p%3Aw@127.0.0.1:${port['recorder']}/ok`],
      ['authorization'],
    ],
    [
      "-d twice, one @FILE with CR LF; -H 'N;' empty, -A '' none",
      () => [
        '-d',
        'a=1',
        '-d',
        `@${join(dir, 'form.txt')}`,
        '-H',
        'X-E;',
        '-A',
        '',
        `http://127.0.0.1:${port['recorder']}/ok`,
      ],
      ['content-type', 'x-e', 'user-agent'],
    ],
    [
      "-H 'Content-Type:' takes -d's type away",
      () => ['-d', 'x', '-H', 'Content-Type:', `http://127.0.0.1:${port['recorder']}/ok`],
      ['content-type'],
    ],
  ];
  const capture = async (
    go: () => Promise<Run>,
    names: string[],
  ): Promise<{ code: number; hops: Array<Record<string, unknown>> }> => {
    seen.length = 0;
    const r = await go();
    const hops = seen.map((h) => ({
      method: h.method,
      host: h.host,
      url: h.url,
      body: h.body,
      ...Object.fromEntries(names.map((n) => [n, h.headers[n] ?? null])),
    }));
    return { code: r.code, hops };
  };
  for (const [name, args, names] of cases) {
    it(name, async () => {
      writeFileSync(join(dir, 'form.txt'), 'x=1\r\ny=2\n');
      const c = await capture(() => curl(args()), names);
      const o = await capture(() => ours(args()), names);
      expect(o).toEqual(c);
      expect(c.hops.length).toBeGreaterThan(0);
    });
  }
  it('-w after a failure that followed a response: its status, the bytes that came, the last URL (not 000 0)', async () => {
    const w = ['-w', '%{http_code} %{size_download} %{url_effective} %{num_redirects} %{exitcode}'];
    for (const args of [
      [`http://127.0.0.1:${port['short']}/`],
      [`http://127.0.0.1:${port['short']}/chunked`],
      ['-L', '--max-redirs', '2', `http://127.0.0.1:${port['plain']}/loop`],
    ]) {
      const [c, o] = await Promise.all([curl([...w, ...args]), ours(['-s', ...w, ...args])]);
      expect(o.stdout, args.join(' ')).toBe(c.stdout);
      expect(o.code).toBe(c.code);
    }
  });

  it("-i -L prints every hop's head; -f -i an error's head and exit 22", async () => {
    const url = `http://127.0.0.1:${port['recorder']}/cross`;
    const [c, o] = await Promise.all([
      run(['curl', '-s', '-i', '-L', url]),
      run([process.execPath, CLI, 'fetch', '-i', '-L', url]),
    ]);
    // Status lines whole, reason phrase included (the origin's: node:http's).
    const statuses = (t: string): string[] => (t.match(/^HTTP\/1\.1 \d+[^\r\n]*/gm) ?? []).map((l) => l.trimEnd());
    expect(statuses(o.stdout)).toEqual(statuses(c.stdout));
    expect(statuses(o.stdout)).toEqual(['HTTP/1.1 302 Found', 'HTTP/1.1 200 OK']);
    const missing = `http://127.0.0.1:${port['plain']}/missing`;
    const [cf, of] = await Promise.all([
      run(['curl', '-s', '-f', '-i', missing]),
      run([process.execPath, CLI, 'fetch', '-s', '-f', '-i', missing]),
    ]);
    expect([of.code, statuses(of.stdout)]).toEqual([cf.code, statuses(cf.stdout)]);
    expect(of.stdout).not.toMatch(/not here/);
  });
});

describe('curl flags and --json on failure', () => {
  it('--json prints an error object on failure (it printed nothing); -s silences the message, -sS keeps it', async () => {
    const j = await ours(['--json', '-s', `http://127.0.0.1:${CLOSED_PORT}/`]);
    expect(j.code).toBe(7);
    expect(j.stderr).toBe('');
    expect(JSON.parse(j.stdout)).toMatchObject({
      url: `http://127.0.0.1:${CLOSED_PORT}/`,
      exitCode: 7,
      error: { code: 'OL_CONNECT_FAILED', side: 'network', attempts: 1 },
    });
    const sS = await ours(['-sS', `http://127.0.0.1:${CLOSED_PORT}/`]);
    expect(sS.stderr).toMatch(/^originlink: \(7\) OL_CONNECT_FAILED: /);
  });

  it("-w writes curl's variables after the transfer (000 and the exit code after a failure); -I prints the head; -sSfL in one group", async () => {
    const fmt = '%{http_code} %{http_version} %{num_redirects} %{url_effective} %{content_type} %{exitcode}\\n';
    const url = `http://127.0.0.1:${port['plain']}/moved`;
    const [c, o] = await Promise.all([curl(['-sSfL', '-w', fmt, url]), ours(['-sSfL', '-w', fmt, url])]);
    expect(o.stdout).toBe(c.stdout);
    expect(o.stdout).toBe(`200 1.1 1 http://127.0.0.1:${port['plain']}/ok text/plain 0\n`);
    const fail = await ours(['-s', '-w', '%{http_code} %{exitcode}', `http://127.0.0.1:${CLOSED_PORT}/`]);
    expect([fail.code, fail.stdout]).toEqual([7, '000 7']);
    const head = await run([process.execPath, CLI, 'fetch', '-I', `http://127.0.0.1:${port['plain']}/ok`]);
    expect(head.code).toBe(0);
    expect(head.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\n[\s\S]*\r\n\r\n$/);
  });

  it('-o FILE holds the body as curl writes it, a full device exits 23 as curl does; --json gives its SHA-256', async () => {
    const url = `http://127.0.0.1:${port['plain']}/big`;
    const [c, o] = await Promise.all([
      run(['curl', '-sS', '-o', join(dir, 'big-curl'), url]),
      run([process.execPath, CLI, 'fetch', '-sS', '-o', join(dir, 'big-ours'), url]),
    ]);
    expect([c.code, o.code], o.stderr).toEqual([0, 0]);
    expect(readFileSync(join(dir, 'big-ours')).equals(BIG)).toBe(true);
    expect(readFileSync(join(dir, 'big-curl')).equals(BIG)).toBe(true);
    // A file that takes no byte: curl's 23, ENOSPC named.
    const [cf, of] = await Promise.all([
      run(['curl', '-sS', '-o', '/dev/full', url]),
      run([process.execPath, CLI, 'fetch', '-sS', '-o', '/dev/full', url]),
    ]);
    expect([cf.code, of.code], cf.stderr).toEqual([23, 23]);
    expect(of.stderr).toMatch(/^originlink: \(23\) cannot write the body: ENOSPC\n$/);
    const j = await run([process.execPath, CLI, 'fetch', '--json', url]);
    expect(JSON.parse(j.stdout)).toMatchObject({
      status: 200,
      bytes: BIG.length,
      sha256: createHash('sha256').update(BIG).digest('hex'),
    });
    // A small body, whole before it is read (taken without a stream): the same file and digest.
    const small = `http://127.0.0.1:${port['plain']}/ok`;
    const [js, os] = await Promise.all([
      run([process.execPath, CLI, 'fetch', '--json', small]),
      run([process.execPath, CLI, 'fetch', '-sS', '-o', join(dir, 'small-ours'), small]),
    ]);
    expect(JSON.parse(js.stdout)).toMatchObject({
      status: 200,
      bytes: 3,
      sha256: createHash('sha256').update('ok\n').digest('hex'),
    });
    expect([os.code, readFileSync(join(dir, 'small-ours'), 'utf8')]).toEqual([0, 'ok\n']);
  });

  it('--version, and the exit codes in --help', async () => {
    const v = await run([process.execPath, CLI, '--version']);
    expect(v.stdout).toMatch(/^originlink \d+\.\d+\.\d+ \(Node\.js v/);
    const h = await run([process.execPath, CLI, 'fetch', '--help']);
    for (const code of [6, 7, 22, 28, 35, 60]) expect(h.stdout).toMatch(new RegExp(`\\n\\s+${code}  `));
  });
});
