/* ops_concat.c: concatenate: inference, dense (any axis), csr (axis 0/1), row_sparse (axis 0), backward. */
#include <stdio.h>
#include <string.h>
#include "ops_internal.h"
#include "tensor_internal.h"

/* Input positions in messages are ordinals counted from 1 ("input 2"), as the registry's;
 * axes are the C library's 0-based axes. */
static kl_status concat_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  KL_CHECK(nin >= 1, KL_EINVAL, "concatenate: expected at least 1 input, got %d", nin);
  const kl_meta *f = &in[0];
  KL_CHECK(f->ndim >= 1, KL_ESHAPE, "concatenate: cannot concatenate 0-d tensors (input 1)");
  KL_CHECK(a->axis >= 0 && a->axis < f->ndim, KL_EINVAL,
           "concatenate: axis %d out of range for %d-d tensors", a->axis, f->ndim);
  *out = *f;
  int all_csr = 1, all_rsp = 1;
  for (int i = 0; i < nin; i++) {
    const kl_meta *m = &in[i];
    KL_CHECK(m->ndim == f->ndim, KL_ESHAPE, "concatenate: input %d is %d-d, input 1 is %d-d",
             i + 1, m->ndim, f->ndim);
    KL_CHECK(m->dtype == f->dtype, KL_EDTYPE,
             "concatenate: dtype mismatch: input %d is %s, input 1 is %s", i + 1,
             kl_dtype_name(m->dtype), kl_dtype_name(f->dtype));
    for (int d = 0; d < f->ndim; d++) {
      if (d == a->axis || m->shape[d] == f->shape[d]) continue;
      char s1[160], s2[160];
      return kl_seterr(KL_ESHAPE,
                       "concatenate: shape mismatch (%s) at input %d vs (%s) at input 1: sizes "
                       "must agree except on axis %d",
                       kl_shape_str(m->ndim, m->shape, s1, sizeof s1), i + 1,
                       kl_shape_str(f->ndim, f->shape, s2, sizeof s2), a->axis);
    }
    if (i > 0) out->shape[a->axis] += m->shape[a->axis];
    all_csr &= m->stype == KL_STYPE_CSR;
    all_rsp &= m->stype == KL_STYPE_ROW_SPARSE;
  }
  KL_TRY(kl_shape_check("concatenate", out->ndim, out->shape));
  out->stype = all_csr ? KL_STYPE_CSR
               : (all_rsp && a->axis == 0) ? KL_STYPE_ROW_SPARSE
                                           : KL_STYPE_DEFAULT;
  return KL_OK;
}

static kl_status infer_of(kl_tensor *const *in, int nin, const kl_attrs *a, kl_meta *om) {
  kl_meta stack[8] = {{0}}, *m = stack;
  if (nin > 8 && !(m = kl_malloc_n((size_t)nin, sizeof *m))) return KL_ENOMEM;
  for (int i = 0; i < nin; i++) kl_tensor_meta(in[i], &m[i]);
  kl_status st = concat_infer(m, nin, a, om);
  if (m != stack) kl_free(m);
  return st;
}

/* Viewing each dense input as (outer, n_i * inner), row o of the result is the inputs'
 * rows o side by side. */
static void copy_blocks(kl_tensor *const *parts, int nparts, int axis, char *whole, int64_t outer,
                        int64_t inner, size_t es) {
  int64_t row = 0;
  for (int i = 0; i < nparts; i++) row += parts[i]->shape[axis] * inner;
  int64_t off = 0;
  for (int i = 0; i < nparts; i++) {
    const int64_t c = parts[i]->shape[axis] * inner;
    char *p = parts[i]->data;
    if (c > 0) {
      KL_PRAGMA(omp parallel for schedule(static) if (outer * c > KL_PAR_MIN && outer > 1))
      for (int64_t o = 0; o < outer; o++) {
        char *w = whole + (size_t)(o * row + off) * es, *q = p + (size_t)(o * c) * es;
        memcpy(w, q, (size_t)c * es);
      }
    }
    off += c;
  }
}

static kl_status concat_dense(kl_tensor *const *in, int nin, const kl_attrs *a,
                              kl_tensor **out) {
  kl_meta om;
  KL_TRY(infer_of(in, nin, a, &om));
  for (int i = 0; i < nin; i++)
    KL_CHECK(in[i]->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
             "concatenate: the dense kernel needs dense inputs");
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_dense(om.dtype, om.ndim, om.shape, &o));
  const int64_t outer = kl_shape_numel(a->axis, om.shape);
  const int64_t inner = kl_shape_numel(om.ndim - a->axis - 1, om.shape + a->axis + 1);
  copy_blocks(in, nin, a->axis, o->data, outer, inner, kl_dtype_size(om.dtype));
  *out = o;
  return KL_OK;
}

static int sup_csr(kl_tensor *const *in, int nin, const kl_attrs *a) {
  for (int i = 0; i < nin; i++)
    if (in[i]->stype != KL_STYPE_CSR) return 0;
  return nin >= 1 && (a->axis == 0 || a->axis == 1);
}
static int sup_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  for (int i = 0; i < nin; i++)
    if (in[i]->stype != KL_STYPE_ROW_SPARSE) return 0;
  return nin >= 1 && a->axis == 0;
}

/* csr along axis 0 stacks the pointer arrays (shifted by the nnz before); along axis 1 each
 * output row is the inputs' rows side by side, columns shifted by the widths before (rows
 * stay sorted). O(total nnz + rows x inputs); axis 1 is OpenMP static over rows. */
static kl_status concat_csr(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  kl_meta om;
  KL_TRY(infer_of(in, nin, a, &om));
  const size_t es = kl_dtype_size(om.dtype);
  int64_t nnz = 0;
  for (int i = 0; i < nin; i++) nnz += in[i]->nnz;
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_csr(om.dtype, om.shape[0], om.shape[1], nnz, &o));
  int64_t *op = o->indptr, *oi = o->indices;
  char *ov = o->data;
  const int64_t R = om.shape[0];
  if (a->axis == 0) {
    int64_t r0 = 0, z0 = 0;
    for (int i = 0; i < nin; i++) {
      const kl_tensor *t = in[i];
      for (int64_t r = 1; r <= t->shape[0]; r++) op[r0 + r] = z0 + t->indptr[r];
      if (t->nnz > 0) {
        memcpy(oi + z0, t->indices, (size_t)t->nnz * sizeof *oi);
        memcpy(ov + (size_t)z0 * es, t->data, (size_t)t->nnz * es);
      }
      r0 += t->shape[0];
      z0 += t->nnz;
    }
  } else {
    op[0] = 0;
    for (int64_t r = 0; r < R; r++) {
      int64_t s = op[r];
      for (int i = 0; i < nin; i++) s += in[i]->indptr[r + 1] - in[i]->indptr[r];
      op[r + 1] = s;
    }
    KL_PRAGMA(omp parallel for schedule(static) if (nnz + R * nin > KL_PAR_MIN))
    for (int64_t r = 0; r < R; r++) {
      int64_t at = op[r], c0 = 0;
      for (int i = 0; i < nin; i++) {
        const kl_tensor *t = in[i];
        const int64_t b = t->indptr[r], e = t->indptr[r + 1];
        for (int64_t j = b; j < e; j++) oi[at + j - b] = t->indices[j] + c0;
        if (e > b) memcpy(ov + (size_t)at * es, (const char *)t->data + (size_t)b * es,
                          (size_t)(e - b) * es);
        at += e - b;
        c0 += t->shape[1];
      }
    }
  }
  *out = o;
  return KL_OK;
}

/* row_sparse along axis 0: stored rows appended, row numbers shifted by the rows before. */
static kl_status concat_rsp(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  kl_meta om;
  KL_TRY(infer_of(in, nin, a, &om));
  const size_t es = kl_dtype_size(om.dtype);
  int64_t nr = 0;
  for (int i = 0; i < nin; i++) nr += in[i]->nnz;
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_rsp(om.dtype, om.ndim, om.shape, nr, &o));
  const int64_t W = kl_row_width(o);
  int64_t r0 = 0, z0 = 0;
  for (int i = 0; i < nin; i++) {
    const kl_tensor *t = in[i];
    for (int64_t p = 0; p < t->nnz; p++) o->indices[z0 + p] = t->indices[p] + r0;
    if (t->nnz > 0 && W > 0)
      memcpy((char *)o->data + (size_t)(z0 * W) * es, t->data, (size_t)(t->nnz * W) * es);
    r0 += t->shape[0];
    z0 += t->nnz;
  }
  *out = o;
  return KL_OK;
}

static const kl_kernel_entry concat_kernels[] = {
    {"csr", sup_csr, concat_csr}, {"row_sparse", sup_rsp, concat_rsp}, {NULL, NULL, NULL}};

/* d out / d in[i]: input i's slab of gout along the axis, dense (the registry casts it to
 * the stype asked for). */
static kl_status concat_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 const kl_tensor *out, const kl_tensor *gout, int i,
                                 kl_stype want, kl_tensor **gin) {
  kl_meta om;
  KL_TRY(infer_of(in, nin, a, &om));
  KL_CHECK(i >= 0 && i < nin, KL_EINVAL, "concatenate: backward: input %d out of range", i + 1);
  KL_CHECK(kl_tensor_numel(gout) == kl_shape_numel(om.ndim, om.shape) && gout->dtype == om.dtype,
           KL_ESHAPE, "concatenate: backward: gout has %lld %s elements, expected %lld %s",
           (long long)kl_tensor_numel(gout), kl_dtype_name(gout->dtype),
           (long long)kl_shape_numel(om.ndim, om.shape), kl_dtype_name(om.dtype));
  kl_tensor *g = NULL, *r = NULL;
  kl_status st = KL_OK;
  if (gout->stype == KL_STYPE_DEFAULT) g = kl_tensor_retain((kl_tensor *)gout);
  else st = kl_tensor_tostype(gout, KL_STYPE_DEFAULT, &g);
  if (st == KL_OK) st = kl_tensor_new_dense(om.dtype, in[i]->ndim, in[i]->shape, &r);
  if (st == KL_OK) {
    const int64_t outer = kl_shape_numel(a->axis, om.shape);
    const int64_t inner = kl_shape_numel(om.ndim - a->axis - 1, om.shape + a->axis + 1);
    const size_t es = kl_dtype_size(om.dtype);
    int64_t off = 0;
    for (int j = 0; j < i; j++) off += in[j]->shape[a->axis] * inner;
    const int64_t row = om.shape[a->axis] * inner, c = r->shape[a->axis] * inner;
    for (int64_t o = 0; o < outer && c > 0; o++)
      memcpy((char *)r->data + (size_t)(o * c) * es,
             (const char *)g->data + (size_t)(o * row + off) * es, (size_t)c * es);
  }
  kl_tensor_release(g);
  if (st != KL_OK) {
    kl_tensor_release(r);
    return st;
  }
  *gin = r;
  return KL_OK;
}

const kl_op_def kl_opdef_concat = {"concatenate", 1,           KL_MAX_OP_INPUTS, concat_infer,
                                   concat_dense,  concat_kernels, concat_backward};
