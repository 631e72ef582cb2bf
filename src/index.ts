/** originlink: warm, reusable connections from an edge to origin servers. */
export { Agent, type AgentOptions, type RequestOptions, type RequestCommon, type RequestTarget, type TlsOptions, type OriginOverrides } from './agent/agent.js';
export { Pool, type PoolResult } from './pool/pool.js';
export { OriginResponse, type ResponseTimings } from './agent/response.js';
export { DEFAULT_POOL_OPTIONS, resolvePoolOptions, type PoolOptions } from './pool/options.js';
export { MemorySessionStore, type SessionStore } from './transport/session-store.js';
export { FileSessionStore } from './transport/file-session-store.js';
export type { PoolStats } from './pool/stats.js';
export { channels } from './pool/diagnostics.js';
export type { ConnectionFacts, ConnEvent, ConnRequest, ConnResponse, HeaderList, PooledConnection, Protocol, RequestBody } from './http/types.js';
export { ErrorCode, OriginlinkError, isOriginlinkError, type ErrorCodeValue, type ErrorSide } from './errors.js';
export type { ProtocolPolicy } from './transport/connect.js';
export type { EarlyDataPolicy } from './transport/h3.js';
export { probeOrigin, type ProbeOptions, type ProbeResult } from './probe/probe.js';
export { parseAltSvc, type AltService, type AltSvcResult } from './probe/alt-svc.js';
export { MemoryOriginCache, FileOriginCache, type OriginCache, type OriginFacts } from './probe/cache.js';
export type { SelectionOptions, Choice } from './probe/state.js';
