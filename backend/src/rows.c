/* rows.c: row slicing and row gathering for every stype (minibatches of CSR data). */
#include <inttypes.h>
#include "device_internal.h"
#include "tensor_internal.h"

/* Bytes of one row of values (dense or row_sparse). */
static size_t kl_row_bytes(const kl_tensor *t) {
  return (size_t)kl_row_width(t) * kl_dtype_size(t->dtype);
}

/* The shape of t with n rows. */
static void kl_rows_shape(const kl_tensor *t, int64_t n, int64_t *shape) {
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  shape[0] = n;
}

static kl_status kl_slice_csr(const kl_tensor *t, int64_t b, int64_t e, kl_tensor **out) {
  const int64_t *ptr = t->indptr;
  int64_t off = ptr[b], nnz = ptr[e] - ptr[b];
  kl_tensor *c;
  KL_TRY(kl_tensor_new_csr(t->dtype, e - b, t->shape[1], nnz, &c));
  for (int64_t r = b; r <= e; r++) c->indptr[r - b] = ptr[r] - off;
  if (nnz) {
    memcpy(c->indices, t->indices + off, (size_t)nnz * sizeof(int64_t));
    memcpy(c->data, kl_elem(t->data, t->dtype, off), (size_t)nnz * kl_dtype_size(t->dtype));
  }
  *out = c;
  return KL_OK;
}

kl_status kl_tensor_csr_row_view(const kl_tensor *t, int64_t b, int64_t e, kl_tensor **out) {
  *out = NULL;
  KL_CHECK(t->stype == KL_STYPE_CSR && b >= 0 && b <= e && e <= t->shape[0], KL_EINVAL,
           "slice: bad csr row view [%" PRId64 ", %" PRId64 ")", b, e);
  const int64_t *ptr = t->indptr;
  int64_t off = ptr[b];
  kl_tensor *c;
  KL_TRY(kl_tensor_new_csr(t->dtype, e - b, t->shape[1], 0, &c));
  for (int64_t r = b; r <= e; r++) c->indptr[r - b] = ptr[r] - off;
  kl_free(c->indices);
  kl_free(c->data);
  c->indices = t->indices + off;
  c->data = kl_elem(t->data, t->dtype, off);
  c->nnz = ptr[e] - off;
  c->cap_indices = c->cap_data = c->nnz; /* what it may read; reserve refuses a view */
  c->borrowed = 1;
  c->base = kl_tensor_retain((kl_tensor *)t); /* the view keeps its storage alive */
  *out = c;
  return KL_OK;
}

kl_status kl_tensor_dense_row_view(const kl_tensor *t, int64_t b, int64_t e, kl_tensor **out) {
  *out = NULL;
  KL_CHECK(t->stype == KL_STYPE_DEFAULT && t->device == KL_CPU && t->ndim >= 1 && b >= 0 &&
               b <= e && e <= t->shape[0],
           KL_EINVAL, "slice: bad dense row view [%" PRId64 ", %" PRId64 ")", b, e);
  int64_t shape[KL_MAX_NDIM];
  memcpy(shape, t->shape, sizeof shape);
  shape[0] = 0;
  kl_tensor *c;
  KL_TRY(kl_tensor_new_dense(t->dtype, t->ndim, shape, &c));
  const int64_t w = kl_row_width(t);
  kl_free(c->data);
  c->shape[0] = e - b;
  c->data = kl_elem(t->data, t->dtype, b * w);
  c->nnz = c->cap_data = (e - b) * w; /* what it may read; reserve refuses a view */
  c->borrowed = 1;
  c->base = kl_tensor_retain((kl_tensor *)t); /* the view keeps its storage alive */
  *out = c;
  return KL_OK;
}

static kl_status kl_slice_rsp(const kl_tensor *t, int64_t b, int64_t e, kl_tensor **out) {
  int64_t lo = kl_lower_bound(t->indices, 0, t->nnz, b);
  int64_t hi = kl_lower_bound(t->indices, lo, t->nnz, e);
  int64_t shape[KL_MAX_NDIM];
  size_t rb = kl_row_bytes(t);
  kl_tensor *s;
  kl_rows_shape(t, e - b, shape);
  KL_TRY(kl_tensor_new_rsp(t->dtype, t->ndim, shape, hi - lo, &s));
  for (int64_t j = lo; j < hi; j++) s->indices[j - lo] = t->indices[j] - b;
  if (hi > lo) memcpy(s->data, (const char *)t->data + lo * rb, (size_t)(hi - lo) * rb);
  *out = s;
  return KL_OK;
}

struct rows_args { int64_t a, b; const int64_t *idx; };
static kl_status slice_host(const kl_tensor *h, void *ud, kl_tensor **out) {
  const struct rows_args *r = ud;
  return kl_tensor_slice_rows(h, r->a, r->b, out);
}
static kl_status take_host(const kl_tensor *h, void *ud, kl_tensor **out) {
  const struct rows_args *r = ud;
  return kl_tensor_take_rows(h, r->idx, r->a, out);
}

kl_status kl_tensor_slice_rows(const kl_tensor *t, int64_t begin, int64_t end, kl_tensor **out) {
  *out = NULL;
  if (t->device != KL_CPU) {
    struct rows_args r = {begin, end, NULL};
    return kl_device_roundtrip1(t, slice_host, &r, out);
  }
  KL_CHECK(t->ndim >= 1, KL_ESHAPE, "slice: cannot slice the rows of a 0-d tensor");
  KL_CHECK(begin >= 0 && begin <= end && end <= t->shape[0], KL_EINDEX,
           "slice: rows [%" PRId64 ", %" PRId64 ") out of range for %" PRId64 " rows", begin, end,
           t->shape[0]);
  if (t->stype == KL_STYPE_CSR) return kl_slice_csr(t, begin, end, out);
  if (t->stype == KL_STYPE_ROW_SPARSE) return kl_slice_rsp(t, begin, end, out);
  int64_t shape[KL_MAX_NDIM];
  size_t rb = kl_row_bytes(t);
  kl_tensor *d;
  kl_rows_shape(t, end - begin, shape);
  KL_TRY(kl_tensor_new_dense(t->dtype, t->ndim, shape, &d));
  if (end > begin) memcpy(d->data, (const char *)t->data + begin * rb, (size_t)(end - begin) * rb);
  *out = d;
  return KL_OK;
}

static kl_status kl_take_dense(const kl_tensor *t, const int64_t *idx, int64_t n, kl_tensor **out) {
  int64_t shape[KL_MAX_NDIM];
  size_t rb = kl_row_bytes(t);
  kl_tensor *d;
  kl_rows_shape(t, n, shape);
  KL_TRY(kl_tensor_new_dense(t->dtype, t->ndim, shape, &d));
  KL_PRAGMA(omp parallel for schedule(static) if ((int64_t)(n * rb) > 8 * KL_PAR_MIN))
  for (int64_t i = 0; i < n; i++)
    memcpy((char *)d->data + i * rb, (const char *)t->data + idx[i] * rb, rb);
  *out = d;
  return KL_OK;
}

static kl_status kl_take_csr(const kl_tensor *t, const int64_t *idx, int64_t n, kl_tensor **out) {
  const int64_t *ptr = t->indptr;
  size_t es = kl_dtype_size(t->dtype);
  kl_tensor *c;
  KL_TRY(kl_tensor_new_csr(t->dtype, n, t->shape[1], 0, &c));
  for (int64_t i = 0; i < n; i++) c->indptr[i + 1] = c->indptr[i] + ptr[idx[i] + 1] - ptr[idx[i]];
  if (kl_tensor_reserve(c, c->indptr[n]) != KL_OK) {
    kl_tensor_release(c);
    return KL_ENOMEM;
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t from = ptr[idx[i]], len = ptr[idx[i] + 1] - from, to = c->indptr[i];
    if (!len) continue;
    memcpy(c->indices + to, t->indices + from, (size_t)len * sizeof(int64_t));
    memcpy(kl_elem(c->data, c->dtype, to), kl_elem(t->data, t->dtype, from), (size_t)len * es);
  }
  *out = c;
  return KL_OK;
}

/* Output row i is stored when t stores row idx[i]; output indices are increasing in i. */
static kl_status kl_take_rsp(const kl_tensor *t, const int64_t *idx, int64_t n, kl_tensor **out) {
  int64_t shape[KL_MAX_NDIM], m = 0;
  size_t rb = kl_row_bytes(t);
  kl_tensor *s;
  for (int64_t i = 0; i < n; i++) {
    int64_t p = kl_lower_bound(t->indices, 0, t->nnz, idx[i]);
    m += p < t->nnz && t->indices[p] == idx[i];
  }
  kl_rows_shape(t, n, shape);
  KL_TRY(kl_tensor_new_rsp(t->dtype, t->ndim, shape, m, &s));
  for (int64_t i = 0, j = 0; i < n; i++) {
    int64_t p = kl_lower_bound(t->indices, 0, t->nnz, idx[i]);
    if (p == t->nnz || t->indices[p] != idx[i]) continue;
    s->indices[j] = i;
    memcpy((char *)s->data + j * rb, (const char *)t->data + p * rb, rb);
    j++;
  }
  *out = s;
  return KL_OK;
}

kl_status kl_tensor_take_rows(const kl_tensor *t, const int64_t *idx, int64_t n, kl_tensor **out) {
  *out = NULL;
  if (t->device != KL_CPU) {
    struct rows_args r = {n, 0, idx};
    return kl_device_roundtrip1(t, take_host, &r, out);
  }
  KL_CHECK(t->ndim >= 1, KL_ESHAPE, "take: cannot take the rows of a 0-d tensor");
  KL_CHECK(n >= 0, KL_EINVAL, "take: number of rows %" PRId64 " must be >= 0", n);
  for (int64_t i = 0; i < n; i++)
    KL_CHECK(idx[i] >= 0 && idx[i] < t->shape[0], KL_EINDEX,
             "take: index[%" PRId64 "] = %" PRId64 " out of range for %" PRId64 " rows", i, idx[i],
             t->shape[0]);
  if (t->stype == KL_STYPE_CSR) return kl_take_csr(t, idx, n, out);
  if (t->stype == KL_STYPE_ROW_SPARSE) return kl_take_rsp(t, idx, n, out);
  return kl_take_dense(t, idx, n, out);
}
