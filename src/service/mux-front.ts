/**
 * Fronts on our own multiplexed servers (HTTP/2 and HTTP/3): the forwarder
 * speaks the req/res shapes of Node's HTTP/1 server, so each request is
 * wrapped: the request body Readable carries the head fields, and the
 * response is a PassThrough whose `writeHead` answers the server's handler.
 * Limits: response trailers are not relayed over these fronts.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { OutgoingHttpHeaders } from 'node:http';
import type { HeaderList } from '../http/types.js';
import type { RequestHandler, ServerRequest, ServerResponse } from '../transport/server-types.js';
import type { FrontInfo, FrontRequest, FrontResponse } from './forward.js';
import type { ListenerHooks } from './listeners.js';

class MuxFrontResponse extends PassThrough {
  headersSent = false;
  readonly chunkedEncoding = false;
  #answer: (r: ServerResponse) => void;

  constructor(answer: (r: ServerResponse) => void) {
    super();
    this.#answer = answer;
  }

  writeHead(status: number, headers: OutgoingHttpHeaders = {}): this {
    const list: HeaderList = [];
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined || k === 'connection') continue;
      for (const x of Array.isArray(v) ? v : [v]) list.push([k.toLowerCase(), String(x)]);
    }
    this.headersSent = true;
    this.#answer({ status, headers: list, body: this });
    return this;
  }

  addTrailers(): void { /* not relayed (see file comment) */ }
}

function hasNoBody(body: Readable): boolean {
  const st = (body as Readable & { _readableState?: { ended?: boolean } })._readableState;
  return body.readableEnded || (st?.ended === true && body.readableLength === 0);
}

/** The handler of an HTTP/2 or HTTP/3 front: each request goes to the forwarder in Node's shapes. */
export function muxFrontHandler(hooks: Pick<ListenerHooks, 'handle'>, info: FrontInfo, version: 2 | 3): RequestHandler {
  return (r: ServerRequest) => new Promise<ServerResponse>((resolve) => {
    const raw = [':authority', r.authority];
    for (const [k, v] of r.headers) raw.push(k, v);
    const noBody = hasNoBody(r.body);
    const req = Object.assign(r.body, {
      httpVersionMajor: version,
      httpVersion: String(version),
      method: r.method,
      url: r.path,
      rawHeaders: raw,
      socket: { remoteAddress: r.remoteAddress },
      stream: { endAfterHeaders: noBody },
    });
    const res = new MuxFrontResponse(resolve);
    res.once('close', () => { if (!res.headersSent) resolve({ status: 502, headers: [] }); });
    r.signal.addEventListener('abort', () => res.destroy(), { once: true });
    hooks.handle(req as unknown as FrontRequest, res as unknown as FrontResponse, info);
  });
}
