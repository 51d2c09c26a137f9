/* optim_update.c: kl_optimizer_update: argument checks and the dense / lazy / non-lazy row loops. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <omp.h>

#include "device_internal.h"
#include "kl/optim.h"
#include "optim_hyper.h"
#include "optim_internal.h"


/* The vector row loops of optim_rows.h (GCC on x86-64; chosen when the CPU has AVX2). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
static int opt_have_avx2(void) {
  static int have = -1;
  if (have < 0) have = __builtin_cpu_supports("avx2") ? 1 : 0;
  return have;
}
#define OPT_VEC 1
#endif

#define OPT_T float
#ifdef OPT_VEC
#define OPT_VL 8
#define OPT_VSQRT(x) ((opt_v_f32)_mm256_sqrt_ps((__m256)(x)))
#endif
#define OPT_U uint32_t
#define OPT_SQRT sqrtf
#define OPT_POW powf
#define OPT_SFX f32
#include "optim_rows.h"
#undef OPT_T
#undef OPT_U
#undef OPT_SQRT
#undef OPT_POW
#undef OPT_SFX
#undef OPT_VL
#undef OPT_VSQRT

#define OPT_T double
#ifdef OPT_VEC
#define OPT_VL 4
#define OPT_VSQRT(x) ((opt_v_f64)_mm256_sqrt_pd((__m256d)(x)))
#endif
#define OPT_U uint64_t
#define OPT_SQRT sqrt
#define OPT_POW pow
#define OPT_SFX f64
#include "optim_rows.h"
#undef OPT_T
#undef OPT_U
#undef OPT_SQRT
#undef OPT_POW
#undef OPT_SFX
#undef OPT_VL
#undef OPT_VSQRT

/* Below this many elements an update runs on one thread (thread start-up would dominate). */
#define OPT_PARALLEL_MIN ((int64_t)1 << 16)
/* ... except the lazy 1-wide rows of a rule with a square root and a divide (Adagrad, Adam,
 * RMSprop, Ftrl: ~2.5-3 ns a row; W7's ~19,000 rows a step, W5's): split from this many
 * rows. Rows are split in static halves: a row is one thread's, the same bits at any count. */
#define OPT_PARALLEL_MIN1 ((int64_t)4096)
static inline int rows_parallel(const opt_hyper *h, int64_t n, int64_t rw) {
  return n * rw >= OPT_PARALLEL_MIN || (rw == 1 && h->kind != KL_OPT_SGD && n >= OPT_PARALLEL_MIN1);
}

/* Everything the row loops need, typed-erased (es = element size in bytes). */
typedef struct opt_job {
  opt_hyper h;
  int f64;
  size_t es;
  int64_t rw;            /* row width */
  char *w;               /* weight values (dense data, or row_sparse stored rows) */
  const char *g;         /* gradient values */
  char *s0, *s1;         /* state data (dense, full shape) or NULL */
} opt_job;

static inline void run_row(const opt_job *j, int64_t wpos, int64_t gpos, int64_t srow) {
  size_t off = (size_t)srow * (size_t)j->rw * j->es;
  char *s0 = j->s0 ? j->s0 + off : NULL;
  char *s1 = j->s1 ? j->s1 + off : NULL;
  char *w = j->w + (size_t)wpos * (size_t)j->rw * j->es;
  const char *g = gpos >= 0 ? j->g + (size_t)gpos * (size_t)j->rw * j->es : NULL;
  if (j->f64)
    opt_row_f64(&j->h, (double *)w, (const double *)g, (double *)s0, (double *)s1, j->rw);
  else
    opt_row_f32(&j->h, (float *)w, (const float *)g, (float *)s0, (float *)s1, j->rw);
}

/* Position of row r in the sorted idx[0..n-1], or -1. */
static int64_t find_row(const int64_t *idx, int64_t n, int64_t r) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (idx[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return (lo < n && idx[lo] == r) ? lo : -1;
}

/* "(4 x 2)" into buf. */
static const char *shape_str(const kl_tensor *t, char *buf, size_t cap) {
  size_t len = 0;
  buf[len++] = '(';
  buf[len] = '\0';
  for (int d = 0; d < t->ndim && len < cap; d++)
    len += (size_t)snprintf(buf + len, cap - len, d ? " x %lld" : "%lld", (long long)t->shape[d]);
  if (len < cap - 1) {
    buf[len++] = ')';
    buf[len] = '\0';
  }
  return buf;
}

static int same_shape(const kl_tensor *a, const kl_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  return 1;
}

/* Checks a tensor argument (weight, gradient or state) against the weight. */
static kl_status check_arg(const char *k, const char *what, const kl_tensor *t,
                           const kl_tensor *w, int dense_only) {
  char b1[256], b2[256];
  KL_CHECK(t != NULL, KL_EINVAL, "%s.update: %s is NULL", k, what);
  if (dense_only)
    KL_CHECK(t->stype == KL_STYPE_DEFAULT, KL_ESTYPE, "%s.update: %s must be dense, got %s", k,
             what, kl_stype_name(t->stype));
  else
    KL_CHECK(t->stype == KL_STYPE_DEFAULT || t->stype == KL_STYPE_ROW_SPARSE, KL_ESTYPE,
             "%s.update: %s stype %s not supported (default or row_sparse)", k, what,
             kl_stype_name(t->stype));
  if (t == w) {
    KL_CHECK(t->dtype == KL_FLOAT32 || t->dtype == KL_FLOAT64, KL_EDTYPE,
             "%s.update: weight dtype %s not supported (float32 or float64)", k,
             kl_dtype_name(t->dtype));
    KL_CHECK(t->stype == KL_STYPE_DEFAULT || t->ndim >= 1, KL_ESHAPE,
             "%s.update: a row_sparse weight needs ndim >= 1", k);
    KL_CHECK(t->stype == KL_STYPE_DEFAULT || (t->nnz >= 0 && t->nnz <= t->shape[0]), KL_EINDEX,
             "%s.update: weight stores %lld rows of %lld", k, (long long)t->nnz,
             (long long)t->shape[0]);
    return KL_OK;
  }
  KL_CHECK(t->dtype == w->dtype, KL_EDTYPE, "%s.update: %s dtype %s does not match weight %s",
           k, what, kl_dtype_name(t->dtype), kl_dtype_name(w->dtype));
  KL_CHECK(same_shape(t, w), KL_ESHAPE, "%s.update: %s shape %s does not match weight %s", k,
           what, shape_str(t, b1, sizeof b1), shape_str(w, b2, sizeof b2));
  return KL_OK;
}

/* A row_sparse gradient's indices: in [0, rows), strictly increasing; and, for a weight that
 * stores only some rows, each one stored. O(nnz(g)) (+ log nnz(w) per row when partial). */
static kl_status check_grad_rows(const char *k, const kl_tensor *g, const kl_tensor *w,
                                 int64_t rows, int w_partial) {
  const int64_t *gi = g->indices;
  KL_CHECK(g->nnz >= 0 && g->nnz <= rows, KL_EINDEX, "%s.update: gradient stores %lld rows of %lld",
           k, (long long)g->nnz, (long long)rows);
  if (!w_partial) { /* the common case, branch-free; the loop below finds the culprit */
    int ok = 1;
    int64_t prev = -1;
    for (int64_t i = 0; i < g->nnz; i++) {
      ok &= (gi[i] > prev) & (gi[i] < rows);
      prev = gi[i];
    }
    if (ok) return KL_OK;
  }
  for (int64_t i = 0; i < g->nnz; i++) {
    KL_CHECK(gi[i] >= 0 && gi[i] < rows, KL_EINDEX,
             "%s.update: gradient indices[%lld] = %lld out of range for %lld rows", k,
             (long long)i, (long long)gi[i], (long long)rows);
    KL_CHECK(i == 0 || gi[i] > gi[i - 1], KL_EINDEX,
             "%s.update: gradient indices not strictly increasing at [%lld] (%lld after %lld)",
             k, (long long)i, (long long)gi[i], (long long)gi[i - 1]);
    if (w_partial)
      KL_CHECK(find_row(w->indices, w->nnz, gi[i]) >= 0, KL_EINDEX,
               "%s.update: gradient row %lld is not stored in the row_sparse weight", k,
               (long long)gi[i]);
  }
  return KL_OK;
}

static void resolve_hyper(const kl_optimizer *o, int64_t t, opt_hyper *h) {
  memset(h, 0, sizeof *h);
  h->kind = o->kind;
  /* Keras 2's decay: lr * 1 / (1 + decay * iterations), iterations = t - 1 updates before */
  h->lr = o->decay > 0 ? o->learning_rate * (1.0 / (1.0 + o->decay * (double)(t - 1)))
                       : o->learning_rate;
  h->mom = o->momentum;
  h->has_mom = o->momentum > 0;
  h->nesterov = o->nesterov != 0;
  h->wd = o->weight_decay;
  h->clip = o->clipvalue;
  h->rescale = o->rescale_grad;
  h->b1 = o->beta_1;
  h->b2 = o->beta_2;
  h->eps = o->epsilon;
  h->rho = o->rho;
  h->lamda1 = o->lamda1;
  h->beta = o->beta;
  h->l2 = o->l2;
  h->lr_power = o->lr_power;
  if (o->kind == KL_OPT_ADAM)
    h->lr_t = h->lr * sqrt(1.0 - pow(o->beta_2, (double)t)) / (1.0 - pow(o->beta_1, (double)t));
}

/* Rows of weight and states fetched ahead of the lazy row loop; 1-wide rows (a Dense(1)
 * kernel) are fetched further ahead, and only when the weight is larger than L2. */
#define OPT_PF 4
#define OPT_PF1 16
#define OPT_PF1_MIN_BYTES ((size_t)256 << 10)

static void update_apply(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                         kl_tensor **states, int64_t t);
static void flagged_apply(const kl_optimizer *o, kl_tensor *w, void *acc, uint32_t *flag,
                          kl_tensor **states, int64_t t);

/* The update of a weight on a device (checked): the backend's, else the host's on host
 * copies written back (counted as a device fallback). */
static kl_status update_device(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                               kl_tensor **states, int64_t t) {
  const kl_device_backend *be = kl_device_backend_get();
  if (be && be->opt_update) {
    kl_status st = be->opt_update(o, w, g, states, t);
    if (st != KL_EUNSUPPORTED) return st;
  }
  int ns = kl_optimizer_num_states(o);
  kl_tensor *hw = NULL, *hg = NULL, *hs[2] = {NULL, NULL}, *back = NULL;
  kl_status st = kl_tensor_to(w, KL_CPU, &hw);
  if (st == KL_OK) st = kl_tensor_to(g, KL_CPU, &hg);
  for (int i = 0; i < ns && st == KL_OK; i++) st = kl_tensor_to(states[i], KL_CPU, &hs[i]);
  if (st == KL_OK) update_apply(o, hw, hg, hs, t);
  /* written back only once every copy is made: a failure leaves the device as it was */
  kl_tensor *dev[3] = {NULL, NULL, NULL};
  if (st == KL_OK) st = kl_tensor_to(hw, w->device, &dev[0]);
  for (int i = 0; i < ns && st == KL_OK; i++) st = kl_tensor_to(hs[i], w->device, &dev[1 + i]);
  if (st == KL_OK) {
    kl_device_assign(w, dev[0]);
    for (int i = 0; i < ns; i++) kl_device_assign(states[i], dev[1 + i]);
    char what[64];
    snprintf(what, sizeof what, "%s update", kl_optimizer_kind_name(o->kind));
    kl_device_note_fallback(what, w->device);
  }
  for (int i = 0; i < 3; i++) kl_tensor_release(dev[i]);
  kl_tensor_release(hw);
  kl_tensor_release(hg);
  kl_tensor_release(hs[0]);
  kl_tensor_release(hs[1]);
  kl_tensor_release(back);
  return st;
}

kl_status kl_optimizer_update(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                              kl_tensor **states, int64_t t) {
  KL_TRY(kl_optimizer_update_precheck(o, w, g, states, t, 0));
  if (w->device != KL_CPU) return update_device(o, w, g, states, t);
  update_apply(o, w, g, states, t);
  return KL_OK;
}

kl_status kl_optimizer_update_trusted(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                                      kl_tensor **states, int64_t t) {
  KL_TRY(kl_optimizer_update_precheck(o, w, g, states, t, 1));
  if (w->device != KL_CPU) return update_device(o, w, g, states, t);
  update_apply(o, w, g, states, t);
  return KL_OK;
}

void kl_optimizer_update_prechecked(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                                    kl_tensor **states, int64_t t) {
  update_apply(o, w, g, states, t);
}

void kl_optimizer_update_flagged_prechecked(const kl_optimizer *o, kl_tensor *w, void *acc,
                                            uint32_t *flag, kl_tensor **states, int64_t t) {
  flagged_apply(o, w, acc, flag, states, t);
}

/* The checks of an update's optimizer, weight, states and step, and with with_g of its
 * gradient g (the flagged update has none). */
static kl_status check_update(const kl_optimizer *o, const kl_tensor *w, int with_g,
                              const kl_tensor *g, kl_tensor **states, int64_t t) {
  KL_TRY(kl_optimizer_check(o));
  const char *k = kl_optimizer_kind_name(o->kind);
  int ns = kl_optimizer_num_states(o);
  KL_TRY(check_arg(k, "weight", w, w, 0));
  if (with_g) KL_TRY(check_arg(k, "gradient", g, w, 0));
  KL_CHECK(ns == 0 || states != NULL, KL_EINVAL, "%s.update: states is NULL (%d needed)", k, ns);
  for (int i = 0; i < ns; i++) {
    char what[64];
    snprintf(what, sizeof what, "state '%s'", kl_optimizer_state_name(o, i));
    KL_TRY(check_arg(k, what, states[i], w, 1));
  }
  /* The row kernels take restrict pointers: no two buffers may be the same. */
  KL_CHECK(!g || g->data != w->data || kl_tensor_numel(w) == 0, KL_EINVAL,
           "%s.update: gradient and weight share their storage", k);
  for (int i = 0; i < ns; i++) {
    const void *d = states[i]->data;
    KL_CHECK(kl_tensor_numel(w) == 0 ||
                 (d != w->data && (!g || d != g->data) && (i == 0 || d != states[0]->data)),
             KL_EINVAL, "%s.update: state '%s' shares its storage with another argument", k,
             kl_optimizer_state_name(o, i));
  }
  KL_CHECK(t >= 1, KL_EINVAL, "%s.update: t must be >= 1. Received: t=%lld", k, (long long)t);
  {
    char a[32], b[32];
    KL_CHECK(!g || g->device == w->device, KL_EINVAL,
             "%s.update: the gradient is on %s, the weight on %s", k,
             kl_device_str(g ? g->device : 0, a, sizeof a), kl_device_str(w->device, b, sizeof b));
    for (int i = 0; i < ns; i++)
      KL_CHECK(states[i]->device == w->device, KL_EINVAL, "%s.update: state '%s' is on %s, the weight on %s",
               k, kl_optimizer_state_name(o, i), kl_device_str(states[i]->device, a, sizeof a),
               kl_device_str(w->device, b, sizeof b));
  }
  return KL_OK;
}

/* The checks of an update and of a flagged update: everything that can make it fail, so
 * that an update that passed them cannot (the plan checks every weight's update before it
 * writes the first: a step is all or nothing). They write nothing. */
kl_status kl_optimizer_flagged_precheck(const kl_optimizer *o, const kl_tensor *w,
                                        kl_tensor **states, int64_t t) {
  KL_TRY(check_update(o, w, 0, NULL, states, t));
  if (w->device != KL_CPU) return kl_device_refuse("flagged update", w);
  const int64_t rows = w->ndim ? w->shape[0] : 1;
  const int w_partial = w->stype == KL_STYPE_ROW_SPARSE && w->nnz < rows;
  KL_CHECK(o->lazy_update && w->ndim >= 1 && !w_partial, KL_EINVAL,
           "%s.update: a flagged update needs a lazy optimizer and a weight that stores "
           "every row", kl_optimizer_kind_name(o->kind));
  return KL_OK;
}

kl_status kl_optimizer_update_precheck(const kl_optimizer *o, const kl_tensor *w,
                                       const kl_tensor *g, kl_tensor **states, int64_t t,
                                       int trusted_rows) {
  KL_TRY(check_update(o, w, 1, g, states, t));
  const char *k = kl_optimizer_kind_name(o->kind);
  const int64_t rows = w->ndim ? w->shape[0] : 1;
  const int w_partial = w->stype == KL_STYPE_ROW_SPARSE && w->nnz < rows;
  const int g_sparse = g->stype == KL_STYPE_ROW_SPARSE;
  KL_CHECK(!(w_partial && !g_sparse), KL_EINDEX,
           "%s.update: a dense gradient needs a weight that stores every row (weight stores "
           "%lld of %lld)", k, (long long)w->nnz, (long long)rows);
  if (g_sparse && (w_partial || !trusted_rows)) {
    if (w->device == KL_CPU) return check_grad_rows(k, g, w, rows, w_partial);
    /* on a device, the index checks read host copies of the indices */
    kl_tensor *hg = NULL, *hw = NULL;
    kl_status st = kl_tensor_to(g, KL_CPU, &hg);
    if (st == KL_OK) st = kl_tensor_to(w, KL_CPU, &hw);
    if (st == KL_OK) st = check_grad_rows(k, hg, hw, rows, w_partial);
    kl_tensor_release(hg);
    kl_tensor_release(hw);
    return st;
  }
  return KL_OK;
}

kl_status kl_optimizer_update_flagged(const kl_optimizer *o, kl_tensor *w, void *acc,
                                      uint32_t *flag, kl_tensor **states, int64_t t) {
  kl_status st = kl_optimizer_flagged_precheck(o, w, states, t);
  if (!w) return st; /* (the check said so) nothing to size the accumulator by */
  if (st != KL_OK) { /* leave the accumulator as the contract wants it: zero */
    const int64_t rows = w->ndim ? w->shape[0] : 1, rw = w->ndim ? kl_row_width(w) : 1;
    memset(flag, 0, (size_t)rows * sizeof *flag);
    memset(acc, 0, (size_t)(rows * rw) * kl_dtype_size(w->dtype));
    return st;
  }
  flagged_apply(o, w, acc, flag, states, t);
  return KL_OK;
}

static void flagged_apply(const kl_optimizer *o, kl_tensor *w, void *acc, uint32_t *flag,
                          kl_tensor **states, int64_t t) {
  const int64_t rows = w->shape[0], rw = kl_row_width(w);
  int ns = kl_optimizer_num_states(o);
  opt_hyper h;
  resolve_hyper(o, t, &h);
  void *s0 = ns > 0 ? states[0]->data : NULL, *s1 = ns > 1 ? states[1]->data : NULL;
#pragma omp parallel if (rows * rw >= OPT_PARALLEL_MIN)
  {
    int T = omp_get_num_threads(), q = omp_get_thread_num();
    int64_t c0 = rows * q / T, c1 = rows * (q + 1) / T;
    if (w->dtype == KL_FLOAT64)
      opt_flagged_f64(&h, w->data, acc, flag, s0, s1, rw, c0, c1);
    else
      opt_flagged_f32(&h, w->data, acc, flag, s0, s1, rw, c0, c1);
  }
}

void kl_optimizer_update_listed_prechecked(const kl_optimizer *o, kl_tensor *w, const void *g,
                                           const int64_t *list, int64_t n, kl_tensor **states,
                                           int64_t t) {
  /* update_apply's lazy branch with the list for the gradient's indices */
  const int ns = kl_optimizer_num_states(o);
  opt_hyper h;
  resolve_hyper(o, t, &h);
  const int64_t rows = w->shape[0], rw = kl_row_width(w);
  const size_t es = kl_dtype_size(w->dtype);
  void *s0 = ns > 0 ? states[0]->data : NULL, *s1 = ns > 1 ? states[1]->data : NULL;
  const int64_t pf = rw > 1 ? OPT_PF : (size_t)rows * es > OPT_PF1_MIN_BYTES ? OPT_PF1 : 0;
#pragma omp parallel if (rows_parallel(&h, n, rw))
  {
    int T = omp_get_num_threads(), q = omp_get_thread_num();
    int64_t i0 = n * q / T, i1 = n * (q + 1) / T;
    if (w->dtype == KL_FLOAT64)
      opt_rows_f64(&h, (double *)w->data, (const double *)g, (double *)s0, (double *)s1, rw,
                   list, i0, i1, pf);
    else
      opt_rows_f32(&h, (float *)w->data, (const float *)g, (float *)s0, (float *)s1, rw, list,
                   i0, i1, pf);
  }
}

void kl_opt_hyper_of(const kl_optimizer *o, int64_t t, opt_hyper *h) { resolve_hyper(o, t, h); }

void kl_opt_rows1(const opt_hyper *h, kl_dtype dt, void *w, const void *g, void *s0, void *s1,
                  const int64_t *list, int64_t i0, int64_t i1, int64_t pf) {
  if (dt == KL_FLOAT64)
    opt_rows_f64(h, (double *)w, (const double *)g, (double *)s0, (double *)s1, 1, list, i0, i1,
                 pf);
  else
    opt_rows_f32(h, (float *)w, (const float *)g, (float *)s0, (float *)s1, 1, list, i0, i1, pf);
}

void kl_opt_flagged_range(const opt_hyper *h, kl_dtype dt, void *w, void *acc, uint32_t *flag,
                          void *s0, void *s1, int64_t rw, int64_t c0, int64_t c1) {
  if (dt == KL_FLOAT64) opt_flagged_f64(h, w, acc, flag, s0, s1, rw, c0, c1);
  else opt_flagged_f32(h, w, acc, flag, s0, s1, rw, c0, c1);
}

/* The update proper, after kl_optimizer_update_precheck passed: it cannot fail. */
static void update_apply(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                         kl_tensor **states, int64_t t) {
  int ns = kl_optimizer_num_states(o);

  int64_t rows = w->ndim ? w->shape[0] : 1;
  int w_sparse = w->stype == KL_STYPE_ROW_SPARSE;
  int w_partial = w_sparse && w->nnz < rows; /* a full one has indices 0..rows-1 */
  int g_sparse = g->stype == KL_STYPE_ROW_SPARSE;

  opt_job j;
  resolve_hyper(o, t, &j.h);
  j.f64 = w->dtype == KL_FLOAT64;
  j.es = kl_dtype_size(w->dtype);
  j.rw = w->ndim ? kl_row_width(w) : 1;
  j.w = (char *)w->data;
  j.g = (const char *)g->data;
  j.s0 = ns > 0 ? (char *)states[0]->data : NULL;
  j.s1 = ns > 1 ? (char *)states[1]->data : NULL;

  if (!g_sparse) {
    /* Dense rule over every row (w dense or storing every row: position == row). */
    int64_t n = rows;
#pragma omp parallel for schedule(static) if (n * j.rw >= OPT_PARALLEL_MIN)
    for (int64_t r = 0; r < n; r++) run_row(&j, r, r, r);
  } else if (o->lazy_update && !w_partial) {
    /* Only the gradient's rows, O(nnz(g) * row_width): contiguous chunks of them per
     * thread, each chunk one opt_rows call. */
    const int64_t *gi = g->indices, n = g->nnz;
    /* The rows are scattered over weight and states (W3: 5,120 random rows of 7.7 GB):
     * later rows' lines are fetched while one is updated. Rows of one element are fetched
     * when the weight does not fit in L2 (W5: 19 k of 10^6 rows a step; W1's 10^4 stay). */
    const int64_t pf = j.rw > 1 ? OPT_PF
                       : (size_t)rows * j.es > OPT_PF1_MIN_BYTES ? OPT_PF1 : 0;
#pragma omp parallel if (rows_parallel(&j.h, n, j.rw))
    {
      int T = omp_get_num_threads(), t = omp_get_thread_num();
      int64_t i0 = n * t / T, i1 = n * (t + 1) / T;
      if (j.f64)
        opt_rows_f64(&j.h, (double *)j.w, (const double *)j.g, (double *)j.s0,
                     (double *)j.s1, j.rw, gi, i0, i1, pf);
      else
        opt_rows_f32(&j.h, (float *)j.w, (const float *)j.g, (float *)j.s0, (float *)j.s1,
                     j.rw, gi, i0, i1, pf);
    }
  } else if (o->lazy_update) {
    /* A weight storing some rows: each gradient row's storage position by binary search. */
    const int64_t *gi = g->indices;
    int64_t n = g->nnz;
#pragma omp parallel for schedule(static) if (n * j.rw >= OPT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++)
      run_row(&j, find_row(w->indices, w->nnz, gi[i]), i, gi[i]);
  } else {
    /* Every stored row of w; rows absent from g get a zero gradient. */
    int64_t n = w_sparse ? w->nnz : rows;
#pragma omp parallel for schedule(static) if (n * j.rw >= OPT_PARALLEL_MIN)
    for (int64_t p = 0; p < n; p++) {
      int64_t r = w_partial ? w->indices[p] : p;
      run_row(&j, p, find_row(g->indices, g->nnz, r), r);
    }
  }
}
