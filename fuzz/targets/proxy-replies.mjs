// What egress proxies answer during tunnel set-up (src/net/proxy-replies.ts): an HTTP/1.1 CONNECT
// response head, SOCKS5 method, authentication and CONNECT replies. The first byte picks the reader and
// the chunking; bytes arrive chunk by chunk as from a socket. Only ProxyReplyError may be thrown, and a
// reader must give the same answer however the bytes were split: fed whole, it reads the same value
// from the same length (or throws too).
import {
  ProxyReplyError,
  readConnectReply,
  readSocks5AuthStatus,
  readSocks5Method,
  readSocks5Reply,
} from '../../dist/net/proxy-replies.js';
import { chunks } from './_util.mjs';

const READERS = [(b) => readConnectReply(b, 512), readSocks5Method, readSocks5AuthStatus, readSocks5Reply];

function outcome(read, buf) {
  try {
    const r = read(buf);
    return r === null ? 'more' : `${r.value}@${r.length}`;
  } catch (e) {
    if (!(e instanceof ProxyReplyError)) throw e;
    return 'error';
  }
}

export function fuzz(data) {
  if (data.length < 2) return;
  const read = READERS[data[1] % READERS.length];
  const parts = chunks(Buffer.concat([data.subarray(0, 1), data.subarray(2)]));
  let buf = Buffer.alloc(0);
  let got = 'more';
  for (const c of parts) {
    buf = Buffer.concat([buf, c]);
    got = outcome(read, buf);
    if (got !== 'more') break;
  }
  if (got === 'more') return;
  if (got !== 'error') {
    const [, len] = got.split('@').map(Number);
    if (!(len > 0 && len <= buf.length)) throw new Error(`read length ${len} outside the ${buf.length} bytes given`);
  }
  const whole = Buffer.concat(parts);
  const once = outcome(read, whole);
  if (once !== got)
    throw new Error(`fed in chunks: ${got}; fed whole: ${once}; input ${Buffer.from(data).toString('hex')}`);
}
