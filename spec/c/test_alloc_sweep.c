/* test_alloc_sweep.c: Tcov-style allocation-failure sweep: the k-th allocation fails, for every
 * k, along construction, every op, plan training steps (SGD momentum, Adam) and model files. */
#include <stdlib.h>
#include <unistd.h>
#include "graph_testutil.h"
#include "kl/model_file.h"
#include "kl/registry.h"

static kl_rng rng;
static long sweeps_total = 0; /* failure points exercised, reported at the end */

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

typedef kl_status (*scenario_fn)(void *ud);

/* Runs fn with allocation k failing, k = 1, 2, ... until a run makes fewer than k
 * allocations (nothing left to fail). Every failing run must return KL_ENOMEM with its
 * message; every run must free what it made (LSan checks under the ASan build). */
static void sweep(const char *name, scenario_fn fn, void *ud) {
  kl_alloc_fail_at(0);
  kl_status s0 = fn(ud);
  long total = kl_alloc_fail_at(0);
  if (s0 != KL_OK) {
    fprintf(stderr, "%s: scenario fails without injection: %s\n", name, kl_errmsg());
    CHECK(s0 == KL_OK);
    return;
  }
  int bad = 0;
  long k;
  for (k = 1; k <= total + 1; k++) {
    kl_clearerr();
    kl_alloc_fail_at(k);
    kl_status s = fn(ud);
    long made = kl_alloc_fail_at(0);
    if (made < k) { /* no allocation failed: the run must have succeeded */
      if (s != KL_OK) {
        fprintf(stderr, "%s: k=%ld: no injected failure but %s: %s\n", name, k,
                kl_status_name(s), kl_errmsg());
        bad++;
      }
      break;
    }
    if (s != KL_ENOMEM && s != KL_OK) {
      fprintf(stderr, "%s: k=%ld of %ld: %s \"%s\" instead of KL_ENOMEM\n", name, k, total,
              kl_status_name(s), kl_errmsg());
      bad++;
    } else if (s == KL_ENOMEM && !strstr(kl_errmsg(), "out of memory")) {
      fprintf(stderr, "%s: k=%ld: KL_ENOMEM with message \"%s\"\n", name, k, kl_errmsg());
      bad++;
    }
  }
  sweeps_total += k;
  printf("%s: %ld allocations, %ld failure points\n", name, total, k - 1);
  CHECK(bad == 0);
}

/* ------------------------------------------------------------ inputs */

static kl_tensor *X;  /* csr 6 x 8 */
static kl_tensor *Xb; /* csr 6 x 8, another pattern */
static kl_tensor *D;  /* dense 8 x 3 */
static kl_tensor *D6; /* dense 6 x 3 */
static kl_tensor *M;  /* dense 6 x 8 */
static kl_tensor *Rs; /* row_sparse 8 x 3 */

static kl_tensor *rand_csr(int64_t rows, int64_t cols, double density) {
  int64_t shape[2] = {rows, cols};
  kl_tensor *t = NULL;
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, shape, density, &rng, &t));
  return t;
}

/* ------------------------------------------------------------ scenarios */

/* Construction, validation, conversions, copies, row slicing. */
static kl_status sc_construct(void *ud) {
  (void)ud;
  int64_t row[5] = {0, 2, 2, 1, 0}, col[5] = {1, 3, 0, 3, 1}, shape[2] = {4, 3};
  double val[5] = {1, 2, 3, 4, 5};
  kl_tensor *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *f = NULL, *g = NULL;
  kl_tensor *h = NULL, *r = NULL;
  int64_t take[4] = {2, 0, 2, 1};
  kl_status s = kl_csr_from_coo(KL_FLOAT32, 3, 4, 5, row, col, val, &a);
  if (s == KL_OK) s = kl_tensor_check_format(a, "sweep", 0);
  if (s == KL_OK) s = kl_tensor_tostype(a, KL_STYPE_DEFAULT, &b);
  if (s == KL_OK) s = kl_tensor_tostype(b, KL_STYPE_ROW_SPARSE, &c);
  if (s == KL_OK) s = kl_tensor_tostype(c, KL_STYPE_CSR, &d);
  if (s == KL_OK) s = kl_tensor_tostype(a, KL_STYPE_ROW_SPARSE, &e);
  if (s == KL_OK) s = kl_tensor_astype(d, KL_FLOAT64, &f);
  if (s == KL_OK) s = kl_tensor_copy(e, &g);
  if (s == KL_OK) s = kl_tensor_slice_rows(f, 1, 3, &h);
  if (s == KL_OK) kl_tensor_release(h), h = NULL, s = kl_tensor_take_rows(a, take, 4, &h);
  if (s == KL_OK) kl_tensor_release(h), h = NULL, s = kl_tensor_take_rows(e, take, 4, &h);
  if (s == KL_OK) s = kl_tensor_new_rsp(KL_FLOAT64, 2, shape, 2, &r);
  if (s == KL_OK) {
    r->indices[0] = 1, r->indices[1] = 3;
    kl_tensor_fill(r, 1.5);
    s = kl_tensor_check_format(r, "sweep", 0);
  }
  if (s == KL_OK) s = kl_tensor_copyto(a, d);
  if (s == KL_OK) s = kl_tensor_copyto(b, d);
  if (s == KL_OK) s = kl_tensor_reserve(d, 12);
  kl_tensor *all[] = {a, b, c, d, e, f, g, h, r};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) kl_tensor_release(all[i]);
  return s;
}

/* Every op family on csr, row_sparse and dense inputs. */
static kl_status sc_ops(void *ud) {
  (void)ud;
  kl_status s = KL_OK;
  kl_tensor *o = NULL;
  kl_attrs z = {0}, ax0 = {0}, ax1 = {0}, ta = {0}, tb = {0}, sc = {0};
  ax0.has_axis = 1, ax0.axis = 0;
  ax1.has_axis = 1, ax1.axis = 1;
  ta.transpose_a = 1;
  tb.transpose_b = 1;
  sc.scalar = 2.5;
  struct {
    kl_op op;
    kl_tensor *in[3];
    int nin;
    const kl_attrs *a;
  } runs[] = {
      {KL_OP_DOT, {X, D}, 2, &z},        {KL_OP_DOT, {X, D6}, 2, &ta},
      {KL_OP_DOT, {M, X}, 2, &tb},       {KL_OP_DOT, {X, Rs}, 2, &z},
      {KL_OP_DOT, {M, D}, 2, &z},        {KL_OP_DOT, {D6, X}, 2, &ta},
      {KL_OP_SUM, {X}, 1, &z},           {KL_OP_SUM, {X}, 1, &ax0},
      {KL_OP_SUM, {X}, 1, &ax1},         {KL_OP_SUM, {Rs}, 1, &ax0},
      {KL_OP_MEAN, {Rs}, 1, &ax1},       {KL_OP_MEAN, {M}, 1, &ax1},
      {KL_OP_CONCAT, {X, Xb}, 2, &ax0},  {KL_OP_CONCAT, {X, Xb}, 2, &ax1},
      {KL_OP_CONCAT, {Rs, Rs}, 2, &ax0}, {KL_OP_CONCAT, {M, X, Xb}, 3, &ax1},
      {KL_OP_ADD, {X, Xb}, 2, &z},       {KL_OP_MUL, {X, Xb}, 2, &z},
      {KL_OP_SUB, {Rs, Rs}, 2, &z},      {KL_OP_ADD, {M, X}, 2, &z},
      {KL_OP_DIV, {M, M}, 2, &z},        {KL_OP_MUL_SCALAR, {X}, 1, &sc},
      {KL_OP_ADD_SCALAR, {Rs}, 1, &sc},  {KL_OP_RDIV_SCALAR, {M}, 1, &sc},
      {KL_OP_RELU, {X}, 1, &z},          {KL_OP_SQRT, {Rs}, 1, &z},
      {KL_OP_EXP, {X}, 1, &z},           {KL_OP_SOFTMAX, {X}, 1, &z},
      {KL_OP_SOFTMAX, {Rs}, 1, &z},      {KL_OP_TANH, {M}, 1, &z},
      {KL_OP_TRANSPOSE, {X}, 1, &z},     {KL_OP_TRANSPOSE, {Rs}, 1, &z},
  };
  for (size_t i = 0; i < sizeof runs / sizeof *runs && s == KL_OK; i++) {
    s = kl_op_run(runs[i].op, runs[i].in, runs[i].nin, runs[i].a, &o);
    kl_tensor_release(o), o = NULL;
  }
  int64_t keep[2] = {1, 5};
  if (s == KL_OK) s = kl_retain(Rs, keep, 2, &o);
  kl_tensor_release(o), o = NULL;
  if (s == KL_OK) s = kl_dot(X, D, 0, 0, &o);
  kl_tensor_release(o);
  return s;
}

/* A Dense-like model: pred = dot(x_csr, W_rsp) + b; mse loss; trained through a plan. */
typedef struct train_ud {
  kl_opt_kind kind;
} train_ud;

static kl_status sc_train(void *ud) {
  train_ud *tu = ud;
  kl_graph *g = NULL;
  kl_plan *p = NULL;
  kl_tensor *w = NULL, *b = NULL, *wd = NULL, *y = NULL, *x2 = NULL;
  int64_t ws[2] = {8, 3}, bs[1] = {3}, ys[2] = {6, 3};
  int x, yy, wi, bi, d, pred, loss, two[2];
  kl_optimizer o;
  double l;
  kl_status s = kl_optimizer_init(&o, tu->kind);
  if (tu->kind == KL_OPT_SGD) o.momentum = 0.9;
  if (s == KL_OK) s = kl_tensor_new_dense(KL_FLOAT64, 2, ws, &wd);
  if (s == KL_OK) s = kl_tensor_fill_uniform(wd, -1, 1, &rng);
  if (s == KL_OK) s = kl_tensor_tostype(wd, KL_STYPE_ROW_SPARSE, &w);
  if (s == KL_OK) s = kl_tensor_new_dense(KL_FLOAT64, 1, bs, &b);
  if (s == KL_OK) s = kl_tensor_new_dense(KL_FLOAT64, 2, ys, &y);
  if (s == KL_OK) s = kl_tensor_fill_uniform(y, -1, 1, &rng);
  if (s == KL_OK) s = kl_tensor_slice_rows(X, 0, 4, &x2);
  if (s == KL_OK) s = kl_graph_new(&g);
  kl_meta mx = {KL_FLOAT64, KL_STYPE_CSR, 2, {-1, 8}}, my = {KL_FLOAT64, KL_STYPE_DEFAULT, 2, {-1, 3}};
  if (s == KL_OK) s = kl_graph_placeholder(g, &mx, "x", &x);
  if (s == KL_OK) s = kl_graph_placeholder(g, &my, "y", &yy);
  if (s == KL_OK) s = kl_graph_variable(g, w, 1, "W", &wi);
  if (s == KL_OK) s = kl_graph_variable(g, b, 1, "b", &bi);
  if (s == KL_OK) two[0] = x, two[1] = wi, s = kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &d);
  if (s == KL_OK) two[0] = d, two[1] = bi, s = kl_graph_op(g, KL_OP_BIAS_ADD, two, 2, NULL, &pred);
  if (s == KL_OK) two[0] = yy, two[1] = pred, s = kl_graph_op(g, KL_OP_LOSS_MSE, two, 2, NULL, &loss);
  if (s == KL_OK) {
    int feeds[2] = {x, yy}, weights[2] = {wi, bi};
    kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
    kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 2, gst, &o};
    s = kl_plan_new(g, &spec, &p);
  }
  kl_tensor *f1[2] = {X, y}, *f2[2] = {x2, NULL};
  kl_tensor *y2 = NULL;
  if (s == KL_OK) s = kl_plan_train_step(p, f1, &l);
  if (s == KL_OK) s = kl_tensor_slice_rows(y, 0, 4, &y2);
  f2[1] = y2;
  if (s == KL_OK) s = kl_plan_train_step(p, f2, &l); /* a smaller batch: buffers reused */
  if (s == KL_OK) s = kl_plan_train_step(p, f1, &l);
  if (s == KL_OK) s = kl_plan_forward(p, f1, 0);
  kl_plan_free(p);
  kl_graph_free(g);
  kl_tensor *all[] = {w, b, wd, y, x2, y2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) kl_tensor_release(all[i]);
  return s;
}

/* Save and load a model file holding dense, csr and row_sparse tensors. */
static kl_status sc_model_file(void *ud) {
  const char *path = ud;
  const char *names[3] = {"dense", "csr", "rsp"}, *keys[1] = {"model"}, *vals[1] = {"{\"a\":1}"};
  const kl_tensor *ts[3] = {D, X, Rs};
  kl_model_file *f = NULL;
  kl_status s = kl_model_file_save(path, 3, names, ts, 1, keys, vals);
  if (s == KL_OK) s = kl_model_file_load(path, &f);
  if (s == KL_OK && (f->n != 3 || f->nmeta != 1)) s = kl_seterr(KL_EFORMAT, "sweep: bad reload");
  kl_model_file_free(f);
  return s;
}

int main(void) {
  kl_rng_seed(&rng, 11);
  (void)gt_gradcheck;
  kl_set_warn_handler(quiet, NULL);
  int64_t s83[2] = {8, 3}, s63[2] = {6, 3}, s68[2] = {6, 8};
  X = rand_csr(6, 8, 0.4);
  Xb = rand_csr(6, 8, 0.3);
  D = gt_rand(&rng, 2, s83, -1, 1, 0);
  D6 = gt_rand(&rng, 2, s63, -1, 1, 0);
  M = gt_rand(&rng, 2, s68, 0.5, 1, 0);
  kl_tensor *rd = gt_rand(&rng, 2, s83, -1, 1, 0);
  for (int j = 0; j < 3; j++) kl_tensor_data_set(rd, 2 * 3 + j, 0), kl_tensor_data_set(rd, 6 * 3 + j, 0);
  CHECK_OK(kl_tensor_tostype(rd, KL_STYPE_ROW_SPARSE, &Rs));
  kl_tensor_release(rd);

  sweep("construct", sc_construct, NULL);
  sweep("ops", sc_ops, NULL);
  train_ud sgd = {KL_OPT_SGD}, adam = {KL_OPT_ADAM};
  sweep("train SGD momentum", sc_train, &sgd);
  sweep("train Adam", sc_train, &adam);
  char path[64];
  snprintf(path, sizeof path, "/tmp/kl_alloc_sweep_%d.safetensors", (int)getpid());
  sweep("model file save/load", sc_model_file, path);
  unlink(path);
  printf("%ld failure points in all\n", sweeps_total);

  kl_tensor *all[] = {X, Xb, D, D6, M, Rs};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) kl_tensor_release(all[i]);
  KLTEST_DONE();
}
