// HTTP/3 frame parser (RFC 9114 §7): only H3Error.
import { H3Error } from '../../dist/codec/errors.js';
import { FrameParser } from '../../dist/codec/h3frame.js';
import { chunks, expectOnly } from './_util.mjs';

export function fuzz(data) {
  const p = new FrameParser({ maxFrameSize: 4096 });
  expectOnly(() => {
    for (const c of chunks(data)) p.push(c);
  }, H3Error);
}
