/**
 * HTTP/3 to a UDP port where nothing listens: the kernel answers our Initial with an ICMP port unreachable,
 * which a connected UDP socket hands back to us (RFC 1122 §4.1.3.3). The handshake is refused at once —
 * OL_CONNECT_FAILED naming the port — instead of waiting out the QUIC handshake timeout (10 s by default,
 * three of them through the Agent's retries: 30.6 s for `originlink fetch --protocol h3` before).
 * The Agent's retries of a refused connect and the CLI stay far within 3 s. On both QUIC engines.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { connectH3 } from '../../src/connect/h3.js';
import { buildIfStale, CLI, ROOT } from '../helpers/build.js';

let port = 0;

/** The built CLI, as a user runs it (not through a TypeScript loader: its start would dominate the time). */
function runCli(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 20_000 }, (err, _stdout, stderr) => {
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
}

beforeAll(async () => {
  buildIfStale();
  // A UDP port that was free a moment ago: bound, then closed again (nothing listens there now).
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
});

describe('HTTP/3 to a closed UDP port', () => {
  it('connectH3: refused at once, by the ICMP port unreachable (not after the 10 s handshake timeout)', async () => {
    const t0 = performance.now();
    const err = await connectH3({ host: '127.0.0.1', port, servername: 'localhost', connectTimeoutMs: 10_000 }).then(
      () => null,
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    expect(err).toMatchObject({ code: 'OL_CONNECT_FAILED', retrySafe: true });
    expect((err as Error).message).toMatch(
      new RegExp(`127\\.0\\.0\\.1:${port} refused: nothing listens on that UDP port \\(ICMP port unreachable\\)`),
    );
    expect(ms).toBeLessThan(1000);
  });

  it('the Agent with protocol h3, retries included: failed within 3 s', async () => {
    const agent = new Agent({ protocol: 'h3' });
    try {
      const t0 = performance.now();
      const err = await agent.request({ url: `https://127.0.0.1:${port}/` }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'OL_CONNECT_FAILED' });
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      await agent.close();
    }
  });

  it('`originlink fetch --protocol h3` fails within 3 s', async () => {
    const t0 = performance.now();
    const out = await runCli(['fetch', `https://127.0.0.1:${port}/`, '--protocol', 'h3']);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/ICMP port unreachable|OL_CONNECT_FAILED/);
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});
