// The network lab: two namespaces joined by the linkem userspace link
// emulator (delay, jitter, seeded loss, rate, queue), plus optional nft loss.
import { spawn as spawnChild } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLinkem } from './build.mjs';
import { acquireCongestionControl } from './cc.mjs';
import { cleanupSync, register, sweepStale } from './cleanup.mjs';
import { installNftLoss, nftDropped } from './nft.mjs';
import { selfCheck } from './selfcheck.mjs';
import { LabError, jsonLines, killQuietly, pidAlive, run, waitForJson, watchJson } from './sh.mjs';

export { LabError } from './sh.mjs';
export { ensureLinkem } from './build.mjs';
export const PROBE = join(dirname(fileURLToPath(import.meta.url)), 'probe.mjs');

const DEFAULTS = {
  delayMs: 0,
  jitterMs: 0,
  jitterDist: 'uniform',
  reorder: false,
  lossPct: 0,
  seed: 1,
  rateMbit: 0,
  queuePackets: 1000,
  tcpFastOpen: 3,
  txqueuelen: 5000,
  mtu: 1500,
  nftLossPct: 0,
  ipv6: false,
  congestionControl: undefined,
};
const DEV = { client: 'olc', server: 'ols' };
const ADDR = { client: '192.0.2.1', server: '192.0.2.2' };
const ADDR6 = { client: '2001:db8::1', server: '2001:db8::2' };
let labCount = 0;

function normalize(opts) {
  const c = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  c.reverseDelayMs ??= c.delayMs;
  c.reverseLossPct ??= c.lossPct;
  c.reverseRateMbit ??= c.rateMbit;
  for (const k of ['delayMs', 'reverseDelayMs', 'jitterMs', 'rateMbit', 'reverseRateMbit']) {
    if (!(c[k] >= 0)) throw new LabError('LAB_CONFIG', `${k} must be a number >= 0`);
  }
  for (const k of ['lossPct', 'reverseLossPct', 'nftLossPct']) {
    if (!(c[k] >= 0 && c[k] <= 100)) throw new LabError('LAB_CONFIG', `${k} must be in [0, 100]`);
  }
  if (!['uniform', 'normal'].includes(c.jitterDist)) throw new LabError('LAB_CONFIG', 'jitterDist: uniform|normal');
  if (c.congestionControl !== undefined && !/^[a-z0-9_]+$/.test(c.congestionControl)) {
    throw new LabError('LAB_CONFIG', `bad congestionControl ${c.congestionControl}`);
  }
  return c;
}

function preflight() {
  if (process.getuid?.() !== 0) throw new LabError('LAB_NOT_ROOT', 'the lab needs root (network namespaces, TUN)');
  if (!existsSync('/dev/net/tun')) {
    throw new LabError('LAB_NO_TUN', '/dev/net/tun is missing: the kernel or container gives no TUN device');
  }
}

function emulatorArgs(c, ns) {
  return [
    '--ns-a',
    ns.client,
    '--ns-b',
    ns.server,
    '--dev-a',
    DEV.client,
    '--dev-b',
    DEV.server,
    '--delay-ms',
    String(c.delayMs),
    '--delay-ba-ms',
    String(c.reverseDelayMs),
    '--jitter-ms',
    String(c.jitterMs),
    '--jitter-dist',
    c.jitterDist,
    '--loss',
    String(c.lossPct / 100),
    '--loss-ba',
    String(c.reverseLossPct / 100),
    '--seed',
    String(c.seed),
    '--rate-mbit',
    String(c.rateMbit),
    '--rate-ba-mbit',
    String(c.reverseRateMbit),
    '--queue',
    String(c.queuePackets),
    '--txqueuelen',
    String(c.txqueuelen),
    '--mtu',
    String(c.mtu),
    '--watch-stdin',
    ...(c.reorder ? ['--reorder'] : []),
  ];
}

function sysctlScript(c) {
  const lines = ['set -e', 'cd /proc/sys/net'];
  if (!c.ipv6) lines.push('echo 1 > ipv6/conf/default/disable_ipv6', 'echo 1 > ipv6/conf/all/disable_ipv6');
  if (c.congestionControl) lines.push(`echo ${c.congestionControl} > ipv4/tcp_congestion_control`);
  lines.push(`echo ${Number(c.tcpFastOpen) | 0} > ipv4/tcp_fastopen`);
  return lines.join('\n');
}

function toCounters(line) {
  return { clientToServer: line.ab, serverToClient: line.ba, uptimeMs: line.uptimeMs };
}

/**
 * Creates two namespaces (`ol-<pid>-<n>-c` / `-s`) joined by an emulated link.
 * See index.d.mts for the option and result shapes.
 */
export async function createLab(opts = {}) {
  const c = normalize(opts);
  preflight();
  const bin = ensureLinkem();
  sweepStale();
  const id = `${opts.namePrefix ?? 'ol'}-${process.pid}-${labCount++}`;
  const ns = { client: `${id}-c`, server: `${id}-s` };
  const res = { namespaces: [], pids: new Set() };
  const unregister = register(res);
  /** @type {Set<import('node:child_process').ChildProcess>} */
  const children = new Set();
  const resolveNs = (which) => ns[which] ?? which;
  const track = (child) => {
    if (child.pid === undefined) return;
    children.add(child);
    res.pids.add(child.pid);
    child.once('exit', () => {
      children.delete(child);
      res.pids.delete(child.pid);
    });
  };
  let emu;
  let emuExit = null;
  let lastCounters = null;
  const waiters = [];
  try {
    if (c.congestionControl) res.release = acquireCongestionControl(c.congestionControl);
    for (const side of ['client', 'server']) {
      await run(['ip', 'netns', 'add', ns[side]]);
      res.namespaces.push(ns[side]);
    }
    await Promise.all(Object.values(ns).map((n) => run(['ip', 'netns', 'exec', n, 'sh', '-c', sysctlScript(c)])));
    emu = spawnChild(bin, emulatorArgs(c, ns), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    res.pids.add(emu.pid);
    emu.on('exit', (code, signal) => {
      emuExit = { code, signal };
      res.pids.delete(emu.pid);
    });
    watchJson(emu, (line) => {
      if (line.event !== 'counters') return;
      lastCounters = toCounters(line);
      if (line.reason === 'usr1') waiters.shift()?.(lastCounters);
    });
    await waitForJson(emu, (l) => l.event === 'ready', 5_000, 'emulator ready');
    // The emulator alone must not keep the process alive: a script that
    // returns without close() exits, and the 'exit' hook removes the lab.
    emu.unref();
    for (const s of [emu.stdin, emu.stdout, emu.stderr]) s?.unref?.();
    await Promise.all(
      ['client', 'server'].map((side) => {
        const dev = DEV[side];
        const cmds = ['link set lo up', `addr add ${ADDR[side]}/24 dev ${dev}`];
        if (c.ipv6) cmds.push(`link set dev ${dev} addrgenmode none`, `addr add ${ADDR6[side]}/64 dev ${dev} nodad`);
        cmds.push(`link set ${dev} up`);
        return run(['ip', '-n', ns[side], '-batch', '-'], { input: `${cmds.join('\n')}\n` });
      }),
    );
    if (c.nftLossPct > 0) await installNftLoss(ns.server, DEV.server, c.nftLossPct);
  } catch (err) {
    emu?.stdin?.end();
    cleanupSync(res);
    unregister();
    throw err;
  }

  let counterChain = Promise.resolve();
  async function counters() {
    const next = counterChain.then(async () => {
      if (emuExit) throw new LabError('LAB_EMULATOR_EXIT', `emulator exited (${emuExit.code ?? emuExit.signal})`);
      const got = new Promise((resolve, reject) => {
        const waiter = (v) => {
          clearTimeout(timer);
          resolve(v);
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter) >>> 0, 1);
          reject(new LabError('LAB_TIMEOUT', 'emulator sent no counters within 2 s'));
        }, 2_000);
        waiters.push(waiter);
      });
      killQuietly(emu.pid, 'SIGUSR1');
      const out = await got;
      if (c.nftLossPct > 0) out.nftDropped = await nftDropped(ns.server);
      return out;
    });
    counterChain = next.catch(() => {});
    return next;
  }

  function exec(which, argv, o = {}) {
    return run(['ip', 'netns', 'exec', resolveNs(which), ...argv], { ...o, track });
  }

  function spawn(which, argv, o = {}) {
    const child = spawnChild('ip', ['netns', 'exec', resolveNs(which), ...argv], {
      stdio: o.stdio ?? ['ignore', 'pipe', 'pipe'],
      env: o.env ?? process.env,
      cwd: o.cwd,
    });
    track(child);
    return child;
  }

  async function node(which, script, args = [], o = {}) {
    const r = await exec(which, [process.execPath, script, ...args], o);
    return { ...r, json: jsonLines(r.stdout).at(-1) };
  }

  /** Starts a long-running node script; resolves once it prints a JSON line with event 'ready'. */
  async function startNode(which, script, args = [], o = {}) {
    const child = spawn(which, [process.execPath, script, ...args], o);
    const lines = watchJson(child);
    const exited = new Promise((r) => child.once('exit', r));
    const ready = await waitForJson(
      child,
      (l) => l.event === 'ready',
      o.readyTimeoutMs ?? 10_000,
      `ready from ${script}`,
    ).catch((err) => {
      killQuietly(child.pid, 'SIGKILL');
      throw err;
    });
    async function stop(signal = 'SIGTERM', graceMs = 2_000) {
      if (child.exitCode === null && child.signalCode === null) {
        killQuietly(child.pid, signal);
        const t = setTimeout(() => killQuietly(child.pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      return lines().at(-1);
    }
    return { child, ready, lines, stop, exited };
  }

  const probe = (which, spec, o = {}) => node(which, PROBE, [JSON.stringify(spec)], o).then((r) => r.json);
  const startProbe = (which, spec, o = {}) => startNode(which, PROBE, [JSON.stringify(spec)], o);

  /** Polls `ss` in a namespace until something listens on port (for peers that print no JSON). */
  async function waitForPort(which, port, o = {}) {
    const { proto = 'tcp', timeoutMs = 10_000 } = o;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await exec(which, ['ss', '-Hln', proto === 'udp' ? '-u' : '-t', `sport = :${port}`], {
        allowFail: true,
      });
      if (r.code === 0 && r.stdout.trim() !== '') return;
      if (Date.now() > deadline)
        throw new LabError('LAB_TIMEOUT', `nothing listens on ${proto} port ${port} in ${resolveNs(which)}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async function sysctl(which, key) {
    const r = await exec(which, ['cat', `/proc/sys/${key.replaceAll('.', '/')}`]);
    return r.stdout.trim();
  }

  async function facts() {
    const per = async (side) => ({
      congestionControl: await sysctl(side, 'net.ipv4.tcp_congestion_control'),
      tcpFastOpen: Number(await sysctl(side, 'net.ipv4.tcp_fastopen')),
    });
    const [client, server, available] = await Promise.all([
      per('client'),
      per('server'),
      sysctl('client', 'net.ipv4.tcp_available_congestion_control'),
    ]);
    return {
      kernel: release(),
      node: process.version,
      congestionControl: client.congestionControl,
      tcpFastOpen: client.tcpFastOpen,
      perNamespace: { client, server },
      availableCongestionControl: available.split(/\s+/),
      emulatorPid: emu.pid,
      link: { ...c },
    };
  }

  async function nstat(which) {
    const r = await exec(which, ['nstat', '-asz', '--json']);
    const parsed = JSON.parse(r.stdout);
    return parsed.kernel ?? parsed;
  }

  let closing = null;
  function close() {
    closing ??= (async () => {
      for (const child of children) killQuietly(child.pid, 'SIGTERM');
      const deadline = Date.now() + 1_000;
      while (children.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const child of children) killQuietly(child.pid, 'SIGKILL');
      if (!emuExit) {
        const exited = new Promise((r) => emu.once('exit', r));
        killQuietly(emu.pid, 'SIGTERM');
        const t = setTimeout(() => killQuietly(emu.pid, 'SIGKILL'), 1_000);
        await exited;
        clearTimeout(t);
      }
      cleanupSync(res);
      unregister();
      return { counters: lastCounters, emulatorPid: emu.pid, emulatorAlive: pidAlive(emu.pid) };
    })();
    return closing;
  }

  const lab = {
    id,
    config: c,
    emulatorPid: emu.pid,
    client: { ns: ns.client, addr: ADDR.client, addr6: c.ipv6 ? ADDR6.client : undefined, dev: DEV.client },
    server: { ns: ns.server, addr: ADDR.server, addr6: c.ipv6 ? ADDR6.server : undefined, dev: DEV.server },
    exec,
    spawn,
    node,
    startNode,
    probe,
    startProbe,
    waitForPort,
    counters,
    facts,
    nstat,
    sysctl,
    close,
    selfCheck: (o) => selfCheck(lab, o),
  };
  return lab;
}
