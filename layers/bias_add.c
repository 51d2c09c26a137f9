/* layers/bias_add.c: the bias_add op, x (..., k) + b (k) -> dense, and its backward. */
#include <string.h>
#include "layers_util.h"

/* Work below this many elements runs on one thread (OpenMP start-up costs more). */
#define BIAS_PAR_MIN 32768
/* Columns per block when the bias gradient is summed in parallel. */
#define BIAS_COL_BLOCK 64

static kl_status bias_add_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  char sx[128], sb[128];
  KL_CHECK(nin == 2, KL_EINVAL, "bias_add: expected 2 inputs (x, bias), got %d", nin);
  KL_CHECK(in[0].ndim >= 1, KL_ESHAPE, "bias_add: x must have at least 1 axis, got a scalar");
  KL_CHECK(in[1].ndim == 1 && in[1].shape[0] == in[0].shape[in[0].ndim - 1], KL_ESHAPE,
           "bias_add: bias shape (%s) does not match the last axis of x (%s)",
           kl_lu_shape_str(sb, sizeof sb, in[1].ndim, in[1].shape),
           kl_lu_shape_str(sx, sizeof sx, in[0].ndim, in[0].shape));
  KL_CHECK(kl_is_float(in[0].dtype), KL_EDTYPE, "bias_add: x must be float32 or float64, got %s",
           kl_dtype_name(in[0].dtype));
  KL_CHECK(in[1].dtype == in[0].dtype, KL_EDTYPE, "bias_add: bias dtype %s differs from x dtype %s",
           kl_dtype_name(in[1].dtype), kl_dtype_name(in[0].dtype));
  *out = in[0];
  out->stype = KL_STYPE_DEFAULT;
  return KL_OK;
}

static kl_status metas_of(kl_tensor *const *in, int nin, kl_meta *m) {
  KL_CHECK(nin == 2 && in[0] && in[1], KL_EINVAL, "bias_add: expected 2 inputs (x, bias), got %d",
           nin);
  kl_tensor_meta(in[0], &m[0]);
  kl_tensor_meta(in[1], &m[1]);
  return KL_OK;
}

#define BIAS_FWD(T)                                                                  \
  {                                                                                  \
    const T *x = (const T *)in[0]->data, *b = (const T *)in[1]->data;                \
    T *y = (T *)o->data;                                                             \
    _Pragma("omp parallel for schedule(static) if (numel >= BIAS_PAR_MIN)")          \
    for (int64_t r = 0; r < rows; r++)                                               \
      for (int64_t j = 0; j < k; j++) y[r * k + j] = x[r * k + j] + b[j];            \
  }

/* Dense kernel: y[r, j] = x[r, j] + b[j] over the rows of x flattened to (rows, k). */
static kl_status bias_add_dense(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  kl_meta m[2], om;
  kl_tensor *o = NULL;
  KL_TRY(metas_of(in, nin, m));
  KL_TRY(bias_add_infer(m, nin, a, &om));
  KL_CHECK(in[0]->stype == KL_STYPE_DEFAULT && in[1]->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
           "bias_add: dense kernel given %s x and %s bias", kl_stype_name(in[0]->stype),
           kl_stype_name(in[1]->stype));
  KL_TRY(kl_tensor_new_dense(om.dtype, om.ndim, om.shape, &o));
  int64_t k = m[1].shape[0], numel = kl_tensor_numel(in[0]);
  int64_t rows = k ? numel / k : 0;
  if (om.dtype == KL_FLOAT32)
    BIAS_FWD(float)
  else
    BIAS_FWD(double)
  *out = o;
  return KL_OK;
}

/* Bias gradient: db[j] = sum over rows r of g[r, j], summed in row order per column (so
 * the result does not depend on the thread count). */
static kl_status bias_grad(const kl_tensor *g, int64_t rows, int64_t k, kl_dtype dt,
                           kl_stype want, kl_tensor **gin) {
  kl_tensor *o = NULL;
  double *acc = NULL;
  kl_status st = KL_OK;
  int64_t nblk = (k + BIAS_COL_BLOCK - 1) / BIAS_COL_BLOCK;
  if (want == KL_STYPE_ROW_SPARSE) {
    st = kl_tensor_new_rsp(dt, 1, &k, k, &o);
    if (st != KL_OK) goto done;
    for (int64_t j = 0; j < k; j++) o->indices[j] = j;
  } else {
    st = kl_tensor_new_dense(dt, 1, &k, &o);
    if (st != KL_OK) goto done;
  }
  acc = kl_calloc(k ? (size_t)k : 1, sizeof(double));
  if (!acc) {
    st = KL_ENOMEM;
    goto done;
  }
#pragma omp parallel for schedule(static) if (rows * k >= BIAS_PAR_MIN)
  for (int64_t blk = 0; blk < nblk; blk++) {
    int64_t j0 = blk * BIAS_COL_BLOCK, j1 = j0 + BIAS_COL_BLOCK < k ? j0 + BIAS_COL_BLOCK : k;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = j0; j < j1; j++) acc[j] += kl_lu_read(g->data, g->dtype, r * k + j);
  }
  for (int64_t j = 0; j < k; j++) kl_lu_write(o->data, dt, j, acc[j]);
done:
  kl_free(acc);
  if (st != KL_OK) {
    kl_tensor_release(o);
    return st;
  }
  *gin = o;
  return KL_OK;
}

/* Backward: dx = gout (dense, shaped like x); db = gout summed over every leading axis
 * (dense, or row_sparse with all rows stored when want asks for it). */
static kl_status bias_add_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                   const kl_tensor *out, const kl_tensor *gout, int i,
                                   kl_stype want, kl_tensor **gin) {
  kl_meta m[2], om;
  char sg[128], so[128];
  KL_TRY(metas_of(in, nin, m));
  KL_TRY(bias_add_infer(m, nin, a, &om));
  KL_CHECK(i == 0 || i == 1, KL_EINVAL, "bias_add: no input %d (0 = x, 1 = bias)", i);
  KL_CHECK(gout && gout->stype == KL_STYPE_DEFAULT && kl_is_float(gout->dtype), KL_EINVAL,
           "bias_add: gout must be a dense float tensor");
  KL_CHECK(gout->ndim == om.ndim &&
               memcmp(gout->shape, om.shape, sizeof(int64_t) * (size_t)om.ndim) == 0,
           KL_ESHAPE, "bias_add: gout shape (%s) does not match the output shape (%s)",
           kl_lu_shape_str(sg, sizeof sg, gout->ndim, gout->shape),
           kl_lu_shape_str(so, sizeof so, om.ndim, om.shape));
  int64_t k = m[1].shape[0], numel = kl_tensor_numel(gout);
  if (i == 0) {
    kl_tensor *o = NULL;
    KL_TRY(kl_tensor_new_dense(om.dtype, om.ndim, om.shape, &o));
    if (gout->dtype == om.dtype) {
      if (numel) memcpy(o->data, gout->data, (size_t)numel * kl_dtype_size(om.dtype));
    } else {
      for (int64_t e = 0; e < numel; e++)
        kl_lu_write(o->data, om.dtype, e, kl_lu_read(gout->data, gout->dtype, e));
    }
    *gin = o;
    return KL_OK;
  }
  return bias_grad(gout, k ? numel / k : 0, k, om.dtype, want, gin);
}

const kl_op_def kl_opdef_bias_add = {"bias_add", 2, 2, bias_add_infer, bias_add_dense, NULL,
                                     bias_add_backward};
