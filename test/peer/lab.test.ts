// The network lab (bench/lab): the emulated link honours its configured RTT,
// seeded loss, nft loss and rate, and leaves nothing behind.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createLab, PROBE, type Lab, type LabOptions } from '../../bench/lab/index.mjs';

const open = new Set<Lab>();

async function lab(opts: LabOptions): Promise<Lab> {
  const l = await createLab(opts);
  open.add(l);
  return l;
}

afterEach(async () => {
  for (const l of open) await l.close();
  open.clear();
});

function namespaces(): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '');
}

/** A zombie counts as gone: its parent exited and init reaps it later. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).charAt(0) !== 'Z';
  } catch {
    return false;
  }
}

/** Sends `count` datagrams client -> server one way; returns the emulator's drop count and what arrived. */
async function blast(l: Lab, count: number) {
  const sink = await l.startProbe('server', {
    mode: 'udp-sink',
    host: l.server.addr,
    port: 9000,
    expect: count,
    idleMs: 400,
  });
  const before = await l.counters();
  const rcvbuf0 = (await l.nstat('server'))['UdpRcvbufErrors'] ?? 0;
  const sent = await l.probe('client', {
    mode: 'udp-blast',
    host: l.server.addr,
    port: 9000,
    count,
    burst: 20,
    intervalMs: 2,
    size: 100,
    waitMs: 0,
  });
  // The sink exits once all datagrams arrived or 400 ms after the last one.
  await Promise.race([sink.exited, new Promise((r) => setTimeout(r, 5_000))]);
  const result = await sink.stop();
  const after = await l.counters();
  // Receive-buffer drops at a starved sink are not link loss: count them apart.
  const rcvbufErrors = ((await l.nstat('server'))['UdpRcvbufErrors'] ?? 0) - rcvbuf0;
  return {
    rcvbufErrors,
    sent: sent.sent as number,
    received: (result?.['received'] as number | undefined) ?? -1,
    reordered: (result?.['reordered'] as number | undefined) ?? -1,
    lost: after.clientToServer.lost - before.clientToServer.lost,
    nftDropped: (after.nftDropped ?? 0) - (before.nftDropped ?? 0),
  };
}

const within = (x: number, target: number, pct: number) => Math.abs(x - target) <= (target * pct) / 100;

describe('bench/lab link emulator', () => {
  // The link itself (ping, the self-check) must be within 5 %. The UDP echo and TCP connect
  // figures also include two node processes being scheduled on a shared 2-core machine while
  // other test files run: they get 10 % (seen: 52.8 ms under full-suite load, 50.4 ms alone).
  it('25 ms one way: self-check within 5 %, UDP echo and TCP connect RTT within 10 % of 50 ms', async () => {
    const l = await lab({ delayMs: 25, seed: 7, congestionControl: 'bbr' });
    const sc = await l.selfCheck();
    expect(sc.durationMs).toBeLessThan(3_000);
    expect(sc.ok, JSON.stringify(sc)).toBe(true);
    expect(within(sc.rttMs, 50, 5)).toBe(true);
    expect(within(sc.udpRttMs, 50, 10), `UDP echo median ${sc.udpRttMs}`).toBe(true);
    expect(sc.lost).toBe(0);

    const server = l.spawn('server', [
      process.execPath,
      PROBE,
      JSON.stringify({ mode: 'tcp-server', host: l.server.addr, port: 5001 }),
    ]);
    await l.waitForPort('server', 5001);
    const tcp = await l.probe('client', { mode: 'tcp-connect', host: l.server.addr, port: 5001, count: 20 });
    expect(within(tcp.connectMs.median, 50, 10), JSON.stringify(tcp)).toBe(true);
    expect(server.exitCode).toBe(null);

    const facts = await l.facts();
    expect(facts.kernel).toMatch(/^\d+\.\d+/);
    expect(facts.perNamespace.server.congestionControl).toBe('bbr');
    expect(facts.tcpFastOpen).toBe(3);
  });

  it('seeded 5 % loss over 2000 datagrams is within the 3-sigma band and reproducible', async () => {
    const runs = [];
    for (const seed of [7, 7]) {
      const l = await lab({ delayMs: 1, lossPct: 5, seed });
      runs.push(await blast(l, 2000));
      await l.close();
    }
    const sd = Math.sqrt(2000 * 0.05 * 0.95);
    for (const r of runs) {
      expect(r.sent).toBe(2000);
      expect(r.lost).toBeGreaterThanOrEqual(100 - 3 * sd);
      expect(r.lost).toBeLessThanOrEqual(100 + 3 * sd);
      expect(r.received + r.rcvbufErrors).toBe(r.sent - r.lost);
    }
    expect(runs[1]?.lost).toBe(runs[0]?.lost);
  });

  it('nft ingress loss of 10 % drops client -> server datagrams within the band', async () => {
    const l = await lab({ delayMs: 1, nftLossPct: 10 });
    const r = await blast(l, 1000);
    // A binomial count: 4 standard deviations (a false failure about once in 16,000 runs; 3 failed a full suite once,
    // 70 against 71.5, as it does about once in 370).
    const sd = Math.sqrt(1000 * 0.1 * 0.9);
    expect(r.nftDropped).toBeGreaterThanOrEqual(100 - 4 * sd);
    expect(r.nftDropped).toBeLessThanOrEqual(100 + 4 * sd);
    expect(r.lost).toBe(0);
    expect(r.received + r.rcvbufErrors).toBe(1000 - r.nftDropped);
  });

  it('jitter keeps each direction in order unless reordering is asked for', async () => {
    const reordered = [];
    for (const reorder of [false, true]) {
      const l = await lab({ delayMs: 10, jitterMs: 5, reorder, seed: 3 });
      const r = await blast(l, 400);
      expect(r.received + r.rcvbufErrors).toBe(400);
      reordered.push(r.reordered);
      await l.close();
    }
    expect(reordered[0]).toBe(0);
    expect(reordered[1]).toBeGreaterThan(0);
  });

  it('a 20 Mbit/s rate limit gives a TCP transfer within 25 % of 20 Mbit/s', async () => {
    const l = await lab({ delayMs: 5, rateMbit: 20, queuePackets: 200, congestionControl: 'cubic' });
    await l.startProbe('server', { mode: 'tcp-server', host: l.server.addr, port: 5001 });
    const r = await l.probe('client', { mode: 'tcp-send', host: l.server.addr, port: 5001, bytes: 4_000_000 });
    expect(r.server.bytes).toBe(4_000_000);
    expect(within(r.receiverMbit, 20, 25), JSON.stringify(r)).toBe(true);
    expect((await l.facts()).perNamespace.client.congestionControl).toBe('cubic');
  });

  it('close() leaves no namespace, emulator or child process behind', async () => {
    const l = await lab({ delayMs: 2 });
    const child = l.spawn('client', ['sleep', '30']);
    await new Promise((r) => setTimeout(r, 100));
    expect(namespaces()).toContain(l.client.ns);
    const out = await l.close();
    expect(out.emulatorAlive).toBe(false);
    expect(alive(l.emulatorPid)).toBe(false);
    expect(child.pid !== undefined && alive(child.pid)).toBe(false);
    expect(namespaces()).not.toContain(l.client.ns);
    expect(namespaces()).not.toContain(l.server.ns);
  });

  for (const how of ['throw', 'SIGINT', 'SIGTERM'] as const) {
    it(`a process that dies by ${how} leaves nothing behind`, async () => {
      const script = `
        import { createLab } from ${JSON.stringify(new URL('../../bench/lab/index.mjs', import.meta.url).pathname)};
        const l = await createLab({ delayMs: 1 });
        console.log(JSON.stringify({ ns: [l.client.ns, l.server.ns], pid: l.emulatorPid }));
        if (${JSON.stringify(how)} === 'throw') setTimeout(() => { throw new Error('boom'); }, 1_000);
        else setTimeout(() => {}, 20_000);
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
      });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        for (let i = 0; i < 100 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
        const info = JSON.parse(out) as { ns: string[]; pid: number };
        expect(namespaces()).toContain(info.ns[0]);
        if (how !== 'throw' && child.pid !== undefined) process.kill(child.pid, how);
        await exited;
        for (let i = 0; i < 20 && alive(info.pid); i++) await new Promise((r) => setTimeout(r, 50));
        expect(alive(info.pid)).toBe(false);
        for (const ns of info.ns) expect(namespaces()).not.toContain(ns);
      } finally {
        // On failure, SIGTERM still runs the child's own cleanup.
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined)
          process.kill(child.pid, 'SIGTERM');
      }
    });
  }
});
