/* layers/pooling.c: the global 1-d poolings over the steps of (n, L, D): masked_mean
 * (GlobalAveragePooling1D after Embedding{mask_zero=true}) and global_max_pool (with or
 * without that mask), and their gradients. */
#include <math.h>
#include <string.h>
#include "layers_util.h"
#include "tensor_internal.h"

/* Checks x (n, L, D) dense float and, when present, the mask's ids (n, L) dense; fn names
 * the op. Unknown dimensions (-1, graph meta) are not compared. */
static kl_status pool_infer(const char *fn, const kl_meta *in, int nin, kl_meta *out) {
  char s[128], s2[128];
  KL_CHECK(in[0].ndim == 3, KL_ESHAPE, "%s: input must have shape (batch, steps, features), got (%s)",
           fn, kl_lu_shape_str(s, sizeof s, in[0].ndim, in[0].shape));
  KL_CHECK(kl_is_float(in[0].dtype), KL_EDTYPE, "%s: input must be float32 or float64, got %s", fn,
           kl_dtype_name(in[0].dtype));
  KL_CHECK(in[0].stype == KL_STYPE_DEFAULT && (nin < 2 || in[1].stype == KL_STYPE_DEFAULT),
           KL_ESTYPE, "%s: inputs must be dense, got %s%s%s", fn, kl_stype_name(in[0].stype),
           nin == 2 ? " and " : "", nin == 2 ? kl_stype_name(in[1].stype) : "");
  if (nin == 2) {
    const kl_meta *m = &in[1];
    int ok = m->ndim == 2;
    for (int d = 0; ok && d < 2; d++)
      ok = m->shape[d] < 0 || in[0].shape[d] < 0 || m->shape[d] == in[0].shape[d];
    KL_CHECK(ok, KL_ESHAPE, "%s: the mask's ids have shape (%s), expected (batch, steps) of (%s)", fn,
             kl_lu_shape_str(s, sizeof s, m->ndim, m->shape),
             kl_lu_shape_str(s2, sizeof s2, in[0].ndim, in[0].shape));
  }
  out->dtype = in[0].dtype;
  out->stype = KL_STYPE_DEFAULT;
  out->ndim = 2;
  out->shape[0] = in[0].shape[0];
  out->shape[1] = in[0].shape[2];
  return KL_OK;
}

static kl_status masked_mean_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  (void)a;
  KL_CHECK(nin == 2, KL_EINVAL, "masked_mean: expected 2 inputs (x, ids), got %d", nin);
  return pool_infer("masked_mean", in, nin, out);
}

static kl_status max_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  (void)a;
  KL_CHECK(nin == 1 || nin == 2, KL_EINVAL, "global_max_pool: expected 1 or 2 inputs (x[, ids]), got %d",
           nin);
  return pool_infer("global_max_pool", in, nin, out);
}

/* Runs the op's inference on tensors (the kernels' own argument check). */
static kl_status pool_check(kl_infer_fn infer, kl_tensor *const *in, int nin, kl_meta *om) {
  kl_meta m[2];
  for (int i = 0; i < nin; i++) {
    KL_CHECK(in[i] != NULL, KL_EINVAL, "pooling: input %d is NULL", i);
    kl_tensor_meta(in[i], &m[i]);
  }
  return infer(m, nin, NULL, om);
}

/* Whether step p (flat b * L + l) is kept: no mask, or its id is not 0 (padding). */
static inline int kept(const kl_tensor *ids, int64_t p) {
  if (!ids) return 1;
  return kl_lu_read(ids->data, ids->dtype, p) != 0.0;
}

/* 1 / (unmasked steps of sample b), or 0 when every step is masked (the pooled row is 0). */
static double inv_count(const kl_tensor *ids, int64_t b, int64_t L) {
  int64_t c = 0;
  for (int64_t l = 0; l < L; l++) c += kept(ids, b * L + l);
  return c > 0 ? 1.0 / (double)c : 0.0;
}

/* y[b, :] = the sum of x[b, l, :] over the kept steps, in double from +0 in l order, times
 * 1 / count, rounded once: the same bits as the plan's fused Embedding -> masked mean. */
static kl_status masked_mean_fwd(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 kl_tensor **out) {
  (void)a;
  kl_meta om;
  KL_TRY(pool_check(masked_mean_infer, in, nin, &om));
  const kl_tensor *x = in[0], *ids = in[1];
  const int64_t n = x->shape[0], L = x->shape[1], D = x->shape[2];
  double *acc = kl_malloc_n((size_t)(D > 0 ? D : 1), sizeof *acc);
  if (!acc) return KL_ENOMEM;
  kl_tensor *o = NULL;
  kl_status st = kl_tensor_new_dense(x->dtype, 2, om.shape, &o);
  if (st == KL_OK) {
    KL_DISPATCH(x->dtype, T, {
      const T *xd = (const T *)x->data;
      T *y = (T *)o->data;
      for (int64_t b = 0; b < n; b++) {
        for (int64_t j = 0; j < D; j++) acc[j] = 0;
        for (int64_t l = 0; l < L; l++) {
          if (!kept(ids, b * L + l)) continue;
          const T *r = xd + (size_t)(b * L + l) * (size_t)D;
          for (int64_t j = 0; j < D; j++) acc[j] += r[j];
        }
        const double scale = inv_count(ids, b, L);
        for (int64_t j = 0; j < D; j++) y[b * D + j] = (T)(acc[j] * scale);
      }
    })
    *out = o;
  }
  kl_free(acc);
  return st;
}

/* The gradient shape check shared by both poolings: gout is dense, shaped like the output. */
static kl_status check_gout(const char *fn, const kl_meta *om, const kl_tensor *gout) {
  char s[128], s2[128];
  KL_CHECK(gout && gout->stype == KL_STYPE_DEFAULT && kl_is_float(gout->dtype), KL_EINVAL,
           "%s: backward: gout must be a dense float tensor", fn);
  KL_CHECK(gout->ndim == 2 && gout->shape[0] == om->shape[0] && gout->shape[1] == om->shape[1],
           KL_ESHAPE, "%s: backward: gout shape (%s) does not match the output shape (%s)", fn,
           kl_lu_shape_str(s, sizeof s, gout->ndim, gout->shape),
           kl_lu_shape_str(s2, sizeof s2, om->ndim, om->shape));
  return KL_OK;
}

/* The checks of a pooling's backward for input i: the inputs (infer), i (the ids have no
 * gradient), gout. */
static kl_status bwd_check(const char *fn, kl_infer_fn infer, kl_tensor *const *in, int nin, int i,
                           const kl_tensor *gout) {
  kl_meta om;
  KL_TRY(pool_check(infer, in, nin, &om));
  KL_CHECK(i != 1, KL_EUNSUPPORTED, "%s: the ids (input 1) have no gradient", fn);
  KL_CHECK(i == 0, KL_EINVAL, "%s: no input %d (0 = x, 1 = ids)", fn, i);
  return check_gout(fn, &om, gout);
}

/* d x[b, l, :] = gout[b, :] / count at kept steps (the product in double, rounded once),
 * 0 at masked ones; the ids have no gradient. */
static kl_status masked_mean_bwd(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 const kl_tensor *out, const kl_tensor *gout, int i,
                                 kl_stype want, kl_tensor **gin) {
  (void)a, (void)out, (void)want;
  KL_TRY(bwd_check("masked_mean", masked_mean_infer, in, nin, i, gout));
  const kl_tensor *x = in[0], *ids = in[1];
  const int64_t n = x->shape[0], L = x->shape[1], D = x->shape[2];
  kl_tensor *g = NULL;
  KL_TRY(kl_tensor_new_dense(x->dtype, 3, x->shape, &g));
  KL_DISPATCH(x->dtype, T, {
    T *gd = (T *)g->data;
    for (int64_t b = 0; b < n; b++) {
      const double scale = inv_count(ids, b, L);
      for (int64_t l = 0; l < L; l++) {
        if (!kept(ids, b * L + l)) continue;
        T *r = gd + (size_t)(b * L + l) * (size_t)D;
        for (int64_t j = 0; j < D; j++)
          r[j] = (T)(kl_lu_read(gout->data, gout->dtype, b * D + j) * scale);
      }
    }
  })
  *gin = g;
  return KL_OK;
}

/* The max over the kept steps of x[b, :, j] (NaN wins, as numpy's max), and how many kept
 * steps equal it; with no kept step, 0 and count 0. */
static double max_at(const kl_tensor *x, const kl_tensor *ids, int64_t b, int64_t j, int64_t *ties) {
  const int64_t L = x->shape[1], D = x->shape[2];
  double best = 0;
  int any = 0;
  for (int64_t l = 0; l < L; l++) {
    if (!kept(ids, b * L + l)) continue;
    double v = kl_lu_read(x->data, x->dtype, (b * L + l) * D + j);
    if (!any || v > best || v != v) best = any && best != best ? best : v;
    any = 1;
  }
  int64_t c = 0;
  for (int64_t l = 0; any && l < L; l++)
    c += kept(ids, b * L + l) && kl_lu_read(x->data, x->dtype, (b * L + l) * D + j) == best;
  *ties = c;
  return any ? best : (ids ? 0.0 : -INFINITY);
}

static kl_status max_fwd(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  (void)a;
  kl_meta om;
  KL_TRY(pool_check(max_infer, in, nin, &om));
  const kl_tensor *x = in[0], *ids = nin == 2 ? in[1] : NULL;
  const int64_t n = x->shape[0], D = x->shape[2];
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_dense(x->dtype, 2, om.shape, &o));
  for (int64_t b = 0; b < n; b++)
    for (int64_t j = 0; j < D; j++) {
      int64_t ties;
      kl_lu_write(o->data, o->dtype, b * D + j, max_at(x, ids, b, j, &ties));
    }
  *out = o;
  return KL_OK;
}

/* As TensorFlow's reduce_max gradient: gout[b, j] shared equally by the kept steps equal to
 * the max (1 / ties, rounded, times gout); none where the max is NaN or every step masked. */
static kl_status max_bwd(kl_tensor *const *in, int nin, const kl_attrs *a, const kl_tensor *out,
                         const kl_tensor *gout, int i, kl_stype want, kl_tensor **gin) {
  (void)a, (void)out, (void)want;
  KL_TRY(bwd_check("global_max_pool", max_infer, in, nin, i, gout));
  const kl_tensor *x = in[0], *ids = nin == 2 ? in[1] : NULL;
  const int64_t n = x->shape[0], L = x->shape[1], D = x->shape[2];
  kl_tensor *g = NULL;
  KL_TRY(kl_tensor_new_dense(x->dtype, 3, x->shape, &g));
  KL_DISPATCH(x->dtype, T, {
    T *gd = (T *)g->data;
    for (int64_t b = 0; b < n; b++)
      for (int64_t j = 0; j < D; j++) {
        int64_t ties;
        const double best = max_at(x, ids, b, j, &ties);
        if (ties == 0) continue;
        const T share = (T)(1.0 / (double)ties) * (T)kl_lu_read(gout->data, gout->dtype, b * D + j);
        for (int64_t l = 0; l < L; l++) {
          const int64_t p = (b * L + l) * D + j;
          if (kept(ids, b * L + l) && kl_lu_read(x->data, x->dtype, p) == best) gd[p] = share;
        }
      }
  })
  *gin = g;
  return KL_OK;
}

const kl_op_def kl_opdef_masked_mean = {"masked_mean", 2, 2, masked_mean_infer, masked_mean_fwd,
                                        NULL, masked_mean_bwd};
const kl_op_def kl_opdef_global_max_pool = {"global_max_pool", 1, 2, max_infer, max_fwd, NULL,
                                            max_bwd};
