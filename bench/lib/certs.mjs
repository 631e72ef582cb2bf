// Test PKI for benchmarks, made with openssl the same way as test/helpers/certs.ts:
// a CA and one leaf whose SANs cover the lab's server address and loopback.
// Made once per process into a temp dir that is removed at exit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LEAF_NAMES = ['localhost', '127.0.0.1', '::1', '192.0.2.2', '192.0.2.1'];

let cached = null;

/** @returns {{ dir: string, caPath: string, certPath: string, keyPath: string }} */
export function makeCerts() {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'ol-bench-certs-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const ossl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ossl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '30',
    '-subj',
    '/CN=originlink bench CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  const san = LEAF_NAMES.map((s) => (/^[\d.:]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
  writeFileSync(
    join(dir, 'leaf.ext'),
    `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  ossl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    'leaf.key',
    '-out',
    'leaf.csr',
  );
  ossl(
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    'leaf.ext',
    '-out',
    'leaf.pem',
  );
  cached = { dir, caPath: join(dir, 'ca.pem'), certPath: join(dir, 'leaf.pem'), keyPath: join(dir, 'leaf.key') };
  return cached;
}
