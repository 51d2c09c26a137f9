/* ops_dot_gather.h: the gather of csr rows' products (ops_dot_csr.c, ops_dot_csrT.c). */
#ifndef KL_OPS_DOT_GATHER_H
#define KL_OPS_DOT_GATHER_H
#include "ops_dot_internal.h"


/* The gathers below are built twice on x86-64 Linux with GCC: for AVX2 and for the baseline,
 * the one to run chosen once at load by the CPU (ifunc), as the optimizer's row loops
 * (optim_rows.h). Each output element is the same sequence of correctly rounded multiplies
 * and adds whatever the vector width (no FMA: the AVX2 clone is built without it), so both
 * give the same bits. With AVX2 a 64-column f32 tile is 8 registers: W4a's 64-wide rows
 * are gathered in one pass over a row's entries, where two 32-wide passes re-walked them
 * (bench/README item 18). */
#ifndef KL_GATHER_CLONES
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define KL_GATHER_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KL_GATHER_CLONES
#endif
#endif

/* y[0..N) = sum_j v[j] * B[r[j]*N .. +N) over the cnt entries with r[j] >= 0. The columns
 * are done in tiles (64 (f32 only), 32, 16, 8, 4 wide, widest first) held in a local
 * accumulator (registers), so y is written once and each gathered row of B is read in
 * cache-line-sized pieces, fetched KL_PF entries ahead; fewer than 4 leftover columns take
 * a scalar loop and N == 1 a dot product. Every output element is summed in entry order
 * starting from 0, whatever path computes it, so the result does not depend on threads, on
 * N's tiling or on the clone that runs. */
#define KL_DEF_GATHER_TILE(T, S, TILE)                                                     \
  static inline __attribute__((always_inline)) void gtile_##S##_##TILE(                     \
      int64_t cnt, int64_t pfcnt, const T *restrict v, const int64_t *restrict r,           \
      const T *restrict B, int64_t N, int64_t n0, T *restrict y) {                          \
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
/* WIDE: the widest tile (64 for f32: 8 AVX2 registers; 32 for f64). */
#define KL_DEF_GATHER(T, S, WIDE)                                                          \
  KL_DEF_GATHER_TILE(T, S, 64)                                                              \
  KL_DEF_GATHER_TILE(T, S, 32)                                                              \
  KL_DEF_GATHER_TILE(T, S, 16)                                                              \
  KL_DEF_GATHER_TILE(T, S, 8)                                                               \
  KL_DEF_GATHER_TILE(T, S, 4)                                                               \
  KL_GATHER_CLONES static void gather_##S(int64_t cnt, int64_t pfcnt, const T *restrict v, \
                                          const int64_t *restrict r, const T *restrict B,  \
                                          int64_t N, T *restrict y) {                      \
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
    if ((WIDE) == 64)                                                                       \
      for (; n0 + 64 <= N; n0 += 64) gtile_##S##_64(cnt, pfcnt, v, r, B, N, n0, y);          \
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
KL_DEF_GATHER(float, f32, 64)
KL_DEF_GATHER(double, f64, 32)

/* pfcnt >= cnt: how many entries of r may be read ahead for prefetching (the next rows'
 * entries follow this row's in both callers). */
static void gather(kl_dtype dt, int64_t cnt, int64_t pfcnt, const void *v, const int64_t *r,
                   const void *B, int64_t N, void *y) {
  if (dt == KL_FLOAT32) gather_f32(cnt, pfcnt, v, r, B, N, y);
  else gather_f64(cnt, pfcnt, v, r, B, N, y);
}

#endif
