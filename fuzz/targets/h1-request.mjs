// HTTP/1.1 request parser (server side): only H1ParseError may come out, and it must terminate.
import { H1ParseError } from '../../dist/h1/fields.js';
import { H1RequestParser } from '../../dist/h1/request-parser.js';
import { chunks, expectOnly } from './_util.mjs';

export function fuzz(data) {
  const p = new H1RequestParser(
    { onHead() {}, onBody() {}, onTrailers() {}, onComplete() {} },
    { maxHeaderBytes: 4096, maxHeaderCount: 64 },
  );
  expectOnly(() => {
    for (const c of chunks(data)) {
      const rest = p.execute(Buffer.from(c));
      if (rest) {
        p.resume();
        p.execute(rest);
      }
    }
    p.eof();
  }, H1ParseError);
}
