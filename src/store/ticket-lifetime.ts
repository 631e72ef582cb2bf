/**
 * When a stored TLS session / QUIC ticket stops being useful, read from the
 * session itself, so a shared store can expire it (Redis TTL) with it.
 *
 * Both shapes we store carry a DER `SSL_SESSION` (OpenSSL's i2d_SSL_SESSION
 * for node:tls; BoringSSL's SSL_SESSION_to_bytes inside quiche's blob, which
 * is `u64 length | session | u64 length | transport parameters`). Both put
 * `time [1] INTEGER` (seconds since the epoch) and `timeout [2] INTEGER`
 * (seconds) among the top-level fields; for TLS 1.3 clients set the timeout
 * from the ticket's lifetime (RFC 8446 §4.6.1, at most 7 days).
 */

const WEEK_MS = 7 * 86_400_000;

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function tlv(b: Uint8Array, at: number, limit: number): Tlv | null {
  if (at + 2 > limit) return null;
  const tag = b[at] as number;
  let len = b[at + 1] as number;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (b[start + i] as number);
    start += n;
  }
  const end = start + len;
  return end <= limit ? { tag, start, end } : null;
}

function intValue(b: Uint8Array, t: Tlv): number | null {
  if (t.tag !== 0x02 || t.end - t.start < 1 || t.end - t.start > 6) return null;
  let v = 0;
  for (let i = t.start; i < t.end; i++) v = v * 256 + (b[i] as number);
  return v;
}

function fromDer(b: Uint8Array, at: number): number | null {
  const seq = tlv(b, at, b.length);
  if (!seq || seq.tag !== 0x30) return null;
  let time: number | null = null;
  let timeout: number | null = null;
  // Bounded: every step moves forward inside the sequence.
  for (let p = seq.start; p < seq.end; ) {
    const f = tlv(b, p, seq.end);
    if (!f) return null;
    if (f.tag === 0xa1 || f.tag === 0xa2) {
      const inner = tlv(b, f.start, f.end);
      const v = inner ? intValue(b, inner) : null;
      if (f.tag === 0xa1) time = v;
      else timeout = v;
    }
    p = f.end;
  }
  return time !== null && timeout !== null ? (time + timeout) * 1000 : null;
}

/**
 * Epoch ms after which the session is no longer worth offering: from the
 * session's own time + timeout when readable, else `now + fallbackMs`;
 * never beyond a week from now (RFC 8446 §4.6.1).
 */
export function sessionExpiresAt(session: Uint8Array, now: number, fallbackMs: number): number {
  let at: number | null = null;
  if (session.length > 9 && session[8] === 0x30) {
    // quiche: a big-endian u64 length first.
    let n = 0;
    for (let i = 0; i < 8; i++) n = n * 256 + (session[i] as number);
    if (n > 0 && 8 + n <= session.length) at = fromDer(session.subarray(8, 8 + n), 0);
  }
  at ??= fromDer(session, 0);
  return Math.min(at ?? now + fallbackMs, now + WEEK_MS);
}
