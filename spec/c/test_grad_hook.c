/* test_grad_hook.c: the plan's gradient hook (kl_plan_set_grad_hook), on which the MPI data
 * parallelism stands (distributed/): called once per training step between backward and
 * update with every weight's gradient, which it may replace; its failure fails the step with
 * nothing updated; it turns the fused fit update off; the plan owns its state (freed on
 * replacement and with the plan); kl_plan_train_step_empty feeds it zero gradients. */
#include <stdlib.h>
#include <string.h>
#include "kl/graph.h"
#include "kl/optim.h"
#include "kltest.h"
#include "kltest_ops.h"
#include "plan_internal.h"

static kl_rng rng;

static kl_tensor *rand_csr(int64_t R, int64_t C) {
  int64_t *ip = malloc((size_t)(R + 1) * sizeof *ip), *ix = malloc((size_t)(2 * R) * sizeof *ix);
  double *v = malloc((size_t)(2 * R) * sizeof *v);
  if (!ip || !ix || !v) exit(2);
  int64_t n = 0;
  ip[0] = 0;
  for (int64_t i = 0; i < R; i++) {
    for (int k = 0; k < 2; k++) {
      ix[n] = k * (C / 2) + (int64_t)(kl_rng_uniform(&rng) * (double)(C / 2));
      v[n++] = kl_rng_uniform(&rng) * 2 - 1;
    }
    ip[i + 1] = n;
  }
  kl_tensor *t = kt_csr_of(KL_FLOAT32, R, C, n, ip, ix, v);
  free(ip), free(ix), free(v);
  return t;
}

typedef struct net {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w, *b;
} net;

/* pred = x . W + b (W's gradient row_sparse, b's dense), mse, SGD with learning rate lr. */
static net build(double lr) {
  net n = {0};
  CHECK_OK(kl_graph_new(&n.g));
  int ix, iy, iw, ib, d, pred, loss, two[2];
  kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, 40}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  int64_t ws[2] = {40, 1}, bs[1] = {1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &n.w));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, bs, &n.b));
  for (int64_t k = 0; k < 40; k++) kl_tensor_data_set(n.w, k, 0.01 * (double)(k % 7) - 0.03);
  CHECK_OK(kl_graph_placeholder(n.g, &mx, "x", &ix));
  CHECK_OK(kl_graph_placeholder(n.g, &my, "y", &iy));
  CHECK_OK(kl_graph_variable(n.g, n.w, 1, "W", &iw));
  CHECK_OK(kl_graph_variable(n.g, n.b, 1, "b", &ib));
  two[0] = ix, two[1] = iw;
  CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d));
  two[0] = d, two[1] = ib;
  CHECK_OK(kl_graph_op(n.g, KL_OP_BIAS_ADD, two, 2, NULL, &pred));
  two[0] = iy, two[1] = pred;
  CHECK_OK(kl_graph_op(n.g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  o.learning_rate = lr;
  int feeds[2] = {ix, iy}, weights[2] = {iw, ib};
  kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
  kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 2, gst, &o};
  CHECK_OK(kl_plan_new(n.g, &spec, &n.p));
  return n;
}

static void drop(net *n) {
  kl_plan_free(n->p);
  kl_graph_free(n->g);
  kl_tensor_release(n->w);
  kl_tensor_release(n->b);
}

typedef struct hook_state {
  int calls, fail_at, freed, *freed_flag;
  int64_t rows_seen, last_rsp_nnz;
  double scale;
} hook_state;

/* Doubles every gradient: the row_sparse one by a fresh tensor (replacement), the dense one
 * in place. */
static kl_status doubling(void *ud, kl_plan *p, kl_tensor **wgrad, int nw) {
  hook_state *h = ud;
  h->calls++;
  h->rows_seen += kl_plan_batch_rows(p);
  if (h->fail_at && h->calls == h->fail_at) return kl_seterr(KL_EIO, "hook: refused step %d", h->calls);
  CHECK(nw == 2 && wgrad[0] && wgrad[1]);
  CHECK(wgrad[0]->stype == KL_STYPE_ROW_SPARSE && wgrad[1]->stype == KL_STYPE_DEFAULT);
  h->last_rsp_nnz = wgrad[0]->nnz;
  kl_tensor *c = NULL;
  KL_TRY(kl_tensor_copy(wgrad[0], &c));
  for (int64_t i = 0; i < c->nnz; i++) ((float *)c->data)[i] *= (float)h->scale;
  kl_tensor_release(wgrad[0]);
  wgrad[0] = c;
  for (int64_t i = 0; i < kl_tensor_numel(wgrad[1]); i++) ((float *)wgrad[1]->data)[i] *= (float)h->scale;
  return KL_OK;
}

static void free_state(void *ud) { *((hook_state *)ud)->freed_flag += 1; }

static void fit(net *n, kl_tensor *x, kl_tensor *y, int64_t bs) {
  kl_epoch_opts eo;
  memset(&eo, 0, sizeof eo);
  eo.batch_size = bs;
  double l = 0;
  kl_tensor *xs[1] = {x};
  CHECK_OK(kl_plan_fit_epoch(n->p, xs, 1, y, &eo, &l, NULL));
}

static void test_hook_scales_like_lr(void) {
  kl_rng_seed(&rng, 3);
  kl_tensor *x = rand_csr(48, 40), *y = NULL;
  int64_t ys[2] = {48, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y));
  kl_tensor_fill(y, 0.5);
  /* a: the hook doubles every gradient at lr 0.05; b: no hook at lr 0.1. Doubling is exact,
   * so lr * (2 g) and (2 lr) * g are the same bits. */
  net a = build(0.05), b = build(0.1);
  int freed = 0;
  hook_state h = {0, 0, 0, &freed, 0, 0, 2.0};
  kl_plan_set_grad_hook(a.p, doubling, &h, free_state);
  CHECK(kl_plan_grad_hook_ud(a.p, doubling) == &h);
  fit(&a, x, y, 8);
  fit(&b, x, y, 8);
  CHECK(h.calls == 6 && h.rows_seen == 48 && h.last_rsp_nnz > 0);
  CHECK(a.p->fused_steps == 0 && a.p->lin_steps == 0); /* the fused steps are off while a hook is set */
  CHECK(b.p->fused_steps > 0 || b.p->lin_steps > 0);    /* (and on without one: this case would fuse) */
  CHECK(memcmp(a.w->data, b.w->data, 40 * sizeof(float)) == 0);
  CHECK(memcmp(a.b->data, b.b->data, sizeof(float)) == 0);
  CHECK(kl_plan_step_count(a.p) == 6);
  /* train_step too */
  kl_tensor *f[2] = {x, y};
  double l;
  CHECK_OK(kl_plan_train_step(a.p, f, &l));
  CHECK(h.calls == 7);
  /* a failing hook fails the step before any update */
  float w0[40], b0;
  memcpy(w0, a.w->data, sizeof w0);
  b0 = ((float *)a.b->data)[0];
  h.fail_at = 8;
  CHECK_ERR(kl_plan_train_step(a.p, f, &l), KL_EIO, "hook: refused step 8");
  CHECK(memcmp(w0, a.w->data, sizeof w0) == 0 && b0 == ((float *)a.b->data)[0]);
  CHECK(kl_plan_step_count(a.p) == 7);
  /* an empty step: zero gradients through the hook, and the update (SGD: no change) */
  h.fail_at = 0;
  int64_t before = h.rows_seen;
  CHECK_OK(kl_plan_train_step_empty(a.p));
  CHECK(h.calls == 9 && h.rows_seen == before && h.last_rsp_nnz == 0);
  CHECK(memcmp(w0, a.w->data, sizeof w0) == 0 && b0 == ((float *)a.b->data)[0]);
  CHECK(kl_plan_step_count(a.p) == 8);
  CHECK_ERR(kl_plan_train_step_empty(b.p), KL_EINVAL, "empty step needs a gradient hook");
  /* the plan owns the state: replaced -> freed once; removed -> nothing left to free */
  hook_state h2 = {0, 0, 0, &freed, 0, 0, 1.0};
  kl_plan_set_grad_hook(a.p, doubling, &h2, free_state);
  CHECK(freed == 1);
  drop(&a); /* frees h2 */
  CHECK(freed == 2);
  kl_plan_set_grad_hook(b.p, doubling, &h, free_state);
  kl_plan_set_grad_hook(b.p, NULL, NULL, NULL);
  CHECK(freed == 3 && kl_plan_grad_hook_ud(b.p, doubling) == NULL);
  drop(&b);
  CHECK(freed == 3);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* Records the rows of each step. */
typedef struct rows_log {
  int calls;
  int64_t rows[16];
} rows_log;

static kl_status log_rows(void *ud, kl_plan *p, kl_tensor **wgrad, int nw) {
  rows_log *r = ud;
  (void)wgrad, (void)nw;
  if (r->calls < 16) r->rows[r->calls] = kl_plan_batch_rows(p);
  r->calls++;
  return KL_OK;
}

/* A data-parallel fit: part k of n trains on rows [b + len*k/n, b + len*(k+1)/n) of each
 * batch, and steps with zero gradients when that share is empty (so every part runs the
 * hook once per global batch). 10 rows, batches of 4: [0,4) [4,8) [8,10). */
static void test_parts(void) {
  kl_rng_seed(&rng, 5);
  kl_tensor *x = rand_csr(10, 40), *y = NULL;
  int64_t ys[2] = {10, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y));
  const int64_t want[3][3] = {{1, 1, 0}, {1, 1, 1}, {2, 2, 1}};
  for (int part = 0; part < 3; part++) {
    net a = build(0.05);
    rows_log r = {0, {0}};
    kl_epoch_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.batch_size = 4, eo.part = part, eo.nparts = 3;
    kl_tensor *xs[1] = {x};
    double l = -1;
    CHECK_ERR(kl_plan_fit_epoch(a.p, xs, 1, y, &eo, &l, NULL), KL_EINVAL,
              "needs the plan's gradient hook");
    kl_plan_set_grad_hook(a.p, log_rows, &r, NULL);
    CHECK_OK(kl_plan_fit_epoch(a.p, xs, 1, y, &eo, &l, NULL));
    CHECK(r.calls == 3 && kl_plan_step_count(a.p) == 3);
    for (int k = 0; k < 3; k++) CHECK(r.rows[k] == want[part][k]);
    eo.part = 3;
    CHECK_ERR(kl_plan_fit_epoch(a.p, xs, 1, y, &eo, &l, NULL), KL_EINVAL, "part 3 of 3 parts");
    drop(&a);
  }
  kl_tensor_release(x);
  kl_tensor_release(y);
}

int main(void) {
  test_hook_scales_like_lr();
  test_parts();
  KLTEST_DONE();
}
