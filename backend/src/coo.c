/* coo.c: CSR from COO triplets: bucket by row (counting sort), stable sort within rows, sum duplicates. */
#include <inttypes.h>
#include "tensor_internal.h"

/* Stable merge sort of pairs (c, v) by c; tc/tv are scratch of n/2 + 1 entries. */
static void kl_sort_pairs(int64_t *c, double *v, int64_t n, int64_t *tc, double *tv) {
  if (n <= 16) {
    for (int64_t i = 1; i < n; i++) {
      int64_t ci = c[i], j = i;
      double vi = v[i];
      for (; j > 0 && c[j - 1] > ci; j--) {
        c[j] = c[j - 1];
        v[j] = v[j - 1];
      }
      c[j] = ci;
      v[j] = vi;
    }
    return;
  }
  int64_t h = n / 2, i = 0, j = h, k = 0;
  kl_sort_pairs(c, v, h, tc, tv);
  kl_sort_pairs(c + h, v + h, n - h, tc, tv);
  if (c[h - 1] <= c[h]) return;
  memcpy(tc, c, (size_t)h * sizeof *c);
  memcpy(tv, v, (size_t)h * sizeof *v);
  while (i < h && j < n) {
    int left = tc[i] <= c[j];
    c[k] = left ? tc[i] : c[j];
    v[k++] = left ? tv[i++] : v[j++];
  }
  for (; i < h; i++, k++) {
    c[k] = tc[i];
    v[k] = tv[i];
  }
}

static kl_status kl_coo_check(kl_dtype dtype, int64_t rows, int64_t cols, int64_t n,
                              const int64_t *row, const int64_t *col, const double *val) {
  int64_t shape[2] = {rows, cols};
  KL_CHECK(dtype == KL_FLOAT32 || dtype == KL_FLOAT64 || dtype == KL_INT64, KL_EDTYPE,
           "coo_matrix: invalid dtype %d", (int)dtype);
  KL_TRY(kl_shape_check("coo_matrix", 2, shape));
  KL_CHECK(n >= 0 && n <= KL_MAX_NUMEL, KL_EINVAL,
           "coo_matrix: number of entries %" PRId64 " must be in [0, 2^48]", n);
  for (int64_t k = 0; k < n; k++) {
    KL_CHECK(row[k] >= 0 && row[k] < rows, KL_EINDEX,
             "coo_matrix: row[%" PRId64 "] = %" PRId64 " out of range for %" PRId64 " rows", k,
             row[k], rows);
    KL_CHECK(col[k] >= 0 && col[k] < cols, KL_EINDEX,
             "coo_matrix: col[%" PRId64 "] = %" PRId64 " out of range for %" PRId64 " columns", k,
             col[k], cols);
  }
  return kl_values_check("coo_matrix", val, KL_FLOAT64, dtype, n);
}

/* Sums runs of equal columns in each sorted row of (tc, tv), writing the CSR entries. */
static kl_status kl_coo_compact(kl_tensor *c, const int64_t *cur, int64_t *tc, double *tv) {
  int64_t rows = c->shape[0], w = 0, *ptr = c->indptr;
  for (int64_t r = 0; r < rows; r++) { /* in place: w never passes k */
    int64_t k = ptr[r], end = cur[r];
    ptr[r] = w;
    while (k < end) {
      int64_t j = tc[k];
      double s = tv[k++];
      while (k < end && tc[k] == j) s += tv[k++];
      tc[w] = j;
      tv[w++] = s;
    }
  }
  ptr[rows] = w;
  KL_TRY(kl_tensor_reserve(c, w));
  if (w) memcpy(c->indices, tc, (size_t)w * sizeof(int64_t));
  return kl_values_convert("coo_matrix", tv, KL_FLOAT64, c->data, c->dtype, w);
}

kl_status kl_csr_from_coo(kl_dtype dtype, int64_t rows, int64_t cols, int64_t n,
                          const int64_t *row, const int64_t *col, const double *val,
                          kl_tensor **out) {
  kl_tensor *c = NULL;
  int64_t *cur = NULL, *tc = NULL, *sc = NULL;
  double *tv = NULL, *sv = NULL;
  kl_status st;
  *out = NULL;
  KL_TRY(kl_coo_check(dtype, rows, cols, n, row, col, val));
  if ((st = kl_tensor_new_csr(dtype, rows, cols, 0, &c)) != KL_OK) goto done;
  cur = kl_malloc_n((size_t)rows + 1, sizeof *cur);
  tc = kl_malloc_n((size_t)n, sizeof *tc);
  tv = kl_malloc_n((size_t)n, sizeof *tv);
  sc = kl_malloc_n((size_t)n / 2 + 1, sizeof *sc);
  sv = kl_malloc_n((size_t)n / 2 + 1, sizeof *sv);
  st = KL_ENOMEM;
  if (!cur || !tc || !tv || !sc || !sv) goto done;
  int64_t *ptr = c->indptr;
  for (int64_t k = 0; k < n; k++) ptr[row[k] + 1]++;
  for (int64_t r = 0; r < rows; r++) ptr[r + 1] += ptr[r];
  memcpy(cur, ptr, (size_t)(rows + 1) * sizeof *cur);
  for (int64_t k = 0; k < n; k++) { /* stable bucket by row */
    int64_t p = cur[row[k]]++;
    tc[p] = col[k];
    tv[p] = val[k];
  }
  for (int64_t r = 0; r < rows; r++)
    kl_sort_pairs(tc + ptr[r], tv + ptr[r], ptr[r + 1] - ptr[r], sc, sv);
  st = kl_coo_compact(c, cur, tc, tv);
done:
  kl_free(cur);
  kl_free(tc);
  kl_free(tv);
  kl_free(sc);
  kl_free(sv);
  if (st == KL_OK) *out = c;
  else kl_tensor_release(c);
  return st;
}
