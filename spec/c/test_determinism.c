/* test_determinism.c: training in child processes: the same seed and thread count give
 * bit-identical weights over three runs (OMP_NUM_THREADS=1 and =2), for three models:
 * - "tt": 1,000 train_step steps of train_testutil.h's sparse Dense (f64, 16 units, lazy
 *   Adam); 1 vs 2 threads agree within 1e-6 relative;
 * - "linear": fit epochs of a wide Dense(1) on csr input (f32, W7's shape scaled down), by
 *   the plan's linear step (plan_linear.c: W's rows split over the threads from 16,384
 *   entries a batch; after its probe steps the count is chosen by timing, so at 2 threads
 *   only the probe steps are sure to split); "listed": the same with the op fusions off (the forward's rows split
 *   over the threads from 16,384 entries a batch; the listed fused step; lazy Adagrad's
 *   1-wide rows split from 4,096 rows);
 * - "bag": fit epochs of Embedding -> mean -> Dense(1) (W3's shape: the plan's fused bag,
 *   its forward and weight gradient split over the samples and rows, lazy Adam's 64-wide
 *   rows split over the threads).
 * Every kernel of "linear" and "bag" states the same bits at any thread count, so there 1
 * and 2 threads must agree bit for bit too. Run as `test_determinism --child MODEL` it trains
 * once and writes the weights' bytes to stdout. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kl/registry.h"
#include "plan_internal.h"
#include "train_testutil.h"

#define NSTEPS 1000
#define V 4000
#define U 16

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

/* Trains once (Adam, lazy; large enough batches for the OpenMP kernels to split) and writes
 * W (densified) then b as float64 bytes to stdout. */
static int child_tt(void) {
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.learning_rate = 0.01;
  tt_model m;
  if (tt_build(&m, V, U, 128, 48, 1234, &o) != 0) return 2;
  double loss;
  for (long step = 0; step < NSTEPS; step++)
    if (tt_step(&m, step, &loss) != KL_OK) {
      fprintf(stderr, "step %ld: %s\n", step, kl_errmsg());
      return 2;
    }
  kl_tensor *wd = NULL;
  if (kl_tensor_tostype(m.w, KL_STYPE_DEFAULT, &wd) != KL_OK) return 2;
  fwrite(wd->data, sizeof(double), (size_t)(V * U), stdout);
  fwrite(m.b->data, sizeof(double), U, stdout);
  fprintf(stderr, "child tt: %d threads, loss %.6g\n", kl_num_threads(), loss);
  kl_tensor_release(wd);
  tt_free(&m);
  return 0;
}

/* The "linear" and "bag" models: sizes, and the bytes of weights they write. */
enum { LIN_C = 200000, LIN_R = 4096, LIN_NZ = 60, LIN_BS = 512 };
enum { BAG_V = 3000, BAG_D = 64, BAG_L = 20, BAG_N = 2048, BAG_BS = 256 };
#define LIN_BYTES ((size_t)(LIN_C + 1) * sizeof(float))
#define BAG_BYTES ((size_t)(BAG_V * BAG_D + BAG_D + 1) * sizeof(float))

static int write_t(const kl_tensor *t) {
  kl_tensor *d = NULL;
  if (kl_tensor_tostype(t, KL_STYPE_DEFAULT, &d) != KL_OK) return 1;
  fwrite(d->data, sizeof(float), (size_t)kl_tensor_numel(d), stdout);
  kl_tensor_release(d);
  return 0;
}

/* x (R x C csr, 20..NZ distinct random columns a row, f32) . W (C x 1, row_sparse storing
 * every row) + b -> mse vs y; lazy Adagrad; 3 fit epochs of batches of 512 (~20,000
 * entries, ~19,000 touched rows a batch: the listed fused step). Writes W then b. */
static int child_linear(int listed) {
  kl_rng r;
  kl_rng_seed(&r, 77);
  int64_t *ip = malloc((LIN_R + 1) * sizeof *ip), *ix = malloc((size_t)LIN_R * LIN_NZ * sizeof *ix);
  kl_tensor *x = NULL, *y = NULL, *wd = NULL, *w = NULL, *b = NULL;
  if (!ip || !ix) return 2;
  ip[0] = 0;
  for (int64_t i = 0; i < LIN_R; i++) { /* rows of 20..NZ entries at increasing columns */
    const int64_t n = 20 + (i * 7) % (LIN_NZ - 19);
    int64_t c = (int64_t)(kl_rng_uniform(&r) * 100);
    for (int64_t k = 0; k < n; k++) {
      ix[ip[i] + k] = c;
      c += 1 + (int64_t)(kl_rng_uniform(&r) * (double)(2 * LIN_C / LIN_NZ - 2));
      if (c >= LIN_C) c = LIN_C - 1 - (n - k);
    }
    ip[i + 1] = ip[i] + n;
  }
  if (kl_tensor_new_csr(KL_FLOAT32, LIN_R, LIN_C, ip[LIN_R], &x) != KL_OK) return 2;
  memcpy(x->indptr, ip, (LIN_R + 1) * sizeof *ip);
  memcpy(x->indices, ix, (size_t)ip[LIN_R] * sizeof *ix);
  for (int64_t k = 0; k < ip[LIN_R]; k++) ((float *)x->data)[k] = (float)(kl_rng_uniform(&r) - 0.5);
  free(ip);
  free(ix);
  if (kl_tensor_check_format(x, "linear", 1) != KL_OK) return 2;
  int64_t ys[2] = {LIN_R, 1}, ws[2] = {LIN_C, 1}, bs = 1;
  if (kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y) != KL_OK || kl_tensor_fill_uniform(y, -1, 1, &r) != KL_OK ||
      kl_tensor_new_dense(KL_FLOAT32, 2, ws, &wd) != KL_OK || kl_tensor_fill_uniform(wd, -0.1, 0.1, &r) != KL_OK ||
      kl_tensor_tostype(wd, KL_STYPE_ROW_SPARSE, &w) != KL_OK || kl_tensor_new_dense(KL_FLOAT32, 1, &bs, &b) != KL_OK)
    return 2;
  kl_graph *g = NULL;
  kl_plan *p = NULL;
  int ixp, iy, iw, ib, d, pred, loss, two[2];
  kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, LIN_C}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_ADAGRAD);
  o.learning_rate = 0.1;
  o.lazy_update = 1;
  kl_status s = kl_graph_new(&g);
  if (s == KL_OK) s = kl_graph_placeholder(g, &mx, "x", &ixp);
  if (s == KL_OK) s = kl_graph_placeholder(g, &my, "y", &iy);
  if (s == KL_OK) s = kl_graph_variable(g, w, 1, "W", &iw);
  if (s == KL_OK) s = kl_graph_variable(g, b, 1, "b", &ib);
  if (s == KL_OK) two[0] = ixp, two[1] = iw, s = kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &d);
  if (s == KL_OK) two[0] = d, two[1] = ib, s = kl_graph_op(g, KL_OP_BIAS_ADD, two, 2, NULL, &pred);
  if (s == KL_OK) two[0] = iy, two[1] = pred, s = kl_graph_op(g, KL_OP_LOSS_MSE, two, 2, NULL, &loss);
  if (s == KL_OK) {
    int feeds[2] = {ixp, iy}, weights[2] = {iw, ib};
    kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
    kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 2, gst, &o};
    const int prev = kl_plan_set_fuse_enabled(!listed);
    s = kl_plan_new(g, &spec, &p);
    kl_plan_set_fuse_enabled(prev);
  }
  double l = 0;
  kl_epoch_opts eo = {.batch_size = LIN_BS};
  for (int e = 0; e < 3 && s == KL_OK; e++) s = kl_plan_fit_epoch(p, &x, 1, y, &eo, &l, NULL);
  if (s != KL_OK) {
    fprintf(stderr, "child linear: %s\n", kl_errmsg());
    return 2;
  }
  if (listed ? p->fused_listed_steps == 0 : p->lin_steps == 0) {
    fprintf(stderr, "child linear: the %s step did not run\n", listed ? "listed fused" : "linear");
    return 3;
  }
  if (write_t(w) || write_t(b)) return 2;
  fprintf(stderr, "child linear: %d threads, loss %.9g\n", kl_num_threads(), l);
  kl_plan_free(p);
  kl_graph_free(g);
  kl_tensor_release(x);
  kl_tensor_release(y);
  kl_tensor_release(wd);
  kl_tensor_release(w);
  kl_tensor_release(b);
  return 0;
}

/* ids (N x L in 1..V, int64) -> Embedding(V x 64, f32) -> mean over L -> dot K (64 x 1) + c
 * -> mse vs y; lazy Adam; 3 fit epochs of batches of 256 (the plan's fused bag). Writes the
 * Embedding's weight, K, then c. */
static int child_bag(void) {
  kl_rng r;
  kl_rng_seed(&r, 78);
  int64_t is[2] = {BAG_N, BAG_L}, ys[2] = {BAG_N, 1}, ws[2] = {BAG_V, BAG_D}, ks[2] = {BAG_D, 1}, cs = 1;
  kl_tensor *ids = NULL, *y = NULL, *w = NULL, *k = NULL, *c = NULL;
  if (kl_tensor_new_dense(KL_INT64, 2, is, &ids) != KL_OK || kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y) != KL_OK ||
      kl_tensor_fill_uniform(y, -1, 1, &r) != KL_OK || kl_tensor_new_dense(KL_FLOAT32, 2, ws, &w) != KL_OK ||
      kl_tensor_fill_uniform(w, -0.05, 0.05, &r) != KL_OK || kl_tensor_new_dense(KL_FLOAT32, 2, ks, &k) != KL_OK ||
      kl_tensor_fill_uniform(k, -0.5, 0.5, &r) != KL_OK || kl_tensor_new_dense(KL_FLOAT32, 1, &cs, &c) != KL_OK)
    return 2;
  for (int64_t q = 0; q < BAG_N * BAG_L; q++) {
    int64_t id = 1 + (int64_t)(kl_rng_uniform(&r) * BAG_V);
    ((int64_t *)ids->data)[q] = id > BAG_V ? BAG_V : id;
  }
  kl_graph *g = NULL;
  kl_plan *p = NULL;
  kl_meta mi = {KL_INT64, KL_STYPE_DEFAULT, 2, {-1, BAG_L}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  int ii, iy, iw, ik, ic, e, m, d, pred, loss, two[2];
  kl_attrs ea = {0}, ma = {0};
  ea.ival = BAG_V;
  ma.has_axis = 1;
  ma.axis = 1;
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.learning_rate = 0.01;
  o.lazy_update = 1;
  kl_status s = kl_graph_new(&g);
  if (s == KL_OK) s = kl_graph_placeholder(g, &mi, "ids", &ii);
  if (s == KL_OK) s = kl_graph_placeholder(g, &my, "y", &iy);
  if (s == KL_OK) s = kl_graph_variable(g, w, 1, "E", &iw);
  if (s == KL_OK) s = kl_graph_variable(g, k, 1, "K", &ik);
  if (s == KL_OK) s = kl_graph_variable(g, c, 1, "c", &ic);
  if (s == KL_OK) two[0] = ii, two[1] = iw, s = kl_graph_op(g, KL_OP_EMBEDDING, two, 2, &ea, &e);
  if (s == KL_OK) s = kl_graph_op(g, KL_OP_MEAN, &e, 1, &ma, &m);
  if (s == KL_OK) two[0] = m, two[1] = ik, s = kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &d);
  if (s == KL_OK) two[0] = d, two[1] = ic, s = kl_graph_op(g, KL_OP_BIAS_ADD, two, 2, NULL, &pred);
  if (s == KL_OK) two[0] = iy, two[1] = pred, s = kl_graph_op(g, KL_OP_LOSS_MSE, two, 2, NULL, &loss);
  if (s == KL_OK) {
    int feeds[2] = {ii, iy}, weights[3] = {iw, ik, ic};
    kl_stype gst[3] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT, KL_STYPE_DEFAULT};
    kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 3, gst, &o};
    s = kl_plan_new(g, &spec, &p);
  }
  double l = 0;
  kl_epoch_opts eo = {.batch_size = BAG_BS};
  for (int ep = 0; ep < 3 && s == KL_OK; ep++) s = kl_plan_fit_epoch(p, &ids, 1, y, &eo, &l, NULL);
  if (s != KL_OK) {
    fprintf(stderr, "child bag: %s\n", kl_errmsg());
    return 2;
  }
  if (write_t(w) || write_t(k) || write_t(c)) return 2;
  fprintf(stderr, "child bag: %d threads, loss %.9g\n", kl_num_threads(), l);
  kl_plan_free(p);
  kl_graph_free(g);
  kl_tensor_release(ids);
  kl_tensor_release(y);
  kl_tensor_release(w);
  kl_tensor_release(k);
  kl_tensor_release(c);
  return 0;
}

static int child(const char *model) {
  kl_set_warn_handler(quiet, NULL);
  if (strcmp(model, "linear") == 0) return child_linear(0);
  if (strcmp(model, "listed") == 0) return child_linear(1);
  if (strcmp(model, "bag") == 0) return child_bag();
  return child_tt();
}

/* Runs this program as a child training model with OMP_NUM_THREADS=threads; reads the
 * bytes of its weights into w. */
static int run_child(const char *self, const char *model, int threads, void *w, size_t n) {
  int fds[2];
  if (pipe(fds) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    char t[16];
    snprintf(t, sizeof t, "%d", threads);
    setenv("OMP_NUM_THREADS", t, 1);
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execl(self, self, "--child", model, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  FILE *f = fdopen(fds[0], "rb");
  size_t got = f ? fread(w, 1, n, f) : 0;
  if (f) fclose(f);
  int st = 0;
  waitpid(pid, &st, 0);
  return !(WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == n);
}

/* Three runs of model at 1 and at 2 threads (n bytes of weights each): the same bits within a
 * thread count; w[t][0] keeps each count's weights for the caller. */
static void runs_of(const char *self, const char *model, size_t n, unsigned char *w[2][3]) {
  for (int t = 0; t < 2; t++)
    for (int r = 0; r < 3; r++) {
      w[t][r] = calloc(n, 1);
      int bad = run_child(self, model, t + 1, w[t][r], n);
      if (bad) fprintf(stderr, "%s: %d threads, run %d failed\n", model, t + 1, r + 1);
      CHECK(bad == 0);
    }
  for (int t = 0; t < 2; t++)
    for (int r = 1; r < 3; r++) {
      int same = memcmp(w[t][0], w[t][r], n) == 0;
      if (!same) fprintf(stderr, "%s: %d threads: run %d differs from run 1\n", model, t + 1, r + 1);
      CHECK(same);
    }
}

static void free_runs(unsigned char *w[2][3]) {
  for (int t = 0; t < 2; t++)
    for (int r = 0; r < 3; r++) free(w[t][r]);
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "--child") == 0) return child(argv[2]);
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(len > 0);
  if (len <= 0) KLTEST_DONE();
  self[len] = 0;
  unsigned char *w[2][3];
  const size_t n = (size_t)(V * U + U);
  runs_of(self, "tt", n * sizeof(double), w);
  double worst = 0;
  size_t changed = 0;
  for (size_t i = 0; i < n; i++) {
    double a, b;
    memcpy(&a, w[0][0] + i * sizeof(double), sizeof a);
    memcpy(&b, w[1][0] + i * sizeof(double), sizeof b);
    double rel = fabs(a - b) / fmax(fabs(a), 1e-300);
    if (a != b) changed++;
    if (a != b && rel > worst) worst = rel;
  }
  printf("tt, 1 vs 2 threads: %zu of %zu values differ, worst relative difference %.3g\n", changed,
         n, worst);
  CHECK(worst <= 1e-6);
  free_runs(w);
  /* the kernels of these state the same bits at any thread count */
  static const struct { const char *model; size_t bytes; } same[] = {
      {"linear", LIN_BYTES}, {"listed", LIN_BYTES}, {"bag", BAG_BYTES}};
  unsigned char *lin1 = NULL;
  for (int k = 0; k < 3; k++) {
    runs_of(self, same[k].model, same[k].bytes, w);
    const int eq = memcmp(w[0][0], w[1][0], same[k].bytes) == 0;
    printf("%s, 1 vs 2 threads: %s\n", same[k].model, eq ? "the same bits" : "DIFFERENT");
    CHECK(eq);
    if (k == 0) { /* the linear step and the listed one: the same bits too */
      lin1 = malloc(LIN_BYTES);
      if (lin1) memcpy(lin1, w[0][0], LIN_BYTES);
    } else if (k == 1) {
      const int ll = lin1 && memcmp(lin1, w[0][0], LIN_BYTES) == 0;
      printf("linear vs listed: %s\n", ll ? "the same bits" : "DIFFERENT");
      CHECK(ll);
      free(lin1);
    }
    free_runs(w);
  }
  KLTEST_DONE();
}
