/* k_loss.cu: the nine Keras losses on the device (layers/losses.c): the data checks, the mean
 * loss and its gradient w.r.t. y_pred, with and without per-row sample weights.
 *
 * Every term is the CPU's expression in double (elem_loss, the crossentropies' row loops),
 * one thread an element or a row of classes. The mean is losses.c's sum in index order,
 * which one thread runs over the terms computed in parallel before it: the CPU's additions
 * in the CPU's order, so the same bits wherever the terms are (log aside: the
 * crossentropies' and poisson's forward call log, which CUDA computes within 1 ulp of
 * glibc, not always equal to it). The gradients call no log: the CPU's bits. Labels and
 * weights the CPU refuses are flagged (the smallest bad position, an integer atomicMin)
 * for the caller to read; the kernels never read outside their buffers whatever the data. */
#include <math.h>

#include "kl_cuda_layers.h"
#include "kl_cuda_rt.h"

#define LOSS_ALIGN 256
/* losses.c's KL_POISSON_EPS and KL_HUBER_DELTA */
#define LOSS_POISSON_EPS 1e-7
#define LOSS_HUBER_DELTA 1.0

static size_t loss_align(size_t b) { return (b + LOSS_ALIGN - 1) / LOSS_ALIGN * LOSS_ALIGN; }

static const char *const loss_names[KL_CUDA_LOSS_COUNT] = {
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "hinge", "squared_hinge",
    "poisson", "huber"};

extern "C" const char *kl_cuda_loss_name(kl_cuda_loss k) {
  return k >= 0 && k < KL_CUDA_LOSS_COUNT ? loss_names[k] : "unknown loss";
}

extern "C" int kl_cuda_loss_of_op(kl_op op) {
  if (op < KL_OP_LOSS_MSE || op > KL_OP_LOSS_HUBER) return -1;
  return (int)op - (int)KL_OP_LOSS_MSE; /* the registry lists them in losses.c's order */
}

__device__ __forceinline__ double loss_rd(const void *p, int dt, int64_t i) {
  if (dt == KL_FLOAT32) return (double)((const float *)p)[i];
  if (dt == KL_FLOAT64) return ((const double *)p)[i];
  return (double)((const int64_t *)p)[i];
}

__device__ __forceinline__ double loss_clamp(double v, double lo, double hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* losses.c's elem_loss, expression by expression. */
__device__ double loss_elem(int k, double t, double p, int conv, double lo, double hi,
                            double *d) {
  double e = p - t;
  switch (k) {
    case KL_CUDA_LOSS_MSE:
      *d = 2 * e;
      return e * e;
    case KL_CUDA_LOSS_MAE:
      *d = e > 0 ? 1 : (e < 0 ? -1 : 0);
      return fabs(e);
    case KL_CUDA_LOSS_BCE: {
      double c = loss_clamp(p, lo, hi);
      *d = (p >= lo && p <= hi) ? -(t / c) + (1 - t) / (1 - c) : 0;
      return -(t * log(c) + (1 - t) * log(1 - c));
    }
    case KL_CUDA_LOSS_HINGE:
    case KL_CUDA_LOSS_SQHINGE: {
      if (conv) t = 2 * t - 1;
      double m = 1 - t * p;
      if (m < 0) {
        *d = 0;
        return 0;
      }
      *d = k == KL_CUDA_LOSS_HINGE ? -t : -2 * m * t;
      return k == KL_CUDA_LOSS_HINGE ? m : m * m;
    }
    case KL_CUDA_LOSS_POISSON:
      *d = 1 - t / (p + LOSS_POISSON_EPS);
      return p - t * log(p + LOSS_POISSON_EPS);
    default: /* huber */
      if (fabs(e) <= LOSS_HUBER_DELTA) {
        *d = e;
        return 0.5 * e * e;
      }
      *d = e > 0 ? LOSS_HUBER_DELTA : -LOSS_HUBER_DELTA;
      return LOSS_HUBER_DELTA * fabs(e) - 0.5 * LOSS_HUBER_DELTA * LOSS_HUBER_DELTA;
  }
}

/* What the kernels need of a call, by value. */
struct loss_k {
  int kind, tdt, wdt;
  const void *yt, *w;
  int64_t n, n0, C;
  int64_t R;  /* rows of classes: n / C (cce, scce), else n */
  int64_t wp; /* y_pred values a sample-weight row: n / n0 */
  double lo, hi;
};

/* ---- the data checks */

static __global__ void k_loss_set2(int64_t *bad, int64_t a, int64_t b) {
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    bad[0] = a;
    bad[1] = b;
  }
}

static __global__ void k_loss_check_labels(loss_k a, int64_t nt, int64_t *bad) {
  KL_GRID_LOOP(e, nt) {
    const double v = loss_rd(a.yt, a.tdt, e);
    const int b = a.kind == KL_CUDA_LOSS_SCCE ? !(v == floor(v)) || !(v >= 1 && v <= (double)a.C)
                                             : !(v >= 0 && v <= 1);
    if (b) atomicMin((unsigned long long *)bad, (unsigned long long)e);
  }
}

static __global__ void k_loss_check_weights(loss_k a, int64_t *bad) {
  KL_GRID_LOOP(r, a.n0) {
    const double v = loss_rd(a.w, a.wdt, r);
    if (!(v >= 0 && v < INFINITY)) atomicMin((unsigned long long *)bad, (unsigned long long)r);
  }
}

/* ---- the hinge labels' conversion (losses.c hinge_converts): over the batch, and per
 * sample-weight row (loss_value_weighted decides it row by row) */

static __global__ void k_loss_conv_init(int64_t n0, unsigned long long *glob,
                                        unsigned long long *rowc) {
  KL_GRID_LOOP(r, n0) {
    rowc[r] = 1;
    if (r == 0) *glob = 1;
  }
}

static __global__ void k_loss_conv(loss_k a, unsigned long long *glob, unsigned long long *rowc) {
  KL_GRID_LOOP(e, a.n) {
    const double t = loss_rd(a.yt, a.tdt, e);
    if (t != 0 && t != 1) {
      atomicMin(glob, 0ULL);
      atomicMin(rowc + e / a.wp, 0ULL);
    }
  }
}

/* ---- the forward's terms (in the order the CPU adds them) */

template <typename T>
__global__ void k_loss_terms_elem(loss_k a, const T *yp, const unsigned long long *glob,
                                  const unsigned long long *rowc, int weighted, double *term) {
  KL_GRID_LOOP(e, a.n) {
    const int conv = (int)(weighted ? rowc[e / a.wp] : *glob);
    double d;
    term[e] = loss_elem(a.kind, loss_rd(a.yt, a.tdt, e), (double)yp[e], conv, a.lo, a.hi, &d);
  }
}

/* cce: term[q, j] = t log(clip(p / tot)) where t != 0, else 0 (subtracted: s - 0 is s). */
template <typename T> __global__ void k_loss_terms_cce(loss_k a, const T *yp, double *term) {
  KL_GRID_LOOP(q, a.R) {
    const T *p = yp + q * a.C;
    double tot = 0;
    for (int64_t j = 0; j < a.C; j++) tot += (double)p[j];
    for (int64_t j = 0; j < a.C; j++) {
      const double t = loss_rd(a.yt, a.tdt, q * a.C + j);
      term[q * a.C + j] = t != 0 ? t * log(loss_clamp((double)p[j] / tot, a.lo, a.hi)) : 0;
    }
  }
}

/* scce: term[q] = log(sum clip(p)) - log(clip(p_y)) (NaN for a label out of range: the
 * check refuses it, and nothing is read outside the row). */
template <typename T> __global__ void k_loss_terms_scce(loss_k a, const T *yp, double *term) {
  KL_GRID_LOOP(q, a.R) {
    const T *p = yp + q * a.C;
    const double yv = loss_rd(a.yt, a.tdt, q);
    double tot = 0;
    for (int64_t j = 0; j < a.C; j++) tot += loss_clamp((double)p[j], a.lo, a.hi);
    if (yv >= 1 && yv <= (double)a.C) {
      const int64_t y = (int64_t)yv - 1;
      term[q] = log(tot) - log(loss_clamp((double)p[y], a.lo, a.hi));
    } else {
      term[q] = NAN;
    }
  }
}

/* The sums: M terms (cce: subtracted), the mean's divisor div (the elements, or the rows of
 * classes); weighted, each of n0 weight rows' M / n0 terms over div / n0. */
template <typename T>
__global__ void k_loss_sum(const double *term, int64_t M, int sub, int64_t div, T *out) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double s = 0;
  if (sub)
    for (int64_t i = 0; i < M; i++) s -= term[i];
  else
    for (int64_t i = 0; i < M; i++) s += term[i];
  out[0] = (T)(s / (double)div);
}

static __global__ void k_loss_row_means(const double *term, int64_t M, int64_t n0, int sub,
                                        int64_t div, double *lr) {
  const int64_t per = M / n0, rdiv = div / n0;
  KL_GRID_LOOP(r, n0) {
    double s = 0;
    if (sub)
      for (int64_t i = r * per; i < (r + 1) * per; i++) s -= term[i];
    else
      for (int64_t i = r * per; i < (r + 1) * per; i++) s += term[i];
    lr[r] = s / (double)rdiv;
  }
}

template <typename T>
__global__ void k_loss_wsum(loss_k a, const double *lr, T *out) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double s = 0;
  int64_t nz = 0;
  for (int64_t r = 0; r < a.n0; r++) {
    const double wr = loss_rd(a.w, a.wdt, r);
    if (wr == 0) continue;
    s += wr * lr[r];
    nz++;
  }
  out[0] = (T)(nz ? s / (double)nz : 0.0);
}

/* ---- the gradients */

static __global__ void k_loss_nz(loss_k a, unsigned long long *nz) {
  KL_GRID_LOOP(r, a.n0) if (loss_rd(a.w, a.wdt, r) != 0) atomicAdd(nz, 1ULL);
}

static __global__ void k_loss_zero(unsigned long long *p) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *p = 0;
}

/* The factor of weight row r (loss_grad's f): scale / per unweighted (per: the batch's
 * divisor), (scale * w_r / nz) / per weighted; 0 with *skip set for a row of weight 0. */
__device__ __forceinline__ double loss_factor(const loss_k &a, double scale, int weighted,
                                             const unsigned long long *nz, int64_t r,
                                             int64_t per, int *skip) {
  *skip = 0;
  if (!weighted) return scale / (double)per;
  const double wr = loss_rd(a.w, a.wdt, r);
  if (wr == 0) {
    *skip = 1;
    return 0;
  }
  return scale * wr / (double)(int64_t)*nz / (double)per;
}

template <typename T>
__global__ void k_loss_grad_elem(loss_k a, const T *yp, const unsigned long long *glob,
                                 const unsigned long long *rowc, int weighted,
                                 const unsigned long long *nz, int gdt, const void *gout,
                                 T *g) {
  const double scale = loss_rd(gout, gdt, 0);
  KL_GRID_LOOP(e, a.n) {
    const int64_t r = e / a.wp;
    int skip;
    const double f = loss_factor(a, scale, weighted, nz, r, weighted ? a.wp : a.n, &skip);
    if (skip) {
      g[e] = (T)0;
      continue;
    }
    const int conv = (int)(weighted ? rowc[r] : *glob);
    double d;
    loss_elem(a.kind, loss_rd(a.yt, a.tdt, e), (double)yp[e], conv, a.lo, a.hi, &d);
    g[e] = (T)(d * f);
  }
}

/* losses.c loss_grad's cce and scce rows. */
template <typename T>
__global__ void k_loss_grad_rows(loss_k a, const T *yp, int weighted,
                                 const unsigned long long *nz, int gdt, const void *gout,
                                 T *g) {
  const double scale = loss_rd(gout, gdt, 0);
  const int64_t per = weighted ? a.R / a.n0 : a.R, C = a.C;
  KL_GRID_LOOP(q, a.R) {
    const T *p = yp + q * C;
    T *gr = g + q * C;
    int skip;
    const double f = loss_factor(a, scale, weighted, nz, q / (a.R / a.n0), per, &skip);
    if (skip) {
      for (int64_t j = 0; j < C; j++) gr[j] = (T)0;
      continue;
    }
    if (a.kind == KL_CUDA_LOSS_CCE) {
      double tot = 0, uq = 0;
      for (int64_t j = 0; j < C; j++) tot += (double)p[j];
      for (int64_t j = 0; j < C; j++) {
        const double t = loss_rd(a.yt, a.tdt, q * C + j), qv = (double)p[j] / tot;
        const double u = (t != 0 && qv >= a.lo && qv <= a.hi) ? -t / qv : 0;
        uq += u * qv;
      }
      for (int64_t j = 0; j < C; j++) {
        const double t = loss_rd(a.yt, a.tdt, q * C + j), qv = (double)p[j] / tot;
        const double u = (t != 0 && qv >= a.lo && qv <= a.hi) ? -t / qv : 0;
        gr[j] = (T)((u - uq) / tot * f);
      }
    } else {
      const double yv = loss_rd(a.yt, a.tdt, q);
      const int64_t y = yv >= 1 && yv <= (double)C ? (int64_t)yv - 1 : -1;
      double tot = 0;
      for (int64_t j = 0; j < C; j++) tot += loss_clamp((double)p[j], a.lo, a.hi);
      for (int64_t j = 0; j < C; j++) {
        const double pv = (double)p[j], c = loss_clamp(pv, a.lo, a.hi);
        const double v = (pv >= a.lo && pv <= a.hi) ? 1 / tot - (j == y ? 1 / c : 0) : 0;
        gr[j] = (T)(v * f);
      }
    }
  }
}

/* ---- host side */

/* losses.c clip_bounds: [eps, 1 - eps], eps = 1e-7, rounded to y_pred's dtype. */
static void loss_bounds(kl_dtype dt, double *lo, double *hi) {
  if (dt == KL_FLOAT32) {
    *lo = (double)(float)1e-7;
    *hi = (double)(1.0f - (float)1e-7);
  } else {
    *lo = 1e-7;
    *hi = 1.0 - 1e-7;
  }
}

static kl_status loss_prep(const char *fn, const kl_cuda_loss_args *a, loss_k *k) {
  if (!a || a->kind < 0 || a->kind >= KL_CUDA_LOSS_COUNT)
    return kl_cuda_seterr(KL_EINVAL, "%s: bad loss kind", fn);
  if (a->pdt != KL_FLOAT32 && a->pdt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "%s: y_pred must be float32 or float64, got %s", fn,
                          kl_cuda_dtype_name(a->pdt));
  if ((a->tdt != KL_FLOAT32 && a->tdt != KL_FLOAT64 && a->tdt != KL_INT64) ||
      (a->w && a->wdt != KL_FLOAT32 && a->wdt != KL_FLOAT64 && a->wdt != KL_INT64))
    return kl_cuda_seterr(KL_EDTYPE, "%s: bad y_true or sample_weight dtype", fn);
  const int rows = a->kind == KL_CUDA_LOSS_CCE || a->kind == KL_CUDA_LOSS_SCCE;
  if (a->n <= 0 || a->n0 <= 0 || a->C <= 0 || a->n % a->n0 != 0 || a->n % a->C != 0 ||
      (rows && (a->n / a->C) % a->n0 != 0))
    return kl_cuda_seterr(KL_ESHAPE, "%s: bad sizes n=%lld rows=%lld C=%lld", fn,
                          (long long)a->n, (long long)a->n0, (long long)a->C);
  k->kind = (int)a->kind;
  k->tdt = (int)a->tdt;
  k->wdt = (int)a->wdt;
  k->yt = a->yt;
  k->w = a->w;
  k->n = a->n;
  k->n0 = a->n0;
  k->C = a->C;
  k->R = rows ? a->n / a->C : a->n;
  k->wp = a->n / a->n0;
  loss_bounds(a->pdt, &k->lo, &k->hi);
  return KL_OK;
}

/* Scratch: the terms (scce: R, else n), n0 row means (double), n0 + 2 flags / counts
 * (unsigned long long). */
struct loss_scr {
  double *term, *lr;
  unsigned long long *rowc, *glob, *nz;
};

static size_t loss_scr_layout(const loss_k &k, void *base, loss_scr *sc) {
  const int64_t M = k.kind == KL_CUDA_LOSS_SCCE ? k.R : k.n;
  const size_t a = loss_align((size_t)M * sizeof(double));
  const size_t b = loss_align((size_t)k.n0 * sizeof(double));
  const size_t c = loss_align((size_t)(k.n0 + 2) * sizeof(unsigned long long));
  if (sc) {
    char *p = (char *)base;
    sc->term = (double *)p;
    sc->lr = (double *)(p + a);
    sc->rowc = (unsigned long long *)(p + a + b);
    sc->glob = sc->rowc + k.n0;
    sc->nz = sc->glob + 1;
  }
  return a + b + c;
}

extern "C" size_t kl_cuda_loss_scratch(const kl_cuda_loss_args *a) {
  loss_k k = loss_k();
  if (!a || a->n <= 0 || a->n0 <= 0 || a->C <= 0) return 0;
  const int rows = a->kind == KL_CUDA_LOSS_CCE || a->kind == KL_CUDA_LOSS_SCCE;
  k.kind = (int)a->kind;
  k.n = a->n;
  k.R = rows ? a->n / a->C : a->n;
  k.n0 = a->n0;
  return loss_scr_layout(k, NULL, NULL);
}

extern "C" kl_status kl_cuda_loss_check(const kl_cuda_loss_args *a, int64_t *bad,
                                        kl_cuda_stream s) {
  const char *fn = "cuda loss_check";
  loss_k k = loss_k();
  kl_status st = loss_prep(fn, a, &k);
  if (st != KL_OK) return st;
  const int64_t nt = k.kind == KL_CUDA_LOSS_SCCE ? k.R : k.n;
  KL_LAUNCH(k_loss_set2, 1, 1, s, bad, nt, k.n0);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if (k.kind == KL_CUDA_LOSS_SCCE || k.kind == KL_CUDA_LOSS_BCE) {
    KL_LAUNCH(k_loss_check_labels, kl_cuda_blocks(nt), KL_CUDA_BLOCK, s, k, nt, bad);
    if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  }
  if (k.w) {
    KL_LAUNCH(k_loss_check_weights, kl_cuda_blocks(k.n0), KL_CUDA_BLOCK, s, k, bad + 1);
    st = kl_cuda_launched(fn);
  }
  return st;
}

extern "C" kl_status kl_cuda_loss_label_error(kl_cuda_loss k, double v, int64_t p, int64_t lw,
                                              int64_t C) {
  const char *fn = kl_cuda_loss_name(k);
  const long long r = (long long)(p / (lw > 0 ? lw : 1) + 1);
  if (k == KL_CUDA_LOSS_SCCE) {
    if (!(v == floor(v)))
      return kl_cuda_seterr(KL_EINDEX, "%s: label %.15g is not an integer at row %lld", fn, v, r);
    return kl_cuda_seterr(KL_EINDEX, "%s: label %.15g out of range [1, %lld] at row %lld", fn, v,
                          (long long)C, r);
  }
  return kl_cuda_seterr(KL_EINDEX,
                        "%s: label %.15g out of range [0, 1] at row %lld (map -1/+1 labels to 0/1: "
                        "label_map = {[-1] = 0, [1] = 1})", fn, v, r);
}

extern "C" kl_status kl_cuda_loss_weight_error(kl_cuda_loss k, double v, int64_t r) {
  return kl_cuda_seterr(KL_EINVAL, "%s: sample_weight %.15g at row %lld must be finite and >= 0",
                        kl_cuda_loss_name(k), v, (long long)(r + 1));
}

/* The hinge conversion flags, when the loss has them. */
static kl_status loss_conv_flags(const char *fn, const loss_k &k, const loss_scr &sc,
                                 kl_cuda_stream s) {
  if (k.kind != KL_CUDA_LOSS_HINGE && k.kind != KL_CUDA_LOSS_SQHINGE) return KL_OK;
  KL_LAUNCH(k_loss_conv_init, kl_cuda_blocks(k.n0), KL_CUDA_BLOCK, s, k.n0, sc.glob, sc.rowc);
  kl_status st = kl_cuda_launched(fn);
  if (st != KL_OK) return st;
  KL_LAUNCH(k_loss_conv, kl_cuda_blocks(k.n), KL_CUDA_BLOCK, s, k, sc.glob, sc.rowc);
  return kl_cuda_launched(fn);
}

template <typename T>
static kl_status loss_fwd_t(const char *fn, const loss_k &k, const void *ypv, const loss_scr &sc,
                            void *outv, kl_cuda_stream s) {
  const T *yp = (const T *)ypv;
  T *out = (T *)outv;
  const int weighted = k.w != NULL;
  const int sub = k.kind == KL_CUDA_LOSS_CCE;
  const int64_t M = k.kind == KL_CUDA_LOSS_SCCE ? k.R : k.n;
  const int64_t div = k.R; /* elementwise: R is n */
  kl_status st = loss_conv_flags(fn, k, sc, s);
  if (st != KL_OK) return st;
  if (k.kind == KL_CUDA_LOSS_CCE)
    KL_LAUNCH(k_loss_terms_cce<T>, kl_cuda_blocks(k.R), KL_CUDA_BLOCK, s, k, yp, sc.term);
  else if (k.kind == KL_CUDA_LOSS_SCCE)
    KL_LAUNCH(k_loss_terms_scce<T>, kl_cuda_blocks(k.R), KL_CUDA_BLOCK, s, k, yp, sc.term);
  else
    KL_LAUNCH(k_loss_terms_elem<T>, kl_cuda_blocks(k.n), KL_CUDA_BLOCK, s, k, yp, sc.glob,
              sc.rowc, weighted, sc.term);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  if (!weighted) {
    KL_LAUNCH(k_loss_sum<T>, 1, 1, s, sc.term, M, sub, div, out);
    return kl_cuda_launched(fn);
  }
  KL_LAUNCH(k_loss_row_means, kl_cuda_blocks(k.n0), KL_CUDA_BLOCK, s, sc.term, M, k.n0, sub,
            div, sc.lr);
  if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  KL_LAUNCH(k_loss_wsum<T>, 1, 1, s, k, sc.lr, out);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_loss_forward(const kl_cuda_loss_args *a, void *scratch, void *out,
                                          kl_cuda_stream s) {
  const char *fn = "cuda loss_forward";
  loss_k k = loss_k();
  kl_status st = loss_prep(fn, a, &k);
  if (st != KL_OK) return st;
  loss_scr sc;
  loss_scr_layout(k, scratch, &sc);
  return a->pdt == KL_FLOAT32 ? loss_fwd_t<float>(fn, k, a->yp, sc, out, s)
                              : loss_fwd_t<double>(fn, k, a->yp, sc, out, s);
}

template <typename T>
static kl_status loss_bwd_t(const char *fn, const loss_k &k, const void *ypv, kl_dtype gdt,
                            const void *gout, const loss_scr &sc, void *gv, kl_cuda_stream s) {
  const T *yp = (const T *)ypv;
  T *g = (T *)gv;
  const int weighted = k.w != NULL;
  kl_status st = loss_conv_flags(fn, k, sc, s);
  if (st != KL_OK) return st;
  if (weighted) {
    KL_LAUNCH(k_loss_zero, 1, 1, s, sc.nz);
    if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
    KL_LAUNCH(k_loss_nz, kl_cuda_blocks(k.n0), KL_CUDA_BLOCK, s, k, sc.nz);
    if ((st = kl_cuda_launched(fn)) != KL_OK) return st;
  }
  if (k.kind == KL_CUDA_LOSS_CCE || k.kind == KL_CUDA_LOSS_SCCE)
    KL_LAUNCH(k_loss_grad_rows<T>, kl_cuda_blocks(k.R), KL_CUDA_BLOCK, s, k, yp, weighted,
              sc.nz, (int)gdt, gout, g);
  else
    KL_LAUNCH(k_loss_grad_elem<T>, kl_cuda_blocks(k.n), KL_CUDA_BLOCK, s, k, yp, sc.glob,
              sc.rowc, weighted, sc.nz, (int)gdt, gout, g);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_loss_backward(const kl_cuda_loss_args *a, kl_dtype gdt,
                                           const void *gout, void *scratch, void *g,
                                           kl_cuda_stream s) {
  const char *fn = "cuda loss_backward";
  loss_k k = loss_k();
  kl_status st = loss_prep(fn, a, &k);
  if (st != KL_OK) return st;
  if (gdt != KL_FLOAT32 && gdt != KL_FLOAT64 && gdt != KL_INT64)
    return kl_cuda_seterr(KL_EDTYPE, "%s: bad gout dtype", fn);
  loss_scr sc;
  loss_scr_layout(k, scratch, &sc);
  return a->pdt == KL_FLOAT32 ? loss_bwd_t<float>(fn, k, a->yp, gdt, gout, sc, g, s)
                              : loss_bwd_t<double>(fn, k, a->yp, gdt, gout, sc, g, s);
}
