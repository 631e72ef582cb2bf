// HAProxy as the reuse anchor: one thread, HTTP mode, TLS h1 to one origin
// with `http-reuse always` (idle server connections shared by every client).
// Used by bench/proxy.mjs and bench/scenarios/reuse.mjs.
export function haproxyConfig({ port, origin, caPath, poolMaxConn, purgeDelay = null, bindExtra = '' }) {
  return `${haproxyHead(1)}
frontend fe
  bind 127.0.0.1:${port}${bindExtra ? ` ${bindExtra}` : ''}
  default_backend be
backend be
  http-reuse always
  server s1 ${origin} ssl verify required ca-file ${caPath} sni str(localhost) alpn http/1.1 pool-max-conn ${poolMaxConn}${purgeDelay ? ` pool-purge-delay ${purgeDelay}` : ''}
`;
}

/** The global and defaults sections every bench's HAProxy shares: `threads` threads, HTTP mode, the timeouts. */
export function haproxyHead(threads) {
  return `global
  nbthread ${threads}
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s`;
}
