// Congestion control per namespace. A namespace other than the initial one
// may only pick a default algorithm listed in the global
// net.ipv4.tcp_allowed_congestion_control (the kernel answers EPERM otherwise;
// on this machine the list is "reno bbr"). When a lab asks for one that is
// available but not allowed, it is appended to that list for the lab's
// lifetime and removed again when the last lab of this process using it
// closes. The list only governs what unprivileged sockets may select; no
// default changes outside the lab's namespaces.
import { readFileSync, writeFileSync } from 'node:fs';
import { LabError } from './sh.mjs';

const ALLOWED = '/proc/sys/net/ipv4/tcp_allowed_congestion_control';
const AVAILABLE = '/proc/sys/net/ipv4/tcp_available_congestion_control';
/** algorithm -> number of live labs of this process that added it */
const added = new Map();
let hooked = false;

const list = (path) => readFileSync(path, 'utf8').trim().split(/\s+/).filter(Boolean);

/** Makes `cc` selectable in a namespace. Returns a release function. */
export function acquireCongestionControl(cc) {
  if (!list(AVAILABLE).includes(cc)) {
    throw new LabError('LAB_CC', `congestion control ${cc} is not available (${list(AVAILABLE).join(' ')})`);
  }
  const allowed = list(ALLOWED);
  if (!allowed.includes(cc) || added.has(cc)) {
    if (!allowed.includes(cc)) writeFileSync(ALLOWED, [...allowed, cc].join(' '));
    added.set(cc, (added.get(cc) ?? 0) + 1);
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const k of [...added.keys()]) drop(k);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (added.get(cc) ?? 1) - 1;
      if (n > 0) added.set(cc, n);
      else drop(cc);
    };
  }
  return () => {};
}

function drop(cc) {
  added.delete(cc);
  try {
    const rest = list(ALLOWED).filter((a) => a !== cc);
    if (rest.length) writeFileSync(ALLOWED, rest.join(' '));
  } catch {
    // best effort at exit
  }
}

export function allowedCongestionControl() {
  return list(ALLOWED);
}
