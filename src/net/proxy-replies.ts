/**
 * What an egress proxy answers while a tunnel is set up, read as bytes (sans-IO: no sockets here, so the
 * readers can be fuzzed, fuzz/targets/proxy-replies.mjs). Each reader takes the bytes received so far and
 * returns null while more are needed, or what it read and how many bytes that took; a reply that cannot
 * be one throws ProxyReplyError. net/tunnel.ts turns that into OL_PROXY_FAILED for the node.
 */

export class ProxyReplyError extends Error {
  readonly details: Record<string, unknown>;
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ProxyReplyError';
    this.details = details;
  }
}

export interface Read<T> {
  value: T;
  length: number;
}

const CRLFCRLF = [13, 10, 13, 10];

function indexOfHeadEnd(buf: Uint8Array, from: number): number {
  outer: for (let i = from; i + 4 <= buf.length; i++) {
    for (let j = 0; j < 4; j++) if (buf[i + j] !== CRLFCRLF[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * One response head to an HTTP/1.1 CONNECT (RFC 9110 §9.3.6): its status, and the length of everything up to
 * its end. An interim 1xx (RFC 9110 §15.2: a client must be able to parse them) is read as one head too, so the
 * caller consumes it and reads on (and counts them); the bytes after the final one belong to the tunnel. 101 is
 * not a CONNECT answer. A head longer than `maxHead` without its end is refused. Header fields are not needed: a
 * 2xx opens the tunnel whatever they say (a Content-Length or Transfer-Encoding in it is ignored, §9.3.6),
 * anything else fails.
 */
export function readConnectReply(buf: Uint8Array, maxHead: number): Read<number> | null {
  const end = indexOfHeadEnd(buf, 0);
  if (end < 0) {
    if (buf.length > maxHead) throw new ProxyReplyError(`no end of the CONNECT response head within ${maxHead} bytes`);
    return null;
  }
  if (end > maxHead) throw new ProxyReplyError(`CONNECT response head longer than ${maxHead} bytes`);
  const status = statusOf(buf, 0);
  if (status === 101) throw new ProxyReplyError('the proxy answered CONNECT with 101 Switching Protocols', { status });
  return { value: status, length: end + 4 };
}

/** RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason]; version HTTP/1.0 or HTTP/1.1. */
function statusOf(buf: Uint8Array, at: number): number {
  const prefix = 'HTTP/1.';
  let ok = buf.length >= at + 12;
  for (let i = 0; ok && i < prefix.length; i++) ok = buf[at + i] === prefix.charCodeAt(i);
  const minor = buf[at + 7];
  ok &&= (minor === 0x30 || minor === 0x31) && buf[at + 8] === 0x20;
  let status = 0;
  for (let i = 9; ok && i < 12; i++) {
    const d = buf[at + i]! - 0x30;
    ok = d >= 0 && d <= 9;
    status = status * 10 + d;
  }
  const after = buf[at + 12];
  ok &&= after === 0x20 || after === 0x0d;
  if (!ok || status < 100) {
    const line = Buffer.from(buf.subarray(at, Math.min(buf.length, at + 60)))
      .toString('latin1')
      .split('\r\n')[0];
    throw new ProxyReplyError(`malformed CONNECT response: ${JSON.stringify(line)}`);
  }
  return status;
}

/** RFC 1928 §3: the method the SOCKS5 server chose (VER, METHOD). */
export function readSocks5Method(buf: Uint8Array): Read<number> | null {
  if (buf.length < 2) return null;
  if (buf[0] !== 5) throw new ProxyReplyError(`not a SOCKS5 server (version ${buf[0]})`);
  return { value: buf[1]!, length: 2 };
}

/** RFC 1929 §2: the username/password status (VER 1, STATUS; 0 is success). */
export function readSocks5AuthStatus(buf: Uint8Array): Read<number> | null {
  if (buf.length < 2) return null;
  if (buf[0] !== 1) throw new ProxyReplyError(`malformed SOCKS5 authentication reply (version ${buf[0]})`);
  return { value: buf[1]!, length: 2 };
}

/** RFC 1928 §6 reply codes. */
export const SOCKS_REPLY: Record<number, string> = {
  1: 'general SOCKS server failure',
  2: 'connection not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

/**
 * RFC 1928 §6: the reply to CONNECT, VER REP RSV ATYP BND.ADDR BND.PORT. Its REP code (0 is success); the
 * whole reply is consumed, the bound address is not needed. A non-zero REP is returned as soon as it is
 * read (the server closes after it); an unknown address type is refused. RSV is not checked.
 */
export function readSocks5Reply(buf: Uint8Array): Read<number> | null {
  if (buf.length < 4) return null;
  if (buf[0] !== 5) throw new ProxyReplyError(`malformed SOCKS5 reply (version ${buf[0]})`);
  const rep = buf[1]!;
  if (rep !== 0) return { value: rep, length: 4 };
  const atyp = buf[3];
  let addr: number;
  if (atyp === 1) addr = 4;
  else if (atyp === 4) addr = 16;
  else if (atyp === 3) {
    if (buf.length < 5) return null;
    addr = 1 + buf[4]!;
  } else throw new ProxyReplyError(`malformed SOCKS5 reply (address type ${atyp})`);
  const length = 4 + addr + 2;
  return buf.length < length ? null : { value: 0, length };
}
