/*
 * TCP Fast Open (RFC 7413) and keepalive-probe socket options for originlink.
 *
 * Every function works on raw fds; ownership of an fd returned by connect()
 * or listen() passes to the caller (JS wraps it in net.Socket / net.Server,
 * whose handle closes it). No function here blocks.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* <linux/tcp.h>, not <netinet/tcp.h>: glibc's struct tcp_info lacks
 * tcpi_fastopen_client_fail. The two headers cannot be combined. */
#include <linux/sockios.h>
#include <linux/tcp.h>

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NAPI_OK(env, call)                                                   \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), "ERR_TFO_NAPI", "N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

static const char *errno_code(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#endif
  switch (err) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EMFILE: return "EMFILE";
    case ENOBUFS: return "ENOBUFS";
    default: return "EUNKNOWN";
  }
}

/* Throws Error{code, errno, syscall} and returns NULL for the caller to return. */
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char msg[160];
  const char *code = errno_code(err);
  snprintf(msg, sizeof msg, "%s %s (%s)", syscall, code, strerror(err));
  napi_value js_code, js_msg, js_err, js_errno, js_syscall;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg) != napi_ok ||
      napi_create_error(env, js_code, js_msg, &js_err) != napi_ok) {
    napi_throw_error(env, code, msg);
    return NULL;
  }
  if (napi_create_int32(env, -err, &js_errno) == napi_ok)
    napi_set_named_property(env, js_err, "errno", js_errno);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall) == napi_ok)
    napi_set_named_property(env, js_err, "syscall", js_syscall);
  napi_throw(env, js_err);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static bool get_i32(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static bool get_str(napi_env env, napi_value v, char *buf, size_t cap) {
  napi_valuetype t;
  size_t len = 0;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return false;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return false;
  return len + 1 < cap;
}

static bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null;
}

/* Parses an IP literal (IPv6 may carry a %zone) for `family` into `ss`. */
static bool make_addr(const char *ip, int port, int family,
                      struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (port < 0 || port > 65535) return false;
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *len = sizeof *a;
    return inet_pton(AF_INET, ip, &a->sin_addr) == 1;
  }
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    snprintf(host, sizeof host, "%s", ip);
    char *zone = strchr(host, '%');
    if (zone != NULL) {
      *zone++ = '\0';
      a->sin6_scope_id = if_nametoindex(zone);
      if (a->sin6_scope_id == 0) return false;
    }
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    *len = sizeof *a;
    return inet_pton(AF_INET6, host, &a->sin6_addr) == 1;
  }
  return false;
}

static int set_int(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

/* connect(ip, port, family, localIp?) -> fd.
 * The socket is non-blocking with TCP_FASTOPEN_CONNECT set. With a cached
 * cookie the kernel defers the SYN until the first write (connect returns 0
 * and the socket polls writable); without one it sends a SYN carrying a
 * cookie request (connect returns EINPROGRESS). */
static napi_value Connect(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "connect(ip, port, family, localIp?)");
  char ip[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  char local[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  int32_t port, family;
  if (!get_str(env, argv[0], ip, sizeof ip)) return throw_type(env, "ip must be an IP literal string");
  if (!get_i32(env, argv[1], &port)) return throw_type(env, "port must be a number");
  if (!get_i32(env, argv[2], &family)) return throw_type(env, "family must be 4 or 6");
  bool has_local = argc >= 4 && !is_nullish(env, argv[3]);
  if (has_local && !get_str(env, argv[3], local, sizeof local))
    return throw_type(env, "localIp must be an IP literal string");

  struct sockaddr_storage remote, bind_to;
  socklen_t remote_len = 0, bind_len = 0;
  if (!make_addr(ip, port, family, &remote, &remote_len)) return throw_errno(env, EINVAL, "inet_pton");
  if (has_local && !make_addr(local, 0, family, &bind_to, &bind_len))
    return throw_errno(env, EINVAL, "inet_pton");

  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (set_int(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "setsockopt");
  }
  if (has_local) {
    /* Port chosen at connect() time from the 4-tuple, not reserved at bind(). */
    (void)set_int(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);
    if (bind(fd, (struct sockaddr *)&bind_to, bind_len) != 0) {
      int err = errno;
      close(fd);
      return throw_errno(env, err, "bind");
    }
  }
  if (connect(fd, (struct sockaddr *)&remote, remote_len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "connect");
  }
  napi_value out;
  NAPI_OK(env, napi_create_int32(env, fd, &out));
  return out;
}

/* listen(ip, port, family, backlog, tfoQueueLen) -> fd with TCP_FASTOPEN. */
static napi_value Listen(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "listen(ip, port, family, backlog, tfoQueueLen)");
  char ip[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  int32_t port, family, backlog, qlen;
  if (!get_str(env, argv[0], ip, sizeof ip)) return throw_type(env, "ip must be an IP literal string");
  if (!get_i32(env, argv[1], &port) || !get_i32(env, argv[2], &family) ||
      !get_i32(env, argv[3], &backlog) || !get_i32(env, argv[4], &qlen))
    return throw_type(env, "port, family, backlog, tfoQueueLen must be numbers");

  struct sockaddr_storage addr;
  socklen_t len = 0;
  if (!make_addr(ip, port, family, &addr, &len)) return throw_errno(env, EINVAL, "inet_pton");
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  const char *step = "setsockopt";
  if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0) goto fail;
  /* The option value is the max queue of pending TFO requests (RFC 7413 §5.1). */
  if (set_int(fd, IPPROTO_TCP, TCP_FASTOPEN, qlen) != 0) goto fail;
  step = "bind";
  if (bind(fd, (struct sockaddr *)&addr, len) != 0) goto fail;
  step = "listen";
  if (listen(fd, backlog) != 0) goto fail;
  napi_value out;
  NAPI_OK(env, napi_create_int32(env, fd, &out));
  return out;
fail: {
    int err = errno;
    close(fd);
    return throw_errno(env, err, step);
  }
}

static bool set_prop_num(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  return napi_create_double(env, v, &n) == napi_ok && napi_set_named_property(env, obj, key, n) == napi_ok;
}

static bool set_prop_bool(napi_env env, napi_value obj, const char *key, bool v) {
  napi_value b;
  return napi_get_boolean(env, v, &b) == napi_ok && napi_set_named_property(env, obj, key, b) == napi_ok;
}

static bool arg_fd(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int32_t *fd) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return false;
  return get_i32(env, argv[0], fd) && *fd >= 0;
}

/* tcpInfo(fd) -> selected TCP_INFO fields. */
static napi_value TcpInfo(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!arg_fd(env, info, 1, argv, &fd)) return throw_type(env, "tcpInfo(fd)");
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return throw_errno(env, errno, "getsockopt");
  napi_value obj;
  NAPI_OK(env, napi_create_object(env, &obj));
  bool ok = set_prop_bool(env, obj, "synDataAccepted", (ti.tcpi_options & TCPI_OPT_SYN_DATA) != 0) &&
            set_prop_num(env, obj, "fastopenClientFail", ti.tcpi_fastopen_client_fail) &&
            set_prop_num(env, obj, "rttUs", ti.tcpi_rtt) &&
            set_prop_num(env, obj, "rttVarUs", ti.tcpi_rttvar) &&
            set_prop_num(env, obj, "retransmits", ti.tcpi_retransmits) &&
            set_prop_num(env, obj, "totalRetrans", ti.tcpi_total_retrans) &&
            set_prop_num(env, obj, "state", ti.tcpi_state);
  if (!ok) {
    napi_throw_error(env, "ERR_TFO_NAPI", "tcpInfo: building result failed");
    return NULL;
  }
  return obj;
}

/* setKeepalive(fd, idleS, intervalS, count) -> undefined. */
static napi_value SetKeepalive(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, idle, intvl, cnt;
  if (!arg_fd(env, info, 4, argv, &fd) || !get_i32(env, argv[1], &idle) ||
      !get_i32(env, argv[2], &intvl) || !get_i32(env, argv[3], &cnt))
    return throw_type(env, "setKeepalive(fd, idleS, intervalS, count)");
  if (set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1) != 0 ||
      set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle) != 0 ||
      set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl) != 0 ||
      set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cnt) != 0)
    return throw_errno(env, errno, "setsockopt");
  return NULL;
}

static int get_int(int fd, int level, int name, int *out) {
  socklen_t len = sizeof *out;
  return getsockopt(fd, level, name, out, &len);
}

/* getKeepalive(fd) -> { enabled, idleS, intervalS, count } as the kernel holds them. */
static napi_value GetKeepalive(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!arg_fd(env, info, 1, argv, &fd)) return throw_type(env, "getKeepalive(fd)");
  int on = 0, idle = 0, intvl = 0, cnt = 0;
  if (get_int(fd, SOL_SOCKET, SO_KEEPALIVE, &on) != 0 || get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle) != 0 ||
      get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl) != 0 || get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt) != 0)
    return throw_errno(env, errno, "getsockopt");
  napi_value obj;
  NAPI_OK(env, napi_create_object(env, &obj));
  if (!set_prop_bool(env, obj, "enabled", on != 0) || !set_prop_num(env, obj, "idleS", idle) ||
      !set_prop_num(env, obj, "intervalS", intvl) || !set_prop_num(env, obj, "count", cnt)) {
    napi_throw_error(env, "ERR_TFO_NAPI", "getKeepalive: building result failed");
    return NULL;
  }
  return obj;
}

/* socketError(fd) -> pending errno code string (SO_ERROR, which clears it) or null. */
static napi_value SocketError(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!arg_fd(env, info, 1, argv, &fd)) return throw_type(env, "socketError(fd)");
  int err = 0;
  if (get_int(fd, SOL_SOCKET, SO_ERROR, &err) != 0) return throw_errno(env, errno, "getsockopt");
  napi_value out;
  if (err == 0) {
    NAPI_OK(env, napi_get_null(env, &out));
  } else {
    NAPI_OK(env, napi_create_string_utf8(env, errno_code(err), NAPI_AUTO_LENGTH, &out));
  }
  return out;
}

/*
 * unread(fd) -> bytes in the socket's receive queue that nobody has read yet
 * (SIOCINQ, the same ioctl as FIONREAD; tcp(7)). An idle HTTP/1.1 client
 * connection with bytes here holds an answer to no request of ours.
 */
static napi_value Unread(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!arg_fd(env, info, 1, argv, &fd)) return throw_type(env, "unread(fd)");
  int n = 0;
  if (ioctl(fd, SIOCINQ, &n) != 0) return throw_errno(env, errno, "ioctl");
  napi_value out;
  NAPI_OK(env, napi_create_int32(env, n, &out));
  return out;
}

/*
 * quickAck(fd): acknowledge what was received now rather than after the
 * delayed-ACK timer (TCP_QUICKACK, tcp(7); it leaves delayed-ACK mode only
 * until the stack re-enters it, so it is set per response). An origin whose
 * Nagle algorithm holds a second small write until our ACK (an unsolicited
 * response written after a complete one) then sends it at once, while the
 * connection is idle, instead of releasing it with the ACK that rides on our
 * next request — where it would be read as that request's answer.
 */
static napi_value QuickAck(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!arg_fd(env, info, 1, argv, &fd)) return throw_type(env, "quickAck(fd)");
  int on = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on) != 0) return throw_errno(env, errno, "setsockopt");
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"connect", NULL, Connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listen", NULL, Listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpInfo", NULL, TcpInfo, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setKeepalive", NULL, SetKeepalive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getKeepalive", NULL, GetKeepalive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketError", NULL, SocketError, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unread", NULL, Unread, NULL, NULL, NULL, napi_enumerable, NULL},
      {"quickAck", NULL, QuickAck, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_OK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
