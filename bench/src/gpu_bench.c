/* gpu_bench.c: W1, W3 and W4a/b on the CUDA device next to the CPU, in one process, in C (no
 * Lua): the timings tools/gpu-check prints and someone records in bench/README.md the day a
 * GPU is lent (issue 17). The workloads are bench/README.md's:
 *   - W1-b64 / W1-b1024: 100,000 x 10,000 csr at density 0.01 (keras.sparse.rand, seed 7),
 *     y = X . (1..10000) / 10000, Dense(1) with a row_sparse kernel (normal, stddev 0.01) and
 *     a bias, SGD lr 0.001 momentum 0.9 (lazy), mse; one epoch of kl_plan_fit_epoch (what
 *     model:fit runs), shuffle off; median of RUNS epochs after a warm-up epoch.
 *   - W3-V1e4 / W3-V1e7: int64 ids (256 x 20 a batch, bench/lua/w3.lua's LCG, 1..V) ->
 *     Embedding(V, 64, row_sparse gradient) -> mean over the ids -> Dense(1), mse, lazy Adam
 *     lr 0.001; 200 steps an epoch; the figure is the median epoch time / 200.
 *   - W4a-csr.dense: csr(100,000 x 2^20, 40 a row: gen.c's rows, seed 7) . dense(2^20 x 64);
 *     W4b-csrT.dense: csr(1024 x 1e6, 39 a row)^T . dense(1024 x 64) -> row_sparse: kl_dot
 *     (the registry's dot: on the device, dev_ops_dot.c's entries), the output allocation
 *     inside the timing as in bench/src/kernels.c; median of RUNS calls after a warm-up.
 * Each workload runs on the CPU (impl keras-lua-cpu) and on gpu(0) (impl keras-lua-gpu) in
 * this process, from the same data and the same initial weights. On the device the weights
 * live there (compile{device = keras.gpu(0)}), host batches are copied a step, and the clock
 * stops after kl_cuda_dev_synchronize. The device line's note has the CPU / device ratio.
 *
 * Output: bench/lua's RESULT lines (bench/report.lua):
 *   RESULT <workload> <impl> <threads> <median seconds> <runs> [note]
 * with threads = the host's OpenMP threads (OMP_NUM_THREADS). Both impls start with
 * "keras-lua", so report.lua lists them as ours and never pairs either with bench/run's rows.
 *
 * On the emulated device (gpu_bench_emu: the kernels run as loops on one host thread) the
 * device lines are "keras-lua-emulated" with a note saying the timing means nothing: they
 * check that the harness runs (make test's smoke run), never a GPU figure.
 *
 * Sanity checks (exit 1 when one fails): every median finite and > 0; W3's device plan fused
 * the Embedding -> mean (the module's fused forward and backward ran once a step of every
 * epoch: kl_cuda_embedding_mean_calls); the device's final loss
 * equal to the CPU's on the emulated device, within 1e-2 relative on a GPU (the two trained
 * the same epochs from the same weights; cuSPARSE / cuBLAS round differently: the note gives
 * the relative difference); W4's device output the CPU's (emulated: the same bits; GPU:
 * within 1e-4 of max(1, |cpu|)); no host fallback (kl_device_fallback_count) on the device.
 *
 * usage: gpu_bench [--smoke] [--runs N] [--only W1,W3,W4] [--w3 V[,V...]]
 *   --smoke: bench/run --quick's sizes (W1 2000 x 1000, W3 V = 1000 with 5 steps, W4a
 *   2000 x 65536, W4b 64 x 10000), 1 run. Exit: 0, 1 (a check failed), 2 (usage), 77 (no
 *   CUDA device: nothing timed). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "benchio.h"
#include "gpu_dev_testutil.h"
#include "kltest_fitpair.h"

static int runs = 5, smoke = 0, emulated = 0, threads = 1;
static const char *dev_impl = "keras-lua-gpu";
static char dev_label[300]; /* the device, for notes: no spaces */

static double rel(double a, double b) { return fabs(a - b) / fmax(1.0, fabs(b)); }

/* A device line's note: what the CPU line says, the ratio, and the device. */
static void dev_result(const char *wl, double tg, double tc, const char *note) {
  char buf[700];
  if (emulated)
    snprintf(buf, sizeof buf, "EMULATED-device:the-timing-means-nothing %s", note);
  else
    snprintf(buf, sizeof buf, "%s cpu/gpu=%.3gx device=%s", note, tc / tg, dev_label);
  result(wl, dev_impl, threads, tg, runs, buf);
}

static void check_time(const char *wl, const char *where, double t) {
  if (!(t > 0 && isfinite(t))) {
    fprintf(stderr, "gpu_bench: %s on the %s: median time %g\n", wl, where, t);
    CHECK(0);
  }
}

/* The final losses of the CPU and the device: exact when emulated, 1e-2 on a GPU. */
static void check_loss(const char *wl, double lg, double lc) {
  int ok = isfinite(lc) && (emulated ? lg == lc : rel(lg, lc) <= 1e-2);
  if (!ok) fprintf(stderr, "gpu_bench: %s: loss %.9g on the device, %.9g on the CPU\n", wl, lg, lc);
  CHECK(ok);
}

/* ------------------------------------------------------------ models (W1, W3) */
/* A model, its graph ops and variables, and freeing it: spec/c/kltest_fitpair.h's kt_model,
 * kt_op2, kt_variable, kt_model_free (the tests' own; a failure there is counted by CHECK). */

/* A trained variable of m (kt_variable): (r, c) (c == 0: (r)) filled by fill (NULL: zeros),
 * row_sparse when rsp, moved to dev. */
static int variable(kt_model *m, int64_t r, int64_t c, int rsp,
                    void (*fill)(kl_tensor *, kl_rng *), uint64_t seed, kl_device dev,
                    const char *name) {
  int64_t s[2] = {r, c};
  kl_tensor *t = NULL;
  kl_rng g;
  kl_rng_seed(&g, seed);
  if (kl_tensor_new_dense(KL_FLOAT32, c > 0 ? 2 : 1, s, &t) != KL_OK) die("weight");
  if (fill) fill(t, &g);
  else kl_tensor_fill(t, 0);
  if (rsp) {
    kl_tensor *sp = NULL;
    if (kl_tensor_tostype(t, KL_STYPE_ROW_SPARSE, &sp) != KL_OK) die("row_sparse weight");
    kl_tensor_release(t);
    t = sp;
  }
  return kt_variable(m, t, dev, name);
}

static void fill_normal001(kl_tensor *t, kl_rng *g) { kl_tensor_fill_normal(t, 0, 0.01, g); }
static void fill_uniform005(kl_tensor *t, kl_rng *g) { kl_tensor_fill_uniform(t, -0.05, 0.05, g); }
static void fill_glorot(kl_tensor *t, kl_rng *g) { /* glorot uniform of (fan_in, fan_out) */
  double lim = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
  kl_tensor_fill_uniform(t, -lim, lim, g);
}

static void plan_of(kt_model *m, int x, int y, int loss, int *ws, kl_stype *gst, int nw,
                    const kl_optimizer *o, kl_device dev) {
  int feeds[2] = {x, y};
  kl_plan_spec spec = {feeds, 2, &loss, 1, loss, ws, nw, gst, o, dev};
  if (kl_plan_new(m->g, &spec, &m->p) != KL_OK) die("plan");
}

/* W1's model: pred = dot(x_csr, W_rsp) + b, mse, SGD lr 0.001 momentum 0.9. */
static kt_model w1_model(int64_t cols, kl_device dev) {
  kt_model m;
  memset(&m, 0, sizeof m);
  if (kl_graph_new(&m.g) != KL_OK) die("graph");
  int x = -1, y = -1;
  kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, cols}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  if (kl_graph_placeholder(m.g, &mx, "x", &x) != KL_OK || kl_graph_placeholder(m.g, &my, "y", &y) != KL_OK)
    die("placeholder");
  int w = variable(&m, cols, 1, 1, fill_normal001, 7, dev, "kernel");
  int b = variable(&m, 1, 0, 0, NULL, 0, dev, "bias");
  int pred = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, x, w), b);
  int loss = kt_op2(m.g, KL_OP_LOSS_MSE, y, pred);
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.learning_rate = 0.001, o.momentum = 0.9;
  int ws[2] = {w, b};
  kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
  plan_of(&m, x, y, loss, ws, gst, 2, &o, dev);
  return m;
}

/* W3's model: Embedding(V, 64) -> mean over the ids -> Dense(1), mse, lazy Adam lr 0.001. */
static kt_model w3_model(int64_t V, int64_t L, kl_device dev) {
  kt_model m;
  memset(&m, 0, sizeof m);
  if (kl_graph_new(&m.g) != KL_OK) die("graph");
  int x = -1, y = -1, emb = -1, mean = -1;
  kl_meta mx = {KL_INT64, KL_STYPE_DEFAULT, 2, {-1, L}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 1}};
  if (kl_graph_placeholder(m.g, &mx, "ids", &x) != KL_OK || kl_graph_placeholder(m.g, &my, "y", &y) != KL_OK)
    die("placeholder");
  int e = variable(&m, V, 64, 0, fill_uniform005, 7, dev, "embeddings");
  int w = variable(&m, 64, 1, 0, fill_glorot, 8, dev, "kernel");
  int b = variable(&m, 1, 0, 0, NULL, 0, dev, "bias");
  kl_attrs ea = {0}, ma = {0};
  ea.ival = V;
  ma.has_axis = 1, ma.axis = 1;
  int in[2] = {x, e};
  if (kl_graph_op(m.g, KL_OP_EMBEDDING, in, 2, &ea, &emb) != KL_OK ||
      kl_graph_op(m.g, KL_OP_MEAN, &emb, 1, &ma, &mean) != KL_OK)
    die("graph op");
  int pred = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, mean, w), b);
  int loss = kt_op2(m.g, KL_OP_LOSS_MSE, y, pred);
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.learning_rate = 0.001, o.lazy_update = 1;
  int ws[3] = {e, w, b};
  kl_stype gst[3] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT, KL_STYPE_DEFAULT};
  plan_of(&m, x, y, loss, ws, gst, 3, &o, dev);
  return m;
}

/* Median seconds of RUNS epochs (after a warm-up epoch) of m on x, y; *loss the last one's. */
static double time_epochs(kt_model *m, kl_tensor *x, kl_tensor *y, int64_t bs, kl_device dev,
                          double *loss) {
  kl_epoch_opts o = {.batch_size = bs, .shuffle = 0};
  double *t = malloc((size_t)runs * sizeof *t);
  if (!t) die("malloc");
  for (int r = -1; r < runs; r++) {
    double t0 = now_s();
    if (kl_plan_fit_epoch(m->p, &x, 1, y, &o, loss, NULL) != KL_OK) die("fit epoch");
    if (dev != KL_CPU && kl_cuda_dev_synchronize(dev) != KL_OK) die("synchronize");
    if (r >= 0) t[r] = now_s() - t0;
  }
  double med = median(t, runs);
  free(t);
  return med;
}

static void bench_w1(int64_t rows, int64_t cols, const int64_t *batches, int nb) {
  kl_rng r;
  kl_rng_seed(&r, 7);
  int64_t s[2] = {rows, cols}, vs[2] = {cols, 1};
  kl_tensor *X = NULL, *v = NULL, *y0 = NULL, *y = NULL;
  if (kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, s, 0.01, &r, &X) != KL_OK) die("sparse.rand");
  if (kl_tensor_new_dense(KL_FLOAT32, 2, vs, &v) != KL_OK) die("range");
  for (int64_t k = 0; k < cols; k++) kl_tensor_data_set(v, k, (double)(k + 1));
  kl_attrs da = {0};
  da.scalar = (double)cols;
  kl_tensor *in[1];
  if (kl_dot(X, v, 0, 0, &y0) != KL_OK) die("y");
  in[0] = y0;
  if (kl_op_run(KL_OP_DIV_SCALAR, in, 1, &da, &y) != KL_OK) die("y / cols");
  for (int i = 0; i < nb; i++) {
    int64_t bs = batches[i];
    char wl[64], note[300];
    snprintf(wl, sizeof wl, "W1-b%lld", (long long)bs);
    double lc = 0, lg = 0;
    kt_model c = w1_model(cols, KL_CPU);
    double tc = time_epochs(&c, X, y, bs, KL_CPU, &lc);
    kt_model_free(&c);
    long fb0 = kl_device_fallback_count();
    kt_model g = w1_model(cols, GPU0);
    double tg = time_epochs(&g, X, y, bs, GPU0, &lg);
    kt_model_free(&g);
    long fb = kl_device_fallback_count() - fb0;
    CHECK(fb == 0);
    check_time(wl, "CPU", tc);
    check_time(wl, "device", tg);
    check_loss(wl, lg, lc);
    snprintf(note, sizeof note, "loss=%.4g steps=%lld", lc, (long long)((rows + bs - 1) / bs));
    result(wl, "keras-lua-cpu", threads, tc, runs, note);
    snprintf(note, sizeof note, "loss=%.4g steps=%lld rel-to-cpu=%.2g fallbacks=%ld", lg,
             (long long)((rows + bs - 1) / bs), rel(lg, lc), fb);
    dev_result(wl, tg, tc, note);
  }
  kl_tensor_release(X);
  kl_tensor_release(v);
  kl_tensor_release(y0);
  kl_tensor_release(y);
}

static void bench_w3(int64_t V, int64_t steps) {
  const int64_t bs = 256, L = 20, n = bs * steps;
  int64_t xs[2] = {n, L}, ys[2] = {n, 1};
  kl_tensor *X = NULL, *y = NULL;
  if (kl_tensor_new_dense(KL_INT64, 2, xs, &X) != KL_OK || kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y) != KL_OK)
    die("W3 data");
  uint64_t state = 7; /* w3.lua's LCG: ids in 1..V, y = (state >> 40) % 2 after a row */
  int64_t *ids = X->data;
  float *yv = y->data;
  for (int64_t i = 0; i < n; i++) {
    for (int64_t j = 0; j < L; j++) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      ids[i * L + j] = (int64_t)((state >> 11) % (uint64_t)V) + 1;
    }
    yv[i] = (float)((state >> 40) % 2);
  }
  char wl[64], note[300];
  snprintf(wl, sizeof wl, "W3-V1e%d", (int)floor(log10((double)V) + 0.5));
  double lc = 0, lg = 0;
  kt_model c = w3_model(V, L, KL_CPU);
  double tc = time_epochs(&c, X, y, bs, KL_CPU, &lc) / (double)steps;
  kt_model_free(&c);
  long fb0 = kl_device_fallback_count();
  const long fw0 = kl_cuda_embedding_mean_calls(0), bw0 = kl_cuda_embedding_mean_calls(1);
  kt_model g = w3_model(V, L, GPU0);
  double tg = time_epochs(&g, X, y, bs, GPU0, &lg) / (double)steps;
  kt_model_free(&g);
  long fb = kl_device_fallback_count() - fb0;
  CHECK(fb == 0);
  /* the device plan fused the Embedding -> mean (what is timed): one fused forward and one
   * fused backward a step, over the warm-up epoch and the RUNS timed ones */
  const long fused = kl_cuda_embedding_mean_calls(0) - fw0;
  const long fused_bwd = kl_cuda_embedding_mean_calls(1) - bw0;
  if (fused != (runs + 1) * steps || fused_bwd != fused)
    fprintf(stderr, "gpu_bench: %s: %ld fused forwards and %ld fused backwards on the device, "
            "want %lld each (the device plan did not fuse the Embedding -> mean)\n", wl, fused,
            fused_bwd, (long long)((runs + 1) * steps));
  CHECK(fused == (runs + 1) * steps && fused_bwd == fused);
  check_time(wl, "CPU", tc);
  check_time(wl, "device", tg);
  check_loss(wl, lg, lc);
  snprintf(note, sizeof note, "per step; loss=%.4g steps=%lld", lc, (long long)steps);
  result(wl, "keras-lua-cpu", threads, tc, runs, note);
  snprintf(note, sizeof note,
           "per step; loss=%.4g steps=%lld rel-to-cpu=%.2g fallbacks=%ld fused-calls=%ld+%ld", lg,
           (long long)steps, rel(lg, lc), fb, fused, fused_bwd);
  dev_result(wl, tg, tc, note);
  kl_tensor_release(X);
  kl_tensor_release(y);
}

/* ------------------------------------------------------------ W4 (kernels) */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* gen.c's csr (gen csr ROWS COLS K 7 none): k distinct sorted columns a row, values on a
 * 1/1024 grid, from kl_rng seed 7: the same matrix as bench/run's W4 files. */
static kl_tensor *gen_csr(int64_t rows, int64_t cols, int64_t k) {
  kl_rng r;
  kl_rng_seed(&r, 7);
  kl_tensor *t = NULL;
  if (kl_tensor_new_csr(KL_FLOAT32, rows, cols, rows * k, &t) != KL_OK) die("csr");
  float *val = t->data;
  for (int64_t i = 0; i < rows; i++) {
    int64_t *col = t->indices + i * k;
    for (int64_t a = 0; a < k;) {
      int64_t c = (int64_t)kl_rng_below(&r, (uint64_t)cols);
      int dup = 0;
      for (int64_t j = 0; j < a; j++)
        if (col[j] == c) { dup = 1; break; }
      if (!dup) col[a++] = c;
    }
    qsort(col, (size_t)k, sizeof *col, cmp_i64);
    for (int64_t j = 0; j < k; j++) val[i * k + j] = (float)(1 + kl_rng_below(&r, 1024)) / 1024.0f;
    t->indptr[i + 1] = (i + 1) * k;
  }
  t->indptr[0] = 0;
  t->nnz = rows * k;
  if (kl_tensor_check_format(t, "gpu_bench", 0) != KL_OK) die("csr format");
  return t;
}

/* Median seconds of RUNS kl_dot calls (after a warm-up); *out the last output (host). */
static double time_dot(const kl_tensor *a, const kl_tensor *b, int transpose, kl_device dev,
                       kl_tensor **last) {
  double *t = malloc((size_t)runs * sizeof *t);
  if (!t) die("malloc");
  for (int r = -1; r < runs; r++) {
    kl_tensor *o = NULL;
    double t0 = now_s();
    if (kl_dot(a, b, transpose, 0, &o) != KL_OK) die("kl_dot");
    if (dev != KL_CPU && kl_cuda_dev_synchronize(dev) != KL_OK) die("synchronize");
    double dt = now_s() - t0;
    if (r >= 0) t[r] = dt;
    if (r == runs - 1) {
      if (kl_tensor_to(o, KL_CPU, last) != KL_OK) die("output to the host");
    }
    kl_tensor_release(o);
  }
  double med = median(t, runs);
  free(t);
  return med;
}

static void bench_w4(const char *wl, int64_t rows, int64_t cols, int64_t k, int transpose) {
  const int64_t K = 64;
  kl_tensor *a = gen_csr(rows, cols, k), *b = NULL, *da = NULL, *db = NULL, *oc = NULL, *og = NULL;
  int64_t bshape[2] = {transpose ? rows : cols, K};
  kl_rng r;
  kl_rng_seed(&r, 7);
  if (kl_tensor_new_dense(KL_FLOAT32, 2, bshape, &b) != KL_OK) die("B");
  if (kl_tensor_fill_uniform(b, -1, 1, &r) != KL_OK) die("fill");
  double tc = time_dot(a, b, transpose, KL_CPU, &oc);
  if (kl_tensor_to(a, GPU0, &da) != KL_OK || kl_tensor_to(b, GPU0, &db) != KL_OK) die("to the device");
  long fb0 = kl_device_fallback_count();
  double tg = time_dot(da, db, transpose, GPU0, &og);
  long fb = kl_device_fallback_count() - fb0;
  CHECK(fb == 0);
  check_time(wl, "CPU", tc);
  check_time(wl, "device", tg);
  /* the device's output against the CPU's */
  double worst = 0;
  kl_tensor *dc = NULL, *dg = NULL;
  int ok = oc->stype == og->stype && oc->nnz == og->nnz &&
           kl_tensor_tostype(oc, KL_STYPE_DEFAULT, &dc) == KL_OK &&
           kl_tensor_tostype(og, KL_STYPE_DEFAULT, &dg) == KL_OK;
  for (int64_t i = 0; ok && i < kl_tensor_numel(dc); i++) {
    double x = kl_tensor_data_at(dg, i), w = kl_tensor_data_at(dc, i), d = rel(x, w);
    if (!gpu_dev_same_num(x, w)) {
      if (emulated || !(d <= 1e-4)) ok = 0;
      if (!(d <= worst)) worst = d;
    }
  }
  if (!ok) fprintf(stderr, "gpu_bench: %s: the device's output differs from the CPU's (worst %g)\n", wl, worst);
  CHECK(ok);
  char note[300];
  snprintf(note, sizeof note, "out=%s nnz_out=%lld", kl_stype_name(oc->stype), (long long)oc->nnz);
  result(wl, "keras-lua-cpu", threads, tc, runs, note);
  snprintf(note, sizeof note, "out=%s nnz_out=%lld worst-rel-to-cpu=%.2g fallbacks=%ld",
           kl_stype_name(og->stype), (long long)og->nnz, worst, fb);
  dev_result(wl, tg, tc, note);
  kl_tensor *list[] = {a, b, da, db, oc, og, dc, dg};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
}

/* ------------------------------------------------------------ main */

static int wanted(const char *only, const char *wl) {
  if (!only) return 1;
  size_t n = strlen(wl);
  for (const char *p = only; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 0 && len <= n && strncmp(p, wl, len) == 0) return 1;
    p += len + (e != NULL);
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: gpu_bench [--smoke] [--runs N] [--only W1,W3,W4] [--w3 V[,V...]]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *only = NULL, *w3list = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--smoke") == 0) smoke = 1;
    else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else if (strcmp(argv[i], "--w3") == 0 && i + 1 < argc) w3list = argv[++i];
    else usage();
  }
  if (smoke && runs == 5) runs = 1;
  if (runs < 1) usage();
  setvbuf(stdout, NULL, _IOLBF, 0);
  int rc = gpu_dev_start("gpu_bench");
  if (rc) return rc;
  const kl_device_backend *be = kl_device_backend_get();
  emulated = kl_cuda_rt_emulated() || (be && strcmp(be->name, "cuda (emulated)") == 0);
  threads = kl_num_threads();
  kl_cuda_rt_props pr;
  memset(&pr, 0, sizeof pr);
  kl_cuda_rt_device_props(0, &pr);
  int rtv = 0, drv = 0;
  kl_cuda_rt_versions(&rtv, &drv);
  snprintf(dev_label, sizeof dev_label, "%s", pr.name);
  for (char *c = dev_label; *c; c++)
    if (*c == ' ') *c = '_';
  if (emulated) {
    dev_impl = "keras-lua-emulated";
    printf("# gpu_bench: EMULATED DEVICE (%s: the kernels run as loops on one host thread, device "
           "memory is host memory). Its timings mean nothing: they show that the harness runs; "
           "never record them as GPU figures.\n", pr.name);
  } else {
    printf("# gpu_bench: device %s (compute capability %d.%d, %d multiprocessors, %.1f GiB; "
           "CUDA runtime %d, driver %d)\n", pr.name, pr.major, pr.minor, pr.multiprocessors,
           (double)pr.total_memory / 1073741824.0, rtv, drv);
  }
  printf("# gpu_bench: %s sizes, %d run(s) after a warm-up, %d host thread(s); the CPU lines "
         "are keras-lua-cpu, the device lines %s\n", smoke ? "smoke (tiny)" : "full", runs,
         threads, dev_impl);
  double t0 = now_s();
  if (wanted(only, "W1")) {
    int64_t batches[2] = {64, 1024};
    if (smoke) bench_w1(2000, 1000, batches, 2);
    else bench_w1(100000, 10000, batches, 2);
  }
  if (wanted(only, "W3")) {
    const char *list = w3list ? w3list : smoke ? "1000" : "10000,10000000";
    for (const char *p = list; *p;) {
      double v = strtod(p, NULL);
      if (!(v >= 1 && v <= 1e9)) usage();
      bench_w3((int64_t)v, smoke ? 5 : 200);
      const char *e = strchr(p, ',');
      if (!e) break;
      p = e + 1;
    }
  }
  if (wanted(only, "W4")) {
    if (smoke) {
      bench_w4("W4a-csr.dense", 2000, 65536, 40, 0);
      bench_w4("W4b-csrT.dense", 64, 10000, 39, 1);
    } else {
      bench_w4("W4a-csr.dense", 100000, 1048576, 40, 0);
      bench_w4("W4b-csrT.dense", 1024, 1000000, 39, 1);
    }
  }
  CHECK(gpu_dev_in_use(GPU0) == 0);
  CHECK_OK(kl_cuda_backend_close());
  printf("# gpu_bench: %.1f s; sanity checks: %d, failed: %d%s\n", now_s() - t0, kltest_checks,
         kltest_failures, emulated ? " (EMULATED device: timings mean nothing)" : "");
  return kltest_failures ? 1 : 0;
}
