// QPACK decoder (RFC 9204): encoder-stream instructions then a field section, only QpackError.
import { QpackError } from '../../dist/codec/errors.js';
import { QpackDecoder } from '../../dist/codec/qpack/decoder.js';
import { expectOnly } from './_util.mjs';

export function fuzz(data) {
  const d = new QpackDecoder({ maxTableCapacity: 4096, maxBlockedStreams: 4 });
  const cut = data.length ? data[0] % (data.length + 1) : 0;
  expectOnly(() => {
    d.feedEncoderStream(data.subarray(1, Math.max(1, cut)));
    d.decodeSection(0, data.subarray(Math.max(1, cut)));
  }, QpackError);
}
