// HPACK decoder (RFC 7541): two blocks on one decoder (dynamic table state carries), only HpackError.
import { HpackError } from '../../dist/codec/errors.js';
import { HpackDecoder } from '../../dist/codec/hpack/decoder.js';
import { expectOnly } from './_util.mjs';

export function fuzz(data) {
  const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 16 * 1024 });
  const cut = data.length ? data[0] % (data.length + 1) : 0;
  expectOnly(() => {
    d.decode(data.subarray(1, Math.max(1, cut)));
    d.decode(data.subarray(Math.max(1, cut)));
  }, HpackError);
}
