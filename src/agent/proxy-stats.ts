/** What an Agent's pools did per egress proxy node (Agent.proxyStats). */
import type { H2ProxyLinks } from '../connect/h2-proxy-links.js';
import type { PoolCounters } from '../pool/stats.js';
import type { PoolRegistry } from './registry.js';

/** Per egress proxy node: what its pools did (live pools and recently forgotten ones). */
export interface ProxyNodeStats {
  node: string;
  requests: number;
  requestsOnReusedConnections: number;
  connectionsOpened: number;
  connectFailures: number;
  /** 1 − connectionsOpened / requests. */
  reuseRate: number;
  /**
   * `http2` nodes: HTTP/2 connections to the node open now (every tunnel is a stream of one of them); null otherwise.
   */
  nodeConnections: number | null;
  /**
   * `http2` nodes: connections to the node closed because a PING went unanswered (RFC 9113 §6.7; pool pingIntervalMs /
   * pingTimeoutMs); null otherwise.
   */
  nodeConnectionsDead: number | null;
  /** Mean TCP + TLS handshake through this node, ms (null before any). */
  meanHandshakeMs: number | null;
  /** Requests that needed no handshake × the mean handshake: time saved by reuse, ms. */
  handshakeMsSaved: number;
  errors: Record<string, number>;
}

/** Per egress proxy node: requests, connections opened, reuse rate, handshake time saved. */
export function proxyStats(registry: PoolRegistry, links: H2ProxyLinks): ProxyNodeStats[] {
  const by = new Map<string, PoolCounters[]>();
  const open = new Map<string, number>();
  const dead = new Map<string, number>();
  const add = (node: string, c: PoolCounters): void => {
    const l = by.get(node) ?? [];
    l.push(c);
    by.set(node, l);
  };
  for (const x of registry.values()) {
    const node = x.target.proxy;
    if (!node) continue;
    add(node.id, x.pool.counters);
    if (node.http2) {
      open.set(node.key, links.connections(node).filter((c) => c.state !== 'closed').length);
      dead.set(node.key, links.deadConnections(node));
    }
  }
  const perNode = (m: Map<string, number>, id: string): number | null => {
    let n: number | null = null;
    for (const [k, c] of m) if (k.startsWith(`${id}#`)) n = (n ?? 0) + c;
    return n;
  };
  for (const r of registry.retired()) if (r.proxy) add(r.proxy, r.counters);
  return [...by].map(([node, cs]) => {
    const sum = (f: (c: PoolCounters) => number): number => cs.reduce((a, c) => a + f(c), 0);
    const requests = sum((c) => c.requests);
    const opened = sum((c) => c.opened_);
    const mean = opened > 0 ? sum((c) => c.handshakeMs) / opened : null;
    const errors: Record<string, number> = {};
    for (const c of cs) for (const [k, v] of Object.entries(c.errors)) errors[k] = (errors[k] ?? 0) + v;
    return {
      node,
      requests,
      requestsOnReusedConnections: sum((c) => c.reusedRequests),
      connectionsOpened: opened,
      connectFailures: sum((c) => c.connectFailures),
      nodeConnections: perNode(open, node),
      nodeConnectionsDead: perNode(dead, node),
      reuseRate: requests === 0 ? 0 : Math.max(0, 1 - opened / requests),
      meanHandshakeMs: mean,
      handshakeMsSaved: mean === null ? 0 : Math.max(0, requests - opened) * mean,
      errors,
    };
  });
}
