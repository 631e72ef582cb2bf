// The priority field (RFC 9218 §4, a Structured Field dictionary): never throws.
import { parsePriority } from '../../dist/h3/priority.js';

export function fuzz(data) {
  parsePriority(data.toString('latin1'));
}
