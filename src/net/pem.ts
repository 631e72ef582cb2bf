/**
 * What is wrong with PEM material a config or an Agent names, in words, before any handshake needs it: a pair of
 * certificate and key (a server's, or a client's for mutual TLS), a file of trusted CAs. One check for the fronts'
 * certificates, the origins' client certificates and the CA files alike.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';

/** The PEM labels in `pem` (`CERTIFICATE`, `PRIVATE KEY`, `EC PRIVATE KEY`, …), in order. */
export function pemLabels(pem: Uint8Array): string[] {
  return [
    ...Buffer.from(pem)
      .toString('latin1')
      .matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g),
  ].map((m) => m[1] as string);
}

/**
 * What is wrong with a certificate and its key (a server's or a client's), found by building the TLS context a listener would
 * (OpenSSL's SSL_CTX through node:tls): which of the two is at fault and why, in words; null when they serve.
 * A key file that holds a certificate, a certificate file that holds a key, a key of another certificate: each
 * made `serve` die at start with OpenSSL's bare text ("DECODER routines::unsupported") after `--check` passed.
 */
export function certificatePairProblem(
  cert: Uint8Array,
  key: Uint8Array,
  certPath: string,
  keyPath: string,
): { field: 'cert' | 'key'; reason: string } | null {
  const certLabels = pemLabels(cert);
  const keyLabels = pemLabels(key);
  if (!certLabels.includes('CERTIFICATE'))
    return {
      field: 'cert',
      reason: `${certPath} holds no certificate (PEM found: ${certLabels.join(', ') || 'none'})`,
    };
  if (!keyLabels.some((l) => l.endsWith('PRIVATE KEY')))
    return { field: 'key', reason: `${keyPath} holds no private key (PEM found: ${keyLabels.join(', ') || 'none'})` };
  try {
    new X509Certificate(Buffer.from(cert));
  } catch (e) {
    return { field: 'cert', reason: `${certPath}: not a readable certificate (${(e as Error).message})` };
  }
  try {
    createSecureContext({ cert: Buffer.from(cert), key: Buffer.from(key) });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH')
      return { field: 'key', reason: `${keyPath} is not the key of ${certPath} (their public keys differ)` };
    return { field: 'key', reason: `${keyPath} with ${certPath}: ${(e as Error).message}` };
  }
  return null;
}

/** What is wrong with a file of trusted CA certificates (PEM), or null. */
export function caProblem(ca: Uint8Array, path: string): string | null {
  const labels = pemLabels(ca);
  if (!labels.includes('CERTIFICATE'))
    return `${path} holds no certificate (PEM found: ${labels.join(', ') || 'none'})`;
  try {
    new X509Certificate(Buffer.from(ca));
  } catch (e) {
    return `${path}: not a readable certificate (${(e as Error).message})`;
  }
  return null;
}
