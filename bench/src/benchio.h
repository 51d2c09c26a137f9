/* benchio.h: shared helpers of the bench drivers: the binary CSR reader, a clock, medians. */
#ifndef BENCH_BENCHIO_H
#define BENCH_BENCHIO_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kl/kl.h"

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of t[0..n-1] (sorts t). */
static inline double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_dbl);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static inline void die(const char *what) {
  fprintf(stderr, "bench: %s: %s\n", what, kl_errmsg());
  exit(1);
}

/* Reads gen's binary CSR (see gen.c) into a float32 CSR tensor; *y (may be NULL) gets the
 * labels as a dense float32 vector. */
static inline kl_tensor *read_csr_bin(const char *path, kl_tensor **y) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "bench: cannot open %s\n", path); exit(1); }
  int64_t hdr[3];
  if (fread(hdr, sizeof hdr, 1, f) != 1) { fprintf(stderr, "bench: short %s\n", path); exit(1); }
  kl_tensor *t = NULL;
  if (kl_tensor_new_csr(KL_FLOAT32, hdr[0], hdr[1], hdr[2], &t) != KL_OK) die("new_csr");
  size_t ok = fread(t->indptr, sizeof(int64_t), (size_t)hdr[0] + 1, f) == (size_t)hdr[0] + 1;
  ok = ok && fread(t->indices, sizeof(int64_t), (size_t)hdr[2], f) == (size_t)hdr[2];
  ok = ok && fread(t->data, sizeof(float), (size_t)hdr[2], f) == (size_t)hdr[2];
  if (y) {
    int64_t n = hdr[0];
    if (kl_tensor_new_dense(KL_FLOAT32, 1, &n, y) != KL_OK) die("new_dense");
    ok = ok && fread((*y)->data, sizeof(float), (size_t)n, f) == (size_t)n;
  }
  fclose(f);
  if (!ok) { fprintf(stderr, "bench: short read of %s\n", path); exit(1); }
  if (kl_tensor_check_format(t, "bench", 0) != KL_OK) die(path);
  return t;
}

/* One result line, parsed by bench/report.lua:
 * RESULT <workload> <impl> <threads> <median seconds> <runs> [note] */
static inline void result(const char *wl, const char *impl, int threads, double med, int runs,
                   const char *note) {
  printf("RESULT %s %s %d %.6g %d %s\n", wl, impl, threads, med, runs, note ? note : "");
  fflush(stdout);
}
#endif
