#!/usr/bin/env node
// Installs the Debian packages the tests need when they are missing (idempotent,
// fast when present). Run by `npm test` (pretest). Needs root, as on these machines.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// package -> a binary that proves it is installed
const PACKAGES = {
  'nginx-light': '/usr/sbin/nginx',
  openssl: '/usr/bin/openssl',
  curl: '/usr/bin/curl',
  'nghttp2-client': '/usr/bin/h2load',
  haproxy: '/usr/sbin/haproxy',
  wrk: '/usr/bin/wrk',
  'util-linux': '/usr/bin/taskset',
  caddy: '/usr/bin/caddy',
  'ngtcp2-server': '/usr/sbin/gtlsserver',
  'ngtcp2-client': '/usr/bin/gtlsclient',
  iproute2: '/usr/sbin/ip',
  nftables: '/usr/sbin/nft',
  ethtool: '/usr/sbin/ethtool',
  gcc: '/usr/bin/gcc',
  'libc6-dev': '/usr/include/stdio.h',
  'libnghttp3-dev': '/usr/include/nghttp3/nghttp3.h',
  // nghttp2's HPACK decoder as the second opinion of the differential fuzz target hpack-nghttp2.
  'libnghttp2-dev': '/usr/include/nghttp2/nghttp2.h',
  procps: '/usr/sbin/sysctl',
  'iputils-ping': '/usr/bin/ping',
  make: '/usr/bin/make',
  'g++': '/usr/bin/g++',
  // An independent HPACK implementation for differential tests (Debian's python3, not a pyenv one).
  h2o: '/usr/bin/h2o',
  'nghttp2-server': '/usr/sbin/nghttpd',
  'python3-hpack': '/usr/lib/python3/dist-packages/hpack/__init__.py',
  // An independent HTTP/2 frame implementation for differential tests.
  'python3-hyperframe': '/usr/lib/python3/dist-packages/hyperframe/__init__.py',
  // A browser as a client of our servers (its own HTTP/2 and HTTP/3 stacks).
  chromium: '/usr/bin/chromium',
  // certutil: the test CA as a trusted root in a temporary NSS db for Chromium (test/helpers/chromium.ts).
  'libnss3-tools': '/usr/bin/certutil',
  // The fleet store (tests start their own on a loopback port).
  'redis-server': '/usr/bin/redis-server',
  // Patches Jazzer.js's prebuilt fuzzer addon for this glibc (scripts/fuzz-setup.mjs, native-notes/jazzer.md).
  patchelf: '/usr/bin/patchelf',
  // Origin addressing and egress (issue 15): a DNS server with TTLs, HTTP CONNECT and SOCKS5 proxies.
  'dnsmasq-base': '/usr/sbin/dnsmasq',
  squid: '/usr/sbin/squid',
  tinyproxy: '/usr/bin/tinyproxy',
  microsocks: '/usr/bin/microsocks',
  // nghttpx: a TLS proxy front (h2 and HTTP/1.1 by ALPN) for https:// nodes and HTTP/2 CONNECT.
  'nghttp2-proxy': '/usr/sbin/nghttpx',
};

const missing = Object.entries(PACKAGES)
  .filter(([, bin]) => !existsSync(bin))
  .map(([p]) => p);
if (missing.length === 0) process.exit(0);
console.log(`ensure-peers: installing ${missing.join(' ')}`);
if (process.getuid?.() !== 0) {
  console.error('ensure-peers: not root; install these Debian packages first: ' + missing.join(' '));
  process.exit(1);
}
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
// Services must not auto-start here (tests start their own on loopback ports).
const r = spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], {
  stdio: 'inherit',
  env,
});
if (r.status !== 0) {
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
}
