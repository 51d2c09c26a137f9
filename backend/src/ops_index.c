/* ops_index.c: ops between values and class indices: argmax (values -> 1-based indices) and
 * one_hot (1-based ids -> rows of 0/1). Neither has a gradient. */
#include <math.h>
#include <string.h>
#include "ops_ew.h"

/* ------------------------------------------------------------ argmax */

static int argmax_axis(const kl_meta *x, const kl_attrs *a) {
  return a->has_axis ? a->axis : x->ndim - 1;
}

static kl_status argmax_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  KL_CHECK(in[0].ndim >= 1, KL_ESHAPE, "argmax: needs at least 1 dimension, got a scalar");
  int ax = argmax_axis(&in[0], a);
  KL_CHECK(ax >= 0 && ax < in[0].ndim, KL_EINVAL, "argmax: axis %d out of range for %d dimensions",
           ax + 1, in[0].ndim);
  KL_CHECK(in[0].shape[ax] != 0, KL_ESHAPE, "argmax: axis %d is empty (length 0)", ax + 1);
  memset(out, 0, sizeof *out);
  out->ndim = in[0].ndim - 1;
  for (int d = 0, k = 0; d < in[0].ndim; d++)
    if (d != ax) out->shape[k++] = in[0].shape[d];
  out->dtype = KL_INT64;
  out->stype = KL_STYPE_DEFAULT;
  return KL_OK;
}

/* Dense x: for each (outer, inner) position, the 1-based index of the first largest value
 * along the axis; a NaN is taken as the largest (numpy's argmax). Sparse inputs take the
 * registry's dense fallback (the implicit zeros are values). */
static kl_status argmax_dense(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *x = in[0];
  kl_meta xm, om;
  kl_tensor_meta(x, &xm);
  KL_TRY(argmax_infer(&xm, 1, a, &om));
  kl_tensor *r = NULL;
  KL_TRY(kl_tensor_new_dense(KL_INT64, om.ndim, om.shape, &r));
  int ax = argmax_axis(&xm, a);
  int64_t len = x->shape[ax], inner = 1, outer = 1;
  for (int d = ax + 1; d < x->ndim; d++) inner *= x->shape[d];
  for (int d = 0; d < ax; d++) outer *= x->shape[d];
  int64_t *po = r->data, n = outer * inner;
  KL_DISPATCH(x->dtype, T, {
    const T *px = x->data;
    KL_OMP_FOR(n * len > KL_EW_PAR)
    for (int64_t o = 0; o < n; o++) {
      const T *p = px + (o / inner) * len * inner + o % inner;
      int64_t best = 0;
      T bv = p[0];
      for (int64_t j = 1; j < len && bv == bv; j++) {
        T v = p[j * inner];
        if (v > bv || v != v) bv = v, best = j;
      }
      po[o] = best + 1;
    }
  })
  *out = r;
  return KL_OK;
}

const kl_op_def kl_opdef_argmax = {"argmax", 1, 1, argmax_infer, argmax_dense, NULL, NULL};

/* ------------------------------------------------------------ one_hot */

static kl_status one_hot_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  KL_CHECK(a->ival >= 1, KL_EINVAL, "one_hot: num_classes must be >= 1, got %lld",
           (long long)a->ival);
  KL_CHECK(in[0].ndim < KL_MAX_NDIM, KL_ESHAPE, "one_hot: ids have %d dimensions (at most %d)",
           in[0].ndim, KL_MAX_NDIM - 1);
  KL_CHECK(in[0].stype == KL_STYPE_DEFAULT, KL_ESTYPE, "one_hot: ids must be dense, got %s",
           kl_stype_name(in[0].stype));
  *out = in[0];
  out->shape[out->ndim++] = a->ival;
  out->dtype = KL_FLOAT32;
  out->stype = KL_STYPE_DEFAULT;
  return KL_OK;
}

/* Checks every id (0..C, integral) before writing, so a bad id leaves no partial result;
 * the position is reported 1-based in the flattened ids. */
static kl_status one_hot_dense(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *ids = in[0];
  kl_meta im, om;
  kl_tensor_meta(ids, &im);
  KL_TRY(one_hot_infer(&im, 1, a, &om));
  int64_t n = kl_tensor_numel(ids), C = a->ival;
  for (int64_t k = 0; k < n; k++) {
    double v = ids->dtype == KL_INT64 ? (double)((const int64_t *)ids->data)[k]
                                      : kl_tensor_data_at(ids, k);
    KL_CHECK(v == floor(v), KL_EINDEX, "one_hot: id %.15g is not an integer at position %lld",
             v, (long long)(k + 1));
    KL_CHECK(v >= 0 && v <= (double)C, KL_EINDEX,
             "one_hot: id %.15g out of range [0, %lld] at position %lld", v, (long long)C,
             (long long)(k + 1));
  }
  kl_tensor *r = NULL;
  KL_TRY(kl_tensor_new_dense(KL_FLOAT32, om.ndim, om.shape, &r)); /* zeroed */
  float *po = r->data;
  for (int64_t k = 0; k < n; k++) {
    int64_t id = ids->dtype == KL_INT64 ? ((const int64_t *)ids->data)[k]
                                        : (int64_t)kl_tensor_data_at(ids, k);
    if (id > 0) po[k * C + id - 1] = 1.0f;
  }
  *out = r;
  return KL_OK;
}

const kl_op_def kl_opdef_one_hot = {"one_hot", 1, 1, one_hot_infer, one_hot_dense, NULL, NULL};
