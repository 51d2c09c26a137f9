/* kltest_ops.h: helpers of the op tests: tensors from values, random tensors of any stype,
 * comparisons against references, finite-difference gradient checks. */
#ifndef KLTEST_OPS_H
#define KLTEST_OPS_H
#include <stdlib.h>
#include "kltest.h"
#include "kl/registry.h"


/* A dense tensor from row-major values. */
static inline kl_tensor *kt_dense(kl_dtype dt, int ndim, const int64_t *shape, const double *v) {
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(dt, ndim, shape, &t) != KL_OK) return NULL;
  for (int64_t i = 0; i < kl_tensor_numel(t); i++) kl_tensor_data_set(t, i, v ? v[i] : 0);
  return t;
}

/* A dense 2-d tensor converted to stype s. */
static inline kl_tensor *kt_mat(kl_dtype dt, kl_stype s, int64_t r, int64_t c, const double *v) {
  int64_t shape[2] = {r, c};
  kl_tensor *d = kt_dense(dt, 2, shape, v), *t = NULL;
  if (!d) return NULL;
  if (kl_tensor_tostype(d, s, &t) != KL_OK) t = NULL;
  kl_tensor_release(d);
  return t;
}

/* Random tensor of stype s: values uniform in [lo, hi) at density 0.4 (all for dense). */
static inline kl_tensor *kt_rand(kl_rng *rng, kl_stype s, kl_dtype dt, int ndim, const int64_t *shape,
                          double lo, double hi) {
  kl_tensor *t = NULL;
  if (kl_sparse_rand(s, dt, ndim, shape, s == KL_STYPE_DEFAULT ? 1.0 : 0.4, rng, &t) != KL_OK)
    return NULL;
  int64_t n = s == KL_STYPE_ROW_SPARSE ? t->nnz * kl_row_width(t) : t->nnz;
  for (int64_t i = 0; i < n; i++) kl_tensor_data_set(t, i, lo + (hi - lo) * kl_rng_uniform(rng));
  return t;
}

/* Value of t at flat row-major position k (any stype). */
static inline double kt_at(const kl_tensor *t, int64_t k) {
  int64_t idx[KL_MAX_NDIM];
  for (int d = t->ndim - 1; d >= 0; d--) {
    idx[d] = t->shape[d] ? k % t->shape[d] : 0;
    k = t->shape[d] ? k / t->shape[d] : 0;
  }
  double v = 0;
  kl_tensor_get(t, idx, &v);
  return v;
}

/* Largest |a - b| relative as CHECK_NEAR measures it (inf when shapes differ or one is
 * NaN and the other not). */
static inline double kt_maxrel(const kl_tensor *a, const kl_tensor *b) {
  if (!a || !b || a->ndim != b->ndim) return INFINITY;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return INFINITY;
  double m = 0;
  for (int64_t k = 0; k < kl_tensor_numel(a); k++) {
    double x = kt_at(a, k), y = kt_at(b, k), e;
    if (isnan(x) || isnan(y)) e = isnan(x) && isnan(y) ? 0 : INFINITY;
    else if (isinf(x) || isinf(y)) e = x == y ? 0 : INFINITY;
    else e = fabs(x - y) / (1.0 + fabs(y));
    if (e > m) m = e;
  }
  return m;
}

static inline double kt_tol(kl_dtype dt) { return dt == KL_FLOAT32 ? 1e-5 : 1e-12; }

/* sum(out * w) for a dense weight w shaped like out. */
static inline double kt_wsum(const kl_tensor *out, const kl_tensor *w) {
  double s = 0;
  for (int64_t k = 0; k < kl_tensor_numel(out); k++) s += kt_at(out, k) * kt_at(w, k);
  return s;
}

/* Finite-difference check of d sum(op(in) * W)/d in[i] against kl_op_backward, float64,
 * central differences. in[i] must be dense. Returns the largest relative error. */
static inline double kt_gradcheck(kl_op op, kl_tensor **in, int nin, const kl_attrs *a, int i,
                           kl_rng *rng) {
  kl_tensor *out = NULL, *w = NULL, *g = NULL;
  double err = INFINITY, h = 1e-6;
  if (kl_op_run(op, in, nin, a, &out) != KL_OK) goto done;
  w = kt_rand(rng, KL_STYPE_DEFAULT, KL_FLOAT64, out->ndim, out->shape, -1, 1);
  if (kl_op_backward(op, in, nin, a, out, w, i, KL_STYPE_DEFAULT, &g) != KL_OK) {
    fprintf(stderr, "backward of %s failed: %s\n", kl_op_name(op), kl_errmsg());
    goto done;
  }
  err = 0;
  double *x = in[i]->data;
  for (int64_t k = 0; k < kl_tensor_numel(in[i]); k++) {
    double x0 = x[k], fp, fm;
    kl_tensor *o = NULL;
    x[k] = x0 + h;
    kl_op_run(op, in, nin, a, &o);
    fp = kt_wsum(o, w);
    kl_tensor_release(o);
    x[k] = x0 - h;
    kl_op_run(op, in, nin, a, &o);
    fm = kt_wsum(o, w);
    kl_tensor_release(o);
    x[k] = x0;
    double num = (fp - fm) / (2 * h), an = kt_at(g, k);
    double e = fabs(num - an) / (1.0 + fabs(num));
    if (e > err) err = e;
  }
done:
  kl_tensor_release(out);
  kl_tensor_release(w);
  kl_tensor_release(g);
  return err;
}

/* csr (rows x cols, nnz stored) from 0-based indptr/indices/values; checked, exits on failure. */
static inline kl_tensor *kt_csr_of(kl_dtype dt, int64_t r, int64_t c, int64_t nnz,
                                   const int64_t *ip, const int64_t *ix, const double *v) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_csr(dt, r, c, nnz, &t));
  if (!t) exit(2);
  for (int64_t i = 0; i <= r; i++) t->indptr[i] = ip[i];
  for (int64_t j = 0; j < nnz; j++) {
    t->indices[j] = ix[j];
    kl_tensor_data_set(t, j, v[j]);
  }
  CHECK_OK(kl_tensor_check_format(t, "test", 0));
  return t;
}

/* Fails the k-th allocation for every k: the call succeeds or says KL_ENOMEM, never
 * crashes, and (under ASan) leaks nothing. bi < 0: forward; else the backward of input bi. */
static inline void kt_alloc_sweep(kl_op op, kl_tensor **in, int nin, const kl_attrs *a, int bi,
                                  kl_stype want) {
  kl_tensor *out = NULL;
  CHECK_OK(kl_op_run(op, in, nin, a, &out));
  int done = 0, bad = 0;
  for (long k = 1; k < 200 && !done; k++) {
    kl_tensor *r = NULL;
    kl_alloc_fail_at(k);
    kl_status st = bi < 0 ? kl_op_run(op, in, nin, a, &r)
                          : kl_op_backward(op, in, nin, a, out, out, bi, want, &r);
    kl_alloc_fail_at(0);
    if (st == KL_OK) done = 1;
    else bad += st != KL_ENOMEM || r != NULL;
    kl_tensor_release(r);
  }
  CHECK(done && !bad);
  kl_tensor_release(out);
}

#endif
