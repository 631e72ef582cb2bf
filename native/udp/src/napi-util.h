/* What udp.c and steer.c share: argument checks and number results (N-API). */
#ifndef ORIGINLINK_UDP_NAPI_UTIL_H
#define ORIGINLINK_UDP_NAPI_UTIL_H
#include <node_api.h>

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, NULL, "originlink udp: bad arguments");      \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static inline napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

#endif
