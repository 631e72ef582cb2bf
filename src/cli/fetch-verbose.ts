/**
 * `originlink fetch -v`: the connection's story on stderr, in curl -v's shape (`*` what happened, `>` sent, `<`
 * received).
 */
import type { OriginResponse } from '../agent/response.js';
import type { ProtocolPolicy } from '../connect/connect.js';
import type { OriginlinkError } from '../errors.js';
import type { HeaderList } from '../http/types.js';
import { redact } from '../util/redact.js';

export const HTTP_VERSION: Record<string, string> = { h1: 'HTTP/1.1', h2: 'HTTP/2', h3: 'HTTP/3' };

export function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function tellRequest(
  say: (l: string) => void,
  url: string,
  method: string,
  headers: HeaderList,
  policy: ProtocolPolicy,
): void {
  const u = new URL(url);
  say(`* ${method} ${redact(url)} (protocol policy ${policy})`);
  say(`> ${method} ${u.pathname}${u.search}`);
  say(`> host: ${u.host}`);
  for (const [n, v] of headers) say(`> ${n.toLowerCase()}: ${v}`);
  say('>');
}

/** `ttfbMs`: measured by the caller on the real clock (the Agent's reading may lag by the loop's turn). */
export function tellResponse(say: (l: string) => void, res: OriginResponse, ttfbMs: number): void {
  const f = res.connection;
  const alpn = f.alpn ? `ALPN ${f.alpn}` : 'no ALPN';
  say(
    `* ${res.reused ? 'Re-using' : 'Connected:'} connection #${res.connectionId} to ${f.remoteAddress} port ${f.remotePort} from ${f.localAddress || '?'}:${f.localPort} over ${res.protocol} (${alpn})`,
  );
  if (!res.reused && f.proxy)
    say(`* Through proxy ${f.proxy.node} (${f.proxy.kind} tunnel; HTTP/3 not attempted: TCP-only proxy)`);
  else if (!res.reused && f.family) say(`* IPv${f.family}, ${f.attempts ?? 1} connection attempt(s) (Happy Eyeballs)`);
  if (!res.reused) {
    const hs =
      res.protocol === 'h3'
        ? `QUIC handshake ${round(f.connectMs)} ms`
        : `TCP connect ${round(f.connectMs)} ms${f.tlsVersion ? `, TLS handshake ${round(f.tlsMs)} ms` : ''}`;
    say(
      `* ${hs}${f.tlsVersion ? `, ${f.tlsVersion}` : ', cleartext'}; session resumed: ${f.resumed ? 'yes' : 'no'}; TCP Fast Open: ${f.tfo ? 'yes (SYN data accepted)' : res.protocol === 'h3' ? 'n/a' : 'no'}`,
    );
  }
  if (res.protocol === 'h3') {
    const early = res.earlyData
      ? 'yes (sent in 0-RTT, accepted)'
      : res.earlyDataRefused
        ? `refused (${res.earlyDataRefused}), resent after the handshake`
        : 'no';
    say(`* 0-RTT early data: ${early}`);
  }
  if (f.rttMs !== null) say(`* RTT estimate ${round(f.rttMs)} ms`);
  say(`* Response head after ${round(ttfbMs)} ms (waited ${round(res.timings.queueMs)} ms for a connection)`);
  say(`< ${HTTP_VERSION[res.protocol] ?? res.protocol} ${res.status}`);
  for (const [n, v] of res.headers) say(`< ${n}: ${v}`);
  say('<');
}

export function tellError(say: (l: string) => void, e: OriginlinkError): void {
  const facts = e.facts
    ? ` (request sent: ${e.facts.requestSent ? 'yes' : 'no'}, response started: ${e.facts.responseStarted ? 'yes' : 'no'}, reused connection: ${e.facts.reused ? 'yes' : 'no'})`
    : '';
  say(`* Failed: ${e.code} ${e.message}${facts}; ${String(e.details['attempts'] ?? 1)} attempt(s)`);
}
