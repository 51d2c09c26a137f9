/* train_testutil.h: a sparse Dense-like model trained through the plan API (leak, growth and
 * determinism tests): pred = dot(x_csr, W_rsp) + b, mse loss, row_sparse gradient for W. */
#ifndef KL_TRAIN_TESTUTIL_H
#define KL_TRAIN_TESTUTIL_H
#include "graph_testutil.h"

__attribute__((unused)) static void tt_unused(void) { (void)gt_gradcheck, (void)gt_rand; }

typedef struct tt_model {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w, *b;             /* the weights (the graph holds references too) */
  kl_tensor *xb[16], *yb[16];   /* pre-made batches, cycled */
  int nbatches;
} tt_model;

/* Builds the model (V features, U units, batches of B rows with about nz entries each) and
 * its plan with optimizer o; everything is drawn from seed. Returns 0 on success. */
static int tt_build(tt_model *m, int64_t V, int64_t U, int64_t B, double nz, uint64_t seed,
                    const kl_optimizer *o) {
  kl_rng r;
  kl_rng_seed(&r, seed);
  memset(m, 0, sizeof *m);
  int64_t ws[2] = {V, U}, bs[1] = {U}, xs[2] = {B, V}, ys[2] = {B, U};
  kl_tensor *wd = NULL;
  if (kl_tensor_new_dense(KL_FLOAT64, 2, ws, &wd) != KL_OK) return 1;
  kl_tensor_fill_uniform(wd, -0.1, 0.1, &r);
  kl_status s = kl_tensor_tostype(wd, KL_STYPE_ROW_SPARSE, &m->w);
  kl_tensor_release(wd);
  if (s == KL_OK) s = kl_tensor_new_dense(KL_FLOAT64, 1, bs, &m->b);
  m->nbatches = 16;
  for (int k = 0; k < m->nbatches && s == KL_OK; k++) {
    s = kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, xs, nz / (double)V, &r, &m->xb[k]);
    if (s == KL_OK) s = kl_tensor_new_dense(KL_FLOAT64, 2, ys, &m->yb[k]);
    if (s == KL_OK) s = kl_tensor_fill_uniform(m->yb[k], -1, 1, &r);
  }
  int x, y, wi, bi, d, pred, loss, two[2];
  kl_meta mx = {KL_FLOAT64, KL_STYPE_CSR, 2, {-1, V}}, my = {KL_FLOAT64, KL_STYPE_DEFAULT, 2, {-1, U}};
  if (s == KL_OK) s = kl_graph_new(&m->g);
  if (s == KL_OK) s = kl_graph_placeholder(m->g, &mx, "x", &x);
  if (s == KL_OK) s = kl_graph_placeholder(m->g, &my, "y", &y);
  if (s == KL_OK) s = kl_graph_variable(m->g, m->w, 1, "W", &wi);
  if (s == KL_OK) s = kl_graph_variable(m->g, m->b, 1, "b", &bi);
  if (s == KL_OK) two[0] = x, two[1] = wi, s = kl_graph_op(m->g, KL_OP_DOT, two, 2, NULL, &d);
  if (s == KL_OK) two[0] = d, two[1] = bi, s = kl_graph_op(m->g, KL_OP_BIAS_ADD, two, 2, NULL, &pred);
  if (s == KL_OK) two[0] = y, two[1] = pred, s = kl_graph_op(m->g, KL_OP_LOSS_MSE, two, 2, NULL, &loss);
  if (s == KL_OK) {
    int feeds[2] = {x, y}, weights[2] = {wi, bi};
    kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
    kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 2, gst, o};
    s = kl_plan_new(m->g, &spec, &m->p);
  }
  if (s != KL_OK) fprintf(stderr, "tt_build: %s\n", kl_errmsg());
  return s != KL_OK;
}

/* Training step number `step` (0-based) on batch step % nbatches. */
static kl_status tt_step(tt_model *m, long step, double *loss) {
  kl_tensor *f[2] = {m->xb[step % m->nbatches], m->yb[step % m->nbatches]};
  return kl_plan_train_step(m->p, f, loss);
}

static void tt_free(tt_model *m) {
  kl_plan_free(m->p);
  kl_graph_free(m->g);
  kl_tensor_release(m->w);
  kl_tensor_release(m->b);
  for (int k = 0; k < 16; k++) kl_tensor_release(m->xb[k]), kl_tensor_release(m->yb[k]);
}

#endif
