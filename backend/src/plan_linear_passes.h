/* plan_linear_passes.h: the passes of fit's linear step (plan_linear.c), per row and per
 * entry, built once for f32 and once for f64 (LIN_DEF). Included by plan_linear.c alone,
 * after struct kl_linear: static functions, so that the step's loops inline them.
 * Pass 1: each row's dot with W; pass 2: each row's prediction, loss term and gradient;
 * pass 3: each touched column's gradient sum (by rank, by first touch, or into the kept
 * direct accumulator; per thread: the entries of its columns). The same operations, in the
 * same order and precision, as the general step's ops (plan_linear.c's header). */
#ifndef KL_PLAN_LINEAR_PASSES_H
#define KL_PLAN_LINEAR_PASSES_H
#include <math.h>
#include <stdint.h>

/* ops_unary.c's sigmoid, the same expression. */
static inline double lin_sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

static inline double lin_clamp(double v, double lo, double hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* Label i of the data (dtype ydt) as the loss reads it after the feed's cast to the
 * placeholder's dtype mdt (kl_tensor_astype: a C cast). */
static inline double lin_label(const void *yd, kl_dtype ydt, kl_dtype mdt, int64_t i) {
  if (ydt == KL_INT64) {
    const int64_t v = ((const int64_t *)yd)[i];
    return mdt == KL_FLOAT32 ? (double)(float)v : (double)v;
  }
  const double v = ydt == KL_FLOAT32 ? (double)((const float *)yd)[i] : ((const double *)yd)[i];
  return mdt == KL_FLOAT32 ? (double)(float)v : v;
}

/* The rank passes count bits: built with POPCNT as well, chosen at load (integer work and
 * the same sums: no effect on the results). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define LIN_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define LIN_CLONES
#endif

/* How a step finds each touched column's gradient sum: the column's slot made at its first
 * touch (few entries next to W's rows: the map), its rank among the touched columns (many
 * entries next to C / 64: no map, the slots in column order), or its own row of a kept
 * accumulator with a flag (C <= 4 x the entries: W1; the update then walks every row).
 * A batch of one row needs none of them: a csr row's columns are strictly increasing, so
 * each entry is its column's only term and the row's own indices are the update's list. */
enum { LIN_FIRST, LIN_RANK, LIN_DIRECT, LIN_ONE };

/* One step's data, shared by the threads of its passes. */
typedef struct lin_ctx {
  const struct kl_linear *l;
  const kl_tensor *x;
  const void *yd;
  kl_dtype ydt;
  const int64_t *perm;
  int64_t b, n, nnz, nw;
  int has_b, mode, pfw;  /* mode: LIN_FIRST, LIN_RANK or LIN_DIRECT */
  double bv;              /* the bias's value */
  void *w, *s0, *s1;      /* W and its states' data */
  const opt_hyper *h;
  int64_t pf;             /* the update's prefetch distance (first-touch order) */
  /* results */
  int ok;                 /* every label in range */
  double loss, bsum;
} lin_ctx;

/* Row r of the batch is data row LIN_ROW(r). */
#define LIN_ROW(r) (perm ? perm[b + (r)] : b + (r))

/* Whether every label of the step is one the loss takes (the crossentropy's [0, 1], as
 * lin_rows checks them): the direct rows pass checks first, since it writes as it goes. */
static int lin_labels_ok(const lin_ctx *c) {
  if (!c->l->bce) return 1;
  const int64_t *perm = c->perm, b = c->b;
  int ok = 1;
  for (int64_t r = 0; r < c->n; r++) {
    const double t = lin_label(c->yd, c->ydt, c->l->ym.dtype, LIN_ROW(r));
    ok &= t >= 0 && t <= 1;
  }
  return ok;
}

/* Pass 1, rows [r0, r1): z[r] = the row's dot with W (ops_dot_csr.c dot1_rows / gather's
 * N == 1: the products in entry order from +0; the entry stream fetched ahead). With bits,
 * each entry's column is marked in it.
 * Pass 2: the prediction, the loss's term and the gradient of each row, as bias_add,
 * sigmoid and the loss compute them (layers/losses.c: elem_loss in double; the gradient
 * d * (1 / n) rounded to T; sigmoid's backward o (1 - o) and the product in T).
 * Pass 3, rank (a step with many entries next to C / 64): with every touched column's bit
 * set, a column's slot is its rank among the touched ones (the words' counts before it plus
 * the bits below it in its word): no map, the slots in column order. Each entry's product
 * is added to its slot in entry order from +0 (ops_dot_csrT.c spa_acc's sums).
 * Pass 3, first touch (few entries): a column's slot is made at its first touch (its bit),
 * the map read only for a column touched before in the step. */
#define LIN_DEF(T, S)                                                                       \
  static void lin_forward_##S(const lin_ctx *c, int setbits, int64_t r0, int64_t r1,        \
                              T *restrict z, uint64_t *restrict bits) {                     \
    const kl_tensor *a = c->x;                                                              \
    const int64_t *restrict ip = a->indptr, *restrict ai = a->indices, tot = a->nnz;        \
    const int64_t *perm = c->perm, b = c->b;                                                \
    const T *restrict v = a->data, *restrict w = c->w;                                      \
    const int pfw = c->pfw;                                                                 \
    for (int64_t r = r0; r < r1; r++) {                                                     \
      const int64_t i = LIN_ROW(r), e = ip[i + 1];                                          \
      T acc = 0;                                                                            \
      for (int64_t j = ip[i]; j < e; j++) {                                                 \
        if ((j & 7) == 0) {                                                                 \
          __builtin_prefetch(ai + j + 256);                                                 \
          __builtin_prefetch(v + j + 256);                                                  \
        }                                                                                   \
        const int64_t col = ai[j];                                                          \
        if (pfw) __builtin_prefetch(w + ai[j + KL_PF1 < tot ? j + KL_PF1 : j]);             \
        if (setbits) bits[col >> 6] |= (uint64_t)1 << (col & 63);                           \
        acc += v[j] * w[col];                                                               \
      }                                                                                     \
      z[r] = acc;                                                                           \
    }                                                                                       \
  }                                                                                         \
  static int lin_rows_##S(const lin_ctx *c, int64_t r0, int64_t r1, const T *restrict z,    \
                          T *restrict gr, double *restrict lrow) {                          \
    const struct kl_linear *l = c->l;                                                       \
    const int64_t *perm = c->perm, b = c->b;                                                \
    double lo, hi;                                                                          \
    if (l->dt == KL_FLOAT32) {                                                              \
      lo = (double)(float)1e-7;                                                             \
      hi = (double)(1.0f - (float)1e-7);                                                    \
    } else {                                                                                \
      lo = 1e-7;                                                                            \
      hi = 1.0 - 1e-7;                                                                      \
    }                                                                                       \
    const double f = 1.0 / (double)c->n;                                                    \
    const T bv = (T)c->bv;                                                                  \
    int ok = 1;                                                                             \
    for (int64_t r = r0; r < r1; r++) {                                                     \
      const int64_t i = LIN_ROW(r);                                                         \
      const T zb = c->has_b ? (T)(z[r] + bv) : z[r];                                        \
      const T o = l->sigmoid ? (T)lin_sigmoid((double)zb) : zb;                             \
      const double t = lin_label(c->yd, c->ydt, l->ym.dtype, i);                            \
      const double pd = (double)o;                                                          \
      double d;                                                                             \
      if (l->bce) {                                                                         \
        ok &= t >= 0 && t <= 1;                                                             \
        const double cl = lin_clamp(pd, lo, hi);                                            \
        d = (pd >= lo && pd <= hi) ? -(t / cl) + (1 - t) / (1 - cl) : 0;                    \
        /* a label of 0 or 1 zeroes one term: 0 * log(..) is -0 (cl is clamped inside (0,   \
         * 1), so the log is finite and negative) and x + -0 == x, so the other term alone  \
         * is the same bits, one log fewer */                                               \
        lrow[r] = t == 1 ? -(t * log(cl)) : t == 0 ? -((1 - t) * log(1 - cl))               \
                                          : -(t * log(cl) + (1 - t) * log(1 - cl));         \
      } else {                                                                              \
        const double e = pd - t;                                                            \
        d = 2 * e;                                                                          \
        lrow[r] = e * e;                                                                    \
      }                                                                                     \
      T gp = (T)(d * f);                                                                    \
      if (l->sigmoid) {                                                                     \
        const T dd = o * (1 - o);                                                           \
        gp = gp * dd;                                                                       \
      }                                                                                     \
      gr[r] = gp;                                                                           \
    }                                                                                       \
    return ok;                                                                              \
  }                                                                                         \
  /* the slot of column col: its rank among the touched columns */                          \
  static inline __attribute__((always_inline)) int64_t lin_slot_##S(                        \
      const uint64_t *restrict bits, const uint32_t *restrict base, int64_t col) {          \
    const uint64_t below = bits[col >> 6] & (((uint64_t)1 << (col & 63)) - 1);             \
    return (int64_t)base[col >> 6] + __builtin_popcountll(below);                           \
  }                                                                                         \
  /* one thread, every entry: the products made here */                                     \
  LIN_CLONES static void lin_rank_all_##S(const lin_ctx *c, const T *restrict gr,           \
                                          const uint64_t *restrict bits,                    \
                                          const uint32_t *restrict base,                    \
                                          int64_t *restrict list, T *restrict gs) {         \
    const kl_tensor *a = c->x;                                                              \
    const int64_t *restrict ip = a->indptr, *restrict ai = a->indices;                      \
    const int64_t *perm = c->perm, b = c->b;                                                \
    const T *restrict v = a->data;                                                          \
    for (int64_t r = 0; r < c->n; r++) {                                                    \
      const int64_t i = LIN_ROW(r), e = ip[i + 1];                                          \
      const T g = gr[r];                                                                    \
      for (int64_t j = ip[i]; j < e; j++) {                                                 \
        const int64_t col = ai[j], sl = lin_slot_##S(bits, base, col);                      \
        list[sl] = col;                                                                     \
        gs[sl] += v[j] * g;                                                                 \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
  /* one of several threads: its columns' entries (ec, ep: in entry order) */               \
  LIN_CLONES static void lin_rank_part_##S(int64_t m, const uint32_t *restrict ec,          \
                                           const T *restrict ep,                            \
                                           const uint64_t *restrict bits,                   \
                                           const uint32_t *restrict base,                   \
                                           int64_t *restrict list, T *restrict gs) {        \
    for (int64_t k = 0; k < m; k++) {                                                       \
      const int64_t col = ec[k], sl = lin_slot_##S(bits, base, col);                        \
      list[sl] = col;                                                                       \
      gs[sl] += ep[k];                                                                      \
    }                                                                                       \
  }                                                                                         \
  /* this thread's entries: those of columns [c0, c1), kept in entry order (branch-free) */ \
  static int64_t lin_compact_##S(const lin_ctx *c, const T *restrict gr, int64_t c0,        \
                                 int64_t c1, uint32_t *restrict ec, T *restrict ep) {       \
    const kl_tensor *a = c->x;                                                              \
    const int64_t *restrict ip = a->indptr, *restrict ai = a->indices;                      \
    const int64_t *perm = c->perm, b = c->b;                                                \
    const T *restrict v = a->data;                                                          \
    const uint64_t span = (uint64_t)(c1 - c0);                                              \
    int64_t m = 0;                                                                          \
    for (int64_t r = 0; r < c->n; r++) {                                                    \
      const int64_t i = LIN_ROW(r), e = ip[i + 1];                                          \
      const T g = gr[r];                                                                    \
      for (int64_t j = ip[i]; j < e; j++) {                                                 \
        const int64_t col = ai[j];                                                          \
        ec[m] = (uint32_t)col;                                                              \
        ep[m] = v[j] * g;                                                                   \
        m += (uint64_t)(col - c0) < span;                                                   \
      }                                                                                     \
    }                                                                                       \
    return m;                                                                               \
  }                                                                                         \
  /* direct, one thread, passes 1-3 a row at a time: the row's dot, its loss term and     \
   * gradient, then each entry's product added to its column's row of the kept            \
   * accumulator (ops_dot_csrT.c spad_acc) while the entries are in L1. The same sums in   \
   * the same order as the passes one after another (W is not written in the step, and    \
   * each row's values depend on that row alone). Labels checked first (lin_labels_ok).    \
   */                                                                                       \
  static void lin_direct_rows_##S(const lin_ctx *c, T *restrict z, T *restrict gr,          \
                                  double *restrict lrow, uint32_t *restrict flag,           \
                                  T *restrict acc) {                                        \
    const kl_tensor *a = c->x;                                                              \
    const int64_t *restrict ip = a->indptr, *restrict ai = a->indices;                      \
    const int64_t *perm = c->perm, b = c->b;                                                \
    const T *restrict v = a->data;                                                          \
    for (int64_t r = 0; r < c->n; r++) {                                                    \
      lin_forward_##S(c, 0, r, r + 1, z, NULL);                                             \
      (void)lin_rows_##S(c, r, r + 1, z, gr, lrow);                                         \
      const int64_t i = LIN_ROW(r), e = ip[i + 1];                                          \
      const T g = gr[r];                                                                    \
      for (int64_t j = ip[i]; j < e; j++) {                                                 \
        const int64_t col = ai[j];                                                          \
        flag[col] = 1;                                                                      \
        acc[col] += v[j] * g;                                                               \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
  static void lin_direct_part_##S(int64_t m, const uint32_t *restrict ec,                   \
                                  const T *restrict ep, uint32_t *restrict flag,            \
                                  T *restrict acc) {                                        \
    for (int64_t k = 0; k < m; k++) {                                                       \
      flag[ec[k]] = 1;                                                                      \
      acc[ec[k]] += ep[k];                                                                  \
    }                                                                                       \
  }                                                                                         \
  static int64_t lin_first_##S(const lin_ctx *c, const T *restrict gr,                     \
                               uint64_t *restrict bits, uint32_t *restrict map,             \
                               int64_t *restrict list, T *restrict gs) {                    \
    const kl_tensor *a = c->x;                                                              \
    const int64_t *restrict ip = a->indptr, *restrict ai = a->indices;                      \
    const int64_t *perm = c->perm, b = c->b;                                                \
    const T *restrict v = a->data;                                                          \
    int64_t U = 0;                                                                          \
    for (int64_t r = 0; r < c->n; r++) {                                                    \
      const int64_t i = LIN_ROW(r), e = ip[i + 1];                                          \
      const T g = gr[r];                                                                    \
      for (int64_t j = ip[i]; j < e; j++) {                                                 \
        const int64_t col = ai[j];                                                          \
        const T prod = v[j] * g;                                                            \
        const uint64_t m = (uint64_t)1 << (col & 63), wd = bits[col >> 6];                  \
        if (!(wd & m)) {                                                                    \
          bits[col >> 6] = wd | m;                                                          \
          map[col] = (uint32_t)U;                                                           \
          list[U] = col;                                                                    \
          gs[U] = (T)0 + prod;                                                              \
          U++;                                                                              \
        } else {                                                                            \
          gs[map[col]] += prod;                                                             \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
    return U;                                                                               \
  }
LIN_DEF(float, f32)
LIN_DEF(double, f64)

/* base[w] = the set bits of words [w0, w) (+ base0), for words [w0, w1); returns the total. */
LIN_CLONES static int64_t lin_ranks(const uint64_t *restrict bits, uint32_t *restrict base,
                                    int64_t w0, int64_t w1) {
  int64_t u = 0;
  for (int64_t k = w0; k < w1; k++) {
    base[k] = (uint32_t)u;
    u += __builtin_popcountll(bits[k]);
  }
  return u;
}
#endif
