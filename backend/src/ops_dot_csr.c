/* ops_dot_csr.c: csr (M x K) . dense or row_sparse -> dense (gathers of b's rows), and
 * dense . csr -> dense. */
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include "ops_dot_gather.h"


/* csr . f32 vector: rows [i0, i1) of y = a . x, each the sum of its entries' products in
 * entry order from +0 (gather's N == 1 sum). A batch's entries come from DRAM (W1's X is
 * 120 MB, W7's 470 MB, read once an epoch), and a sum waits on its entries: the entry
 * stream (indices and values) is fetched KL_DOT1_PFS entries ahead, a line at a time (W1's
 * forward, a batch of 64, over an epoch: 13.9-18.7 -> 10.4-11.3 ms). With pf (a vector
 * larger than L2) the vector's entries KL_PF1 ahead are fetched too. (Four rows summed side
 * by side, four add chains, measured 4.6 -> 3.1 us on a batch in cache but 13.4 -> 18.8 ms
 * over an epoch streamed from DRAM: not kept.) */
#define KL_DOT1_PFS 256
#define KL_DOT1_PAR_MIN 16384
static inline void dot1_rows(const void *av, const int64_t *restrict ci, const void *xv,
                             const int64_t *restrict ip, int64_t i0, int64_t i1, int64_t nnz,
                             int pf, void *yv) {
  const float *restrict v = av, *restrict x = xv;
  float *restrict y = yv;
  for (int64_t i = i0; i < i1; i++) {
    float acc = 0;
    const int64_t e = ip[i + 1];
    if (pf)
      for (int64_t j = ip[i]; j < e; j++) {
        if ((j & 7) == 0) {
          __builtin_prefetch(ci + j + KL_DOT1_PFS);
          __builtin_prefetch(v + j + KL_DOT1_PFS);
        }
        __builtin_prefetch(x + ci[j + KL_PF1 < nnz ? j + KL_PF1 : j]);
        acc += v[j] * x[ci[j]];
      }
    else
      for (int64_t j = ip[i]; j < e; j++) {
        if ((j & 7) == 0) {
          __builtin_prefetch(ci + j + KL_DOT1_PFS);
          __builtin_prefetch(v + j + KL_DOT1_PFS);
        }
        acc += v[j] * x[ci[j]];
      }
    y[i] = acc;
  }
}

/* csr (M x K) . dense or row_sparse (K x N, or a K vector) -> dense M x N (or M).
 * OpenMP static over rows.
 * A row_sparse b costs one binary search per stored entry of a (columns absent from b
 * contribute nothing). */
kl_status kl_dot_csr_x(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(kl_dot_view_of(in, at, &v, &om));
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
      /* csr . vector (every Dense(1) forward: W1, W2, W5, W7): every entry's row of b
       * exists, so no per-entry check; each row the same sequential sum as gather's N == 1
       * path (dot1_rows). A vector that stays in cache (W1's 10,000 weights) needs no
       * prefetch of its entries (it was 5 of 12 instructions an entry); a larger one (W5's
       * 10^6) is gathered from DRAM. Rows are split over the threads from KL_DOT1_PAR_MIN
       * entries (W7's 20,000 a batch of 512; was 32,768), in static halves: a row is one
       * thread's sum whatever the count. W1's batch of 64 (6,400 entries, ~8 us streamed
       * from DRAM) stays on one thread: split from 4,096 its epoch measured 32.1 ms at 1
       * thread and 34.2 ms at 2 on a quiet box (the stream is bandwidth-bound; a region
       * costs ~0.7 us there, tens of us when another process holds the other core). */
      const int pf = (size_t)b->shape[0] * sizeof(float) > KL_PF_MIN_BYTES;
      KL_PRAGMA(omp parallel if (nnz + M >= KL_DOT1_PAR_MIN && M > 1)) {
        const int T = omp_get_num_threads(), t = omp_get_thread_num();
        dot1_rows(av, rows, B, ip, M * t / T, M * (t + 1) / T, nnz, pf, y);
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

kl_status kl_dot_dense_csr(kl_tensor *const *in, int nin, const kl_attrs *at,
                               kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(kl_dot_view_of(in, at, &v, &om));
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
