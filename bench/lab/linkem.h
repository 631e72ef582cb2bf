// Building blocks of linkem: a seeded generator and a packet heap.
#ifndef LINKEM_H
#define LINKEM_H
#include <stdint.h>
#include <stdlib.h>

struct rng { uint64_t s; };

static inline uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline void rng_seed(struct rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed * 0x100000001B3ull + stream;
  r->s = splitmix64(&x);
  if (r->s == 0) r->s = 1;
}

// xorshift64*: period 2^64-1, the high 32 bits pass BigCrush.
static inline uint32_t rng_u32(struct rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return (uint32_t)((r->s * 0x2545F4914F6CDD1Dull) >> 32);
}

static inline double rng_unit(struct rng *r) {  // in (0, 1)
  uint64_t hi = rng_u32(r), lo = rng_u32(r);
  return ((double)((hi << 21) ^ lo) + 0.5) / 9007199254740992.0;
}

struct pkt { uint64_t due; uint64_t seq; uint32_t len; uint8_t data[]; };

// Binary min-heap on (due, seq); with non-decreasing due times it is a FIFO.
struct heap { struct pkt **a; size_t n, cap; };

static inline int pkt_before(const struct pkt *x, const struct pkt *y) {
  return x->due < y->due || (x->due == y->due && x->seq < y->seq);
}

static inline int heap_push(struct heap *h, struct pkt *p) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 1024;
    struct pkt **a = realloc(h->a, cap * sizeof *a);
    if (!a) return -1;
    h->a = a;
    h->cap = cap;
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!pkt_before(p, h->a[up])) break;
    h->a[i] = h->a[up];
    i = up;
  }
  h->a[i] = p;
  return 0;
}

static inline struct pkt *heap_pop(struct heap *h) {
  struct pkt *top = h->a[0], *last = h->a[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && pkt_before(h->a[c + 1], h->a[c])) c++;
    if (!pkt_before(h->a[c], last)) break;
    h->a[i] = h->a[c];
    i = c;
  }
  if (h->n) h->a[i] = last;
  return top;
}

#endif
