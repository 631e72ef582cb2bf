/** HTTP/2 frames made by hand, for what the encoders refuse to make (RFC 9113 §4.1: length, type, flags, stream id). */
export function rawFrame(type: number, flags: number, id: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}
