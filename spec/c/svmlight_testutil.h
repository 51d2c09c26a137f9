/* svmlight_testutil.h: temp files, loading helpers and exact comparisons shared by the svmlight tests. */
#ifndef SVMLIGHT_TESTUTIL_H
#define SVMLIGHT_TESTUTIL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "kl/svmlight.h"
#include "kltest.h"

static char tmpdir[256];

/* tmpdir/name in one of a few rotating buffers. */
static inline const char *tpath(const char *name) {
  static char bufs[8][512];
  static int k = 0;
  char *p = bufs[k++ & 7];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}

static inline const char *write_bytes(const char *name, const char *bytes, size_t n) {
  const char *p = tpath(name);
  FILE *f = fopen(p, "wb");
  if (!f) return p;
  fwrite(bytes, 1, n, f);
  fclose(f);
  return p;
}
static inline const char *write_str(const char *name, const char *text) {
  return write_bytes(name, text, strlen(text));
}
/* The same text gzip-compressed. */
static inline const char *write_gz(const char *name, const char *bytes, size_t n) {
  const char *p = tpath(name);
  gzFile f = gzopen(p, "wb");
  if (!f) return p;
  gzwrite(f, bytes, (unsigned)n);
  gzclose(f);
  return p;
}

static inline char *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)sz + 1);
  *n = fread(b, 1, (size_t)sz, f);
  fclose(f);
  return b;
}

static inline kl_svmlight_opts opts_of(int64_t nf, int zb, kl_dtype dt) {
  kl_svmlight_opts o = kl_svmlight_opts_default();
  o.n_features = nf;
  o.zero_based = zb;
  o.dtype = dt;
  return o;
}

/* Value (i, j) of X through the public accessor. */
static inline double at(const kl_tensor *X, int64_t i, int64_t j) {
  int64_t idx[2] = {i, j};
  double v = -12345;
  kl_tensor_get(X, idx, &v);
  return v;
}

/* Two CSR tensors with identical structure and bits; y tensors identical bits. */
static inline int same_csr(const kl_tensor *a, const kl_tensor *b) {
  if (!a || !b || a->stype != KL_STYPE_CSR || b->stype != KL_STYPE_CSR) return 0;
  if (a->dtype != b->dtype || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) return 0;
  if (a->nnz != b->nnz) return 0;
  if (memcmp(a->indptr, b->indptr, (size_t)(a->shape[0] + 1) * sizeof(int64_t))) return 0;
  if (a->nnz && memcmp(a->indices, b->indices, (size_t)a->nnz * sizeof(int64_t))) return 0;
  if (a->nnz && memcmp(a->data, b->data, (size_t)a->nnz * kl_dtype_size(a->dtype))) return 0;
  return 1;
}
static inline int same_dense(const kl_tensor *a, const kl_tensor *b) {
  if (!a || !b || a->dtype != b->dtype || a->shape[0] != b->shape[0]) return 0;
  return memcmp(a->data, b->data, (size_t)a->shape[0] * kl_dtype_size(a->dtype)) == 0;
}

/* A random CSR with values over many magnitudes and signs (strtod's slow path too). */
static inline kl_tensor *random_csr(kl_dtype dt, int64_t rows, int64_t cols, uint64_t seed) {
  kl_rng r;
  kl_rng_seed(&r, seed);
  int64_t shape[2] = {rows, cols};
  kl_tensor *X = NULL;
  if (kl_sparse_rand(KL_STYPE_CSR, dt, 2, shape, 0.05, &r, &X) != KL_OK) return NULL;
  int span = dt == KL_FLOAT32 ? 30 : 300;
  for (int64_t k = 0; k < X->nnz; k++) {
    double v = kl_tensor_data_at(X, k);
    double e = (double)((int64_t)kl_rng_below(&r, (uint64_t)(2 * span + 1)) - span);
    v = v * pow(10.0, e) * (kl_rng_below(&r, 2) ? -1 : 1);
    if (k % 17 == 3) v = 0.1 * (double)k; /* short decimals */
    kl_tensor_data_set(X, k, v);
  }
  return X;
}

/* Labels load as float64 whatever X's dtype: y0's values, read back, in y0's dtype. */
static inline int same_labels(const kl_tensor *y0, const kl_tensor *y) {
  if (!y || y->dtype != KL_FLOAT64 || y->ndim != 1 || y->shape[0] != y0->shape[0]) return 0;
  for (int64_t i = 0; i < y0->shape[0]; i++) {
    double v = ((const double *)y->data)[i];
    if (y0->dtype == KL_FLOAT32 ? (float)v != ((const float *)y0->data)[i]
                                : v != ((const double *)y0->data)[i])
      return 0;
  }
  return 1;
}

static inline kl_tensor *random_labels(kl_dtype dt, int64_t rows, uint64_t seed) {
  kl_rng r;
  kl_rng_seed(&r, seed);
  int64_t shape[1] = {rows};
  kl_tensor *y = NULL;
  if (kl_tensor_new_dense(dt, 1, shape, &y) != KL_OK) return NULL;
  kl_tensor_fill_normal(y, 0, 1e3, &r);
  return y;
}

/* Makes the temp dir (mkdtemp under $TMPDIR or /tmp); 0 on failure. */
static inline int make_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/kl_svmlight_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 0;
  }
  return 1;
}

static inline void rm_tmpdir(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}
#endif
