/* ops_dot_csrT.c: csr^T (R x C, the result C x N) . dense or row_sparse (R x N) ->
 * row_sparse over the touched columns: the direct and column-map accumulators of a plan
 * step, the sorted path, and the plan's fused accumulators (direct, listed). */
#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include "kl/pool.h"
#include "ops_dot_gather.h"


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

/* The listed accumulator (plan_step.c's listed fused step): a weight too wide for the direct
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
 * path: the same bits. O(nnz x N + U) a call, the map O(C) memory once per plan. (A csr
 * with few columns takes the direct accumulator instead: the chooser's csrT.direct.)
 * Returns 0 (nothing done) when the map is not available. */
static int dot_csrT_spa(const kl_tensor *a, const kl_tensor *b, const kl_meta *om, int64_t N,
                        kl_tensor **out, kl_status *stp) {
  const int64_t C = a->shape[1], nnz = a->nnz;
  if (N < 1 || N > KL_SPA_MAXN || C > KL_SPA_MAXC || nnz >= (int64_t)UINT32_MAX) return 0;
  const kl_dtype dt = om->dtype;
  const size_t es = kl_dtype_size(dt);
  const size_t n1 = (size_t)(nnz > 0 ? nnz : 1);
  uint32_t *map = kl_pool_kept_zeroed(KL_KEPT_COLMAP, (size_t)(C > 0 ? C : 1) * sizeof *map);
  if (!map) return 0;
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
kl_status kl_dot_csrT_sorted(kl_tensor *const *in, int nin, const kl_attrs *at,
                             kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(kl_dot_view_of(in, at, &v, &om));
  const kl_tensor *a = in[0], *b = in[1];
  const int64_t R = a->shape[0], N = v.N, nnz = a->nnz;
  kl_status st = KL_OK;
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

/* ------------------------------------------------------------ the chooser's entries */

/* Whether the column-map accumulator takes a csr^T . b (the chooser has checked it is one:
 * a csr a, a 2-d b, transpose_a only; dtypes agree): inside a plan step (a current pool
 * holds the kept map), N in [1, KL_SPA_MAXN], at most KL_SPA_MAXC columns. */
int kl_dot_csrT_spa_applies(kl_tensor *const *in, const kl_attrs *at) {
  (void)at;
  const int64_t C = in[0]->shape[1], N = in[1]->shape[1];
  return kl_pool_current() && N >= 1 && N <= KL_SPA_MAXN && C <= KL_SPA_MAXC &&
         in[0]->nnz < (int64_t)UINT32_MAX;
}

/* ... and the direct accumulator: the same, with C x N values that fit (kl_dot_direct_fits). */
int kl_dot_csrT_direct_applies(kl_tensor *const *in, const kl_attrs *at) {
  return kl_dot_csrT_spa_applies(in, at) &&
         kl_dot_direct_fits(in[0]->shape[1], in[0]->nnz, in[1]->shape[1], in[0]->dtype);
}

/* The column map's path; when the pool cannot give the map (its allocation failed), the
 * sorted path: the same bits either way. */
kl_status kl_dot_csrT_spa(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(kl_dot_view_of(in, at, &v, &om));
  kl_status st = KL_OK;
  if (dot_csrT_spa(in[0], in[1], &om, v.N, out, &st)) return st;
  return kl_dot_csrT_sorted(in, nin, at, out);
}

/* The direct accumulator's path; when the pool cannot give its buffers, the column map's. */
kl_status kl_dot_csrT_direct(kl_tensor *const *in, int nin, const kl_attrs *at,
                             kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(kl_dot_view_of(in, at, &v, &om));
  const int64_t C = in[0]->shape[1];
  kl_status st = KL_OK;
  uint32_t *map = kl_pool_kept_zeroed(KL_KEPT_COLMAP, (size_t)(C > 0 ? C : 1) * sizeof *map);
  if (map && dot_csrT_direct(in[0], in[1], &om, v.N, map, out, &st)) return st;
  return kl_dot_csrT_spa(in, nin, at, out);
}
