/* tensor_check.c: full O(nnz) validation of CSR and row_sparse invariants, with exact messages. */
#include <inttypes.h>
#include "device_internal.h"
#include "tensor_internal.h"

/* v + b for a message (b is the caller's index base, 0 or 1), saturating at INT64_MAX: an
 * index that large can only come from C (Lua's largest 1-based index converts to INT64_MAX-1),
 * and the message must not overflow while describing it. */
static int64_t shown(int64_t v, int b) { return v > INT64_MAX - b ? INT64_MAX : v + b; }

/* Buffers must hold what nnz says (guards tensors built by hand in C). */
static kl_status kl_check_buffers(const kl_tensor *t, const char *fn, int64_t nval) {
  KL_CHECK(t->dtype == KL_FLOAT32 || t->dtype == KL_FLOAT64 || t->dtype == KL_INT64, KL_EDTYPE,
           "%s: data dtype %d must be float32, float64 or int64", fn, (int)t->dtype);
  KL_CHECK(t->nnz >= 0, KL_EFORMAT, "%s: nnz = %" PRId64 " must be >= 0", fn, t->nnz);
  KL_CHECK(t->nnz <= t->cap_indices && nval <= t->cap_data && (t->indices || t->nnz == 0) &&
               (t->data || nval == 0),
           KL_EFORMAT, "%s: buffers hold fewer than the %" PRId64 " stored entries", fn, t->nnz);
  return KL_OK;
}

/* indptr: starts at 0, ends at nnz, never decreases. */
static kl_status kl_check_indptr(const kl_tensor *t, const char *fn, int b) {
  const int64_t *p = t->indptr;
  int64_t rows = t->shape[0];
  KL_CHECK(p, KL_EFORMAT, "%s: indptr is missing", fn);
  KL_CHECK(p[0] == 0, KL_EINDEX, "%s: indptr[%d] = %" PRId64 " must be %d", fn, b,
           shown(p[0], b), b);
  KL_CHECK(p[rows] == t->nnz, KL_EINDEX,
           "%s: indptr[%" PRId64 "] = %" PRId64 " must be %" PRId64 " (the number of values%s)",
           fn, rows + b, shown(p[rows], b), shown(t->nnz, b), b ? " + 1" : "");
  for (int64_t i = 0; i < rows; i++)
    KL_CHECK(p[i + 1] >= p[i], KL_EINDEX,
             "%s: indptr must be non-decreasing: indptr[%" PRId64 "] = %" PRId64
             " < indptr[%" PRId64 "] = %" PRId64, fn, i + 1 + b, shown(p[i + 1], b), i + b,
             shown(p[i], b));
  return KL_OK;
}

static kl_status kl_check_csr(const kl_tensor *t, const char *fn, int b) {
  KL_CHECK(t->ndim == 2, KL_ESHAPE, "%s: a csr tensor must be 2-d, got %d-d", fn, t->ndim);
  KL_TRY(kl_check_buffers(t, fn, t->nnz));
  KL_TRY(kl_check_indptr(t, fn, b));
  int64_t cols = t->shape[1];
  const int64_t *ix = t->indices;
  for (int64_t r = 0; r < t->shape[0]; r++) {
    for (int64_t k = t->indptr[r]; k < t->indptr[r + 1]; k++) {
      KL_CHECK(ix[k] >= 0 && ix[k] < cols, KL_EINDEX,
               "%s: indices[%" PRId64 "] = %" PRId64 " out of range for %" PRId64 " columns", fn,
               k + b, shown(ix[k], b), cols);
      KL_CHECK(k == t->indptr[r] || ix[k] > ix[k - 1], KL_EINDEX,
               "%s: indices not strictly increasing in row %" PRId64 ": indices[%" PRId64
               "] = %" PRId64 " after indices[%" PRId64 "] = %" PRId64, fn, r + b, k + b,
               shown(ix[k], b), k - 1 + b, shown(ix[k - 1], b));
    }
  }
  return KL_OK;
}

static kl_status kl_check_rsp(const kl_tensor *t, const char *fn, int b) {
  KL_CHECK(t->ndim >= 1, KL_ESHAPE, "%s: a row_sparse tensor must have rank >= 1, got 0", fn);
  int64_t rows = t->shape[0];
  KL_CHECK(t->nnz <= rows, KL_EINDEX,
           "%s: %" PRId64 " stored rows exceed the %" PRId64 " rows of the shape", fn, t->nnz, rows);
  KL_TRY(kl_check_buffers(t, fn, t->nnz * kl_row_width(t)));
  const int64_t *ix = t->indices;
  for (int64_t k = 0; k < t->nnz; k++) {
    KL_CHECK(ix[k] >= 0 && ix[k] < rows, KL_EINDEX,
             "%s: indices[%" PRId64 "] = %" PRId64 " out of range for %" PRId64 " rows", fn, k + b,
             shown(ix[k], b), rows);
    KL_CHECK(k == 0 || ix[k] > ix[k - 1], KL_EINDEX,
             "%s: indices not strictly increasing: indices[%" PRId64 "] = %" PRId64
             " after indices[%" PRId64 "] = %" PRId64, fn, k + b, shown(ix[k], b), k - 1 + b,
             shown(ix[k - 1], b));
  }
  return KL_OK;
}

kl_status kl_tensor_check_format(const kl_tensor *t, const char *fn, int msg_base) {
  int b = msg_base ? 1 : 0;
  if (t->device != KL_CPU) return kl_device_refuse(fn, t);
  KL_TRY(kl_shape_check(fn, t->ndim, t->shape));
  switch (t->stype) {
    case KL_STYPE_DEFAULT: return KL_OK;
    case KL_STYPE_CSR: return kl_check_csr(t, fn, b);
    case KL_STYPE_ROW_SPARSE: return kl_check_rsp(t, fn, b);
  }
  return kl_seterr(KL_ESTYPE, "%s: invalid stype %d", fn, (int)t->stype);
}
