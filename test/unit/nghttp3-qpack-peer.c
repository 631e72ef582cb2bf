/*
 * Test peer: nghttp3's QPACK decoder (Debian libnghttp3-dev) behind a pipe,
 * so the TypeScript encoder can be checked against an independent decoder.
 *
 * usage: nghttp3-qpack-peer MAX_TABLE_CAPACITY MAX_BLOCKED_STREAMS
 *        nghttp3-qpack-peer encode MAX_TABLE_CAPACITY MAX_BLOCKED_STREAMS
 *
 * Decoder mode (default):
 * stdin: records (stream id u64 BE, length u32 BE, payload); stream 0 is
 *        the encoder stream, any other carries one complete field section.
 * stdout, one reply per record:
 *        status u32 (0 ok, else -nghttp3 error), decoder stream bytes
 *        (u32 length + bytes), then u32 count of sections completed by this
 *        record (unblocked ones included), each: stream id u64, field count
 *        u32, fields (u32 len + name, u32 len + value).
 *
 * Encoder mode: nghttp3's QPACK encoder. Records on stream 0 carry our
 * decoder stream bytes; any other stream carries a header list to encode
 * (u32 count, then u32 len + name, u32 len + value). Reply: status u32,
 * encoder stream bytes (u32 length + bytes), field section (u32 length +
 * bytes; empty for stream 0).
 */
#include <nghttp3/nghttp3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PENDING 256

typedef struct {
  int64_t stream_id;
  nghttp3_qpack_stream_context *sctx;
  uint8_t *data;
  size_t len, off;
  int used;
} pending;

static pending blocked[MAX_PENDING];
static uint8_t out[1 << 22];
static size_t outlen;

static void put_u32(uint32_t v) {
  for (int i = 3; i >= 0; i--) out[outlen++] = (uint8_t)(v >> (8 * i));
}
static void put_bytes(const uint8_t *p, size_t n) {
  put_u32((uint32_t)n);
  memcpy(out + outlen, p, n);
  outlen += n;
}

static int read_full(uint8_t *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t r = fread(p + got, 1, n - got, stdin);
    if (r == 0) return -1;
    got += r;
  }
  return 0;
}

/* Section output is staged per section: count placeholder patched later. */
static uint8_t sect[1 << 22];
static size_t sectlen;
static uint32_t nsections;

static void sect_u32(uint32_t v) {
  for (int i = 3; i >= 0; i--) sect[sectlen++] = (uint8_t)(v >> (8 * i));
}

/* Decode as far as possible; returns 0 done, 1 blocked, <0 error. */
static int run(nghttp3_qpack_decoder *dec, pending *p) {
  size_t start = sectlen;
  uint32_t fields = 0;
  size_t count_at;
  for (int i = 7; i >= 0; i--) sect[sectlen++] = (uint8_t)((uint64_t)p->stream_id >> (8 * i));
  count_at = sectlen;
  sect_u32(0);
  for (;;) {
    nghttp3_qpack_nv nv;
    uint8_t flags = 0;
    nghttp3_ssize n = nghttp3_qpack_decoder_read_request(dec, p->sctx, &nv, &flags, p->data + p->off, p->len - p->off, 1);
    if (n < 0) return (int)n;
    p->off += (size_t)n;
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT) {
      nghttp3_vec name = nghttp3_rcbuf_get_buf(nv.name);
      nghttp3_vec value = nghttp3_rcbuf_get_buf(nv.value);
      sect_u32((uint32_t)name.len);
      memcpy(sect + sectlen, name.base, name.len);
      sectlen += name.len;
      sect_u32((uint32_t)value.len);
      memcpy(sect + sectlen, value.base, value.len);
      sectlen += value.len;
      fields++;
      nghttp3_rcbuf_decref(nv.name);
      nghttp3_rcbuf_decref(nv.value);
      continue;
    }
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_FINAL) {
      for (int i = 3; i >= 0; i--) sect[count_at + 3 - i] = (uint8_t)(fields >> (8 * i));
      nsections++;
      return 0;
    }
    if (flags & NGHTTP3_QPACK_DECODE_FLAG_BLOCKED) {
      sectlen = start; /* nothing emitted before blocking */
      return 1;
    }
    if (n == 0) return -9999; /* no progress */
  }
}

static uint32_t get_u32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int encode_mode(size_t cap, size_t blocked_max) {
  const nghttp3_mem *mem = nghttp3_mem_default();
  nghttp3_qpack_encoder *enc;
  if (nghttp3_qpack_encoder_new(&enc, cap, mem) != 0) return 3;
  nghttp3_qpack_encoder_set_max_dtable_capacity(enc, cap);
  nghttp3_qpack_encoder_set_max_blocked_streams(enc, blocked_max);
  for (;;) {
    uint8_t hdr[12];
    if (read_full(hdr, 12) != 0) break;
    uint64_t sid = 0;
    for (int i = 0; i < 8; i++) sid = (sid << 8) | hdr[i];
    uint32_t len = get_u32(hdr + 8);
    uint8_t *payload = malloc(len ? len : 1);
    if (read_full(payload, len) != 0) return 4;
    int status = 0;
    nghttp3_buf pbuf, rbuf, ebuf;
    nghttp3_buf_init(&pbuf);
    nghttp3_buf_init(&rbuf);
    nghttp3_buf_init(&ebuf);
    if (sid == 0) {
      nghttp3_ssize n = nghttp3_qpack_encoder_read_decoder(enc, payload, len);
      if (n < 0) status = (int)n;
    } else {
      uint32_t count = get_u32(payload), off = 4;
      nghttp3_nv *nva = calloc(count ? count : 1, sizeof(nghttp3_nv));
      for (uint32_t i = 0; i < count; i++) {
        nva[i].namelen = get_u32(payload + off);
        nva[i].name = payload + off + 4;
        off += 4 + (uint32_t)nva[i].namelen;
        nva[i].valuelen = get_u32(payload + off);
        nva[i].value = payload + off + 4;
        off += 4 + (uint32_t)nva[i].valuelen;
        nva[i].flags = NGHTTP3_NV_FLAG_NONE;
      }
      int rv = nghttp3_qpack_encoder_encode(enc, &pbuf, &rbuf, &ebuf, (int64_t)sid, nva, count);
      if (rv != 0) status = rv;
      free(nva);
    }
    outlen = 0;
    put_u32((uint32_t)(status < 0 ? -status : 0));
    put_bytes(ebuf.pos, nghttp3_buf_len(&ebuf));
    put_u32((uint32_t)(nghttp3_buf_len(&pbuf) + nghttp3_buf_len(&rbuf)));
    memcpy(out + outlen, pbuf.pos, nghttp3_buf_len(&pbuf));
    outlen += nghttp3_buf_len(&pbuf);
    memcpy(out + outlen, rbuf.pos, nghttp3_buf_len(&rbuf));
    outlen += nghttp3_buf_len(&rbuf);
    nghttp3_buf_free(&pbuf, mem);
    nghttp3_buf_free(&rbuf, mem);
    nghttp3_buf_free(&ebuf, mem);
    free(payload);
    fwrite(out, 1, outlen, stdout);
    fflush(stdout);
    if (status != 0) break;
  }
  nghttp3_qpack_encoder_del(enc);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "encode") == 0) return encode_mode((size_t)atol(argv[2]), (size_t)atol(argv[3]));
  if (argc != 3) {
    fprintf(stderr, "usage: %s MAX_TABLE_CAPACITY MAX_BLOCKED_STREAMS\n", argv[0]);
    return 2;
  }
  const nghttp3_mem *mem = nghttp3_mem_default();
  nghttp3_qpack_decoder *dec;
  if (nghttp3_qpack_decoder_new(&dec, (size_t)atol(argv[1]), (size_t)atol(argv[2]), mem) != 0) return 3;
  for (;;) {
    uint8_t hdr[12];
    if (read_full(hdr, 12) != 0) break;
    uint64_t sid = 0;
    uint32_t len = 0;
    for (int i = 0; i < 8; i++) sid = (sid << 8) | hdr[i];
    for (int i = 8; i < 12; i++) len = (len << 8) | hdr[i];
    uint8_t *payload = malloc(len ? len : 1);
    if (read_full(payload, len) != 0) return 4;
    int status = 0;
    outlen = 0;
    sectlen = 0;
    nsections = 0;
    if (sid == 0) {
      nghttp3_ssize n = nghttp3_qpack_decoder_read_encoder(dec, payload, len);
      free(payload);
      if (n < 0) status = (int)n;
      for (int i = 0; status == 0 && i < MAX_PENDING; i++) {
        if (!blocked[i].used) continue;
        int r = run(dec, &blocked[i]);
        if (r < 0) status = r;
        else if (r == 0) {
          nghttp3_qpack_stream_context_del(blocked[i].sctx);
          free(blocked[i].data);
          blocked[i].used = 0;
        }
      }
    } else {
      pending p = {(int64_t)sid, NULL, payload, len, 0, 1};
      nghttp3_qpack_stream_context_new(&p.sctx, (int64_t)sid, mem);
      int r = run(dec, &p);
      if (r < 0) status = r;
      else if (r == 1) {
        int slot = -1;
        for (int i = 0; i < MAX_PENDING; i++) if (!blocked[i].used) { slot = i; break; }
        if (slot < 0) status = -9998;
        else blocked[slot] = p;
      } else {
        nghttp3_qpack_stream_context_del(p.sctx);
        free(payload);
      }
    }
    put_u32((uint32_t)(status < 0 ? -status : 0));
    size_t dlen = nghttp3_qpack_decoder_get_decoder_streamlen(dec);
    uint8_t *dbytes = malloc(dlen ? dlen : 1);
    nghttp3_buf dbuf = {dbytes, dbytes + dlen, dbytes, dbytes};
    nghttp3_qpack_decoder_write_decoder(dec, &dbuf);
    put_bytes(dbytes, (size_t)(dbuf.last - dbuf.pos));
    free(dbytes);
    put_u32(nsections);
    memcpy(out + outlen, sect, sectlen);
    outlen += sectlen;
    fwrite(out, 1, outlen, stdout);
    fflush(stdout);
    if (status != 0) break;
  }
  nghttp3_qpack_decoder_del(dec);
  return 0;
}
