// The sans-IO HTTP/2 connection in the server role, after a valid preface and SETTINGS: receive()
// must never throw — every error becomes GOAWAY or RST_STREAM.
import { H2Connection } from '../../dist/h2/connection.js';
import { chunks } from './_util.mjs';

const PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);

export function fuzz(data) {
  const c = new H2Connection({ role: 'server', enableConnectProtocol: (data[0] ?? 0) % 2 === 1 });
  c.on((e) => {
    if (e.type === 'data') c.consumed(e.streamId, e.data.length);
    if (e.type === 'headers' && !e.trailers && e.endStream) c.respond(e.streamId, [[':status', '204']], true);
  });
  c.receive(PREFACE, 0);
  let t = 0;
  for (const part of chunks(data)) {
    c.receive(part, (t += 7));
    c.takeOutput();
  }
}
