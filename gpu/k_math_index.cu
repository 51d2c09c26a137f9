/* k_math_index.cu: the index and layout ops on the device: one_hot (with the CPU's bad-id
 * message), transpose (dense any rank; csr -> csr by a stable sort of the entries by
 * column, so each output row lists the input rows in order, as the CPU's counting scatter),
 * the block copies of concatenate, and retain's row selection (a sort of the requested rows,
 * a membership test per stored row, a scan, a compaction).
 *
 * These move values without arithmetic: every result is the CPU's bits (backend/src/
 * ops_index.c, ops_misc.c, ops_concat.c). Bad input (an id out of range, a row index out of
 * range) sets the smallest bad position in a device scalar by an integer atomicMin; the
 * host reads it and raises the CPU's message. */
#include <stdio.h>

#include "k_math_common.h"

#define KM_ALIGN 256

namespace {

size_t km_align(size_t b) { return (b + KM_ALIGN - 1) / KM_ALIGN * KM_ALIGN; }

__global__ void km_set_i64(int64_t *p, int64_t v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *p = v;
}

/* one_hot's checks of ops_index.c: an integral value, then in [0, C] */
template <typename I> __device__ __forceinline__ double km_id_value(I v) { return (double)v; }

template <typename I>
__global__ void km_one_hot_check(const I *ids, int64_t n, int64_t C, int64_t *bad) {
  KL_GRID_LOOP(k, n) {
    const double v = km_id_value<I>(ids[k]);
    if (!(v == floor(v)) || !(v >= 0 && v <= (double)C))
      atomicMin((unsigned long long *)bad, (unsigned long long)k);
  }
}

template <typename I> __device__ __forceinline__ int64_t km_id_int(I v) { return (int64_t)v; }

template <typename I>
__global__ void km_one_hot_set(const I *ids, int64_t n, int64_t C, float *out) {
  KL_GRID_LOOP(k, n) {
    const double v = km_id_value<I>(ids[k]);
    if (!(v == floor(v)) || !(v >= 0 && v <= (double)C)) continue;
    const int64_t id = km_id_int<I>(ids[k]);
    if (id > 0 && id <= C) out[k * C + id - 1] = 1.0f;
  }
}

struct km_tr {
  int nd;
  int64_t shape[KL_MAX_NDIM]; /* the output's */
  int64_t st[KL_MAX_NDIM];    /* input stride of output axis k */
};

template <typename U> __global__ void km_transpose(const U *x, U *o, int64_t n, km_tr t) {
  KL_GRID_LOOP(i, n) {
    int64_t rem = i, off = 0;
    for (int k = t.nd - 1; k >= 0; k--) {
      const int64_t c = rem % t.shape[k];
      rem /= t.shape[k];
      off += c * t.st[k];
    }
    o[i] = x[off];
  }
}

__global__ void km_row_of(int64_t rows, const int64_t *ptr, int64_t *rowof) {
  KL_GRID_LOOP(r, rows)
  for (int64_t p = ptr[r]; p < ptr[r + 1]; p++) rowof[p] = r;
}

/* rptr[c] = the first sorted entry of column >= c, for c <= cols */
__global__ void km_col_starts(const int64_t *key, int64_t nnz, int64_t cols, int64_t *rptr) {
  KL_GRID_LOOP(c, cols + 1) {
    int64_t lo = 0, hi = nnz;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (key[mid] < c) lo = mid + 1;
      else hi = mid;
    }
    rptr[c] = lo;
  }
}

template <typename U>
__global__ void km_tr_gather(const int64_t *pos, const int64_t *rowof, const U *v, int64_t nnz,
                             int64_t *ridx, U *rv) {
  KL_GRID_LOOP(q, nnz) {
    const int64_t p = pos[q];
    ridx[q] = rowof[p];
    rv[q] = v[p];
  }
}

template <typename U>
__global__ void km_copy_block(const U *src, int64_t srow, int64_t soff, U *dst, int64_t drow,
                              int64_t doff, int64_t c, int64_t n) {
  KL_GRID_LOOP(e, n) {
    const int64_t o = e / c, j = e - o * c;
    dst[o * drow + doff + j] = src[o * srow + soff + j];
  }
}

__global__ void km_i64_shift(const int64_t *src, int64_t add, int64_t *dst, int64_t n) {
  KL_GRID_LOOP(i, n) dst[i] = src[i] + add;
}

__global__ void km_rowlen_add(const int64_t *ptr, int64_t rows, int64_t *cnt) {
  KL_GRID_LOOP(r, rows) cnt[r] += ptr[r + 1] - ptr[r];
}

template <typename U>
__global__ void km_concat1_part(int64_t rows, const int64_t *ptr, const int64_t *ix,
                                const U *v, int64_t c0, int64_t *at, int64_t *ridx, U *rv) {
  KL_GRID_LOOP(r, rows) {
    const int64_t b = ptr[r], e = ptr[r + 1], a = at[r];
    for (int64_t j = b; j < e; j++) {
      ridx[a + j - b] = ix[j] + c0;
      rv[a + j - b] = v[j];
    }
    at[r] = a + (e - b);
  }
}

__global__ void km_rows_check(const int64_t *req, int64_t m, int64_t nrows, int64_t *bad) {
  KL_GRID_LOOP(k, m) {
    if (req[k] < 0 || req[k] >= nrows) atomicMin((unsigned long long *)bad, (unsigned long long)k);
  }
}

__global__ void km_rows_member(const int64_t *idx, int64_t nnz, const int64_t *sreq, int64_t m,
                               int64_t *keep) {
  KL_GRID_LOOP(p, nnz) {
    int64_t lo = 0, hi = m;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (sreq[mid] < idx[p]) lo = mid + 1;
      else hi = mid;
    }
    keep[p] = lo < m && sreq[lo] == idx[p];
  }
}

template <typename T>
__global__ void km_rows_compact(int64_t nnz, int64_t w, const int64_t *keep, const int64_t *pos,
                                const int64_t *idx, const T *v, int64_t *ridx, T *rv) {
  const int64_t ww = w > 0 ? w : 1;
  KL_GRID_LOOP(e, nnz * ww) {
    const int64_t p = e / ww, j = e - p * ww;
    if (!keep[p]) continue;
    const int64_t k = pos[p];
    if (j == 0) ridx[k] = idx[p];
    if (w > 0) rv[k * w + j] = v[p * w + j];
  }
}

template <typename T>
__global__ void km_rows_take(const int64_t *rows, int64_t n, int64_t w, const T *g, T *o) {
  KL_GRID_LOOP(e, n * w) {
    const int64_t k = e / w, j = e - k * w, at = rows[k] * w + j;
    o[at] = g[at];
  }
}

__global__ void km_iota(int64_t *o, int64_t n) {
  KL_GRID_LOOP(i, n) o[i] = i;
}

kl_status km_es(const char *fn, size_t es) {
  if (es == 4 || es == 8) return KL_OK;
  return kl_cuda_seterr(KL_EINVAL, "%s: element size %zu (4 or 8)", fn, es);
}

}  // namespace

/* ------------------------------------------------------------------ launchers */

extern "C" kl_status kl_cuda_math_one_hot(kl_dtype ids_dt, const void *ids, int64_t n, int64_t C,
                                     float *out, int64_t *bad, kl_cuda_stream s) {
  const char *fn = "cuda one_hot";
  kl_status st = km_dtype(fn, ids_dt, 0);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK) return st;
  if (C < 1) return kl_cuda_seterr(KL_EINVAL, "%s: num_classes must be >= 1, got %lld", fn,
                                   (long long)C);
  KL_LAUNCH(km_set_i64, 1, 1, s, bad, n);
  if ((st = kl_cuda_launched(fn)) != KL_OK || n == 0) return st;
  KM_DISPATCH(ids_dt, I, KM_LAUNCH_N(fn, n, km_one_hot_check<I>, (const I *)ids, n, C, bad);
              KM_LAUNCH_N(fn, n, km_one_hot_set<I>, (const I *)ids, n, C, out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_one_hot_error(kl_dtype ids_dt, const void *id, int64_t p,
                                           int64_t C) {
  const double v = ids_dt == KL_INT64     ? (double)*(const int64_t *)id
                   : ids_dt == KL_FLOAT32 ? (double)*(const float *)id
                                          : *(const double *)id;
  if (!(v == floor(v)))
    return kl_cuda_seterr(KL_EINDEX, "one_hot: id %.15g is not an integer at position %lld", v,
                          (long long)(p + 1));
  return kl_cuda_seterr(KL_EINDEX, "one_hot: id %.15g out of range [0, %lld] at position %lld",
                        v, (long long)C, (long long)(p + 1));
}

extern "C" kl_status kl_cuda_math_transpose(size_t es, const void *x, int nd, const int64_t *shape,
                                       void *out, kl_cuda_stream s) {
  const char *fn = "cuda transpose";
  kl_status st = km_es(fn, es);
  if (st != KL_OK) return st;
  if (nd < 0 || nd > KL_MAX_NDIM)
    return kl_cuda_seterr(KL_ESHAPE, "%s: %d dimensions", fn, nd);
  km_tr t;
  int64_t ist[KL_MAX_NDIM], n = 1;
  t.nd = nd;
  for (int k = nd - 1; k >= 0; k--) {
    if (shape[k] < 0)
      return kl_cuda_seterr(KL_ESHAPE, "%s: dimension %lld", fn, (long long)shape[k]);
    ist[k] = k == nd - 1 ? 1 : ist[k + 1] * shape[k + 1];
    n *= shape[k];
  }
  for (int k = 0; k < nd; k++) {
    t.shape[k] = shape[nd - 1 - k];
    t.st[k] = ist[nd - 1 - k];
  }
  if (n == 0) return KL_OK;
  if (es == 4)
    KM_LAUNCH_N(fn, n, km_transpose<uint32_t>, (const uint32_t *)x, (uint32_t *)out, n, t);
  else
    KM_LAUNCH_N(fn, n, km_transpose<uint64_t>, (const uint64_t *)x, (uint64_t *)out, n, t);
  return KL_OK;
}

extern "C" size_t kl_cuda_math_csr_transpose_scratch(int64_t nnz) {
  if (nnz <= 0) return 0;
  return 3 * km_align((size_t)nnz * sizeof(int64_t)) + km_align(kl_cuda_sort_scratch(nnz));
}

extern "C" kl_status kl_cuda_math_csr_transpose(size_t es, int64_t rows, int64_t cols, int64_t nnz,
                                           const int64_t *indptr, const int64_t *indices,
                                           const void *vals, int64_t *rptr, int64_t *ridx,
                                           void *rv, void *scratch, kl_cuda_stream s) {
  const char *fn = "cuda csr_transpose";
  kl_status st = km_es(fn, es);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st == KL_OK) st = km_count(fn, "cols", cols);
  if (st == KL_OK) st = km_count(fn, "nnz", nnz);
  if (st != KL_OK) return st;
  if (nnz == 0) { /* every output row empty */
    KM_LAUNCH_N(fn, cols + 1, km_col_starts, (const int64_t *)NULL, (int64_t)0, cols, rptr);
    return KL_OK;
  }
  const size_t a = km_align((size_t)nnz * sizeof(int64_t));
  char *p = (char *)scratch;
  int64_t *key = (int64_t *)p, *pos = (int64_t *)(p + a), *rowof = (int64_t *)(p + 2 * a);
  void *rest = p + 3 * a;
  KM_LAUNCH_N(fn, rows, km_row_of, rows, indptr, rowof);
  KM_LAUNCH_N(fn, nnz, km_i64_shift, indices, (int64_t)0, key, nnz);
  KM_LAUNCH_N(fn, nnz, km_iota, pos, nnz);
  if ((st = kl_cuda_sort_pairs(key, pos, nnz, cols > 0 ? cols - 1 : 0, rest, s)) != KL_OK)
    return st;
  KM_LAUNCH_N(fn, cols + 1, km_col_starts, (const int64_t *)key, nnz, cols, rptr);
  if (es == 4)
    KM_LAUNCH_N(fn, nnz, km_tr_gather<uint32_t>, (const int64_t *)pos, (const int64_t *)rowof,
                (const uint32_t *)vals, nnz, ridx, (uint32_t *)rv);
  else
    KM_LAUNCH_N(fn, nnz, km_tr_gather<uint64_t>, (const int64_t *)pos, (const int64_t *)rowof,
                (const uint64_t *)vals, nnz, ridx, (uint64_t *)rv);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_copy_block(size_t es, const void *src, int64_t srow, int64_t soff,
                                        void *dst, int64_t drow, int64_t doff, int64_t outer,
                                        int64_t c, kl_cuda_stream s) {
  const char *fn = "cuda copy_block";
  kl_status st = km_es(fn, es);
  if (st == KL_OK) st = km_count(fn, "outer", outer);
  if (st == KL_OK) st = km_count(fn, "c", c);
  const int64_t n = outer * c;
  if (st != KL_OK || n == 0) return st;
  if (es == 4)
    KM_LAUNCH_N(fn, n, km_copy_block<uint32_t>, (const uint32_t *)src, srow, soff,
                (uint32_t *)dst, drow, doff, c, n);
  else
    KM_LAUNCH_N(fn, n, km_copy_block<uint64_t>, (const uint64_t *)src, srow, soff,
                (uint64_t *)dst, drow, doff, c, n);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_i64_shift(const int64_t *src, int64_t add, int64_t *dst,
                                       int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda i64_shift";
  kl_status st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_LAUNCH_N(fn, n, km_i64_shift, src, add, dst, n);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_csr_rowlen_add(const int64_t *indptr, int64_t rows, int64_t *cnt,
                                            kl_cuda_stream s) {
  const char *fn = "cuda csr_rowlen_add";
  kl_status st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  KM_LAUNCH_N(fn, rows, km_rowlen_add, indptr, rows, cnt);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_csr_concat1_part(size_t es, int64_t rows, const int64_t *indptr,
                                              const int64_t *indices, const void *vals,
                                              int64_t c0, int64_t *at, int64_t *ridx, void *rv,
                                              kl_cuda_stream s) {
  const char *fn = "cuda csr_concat";
  kl_status st = km_es(fn, es);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  if (es == 4)
    KM_LAUNCH_N(fn, rows, km_concat1_part<uint32_t>, rows, indptr, indices,
                (const uint32_t *)vals, c0, at, ridx, (uint32_t *)rv);
  else
    KM_LAUNCH_N(fn, rows, km_concat1_part<uint64_t>, rows, indptr, indices,
                (const uint64_t *)vals, c0, at, ridx, (uint64_t *)rv);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rows_check(const int64_t *req, int64_t m, int64_t nrows,
                                        int64_t *bad, kl_cuda_stream s) {
  const char *fn = "cuda rows_check";
  kl_status st = km_count(fn, "m", m);
  if (st != KL_OK) return st;
  KL_LAUNCH(km_set_i64, 1, 1, s, bad, m);
  if ((st = kl_cuda_launched(fn)) != KL_OK || m == 0) return st;
  KM_LAUNCH_N(fn, m, km_rows_check, req, m, nrows, bad);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rows_member(const int64_t *idx, int64_t nnz, const int64_t *sreq,
                                         int64_t m, int64_t *keep, kl_cuda_stream s) {
  const char *fn = "cuda rows_member";
  kl_status st = km_count(fn, "nnz", nnz);
  if (st == KL_OK) st = km_count(fn, "m", m);
  if (st != KL_OK || nnz == 0) return st;
  KM_LAUNCH_N(fn, nnz, km_rows_member, idx, nnz, sreq, m, keep);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rows_compact(kl_dtype dt, int64_t nnz, int64_t w,
                                          const int64_t *keep, const int64_t *pos,
                                          const int64_t *idx, const void *vals, int64_t *ridx,
                                          void *rv, kl_cuda_stream s) {
  const char *fn = "cuda rows_compact";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "nnz", nnz);
  if (st == KL_OK) st = km_count(fn, "w", w);
  if (st != KL_OK || nnz == 0) return st;
  const int64_t ne = nnz * (w > 0 ? w : 1);
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, ne, km_rows_compact<T>, nnz, w, keep, pos, idx,
                                 (const T *)vals, ridx, (T *)rv););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rows_take(kl_dtype dt, const int64_t *rows, int64_t n, int64_t w,
                                       const void *g, void *out, kl_cuda_stream s) {
  const char *fn = "cuda rows_take";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st == KL_OK) st = km_count(fn, "w", w);
  if (st != KL_OK || n * w == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n * w, km_rows_take<T>, rows, n, w, (const T *)g,
                                 (T *)out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_iota(int64_t *out, int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda iota";
  kl_status st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_LAUNCH_N(fn, n, km_iota, out, n);
  return KL_OK;
}
