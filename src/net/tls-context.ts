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
 * for a PEM string, by its text in a bounded LRU.
 */
import tls from 'node:tls';
import { LruMap } from '../util/lru.js';

export type TrustedCa = string | Buffer | Array<string | Buffer>;

const byObject = new WeakMap<object, tls.SecureContext>();
const byText = new LruMap<string, tls.SecureContext>(64);
let systemRoots: tls.SecureContext | null = null;

/** The shared context that trusts `ca` (the default roots when undefined). */
export function clientContext(ca: TrustedCa | undefined): tls.SecureContext {
  if (ca === undefined) return (systemRoots ??= tls.createSecureContext());
  if (typeof ca === 'string') {
    let c = byText.get(ca);
    if (c === undefined) byText.set(ca, (c = tls.createSecureContext({ ca })));
    return c;
  }
  let c = byObject.get(ca);
  if (c === undefined) byObject.set(ca, (c = tls.createSecureContext({ ca })));
  return c;
}
