// HTTP/1.1 response parser (client side).
import { H1ParseError, H1ResponseParser } from '../../dist/h1/parser.js';
import { chunks, expectOnly } from './_util.mjs';

export function fuzz(data) {
  const p = new H1ResponseParser(
    { onHead() {}, onBody() {}, onTrailers() {}, onComplete() {} },
    { maxHeaderBytes: 4096, maxHeaderCount: 64 },
  );
  p.expect(data.length && data[0] & 1 ? 'HEAD' : 'GET');
  expectOnly(() => {
    for (const c of chunks(data)) {
      const rest = p.execute(Buffer.from(c));
      if (rest && rest.length) {
        p.expect('GET');
        p.execute(rest);
      }
    }
    p.eof();
  }, H1ParseError);
}
