/**
 * The environment variables the library reads, all of them, here only (the CLI, the service's config reader with
 * its `${NAME}` and the worker slot read their own). Each is read when asked, so a test that sets one at run time
 * sees it. They choose native parts, for diagnosis and tests; nothing here tunes behaviour (options do that).
 *
 * | variable | effect |
 * |---|---|
 * | `ORIGINLINK_NO_NATIVE=1` | load no C addon (TCP Fast Open, UDP batching): the pure-JS paths, said once |
 * | `ORIGINLINK_TFO_ADDON=PATH` | the TFO addon from PATH instead of native/tfo/build (native-notes/tfo.md) |
 * | `ORIGINLINK_UDP_ADDON=PATH` | the UDP addon from PATH instead of native/udp/build (native-notes/udp.md) |
 * | `ORIGINLINK_NO_GSO=1` | send QUIC datagrams one by one, without UDP_SEGMENT |
 * | `ORIGINLINK_NO_RECVMMSG=1` | receive QUIC datagrams through dgram events, not recvmmsg batches (a client's socket is then dgram's too, not the addon's) |
 * | `ORIGINLINK_QUIC_BINDING=PATH` | the QUIC engine binding from PATH (native-notes/quic-addon.md) |
 * | `ORIGINLINK_QUIC_ENGINE=matrixai` | the prebuilt fallback engine (quiche 0.18) even where ours is built |
 * | `ORIGINLINK_CODE_CACHE_OUT=DIR` | read by the bundles' loader (scripts/code-cache.mjs), not here: at exit, write the V8 code cache of each bundle this process loaded to DIR — how the build makes dist/bundle/*.cache; a deployment whose node runs with other V8 flags can make its own |
 */
const env = (name: string): string | undefined => {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
};

export const knobs = {
  get noNative(): boolean {
    return env('ORIGINLINK_NO_NATIVE') === '1';
  },
  get tfoAddon(): string | undefined {
    return env('ORIGINLINK_TFO_ADDON');
  },
  get udpAddon(): string | undefined {
    return env('ORIGINLINK_UDP_ADDON');
  },
  get noGso(): boolean {
    return env('ORIGINLINK_NO_GSO') === '1';
  },
  get noRecvmmsg(): boolean {
    return env('ORIGINLINK_NO_RECVMMSG') === '1';
  },
  get quicBinding(): string | undefined {
    return env('ORIGINLINK_QUIC_BINDING');
  },
  get quicEngine(): string | undefined {
    return env('ORIGINLINK_QUIC_ENGINE');
  },
};
