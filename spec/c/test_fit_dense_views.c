/* test_fit_dense_views.c: fit feeds the contiguous rows of a dense host input as views of its
 * buffer (plan_fit.c kl_dense_row_view: no zero fill and copy a batch), as it does for csr.
 * A fit epoch must give the same bits as train_step on copied slices (an Embedding -> mean
 * -> Dense model on int64 ids, and a dense Dense model with f64 labels fed to an f32
 * placeholder), leave the input unchanged, keep no view after it (the plan may outlive the
 * data), and a shuffled epoch (copied rows) is unaffected. */
#include <stdlib.h>
#include "kl/graph.h"
#include "kl/optim.h"
#include "kltest.h"
#include "plan_internal.h"

static kl_rng rng;

typedef struct net {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w[3];
} net;

/* ids (n, L) int64 in 0..V (0: padding) -> Embedding(V, D) -> mean -> dot K (D x 1) + c
 * -> mse; lazy Adam. With dense: x (n, D) f32 -> dot K + c -> mse; SGD momentum. */
static net make_net(int dense, int64_t V, int64_t D, int64_t L, uint64_t seed) {
  net n = {0};
  kl_rng r;
  kl_rng_seed(&r, seed);
  int64_t ws[2] = {V, D}, ks[2] = {D, 1}, cs = 1;
  CHECK_OK(kl_graph_new(&n.g));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &n.w[0]));
  CHECK_OK(kl_tensor_fill_uniform(n.w[0], -0.05, 0.05, &r));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ks, &n.w[1]));
  CHECK_OK(kl_tensor_fill_uniform(n.w[1], -0.5, 0.5, &r));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, &cs, &n.w[2]));
  kl_meta mi = {KL_INT64, KL_STYPE_DEFAULT, 2, {-1, L}}, mx = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, D}};
  kl_meta my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  int ii, iy, iw, ik, ic, h, d, pred, loss, two[2];
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, dense ? KL_OPT_SGD : KL_OPT_ADAM));
  o.learning_rate = 0.01;
  o.momentum = dense ? 0.9 : 0;
  o.lazy_update = 1;
  CHECK_OK(kl_graph_placeholder(n.g, dense ? &mx : &mi, "x", &ii));
  CHECK_OK(kl_graph_placeholder(n.g, &my, "y", &iy));
  CHECK_OK(kl_graph_variable(n.g, n.w[0], 1, "E", &iw));
  CHECK_OK(kl_graph_variable(n.g, n.w[1], 1, "K", &ik));
  CHECK_OK(kl_graph_variable(n.g, n.w[2], 1, "c", &ic));
  if (dense) {
    h = ii;
  } else {
    kl_attrs ea = {0}, ma = {0};
    ea.ival = V;
    ma.has_axis = 1;
    ma.axis = 1;
    int e;
    two[0] = ii, two[1] = iw;
    CHECK_OK(kl_graph_op(n.g, KL_OP_EMBEDDING, two, 2, &ea, &e));
    CHECK_OK(kl_graph_op(n.g, KL_OP_MEAN, &e, 1, &ma, &h));
  }
  two[0] = h, two[1] = ik;
  CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d));
  two[0] = d, two[1] = ic;
  CHECK_OK(kl_graph_op(n.g, KL_OP_BIAS_ADD, two, 2, NULL, &pred));
  two[0] = iy, two[1] = pred;
  CHECK_OK(kl_graph_op(n.g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  int feeds[2] = {ii, iy}, weights[3] = {iw, ik, ic};
  kl_stype gst[3] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT, KL_STYPE_DEFAULT};
  kl_plan_spec spec = {feeds, 2, &pred, 1, loss, dense ? weights + 1 : weights, dense ? 2 : 3,
                       dense ? gst + 1 : gst, &o};
  CHECK_OK(kl_plan_new(n.g, &spec, &n.p));
  return n;
}

static void free_net(net *n) {
  kl_plan_free(n->p);
  kl_graph_free(n->g);
  for (int k = 0; k < 3; k++) kl_tensor_release(n->w[k]);
}

static int same(const kl_tensor *a, const kl_tensor *b) {
  return a && b && a->dtype == b->dtype && a->stype == b->stype && a->nnz == b->nnz &&
         kl_tensor_numel(a) == kl_tensor_numel(b) &&
         memcmp(a->data, b->data, (size_t)kl_tensor_numel(a) * kl_dtype_size(a->dtype)) == 0;
}

static void check(int dense) {
  const int64_t R = 300, V = 500, D = 16, L = 7, bs = 64;
  int64_t xs[2] = {R, dense ? D : L}, ys[2] = {R, 1};
  kl_tensor *x = NULL, *y = NULL, *x0 = NULL;
  CHECK_OK(kl_tensor_new_dense(dense ? KL_FLOAT32 : KL_INT64, 2, xs, &x));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, ys, &y));
  for (int64_t k = 0; k < kl_tensor_numel(x); k++)
    kl_tensor_data_set(x, k, dense ? kl_rng_uniform(&rng) - 0.5 : (double)(int64_t)(kl_rng_uniform(&rng) * (V + 1)));
  CHECK_OK(kl_tensor_fill_uniform(y, -1, 1, &rng));
  CHECK_OK(kl_tensor_copy(x, &x0));
  net a = make_net(dense, V, D, L, 5), b = make_net(dense, V, D, L, 5);
  kl_epoch_opts eo = {.batch_size = bs};
  double la = 0, lb = 0;
  for (int e = 0; e < 2 && a.p && b.p; e++) {
    CHECK_OK(kl_plan_fit_epoch(a.p, &x, 1, y, &eo, &la, NULL));
    double lsum = 0; /* the epoch's loss as fit sums it: each step's, times its rows */
    for (int64_t r = 0; r < R; r += bs) {
      const int64_t e1 = r + bs < R ? r + bs : R;
      kl_tensor *f[2] = {NULL, NULL};
      CHECK_OK(kl_tensor_slice_rows(x, r, e1, &f[0]));
      CHECK_OK(kl_tensor_slice_rows(y, r, e1, &f[1]));
      double l = 0;
      CHECK_OK(kl_plan_train_step(b.p, f, &l));
      lsum += l * (double)(e1 - r);
      kl_tensor_release(f[0]);
      kl_tensor_release(f[1]);
    }
    lb = lsum / (double)R;
  }
  /* the same bits as train_step on copied batches: weights, optimizer states, the loss */
  int ok = la == lb;
  for (int k = 0; k < (dense ? 2 : 3); k++) {
    ok &= same(kl_plan_weight(a.p, k), kl_plan_weight(b.p, k));
    for (int s = 0; s < kl_plan_num_states(a.p, k); s++)
      ok &= same(kl_plan_state(a.p, k, s), kl_plan_state(b.p, k, s));
  }
  CHECK(ok);
  CHECK(same(x, x0)); /* the input is not written */
  CHECK(kl_plan_output(a.p, 0) == NULL); /* no view of the data is kept */
  /* the plan outlives its data; a shuffled epoch (copied rows) on fresh data */
  kl_tensor_release(x);
  kl_tensor_release(y);
  x = NULL;
  y = NULL;
  CHECK_OK(kl_tensor_copy(x0, &x));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y));
  kl_tensor_fill(y, 0.25);
  kl_rng sr;
  kl_rng_seed(&sr, 3);
  kl_rng sr2 = sr;
  kl_epoch_opts es = {.batch_size = bs, .shuffle = 1, .rng = &sr}, es2 = es;
  es2.rng = &sr2;
  CHECK_OK(kl_plan_fit_epoch(a.p, &x, 1, y, &es, &la, NULL));
  CHECK_OK(kl_plan_fit_epoch(b.p, &x, 1, y, &es2, &lb, NULL)); /* b: the same epoch by fit */
  ok = la == lb && la == la;
  for (int k = 0; k < (dense ? 2 : 3); k++) ok &= same(kl_plan_weight(a.p, k), kl_plan_weight(b.p, k));
  CHECK(ok && same(x, x0));
  free_net(&a);
  free_net(&b);
  kl_tensor_release(x);
  kl_tensor_release(x0);
  kl_tensor_release(y);
}

int main(void) {
  kl_rng_seed(&rng, 41);
  check(0);
  check(1);
  KLTEST_DONE();
}
