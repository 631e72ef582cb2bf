// The forwarder's request checks on any field list: a verdict, never a throw.
import { DEFAULT_LIMITS } from '../../dist/service/config.js';
import { inspectRequest, upstreamHeaders } from '../../dist/service/headers.js';

export function fuzz(data) {
  const lines = data.toString('latin1').split('\n');
  const fields = [];
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':', 1);
    if (i > 0) fields.push([l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()]);
  }
  const mux = (data[0] ?? 0) % 2 === 1;
  inspectRequest(fields, mux ? (lines[0] ?? null) : null, mux, DEFAULT_LIMITS);
  upstreamHeaders(fields, {
    clientIp: '192.0.2.1',
    proto: 'https',
    authority: 'a',
    clientVersion: '1.1',
    via: 'ol',
    xff: 'append',
    teTrailers: false,
  });
}
