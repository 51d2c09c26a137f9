/* ops_dot.c: the dot op: inference, the OpenBLAS dense kernel, CSR/row_sparse kernels, backward. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "kl/pool.h"
#include "ops_internal.h"
#include "tensor_internal.h"

/* A dot as matrices: op(A) is M x K, op(B) is K x N. A is stored ar x ac row-major (an N-d
 * a is flattened to (prod of leading dims) x last dim; a 1-d a is 1 x K), B is stored
 * br x bc (a 1-d b is K x 1). Transposes of 1-d operands are no-ops, as in numpy. */
typedef struct dot_view {
  int64_t M, K, N, ar, ac, br, bc;
  int ta, tb;
} dot_view;

static void shape_msg(const kl_meta *m, int t, char *buf, size_t len) {
  char s[160];
  snprintf(buf, len, "(%s)%s", kl_shape_str(m->ndim, m->shape, s, sizeof s),
           t && m->ndim == 2 ? "^T" : "");
}

/* Validates a dot and computes its view and output meta (shape, dtype, stype). */
static kl_status dot_infer_view(const kl_meta *in, int nin, const kl_attrs *at, dot_view *v,
                                kl_meta *out) {
  KL_CHECK(nin == 2, KL_EINVAL, "dot: expected 2 inputs, got %d", nin);
  const kl_meta *a = &in[0], *b = &in[1];
  for (int i = 0; i < 2; i++)
    KL_CHECK(kl_is_float(in[i].dtype), KL_EDTYPE,
             "dot: %s has dtype %s, expected float32 or float64", i ? "b" : "a",
             kl_dtype_name(in[i].dtype));
  KL_CHECK(a->dtype == b->dtype, KL_EDTYPE, "dot: dtype mismatch %s . %s",
           kl_dtype_name(a->dtype), kl_dtype_name(b->dtype));
  KL_CHECK(a->ndim >= 1, KL_ESHAPE, "dot: a must have at least 1 dimension, got a 0-d tensor");
  KL_CHECK(b->ndim == 1 || b->ndim == 2, KL_ESHAPE,
           "dot: b must be 1-d or 2-d, got a %d-d tensor", b->ndim);
  KL_CHECK(!at->transpose_a || a->ndim <= 2, KL_ESHAPE,
           "dot: transpose_a needs a 1-d or 2-d a, got a %d-d tensor", a->ndim);
  v->ta = a->ndim == 2 && at->transpose_a;
  v->tb = b->ndim == 2 && at->transpose_b;
  v->ac = a->shape[a->ndim - 1];
  v->ar = a->ndim == 1 ? 1 : kl_shape_numel(a->ndim - 1, a->shape);
  v->br = b->shape[0];
  v->bc = b->ndim == 2 ? b->shape[1] : 1;
  v->M = v->ta ? v->ac : v->ar;
  v->K = v->ta ? v->ar : v->ac;
  int64_t kb = v->tb ? v->bc : v->br;
  v->N = v->tb ? v->br : v->bc;
  if (v->K != kb) {
    char sa[200], sb[200];
    shape_msg(a, v->ta, sa, sizeof sa);
    shape_msg(b, v->tb, sb, sizeof sb);
    return kl_seterr(KL_ESHAPE, "dot: shape mismatch %s . %s", sa, sb);
  }
  out->dtype = a->dtype;
  out->ndim = 0;
  if (a->ndim == 2 && v->ta) out->shape[out->ndim++] = a->shape[1];
  else
    for (int d = 0; d < a->ndim - 1; d++) out->shape[out->ndim++] = a->shape[d];
  if (b->ndim == 2) out->shape[out->ndim++] = v->N;
  KL_TRY(kl_shape_check("dot", out->ndim, out->shape));
  /* MXNet's storage inference: csr^T . (dense | row_sparse) -> row_sparse. */
  out->stype = KL_STYPE_DEFAULT;
  if (a->stype == KL_STYPE_CSR && b->ndim == 2 && !v->tb && v->ta &&
      (b->stype == KL_STYPE_DEFAULT || b->stype == KL_STYPE_ROW_SPARSE))
    out->stype = KL_STYPE_ROW_SPARSE;
  return KL_OK;
}

static kl_status dot_infer(const kl_meta *in, int nin, const kl_attrs *at, kl_meta *out) {
  dot_view v = {0};
  return dot_infer_view(in, nin, at, &v, out);
}

static kl_status view_of(kl_tensor *const *in, const kl_attrs *at, dot_view *v, kl_meta *om) {
  kl_meta m[2];
  kl_tensor_meta(in[0], &m[0]);
  kl_tensor_meta(in[1], &m[1]);
  return dot_infer_view(m, 2, at, v, om);
}

/* ------------------------------------------------------------ dense (BLAS) */

/* C (M x N, row-major, overwritten) = op(A) . op(B), where A is stored with rows of lda
 * elements and B with rows of ldb. Handles empty dims without calling BLAS. */
static kl_status gemm_rm(kl_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K,
                         const void *A, int64_t lda, const void *B, int64_t ldb, void *C) {
  if (M == 0 || N == 0) return KL_OK;
  if (K == 0) {
    memset(C, 0, (size_t)(M * N) * kl_dtype_size(dt));
    return KL_OK;
  }
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX)
    return kl_seterr(KL_EUNSUPPORTED,
                     "dot: dimensions %lld x %lld x %lld exceed the BLAS int limit",
                     (long long)M, (long long)K, (long long)N);
  if (lda < 1) lda = 1;
  if (ldb < 1) ldb = 1;
  enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if (dt == KL_FLOAT32)
    cblas_sgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                0.0f, C, (int)N);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb,
                0.0, C, (int)N);
  return KL_OK;
}

static kl_status dot_dense(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(view_of(in, at, &v, &om));
  KL_CHECK(in[0]->stype == KL_STYPE_DEFAULT && in[1]->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
           "dot: the dense kernel needs dense inputs");
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_dense(om.dtype, om.ndim, om.shape, &o));
  kl_status st = gemm_rm(om.dtype, v.ta, v.tb, v.M, v.N, v.K, in[0]->data, v.ac, in[1]->data,
                         v.bc, o->data);
  if (st != KL_OK) {
    kl_tensor_release(o);
    return st;
  }
  *out = o;
  return KL_OK;
}

/* ----------------------------------------------------------- sparse kernels */

/* y[0..N) = sum_j v[j] * B[r[j]*N .. +N) over the cnt entries with r[j] >= 0. The columns
 * are done in tiles (32, 16, 8, 4 wide, widest first) held in a local accumulator
 * (registers), so y is written once and each gathered row of B is read in
 * cache-line-sized pieces; fewer than 4 leftover columns take a scalar loop and N == 1 a
 * dot product. Every output element is summed in entry order starting from 0, whatever
 * path computes it, so the result does not depend on threads or on N's tiling. */
/* Rows of B are prefetched this many entries ahead: the gather is bound by memory latency. */
#define KL_PF 8
/* N == 1 does one multiply-add per entry, so it looks further ahead. */
#define KL_PF1 16
/* The accumulator's column map is read this many entries ahead (a few instructions an
 * entry: an L3 hit needs ~50 entries of lead). */
#define KL_PFMAP 64
/* ... and only for a vector larger than this (a smaller one stays in L2). */
#define KL_PF_MIN_BYTES ((size_t)256 << 10)
#define KL_DEF_GATHER_TILE(T, S, TILE)                                                     \
  static void gtile_##S##_##TILE(int64_t cnt, int64_t pfcnt, const T *restrict v,         \
                                 const int64_t *restrict r, const T *restrict B, int64_t N, \
                                 int64_t n0, T *restrict y) {                               \
    T acc[TILE];                                                                            \
    for (int k = 0; k < TILE; k++) acc[k] = 0;                                              \
    for (int64_t j = 0; j < cnt; j++) {                                                     \
      if (j + KL_PF < pfcnt && r[j + KL_PF] >= 0) {                                         \
        const char *pf = (const char *)(B + r[j + KL_PF] * N + n0);                         \
        for (size_t b_ = 0; b_ < TILE * sizeof(T); b_ += 64) __builtin_prefetch(pf + b_);   \
      }                                                                                     \
      if (r[j] < 0) continue;                                                               \
      const T *restrict x = B + r[j] * N + n0;                                              \
      const T vj = v[j];                                                                    \
      KL_PRAGMA(omp simd)                                                                   \
      for (int k = 0; k < TILE; k++) acc[k] += vj * x[k];                                   \
    }                                                                                       \
    for (int k = 0; k < TILE; k++) y[n0 + k] = acc[k];                                      \
  }
#define KL_DEF_GATHER(T, S)                                                                \
  KL_DEF_GATHER_TILE(T, S, 32)                                                              \
  KL_DEF_GATHER_TILE(T, S, 16)                                                              \
  KL_DEF_GATHER_TILE(T, S, 8)                                                               \
  KL_DEF_GATHER_TILE(T, S, 4)                                                               \
  static void gather_##S(int64_t cnt, int64_t pfcnt, const T *restrict v,                  \
                         const int64_t *restrict r, const T *restrict B, int64_t N,         \
                         T *restrict y) {                                                   \
    if (N == 1) {                                                                           \
      T acc = 0;                                                                            \
      for (int64_t j = 0; j < cnt; j++) {                                                   \
        if (j + KL_PF1 < pfcnt && r[j + KL_PF1] >= 0) __builtin_prefetch(B + r[j + KL_PF1]); \
        if (r[j] >= 0) acc += v[j] * B[r[j]];                                               \
      }                                                                                     \
      y[0] = acc;                                                                           \
      return;                                                                               \
    }                                                                                       \
    int64_t n0 = 0;                                                                         \
    for (; n0 + 32 <= N; n0 += 32) gtile_##S##_32(cnt, pfcnt, v, r, B, N, n0, y);           \
    if (n0 + 16 <= N) {                                                                     \
      gtile_##S##_16(cnt, pfcnt, v, r, B, N, n0, y);                                        \
      n0 += 16;                                                                             \
    }                                                                                       \
    if (n0 + 8 <= N) {                                                                      \
      gtile_##S##_8(cnt, pfcnt, v, r, B, N, n0, y);                                         \
      n0 += 8;                                                                              \
    }                                                                                       \
    if (n0 + 4 <= N) {                                                                      \
      gtile_##S##_4(cnt, pfcnt, v, r, B, N, n0, y);                                         \
      n0 += 4;                                                                              \
    }                                                                                       \
    if (n0 < N) {                                                                           \
      const int rem = (int)(N - n0);                                                        \
      T acc[4];                                                                             \
      for (int k = 0; k < rem; k++) acc[k] = 0;                                             \
      for (int64_t j = 0; j < cnt; j++) {                                                   \
        if (r[j] < 0) continue;                                                             \
        const T *restrict x = B + r[j] * N + n0;                                            \
        const T vj = v[j];                                                                  \
        for (int k = 0; k < rem; k++) acc[k] += vj * x[k];                                  \
      }                                                                                     \
      for (int k = 0; k < rem; k++) y[n0 + k] = acc[k];                                     \
    }                                                                                       \
  }
KL_DEF_GATHER(float, f32)
KL_DEF_GATHER(double, f64)

/* pfcnt >= cnt: how many entries of r may be read ahead for prefetching (the next rows'
 * entries follow this row's in both callers). */
static void gather(kl_dtype dt, int64_t cnt, int64_t pfcnt, const void *v, const int64_t *r,
                   const void *B, int64_t N, void *y) {
  if (dt == KL_FLOAT32) gather_f32(cnt, pfcnt, v, r, B, N, y);
  else gather_f64(cnt, pfcnt, v, r, B, N, y);
}

/* First position p in sorted a[lo..hi) with a[p] >= v. */
static int64_t lower_bound(const int64_t *a, int64_t lo, int64_t hi, int64_t v) {
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static int is2d(const kl_tensor *t, kl_stype s) { return t->stype == s && t->ndim == 2; }
/* 1-d or 2-d of stype s (a 1-d operand is a K x 1 or 1 x K matrix). */
static int is12d(const kl_tensor *t, kl_stype s) {
  return t->stype == s && (t->ndim == 1 || t->ndim == 2);
}

static int sup_csr_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && is12d(in[1], KL_STYPE_DEFAULT) &&
         !a->transpose_a && !(a->transpose_b && in[1]->ndim == 2);
}
static int sup_csr_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && is12d(in[1], KL_STYPE_ROW_SPARSE) &&
         !a->transpose_a && !(a->transpose_b && in[1]->ndim == 2);
}
static int sup_csrT_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && is2d(in[1], KL_STYPE_DEFAULT) &&
         a->transpose_a && !a->transpose_b;
}
static int sup_csrT_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && is2d(in[1], KL_STYPE_ROW_SPARSE) &&
         a->transpose_a && !a->transpose_b;
}
static int sup_dense_csr(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && is12d(in[0], KL_STYPE_DEFAULT) && in[1]->stype == KL_STYPE_CSR &&
         !a->transpose_b;
}

/* csr (M x K) . dense or row_sparse (K x N, or a K vector) -> dense M x N (or M).
 * OpenMP static over rows.
 * A row_sparse b costs one binary search per stored entry of a (columns absent from b
 * contribute nothing). */
static kl_status dot_csr_x(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(view_of(in, at, &v, &om));
  const kl_tensor *a = in[0], *b = in[1];
  kl_tensor *o = NULL;
  int64_t *map = NULL;
  const int64_t M = v.M, N = v.N, nnz = a->nnz;
  /* every output element is written below (a row without entries gets 0) */
  kl_status st = kl_tensor_new_dense_uninit(om.dtype, om.ndim, om.shape, &o);
  if (st != KL_OK) goto done;
  const int64_t *rows = a->indices;
  /* A row_sparse b that stores all its rows (a Dense sparse_weight kernel) has indices
   * 0..K-1, so storage row == column index: no lookup needed (it was 57% of a W1 epoch). */
  if (b->stype == KL_STYPE_ROW_SPARSE && b->nnz != b->shape[0]) {
    if (!(map = kl_malloc_n((size_t)(nnz > 0 ? nnz : 1), sizeof *map))) {
      st = KL_ENOMEM;
      goto done;
    }
    const int64_t *bi = b->indices, bn = b->nnz, *ai = a->indices;
    KL_PRAGMA(omp parallel for schedule(static) if (nnz > KL_PAR_MIN))
    for (int64_t j = 0; j < nnz; j++) {
      int64_t p = lower_bound(bi, 0, bn, ai[j]);
      map[j] = p < bn && bi[p] == ai[j] ? p : -1;
    }
    rows = map;
  }
  if (N > 0) {
    const int64_t *ip = a->indptr;
    const size_t es = kl_dtype_size(om.dtype);
    const char *av = a->data;
    char *y = o->data;
    const kl_dtype dt = om.dtype;
    const void *B = b->data;
    if (N == 1 && !map && dt == KL_FLOAT32) {
      /* csr . vector (every Dense(1) forward: W1, W2, W5): every entry's row of b exists,
       * so no per-entry check; the same sequential sum as gather's N == 1 path. */
      const float *restrict v = (const float *)av, *restrict x = B;
      float *restrict yo = (float *)y;
      const int64_t *restrict ci = rows;
      /* A vector that stays in cache (W1's 10,000 weights) needs no prefetch (it was 5 of
       * 12 instructions an entry); a larger one (W5's 10^6) is gathered from DRAM. */
      const int pf = (size_t)b->shape[0] * sizeof(float) > KL_PF_MIN_BYTES;
      KL_PRAGMA(omp parallel for schedule(static) if (nnz + M > KL_PAR_MIN))
      for (int64_t i = 0; i < M; i++) {
        float acc = 0;
        const int64_t j1 = ip[i + 1];
        if (pf)
          for (int64_t j = ip[i]; j < j1; j++) {
            __builtin_prefetch(x + ci[j + KL_PF1 < nnz ? j + KL_PF1 : j]);
            acc += v[j] * x[ci[j]];
          }
        else
          for (int64_t j = ip[i]; j < j1; j++) acc += v[j] * x[ci[j]];
        yo[i] = acc;
      }
    } else {
      KL_PRAGMA(omp parallel for schedule(static) if ((nnz + M) * N > KL_PAR_MIN))
      for (int64_t i = 0; i < M; i++)
        gather(dt, ip[i + 1] - ip[i], nnz - ip[i], av + (size_t)ip[i] * es, rows + ip[i], B,
               N, y + (size_t)(i * N) * es);
    }
  }
done:
  kl_free(map);
  if (st != KL_OK) kl_tensor_release(o);
  else *out = o;
  return st;
}

/* LSD radix sort (11-bit digits) of ids[0..n) by key[ids[p]] (keys in [0, kmax]); stable,
 * so entries of one key stay in their original order. O(n * passes), passes =
 * ceil(bits(kmax) / 11): 2 passes for a 2^20-column matrix, and never O(kmax). The result
 * is in ids or tmp: the returned pointer. */
static int64_t *radix_sort_ids(int64_t *ids, int64_t *tmp, int64_t n, const int64_t *key,
                               int64_t kmax) {
  int64_t count[2048];
  for (int shift = 0; shift < 63 && (kmax >> shift) > 0; shift += 11) {
    memset(count, 0, sizeof count);
    for (int64_t p = 0; p < n; p++) count[(key[ids[p]] >> shift) & 2047]++;
    int64_t s = 0;
    for (int d = 0; d < 2048; d++) {
      int64_t c = count[d];
      count[d] = s;
      s += c;
    }
    for (int64_t p = 0; p < n; p++) tmp[count[(key[ids[p]] >> shift) & 2047]++] = ids[p];
    int64_t *t = ids;
    ids = tmp;
    tmp = t;
  }
  return ids;
}

/* Stable LSD radix sort of packed entries x = (key << 32) | id (key < 2^32, id < 2^32) by
 * key, keys < 2^bits. When 2^bits <= n + 2048 one counting pass of bits-wide digits does
 * it (O(n), the count array bounded by the entry count); otherwise ceil(bits / 11) passes
 * of equal digits <= 11 bits. The digits are read from x itself, so no pass touches the
 * key array. Returns the buffer holding the result (x or tmp), or NULL when out of memory. */
static uint64_t *radix_sort_packed(uint64_t *x, uint64_t *tmp, int64_t n, int bits) {
  int passes = 0, w = 0;
  if (bits > 0 && ((int64_t)1 << bits) <= n + 2048) {
    passes = 1;
    w = bits;
  } else if (bits > 0) {
    passes = (bits + 10) / 11;
    w = (bits + passes - 1) / passes;
  }
  if (passes == 0) return x;
  const size_t nd = (size_t)1 << w;
  int64_t *count = kl_malloc_n(nd, sizeof *count);
  if (!count) return NULL;
  for (int q = 0, shift = 32; q < passes; q++, shift += w) {
    const uint64_t mask = (uint64_t)nd - 1;
    memset(count, 0, nd * sizeof *count);
    for (int64_t p = 0; p < n; p++) count[(x[p] >> shift) & mask]++;
    int64_t s = 0;
    for (size_t d = 0; d < nd; d++) {
      int64_t c = count[d];
      count[d] = s;
      s += c;
    }
    for (int64_t p = 0; p < n; p++) tmp[count[(x[p] >> shift) & mask]++] = x[p];
    uint64_t *t = x;
    x = tmp;
    tmp = t;
  }
  kl_free(count);
  return x;
}

/* ------------------------------------------- csr^T . b with a small N: accumulator */

/* The accumulator path handles N up to this (wider rows favour the sorted gather). */
#define KL_SPA_MAXN 8
/* ... and a csr with at most this many columns (its map: 4 bytes a column, kept). */
#define KL_SPA_MAXC ((int64_t)1 << 24)

/* The storage row of row i of a row_sparse b, or -1 (absent), for rows i asked in
 * ascending order: *p is the merge position, 0 before the first call. */
static inline int64_t b_storage_row(const kl_tensor *b, int64_t i, int64_t *p) {
  while (*p < b->nnz && b->indices[*p] < i) (*p)++;
  return *p < b->nnz && b->indices[*p] == i ? *p : -1;
}

/* Accumulates value * b-row into the output slot of each entry's column, in entry order.
 * map[c] = slot + 1 of column c (0: untouched so far); slots are made in first-touch order
 * with their column in ukey; slot s accumulates in row s + 1 of acc (row 0 is unused).
 * Entries of rows that a row_sparse b does not store add nothing. acc is zero on entry (so a
 * slot's first product is added to 0, as in the sorted path's gather). Returns the slot
 * count; *kmin, *kmax: the touched columns' range. NN is the compile-time width (0: N). */
#define KL_DEF_SPA(T, S, NN, SFX)                                                           \
  static int64_t spa_acc_##S##SFX(const kl_tensor *a, const kl_tensor *b, int64_t N,        \
                                  uint32_t *restrict map, int64_t *restrict ukey,           \
                                  T *restrict acc, int64_t *kmin, int64_t *kmax) {           \
    const int64_t R = a->shape[0], *ip = a->indptr, *ai = a->indices, nnz = a->nnz;         \
    const T *restrict av = a->data, *restrict B = b->data;                                   \
    const int bsp = b->stype == KL_STYPE_ROW_SPARSE;                                        \
    const int64_t W = (NN) ? (NN) : N;                                                      \
    int64_t U = 0, lo = INT64_MAX, hi = -1, p = 0;                                          \
    for (int64_t i = 0; i < R; i++) {                                                       \
      const int64_t r = bsp ? b_storage_row(b, i, &p) : i;                                  \
      if (r < 0) continue;                                                                  \
      const T *restrict g = B + r * W;                                                      \
      for (int64_t j = ip[i]; j < ip[i + 1]; j++) {                                         \
        /* The map of a wide csr is larger than L2 (W5: 4 MB) and each entry's slot count  \
         * depends on the last entry's map read: fetched ahead, the misses overlap. */       \
        __builtin_prefetch(map + ai[j + KL_PFMAP < nnz ? j + KL_PFMAP : j], 1);             \
        /* Branch-free: whether a column is new is a coin flip at W1's density. */           \
        const int64_t c = ai[j];                                                            \
        const uint32_t old = map[c], nw = old == 0;                                         \
        const uint32_t sl = nw ? (uint32_t)(U + 1) : old;                                   \
        map[c] = sl;                                                                        \
        ukey[U] = c;                                                                        \
        U += nw;                                                                            \
        lo = c < lo ? c : lo;                                                               \
        hi = c > hi ? c : hi;                                                               \
        T *restrict y = acc + (int64_t)sl * W;                                              \
        const T vj = av[j];                                                                 \
        for (int64_t k = 0; k < W; k++) y[k] += vj * g[k];                                  \
      }                                                                                     \
    }                                                                                       \
    *kmin = lo;                                                                             \
    *kmax = hi;                                                                             \
    return U;                                                                               \
  }
KL_DEF_SPA(float, f32, 1, _1)
KL_DEF_SPA(float, f32, 0, _n)
KL_DEF_SPA(double, f64, 1, _1)
KL_DEF_SPA(double, f64, 0, _n)

/* The direct accumulator: when a csr has few columns next to its entries (C <= 4 nnz, so a
 * scan of every column is O(nnz)) and C x N values fit in this many bytes, each entry adds
 * into its column's own row of a kept C x N accumulator (no slot lookup, no range), and a
 * scan of the columns emits the touched ones in order. W1's batch: 10,000 columns, 6,400
 * entries; 23 -> 9 instructions an entry (callgrind). */
#define KL_SPA_DIRECT_MAXB ((size_t)4 << 20)

/* acc[c * N ..] += value * b-row for each entry (column c), in entry order; flag[c] = 1 for
 * each touched column. Entries of rows that a row_sparse b does not store add nothing. */
#define KL_DEF_SPAD(T, S, NN, SFX)                                                          \
  static void spad_acc_##S##SFX(const kl_tensor *a, const kl_tensor *b, int64_t N,          \
                                uint32_t *restrict flag, T *restrict acc) {                 \
    const int64_t R = a->shape[0], *ip = a->indptr, *ai = a->indices;                       \
    const T *restrict av = a->data, *restrict B = b->data;                                   \
    const int bsp = b->stype == KL_STYPE_ROW_SPARSE;                                        \
    const int64_t W = (NN) ? (NN) : N;                                                      \
    int64_t p = 0;                                                                          \
    for (int64_t i = 0; i < R; i++) {                                                       \
      const int64_t r = bsp ? b_storage_row(b, i, &p) : i;                                  \
      if (r < 0) continue;                                                                  \
      const T *restrict g = B + r * W;                                                      \
      for (int64_t j = ip[i]; j < ip[i + 1]; j++) {                                         \
        const int64_t c = ai[j];                                                            \
        flag[c] = 1;                                                                        \
        T *restrict y = acc + c * W;                                                        \
        const T vj = av[j];                                                                 \
        for (int64_t k = 0; k < W; k++) y[k] += vj * g[k];                                  \
      }                                                                                     \
    }                                                                                       \
  }
KL_DEF_SPAD(float, f32, 1, _1)
KL_DEF_SPAD(float, f32, 0, _n)
KL_DEF_SPAD(double, f64, 1, _1)
KL_DEF_SPAD(double, f64, 0, _n)

/* Emits the touched columns of flag/acc (C columns, rows of N values of es bytes) into o
 * (capacity min(C, nnz + 1) rows, so the branch-free write of an untouched column at row u
 * stays inside it), clearing both as it goes; sets o->nnz. With o NULL (a failed
 * allocation) only clears. */
static void spad_emit(uint32_t *restrict flag, char *restrict acc, int64_t C, int64_t N,
                      size_t es, kl_tensor *o) {
  const size_t rb = (size_t)N * es;
  if (!o) {
    memset(flag, 0, (size_t)C * sizeof *flag);
    memset(acc, 0, (size_t)C * rb);
    return;
  }
  int64_t u = 0, *restrict oi = o->indices;
  char *restrict y = o->data;
  if (N == 1 && es == 4) {
    float *restrict yf = (float *)y, *restrict af = (float *)acc;
    for (int64_t c = 0; c < C; c++) {
      const uint32_t f = flag[c];
      flag[c] = 0;
      oi[u] = c;
      yf[u] = af[c];
      af[c] = 0;
      u += f;
    }
  } else {
    for (int64_t c = 0; c < C; c++) {
      const uint32_t f = flag[c];
      if (!f) continue;
      flag[c] = 0;
      oi[u] = c;
      memcpy(y + (size_t)u * rb, acc + (size_t)c * rb, rb);
      memset(acc + (size_t)c * rb, 0, rb);
      u++;
    }
  }
  o->nnz = u;
}

int kl_dot_direct_fits(int64_t C, int64_t nnz, int64_t N, kl_dtype dt) {
  return C > 0 && N >= 1 && N <= KL_SPA_MAXN && C <= KL_SPA_MAXC && C <= 4 * nnz &&
         nnz < (int64_t)UINT32_MAX && (size_t)C * (size_t)N * kl_dtype_size(dt) <= KL_SPA_DIRECT_MAXB;
}

void kl_dot_csrT_direct_acc(const kl_tensor *a, const kl_tensor *g, int64_t N, uint32_t *flag,
                            void *acc) {
  if (g->dtype == KL_FLOAT32) {
    if (N == 1) spad_acc_f32_1(a, g, N, flag, acc);
    else spad_acc_f32_n(a, g, N, flag, acc);
  } else {
    if (N == 1) spad_acc_f64_1(a, g, N, flag, acc);
    else spad_acc_f64_n(a, g, N, flag, acc);
  }
}

/* The listed accumulator (plan.c's listed fused step): a weight too wide for the direct
 * accumulator, whose lazy update then walks the touched rows in first-touch order, no sort.
 * Measured faster than the sorted path for 1-wide f32 weights of 1, 2 and 4 MiB (W7's 2^18
 * rows, 2^19, 2^20 and W5's 10^6: bench/README item 17); a wider weight, not measured,
 * keeps the sorted path, whose column order streams through weight and states. */
#define KL_SPA_LISTED_MAXB ((size_t)4 << 20)

int kl_dot_listed_fits(int64_t C, int64_t nnz, int64_t N, kl_dtype dt) {
  return C > 0 && N >= 1 && N <= KL_SPA_MAXN && C <= KL_SPA_MAXC && nnz < (int64_t)UINT32_MAX &&
         !kl_dot_direct_fits(C, nnz, N, dt) &&
         (size_t)C * (size_t)N * kl_dtype_size(dt) <= KL_SPA_LISTED_MAXB;
}

kl_status kl_dot_csrT_listed(const kl_tensor *a, const kl_tensor *g, int64_t N, int64_t **list,
                             void **rows, int64_t *nrows) {
  const int64_t C = a->shape[1], nnz = a->nnz;
  const size_t es = kl_dtype_size(g->dtype), n1 = (size_t)(nnz > 0 ? nnz : 1);
  *list = NULL;
  *rows = NULL;
  *nrows = 0;
  uint32_t *map = kl_pool_kept_zeroed(KL_KEPT_COLMAP, (size_t)C * sizeof *map);
  if (!map) return KL_ENOMEM;
  int64_t *ukey = kl_malloc_n(n1, sizeof *ukey);
  char *acc = kl_malloc_n((n1 + 1) * (size_t)N, es);
  if (!ukey || !acc) {
    kl_free(ukey);
    kl_free(acc);
    return KL_ENOMEM;
  }
  memset(acc, 0, (n1 + 1) * (size_t)N * es);
  int64_t kmin = 0, kmax = -1, U;
  if (g->dtype == KL_FLOAT32)
    U = N == 1 ? spa_acc_f32_1(a, g, N, map, ukey, (float *)acc, &kmin, &kmax)
               : spa_acc_f32_n(a, g, N, map, ukey, (float *)acc, &kmin, &kmax);
  else
    U = N == 1 ? spa_acc_f64_1(a, g, N, map, ukey, (double *)acc, &kmin, &kmax)
               : spa_acc_f64_n(a, g, N, map, ukey, (double *)acc, &kmin, &kmax);
  for (int64_t s = 0; s < U; s++) map[ukey[s]] = 0; /* the kept map is left zero */
  *list = ukey;
  *rows = acc;
  *nrows = U;
  return KL_OK;
}

/* csr^T . b by the direct accumulator (see KL_SPA_DIRECT_MAXB); the same sums as the
 * sorted path (from +0, in entry order). Returns 0 when the kept buffers are not there. */
static int dot_csrT_direct(const kl_tensor *a, const kl_tensor *b, const kl_meta *om,
                           int64_t N, uint32_t *flag, kl_tensor **out, kl_status *stp) {
  const int64_t C = a->shape[1], nnz = a->nnz;
  const kl_dtype dt = om->dtype;
  const size_t es = kl_dtype_size(dt);
  char *acc = kl_pool_kept_zeroed(KL_KEPT_COLACC, (size_t)C * (size_t)N * es);
  if (!acc) return 0;
  kl_dot_csrT_direct_acc(a, b, N, flag, acc);
  kl_tensor *o = NULL;
  kl_status st = kl_tensor_new_rsp(dt, om->ndim, om->shape, C < nnz + 1 ? C : nnz + 1, &o);
  spad_emit(flag, acc, C, N, es, st == KL_OK ? o : NULL);
  if (st == KL_OK) *out = o;
  *stp = st;
  return 1;
}

static uint64_t *radix_sort_packed(uint64_t *x, uint64_t *tmp, int64_t n, int bits);

/* csr^T . b for N <= KL_SPA_MAXN inside a plan step (the pool's kept column map): one pass
 * over the entries accumulates each touched column's output row (spa_acc), then the slots
 * are put in column order, by a scan of the map over [kmin, kmax] when that range is at
 * most 4x the touched count (W1: 10,000 columns, ~4,700 touched a batch), else by a radix
 * sort of packed (column, slot) words; the map is cleared as the rows are written. Each
 * output element is the sum, in entry order from 0, of the same products as the sorted
 * path: the same bits. O(nnz x N + U) a call, the map O(C) memory once per plan. A csr
 * with few columns takes the direct accumulator instead (dot_csrT_direct). Returns 0
 * (nothing done) when the map is not available. */
static int dot_csrT_spa(const kl_tensor *a, const kl_tensor *b, const kl_meta *om, int64_t N,
                        kl_tensor **out, kl_status *stp) {
  const int64_t C = a->shape[1], nnz = a->nnz;
  if (N < 1 || N > KL_SPA_MAXN || C > KL_SPA_MAXC || nnz >= (int64_t)UINT32_MAX) return 0;
  const kl_dtype dt = om->dtype;
  const size_t es = kl_dtype_size(dt);
  const size_t n1 = (size_t)(nnz > 0 ? nnz : 1);
  uint32_t *map = kl_pool_kept_zeroed(KL_KEPT_COLMAP, (size_t)(C > 0 ? C : 1) * sizeof *map);
  if (!map) return 0;
  if (kl_dot_direct_fits(C, nnz, N, dt) && dot_csrT_direct(a, b, om, N, map, out, stp))
    return 1;
  int64_t *ukey = kl_malloc_n(n1, sizeof *ukey);
  void *acc = kl_malloc_n((n1 + 1) * (size_t)N, es);
  uint64_t *px = NULL, *ptmp = NULL;
  kl_tensor *o = NULL;
  kl_status st = KL_OK;
  int64_t U = 0, kmin = 0, kmax = -1, dirty = 0; /* dirty: slots whose map entry is set */
  if (!ukey || !acc) {
    st = KL_ENOMEM;
    goto done;
  }
  memset(acc, 0, (n1 + 1) * (size_t)N * es);
  if (dt == KL_FLOAT32)
    U = N == 1 ? spa_acc_f32_1(a, b, N, map, ukey, acc, &kmin, &kmax)
               : spa_acc_f32_n(a, b, N, map, ukey, acc, &kmin, &kmax);
  else
    U = N == 1 ? spa_acc_f64_1(a, b, N, map, ukey, acc, &kmin, &kmax)
               : spa_acc_f64_n(a, b, N, map, ukey, acc, &kmin, &kmax);
  dirty = U;
  st = kl_tensor_new_rsp(dt, om->ndim, om->shape, U, &o);
  if (st != KL_OK || U == 0) goto done;
  const size_t rb = (size_t)N * es;
  char *y = o->data;
  const char *ac = acc; /* slot sl's row is row sl (1-based; row 0 is scratch) */
  if (kmax - kmin < 4 * U) {
    /* Branch-free: half the columns of a range are untouched, a branch mispredicts. An
     * untouched column writes row u, which a later touched one overwrites (the last column
     * of the range, kmax, is touched, so u < U at every write). */
    int64_t u = 0;
    if (N == 1 && es == 4)
      for (int64_t c = kmin; c <= kmax; c++) {
        const uint32_t sl = map[c];
        map[c] = 0;
        o->indices[u] = c;
        ((float *)y)[u] = ((const float *)ac)[sl];
        u += sl != 0;
      }
    else
      for (int64_t c = kmin; c <= kmax; c++) {
        const uint32_t sl = map[c];
        map[c] = 0;
        o->indices[u] = c;
        memcpy(y + (size_t)u * rb, ac + (size_t)sl * rb, rb);
        u += sl != 0;
      }
    dirty = 0; /* the scan cleared the map */
  } else {
    int bits = 0;
    while (bits < 32 && ((kmax - kmin) >> bits) > 0) bits++;
    if (!(px = kl_malloc_n((size_t)U, sizeof *px)) ||
        !(ptmp = kl_malloc_n((size_t)U, sizeof *ptmp))) {
      st = KL_ENOMEM;
      goto done;
    }
    for (int64_t s = 0; s < U; s++) px[s] = ((uint64_t)(ukey[s] - kmin) << 32) | (uint64_t)s;
    uint64_t *sx = radix_sort_packed(px, ptmp, U, bits);
    if (!sx) {
      st = KL_ENOMEM;
      goto done;
    }
    /* The map is cleared here, in column order (ascending addresses: a large map's lines
     * are then fetched in order, where the cleanup loop's slot order is random). */
    int64_t *restrict oi = o->indices;
    if (N == 1 && es == 4)
      for (int64_t u = 0; u < U; u++) {
        __builtin_prefetch(map + ukey[sx[u + KL_PF1 < U ? u + KL_PF1 : u] & 0xffffffffu], 1);
        const int64_t s = (int64_t)(sx[u] & 0xffffffffu), c = ukey[s];
        oi[u] = c;
        ((float *)y)[u] = ((const float *)ac)[s + 1];
        map[c] = 0;
      }
    else
      for (int64_t u = 0; u < U; u++) {
        __builtin_prefetch(map + ukey[sx[u + KL_PF1 < U ? u + KL_PF1 : u] & 0xffffffffu], 1);
        const int64_t s = (int64_t)(sx[u] & 0xffffffffu), c = ukey[s];
        oi[u] = c;
        memcpy(y + (size_t)u * rb, ac + (size_t)(s + 1) * rb, rb);
        map[c] = 0;
      }
    dirty = 0;
  }
done:
  /* Leave the map all zero (the kept-scratch contract), whatever happened. */
  for (int64_t s = 0; s < dirty; s++) map[ukey[s]] = 0;
  kl_free(ukey);
  kl_free(acc);
  kl_free(px);
  kl_free(ptmp);
  if (st != KL_OK) kl_tensor_release(o);
  else *out = o;
  *stp = st;
  return 1;
}

/* csr^T (a is R x C, the result C x N) . dense or row_sparse (R x N) -> row_sparse holding
 * only the columns of a that some entry touches (with a row_sparse b: entries whose row b
 * stores), rows sorted. The touched columns are found by a radix sort of the entries by
 * column (O(nnz), never O(C)); each output row is then the sum, in entry order, of
 * value * b-row over its entries, computed by one thread: results are bit-identical for
 * any thread count. Threads get contiguous output rows balanced by entry count. */
static kl_status dot_csrT_x(kl_tensor *const *in, int nin, const kl_attrs *at,
                            kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(view_of(in, at, &v, &om));
  const kl_tensor *a = in[0], *b = in[1];
  const int64_t R = a->shape[0], N = v.N, nnz = a->nnz;
  kl_status st = KL_OK;
  if (dot_csrT_spa(a, b, &om, N, out, &st)) return st;
  const kl_dtype dt = om.dtype;
  const size_t es = kl_dtype_size(dt);
  kl_tensor *o = NULL;
  int64_t *brow = NULL, *ids = NULL, *tmp = NULL, *srow = NULL, *cptr = NULL;
  char *sval = NULL;
  size_t n1 = (size_t)(nnz > 0 ? nnz : 1);
  if (!(brow = kl_malloc_n(n1, sizeof *brow)) || !(ids = kl_malloc_n(n1, sizeof *ids)) ||
      !(tmp = kl_malloc_n(n1, sizeof *tmp)) || !(srow = kl_malloc_n(n1, sizeof *srow)) ||
      !(sval = kl_malloc_n(n1, es)) || !(cptr = kl_malloc_n(n1 + 1, sizeof *cptr))) {
    st = KL_ENOMEM;
    goto done;
  }
  /* brow[j]: the row of b's storage that entry j multiplies, or -1 (row absent). */
  const int64_t *ip = a->indptr;
  if (b->stype == KL_STYPE_ROW_SPARSE) {
    int64_t p = 0;
    for (int64_t i = 0; i < R; i++) {
      while (p < b->nnz && b->indices[p] < i) p++;
      int64_t r = p < b->nnz && b->indices[p] == i ? p : -1;
      for (int64_t j = ip[i]; j < ip[i + 1]; j++) brow[j] = r;
    }
  } else {
    for (int64_t i = 0; i < R; i++)
      for (int64_t j = ip[i]; j < ip[i + 1]; j++) brow[j] = i;
  }
  const int64_t *ai = a->indices;
  int64_t n = 0, kmin = INT64_MAX, kmax = -1;
  for (int64_t j = 0; j < nnz; j++)
    if (brow[j] >= 0) {
      ids[n++] = j;
      if (ai[j] < kmin) kmin = ai[j];
      if (ai[j] > kmax) kmax = ai[j];
    }
  /* Sort the entries by column (stable: entry order within a column). ukey gets the
   * output rows' columns: it is whichever of ids/tmp the sort did not leave its result in. */
  int64_t U = 0, *ukey;
  if (n > 0 && nnz <= (int64_t)UINT32_MAX && kmax - kmin <= (int64_t)UINT32_MAX) {
    /* Packed (column - kmin, entry) pairs: the passes read contiguous words, and only
     * as many digits as the batch's column range needs. */
    uint64_t *px = (uint64_t *)ids;
    int bits = 0;
    while (bits < 32 && ((kmax - kmin) >> bits) > 0) bits++;
    for (int64_t p = 0; p < n; p++) px[p] = ((uint64_t)(ai[ids[p]] - kmin) << 32) | (uint64_t)ids[p];
    uint64_t *sx = radix_sort_packed(px, (uint64_t *)tmp, n, bits);
    if (!sx) {
      st = KL_ENOMEM;
      goto done;
    }
    ukey = sx == px ? tmp : ids;
    for (int64_t p = 0; p < n; p++) {
      const int64_t k = (int64_t)(sx[p] >> 32) + kmin, j = (int64_t)(sx[p] & 0xffffffffu);
      if (p == 0 || k != ukey[U - 1]) {
        ukey[U] = k;
        cptr[U++] = p;
      }
      srow[p] = brow[j];
      if (es == 4) ((float *)sval)[p] = ((const float *)a->data)[j];
      else if (es == 8) ((double *)sval)[p] = ((const double *)a->data)[j];
      else memcpy(sval + (size_t)p * es, (const char *)a->data + (size_t)j * es, es);
    }
  } else {
    int64_t *sorted = radix_sort_ids(ids, tmp, n, ai, kmax > 0 ? kmax : 0);
    ukey = sorted == ids ? tmp : ids;
    for (int64_t p = 0; p < n; p++) {
      int64_t j = sorted[p];
      if (p == 0 || ai[j] != ukey[U - 1]) {
        ukey[U] = ai[j];
        cptr[U++] = p;
      }
      srow[p] = brow[j];
      memcpy(sval + (size_t)p * es, (const char *)a->data + (size_t)j * es, es);
    }
  }
  cptr[U] = n;
  st = kl_tensor_new_rsp(dt, om.ndim, om.shape, U, &o);
  if (st != KL_OK) goto done;
  if (U > 0) memcpy(o->indices, ukey, (size_t)U * sizeof *ukey);
  if (N > 0 && U > 0) {
    const void *B = b->data;
    char *y = o->data;
    KL_PRAGMA(omp parallel if (n * N > KL_PAR_MIN)) {
      int T = omp_get_num_threads(), t = omp_get_thread_num();
      int64_t u0 = lower_bound(cptr, 0, U, (n * t) / T);
      int64_t u1 = lower_bound(cptr, 0, U, (n * (t + 1)) / T);
      if (t == T - 1) u1 = U;
      for (int64_t u = u0; u < u1; u++)
        gather(dt, cptr[u + 1] - cptr[u], n - cptr[u], sval + (size_t)cptr[u] * es,
               srow + cptr[u], B, N,
               y + (size_t)(u * N) * es);
    }
  }
done:
  kl_free(brow);
  kl_free(ids);
  kl_free(tmp);
  kl_free(srow);
  kl_free(sval);
  kl_free(cptr);
  if (st != KL_OK) kl_tensor_release(o);
  else *out = o;
  return st;
}

/* dense (M x K, K x M with transpose_a, or a K vector) . csr (K x N) -> dense M x N (or
 * N): each output row scatters the csr rows scaled by that row of a. OpenMP static over
 * output rows. */
#define KL_DEF_DENSE_CSR(T, S)                                                             \
  static void dense_csr_##S(int64_t M, int64_t K, int ta, const T *restrict A,             \
                            const int64_t *restrict bp, const int64_t *restrict bi,        \
                            const T *restrict bv, int64_t N, T *restrict C) {              \
    KL_PRAGMA(omp parallel for schedule(static) if (M * (K + bp[K]) > KL_PAR_MIN))          \
    for (int64_t i = 0; i < M; i++) {                                                       \
      T *restrict y = C + i * N;                                                            \
      for (int64_t k = 0; k < K; k++) {                                                     \
        const T aik = ta ? A[k * M + i] : A[i * K + k];                                     \
        for (int64_t j = bp[k]; j < bp[k + 1]; j++) y[bi[j]] += aik * bv[j];                \
      }                                                                                     \
    }                                                                                       \
  }
KL_DEF_DENSE_CSR(float, f32)
KL_DEF_DENSE_CSR(double, f64)

static kl_status dot_dense_csr(kl_tensor *const *in, int nin, const kl_attrs *at,
                               kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(view_of(in, at, &v, &om));
  const kl_tensor *a = in[0], *b = in[1];
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_dense(om.dtype, om.ndim, om.shape, &o));
  if (om.dtype == KL_FLOAT32)
    dense_csr_f32(v.M, v.K, v.ta, a->data, b->indptr, b->indices, b->data, v.N, o->data);
  else
    dense_csr_f64(v.M, v.K, v.ta, a->data, b->indptr, b->indices, b->data, v.N, o->data);
  *out = o;
  return KL_OK;
}

static const kl_kernel_entry dot_kernels[] = {
    {"csr.dense", sup_csr_dense, dot_csr_x},
    {"csrT.dense", sup_csrT_dense, dot_csrT_x},
    {"csr.row_sparse", sup_csr_rsp, dot_csr_x},
    {"csrT.row_sparse", sup_csrT_rsp, dot_csrT_x},
    {"dense.csr", sup_dense_csr, dot_dense_csr},
    {NULL, NULL, NULL},
};

/* ----------------------------------------------------------------- backward */

/* Gradients of out = op(A) . op(B) with G = d loss / d out (M x N):
 *   dA = G . op(B)^T (stored K x M when transpose_a: op(B) . G^T),
 *   dB = op(A)^T . G (stored N x K when transpose_b: G^T . op(A)).
 * With a csr a and a 2-d b, dB = csr^T . G runs the csrT.dense kernel and is row_sparse
 * over the columns the batch touched: O(nnz x N), never O(rows of b). Inputs that are
 * csr are data: no gradient. The registry casts the result to the stype asked for. */
static kl_status dot_backward(kl_tensor *const *in, int nin, const kl_attrs *at,
                              const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                              kl_tensor **gin) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(view_of(in, at, &v, &om));
  KL_CHECK(i == 0 || i == 1, KL_EINVAL, "dot: backward: input %d out of range", i);
  KL_CHECK(in[i]->stype != KL_STYPE_CSR, KL_EUNSUPPORTED,
           "dot: no gradient with respect to the csr input %s", i ? "b" : "a");
  KL_CHECK(kl_tensor_numel(gout) == v.M * v.N && gout->dtype == om.dtype, KL_ESHAPE,
           "dot: backward: gout has %lld %s elements, expected %lld %s",
           (long long)kl_tensor_numel(gout), kl_dtype_name(gout->dtype),
           (long long)(v.M * v.N), kl_dtype_name(om.dtype));
  kl_tensor *g = NULL, *ad = NULL, *bd = NULL, *r = NULL;
  kl_status st = KL_OK;
  if (gout->stype == KL_STYPE_DEFAULT) g = kl_tensor_retain((kl_tensor *)gout);
  else st = kl_tensor_tostype(gout, KL_STYPE_DEFAULT, &g);
  if (st != KL_OK) goto done;
  if (i == 1 && in[0]->stype == KL_STYPE_CSR && in[1]->ndim == 2 && !v.tb) {
    /* sparse path: dB = op(A)^T . G with G as an M x N dense matrix */
    kl_attrs a2;
    memset(&a2, 0, sizeof a2);
    a2.transpose_a = !v.ta;
    kl_tensor *args[2] = {in[0], g};
    st = a2.transpose_a ? dot_csrT_x(args, 2, &a2, &r) : dot_csr_x(args, 2, &a2, &r);
    goto done;
  }
  if (in[0]->stype == KL_STYPE_DEFAULT) ad = kl_tensor_retain(in[0]);
  else st = kl_tensor_tostype(in[0], KL_STYPE_DEFAULT, &ad);
  if (st == KL_OK) {
    if (in[1]->stype == KL_STYPE_DEFAULT) bd = kl_tensor_retain(in[1]);
    else st = kl_tensor_tostype(in[1], KL_STYPE_DEFAULT, &bd);
  }
  if (st == KL_OK) st = kl_tensor_new_dense(om.dtype, in[i]->ndim, in[i]->shape, &r);
  if (st != KL_OK) goto done;
  const kl_dtype dt = om.dtype;
  if (i == 0 && !v.ta) st = gemm_rm(dt, 0, !v.tb, v.M, v.K, v.N, g->data, v.N, bd->data, v.bc, r->data);
  else if (i == 0) st = gemm_rm(dt, v.tb, 1, v.K, v.M, v.N, bd->data, v.bc, g->data, v.N, r->data);
  else if (!v.tb) st = gemm_rm(dt, !v.ta, 0, v.K, v.N, v.M, ad->data, v.ac, g->data, v.N, r->data);
  else st = gemm_rm(dt, 1, v.ta, v.N, v.K, v.M, g->data, v.N, ad->data, v.ac, r->data);
done:
  kl_tensor_release(g);
  kl_tensor_release(ad);
  kl_tensor_release(bd);
  if (st == KL_OK && r->stype != want) {
    kl_tensor *c = NULL;
    st = kl_tensor_tostype(r, want, &c);
    kl_tensor_release(r);
    r = c;
  }
  if (st != KL_OK) {
    kl_tensor_release(r);
    return st;
  }
  *gin = r;
  return KL_OK;
}

const kl_op_def kl_opdef_dot = {"dot", 2, 2, dot_infer, dot_dense, dot_kernels, dot_backward};
