/* test_node_ext.c: the plan's node hooks (kl_plan_set_node_ext), on which the sharded
 * Embedding stands (distributed/sharded.c). A hook that runs an Embedding on a compact
 * table of the batch's rows and renumbered ids, and maps the gradient back to the table's
 * rows, must give the bits of the plain plan (outputs, loss, and weights and Adam states
 * after steps), with the Embedding -> mean fusion on and off; an empty step (no rows) calls
 * the hook's forward with no inputs and its backward with no gradient, in a step's order,
 * and a gradient it returns is applied; a failing forward fails the step with nothing
 * updated; the plan owns the hook's state (freed on replacement and with the plan); bad
 * arguments are refused. */
#include <stdlib.h>
#include <string.h>
#include "graph_testutil.h"
#include "kl/optim.h"
#include "plan_internal.h"

static kl_rng rng;

typedef struct net {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w, *k;
  int ids, y, e, m;
} net;

/* ids (n, L) -> Embedding(W: V x D) -> mean over L -> dot K (D x 1) -> mse vs y. */
static net make(int64_t V, int64_t D, int64_t L, uint64_t seed) {
  net n = {0};
  CHECK_OK(kl_graph_new(&n.g));
  kl_rng wr;
  kl_rng_seed(&wr, seed);
  int64_t ws[2] = {V, D}, ks[2] = {D, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &n.w));
  for (int64_t i = 0; i < V * D; i++) kl_tensor_data_set(n.w, i, kl_rng_uniform(&wr) - 0.5);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ks, &n.k));
  for (int64_t i = 0; i < D; i++) kl_tensor_data_set(n.k, i, kl_rng_uniform(&wr) - 0.5);
  kl_meta mi = {KL_INT64, KL_STYPE_DEFAULT, 2, {-1, L}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  int iw, ik, d, loss, two[2];
  CHECK_OK(kl_graph_placeholder(n.g, &mi, "ids", &n.ids));
  CHECK_OK(kl_graph_placeholder(n.g, &my, "y", &n.y));
  CHECK_OK(kl_graph_variable(n.g, n.w, 1, "W", &iw));
  CHECK_OK(kl_graph_variable(n.g, n.k, 1, "K", &ik));
  kl_attrs ea = {0}, ma = {0};
  ma.has_axis = 1, ma.axis = 1;
  two[0] = n.ids, two[1] = iw;
  CHECK_OK(kl_graph_op(n.g, KL_OP_EMBEDDING, two, 2, &ea, &n.e));
  CHECK_OK(kl_graph_op(n.g, KL_OP_MEAN, &n.e, 1, &ma, &n.m));
  two[0] = n.m, two[1] = ik;
  CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d));
  two[0] = n.y, two[1] = d;
  CHECK_OK(kl_graph_op(n.g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  o.learning_rate = 0.05;
  o.lazy_update = 1;
  int feeds[2] = {n.ids, n.y}, wts[2] = {iw, ik};
  kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
  kl_plan_spec sp = {feeds, 2, &d, 1, loss, wts, 2, gst, &o};
  CHECK_OK(kl_plan_new(n.g, &sp, &n.p));
  return n;
}

static void drop(net *n) {
  kl_plan_free(n->p);
  kl_graph_free(n->g);
  kl_tensor_release(n->w);
  kl_tensor_release(n->k);
}

/* The compacting hook: the batch's unique ids renumbered 1..U in first-seen order, and a
 * (U, D) table of their rows; the backward maps compact rows back to table rows. */
typedef struct compact {
  int64_t rows[256], nu;
  int fwd, bwd, empty_fwd, empty_bwd, freed_flag, fail_fwd;
  int *freed;
  char log[64];
} compact;

static kl_status c_forward(void *ud, kl_plan *p, int node, kl_tensor *const *ins, int nin,
                           kl_tensor **subs) {
  compact *c = ud;
  (void)p, (void)node;
  CHECK(nin == 2);
  strcat(c->log, "F");
  if (!ins) {
    c->empty_fwd++;
    return KL_OK;
  }
  c->fwd++;
  if (c->fail_fwd) return kl_seterr(KL_EINDEX, "compact: refused");
  const kl_tensor *ids = ins[0], *w = ins[1];
  const int64_t np = kl_tensor_numel(ids), D = w->shape[1];
  kl_tensor *ids2 = NULL, *w2 = NULL;
  KL_TRY(kl_tensor_new_dense(KL_INT64, ids->ndim, ids->shape, &ids2));
  c->nu = 0;
  for (int64_t q = 0; q < np; q++) {
    int64_t id = ((const int64_t *)ids->data)[q], u = 0;
    if (id > 0) {
      while (u < c->nu && c->rows[u] != id - 1) u++;
      if (u == c->nu) c->rows[c->nu++] = id - 1;
      u++;
    }
    ((int64_t *)ids2->data)[q] = u;
  }
  int64_t s2[2] = {c->nu, D};
  kl_status st = kl_tensor_new_dense(w->dtype, 2, s2, &w2);
  if (st != KL_OK) {
    kl_tensor_release(ids2);
    return st;
  }
  for (int64_t u = 0; u < c->nu; u++)
    memcpy((float *)w2->data + u * D, (const float *)w->data + c->rows[u] * D, (size_t)D * 4);
  subs[0] = ids2;
  subs[1] = w2;
  return KL_OK;
}

static kl_status c_backward(void *ud, kl_plan *p, int node, int i, kl_tensor **g) {
  compact *c = ud;
  const kl_tensor *w = kl_plan_weight(p, 0);
  CHECK(i == 1);
  strcat(c->log, "B");
  if (!*g) { /* an empty step: a gradient of one row (row 2 of the table) */
    c->empty_bwd++;
    KL_TRY(kl_tensor_new_rsp(KL_FLOAT32, 2, w->shape, 1, g));
    (*g)->indices[0] = 2;
    for (int64_t j = 0; j < w->shape[1]; j++) ((float *)(*g)->data)[j] = 1.0f;
    return KL_OK;
  }
  c->bwd++;
  kl_tensor *t = *g;
  CHECK(t->stype == KL_STYPE_ROW_SPARSE && t->shape[0] == c->nu);
  /* compact rows in first-seen order: the table rows are not sorted, so sort pairs */
  const int64_t D = w->shape[1];
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_rsp(t->dtype, 2, w->shape, t->nnz, &o));
  int64_t *ord = malloc((size_t)(t->nnz + 1) * sizeof *ord);
  for (int64_t a = 0; a < t->nnz; a++) ord[a] = a;
  for (int64_t a = 1; a < t->nnz; a++) /* insertion sort by table row */
    for (int64_t b = a; b > 0 && c->rows[t->indices[ord[b]]] < c->rows[t->indices[ord[b - 1]]]; b--) {
      int64_t x = ord[b];
      ord[b] = ord[b - 1], ord[b - 1] = x;
    }
  for (int64_t a = 0; a < t->nnz; a++) {
    o->indices[a] = c->rows[t->indices[ord[a]]];
    memcpy((float *)o->data + a * D, (const float *)t->data + ord[a] * D, (size_t)D * 4);
  }
  free(ord);
  kl_tensor_release(t);
  *g = o;
  (void)node;
  return KL_OK;
}

static void c_free(void *ud) {
  compact *c = ud;
  (*c->freed)++;
  free(c);
}

static const kl_node_ext ext = {c_forward, c_backward, c_free};

static kl_tensor *rand_ids(int64_t n, int64_t L, int64_t V) {
  int64_t s[2] = {n, L};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, s, &t));
  for (int64_t q = 0; q < n * L; q++) /* repeats and padding */
    ((int64_t *)t->data)[q] = (int64_t)(kl_rng_uniform(&rng) * (double)(V / 2 + 1));
  return t;
}

static int same_bits(const kl_tensor *a, const kl_tensor *b) {
  return a && b && kl_tensor_numel(a) == kl_tensor_numel(b) &&
         memcmp(a->data, b->data, (size_t)kl_tensor_numel(a) * kl_dtype_size(a->dtype)) == 0;
}

static void test_same_bits(int fuse) {
  int prev = kl_plan_set_fuse_enabled(fuse);
  const int64_t V = 40, D = 5, L = 4;
  net a = make(V, D, L, 7), b = make(V, D, L, 7);
  CHECK(a.p->nbags == (fuse ? 1 : 0));
  int freed = 0;
  compact *c = calloc(1, sizeof *c);
  c->freed = &freed;
  CHECK_OK(kl_plan_set_node_ext(b.p, b.e, &ext, c));
  CHECK(kl_plan_node_ext_ud(b.p, b.e) == c && kl_plan_node_ext_ud(b.p, b.m) == NULL);
  for (int step = 0; step < 4; step++) {
    kl_tensor *ids = rand_ids(6, L, V), *y = NULL;
    int64_t ys[2] = {6, 1};
    y = gt_rand(&rng, 2, ys, -1, 1, KL_FLOAT32);
    kl_tensor *f[2] = {ids, y};
    double la = 0, lb = 0;
    CHECK_OK(kl_plan_train_step(a.p, f, &la));
    CHECK_OK(kl_plan_train_step(b.p, f, &lb));
    CHECK(la == lb);
    CHECK_OK(kl_plan_forward(a.p, f, 0));
    CHECK_OK(kl_plan_forward(b.p, f, 0));
    CHECK(same_bits(kl_plan_output(a.p, 0), kl_plan_output(b.p, 0)));
    kl_tensor_release(ids);
    kl_tensor_release(y);
  }
  CHECK(c->fwd == 8 && c->bwd == 4);
  CHECK(same_bits(a.w, b.w) && same_bits(a.k, b.k));
  CHECK(same_bits(kl_plan_state(a.p, 0, 0), kl_plan_state(b.p, 0, 0)));
  CHECK(same_bits(kl_plan_state(a.p, 0, 1), kl_plan_state(b.p, 0, 1)));
  /* removing the hook frees its state once; the plan runs plain again */
  CHECK_OK(kl_plan_set_node_ext(b.p, b.e, NULL, NULL));
  CHECK(freed == 1 && kl_plan_node_ext_ud(b.p, b.e) == NULL);
  drop(&a);
  drop(&b);
  kl_plan_set_fuse_enabled(prev);
}

static kl_status ok_hook(void *ud, kl_plan *p, kl_tensor **wgrad, int nw) {
  (void)ud, (void)p, (void)wgrad, (void)nw;
  return KL_OK;
}

static void test_empty_and_errors(void) {
  const int64_t V = 10, D = 3, L = 2;
  net n = make(V, D, L, 3);
  int freed = 0;
  compact *c = calloc(1, sizeof *c);
  c->freed = &freed;
  CHECK_OK(kl_plan_set_node_ext(n.p, n.e, &ext, c));
  kl_plan_set_grad_hook(n.p, ok_hook, NULL, NULL);
  kl_tensor *w0 = NULL;
  CHECK_OK(kl_tensor_copy(n.w, &w0));
  CHECK_OK(kl_plan_train_step_empty(n.p));
  CHECK(c->empty_fwd == 1 && c->empty_bwd == 1 && strcmp(c->log, "FB") == 0);
  /* only row 2 moved (the hook's gradient went through the lazy update) */
  for (int64_t r = 0; r < V; r++) {
    int same = memcmp((float *)w0->data + r * D, (float *)n.w->data + r * D, (size_t)D * 4) == 0;
    CHECK(r == 2 ? !same : same);
  }
  CHECK(kl_plan_step_count(n.p) == 1);
  /* a failing forward fails the step; nothing changes */
  kl_tensor_release(w0);
  CHECK_OK(kl_tensor_copy(n.w, &w0));
  c->fail_fwd = 1;
  kl_tensor *ids = rand_ids(3, L, V), *y = NULL;
  int64_t ys[2] = {3, 1};
  y = gt_rand(&rng, 2, ys, -1, 1, KL_FLOAT32);
  kl_tensor *f[2] = {ids, y};
  CHECK_ERR(kl_plan_train_step(n.p, f, NULL), KL_EINDEX, "compact: refused");
  CHECK(same_bits(w0, n.w) && kl_plan_step_count(n.p) == 1);
  c->fail_fwd = 0;
  CHECK_OK(kl_plan_train_step(n.p, f, NULL));
  CHECK(kl_plan_step_count(n.p) == 2);
  /* bad arguments */
  CHECK_ERR(kl_plan_set_node_ext(n.p, n.ids, &ext, NULL), KL_EINVAL, "is not an op");
  CHECK_ERR(kl_plan_set_node_ext(n.p, 999, &ext, NULL), KL_EINDEX, "out of range");
  kl_node_ext none = {NULL, NULL, NULL};
  CHECK_ERR(kl_plan_set_node_ext(n.p, n.e, &none, NULL), KL_EINVAL, "forward is NULL");
  CHECK(kl_plan_node_ext_ud(n.p, n.e) == c); /* a refused call left the hook as it was */
  /* replacing frees the old state; the plan's end frees the new one */
  compact *c2 = calloc(1, sizeof *c2);
  c2->freed = &freed;
  CHECK_OK(kl_plan_set_node_ext(n.p, n.e, &ext, c2));
  CHECK(freed == 1);
  kl_tensor_release(ids);
  kl_tensor_release(y);
  kl_tensor_release(w0);
  drop(&n);
  CHECK(freed == 2);
}

int main(void) {
  (void)gt_gradcheck;
  kl_rng_seed(&rng, 16);
  test_same_bits(1);
  test_same_bits(0);
  test_empty_and_errors();
  KLTEST_DONE();
}
