// Loopback helpers the bench scripts share: a free port, waiting for one to open, and a process tree's CPU time.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

export const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
export const waitPort = async (port, ms = 10_000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise((r) => { const c = net.connect(port, '127.0.0.1'); c.once('connect', () => { c.destroy(); r(true); }); c.once('error', () => r(false)); });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} did not open`);
};
// CPU time (user + system, µs) of a process and all its descendants (nginx's workers, node's threads are in its stat).
const CLK = Number((() => { try { return execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }); } catch { return '100'; } })()) || 100;
export const treeCpuUs = (root) => {
  const stats = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(d), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch { /* exited */ }
  }
  let ticks = 0;
  const want = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, s] of stats) if (!want.has(pid) && want.has(s.ppid)) { want.add(pid); grew = true; }
  }
  for (const pid of want) ticks += stats.get(pid)?.ticks ?? 0;
  return (ticks * 1e6) / CLK;
};
