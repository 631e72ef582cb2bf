/**
 * `originlink:endpoint`: each change of an endpoint's standing, published once when it happens (the service
 * logs them; any program may subscribe with node:diagnostics_channel).
 */
import diagnostics from 'node:diagnostics_channel';

export type EndpointEventKind = 'ejected' | 'readmitted' | 'unhealthy' | 'healthy' | 'panic' | 'panic-over';

export interface EndpointEvent {
  /** The group's name (its key unless named). */
  group: string;
  /**
   * The endpoint's origin (`scheme://host[:port]`); for panic events, every endpoint of the group, joined by spaces.
   */
  endpoint: string;
  event: EndpointEventKind;
  /** What led to it (the last failure, the check's answer). */
  reason: string;
  /** `ejected`: for how long, ms. */
  forMs?: number;
}

export const endpointChannel = diagnostics.channel('originlink:endpoint');

export function publishEndpoint(e: EndpointEvent): void {
  if (endpointChannel.hasSubscribers) endpointChannel.publish(e);
}
