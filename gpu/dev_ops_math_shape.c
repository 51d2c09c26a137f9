/* dev_ops_math_shape.c: the CUDA table's reductions and layout ops (kl_cuda_opdef_<op>,
 * dev_ops.c): sum and mean (dense, csr, row_sparse; all axes, one axis, keepdims), argmax,
 * one_hot, transpose (dense, csr -> csr), concatenate (dense any axis, csr axis 0 / 1,
 * row_sparse axis 0, mixed stypes densified) and retain, with the backwards of sum, mean,
 * transpose, concatenate and retain.
 *
 * Each follows its CPU op (backend/src/ops_reduce.c, ops_index.c, ops_misc.c,
 * ops_concat.c) on the device: the same results bit for bit (the sums run in the CPU's
 * order, gpu/k_math_reduce.cu), the same messages for bad ids and indices (a device flag
 * read after the launch). */
#include <math.h>
#include <string.h>

#include "dev_ops_math.h"

/* ------------------------------------------------------------------ sum, mean */

/* The reduction as (outer, n, inner) over x's shape and the result's shape (the CPU's
 * reduce_infer_named and view_of). */
typedef struct red_view {
  int64_t outer, n, inner;
  double scale;
  int ond;
  int64_t oshape[KL_MAX_NDIM];
} red_view;

static kl_status red_view_of(const char *fn, const kl_tensor *x, const kl_attrs *a, int mean,
                             red_view *v) {
  if (x->dtype != KL_FLOAT32 && x->dtype != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "%s: x has dtype %s, expected float32 or float64", fn,
                          kl_cuda_dtype_name(x->dtype));
  if (!a->has_axis) {
    v->ond = a->keepdims ? x->ndim : 0;
    for (int k = 0; k < v->ond; k++) v->oshape[k] = 1;
    v->outer = 1;
    v->n = kl_cdm_numel(x->ndim, x->shape);
    v->inner = 1;
  } else {
    if (a->axis < 0 || a->axis >= x->ndim)
      return kl_cuda_seterr(KL_EINVAL, "%s: axis %d out of range for a %d-d tensor", fn, a->axis,
                            x->ndim);
    v->ond = 0;
    for (int k = 0; k < x->ndim; k++) {
      if (k != a->axis)
        v->oshape[v->ond++] = x->shape[k];
      else if (a->keepdims)
        v->oshape[v->ond++] = 1;
    }
    v->outer = kl_cdm_numel(a->axis, x->shape);
    v->n = x->shape[a->axis];
    v->inner = kl_cdm_numel(x->ndim - a->axis - 1, x->shape + a->axis + 1);
  }
  v->scale = mean ? 1.0 / (double)v->n : 1.0;
  return KL_OK;
}

static kl_status reduce_run(int mean, kl_tensor *const *in, const kl_attrs *a, kl_tensor **out) {
  const char *fn = mean ? "mean" : "sum";
  const kl_tensor *x = in[0];
  const kl_device d = x->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const kl_dtype dt = x->dtype;
  red_view v;
  memset(&v, 0, sizeof v);
  kl_tensor *o = NULL;
  void *sc = NULL;
  int64_t *rptr = NULL, *ridx = NULL;
  void *rv = NULL;
  KL_TRY(red_view_of(fn, x, a, mean, &v));
  /* zeroed: a row_sparse's absent rows reduce to 0 */
  KL_TRY(kl_cdm_dense(d, dt, v.ond, v.oshape, x->stype == KL_STYPE_ROW_SPARSE, &o));
  kl_status st = KL_OK;
  if (x->stype == KL_STYPE_DEFAULT) {
    st = kl_cuda_math_reduce(dt, x->data, v.outer, v.n, v.inner, v.scale, o->data, s);
  } else if (x->stype == KL_STYPE_CSR) {
    const int64_t R = x->shape[0], C = x->shape[1], nnz = x->nnz;
    if (!a->has_axis) {
      st = kl_cuda_math_reduce(dt, x->data, 1, nnz, 1, v.scale, o->data, s);
    } else if (a->axis == 1) {
      st = kl_cuda_math_reduce_csr_rows(dt, R, x->indptr, x->data, v.scale, o->data, s);
    } else {
      /* column sums in the CPU's order (entry order within each column): the transpose's
       * rows, whose entries come in increasing input row */
      st = kl_cdm_scratch(d, kl_cuda_math_csr_transpose_scratch(nnz), &sc);
      if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(C + 1) * sizeof(int64_t), (void **)&rptr);
      if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)nnz * sizeof(int64_t), (void **)&ridx);
      if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)nnz * kl_cdm_es(dt), &rv);
      if (st == KL_OK)
        st = kl_cuda_math_csr_transpose(kl_cdm_es(dt), R, C, nnz, x->indptr, x->indices, x->data,
                                        rptr, ridx, rv, sc, s);
      if (st == KL_OK) st = kl_cuda_math_reduce_csr_rows(dt, C, rptr, rv, v.scale, o->data, s);
    }
  } else {
    const int64_t W = kl_cdm_numel(x->ndim - 1, x->shape + 1), nr = x->nnz;
    if (v.n == 0) { /* nothing reduced: sum 0, mean NaN (the CPU's fill) */
      st = kl_cuda_math_fill(dt, o->data, kl_cdm_numel(v.ond, v.oshape), mean ? NAN : 0.0, s);
    } else if (!a->has_axis) {
      st = kl_cuda_math_reduce(dt, x->data, 1, nr * W, 1, v.scale, o->data, s);
    } else if (a->axis == 0) {
      st = kl_cuda_math_reduce(dt, x->data, 1, nr, W, v.scale, o->data, s);
    } else {
      const int64_t n = x->shape[a->axis], Wo = W / n;
      const int64_t inner = kl_cdm_numel(x->ndim - a->axis - 1, x->shape + a->axis + 1);
      const int64_t outer = Wo / (inner ? inner : 1);
      st = kl_cuda_math_reduce_rsp_rows(dt, nr, x->indices, x->data, outer, n, inner, v.scale,
                                        o->data, s);
    }
  }
  kl_cdm_free(d, sc);
  kl_cdm_free(d, rptr);
  kl_cdm_free(d, ridx);
  kl_cdm_free(d, rv);
  return kl_cdo_finish(st, o, out);
}

/* gout broadcast back over the reduced axis (times 1 / count for mean), dense */
static kl_status reduce_backward(int mean, kl_tensor *const *in, const kl_attrs *a,
                                 const kl_tensor *gout, kl_stype want, kl_tensor **gin) {
  const char *fn = mean ? "mean" : "sum";
  const kl_tensor *x = in[0];
  red_view v;
  memset(&v, 0, sizeof v);
  kl_tensor *g = NULL, *r = NULL;
  KL_TRY(red_view_of(fn, x, a, mean, &v));
  if (kl_cdm_numel(gout->ndim, gout->shape) != v.outer * v.inner || gout->dtype != x->dtype)
    return kl_cuda_seterr(KL_ESHAPE, "%s: backward: gout has %lld %s elements, expected %lld %s",
                          fn, (long long)kl_cdm_numel(gout->ndim, gout->shape),
                          kl_cuda_dtype_name(gout->dtype), (long long)(v.outer * v.inner),
                          kl_cuda_dtype_name(x->dtype));
  kl_status st = kl_cdm_densify(gout, &g);
  if (st == KL_OK) st = kl_cdm_dense(x->device, x->dtype, x->ndim, x->shape, 0, &r);
  if (st == KL_OK)
    st = kl_cuda_math_reduce_grad(x->dtype, g->data, v.outer, v.n, v.inner, v.scale, r->data,
                                  kl_cuda_dev_stream(x->device));
  if (st == KL_OK) st = kl_cdm_to_want(&r, want);
  kl_cdm_release(g);
  return kl_cdo_finish(st, r, gin);
}

static kl_status sum_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_run(0, in, a, out);
}
static kl_status mean_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_run(1, in, a, out);
}
static kl_status sum_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                              const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                              kl_tensor **gin) {
  return reduce_backward(0, in, a, gout, want, gin);
}
static kl_status mean_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                               const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                               kl_tensor **gin) {
  return reduce_backward(1, in, a, gout, want, gin);
}
/* csr must be 2-d (it always is); row_sparse >= 1-d: every input the CPU takes */
static int sup_reduce(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 1 && (in[0]->stype != KL_STYPE_CSR || in[0]->ndim == 2) &&
         (in[0]->stype != KL_STYPE_ROW_SPARSE || in[0]->ndim >= 1);
}
static const kl_kernel_entry sum_kernels[] = {{"cuda.reduce", sup_reduce, sum_run},
                                              {NULL, NULL, NULL}};
static const kl_kernel_entry mean_kernels[] = {{"cuda.reduce", sup_reduce, mean_run},
                                               {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_sum = {sum_kernels, sum_backward};
const kl_device_opdef kl_cuda_opdef_mean = {mean_kernels, mean_backward};

/* ------------------------------------------------------------------ argmax, one_hot */

static kl_status argmax_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  kl_tensor *x = NULL, *r = NULL;
  KL_TRY(kl_cdm_densify(in[0], &x)); /* the implicit zeros are values (the CPU's fallback) */
  const int ax = a->has_axis ? a->axis : x->ndim - 1;
  int64_t shape[KL_MAX_NDIM];
  int nd = 0;
  for (int k = 0; k < x->ndim; k++)
    if (k != ax) shape[nd++] = x->shape[k];
  kl_status st = kl_cdm_dense(x->device, KL_INT64, nd, shape, 0, &r);
  if (st == KL_OK)
    st = kl_cuda_math_argmax(x->dtype, x->data, kl_cdm_numel(ax, x->shape), x->shape[ax],
                             kl_cdm_numel(x->ndim - ax - 1, x->shape + ax + 1), r->data,
                             kl_cuda_dev_stream(x->device));
  kl_cdm_release(x);
  return kl_cdo_finish(st, r, out);
}
static const kl_kernel_entry argmax_kernels[] = {{"cuda.argmax", NULL, argmax_run},
                                                 {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_argmax = {argmax_kernels, NULL};

static kl_status one_hot_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *ids = in[0];
  const kl_device d = ids->device;
  const int64_t n = kl_cdm_numel(ids->ndim, ids->shape), C = a->ival;
  int64_t shape[KL_MAX_NDIM], *bad = NULL, b = n;
  kl_tensor *r = NULL;
  memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
  shape[ids->ndim] = C;
  kl_status st = kl_cdm_dense(d, KL_FLOAT32, ids->ndim + 1, shape, 1, &r);
  if (st == KL_OK) st = kl_cdm_scratch(d, sizeof(int64_t), (void **)&bad);
  if (st == KL_OK)
    st = kl_cuda_math_one_hot(ids->dtype, ids->data, n, C, r->data, bad, kl_cuda_dev_stream(d));
  if (st == KL_OK) st = kl_cdm_read_i64(d, bad, &b);
  if (st == KL_OK && b < n) { /* the first bad id, with the CPU's message */
    int64_t v = 0;
    const size_t es = kl_cdm_es(ids->dtype);
    st = kl_cuda_dev_read(d, &v, (const char *)ids->data + (size_t)b * es, es);
    if (st == KL_OK) st = kl_cuda_math_one_hot_error(ids->dtype, &v, b, C);
  }
  kl_cdm_free(d, bad);
  return kl_cdo_finish(st, r, out);
}
static const kl_kernel_entry one_hot_kernels[] = {{"cuda.one_hot", NULL, one_hot_run},
                                                  {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_one_hot = {one_hot_kernels, NULL};

/* ------------------------------------------------------------------ transpose */

static kl_status transpose_dense(const kl_tensor *x, kl_tensor **out) {
  int64_t shape[KL_MAX_NDIM];
  kl_tensor *r = NULL;
  for (int k = 0; k < x->ndim; k++) shape[k] = x->shape[x->ndim - 1 - k];
  KL_TRY(kl_cdm_dense(x->device, x->dtype, x->ndim, shape, 0, &r));
  kl_status st = kl_cuda_math_transpose(kl_cdm_es(x->dtype), x->data, x->ndim, x->shape, r->data,
                                        kl_cuda_dev_stream(x->device));
  return kl_cdo_finish(st, r, out);
}

static kl_status transpose_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *x = in[0];
  const kl_device d = x->device;
  kl_tensor *r = NULL, *dn = NULL;
  void *sc = NULL;
  kl_status st;
  if (x->stype == KL_STYPE_CSR) {
    const int64_t rows = x->shape[0], cols = x->shape[1], nnz = x->nnz;
    st = kl_cuda_capi->tensor_new_csr_on(d, x->dtype, cols, rows, nnz, &r);
    if (st == KL_OK) st = kl_cdm_scratch(d, kl_cuda_math_csr_transpose_scratch(nnz), &sc);
    if (st == KL_OK)
      st = kl_cuda_math_csr_transpose(kl_cdm_es(x->dtype), rows, cols, nnz, x->indptr, x->indices,
                                      x->data, r->indptr, r->indices, r->data, sc,
                                      kl_cuda_dev_stream(d));
    kl_cdm_free(d, sc);
    return kl_cdo_finish(st, r, out);
  }
  /* row_sparse: dense result (the CPU's fallback densifies it) */
  KL_TRY(kl_cdm_densify(x, &dn));
  st = transpose_dense(dn, out);
  kl_cdm_release(dn);
  return st;
}

static kl_status transpose_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                    const kl_tensor *out, const kl_tensor *gout, int i,
                                    kl_stype want, kl_tensor **gin) {
  kl_tensor *G = NULL, *r = NULL;
  KL_TRY(kl_cdm_densify(gout, &G));
  kl_status st = transpose_dense(G, &r);
  kl_cdm_release(G);
  if (st == KL_OK) st = kl_cdm_to_want(&r, want);
  return kl_cdo_finish(st, r, gin);
}
static const kl_kernel_entry transpose_kernels[] = {{"cuda.transpose", NULL, transpose_run},
                                                    {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_transpose = {transpose_kernels, transpose_backward};

/* ------------------------------------------------------------------ concatenate */

static kl_stype concat_stype(kl_tensor *const *in, int nin, int axis) {
  int all_csr = 1, all_rsp = 1;
  for (int i = 0; i < nin; i++) {
    all_csr &= in[i]->stype == KL_STYPE_CSR;
    all_rsp &= in[i]->stype == KL_STYPE_ROW_SPARSE;
  }
  return all_csr ? KL_STYPE_CSR : (all_rsp && axis == 0) ? KL_STYPE_ROW_SPARSE : KL_STYPE_DEFAULT;
}

/* dense inputs (sparse ones densified first) side by side along the axis */
static kl_status concat_dense(kl_tensor *const *in, int nin, int axis, const int64_t *oshape,
                              kl_tensor **out) {
  const kl_tensor *f = in[0];
  const kl_device d = f->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const size_t es = kl_cdm_es(f->dtype);
  kl_tensor *o = NULL;
  KL_TRY(kl_cdm_dense(d, f->dtype, f->ndim, oshape, 0, &o));
  const int64_t outer = kl_cdm_numel(axis, oshape);
  const int64_t inner = kl_cdm_numel(f->ndim - axis - 1, oshape + axis + 1);
  const int64_t row = oshape[axis] * inner;
  int64_t off = 0;
  kl_status st = KL_OK;
  for (int i = 0; i < nin && st == KL_OK; i++) {
    const int64_t c = in[i]->shape[axis] * inner;
    kl_tensor *p = NULL;
    st = kl_cdm_densify(in[i], &p);
    if (st == KL_OK)
      st = kl_cuda_math_copy_block(es, p->data, c, 0, o->data, row, off, outer, c, s);
    kl_cdm_release(p);
    off += c;
  }
  return kl_cdo_finish(st, o, out);
}

/* csr along axis 0: pointer arrays stacked (shifted by the nnz before), entries appended;
 * along axis 1: each row the inputs' rows side by side, columns shifted */
static kl_status concat_csr(kl_tensor *const *in, int nin, int axis, const int64_t *oshape,
                            kl_tensor **out) {
  const kl_device d = in[0]->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const size_t es = kl_cdm_es(in[0]->dtype);
  const int64_t R = oshape[0];
  int64_t nnz = 0, *cnt = NULL, *at = NULL;
  kl_tensor *o = NULL;
  for (int i = 0; i < nin; i++) nnz += in[i]->nnz;
  kl_status st = kl_cuda_capi->tensor_new_csr_on(d, in[0]->dtype, R, oshape[1], nnz, &o);
  if (st == KL_OK && axis == 0) {
    int64_t r0 = 0, z0 = 0;
    for (int i = 0; i < nin && st == KL_OK; i++) {
      const kl_tensor *t = in[i];
      st = kl_cuda_math_i64_shift(t->indptr + 1, z0, o->indptr + r0 + 1, t->shape[0], s);
      if (st == KL_OK)
        st = kl_cuda_math_copy_block(8, t->indices, 0, 0, o->indices, 0, z0, 1, t->nnz, s);
      if (st == KL_OK)
        st = kl_cuda_math_copy_block(es, t->data, 0, 0, o->data, 0, z0, 1, t->nnz, s);
      r0 += t->shape[0];
      z0 += t->nnz;
    }
  } else if (st == KL_OK) {
    st = kl_cdm_scratch(d, (size_t)(R + 1) * sizeof(int64_t), (void **)&cnt);
    if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(R + 1) * sizeof(int64_t), (void **)&at);
    if (st == KL_OK) st = kl_cuda_dev_memset0(d, cnt, (size_t)(R + 1) * sizeof(int64_t));
    for (int i = 0; i < nin && st == KL_OK; i++)
      st = kl_cuda_math_csr_rowlen_add(in[i]->indptr, R, cnt, s);
    if (st == KL_OK) st = kl_cdm_scan(d, cnt, o->indptr, R);
    if (st == KL_OK) st = kl_cuda_math_copy_block(8, o->indptr, 0, 0, at, 0, 0, 1, R, s);
    int64_t c0 = 0;
    for (int i = 0; i < nin && st == KL_OK; i++) {
      const kl_tensor *t = in[i];
      st = kl_cuda_math_csr_concat1_part(es, R, t->indptr, t->indices, t->data, c0, at, o->indices,
                                         o->data, s);
      c0 += t->shape[1];
    }
  }
  kl_cdm_free(d, cnt);
  kl_cdm_free(d, at);
  return kl_cdo_finish(st, o, out);
}

/* row_sparse along axis 0: stored rows appended, their numbers shifted by the rows before */
static kl_status concat_rsp(kl_tensor *const *in, int nin, const int64_t *oshape, kl_tensor **out) {
  const kl_tensor *f = in[0];
  const kl_device d = f->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const size_t es = kl_cdm_es(f->dtype);
  const int64_t W = kl_cdm_numel(f->ndim - 1, oshape + 1);
  int64_t nr = 0, r0 = 0, z0 = 0;
  kl_tensor *o = NULL;
  for (int i = 0; i < nin; i++) nr += in[i]->nnz;
  kl_status st = kl_cuda_capi->tensor_new_rsp_on(d, f->dtype, f->ndim, oshape, nr, &o);
  for (int i = 0; i < nin && st == KL_OK; i++) {
    const kl_tensor *t = in[i];
    st = kl_cuda_math_i64_shift(t->indices, r0, o->indices + z0, t->nnz, s);
    if (st == KL_OK)
      st = kl_cuda_math_copy_block(es, t->data, 0, 0, o->data, 0, z0 * W, 1, t->nnz * W, s);
    r0 += t->shape[0];
    z0 += t->nnz;
  }
  return kl_cdo_finish(st, o, out);
}

static kl_status concat_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  int64_t oshape[KL_MAX_NDIM];
  const int axis = a->axis;
  memcpy(oshape, in[0]->shape, sizeof oshape);
  for (int i = 1; i < nin; i++) oshape[axis] += in[i]->shape[axis];
  switch (concat_stype(in, nin, axis)) {
    case KL_STYPE_CSR:
      return concat_csr(in, nin, axis, oshape, out);
    case KL_STYPE_ROW_SPARSE:
      return concat_rsp(in, nin, oshape, out);
    default:
      return concat_dense(in, nin, axis, oshape, out);
  }
}

/* input i's slab of gout along the axis (ops_concat.c's concat_backward) */
static kl_status concat_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                                 kl_tensor **gin) {
  const int axis = a->axis;
  if (i < 0 || i >= nin)
    return kl_cuda_seterr(KL_EINVAL, "concatenate: backward: input %d out of range", i + 1);
  if (axis < 0 || axis >= in[0]->ndim)
    return kl_cuda_seterr(KL_EINVAL, "concatenate: axis %d out of range for %d-d tensors", axis,
                          in[0]->ndim);
  int64_t oshape[KL_MAX_NDIM];
  memcpy(oshape, in[0]->shape, sizeof oshape);
  for (int j = 1; j < nin; j++) oshape[axis] += in[j]->shape[axis];
  const int nd = in[0]->ndim;
  if (kl_cdm_numel(gout->ndim, gout->shape) != kl_cdm_numel(nd, oshape) ||
      gout->dtype != in[0]->dtype)
    return kl_cuda_seterr(
        KL_ESHAPE, "concatenate: backward: gout has %lld %s elements, expected %lld %s",
        (long long)kl_cdm_numel(gout->ndim, gout->shape), kl_cuda_dtype_name(gout->dtype),
        (long long)kl_cdm_numel(nd, oshape), kl_cuda_dtype_name(in[0]->dtype));
  kl_tensor *g = NULL, *r = NULL;
  kl_status st = kl_cdm_densify(gout, &g);
  if (st == KL_OK) st = kl_cdm_dense(gout->device, gout->dtype, in[i]->ndim, in[i]->shape, 0, &r);
  if (st == KL_OK) {
    const int64_t outer = kl_cdm_numel(axis, oshape);
    const int64_t inner = kl_cdm_numel(nd - axis - 1, oshape + axis + 1);
    int64_t off = 0;
    for (int j = 0; j < i; j++) off += in[j]->shape[axis] * inner;
    const int64_t row = oshape[axis] * inner, c = in[i]->shape[axis] * inner;
    st = kl_cuda_math_copy_block(kl_cdm_es(g->dtype), g->data, row, off, r->data, c, 0, outer, c,
                                 kl_cuda_dev_stream(g->device));
  }
  if (st == KL_OK) st = kl_cdm_to_want(&r, want);
  kl_cdm_release(g);
  return kl_cdo_finish(st, r, gin);
}
static const kl_kernel_entry concat_kernels[] = {{"cuda.concat", NULL, concat_run},
                                                 {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_concat = {concat_kernels, concat_backward};

/* ------------------------------------------------------------------ retain */

/* The stored rows of x that idx requests (ops_misc.c's retain_rsp): the requested rows
 * range-checked (the CPU's message for the first bad one) and sorted, each stored row
 * looked up among them, the kept ones compacted in order. */
static kl_status retain_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *x = in[0], *idx = in[1];
  const kl_device d = x->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const int64_t m = idx->shape[0], nrows = x->shape[0], nnz = x->nnz;
  const int64_t w = kl_cdm_numel(x->ndim - 1, x->shape + 1);
  int64_t *bad = NULL, *key = NULL, *val = NULL, *keep = NULL, *pos = NULL, b = m, n = 0;
  void *sc = NULL;
  kl_tensor *r = NULL;
  kl_status st = kl_cdm_scratch(d, sizeof(int64_t), (void **)&bad);
  if (st == KL_OK) st = kl_cuda_math_rows_check(idx->data, m, nrows, bad, s);
  if (st == KL_OK) st = kl_cdm_read_i64(d, bad, &b);
  if (st == KL_OK && b < m) {
    int64_t v = 0;
    st = kl_cdm_read_i64(d, (const int64_t *)idx->data + b, &v);
    if (st == KL_OK)
      st = kl_cuda_seterr(KL_EINDEX, "retain: index %lld out of range for %lld rows", (long long)v,
                          (long long)nrows);
  }
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)m * sizeof(int64_t), (void **)&key);
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)m * sizeof(int64_t), (void **)&val);
  if (st == KL_OK) st = kl_cdm_scratch(d, kl_cuda_sort_scratch(m), &sc);
  if (st == KL_OK) st = kl_cuda_math_i64_shift(idx->data, 0, key, m, s);
  if (st == KL_OK) st = kl_cuda_math_iota(val, m, s);
  if (st == KL_OK && m > 0) st = kl_cuda_sort_pairs(key, val, m, nrows > 0 ? nrows - 1 : 0, sc, s);
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(nnz + 1) * sizeof(int64_t), (void **)&keep);
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(nnz + 1) * sizeof(int64_t), (void **)&pos);
  if (st == KL_OK) st = kl_cuda_math_rows_member(x->indices, nnz, key, m, keep, s);
  if (st == KL_OK) st = kl_cdm_scan(d, keep, pos, nnz);
  if (st == KL_OK) st = kl_cdm_read_i64(d, pos + nnz, &n);
  if (st == KL_OK) st = kl_cuda_capi->tensor_new_rsp_on(d, x->dtype, x->ndim, x->shape, n, &r);
  if (st == KL_OK)
    st = kl_cuda_math_rows_compact(x->dtype, nnz, w, keep, pos, x->indices, x->data, r->indices,
                                   r->data, s);
  kl_cdm_free(d, bad);
  kl_cdm_free(d, key);
  kl_cdm_free(d, val);
  kl_cdm_free(d, sc);
  kl_cdm_free(d, keep);
  kl_cdm_free(d, pos);
  return kl_cdo_finish(st, r, out);
}

/* gout on the rows the output kept, zero elsewhere */
static kl_status retain_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                                 kl_tensor **gin) {
  if (i != 0) return kl_cuda_seterr(KL_EUNSUPPORTED, "retain: no gradient for the indices");
  KL_TRY(kl_cdm_grad_dtype("retain", in[0]->dtype));
  kl_tensor *kept = NULL, *G = NULL, *r = NULL;
  kl_status st = KL_OK;
  if (out && out->stype == KL_STYPE_ROW_SPARSE)
    kept = kl_cuda_capi->tensor_retain((kl_tensor *)out);
  else
    st = retain_run(in, nin, a, &kept);
  if (st == KL_OK) st = kl_cdm_densify(gout, &G);
  if (st == KL_OK && !kl_cdm_same_shape(G, in[0]))
    st = kl_cuda_seterr(KL_ESHAPE, "retain: backward: gout's shape differs from the input's");
  if (st == KL_OK) st = kl_cdm_dense(G->device, G->dtype, G->ndim, G->shape, 1, &r);
  if (st == KL_OK)
    st = kl_cuda_math_rows_take(G->dtype, kept->indices, kept->nnz,
                                kl_cdm_numel(G->ndim - 1, G->shape + 1), G->data, r->data,
                                kl_cuda_dev_stream(G->device));
  if (st == KL_OK) st = kl_cdm_to_want(&r, want);
  kl_cdm_release(kept);
  kl_cdm_release(G);
  return kl_cdo_finish(st, r, gin);
}
static const kl_kernel_entry retain_kernels[] = {{"cuda.retain", NULL, retain_run},
                                                 {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_retain = {retain_kernels, retain_backward};
