/*
 * A second opinion for differential fuzzing: nghttp2's HPACK decoder and nghttp3's QPACK decoder
 * (Debian libnghttp2-dev, libnghttp3-dev) as a Node-API addon, so a Jazzer.js target can ask them
 * about the same bytes as our decoders synchronously, once per input. Test-only: built by
 * fuzz/targets/_nghttp.mjs into .fuzz/build/, never part of the package. native-notes/nghttp-diff.md.
 *
 * hpackDecode(blocks: Buffer[], maxTableSize: number)
 *   -> one entry per block, in order, stopping after the first error:
 *      an array of [name, value] (latin1 strings), or a negative nghttp2 error code.
 *   The blocks go through one inflater (its dynamic table carries from block to block).
 *
 * qpackDecode(encoderStream: Buffer, section: Buffer, maxTableCapacity: number, maxBlocked: number)
 *   -> [encoderStatus, section]: encoderStatus 0 or a negative nghttp3 error code (the section is
 *      then not read, section = null); section: an array of [name, value], the string "blocked",
 *      or a negative nghttp3 error code. The section is read as stream 0 with FIN.
 */
#include <nghttp2/nghttp2.h>
#include <nghttp3/nghttp3.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, NULL, "nghttp-diff: " #call " failed");                             \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static napi_value num(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

static napi_value pair(napi_env env, const uint8_t *n, size_t nlen, const uint8_t *v, size_t vlen) {
  napi_value arr, ns, vs;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_string_latin1(env, (const char *)n, nlen, &ns);
  napi_create_string_latin1(env, (const char *)v, vlen, &vs);
  napi_set_element(env, arr, 0, ns);
  napi_set_element(env, arr, 1, vs);
  return arr;
}

static napi_value hpack_decode(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t nblocks;
  int64_t max_table;
  CHECK(napi_get_array_length(env, argv[0], &nblocks));
  CHECK(napi_get_value_int64(env, argv[1], &max_table));
  nghttp2_hd_inflater *inf;
  if (nghttp2_hd_inflate_new(&inf) != 0) {
    napi_throw_error(env, NULL, "nghttp-diff: nghttp2_hd_inflate_new failed");
    return NULL;
  }
  /* The inflater starts at 4096 (RFC 7541 §4.2 / RFC 9113 §6.5.2); a different setting is one the
   * encoder must acknowledge with a size update, as after SETTINGS. */
  if (max_table != 4096) nghttp2_hd_inflate_change_table_size(inf, (size_t)max_table);
  napi_value result;
  napi_create_array(env, &result);
  for (uint32_t b = 0; b < nblocks; b++) {
    napi_value buf;
    uint8_t *in;
    size_t inlen;
    napi_get_element(env, argv[0], b, &buf);
    if (napi_get_buffer_info(env, buf, (void **)&in, &inlen) != napi_ok) {
      nghttp2_hd_inflate_del(inf);
      napi_throw_type_error(env, NULL, "nghttp-diff: blocks must be Buffers");
      return NULL;
    }
    napi_value fields;
    napi_create_array(env, &fields);
    uint32_t count = 0;
    int64_t err = 0;
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      ssize_t n = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, inlen, 1);
      if (n < 0) {
        err = n;
        break;
      }
      in += n;
      inlen -= (size_t)n;
      if (flags & NGHTTP2_HD_INFLATE_EMIT) napi_set_element(env, fields, count++, pair(env, nv.name, nv.namelen, nv.value, nv.valuelen));
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inf);
        break;
      }
      if (inlen == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) break;
    }
    napi_set_element(env, result, b, err ? num(env, err) : fields);
    if (err) break;
  }
  nghttp2_hd_inflate_del(inf);
  return result;
}

static napi_value qpack_decode(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *enc, *sec;
  size_t enclen, seclen;
  int64_t cap, blocked;
  CHECK(napi_get_buffer_info(env, argv[0], (void **)&enc, &enclen));
  CHECK(napi_get_buffer_info(env, argv[1], (void **)&sec, &seclen));
  CHECK(napi_get_value_int64(env, argv[2], &cap));
  CHECK(napi_get_value_int64(env, argv[3], &blocked));
  const nghttp3_mem *mem = nghttp3_mem_default();
  nghttp3_qpack_decoder *dec;
  if (nghttp3_qpack_decoder_new(&dec, (size_t)cap, (size_t)blocked, mem) != 0) {
    napi_throw_error(env, NULL, "nghttp-diff: nghttp3_qpack_decoder_new failed");
    return NULL;
  }
  napi_value result;
  napi_create_array_with_length(env, 2, &result);
  nghttp3_ssize n = nghttp3_qpack_decoder_read_encoder(dec, enc, enclen);
  napi_set_element(env, result, 0, num(env, n < 0 ? n : 0));
  if (n < 0) {
    napi_value nul;
    napi_get_null(env, &nul);
    napi_set_element(env, result, 1, nul);
    nghttp3_qpack_decoder_del(dec);
    return result;
  }
  nghttp3_qpack_stream_context *sctx;
  nghttp3_qpack_stream_context_new(&sctx, 0, mem);
  napi_value fields;
  napi_create_array(env, &fields);
  uint32_t count = 0;
  napi_value outcome = fields;
  size_t off = 0;
  for (int guard = 0; guard < 1 << 20; guard++) {
    nghttp3_qpack_nv nv;
    uint8_t flags = 0;
    nghttp3_ssize r = nghttp3_qpack_decoder_read_request(dec, sctx, &nv, &flags, sec + off, seclen - off, 1);
    if (r < 0) {
      outcome = num(env, r);
      break;
    }
    off += (size_t)r;
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT) {
      nghttp3_vec name = nghttp3_rcbuf_get_buf(nv.name);
      nghttp3_vec value = nghttp3_rcbuf_get_buf(nv.value);
      napi_set_element(env, fields, count++, pair(env, name.base, name.len, value.base, value.len));
      nghttp3_rcbuf_decref(nv.name);
      nghttp3_rcbuf_decref(nv.value);
      continue;
    }
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_FINAL) break;
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_BLOCKED) {
      napi_create_string_latin1(env, "blocked", 7, &outcome);
      break;
    }
    if (r == 0) {
      /* No progress and no verdict: report it as its own code so it shows as a difference. */
      outcome = num(env, -99999);
      break;
    }
  }
  napi_set_element(env, result, 1, outcome);
  nghttp3_qpack_stream_context_del(sctx);
  nghttp3_qpack_decoder_del(dec);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "hpackDecode", NAPI_AUTO_LENGTH, hpack_decode, NULL, &fn);
  napi_set_named_property(env, exports, "hpackDecode", fn);
  napi_create_function(env, "qpackDecode", NAPI_AUTO_LENGTH, qpack_decode, NULL, &fn);
  napi_set_named_property(env, exports, "qpackDecode", fn);
  return exports;
}
