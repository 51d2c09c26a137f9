/* test_pool.c: buffer pools (kl/pool.h): reuse, ownership across close and threads, the failure
 * hook, and zero system allocations per training step in steady state, bit-identical to no pool. */
#include <threads.h>

#include "kl/graph.h"
#include "kltest.h"
#include "kl/layers.h"
#include "kl/pool.h"
#include "kl/registry.h"
#include "plan_internal.h"
#include "tensor_internal.h"

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

/* ------------------------------------------------------------ the pool itself */

static void test_pool_reuse(void) {
  kl_pool *p = NULL;
  CHECK_OK(kl_pool_new(&p));
  CHECK(p != NULL);
  if (!p) return;
  kl_pool *prev = kl_pool_enter(p);
  long c0 = kl_alloc_count();
  char *a = kl_malloc(1000); /* a miss: one system allocation (class 1024) */
  CHECK(a != NULL && kl_alloc_count() == c0 + 1);
  memset(a, 7, 1000);
  kl_free(a); /* back into the free list, not to the system */
  char *b = kl_malloc(900); /* a hit: the same block */
  CHECK(b == a && kl_alloc_count() == c0 + 1);
  kl_free(b);
  double *z = kl_calloc(100, sizeof(double)); /* a hit, zeroed although the block was not */
  CHECK((void *)z == (void *)a && kl_alloc_count() == c0 + 1);
  int zeros = 1;
  for (int i = 0; i < 100; i++) zeros &= z[i] == 0.0;
  CHECK(zeros);
  for (int i = 0; i < 100; i++) z[i] = i;
  CHECK(kl_realloc(z, 1024) == (void *)z); /* fits its class: stays */
  double *z2 = kl_realloc(z, 5000);         /* moves to a new block, contents kept */
  CHECK(z2 != NULL && (void *)z2 != (void *)a && kl_alloc_count() == c0 + 2);
  int kept = 1;
  for (int i = 0; i < 100; i++) kept &= z2[i] == i;
  CHECK(kept);
  kl_pool_stats st;
  kl_pool_get_stats(p, &st);
  CHECK(st.hits == 2 && st.misses == 2 && st.free_blocks == 1 && st.out_blocks == 1);
  kl_free(z2);
  /* best fit: 100 bytes take the 1024 block, not the 5120 one */
  char *s = kl_malloc(100);
  CHECK(s == a);
  /* a request larger than every free block gives the largest of them back to the system */
  char *big = kl_malloc(10000);
  kl_pool_get_stats(p, &st);
  CHECK(big != NULL && st.free_blocks == 0 && st.out_blocks == 2 && st.misses == 3);
  kl_free(s);
  kl_pool_leave(prev);
  /* outside the step, on the owner thread, a pooled block still goes back to its pool */
  kl_free(big);
  kl_pool_get_stats(p, &st);
  CHECK(st.free_blocks == 2 && st.out_blocks == 0);
  /* without a current pool, allocations come from the system */
  c0 = kl_alloc_count();
  void *sys = kl_malloc(100);
  CHECK(kl_alloc_count() == c0 + 1);
  kl_free(sys);
  kl_pool_get_stats(p, &st);
  CHECK(st.free_blocks == 2);
  /* a block outstanding at close stays valid and is freed later (ASan checks both) */
  prev = kl_pool_enter(p);
  char *keep = kl_malloc(64);
  kl_tensor *t = NULL;
  int64_t shape[2] = {3, 4};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, shape, &t));
  kl_pool_leave(prev);
  kl_pool_close(p);
  kl_pool_enter(p); /* a closed pool installs nothing: the system allocator serves */
  c0 = kl_alloc_count();
  void *after = kl_malloc(64);
  CHECK(kl_alloc_count() == c0 + 1);
  kl_pool_leave(NULL);
  kl_free(after);
  memset(keep, 1, 64);
  kl_free(keep);
  kl_tensor_data_set(t, 11, 2.5);
  CHECK(kl_tensor_data_at(t, 11) == 2.5);
  kl_tensor_release(t); /* the last block: frees the pool struct too */
  kl_pool_close(NULL);
  /* disabled: no pool, and plans run on the system allocator */
  int was = kl_pool_set_enabled(0);
  kl_pool *none = p;
  CHECK_OK(kl_pool_new(&none));
  CHECK(none == NULL);
  kl_pool_set_enabled(was);
}

/* A pool used from another thread: that thread gets the system allocator, and blocks it frees
 * go to the system (the pool's count of outstanding blocks drops, its free list is untouched). */
typedef struct thread_arg {
  kl_pool *pool;
  void *block;
  int installed, sys_alloc;
} thread_arg;

static int foreign_thread(void *ud) {
  thread_arg *a = ud;
  kl_pool *prev = kl_pool_enter(a->pool);
  long c0 = kl_alloc_count();
  void *m = kl_malloc(1000);
  a->sys_alloc = kl_alloc_count() == c0 + 1;
  kl_free(m);
  kl_free(a->block); /* allocated from the pool on the owner thread */
  a->installed = kl_pool_enter(prev) != NULL;
  kl_pool_leave(prev);
  return 0;
}

static void test_pool_threads(void) {
  kl_pool *p = NULL;
  CHECK_OK(kl_pool_new(&p));
  if (!p) return;
  kl_pool *prev = kl_pool_enter(p);
  thread_arg a = {p, kl_malloc(256), 1, 0};
  void *mine = kl_malloc(1000);
  kl_free(mine);
  kl_pool_leave(prev);
  kl_pool_stats st;
  kl_pool_get_stats(p, &st);
  CHECK(st.out_blocks == 1 && st.free_blocks == 1);
  thrd_t th;
  CHECK(thrd_create(&th, foreign_thread, &a) == thrd_success);
  thrd_join(th, NULL);
  CHECK(!a.installed && a.sys_alloc);
  kl_pool_get_stats(p, &st);
  CHECK(st.out_blocks == 0 && st.free_blocks == 1);
  /* and the other way round: the pool closed while another thread still holds a block */
  prev = kl_pool_enter(p);
  a.block = kl_malloc(300);
  kl_pool_leave(prev);
  kl_pool_close(p);
  CHECK(thrd_create(&th, foreign_thread, &a) == thrd_success);
  thrd_join(th, NULL);
}

/* The failure hook counts pool misses only: a hit cannot fail, a miss can. */
static void test_pool_fail_hook(void) {
  kl_pool *p = NULL;
  CHECK_OK(kl_pool_new(&p));
  if (!p) return;
  kl_pool *prev = kl_pool_enter(p);
  kl_free(kl_malloc(500));
  kl_alloc_fail_at(1);
  void *hit = kl_malloc(500);
  CHECK(hit != NULL);
  void *miss = kl_malloc(600); /* the free list is empty: the first system allocation */
  CHECK(miss == NULL && strstr(kl_errmsg(), "out of memory") != NULL);
  CHECK(kl_alloc_fail_at(0) == 1);
  miss = kl_malloc(600);
  CHECK(miss != NULL);
  kl_free(hit);
  kl_free(miss);
  kl_pool_leave(prev);
  kl_pool_close(p);
}

/* ---------------------------------------------------------------- the models */

#define NB 24    /* distinct batches cycled through by the step loops */
#define NWARM 50 /* warm-up steps */
#define NMEAS 200

typedef struct model {
  kl_graph *g;
  int feeds[2], weights[2], pred, loss;
  kl_stype gst[2];
  kl_optimizer opt;
  kl_tensor *wt[2]; /* the weights (the graph holds a reference too) */
  kl_tensor *x, *y; /* the data set for fit */
  kl_tensor *bx[NB], *by[NB];
} model;

static void model_free(model *m) {
  for (int k = 0; k < 2; k++) kl_tensor_release(m->wt[k]);
  for (int i = 0; i < NB; i++) {
    kl_tensor_release(m->bx[i]);
    kl_tensor_release(m->by[i]);
  }
  kl_tensor_release(m->x);
  kl_tensor_release(m->y);
  kl_graph_free(m->g);
}

/* Batches of sizes 5..60 rows from varying offsets: their nnz and unique columns vary. */
static void model_batches(model *m, int64_t n) {
  static const int64_t sizes[6] = {16, 24, 40, 5, 60, 32};
  for (int i = 0; i < NB; i++) {
    int64_t bs = sizes[i % 6], b = (i * 97) % (n - bs);
    CHECK_OK(kl_tensor_slice_rows(m->x, b, b + bs, &m->bx[i]));
    CHECK_OK(kl_tensor_slice_rows(m->y, b, b + bs, &m->by[i]));
  }
}

static kl_tensor *rand_f32(kl_rng *r, int ndim, const int64_t *shape, double lo, double hi) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, ndim, shape, &t));
  CHECK_OK(kl_tensor_fill_uniform(t, lo, hi, r));
  return t;
}

/* csr x (n x 1000, density 0.01) . W (1000 x 4, row_sparse, row_sparse gradient) + b -> mse
 * against y (n x 4); SGD with momentum. */
static void build_sparse_linear(model *m) {
  kl_rng r;
  kl_rng_seed(&r, 42);
  memset(m, 0, sizeof *m);
  CHECK_OK(kl_graph_new(&m->g));
  int64_t V = 1000, U = 4, N = 700;
  kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, V}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2,
                                                               {-1, U}};
  int64_t ws[2] = {V, U}, bs[1] = {U}, xs[2] = {N, V}, ys[2] = {N, U};
  kl_tensor *wd = rand_f32(&r, 2, ws, -0.1, 0.1);
  CHECK_OK(kl_tensor_tostype(wd, KL_STYPE_ROW_SPARSE, &m->wt[0]));
  kl_tensor_release(wd);
  CHECK(m->wt[0] && m->wt[0]->nnz == V);
  m->wt[1] = rand_f32(&r, 1, bs, -0.1, 0.1);
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, xs, 0.01, &r, &m->x));
  m->y = rand_f32(&r, 2, ys, -1, 1);
  int d, two[2];
  CHECK_OK(kl_graph_placeholder(m->g, &mx, "x", &m->feeds[0]));
  CHECK_OK(kl_graph_placeholder(m->g, &my, "y", &m->feeds[1]));
  CHECK_OK(kl_graph_variable(m->g, m->wt[0], 1, "W", &m->weights[0]));
  CHECK_OK(kl_graph_variable(m->g, m->wt[1], 1, "b", &m->weights[1]));
  two[0] = m->feeds[0], two[1] = m->weights[0];
  CHECK_OK(kl_graph_op(m->g, KL_OP_DOT, two, 2, NULL, &d));
  two[0] = d, two[1] = m->weights[1];
  CHECK_OK(kl_graph_op(m->g, KL_OP_BIAS_ADD, two, 2, NULL, &m->pred));
  two[0] = m->feeds[1], two[1] = m->pred;
  CHECK_OK(kl_graph_op(m->g, KL_OP_LOSS_MSE, two, 2, NULL, &m->loss));
  m->gst[0] = KL_STYPE_ROW_SPARSE, m->gst[1] = KL_STYPE_DEFAULT;
  CHECK_OK(kl_optimizer_init(&m->opt, KL_OPT_SGD));
  m->opt.learning_rate = 0.05;
  m->opt.momentum = 0.9;
  model_batches(m, N);
}

/* ids (n x 6, 0 = padding) -> Embedding(500, 8, sparse gradient) -> mean over the 6 ->
 * Dense(1) (dense W, then bias) -> mse; Adam. */
static void build_embedding(model *m) {
  kl_rng r;
  kl_rng_seed(&r, 43);
  memset(m, 0, sizeof *m);
  CHECK_OK(kl_graph_new(&m->g));
  int64_t V = 500, D = 8, L = 6, N = 600;
  kl_meta mi = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, L}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2,
                                                                   {-1, 1}};
  int64_t es[2] = {V, D}, ws[2] = {D, 1}, is[2] = {N, L}, ys[2] = {N, 1};
  m->wt[0] = rand_f32(&r, 2, es, -0.05, 0.05);
  m->wt[1] = rand_f32(&r, 2, ws, -0.5, 0.5);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, is, &m->x));
  for (int64_t i = 0; i < N * L; i++) /* ids 0..V; small ids more often (Zipf-like) */
    kl_tensor_data_set(m->x, i, (double)kl_rng_below(&r, 1 + kl_rng_below(&r, (uint64_t)V + 1)));
  m->y = rand_f32(&r, 2, ys, -1, 1);
  int e, mean, d, two[2], b;
  int64_t bsh[1] = {1};
  kl_tensor *bias = rand_f32(&r, 1, bsh, 0, 0.1);
  kl_attrs ea = {0}, ma = {0};
  ea.ival = V;
  ma.has_axis = 1, ma.axis = 1;
  CHECK_OK(kl_graph_placeholder(m->g, &mi, "ids", &m->feeds[0]));
  CHECK_OK(kl_graph_placeholder(m->g, &my, "y", &m->feeds[1]));
  CHECK_OK(kl_graph_variable(m->g, m->wt[0], 1, "E", &m->weights[0]));
  CHECK_OK(kl_graph_variable(m->g, m->wt[1], 1, "W", &m->weights[1]));
  CHECK_OK(kl_graph_constant(m->g, bias, &b)); /* a constant bias: two trained weights */
  kl_tensor_release(bias);
  two[0] = m->feeds[0], two[1] = m->weights[0];
  CHECK_OK(kl_graph_op(m->g, KL_OP_EMBEDDING, two, 2, &ea, &e));
  CHECK_OK(kl_graph_op(m->g, KL_OP_MEAN, &e, 1, &ma, &mean));
  two[0] = mean, two[1] = m->weights[1];
  CHECK_OK(kl_graph_op(m->g, KL_OP_DOT, two, 2, NULL, &d));
  two[0] = d, two[1] = b;
  CHECK_OK(kl_graph_op(m->g, KL_OP_BIAS_ADD, two, 2, NULL, &m->pred));
  two[0] = m->feeds[1], two[1] = m->pred;
  CHECK_OK(kl_graph_op(m->g, KL_OP_LOSS_MSE, two, 2, NULL, &m->loss));
  m->gst[0] = KL_STYPE_ROW_SPARSE, m->gst[1] = KL_STYPE_DEFAULT;
  CHECK_OK(kl_optimizer_init(&m->opt, KL_OPT_ADAM));
  m->opt.learning_rate = 0.01;
  model_batches(m, N);
}

#define NEPOCH 6 /* 5 warm-up epochs (new largest shuffled batches grow the pool), then the measured one */

typedef struct run_result {
  double loss[NWARM + NMEAS + NEPOCH], metric[NEPOCH];
  long step_allocs, epoch_allocs;
  long misses_warm; /* pool misses in the warm-up (0 without a pool) */
  kl_tensor *w[2], *state[2][2];
} run_result;

static void run_result_free(run_result *r) {
  for (int k = 0; k < 2; k++) {
    kl_tensor_release(r->w[k]);
    kl_tensor_release(r->state[k][0]);
    kl_tensor_release(r->state[k][1]);
  }
}

/* Trains model m: NWARM steps, NMEAS measured steps, NEPOCH - 1 shuffled epochs and a
 * measured one; counts the system allocations of the measured parts. */
static void run_model(model *m, int pooled, run_result *r) {
  memset(r, 0, sizeof *r);
  int was = kl_pool_set_enabled(pooled);
  kl_plan *p = NULL;
  kl_plan_spec s = {m->feeds, 2, &m->pred, 1, m->loss, m->weights, 2, m->gst, &m->opt};
  CHECK_OK(kl_plan_new(m->g, &s, &p));
  kl_pool_set_enabled(was);
  if (!p) return;
  CHECK((p->pool != NULL) == (pooled != 0));
  int li = 0;
  for (int i = 0; i < NWARM; i++) {
    kl_tensor *fd[2] = {m->bx[i % NB], m->by[i % NB]};
    CHECK_OK(kl_plan_train_step(p, fd, &r->loss[li++]));
  }
  kl_pool_stats st;
  kl_pool_get_stats(p->pool, &st);
  r->misses_warm = st.misses;
  long a0 = kl_alloc_count();
  for (int i = 0; i < NMEAS; i++) {
    int k = (7 * i + 3) % NB;
    kl_tensor *fd[2] = {m->bx[k], m->by[k]};
    CHECK_OK(kl_plan_train_step(p, fd, &r->loss[li++]));
  }
  r->step_allocs = kl_alloc_count() - a0;
  kl_rng rr;
  kl_rng_seed(&rr, 11);
  int metric = KL_METRIC_MSE;
  kl_epoch_opts eo = {.batch_size = 32, .shuffle = 1, .rng = &rr, .nmetrics = 1,
                      .metrics = &metric};
  for (int e = 0; e < NEPOCH; e++) {
    a0 = kl_alloc_count();
    CHECK_OK(kl_plan_fit_epoch(p, &m->x, 1, m->y, &eo, &r->loss[li++], &r->metric[e]));
    r->epoch_allocs = kl_alloc_count() - a0;
  }
  for (int k = 0; k < 2; k++) {
    CHECK_OK(kl_tensor_copy(m->wt[k], &r->w[k]));
    for (int s2 = 0; s2 < kl_plan_num_states(p, k); s2++)
      CHECK_OK(kl_tensor_copy(kl_plan_state(p, k, s2), &r->state[k][s2]));
  }
  kl_plan_free(p);
}

/* Exactly the same bits (stype, nnz, indices and values). */
static int same_bits(const kl_tensor *a, const kl_tensor *b) {
  if (!a || !b) return a == b;
  if (a->stype != b->stype || a->dtype != b->dtype || a->nnz != b->nnz || !kl_same_shape(a, b))
    return 0;
  int64_t nv = a->stype == KL_STYPE_ROW_SPARSE ? a->nnz * kl_row_width(a) : a->nnz;
  if (memcmp(a->data, b->data, (size_t)nv * kl_dtype_size(a->dtype))) return 0;
  if (a->stype == KL_STYPE_ROW_SPARSE &&
      memcmp(a->indices, b->indices, (size_t)a->nnz * sizeof(int64_t)))
    return 0;
  return 1;
}

static void test_steady_state(void (*build)(model *), const char *what) {
  model m;
  run_result pooled, plain;
  build(&m);
  run_model(&m, 1, &pooled);
  model_free(&m);
  build(&m);
  run_model(&m, 0, &plain);
  model_free(&m);
  if (pooled.step_allocs || pooled.epoch_allocs)
    fprintf(stderr, "%s: %ld allocations in %d steps, %ld in an epoch\n", what,
            pooled.step_allocs, NMEAS, pooled.epoch_allocs);
  CHECK(pooled.misses_warm > 0);  /* the warm-up filled the pool... */
  CHECK(pooled.step_allocs == 0); /* ...after which steps allocate nothing */
  CHECK(pooled.epoch_allocs == 0);
  CHECK(plain.step_allocs > NMEAS && plain.epoch_allocs > 0); /* without it, every step does */
  /* the pool changes nothing in the numbers */
  int same = 1;
  for (int i = 0; i < NWARM + NMEAS + NEPOCH; i++)
    same &= memcmp(&pooled.loss[i], &plain.loss[i], sizeof(double)) == 0;
  for (int e = 0; e < NEPOCH; e++)
    same &= memcmp(&pooled.metric[e], &plain.metric[e], sizeof(double)) == 0;
  CHECK(same);
  for (int k = 0; k < 2; k++) {
    CHECK(same_bits(pooled.w[k], plain.w[k]));
    CHECK(same_bits(pooled.state[k][0], plain.state[k][0]));
    CHECK(same_bits(pooled.state[k][1], plain.state[k][1]));
  }
  /* and it trained: the last epoch's loss is below the first epoch's */
  CHECK(pooled.loss[NWARM + NMEAS + NEPOCH - 1] < pooled.loss[NWARM + NMEAS]);
  run_result_free(&pooled);
  run_result_free(&plain);
}

/* Outputs and gradients escape the plan: kept past later steps and past kl_plan_free, they
 * stay valid (ASan checks), and a callback's allocations do not come from the pool. */
typedef struct cb_state {
  int calls, all_system;
} cb_state;

static int alloc_cb(void *ud, int64_t batch, int64_t seen, int64_t total, double loss,
                    const double *m) {
  cb_state *c = ud;
  long c0 = kl_alloc_count();
  void *blk = kl_malloc(4096); /* in the pool, every call after the first would be a hit */
  c->all_system &= blk != NULL && kl_alloc_count() == c0 + 1;
  kl_free(blk);
  c->calls++;
  return 0;
}

static void test_escape(void) {
  model m;
  build_sparse_linear(&m);
  kl_plan *p = NULL;
  kl_plan_spec s = {m.feeds, 2, &m.pred, 1, m.loss, m.weights, 2, m.gst, &m.opt};
  CHECK_OK(kl_plan_new(m.g, &s, &p));
  if (!p) {
    model_free(&m);
    return;
  }
  kl_tensor *fd[2] = {m.bx[0], m.by[0]};
  double l;
  CHECK_OK(kl_plan_train_step(p, fd, &l));
  kl_tensor *out = kl_tensor_retain(kl_plan_output(p, 0));
  kl_tensor *grad = kl_tensor_retain(kl_plan_grad(p, 0));
  kl_tensor *ref = NULL;
  CHECK_OK(kl_tensor_copy(out, &ref));
  for (int i = 1; i < 5; i++) {
    kl_tensor *f2[2] = {m.bx[i], m.by[i]};
    CHECK_OK(kl_plan_train_step(p, f2, &l));
  }
  CHECK(same_bits(out, ref)); /* not recycled while held */
  cb_state c = {0, 1};
  kl_epoch_opts eo = {.batch_size = 64, .on_batch = alloc_cb, .ud = &c};
  CHECK_OK(kl_plan_fit_epoch(p, &m.x, 1, m.y, &eo, &l, NULL));
  CHECK(c.calls == 11 && c.all_system);
  kl_plan_free(p);
  CHECK(same_bits(out, ref));
  CHECK(grad && grad->stype == KL_STYPE_ROW_SPARSE && grad->nnz > 0);
  if (grad) grad->indices[0] = grad->indices[0]; /* still addressable */
  kl_tensor_release(out);
  kl_tensor_release(grad);
  kl_tensor_release(ref);
  model_free(&m);
}

/* Every system allocation of plan creation and of steps with batches larger than any seen
 * may fail: KL_ENOMEM, nothing leaked, and the step then works. */
static void test_step_failures(void) {
  model m;
  build_sparse_linear(&m);
  kl_tensor *big = NULL, *bigy = NULL; /* more rows than any warm-up batch */
  CHECK_OK(kl_tensor_slice_rows(m.x, 0, 300, &big));
  CHECK_OK(kl_tensor_slice_rows(m.y, 0, 300, &bigy));
  int ok_runs = 0, bad = 0, failed = 0;
  for (long k = 1; k < 300 && ok_runs < 3; k++) {
    kl_plan *p = NULL;
    kl_plan_spec s = {m.feeds, 2, &m.pred, 1, m.loss, m.weights, 2, m.gst, &m.opt};
    kl_status st = kl_plan_new(m.g, &s, &p);
    double l;
    for (int i = 0; i < 3 && st == KL_OK; i++) {
      kl_tensor *fd[2] = {m.bx[i], m.by[i]};
      st = kl_plan_train_step(p, fd, &l);
    }
    if (st == KL_OK) {
      kl_tensor *fd[2] = {big, bigy};
      kl_alloc_fail_at(k);
      st = kl_plan_train_step(p, fd, &l);
      kl_alloc_fail_at(0);
      if (st == KL_ENOMEM) {
        failed++;
        if (kl_plan_train_step(p, fd, &l) != KL_OK) bad++; /* the retry works */
      } else if (st != KL_OK) {
        bad++;
      } else {
        ok_runs++;
      }
    } else {
      bad++;
    }
    kl_plan_free(p);
  }
  CHECK(bad == 0);
  CHECK(failed > 0 && ok_runs > 0);
  kl_tensor_release(big);
  kl_tensor_release(bigy);
  model_free(&m);
}

int main(void) {
  kl_set_warn_handler(quiet, NULL);
  test_pool_reuse();
  test_pool_threads();
  test_pool_fail_hook();
  test_steady_state(build_sparse_linear, "csr . row_sparse W + b, SGD momentum");
  test_steady_state(build_embedding, "Embedding + mean + Dense, Adam");
  test_escape();
  test_step_failures();
  KLTEST_DONE();
}
