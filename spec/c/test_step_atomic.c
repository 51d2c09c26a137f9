/* test_step_atomic.c: a training step is all or nothing (plan_step.c kl_plan_update). A step that
 * fails (an allocation failure at any point of kl_plan_train_step or of a fit epoch, a bad
 * learning rate, a gradient row the weight does not store) leaves the weights, the optimizer
 * states and the step count bit for bit as they were before it, and the dropout generator
 * too: the next successful step gives the same bits as a run that never failed. The model
 * has two weights (W, fused in fit, and b), Adam or SGD with momentum (states), a dropout. */
#include <stdlib.h>
#include "kl/graph.h"
#include "kl/optim.h"
#include "kl/pool.h"
#include "kltest.h"

enum { V = 40, U = 2, NROWS = 24, BATCH = 8 };

typedef struct net {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w, *b;
} net;

static kl_optimizer make_opt(int adam) {
  kl_optimizer o;
  kl_optimizer_init(&o, adam ? KL_OPT_ADAM : KL_OPT_SGD);
  if (adam) {
    o.learning_rate = 0.05;
  } else {
    o.learning_rate = 0.1;
    o.momentum = 0.9;
  }
  return o;
}

/* pred = bias_add(dropout(x . W), b), mse vs y; weights {W (row_sparse gradient), b}. With
 * partial, W is row_sparse storing only its even rows and the weights are {b, W}: an update
 * of W from a batch that touches an odd row fails after b's check passed. */
static net make_net(const kl_optimizer *o, int partial) {
  net n = {0};
  CHECK_OK(kl_graph_new(&n.g));
  kl_rng wr;
  kl_rng_seed(&wr, 5);
  int64_t ws[2] = {V, U}, bs[1] = {U};
  kl_tensor *wd = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &wd));
  CHECK_OK(kl_tensor_fill_uniform(wd, -0.5, 0.5, &wr));
  if (partial) {
    int64_t rows[V / 2];
    for (int r = 0; r < V / 2; r++) rows[r] = 2 * r;
    CHECK_OK(kl_tensor_new_rsp(KL_FLOAT32, 2, ws, V / 2, &n.w));
    for (int r = 0; r < V / 2; r++) {
      n.w->indices[r] = rows[r];
      for (int u = 0; u < U; u++)
        kl_tensor_data_set(n.w, r * U + u, kl_tensor_data_at(wd, rows[r] * U + u));
    }
    n.w->nnz = V / 2;
  } else {
    n.w = wd;
    wd = NULL;
  }
  kl_tensor_release(wd);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, bs, &n.b));
  kl_tensor_fill(n.b, 0.25);
  kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, V}};
  kl_meta my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, U}};
  int x, y, wi, bi, d, dr, pred, loss, two[2];
  CHECK_OK(kl_graph_placeholder(n.g, &mx, "x", &x));
  CHECK_OK(kl_graph_placeholder(n.g, &my, "y", &y));
  CHECK_OK(kl_graph_variable(n.g, n.w, 1, "W", &wi));
  CHECK_OK(kl_graph_variable(n.g, n.b, 1, "b", &bi));
  two[0] = x, two[1] = wi;
  CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d));
  CHECK_OK(kl_graph_dropout(n.g, d, 0.25, 99, &dr));
  two[0] = dr, two[1] = bi;
  CHECK_OK(kl_graph_op(n.g, KL_OP_BIAS_ADD, two, 2, NULL, &pred));
  two[0] = y, two[1] = pred;
  CHECK_OK(kl_graph_op(n.g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  int feeds[2] = {x, y};
  int weights[2] = {wi, bi}, wpart[2] = {bi, wi};
  kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
  kl_stype gpart[2] = {KL_STYPE_DEFAULT, KL_STYPE_ROW_SPARSE};
  kl_plan_spec spec = {feeds, 2, &pred, 1, loss, partial ? wpart : weights, 2,
                       partial ? gpart : gst, o};
  CHECK_OK(kl_plan_new(n.g, &spec, &n.p));
  return n;
}

static void free_net(net *n) {
  kl_plan_free(n->p);
  kl_graph_free(n->g);
  kl_tensor_release(n->w);
  kl_tensor_release(n->b);
}

/* The bits of a training run: both weights' values, every state, the step count. */
typedef struct snap {
  unsigned char bytes[8 * V * U * 4];
  size_t len;
  int64_t step;
} snap;

static void put(snap *s, const kl_tensor *t) {
  size_t n = (size_t)(t->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(t) : t->nnz * U) *
             kl_dtype_size(t->dtype);
  if (s->len + n > sizeof s->bytes) exit(3);
  memcpy(s->bytes + s->len, t->data, n);
  s->len += n;
}

static snap take(const net *n) {
  snap s;
  memset(&s, 0, sizeof s);
  put(&s, n->w);
  put(&s, n->b);
  for (int k = 0; k < 2; k++)
    for (int j = 0; j < kl_plan_num_states(n->p, k); j++) put(&s, kl_plan_state(n->p, k, j));
  s.step = kl_plan_step_count(n->p);
  return s;
}

static int same(const snap *a, const snap *b) {
  return a->len == b->len && a->step == b->step && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static kl_tensor *X, *Y, *XB[NROWS / BATCH], *YB[NROWS / BATCH];

static void make_data(void) {
  kl_rng r;
  kl_rng_seed(&r, 11);
  int64_t xs[2] = {NROWS, V}, ys[2] = {NROWS, U};
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, xs, 0.2, &r, &X));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &Y));
  CHECK_OK(kl_tensor_fill_uniform(Y, -1, 1, &r));
  for (int b = 0; b < NROWS / BATCH; b++) {
    CHECK_OK(kl_tensor_slice_rows(X, b * BATCH, (b + 1) * BATCH, &XB[b]));
    CHECK_OK(kl_tensor_slice_rows(Y, b * BATCH, (b + 1) * BATCH, &YB[b]));
  }
}

static kl_status step(net *n, int b) {
  kl_tensor *f[2] = {XB[b % (NROWS / BATCH)], YB[b % (NROWS / BATCH)]};
  double l;
  return kl_plan_train_step(n->p, f, &l);
}

/* Steps 0..S-1; step i is tried with an allocation failure at the 1st, 2nd, ... system
 * allocation until it succeeds: every failed try leaves everything as it was, and each step
 * ends with the bits of the never-failed reference. */
static void sweep_train_step(const kl_optimizer *o, int pool) {
  int was = kl_pool_set_enabled(pool);
  net a = make_net(o, 0), ref = make_net(o, 0);
  long failed = 0;
  for (int i = 0; i < 5; i++) {
    for (long k = 1;; k++) {
      snap before = take(&a);
      kl_alloc_fail_at(k);
      kl_status st = step(&a, i);
      long made = kl_alloc_fail_at(0);
      if (st == KL_OK) break;
      failed++;
      CHECK(st == KL_ENOMEM);
      snap after = take(&a);
      CHECK(same(&before, &after));
      if (made < k || k > 10000) { /* a failure that no allocation caused */
        CHECK(0);
        break;
      }
    }
    CHECK_OK(step(&ref, i));
    snap sa = take(&a), sr = take(&ref);
    CHECK(same(&sa, &sr));
  }
  CHECK(failed > 0);
  if (pool) CHECK(failed < 1000); /* a pool serves later steps: only the first ones fail */
  free_net(&a);
  free_net(&ref);
  kl_pool_set_enabled(was);
}

/* The reference's state after each batch of a fit epoch (on_batch runs after the step). */
typedef struct rec {
  net *n;
  snap s[NROWS / BATCH + 1];
  int count;
} rec;

static int record(void *ud, int64_t batch, int64_t seen, int64_t total, double loss,
                  const double *m) {
  rec *r = ud;
  r->s[++r->count] = take(r->n);
  return 0;
}

static kl_status fit(net *n, int64_t bs, rec *r) {
  kl_rng perm;
  kl_rng_seed(&perm, 3); /* the same permutation on every try */
  kl_epoch_opts eo = {.batch_size = bs, .shuffle = 1, .rng = &perm,
                      .on_batch = r ? record : NULL, .ud = r};
  kl_tensor *x[1] = {X};
  double l;
  return kl_plan_fit_epoch(n->p, x, 1, Y, &eo, &l, NULL);
}

/* A fit epoch of one batch (the epoch is one step: a failed call changes nothing; tried
 * until it succeeds, it ends with the reference's bits) and of three batches (a failed call
 * leaves the bits of the reference after the steps it completed). */
static void sweep_fit(const kl_optimizer *o, int pool) {
  int was = kl_pool_set_enabled(pool);
  long failed = 0;
  {
    net a = make_net(o, 0), ref = make_net(o, 0);
    CHECK_OK(step(&a, 0)); /* states not all zero */
    CHECK_OK(step(&ref, 0));
    for (int e = 0; e < 2; e++) {
      for (long k = 1;; k++) {
        snap before = take(&a);
        kl_alloc_fail_at(k);
        kl_status st = fit(&a, NROWS, NULL);
        long made = kl_alloc_fail_at(0);
        if (st == KL_OK) break;
        failed++;
        CHECK(st == KL_ENOMEM);
        snap after = take(&a);
        CHECK(same(&before, &after));
        if (made < k || k > 10000) {
          CHECK(0);
          break;
        }
      }
      CHECK_OK(fit(&ref, NROWS, NULL));
      snap sa = take(&a), sr = take(&ref);
      CHECK(same(&sa, &sr));
    }
    free_net(&a);
    free_net(&ref);
  }
  {
    net ref = make_net(o, 0);
    rec r = {&ref, {{{0}, 0, 0}}, 0};
    r.s[0] = take(&ref);
    CHECK_OK(fit(&ref, BATCH, &r));
    CHECK(r.count == NROWS / BATCH);
    for (long k = 1;; k++) {
      net a = make_net(o, 0);
      kl_alloc_fail_at(k);
      kl_status st = fit(&a, BATCH, NULL);
      long made = kl_alloc_fail_at(0);
      snap sa = take(&a);
      free_net(&a);
      if (st == KL_OK) {
        CHECK(same(&sa, &r.s[NROWS / BATCH]));
        break;
      }
      failed++;
      CHECK(st == KL_ENOMEM);
      CHECK(sa.step >= 0 && sa.step < NROWS / BATCH);
      if (sa.step >= 0 && sa.step < NROWS / BATCH) CHECK(same(&sa, &r.s[sa.step]));
      if (made < k || k > 10000) {
        CHECK(0);
        break;
      }
    }
    free_net(&ref);
  }
  CHECK(failed > 0);
  kl_pool_set_enabled(was);
}

/* Failures that are not allocations: a learning rate that is not finite, and a gradient
 * row that a row_sparse weight does not store (the second weight's update fails after the
 * first one's check passed: before, the first was stepped and the count was not). */
static void bad_updates(const kl_optimizer *o) {
  net a = make_net(o, 0), ref = make_net(o, 0);
  CHECK_OK(step(&a, 0));
  CHECK_OK(step(&ref, 0));
  snap before = take(&a);
  kl_plan_set_learning_rate(a.p, NAN);
  CHECK_ERR(step(&a, 1), KL_EINVAL, "learning_rate must be");
  snap after = take(&a);
  CHECK(same(&before, &after));
  kl_plan_set_learning_rate(a.p, o->learning_rate);
  CHECK_OK(step(&a, 1));
  CHECK_OK(step(&ref, 1));
  snap sa = take(&a), sr = take(&ref);
  CHECK(same(&sa, &sr));
  free_net(&a);
  free_net(&ref);

  net p = make_net(o, 1);
  before = take(&p);
  CHECK_ERR(step(&p, 0), KL_EINDEX, "is not stored in the row_sparse weight");
  after = take(&p);
  CHECK(same(&before, &after));
  CHECK(kl_plan_step_count(p.p) == 0);
  /* the same through fit */
  CHECK_ERR(fit(&p, BATCH, NULL), KL_EINDEX, "is not stored in the row_sparse weight");
  after = take(&p);
  CHECK(same(&before, &after));
  free_net(&p);
}

int main(void) {
  make_data();
  for (int adam = 0; adam < 2; adam++) {
    kl_optimizer o = make_opt(adam);
    for (int pool = 0; pool < 2; pool++) {
      sweep_train_step(&o, pool);
      sweep_fit(&o, pool);
    }
    bad_updates(&o);
  }
  kl_tensor_release(X);
  kl_tensor_release(Y);
  for (int b = 0; b < NROWS / BATCH; b++) kl_tensor_release(XB[b]), kl_tensor_release(YB[b]);
  KLTEST_DONE();
}
