/* test_plan.c: plans: sparse gradients, accumulation, training steps, the C epoch loop, and the
 * step cost independent of the feature count. */
#include "graph_testutil.h"
#include "kl/layers.h"
#include "kl/registry.h"

static kl_rng rng;

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

/* A random CSR batch (rows x cols) whose entries fall in the first `span` columns. */
static kl_tensor *rand_csr(int64_t rows, int64_t cols, int per_row, int64_t span) {
  int64_t n = rows * per_row, r[256], c[256];
  double v[256];
  for (int64_t i = 0; i < n; i++) {
    r[i] = i / per_row;
    c[i] = (int64_t)kl_rng_below(&rng, (uint64_t)span);
    v[i] = kl_rng_uniform(&rng) + 0.5;
  }
  kl_tensor *t = NULL;
  CHECK_OK(kl_csr_from_coo(KL_FLOAT64, rows, cols, n, r, c, v, &t));
  return t;
}

/* Graph: x (csr placeholder, -1 x V) . W (V x 2) -> mul by R placeholder -> sum. */
typedef struct lin_graph {
  kl_graph *g;
  int x, r, w, d, m, loss;
  kl_tensor *wt;
} lin_graph;

static void lin_build(lin_graph *lg, int64_t V, int twice) {
  int two[2];
  kl_attrs all = {0};
  CHECK_OK(kl_graph_new(&lg->g));
  kl_meta mx = {KL_FLOAT64, KL_STYPE_CSR, 2, {-1, V}}, mr = {KL_FLOAT64, KL_STYPE_DEFAULT, 2,
                                                               {-1, 2}};
  int64_t ws[2] = {V, 2};
  lg->wt = gt_rand(&rng, 2, ws, -1, 1, 0);
  CHECK_OK(kl_graph_placeholder(lg->g, &mx, "x", &lg->x));
  CHECK_OK(kl_graph_placeholder(lg->g, &mr, "r", &lg->r));
  CHECK_OK(kl_graph_variable(lg->g, lg->wt, 1, "W", &lg->w));
  two[0] = lg->x, two[1] = lg->w;
  CHECK_OK(kl_graph_op(lg->g, KL_OP_DOT, two, 2, NULL, &lg->d));
  if (twice) { /* W used a second time: dot(x, W) + dot(x, W) . 2 */
    int d2, s;
    CHECK_OK(kl_graph_op(lg->g, KL_OP_DOT, two, 2, NULL, &d2));
    kl_attrs sc = {0};
    sc.scalar = 2.0;
    CHECK_OK(kl_graph_op(lg->g, KL_OP_MUL_SCALAR, &d2, 1, &sc, &s));
    two[0] = lg->d, two[1] = s;
    CHECK_OK(kl_graph_op(lg->g, KL_OP_ADD, two, 2, NULL, &lg->d));
  }
  two[0] = lg->d, two[1] = lg->r;
  CHECK_OK(kl_graph_op(lg->g, KL_OP_MUL, two, 2, NULL, &lg->m));
  CHECK_OK(kl_graph_op(lg->g, KL_OP_SUM, &lg->m, 1, &all, &lg->loss));
}

static void lin_free(lin_graph *lg) {
  kl_tensor_release(lg->wt);
  kl_graph_free(lg->g);
}

/* dot(csr, W) gives a row_sparse dW = x^T R storing only the columns the batch touched. */
static void test_sparse_dot_grad(int twice) {
  lin_graph lg;
  lin_build(&lg, 50, twice);
  kl_tensor *x = rand_csr(4, 50, 3, 50);
  int64_t rs[2] = {4, 2};
  kl_tensor *r = gt_rand(&rng, 2, rs, -1, 1, 0);
  kl_tensor *feeds[2] = {x, r};
  int feed_ids[2] = {lg.x, lg.r};
  kl_stype st = KL_STYPE_ROW_SPARSE;
  kl_plan_spec s = {feed_ids, 2, &lg.d, 1, lg.loss, &lg.w, 1, &st, NULL};
  kl_plan *p = NULL;
  CHECK_OK(kl_plan_new(lg.g, &s, &p));
  CHECK_OK(kl_plan_forward(p, feeds, 1));
  CHECK_OK(kl_plan_backward(p));
  kl_tensor *gw = kl_plan_grad(p, 0);
  CHECK(gw && gw->stype == KL_STYPE_ROW_SPARSE);
  /* reference: (1 + 2*twice) x^T R, and the set of touched columns */
  double ref[100] = {0};
  int touched[50] = {0}, ntouched = 0;
  for (int64_t i = 0; i < 4; i++)
    for (int64_t k = x->indptr[i]; k < x->indptr[i + 1]; k++) {
      int64_t c = x->indices[k];
      touched[c] = 1;
      for (int j = 0; j < 2; j++)
        ref[c * 2 + j] += (twice ? 3.0 : 1.0) * kl_tensor_data_at(x, k) *
                          kl_tensor_data_at(r, i * 2 + j);
    }
  for (int c = 0; c < 50; c++) ntouched += touched[c];
  if (gw) {
    CHECK(gw->nnz == ntouched);
    for (int64_t k = 0; k < gw->nnz; k++) {
      CHECK(touched[gw->indices[k]]);
      if (k) CHECK(gw->indices[k] > gw->indices[k - 1]);
      for (int j = 0; j < 2; j++)
        CHECK_NEAR(kl_tensor_data_at(gw, k * 2 + j), ref[gw->indices[k] * 2 + j], 1e-12);
    }
    for (int64_t j = 0; j < 100; j++) CHECK_NEAR(gt_dense_at(gw, j), ref[j], 1e-12);
    gt_gradcheck(p, lg.g, &lg.w, 1, feeds, 1e-5, 1e-6, twice ? "dot(csr, W) twice" : "dot(csr, W)");
  }
  kl_plan_free(p);
  /* the dense gradient stype gives the same values */
  st = KL_STYPE_DEFAULT;
  CHECK_OK(kl_plan_new(lg.g, &s, &p));
  CHECK_OK(kl_plan_forward(p, feeds, 1));
  CHECK_OK(kl_plan_backward(p));
  gw = kl_plan_grad(p, 0);
  CHECK(gw && gw->stype == KL_STYPE_DEFAULT);
  if (gw)
    for (int64_t j = 0; j < 100; j++) CHECK_NEAR(kl_tensor_data_at(gw, j), ref[j], 1e-12);
  kl_plan_free(p);
  kl_tensor_release(x);
  kl_tensor_release(r);
  lin_free(&lg);
}

/* Embedding's row_sparse gradient stores the unique non-padding ids of the batch. */
static void test_embedding_grad(void) {
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  kl_meta mi = {KL_FLOAT64, KL_STYPE_DEFAULT, 2, {-1, 3}};
  int64_t ws[2] = {10, 2};
  kl_tensor *wt = gt_rand(&rng, 2, ws, -1, 1, 0);
  int ids, w, e, loss, two[2];
  kl_attrs ea = {0}, all = {0};
  ea.ival = 10;
  CHECK_OK(kl_graph_placeholder(g, &mi, "ids", &ids));
  CHECK_OK(kl_graph_variable(g, wt, 1, "E", &w));
  two[0] = ids, two[1] = w;
  CHECK_OK(kl_graph_op(g, KL_OP_EMBEDDING, two, 2, &ea, &e));
  int sq;
  CHECK_OK(kl_graph_op(g, KL_OP_SQUARE, &e, 1, NULL, &sq));
  CHECK_OK(kl_graph_op(g, KL_OP_SUM, &sq, 1, &all, &loss));
  kl_stype st = KL_STYPE_ROW_SPARSE;
  kl_plan_spec s = {&ids, 1, &e, 1, loss, &w, 1, &st, NULL};
  kl_plan *p = NULL;
  CHECK_OK(kl_plan_new(g, &s, &p));
  int64_t is[2] = {2, 3};
  double idv[6] = {7, 2, 0, 2, 9, 7};
  kl_tensor *x = gt_dense(KL_FLOAT64, 2, is, idv);
  kl_tensor *feeds[1] = {x};
  CHECK_OK(kl_plan_forward(p, feeds, 1));
  CHECK_OK(kl_plan_backward(p));
  kl_tensor *gw = kl_plan_grad(p, 0);
  CHECK(gw && gw->stype == KL_STYPE_ROW_SPARSE && gw->nnz == 3);
  if (gw && gw->nnz == 3) {
    CHECK(gw->indices[0] == 1 && gw->indices[1] == 6 && gw->indices[2] == 8);
    /* d sum(E[id]^2) / dE[r] = 2 * count(r) * E[r] */
    double cnt[3] = {2, 2, 1};
    for (int k = 0; k < 3; k++)
      for (int j = 0; j < 2; j++)
        CHECK_NEAR(kl_tensor_data_at(gw, k * 2 + j),
                   2 * cnt[k] * kl_tensor_data_at(wt, gw->indices[k] * 2 + j), 1e-12);
  }
  gt_gradcheck(p, g, &w, 1, feeds, 1e-5, 1e-6, "embedding through a placeholder");
  kl_tensor_release(x);
  kl_tensor_release(wt);
  kl_plan_free(p);
  kl_graph_free(g);
}

/* A node consumed twice (h = tanh(x W); loss = sum(h * h)) accumulates both paths. */
static void test_accumulate_dense(void) {
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  int64_t xs[2] = {3, 4}, ws[2] = {4, 2};
  kl_tensor *xt = gt_rand(&rng, 2, xs, -1, 1, 0), *wt = gt_rand(&rng, 2, ws, -1, 1, 0);
  int x, w, d, h, hh, loss, two[2];
  kl_attrs all = {0};
  CHECK_OK(kl_graph_constant(g, xt, &x));
  CHECK_OK(kl_graph_variable(g, wt, 1, NULL, &w));
  two[0] = x, two[1] = w;
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &d));
  CHECK_OK(kl_graph_op(g, KL_OP_TANH, &d, 1, NULL, &h));
  two[0] = h, two[1] = h;
  CHECK_OK(kl_graph_op(g, KL_OP_MUL, two, 2, NULL, &hh));
  CHECK_OK(kl_graph_op(g, KL_OP_SUM, &hh, 1, &all, &loss));
  kl_plan_spec s = {NULL, 0, &h, 1, loss, &w, 1, NULL, NULL};
  kl_plan *p = NULL;
  CHECK_OK(kl_plan_new(g, &s, &p));
  if (p) gt_gradcheck(p, g, &w, 1, NULL, 1e-5, 1e-6, "node used twice");
  kl_plan_free(p);
  kl_tensor_release(xt);
  kl_tensor_release(wt);
  kl_graph_free(g);
}

/* Dense-like model: pred = x W + b; loss = mse(y, pred). */
typedef struct dense_model {
  kl_graph *g;
  int x, y, w, b, pred, loss;
  kl_tensor *wt, *bt;
} dense_model;

static void dense_build(dense_model *dm, int64_t in, const double *w0, double b0) {
  int two[2], d;
  CHECK_OK(kl_graph_new(&dm->g));
  kl_meta mx = {KL_FLOAT64, KL_STYPE_DEFAULT, 2, {-1, in}}, my = {KL_FLOAT64, KL_STYPE_DEFAULT,
                                                                   2, {-1, 1}};
  int64_t ws[2] = {in, 1}, bs[1] = {1};
  dm->wt = gt_dense(KL_FLOAT64, 2, ws, w0);
  dm->bt = gt_dense(KL_FLOAT64, 1, bs, &b0);
  CHECK_OK(kl_graph_placeholder(dm->g, &mx, "x", &dm->x));
  CHECK_OK(kl_graph_placeholder(dm->g, &my, "y", &dm->y));
  CHECK_OK(kl_graph_variable(dm->g, dm->wt, 1, "W", &dm->w));
  CHECK_OK(kl_graph_variable(dm->g, dm->bt, 1, "b", &dm->b));
  two[0] = dm->x, two[1] = dm->w;
  CHECK_OK(kl_graph_op(dm->g, KL_OP_DOT, two, 2, NULL, &d));
  two[0] = d, two[1] = dm->b;
  CHECK_OK(kl_graph_op(dm->g, KL_OP_BIAS_ADD, two, 2, NULL, &dm->pred));
  two[0] = dm->y, two[1] = dm->pred;
  CHECK_OK(kl_graph_op(dm->g, KL_OP_LOSS_MSE, two, 2, NULL, &dm->loss));
}

static kl_plan *dense_plan(dense_model *dm, const kl_optimizer *opt) {
  static int feeds[2], weights[2];
  feeds[0] = dm->x, feeds[1] = dm->y, weights[0] = dm->w, weights[1] = dm->b;
  kl_plan_spec s = {feeds, 2, &dm->pred, 1, dm->loss, weights, 2, NULL, opt};
  kl_plan *p = NULL;
  CHECK_OK(kl_plan_new(dm->g, &s, &p));
  return p;
}

static void dense_free(dense_model *dm) {
  kl_tensor_release(dm->wt);
  kl_tensor_release(dm->bt);
  kl_graph_free(dm->g);
}

static void test_train_step(void) {
  double w0[3] = {0.5, -1.0, 2.0}, b0 = 0.25;
  double xv[6] = {1, 2, 3, -1, 0.5, 2}, yv[2] = {4, -1};
  dense_model dm;
  dense_build(&dm, 3, w0, b0);
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  o.learning_rate = 0.1;
  kl_plan *p = dense_plan(&dm, &o);
  int64_t xs[2] = {2, 3}, ys[2] = {2, 1};
  kl_tensor *x = gt_dense(KL_FLOAT64, 2, xs, xv), *y = gt_dense(KL_FLOAT64, 2, ys, yv);
  kl_tensor *feeds[2] = {x, y};
  /* by hand: pred_i = x_i . w + b; loss = mean (pred - y)^2; dW = 2/n sum e_i x_i */
  double e[2], loss = 0, gw[3] = {0}, gb = 0;
  for (int i = 0; i < 2; i++) {
    double pr = b0;
    for (int j = 0; j < 3; j++) pr += xv[i * 3 + j] * w0[j];
    e[i] = pr - yv[i];
    loss += e[i] * e[i] / 2;
    for (int j = 0; j < 3; j++) gw[j] += 2.0 / 2 * e[i] * xv[i * 3 + j];
    gb += 2.0 / 2 * e[i];
  }
  double l = 0;
  CHECK(kl_plan_step_count(p) == 0);
  CHECK_OK(kl_plan_train_step(p, feeds, &l));
  CHECK_NEAR(l, loss, 1e-12);
  CHECK(kl_plan_step_count(p) == 1);
  for (int j = 0; j < 3; j++) CHECK_NEAR(kl_tensor_data_at(dm.wt, j), w0[j] - 0.1 * gw[j], 1e-12);
  CHECK_NEAR(kl_tensor_data_at(dm.bt, 0), b0 - 0.1 * gb, 1e-12);
  CHECK(kl_plan_num_states(p, 0) == 0);
  kl_plan_set_learning_rate(p, 0.0);
  double wsave = kl_tensor_data_at(dm.wt, 0);
  CHECK_OK(kl_plan_train_step(p, feeds, &l));
  CHECK(kl_tensor_data_at(dm.wt, 0) == wsave);
  kl_plan_set_step_count(p, 10);
  CHECK(kl_plan_step_count(p) == 10);
  kl_plan_free(p);
  /* momentum: one state per weight, shaped like it, holding -lr * g after one step */
  for (int j = 0; j < 3; j++) kl_tensor_data_set(dm.wt, j, w0[j]);
  kl_tensor_data_set(dm.bt, 0, b0);
  o.momentum = 0.9;
  p = dense_plan(&dm, &o);
  CHECK(kl_plan_num_states(p, 0) == 1 && kl_plan_num_states(p, 1) == 1);
  CHECK_OK(kl_plan_train_step(p, feeds, &l));
  kl_tensor *v = kl_plan_state(p, 0, 0);
  CHECK(v != NULL && kl_plan_state(p, 0, 1) == NULL);
  if (v)
    for (int j = 0; j < 3; j++) CHECK_NEAR(kl_tensor_data_at(v, j), -0.1 * gw[j], 1e-12);
  /* a plan without optimizer refuses to train */
  kl_plan *q = dense_plan(&dm, NULL);
  CHECK_ERR(kl_plan_train_step(q, feeds, &l), KL_EINVAL, "no optimizer");
  kl_plan_free(q);
  kl_plan_free(p);
  kl_tensor_release(x);
  kl_tensor_release(y);
  dense_free(&dm);
}

typedef struct count_ud {
  int64_t calls, seen[16], stop_after;
  double last_loss, last_metric;
} count_ud;

static int count_cb(void *ud, int64_t batch, int64_t seen, int64_t total, double loss,
                    const double *m) {
  count_ud *c = ud;
  if (c->calls < 16) c->seen[c->calls] = seen;
  CHECK(batch == c->calls && total == 10);
  c->calls++;
  c->last_loss = loss;
  c->last_metric = m ? m[0] : NAN;
  return c->stop_after > 0 && c->calls >= c->stop_after;
}

static void test_fit_epoch(void) {
  double w0[2] = {0.1, -0.2};
  dense_model dm;
  dense_build(&dm, 2, w0, 0.0);
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  o.learning_rate = 0.05;
  kl_plan *p = dense_plan(&dm, &o);
  int64_t xs[2] = {10, 2}, ys[2] = {10, 1};
  kl_tensor *x = gt_rand(&rng, 2, xs, -1, 1, 0), *y = gt_rand(&rng, 2, ys, -1, 1, 0);
  count_ud c = {0};
  int metric = KL_METRIC_MAE;
  kl_epoch_opts eo = {.batch_size = 4, .nmetrics = 1, .metrics = &metric, .on_batch = count_cb,
                      .ud = &c};
  double loss, mav;
  /* 10 rows in batches of 4: 4 + 4 + the partial 2, all trained on */
  CHECK_OK(kl_plan_fit_epoch(p, &x, 1, y, &eo, &loss, &mav));
  CHECK(c.calls == 3 && c.seen[0] == 4 && c.seen[1] == 8 && c.seen[2] == 10);
  CHECK(kl_plan_step_count(p) == 3);
  CHECK(loss == c.last_loss && mav == c.last_metric);
  /* evaluate: sample-weighted averages do not depend on the batch size */
  double l3, l10, m3, m10;
  kl_epoch_opts e3 = {.batch_size = 3, .nmetrics = 1, .metrics = &metric};
  kl_epoch_opts e10 = {.batch_size = 10, .nmetrics = 1, .metrics = &metric};
  CHECK_OK(kl_plan_evaluate(p, &x, 1, y, &e3, &l3, &m3));
  CHECK_OK(kl_plan_evaluate(p, &x, 1, y, &e10, &l10, &m10));
  CHECK_NEAR(l3, l10, 1e-12);
  CHECK_NEAR(m3, m10, 1e-12);
  CHECK(kl_plan_step_count(p) == 3);
  /* predict concatenates the batches: equals one forward over everything */
  kl_tensor *pr = NULL;
  CHECK_OK(kl_plan_predict(p, &x, 1, 3, &pr));
  kl_tensor *fd[2] = {x, NULL};
  CHECK_OK(kl_plan_forward(p, fd, 0));
  kl_tensor *all = kl_plan_output(p, 0);
  CHECK(pr && pr->shape[0] == 10 && pr->shape[1] == 1);
  if (pr && all)
    for (int64_t i = 0; i < 10; i++)
      CHECK_NEAR(kl_tensor_data_at(pr, i), kl_tensor_data_at(all, i), 1e-12);
  kl_tensor_release(pr);
  /* the callback stops the epoch */
  count_ud c2 = {0};
  c2.stop_after = 1;
  eo.ud = &c2;
  CHECK_OK(kl_plan_fit_epoch(p, &x, 1, y, &eo, &loss, &mav));
  CHECK(c2.calls == 1 && kl_plan_step_count(p) == 4);
  /* row counts must agree */
  int64_t ys9[2] = {9, 1};
  kl_tensor *y9 = gt_dense(KL_FLOAT64, 2, ys9, NULL);
  CHECK_ERR(kl_plan_fit_epoch(p, &x, 1, y9, &eo, &loss, &mav), KL_ESHAPE,
            "fit: x and y have different row counts (10 vs 9)");
  eo.batch_size = 0;
  CHECK_ERR(kl_plan_fit_epoch(p, &x, 1, y, &eo, &loss, &mav), KL_EINVAL,
            "batch_size must be >= 1. Received: batch_size=0");
  kl_tensor_release(y9);
  kl_plan_free(p);
  kl_tensor_release(x);
  kl_tensor_release(y);
  dense_free(&dm);
}

/* Shuffled epochs: the same seed gives the same weights; another seed other weights. */
static void test_shuffle(void) {
  int64_t xs[2] = {9, 2}, ys[2] = {9, 1};
  kl_tensor *x = gt_rand(&rng, 2, xs, -1, 1, 0), *y = gt_rand(&rng, 2, ys, -1, 1, 0);
  double w[3][2];
  uint64_t seeds[3] = {5, 5, 6};
  for (int run = 0; run < 3; run++) {
    double w0[2] = {0.3, 0.1};
    dense_model dm;
    dense_build(&dm, 2, w0, 0.0);
    kl_optimizer o;
    CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
    o.learning_rate = 0.3;
    kl_plan *p = dense_plan(&dm, &o);
    kl_rng r;
    kl_rng_seed(&r, seeds[run]);
    kl_epoch_opts eo = {.batch_size = 2, .shuffle = 1, .rng = &r};
    double loss;
    CHECK_OK(kl_plan_fit_epoch(p, &x, 1, y, &eo, &loss, NULL));
    CHECK(kl_plan_step_count(p) == 5);
    w[run][0] = kl_tensor_data_at(dm.wt, 0), w[run][1] = kl_tensor_data_at(dm.wt, 1);
    kl_plan_free(p);
    dense_free(&dm);
  }
  CHECK(w[0][0] == w[1][0] && w[0][1] == w[1][1]);
  CHECK(w[0][0] != w[2][0] || w[0][1] != w[2][1]);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* The step cost follows the batch, not the feature count: with the same batch, V = 1e3 and
 * V = 1e6 give a row_sparse gradient with the same stored rows and change the same rows of
 * W (lazy SGD), and fit over CSR trains the partial last batch. */
static void test_cost_independent_of_features(void) {
  int64_t vs[2] = {1000, 1000000};
  int64_t nnz[2] = {0}, changed[2] = {0};
  kl_rng keep = rng;
  for (int t = 0; t < 2; t++) {
    rng = keep; /* the same batch (columns below 1000) for both sizes */
    int64_t V = vs[t];
    kl_graph *g = NULL;
    CHECK_OK(kl_graph_new(&g));
    kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, V}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2,
                                                                 {-1, 1}};
    int64_t ws[2] = {V, 1};
    kl_tensor *wt = NULL;
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &wt));
    int x, y, w, d, loss, two[2];
    CHECK_OK(kl_graph_placeholder(g, &mx, "x", &x));
    CHECK_OK(kl_graph_placeholder(g, &my, "y", &y));
    CHECK_OK(kl_graph_variable(g, wt, 1, "W", &w));
    two[0] = x, two[1] = w;
    CHECK_OK(kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &d));
    two[0] = y, two[1] = d;
    CHECK_OK(kl_graph_op(g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
    kl_optimizer o;
    CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
    o.learning_rate = 0.1;
    kl_stype st = KL_STYPE_ROW_SPARSE;
    int feeds[2] = {x, y};
    kl_plan_spec s = {feeds, 2, &d, 1, loss, &w, 1, &st, &o};
    kl_plan *p = NULL;
    CHECK_OK(kl_plan_new(g, &s, &p));
    kl_tensor *xb64 = rand_csr(8, V, 3, 1000), *xb = NULL;
    CHECK_OK(kl_tensor_astype(xb64, KL_FLOAT32, &xb));
    int64_t ys[2] = {8, 1};
    kl_tensor *yb = NULL;
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &yb));
    kl_tensor_fill(yb, 1.0);
    kl_tensor *fd[2] = {xb, yb};
    double l;
    CHECK_OK(kl_plan_train_step(p, fd, &l));
    kl_tensor *gw = kl_plan_grad(p, 0);
    nnz[t] = gw ? gw->nnz : -1;
    CHECK(gw && gw->stype == KL_STYPE_ROW_SPARSE);
    for (int64_t i = 0; i < V; i++) changed[t] += kl_tensor_data_at(wt, i) != 0.0;
    /* fit over CSR with a partial last batch: 8 rows in batches of 3 -> 3 steps */
    kl_epoch_opts eo = {.batch_size = 3};
    CHECK_OK(kl_plan_fit_epoch(p, &xb, 1, yb, &eo, &l, NULL));
    CHECK(kl_plan_step_count(p) == 4);
    kl_plan_free(p);
    kl_tensor_release(xb64);
    kl_tensor_release(xb);
    kl_tensor_release(yb);
    kl_tensor_release(wt);
    kl_graph_free(g);
  }
  CHECK(nnz[0] > 0 && nnz[0] <= 24);
  CHECK(nnz[0] == nnz[1]);
  CHECK(changed[0] == nnz[0] && changed[1] == nnz[1]);
}

static void test_plan_errors(void) {
  double w0[2] = {1, 2};
  dense_model dm;
  dense_build(&dm, 2, w0, 0.0);
  int feeds[1] = {dm.x}, weights[1] = {dm.w};
  kl_plan *p = NULL;
  kl_plan_spec s = {feeds, 1, &dm.pred, 1, dm.loss, weights, 1, NULL, NULL};
  CHECK_ERR(kl_plan_new(dm.g, &s, &p), KL_EINVAL, "placeholder 1 ('y') is needed but not among");
  CHECK(p == NULL);
  int feeds2[2] = {dm.x, dm.y}, notvar[1] = {dm.pred};
  kl_plan_spec s2 = {feeds2, 2, &dm.pred, 1, dm.loss, notvar, 1, NULL, NULL};
  CHECK_ERR(kl_plan_new(dm.g, &s2, &p), KL_EINVAL, "is not a variable");
  kl_plan_spec s3 = {feeds2, 2, &dm.pred, 1, dm.pred, weights, 1, NULL, NULL};
  CHECK_ERR(kl_plan_new(dm.g, &s3, &p), KL_ESHAPE, "must be a float scalar");
  kl_plan_free(NULL);
  dense_free(&dm);
}

/* Every allocation of plan creation and a training step may fail: each failure is KL_ENOMEM
 * with nothing leaked (the ASan build checks the leaks) and the next attempt works. */
static void test_alloc_failures(void) {
  double w0[2] = {0.5, -0.5};
  dense_model dm;
  dense_build(&dm, 2, w0, 0.0);
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  o.momentum = 0.5;
  int64_t xs[2] = {3, 2}, ys[2] = {3, 1};
  kl_tensor *x = gt_rand(&rng, 2, xs, -1, 1, 0), *y = gt_rand(&rng, 2, ys, -1, 1, 0);
  kl_tensor *fd[2] = {x, y};
  int ok_runs = 0, bad = 0;
  for (long k = 1; k < 400; k++) {
    kl_plan *p = NULL;
    double l;
    kl_alloc_fail_at(k);
    kl_status st = kl_plan_new(dm.g, &(kl_plan_spec){(int[]){dm.x, dm.y}, 2, &dm.pred, 1,
                                                     dm.loss, (int[]){dm.w, dm.b}, 2, NULL, &o},
                               &p);
    if (st == KL_OK) st = kl_plan_train_step(p, fd, &l);
    if (st == KL_OK) st = kl_plan_train_step(p, fd, &l);
    kl_alloc_fail_at(0);
    if (st != KL_OK && st != KL_ENOMEM) bad++;
    if (st == KL_OK) ok_runs++;
    kl_plan_free(p);
    if (ok_runs > 3) break; /* past the last allocation */
  }
  CHECK(bad == 0);
  CHECK(ok_runs > 0);
  kl_tensor_release(x);
  kl_tensor_release(y);
  dense_free(&dm);
}

int main(void) {
  kl_rng_seed(&rng, 7);
  kl_set_warn_handler(quiet, NULL);
  test_sparse_dot_grad(0);
  test_sparse_dot_grad(1);
  test_embedding_grad();
  test_accumulate_dense();
  test_train_step();
  test_fit_epoch();
  test_shuffle();
  test_cost_independent_of_features();
  test_plan_errors();
  test_alloc_failures();
  KLTEST_DONE();
}
