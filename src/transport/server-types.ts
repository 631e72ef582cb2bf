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

/**
 * RFC 9110 §10.1.1: a client that sent `expect: 100-continue` may wait before
 * sending the body (curl: 1 s). Our servers always read bodies, so both answer
 * 100 with the head of any request that has a body to come (as nginx does).
 */
export function wantsContinue(fields: HeaderList): boolean {
  return fields.some(([n, v]) => n === 'expect' && v.toLowerCase() === '100-continue');
}

export const CONTINUE_HEAD: HeaderList = Object.freeze([[':status', '100']]) as HeaderList;
