/* optim_rows.h: the per-row update rules, instantiated once per dtype by optim_update.c.
 * Include with OPT_T (float or double), OPT_U (its same-size unsigned integer), OPT_SQRT
 * (sqrtf or sqrt), OPT_POW (powf or pow) and OPT_SFX (f32, f64). */
#define OPT_CAT2(a, b) a##b
#define OPT_CAT(a, b) OPT_CAT2(a, b)

/* The row loops below are built twice on x86-64 Linux with GCC: for AVX2 and for the
 * baseline, the one to run chosen once at load by the CPU (ifunc). Each element is the same
 * sequence of correctly rounded operations whatever the vector width (no FMA: the AVX2
 * clone is built without it), so both give the same bits; on W3's 64-wide Adam rows the
 * AVX2 clone's sqrt and divide run 8 lanes, not 4. */
#ifndef OPT_CLONES
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define OPT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define OPT_CLONES
#endif
#endif

/* Updates one row of n elements: w (weight row), g (gradient row; NULL = a zero gradient,
 * bit-identical to a row of +0.0), s0/s1 (state rows; unused ones may be NULL). The rules
 * are documented in kl/optim.h. */
static inline __attribute__((always_inline)) void OPT_CAT(opt_row_, OPT_SFX)(
    const opt_hyper *h, OPT_T *restrict w, const OPT_T *restrict g, OPT_T *restrict s0,
    OPT_T *restrict s1, int64_t n) {
  const OPT_T rescale = (OPT_T)h->rescale, clip = (OPT_T)h->clip, wd = (OPT_T)h->wd;
  const OPT_T lr = (OPT_T)h->lr;
  const int do_clip = h->clip > 0;
#define OPT_GRAD(j, out)                                              \
  do {                                                                \
    OPT_T g_ = (g ? g[j] : (OPT_T)0) * rescale;                       \
    if (do_clip) g_ = g_ < -clip ? -clip : (g_ > clip ? clip : g_);   \
    (out) = g_;                                                       \
  } while (0)
  switch (h->kind) {
    case KL_OPT_SGD:
      if (!h->has_mom) {
        for (int64_t j = 0; j < n; j++) {
          OPT_T gj;
          OPT_GRAD(j, gj);
          w[j] = w[j] - lr * (gj + wd * w[j]);
        }
      } else {
        const OPT_T mom = (OPT_T)h->mom;
        for (int64_t j = 0; j < n; j++) {
          OPT_T gj;
          OPT_GRAD(j, gj);
          OPT_T step = lr * (gj + wd * w[j]);
          OPT_T v = mom * s0[j] - step;
          s0[j] = v;
          w[j] = h->nesterov ? w[j] + (mom * v - step) : w[j] + v;
        }
      }
      break;
    case KL_OPT_ADAM: {
      const OPT_T b1 = (OPT_T)h->b1, b2 = (OPT_T)h->b2, c1 = (OPT_T)(1.0 - h->b1);
      const OPT_T c2 = (OPT_T)(1.0 - h->b2), lr_t = (OPT_T)h->lr_t, eps = (OPT_T)h->eps;
      for (int64_t j = 0; j < n; j++) {
        OPT_T gj;
        OPT_GRAD(j, gj);
        gj = gj + wd * w[j];
        OPT_T m = b1 * s0[j] + c1 * gj;
        OPT_T v = b2 * s1[j] + c2 * (gj * gj);
        s0[j] = m;
        s1[j] = v;
        w[j] = w[j] - lr_t * m / (OPT_SQRT(v) + eps);
      }
      break;
    }
    case KL_OPT_ADAGRAD: {
      const OPT_T eps = (OPT_T)h->eps;
      for (int64_t j = 0; j < n; j++) {
        OPT_T gj;
        OPT_GRAD(j, gj);
        gj = gj + wd * w[j];
        OPT_T hist = s0[j] + gj * gj;
        s0[j] = hist;
        w[j] = w[j] - lr * gj / (OPT_SQRT(hist) + eps);
      }
      break;
    }
    case KL_OPT_RMSPROP: {
      const OPT_T rho = (OPT_T)h->rho, c = (OPT_T)(1.0 - h->rho), eps = (OPT_T)h->eps;
      for (int64_t j = 0; j < n; j++) {
        OPT_T gj;
        OPT_GRAD(j, gj);
        gj = gj + wd * w[j];
        OPT_T a = rho * s0[j] + c * (gj * gj);
        s0[j] = a;
        w[j] = w[j] - lr * gj / (OPT_SQRT(a) + eps);
      }
      break;
    }
    case KL_OPT_FTRL: {
      const OPT_T l1 = (OPT_T)h->lamda1, beta = (OPT_T)h->beta, l2x2 = (OPT_T)(2.0 * h->l2);
      /* P(n) = n^(-learning_rate_power): sqrt for the default -0.5 (the same bits as before) */
      const int sq = h->lr_power == -0.5;
      const OPT_T mp = (OPT_T)(-h->lr_power);
      for (int64_t j = 0; j < n; j++) {
        OPT_T gj;
        OPT_GRAD(j, gj);
        OPT_T nold = s1[j], nnew = nold + gj * gj;
        OPT_T pnew = sq ? OPT_SQRT(nnew) : OPT_POW(nnew, mp);
        OPT_T pold = sq ? OPT_SQRT(nold) : OPT_POW(nold, mp);
        OPT_T z = s0[j] + gj - (pnew - pold) * w[j] / lr;
        s0[j] = z;
        s1[j] = nnew;
        OPT_T az = z < 0 ? -z : z;
        w[j] = az > l1 ? ((z > 0 ? l1 : -l1) - z) / ((beta + pnew) / lr + wd + l2x2) : (OPT_T)0;
      }
      break;
    }
    default: break;
  }
#undef OPT_GRAD
}

/* The lazy update of rows gi[i0..i1) of a weight that stores every row (storage row ==
 * row): row gi[i] takes gradient row i. One call for the batch's rows, with the rule's
 * switch hoisted out of the row loop (opt_row inlined once per kind, so for the 1-wide rows
 * of a Dense(1) kernel a row costs a few instructions, not a call). Rows pf ahead are
 * prefetched (random rows of a large weight are DRAM misses); no effect on the results. */
#define OPT_ROWS_LOOP(KIND)                                                              \
  do {                                                                                   \
    opt_hyper hk = *h;                                                                   \
    hk.kind = KIND;                                                                      \
    if (rw == 1) { /* the width as a constant: the element loop disappears */           \
      for (int64_t i = i0; i < i1; i++) {                                                \
        if (pf) {                                                                        \
          const int64_t q = gi[i + pf < i1 ? i + pf : i];                                \
          __builtin_prefetch(w + q, 1);                                                  \
          if (s0) __builtin_prefetch(s0 + q, 1);                                         \
          if (s1) __builtin_prefetch(s1 + q, 1);                                         \
        }                                                                                \
        const int64_t o = gi[i];                                                         \
        OPT_CAT(opt_row_, OPT_SFX)(&hk, w + o, g + i, s0 ? s0 + o : NULL,                \
                                   s1 ? s1 + o : NULL, 1);                               \
      }                                                                                  \
      break;                                                                             \
    }                                                                                    \
    for (int64_t i = i0; i < i1; i++) {                                                  \
      if (pf && i + pf < i1) {                                                           \
        const int64_t q = gi[i + pf] * rw;                                               \
        for (int64_t b_ = 0; b_ < rw; b_ += 64 / (int64_t)sizeof(OPT_T)) {               \
          __builtin_prefetch(w + q + b_, 1);                                             \
          if (s0) __builtin_prefetch(s0 + q + b_, 1);                                    \
          if (s1) __builtin_prefetch(s1 + q + b_, 1);                                    \
        }                                                                                \
      }                                                                                  \
      const int64_t o = gi[i] * rw;                                                      \
      OPT_CAT(opt_row_, OPT_SFX)(&hk, w + o, g + i * rw, s0 ? s0 + o : NULL,             \
                                 s1 ? s1 + o : NULL, rw);                                \
    }                                                                                    \
  } while (0)
/* SGD on 1-wide rows (a Dense(1) kernel: W1, W2): the rule's flags are tested once, not per
 * row (opt_row's tests stayed in the row loop: 35 -> 16 instructions a row, callgrind).
 * The same expressions as opt_row's SGD case: the same bits. */
#define OPT_SGD1(DO_CLIP, HAS_MOM, NEST)                                                 \
  for (int64_t i = i0; i < i1; i++) {                                                    \
    if (pf) {                                                                            \
      const int64_t q = gi[i + pf < i1 ? i + pf : i];                                    \
      __builtin_prefetch(w + q, 1);                                                      \
      if (HAS_MOM) __builtin_prefetch(s0 + q, 1);                                        \
    }                                                                                    \
    const int64_t o = gi[i];                                                             \
    OPT_T gj = g[i] * rescale;                                                           \
    if (DO_CLIP) gj = gj < -clip ? -clip : (gj > clip ? clip : gj);                      \
    if (!(HAS_MOM)) {                                                                    \
      w[o] = w[o] - lr * (gj + wd * w[o]);                                               \
    } else {                                                                             \
      const OPT_T step = lr * (gj + wd * w[o]);                                          \
      const OPT_T v = mom * s0[o] - step;                                                \
      s0[o] = v;                                                                         \
      w[o] = (NEST) ? w[o] + (mom * v - step) : w[o] + v;                                \
    }                                                                                    \
  }
OPT_CLONES static void OPT_CAT(opt_rows1_sgd_, OPT_SFX)(const opt_hyper *h, OPT_T *restrict w,
                                             const OPT_T *restrict g, OPT_T *restrict s0,
                                             const int64_t *restrict gi, int64_t i0,
                                             int64_t i1, int64_t pf) {
  const OPT_T rescale = (OPT_T)h->rescale, clip = (OPT_T)h->clip, wd = (OPT_T)h->wd;
  const OPT_T lr = (OPT_T)h->lr, mom = (OPT_T)h->mom;
  const int do_clip = h->clip > 0;
  if (!h->has_mom) {
    if (do_clip) OPT_SGD1(1, 0, 0) else OPT_SGD1(0, 0, 0)
  } else if (!h->nesterov) {
    if (do_clip) OPT_SGD1(1, 1, 0) else OPT_SGD1(0, 1, 0)
  } else {
    if (do_clip) OPT_SGD1(1, 1, 1) else OPT_SGD1(0, 1, 1)
  }
}
#undef OPT_SGD1

/* a where mask m is all ones, else b, bit for bit (an integer select: GCC if-converts and
 * vectorises it; a float ?: stays a branch under the default -ftrapping-math). */
static inline OPT_T OPT_CAT(opt_blend_, OPT_SFX)(OPT_T a, OPT_T b, OPT_U m) {
  OPT_U x, y;
  memcpy(&x, &a, sizeof x);
  memcpy(&y, &b, sizeof y);
  x = (x & m) | (y & ~m);
  OPT_T r;
  memcpy(&r, &x, sizeof r);
  return r;
}

/* The lazy update of the flagged rows c of [c0, c1) (flag[c] != 0) of a weight that stores
 * every row, row c's gradient in acc[c * rw ..]; acc and flag are cleared over the range
 * (the plan's fused step: the kept accumulator of csr^T . G, kl_optimizer_update_flagged).
 * SGD on 1-wide rows computes every row and keeps the result only where flagged (a select:
 * the loop vectorises, and half the rows of a W1 batch are flagged, so a branch would
 * mispredict); other rules list the flagged 1-wide rows a block at a time and run the lazy
 * row loop on them (its vector lanes: W7's shape at batch 2048 with Adam, 0.81 -> 0.25 s an
 * epoch), and update wider flagged rows one by one. The same expressions as
 * opt_row (the clip as two selects: -clip below -clip, then clip above clip, NaN kept): the
 * same bits as the lazy update of the compact row_sparse gradient. */
#define OPT_SGDF(DO_CLIP, HAS_MOM, NEST)                                                 \
  for (int64_t c = c0; c < c1; c++) {                                                    \
    OPT_T gj = acc[c] * rescale;                                                         \
    if (DO_CLIP) {                                                                       \
      gj = OPT_CAT(opt_blend_, OPT_SFX)(-clip, gj, -(OPT_U)(gj < -clip));                \
      gj = OPT_CAT(opt_blend_, OPT_SFX)(clip, gj, -(OPT_U)(gj > clip));                  \
    }                                                                                    \
    const OPT_U m = -(OPT_U)(flag[c] != 0);                                              \
    if (!(HAS_MOM)) {                                                                    \
      const OPT_T nw = w[c] - lr * (gj + wd * w[c]);                                     \
      w[c] = OPT_CAT(opt_blend_, OPT_SFX)(nw, w[c], m);                                  \
    } else {                                                                             \
      const OPT_T step = lr * (gj + wd * w[c]);                                          \
      const OPT_T v = mom * s0[c] - step;                                                \
      const OPT_T nw = (NEST) ? w[c] + (mom * v - step) : w[c] + v;                      \
      s0[c] = OPT_CAT(opt_blend_, OPT_SFX)(v, s0[c], m);                                 \
      w[c] = OPT_CAT(opt_blend_, OPT_SFX)(nw, w[c], m);                                  \
    }                                                                                    \
    acc[c] = 0;                                                                          \
    flag[c] = 0;                                                                         \
  }
OPT_CLONES static void OPT_CAT(opt_rows_, OPT_SFX)(const opt_hyper *h, OPT_T *restrict w,
                                        const OPT_T *restrict g, OPT_T *restrict s0,
                                        OPT_T *restrict s1, int64_t rw,
                                        const int64_t *restrict gi, int64_t i0, int64_t i1,
                                        int64_t pf);
OPT_CLONES static void OPT_CAT(opt_flagged_, OPT_SFX)(const opt_hyper *h, OPT_T *restrict w,
                                           OPT_T *restrict acc, uint32_t *restrict flag,
                                           OPT_T *restrict s0, OPT_T *restrict s1, int64_t rw,
                                           int64_t c0, int64_t c1) {
  if (h->kind == KL_OPT_SGD && rw == 1) {
    const OPT_T rescale = (OPT_T)h->rescale, clip = (OPT_T)h->clip, wd = (OPT_T)h->wd;
    const OPT_T lr = (OPT_T)h->lr, mom = (OPT_T)h->mom;
    const int do_clip = h->clip > 0;
    if (!h->has_mom) {
      if (do_clip) OPT_SGDF(1, 0, 0) else OPT_SGDF(0, 0, 0)
    } else if (!h->nesterov) {
      if (do_clip) OPT_SGDF(1, 1, 0) else OPT_SGDF(0, 1, 0)
    } else {
      if (do_clip) OPT_SGDF(1, 1, 1) else OPT_SGDF(0, 1, 1)
    }
    return;
  }
  if (rw == 1) { /* the flagged rows listed a block at a time (branch-free), then the lazy
                  * row loop over them: its vector lanes, no mispredicted flag a row */
    enum { NB = 256 };
    int64_t lst[NB];
    OPT_T gl[NB];
    for (int64_t c = c0; c < c1;) {
      int64_t n = 0;
      for (; c < c1 && n < NB; c++) {
        lst[n] = c;
        gl[n] = acc[c];
        n += flag[c] != 0;
      }
      OPT_CAT(opt_rows_, OPT_SFX)(h, w, gl, s0, s1, 1, lst, 0, n, 0);
      for (int64_t k = 0; k < n; k++) {
        acc[lst[k]] = 0;
        flag[lst[k]] = 0;
      }
    }
    return;
  }
  for (int64_t c = c0; c < c1; c++) {
    if (!flag[c]) continue;
    const int64_t o = c * rw;
    OPT_CAT(opt_row_, OPT_SFX)(h, w + o, acc + o, s0 ? s0 + o : NULL, s1 ? s1 + o : NULL, rw);
    for (int64_t k = 0; k < rw; k++) acc[o + k] = 0;
    flag[c] = 0;
  }
}
#undef OPT_SGDF

/* The lazy 1-wide rows of the rules with a square root and a divide (Adagrad, Adam,
 * RMSprop, Ftrl with the default power), OPT_VL rows at a time in AVX2 registers: each
 * row's weight and states gathered into a lane, the rule's expressions evaluated lane by
 * lane (the same correctly rounded operations as opt_row's, no FMA: the same bits), the
 * results scattered back. The scalar loop was bound by the divider (a sqrt and a divide a
 * row: ~8 cycles); W7's ~19,000 random rows of Adagrad a step, 1 thread: 45 -> 29 us, the
 * cost of their random loads and stores. (Gathered through short arrays on the stack, the
 * stores could not forward to the wide loads: slower than scalar, bench/README item 18.)
 * Rows gi[] are distinct (a lazy update's rows are). Returns the first row not done. */
#ifdef OPT_VL
typedef OPT_T OPT_CAT(opt_v_, OPT_SFX) __attribute__((vector_size(32)));
typedef OPT_U OPT_CAT(opt_vu_, OPT_SFX) __attribute__((vector_size(32)));
#define OPT_V OPT_CAT(opt_v_, OPT_SFX)
#define OPT_VU OPT_CAT(opt_vu_, OPT_SFX)
#if OPT_VL == 8
#define OPT_GATHER(a, o) {a[o[0]], a[o[1]], a[o[2]], a[o[3]], a[o[4]], a[o[5]], a[o[6]], a[o[7]]}
#define OPT_SPLAT(x) {x, x, x, x, x, x, x, x}
#else
#define OPT_GATHER(a, o) {a[o[0]], a[o[1]], a[o[2]], a[o[3]]}
#define OPT_SPLAT(x) {x, x, x, x}
#endif
/* a where m (a lane comparison's all-ones), else b */
#define OPT_VBLEND(a, b, m) ((OPT_V)((((OPT_VU)(a)) & (OPT_VU)(m)) | (((OPT_VU)(b)) & ~(OPT_VU)(m))))
#define OPT_VSCATTER(a, o, x)                                 \
  do {                                                        \
    for (int k_ = 0; k_ < OPT_VL; k_++) a[o[k_]] = (x)[k_];   \
  } while (0)
__attribute__((target("avx2"))) static int64_t OPT_CAT(opt_rows1v_, OPT_SFX)(
    const opt_hyper *h, OPT_T *restrict w, const OPT_T *restrict g, OPT_T *restrict s0,
    OPT_T *restrict s1, const int64_t *restrict gi, int64_t i0, int64_t i1) {
  const OPT_T rescale_ = (OPT_T)h->rescale, clip_ = (OPT_T)h->clip, wd_ = (OPT_T)h->wd;
  const OPT_T lr_ = (OPT_T)h->lr, eps_ = (OPT_T)h->eps, nclip_ = -clip_;
  const OPT_V rescale = OPT_SPLAT(rescale_), clip = OPT_SPLAT(clip_), wd = OPT_SPLAT(wd_);
  const OPT_V lr = OPT_SPLAT(lr_), eps = OPT_SPLAT(eps_), nclip = OPT_SPLAT(nclip_);
  const int do_clip = h->clip > 0;
  int64_t i = i0;
#define OPT_VGRAD(gj)                                            \
  OPT_V gj;                                                      \
  {                                                              \
    OPT_V g_;                                                    \
    memcpy(&g_, g + i, sizeof g_);                               \
    gj = g_ * rescale;                                           \
    if (do_clip) {                                               \
      const OPT_V c_ = OPT_VBLEND(clip, gj, gj > clip);          \
      gj = OPT_VBLEND(nclip, c_, gj < nclip);                    \
    }                                                            \
  }
  switch (h->kind) {
    case KL_OPT_ADAGRAD:
      for (; i + OPT_VL <= i1; i += OPT_VL) {
        const int64_t *o = gi + i;
        const OPT_V W = OPT_GATHER(w, o), S = OPT_GATHER(s0, o);
        OPT_VGRAD(gj);
        gj = gj + wd * W;
        const OPT_V hist = S + gj * gj;
        const OPT_V nw = W - lr * gj / (OPT_VSQRT(hist) + eps);
        OPT_VSCATTER(s0, o, hist);
        OPT_VSCATTER(w, o, nw);
      }
      break;
    case KL_OPT_ADAM: {
      const OPT_T b1_ = (OPT_T)h->b1, b2_ = (OPT_T)h->b2, c1_ = (OPT_T)(1.0 - h->b1);
      const OPT_T c2_ = (OPT_T)(1.0 - h->b2), lrt_ = (OPT_T)h->lr_t;
      const OPT_V b1 = OPT_SPLAT(b1_), b2 = OPT_SPLAT(b2_), c1 = OPT_SPLAT(c1_);
      const OPT_V c2 = OPT_SPLAT(c2_), lr_t = OPT_SPLAT(lrt_);
      for (; i + OPT_VL <= i1; i += OPT_VL) {
        const int64_t *o = gi + i;
        const OPT_V W = OPT_GATHER(w, o), M = OPT_GATHER(s0, o), V = OPT_GATHER(s1, o);
        OPT_VGRAD(gj);
        gj = gj + wd * W;
        const OPT_V m = b1 * M + c1 * gj;
        const OPT_V v = b2 * V + c2 * (gj * gj);
        const OPT_V nw = W - lr_t * m / (OPT_VSQRT(v) + eps);
        OPT_VSCATTER(s0, o, m);
        OPT_VSCATTER(s1, o, v);
        OPT_VSCATTER(w, o, nw);
      }
      break;
    }
    case KL_OPT_RMSPROP: {
      const OPT_T rho_ = (OPT_T)h->rho, c_ = (OPT_T)(1.0 - h->rho);
      const OPT_V rho = OPT_SPLAT(rho_), c = OPT_SPLAT(c_);
      for (; i + OPT_VL <= i1; i += OPT_VL) {
        const int64_t *o = gi + i;
        const OPT_V W = OPT_GATHER(w, o), S = OPT_GATHER(s0, o);
        OPT_VGRAD(gj);
        gj = gj + wd * W;
        const OPT_V a = rho * S + c * (gj * gj);
        const OPT_V nw = W - lr * gj / (OPT_VSQRT(a) + eps);
        OPT_VSCATTER(s0, o, a);
        OPT_VSCATTER(w, o, nw);
      }
      break;
    }
    case KL_OPT_FTRL: {
      if (h->lr_power != -0.5) break; /* pow: the scalar loop */
      const OPT_T l1_ = (OPT_T)h->lamda1, beta_ = (OPT_T)h->beta, l2x2_ = (OPT_T)(2.0 * h->l2);
      const OPT_T nl1_ = -l1_, zero_ = 0;
      const OPT_V l1 = OPT_SPLAT(l1_), beta = OPT_SPLAT(beta_), l2x2 = OPT_SPLAT(l2x2_);
      const OPT_V nl1 = OPT_SPLAT(nl1_), zero = OPT_SPLAT(zero_);
      for (; i + OPT_VL <= i1; i += OPT_VL) {
        const int64_t *o = gi + i;
        const OPT_V W = OPT_GATHER(w, o), Z = OPT_GATHER(s0, o), nold = OPT_GATHER(s1, o);
        OPT_VGRAD(gj);
        const OPT_V nnew = nold + gj * gj;
        const OPT_V pnew = OPT_VSQRT(nnew), pold = OPT_VSQRT(nold);
        const OPT_V z = Z + gj - (pnew - pold) * W / lr;
        const OPT_V az = OPT_VBLEND(-z, z, z < zero);
        const OPT_V num = OPT_VBLEND(l1, nl1, z > zero) - z;
        const OPT_V nw = OPT_VBLEND(num / ((beta + pnew) / lr + wd + l2x2), zero, az > l1);
        OPT_VSCATTER(s0, o, z);
        OPT_VSCATTER(s1, o, nnew);
        OPT_VSCATTER(w, o, nw);
      }
      break;
    }
    default: break;
  }
#undef OPT_VGRAD
  return i;
}
#undef OPT_V
#undef OPT_VU
#undef OPT_GATHER
#undef OPT_SPLAT
#undef OPT_VBLEND
#undef OPT_VSCATTER
#define OPT_ROWS1V(I0) \
  do {                 \
    if (rw == 1 && opt_have_avx2()) I0 = OPT_CAT(opt_rows1v_, OPT_SFX)(h, w, g, s0, s1, gi, I0, i1); \
  } while (0)
#else
#define OPT_ROWS1V(I0) do { } while (0)
#endif

OPT_CLONES static void OPT_CAT(opt_rows_, OPT_SFX)(const opt_hyper *h, OPT_T *restrict w,
                                        const OPT_T *restrict g, OPT_T *restrict s0,
                                        OPT_T *restrict s1, int64_t rw,
                                        const int64_t *restrict gi, int64_t i0, int64_t i1,
                                        int64_t pf) {
  switch (h->kind) {
    case KL_OPT_SGD:
      if (rw == 1) OPT_CAT(opt_rows1_sgd_, OPT_SFX)(h, w, g, s0, gi, i0, i1, pf);
      else OPT_ROWS_LOOP(KL_OPT_SGD);
      break;
    case KL_OPT_ADAM: OPT_ROWS1V(i0); OPT_ROWS_LOOP(KL_OPT_ADAM); break;
    case KL_OPT_ADAGRAD: OPT_ROWS1V(i0); OPT_ROWS_LOOP(KL_OPT_ADAGRAD); break;
    case KL_OPT_RMSPROP: OPT_ROWS1V(i0); OPT_ROWS_LOOP(KL_OPT_RMSPROP); break;
    case KL_OPT_FTRL: OPT_ROWS1V(i0); OPT_ROWS_LOOP(KL_OPT_FTRL); break;
    default: break;
  }
}
#undef OPT_ROWS_LOOP
#undef OPT_ROWS1V

#undef OPT_CAT
#undef OPT_CAT2
