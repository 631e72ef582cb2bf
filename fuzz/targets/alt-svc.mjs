// Alt-Svc field values (RFC 7838 §3): never throws.
import { findH3, parseAltSvc } from '../../dist/probe/alt-svc.js';

export function fuzz(data) {
  findH3(parseAltSvc(data.toString('latin1')));
}
