// Differential: our QPACK decoder (RFC 9204) against nghttp3's. The input is split into encoder-stream
// bytes and one field section (read as complete, the stream's FIN after it). Both decoders advertise a
// 4096-byte table and 4 blocked streams. They must agree on whether the encoder stream is refused, and
// then on the section: refused by both, blocked for both, or decoded by both to the same field list,
// byte for byte. A difference is a finding, except one of timing: one decoder may refuse an encoder
// instruction as soon as it can tell (nghttp3 checks a name reference before the value arrives; we refuse
// an integer past 2^53, JavaScript's exact range, or an unfinished instruction longer than twice the table
// before their ends) where the other waits for the instruction's last byte. Such a difference is allowed
// when the waiting decoder refuses too once the instruction is finished: the stream is padded with 0x20
// bytes (70,000 of them: they end any integer, fill any string either would wait for, and then each is Set Dynamic Table Capacity 0, which
// cannot fail). In a field section the same integer limit can show as a refusal where nghttp3 blocks
// (it waits for the Required Insert Count before reading Base; we read the whole prefix first) or reads
// a Base past 2^53 that no reference can use: our refusal of an integer past 2^53 is allowed anywhere. So is our
// refusal of an integer written in more than 9 octets (redundant zero continuation bytes) that nghttp3 reads: RFC
// 7541 §5.1 makes an encoding past a decoder's limits "in value or octet length" a decoding error.
// nghttp3 also refuses an encoder instruction whose name's coded length is past 256 octets or whose value's is past
// 65,536 (its NGHTTP3_QPACK_MAX_NAMELEN, NGHTTP3_QPACK_MAX_VALUELEN) as soon as that length is read; RFC 9204 §3.2.2
// bounds an entry by the table's capacity alone, which is ours. Its refusal of such a stream is allowed.
import { QpackError } from '../../dist/codec/errors.js';
import { QpackDecoder } from '../../dist/codec/qpack/decoder.js';
import { decodePrefixInt } from '../../dist/codec/rfc7541/prefix-int.js';
import { nghttp, show } from './_nghttp.mjs';

const NGHTTP3_MAX_NAMELEN = 256;
const NGHTTP3_MAX_VALUELEN = 65_536;

/**
 * Whether the encoder stream `enc` holds, before its first unfinished length, a string length past nghttp3's own
 * caps (above): a literal name's (Insert with Literal Name, RFC 9204 §4.3.3) or a value's (§4.3.2, §4.3.3).
 */
function pastNghttp3Caps(enc) {
  let at = 0;
  // Each string: its length (a prefixed integer after the instruction's bits), then that many octets.
  const string = (prefixBits, cap) => {
    const n = decodePrefixInt(enc, at, prefixBits);
    if (n === null) return null;
    if (n.value > cap) return true;
    at += n.length + n.value;
    return at > enc.length ? null : false;
  };
  try {
    while (at < enc.length) {
      const first = enc[at];
      let r;
      if (first & 0x80) {
        const idx = decodePrefixInt(enc, at, 6);
        if (idx === null) return false;
        at += idx.length;
        r = string(7, NGHTTP3_MAX_VALUELEN);
      } else if (first & 0x40) {
        r = string(5, NGHTTP3_MAX_NAMELEN);
        if (r === false) r = string(7, NGHTTP3_MAX_VALUELEN);
      } else {
        const n = decodePrefixInt(enc, at, 5);
        if (n === null) return false;
        at += n.length;
        r = false;
      }
      if (r !== false) return r === true;
    }
  } catch {
    // An integer ours refuses: allowed above already.
  }
  return false;
}

function ours(enc, section) {
  const d = new QpackDecoder({ maxTableCapacity: 4096, maxBlockedStreams: 4 });
  try {
    d.feedEncoderStream(enc);
  } catch (e) {
    if (!(e instanceof QpackError)) throw e;
    return [e.message, null];
  }
  try {
    const r = d.decodeSection(0, section);
    return [0, r.status === 'blocked' ? 'blocked' : r.headers];
  } catch (e) {
    if (!(e instanceof QpackError)) throw e;
    return [0, e.message];
  }
}

export function fuzz(data) {
  if (data.length === 0) return;
  const cut = 1 + (data[0] % data.length);
  const enc = Buffer.from(data.subarray(1, cut));
  const section = Buffer.from(data.subarray(cut));
  const [aEnc, aSec] = ours(enc, section);
  const [bEnc, bSec] = nghttp.qpackDecode(enc, section, 4096, 4);
  const hex = Buffer.from(data).toString('hex');
  if (aEnc !== 0 && bEnc === 0 && /longer than \d+ octets/.test(aEnc)) return;
  if (aEnc === 0 && bEnc !== 0 && pastNghttp3Caps(enc)) return;
  if ((aEnc !== 0) !== (bEnc !== 0)) {
    const padded = Buffer.concat([enc, Buffer.alloc(70_000, 0x20)]);
    if (aEnc === 0 ? ours(padded, section)[0] !== 0 : nghttp.qpackDecode(padded, section, 4096, 4)[0] !== 0) return;
  }
  if ((aEnc !== 0) !== (bEnc !== 0))
    throw new Error(
      `encoder stream: ours ${aEnc === 0 ? 'accepts' : `refuses (${aEnc})`}, nghttp3 ${bEnc === 0 ? 'accepts' : `refuses (${bEnc})`}\ninput ${hex}`,
    );
  if (aEnc !== 0) return;
  if (typeof aSec === 'string' && aSec !== 'blocked' && /integer overflow/.test(aSec)) return;
  const kind = (x) => (x === 'blocked' ? 'blocked' : Array.isArray(x) ? 'fields' : 'refused');
  if (kind(aSec) !== kind(bSec))
    throw new Error(
      `section: ours ${kind(aSec)} ${typeof aSec === 'string' ? aSec : ''}, nghttp3 ${kind(bSec)} ${typeof bSec === 'number' ? bSec : ''}\nours:\n${Array.isArray(aSec) ? show(aSec) : ''}\nnghttp3:\n${Array.isArray(bSec) ? show(bSec) : ''}\ninput ${hex}`,
    );
  if (kind(aSec) === 'fields' && show(aSec) !== show(bSec))
    throw new Error(`section: field lists differ\nours:\n${show(aSec)}\nnghttp3:\n${show(bSec)}\ninput ${hex}`);
}
