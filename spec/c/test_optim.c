/* test_optim.c: optimizers: MXNet's tutorial vector, hand-computed steps, lazy vs non-lazy
 * sparsity for every optimizer, a scalar reference, a 10^7-row lazy update, every error. */
#include <omp.h>
#include <stdlib.h>

#include "kl/optim.h"
#include "kltest.h"

/* ------------------------------------------------------------------ helpers */

static uint64_t lcg_state = 12345;
static double urand(double lo, double hi) {
  lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (hi - lo) * (double)(lcg_state >> 11) / 9007199254740992.0;
}

/* rows x cols dense, values v (row-major) or zeros when v is NULL. */
static kl_tensor *dense2(kl_dtype dt, int64_t rows, int64_t cols, const double *v) {
  int64_t shape[2] = {rows, cols};
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(dt, 2, shape, &t) != KL_OK) return NULL;
  if (v)
    for (int64_t i = 0; i < rows * cols; i++) kl_tensor_data_set(t, i, v[i]);
  return t;
}

/* rows x cols row_sparse storing rows idx[0..n-1] with values v (n x cols). */
static kl_tensor *rsp2(kl_dtype dt, int64_t rows, int64_t cols, int64_t n, const int64_t *idx,
                       const double *v) {
  int64_t shape[2] = {rows, cols};
  kl_tensor *t = NULL;
  if (kl_tensor_new_rsp(dt, 2, shape, n, &t) != KL_OK) return NULL;
  for (int64_t i = 0; i < n; i++) t->indices[i] = idx[i];
  for (int64_t i = 0; i < n * cols; i++) kl_tensor_data_set(t, i, v ? v[i] : 0.0);
  return t;
}

/* An independent copy (same stype, dtype, shape, values). */
static kl_tensor *clone(const kl_tensor *t) {
  kl_tensor *c = NULL;
  if (t->stype == KL_STYPE_ROW_SPARSE) {
    if (kl_tensor_new_rsp(t->dtype, t->ndim, t->shape, t->nnz, &c) != KL_OK) return NULL;
    memcpy(c->indices, t->indices, (size_t)t->nnz * sizeof(int64_t));
  } else if (kl_tensor_new_dense(t->dtype, t->ndim, t->shape, &c) != KL_OK) {
    return NULL;
  }
  int64_t n = t->stype == KL_STYPE_ROW_SPARSE ? t->nnz * kl_row_width(t) : kl_tensor_numel(t);
  memcpy(c->data, t->data, (size_t)n * kl_dtype_size(t->dtype));
  return c;
}

/* A row_sparse gradient densified by hand. */
static kl_tensor *densify(const kl_tensor *g) {
  int64_t rw = kl_row_width(g);
  kl_tensor *d = dense2(g->dtype, g->shape[0], rw, NULL);
  if (!d) return NULL;
  for (int64_t i = 0; i < g->nnz; i++)
    for (int64_t j = 0; j < rw; j++)
      kl_tensor_data_set(d, g->indices[i] * rw + j, kl_tensor_data_at(g, i * rw + j));
  return d;
}

/* Row r (position p in storage) of a and b have the same bits. */
static int row_bits_equal(const kl_tensor *a, int64_t pa, const kl_tensor *b, int64_t pb) {
  size_t bytes = (size_t)kl_row_width(a) * kl_dtype_size(a->dtype);
  return memcmp((const char *)a->data + (size_t)pa * bytes,
                (const char *)b->data + (size_t)pb * bytes, bytes) == 0;
}

static int all_bits_equal(const kl_tensor *a, const kl_tensor *b) {
  if (a->nnz != b->nnz) return 0;
  size_t bytes = (size_t)kl_row_width(a) * kl_dtype_size(a->dtype);
  int64_t rows = a->stype == KL_STYPE_ROW_SPARSE ? a->nnz : a->shape[0];
  return memcmp(a->data, b->data, (size_t)rows * bytes) == 0;
}

static int in_list(int64_t r, const int64_t *idx, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (idx[i] == r) return 1;
  return 0;
}

/* ------------------------------------------------------- scalar reference */

/* One element of one step, written from the formulas in kl/optim.h, in double. */
static void ref_step(const kl_optimizer *o, double *w, double graw, double *s0, double *s1,
                     int64_t t) {
  double g = graw * o->rescale_grad;
  if (o->clipvalue > 0) g = fmin(fmax(g, -o->clipvalue), o->clipvalue);
  double lr = o->learning_rate, gw = g + o->weight_decay * *w;
  switch (o->kind) {
    case KL_OPT_SGD:
      if (o->momentum > 0) {
        *s0 = o->momentum * *s0 - lr * gw;
        *w += o->nesterov ? o->momentum * *s0 - lr * gw : *s0;
      } else {
        *w -= lr * gw;
      }
      break;
    case KL_OPT_ADAM: {
      double lr_t = lr * sqrt(1 - pow(o->beta_2, (double)t)) / (1 - pow(o->beta_1, (double)t));
      *s0 = o->beta_1 * *s0 + (1 - o->beta_1) * gw;
      *s1 = o->beta_2 * *s1 + (1 - o->beta_2) * gw * gw;
      *w -= lr_t * *s0 / (sqrt(*s1) + o->epsilon);
      break;
    }
    case KL_OPT_ADAGRAD:
      *s0 += gw * gw;
      *w -= lr * gw / (sqrt(*s0) + o->epsilon);
      break;
    case KL_OPT_RMSPROP:
      *s0 = o->rho * *s0 + (1 - o->rho) * gw * gw;
      *w -= lr * gw / (sqrt(*s0) + o->epsilon);
      break;
    case KL_OPT_FTRL: {
      double n2 = *s1 + g * g;
      *s0 += g - (sqrt(n2) - sqrt(*s1)) * *w / lr;
      *s1 = n2;
      double z = *s0;
      *w = fabs(z) > o->lamda1
               ? ((z > 0 ? o->lamda1 : -o->lamda1) - z) / ((o->beta + sqrt(n2)) / lr + o->weight_decay)
               : 0.0;
      break;
    }
    default: break;
  }
}

/* ------------------------------------------------------------------- tests */

/* MXNet's sparse tutorial: SGD lr 0.01 momentum 0.01 on ones(4,2) with rows {1,2}. */
static void test_tutorial(kl_dtype dt) {
  const int64_t all[4] = {0, 1, 2, 3}, gi[2] = {1, 2};
  const double ones[8] = {1, 1, 1, 1, 1, 1, 1, 1}, gv[4] = {1, 2, 4, 5};
  const double want_w[8] = {1, 1, 0.99, 0.98, 0.96, 0.95, 1, 1};
  const double want_m[8] = {0, 0, -0.01, -0.02, -0.04, -0.05, 0, 0};
  double tol = dt == KL_FLOAT64 ? 1e-15 : 1e-7;
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  o.learning_rate = 0.01;
  o.momentum = 0.01;
  kl_tensor *w = rsp2(dt, 4, 2, 4, all, ones), *g = rsp2(dt, 4, 2, 2, gi, gv), *st[2] = {0};
  CHECK(w && g);
  CHECK(kl_optimizer_num_states(&o) == 1);
  CHECK(strcmp(kl_optimizer_state_name(&o, 0), "momentum") == 0);
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  CHECK(st[0] && st[0]->stype == KL_STYPE_DEFAULT && st[0]->dtype == dt);
  CHECK(st[0]->ndim == 2 && st[0]->shape[0] == 4 && st[0]->shape[1] == 2);
  CHECK_OK(kl_optimizer_update(&o, w, g, st, 1));
  CHECK(w->nnz == 4 && w->stype == KL_STYPE_ROW_SPARSE);
  for (int i = 0; i < 8; i++) {
    CHECK_NEAR(kl_tensor_data_at(w, i), want_w[i], tol);
    CHECK_NEAR(kl_tensor_data_at(st[0], i), want_m[i], tol);
  }
  /* Rows 0 and 3 are untouched bit for bit. */
  CHECK(kl_tensor_data_at(w, 0) == 1.0 && kl_tensor_data_at(w, 7) == 1.0);
  CHECK(kl_tensor_data_at(st[0], 0) == 0.0 && kl_tensor_data_at(st[0], 7) == 0.0);
  kl_optimizer_release_states(&o, st);
  CHECK(st[0] == NULL);
  kl_tensor_release(w);
  kl_tensor_release(g);
}

/* Two steps of each optimizer on w = {1, -0.5}, g = {0.5, -1}, values worked out by hand
 * (SGD: v = -0.05, w = 0.95; v = 0.9 * -0.05 - 0.05 = -0.095, w = 0.855, ...). */
static void test_hand_two_steps(void) {
  static const struct {
    kl_opt_kind kind;
    double lr;
    double w[2][2], s0[2][2], s1[2][2]; /* [step][element] */
  } cases[] = {
      {KL_OPT_SGD, 0.1, {{0.95, -0.4}, {0.855, -0.21}}, {{-0.05, 0.1}, {-0.095, 0.19}}, {{0}}},
      {KL_OPT_ADAM, 0.1,
       {{0.90000063245153206, -0.40000031622676602}, {0.80000107977497259, -0.30000053988898689}},
       {{0.05, -0.1}, {0.095, -0.19}},
       {{0.00025, 0.001}, {0.00049975, 0.001999}}},
      {KL_OPT_ADAGRAD, 0.1,
       {{0.90000001999999601, -0.40000000999999902}, {0.82928935188133979, -0.32928933688134393}},
       {{0.25, 1}, {0.5, 2}}, {{0}}},
      {KL_OPT_RMSPROP, 0.01,
       {{0.96837724339830356, -0.46837723339831305}, {0.94543568053755833, -0.44543566527441358}},
       {{0.025, 0.1}, {0.0475, 0.19}}, {{0}}},
      {KL_OPT_FTRL, 0.1,
       {{0.29933333333333334, -0.1995}, {0.27004401145198814, -0.15807864376269054}},
       {{-4.5, 4}, {-4.6199396316850656, 3.8263560569343249}},
       {{0.25, 1}, {0.5, 2}}},
  };
  const double w0[2] = {1, -0.5}, g0[2] = {0.5, -1};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (int dti = 0; dti < 2; dti++) {
      kl_dtype dt = dti ? KL_FLOAT64 : KL_FLOAT32;
      double tol = dt == KL_FLOAT64 ? 1e-13 : 2e-6;
      kl_optimizer o;
      CHECK_OK(kl_optimizer_init(&o, cases[c].kind));
      o.learning_rate = cases[c].lr;
      if (cases[c].kind == KL_OPT_SGD) o.momentum = 0.9;
      kl_tensor *w = dense2(dt, 1, 2, w0), *g = dense2(dt, 1, 2, g0), *st[2] = {0};
      CHECK_OK(kl_optimizer_create_states(&o, w, st));
      int ns = kl_optimizer_num_states(&o);
      for (int step = 0; step < 2; step++) {
        CHECK_OK(kl_optimizer_update(&o, w, g, st, step + 1));
        for (int e = 0; e < 2; e++) {
          CHECK_NEAR(kl_tensor_data_at(w, e), cases[c].w[step][e], tol);
          CHECK_NEAR(kl_tensor_data_at(st[0], e), cases[c].s0[step][e], tol);
          if (ns > 1) CHECK_NEAR(kl_tensor_data_at(st[1], e), cases[c].s1[step][e], tol);
        }
      }
      kl_optimizer_release_states(&o, st);
      kl_tensor_release(w);
      kl_tensor_release(g);
    }
  }
}

/* A configuration for the sparsity tests. */
typedef struct cfg {
  kl_opt_kind kind;
  double lr, momentum, wd, clip, rescale;
  int nesterov;
} cfg;

static void setup(kl_optimizer *o, const cfg *c) {
  kl_optimizer_init(o, c->kind);
  o->learning_rate = c->lr;
  o->momentum = c->momentum;
  o->nesterov = c->nesterov;
  o->weight_decay = c->wd;
  o->clipvalue = c->clip;
  o->rescale_grad = c->rescale;
  if (c->kind == KL_OPT_FTRL && c->wd > 0) {
    o->lamda1 = 0.05;
    o->beta = 0.5;
  }
}

/* Random states: second moments and accumulators positive, the rest signed. */
static void random_states(const kl_optimizer *o, kl_tensor **st) {
  for (int i = 0; i < kl_optimizer_num_states(o); i++) {
    const char *nm = kl_optimizer_state_name(o, i);
    int positive = !strcmp(nm, "v") || !strcmp(nm, "history") || !strcmp(nm, "mean_square") ||
                   !strcmp(nm, "n");
    for (int64_t k = 0; k < kl_tensor_numel(st[i]); k++)
      kl_tensor_data_set(st[i], k, positive ? urand(0.01, 1) : urand(-0.5, 0.5));
  }
}

/* For one optimizer config, dtype and weight stype: three steps with a row_sparse gradient
 * (rows {1, 4, 5} of 7 x 3), lazy and non-lazy, against a dense gradient and the reference. */
static void check_sparsity(const cfg *c, kl_dtype dt, kl_stype wst) {
  enum { R = 7, C = 3, NG = 3 };
  const int64_t gi[NG] = {1, 4, 5}, all[R] = {0, 1, 2, 3, 4, 5, 6};
  double tol = dt == KL_FLOAT64 ? 1e-12 : 1e-5;
  kl_optimizer o;
  setup(&o, c);
  int ns = kl_optimizer_num_states(&o);
  double wv[R * C], gv[NG * C];
  for (int i = 0; i < R * C; i++) wv[i] = urand(-1, 1);
  kl_tensor *w0 = wst == KL_STYPE_ROW_SPARSE ? rsp2(dt, R, C, R, all, wv) : dense2(dt, R, C, wv);
  kl_tensor *s0[2] = {0}, *wl = NULL, *wn = NULL, *wd = NULL;
  kl_tensor *sl[2] = {0}, *sn[2] = {0}, *sd[2] = {0};
  CHECK_OK(kl_optimizer_create_states(&o, w0, s0));
  random_states(&o, s0);
  wl = clone(w0);
  wn = clone(w0);
  wd = clone(w0);
  for (int i = 0; i < ns; i++) {
    sl[i] = clone(s0[i]);
    sn[i] = clone(s0[i]);
    sd[i] = clone(s0[i]);
  }
  /* The reference, element by element, for the non-lazy (dense) path. */
  double rw[R * C], rs0[R * C] = {0}, rs1[R * C] = {0};
  for (int i = 0; i < R * C; i++) {
    rw[i] = kl_tensor_data_at(w0, i);
    if (ns > 0) rs0[i] = kl_tensor_data_at(s0[0], i);
    if (ns > 1) rs1[i] = kl_tensor_data_at(s0[1], i);
  }
  for (int64_t t = 1; t <= 3; t++) {
    for (int i = 0; i < NG * C; i++) gv[i] = urand(-1, 1);
    if (t == 2) gv[0] = 50; /* beyond any clipvalue */
    kl_tensor *g = rsp2(dt, R, C, NG, gi, gv), *gd = densify(g);
    kl_tensor *wl_before = clone(wl), *sl_before[2] = {0};
    for (int i = 0; i < ns; i++) sl_before[i] = clone(sl[i]);

    o.lazy_update = 1;
    CHECK_OK(kl_optimizer_update(&o, wl, g, sl, t));
    o.lazy_update = 0;
    CHECK_OK(kl_optimizer_update(&o, wn, g, sn, t));
    CHECK_OK(kl_optimizer_update(&o, wd, gd, sd, t));

    /* Non-lazy equals the dense-gradient update, bit for bit. */
    CHECK(all_bits_equal(wn, wd));
    for (int i = 0; i < ns; i++) CHECK(all_bits_equal(sn[i], sd[i]));
    /* Lazy: absent rows untouched (weight and states), present rows as the dense rule
     * applied to them (checked bitwise against an update of just that row). */
    for (int64_t r = 0; r < R; r++) {
      if (in_list(r, gi, NG)) continue;
      CHECK(row_bits_equal(wl, r, wl_before, r));
      for (int i = 0; i < ns; i++) CHECK(row_bits_equal(sl[i], r, sl_before[i], r));
    }
    for (int k = 0; k < NG; k++) {
      int64_t r = gi[k];
      for (int64_t j = 0; j < C; j++) {
        double w1 = kl_tensor_data_at(wl_before, r * C + j);
        double a = ns > 0 ? kl_tensor_data_at(sl_before[0], r * C + j) : 0;
        double b = ns > 1 ? kl_tensor_data_at(sl_before[1], r * C + j) : 0;
        ref_step(&o, &w1, kl_tensor_data_at(g, k * C + j), &a, &b, t);
        CHECK_NEAR(kl_tensor_data_at(wl, r * C + j), w1, tol);
        if (ns > 0) CHECK_NEAR(kl_tensor_data_at(sl[0], r * C + j), a, tol);
        if (ns > 1) CHECK_NEAR(kl_tensor_data_at(sl[1], r * C + j), b, tol);
      }
    }
    /* Non-lazy against the reference on every element. */
    for (int i = 0; i < R * C; i++) {
      ref_step(&o, &rw[i], kl_tensor_data_at(gd, i), &rs0[i], &rs1[i], t);
      CHECK_NEAR(kl_tensor_data_at(wn, i), rw[i], tol);
      if (ns > 0) CHECK_NEAR(kl_tensor_data_at(sn[0], i), rs0[i], tol);
      if (ns > 1) CHECK_NEAR(kl_tensor_data_at(sn[1], i), rs1[i], tol);
    }
    kl_tensor_release(g);
    kl_tensor_release(gd);
    kl_tensor_release(wl_before);
    for (int i = 0; i < ns; i++) kl_tensor_release(sl_before[i]);
  }
  /* Non-lazy moved the absent rows (momentum and moments decay, weight decay applies, Ftrl
   * recomputes w from z and n) except where the rule leaves a zero-gradient row alone. */
  int rule_keeps_absent = (c->kind == KL_OPT_ADAGRAD && c->wd == 0) ||
                          (c->kind == KL_OPT_SGD && c->momentum == 0 && c->wd == 0);
  int moved = !row_bits_equal(wn, 0, wl, 0);
  for (int i = 0; i < ns; i++) moved |= !row_bits_equal(sn[i], 0, sl[i], 0);
  CHECK(moved == !rule_keeps_absent);
  kl_tensor_release(w0);
  kl_tensor_release(wl);
  kl_tensor_release(wn);
  kl_tensor_release(wd);
  for (int i = 0; i < ns; i++) {
    kl_tensor_release(s0[i]);
    kl_tensor_release(sl[i]);
    kl_tensor_release(sn[i]);
    kl_tensor_release(sd[i]);
  }
}

static void test_sparsity_all(void) {
  static const cfg cfgs[] = {
      {KL_OPT_SGD, 0.1, 0, 0, 0, 1, 0},
      {KL_OPT_SGD, 0.1, 0.9, 0, 0, 1, 0},
      {KL_OPT_SGD, 0.1, 0.9, 0, 0, 1, 1},
      {KL_OPT_SGD, 0.1, 0.5, 0.1, 0.3, 2, 0},
      {KL_OPT_SGD, 0.1, 0, 0.1, 0.3, 2, 0},
      {KL_OPT_ADAM, 0.01, 0, 0, 0, 1, 0},
      {KL_OPT_ADAM, 0.01, 0, 0.05, 0.5, 0.5, 0},
      {KL_OPT_ADAGRAD, 0.1, 0, 0, 0, 1, 0},
      {KL_OPT_ADAGRAD, 0.1, 0, 0.05, 0.5, 0.5, 0},
      {KL_OPT_RMSPROP, 0.01, 0, 0, 0, 1, 0},
      {KL_OPT_RMSPROP, 0.01, 0, 0.05, 0.5, 0.5, 0},
      {KL_OPT_FTRL, 0.1, 0, 0, 0, 1, 0},
      {KL_OPT_FTRL, 0.1, 0, 0.1, 0.5, 2, 0},
  };
  for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
    for (int dti = 0; dti < 2; dti++)
      for (int s = 0; s < 2; s++)
        check_sparsity(&cfgs[c], dti ? KL_FLOAT64 : KL_FLOAT32,
                       s ? KL_STYPE_ROW_SPARSE : KL_STYPE_DEFAULT);
}

/* A row_sparse weight that stores only rows {0, 2, 5} of 6. */
static void test_partial_weight(void) {
  const int64_t wi[3] = {0, 2, 5}, gi[2] = {2, 5}, bad[1] = {3};
  const double wv[6] = {1, 2, 3, 4, 5, 6}, gv[4] = {1, 1, 1, 1};
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.learning_rate = 0.5;
  o.momentum = 0.5;
  kl_tensor *w = rsp2(KL_FLOAT64, 6, 2, 3, wi, wv), *g = rsp2(KL_FLOAT64, 6, 2, 2, gi, gv);
  kl_tensor *gb = rsp2(KL_FLOAT64, 6, 2, 1, bad, gv), *gd = dense2(KL_FLOAT64, 6, 2, NULL);
  kl_tensor *st[2] = {0};
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  CHECK_OK(kl_optimizer_update(&o, w, g, st, 1));
  const double want_lazy[6] = {1, 2, 2.5, 3.5, 4.5, 5.5};
  for (int i = 0; i < 6; i++) CHECK(kl_tensor_data_at(w, i) == want_lazy[i]);
  CHECK(kl_tensor_data_at(st[0], 0) == 0 && kl_tensor_data_at(st[0], 4) == -0.5);
  CHECK(kl_tensor_data_at(st[0], 10) == -0.5 && kl_tensor_data_at(st[0], 6) == 0);
  CHECK(w->indices[0] == 0 && w->indices[1] == 2 && w->indices[2] == 5 && w->nnz == 3);
  /* Non-lazy with a weight decay: every stored row moves; the momentum decays. */
  o.lazy_update = 0;
  o.weight_decay = 0.1;
  CHECK_OK(kl_optimizer_update(&o, w, g, st, 2));
  CHECK_NEAR(kl_tensor_data_at(st[0], 0), -0.5 * 0.1 * 1, 1e-15); /* row 0: wd only */
  CHECK_NEAR(kl_tensor_data_at(w, 0), 1 - 0.05, 1e-15);
  CHECK_NEAR(kl_tensor_data_at(st[0], 4), 0.5 * -0.5 - 0.5 * (1 + 0.1 * 2.5), 1e-15);
  CHECK_NEAR(kl_tensor_data_at(w, 2), 2.5 + 0.5 * -0.5 - 0.5 * (1 + 0.1 * 2.5), 1e-15);
  CHECK(kl_tensor_data_at(st[0], 6) == 0); /* row 3 is not stored: its state stays */
  /* A gradient row the weight does not store; a dense gradient. w stays as it was. */
  kl_tensor *keep = clone(w);
  o.lazy_update = 1;
  CHECK_ERR(kl_optimizer_update(&o, w, gb, st, 3), KL_EINDEX,
            "SGD.update: gradient row 3 is not stored in the row_sparse weight");
  o.lazy_update = 0;
  CHECK_ERR(kl_optimizer_update(&o, w, gb, st, 3), KL_EINDEX, "gradient row 3 is not stored");
  CHECK_ERR(kl_optimizer_update(&o, w, gd, st, 3), KL_EINDEX,
            "SGD.update: a dense gradient needs a weight that stores every row (weight stores "
            "3 of 6)");
  CHECK(all_bits_equal(w, keep));
  kl_tensor_release(keep);
  kl_optimizer_release_states(&o, st);
  kl_tensor_release(w);
  kl_tensor_release(g);
  kl_tensor_release(gb);
  kl_tensor_release(gd);
}

/* A 10^7-row row_sparse weight and a 3-row gradient, 2000 lazy Adam steps: only the three
 * rows change (the work is O(nnz(g)); no timing is asserted). */
static void test_huge_lazy(void) {
  const int64_t N = 10000000, gi[3] = {7, 5000000, N - 1};
  const double gv[3] = {1, -2, 3};
  int64_t shape[2] = {N, 1};
  kl_tensor *w = NULL, *g = rsp2(KL_FLOAT32, N, 1, 3, gi, gv), *st[2] = {0};
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_ADAM);
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT32, 2, shape, N, &w));
  if (!w || !g) return;
  float *wd = (float *)w->data;
  for (int64_t i = 0; i < N; i++) {
    w->indices[i] = i;
    wd[i] = 0.25f;
  }
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  for (int64_t t = 1; t <= 2000; t++) CHECK_OK(kl_optimizer_update(&o, w, g, st, t));
  int64_t changed = 0, bad = 0;
  const float *m = (const float *)st[0]->data, *v = (const float *)st[1]->data;
  for (int64_t i = 0; i < N; i++) {
    int hit = i == gi[0] || i == gi[1] || i == gi[2];
    if (wd[i] != 0.25f || m[i] != 0.0f || v[i] != 0.0f) changed++;
    if (hit && (wd[i] == 0.25f || m[i] == 0.0f || v[i] == 0.0f)) bad++;
  }
  CHECK(changed == 3);
  CHECK(bad == 0);
  /* Adam moves each touched weight against its gradient's sign, about lr per step. */
  CHECK(wd[gi[0]] < 0.25f && wd[gi[1]] > 0.25f && wd[gi[2]] < 0.25f);
  CHECK_NEAR(wd[gi[1]], 0.25 + 2000 * 0.001, 1e-3);
  kl_optimizer_release_states(&o, st);
  kl_tensor_release(w);
  kl_tensor_release(g);
}

/* A dense update large enough to run in parallel gives the same bits on 1 and 2 threads
 * and matches the reference. */
static void test_threads(void) {
  const int64_t R = 3000, C = 50;
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_RMSPROP);
  o.weight_decay = 0.01;
  double *wv = malloc(sizeof(double) * R * C), *gv = malloc(sizeof(double) * R * C);
  for (int64_t i = 0; i < R * C; i++) {
    wv[i] = urand(-1, 1);
    gv[i] = urand(-1, 1);
  }
  kl_tensor *w1 = dense2(KL_FLOAT64, R, C, wv), *w2 = dense2(KL_FLOAT64, R, C, wv);
  kl_tensor *g = dense2(KL_FLOAT64, R, C, gv), *s1[2] = {0}, *s2[2] = {0};
  CHECK_OK(kl_optimizer_create_states(&o, w1, s1));
  CHECK_OK(kl_optimizer_create_states(&o, w2, s2));
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  CHECK_OK(kl_optimizer_update(&o, w1, g, s1, 1));
  omp_set_num_threads(2);
  CHECK_OK(kl_optimizer_update(&o, w2, g, s2, 1));
  omp_set_num_threads(saved);
  CHECK(all_bits_equal(w1, w2) && all_bits_equal(s1[0], s2[0]));
  int bad = 0;
  for (int64_t i = 0; i < R * C; i++) {
    double w = wv[i], a = 0, b = 0;
    ref_step(&o, &w, gv[i], &a, &b, 1);
    if (fabs(w - kl_tensor_data_at(w2, i)) > 1e-12) bad++;
  }
  CHECK(bad == 0);
  kl_optimizer_release_states(&o, s1);
  kl_optimizer_release_states(&o, s2);
  kl_tensor_release(w1);
  kl_tensor_release(w2);
  kl_tensor_release(g);
  free(wv);
  free(gv);
}

static void test_defaults_and_options(void) {
  kl_optimizer o;
  double v = 0;
  kl_opt_kind k;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  CHECK(o.learning_rate == 0.01 && o.momentum == 0 && !o.nesterov && o.lazy_update == 1);
  CHECK(o.rescale_grad == 1 && o.clipvalue == 0 && o.weight_decay == 0);
  CHECK(kl_optimizer_num_states(&o) == 0 && kl_optimizer_state_name(&o, 0) == NULL);
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  CHECK(o.learning_rate == 0.001 && o.beta_1 == 0.9 && o.beta_2 == 0.999 && o.epsilon == 1e-7);
  CHECK(kl_optimizer_num_states(&o) == 2);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "m") && !strcmp(kl_optimizer_state_name(&o, 1), "v"));
  CHECK(kl_optimizer_state_name(&o, 2) == NULL && kl_optimizer_state_name(&o, -1) == NULL);
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAGRAD));
  CHECK(o.learning_rate == 0.01 && o.epsilon == 1e-7 && kl_optimizer_num_states(&o) == 1);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "history"));
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_RMSPROP));
  CHECK(o.learning_rate == 0.001 && o.rho == 0.9 && kl_optimizer_num_states(&o) == 1);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "mean_square"));
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_FTRL));
  CHECK(o.learning_rate == 0.1 && o.lamda1 == 0.01 && o.beta == 1);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "z") && !strcmp(kl_optimizer_state_name(&o, 1), "n"));
  CHECK_ERR(kl_optimizer_init(&o, (kl_opt_kind)9), KL_EINVAL, "optimizer_init: unknown kind 9");

  CHECK_OK(kl_optimizer_kind_parse("rmsprop", &k));
  CHECK(k == KL_OPT_RMSPROP);
  CHECK_OK(kl_optimizer_kind_parse("SGD", &k));
  CHECK(k == KL_OPT_SGD);
  CHECK_OK(kl_optimizer_kind_parse("Adam", &k));
  CHECK(k == KL_OPT_ADAM && !strcmp(kl_optimizer_kind_name(k), "Adam"));
  CHECK(kl_optimizer_kind_name((kl_opt_kind)-1) == NULL);
  CHECK_ERR(kl_optimizer_kind_parse("adamw", &k), KL_EINVAL,
            "optimizers: unknown optimizer 'adamw' (sgd, adam, adagrad, rmsprop, ftrl)");

  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  CHECK_OK(kl_optimizer_set(&o, "momentum", 0.9));
  CHECK_OK(kl_optimizer_set(&o, "lr", 0.5));
  CHECK_OK(kl_optimizer_set(&o, "nesterov", 1));
  CHECK_OK(kl_optimizer_set(&o, "lazy_update", 0));
  CHECK(o.momentum == 0.9 && o.learning_rate == 0.5 && o.nesterov == 1 && o.lazy_update == 0);
  CHECK(kl_optimizer_num_states(&o) == 1);
  CHECK_OK(kl_optimizer_get(&o, "learning_rate", &v));
  CHECK(v == 0.5);
  CHECK_OK(kl_optimizer_get(&o, "nesterov", &v));
  CHECK(v == 1);
  CHECK_ERR(kl_optimizer_set(&o, "beta_1", 0.5), KL_EINVAL, "SGD: unknown option 'beta_1'");
  CHECK_ERR(kl_optimizer_get(&o, "rho", &v), KL_EINVAL, "SGD: unknown option 'rho'");
  const char *sgd_opts[] = {"learning_rate", "momentum", "nesterov", "weight_decay", "clipvalue",
                            "rescale_grad", "lazy_update"};
  for (int i = 0; i < 7; i++) CHECK(!strcmp(kl_optimizer_option_name(KL_OPT_SGD, i), sgd_opts[i]));
  CHECK(kl_optimizer_option_name(KL_OPT_SGD, 7) == NULL);
  CHECK(kl_optimizer_option_is_bool(KL_OPT_SGD, 2) && !kl_optimizer_option_is_bool(KL_OPT_SGD, 1));
  CHECK(!strcmp(kl_optimizer_option_name(KL_OPT_FTRL, 1), "lamda1"));
  /* Every listed option round-trips through set/get for every kind. */
  for (int kk = 0; kk < KL_OPT_COUNT; kk++) {
    kl_optimizer_init(&o, (kl_opt_kind)kk);
    for (int i = 0; kl_optimizer_option_name(o.kind, i); i++) {
      const char *nm = kl_optimizer_option_name(o.kind, i);
      double want = kl_optimizer_option_is_bool(o.kind, i) ? 0 : 0.125 + i;
      CHECK_OK(kl_optimizer_set(&o, nm, want));
      CHECK_OK(kl_optimizer_get(&o, nm, &v));
      CHECK(v == want);
    }
  }
}

static void test_check_messages(void) {
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.learning_rate = -1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: learning_rate must be >= 0. Received: learning_rate=-1");
  o.learning_rate = NAN;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "SGD: learning_rate must be >= 0. Received: learning_rate=nan");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.momentum = 1.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "SGD: momentum must be in [0, 1]. Received: momentum=1.5");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.weight_decay = -0.1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: weight_decay must be >= 0. Received: weight_decay=-0.1");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.clipvalue = NAN;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: clipvalue must be a number (<= 0 for none). Received: clipvalue=nan");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.rescale_grad = INFINITY;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: rescale_grad must be finite. Received: rescale_grad=inf");
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.beta_1 = 1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adam: beta_1 must be in [0, 1). Received: beta_1=1");
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.beta_2 = -0.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adam: beta_2 must be in [0, 1). Received: beta_2=-0.5");
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.epsilon = 0;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adam: epsilon must be > 0. Received: epsilon=0");
  kl_optimizer_init(&o, KL_OPT_ADAGRAD);
  o.epsilon = -1e-7;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adagrad: epsilon must be > 0. Received: epsilon=-1e-07");
  kl_optimizer_init(&o, KL_OPT_RMSPROP);
  o.rho = 1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "RMSprop: rho must be in [0, 1). Received: rho=1");
  kl_optimizer_init(&o, KL_OPT_RMSPROP);
  o.learning_rate = -0.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "RMSprop: learning_rate must be >= 0. Received: learning_rate=-0.5");
  kl_optimizer_init(&o, KL_OPT_FTRL);
  o.learning_rate = 0;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Ftrl: learning_rate must be > 0. Received: learning_rate=0");
  kl_optimizer_init(&o, KL_OPT_FTRL);
  o.lamda1 = -1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Ftrl: lamda1 must be >= 0. Received: lamda1=-1");
  kl_optimizer_init(&o, KL_OPT_FTRL);
  o.beta = -2;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Ftrl: beta must be >= 0. Received: beta=-2");
  o.kind = (kl_opt_kind)7;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "optimizer: unknown kind 7");
  CHECK_ERR(kl_optimizer_check(NULL), KL_EINVAL, "optimizer: optimizer is NULL");
  /* SGD does not look at Adam's fields, nor Adam at momentum. */
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.beta_1 = 5;
  CHECK_OK(kl_optimizer_check(&o));
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.momentum = -5;
  CHECK_OK(kl_optimizer_check(&o));
}

static void test_update_errors(void) {
  const int64_t gi2[2] = {1, 1}, gi_out[1] = {4}, all[4] = {0, 1, 2, 3};
  const double v8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.momentum = 0.5;
  kl_tensor *w = dense2(KL_FLOAT64, 4, 2, v8), *st[2] = {0}, *st32[2] = {0};
  kl_tensor *keep = clone(w);
  kl_tensor *g32 = dense2(KL_FLOAT32, 4, 2, v8), *g3 = dense2(KL_FLOAT64, 3, 2, v8);
  kl_tensor *g_dup = rsp2(KL_FLOAT64, 4, 2, 2, gi2, v8), *g_out = rsp2(KL_FLOAT64, 4, 2, 1, gi_out, v8);
  kl_tensor *g = dense2(KL_FLOAT64, 4, 2, v8), *wi = NULL, *csr = NULL, *s_rsp = rsp2(KL_FLOAT64, 4, 2, 4, all, NULL);
  int64_t shape[2] = {4, 2};
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, shape, &wi));
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT64, 4, 2, 0, &csr));
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  CHECK_OK(kl_optimizer_create_states(&o, g32, st32));

  CHECK_ERR(kl_optimizer_update(&o, NULL, g, st, 1), KL_EINVAL, "SGD.update: weight is NULL");
  CHECK_ERR(kl_optimizer_update(&o, w, NULL, st, 1), KL_EINVAL, "SGD.update: gradient is NULL");
  CHECK_ERR(kl_optimizer_update(&o, w, g3, st, 1), KL_ESHAPE,
            "SGD.update: gradient shape (3 x 2) does not match weight (4 x 2)");
  CHECK_ERR(kl_optimizer_update(&o, w, g32, st, 1), KL_EDTYPE,
            "SGD.update: gradient dtype float32 does not match weight float64");
  CHECK_ERR(kl_optimizer_update(&o, wi, g, st, 1), KL_EDTYPE,
            "SGD.update: weight dtype int64 not supported (float32 or float64)");
  CHECK_ERR(kl_optimizer_update(&o, csr, g, st, 1), KL_ESTYPE,
            "SGD.update: weight stype csr not supported (default or row_sparse)");
  CHECK_ERR(kl_optimizer_update(&o, w, csr, st, 1), KL_ESTYPE,
            "SGD.update: gradient stype csr not supported (default or row_sparse)");
  CHECK_ERR(kl_optimizer_update(&o, w, g, NULL, 1), KL_EINVAL, "SGD.update: states is NULL (1 needed)");
  kl_tensor *bad[2] = {NULL, NULL};
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_EINVAL, "SGD.update: state 'momentum' is NULL");
  bad[0] = s_rsp;
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_ESTYPE,
            "SGD.update: state 'momentum' must be dense, got row_sparse");
  bad[0] = st32[0];
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_EDTYPE,
            "SGD.update: state 'momentum' dtype float32 does not match weight float64");
  bad[0] = g3;
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_ESHAPE,
            "SGD.update: state 'momentum' shape (3 x 2) does not match weight (4 x 2)");
  CHECK_ERR(kl_optimizer_update(&o, w, g, st, 0), KL_EINVAL, "SGD.update: t must be >= 1. Received: t=0");
  CHECK_ERR(kl_optimizer_update(&o, w, g_dup, st, 1), KL_EINDEX,
            "SGD.update: gradient indices not strictly increasing at [1] (1 after 1)");
  CHECK_ERR(kl_optimizer_update(&o, w, g_out, st, 1), KL_EINDEX,
            "SGD.update: gradient indices[0] = 4 out of range for 4 rows");
  o.learning_rate = -1;
  CHECK_ERR(kl_optimizer_update(&o, w, g, st, 1), KL_EINVAL,
            "SGD: learning_rate must be >= 0. Received: learning_rate=-1");
  o.learning_rate = 0.01;
  /* Nothing was written by any failing call. */
  CHECK(all_bits_equal(w, keep));
  CHECK(kl_tensor_data_at(st[0], 0) == 0 && kl_tensor_data_at(st[0], 7) == 0);
  /* Adam names itself. */
  kl_optimizer a;
  kl_optimizer_init(&a, KL_OPT_ADAM);
  CHECK_ERR(kl_optimizer_update(&a, w, g3, st, 1), KL_ESHAPE,
            "Adam.update: gradient shape (3 x 2) does not match weight (4 x 2)");
  /* create_state errors. */
  CHECK_ERR(kl_optimizer_create_states(&o, NULL, st), KL_EINVAL, "SGD.create_state: weight is NULL");
  CHECK_ERR(kl_optimizer_create_states(&o, wi, bad), KL_EDTYPE,
            "SGD.create_state: weight dtype int64 not supported (float32 or float64)");
  CHECK_ERR(kl_optimizer_create_states(&o, csr, bad), KL_ESTYPE,
            "SGD.create_state: weight stype csr not supported (default or row_sparse)");
  CHECK_ERR(kl_optimizer_create_states(&o, w, NULL), KL_EINVAL, "SGD.create_state: states is NULL");
  /* SGD without momentum has no state and accepts states == NULL. */
  o.momentum = 0;
  CHECK_OK(kl_optimizer_create_states(&o, w, NULL));
  CHECK_OK(kl_optimizer_update(&o, w, g, NULL, 1));
  CHECK_NEAR(kl_tensor_data_at(w, 0), 1 - 0.01 * 1, 1e-15);
  o.momentum = 0.5;

  kl_optimizer_release_states(&o, st);
  kl_optimizer_release_states(&o, st32);
  kl_tensor *list[] = {w, keep, g32, g3, g_dup, g_out, g, wi, csr, s_rsp};
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) kl_tensor_release(list[i]);
}

/* Failing the k-th allocation of create_states, for every k, leaves nothing allocated. */
static void test_alloc_failures(void) {
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_FTRL);
  kl_tensor *w = dense2(KL_FLOAT32, 5, 3, NULL);
  int done = 0;
  for (long k = 1; k < 50 && !done; k++) {
    kl_tensor *st[2] = {(kl_tensor *)1, (kl_tensor *)1};
    kl_alloc_fail_at(k);
    kl_status s = kl_optimizer_create_states(&o, w, st);
    kl_alloc_fail_at(0);
    if (s == KL_OK) {
      done = 1;
      CHECK(st[0] && st[1]);
      kl_optimizer_release_states(&o, st);
    } else {
      CHECK(s == KL_ENOMEM && st[0] == NULL && st[1] == NULL);
    }
  }
  CHECK(done);
  kl_tensor_release(w);
}

int main(void) {
  test_defaults_and_options();
  test_check_messages();
  test_tutorial(KL_FLOAT32);
  test_tutorial(KL_FLOAT64);
  test_hand_two_steps();
  test_sparsity_all();
  test_partial_weight();
  test_update_errors();
  test_alloc_failures();
  test_threads();
  test_huge_lazy();
  KLTEST_DONE();
}
