// QUIC variable-length integers (RFC 9000 §16): a value, null for too few bytes, or VarintRangeError.
import { readVarint, readVarintBig, VarintRangeError } from '../../dist/codec/varint.js';
import { expectOnly } from './_util.mjs';

export function fuzz(data) {
  expectOnly(() => {
    readVarint(data, 0);
    readVarintBig(data, 0);
  }, VarintRangeError);
}
