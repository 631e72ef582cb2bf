// HTTP/2 frame reader (RFC 9113 §4, §6): only H2Error.
import { H2Error, H2FrameReader } from '../../dist/codec/h2frame.js';
import { chunks, expectOnly } from './_util.mjs';

export function fuzz(data) {
  const r = new H2FrameReader();
  expectOnly(() => {
    for (const c of chunks(data)) r.push(c);
  }, H2Error);
}
