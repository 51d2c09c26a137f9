/* test_lifecycle.c: ownership in the C core (issue 13). A csr batch view keeps its parent
 * alive; a plan keeps its graph alive; a running fit / evaluate keeps its plan and data
 * alive, so a callback may drop the caller's references to any of them. Every case here
 * read freed memory before (ASan, in make test-asan, reports it as such; a plain build
 * compares the results with a run that dropped nothing). */
#include <stdlib.h>
#include <string.h>
#include "kl/graph.h"
#include "kl/optim.h"
#include "kltest.h"
#include "kltest_ops.h"
#include "tensor_internal.h"

static kl_rng rng;

/* R x C csr with 3 entries a row, values in (-1, 1). */
static kl_tensor *rand_csr(int64_t R, int64_t C) {
  int64_t *ip = malloc((size_t)(R + 1) * sizeof *ip), *ix = malloc((size_t)(3 * R) * sizeof *ix);
  double *v = malloc((size_t)(3 * R) * sizeof *v);
  if (!ip || !ix || !v) exit(2);
  int64_t n = 0;
  ip[0] = 0;
  for (int64_t i = 0; i < R; i++) {
    for (int k = 0; k < 3; k++) {
      ix[n] = k * (C / 3) + (int64_t)(kl_rng_uniform(&rng) * (double)(C / 3));
      v[n++] = kl_rng_uniform(&rng) * 2 - 1;
    }
    ip[i + 1] = n;
  }
  kl_tensor *t = kt_csr_of(KL_FLOAT32, R, C, n, ip, ix, v);
  free(ip);
  free(ix);
  free(v);
  return t;
}

static void test_view_keeps_parent(void) {
  kl_tensor *x = rand_csr(20, 30), *v = NULL, *s = NULL;
  CHECK_OK(kl_tensor_csr_row_view(x, 5, 12, &v));
  CHECK_OK(kl_tensor_slice_rows(x, 5, 12, &s));
  CHECK(v && v->base == x && x->refcount == 2);
  kl_tensor_release(x); /* the caller's reference: the view's keeps x */
  if (v && s) {
    CHECK(memcmp(v->indices, s->indices, (size_t)s->nnz * sizeof(int64_t)) == 0);
    CHECK(memcmp(v->data, s->data, (size_t)s->nnz * sizeof(float)) == 0);
  }
  kl_tensor_release(v); /* frees x too */
  kl_tensor_release(s);
}

/* pred = x . W (csr . dense), mse against y, SGD; *g_out, *p_out new. */
static void build(kl_graph **g_out, kl_plan **p_out, kl_tensor **w_out) {
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  int ix, iy, iw, pred, loss, two[2];
  kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, 30}},
          my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  int64_t ws[2] = {30, 1};
  kl_tensor *w = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &w));
  for (int64_t k = 0; w && k < 30; k++) kl_tensor_data_set(w, k, 0.01 * (double)k - 0.1);
  CHECK_OK(kl_graph_placeholder(g, &mx, "x", &ix));
  CHECK_OK(kl_graph_placeholder(g, &my, "y", &iy));
  CHECK_OK(kl_graph_variable(g, w, 1, "W", &iw));
  two[0] = ix, two[1] = iw;
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &pred));
  two[0] = iy, two[1] = pred;
  CHECK_OK(kl_graph_op(g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  int feeds[2] = {ix, iy}, weights[1] = {iw};
  kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 1, NULL, &o};
  CHECK_OK(kl_plan_new(g, &spec, p_out));
  *g_out = g;
  *w_out = w;
}

static void test_plan_keeps_graph(void) {
  kl_graph *g = NULL;
  kl_plan *p = NULL;
  kl_tensor *w = NULL;
  build(&g, &p, &w);
  kl_graph_free(g); /* the creator's reference: the plan's keeps the graph */
  kl_tensor *x = rand_csr(9, 30), *y = NULL;
  int64_t s9[2] = {9, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s9, &y));
  kl_tensor *f[2] = {x, y};
  double l = -1;
  if (p) CHECK_OK(kl_plan_train_step(p, f, &l));
  CHECK(l >= 0);
  kl_plan_free(p); /* frees the graph, which releases its reference to w */
  CHECK(w->refcount == 1);
  kl_tensor_release(w);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* The callback's state: at batch `at`, drop the references it was handed. */
typedef struct drop_state {
  int64_t at;
  kl_tensor **x, **y;
  kl_plan **p;
  int calls;
} drop_state;

static int drop_cb(void *ud, int64_t batch, int64_t seen, int64_t total, double loss,
                   const double *m) {
  (void)seen, (void)total, (void)loss, (void)m;
  drop_state *s = (drop_state *)ud;
  s->calls++;
  if (batch == s->at) {
    if (s->x) kl_tensor_release(*s->x), *s->x = NULL;
    if (s->y) kl_tensor_release(*s->y), *s->y = NULL;
    if (s->p) kl_plan_free(*s->p), *s->p = NULL;
  }
  return 0;
}

/* One epoch (shuffled or not) where the callback drops x, y and the plan after batch 1:
 * the epoch runs to its end on the loop's own references, with the loss of an epoch that
 * dropped nothing. */
static void test_fit_holds_its_data(int shuffle, int train) {
  double want = 0, got = 0;
  for (int drop = 0; drop <= 1; drop++) {
    kl_graph *g = NULL;
    kl_plan *p = NULL;
    kl_tensor *w = NULL;
    kl_rng_seed(&rng, 5);
    build(&g, &p, &w);
    kl_tensor *x = rand_csr(50, 30), *y = NULL;
    int64_t ys[2] = {50, 1};
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y));
    kl_tensor_fill(y, 0.25);
    kl_rng sh;
    kl_rng_seed(&sh, 9);
    drop_state ds = {1, drop ? &x : NULL, drop ? &y : NULL, drop ? &p : NULL, 0};
    kl_epoch_opts eo = {.batch_size = 8, .shuffle = shuffle, .rng = &sh, .on_batch = drop_cb,
                        .ud = &ds};
    kl_plan *held = p;
    kl_tensor *xs[1] = {x};
    double l = -1;
    CHECK_OK(train ? kl_plan_fit_epoch(held, xs, 1, y, &eo, &l, NULL)
                   : kl_plan_evaluate(held, xs, 1, y, &eo, &l, NULL));
    CHECK(ds.calls == 7); /* 50 rows in batches of 8 */
    if (drop) got = l; else want = l;
    kl_plan_free(p);
    kl_graph_free(g);
    kl_tensor_release(w);
    kl_tensor_release(x);
    kl_tensor_release(y);
  }
  CHECK(want == got && want > 0);
}

/* An op with more inputs than the old 64-slot arrays held, through a graph and a plan. */
static void test_many_inputs(void) {
  enum { N = 150 };
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  int ids[N], cat = -1;
  kl_meta m = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  for (int i = 0; i < N; i++) CHECK_OK(kl_graph_placeholder(g, &m, NULL, &ids[i]));
  kl_attrs a;
  memset(&a, 0, sizeof a);
  a.has_axis = 1, a.axis = 1;
  CHECK_OK(kl_graph_op(g, KL_OP_CONCAT, ids, N, &a, &cat));
  kl_plan_spec spec = {ids, N, &cat, 1, -1, NULL, 0, NULL, NULL};
  kl_plan *p = NULL;
  CHECK_OK(kl_plan_new(g, &spec, &p));
  kl_tensor *in[N];
  int64_t s[2] = {2, 1};
  for (int i = 0; i < N; i++) {
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s, &in[i]));
    kl_tensor_fill(in[i], (double)i);
  }
  if (p) {
    CHECK_OK(kl_plan_forward(p, in, 0));
    const kl_tensor *o = kl_plan_output(p, 0);
    CHECK(o && o->shape[0] == 2 && o->shape[1] == N);
    for (int i = 0; o && i < N; i++) CHECK(((const float *)o->data)[N + i] == (float)i);
    kl_tensor *pr = NULL;
    CHECK_OK(kl_plan_predict(p, in, N, 1, &pr));
    CHECK(pr && pr->shape[1] == N && ((const float *)pr->data)[N - 1] == (float)(N - 1));
    kl_tensor_release(pr);
  }
  for (int i = 0; i < N; i++) kl_tensor_release(in[i]);
  kl_plan_free(p);
  kl_graph_free(g);
  CHECK(KL_MAX_OP_INPUTS >= 1024);
}

int main(void) {
  kl_rng_seed(&rng, 11);
  test_view_keeps_parent();
  test_plan_keeps_graph();
  test_fit_holds_its_data(0, 1);
  test_fit_holds_its_data(1, 1);
  test_fit_holds_its_data(0, 0);
  test_many_inputs();
  KLTEST_DONE();
}
