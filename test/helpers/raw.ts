/** Raw bytes over a real socket, for what real clients never send. */
import net from 'node:net';

/**
 * Write `bytes` to 127.0.0.1:`port` and collect what comes back (latin1) until the peer closes, `ms` pass, or —
 * with `leaveAfterMs` — the client leaves that soon (destroys its socket).
 */
export function rawExchange(
  port: number,
  bytes: string | Buffer,
  o: { ms?: number; leaveAfterMs?: number } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    s.on('error', () => {});
    const done = (): void => {
      clearTimeout(t);
      s.destroy();
      resolve(text);
    };
    s.on('close', done);
    const t = setTimeout(done, o.leaveAfterMs ?? o.ms ?? 3000);
  });
}
