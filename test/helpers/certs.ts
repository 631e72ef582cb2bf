/**
 * Test PKI made with openssl: a CA, a leaf for localhost/127.0.0.1/::1 (and
 * extra names for coalescing tests), and a leaf for a name nobody asks for.
 * Made once per test file process, into a temp dir removed at exit.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  dir: string;
  caPath: string;
  certPath: string;
  keyPath: string;
  /** Leaf whose only name is wrong.invalid (certificate mismatch tests). */
  wrongCertPath: string;
  wrongKeyPath: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Names in the main leaf. */
export const LEAF_NAMES = ['localhost', 'a.test', 'b.test', '127.0.0.1', '::1'];

let cached: TestCerts | null = null;

/** The file's PKI (made once); `fresh`: another, independent CA and leaf (a peer that must not be trusted by the first CA). */
export function makeCerts(o: { fresh?: boolean } = {}): TestCerts {
  if (cached && !o.fresh) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'ol-certs-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
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
    '/CN=originlink test CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  const leaf = (name: string, sans: string[]): void => {
    const san = sans.map((s) => (/^[\d.:]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
    writeFileSync(
      join(dir, `${name}.ext`),
      `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`,
    );
    ossl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${sans[0]}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    ossl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    );
  };
  leaf('leaf', LEAF_NAMES);
  leaf('wrong', ['wrong.invalid']);
  const made: TestCerts = {
    dir,
    caPath: join(dir, 'ca.pem'),
    certPath: join(dir, 'leaf.pem'),
    keyPath: join(dir, 'leaf.key'),
    wrongCertPath: join(dir, 'wrong.pem'),
    wrongKeyPath: join(dir, 'wrong.key'),
    ca: readFileSync(join(dir, 'ca.pem')),
    cert: readFileSync(join(dir, 'leaf.pem')),
    key: readFileSync(join(dir, 'leaf.key')),
  };
  if (!o.fresh) cached = made;
  return made;
}

/** One more leaf signed by `certs`' CA, for `sans` (DNS names or IP literals; the first is also its CN). Paths of its PEM files. */
export function makeLeaf(
  certs: TestCerts,
  file: string,
  sans: string[],
  /** `clientAuth`: a client certificate (mutual TLS) instead of a server's. */
  eku: 'serverAuth' | 'clientAuth' | 'serverAuth,clientAuth' = 'serverAuth',
): { certPath: string; keyPath: string } {
  const dir = certs.dir;
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  writeFileSync(
    join(dir, `${file}.ext`),
    `subjectAltName=${sans.map((s) => (/^[\d.:]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=${eku}\n`,
  );
  ossl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    `/CN=${sans[0]}`,
    '-keyout',
    `${file}.key`,
    '-out',
    `${file}.csr`,
  );
  ossl(
    'x509',
    '-req',
    '-in',
    `${file}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    `${file}.ext`,
    '-out',
    `${file}.pem`,
  );
  return { certPath: join(dir, `${file}.pem`), keyPath: join(dir, `${file}.key`) };
}
