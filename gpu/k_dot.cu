/* k_dot.cu: the dot op's own kernels (kl_cuda_dot.h): csr . B as a gather (a row_sparse b,
 * or any b), csr^T . B -> row_sparse over the touched columns, dense . csr, and the storage
 * conversions the op needs on the device.
 *
 * Deterministic and the CPU's bits: one thread per output element sums its products from +0
 * in the CPU's order. csr^T . B and dense . csr group the entries by column with the stable
 * radix sort (k_sort.cu), so each column's entries stay in entry order (row order), which is
 * the order every CPU path of ops_dot*.c sums in (the sorted gather, the column-map
 * accumulators, dense_csr's scatter). No float atomics, no __shared__: every kernel runs
 * host-emulated (kl_cuda_emu.h). The only host wait is the caller's, between the two phases
 * of a row_sparse output (its row count). */
#include "kl_cuda_dot.h"
#include "kl_cuda_rt.h"

#define DOT_ALIGN 256

static size_t dot_align(size_t b) { return (b + DOT_ALIGN - 1) / DOT_ALIGN * DOT_ALIGN; }
static size_t dot_i64s(int64_t n) { return dot_align((size_t)(n > 0 ? n : 0) * sizeof(int64_t)); }

/* The row of entry j of a csr with R rows: the last i with indptr[i] <= j (empty rows skip). */
__device__ __forceinline__ int64_t dot_row_of(const int64_t *ip, int64_t R, int64_t j) {
  int64_t lo = 0, hi = R + 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (ip[mid] <= j) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/* Position of row r among the n sorted rows idx, or -1. */
__device__ __forceinline__ int64_t dot_find(const int64_t *idx, int64_t n, int64_t r) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (idx[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && idx[lo] == r ? lo : -1;
}

/* First position p in sorted key[0..n) with key[p] >= v. */
__device__ __forceinline__ int64_t dot_lower(const int64_t *key, int64_t n, int64_t v) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (key[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static kl_status dot_float(const char *fn, kl_dtype dt) {
  if (dt == KL_FLOAT32 || dt == KL_FLOAT64) return KL_OK;
  return kl_cuda_seterr(KL_EDTYPE, "%s: dtype %s, expected float32 or float64", fn,
                        kl_cuda_dtype_name(dt));
}

static __global__ void k_dot_set(int64_t *p, int64_t v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *p = v;
}

template <typename W> __global__ void k_dot_zero(W *p, int64_t n) {
  KL_GRID_LOOP(i, n) p[i] = (W)0;
}

extern "C" kl_status kl_cuda_dot_zero(kl_dtype dt, void *out, int64_t n, kl_cuda_stream s) {
  if (n <= 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_dot_zero<uint32_t>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (uint32_t *)out, n);
  else
    KL_LAUNCH(k_dot_zero<uint64_t>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (uint64_t *)out, n);
  return kl_cuda_launched("cuda dot zero");
}

/* ------------------------------------------------------------------ csr . B */

/* map[j] = the stored position of column indices[j] in a row_sparse b, or -1. */
static __global__ void k_dot_bmap(const int64_t *indices, int64_t nnz, const int64_t *bidx,
                                  int64_t bnnz, int64_t *map) {
  KL_GRID_LOOP(j, nnz) map[j] = dot_find(bidx, bnnz, indices[j]);
}

template <typename T>
__global__ void k_dot_gather(int64_t M, int64_t N, const int64_t *ip, const int64_t *rows,
                             const T *av, const T *B, T *out) {
  KL_GRID_LOOP(e, M * N) {
    const int64_t i = e / N, k = e - i * N;
    T acc = (T)0;
    for (int64_t j = ip[i]; j < ip[i + 1]; j++) {
      const int64_t r = rows[j];
      if (r >= 0) acc += av[j] * B[r * N + k];
    }
    out[e] = acc;
  }
}

extern "C" size_t kl_cuda_dot_csr_gather_scratch(int64_t nnz, int b_sparse) {
  return b_sparse ? dot_i64s(nnz) : 0;
}

extern "C" kl_status kl_cuda_dot_csr_gather(kl_dtype dt, int64_t M, int64_t N,
                                            const int64_t *indptr, const int64_t *indices,
                                            const void *vals, int64_t nnz,
                                            const int64_t *b_idx, int64_t b_nnz, const void *B,
                                            void *scratch, void *out, kl_cuda_stream s) {
  const char *fn = "cuda dot csr.x";
  kl_status st = dot_float(fn, dt);
  if (st != KL_OK) return st;
  if (M < 0 || N < 0 || nnz < 0 || b_nnz < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes M=%lld N=%lld nnz=%lld", fn, (long long)M,
                          (long long)N, (long long)nnz);
  if (M == 0 || N == 0) return KL_OK;
  const int64_t *rows = indices;
  if (b_idx && nnz > 0) {
    int64_t *map = (int64_t *)scratch;
    KL_LAUNCH(k_dot_bmap, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, indices, nnz, b_idx, b_nnz, map);
    if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
    rows = map;
  }
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_dot_gather<float>, kl_cuda_blocks(M * N), KL_CUDA_BLOCK, s, M, N, indptr, rows,
              (const float *)vals, (const float *)B, (float *)out);
  else
    KL_LAUNCH(k_dot_gather<double>, kl_cuda_blocks(M * N), KL_CUDA_BLOCK, s, M, N, indptr, rows,
              (const double *)vals, (const double *)B, (double *)out);
  return kl_cuda_launched(fn);
}

/* ------------------------------------------------------------------ csr^T . B */

/* The csr^T scratch: key, pos, brow, head (n each), seg, gs (n + 1 each), then the sort's
 * and the scan's scratch (the sort is done before the scan starts: they share it). */
struct csrT_layout {
  int64_t *key, *pos, *brow, *head, *seg, *gs;
  void *rest;
};

static csrT_layout csrT_at(void *scratch, int64_t n) {
  const size_t a = dot_i64s(n), b = dot_i64s(n + 1);
  char *p = (char *)scratch;
  csrT_layout l;
  l.key = (int64_t *)p;
  l.pos = (int64_t *)(p + a);
  l.brow = (int64_t *)(p + 2 * a);
  l.head = (int64_t *)(p + 3 * a);
  l.seg = (int64_t *)(p + 4 * a);
  l.gs = (int64_t *)(p + 4 * a + b);
  l.rest = p + 4 * a + 2 * b;
  return l;
}

extern "C" size_t kl_cuda_dot_csrT_scratch(int64_t nnz) {
  if (nnz <= 0) return 0;
  const size_t so = kl_cuda_sort_scratch(nnz), sc = kl_cuda_scan_scratch(nnz);
  return 4 * dot_i64s(nnz) + 2 * dot_i64s(nnz + 1) + dot_align(so > sc ? so : sc);
}

/* key[j] = column of entry j, or C when b does not store its row (sorted last, skipped);
 * brow[j] = the row of b's storage entry j multiplies. */
static __global__ void k_csrT_keys(const int64_t *ip, int64_t R, int64_t C,
                                   const int64_t *indices, int64_t n, const int64_t *bidx,
                                   int64_t bnnz, int64_t *key, int64_t *pos, int64_t *brow) {
  KL_GRID_LOOP(j, n) {
    const int64_t i = dot_row_of(ip, R, j);
    const int64_t r = bidx ? dot_find(bidx, bnnz, i) : i;
    brow[j] = r;
    key[j] = r >= 0 ? indices[j] : C;
    pos[j] = j;
  }
}

static __global__ void k_csrT_heads(const int64_t *key, int64_t n, int64_t C, int64_t *head) {
  KL_GRID_LOOP(t, n) head[t] = key[t] != C && (t == 0 || key[t] != key[t - 1]);
}

/* gs[u] = where column segment u starts; gs[nu] = the end of the kept entries; *nu. */
static __global__ void k_csrT_starts(const int64_t *key, const int64_t *head, const int64_t *seg,
                                     int64_t n, int64_t C, int64_t *gs, int64_t *nu) {
  KL_GRID_LOOP(t, n) {
    if (head[t]) gs[seg[t]] = t;
    if (key[t] != C && (t == n - 1 || key[t + 1] == C)) gs[seg[n]] = t + 1;
    if (t == n - 1) *nu = seg[n];
  }
}

extern "C" kl_status kl_cuda_dot_csrT_plan(int64_t R, int64_t C, const int64_t *indptr,
                                           const int64_t *indices, int64_t nnz,
                                           const int64_t *b_idx, int64_t b_nnz, void *scratch,
                                           int64_t *nu, kl_cuda_stream s) {
  const char *fn = "cuda dot csrT";
  if (R < 0 || C < 0 || nnz < 0 || b_nnz < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes R=%lld C=%lld nnz=%lld", fn, (long long)R,
                          (long long)C, (long long)nnz);
  KL_LAUNCH(k_dot_set, 1, 1, s, nu, (int64_t)0);
  kl_status st = kl_cuda_launched(fn);
  if (st != KL_OK || nnz == 0) return st;
  const csrT_layout l = csrT_at(scratch, nnz);
  KL_LAUNCH(k_csrT_keys, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, indptr, R, C, indices, nnz,
            b_idx, b_nnz, l.key, l.pos, l.brow);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_sort_pairs(l.key, l.pos, nnz, C, l.rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_csrT_heads, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, l.key, nnz, C, l.head);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_scan_i64(l.head, l.seg, nnz, l.rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_csrT_starts, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, l.key, l.head, l.seg, nnz, C,
            l.gs, nu);
  return kl_cuda_launched(fn);
}

static __global__ void k_csrT_rows(const int64_t *key, const int64_t *gs, int64_t nu,
                                   int64_t *rows) {
  KL_GRID_LOOP(u, nu) rows[u] = key[gs[u]];
}

template <typename T>
__global__ void k_csrT_segsum(const int64_t *pos, const int64_t *brow, const int64_t *gs,
                              int64_t nu, int64_t N, const T *av, const T *B, T *vals) {
  KL_GRID_LOOP(e, nu * N) {
    const int64_t u = e / N, k = e - u * N;
    T acc = (T)0;
    for (int64_t t = gs[u]; t < gs[u + 1]; t++) {
      const int64_t j = pos[t];
      acc += av[j] * B[brow[j] * N + k];
    }
    vals[e] = acc;
  }
}

extern "C" kl_status kl_cuda_dot_csrT_sum(kl_dtype dt, int64_t nnz, int64_t N, const void *avals,
                                          const void *B, const void *scratch, int64_t nu,
                                          int64_t *rows, void *vals, kl_cuda_stream s) {
  const char *fn = "cuda dot csrT";
  kl_status st = dot_float(fn, dt);
  if (st != KL_OK) return st;
  if (nu < 0 || nu > nnz || N < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes nu=%lld nnz=%lld N=%lld", fn,
                          (long long)nu, (long long)nnz, (long long)N);
  if (nu == 0) return KL_OK;
  const csrT_layout l = csrT_at((void *)scratch, nnz);
  KL_LAUNCH(k_csrT_rows, kl_cuda_blocks(nu), KL_CUDA_BLOCK, s, l.key, l.gs, nu, rows);
  if ((st = kl_cuda_launched(fn)) != KL_OK || N == 0) return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_csrT_segsum<float>, kl_cuda_blocks(nu * N), KL_CUDA_BLOCK, s, l.pos, l.brow,
              l.gs, nu, N, (const float *)avals, (const float *)B, (float *)vals);
  else
    KL_LAUNCH(k_csrT_segsum<double>, kl_cuda_blocks(nu * N), KL_CUDA_BLOCK, s, l.pos, l.brow,
              l.gs, nu, N, (const double *)avals, (const double *)B, (double *)vals);
  return kl_cuda_launched(fn);
}

/* ------------------------------------------------------------------ dense . csr */

/* Scratch: key, pos, krow (nnz each), cp (N + 1), the sort's scratch. */
extern "C" size_t kl_cuda_dot_dense_csr_scratch(int64_t nnz, int64_t N) {
  if (nnz <= 0) return 0;
  return 3 * dot_i64s(nnz) + dot_i64s(N + 1) + dot_align(kl_cuda_sort_scratch(nnz));
}

static __global__ void k_dcsr_keys(const int64_t *bidx, int64_t n, int64_t *key, int64_t *pos) {
  KL_GRID_LOOP(j, n) {
    key[j] = bidx[j];
    pos[j] = j;
  }
}

/* krow[t] = the row (k) of sorted entry t; cp[c] = where column c's entries start. */
static __global__ void k_dcsr_rows(const int64_t *bptr, int64_t K, const int64_t *pos,
                                   int64_t n, int64_t *krow) {
  KL_GRID_LOOP(t, n) krow[t] = dot_row_of(bptr, K, pos[t]);
}

static __global__ void k_dcsr_colptr(const int64_t *key, int64_t n, int64_t N, int64_t *cp) {
  KL_GRID_LOOP(c, N + 1) cp[c] = dot_lower(key, n, c);
}

template <typename T>
__global__ void k_dcsr_sum(int64_t M, int64_t K, int ta, const T *A, int64_t N,
                           const int64_t *cp, const int64_t *pos, const int64_t *krow,
                           const T *bv, T *out) {
  KL_GRID_LOOP(e, M * N) {
    const int64_t i = e / N, c = e - i * N;
    T acc = (T)0;
    for (int64_t t = cp[c]; t < cp[c + 1]; t++) {
      const int64_t k = krow[t];
      const T aik = ta ? A[k * M + i] : A[i * K + k];
      acc += aik * bv[pos[t]];
    }
    out[e] = acc;
  }
}

extern "C" kl_status kl_cuda_dot_dense_csr(kl_dtype dt, int64_t M, int64_t K, int ta,
                                           const void *A, int64_t N, const int64_t *bptr,
                                           const int64_t *bidx, const void *bvals, int64_t nnz,
                                           void *scratch, void *out, kl_cuda_stream s) {
  const char *fn = "cuda dot dense.csr";
  kl_status st = dot_float(fn, dt);
  if (st != KL_OK) return st;
  if (M < 0 || K < 0 || N < 0 || nnz < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes M=%lld K=%lld N=%lld nnz=%lld", fn,
                          (long long)M, (long long)K, (long long)N, (long long)nnz);
  if (M == 0 || N == 0) return KL_OK;
  if (nnz == 0) return kl_cuda_dot_zero(dt, out, M * N, s);
  char *p = (char *)scratch;
  const size_t a = dot_i64s(nnz);
  int64_t *key = (int64_t *)p, *pos = (int64_t *)(p + a), *krow = (int64_t *)(p + 2 * a);
  int64_t *cp = (int64_t *)(p + 3 * a);
  void *rest = p + 3 * a + dot_i64s(N + 1);
  KL_LAUNCH(k_dcsr_keys, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, bidx, nnz, key, pos);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_sort_pairs(key, pos, nnz, N - 1, rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_dcsr_rows, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, bptr, K, pos, nnz, krow);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  KL_LAUNCH(k_dcsr_colptr, kl_cuda_blocks(N + 1), KL_CUDA_BLOCK, s, key, nnz, N, cp);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_dcsr_sum<float>, kl_cuda_blocks(M * N), KL_CUDA_BLOCK, s, M, K, ta,
              (const float *)A, N, cp, pos, krow, (const float *)bvals, (float *)out);
  else
    KL_LAUNCH(k_dcsr_sum<double>, kl_cuda_blocks(M * N), KL_CUDA_BLOCK, s, M, K, ta,
              (const double *)A, N, cp, pos, krow, (const double *)bvals, (double *)out);
  return kl_cuda_launched(fn);
}

/* ------------------------------------------------------------------ conversions */

template <typename T>
__global__ void k_csr_scatter(const int64_t *ip, int64_t R, int64_t cols,
                              const int64_t *indices, const T *v, int64_t n, T *out) {
  KL_GRID_LOOP(j, n) out[dot_row_of(ip, R, j) * cols + indices[j]] = v[j];
}

extern "C" kl_status kl_cuda_dot_csr_to_dense(kl_dtype dt, int64_t rows, int64_t cols,
                                              const int64_t *indptr, const int64_t *indices,
                                              const void *vals, int64_t nnz, void *out,
                                              kl_cuda_stream s) {
  const char *fn = "cuda csr to dense";
  kl_status st = dot_float(fn, dt);
  if (st != KL_OK) return st;
  if (rows < 0 || cols < 0 || nnz < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad shape (%lld, %lld) nnz=%lld", fn,
                          (long long)rows, (long long)cols, (long long)nnz);
  if ((st = kl_cuda_dot_zero(dt, out, rows * cols, s)) != KL_OK) return st;
  if (nnz == 0 || cols == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_csr_scatter<float>, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, indptr, rows, cols,
              indices, (const float *)vals, nnz, (float *)out);
  else
    KL_LAUNCH(k_csr_scatter<double>, kl_cuda_blocks(nnz), KL_CUDA_BLOCK, s, indptr, rows, cols,
              indices, (const double *)vals, nnz, (double *)out);
  return kl_cuda_launched(fn);
}

template <typename T>
__global__ void k_rsp_scatter(const int64_t *idx, int64_t n, int64_t w, const T *v, T *out) {
  KL_GRID_LOOP(e, n * w) {
    const int64_t r = e / w, k = e - r * w;
    out[idx[r] * w + k] = v[e];
  }
}

extern "C" kl_status kl_cuda_dot_rsp_to_dense(kl_dtype dt, int64_t rows, int64_t w,
                                              const int64_t *idx, int64_t nnz, const void *vals,
                                              void *out, kl_cuda_stream s) {
  const char *fn = "cuda row_sparse to dense";
  kl_status st = dot_float(fn, dt);
  if (st != KL_OK) return st;
  if (rows < 0 || w < 0 || nnz < 0 || nnz > rows)
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes rows=%lld w=%lld nnz=%lld", fn,
                          (long long)rows, (long long)w, (long long)nnz);
  if ((st = kl_cuda_dot_zero(dt, out, rows * w, s)) != KL_OK) return st;
  if (nnz == 0 || w == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_rsp_scatter<float>, kl_cuda_blocks(nnz * w), KL_CUDA_BLOCK, s, idx, nnz, w,
              (const float *)vals, (float *)out);
  else
    KL_LAUNCH(k_rsp_scatter<double>, kl_cuda_blocks(nnz * w), KL_CUDA_BLOCK, s, idx, nnz, w,
              (const double *)vals, (double *)out);
  return kl_cuda_launched(fn);
}

/* Scratch: flag (rows), pos (rows + 1), the scan's scratch. */
extern "C" size_t kl_cuda_dot_dense_to_rsp_scratch(int64_t rows) {
  if (rows <= 0) return 0;
  return dot_i64s(rows) + dot_i64s(rows + 1) + dot_align(kl_cuda_scan_scratch(rows));
}

template <typename T>
__global__ void k_row_nonzero(const T *x, int64_t rows, int64_t w, int64_t *flag) {
  KL_GRID_LOOP(r, rows) {
    int64_t f = 0;
    for (int64_t k = 0; k < w && !f; k++) f = x[r * w + k] != (T)0;
    flag[r] = f;
  }
}

static __global__ void k_count_of(const int64_t *pos, int64_t rows, int64_t *n) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *n = pos[rows];
}

extern "C" kl_status kl_cuda_dot_dense_to_rsp_count(kl_dtype dt, int64_t rows, int64_t w,
                                                    const void *x, void *scratch, int64_t *n,
                                                    kl_cuda_stream s) {
  const char *fn = "cuda dense to row_sparse";
  kl_status st = dot_float(fn, dt);
  if (st != KL_OK) return st;
  if (rows < 0 || w < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes rows=%lld w=%lld", fn, (long long)rows,
                          (long long)w);
  if (rows == 0) {
    KL_LAUNCH(k_dot_set, 1, 1, s, n, (int64_t)0);
    return kl_cuda_launched(fn);
  }
  int64_t *flag = (int64_t *)scratch, *pos = (int64_t *)((char *)scratch + dot_i64s(rows));
  void *rest = (char *)scratch + dot_i64s(rows) + dot_i64s(rows + 1);
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_row_nonzero<float>, kl_cuda_blocks(rows), KL_CUDA_BLOCK, s, (const float *)x,
              rows, w, flag);
  else
    KL_LAUNCH(k_row_nonzero<double>, kl_cuda_blocks(rows), KL_CUDA_BLOCK, s, (const double *)x,
              rows, w, flag);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_scan_i64(flag, pos, rows, rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_count_of, 1, 1, s, pos, rows, n);
  return kl_cuda_launched(fn);
}

template <typename T>
__global__ void k_rows_keep(const T *x, int64_t rows, int64_t w, const int64_t *flag,
                            const int64_t *pos, int64_t *idx, T *vals) {
  KL_GRID_LOOP(e, rows * (w > 0 ? w : 1)) {
    const int64_t ww = w > 0 ? w : 1, r = e / ww, k = e - r * ww;
    if (!flag[r]) continue;
    if (k == 0) idx[pos[r]] = r;
    if (w > 0) vals[pos[r] * w + k] = x[e];
  }
}

extern "C" kl_status kl_cuda_dot_dense_to_rsp_fill(kl_dtype dt, int64_t rows, int64_t w,
                                                   const void *x, const void *scratch,
                                                   int64_t *idx, void *vals, kl_cuda_stream s) {
  const char *fn = "cuda dense to row_sparse";
  kl_status st = dot_float(fn, dt);
  if (st != KL_OK || rows <= 0) return st;
  const int64_t *flag = (const int64_t *)scratch;
  const int64_t *pos = (const int64_t *)((const char *)scratch + dot_i64s(rows));
  const int64_t n = rows * (w > 0 ? w : 1);
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_rows_keep<float>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (const float *)x, rows, w,
              flag, pos, idx, (float *)vals);
  else
    KL_LAUNCH(k_rows_keep<double>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (const double *)x, rows,
              w, flag, pos, idx, (double *)vals);
  return kl_cuda_launched(fn);
}
