/* layers/embedding.c: the embedding op (ids -> rows of a weight) and its row_sparse gradient. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "kl/device.h"
#include "layers_util.h"
#include "tensor_internal.h"

/* The row loops below (the fused mean's sums and the weight gradient's) are built for AVX2
 * and for the baseline on x86-64 Linux with GCC, the one to run chosen at load (ifunc), as
 * the optimizer's row loops (backend/src/optim_rows.h): the same correctly rounded adds in
 * the same order at any vector width (no FMA), hence the same bits. */
#ifndef KL_EMB_CLONES
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define KL_EMB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KL_EMB_CLONES
#endif
#endif

/* Output elements below this count are gathered on one thread. */
#define EMB_PAR_MIN 32768

static kl_status emb_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  char s[128];
  KL_CHECK(nin == 2, KL_EINVAL, "Embedding: expected 2 inputs (ids, weight), got %d", nin);
  KL_CHECK(in[0].ndim == 1 || in[0].ndim == 2, KL_ESHAPE,
           "Embedding: ids must have shape (n) or (n, L), got (%s)",
           kl_lu_shape_str(s, sizeof s, in[0].ndim, in[0].shape));
  KL_CHECK(in[0].stype == KL_STYPE_DEFAULT, KL_ESTYPE, "Embedding: ids must be dense, got %s",
           kl_stype_name(in[0].stype));
  KL_CHECK(in[1].ndim == 2, KL_ESHAPE, "Embedding: weight must have shape (V, D), got (%s)",
           kl_lu_shape_str(s, sizeof s, in[1].ndim, in[1].shape));
  KL_CHECK(kl_is_float(in[1].dtype), KL_EDTYPE,
           "Embedding: weight must be float32 or float64, got %s", kl_dtype_name(in[1].dtype));
  KL_CHECK(in[1].stype == KL_STYPE_DEFAULT || in[1].stype == KL_STYPE_ROW_SPARSE, KL_ESTYPE,
           "Embedding: weight must be default or row_sparse, got %s", kl_stype_name(in[1].stype));
  KL_CHECK(!a || a->ival <= 0 || a->ival == in[1].shape[0], KL_ESHAPE,
           "Embedding: weight has %lld rows but input_dim=%lld", (long long)in[1].shape[0],
           (long long)a->ival);
  out->dtype = in[1].dtype;
  out->stype = KL_STYPE_DEFAULT;
  out->ndim = in[0].ndim + 1;
  out->shape[0] = in[0].shape[0];
  if (in[0].ndim == 2) out->shape[1] = in[0].shape[1];
  out->shape[out->ndim - 1] = in[1].shape[1];
  return KL_OK;
}

/* Id at flat position p (validated beforehand by ids_check). */
static inline int64_t id_at(const kl_tensor *ids, int64_t p) {
  if (ids->dtype == KL_INT64) return ((const int64_t *)ids->data)[p];
  return (int64_t)kl_lu_read(ids->data, ids->dtype, p);
}

/* Every id must be an integer in [0, V]; the first bad one is reported with its 1-based
 * position as the user sees it: "(row, col)" or "(row)". */
static kl_status ids_check(const kl_tensor *ids, int64_t V) {
  int64_t n = kl_tensor_numel(ids), L = ids->ndim == 2 ? ids->shape[1] : 1;
  char pos[64];
  if (ids->dtype == KL_INT64) { /* the common case, branch-free; the loop below names the culprit */
    const int64_t *iv = ids->data;
    int ok = 1;
    for (int64_t p = 0; p < n; p++) ok &= (iv[p] >= 0) & (iv[p] <= V);
    if (ok) return KL_OK;
  }
  for (int64_t p = 0; p < n; p++) {
    int bad_int = 0, bad_range = 0;
    double v = 0;
    int64_t iv = 0;
    if (ids->dtype == KL_INT64) {
      iv = ((const int64_t *)ids->data)[p];
      bad_range = iv < 0 || iv > V;
    } else {
      v = kl_lu_read(ids->data, ids->dtype, p);
      if (!(v == floor(v)))
        bad_int = 1; /* also NaN and infinities */
      else
        bad_range = v < 0 || v > (double)V;
    }
    if (!bad_int && !bad_range) continue;
    if (ids->ndim == 2)
      snprintf(pos, sizeof pos, "(%lld, %lld)", (long long)(p / L + 1), (long long)(p % L + 1));
    else
      snprintf(pos, sizeof pos, "(%lld)", (long long)(p + 1));
    if (bad_int)
      return kl_seterr(KL_EINDEX, "Embedding: id %.15g is not an integer at position %s", v, pos);
    if (ids->dtype == KL_INT64)
      return kl_seterr(KL_EINDEX, "Embedding: id %lld out of range [0, %lld] at position %s",
                       (long long)iv, (long long)V, pos);
    return kl_seterr(KL_EINDEX, "Embedding: id %.15g out of range [0, %lld] at position %s", v,
                     (long long)V, pos);
  }
  return KL_OK;
}

/* Stored position of weight row r (0-based) in a row_sparse weight, or -1 when absent. */
static inline int64_t rsp_find(const kl_tensor *w, int64_t r) {
  if (w->nnz == w->shape[0]) return r; /* all rows stored: indices are 0..V-1 */
  int64_t lo = 0, hi = w->nnz;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (w->indices[mid] < r)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < w->nnz && w->indices[lo] == r ? lo : -1;
}

/* Rows prefetched ahead in the forward gather. */
#define EMB_PF 8

/* out[p, :] = weight row ids[p]-1, or zeros for padding (0) and absent row_sparse rows. */
static kl_status emb_forward(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  kl_meta m[2], om;
  kl_tensor *o = NULL;
  KL_CHECK(nin == 2 && in[0] && in[1], KL_EINVAL, "Embedding: expected 2 inputs (ids, weight)");
  kl_tensor_meta(in[0], &m[0]);
  kl_tensor_meta(in[1], &m[1]);
  KL_TRY(emb_infer(m, nin, a, &om));
  const kl_tensor *ids = in[0], *w = in[1];
  int64_t V = w->shape[0], D = w->shape[1], npos = kl_tensor_numel(ids);
  KL_TRY(ids_check(ids, V));
  /* every row is written below: copied, or zeroed for padding and absent rows */
  KL_TRY(kl_tensor_new_dense_uninit(om.dtype, om.ndim, om.shape, &o));
  size_t es = kl_dtype_size(om.dtype), rowb = (size_t)D * es;
  int sparse = w->stype == KL_STYPE_ROW_SPARSE;
  char *dst = (char *)o->data;
  const char *src = (const char *)w->data;
#pragma omp parallel for schedule(static) if (npos * D >= EMB_PAR_MIN)
  for (int64_t p = 0; p < npos; p++) {
    /* The rows are random in the weight (W3: 5,120 of 10 M rows, DRAM misses): fetch the
     * row EMB_PF positions ahead while this one is copied. */
    if (!sparse && p + EMB_PF < npos) {
      int64_t nx = id_at(ids, p + EMB_PF);
      if (nx > 0 && nx <= V)
        for (size_t b = 0; b < rowb; b += 64)
          __builtin_prefetch(src + (size_t)(nx - 1) * rowb + b);
    }
    int64_t id = id_at(ids, p), r = -1;
    if (id > 0) r = sparse ? rsp_find(w, id - 1) : id - 1;
    if (r >= 0)
      memcpy(dst + (size_t)p * rowb, src + (size_t)r * rowb, rowb);
    else
      memset(dst + (size_t)p * rowb, 0, rowb);
  }
  *out = o;
  return KL_OK;
}

static int emb_supports_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_DEFAULT && in[1]->stype == KL_STYPE_ROW_SPARSE;
}

static const kl_kernel_entry emb_kernels[] = {
    {"dense.row_sparse", emb_supports_rsp, emb_forward},
    {NULL, NULL, NULL},
};

/* (layers_util.h) Equal keys keep their position order, so the gradient sums below run in a
 * fixed order. */
void kl_lu_radix_sort(int64_t *key, int64_t *pos, int64_t *tk, int64_t *tp, int64_t m,
                       int64_t maxkey) {
  int64_t *ka = key, *pa = pos, *kb = tk, *pb = tp;
  for (int shift = 0; shift < 64 && (maxkey >> shift) > 0; shift += 8) {
    int64_t cnt[257];
    memset(cnt, 0, sizeof cnt);
    for (int64_t t = 0; t < m; t++) cnt[((ka[t] >> shift) & 255) + 1]++;
    for (int d = 0; d < 256; d++) cnt[d + 1] += cnt[d];
    for (int64_t t = 0; t < m; t++) {
      int64_t at = cnt[(ka[t] >> shift) & 255]++;
      kb[at] = ka[t];
      pb[at] = pa[t];
    }
    int64_t *s = ka; ka = kb; kb = s;
    s = pa; pa = pb; pb = s;
  }
  if (ka != key) {
    memcpy(key, ka, (size_t)m * sizeof(int64_t));
    memcpy(pos, pa, (size_t)m * sizeof(int64_t));
  }
}

/* 32-byte vectors (GCC vector extensions; two SSE registers each in the baseline clone). */
typedef float emb_v8f __attribute__((vector_size(32)));
typedef float emb_v4f __attribute__((vector_size(16)));
typedef double emb_v4d __attribute__((vector_size(32)));
/* ... as unaligned memory (rows of any D start anywhere) */
typedef float emb_v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float emb_v4f_u __attribute__((vector_size(16), aligned(4), may_alias));
typedef double emb_v4d_u __attribute__((vector_size(32), aligned(8), may_alias));

/* row[0..D) = the sum, from +0 in t order, of gout's rows for positions pos[t0..t1): a
 * position's own row (Embedding), or, for the fused Embedding -> mean over the bag ids of a
 * sample (bag > 0), that sample's row (already scaled by 1/bag). The first row is added to
 * +0 (not copied: 0 + -0 is +0), so a row_sparse result needs no zero fill first. Columns
 * in register tiles of NV vectors of LANES (64, 32, 16, 8 f32 / 32, 16, 8, 4 f64 wide), the
 * rest one at a time: row is written once; each element is the same sum in the same order
 * whatever the tile. */
#define EMB_SUM_TILE(S, T, VT, VU, LANES, NV)                                                     \
  static inline __attribute__((always_inline)) void emb_sum_tile_##S##_##NV(                  \
      T *restrict row, const T *restrict gd, const int64_t *restrict pos, int64_t t0,        \
      int64_t t1, int64_t bag, int64_t D, int64_t n0) {                                      \
    VT acc[NV];                                                                              \
    for (int q = 0; q < NV; q++) acc[q] = (VT){0};                                           \
    for (int64_t t = t0; t < t1; t++) {                                                      \
      const int64_t p_ = pos[t];                                                             \
      const T *restrict gr = gd + (size_t)(bag > 0 ? p_ / bag : p_) * (size_t)D + n0;        \
      for (int q = 0; q < NV; q++) acc[q] += *(const VU *)(gr + q * (LANES));                \
    }                                                                                        \
    for (int q = 0; q < NV; q++) *(VU *)(row + n0 + q * (LANES)) = acc[q];                   \
  }
#define EMB_SUM_ROW(S, T, VT, VU, LANES)                                                      \
  EMB_SUM_TILE(S, T, VT, VU, LANES, 8)                                                        \
  EMB_SUM_TILE(S, T, VT, VU, LANES, 4)                                                        \
  EMB_SUM_TILE(S, T, VT, VU, LANES, 2)                                                        \
  EMB_SUM_TILE(S, T, VT, VU, LANES, 1)                                                        \
  KL_EMB_CLONES static void emb_sum_row_##S(T *restrict row, const T *restrict gd,           \
                                            const int64_t *restrict pos, int64_t t0,          \
                                            int64_t t1, int64_t bag, int64_t D) {             \
    int64_t n0 = 0;                                                                          \
    for (; n0 + 8 * (LANES) <= D; n0 += 8 * (LANES))                                         \
      emb_sum_tile_##S##_8(row, gd, pos, t0, t1, bag, D, n0);                                \
    if (n0 + 4 * (LANES) <= D) {                                                             \
      emb_sum_tile_##S##_4(row, gd, pos, t0, t1, bag, D, n0);                                \
      n0 += 4 * (LANES);                                                                     \
    }                                                                                        \
    if (n0 + 2 * (LANES) <= D) {                                                             \
      emb_sum_tile_##S##_2(row, gd, pos, t0, t1, bag, D, n0);                                \
      n0 += 2 * (LANES);                                                                     \
    }                                                                                        \
    if (n0 + (LANES) <= D) {                                                                 \
      emb_sum_tile_##S##_1(row, gd, pos, t0, t1, bag, D, n0);                                \
      n0 += (LANES);                                                                         \
    }                                                                                        \
    for (; n0 < D; n0++) {                                                                   \
      T acc = 0;                                                                             \
      for (int64_t t = t0; t < t1; t++) {                                                    \
        const int64_t p_ = pos[t];                                                           \
        acc += gd[(size_t)(bag > 0 ? p_ / bag : p_) * (size_t)D + n0];                       \
      }                                                                                      \
      row[n0] = acc;                                                                         \
    }                                                                                        \
  }
EMB_SUM_ROW(f32, float, emb_v8f, emb_v8f_u, 8)
EMB_SUM_ROW(f64, double, emb_v4d, emb_v4d_u, 4)
#define EMB_SUM_ROWS(T, S)                                                           \
  {                                                                                  \
    const T *gd = (const T *)g->data;                                                \
    T *od = (T *)o->data;                                                            \
    _Pragma("omp parallel for schedule(static) if (m * D >= EMB_PAR_MIN)")           \
    for (int64_t u = 0; u < nu; u++)                                                 \
      emb_sum_row_##S(od + (size_t)(dense ? emb_key(px, key, gs[u]) - 1 : u) * (size_t)D, \
                      gd, pos, gs[u], gs[u + 1], bag, D);                            \
  }

/* The id of sorted entry t: from the packed words px, else from key. */
static inline int64_t emb_key(const uint64_t *px, const int64_t *key, int64_t t) {
  return px ? (int64_t)(px[t] >> 32) : key[t];
}

/* Stable LSD radix sort of x[0..n) = (id << 32 | position) by id (ids < 2^bits): the digits
 * read from the words themselves, ceil(bits / 11) passes of equal width (V = 10^4: 2 of 7
 * bits; 10^7: 3 of 8), the counts on the stack. Equal ids keep their position order, so the
 * gradient sums below run in position order, as with kl_lu_radix_sort's pairs. Returns the
 * buffer holding the result (x or tmp). */
static uint64_t *emb_sort_packed(uint64_t *x, uint64_t *tmp, int64_t n, int bits) {
  if (bits <= 0 || n <= 1) return x;
  const int passes = (bits + 10) / 11, wd = (bits + passes - 1) / passes;
  const uint64_t mask = ((uint64_t)1 << wd) - 1;
  int64_t count[2048];
  for (int q = 0, shift = 32; q < passes; q++, shift += wd) {
    memset(count, 0, (size_t)(mask + 1) * sizeof *count);
    for (int64_t p = 0; p < n; p++) count[(x[p] >> shift) & mask]++;
    int64_t sum = 0;
    for (uint64_t d = 0; d <= mask; d++) {
      const int64_t c = count[d];
      count[d] = sum;
      sum += c;
    }
    for (int64_t p = 0; p < n; p++) tmp[count[(x[p] >> shift) & mask]++] = x[p];
    uint64_t *t = x;
    x = tmp;
    tmp = t;
  }
  return x;
}

/* Weight gradient: row k-1 gets the sum of gout's rows at the positions holding id k,
 * summed in position order. Row_sparse over the batch's sorted unique ids (padding left
 * out), or dense (V, D) when want is KL_STYPE_DEFAULT. Costs O(m log V / 8 + nu * D)
 * for m non-padding ids and nu unique ones, never O(V) unless the dense form is asked.
 * bag > 0: g is (n, D), one row per sample of bag ids, and position p's gradient row is
 * g's row p / bag (the fused mean: kl_embedding_mean_backward scales g first). */
static kl_status emb_weight_grad(const kl_tensor *ids, const kl_tensor *w, const kl_tensor *g,
                                 int64_t bag, kl_stype want, kl_tensor **gin) {
  int64_t V = w->shape[0], D = w->shape[1], npos = kl_tensor_numel(ids), m = 0, nu = 0;
  int64_t *buf = NULL, *key, *pos, *gs;
  kl_tensor *o = NULL;
  kl_status st = KL_OK;
  int dense = want != KL_STYPE_ROW_SPARSE;
  buf = kl_malloc_n((size_t)(5 * npos + 1), sizeof(int64_t));
  if (!buf) return KL_ENOMEM;
  key = buf;
  pos = buf + npos;
  gs = buf + 4 * npos;
  uint64_t *px = NULL; /* the packed path's sorted (id, position) words, else NULL */
  if (npos <= (int64_t)UINT32_MAX && V <= (int64_t)UINT32_MAX) {
    /* (id << 32 | position) words sorted by id (emb_sort_packed): one word moved a pass
     * where the pair path moves two; then the positions unpacked for the sums */
    uint64_t *x = (uint64_t *)buf, *tmp = (uint64_t *)(buf + npos);
    pos = buf + 2 * npos;
    if (ids->dtype == KL_INT64) {
      const int64_t *iv = ids->data;
      for (int64_t p = 0; p < npos; p++) {
        x[m] = (uint64_t)iv[p] << 32 | (uint64_t)p;
        m += iv[p] > 0;
      }
    } else {
      for (int64_t p = 0; p < npos; p++) {
        const int64_t id = id_at(ids, p);
        x[m] = (uint64_t)id << 32 | (uint64_t)p;
        m += id > 0;
      }
    }
    int bits = 0;
    while (bits < 32 && (V >> bits) > 0) bits++;
    px = emb_sort_packed(x, tmp, m, bits);
    for (int64_t t = 0; t < m; t++) {
      pos[t] = (int64_t)(px[t] & 0xffffffffu);
      gs[nu] = t;
      nu += t == 0 || (px[t] >> 32) != (px[t - 1] >> 32);
    }
  } else {
    for (int64_t p = 0; p < npos; p++) {
      int64_t id = id_at(ids, p);
      if (id > 0) {
        key[m] = id;
        pos[m++] = p;
      }
    }
    kl_lu_radix_sort(key, pos, buf + 2 * npos, buf + 3 * npos, m, V);
    for (int64_t t = 0; t < m; t++)
      if (t == 0 || key[t] != key[t - 1]) gs[nu++] = t;
  }
  gs[nu] = m; /* gs has npos + 1 slots and nu <= npos */
  if (dense) {
    int64_t shp[2] = {V, D};
    st = kl_tensor_new_dense(w->dtype, 2, shp, &o);
  } else {
    st = kl_tensor_new_rsp(w->dtype, 2, w->shape, nu, &o);
    if (st == KL_OK) {
      if (px)
        for (int64_t u = 0; u < nu; u++) o->indices[u] = (int64_t)(px[gs[u]] >> 32) - 1;
      else
        for (int64_t u = 0; u < nu; u++) o->indices[u] = key[gs[u]] - 1;
    }
  }
  if (st != KL_OK) goto done;
  if (w->dtype == KL_FLOAT32)
    EMB_SUM_ROWS(float, f32)
  else
    EMB_SUM_ROWS(double, f64)
done:
  kl_free(buf);
  if (st != KL_OK) {
    kl_tensor_release(o);
    return st;
  }
  *gin = o;
  return KL_OK;
}

/* Backward: ids (i == 0) have no gradient; the weight's (i == 1) is emb_weight_grad's. */
static kl_status emb_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                              const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                              kl_tensor **gin) {
  kl_meta m[2], om;
  kl_tensor *gc = NULL;
  char sg[128], so[128];
  kl_status st;
  KL_CHECK(nin == 2 && in[0] && in[1], KL_EINVAL, "Embedding: expected 2 inputs (ids, weight)");
  KL_CHECK(i != 0, KL_EUNSUPPORTED, "Embedding: the ids (input 0) have no gradient");
  KL_CHECK(i == 1, KL_EINVAL, "Embedding: no input %d (0 = ids, 1 = weight)", i);
  kl_tensor_meta(in[0], &m[0]);
  kl_tensor_meta(in[1], &m[1]);
  KL_TRY(emb_infer(m, nin, a, &om));
  KL_CHECK(gout && gout->stype == KL_STYPE_DEFAULT && kl_is_float(gout->dtype), KL_EINVAL,
           "Embedding: gout must be a dense float tensor");
  KL_CHECK(gout->ndim == om.ndim &&
               memcmp(gout->shape, om.shape, sizeof(int64_t) * (size_t)om.ndim) == 0,
           KL_ESHAPE, "Embedding: gout shape (%s) does not match the output shape (%s)",
           kl_lu_shape_str(sg, sizeof sg, gout->ndim, gout->shape),
           kl_lu_shape_str(so, sizeof so, om.ndim, om.shape));
  KL_TRY(ids_check(in[0], in[1]->shape[0]));
  if (gout->dtype != om.dtype) KL_TRY(kl_tensor_astype(gout, om.dtype, &gc));
  st = emb_weight_grad(in[0], in[1], gc ? gc : gout, 0, want, gin);
  kl_tensor_release(gc);
  return st;
}

const kl_op_def kl_opdef_embedding = {"embedding", 2, 2, emb_infer, emb_forward, emb_kernels,
                                      emb_backward};

/* ---------------------------------------------------- Embedding -> mean (the plan's fusion) */

int kl_embedding_mean_applies(const kl_tensor *ids, const kl_tensor *w) {
  return ids && w && ids->ndim == 2 && ids->stype == KL_STYPE_DEFAULT && w->ndim == 2 &&
         w->stype == KL_STYPE_DEFAULT && kl_is_float(w->dtype);
}

/* y[b, :] = mean over l of weight row ids[b, l] - 1 (zeros for padding): the sum in double
 * from +0 in l order, times 1/L (masked: 1 / the count of ids not 0, or 0 without any),
 * rounded once, as mean (masked_mean) over Embedding's output computes it, so the same bits
 * without the (n, L, D) output. The columns are summed in register tiles of 32, 16, 8 and 4
 * doubles (then one at a time), each tile over the sample's ids; the first tile's pass
 * fetches the next sample's rows (whole rows, one an id), the later ones find the sample's
 * rows in L1. */
#define EMB_MEAN_TILE(S, T, VIN, VINU, NV)                                                          \
  static inline __attribute__((always_inline)) void emb_mean_tile_##S##_##NV(                 \
      const T *restrict W, const int64_t *restrict id, int64_t L, int64_t D, int64_t n0,     \
      const int64_t *restrict nx, int64_t npf, double sc, T *restrict y) {                   \
    emb_v4d acc[NV];                                                                         \
    for (int q = 0; q < NV; q++) acc[q] = (emb_v4d){0};                                      \
    for (int64_t l = 0; l < L; l++) {                                                        \
      if (l < npf && nx[l] > 0)                                                              \
        for (size_t c = 0; c < (size_t)D * sizeof(T); c += 64)                               \
          __builtin_prefetch((const char *)(W + (size_t)(nx[l] - 1) * (size_t)D) + c);        \
      if (id[l] > 0) { /* padding adds nothing: a sum from +0 is never -0 */                 \
        const T *restrict r = W + (size_t)(id[l] - 1) * (size_t)D + n0;                       \
        for (int q = 0; q < NV; q++)                                                         \
          acc[q] += __builtin_convertvector(*(const VINU *)(r + 4 * q), emb_v4d);            \
      }                                                                                      \
    }                                                                                        \
    for (int q = 0; q < NV; q++) *(VINU *)(y + n0 + 4 * q) = __builtin_convertvector(acc[q] * sc, VIN); \
  }
#define EMB_MEAN_ROW(S, T, VIN, VINU)                                                         \
  EMB_MEAN_TILE(S, T, VIN, VINU, 8)                                                           \
  EMB_MEAN_TILE(S, T, VIN, VINU, 4)                                                           \
  EMB_MEAN_TILE(S, T, VIN, VINU, 2)                                                           \
  EMB_MEAN_TILE(S, T, VIN, VINU, 1)                                                           \
  /* sample row y[0..D) from its L ids id[0..L) (validated: 0 <= id <= V); nx[0..npf): the   \
   * next sample's ids, whose rows the first tile's pass fetches, one an id */                \
  KL_EMB_CLONES static void emb_mean_row_##S(const T *restrict W, const int64_t *restrict id, \
                                             int64_t L, int64_t D, const int64_t *nx,        \
                                             int64_t npf, double sc, T *restrict y) {        \
    int64_t n0 = 0;                                                                          \
    for (; n0 + 32 <= D; n0 += 32, npf = 0)                                                  \
      emb_mean_tile_##S##_8(W, id, L, D, n0, nx, npf, sc, y);                                \
    if (n0 + 16 <= D) {                                                                      \
      emb_mean_tile_##S##_4(W, id, L, D, n0, nx, npf, sc, y);                                \
      n0 += 16;                                                                              \
      npf = 0;                                                                               \
    }                                                                                        \
    if (n0 + 8 <= D) {                                                                       \
      emb_mean_tile_##S##_2(W, id, L, D, n0, nx, npf, sc, y);                                \
      n0 += 8;                                                                               \
      npf = 0;                                                                               \
    }                                                                                        \
    if (n0 + 4 <= D) {                                                                       \
      emb_mean_tile_##S##_1(W, id, L, D, n0, nx, npf, sc, y);                                \
      n0 += 4;                                                                               \
      npf = 0;                                                                               \
    }                                                                                        \
    for (int64_t l = 0; l < npf; l++) /* D < 4: no tile fetched them */                       \
      if (nx[l] > 0) __builtin_prefetch(W + (size_t)(nx[l] - 1) * (size_t)D);                \
    for (; n0 < D; n0++) {                                                                   \
      double acc = 0;                                                                        \
      for (int64_t l = 0; l < L; l++)                                                        \
        if (id[l] > 0) acc += (double)W[(size_t)(id[l] - 1) * (size_t)D + n0];               \
      y[n0] = (T)(acc * sc);                                                                 \
    }                                                                                        \
  }
EMB_MEAN_ROW(f32, float, emb_v4f, emb_v4f_u)
EMB_MEAN_ROW(f64, double, emb_v4d, emb_v4d_u)

/* The ids of sample b and of the next one as int64 (scratch: 2 L a thread; ids of another
 * dtype are converted, int64 ones read in place), then its row. */
#define EMB_MEAN_ROWS(T, S)                                                                 \
  {                                                                                         \
    const T *restrict W = (const T *)w->data;                                               \
    T *restrict y = (T *)o->data;                                                           \
    _Pragma("omp parallel if (npos * D >= EMB_PAR_MIN)") {                                  \
      int64_t *restrict buf = idbuf + (size_t)omp_get_thread_num() * (size_t)(2 * L);        \
      _Pragma("omp for schedule(static)")                                                   \
      for (int64_t b = 0; b < n; b++) {                                                     \
        const int64_t p0 = b * L, npf = b + 1 < n ? L : 0;                                  \
        const int64_t *id = buf, *nx = buf + L;                                             \
        if (i64) {                                                                          \
          id = (const int64_t *)ids->data + p0;                                             \
          nx = id + L;                                                                      \
        } else {                                                                            \
          for (int64_t q = 0; q < L + npf; q++) buf[q] = id_at(ids, p0 + q);                \
        }                                                                                   \
        const double sc_ = masked ? masked_scale(ids, b, L) : scale;                        \
        emb_mean_row_##S(W, id, L, D, nx, npf, sc_, y + b * D);                             \
      }                                                                                     \
    }                                                                                       \
  }

/* The fused mean (gout NULL) or its backward on a device: the backend's kernels, for ids
 * and w on one registered device whose backend has them (a device plan fuses only there:
 * plan.c kl_plan_find_bags). Out of line: the host's paths stay as they were. */
static __attribute__((noinline, cold)) kl_status emb_mean_device(
    const kl_tensor *ids, const kl_tensor *w, int masked, const kl_tensor *gout, kl_stype want,
    kl_tensor **out) {
  KL_CHECK(!gout || gout->device == ids->device, KL_EINVAL,
           "mean: backward: the gradient is on another device than the inputs");
  kl_tensor *in[2] = {(kl_tensor *)ids, (kl_tensor *)w};
  kl_device d = KL_CPU;
  KL_TRY(kl_device_of("Embedding", in, 2, &d));
  KL_TRY(kl_device_check("Embedding", d));
  char b[32];
  const kl_device_backend *be = kl_device_backend_get();
  KL_CHECK(be && be->embedding_mean && be->embedding_mean_backward, KL_EUNSUPPORTED,
           "Embedding: the fused mean has no kernel on %s", kl_device_str(d, b, sizeof b));
  return gout ? be->embedding_mean_backward(ids, w, masked, gout, want, out)
              : be->embedding_mean(ids, w, masked, out);
}

/* 1 / the count of sample b's ids that are not 0, or 0 when it has none (masked mean). */
static double masked_scale(const kl_tensor *ids, int64_t b, int64_t L) {
  int64_t c = 0;
  for (int64_t l = 0; l < L; l++) c += id_at(ids, b * L + l) != 0;
  return c > 0 ? 1.0 / (double)c : 0.0;
}

kl_status kl_embedding_mean(const kl_tensor *ids, const kl_tensor *w, const kl_attrs *a,
                            int masked, kl_tensor **out) {
  kl_meta m[2], om;
  KL_CHECK(ids && w && out, KL_EINVAL, "Embedding: expected 2 inputs (ids, weight)");
  kl_tensor_meta(ids, &m[0]);
  kl_tensor_meta(w, &m[1]);
  KL_TRY(emb_infer(m, 2, a, &om));
  KL_CHECK(kl_embedding_mean_applies(ids, w), KL_EINVAL,
           "Embedding: the fused mean takes (n, L) ids and a dense weight");
  if (ids->device != KL_CPU || w->device != KL_CPU)
    return emb_mean_device(ids, w, masked, NULL, KL_STYPE_DEFAULT, out);
  const int64_t n = ids->shape[0], L = ids->shape[1], V = w->shape[0], D = w->shape[1];
  const int64_t npos = n * L;
  const double scale = 1.0 / (double)L; /* L == 0: NaN, as the mean of nothing */
  KL_TRY(ids_check(ids, V));
  const size_t nt = (size_t)omp_get_max_threads();
  const int i64 = ids->dtype == KL_INT64;
  int64_t *idbuf = kl_malloc_n((size_t)(L > 0 ? 2 * L : 1) * (nt > 0 ? nt : 1), sizeof *idbuf);
  if (!idbuf) return KL_ENOMEM;
  int64_t shp[2] = {n, D};
  kl_tensor *o = NULL;
  kl_status st = kl_tensor_new_dense_uninit(w->dtype, 2, shp, &o); /* every element set */
  if (st == KL_OK) {
    if (w->dtype == KL_FLOAT32)
      EMB_MEAN_ROWS(float, f32)
    else
      EMB_MEAN_ROWS(double, f64)
    *out = o;
  }
  kl_free(idbuf);
  return st;
}

kl_status kl_embedding_mean_backward(const kl_tensor *ids, const kl_tensor *w,
                                     const kl_attrs *a, int masked, const kl_tensor *gout,
                                     kl_stype want, kl_tensor **gin) {
  kl_meta m[2], om;
  char sg[128];
  KL_CHECK(ids && w && gout && gin, KL_EINVAL, "Embedding: expected 2 inputs (ids, weight)");
  kl_tensor_meta(ids, &m[0]);
  kl_tensor_meta(w, &m[1]);
  KL_TRY(emb_infer(m, 2, a, &om));
  KL_CHECK(kl_embedding_mean_applies(ids, w), KL_EINVAL,
           "Embedding: the fused mean takes (n, L) ids and a dense weight");
  KL_CHECK(gout->stype == KL_STYPE_DEFAULT && gout->dtype == w->dtype, KL_EINVAL,
           "mean: backward: gout must be a dense %s tensor", kl_dtype_name(w->dtype));
  KL_CHECK(gout->ndim == 2 && gout->shape[0] == ids->shape[0] && gout->shape[1] == w->shape[1],
           KL_ESHAPE, "mean: backward: gout shape (%s) does not match the output shape (%lld, %lld)",
           kl_lu_shape_str(sg, sizeof sg, gout->ndim, gout->shape), (long long)ids->shape[0],
           (long long)w->shape[1]);
  if (ids->device != KL_CPU || w->device != KL_CPU || gout->device != KL_CPU)
    return emb_mean_device(ids, w, masked, gout, want, gin);
  KL_TRY(ids_check(ids, w->shape[0]));
  /* each position's gradient row, as the mean's backward makes it: its sample's row times
   * 1/L (or the masked scale), the product in double rounded to the weight's dtype; once a
   * sample, not an id */
  const int64_t n = ids->shape[0], L = ids->shape[1], D = w->shape[1];
  const double scale = 1.0 / (double)L;
  kl_tensor *gs = NULL;
  KL_TRY(kl_tensor_new_dense_uninit(w->dtype, 2, gout->shape, &gs));
  KL_DISPATCH(w->dtype, T, {
    const T *restrict g = gout->data;
    T *restrict y = gs->data;
    for (int64_t b = 0; b < n; b++) {
      const double sc = masked ? masked_scale(ids, b, L) : scale;
      for (int64_t j = 0; j < D; j++) y[b * D + j] = (T)((double)g[b * D + j] * sc);
    }
  })
  kl_status st = emb_weight_grad(ids, w, gs, L, want, gin);
  kl_tensor_release(gs);
  return st;
}
