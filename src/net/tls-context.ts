/**
 * The client side's TLS contexts (an OpenSSL SSL_CTX each), one per set of
 * trusted CAs, shared by every connection dialled with it — origins and
 * https proxy nodes alike. Given `ca`, `tls.connect` makes a new context per
 * connection: ~200 µs of CPU per dial here to parse the PEM and build the
 * store (~110 µs with the default roots), paid again on every reconnect.
 * A context holds only the trust store; everything per connection stays per
 * connection (`session` tickets, SNI, ALPN, `rejectUnauthorized`,
 * `checkServerIdentity`). Contexts are kept by the CA object given (a
 * WeakMap: a config reload that reads the file again makes a new one) or,
 * for a PEM string, by its text in a bounded LRU. A client certificate (mutual TLS, RFC 8446 §4.4.2: an origin that
 * asks for one) is part of the context too: one context per identity and set of CAs.
 */
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { LruMap } from '../util/lru.js';
import { certificatePairProblem } from './pem.js';

export type TrustedCa = string | Buffer | Array<string | Buffer>;

const byObject = new WeakMap<object, tls.SecureContext>();
const byText = new LruMap<string, tls.SecureContext>(64);
let systemRoots: tls.SecureContext | null = null;
/** No CA: Node adds none (an empty list is not "the default roots"), and its default store is not built. */
const NO_CA: Array<string | Buffer> = [];
let trustsNothing: tls.SecureContext | null = null;

/**
 * The certificate and key this side shows a server that asks (PEM), checked as a pair once, and the id that tells
 * identities apart in reuse keys (a SHA-256 of the certificate: a connection made with one is never reused with
 * another, nor with none).
 */
export interface ClientIdentity {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly id: string;
}

const identities = new LruMap<string, ClientIdentity>(64);

/**
 * The identity for a PEM certificate (chain) and its key; throws OL_INVALID_ARGUMENT naming what is wrong (a key of
 * another certificate, a file that holds no certificate). `where` names the option in the message.
 */
export function clientIdentity(cert: string | Uint8Array, key: string | Uint8Array, where = 'tls'): ClientIdentity {
  const c = Buffer.from(cert);
  const k = Buffer.from(key);
  const id = createHash('sha256').update(c).update('\0').update(k).digest('base64url').slice(0, 22);
  const known = identities.get(id);
  if (known !== undefined) return known;
  const bad = certificatePairProblem(c, k, `${where}.cert`, `${where}.key`);
  if (bad)
    throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `${where}.${bad.field}: ${bad.reason}`, {
      details: { field: `${where}.${bad.field}` },
    });
  const made: ClientIdentity = { cert: c, key: k, id: createHash('sha256').update(c).digest('base64url').slice(0, 16) };
  identities.set(id, made);
  return made;
}

const withIdentity = new WeakMap<ClientIdentity, Map<TrustedCa | undefined, tls.SecureContext>>();

/**
 * Node's default root store, built now: on Node 20 the first context that names CAs or the default roots builds it
 * (its bundled certificates parsed: bench/RESULTS.md `startup`), whichever the context trusts. A service calls this
 * at its start when an origin is reached over TLS on TCP, so that its first request there does not wait for it.
 */
export function buildRootStore(): void {
  systemRoots ??= tls.createSecureContext();
}

/**
 * The shared context that trusts `ca` (the default roots when undefined) and shows `identity` when asked. `verify`
 * false (`rejectUnauthorized: false`): a context that trusts nothing, whatever `ca` says — the peer's certificate is
 * not judged, and on Node 20 the first context that names CAs or the default roots builds the process's default root
 * store (its bundled certificates parsed: a fresh process's first TLS connection, bench/RESULTS.md `startup`), which
 * such a connection never reads.
 */
export function clientContext(
  ca: TrustedCa | undefined,
  identity?: ClientIdentity | null,
  verify = true,
): tls.SecureContext {
  if (!verify) ca = NO_CA;
  if (identity) {
    let m = withIdentity.get(identity);
    if (m === undefined) withIdentity.set(identity, (m = new Map()));
    let c = m.get(ca);
    if (c === undefined) {
      c = tls.createSecureContext(
        ca === undefined ? { cert: identity.cert, key: identity.key } : { ca, cert: identity.cert, key: identity.key },
      );
      m.set(ca, c);
    }
    return c;
  }
  if (ca === undefined) return (systemRoots ??= tls.createSecureContext());
  if (ca === NO_CA) return (trustsNothing ??= tls.createSecureContext({ ca: NO_CA }));
  if (typeof ca === 'string') {
    let c = byText.get(ca);
    if (c === undefined) byText.set(ca, (c = tls.createSecureContext({ ca })));
    return c;
  }
  let c = byObject.get(ca);
  if (c === undefined) byObject.set(ca, (c = tls.createSecureContext({ ca })));
  return c;
}
