/** HTTP/3 front listener over our own HTTP/3 server (startH3Server); requests reach the forwarder as handler calls, as on the TCP fronts. */
import type { H3Server } from '../transport/h3-server.js';
import type { LimitsConfig, ListenerConfig } from './config.js';
import type { FrontInfo } from './forward.js';
import { frontHandler, type Listener, type ListenerHooks } from './listeners.js';

export class H3Listener implements Listener {
  config: ListenerConfig;
  #hooks: ListenerHooks;
  #server: H3Server | null = null;
  readonly #limits: LimitsConfig;

  constructor(cfg: ListenerConfig, limits: LimitsConfig, hooks: ListenerHooks) {
    this.config = cfg;
    this.#hooks = hooks;
    this.#limits = limits;
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
      ...(tls.certificates.length ? { certificates: tls.certificates.map((c) => ({ cert: new Uint8Array(c.cert), key: new Uint8Array(c.key) })) } : {}),
      handler: frontHandler(this.#hooks, info),
      // Slowloris over QUIC: a request stream without its head after this is rejected (H3_REQUEST_REJECTED).
      headersTimeoutMs: this.#limits.requestHeaderTimeoutMs,
      ...(cfg.congestionControl ? { quic: { cc: cfg.congestionControl } } : {}),
      ...(cfg.qpack ? { qpack: cfg.qpack } : {}),
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
