/* k_layers.cu: the layer ops' kernels on the device (bias_add, masked_mean, global_max_pool,
 * reg_terms) and the small helpers their device entries share (cast, iota, row scatter).
 *
 * Each kernel is its CPU twin's loop (layers/bias_add.c, pooling.c, regularizer.c) with one
 * thread per output element (or column, or (sample, feature) pair) running the CPU's inner
 * loop in the CPU's order: the same double accumulations, the same roundings, so the same
 * bits. reg_terms' two sums run on one thread over the rows in order (the CPU's order); its
 * rows come from a stable sort of the batch's ids (k_sort.cu), as the Embedding backward. */
#include <math.h>

#include "kl_cuda_layers.h"
#include "kl_cuda_rt.h"

#define LAY_ALIGN 256

static size_t lay_align(size_t b) { return (b + LAY_ALIGN - 1) / LAY_ALIGN * LAY_ALIGN; }

/* Element i of a buffer of dtype dt as double (layers_util.h's kl_lu_read). */
__device__ __forceinline__ double lay_rd(const void *p, int dt, int64_t i) {
  if (dt == KL_FLOAT32) return (double)((const float *)p)[i];
  if (dt == KL_FLOAT64) return ((const double *)p)[i];
  return (double)((const int64_t *)p)[i];
}

static kl_status lay_float(const char *fn, const char *what, kl_dtype dt) {
  if (dt == KL_FLOAT32 || dt == KL_FLOAT64) return KL_OK;
  return kl_cuda_seterr(KL_EDTYPE, "%s: %s must be float32 or float64, got %s", fn, what,
                        kl_cuda_dtype_name(dt));
}

static kl_status lay_any(const char *fn, const char *what, kl_dtype dt) {
  if (dt == KL_FLOAT32 || dt == KL_FLOAT64 || dt == KL_INT64) return KL_OK;
  return kl_cuda_seterr(KL_EDTYPE, "%s: %s dtype %d not supported", fn, what, (int)dt);
}

static kl_status lay_sizes(const char *fn, int64_t a, int64_t b, int64_t c) {
  if (a < 0 || b < 0 || c < 0 || (b > 0 && a > INT64_MAX / b) ||
      (c > 0 && b > 0 && a * b > INT64_MAX / c))
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes %lld, %lld, %lld", fn, (long long)a,
                          (long long)b, (long long)c);
  return KL_OK;
}

/* ------------------------------------------------------------------ helpers */

template <typename T> __global__ void k_lay_copy(const T *src, T *dst, int64_t n) {
  KL_GRID_LOOP(i, n) dst[i] = src[i];
}
template <typename T> __global__ void k_lay_cast(int sdt, const void *src, T *dst, int64_t n) {
  KL_GRID_LOOP(i, n) dst[i] = (T)lay_rd(src, sdt, i);
}
static __global__ void k_lay_iota(int64_t *out, int64_t n) { KL_GRID_LOOP(i, n) out[i] = i; }

template <typename T>
__global__ void k_lay_scatter(const int64_t *rows, const T *vals, const int64_t *nu,
                              int64_t bound, int64_t D, T *out) {
  const int64_t n_u = *nu;
  KL_GRID_LOOP(e, bound * D) {
    const int64_t u = e / D, j = e - u * D;
    if (u < n_u) out[rows[u] * D + j] = vals[e];
  }
}

extern "C" kl_status kl_cuda_cast(kl_dtype sdt, const void *src, kl_dtype dt, void *dst,
                                  int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda cast";
  kl_status st;
  if ((st = lay_any(fn, "source", sdt)) != KL_OK || (st = lay_float(fn, "dtype", dt)) != KL_OK ||
      (st = lay_sizes(fn, n, 1, 1)) != KL_OK)
    return st;
  if (n == 0) return KL_OK;
  if (sdt == dt) {
    if (dt == KL_FLOAT32)
      KL_LAUNCH(k_lay_copy<float>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (const float *)src,
                (float *)dst, n);
    else
      KL_LAUNCH(k_lay_copy<double>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (const double *)src,
                (double *)dst, n);
  } else if (dt == KL_FLOAT32) {
    KL_LAUNCH(k_lay_cast<float>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)sdt, src,
              (float *)dst, n);
  } else {
    KL_LAUNCH(k_lay_cast<double>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)sdt, src,
              (double *)dst, n);
  }
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_iota(int64_t *out, int64_t n, kl_cuda_stream s) {
  kl_status st = lay_sizes("cuda iota", n, 1, 1);
  if (st != KL_OK || n == 0) return st;
  KL_LAUNCH(k_lay_iota, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, out, n);
  return kl_cuda_launched("cuda iota");
}

extern "C" kl_status kl_cuda_rows_scatter(kl_dtype dt, const int64_t *rows, const void *vals,
                                          const int64_t *nu, int64_t bound, int64_t D,
                                          void *out, kl_cuda_stream s) {
  const char *fn = "cuda rows_scatter";
  kl_status st;
  if ((st = lay_float(fn, "dtype", dt)) != KL_OK || (st = lay_sizes(fn, bound, D, 1)) != KL_OK)
    return st;
  if (bound * D == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_lay_scatter<float>, kl_cuda_blocks(bound * D), KL_CUDA_BLOCK, s, rows,
              (const float *)vals, nu, bound, D, (float *)out);
  else
    KL_LAUNCH(k_lay_scatter<double>, kl_cuda_blocks(bound * D), KL_CUDA_BLOCK, s, rows,
              (const double *)vals, nu, bound, D, (double *)out);
  return kl_cuda_launched(fn);
}

/* ------------------------------------------------------------------ bias_add */

template <typename T>
__global__ void k_bias_add(const T *x, const T *b, int64_t n, int64_t k, T *y) {
  KL_GRID_LOOP(e, n) y[e] = x[e] + b[e % k];
}

/* One thread a column, down the rows in order: bias_grad's acc[j]. */
template <typename T>
__global__ void k_bias_grad(int gdt, const void *g, int64_t rows, int64_t k, T *db) {
  KL_GRID_LOOP(j, k) {
    double acc = 0;
    for (int64_t r = 0; r < rows; r++) acc += lay_rd(g, gdt, r * k + j);
    db[j] = (T)acc;
  }
}

extern "C" kl_status kl_cuda_bias_add(kl_dtype dt, const void *x, const void *b, int64_t rows,
                                      int64_t k, void *y, kl_cuda_stream s) {
  const char *fn = "cuda bias_add";
  kl_status st;
  if ((st = lay_float(fn, "x", dt)) != KL_OK || (st = lay_sizes(fn, rows, k, 1)) != KL_OK)
    return st;
  const int64_t n = rows * k;
  if (n == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_bias_add<float>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (const float *)x,
              (const float *)b, n, k, (float *)y);
  else
    KL_LAUNCH(k_bias_add<double>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (const double *)x,
              (const double *)b, n, k, (double *)y);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_bias_grad(kl_dtype gdt, const void *g, int64_t rows, int64_t k,
                                       kl_dtype dt, void *db, kl_cuda_stream s) {
  const char *fn = "cuda bias_grad";
  kl_status st;
  if ((st = lay_any(fn, "gradient", gdt)) != KL_OK || (st = lay_float(fn, "bias", dt)) != KL_OK ||
      (st = lay_sizes(fn, rows, k, 1)) != KL_OK)
    return st;
  if (k == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_bias_grad<float>, kl_cuda_blocks(k), KL_CUDA_BLOCK, s, (int)gdt, g, rows, k,
              (float *)db);
  else
    KL_LAUNCH(k_bias_grad<double>, kl_cuda_blocks(k), KL_CUDA_BLOCK, s, (int)gdt, g, rows, k,
              (double *)db);
  return kl_cuda_launched(fn);
}

/* ------------------------------------------------------------------ pooling */

/* pooling.c's kept(): no mask, or the step's id is not 0. */
__device__ __forceinline__ int pool_kept(int idt, const void *ids, int64_t p) {
  return !ids || lay_rd(ids, idt, p) != 0.0;
}

/* 1 / the kept steps of sample b, or 0 (pooling.c's inv_count). */
__device__ __forceinline__ double pool_inv_count(int idt, const void *ids, int64_t b,
                                                 int64_t L) {
  int64_t c = 0;
  for (int64_t l = 0; l < L; l++) c += pool_kept(idt, ids, b * L + l);
  return c > 0 ? 1.0 / (double)c : 0.0;
}

/* One thread a (sample, feature): masked_mean_fwd's acc[j] over the steps. */
template <typename T>
__global__ void k_masked_mean(const T *x, int idt, const void *ids, int64_t n, int64_t L,
                              int64_t D, T *y) {
  KL_GRID_LOOP(e, n * D) {
    const int64_t b = e / D, j = e - b * D;
    double acc = 0;
    for (int64_t l = 0; l < L; l++)
      if (pool_kept(idt, ids, b * L + l)) acc += (double)x[(b * L + l) * D + j];
    y[e] = (T)(acc * pool_inv_count(idt, ids, b, L));
  }
}

template <typename T>
__global__ void k_masked_mean_bwd(int idt, const void *ids, int gdt, const void *g, int64_t n,
                                  int64_t L, int64_t D, T *gx) {
  KL_GRID_LOOP(e, n * D) {
    const int64_t b = e / D, j = e - b * D;
    const double v = lay_rd(g, gdt, e) * pool_inv_count(idt, ids, b, L);
    for (int64_t l = 0; l < L; l++)
      gx[(b * L + l) * D + j] = pool_kept(idt, ids, b * L + l) ? (T)v : (T)0;
  }
}

/* pooling.c's max_at: the max over the kept steps (the first NaN wins) and its ties. */
template <typename T>
__device__ double pool_max_at(const T *x, int idt, const void *ids, int64_t b, int64_t j,
                              int64_t L, int64_t D, int64_t *ties) {
  double best = 0;
  int any = 0;
  for (int64_t l = 0; l < L; l++) {
    if (!pool_kept(idt, ids, b * L + l)) continue;
    const double v = (double)x[(b * L + l) * D + j];
    if (!any || v > best || v != v) best = any && best != best ? best : v;
    any = 1;
  }
  int64_t c = 0;
  for (int64_t l = 0; any && l < L; l++)
    c += pool_kept(idt, ids, b * L + l) && (double)x[(b * L + l) * D + j] == best;
  *ties = c;
  return any ? best : (ids ? 0.0 : -INFINITY);
}

template <typename T>
__global__ void k_max_pool(const T *x, int idt, const void *ids, int64_t n, int64_t L,
                           int64_t D, T *y) {
  KL_GRID_LOOP(e, n * D) {
    const int64_t b = e / D, j = e - b * D;
    int64_t ties;
    y[e] = (T)pool_max_at<T>(x, idt, ids, b, j, L, D, &ties);
  }
}

template <typename T>
__global__ void k_max_pool_bwd(const T *x, int idt, const void *ids, int gdt, const void *g,
                               int64_t n, int64_t L, int64_t D, T *gx) {
  KL_GRID_LOOP(e, n * D) {
    const int64_t b = e / D, j = e - b * D;
    int64_t ties;
    const double best = pool_max_at<T>(x, idt, ids, b, j, L, D, &ties);
    const T share = ties ? (T)(1.0 / (double)ties) * (T)lay_rd(g, gdt, e) : (T)0;
    for (int64_t l = 0; l < L; l++) {
      const int64_t p = (b * L + l) * D + j;
      gx[p] = ties && pool_kept(idt, ids, b * L + l) && (double)x[p] == best ? share : (T)0;
    }
  }
}

static kl_status pool_args(const char *fn, kl_dtype dt, kl_dtype idt, const void *ids,
                           int64_t n, int64_t L, int64_t D) {
  kl_status st = lay_float(fn, "x", dt);
  if (st == KL_OK && ids) st = lay_any(fn, "ids", idt);
  if (st == KL_OK) st = lay_sizes(fn, n, L, D);
  return st;
}

extern "C" kl_status kl_cuda_masked_mean(kl_dtype dt, const void *x, kl_dtype ids_dt,
                                         const void *ids, int64_t n, int64_t L, int64_t D,
                                         void *y, kl_cuda_stream s) {
  const char *fn = "cuda masked_mean";
  kl_status st = pool_args(fn, dt, ids_dt, ids, n, L, D);
  if (st != KL_OK || n * D == 0) return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_masked_mean<float>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (const float *)x,
              (int)ids_dt, ids, n, L, D, (float *)y);
  else
    KL_LAUNCH(k_masked_mean<double>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (const double *)x,
              (int)ids_dt, ids, n, L, D, (double *)y);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_masked_mean_backward(kl_dtype dt, kl_dtype ids_dt,
                                                  const void *ids, kl_dtype gdt, const void *g,
                                                  int64_t n, int64_t L, int64_t D, void *gx,
                                                  kl_cuda_stream s) {
  const char *fn = "cuda masked_mean_backward";
  kl_status st = pool_args(fn, dt, ids_dt, ids, n, L, D);
  if (st == KL_OK) st = lay_any(fn, "gradient", gdt);
  if (st != KL_OK || n * D == 0) return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_masked_mean_bwd<float>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (int)ids_dt,
              ids, (int)gdt, g, n, L, D, (float *)gx);
  else
    KL_LAUNCH(k_masked_mean_bwd<double>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (int)ids_dt,
              ids, (int)gdt, g, n, L, D, (double *)gx);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_global_max_pool(kl_dtype dt, const void *x, kl_dtype ids_dt,
                                             const void *ids, int64_t n, int64_t L, int64_t D,
                                             void *y, kl_cuda_stream s) {
  const char *fn = "cuda global_max_pool";
  kl_status st = pool_args(fn, dt, ids_dt, ids, n, L, D);
  if (st != KL_OK || n * D == 0) return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_max_pool<float>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (const float *)x,
              (int)ids_dt, ids, n, L, D, (float *)y);
  else
    KL_LAUNCH(k_max_pool<double>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (const double *)x,
              (int)ids_dt, ids, n, L, D, (double *)y);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_global_max_pool_backward(kl_dtype dt, const void *x,
                                                      kl_dtype ids_dt, const void *ids,
                                                      kl_dtype gdt, const void *g, int64_t n,
                                                      int64_t L, int64_t D, void *gx,
                                                      kl_cuda_stream s) {
  const char *fn = "cuda global_max_pool_backward";
  kl_status st = pool_args(fn, dt, ids_dt, ids, n, L, D);
  if (st == KL_OK) st = lay_any(fn, "gradient", gdt);
  if (st != KL_OK || n * D == 0) return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_max_pool_bwd<float>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (const float *)x,
              (int)ids_dt, ids, (int)gdt, g, n, L, D, (float *)gx);
  else
    KL_LAUNCH(k_max_pool_bwd<double>, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s,
              (const double *)x, (int)ids_dt, ids, (int)gdt, g, n, L, D, (double *)gx);
  return kl_cuda_launched(fn);
}

/* ------------------------------------------------------------------ reg_terms */

static __global__ void k_reg_set(int64_t *p, int64_t v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *p = v;
}

/* key[p] = 1 + the row entry p names, or 0 (padding, and bad ids: flagged). */
static __global__ void k_reg_keys(const int64_t *cols, int idt, const void *ids, int64_t m,
                                  int64_t R, int64_t *key, int64_t *val, int64_t *bad) {
  KL_GRID_LOOP(p, m) {
    int64_t k = 0;
    if (cols) {
      k = cols[p] + 1;
    } else {
      const double v = lay_rd(ids, idt, p);
      if (!(v == floor(v) && v >= 0 && v <= (double)R))
        atomicMin((unsigned long long *)bad, (unsigned long long)p);
      else
        k = (int64_t)v;
    }
    key[p] = k;
    val[p] = p;
  }
}

/* Storage position of row r in a weight storing the sorted rows widx[0..nnz) (NULL: all). */
__device__ __forceinline__ int64_t reg_stored_at(const int64_t *widx, int64_t nnz, int64_t R,
                                                 int64_t r) {
  if (!widx || nnz == R) return r;
  int64_t lo = 0, hi = nnz;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (widx[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return lo < nnz && widx[lo] == r ? lo : -1;
}

/* head[t] = 1 where sorted key t starts a run of a named row the weight stores. */
static __global__ void k_reg_heads(const int64_t *key, int64_t m, const int64_t *widx,
                                   int64_t nnz, int64_t R, int64_t *head) {
  KL_GRID_LOOP(t, m)
  head[t] = key[t] != 0 && (t == 0 || key[t] != key[t - 1]) &&
            reg_stored_at(widx, nnz, R, key[t] - 1) >= 0;
}

static __global__ void k_reg_compact(const int64_t *key, const int64_t *head, const int64_t *seg,
                                     int64_t m, const int64_t *widx, int64_t nnz, int64_t R,
                                     int64_t *rows, int64_t *pos, int64_t *nrows) {
  KL_GRID_LOOP(t, m) {
    if (head[t]) {
      rows[seg[t]] = key[t] - 1;
      pos[seg[t]] = reg_stored_at(widx, nnz, R, key[t] - 1);
    }
    if (t == m - 1) *nrows = seg[m];
  }
}

/* Scratch: key, val, head (m each), seg (m + 1), then the sort's and the scan's (shared). */
extern "C" size_t kl_cuda_reg_rows_scratch(int64_t m) {
  if (m <= 0) return 0;
  const size_t a = lay_align((size_t)m * sizeof(int64_t));
  const size_t b = lay_align((size_t)(m + 1) * sizeof(int64_t));
  const size_t so = kl_cuda_sort_scratch(m), sc = kl_cuda_scan_scratch(m);
  return 3 * a + b + lay_align(so > sc ? so : sc);
}

extern "C" kl_status kl_cuda_reg_rows(const int64_t *cols, kl_dtype ids_dt, const void *ids,
                                      int64_t m, int64_t R, const int64_t *w_idx, int64_t w_nnz,
                                      void *scratch, int64_t *rows, int64_t *pos,
                                      int64_t *nrows, int64_t *bad, kl_cuda_stream s) {
  const char *fn = "cuda reg_rows";
  kl_status st = lay_sizes(fn, m, 1, 1);
  if (st == KL_OK && !cols) st = lay_any(fn, "ids", ids_dt);
  if (st == KL_OK && (R < 0 || (w_idx && (w_nnz < 0 || w_nnz > R))))
    st = kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes R=%lld nnz=%lld", fn, (long long)R,
                        (long long)w_nnz);
  if (st != KL_OK) return st;
  KL_LAUNCH(k_reg_set, 1, 1, s, bad, m);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  KL_LAUNCH(k_reg_set, 1, 1, s, nrows, (int64_t)0);
  if ((st = kl_cuda_launched(fn)) != KL_OK || m == 0) return st;
  const size_t a = lay_align((size_t)m * sizeof(int64_t));
  const size_t b = lay_align((size_t)(m + 1) * sizeof(int64_t));
  char *p = (char *)scratch;
  int64_t *key = (int64_t *)p, *val = (int64_t *)(p + a), *head = (int64_t *)(p + 2 * a);
  int64_t *seg = (int64_t *)(p + 3 * a);
  void *rest = p + 3 * a + b;
  KL_LAUNCH(k_reg_keys, kl_cuda_blocks(m), KL_CUDA_BLOCK, s, cols, (int)ids_dt, ids, m, R, key,
            val, bad);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_sort_pairs(key, val, m, R, rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_reg_heads, kl_cuda_blocks(m), KL_CUDA_BLOCK, s, key, m, w_idx, w_nnz, R, head);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_scan_i64(head, seg, m, rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_reg_compact, kl_cuda_blocks(m), KL_CUDA_BLOCK, s, key, head, seg, m, w_idx, w_nnz,
            R, rows, pos, nrows);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_reg_id_error(double v, int64_t p, int64_t R) {
  return kl_cuda_seterr(KL_EINDEX, "reg_terms: id %.15g at position %lld is not an integer in [0, %lld]",
                        v, (long long)(p + 1), (long long)R);
}

/* reg_fwd's loop on one thread: rows in order, each row's values in order. */
template <typename T>
__global__ void k_reg_sum(const T *w, int64_t rw, const int64_t *pos, const int64_t *nrows,
                          int64_t n, T *out) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const int64_t cnt = nrows ? *nrows : n;
  double s1 = 0, s2 = 0;
  for (int64_t i = 0; i < cnt; i++) {
    const T *row = w + (pos ? pos[i] : i) * rw;
    for (int64_t j = 0; j < rw; j++) {
      const double v = (double)row[j];
      s1 += fabs(v);
      s2 += v * v;
    }
  }
  out[0] = (T)s1;
  out[1] = (T)s2;
}

template <typename T>
__global__ void k_reg_grad(const T *w, int64_t rw, const int64_t *rows, const int64_t *pos,
                           const int64_t *nrows, int64_t n, int gdt, const void *gout,
                           int sparse, T *g) {
  const int64_t cnt = nrows ? *nrows : n;
  const double c1 = lay_rd(gout, gdt, 0), c2 = 2.0 * lay_rd(gout, gdt, 1);
  KL_GRID_LOOP(e, n * rw) {
    const int64_t k = e / rw, j = e - k * rw;
    if (k >= cnt) continue;
    const double v = (double)w[(pos ? pos[k] : k) * rw + j];
    const double sg = v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
    g[(sparse ? k : (rows ? rows[k] : k)) * rw + j] = (T)(c1 * sg + c2 * v);
  }
}

static __global__ void k_reg_idx(const int64_t *rows, const int64_t *nrows, int64_t n,
                                 int64_t *g_idx) {
  const int64_t cnt = nrows ? *nrows : n;
  KL_GRID_LOOP(k, n) if (k < cnt) g_idx[k] = rows ? rows[k] : k;
}

extern "C" kl_status kl_cuda_reg_terms(kl_dtype dt, const void *w, int64_t rw,
                                       const int64_t *pos, const int64_t *nrows_dev, int64_t n,
                                       void *out, kl_cuda_stream s) {
  const char *fn = "cuda reg_terms";
  kl_status st;
  if ((st = lay_float(fn, "weight", dt)) != KL_OK || (st = lay_sizes(fn, n, rw, 1)) != KL_OK)
    return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_reg_sum<float>, 1, 1, s, (const float *)w, rw, pos, nrows_dev, n, (float *)out);
  else
    KL_LAUNCH(k_reg_sum<double>, 1, 1, s, (const double *)w, rw, pos, nrows_dev, n,
              (double *)out);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_reg_terms_backward(kl_dtype dt, const void *w, int64_t rw,
                                                const int64_t *rows, const int64_t *pos,
                                                const int64_t *nrows_dev, int64_t n,
                                                kl_dtype gdt, const void *gout, int sparse,
                                                void *g, int64_t *g_idx, kl_cuda_stream s) {
  const char *fn = "cuda reg_terms_backward";
  kl_status st;
  if ((st = lay_float(fn, "weight", dt)) != KL_OK || (st = lay_any(fn, "gout", gdt)) != KL_OK ||
      (st = lay_sizes(fn, n, rw, 1)) != KL_OK)
    return st;
  if (n == 0) return KL_OK;
  if (sparse) {
    KL_LAUNCH(k_reg_idx, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, rows, nrows_dev, n, g_idx);
    if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  }
  if (n * rw == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_reg_grad<float>, kl_cuda_blocks(n * rw), KL_CUDA_BLOCK, s, (const float *)w, rw,
              rows, pos, nrows_dev, n, (int)gdt, gout, sparse, (float *)g);
  else
    KL_LAUNCH(k_reg_grad<double>, kl_cuda_blocks(n * rw), KL_CUDA_BLOCK, s, (const double *)w,
              rw, rows, pos, nrows_dev, n, (int)gdt, gout, sparse, (double *)g);
  return kl_cuda_launched(fn);
}
