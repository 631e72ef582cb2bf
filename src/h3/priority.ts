/**
 * The `priority` request header of RFC 9218 §4 (Extensible Priorities):
 * a Structured Field Dictionary (RFC 8941 §3.2) whose `u` member is the
 * urgency (Integer 0–7, 0 most urgent, default 3, §4.1) and whose `i` member
 * says the response can be used incrementally (Boolean, default false,
 * §4.2). Unknown members, parameters and values of the wrong type or out of
 * range are ignored (§4: "MUST ignore"), so a bad header gives the defaults
 * and never an error.
 */
export interface Priority {
  urgency: number;
  incremental: boolean;
}

export const DEFAULT_PRIORITY: Readonly<Priority> = Object.freeze({ urgency: 3, incremental: false });

export function parsePriority(value: string | null | undefined): Priority {
  const out: Priority = { ...DEFAULT_PRIORITY };
  if (!value) return out;
  for (const raw of value.split(',')) {
    // Parameters (";...") carry nothing for u and i.
    const member = raw.split(';')[0]!.trim();
    if (member === '') continue;
    const eq = member.indexOf('=');
    const key = eq < 0 ? member : member.slice(0, eq).trim();
    const v = eq < 0 ? null : member.slice(eq + 1).trim();
    if (key === 'u') {
      // sf-integer: digits only here (a negative urgency is out of range anyway).
      if (v !== null && /^[0-9]{1,15}$/.test(v)) {
        const n = Number(v);
        if (n <= 7) out.urgency = n;
      }
    } else if (key === 'i') {
      // A bare key is Boolean true; otherwise ?1 / ?0.
      if (v === null || v === '?1') out.incremental = true;
      else if (v === '?0') out.incremental = false;
    }
  }
  return out;
}
