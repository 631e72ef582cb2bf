// A client's first Initial packets as the server reads them before accepting (src/quic/initial.ts): the
// ClientHello's server_name. Input: the ClientHello bytes (CRYPTO stream from offset 0). Properties:
// clientHelloServerName only throws RangeError and names are lower-case; ClientHelloReader.push never
// throws, whatever the datagram (the raw input is pushed too); and the ClientHello sealed into one Initial
// or cut into two (at a point from the first byte, delivered in either order) gives the same answer.
import { ClientHelloReader, clientHelloServerName, cryptoFrame, sealInitial } from '../../dist/quic/initial.js';

const DCID = Buffer.from('0011223344556677', 'hex');

function answer(packets) {
  const r = new ClientHelloReader(DCID);
  let got = { done: false };
  for (const p of packets) got = r.push(p);
  return got.done ? `${got.serverName}|${got.why ?? ''}` : 'waiting';
}

export function fuzz(data) {
  try {
    const n = clientHelloServerName(data);
    if (n !== null && n !== n.toLowerCase()) throw new Error(`name not lower-cased: ${n}`);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
  }
  new ClientHelloReader(DCID).push(data);
  if (data.length < 2 || data.length > 1100) return;
  const hello = data.subarray(1);
  const cut = 1 + (data[0] % hello.length);
  const whole = answer([sealInitial(DCID, 0, cryptoFrame(0, hello))]);
  const a = sealInitial(DCID, 0, cryptoFrame(0, hello.subarray(0, cut)));
  const b = sealInitial(DCID, 1, cryptoFrame(cut, hello.subarray(cut)));
  for (const split of [answer([a, b]), answer([b, a])]) {
    if (split !== whole) throw new Error(`split ${split} vs whole ${whole}`);
  }
}
