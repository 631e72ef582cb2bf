/** originlink: warm, reusable connections from an edge to origin servers. */
export { Agent } from './agent/agent.js';
export type {
  AgentOptions,
  DnsOptions,
  RequestOptions,
  RequestCommon,
  RequestTarget,
  TlsOptions,
  OriginOverrides,
} from './agent/options.js';
export { Pool, type PoolResult } from './pool/pool.js';
export { OriginResponse, type ResponseTimings } from './agent/response.js';
export { DEFAULT_POOL_OPTIONS, resolvePoolOptions, type PoolOptions } from './pool/options.js';
export { MemorySessionStore, type SessionStore } from './store/session-store.js';
export { FileSessionStore } from './store/file-session-store.js';
export {
  RedisSessionStore,
  type RedisSessionStoreOptions,
  type RedisSessionStoreStats,
} from './store/redis-session-store.js';
export { RedisLink, type RedisLinkOptions, type RedisLinkStats } from './store/redis-link.js';
export {
  RedisOriginCache,
  type RedisOriginCacheOptions,
  type RedisOriginCacheStats,
} from './store/redis-origin-cache.js';
export { openStores, type Stores, type StoresOptions } from './store/open-stores.js';
export type { PoolStats } from './pool/stats.js';
export { channels } from './pool/diagnostics.js';
export type {
  CompleteBody,
  ConnectionFacts,
  ConnEvent,
  ConnRequest,
  ConnResponse,
  HeaderList,
  PooledConnection,
  Protocol,
  RequestBody,
} from './http/types.js';
export { ErrorCode, OriginlinkError, isOriginlinkError, type ErrorCodeValue, type ErrorSide } from './errors.js';
export type { ProtocolPolicy } from './connect/connect.js';
export type { EarlyDataPolicy } from './http/early-data.js';
export { probeOrigin, type ProbeOptions, type ProbeResult } from './probe/probe.js';
export { parseAltSvc, type AltService, type AltSvcResult } from './probe/alt-svc.js';
export { MemoryOriginCache, FileOriginCache, type OriginCache, type OriginFacts } from './store/origin-cache.js';
export type { SelectionOptions, Choice } from './probe/state.js';
