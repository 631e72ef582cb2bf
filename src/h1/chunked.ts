/** HTTP/1.1 chunked transfer coding for request bodies (RFC 9112 §7.1). */
export const CHUNKED_END = Buffer.from('0\r\n\r\n');

export function chunkedFrame(data: Buffer): Buffer {
  const size = Buffer.from(`${data.length.toString(16)}\r\n`);
  return Buffer.concat([size, data, Buffer.from('\r\n')]);
}
