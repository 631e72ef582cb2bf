/** Requests and bodies as the h3 tests write them (ConnRequest for `localhost` over https). */
import type { Readable } from 'node:stream';
import type { ConnRequest } from '../../src/http/types.js';

/** A GET of `path` for `localhost`, allowed in early data when `allowEarlyData`. */
export const getAt = (path: string, allowEarlyData = false): ConnRequest => ({
  method: 'GET',
  path,
  authority: 'localhost',
  scheme: 'https',
  headers: [],
  body: null,
  allowEarlyData,
});

/** A body read whole as text. */
export async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += String(c);
  return s;
}
