/**
 * One log line per change of an origin group's endpoint (group/diagnostics.ts `originlink:endpoint`): ejected,
 * unhealthy and panic as warnings; re-admitted, healthy again and panic over as info. Each change is published
 * once, so each is logged once.
 */
import diagnostics from 'node:diagnostics_channel';
import type { Logger } from 'pino';
import { endpointChannel, type EndpointEvent } from '../group/diagnostics.js';

const TEXT: Record<EndpointEvent['event'], string> = {
  ejected: 'endpoint ejected: failures in a row from live requests',
  readmitted: 'endpoint re-admitted',
  unhealthy: 'endpoint unhealthy: health checks failed',
  healthy: 'endpoint healthy again: health checks passed',
  panic: 'every endpoint of the origin is out: all of them are used (panic)',
  'panic-over': 'origin has usable endpoints again: panic over',
};

/** Starts logging; returns the function that stops it. */
export function logEndpointEvents(log: Logger): () => void {
  const on = (m: unknown): void => {
    const e = m as EndpointEvent;
    const fields = {
      origin: e.group,
      endpoint: e.endpoint,
      event: e.event,
      reason: e.reason,
      ...(e.forMs !== undefined ? { forMs: e.forMs } : {}),
    };
    if (e.event === 'ejected' || e.event === 'unhealthy' || e.event === 'panic') log.warn(fields, TEXT[e.event]);
    else log.info(fields, TEXT[e.event]);
  };
  diagnostics.subscribe(endpointChannel.name as string, on);
  return () => diagnostics.unsubscribe(endpointChannel.name as string, on);
}
