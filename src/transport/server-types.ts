/**
 * The request/response shapes of our servers (HTTP/2 and HTTP/3): a handler
 * gets a request with a streaming body and an abort signal and returns the
 * response to send.
 */
import type { Readable } from 'node:stream';
import type { HeaderList, RequestBody } from '../http/types.js';

/**
 * What both servers send when a handler fails before its response started:
 * a 500 the client can act on. After the head went out the stream can only
 * be cut (CANCEL / H3_REQUEST_CANCELLED), so the client sees it incomplete.
 */
export const HANDLER_FAILED_HEAD: HeaderList = Object.freeze([[':status', '500'], ['content-length', '0']]) as HeaderList;

export interface ServerRequest {
  method: string;
  path: string;
  authority: string;
  scheme: string;
  /** Regular fields (no pseudo-headers), lower-case names, wire order. */
  headers: HeaderList;
  body: Readable;
  streamId: number;
  remoteAddress: string;
  remotePort: number;
  /** Aborted when the client resets the stream or the connection closes. */
  signal: AbortSignal;
}

export interface ServerResponse {
  status: number;
  headers?: HeaderList;
  body?: RequestBody | Readable;
  trailers?: HeaderList;
}

export type RequestHandler = (req: ServerRequest) => ServerResponse | Promise<ServerResponse>;
