/* convert.c: dtype conversion of value buffers and storage-type conversion between all stypes. */
#include <inttypes.h>
#include "device_internal.h"
#include "tensor_internal.h"

kl_status kl_values_check(const char *fn, const void *src, kl_dtype sd, kl_dtype dd, int64_t n) {
  if (dd != KL_INT64 || sd == KL_INT64) return KL_OK;
  for (int64_t i = 0; i < n; i++) {
    double v = sd == KL_FLOAT32 ? ((const float *)src)[i] : ((const double *)src)[i];
    KL_CHECK(v >= -9223372036854775808.0 && v < 9223372036854775808.0, KL_EINVAL,
             "%s: value %g cannot be converted to int64", fn, v);
  }
  return KL_OK;
}

kl_status kl_values_convert(const char *fn, const void *src, kl_dtype sd, void *dst,
                            kl_dtype dd, int64_t n) {
  if (sd == dd) {
    if (n) memmove(dst, src, (size_t)n * kl_dtype_size(sd));
    return KL_OK;
  }
  KL_TRY(kl_values_check(fn, src, sd, dd, n));
  KL_DISPATCH(sd, S, KL_DISPATCH(dd, D, {
    const S *s = src;
    D *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = (D)s[i];
  }))
  return KL_OK;
}

/* dense (2-d) -> csr, dropping zeros: count per row, prefix sum, fill (rows in parallel). */
static kl_status kl_dense_to_csr(const kl_tensor *t, kl_tensor **out) {
  int64_t rows = t->shape[0], cols = t->shape[1];
  kl_tensor *c;
  KL_TRY(kl_tensor_new_csr(t->dtype, rows, cols, 0, &c));
  int64_t *ptr = c->indptr;
  KL_DISPATCH(t->dtype, T, {
    const T *x = t->data;
    KL_PRAGMA(omp parallel for schedule(static) if (rows * cols > KL_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
      int64_t k = 0;
      for (int64_t j = 0; j < cols; j++) k += x[r * cols + j] != 0;
      ptr[r + 1] = k;
    }
  })
  for (int64_t r = 0; r < rows; r++) ptr[r + 1] += ptr[r];
  if (kl_tensor_reserve(c, ptr[rows]) != KL_OK) {
    kl_tensor_release(c);
    return KL_ENOMEM;
  }
  KL_DISPATCH(t->dtype, T, {
    const T *x = t->data;
    T *v = c->data;
    int64_t *ix = c->indices;
    KL_PRAGMA(omp parallel for schedule(static) if (rows * cols > KL_PAR_MIN))
    for (int64_t r = 0; r < rows; r++) {
      int64_t k = ptr[r];
      for (int64_t j = 0; j < cols; j++)
        if (x[r * cols + j] != 0) {
          ix[k] = j;
          v[k++] = x[r * cols + j];
        }
    }
  })
  *out = c;
  return KL_OK;
}

/* Whether row r (width w) of a dense buffer has a nonzero. */
static int kl_row_nonzero(const void *data, kl_dtype d, int64_t r, int64_t w) {
  KL_DISPATCH(d, T, {
    const T *x = (const T *)data + r * w;
    for (int64_t j = 0; j < w; j++)
      if (x[j] != 0) return 1;
  })
  return 0;
}

/* dense (rank >= 1) -> row_sparse keeping the rows with any nonzero. */
static kl_status kl_dense_to_rsp(const kl_tensor *t, kl_tensor **out) {
  int64_t rows = t->shape[0], w = kl_row_width(t), n = 0;
  size_t rb = (size_t)w * kl_dtype_size(t->dtype);
  kl_tensor *s = NULL;
  kl_status st = KL_OK;
  int64_t *keep = kl_malloc_n((size_t)rows, sizeof(int64_t));
  if (!keep) return KL_ENOMEM;
  for (int64_t r = 0; r < rows; r++)
    if (kl_row_nonzero(t->data, t->dtype, r, w)) keep[n++] = r;
  st = kl_tensor_new_rsp(t->dtype, t->ndim, t->shape, n, &s);
  if (st == KL_OK) {
    if (n) memcpy(s->indices, keep, (size_t)n * sizeof(int64_t));
    KL_PRAGMA(omp parallel for schedule(static) if (n * w > KL_PAR_MIN))
    for (int64_t j = 0; j < n; j++)
      memcpy((char *)s->data + j * rb, (const char *)t->data + keep[j] * rb, rb);
  }
  kl_free(keep);
  *out = s;
  return st;
}

/* csr -> dense: scatter each row. */
static kl_status kl_csr_to_dense(const kl_tensor *t, kl_tensor **out) {
  kl_tensor *d;
  KL_TRY(kl_tensor_new_dense(t->dtype, 2, t->shape, &d));
  int64_t rows = t->shape[0], cols = t->shape[1];
  const int64_t *ptr = t->indptr, *ix = t->indices;
  KL_DISPATCH(t->dtype, T, {
    const T *v = t->data;
    T *x = d->data;
    KL_PRAGMA(omp parallel for schedule(static) if (t->nnz > KL_PAR_MIN))
    for (int64_t r = 0; r < rows; r++)
      for (int64_t k = ptr[r]; k < ptr[r + 1]; k++) x[r * cols + ix[k]] = v[k];
  })
  *out = d;
  return KL_OK;
}

/* row_sparse -> dense: copy each stored row into place. */
static kl_status kl_rsp_to_dense(const kl_tensor *t, kl_tensor **out) {
  kl_tensor *d;
  KL_TRY(kl_tensor_new_dense(t->dtype, t->ndim, t->shape, &d));
  size_t rb = (size_t)kl_row_width(t) * kl_dtype_size(t->dtype);
  for (int64_t j = 0; j < t->nnz; j++)
    memcpy((char *)d->data + t->indices[j] * rb, (const char *)t->data + j * rb, rb);
  *out = d;
  return KL_OK;
}

/* csr -> row_sparse: the rows with stored entries, other columns zero. */
static kl_status kl_csr_to_rsp(const kl_tensor *t, kl_tensor **out) {
  int64_t rows = t->shape[0], cols = t->shape[1], n = 0;
  const int64_t *ptr = t->indptr, *ix = t->indices;
  for (int64_t r = 0; r < rows; r++) n += ptr[r + 1] > ptr[r];
  kl_tensor *s;
  KL_TRY(kl_tensor_new_rsp(t->dtype, 2, t->shape, n, &s));
  if (n) memset(s->data, 0, (size_t)(n * cols) * kl_dtype_size(t->dtype));
  KL_DISPATCH(t->dtype, T, {
    const T *v = t->data;
    T *x = s->data;
    int64_t j = 0;
    for (int64_t r = 0; r < rows; r++) {
      if (ptr[r + 1] == ptr[r]) continue;
      s->indices[j] = r;
      for (int64_t k = ptr[r]; k < ptr[r + 1]; k++) x[j * cols + ix[k]] = v[k];
      j++;
    }
  })
  *out = s;
  return KL_OK;
}

/* row_sparse (2-d) -> csr, dropping zeros inside the stored rows. */
static kl_status kl_rsp_to_csr(const kl_tensor *t, kl_tensor **out) {
  int64_t rows = t->shape[0], cols = t->shape[1], n = t->nnz;
  kl_tensor *c;
  KL_TRY(kl_tensor_new_csr(t->dtype, rows, cols, 0, &c));
  int64_t *ptr = c->indptr;
  KL_DISPATCH(t->dtype, T, {
    const T *x = t->data;
    for (int64_t j = 0; j < n; j++) {
      int64_t k = 0;
      for (int64_t q = 0; q < cols; q++) k += x[j * cols + q] != 0;
      ptr[t->indices[j] + 1] = k;
    }
  })
  for (int64_t r = 0; r < rows; r++) ptr[r + 1] += ptr[r];
  if (kl_tensor_reserve(c, ptr[rows]) != KL_OK) {
    kl_tensor_release(c);
    return KL_ENOMEM;
  }
  KL_DISPATCH(t->dtype, T, {
    const T *x = t->data;
    T *v = c->data;
    for (int64_t j = 0; j < n; j++) {
      int64_t k = ptr[t->indices[j]];
      for (int64_t q = 0; q < cols; q++)
        if (x[j * cols + q] != 0) {
          c->indices[k] = q;
          v[k++] = x[j * cols + q];
        }
    }
  })
  *out = c;
  return KL_OK;
}

static kl_status tostype_host(const kl_tensor *h, void *ud, kl_tensor **out) {
  return kl_tensor_tostype(h, *(const kl_stype *)ud, out);
}

kl_status kl_tensor_tostype(const kl_tensor *t, kl_stype stype, kl_tensor **out) {
  *out = NULL;
  KL_CHECK(stype == KL_STYPE_DEFAULT || stype == KL_STYPE_CSR || stype == KL_STYPE_ROW_SPARSE,
           KL_EINVAL, "tostype: invalid stype %d", (int)stype);
  if (t->device != KL_CPU) {
    if (stype == t->stype) return kl_tensor_copy(t, out);
    return kl_device_roundtrip1(t, tostype_host, &stype, out);
  }
  if (stype == t->stype) return kl_tensor_copy(t, out);
  KL_CHECK(stype != KL_STYPE_CSR || t->ndim == 2, KL_ESHAPE,
           "tostype: csr needs a 2-d tensor, got %d-d", t->ndim);
  KL_CHECK(stype != KL_STYPE_ROW_SPARSE || t->ndim >= 1, KL_ESHAPE,
           "tostype: row_sparse needs a tensor of rank >= 1, got 0-d");
  if (t->stype == KL_STYPE_DEFAULT)
    return stype == KL_STYPE_CSR ? kl_dense_to_csr(t, out) : kl_dense_to_rsp(t, out);
  if (t->stype == KL_STYPE_CSR)
    return stype == KL_STYPE_DEFAULT ? kl_csr_to_dense(t, out) : kl_csr_to_rsp(t, out);
  return stype == KL_STYPE_DEFAULT ? kl_rsp_to_dense(t, out) : kl_rsp_to_csr(t, out);
}
