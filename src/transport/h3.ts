/**
 * The HTTP/3 client transport: dialling (h3-connect.ts), the pooled
 * connection (h3-connection.ts), liveness and migration (h3-liveness.ts).
 */
export { connectH3, h3Connector, type H3ConnectOptions } from './h3-connect.js';
export { H3PooledConnection, type H3Response } from './h3-connection.js';
export type { EarlyDataPolicy } from '../http/early-data.js';
