/** `originlink probe URL`: what the origin supports and which protocol `auto` would choose, and why. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { FileOriginCache } from '../store/origin-cache.js';
import { probeOrigin, type ProbeOptions, type ProbeResult } from '../probe/probe.js';
import { ProxyRotation } from '../net/proxy.js';
import { Resolver } from '../net/resolver.js';
import { EGRESS_OPTIONS, EGRESS_USAGE, egressFromArgs } from './egress-args.js';

export const PROBE_USAGE = `usage: originlink probe URL [options]
  --json              print one JSON object
  --cacert FILE       trust this CA certificate (PEM)
  -k, --insecure      do not verify the certificate
  --servername NAME   SNI / certificate name
  --timeout MS        deadline of each probe step (default 3000)
  --no-quic           skip the QUIC handshake and 0-RTT steps
  --cache FILE        store the facts in this origin cache file (read by Agent's FileOriginCache)
${EGRESS_USAGE}`;

export async function runProbe(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      cacert: { type: 'string' },
      insecure: { type: 'boolean', short: 'k', default: false },
      servername: { type: 'string' },
      timeout: { type: 'string', default: '3000' },
      'no-quic': { type: 'boolean', default: false },
      cache: { type: 'string' },
      ...EGRESS_OPTIONS,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${PROBE_USAGE}\n`);
    return 0;
  }
  const egress = egressFromArgs(values);
  const url = positionals[0];
  if (!url) throw usage('a URL is required');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usage(`not a URL: ${url}`);
  }
  if (u.protocol !== 'https:') throw usage('probe needs an https:// URL');
  const timeout = Number(values.timeout);
  if (!Number.isInteger(timeout) || timeout < 1) throw usage('--timeout must be a positive integer (ms)');
  const o: ProbeOptions = { stepTimeoutMs: timeout, rejectUnauthorized: !values.insecure, noQuic: values['no-quic'] };
  if (values.cacert) o.ca = readFileSync(values.cacert);
  if (values.servername) o.servername = values.servername;
  if (values.cache) o.cache = new FileOriginCache(values.cache);
  // Several nodes: the probe goes through the one the policy would pick for this origin now.
  if (egress.proxy) o.proxy = new ProxyRotation(egress.proxy).pick(u.origin, Date.now());
  if (egress.dnsServers.length > 0) o.resolver = new Resolver({ servers: egress.dnsServers });
  const r = await probeOrigin(u, o);
  if (values.json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else process.stdout.write(render(r));
  return r.tcp.ok || r.quic.ok ? 0 : 1;
}

function render(r: ProbeResult): string {
  const ms = (n: number | null): string => (n === null ? '-' : `${n.toFixed(1)} ms`);
  const err = (e?: { code: string; message: string }): string => (e ? `FAILED ${e.code}: ${e.message}` : '');
  const lines = [
    `origin        ${r.origin}`,
    `tcp+tls       ${r.tcp.ok ? `ok, ALPN offered ${r.tcp.alpnOffered.join(',')} → ${r.tcp.alpn ?? 'none'} (${r.tcp.protocol}), ${r.tcp.tlsVersion}, connect ${ms(r.tcp.connectMs)}, tls ${ms(r.tcp.tlsMs)}, ${r.tcp.remoteAddress}${r.tcp.family ? ` (IPv${r.tcp.family}, ${r.tcp.attempts ?? 1} attempt(s))` : ''}` : err(r.tcp.error)}`,
  ];
  if (r.proxy) lines.push(`proxy         ${r.proxy} (TCP steps tunnelled)`);
  if (r.tcp.certificate)
    lines.push(
      `certificate   ${r.tcp.certificate.subject} (issuer ${r.tcp.certificate.issuer}, until ${r.tcp.certificate.validTo}) ${r.tcp.certificate.subjectAltName ?? ''}`,
    );
  if (r.tcp.ok) {
    lines.push(
      `http          ${r.http.ok ? `status ${r.http.status}, Alt-Svc ${r.http.altSvc ?? '(none)'}` : err(r.http.error)}`,
    );
    if (r.http.h3Advertised)
      lines.push(
        `h3 advertised port ${r.http.h3Advertised.port}${r.http.h3Advertised.host ? ` on ${r.http.h3Advertised.host}` : ''}, ma=${r.http.h3Advertised.maxAgeS} s`,
      );
    lines.push(
      `keep-alive    ${r.http.keepAliveTimeoutMs === null ? 'no hint' : `timeout ${r.http.keepAliveTimeoutMs / 1000} s`}; max concurrent streams ${r.http.maxConcurrentStreams ?? '-'}`,
    );
    lines.push(
      `reconnect     ${r.reconnect.ok ? `TLS resumed ${r.reconnect.tlsResumed}, TFO ${r.reconnect.tfoAttempted ? (r.reconnect.tfoAccepted ? 'data accepted' : 'not accepted') : 'not attempted'}` : err(r.reconnect.error)}`,
    );
  }
  if (r.quic.attempted) {
    lines.push(
      `quic          port ${r.quic.port}: ${r.quic.ok ? `handshake ${ms(r.quic.handshakeMs)}, rtt ${ms(r.quic.rttMs)}, max streams ${r.quic.maxConcurrentStreams ?? '-'}` : err(r.quic.error)}`,
    );
    if (r.earlyData.attempted)
      lines.push(
        `0-rtt         ${r.earlyData.ok ? `resumed ${r.earlyData.resumed}, early data ${r.earlyData.accepted ? 'accepted' : 'not accepted'}` : err(r.earlyData.error)}`,
      );
  }
  if (r.quic.notAttempted) lines.push(`quic          not attempted: ${r.quic.notAttempted}`);
  lines.push(`rtt estimate  ${ms(r.rttMs)}`);
  lines.push(`would choose  ${r.chosen.protocol}: ${r.chosen.reason}`);
  return `${lines.join('\n')}\n`;
}

function usage(msg: string): OriginlinkError {
  return new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `${msg}\n${PROBE_USAGE}`);
}
