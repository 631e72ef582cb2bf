/**
 * Where a connection's handshake is, as one state (replacing four
 * booleans). Client 0-RTT (RFC 9001 §4.6.1): with a stored ticket the
 * client may report 0-RTT before its first flight (`openEarly`), and learns
 * only after writing that flight whether quiche really is in early data; a
 * ticket that allows none turns the state to `early-lost` (what was written
 * early leaves after the handshake). Sans-IO: quiche's answers come in as
 * arguments.
 */
export type Handshake =
  /** Nothing written yet, no early data reported. */
  | { phase: 'fresh' }
  /** `openEarly()`: 0-RTT reported before the first flight is written. */
  | { phase: 'opened' }
  /** The first flight is written; no early data (a server, or a client without a usable ticket). */
  | { phase: 'sent' }
  /** 0-RTT keys in use and reported; `opened`: reported before the first flight. */
  | { phase: 'early'; opened: boolean }
  /** Reported early, but the ticket allows no early data. */
  | { phase: 'early-lost' }
  | { phase: 'established' };

/** May streams be written as 0-RTT now? quiche's isInEarlyData() is asked only where the phase does not answer. */
export function inEarlyData(h: Handshake, q: { isInEarlyData(): boolean }): boolean {
  switch (h.phase) {
    case 'established':
    case 'early-lost':
      return false;
    case 'opened':
      return true;
    case 'early':
      return h.opened || q.isInEarlyData();
    default:
      return q.isInEarlyData();
  }
}

/** Was 0-RTT reported to the application (onConnected(true))? */
export function earlyReported(h: Handshake): boolean {
  return h.phase === 'opened' || h.phase === 'early' || h.phase === 'early-lost';
}

/**
 * The state once the first flight has been written. `lost`: the connection
 * was opened early but quiche is neither in early data nor established — the
 * ticket allowed no early data.
 */
export function afterFirstFlight(
  h: Handshake,
  quicheEarly: boolean,
  quicheEstablished: boolean,
): { next: Handshake; lost: boolean } {
  if (h.phase === 'opened') {
    if (!quicheEarly && !quicheEstablished) return { next: { phase: 'early-lost' }, lost: true };
    return { next: { phase: 'early', opened: true }, lost: false };
  }
  if (h.phase === 'fresh') return { next: { phase: 'sent' }, lost: false };
  return { next: h, lost: false };
}
