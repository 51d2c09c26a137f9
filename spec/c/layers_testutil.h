/* layers_testutil.h: helpers for the layer-op tests: tensors from arrays, running an op def
 * directly, and a float64 central-difference gradient check. */
#ifndef KL_LAYERS_TESTUTIL_H
#define KL_LAYERS_TESTUTIL_H
#include <stdlib.h>
#include "kltest.h"
#include "ops_internal.h"

/* A dense tensor holding vals (row-major); vals NULL leaves zeros. */
static kl_tensor *mk(kl_dtype dt, int ndim, const int64_t *shape, const double *vals) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, ndim, shape, &t));
  if (!t) return NULL;
  if (vals)
    for (int64_t i = 0; i < kl_tensor_numel(t); i++) kl_tensor_data_set(t, i, vals[i]);
  return t;
}

/* A dense tensor of uniform [lo, hi) values. */
static kl_tensor *rnd(kl_dtype dt, int ndim, const int64_t *shape, kl_rng *r, double lo,
                      double hi) {
  kl_tensor *t = mk(dt, ndim, shape, NULL);
  if (t)
    for (int64_t i = 0; i < kl_tensor_numel(t); i++)
      kl_tensor_data_set(t, i, lo + (hi - lo) * kl_rng_uniform(r));
  return t;
}

/* Runs an op def as the registry would: infer, then the first sparse kernel that accepts
 * the inputs, else the dense kernel. Checks the result's meta against inference. */
static kl_status run_def(const kl_op_def *d, kl_tensor **in, int nin, const kl_attrs *a,
                         kl_tensor **out) {
  kl_meta m[KL_MAX_OP_INPUTS], om;
  kl_kernel_fn fn = d->dense;
  for (int k = 0; k < nin; k++) kl_tensor_meta(in[k], &m[k]);
  KL_TRY(d->infer(m, nin, a, &om));
  if (d->kernels)
    for (const kl_kernel_entry *e = d->kernels; e->fn; e++)
      if (e->supports(in, nin, a)) {
        fn = e->fn;
        break;
      }
  KL_TRY(fn(in, nin, a, out));
  CHECK((*out)->ndim == om.ndim && (*out)->dtype == om.dtype && (*out)->stype == om.stype);
  for (int k = 0; k < om.ndim; k++) CHECK((*out)->shape[k] == om.shape[k]);
  return KL_OK;
}

/* sum(R .* op(in)) for the FD check. */
static double weighted_out(const kl_op_def *d, kl_tensor **in, int nin, const kl_attrs *a,
                           const kl_tensor *R) {
  kl_tensor *o = NULL;
  double s = 0;
  if (run_def(d, in, nin, a, &o) != KL_OK) return NAN;
  for (int64_t e = 0; e < kl_tensor_numel(o); e++)
    s += kl_tensor_data_at(o, e) * kl_tensor_data_at(R, e);
  kl_tensor_release(o);
  return s;
}

/* Central-difference check (float64 inputs) of d's backward for input i: f = sum(R .* out)
 * with R random, gout = R. Every stored value of in[i] is perturbed by +-h; the gradient
 * (densified when sparse) must match. Returns the gradient (caller releases) for further
 * checks on its storage, or NULL. */
static kl_tensor *fd_check(const kl_op_def *d, kl_tensor **in, int nin, const kl_attrs *a, int i,
                           kl_stype want, double tol, kl_rng *rng) {
  kl_tensor *o = NULL, *R = NULL, *g = NULL, *gd = NULL;
  const double h = 1e-6;
  CHECK_OK(run_def(d, in, nin, a, &o));
  if (!o) return NULL;
  R = rnd(KL_FLOAT64, o->ndim, o->shape, rng, -1, 1);
  CHECK_OK(d->backward(in, nin, a, o, R, i, want, &g));
  if (g) CHECK_OK(kl_tensor_tostype(g, KL_STYPE_DEFAULT, &gd));
  if (g && gd) {
    kl_tensor *x = in[i];
    CHECK(gd->ndim == x->ndim);
    for (int k = 0; k < x->ndim; k++) CHECK(gd->shape[k] == x->shape[k]);
    int64_t rw = kl_row_width(x);
    int64_t nvals = x->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(x) : x->nnz * rw;
    for (int64_t e = 0; e < nvals; e++) {
      int64_t flat = x->stype == KL_STYPE_DEFAULT ? e : x->indices[e / rw] * rw + e % rw;
      double v = kl_tensor_data_at(x, e);
      kl_tensor_data_set(x, e, v + h);
      double fp = weighted_out(d, in, nin, a, R);
      kl_tensor_data_set(x, e, v - h);
      double fm = weighted_out(d, in, nin, a, R);
      kl_tensor_data_set(x, e, v);
      CHECK_NEAR(kl_tensor_data_at(gd, flat), (fp - fm) / (2 * h), tol);
    }
  }
  kl_tensor_release(o);
  kl_tensor_release(R);
  kl_tensor_release(gd);
  return g;
}
#endif
