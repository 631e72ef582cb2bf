/*
 * originlink UDP batch send: one sendmsg() with UDP_SEGMENT (Linux GSO) for
 * a run of equal-size QUIC packets to one destination, on the fd of a Node
 * dgram socket. The kernel splits the buffer into datagrams of `segSize`
 * bytes (the last may be shorter). Never blocks: the fd is non-blocking
 * (libuv), EAGAIN and every other failure come back as a negative errno so
 * the caller falls back to dgram.send for those bytes.
 *
 * Exports:
 *   sendSegments(fd, buf, offset, length, segSize, ip, port) -> bytes | -errno
 *   gsoSupported(fd) -> boolean   (getsockopt UDP_SEGMENT works: kernel >= 4.18)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, NULL, "originlink udp: bad arguments");      \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
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
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) {
    napi_throw_error(env, NULL, "originlink udp: sendSegments needs 7 arguments");
    return NULL;
  }
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

  struct sockaddr_storage ss;
  socklen_t slen;
  if (parse_addr(ip, port, &ss, &slen) != 0) return num(env, -EINVAL);

  struct iovec iov = {.iov_base = (uint8_t *)data + offset, .iov_len = (size_t)length};
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_name = &ss;
  msg.msg_namelen = slen;
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sendSegments", NULL, send_segments, NULL, NULL, NULL, napi_default, NULL},
      {"gsoSupported", NULL, gso_supported, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
