/**
 * Is a string an IP literal, and of which family — what `net.isIP` answers, without loading `node:net` (the QUIC
 * path needs no other part of it, and a fresh process pays for loading it) and without Node's IPv6 regular
 * expression, which V8 compiles at its first use with a host name (bench/RESULTS.md `startup`).
 *
 * The same language as Node's: IPv4 in dotted-quad form, each part 0–255 without a leading zero; IPv6 in the text
 * forms of RFC 4291 §2.2 (groups of 1–4 hex digits, one `::` for a run of zero groups, an IPv4 tail counting as two
 * groups), with a zone (RFC 4007 §11) after `%` of letters, digits, `-`, `.` and `:`. test/unit/ip checks it against
 * `net.isIP` over generated strings.
 */

/** 4 or 6 for an IPv4 or IPv6 literal, 0 for anything else (a host name). */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (isIPv4(s, 0, s.length)) return 4;
  return isIPv6(s) ? 6 : 0;
}

/** `s[from, to)` is a dotted quad. */
function isIPv4(s: string, from: number, to: number): boolean {
  let parts = 0;
  let i = from;
  while (i < to) {
    let n = 0;
    let digits = 0;
    while (i < to) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      if (digits === 1 && n === 0) return false;
      n = n * 10 + (c - 48);
      if (n > 255) return false;
      digits++;
      i++;
    }
    if (digits === 0) return false;
    parts++;
    if (i === to) break;
    if (parts === 4 || s.charCodeAt(i) !== 46) return false;
    i++;
    if (i === to) return false;
  }
  return parts === 4;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function isZoneChar(c: number): boolean {
  return (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 /* - */ || c === 46 /* . */;
}

function isIPv6(s: string): boolean {
  let end = s.indexOf('%');
  if (end === -1) end = s.length;
  else {
    if (end === s.length - 1) return false;
    for (let i = end + 1; i < s.length; i++) if (!isZoneChar(s.charCodeAt(i))) return false;
  }
  if (end < 2) return false;
  let groups = 0;
  let elided = false;
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    elided = true;
    i = 2;
    if (i === end) return true;
  }
  while (i < end) {
    const start = i;
    while (i < end && i - start < 5 && isHex(s.charCodeAt(i))) i++;
    if (i < end && s.charCodeAt(i) === 46) {
      // An IPv4 tail ends the address and stands for two groups.
      if (!isIPv4(s, start, end)) return false;
      groups += 2;
      i = end;
      break;
    }
    const len = i - start;
    if (len === 0 || len > 4) return false;
    groups++;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (s.charCodeAt(i) === 58) {
      if (elided) return false;
      elided = true;
      i++;
      if (i === end) break;
    } else if (i === end) return false;
  }
  return elided ? groups <= 7 : groups === 8;
}
