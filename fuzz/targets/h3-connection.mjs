// The sans-IO HTTP/3 connection in the server role (src/h3/connection.ts) with our default QPACK table
// (4096 bytes, 16 blocked streams), fed by a fake QUIC transport. The input is a list of operations:
// [stream selector, flags, length, payload…] — the selector picks a client bidi stream (0, 4, …, 28) or
// a client uni stream (2, 6, …, 14); flags carry FIN, a peer reset, a STOP_SENDING and the headers
// timeout sweep. Properties: no call throws; when the connection closes, it is never with
// H3_INTERNAL_ERROR (0x102: an unexpected exception inside); our responses to complete requests go out.
import { H3Connection } from '../../dist/h3/connection.js';
import { h3Settings } from '../../dist/wire/h3-settings.js';
import { OriginlinkError } from '../../dist/errors.js';

const sent = [];
const transport = {
  isClient: false,
  openBidi: () => null,
  openUni: (() => {
    let n = 3;
    return () => (n += 4);
  })(),
  send: (id, data, fin) => {
    sent.push(id);
  },
  resetStream: () => {},
  stopSending: () => {},
  close: () => {},
};

export function fuzz(data) {
  sent.length = 0;
  const settings = h3Settings('server');
  delete settings.decoderAckDelay; // no timers in a fuzz run: acknowledgments go at once
  const h3 = new H3Connection(transport, settings);
  let closedWith = null;
  h3.on((e) => {
    if (e.type === 'closed') closedWith = e.error ? (e.error.details?.wireCode ?? -1) : 0;
    if (e.type === 'headers' && e.end) {
      try {
        h3.sendHeaders(e.streamId, [[':status', '204']], true);
      } catch (err) {
        // A typed refusal (the client's SETTINGS_MAX_FIELD_SECTION_SIZE below our head, a stream already gone)
        // is the caller's to handle, as server/h3.ts does; anything else is a bug.
        if (!(err instanceof OriginlinkError)) throw err;
      }
    }
  });
  h3.onConnected(false);
  let p = 0;
  for (let op = 0; op < 64 && p + 3 <= data.length && !h3.closed; op++) {
    const sel = data[p];
    const flags = data[p + 1];
    const len = data[p + 2];
    const payload = data.subarray(p + 3, p + 3 + len);
    p += 3 + len;
    const id = sel & 1 ? 2 + 4 * ((sel >> 1) % 4) : 4 * ((sel >> 1) % 8);
    h3.onStreamData(id, payload, (flags & 1) === 1);
    if (flags & 2) h3.onStreamReset(id, 0x10c);
    if (flags & 4) h3.onStopSending(id, 0x10c);
    if (flags & 8) h3.expireIncompleteHeads();
  }
  if (closedWith === 0x102) throw new Error('H3_INTERNAL_ERROR: an exception escaped a handler');
}
