/*
 * originlink UDP batching for QUIC, on the fd of a Node dgram socket.
 *
 * Send: one sendmsg() with UDP_SEGMENT (Linux GSO) for a run of equal-size
 * QUIC packets to one destination. The kernel splits the buffer into
 * datagrams of `segSize` bytes (the last may be shorter). Never blocks: the
 * fd is non-blocking (libuv), EAGAIN and every other failure come back as a
 * negative errno so the caller falls back to dgram.send for those bytes.
 *
 * Receive: a libuv poll handle on a dup of the fd; each time it is readable,
 * recvmmsg() reads up to `slots` datagrams into one shared buffer and one JS
 * call gets their count (lengths, source addresses and UDP_GRO segment sizes
 * in an Int32Array), up to RX_ROUNDS batches per wakeup. The JS side stops the dgram handle's own
 * reading first (`recvStop`), so the datagrams go to one reader only.
 *
 * Exports:
 *   sendSegments(fd, buf, offset, length, segSize, ip, port) -> bytes | -errno
 *   gsoSupported(fd) -> boolean   (getsockopt UDP_SEGMENT works: kernel >= 4.18)
 *   rxStart(fd, buf, slotSize, meta, callback[, adopt]) -> handle | -errno
 *                                 (adopt: read the fd itself, not a dup, and close it when the receiver
 *                                 goes — a socket of udpOpen's; on failure the caller keeps it)
 *   rxStop(handle)                (idempotent, also after the receiver is gone; closes the dup'd fd)
 *   rxRef(handle, ref)            (uv_ref / uv_unref)
 *   rxMetaStride                  (int32 words per datagram in `meta`)
 *   udpOpen(ip, port, peerIp, peerPort, bufBytes, out) -> fd | -errno
 *                                 (a non-blocking socket of our own, bound, connected when peerIp is not
 *                                 empty; out[0] = the local port: a client's QUIC socket without node:dgram)
 *   reuseportBind, steerMap, steerJoin   (steer.c: the h3 front on every worker)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <node_api.h>
#include "napi-util.h"
#include <uv.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif


/* Declares argc/argv and throws unless at least N arguments came. */
#define ARGS(N, WHAT)                                                           \
  size_t argc = (N);                                                            \
  napi_value argv[(N)];                                                         \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));                  \
  if (argc < (N)) {                                                             \
    napi_throw_error(env, NULL, "originlink udp: " WHAT " needs " #N " arguments"); \
    return NULL;                                                                \
  }


static int parse_addr(const char *ip, uint32_t port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    return 0;
  }
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*a6);
    return 0;
  }
  return -EINVAL;
}

static napi_value send_segments(napi_env env, napi_callback_info info) {
  ARGS(7, "sendSegments");
  int32_t fd, offset, length, seg;
  uint32_t port;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  napi_typedarray_type tt;
  size_t tlen, toff;
  void *data;
  napi_value ab;
  CHECK(napi_get_typedarray_info(env, argv[1], &tt, &tlen, &data, &ab, &toff));
  CHECK(napi_get_value_int32(env, argv[2], &offset));
  CHECK(napi_get_value_int32(env, argv[3], &length));
  CHECK(napi_get_value_int32(env, argv[4], &seg));
  char ip[64];
  size_t iplen;
  CHECK(napi_get_value_string_utf8(env, argv[5], ip, sizeof(ip), &iplen));
  CHECK(napi_get_value_uint32(env, argv[6], &port));
  if (tt != napi_uint8_array || offset < 0 || length <= 0 || seg <= 0 || (size_t)offset + (size_t)length > tlen) return num(env, -EINVAL);

  /* An empty host: the socket is connected (UDP connect(2)), the kernel keeps its destination and route. */
  struct sockaddr_storage ss;
  socklen_t slen = 0;
  if (iplen > 0 && parse_addr(ip, port, &ss, &slen) != 0) return num(env, -EINVAL);

  struct iovec iov = {.iov_base = (uint8_t *)data + offset, .iov_len = (size_t)length};
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  if (iplen > 0) {
    msg.msg_name = &ss;
    msg.msg_namelen = slen;
  }
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctrl;
  if (length > seg) {
    memset(&ctrl, 0, sizeof(ctrl));
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = sizeof(ctrl.buf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t s16 = (uint16_t)seg;
    memcpy(CMSG_DATA(cm), &s16, sizeof(s16));
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return num(env, n < 0 ? -(double)errno : (double)n);
}

/*
 * A UDP socket made here rather than by node:dgram (whose module, socket object and asynchronous connect are a
 * fresh process's first QUIC dial's largest built-in cost): socket, best-effort buffer sizes (capped by
 * net.core.*mem_max), bind, connect(2) to the one peer when given, getsockname for the port. The caller reads it with
 * rxStart and writes it with sendSegments; it closes the fd (fs.closeSync) after rxStop.
 */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  ARGS(6, "udpOpen");
  char ip[64], peer[64];
  size_t iplen, peerlen;
  uint32_t port, peer_port;
  int32_t buf_bytes;
  CHECK(napi_get_value_string_utf8(env, argv[0], ip, sizeof(ip), &iplen));
  CHECK(napi_get_value_uint32(env, argv[1], &port));
  CHECK(napi_get_value_string_utf8(env, argv[2], peer, sizeof(peer), &peerlen));
  CHECK(napi_get_value_uint32(env, argv[3], &peer_port));
  CHECK(napi_get_value_int32(env, argv[4], &buf_bytes));
  napi_typedarray_type tt;
  size_t olen, ooff;
  void *odata;
  napi_value oab;
  CHECK(napi_get_typedarray_info(env, argv[5], &tt, &olen, &odata, &oab, &ooff));
  if (tt != napi_int32_array || olen < 1 || port > 65535 || peer_port > 65535) return num(env, -EINVAL);
  struct sockaddr_storage local, remote;
  socklen_t llen, rlen = 0;
  if (parse_addr(ip, port, &local, &llen) != 0) return num(env, -EINVAL);
  if (peerlen > 0 && (parse_addr(peer, peer_port, &remote, &rlen) != 0 || remote.ss_family != local.ss_family))
    return num(env, -EINVAL);
  int fd = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return num(env, -errno);
  if (buf_bytes > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf_bytes, sizeof(buf_bytes));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf_bytes, sizeof(buf_bytes));
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof(bound);
  if (bind(fd, (struct sockaddr *)&local, llen) != 0 ||
      (rlen > 0 && connect(fd, (struct sockaddr *)&remote, rlen) != 0) ||
      getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  ((int32_t *)odata)[0] = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                            : ((struct sockaddr_in *)&bound)->sin_port);
  return num(env, fd);
}

static napi_value gso_supported(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  int v = 0;
  socklen_t l = sizeof(v);
  napi_value r;
  napi_get_boolean(env, getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0, &r);
  return r;
}


/* ---- batched receive ---- */

#define RX_MAX 64
/* Batches per wakeup: bounds one socket's turn so timers and other sockets run. */
#define RX_ROUNDS 8
/*
 * Int32 words per datagram in `meta`: length (-1 = truncated), family (4/6),
 * port, address (4 words), segment size (UDP_GRO: the buffer holds
 * datagrams of this size back to back, the last one shorter; 0 = one).
 */
#define META_STRIDE 8
#define GRO_CTRL CMSG_SPACE(sizeof(int))

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_ref buf_ref;
  napi_ref meta_ref;
  napi_async_context actx;
  uint8_t *buf;
  size_t slot;
  int slots;
  int32_t *meta;
  int fd;
  int stopped;
  struct mmsghdr msgs[RX_MAX];
  struct iovec iov[RX_MAX];
  struct sockaddr_storage addrs[RX_MAX];
  union {
    char buf[GRO_CTRL];
    struct cmsghdr align;
  } ctrl[RX_MAX];
  int gro;
  /* rxStart's adopt while it runs: its failures leave the fd to the caller. */
  int adopting;
  napi_async_cleanup_hook_handle hook;
  /* The JS handle's box; NULL once the handle was collected. */
  struct rx_box *box;
} rx_t;

/*
 * What the JS handle points at: it outlives the receiver (rx_closed clears
 * it), so a late rxStop/rxRef finds NULL instead of freed memory; the box is
 * freed when the handle is collected.
 */
typedef struct rx_box {
  rx_t *rx;
} rx_box;

static void rx_box_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  rx_box *box = data;
  if (box->rx) box->rx->box = NULL;
  free(box);
}

static void rx_closed(uv_handle_t *h) {
  rx_t *rx = (rx_t *)h->data;
  if (rx->box) rx->box->rx = NULL;
  if (rx->fd >= 0 && !rx->adopting) close(rx->fd);
  if (rx->hook) napi_remove_async_cleanup_hook(rx->hook);
  free(rx);
}

/*
 * uv_close() takes the fd out of epoll before it returns (uv__io_close), so
 * the dup can be closed at once: the port is free as soon as the dgram
 * socket closes too, not one loop turn later.
 */
static void rx_close_now(rx_t *rx) {
  uv_close((uv_handle_t *)&rx->poll, rx_closed);
  /* uv_close may only queue its EPOLL_CTL_DEL (io_uring batching in the poll phase): remove it now. */
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  if (rx->fd >= 0) {
    epoll_ctl(uv_backend_fd(rx->poll.loop), EPOLL_CTL_DEL, rx->fd, &ev);
    /* An adopted fd whose rxStart failed stays the caller's. */
    if (!rx->adopting) close(rx->fd);
  }
  rx->fd = -1;
}

static void rx_release(rx_t *rx) {
  if (rx->stopped) return;
  rx->stopped = 1;
  uv_poll_stop(&rx->poll);
  napi_delete_reference(rx->env, rx->cb);
  napi_delete_reference(rx->env, rx->buf_ref);
  napi_delete_reference(rx->env, rx->meta_ref);
  napi_async_destroy(rx->env, rx->actx);
  rx_close_now(rx);
}

static void rx_meta(rx_t *rx, int i) {
  int32_t *m = rx->meta + i * META_STRIDE;
  struct msghdr *h = &rx->msgs[i].msg_hdr;
  /* A cut control message could have lost the GRO segment size: drop rather than misread. */
  m[0] = (h->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? -1 : (int32_t)rx->msgs[i].msg_len;
  const struct sockaddr_storage *ss = &rx->addrs[i];
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    m[1] = 6;
    m[2] = ntohs(a->sin6_port);
    memcpy(&m[3], &a->sin6_addr, 16);
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    m[1] = 4;
    m[2] = ntohs(a->sin_port);
    memcpy(&m[3], &a->sin_addr, 4);
    m[4] = m[5] = m[6] = 0;
  }
  m[7] = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int seg;
      memcpy(&seg, CMSG_DATA(c), sizeof(seg));
      if (seg > 0 && seg < m[0]) m[7] = seg;
    }
  }
}

/* An ICMP report a connected UDP socket received (RFC 1122 §4.1.3.3): the peer's port or host is unreachable. */
static int reportable(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN;
}

/* Tell JS `count` (datagrams ready in the buffers), or -errno for an ICMP report. False: stop this wakeup. */
static int rx_call(rx_t *rx, int count) {
  napi_env env = rx->env;
  napi_value cb, recv, argv[1], result;
  if (napi_get_reference_value(env, rx->cb, &cb) != napi_ok || napi_get_global(env, &recv) != napi_ok ||
      napi_create_int32(env, count, &argv[0]) != napi_ok)
    return 0;
  /* make_callback: microtasks and nextTicks run after, as for a dgram 'message' event. */
  napi_status st = napi_make_callback(env, rx->actx, recv, cb, 1, argv, &result);
  if (st != napi_ok) {
    /* A throw becomes an uncaught exception (as from a dgram listener); any other failure (env teardown) ends the wakeup. */
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
    return 0;
  }
  return 1;
}

static void rx_readable(uv_poll_t *h, int status, int events) {
  rx_t *rx = (rx_t *)h->data;
  (void)events;
  if (rx->stopped) return;
  if (status < 0) {
    /* POLLERR: libuv has stopped the handle. Take the socket error (a connected socket's ICMP report goes to JS), poll again. */
    int e = 0; socklen_t l = sizeof(e);
    getsockopt(rx->fd, SOL_SOCKET, SO_ERROR, &e, &l);
    uv_poll_start(&rx->poll, UV_READABLE, rx_readable);
    if (reportable(e)) {
      napi_handle_scope s;
      if (napi_open_handle_scope(rx->env, &s) == napi_ok) {
        rx_call(rx, -e);
        napi_close_handle_scope(rx->env, s);
      }
    }
    return;
  }
  napi_env env = rx->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  /* The JS buffer could have been detached (transferred) since the last wakeup: never write to a stale pointer. */
  napi_value bufv;
  napi_typedarray_type bt;
  size_t blen, boff;
  void *bdata;
  napi_value bab;
  if (napi_get_reference_value(env, rx->buf_ref, &bufv) != napi_ok || bufv == NULL ||
      napi_get_typedarray_info(env, bufv, &bt, &blen, &bdata, &bab, &boff) != napi_ok || blen < rx->slot * (size_t)rx->slots) {
    napi_close_handle_scope(env, scope);
    rx_release(rx); /* the reader is dead; polling on would spin on the unread socket */
    return;
  }
  rx->buf = bdata;
  for (int round = 0; round < RX_ROUNDS && !rx->stopped; round++) {
    for (int i = 0; i < rx->slots; i++) {
      rx->iov[i].iov_base = rx->buf + (size_t)i * rx->slot;
      rx->iov[i].iov_len = rx->slot;
      memset(&rx->msgs[i], 0, sizeof(rx->msgs[i]));
      rx->msgs[i].msg_hdr.msg_name = &rx->addrs[i];
      rx->msgs[i].msg_hdr.msg_namelen = sizeof(rx->addrs[i]);
      rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
      rx->msgs[i].msg_hdr.msg_iovlen = 1;
      if (rx->gro) {
        rx->msgs[i].msg_hdr.msg_control = rx->ctrl[i].buf;
        rx->msgs[i].msg_hdr.msg_controllen = sizeof(rx->ctrl[i].buf);
      }
    }
    int n;
    do n = recvmmsg(rx->fd, rx->msgs, (unsigned)rx->slots, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && reportable(errno)) {
      /* A connected socket's ICMP report (the error is consumed by this call): to JS, then read on. */
      if (!rx_call(rx, -errno)) break;
      continue;
    }
    if (n <= 0) break; /* EAGAIN: drained */
    for (int i = 0; i < n; i++) rx_meta(rx, i);
    if (!rx_call(rx, n)) break;
    if (n < rx->slots) break;
  }
  napi_close_handle_scope(env, scope);
}

static void rx_env_cleanup(napi_async_cleanup_hook_handle h, void *arg) {
  (void)h;
  rx_release((rx_t *)arg);
}

static napi_value rx_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_error(env, NULL, "originlink udp: rxStart needs 5 arguments");
    return NULL;
  }
  int32_t fd, slot;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  napi_typedarray_type bt, mt;
  size_t blen, mlen, off;
  void *bdata, *mdata;
  napi_value ab;
  CHECK(napi_get_typedarray_info(env, argv[1], &bt, &blen, &bdata, &ab, &off));
  CHECK(napi_get_value_int32(env, argv[2], &slot));
  CHECK(napi_get_typedarray_info(env, argv[3], &mt, &mlen, &mdata, &ab, &off));
  napi_valuetype ft;
  CHECK(napi_typeof(env, argv[4], &ft));
  bool adopt = false;
  if (argc >= 6 && napi_get_value_bool(env, argv[5], &adopt) != napi_ok) adopt = false;
  if (bt != napi_uint8_array || mt != napi_int32_array || ft != napi_function || slot < 1200 || fd < 0) return num(env, -EINVAL);
  size_t slots = blen / (size_t)slot;
  if (mlen / META_STRIDE < slots) slots = mlen / META_STRIDE;
  if (slots > RX_MAX) slots = RX_MAX;
  if (slots < 1) return num(env, -EINVAL);
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  int dfd = adopt ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0) return num(env, -(double)errno);
  rx_t *rx = calloc(1, sizeof(*rx));
  if (!rx) {
    if (!adopt) close(dfd);
    return num(env, -ENOMEM);
  }
  rx->env = env;
  rx->fd = dfd;
  rx->buf = bdata;
  rx->slot = (size_t)slot;
  rx->slots = (int)slots;
  rx->meta = mdata;
  int r = uv_poll_init_socket(loop, &rx->poll, dfd);
  if (r != 0) {
    if (!adopt) close(dfd);
    free(rx);
    return num(env, r);
  }
  /* Until the receiver is made, a failure leaves an adopted fd to the caller (rx_close_now). */
  rx->adopting = adopt;
  rx->poll.data = rx;
  napi_value name;
  napi_create_string_utf8(env, "originlink:udp-rx", NAPI_AUTO_LENGTH, &name);
  if (napi_async_init(env, NULL, name, &rx->actx) != napi_ok || napi_create_reference(env, argv[4], 1, &rx->cb) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &rx->buf_ref) != napi_ok || napi_create_reference(env, argv[3], 1, &rx->meta_ref) != napi_ok) {
    rx->stopped = 1;
    rx_close_now(rx);
    napi_throw_error(env, NULL, "originlink udp: rxStart could not keep its arguments");
    return NULL;
  }
  rx_box *box = malloc(sizeof(*box));
  napi_value ext;
  if (!box || napi_create_external(env, box, rx_box_finalize, NULL, &ext) != napi_ok) {
    free(box);
    rx_release(rx);
    napi_throw_error(env, NULL, "originlink udp: rxStart could not make its handle");
    return NULL;
  }
  box->rx = rx;
  rx->box = box;
  /*
   * UDP_GRO: the kernel may hand over several same-size datagrams of one
   * flow as one buffer (on loopback, a GSO send arrives unsplit), with the
   * segment size in a cmsg; JS splits it. Set after the last step that can
   * fail, so a socket handed back to dgram never has it; only this reader
   * sees the fd's datagrams from now on.
   */
  int one = 1;
  rx->gro = setsockopt(dfd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
  r = uv_poll_start(&rx->poll, UV_READABLE, rx_readable);
  if (r != 0) {
    int zero = 0;
    if (rx->gro) setsockopt(dfd, SOL_UDP, UDP_GRO, &zero, sizeof(zero));
    rx_release(rx);
    return num(env, r);
  }
  rx->adopting = 0;
  /* A worker's environment can go away with the receiver open: close it first (N-API 8 async cleanup hook). */
  if (napi_add_async_cleanup_hook(env, rx_env_cleanup, rx, &rx->hook) != napi_ok) rx->hook = NULL;
  return ext;
}

static rx_t *rx_arg(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) return NULL;
  return ((rx_box *)p)->rx;
}

static napi_value rx_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  rx_t *rx = argc >= 1 ? rx_arg(env, argv[0]) : NULL;
  if (rx) rx_release(rx);
  return NULL;
}

static napi_value rx_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  rx_t *rx = argc >= 2 ? rx_arg(env, argv[0]) : NULL;
  bool on = true;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &on);
  if (rx && !rx->stopped) {
    if (on) uv_ref((uv_handle_t *)&rx->poll);
    else uv_unref((uv_handle_t *)&rx->poll);
  }
  return NULL;
}

/* steer.c */
napi_value steer_reuseport_bind(napi_env env, napi_callback_info info);
napi_value steer_map(napi_env env, napi_callback_info info);
napi_value steer_join(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  /* The JS side reads `meta` with this stride; a different number means a build of another version. */
  napi_value stride;
  napi_create_int32(env, META_STRIDE, &stride);
  napi_set_named_property(env, exports, "rxMetaStride", stride);
  napi_property_descriptor props[] = {
      {"sendSegments", NULL, send_segments, NULL, NULL, NULL, napi_default, NULL},
      {"gsoSupported", NULL, gso_supported, NULL, NULL, NULL, napi_default, NULL},
      {"rxStart", NULL, rx_start, NULL, NULL, NULL, napi_default, NULL},
      {"rxStop", NULL, rx_stop, NULL, NULL, NULL, napi_default, NULL},
      {"rxRef", NULL, rx_ref, NULL, NULL, NULL, napi_default, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
      {"reuseportBind", NULL, steer_reuseport_bind, NULL, NULL, NULL, napi_default, NULL},
      {"steerMap", NULL, steer_map, NULL, NULL, NULL, napi_default, NULL},
      {"steerJoin", NULL, steer_join, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
