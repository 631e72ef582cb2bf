// Differential: our HPACK decoder (RFC 7541) against nghttp2's, two blocks through one decoder each (the
// dynamic table carries over). Both must refuse the same block, or both accept it with the same field
// list, byte for byte, in the same order. A difference is a finding: a field list one HTTP/2 hop reads
// differently from the next is where request smuggling over HTTP/2 lives.
// Our header-list limit is set out of reach (nghttp2's inflater has none; that limit is ours to refuse with).
import { HpackError } from '../../dist/codec/errors.js';
import { HpackDecoder } from '../../dist/codec/hpack/decoder.js';
import { nghttp, show } from './_nghttp.mjs';

function ours(blocks) {
  const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 24 });
  const out = [];
  for (const b of blocks) {
    try {
      out.push(d.decode(b).headers);
    } catch (e) {
      if (!(e instanceof HpackError)) throw e;
      out.push(e.message);
      break;
    }
  }
  return out;
}

export function fuzz(data) {
  if (data.length === 0) return;
  const cut = 1 + (data[0] % data.length);
  const blocks = [Buffer.from(data.subarray(1, cut)), Buffer.from(data.subarray(cut))];
  const a = ours(blocks);
  const b = nghttp.hpackDecode(blocks, 4096);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    const xErr = typeof x === 'string';
    const yErr = typeof y === 'number';
    if (xErr && yErr) return;
    if (xErr !== yErr)
      throw new Error(
        `block ${i}: ${xErr ? `we refuse (${x})` : 'we accept'}, nghttp2 ${yErr ? `refuses (${y})` : 'accepts'}\nours:\n${xErr ? '' : show(x)}\nnghttp2:\n${yErr ? '' : show(y)}\ninput ${Buffer.from(data).toString('hex')}`,
      );
    if (show(x) !== show(y))
      throw new Error(
        `block ${i}: field lists differ\nours:\n${show(x)}\nnghttp2:\n${show(y)}\ninput ${Buffer.from(data).toString('hex')}`,
      );
  }
}
