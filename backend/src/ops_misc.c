/* ops_misc.c: transpose (dense any rank, csr -> csr) and retain (row_sparse row selection),
 * with their gradients. */
#include <stdlib.h>
#include <string.h>
#include "ops_ew.h"

/* ------------------------------------------------------------ transpose */

static kl_status transpose_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  *out = in[0];
  for (int k = 0; k < in[0].ndim; k++) out->shape[k] = in[0].shape[in[0].ndim - 1 - k];
  if (in[0].stype != KL_STYPE_CSR) out->stype = KL_STYPE_DEFAULT;
  return KL_OK;
}

/* Dense: out[j0, .., jn-1] = in[jn-1, .., j0]. Walks the output in order; the outer output
 * axis is split across threads. */
static kl_status transpose_dense(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 kl_tensor **out) {
  const kl_tensor *x = in[0];
  int nd = x->ndim;
  int64_t shape[KL_MAX_NDIM], ist[KL_MAX_NDIM], st[KL_MAX_NDIM];
  kl_tensor *r = NULL;
  for (int k = 0; k < nd; k++) shape[k] = x->shape[nd - 1 - k];
  KL_TRY(kl_tensor_new_dense(x->dtype, nd, shape, &r));
  int64_t n = kl_tensor_numel(x);
  size_t es = kl_dtype_size(x->dtype);
  if (nd <= 1 || n == 0) {
    if (n) memcpy(r->data, x->data, (size_t)n * es);
    *out = r;
    return KL_OK;
  }
  for (int k = nd - 1; k >= 0; k--) ist[k] = k == nd - 1 ? 1 : ist[k + 1] * x->shape[k + 1];
  for (int k = 0; k < nd; k++) st[k] = ist[nd - 1 - k]; /* input stride of output axis k */
  int64_t outer = shape[0], inner = n / outer;
  KL_DISPATCH(x->dtype, T, {
    const T *px = x->data;
    T *po = r->data;
    KL_OMP_FOR(n > KL_EW_PAR)
    for (int64_t o = 0; o < outer; o++) {
      int64_t idx[KL_MAX_NDIM] = {0}, off = o * st[0];
      T *dst = po + o * inner;
      for (int64_t i = 0; i < inner; i++) {
        dst[i] = px[off];
        for (int k = nd - 1; k >= 1; k--) { /* odometer over output axes 1.. */
          off += st[k];
          if (++idx[k] < shape[k]) break;
          off -= st[k] * idx[k];
          idx[k] = 0;
        }
      }
    }
  })
  *out = r;
  return KL_OK;
}

/* csr -> csr in O(nnz + rows + cols): count per column, prefix sums, scatter in row order
 * (so each output row comes out sorted). */
static kl_status transpose_csr(kl_tensor *const *in, int nin, const kl_attrs *a,
                               kl_tensor **out) {
  const kl_tensor *x = in[0];
  int64_t rows = x->shape[0], cols = x->shape[1], nnz = x->indptr[rows];
  kl_tensor *r = NULL;
  int64_t *next = NULL;
  KL_TRY(kl_tensor_new_csr(x->dtype, cols, rows, nnz, &r));
  next = kl_malloc_n((size_t)cols + 1, sizeof *next);
  if (!next) {
    kl_tensor_release(r);
    return KL_ENOMEM;
  }
  for (int64_t p = 0; p < nnz; p++) r->indptr[x->indices[p] + 1]++;
  for (int64_t j = 0; j < cols; j++) r->indptr[j + 1] += r->indptr[j];
  memcpy(next, r->indptr, (size_t)(cols + 1) * sizeof *next);
  size_t es = kl_dtype_size(x->dtype);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t p = x->indptr[i]; p < x->indptr[i + 1]; p++) {
      int64_t q = next[x->indices[p]]++;
      r->indices[q] = i;
      memcpy((char *)r->data + (size_t)q * es, (const char *)x->data + (size_t)p * es, es);
    }
  kl_free(next);
  *out = r;
  return KL_OK;
}

static int sup_csr(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return in[0]->stype == KL_STYPE_CSR;
}

static kl_status transpose_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                    const kl_tensor *out, const kl_tensor *gout, int i,
                                    kl_stype want, kl_tensor **gin) {
  kl_tensor *G = NULL;
  KL_TRY(kl_ew_densify(gout, &G));
  kl_status st = transpose_dense(&G, 1, a, gin);
  kl_tensor_release(G);
  return st;
}

static const kl_kernel_entry transpose_kernels[] = {{"csr", sup_csr, transpose_csr},
                                                    {NULL, NULL, NULL}};
const kl_op_def kl_opdef_transpose = {"transpose", 1, 1, transpose_infer, transpose_dense,
                                      transpose_kernels, transpose_backward};

/* ------------------------------------------------------------ retain */

static kl_status retain_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  KL_CHECK(in[0].stype == KL_STYPE_ROW_SPARSE, KL_ESTYPE,
           "retain: expected a row_sparse tensor, got %s", kl_stype_name(in[0].stype));
  KL_CHECK(in[1].dtype == KL_INT64 && in[1].ndim == 1 && in[1].stype == KL_STYPE_DEFAULT,
           KL_EINVAL, "retain: indices must be a dense 1-d int64 tensor, got %s %s with %d dimensions",
           kl_stype_name(in[1].stype), kl_dtype_name(in[1].dtype), in[1].ndim);
  *out = in[0];
  return KL_OK;
}

static int cmp_i64(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

/* The requested rows, range-checked against nrows, sorted and deduplicated into *rows. */
static kl_status retain_rows(const kl_tensor *idx, int64_t nrows, int64_t **rows, int64_t *n) {
  const int64_t *p = idx->data;
  int64_t m = idx->shape[0], u = 0;
  for (int64_t k = 0; k < m; k++)
    KL_CHECK(p[k] >= 0 && p[k] < nrows, KL_EINDEX, "retain: index %lld out of range for %lld rows",
             (long long)p[k], (long long)nrows);
  int64_t *s = kl_malloc_n((size_t)(m ? m : 1), sizeof *s);
  if (!s) return KL_ENOMEM;
  if (m) memcpy(s, p, (size_t)m * sizeof *s);
  qsort(s, (size_t)m, sizeof *s, cmp_i64);
  for (int64_t k = 0; k < m; k++)
    if (k == 0 || s[k] != s[k - 1]) s[u++] = s[k];
  *rows = s;
  *n = u;
  return KL_OK;
}

/* Keeps the stored rows that are requested: O(k log k + k log nnz + copied values). */
static kl_status retain_rsp(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *x = in[0];
  int64_t *req = NULL, nreq = 0, *pos = NULL, n = 0, w = kl_row_width(x);
  kl_tensor *r = NULL;
  KL_TRY(retain_rows(in[1], x->shape[0], &req, &nreq));
  kl_status st = KL_ENOMEM;
  pos = kl_malloc_n((size_t)(nreq ? nreq : 1), sizeof *pos);
  if (!pos) goto done;
  for (int64_t k = 0, lo = 0; k < nreq; k++) {
    lo = kl_lower_bound(x->indices, lo, x->nnz, req[k]);
    if (lo < x->nnz && x->indices[lo] == req[k]) pos[n++] = lo;
  }
  st = kl_tensor_new_rsp(x->dtype, x->ndim, x->shape, n, &r);
  if (st != KL_OK) goto done;
  size_t rb = (size_t)w * kl_dtype_size(x->dtype);
  KL_OMP_FOR(n * w > KL_EW_PAR)
  for (int64_t k = 0; k < n; k++) {
    r->indices[k] = x->indices[pos[k]];
    if (rb) memcpy((char *)r->data + (size_t)k * rb, (const char *)x->data + (size_t)pos[k] * rb, rb);
  }
  *out = r;
  r = NULL;
done:
  kl_free(req);
  kl_free(pos);
  kl_tensor_release(r);
  return st;
}

/* The dense kernel (what the registry's fallback would run): zeroes the other rows. */
static kl_status retain_dense(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *x = in[0];
  int64_t *req = NULL, nreq = 0, w = kl_row_width(x);
  kl_tensor *r = NULL;
  KL_TRY(retain_rows(in[1], x->ndim ? x->shape[0] : 1, &req, &nreq));
  kl_status st = kl_tensor_new_dense(x->dtype, x->ndim, x->shape, &r);
  if (st == KL_OK) {
    size_t rb = (size_t)w * kl_dtype_size(x->dtype);
    for (int64_t k = 0; k < nreq && rb; k++)
      memcpy((char *)r->data + (size_t)req[k] * rb, (const char *)x->data + (size_t)req[k] * rb, rb);
    *out = r;
  }
  kl_free(req);
  return st;
}

static int sup_retain(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return in[0]->stype == KL_STYPE_ROW_SPARSE && in[1]->stype == KL_STYPE_DEFAULT;
}

/* d retain / d x: gout on the rows the output kept, zero elsewhere. */
static kl_status retain_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 const kl_tensor *out, const kl_tensor *gout, int i,
                                 kl_stype want, kl_tensor **gin) {
  KL_CHECK(i == 0, KL_EUNSUPPORTED, "retain: no gradient for the indices");
  KL_TRY(kl_ew_grad_dtype("retain", in[0]->dtype));
  kl_tensor *kept = NULL, *G = NULL, *r = NULL;
  kl_status st = KL_OK;
  if (out) kept = kl_tensor_retain((kl_tensor *)out);
  else st = retain_rsp(in, nin, a, &kept);
  if (st == KL_OK) st = kl_ew_densify(gout, &G);
  if (st == KL_OK) st = kl_tensor_new_dense(G->dtype, G->ndim, G->shape, &r);
  if (st == KL_OK) {
    size_t rb = (size_t)kl_row_width(G) * kl_dtype_size(G->dtype);
    for (int64_t k = 0; k < kept->nnz && rb; k++) {
      int64_t row = kept->indices[k];
      memcpy((char *)r->data + (size_t)row * rb, (const char *)G->data + (size_t)row * rb, rb);
    }
    *gin = r;
    r = NULL;
  }
  kl_tensor_release(kept);
  kl_tensor_release(G);
  kl_tensor_release(r);
  return st;
}

static const kl_kernel_entry retain_kernels[] = {{"rsp.idx", sup_retain, retain_rsp},
                                                 {NULL, NULL, NULL}};
const kl_op_def kl_opdef_retain = {"retain", 2, 2, retain_infer, retain_dense, retain_kernels,
                                   retain_backward};
