/* test_optim.c: optimizers: MXNet's tutorial vector, hand-computed steps, lazy vs non-lazy
 * sparsity for every optimizer against a scalar reference, a 10^7-row lazy update. */
#include <omp.h>

#include "optim_testutil.h"

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

/* For one optimizer config, dtype, weight stype and row width C (3, or 1: a Dense(1)
 * kernel, which has its own row loops): three steps with a row_sparse gradient (rows
 * {1, 4, 5} of 7 x C), lazy and non-lazy, against a dense gradient and the reference. */
static void check_sparsity(const cfg *c, kl_dtype dt, kl_stype wst, int C) {
  enum { R = 7, CMAX = 3, NG = 3 };
  const int64_t gi[NG] = {1, 4, 5}, all[R] = {0, 1, 2, 3, 4, 5, 6};
  double tol = dt == KL_FLOAT64 ? 1e-12 : 1e-5;
  kl_optimizer o;
  setup(&o, c);
  int ns = kl_optimizer_num_states(&o);
  double wv[R * CMAX], gv[NG * CMAX];
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
  double rw[R * CMAX], rs0[R * CMAX] = {0}, rs1[R * CMAX] = {0};
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
      /* A present row: the same rule in both paths, so the same bits. */
      CHECK(row_bits_equal(wl, r, wn, r));
      for (int i = 0; i < ns; i++) CHECK(row_bits_equal(sl[i], r, sn[i], r));
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
      {KL_OPT_SGD, 0.1, 0.9, 0.1, 0.3, 2, 1},
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
        for (int C = 1; C <= 3; C += 2)
          check_sparsity(&cfgs[c], dti ? KL_FLOAT64 : KL_FLOAT32,
                         s ? KL_STYPE_ROW_SPARSE : KL_STYPE_DEFAULT, C);
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

/* Weights of rank 0 (a scalar), 1 (a bias) and 3 (rows of 2 x 3): rows are the first axis. */
static void test_ranks(void) {
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.learning_rate = 0.1;
  /* rank 0 */
  kl_tensor *w = NULL, *g = NULL, *st[2] = {0};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 0, NULL, &w));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 0, NULL, &g));
  kl_tensor_data_set(w, 0, 1.0);
  kl_tensor_data_set(g, 0, 0.5);
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  CHECK(st[0]->ndim == 0);
  CHECK_OK(kl_optimizer_update(&o, w, g, st, 1));
  CHECK_NEAR(kl_tensor_data_at(w, 0), 0.90000063245153206, 1e-13);
  kl_optimizer_release_states(&o, st);
  kl_tensor_release(w);
  kl_tensor_release(g);
  /* rank 1, row_sparse gradient, lazy: elements are rows */
  int64_t n5 = 5, gi[2] = {1, 3};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, &n5, &w));
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT32, 1, &n5, 2, &g));
  g->indices[0] = gi[0];
  g->indices[1] = gi[1];
  kl_tensor_data_set(g, 0, 0.5);
  kl_tensor_data_set(g, 1, -1.0);
  for (int i = 0; i < 5; i++) kl_tensor_data_set(w, i, 1.0);
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  CHECK_OK(kl_optimizer_update(&o, w, g, st, 1));
  CHECK(kl_tensor_data_at(w, 0) == 1.0 && kl_tensor_data_at(w, 2) == 1.0 && kl_tensor_data_at(w, 4) == 1.0);
  CHECK_NEAR(kl_tensor_data_at(w, 1), 0.90000063245153206, 3e-7);
  CHECK_NEAR(kl_tensor_data_at(w, 3), 1.09999968377323398, 3e-7);
  kl_optimizer_release_states(&o, st);
  kl_tensor_release(w);
  kl_tensor_release(g);
  /* rank 3: (4, 2, 3) row_sparse weight and gradient (row 2 only), against the reference */
  int64_t shape[3] = {4, 2, 3};
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT64, 3, shape, 4, &w));
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT64, 3, shape, 1, &g));
  for (int i = 0; i < 4; i++) w->indices[i] = i;
  g->indices[0] = 2;
  double wv[24], gv[6];
  for (int i = 0; i < 24; i++) kl_tensor_data_set(w, i, wv[i] = urand(-1, 1));
  for (int i = 0; i < 6; i++) kl_tensor_data_set(g, i, gv[i] = urand(-1, 1));
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  CHECK(st[0]->ndim == 3 && st[0]->shape[2] == 3);
  CHECK_OK(kl_optimizer_update(&o, w, g, st, 1));
  for (int i = 0; i < 24; i++) {
    double ww = wv[i], a = 0, b = 0;
    if (i >= 12 && i < 18) ref_step(&o, &ww, gv[i - 12], &a, &b, 1);
    CHECK_NEAR(kl_tensor_data_at(w, i), ww, 1e-12);
    CHECK_NEAR(kl_tensor_data_at(st[0], i), a, 1e-12);
    CHECK_NEAR(kl_tensor_data_at(st[1], i), b, 1e-12);
  }
  kl_optimizer_release_states(&o, st);
  kl_tensor_release(w);
  kl_tensor_release(g);
}

/* SGD momentum on a 1-wide weight larger than L2 (its lazy rows are prefetched ahead):
 * two steps on rows {0, 3, 500000, N - 1}, every other row untouched. */
static void test_wide_sgd_rows(void) {
  const int64_t N = 1000000, gi[4] = {0, 3, 500000, N - 1};
  const double gv[4] = {1, -2, 3, 0.5};
  int64_t shape[2] = {N, 1};
  kl_tensor *w = NULL, *g = rsp2(KL_FLOAT32, N, 1, 4, gi, gv), *st[2] = {0};
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.learning_rate = 0.5;
  o.momentum = 0.5;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, shape, &w));
  if (!w || !g) return;
  kl_tensor_fill(w, 1.0);
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  for (int64_t t = 1; t <= 2; t++) CHECK_OK(kl_optimizer_update(&o, w, g, st, t));
  /* v1 = -0.5 g, w1 = 1 - 0.5 g; v2 = 0.5 v1 - 0.5 g = -0.75 g, w2 = 1 - 1.25 g (exact) */
  int64_t bad = 0;
  const float *wd = (const float *)w->data;
  for (int64_t i = 0, k = 0; i < N; i++) {
    double want = 1.0;
    if (k < 4 && i == gi[k]) want = 1.0 - 1.25 * gv[k++];
    bad += wd[i] != (float)want;
  }
  CHECK(bad == 0);
  kl_optimizer_release_states(&o, st);
  kl_tensor_release(w);
  kl_tensor_release(g);
}

int main(void) {
  test_tutorial(KL_FLOAT32);
  test_tutorial(KL_FLOAT64);
  test_hand_two_steps();
  test_sparsity_all();
  test_partial_weight();
  test_ranks();
  test_threads();
  test_huge_lazy();
  test_wide_sgd_rows();
  KLTEST_DONE();
}
