/* copy.c: copies of tensors: copy, astype (dtype change), copyto (into an existing tensor), reshape. */
#include <inttypes.h>
#include "device_internal.h"
#include "tensor_internal.h"

/* Number of values stored in t's data buffer. */
static int64_t kl_nvalues(const kl_tensor *t) {
  return t->stype == KL_STYPE_ROW_SPARSE ? t->nnz * kl_row_width(t) : t->nnz;
}

/* An empty tensor with t's stype and shape, dtype d, room for t's entries. */
static kl_status kl_alloc_like(const kl_tensor *t, kl_dtype d, kl_tensor **out) {
  switch (t->stype) {
    case KL_STYPE_CSR: return kl_tensor_new_csr(d, t->shape[0], t->shape[1], t->nnz, out);
    case KL_STYPE_ROW_SPARSE: return kl_tensor_new_rsp(d, t->ndim, t->shape, t->nnz, out);
    default: return kl_tensor_new_dense(d, t->ndim, t->shape, out);
  }
}

/* Copies t's structure (indptr, indices) into u, which has the same stype, shape and nnz. */
static void kl_copy_structure(const kl_tensor *t, kl_tensor *u) {
  if (t->stype == KL_STYPE_CSR)
    memcpy(u->indptr, t->indptr, (size_t)(t->shape[0] + 1) * sizeof(int64_t));
  if (t->stype != KL_STYPE_DEFAULT && t->nnz)
    memcpy(u->indices, t->indices, (size_t)t->nnz * sizeof(int64_t));
}

/* A copy of t with dtype d. */
static kl_status kl_clone_as(const char *fn, const kl_tensor *t, kl_dtype d, kl_tensor **out) {
  kl_tensor *u;
  *out = NULL;
  KL_TRY(kl_values_check(fn, t->data, t->dtype, d, kl_nvalues(t)));
  KL_TRY(kl_alloc_like(t, d, &u));
  kl_copy_structure(t, u);
  kl_values_convert(fn, t->data, t->dtype, u->data, d, kl_nvalues(t)); /* checked above */
  *out = u;
  return KL_OK;
}

kl_status kl_tensor_copy(const kl_tensor *t, kl_tensor **out) {
  if (t->device != KL_CPU) return kl_device_clone(t, out);
  return kl_clone_as("copy", t, t->dtype, out);
}

static kl_status astype_host(const kl_tensor *h, void *ud, kl_tensor **out) {
  return kl_clone_as("astype", h, *(const kl_dtype *)ud, out);
}

kl_status kl_tensor_astype(const kl_tensor *t, kl_dtype dtype, kl_tensor **out) {
  *out = NULL;
  KL_CHECK(dtype == KL_FLOAT32 || dtype == KL_FLOAT64 || dtype == KL_INT64, KL_EDTYPE,
           "astype: invalid dtype %d", (int)dtype);
  if (t->device != KL_CPU) return kl_device_roundtrip1(t, astype_host, &dtype, out);
  return kl_clone_as("astype", t, dtype, out);
}

/* Copies s (same stype and shape as dst) into dst, converting the dtype. */
static kl_status kl_copy_same_stype(const kl_tensor *s, kl_tensor *dst) {
  int64_t nval = kl_nvalues(s);
  KL_TRY(kl_values_check("copyto", s->data, s->dtype, dst->dtype, nval));
  if (dst->stype != KL_STYPE_DEFAULT) KL_TRY(kl_tensor_reserve(dst, s->nnz));
  kl_copy_structure(s, dst);
  return kl_values_convert("copyto", s->data, s->dtype, dst->data, dst->dtype, nval);
}

/* copyto with either side on a device: through host copies (dst keeps its device). */
static kl_status copyto_device(const kl_tensor *src, kl_tensor *dst) {
  kl_tensor *hs = NULL, *hd = NULL, *back = NULL;
  kl_status st = kl_tensor_to(src, KL_CPU, &hs);
  if (st == KL_OK) st = kl_tensor_to(dst, KL_CPU, &hd);
  if (st == KL_OK && hd == dst) { /* dst on the host: convert straight into it */
    kl_tensor_release(hd);
    hd = NULL;
    st = kl_tensor_copyto(hs, dst);
  } else if (st == KL_OK) {
    st = kl_tensor_copyto(hs, hd);
    if (st == KL_OK) st = kl_tensor_to(hd, dst->device, &back);
    if (st == KL_OK) st = kl_device_assign(dst, back);
  }
  kl_tensor_release(hs);
  kl_tensor_release(hd);
  kl_tensor_release(back);
  return st;
}

kl_status kl_tensor_copyto(const kl_tensor *src, kl_tensor *dst) {
  if (src == dst) return KL_OK;
  if (!kl_same_shape(src, dst)) {
    char a[160], b[160];
    return kl_seterr(KL_ESHAPE, "copyto: shape mismatch (%s) vs (%s)",
                     kl_shape_str(src->ndim, src->shape, a, sizeof a),
                     kl_shape_str(dst->ndim, dst->shape, b, sizeof b));
  }
  if (src->device != KL_CPU || dst->device != KL_CPU) return copyto_device(src, dst);
  if (src->stype == dst->stype) return kl_copy_same_stype(src, dst);
  kl_tensor *tmp;
  KL_TRY(kl_tensor_tostype(src, dst->stype, &tmp));
  kl_status st = kl_copy_same_stype(tmp, dst);
  kl_tensor_release(tmp);
  return st;
}

struct reshape_args { int ndim; const int64_t *shape; };
static kl_status reshape_host(const kl_tensor *h, void *ud, kl_tensor **out) {
  const struct reshape_args *r = ud;
  return kl_tensor_reshape(h, r->ndim, r->shape, out);
}

kl_status kl_tensor_reshape(const kl_tensor *t, int ndim, const int64_t *shape, kl_tensor **out) {
  if (t->device != KL_CPU) {
    struct reshape_args r = {ndim, shape};
    return kl_device_roundtrip1(t, reshape_host, &r, out);
  }
  char a[160], b[160];
  *out = NULL;
  KL_CHECK(t->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
           "reshape: not supported for %s tensors; convert with tostype('default') first",
           kl_stype_name(t->stype));
  KL_TRY(kl_shape_check("reshape", ndim, shape));
  KL_CHECK(kl_shape_numel(ndim, shape) == kl_tensor_numel(t), KL_ESHAPE,
           "reshape: cannot reshape (%s) into (%s): %" PRId64 " elements vs %" PRId64,
           kl_shape_str(t->ndim, t->shape, a, sizeof a), kl_shape_str(ndim, shape, b, sizeof b),
           kl_tensor_numel(t), kl_shape_numel(ndim, shape));
  kl_tensor *u;
  KL_TRY(kl_tensor_new_dense(t->dtype, ndim, shape, &u));
  if (u->nnz) memcpy(u->data, t->data, (size_t)u->nnz * kl_dtype_size(t->dtype));
  *out = u;
  return KL_OK;
}
