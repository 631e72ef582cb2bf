// linkem: a userspace point-to-point link emulator over two TUN devices.
//
// One process opens a TUN device inside each of two network namespaces and
// forwards IP packets between them. Per direction it applies, in this order:
// seeded random loss, a serialising rate limit with a finite tail-drop queue,
// then a one-way delay with optional jitter. Counters are printed as one JSON
// line on stdout on SIGUSR1 and at exit (SIGTERM, SIGINT, SIGHUP, stdin EOF).
//
// Invariants:
// - Without --reorder, packets of one direction leave in arrival order
//   (due times are made non-decreasing), so jitter never reorders.
// - Loss and jitter draw from separate generators per direction, so the drop
//   pattern of a direction depends only on the seed and on the sequence of
//   packets offered to that direction.
// - The devices are not persistent: they vanish when this process exits.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT 65536
#define READ_BATCH 256
#define MAX_INFLIGHT 50000

#include "linkem.h"

enum jitter_dist { JIT_UNIFORM, JIT_NORMAL };

struct dir {
  const char *name;
  int in_fd, out_fd;
  uint64_t delay_ns, jitter_ns, rate_bps;
  uint64_t loss_thresh;  // drop when rng_u32 < loss_thresh (2^32 = always)
  uint32_t queue_max;
  uint64_t *txq;         // ring of serialisation end times, non-decreasing
  uint32_t txq_head, txq_n;
  uint64_t last_tx_done, last_due, seq;
  struct rng loss_rng, jit_rng;
  struct heap h;
  uint64_t received, forwarded, bytes, lost, queue_dropped, overflow, write_errors, max_queue;
  int64_t late_sum_ns, late_max_ns;  // write time minus due time (negative: early)
};

static struct {
  enum jitter_dist dist;
  int reorder;
  uint64_t start;
} cfg;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t jitter_sample(struct dir *d) {
  if (!d->jitter_ns) return 0;
  double j;
  if (cfg.dist == JIT_NORMAL) {
    double u1 = rng_unit(&d->jit_rng), u2 = rng_unit(&d->jit_rng);
    j = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2) * (double)d->jitter_ns;
  } else {
    j = (2.0 * rng_unit(&d->jit_rng) - 1.0) * (double)d->jitter_ns;
  }
  return (int64_t)j;
}

static void offer(struct dir *d, const uint8_t *buf, uint32_t len, uint64_t now) {
  d->received++;
  if (d->loss_thresh && (uint64_t)rng_u32(&d->loss_rng) < d->loss_thresh) {
    d->lost++;
    return;
  }
  uint64_t tx_done = now;
  if (d->rate_bps) {
    while (d->txq_n && d->txq[d->txq_head] <= now) {
      d->txq_head = (d->txq_head + 1) % d->queue_max;
      d->txq_n--;
    }
    if (d->txq_n >= d->queue_max) {
      d->queue_dropped++;
      return;
    }
    uint64_t start = d->last_tx_done > now ? d->last_tx_done : now;
    tx_done = start + (uint64_t)len * 8ull * 1000000000ull / d->rate_bps;
    d->last_tx_done = tx_done;
    d->txq[(d->txq_head + d->txq_n) % d->queue_max] = tx_done;
    d->txq_n++;
    if (d->txq_n > d->max_queue) d->max_queue = d->txq_n;
  }
  if (d->h.n >= MAX_INFLIGHT) {
    d->overflow++;
    return;
  }
  int64_t due = (int64_t)(tx_done + d->delay_ns) + jitter_sample(d);
  if (due < (int64_t)tx_done) due = (int64_t)tx_done;
  if (!cfg.reorder && (uint64_t)due < d->last_due) due = (int64_t)d->last_due;
  d->last_due = (uint64_t)due;
  struct pkt *p = malloc(sizeof *p + len);
  if (!p) {
    d->overflow++;
    return;
  }
  p->due = (uint64_t)due;
  p->seq = d->seq++;
  p->len = len;
  memcpy(p->data, buf, len);
  if (heap_push(&d->h, p) < 0) {
    free(p);
    d->overflow++;
  }
}

// Writes every packet due by `horizon` (>= now).
static void deliver(struct dir *d, uint64_t now, uint64_t horizon) {
  while (d->h.n && d->h.a[0]->due <= horizon) {
    struct pkt *p = heap_pop(&d->h);
    if (write(d->out_fd, p->data, p->len) == (ssize_t)p->len) {
      int64_t late = (int64_t)(now - p->due);
      d->late_sum_ns += late;
      if (late > d->late_max_ns) d->late_max_ns = late;
      d->forwarded++;
      d->bytes += p->len;
    } else {
      d->write_errors++;
    }
    free(p);
  }
}

static void pump(struct dir *d) {
  static uint8_t buf[MAX_PKT];
  for (int i = 0; i < READ_BATCH; i++) {
    ssize_t n = read(d->in_fd, buf, sizeof buf);
    if (n <= 0) break;
    offer(d, buf, (uint32_t)n, now_ns());
  }
}

static void print_dir(const struct dir *d) {
  printf("\"%s\":{\"received\":%llu,\"forwarded\":%llu,\"bytes\":%llu,\"lost\":%llu,"
         "\"queueDropped\":%llu,\"overflowDropped\":%llu,\"writeErrors\":%llu,"
         "\"inFlight\":%zu,\"maxQueue\":%llu,\"lateUsMean\":%.1f,\"lateUsMax\":%.1f}",
         d->name, (unsigned long long)d->received, (unsigned long long)d->forwarded,
         (unsigned long long)d->bytes, (unsigned long long)d->lost,
         (unsigned long long)d->queue_dropped, (unsigned long long)d->overflow,
         (unsigned long long)d->write_errors, d->h.n, (unsigned long long)d->max_queue,
         d->forwarded ? (double)d->late_sum_ns / (double)d->forwarded / 1e3 : 0.0,
         (double)d->late_max_ns / 1e3);
}

static void print_counters(const char *reason, const struct dir *ab, const struct dir *ba) {
  printf("{\"event\":\"counters\",\"reason\":\"%s\",\"uptimeMs\":%.3f,", reason,
         (double)(now_ns() - cfg.start) / 1e6);
  print_dir(ab);
  putchar(',');
  print_dir(ba);
  puts("}");
  fflush(stdout);
}

static void die(const char *what, const char *arg) {
  fprintf(stderr, "linkem: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  exit(2);
}

static int open_tun(const char *ns, const char *dev, int txqlen, int mtu) {
  char path[512];
  if (strchr(ns, '/')) snprintf(path, sizeof path, "%s", ns);
  else snprintf(path, sizeof path, "/run/netns/%s", ns);
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (home < 0 || nsfd < 0) die("open netns", path);
  if (setns(nsfd, CLONE_NEWNET) < 0) die("setns", path);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("open", "/dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF", dev);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket", NULL);
  ifr.ifr_qlen = txqlen;
  if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0) die("SIOCSIFTXQLEN", dev);
  if (mtu > 0) {
    ifr.ifr_mtu = mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) < 0) die("SIOCSIFMTU", dev);
  }
  close(s);
  if (setns(home, CLONE_NEWNET) < 0) die("setns back", NULL);
  close(nsfd);
  close(home);
  return fd;
}

static double num(const char *s, const char *name) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || v < 0) {
    fprintf(stderr, "linkem: bad value for %s: %s\n", name, s);
    exit(2);
  }
  return v;
}

static void usage(void) {
  fputs("usage: linkem --ns-a NS --ns-b NS [--dev-a olc] [--dev-b ols]\n"
        "  [--delay-ms D] [--delay-ba-ms D] [--jitter-ms J] [--jitter-dist uniform|normal]\n"
        "  [--reorder] [--loss P] [--loss-ba P] [--seed N] [--rate-mbit R] [--rate-ba-mbit R]\n"
        "  [--queue N] [--txqueuelen N] [--mtu N] [--watch-stdin]\n"
        "loss is a fraction in [0,1]; *-ba options default to the a->b value.\n",
        stderr);
  exit(2);
}

int main(int argc, char **argv) {
  const char *ns_a = NULL, *ns_b = NULL, *dev_a = "olc", *dev_b = "ols";
  double delay = 0, delay_ba = -1, jitter = 0, loss = 0, loss_ba = -1, rate = 0, rate_ba = -1;
  uint64_t seed = 1;
  int queue = 1000, txqlen = 5000, mtu = 0, watch_stdin = 0;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "--reorder")) { cfg.reorder = 1; continue; }
    if (!strcmp(k, "--watch-stdin")) { watch_stdin = 1; continue; }
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(k, "--ns-a")) ns_a = v;
    else if (!strcmp(k, "--ns-b")) ns_b = v;
    else if (!strcmp(k, "--dev-a")) dev_a = v;
    else if (!strcmp(k, "--dev-b")) dev_b = v;
    else if (!strcmp(k, "--delay-ms")) delay = num(v, k);
    else if (!strcmp(k, "--delay-ba-ms")) delay_ba = num(v, k);
    else if (!strcmp(k, "--jitter-ms")) jitter = num(v, k);
    else if (!strcmp(k, "--jitter-dist")) {
      if (!strcmp(v, "normal")) cfg.dist = JIT_NORMAL;
      else if (!strcmp(v, "uniform")) cfg.dist = JIT_UNIFORM;
      else usage();
    }
    else if (!strcmp(k, "--loss")) loss = num(v, k);
    else if (!strcmp(k, "--loss-ba")) loss_ba = num(v, k);
    else if (!strcmp(k, "--seed")) seed = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--rate-mbit")) rate = num(v, k);
    else if (!strcmp(k, "--rate-ba-mbit")) rate_ba = num(v, k);
    else if (!strcmp(k, "--queue")) queue = (int)num(v, k);
    else if (!strcmp(k, "--txqueuelen")) txqlen = (int)num(v, k);
    else if (!strcmp(k, "--mtu")) mtu = (int)num(v, k);
    else usage();
  }
  if (!ns_a || !ns_b || queue < 1 || loss > 1 || loss_ba > 1) usage();
  if (delay_ba < 0) delay_ba = delay;
  if (loss_ba < 0) loss_ba = loss;
  if (rate_ba < 0) rate_ba = rate;

  // Die with the parent so a killed wrapper never leaves the devices behind.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  prctl(PR_SET_TIMERSLACK, 1000UL);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("signalfd", NULL);
  if (getppid() == 1) return 1;

  int fa = open_tun(ns_a, dev_a, txqlen, mtu);
  int fb = open_tun(ns_b, dev_b, txqlen, mtu);
  struct dir ab = {.name = "ab", .in_fd = fa, .out_fd = fb};
  struct dir ba = {.name = "ba", .in_fd = fb, .out_fd = fa};
  double d_ms[2] = {delay, delay_ba}, l[2] = {loss, loss_ba}, r[2] = {rate, rate_ba};
  struct dir *dirs[2] = {&ab, &ba};
  for (int i = 0; i < 2; i++) {
    struct dir *d = dirs[i];
    d->delay_ns = (uint64_t)llround(d_ms[i] * 1e6);
    d->jitter_ns = (uint64_t)llround(jitter * 1e6);
    d->loss_thresh = (uint64_t)llround(l[i] * 4294967296.0);
    d->rate_bps = (uint64_t)llround(r[i] * 1e6);
    d->queue_max = (uint32_t)queue;
    d->txq = calloc((size_t)queue, sizeof *d->txq);
    if (!d->txq) die("calloc", NULL);
    rng_seed(&d->loss_rng, seed, 2 * (uint64_t)i + 1);
    rng_seed(&d->jit_rng, seed, 2 * (uint64_t)i + 2);
  }
  cfg.start = now_ns();
  printf("{\"event\":\"ready\",\"pid\":%d,\"devA\":\"%s\",\"devB\":\"%s\"}\n", getpid(), dev_a, dev_b);
  fflush(stdout);

  struct pollfd pfd[4] = {
      {.fd = fa, .events = POLLIN}, {.fd = fb, .events = POLLIN},
      {.fd = sfd, .events = POLLIN}, {.fd = watch_stdin ? 0 : -1, .events = POLLIN}};
  const char *reason = NULL;
  // A timer wake-up comes late by the host's wake-up latency (about 0.1 ms
  // on this VM). The loop sleeps that much less (an average of past
  // latencies) and, after a timer wake-up, writes what falls due within that
  // margin, so deliveries are on time on average instead of always late.
  uint64_t wake_est = 0, margin = 0;
  while (!reason) {
    uint64_t now = now_ns();
    deliver(&ab, now, now + margin);
    deliver(&ba, now, now + margin);
    margin = 0;
    uint64_t next = UINT64_MAX, wake_at = 0;
    if (ab.h.n) next = ab.h.a[0]->due;
    if (ba.h.n && ba.h.a[0]->due < next) next = ba.h.a[0]->due;
    struct timespec ts, *tsp = NULL;
    if (next != UINT64_MAX) {
      uint64_t wait = next > now + wake_est ? next - wake_est - now : 0;
      if (wait) wake_at = now + wait;
      ts.tv_sec = (time_t)(wait / 1000000000ull);
      ts.tv_nsec = (long)(wait % 1000000000ull);
      tsp = &ts;
    }
    int n = ppoll(pfd, 4, tsp, NULL);
    if (n < 0 && errno != EINTR) die("ppoll", NULL);
    if (n == 0 && wake_at) {
      uint64_t late = now_ns() - wake_at;
      if (late > 1000000) late = 1000000;
      wake_est = wake_est - wake_est / 16 + late / 16;
      margin = wake_est;
    } else if (n == 0) {
      margin = wake_est;
    }
    if (n <= 0) continue;
    if (pfd[0].revents & POLLIN) pump(&ab);
    if (pfd[1].revents & POLLIN) pump(&ba);
    if ((pfd[0].revents | pfd[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) reason = "device";
    if (pfd[3].revents) {
      char tmp[256];
      if (read(0, tmp, sizeof tmp) <= 0) reason = "stdin";
    }
    if (pfd[2].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGUSR1) print_counters("usr1", &ab, &ba);
        else reason = "signal";
      }
    }
  }
  print_counters(reason, &ab, &ba);
  return 0;
}
