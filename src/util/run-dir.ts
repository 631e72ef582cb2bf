/**
 * Private directories for one process's run, in the system's temporary directory: the workers' member sockets
 * (service/cluster.ts), PEM files for the fallback QUIC engine (quic/config.ts).
 *
 * A directory is `<tmpdir>/<prefix>-<host>-<pid>-XXXXXX`, mode 0700 (mkdtemp's), removed when it is released or
 * when the process exits. A process killed before its exit handlers run (SIGKILL, the OOM killer) cannot remove its
 * own, so the first directory a process makes of a prefix removes that prefix's directories left by processes of
 * this host that no longer run (`kill(pid, 0)` answers ESRCH) and that belong to this user. The host name is in the
 * name so that containers sharing /tmp, whose pids are numbered apart, never judge each other's.
 */
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

const live = new Set<string>();
const swept = new Set<string>();
let hooked = false;

/** A host name as a file name's part: letters, digits, '.', '_' (others become '_'). */
function hostPart(): string {
  return (
    hostname()
      .replace(/[^A-Za-z0-9._]/g, '_')
      .slice(0, 64) || 'host'
  );
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Remove `prefix`'s directories of this host whose process is gone (once per prefix and process). */
function sweep(dir: string, prefix: string, host: string): void {
  if (swept.has(prefix)) return;
  swept.add(prefix);
  const lead = `${prefix}-${host}-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    if (!name.startsWith(lead)) continue;
    const pid = Number(name.slice(lead.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || running(pid)) continue;
    const path = join(dir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
    rmSync(path, { recursive: true, force: true });
  }
}

/** Make a run directory of `prefix` (see above); it goes at releaseRunDir or at this process's exit. */
export function makeRunDir(prefix: string): string {
  const dir = tmpdir();
  const host = hostPart();
  sweep(dir, prefix, host);
  const path = mkdtempSync(join(dir, `${prefix}-${host}-${process.pid}-`));
  live.add(path);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const p of live) rmSync(p, { recursive: true, force: true });
    });
  }
  return path;
}

/** Remove a run directory now. */
export function releaseRunDir(path: string): void {
  live.delete(path);
  rmSync(path, { recursive: true, force: true });
}
