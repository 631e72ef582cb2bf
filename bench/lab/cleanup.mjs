// Process-wide registry of what live labs created, so that namespaces and
// emulator/child processes are removed on close(), on process exit, on
// SIGINT/SIGTERM/SIGHUP and on an uncaught exception. Everything here is
// synchronous because the 'exit' event allows no asynchronous work.
import { spawnSync } from 'node:child_process';
import { killQuietly, pidAlive } from './sh.mjs';

/** @type {Set<{ namespaces: string[], pids: Set<number>, release?: () => void }>} */
const live = new Set();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let hooked = false;
let swept = false;

export const NS_PATTERN = /^ol-(\d+)-(\d+)-[cs]$/;

export function register(resources) {
  live.add(resources);
  if (!hooked) {
    hooked = true;
    process.on('exit', cleanupAllSync);
    process.on('uncaughtExceptionMonitor', onUncaught);
    for (const sig of SIGNALS) process.on(sig, onSignal);
  }
  return () => live.delete(resources);
}

export function cleanupSync(resources) {
  for (const pid of resources.pids) killQuietly(pid, 'SIGKILL');
  for (const ns of resources.namespaces) {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  resources.release?.();
  live.delete(resources);
}

export function cleanupAllSync() {
  for (const r of [...live]) cleanupSync(r);
}

// Only a crash is cleaned up here: when someone handles 'uncaughtException'
// (a test runner does) the process lives on and its labs stay usable.
function onUncaught() {
  if (process.listenerCount('uncaughtException') === 0) cleanupAllSync();
}

// When the application handles the signal itself it decides when to exit
// (and 'exit' cleans up); when only this hook listens, clean up and die of
// the same signal as Node's default action would.
function onSignal(sig) {
  if (process.listenerCount(sig) > 1) return;
  cleanupAllSync();
  for (const s of SIGNALS) process.off(s, onSignal);
  process.kill(process.pid, sig);
}

/** Names of namespaces that look like ours, from `ip netns list`. */
export function listLabNamespaces() {
  const res = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (res.status !== 0) return [];
  return res.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => NS_PATTERN.test(n));
}

/**
 * Deletes lab namespaces left by processes that no longer exist (for example
 * a wrapper killed with SIGKILL, which runs no exit hook). Once per process.
 */
export function sweepStale() {
  if (swept) return [];
  swept = true;
  const removed = [];
  for (const ns of listLabNamespaces()) {
    const pid = Number(NS_PATTERN.exec(ns)?.[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    removed.push(ns);
  }
  return removed;
}
