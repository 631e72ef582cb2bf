/**
 * HTTP/3 front listener over our own HTTP/3 server (startH3Server). The
 * forwarder speaks Node's req/res shapes, so each HTTP/3 request is wrapped:
 * the request body Readable carries the head fields, and the response is a
 * PassThrough whose `writeHead` answers the HTTP/3 handler.
 * Limits: response trailers are not relayed over this listener.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { OutgoingHttpHeaders } from 'node:http';
import type { H3Server, H3ServerRequest, H3ServerResponse } from '../transport/h3-server.js';
import type { HeaderList } from '../http/types.js';
import type { LimitsConfig, ListenerConfig } from './config.js';
import type { FrontInfo, FrontRequest, FrontResponse } from './forward.js';
import type { Listener, ListenerHooks } from './listeners.js';

class H3FrontResponse extends PassThrough {
  headersSent = false;
  readonly chunkedEncoding = false;
  #answer: (r: H3ServerResponse) => void;

  constructor(answer: (r: H3ServerResponse) => void) {
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

export class H3Listener implements Listener {
  config: ListenerConfig;
  #hooks: ListenerHooks;
  #server: H3Server | null = null;

  constructor(cfg: ListenerConfig, _limits: LimitsConfig, hooks: ListenerHooks) {
    this.config = cfg;
    this.#hooks = hooks;
  }

  get port(): number { return this.#server?.address.port ?? 0; }

  async start(): Promise<void> {
    const { startH3Server } = await import('../transport/h3-server.js');
    const cfg = this.config;
    const tls = cfg.tls as NonNullable<ListenerConfig['tls']>;
    const info: FrontInfo = { listener: cfg.name, secure: true };
    this.#server = await startH3Server({
      host: cfg.host,
      port: cfg.port,
      cert: new Uint8Array(tls.cert),
      key: new Uint8Array(tls.key),
      handler: (r: H3ServerRequest) => new Promise<H3ServerResponse>((resolve) => {
        const raw = [':authority', r.authority];
        for (const [k, v] of r.headers) raw.push(k, v);
        const noBody = hasNoBody(r.body);
        const req = Object.assign(r.body, {
          httpVersionMajor: 3,
          httpVersion: '3',
          method: r.method,
          url: r.path,
          rawHeaders: raw,
          socket: { remoteAddress: r.remoteAddress },
          stream: { endAfterHeaders: noBody },
        });
        const res = new H3FrontResponse(resolve);
        res.once('close', () => { if (!res.headersSent) resolve({ status: 502, headers: [] }); });
        r.signal.addEventListener('abort', () => res.destroy(), { once: true });
        this.#hooks.handle(req as unknown as FrontRequest, res as unknown as FrontResponse, info);
      }),
      onError: (e) => this.#hooks.log.debug({ listener: cfg.name, err: (e as Error)?.message }, 'h3 handler error'),
    });
  }

  update(cfg: ListenerConfig): void {
    this.config = cfg; // certificates apply to new QUIC configs only on rebind
  }

  async close(graceMs: number): Promise<void> {
    await this.#server?.close(graceMs);
  }
}
