/* test_dot_csrT_cols.c: csr^T . dense/row_sparse over column ranges that take each path of
 * the column sort (one counting pass, several passes, a range offset, > 2^32 columns) and
 * narrow csr . dense gathers (N = 1..40, every tile width), against hand values and a
 * dense reference. */
#include <stdlib.h>
#include "kltest.h"
#include "kltest_ops.h"

static kl_tensor *dense_of(kl_dtype dt, int64_t r, int64_t c, const double *v) {
  kl_tensor *t = NULL;
  int64_t s[2] = {r, c};
  CHECK_OK(kl_tensor_new_dense(dt, 2, s, &t));
  if (!t) exit(2);
  for (int64_t i = 0; i < r * c; i++) kl_tensor_data_set(t, i, v[i]);
  return t;
}

/* Hand case: 3 x C csr (columns base + {0, 5, off, C-1-base}) ^T . 3 x 2 dense. */
static void hand_case(int64_t base, int64_t off, int64_t C) {
  int64_t ip[4] = {0, 2, 3, 5};
  int64_t ix[5] = {base + 5, C - 1, base + 5, base, base + off};
  double v[5] = {1, 2, 3, 4, 5}, bv[6] = {1, 2, 3, 4, 5, 6};
  kl_tensor *a = kt_csr_of(KL_FLOAT64, 3, C, 5, ip, ix, v), *b = dense_of(KL_FLOAT64, 3, 2, bv);
  kl_tensor *o = NULL;
  CHECK_OK(kl_dot(a, b, 1, 0, &o));
  CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == 4);
  if (o && o->nnz == 4) {
    int64_t want_i[4] = {base, base + 5, base + off, C - 1};
    double want_v[8] = {20, 24, 10, 14, 25, 30, 2, 4};
    for (int u = 0; u < 4; u++) CHECK(o->indices[u] == want_i[u]);
    for (int k = 0; k < 8; k++) CHECK(kl_tensor_data_at(o, k) == want_v[k]);
  }
  kl_tensor_release(o);
  kl_tensor_release(a);
  kl_tensor_release(b);
}

/* Random R x C csr (per row nz distinct-ish columns in [lo, lo + span)) ^T . R x N dense,
 * against a dense reference accumulated in entry order. */
static void random_case(kl_dtype dt, int64_t R, int64_t lo, int64_t span, int nz, int64_t N,
                        uint64_t seed) {
  kl_rng g;
  kl_rng_seed(&g, seed);
  int64_t nnz = R * nz, C = lo + span;
  int64_t *ip = malloc((size_t)(R + 1) * sizeof *ip), *ix = malloc((size_t)nnz * sizeof *ix);
  double *v = malloc((size_t)nnz * sizeof *v), *bv = malloc((size_t)(R * N) * sizeof *bv);
  if (!ip || !ix || !v || !bv) exit(2);
  for (int64_t i = 0; i <= R; i++) ip[i] = i * nz;
  for (int64_t i = 0; i < R; i++) {
    /* sorted distinct columns: a random increasing walk through the span */
    int64_t c = lo + (int64_t)(kl_rng_uniform(&g) * (double)(span / (nz + 1)));
    for (int k = 0; k < nz; k++) {
      ix[i * nz + k] = c;
      c += 1 + (int64_t)(kl_rng_uniform(&g) * (double)(span / (nz + 1)));
    }
    for (int k = 0; k < nz; k++) v[i * nz + k] = kl_rng_uniform(&g) - 0.5;
  }
  for (int64_t k = 0; k < R * N; k++) bv[k] = kl_rng_uniform(&g) - 0.5;
  kl_tensor *a = kt_csr_of(dt, R, C, nnz, ip, ix, v), *b = dense_of(dt, R, N, bv);
  kl_tensor *o = NULL, *y = NULL;
  CHECK_OK(kl_dot(a, b, 1, 0, &o));
  CHECK(o && o->stype == KL_STYPE_ROW_SPARSE);
  double tol = dt == KL_FLOAT64 ? 1e-12 : 1e-5;
  if (o) {
    /* every stored row: strictly increasing, in range, equal to the reference row */
    double *ref = calloc((size_t)N, sizeof *ref);
    if (!ref) exit(2);
    int64_t touched = 0;
    for (int64_t u = 0; u < o->nnz; u++) {
      int64_t col = o->indices[u];
      CHECK(col >= lo && col < C && (u == 0 || col > o->indices[u - 1]));
      for (int64_t n = 0; n < N; n++) ref[n] = 0;
      for (int64_t j = 0; j < nnz; j++)
        if (ix[j] == col) {
          touched++;
          int64_t i = j / nz;
          for (int64_t n = 0; n < N; n++) ref[n] += v[j] * bv[i * N + n];
        }
      for (int64_t n = 0; n < N; n++) CHECK_NEAR(kl_tensor_data_at(o, u * N + n), ref[n], tol);
    }
    CHECK(touched == nnz); /* every entry's column is a stored row */
    free(ref);
  }
  /* narrow forward gathers: csr (R x C) . dense (C x N') for N' in 1..40 on a random row
   * subset is too big for C; use a . (b^T)-shaped check instead: y = a . W, W = C x N'
   * only when C is small enough to allocate. */
  if (C <= 200000) {
    for (int64_t M = 1; M <= 40; M += (M < 9 ? 1 : 7)) {
      double *wv = malloc((size_t)(C * M) * sizeof *wv);
      if (!wv) exit(2);
      for (int64_t k = 0; k < C * M; k++) wv[k] = (double)((k * 7919) % 13) - 6;
      kl_tensor *w = dense_of(dt, C, M, wv);
      CHECK_OK(kl_dot(a, w, 0, 0, &y));
      for (int64_t i = 0; y && i < R; i++)
        for (int64_t n = 0; n < M; n++) {
          double s = 0;
          for (int64_t j = ip[i]; j < ip[i + 1]; j++) s += v[j] * wv[ix[j] * M + n];
          CHECK_NEAR(kl_tensor_data_at(y, i * M + n), s, tol);
        }
      kl_tensor_release(y);
      y = NULL;
      kl_tensor_release(w);
      free(wv);
    }
  }
  kl_tensor_release(o);
  kl_tensor_release(a);
  kl_tensor_release(b);
  free(ip);
  free(ix);
  free(v);
  free(bv);
}

int main(void) {
  hand_case(0, 9, 12);                                   /* one counting pass */
  hand_case(0, 9, (int64_t)1 << 20);                     /* several passes */
  hand_case(((int64_t)1 << 40) - 100, 9, (int64_t)1 << 40); /* small range, huge offset */
  hand_case(0, (int64_t)1 << 33, (int64_t)1 << 40);      /* range > 2^32: the unpacked sort */
  random_case(KL_FLOAT64, 300, 0, 50, 4, 3, 1);          /* 2^bits <= n: one pass */
  random_case(KL_FLOAT64, 200, 0, 100000, 5, 2, 2);      /* two passes */
  random_case(KL_FLOAT32, 200, 0, 100000, 5, 1, 3);
  random_case(KL_FLOAT64, 100, 123456789, 1000, 6, 17, 4);
  random_case(KL_FLOAT64, 50, 0, (int64_t)1 << 36, 3, 5, 5);
  random_case(KL_FLOAT32, 400, 0, 3000, 8, 40, 6);
  KLTEST_DONE();
}
