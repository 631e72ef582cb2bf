/*
 * originlink: QUIC packets steered to the worker that holds their connection, in the kernel.
 *
 * Every worker binds the h3 port with SO_REUSEPORT (one reuseport group). An eBPF program of type
 * SK_REUSEPORT, attached to the group, reads each datagram's first QUIC byte: a short header (RFC 9000 §17.3) is
 * a packet of an established connection, and the first byte of its Destination Connection ID is the index of the
 * worker that issued the ID (quic/endpoint.ts puts it there); the program picks that worker's socket from a
 * REUSEPORT_SOCKARRAY map indexed by it (bpf_sk_select_reuseport). A long header (a new connection, or its
 * handshake) or an index with no socket falls back to the kernel's own 4-tuple hash over the group. The map is
 * indexed by slot, not by position in the group: the kernel reorders positions when a socket closes, a map entry
 * stays where its worker put it, and a closed socket leaves the map by itself.
 *
 * The map is made once (by the `serve --workers` primary) and its fd handed to every worker; each worker loads the
 * program against it, attaches it to its socket (the same program for the whole group) and puts its socket at its
 * index. The instructions are written here, 21 of them (no compiler, no libbpf).
 *
 * Exports (see native-notes/udp.md):
 *   reuseportBind(ip, port) -> fd | -errno       a UDP socket with SO_REUSEPORT, bound (non-blocking, close-on-exec)
 *   steerMap(slots) -> fd | -errno               the REUSEPORT_SOCKARRAY map, `slots` entries
 *   steerJoin(sockFd, mapFd, index) -> 0 | -errno | verifier log (string)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <node_api.h>
#include "napi-util.h"

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif



static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

napi_value steer_reuseport_bind(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char ip[64];
  size_t iplen;
  uint32_t port;
  CHECK(napi_get_value_string_utf8(env, argv[0], ip, sizeof(ip), &iplen));
  CHECK(napi_get_value_uint32(env, argv[1], &port));
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t slen;
  int family;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    family = a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    slen = sizeof(*a4);
  } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    family = a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    slen = sizeof(*a6);
  } else {
    return num(env, -EINVAL);
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return num(env, -errno);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 || bind(fd, (struct sockaddr *)&ss, slen) != 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  return num(env, fd);
}

napi_value steer_map(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t slots;
  CHECK(napi_get_value_uint32(env, argv[0], &slots));
  if (slots == 0 || slots > 256) return num(env, -EINVAL);
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.map_type = BPF_MAP_TYPE_REUSEPORT_SOCKARRAY;
  a.key_size = sizeof(uint32_t);
  a.value_size = sizeof(uint64_t);
  a.max_entries = slots;
  long fd = sys_bpf(BPF_MAP_CREATE, &a);
  return num(env, fd < 0 ? -errno : fd);
}

#define INSN(CODE, DST, SRC, OFF, IMM) \
  ((struct bpf_insn){.code = (CODE), .dst_reg = (DST), .src_reg = (SRC), .off = (OFF), .imm = (IMM)})

/*
 * The program: see the head of this file. The skb's data starts at the UDP header (8 bytes), as nginx's quic_bpf
 * reads it; the bytes are copied out with bpf_skb_load_bytes, not read in place: a datagram that came as part of a
 * GSO batch (loopback keeps it unsplit) may hold its payload outside the linear part, where a direct read's bounds
 * check fails and the packet would go by the hash (seen: a client sending GSO runs after a port move).
 */
static int load_program(int map_fd, char *log, size_t log_size) {
  struct bpf_insn p[] = {
      /* 0 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0),
      /* 1-4: bpf_skb_load_bytes(ctx, 8, fp - 8, 2): the QUIC first byte and DCID[0] */
      INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, 8),
      INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_10, 0, 0),
      INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_3, 0, 0, -8),
      INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_4, 0, 0, 2),
      /* 5 */ INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_skb_load_bytes),
      /* 6: too short: default (the 4-tuple's hash) */
      INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_0, 0, 12, 0),
      /* 7 */ INSN(BPF_LDX | BPF_MEM | BPF_B, BPF_REG_5, BPF_REG_10, -8, 0),
      /* 8 */ INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_5, 0, 0, 0x80),
      /* 9: a long header: default */
      INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 9, 0),
      /* 10 */ INSN(BPF_LDX | BPF_MEM | BPF_B, BPF_REG_5, BPF_REG_10, -7, 0),
      /* 11: the key on the stack */
      INSN(BPF_STX | BPF_MEM | BPF_W, BPF_REG_10, BPF_REG_5, -4, 0),
      /* 12, 13: r2 = the map */
      INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_2, BPF_PSEUDO_MAP_FD, 0, map_fd),
      INSN(0, 0, 0, 0, 0),
      /* 14 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_6, 0, 0),
      /* 15 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_10, 0, 0),
      /* 16 */ INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_3, 0, 0, -4),
      /* 17 */ INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_4, 0, 0, 0),
      /* 18: a failure (no socket at that index) leaves the choice to the hash */
      INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_select_reuseport),
      /* 19 */ INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, SK_PASS),
      /* 20 */ INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
  };
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
  a.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
  a.insns = (uint64_t)(uintptr_t)p;
  a.insn_cnt = sizeof(p) / sizeof(p[0]);
  a.license = (uint64_t)(uintptr_t) "MIT";
  a.log_buf = (uint64_t)(uintptr_t)log;
  a.log_size = (uint32_t)log_size;
  a.log_level = 1;
  long fd = sys_bpf(BPF_PROG_LOAD, &a);
  if (fd < 0 && errno != EACCES && errno != EINVAL) log[0] = 0;
  return fd < 0 ? -errno : (int)fd;
}

napi_value steer_join(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t sock, map;
  uint32_t index;
  CHECK(napi_get_value_int32(env, argv[0], &sock));
  CHECK(napi_get_value_int32(env, argv[1], &map));
  CHECK(napi_get_value_uint32(env, argv[2], &index));
  static char log[16384];
  log[0] = 0;
  int prog = load_program(map, log, sizeof(log));
  if (prog < 0) {
    if (log[0] == 0) return num(env, prog);
    napi_value s;
    napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &s);
    return s;
  }
  int rc = setsockopt(sock, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog));
  int e = errno;
  close(prog); /* the group holds the program now */
  if (rc != 0) return num(env, -e);
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  uint64_t value = (uint64_t)sock;
  a.map_fd = (uint32_t)map;
  a.key = (uint64_t)(uintptr_t)&index;
  a.value = (uint64_t)(uintptr_t)&value;
  a.flags = BPF_ANY;
  if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) != 0) return num(env, -errno);
  return num(env, 0);
}
