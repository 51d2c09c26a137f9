/* tensor.c: tensor construction, reference counting, element access and dtype/stype names. */
#include <inttypes.h>
#include <stdio.h>
#include "device_internal.h"
#include "tensor_internal.h"

size_t kl_dtype_size(kl_dtype d) { return d == KL_FLOAT32 ? 4 : 8; }

const char *kl_dtype_name(kl_dtype d) {
  switch (d) {
    case KL_FLOAT32: return "float32";
    case KL_FLOAT64: return "float64";
    case KL_INT64: return "int64";
  }
  return "unknown";
}

const char *kl_stype_name(kl_stype s) {
  switch (s) {
    case KL_STYPE_DEFAULT: return "default";
    case KL_STYPE_CSR: return "csr";
    case KL_STYPE_ROW_SPARSE: return "row_sparse";
  }
  return "unknown";
}

kl_status kl_dtype_parse(const char *fn, const char *name, kl_dtype *out) {
  for (int d = KL_FLOAT32; d <= KL_INT64; d++)
    if (name && strcmp(name, kl_dtype_name((kl_dtype)d)) == 0) {
      *out = (kl_dtype)d;
      return KL_OK;
    }
  return kl_seterr(KL_EINVAL, "%s: unknown dtype '%s' (expected float32, float64 or int64)", fn,
                   name ? name : "(null)");
}

kl_status kl_stype_parse(const char *fn, const char *name, kl_stype *out) {
  for (int s = KL_STYPE_DEFAULT; s <= KL_STYPE_ROW_SPARSE; s++)
    if (name && strcmp(name, kl_stype_name((kl_stype)s)) == 0) {
      *out = (kl_stype)s;
      return KL_OK;
    }
  return kl_seterr(KL_EINVAL, "%s: unknown stype '%s' (expected default, csr or row_sparse)", fn,
                   name ? name : "(null)");
}

int64_t kl_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

int64_t kl_row_width(const kl_tensor *t) {
  return t->ndim <= 1 ? 1 : kl_shape_numel(t->ndim - 1, t->shape + 1);
}

int64_t kl_tensor_numel(const kl_tensor *t) { return kl_shape_numel(t->ndim, t->shape); }

const char *kl_shape_str(int ndim, const int64_t *shape, char *buf, size_t len) {
  size_t at = 0;
  buf[0] = '\0';
  if (ndim == 0) snprintf(buf, len, "scalar");
  for (int i = 0; i < ndim && at < len; i++)
    at += (size_t)snprintf(buf + at, len - at, i ? " x %" PRId64 : "%" PRId64, shape[i]);
  return buf;
}

int kl_same_shape(const kl_tensor *a, const kl_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

int64_t kl_lower_bound(const int64_t *a, int64_t lo, int64_t hi, int64_t v) {
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Positions in messages are 1-based (shape[1] is the first dimension), as users write them. */
kl_status kl_shape_check(const char *fn, int ndim, const int64_t *shape) {
  KL_CHECK(ndim >= 0 && ndim <= KL_MAX_NDIM, KL_ESHAPE, "%s: rank %d must be in [0, %d]", fn, ndim,
           KL_MAX_NDIM);
  int64_t prod = 1; /* product of the non-zero dims: bounds every row width and offset */
  for (int i = 0; i < ndim; i++) {
    KL_CHECK(shape[i] >= 0, KL_ESHAPE, "%s: shape[%d] = %" PRId64 " must be >= 0", fn, i + 1,
             shape[i]);
    if (shape[i] == 0) continue;
    KL_CHECK(shape[i] <= KL_MAX_NUMEL / prod, KL_ESHAPE,
             "%s: shape[%d] = %" PRId64 " makes the tensor too large (more than 2^48 elements)",
             fn, i + 1, shape[i]);
    prod *= shape[i];
  }
  return KL_OK;
}

void kl_tensor_meta(const kl_tensor *t, kl_meta *out) {
  memset(out, 0, sizeof *out);
  out->dtype = t->dtype;
  out->stype = t->stype;
  out->ndim = t->ndim;
  memcpy(out->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  out->device = t->device;
}

static kl_status kl_dtype_check(const char *fn, kl_dtype d) {
  KL_CHECK(d == KL_FLOAT32 || d == KL_FLOAT64 || d == KL_INT64, KL_EDTYPE, "%s: invalid dtype %d",
           fn, (int)d);
  return KL_OK;
}

/* A tensor header with no storage. */
static kl_tensor *kl_tensor_header(kl_dtype dtype, kl_stype stype, int ndim, const int64_t *shape) {
  kl_tensor *t = kl_calloc(1, sizeof *t);
  if (!t) return NULL;
  t->refcount = 1;
  t->dtype = dtype;
  t->stype = stype;
  t->ndim = ndim;
  if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
  return t;
}

static kl_status new_dense(kl_dtype dtype, int ndim, const int64_t *shape, int zero,
                           kl_tensor **out) {
  *out = NULL;
  KL_TRY(kl_dtype_check("zeros", dtype));
  KL_TRY(kl_shape_check("zeros", ndim, shape));
  kl_tensor *t = kl_tensor_header(dtype, KL_STYPE_DEFAULT, ndim, shape);
  if (!t) return KL_ENOMEM;
  int64_t n = kl_shape_numel(ndim, shape);
  const size_t un = (size_t)(n > 0 ? n : 1);
  t->data = zero ? kl_calloc((size_t)n, kl_dtype_size(dtype))
                 : kl_malloc_n(un, kl_dtype_size(dtype));
  if (!t->data) {
    kl_tensor_release(t);
    return KL_ENOMEM;
  }
  t->nnz = t->cap_data = n;
  *out = t;
  return KL_OK;
}

kl_status kl_tensor_new_dense(kl_dtype dtype, int ndim, const int64_t *shape, kl_tensor **out) {
  return new_dense(dtype, ndim, shape, 1, out);
}

kl_status kl_tensor_new_dense_uninit(kl_dtype dtype, int ndim, const int64_t *shape,
                                     kl_tensor **out) {
  return new_dense(dtype, ndim, shape, 0, out);
}

kl_status kl_tensor_new_csr(kl_dtype dtype, int64_t rows, int64_t cols, int64_t nnz,
                            kl_tensor **out) {
  int64_t shape[2] = {rows, cols};
  *out = NULL;
  KL_TRY(kl_dtype_check("csr_matrix", dtype));
  KL_TRY(kl_shape_check("csr_matrix", 2, shape));
  KL_CHECK(nnz >= 0 && nnz <= rows * cols, KL_EINVAL,
           "csr_matrix: nnz = %" PRId64 " must be in [0, %" PRId64 "] for a %" PRId64 " x %" PRId64
           " matrix", nnz, rows * cols, rows, cols);
  kl_tensor *t = kl_tensor_header(dtype, KL_STYPE_CSR, 2, shape);
  if (!t) return KL_ENOMEM;
  t->indptr = kl_calloc((size_t)rows + 1, sizeof(int64_t));
  if (!t->indptr || kl_tensor_reserve(t, nnz) != KL_OK) {
    kl_tensor_release(t);
    return KL_ENOMEM;
  }
  *out = t;
  return KL_OK;
}

kl_status kl_tensor_new_rsp(kl_dtype dtype, int ndim, const int64_t *shape, int64_t nrows,
                            kl_tensor **out) {
  *out = NULL;
  KL_TRY(kl_dtype_check("row_sparse_array", dtype));
  KL_TRY(kl_shape_check("row_sparse_array", ndim, shape));
  KL_CHECK(ndim >= 1, KL_ESHAPE, "row_sparse_array: rank must be >= 1, got 0");
  KL_CHECK(nrows >= 0 && nrows <= shape[0], KL_EINVAL,
           "row_sparse_array: %" PRId64 " stored rows must be in [0, %" PRId64 "]", nrows,
           shape[0]);
  kl_tensor *t = kl_tensor_header(dtype, KL_STYPE_ROW_SPARSE, ndim, shape);
  if (!t) return KL_ENOMEM;
  if (kl_tensor_reserve(t, nrows) != KL_OK) {
    kl_tensor_release(t);
    return KL_ENOMEM;
  }
  *out = t;
  return KL_OK;
}

kl_status kl_tensor_reserve(kl_tensor *t, int64_t nnz) {
  if (t->device != KL_CPU) return kl_tensor_reserve_device(t, nnz);
  KL_CHECK(!t->borrowed, KL_EINVAL, "reserve: the tensor is a view of another's storage");
  KL_CHECK(t->stype != KL_STYPE_DEFAULT, KL_ESTYPE, "reserve: not supported for dense tensors");
  int64_t limit = t->stype == KL_STYPE_CSR ? kl_tensor_numel(t) : t->shape[0];
  KL_CHECK(nnz >= 0 && nnz <= limit, KL_EINVAL,
           "reserve: nnz = %" PRId64 " must be in [0, %" PRId64 "]", nnz, limit);
  int64_t nval = t->stype == KL_STYPE_CSR ? nnz : nnz * kl_row_width(t);
  if (nnz > t->cap_indices || !t->indices) {
    int64_t *p = kl_realloc(t->indices, (size_t)nnz * sizeof(int64_t));
    if (!p) return KL_ENOMEM;
    t->indices = p;
    t->cap_indices = nnz;
  }
  if (nval > t->cap_data || !t->data) {
    void *p = kl_realloc(t->data, (size_t)nval * kl_dtype_size(t->dtype));
    if (!p) return KL_ENOMEM;
    t->data = p;
    t->cap_data = nval;
  }
  t->nnz = nnz;
  return KL_OK;
}

/* The count is atomic (a tensor may be released on any thread, kl/pool.h): a relaxed
 * increment, an acq_rel decrement, so the thread that frees sees every other owner's writes. */
kl_tensor *kl_tensor_retain(kl_tensor *t) {
  if (t) __atomic_fetch_add(&t->refcount, 1, __ATOMIC_RELAXED);
  return t;
}

void kl_tensor_release(kl_tensor *t) {
  if (!t || __atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
  kl_tensor *base = t->base;
  if (t->device != KL_CPU) {
    kl_device_free_storage(t);
  } else if (!t->borrowed) {
    kl_free(t->data);
    kl_free(t->indices);
  }
  kl_free(t->indptr);
  kl_free(t);
  kl_tensor_release(base); /* a view's parent lives as long as the view */
}

double kl_tensor_data_at(const kl_tensor *t, int64_t i) {
  switch (t->dtype) {
    case KL_FLOAT32: return ((const float *)t->data)[i];
    case KL_FLOAT64: return ((const double *)t->data)[i];
    case KL_INT64: return (double)((const int64_t *)t->data)[i];
  }
  return 0;
}

void kl_tensor_data_set(kl_tensor *t, int64_t i, double v) {
  switch (t->dtype) {
    case KL_FLOAT32: ((float *)t->data)[i] = (float)v; break;
    case KL_FLOAT64: ((double *)t->data)[i] = v; break;
    case KL_INT64: ((int64_t *)t->data)[i] = kl_to_i64(v); break;
  }
}

/* Row-major offset of idx[from..ndim-1] within the trailing dims. */
static int64_t kl_offset(const kl_tensor *t, const int64_t *idx, int from) {
  int64_t off = 0;
  for (int i = from; i < t->ndim; i++) off = off * t->shape[i] + idx[i];
  return off;
}

kl_status kl_tensor_locate(const kl_tensor *t, const int64_t *idx, int64_t *pos) {
  *pos = -1;
  if (t->device != KL_CPU) return kl_device_refuse("get", t);
  for (int i = 0; i < t->ndim; i++)
    KL_CHECK(idx[i] >= 0 && idx[i] < t->shape[i], KL_EINDEX,
             "get: index[%d] = %" PRId64 " out of range for dimension %d of size %" PRId64, i,
             idx[i], i, t->shape[i]);
  if (t->stype == KL_STYPE_DEFAULT) {
    *pos = kl_offset(t, idx, 0);
  } else if (t->stype == KL_STYPE_CSR) {
    int64_t lo = t->indptr[idx[0]], hi = t->indptr[idx[0] + 1];
    int64_t p = kl_lower_bound(t->indices, lo, hi, idx[1]);
    if (p < hi && t->indices[p] == idx[1]) *pos = p;
  } else {
    int64_t p = kl_lower_bound(t->indices, 0, t->nnz, idx[0]);
    if (p < t->nnz && t->indices[p] == idx[0]) *pos = p * kl_row_width(t) + kl_offset(t, idx, 1);
  }
  return KL_OK;
}

kl_status kl_tensor_get(const kl_tensor *t, const int64_t *idx, double *out) {
  int64_t p;
  *out = 0;
  KL_TRY(kl_tensor_locate(t, idx, &p));
  if (p >= 0) *out = kl_tensor_data_at(t, p);
  return KL_OK;
}

void kl_tensor_fill(kl_tensor *t, double v) {
  int64_t n = t->stype == KL_STYPE_ROW_SPARSE ? t->nnz * kl_row_width(t) : t->nnz;
  KL_DISPATCH(t->dtype, T, {
    T *p = t->data;
    T x = t->dtype == KL_INT64 ? (T)kl_to_i64(v) : (T)v;
    for (int64_t i = 0; i < n; i++) p[i] = x;
  })
}
