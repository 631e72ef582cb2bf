/**
 * The Redis Cluster slot of a key (the Cluster specification's key distribution model): CRC16 (XMODEM: polynomial
 * 0x1021, initial value 0) of the key — or of its hash tag, the text between the first `{` and the next `}` when that
 * is not empty — modulo 16384. The link groups queued writes by slot: a pipeline may only hold keys of one node.
 */
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  TABLE[i] = c;
}

function crc16(b: Uint8Array): number {
  let crc = 0;
  for (const x of b) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ x) & 0xff] as number);
  return crc;
}

export function keySlot(key: string): number {
  const open = key.indexOf('{');
  let part = key;
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) part = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(part)) % 16384;
}
