/**
 * A member's side of the member links (docs/fleet.md): its member listener (HTTP/2 cleartext on a unix socket of its
 * own for a worker, HTTP/2 over TLS between instances), where other members send the requests of the origins it owns. A request without the run's token is
 * refused (403): the member port is no open proxy. The request goes to the named origin of this member's own config
 * direct — one forward at most — with the fields, authority and body the sending member made for the origin; the
 * origin's answer goes back as it is (end-to-end fields, body, trailers), and a failure as the status the forwarder
 * gives it with its code.
 */
import { toOriginlinkError } from '../errors.js';
import { endToEnd, markClean } from '../http/fields.js';
import type { HeaderList } from '../http/types.js';
import type { ServerRequest, ServerResponse } from '../server/request.js';
import { startH2Server, type H2Server } from '../server/h2.js';
import { LegSignal } from '../util/leg-signal.js';
import {
  FLEET_AUTHORITY,
  FLEET_BEAT,
  FLEET_CONFIG,
  FLEET_FROM,
  FLEET_IDLE,
  FLEET_ORIGIN,
  FLEET_TOKEN,
  FLEET_WEIGHT,
  type Fleet,
} from './fleet.js';
import { statusForError } from './forward-response.js';
import { trailerList } from './headers.js';
import type { Upstream, UpstreamRequest } from './upstream.js';

/** What the member listener reads of its service now (the fleet and the upstreams change with reloads). */
export interface MemberHooks {
  fleet(): Fleet | null;
  upstream(name: string): Upstream | undefined;
}

/**
 * The member listener: h2c on a unix socket of its own (the workers of one machine: `at.path`, in the primary's
 * directory of mode 0700), or h2 over TLS on `at`'s host and port with mutual certificates (a fleet of instances: only
 * a member's certificate gets a request in).
 */
export function startMemberListener(
  hooks: MemberHooks,
  at: { path: string } | { host: string; port: number; cert: Buffer; key: Buffer; ca: Buffer },
): Promise<H2Server> {
  return startH2Server({
    ...('path' in at
      ? { path: at.path }
      : { host: at.host, port: at.port, cert: at.cert, key: at.key, clientCa: at.ca }),
    // Each worker reachable as itself: a cluster worker's listen() would share one port among all of them.
    exclusive: true,
    handler: (req) => serveMember(hooks, req),
    maxConcurrentStreams: 1000,
    idleTimeoutMs: 0,
  });
}

async function serveMember(hooks: MemberHooks, req: ServerRequest): Promise<ServerResponse> {
  const fleet = hooks.fleet();
  let token: string | undefined;
  let origin: string | undefined;
  let authority: string | undefined;
  let config: string | undefined;
  let beat = false;
  const headers: HeaderList = [];
  for (const f of req.headers) {
    if (f[0] === FLEET_TOKEN) token = f[1];
    else if (f[0] === FLEET_ORIGIN) origin = f[1];
    else if (f[0] === FLEET_AUTHORITY) authority = f[1];
    else if (f[0] === FLEET_CONFIG) config = f[1];
    else if (f[0] === FLEET_BEAT) beat = true;
    else if (f[0] !== FLEET_FROM) headers.push(f);
  }
  if (fleet === null || !fleet.trusts(token)) return refuse(403, 'not a member of this fleet', 'fleet_untrusted');
  // A member's heartbeat (Fleet's beats): this process answers with its weight, no origin asked.
  if (beat) return { status: 204, headers: [[FLEET_WEIGHT, String(fleet.weight)]], body: '' };
  const u = origin === undefined ? undefined : hooks.upstream(origin);
  // A sender whose config of the origin is not this member's (a reload that reached one of them, another build):
  // 421, and it sends the request direct (RFC 9110 §15.5.20: this server cannot answer for that target).
  if (u === undefined)
    return refuse(421, `no origin ${JSON.stringify(origin ?? '')} in this member's config`, 'fleet_unknown_origin');
  if (config !== u.configDigest)
    return refuse(421, `origin ${u.name} is configured differently here`, 'fleet_config_mismatch');
  fleet.noteReceived(u.name);
  const signal = new LegSignal(null);
  req.onAbort(() => signal.abort());
  const o: UpstreamRequest = {
    path: req.path,
    method: req.method,
    headers: markClean(headers),
    // A light signal, not the request's AbortSignal (made on first read: an AbortController per forwarded request,
    // 1.3 % of an owner's CPU in a profile).
    signal,
    onInformational: (status, fields, reason) => {
      if (status !== 100) req.informational(status, endToEnd(fields), reason);
    },
  };
  if (authority !== undefined) o.authority = authority;
  if (req.bodyLength !== 0) o.body = req.body;
  u.inflight++;
  try {
    const up = await u.requestDirect(o);
    const headers = endToEnd(up.headers);
    // The origin's Keep-Alive hint, which the hop dropped with the other hop-by-hop fields: the sender's `auto` weighs
    // its rate against it (Fleet.noteIdle). A field of that name from the origin itself would pass for ours: it goes.
    for (let i = headers.length - 1; i >= 0; i--)
      if ((headers[i] as [string, string])[0] === FLEET_IDLE) headers.splice(i, 1);
    const idle = u.idleTold(up);
    if (idle !== null) headers.push([FLEET_IDLE, String(idle)]);
    const whole = up.takeComplete();
    if (whole) {
      u.done();
      const res: ServerResponse = { status: up.status, headers, body: whole.bytes };
      if (whole.trailers.length) res.trailers = trailerList(whole.trailers) ?? [];
      return res;
    }
    up.body.once('close', () => u.done());
    return {
      status: up.status,
      headers,
      body: up.body,
      trailersLater: up.trailers.then(trailerList, () => null),
    };
  } catch (e) {
    u.done();
    const err = toOriginlinkError(e);
    return refuse(statusForError(err.code), err.message.split('\n')[0] ?? err.code, err.code);
  }
}

function refuse(status: number, reason: string, code: string): ServerResponse {
  return {
    status,
    headers: [
      ['content-type', 'text/plain; charset=utf-8'],
      ['x-originlink-error', code],
    ],
    body: `${status}: ${reason}\n`,
  };
}
