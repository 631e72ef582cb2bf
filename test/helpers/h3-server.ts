/** Our HTTP/3 server on 127.0.0.1 (a free port unless given) with the test certificate: the fixture of the h3 tests. */
import { startH3Server, type H3Server, type H3ServerOptions } from '../../src/server/h3.js';
import { makeCerts } from './certs.js';

export function startTestH3Server(
  opts: Omit<H3ServerOptions, 'host' | 'cert' | 'key'> & Partial<H3ServerOptions>,
): Promise<H3Server> {
  const certs = makeCerts();
  return startH3Server({ host: '127.0.0.1', cert: certs.certPath, key: certs.keyPath, ...opts });
}
