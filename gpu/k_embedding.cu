/* k_embedding.cu: the Embedding op on the device: the forward gather (ids -> weight rows)
 * and the weight gradient as row_sparse over the batch's unique ids.
 *
 * Ids are data (int64, or integral float32 / float64): 0 is padding, k in 1..V reads weight
 * row k - 1. A bad id (out of range, not an integer, NaN) never traps: a check kernel
 * records the smallest bad position in a device scalar (an integer atomicMin, so the result
 * does not depend on thread order) and the gather writes zeros for it; the host reads the
 * scalar after the launch and raises the CPU's message (kl_cuda_embedding_id_error).
 *
 * The backward sorts (id, position) pairs by id (stable: k_sort.cu), finds the segments of
 * equal ids and sums each segment's gradient rows in position order from +0: the CPU's
 * bits (layers/embedding.c's emb_weight_grad), with no float atomics and no host wait
 * (the count of unique ids stays on the device; the sum launches over the npos bound). */
#include <math.h>

#include "kl_cuda_layers.h"
#include "kl_cuda_rt.h"

#define EMB_ALIGN 256

static size_t emb_align(size_t b) { return (b + EMB_ALIGN - 1) / EMB_ALIGN * EMB_ALIGN; }

/* The id of value v: 1 with *id set when it is an integer in [0, V], else 0. */
template <typename I> __device__ __forceinline__ int emb_id(I v, int64_t V, int64_t *id);
template <> __device__ __forceinline__ int emb_id<int64_t>(int64_t v, int64_t V, int64_t *id) {
  *id = v;
  return v >= 0 && v <= V;
}
template <> __device__ __forceinline__ int emb_id<float>(float v, int64_t V, int64_t *id) {
  const double d = (double)v;
  if (!(d == floor(d)) || d < 0 || d > (double)V) return 0; /* NaN and infinities too */
  *id = (int64_t)d;
  return 1;
}
template <> __device__ __forceinline__ int emb_id<double>(double v, int64_t V, int64_t *id) {
  if (!(v == floor(v)) || v < 0 || v > (double)V) return 0;
  *id = (int64_t)v;
  return 1;
}

/* Stored position of row r in a row_sparse weight's sorted rows widx[0..nnz), or -1. */
__device__ __forceinline__ int64_t emb_rsp_find(const int64_t *widx, int64_t nnz, int64_t V,
                                                int64_t r) {
  if (nnz == V) return r;
  int64_t lo = 0, hi = nnz;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (widx[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return lo < nnz && widx[lo] == r ? lo : -1;
}

static __global__ void k_emb_set(int64_t *p, int64_t v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *p = v;
}

template <typename I>
__global__ void k_emb_check(const I *ids, int64_t npos, int64_t V, int64_t *bad) {
  KL_GRID_LOOP(p, npos) {
    int64_t id;
    if (!emb_id<I>(ids[p], V, &id))
      atomicMin((unsigned long long *)bad, (unsigned long long)p);
  }
}

template <typename T, typename I>
__global__ void k_emb_gather(const I *ids, int64_t npos, const T *w, int64_t V, int64_t D,
                             const int64_t *widx, int64_t wnnz, T *out) {
  KL_GRID_LOOP(e, npos * D) {
    const int64_t p = e / D, j = e - p * D;
    int64_t id = 0, r = -1;
    if (emb_id<I>(ids[p], V, &id) && id > 0)
      r = widx ? emb_rsp_find(widx, wnnz, V, id - 1) : id - 1;
    out[e] = r >= 0 ? w[r * D + j] : (T)0;
  }
}

/* key[p] = the id at p, or 0 for padding and bad ids (they sort first and are skipped). */
template <typename I>
__global__ void k_emb_keys(const I *ids, int64_t npos, int64_t V, int64_t *key, int64_t *pos) {
  KL_GRID_LOOP(p, npos) {
    int64_t id = 0;
    if (!emb_id<I>(ids[p], V, &id)) id = 0;
    key[p] = id;
    pos[p] = p;
  }
}

/* head[t] = 1 where a run of equal non-zero sorted keys starts. */
static __global__ void k_emb_heads(const int64_t *key, int64_t n, int64_t *head) {
  KL_GRID_LOOP(t, n) head[t] = key[t] != 0 && (t == 0 || key[t] != key[t - 1]);
}

/* Segment u starts at gs[u] (u = seg[t] for each head t); gs[nu] = n; rows[u] = its row. */
static __global__ void k_emb_starts(const int64_t *key, const int64_t *head,
                                    const int64_t *seg, int64_t n, int64_t *gs, int64_t *rows,
                                    int64_t *nu) {
  KL_GRID_LOOP(t, n) {
    if (head[t]) {
      gs[seg[t]] = t;
      rows[seg[t]] = key[t] - 1;
    }
    if (t == n - 1) {
      gs[seg[n]] = n;
      *nu = seg[n];
    }
  }
}

/* Position p's gradient row is g's row p / bag (bag 1: Embedding's own; L: the fused mean's
 * per-sample row). */
template <typename T>
__global__ void k_emb_segsum(const int64_t *pos, const int64_t *gs, const int64_t *nu,
                             const T *g, int64_t npos, int64_t bag, int64_t D, T *vals) {
  const int64_t n_u = *nu;
  KL_GRID_LOOP(e, npos * D) {
    const int64_t u = e / D, j = e - u * D;
    if (u >= n_u) continue;
    T acc = (T)0; /* +0 + the first row, as the CPU: 0 + -0 is +0 */
    for (int64_t t = gs[u]; t < gs[u + 1]; t++) acc = acc + g[(pos[t] / bag) * D + j];
    vals[e] = acc;
  }
}

template <typename I>
static void launch_check(const void *ids, int64_t npos, int64_t V, int64_t *bad,
                         kl_cuda_stream s) {
  KL_LAUNCH(k_emb_check<I>, kl_cuda_blocks(npos), KL_CUDA_BLOCK, s, (const I *)ids, npos, V,
            bad);
}

template <typename T, typename I>
static void launch_gather(const void *ids, int64_t npos, const void *w, int64_t V, int64_t D,
                          const int64_t *widx, int64_t wnnz, void *out, kl_cuda_stream s) {
  auto kern = &k_emb_gather<T, I>; /* (a template-id with a comma cannot be a macro argument) */
  KL_LAUNCH(kern, kl_cuda_blocks(npos * D), KL_CUDA_BLOCK, s, (const I *)ids, npos,
            (const T *)w, V, D, widx, wnnz, (T *)out);
}

static kl_status emb_args(const char *fn, kl_dtype ids_dt, int64_t npos, kl_dtype dt,
                          int64_t V, int64_t D) {
  if (ids_dt != KL_INT64 && ids_dt != KL_FLOAT32 && ids_dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "%s: ids dtype %s not supported", fn,
                          kl_cuda_dtype_name(ids_dt));
  if (dt != KL_FLOAT32 && dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "%s: weight must be float32 or float64, got %s", fn,
                          kl_cuda_dtype_name(dt));
  if (npos < 0 || V < 0 || D < 0 || (D > 0 && npos > INT64_MAX / D))
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes npos=%lld V=%lld D=%lld", fn,
                          (long long)npos, (long long)V, (long long)D);
  return KL_OK;
}

extern "C" kl_status kl_cuda_embedding_forward(kl_dtype ids_dt, const void *ids, int64_t npos,
                                               kl_dtype dt, const void *w, int64_t V,
                                               int64_t D, const int64_t *w_idx, int64_t w_nnz,
                                               void *out, int64_t *bad, kl_cuda_stream s) {
  const char *fn = "cuda embedding_forward";
  kl_status st = emb_args(fn, ids_dt, npos, dt, V, D);
  if (st != KL_OK) return st;
  if (w_idx && (w_nnz < 0 || w_nnz > V))
    return kl_cuda_seterr(KL_EINDEX, "%s: weight stores %lld rows of %lld", fn,
                          (long long)w_nnz, (long long)V);
  KL_LAUNCH(k_emb_set, 1, 1, s, bad, npos);
  if ((st = kl_cuda_launched(fn)) != KL_OK || npos == 0) return st;
  if (ids_dt == KL_INT64) launch_check<int64_t>(ids, npos, V, bad, s);
  else if (ids_dt == KL_FLOAT32) launch_check<float>(ids, npos, V, bad, s);
  else launch_check<double>(ids, npos, V, bad, s);
  if ((st = kl_cuda_launched(fn)) != KL_OK || D == 0) return st;
  if (dt == KL_FLOAT32) {
    if (ids_dt == KL_INT64) launch_gather<float, int64_t>(ids, npos, w, V, D, w_idx, w_nnz, out, s);
    else if (ids_dt == KL_FLOAT32) launch_gather<float, float>(ids, npos, w, V, D, w_idx, w_nnz, out, s);
    else launch_gather<float, double>(ids, npos, w, V, D, w_idx, w_nnz, out, s);
  } else {
    if (ids_dt == KL_INT64) launch_gather<double, int64_t>(ids, npos, w, V, D, w_idx, w_nnz, out, s);
    else if (ids_dt == KL_FLOAT32) launch_gather<double, float>(ids, npos, w, V, D, w_idx, w_nnz, out, s);
    else launch_gather<double, double>(ids, npos, w, V, D, w_idx, w_nnz, out, s);
  }
  return kl_cuda_launched(fn);
}

/* Scratch: key, pos, head (npos each), seg and gs (npos + 1 each), then the sort's and the
 * scan's scratch (the sort runs before the scan: they share the space). */
extern "C" size_t kl_cuda_embedding_backward_scratch(int64_t npos) {
  if (npos <= 0) return 0;
  const size_t a = emb_align((size_t)npos * sizeof(int64_t));
  const size_t b = emb_align((size_t)(npos + 1) * sizeof(int64_t));
  const size_t so = kl_cuda_sort_scratch(npos), sc = kl_cuda_scan_scratch(npos);
  return 3 * a + 2 * b + emb_align(so > sc ? so : sc);
}

extern "C" kl_status kl_cuda_embedding_backward(kl_dtype ids_dt, const void *ids, int64_t npos,
                                                kl_dtype dt, const void *g, int64_t V,
                                                int64_t D, void *scratch, int64_t *rows,
                                                void *vals, int64_t *nu, int64_t *bad,
                                                kl_cuda_stream s) {
  return kl_cuda_embedding_bag_backward(ids_dt, ids, npos, 1, dt, g, V, D, scratch, rows, vals,
                                        nu, bad, s);
}

extern "C" kl_status kl_cuda_embedding_bag_backward(kl_dtype ids_dt, const void *ids,
                                                    int64_t npos, int64_t bag, kl_dtype dt,
                                                    const void *g, int64_t V, int64_t D,
                                                    void *scratch, int64_t *rows, void *vals,
                                                    int64_t *nu, int64_t *bad,
                                                    kl_cuda_stream s) {
  const char *fn = "cuda embedding_backward";
  kl_status st = emb_args(fn, ids_dt, npos, dt, V, D);
  if (st != KL_OK) return st;
  if (npos > 0 && (bag < 1 || npos % bag != 0))
    return kl_cuda_seterr(KL_ESHAPE, "%s: bag %lld does not divide npos=%lld", fn,
                          (long long)bag, (long long)npos);
  KL_LAUNCH(k_emb_set, 1, 1, s, bad, npos);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  KL_LAUNCH(k_emb_set, 1, 1, s, nu, (int64_t)0);
  if ((st = kl_cuda_launched(fn)) != KL_OK || npos == 0) return st;
  const size_t a = emb_align((size_t)npos * sizeof(int64_t));
  const size_t b = emb_align((size_t)(npos + 1) * sizeof(int64_t));
  char *p = (char *)scratch;
  int64_t *key = (int64_t *)p, *pos = (int64_t *)(p + a), *head = (int64_t *)(p + 2 * a);
  int64_t *seg = (int64_t *)(p + 3 * a), *gs = (int64_t *)(p + 3 * a + b);
  void *rest = p + 3 * a + 2 * b;
  if (ids_dt == KL_INT64) {
    launch_check<int64_t>(ids, npos, V, bad, s);
    KL_LAUNCH(k_emb_keys<int64_t>, kl_cuda_blocks(npos), KL_CUDA_BLOCK, s, (const int64_t *)ids,
              npos, V, key, pos);
  } else if (ids_dt == KL_FLOAT32) {
    launch_check<float>(ids, npos, V, bad, s);
    KL_LAUNCH(k_emb_keys<float>, kl_cuda_blocks(npos), KL_CUDA_BLOCK, s, (const float *)ids,
              npos, V, key, pos);
  } else {
    launch_check<double>(ids, npos, V, bad, s);
    KL_LAUNCH(k_emb_keys<double>, kl_cuda_blocks(npos), KL_CUDA_BLOCK, s, (const double *)ids,
              npos, V, key, pos);
  }
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_sort_pairs(key, pos, npos, V, rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_emb_heads, kl_cuda_blocks(npos), KL_CUDA_BLOCK, s, key, npos, head);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if ((st = kl_cuda_scan_i64(head, seg, npos, rest, s)) != KL_OK) return st;
  KL_LAUNCH(k_emb_starts, kl_cuda_blocks(npos), KL_CUDA_BLOCK, s, key, head, seg, npos, gs, rows,
            nu);
  if ((st = kl_cuda_launched(fn)) != KL_OK || D == 0) return st;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_emb_segsum<float>, kl_cuda_blocks(npos * D), KL_CUDA_BLOCK, s, pos, gs, nu,
              (const float *)g, npos, bag, D, (float *)vals);
  else
    KL_LAUNCH(k_emb_segsum<double>, kl_cuda_blocks(npos * D), KL_CUDA_BLOCK, s, pos, gs, nu,
              (const double *)g, npos, bag, D, (double *)vals);
  return kl_cuda_launched(fn);
}

/* ------------------------------------------------------------------ the fused mean */

/* layers/embedding.c's masked_scale: 1 / sample b's ids that are not 0 (bad ids, flagged
 * apart, count as padding here), or 0 without any. */
template <typename I>
__device__ __forceinline__ double emb_masked_scale(const I *ids, int64_t b, int64_t L,
                                                   int64_t V) {
  int64_t c = 0;
  for (int64_t l = 0; l < L; l++) {
    int64_t id = 0;
    c += emb_id<I>(ids[b * L + l], V, &id) && id != 0;
  }
  return c > 0 ? 1.0 / (double)c : 0.0;
}

/* One thread a (sample, feature): EMB_MEAN_ROWS's acc[j] over the sample's ids in order. */
template <typename T, typename I>
__global__ void k_emb_mean(const I *ids, int64_t n, int64_t L, const T *w, int64_t V,
                           int64_t D, int masked, double scale, T *y) {
  KL_GRID_LOOP(e, n * D) {
    const int64_t b = e / D, j = e - b * D;
    double acc = 0;
    for (int64_t l = 0; l < L; l++) {
      int64_t id = 0;
      if (emb_id<I>(ids[b * L + l], V, &id) && id > 0) acc += w[(id - 1) * D + j];
    }
    y[e] = (T)(acc * (masked ? emb_masked_scale<I>(ids, b, L, V) : scale));
  }
}

template <typename T, typename I>
__global__ void k_emb_mean_scale(const I *ids, int64_t n, int64_t L, int64_t V, const T *g,
                                 int64_t D, int masked, double scale, T *gs) {
  KL_GRID_LOOP(e, n * D) {
    const int64_t b = e / D;
    gs[e] = (T)((double)g[e] * (masked ? emb_masked_scale<I>(ids, b, L, V) : scale));
  }
}

template <typename T, typename I>
static void launch_mean(const void *ids, int64_t n, int64_t L, const void *w, int64_t V,
                        int64_t D, int masked, double scale, void *y, kl_cuda_stream s) {
  auto kern = &k_emb_mean<T, I>;
  KL_LAUNCH(kern, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (const I *)ids, n, L, (const T *)w,
            V, D, masked, scale, (T *)y);
}

template <typename T, typename I>
static void launch_mean_scale(const void *ids, int64_t n, int64_t L, int64_t V, const void *g,
                              int64_t D, int masked, double scale, void *gs, kl_cuda_stream s) {
  auto kern = &k_emb_mean_scale<T, I>;
  KL_LAUNCH(kern, kl_cuda_blocks(n * D), KL_CUDA_BLOCK, s, (const I *)ids, n, L, V,
            (const T *)g, D, masked, scale, (T *)gs);
}

extern "C" kl_status kl_cuda_embedding_mean(kl_dtype ids_dt, const void *ids, int64_t n,
                                            int64_t L, kl_dtype dt, const void *w, int64_t V,
                                            int64_t D, int masked, void *y, int64_t *bad,
                                            kl_cuda_stream s) {
  const char *fn = "cuda embedding_mean";
  kl_status st = emb_args(fn, ids_dt, n, dt, V, D);
  if (st == KL_OK && (L < 0 || (L > 0 && n > INT64_MAX / L)))
    st = kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes n=%lld L=%lld", fn, (long long)n, (long long)L);
  if (st != KL_OK) return st;
  const int64_t npos = n * L;
  const double scale = 1.0 / (double)L; /* L == 0: NaN, as the mean of nothing */
  KL_LAUNCH(k_emb_set, 1, 1, s, bad, npos);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if (npos > 0) {
    if (ids_dt == KL_INT64) launch_check<int64_t>(ids, npos, V, bad, s);
    else if (ids_dt == KL_FLOAT32) launch_check<float>(ids, npos, V, bad, s);
    else launch_check<double>(ids, npos, V, bad, s);
    if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  }
  if (n * D == 0) return KL_OK;
  if (dt == KL_FLOAT32) {
    if (ids_dt == KL_INT64) launch_mean<float, int64_t>(ids, n, L, w, V, D, masked, scale, y, s);
    else if (ids_dt == KL_FLOAT32) launch_mean<float, float>(ids, n, L, w, V, D, masked, scale, y, s);
    else launch_mean<float, double>(ids, n, L, w, V, D, masked, scale, y, s);
  } else {
    if (ids_dt == KL_INT64) launch_mean<double, int64_t>(ids, n, L, w, V, D, masked, scale, y, s);
    else if (ids_dt == KL_FLOAT32) launch_mean<double, float>(ids, n, L, w, V, D, masked, scale, y, s);
    else launch_mean<double, double>(ids, n, L, w, V, D, masked, scale, y, s);
  }
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_embedding_mean_scale(kl_dtype ids_dt, const void *ids, int64_t n,
                                                  int64_t L, kl_dtype dt, const void *g,
                                                  int64_t D, int masked, void *gs,
                                                  kl_cuda_stream s) {
  const char *fn = "cuda embedding_mean_scale";
  /* V only bounds the ids for the masked count: a bad id was refused before this runs */
  kl_status st = emb_args(fn, ids_dt, n, dt, 0, D);
  if (st == KL_OK && (L < 0 || (L > 0 && n > INT64_MAX / L)))
    st = kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes n=%lld L=%lld", fn, (long long)n, (long long)L);
  if (st != KL_OK || n * D == 0) return st;
  const double scale = 1.0 / (double)L;
  const int64_t V = INT64_MAX;
  if (dt == KL_FLOAT32) {
    if (ids_dt == KL_INT64) launch_mean_scale<float, int64_t>(ids, n, L, V, g, D, masked, scale, gs, s);
    else if (ids_dt == KL_FLOAT32) launch_mean_scale<float, float>(ids, n, L, V, g, D, masked, scale, gs, s);
    else launch_mean_scale<float, double>(ids, n, L, V, g, D, masked, scale, gs, s);
  } else {
    if (ids_dt == KL_INT64) launch_mean_scale<double, int64_t>(ids, n, L, V, g, D, masked, scale, gs, s);
    else if (ids_dt == KL_FLOAT32) launch_mean_scale<double, float>(ids, n, L, V, g, D, masked, scale, gs, s);
    else launch_mean_scale<double, double>(ids, n, L, V, g, D, masked, scale, gs, s);
  }
  return kl_cuda_launched(fn);
}
