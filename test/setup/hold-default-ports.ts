/**
 * vitest globalSetup: holds the service's default admin port (9464) on loopback for the whole run, so a test that
 * starts a service without `admin: false` or `admin: { port: 0 }` fails at once with EADDRINUSE on 9464 — on every
 * run, not only when two such test files happen to run side by side (as `test/peer/service.test.ts` did on a fresh
 * clone). A port someone else holds already is left to them: it fails such a test the same way.
 */
import net from 'node:net';

/** Ports no test may bind: the `admin` default (src/service/config.ts). */
export const DEFAULT_PORTS = [9464];

export default async function hold(): Promise<() => Promise<void>> {
  const held: net.Server[] = [];
  for (const port of DEFAULT_PORTS) {
    const s = net.createServer((c) => c.destroy());
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) held.push(s);
  }
  return async () => {
    for (const s of held) await new Promise((r) => s.close(r));
  };
}
