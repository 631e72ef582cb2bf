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

/**
 * The priority a request starts with (RFC 9218 §4, §7): a PRIORITY_UPDATE
 * that arrived before the request is the client's most recent signal and
 * wins; otherwise the `priority` header (several lines are one Dictionary,
 * RFC 8941 §3.2); otherwise the defaults.
 */
export function requestPriority(
  fields: ReadonlyArray<readonly [string, string]>,
  update: string | undefined,
): Priority {
  if (update !== undefined) return parsePriority(update);
  let header: string | null = null;
  for (const [k, v] of fields) if (k === 'priority') header = header === null ? v : `${header}, ${v}`;
  return parsePriority(header);
}

/**
 * How many PRIORITY_UPDATE frames for requests not yet seen a server keeps
 * (RFC 9218 §7.2 lets a client prioritise a stream before opening it, up to
 * its stream limit; our servers grant 128 request streams by default).
 */
export const PENDING_PRIORITY_LIMIT = 128;

/**
 * PRIORITY_UPDATE values waiting for their request, newest per stream, at
 * most `limit`: beyond it the oldest is dropped (a priority is a hint; the
 * request then starts from its header).
 */
export class PendingPriorities {
  readonly #values = new Map<number, string>();
  readonly #limit: number;

  constructor(limit = PENDING_PRIORITY_LIMIT) {
    this.#limit = limit;
  }

  get size(): number {
    return this.#values.size;
  }

  set(streamId: number, value: string): void {
    this.#values.delete(streamId);
    this.#values.set(streamId, value);
    if (this.#values.size > this.#limit) this.#values.delete(this.#values.keys().next().value!);
  }

  /** The value for `streamId`, removed; undefined when none waits. */
  take(streamId: number): string | undefined {
    const v = this.#values.get(streamId);
    if (v !== undefined) this.#values.delete(streamId);
    return v;
  }
}
