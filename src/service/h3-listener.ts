/**
 * HTTP/3 front listener over our own HTTP/3 server (startH3Server); requests reach the forwarder as handler calls, as
 * on the TCP fronts.
 */
import type { EndpointStats } from '../quic/endpoint.js';
import type { H3Server, H3ServerOptions } from '../server/h3.js';
import { IntervalGate } from '../util/interval-gate.js';
import type { LimitsConfig, ListenerConfig } from './config.js';
import type { FrontInfo } from './forward.js';
import { cannotListen, frontHandler, type Listener, type ListenerHooks } from './listeners.js';
import { workerH3Steer, workerSlot } from './worker-slot.js';

export class H3Listener implements Listener {
  config: ListenerConfig;
  #hooks: ListenerHooks;
  #server: H3Server | null = null;
  #limits: LimitsConfig;
  /** Stops the ticket key rotation's calls. */
  #untick: (() => void) | null = null;
  /** One warning per 10 s while clients are refused for the memory budget (as the TCP fronts' maxClientConnections). */
  #refusals = new IntervalGate(10_000, 1);

  constructor(cfg: ListenerConfig, limits: LimitsConfig, hooks: ListenerHooks) {
    this.config = cfg;
    this.#hooks = hooks;
    this.#limits = limits;
  }

  get port(): number {
    return this.#server?.address.port ?? 0;
  }

  /** Its QUIC endpoint's counters (connections accepted, stray packets, stateless resets, …), null before start. */
  quicStats(): EndpointStats | null {
    return this.#server?.stats() ?? null;
  }

  async start(): Promise<void> {
    const { startH3Server } = await import('../server/h3.js');
    const cfg = this.config;
    const tls = cfg.tls as NonNullable<ListenerConfig['tls']>;
    const info: FrontInfo = {
      listener: cfg.name,
      secure: true,
      ...(tls.client ? { clientCertHeader: tls.client.header } : {}),
    };
    this.#server = await startH3Server({
      host: cfg.host,
      port: cfg.port,
      ...certsOf(tls),
      // The fleet's key of the hour (ticket-keys.ts), re-keyed as it rotates.
      ticketKey: this.#hooks.tickets.key(),
      // Retry tokens (RFC 9000 §8.1.2) one instance mints, another takes: the same fleet secret.
      retryKey: this.#hooks.tickets.fleetKey('originlink retry token'),
      // Stateless resets (RFC 9000 §10.3) any process of the fleet can make for any of our connection IDs.
      resetKey: this.#hooks.tickets.fleetKey('originlink stateless reset'),
      ...steeringOf(cfg),
      // A 0-RTT handshake taken at most once by any instance that opens our tickets (RFC 8446 §8).
      earlyDataRecord: this.#hooks.earlyData,
      handler: frontHandler(this.#hooks, info),
      // Slowloris over QUIC: a request stream without its head after this is rejected (H3_REQUEST_REJECTED); a
      // connection without a first request after it is let go, as one idle this long after its last.
      ...serverLimits(this.#limits),
      onConnection: (open) => {
        if (open) this.#hooks.metrics.front.connections.inc({ listener: cfg.name });
        else this.#hooks.metrics.front.connections.dec({ listener: cfg.name });
      },
      onRefused: () => this.#refused(),
      ...(tls.client
        ? {
            clientCa: new Uint8Array(tls.client.ca),
            clientAuth: tls.client.mode,
            onClientCertRefused: () =>
              this.#hooks.metrics.front.tlsRefused.inc({ listener: cfg.name, reason: 'client_cert' }),
          }
        : {}),
      ...(cfg.congestionControl || cfg.bbr
        ? {
            quic: {
              ...(cfg.congestionControl ? { cc: cfg.congestionControl } : {}),
              ...(cfg.bbr ? { bbr: cfg.bbr } : {}),
            },
          }
        : {}),
      ...(cfg.qpack ? { qpack: cfg.qpack } : {}),
      onError: (e) => this.#hooks.log.debug({ listener: cfg.name, err: (e as Error)?.message }, 'h3 handler error'),
    }).catch((e: unknown) => {
      throw cannotListen(cfg, (e as Error).cause ?? e);
    });
    const server = this.#server;
    this.#untick = this.#hooks.tickets.onRotate((k) => server.setTicketKey(k));
  }

  #refused(): void {
    const cfg = this.config;
    this.#hooks.metrics.front.refusedConnections.inc({ listener: cfg.name, reason: 'memory_budget' });
    const pass = this.#refusals.pass('memory_budget');
    if (pass)
      this.#hooks.log.warn(
        { listener: cfg.name, h3MemoryBytes: this.#limits.h3MemoryBytes, since: pass.since },
        'h3 listener over limits.h3MemoryBytes: new clients are refused (CONNECTION_REFUSED) until connections close (more within the interval are counted, not logged)',
      );
  }

  update(cfg: ListenerConfig, limits: LimitsConfig): void {
    const was = this.config.tls;
    this.config = cfg;
    this.#limits = limits;
    this.#server?.setLimits(serverLimits(limits));
    // New certificates go to connections accepted from now on (live ones keep theirs), as node:tls's setSecureContext
    // does on https.
    if (cfg.tls && was && !sameCerts(was, cfg.tls)) this.#server?.setCertificates(certsOf(cfg.tls));
  }

  async close(graceMs: number): Promise<void> {
    this.#untick?.();
    await this.#server?.close(graceMs);
  }
}

/** The service's limits as the h3 server takes them. */
function serverLimits(
  l: LimitsConfig,
): Pick<H3ServerOptions, 'headersTimeoutMs' | 'keepAliveTimeoutMs' | 'memoryBudgetBytes'> {
  return {
    headersTimeoutMs: l.requestHeaderTimeoutMs,
    keepAliveTimeoutMs: l.keepAliveTimeoutMs,
    memoryBudgetBytes: l.h3MemoryBytes,
  };
}

type ListenerTls = NonNullable<ListenerConfig['tls']>;

function certsOf(t: ListenerTls): Pick<H3ServerOptions, 'cert' | 'key' | 'certificates'> {
  return {
    cert: new Uint8Array(t.cert),
    key: new Uint8Array(t.key),
    ...(t.certificates.length
      ? { certificates: t.certificates.map((c) => ({ cert: new Uint8Array(c.cert), key: new Uint8Array(c.key) })) }
      : {}),
  };
}

function sameCerts(a: ListenerTls, b: ListenerTls): boolean {
  const pairs = (t: ListenerTls): Buffer[] => [t.cert, t.key, ...t.certificates.flatMap((c) => [c.cert, c.key])];
  const x = pairs(a);
  const y = pairs(b);
  return x.length === y.length && x.every((buf, i) => buf.equals(y[i] as Buffer));
}

/** `serve --workers` with steering (docs/workers.md): this worker's place in the listener's reuseport group. */
function steeringOf(cfg: ListenerConfig): Pick<H3ServerOptions, 'steer'> {
  const at = workerH3Steer()?.[cfg.name];
  const slot = workerSlot();
  return at && slot !== null && at.port === cfg.port ? { steer: { mapFd: at.fd, index: slot - 1 } } : {};
}
