/* test_gpu_dev_fit.c: a whole fit on the CUDA device against the same fit on the CPU (issue
 * 17: "a whole fit of the Keras-MXNet workload and of the Embedding workload, compared to the
 * CPU within stated tolerances"), built in C through the plan API (no Lua):
 *
 *   - the Keras-MXNet workload (W1's model, smaller): csr x (R1 x C1, density 0.01),
 *     y = x . (1..C1) / C1, Dense(1) with a row_sparse kernel (every row stored) and a bias,
 *     mse; SGD momentum 0.9 (lazy) in float32 and float64, then every optimizer rule (SGD
 *     plain / momentum, Adam, Adagrad, RMSprop, Ftrl) lazy and not, float32;
 *   - the Embedding workload (W3's model, smaller, plus a hidden layer with dropout): int64
 *     ids (R2 x L2, in 0..V2-1: 0 is padding) -> Embedding(V2, D2, row_sparse gradient) -> mean over the ids -> Dense(H2,
 *     relu) -> Dropout(0.25) -> Dense(1, sigmoid), binary crossentropy; lazy Adam (float32
 *     and float64), and non-lazy SGD momentum; the masked mean (Embedding{mask_zero} ->
 *     GlobalAveragePooling1D: masked_mean by the Embedding's own ids) with lazy Adam; and lazy
 *     Adam against a CPU plan made with the fusion off (the plain Embedding and mean ops).
 *
 * Each model is built twice from the same seed, once with its weights on the CPU and once
 * moved to gpu(0) (as compile{device = keras.gpu(0)} does), and trained by kl_plan_fit_epoch
 * for EPOCHS shuffled epochs (the same row permutations) with metrics; then evaluate and
 * predict (through an inference plan on each). Compared, device against CPU: each epoch's
 * loss and metrics, every weight and optimizer state (host copies; a row_sparse weight's
 * stored rows exactly), the step count, evaluate's loss and metrics, the predictions.
 * kl_device_fallback_count() must not move while the device model is built, trained,
 * evaluated and used to predict (no op or update computed on the host), the weights and
 * states must stay on the device, and no device block may be left when the models are gone.
 * The Embedding workload's device plans take the Embedding -> mean fusion as the CPU's do
 * (k_embedding.cu's fused kernels through kl_device_backend.embedding_mean): the plan fuses
 * the pair, the fused forward runs once a step, an evaluate batch and a predict batch and
 * the fused backward once a step (the module's counters), and a step leaves no value and no
 * gradient for the Embedding node (its (n, L, D) output is never made). A bad id in a batch
 * fails the fused device step with the CPU plan's status and message.
 * On the emulated device only, the fused mean's device path (kl_embedding_mean and its
 * backward, row_sparse and dense, masked and not) under the runtime's fault sweep
 * (gpu_dev_fault_sweep): every runtime call failing in turn fails cleanly with its error and
 * leaves no device block in use; the run without a fault gives the host's bits.
 *
 * Tolerances:
 *   - on the emulated device (make test; detected at run time by the backend's name
 *     "cuda (emulated)" and kl_cuda_rt_emulated()): none. Every value must be the CPU's bits
 *     (the emulated cuSPARSE / cuBLAS compute in the CPU's order, the own kernels always do).
 *   - on a GPU (test_gpu_dev_fit_device, tools/gpu-check): cuSPARSE (csr . dense), cuBLAS
 *     (the hidden layer's gemms) and CUDA's exp / log (sigmoid, the crossentropy) round
 *     differently from the CPU, and training carries the differences along: losses, metrics,
 *     weights, states and predictions within RTOL32 = 1e-4 (float32) / RTOL64 = 1e-10
 *     (float64) relative to max(1, |cpu value|); an accuracy may differ by 2 samples in
 *     n (a prediction on the 0.5 threshold). The worst relative difference of each model is
 *     printed (to see the margin on a GPU).
 * On a machine without a device the _device twin reports itself skipped (exit 77). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpu_dev_testutil.h"
#include "kltest_fitpair.h"
#include "kl/layers.h"
#include "ops_internal.h"
#include "plan_internal.h"

#define RTOL32 1e-4
#define RTOL64 1e-10
#define EPOCHS 3
#define BATCH 64

/* the Keras-MXNet workload, small */
#define R1 1500
#define C1 1000
/* the Embedding workload, small */
#define R2 768
#define L2 10
#define V2 400
#define D2 16
#define H2 8

static int emulated = 0; /* set in main from the backend: exact comparisons */
static double worst = 0; /* worst relative difference of the current model */

enum { W1, EMB, EMB_MASKED };
static const char *wl_name[3] = {"keras-mxnet (W1)", "embedding (W3)", "masked emb (W3)"};

static kl_tensor *dense2(kl_dtype dt, int64_t r, int64_t c) {
  int64_t s[2] = {r, c};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, c > 0 ? 2 : 1, s, &t));
  if (!t) exit(2);
  return t;
}

static kt_data make_data(int wl, kl_dtype dt, uint64_t seed) {
  kl_rng r;
  kl_rng_seed(&r, seed);
  kt_data d = {NULL, NULL};
  if (wl == W1) { /* keras.sparse.rand({R1, C1}, "csr", 0.01); y = X . (1..C1) / C1 */
    int64_t s[2] = {R1, C1};
    CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, dt, 2, s, 0.01, &r, &d.x));
    kl_tensor *v = dense2(dt, C1, 1);
    for (int64_t k = 0; k < C1; k++) kl_tensor_data_set(v, k, (double)(k + 1));
    CHECK_OK(kl_dot(d.x, v, 0, 0, &d.y));
    if (!d.y) exit(2);
    for (int64_t k = 0; k < R1; k++) kl_tensor_data_set(d.y, k, kl_tensor_data_at(d.y, k) / C1);
    kl_tensor_release(v);
  } else { /* ids in 0..V2-1 (0: padding); y = 1 when most of a row's ids are below V2 / 2 */
    d.x = dense2(KL_INT64, R2, L2);
    d.y = dense2(dt, R2, 1);
    for (int64_t i = 0; i < R2; i++) {
      int low = 0;
      for (int j = 0; j < L2; j++) {
        int64_t id = (int64_t)kl_rng_below(&r, V2);
        kl_tensor_data_set(d.x, i * L2 + j, (double)id);
        low += id < V2 / 2;
      }
      kl_tensor_data_set(d.y, i, low * 2 > L2 ? 1 : 0);
    }
  }
  return d;
}

static int op1(kl_graph *g, kl_op op, int a, const kl_attrs *at) {
  int id = -1;
  CHECK_OK(kl_graph_op(g, op, &a, 1, at, &id));
  return id;
}

/* A trained variable made on the host from seed (normal(0, sd), or zeros when sd == 0), as
 * row_sparse when rsp (every row stored), moved to dev (compile{device = ...}). */
static int weight(kt_model *m, kl_dtype dt, int64_t r, int64_t c, double sd, int rsp,
                  uint64_t seed, kl_device dev, const char *name) {
  kl_rng g;
  kl_rng_seed(&g, seed);
  kl_tensor *t = dense2(dt, r, c);
  if (sd > 0) CHECK_OK(kl_tensor_fill_normal(t, 0, sd, &g));
  else kl_tensor_fill(t, 0);
  if (rsp) {
    kl_tensor *s = NULL;
    CHECK_OK(kl_tensor_tostype(t, KL_STYPE_ROW_SPARSE, &s));
    kl_tensor_release(t);
    t = s;
    CHECK(t && t->nnz == r); /* every row stored: the device updates it in place */
  }
  return kt_variable(m, t, dev, name);
}

static kt_model build(int wl, kl_dtype dt, const kl_optimizer *o, kl_device dev, uint64_t seed) {
  kt_model m;
  memset(&m, 0, sizeof m);
  CHECK_OK(kl_graph_new(&m.g));
  if (!m.g) exit(2);
  int y = -1, ws[6], nws = 0;
  kl_stype gst[6];
  for (int k = 0; k < 6; k++) gst[k] = KL_STYPE_DEFAULT;
  kl_meta my = {dt, KL_STYPE_DEFAULT, 2, {-1, 1}};
  if (wl == W1) {
    kl_meta mx = {dt, KL_STYPE_CSR, 2, {-1, C1}};
    CHECK_OK(kl_graph_placeholder(m.g, &mx, "x", &m.x));
    int w = weight(&m, dt, C1, 1, 0.01, 1, seed, dev, "kernel");
    int b = weight(&m, dt, 1, 0, 0, 0, seed + 1, dev, "bias");
    m.pred = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, m.x, w), b);
    ws[nws] = w, gst[nws++] = KL_STYPE_ROW_SPARSE;
    ws[nws++] = b;
    CHECK_OK(kl_graph_placeholder(m.g, &my, "y", &y));
    m.loss = kt_op2(m.g, KL_OP_LOSS_MSE, y, m.pred);
  } else {
    kl_meta mx = {KL_INT64, KL_STYPE_DEFAULT, 2, {-1, L2}};
    CHECK_OK(kl_graph_placeholder(m.g, &mx, "ids", &m.x));
    int e = weight(&m, dt, V2, D2, 0.05, 0, seed, dev, "embeddings");
    int w1 = weight(&m, dt, D2, H2, 0.3, 0, seed + 1, dev, "W1");
    int b1 = weight(&m, dt, H2, 0, 0, 0, seed + 2, dev, "b1");
    int w2 = weight(&m, dt, H2, 1, 0.3, 0, seed + 3, dev, "W2");
    int b2 = weight(&m, dt, 1, 0, 0, 0, seed + 4, dev, "b2");
    kl_attrs ea = {0}, ma = {0};
    ea.ival = V2;
    int in[2] = {m.x, e}, emb = -1, dr = -1;
    CHECK_OK(kl_graph_op(m.g, KL_OP_EMBEDDING, in, 2, &ea, &emb));
    ma.has_axis = 1, ma.axis = 1;
    int mean = -1, mm[2] = {emb, m.x};
    if (wl == EMB_MASKED) CHECK_OK(kl_graph_op(m.g, KL_OP_MASKED_MEAN, mm, 2, NULL, &mean));
    else mean = op1(m.g, KL_OP_MEAN, emb, &ma);
    int h1 = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, mean, w1), b1);
    int h = op1(m.g, KL_OP_RELU, h1, NULL);
    CHECK_OK(kl_graph_dropout(m.g, h, 0.25, 9, &dr));
    int z = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, dr, w2), b2);
    m.pred = op1(m.g, KL_OP_SIGMOID, z, NULL);
    ws[nws] = e, gst[nws++] = KL_STYPE_ROW_SPARSE;
    ws[nws++] = w1, ws[nws++] = b1, ws[nws++] = w2, ws[nws++] = b2;
    CHECK_OK(kl_graph_placeholder(m.g, &my, "y", &y));
    m.loss = kt_op2(m.g, KL_OP_LOSS_BCE, y, m.pred);
  }
  int feeds[2] = {m.x, y}, outs[2] = {m.pred, m.loss};
  kl_plan_spec spec = {feeds, 2, outs, 2, m.loss, ws, nws, gst, o, dev};
  CHECK_OK(kl_plan_new(m.g, &spec, &m.p));
  if (!m.p) exit(2);
  return m;
}

/* ------------------------------------------------------------ comparisons */

/* Device value g against CPU value h: the same value when emulated, else within rtol of
 * max(1, |h|). Records the worst relative difference. */
static int near(double g, double h, double rtol) {
  if (gpu_dev_same_num(g, h)) return 1;
  double d = fabs(g - h) / fmax(1.0, fabs(h));
  if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
  return !emulated && d <= rtol;
}

static double rtol_of(kl_dtype dt) { return dt == KL_FLOAT64 ? RTOL64 : RTOL32; }

/* Tensor g (any device) against host tensor h: dtype, stype, shape; a row_sparse tensor's
 * stored rows exactly; every value near (dense comparison). */
static int near_tensor(const kl_tensor *g, const kl_tensor *h, const char *what) {
  kl_tensor *c = NULL, *dc = NULL, *dh = NULL;
  int ok = g && h && kl_tensor_to(g, KL_CPU, &c) == KL_OK;
  ok = ok && c->dtype == h->dtype && c->stype == h->stype && c->ndim == h->ndim &&
       c->nnz == h->nnz;
  for (int i = 0; ok && i < c->ndim; i++) ok = c->shape[i] == h->shape[i];
  if (ok && c->stype == KL_STYPE_ROW_SPARSE)
    ok = c->nnz == 0 || memcmp(c->indices, h->indices, (size_t)c->nnz * sizeof(int64_t)) == 0;
  ok = ok && kl_tensor_tostype(c, KL_STYPE_DEFAULT, &dc) == KL_OK &&
       kl_tensor_tostype(h, KL_STYPE_DEFAULT, &dh) == KL_OK;
  int64_t bad = -1;
  for (int64_t i = 0; ok && i < kl_tensor_numel(dh); i++)
    if (!near(kl_tensor_data_at(dc, i), kl_tensor_data_at(dh, i), rtol_of(h->dtype))) ok = 0, bad = i;
  if (!ok)
    fprintf(stderr, "  %s differs%s (entry %lld: %.9g on the device, %.9g on the CPU)\n", what,
            bad < 0 ? " in structure" : "", (long long)bad,
            bad >= 0 ? kl_tensor_data_at(dc, bad) : 0.0, bad >= 0 ? kl_tensor_data_at(dh, bad) : 0.0);
  kl_tensor_release(c);
  kl_tensor_release(dc);
  kl_tensor_release(dh);
  return ok;
}

/* An accuracy over n samples: the same when emulated, else within 2 samples. */
static int near_acc(double g, double h, int64_t n) {
  if (g == h) return 1;
  return !emulated && fabs(g - h) * (double)n <= 2.0 + 1e-9;
}

/* ------------------------------------------------------------ one fit */

/* One training forward and backward of the first 50 rows on the device plan of an Embedding
 * workload. Fused: the plan pairs the Embedding with its mean, the Embedding node gets no
 * value and no gradient (the fused mean computes its (50, D2) value from the ids and the
 * weight); not fused (a plan made with the fusion off): the Embedding's (50, L2, D2) value
 * is there, as the check's own control. */
static void check_embedding_value(kt_model *g, const kt_data *d, int fused) {
  kl_tensor *x = NULL, *y = NULL;
  CHECK_OK(kl_tensor_slice_rows(d->x, 0, 50, &x));
  CHECK_OK(kl_tensor_slice_rows(d->y, 0, 50, &y));
  kl_tensor *feeds[2] = {x, y};
  int e = -1, mn = -1; /* the Embedding node and its mean */
  for (int i = 0; i < g->g->n; i++) {
    const kl_node *nd = &g->g->nodes[i];
    if (nd->kind == KL_NODE_OP && nd->op == KL_OP_EMBEDDING) e = i;
    if (nd->kind == KL_NODE_OP && (nd->op == KL_OP_MEAN || nd->op == KL_OP_MASKED_MEAN)) mn = i;
  }
  CHECK(e >= 0 && mn > e && g->g->nodes[mn].inputs[0] == e);
  const long f0 = kl_cuda_embedding_mean_calls(0), b0 = kl_cuda_embedding_mean_calls(1);
  CHECK_OK(kl_plan_forward(g->p, feeds, 1));
  const kl_tensor *mv = g->p->vals[mn], *ev = g->p->vals[e];
  CHECK(mv && mv->device == GPU0 && mv->ndim == 2 && mv->shape[0] == 50 && mv->shape[1] == D2);
  CHECK(g->p->bag_src[mn] == (fused ? e : -1) && g->p->bag_skip[e] == fused);
  if (fused) CHECK(ev == NULL);
  else CHECK(ev && ev->device == GPU0 && ev->ndim == 3 && ev->shape[1] == L2 && ev->shape[2] == D2);
  CHECK_OK(kl_plan_backward(g->p));
  if (fused) CHECK(g->p->vals[e] == NULL && g->p->grads[e] == NULL);
  CHECK(kl_cuda_embedding_mean_calls(0) - f0 == fused && kl_cuda_embedding_mean_calls(1) - b0 == fused);
  kl_plan_drop_step(g->p);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* cpu_fuse 0: the CPU plan is made with the Embedding -> mean fusion off (the Embedding and
 * mean ops one by one), the device plan with it on. */
static void compare_fit_fuse(int wl, kl_dtype dt, const kl_optimizer *o, int cpu_fuse) {
  const uint64_t seed = 20261207 + (uint64_t)wl;
  kt_data d = make_data(wl, dt, seed);
  const int64_t n = wl == W1 ? R1 : R2;
  worst = 0;
  long fb0 = gpu_dev_fallbacks();
  const long mf0 = kl_cuda_embedding_mean_calls(0), mb0 = kl_cuda_embedding_mean_calls(1);
  const int fuse0 = kl_plan_set_fuse_enabled(cpu_fuse);
  kt_model c = build(wl, dt, o, KL_CPU, seed);
  kl_plan_set_fuse_enabled(fuse0);
  kt_model g = build(wl, dt, o, GPU0, seed);
  CHECK(kl_plan_device(g.p) == GPU0 && kl_plan_device(c.p) == KL_CPU);
  int metrics[2] = {wl == W1 ? KL_METRIC_MAE : KL_METRIC_BINARY_ACCURACY, KL_EPOCH_OUTPUT_MEAN};
  int mouts[2] = {0, 1}, ok = 1, acc = wl != W1;
  kl_rng rc, rg;
  kl_epoch_opts oc, og;
  kt_epoch_pair(seed ^ 77, BATCH, 2, metrics, mouts, &rc, &rg, &oc, &og);
  double first = 0, last = 0;
  for (int e = 0; e < EPOCHS; e++) {
    double lc = 0, lg = 1, mc[2] = {0, 0}, mg[2] = {1, 1};
    CHECK_OK(kl_plan_fit_epoch(c.p, &d.x, 1, d.y, &oc, &lc, mc));
    CHECK_OK(kl_plan_fit_epoch(g.p, &d.x, 1, d.y, &og, &lg, mg));
    int eok = isfinite(lc) && near(lg, lc, rtol_of(dt)) && near(mg[1], mc[1], rtol_of(dt)) &&
              (acc ? near_acc(mg[0], mc[0], n) : near(mg[0], mc[0], rtol_of(dt)));
    if (!eok)
      fprintf(stderr, "  epoch %d: loss %.9g / %.9g, metric %.9g / %.9g (device / CPU)\n", e + 1,
              lg, lc, mg[0], mc[0]);
    ok &= eok;
    if (e == 0) first = lc;
    last = lc;
  }
  CHECK(last < first); /* it trains */
  /* weights, optimizer states, the step count; everything still on the device */
  CHECK(kl_plan_step_count(g.p) == kl_plan_step_count(c.p) &&
        kl_plan_step_count(c.p) == EPOCHS * ((n + BATCH - 1) / BATCH));
  char what[64];
  for (int k = 0; k < c.p->nweights; k++) {
    snprintf(what, sizeof what, "weight %d", k);
    CHECK(kl_plan_weight(g.p, k)->device == GPU0);
    ok &= near_tensor(kl_plan_weight(g.p, k), kl_plan_weight(c.p, k), what);
    CHECK(kl_plan_num_states(g.p, k) == kl_optimizer_num_states(o));
    for (int s = 0; s < kl_plan_num_states(c.p, k); s++) {
      snprintf(what, sizeof what, "weight %d's state %d", k, s);
      CHECK(kl_plan_state(g.p, k, s)->device == GPU0);
      ok &= near_tensor(kl_plan_state(g.p, k, s), kl_plan_state(c.p, k, s), what);
    }
  }
  /* evaluate and predict (host results) */
  double ec = 0, eg = 1, emc[2] = {0, 0}, emg[2] = {1, 1};
  kl_epoch_opts ev = {.batch_size = 100, .nmetrics = 2, .metrics = metrics, .metric_outputs = mouts};
  CHECK_OK(kl_plan_evaluate(c.p, &d.x, 1, d.y, &ev, &ec, emc));
  CHECK_OK(kl_plan_evaluate(g.p, &d.x, 1, d.y, &ev, &eg, emg));
  int evok = near(eg, ec, rtol_of(dt)) && near(emg[1], emc[1], rtol_of(dt)) &&
             (acc ? near_acc(emg[0], emc[0], n) : near(emg[0], emc[0], rtol_of(dt)));
  if (!evok) fprintf(stderr, "  evaluate: loss %.9g / %.9g, metric %.9g / %.9g\n", eg, ec, emg[0], emc[0]);
  ok &= evok;
  kl_plan *ic = NULL, *ig = NULL;
  kl_plan_spec sc = {&c.x, 1, &c.pred, 1, -1, NULL, 0, NULL, NULL, KL_CPU};
  kl_plan_spec sg = {&g.x, 1, &g.pred, 1, -1, NULL, 0, NULL, NULL, GPU0};
  CHECK_OK(kl_plan_new(c.g, &sc, &ic));
  CHECK_OK(kl_plan_new(g.g, &sg, &ig));
  kl_tensor *pc = NULL, *pg = NULL;
  CHECK_OK(kl_plan_predict(ic, &d.x, 1, 128, &pc));
  CHECK_OK(kl_plan_predict(ig, &d.x, 1, 128, &pg));
  CHECK(pg && pg->device == KL_CPU);
  ok &= near_tensor(pg, pc, "predictions");
  /* no host fallback on the device path; the CPU-only fast paths (the fused csr^T step, the
   * pool) stay on the CPU; the Embedding -> mean fusion is taken on both: the device's fused
   * forward ran once a step, an evaluate batch and a predict batch, its backward once a step */
  long fb = gpu_dev_fallbacks() - fb0;
  CHECK(fb == 0);
  const int64_t steps = EPOCHS * ((n + BATCH - 1) / BATCH);
  const long mf = kl_cuda_embedding_mean_calls(0) - mf0, mb = kl_cuda_embedding_mean_calls(1) - mb0;
  CHECK(g.p->fused_steps == 0 && g.p->pool == NULL);
  if (wl == W1 && o->lazy_update && o->kind == KL_OPT_SGD) CHECK(c.p->fused_steps > 0);
  if (wl == W1) CHECK(c.p->nbags == 0 && g.p->nbags == 0 && mf == 0 && mb == 0);
  if (wl != W1) {
    CHECK(c.p->nbags == cpu_fuse && g.p->nbags == 1 && ig->nbags == 1);
    CHECK(mf == steps + (n + 99) / 100 + (n + 127) / 128 && mb == steps);
  }
  printf("  %-17s %s %-7s%s lazy=%d: %d epochs x %lld steps, loss %.6g -> %.6g; device vs CPU%s: "
         "worst relative difference %.3g%s, %ld host fallbacks, %ld + %ld fused Embedding -> mean "
         "calls on the device\n",
         wl_name[wl], kl_dtype_name(dt), kl_optimizer_kind_name(o->kind),
         o->kind == KL_OPT_SGD && o->momentum > 0 ? "+m" : "  ", o->lazy_update, EPOCHS,
         (long long)((n + BATCH - 1) / BATCH), first, last, cpu_fuse ? "" : " (CPU not fused)",
         worst, worst == 0 ? " (the same bits)" : "", fb, mf, mb);
  if (!ok)
    fprintf(stderr, "compare_fit: %s %s %s lazy=%d: the device and the CPU differ (%s)\n",
            wl_name[wl], kl_dtype_name(dt), kl_optimizer_kind_name(o->kind), o->lazy_update,
            emulated ? "emulated: exact expected" : "beyond the GPU tolerance");
  CHECK(ok);
  if (wl != W1) { /* the step's values and gradients; a device plan with the fusion off */
    check_embedding_value(&g, &d, 1);
    const int fuse1 = kl_plan_set_fuse_enabled(0);
    kt_model u = build(wl, dt, o, GPU0, seed + 1);
    kl_plan_set_fuse_enabled(fuse1);
    CHECK(u.p->nbags == 0);
    check_embedding_value(&u, &d, 0);
    kt_model_free(&u);
  }
  kl_plan_free(ic);
  kl_plan_free(ig);
  kl_tensor_release(pc);
  kl_tensor_release(pg);
  kt_model_free(&c);
  kt_model_free(&g);
  kt_data_free(&d);
  CHECK(gpu_dev_in_use(GPU0) == 0); /* every device block back in the cache */
}

static void compare_fit(int wl, kl_dtype dt, const kl_optimizer *o) { compare_fit_fuse(wl, dt, o, 1); }

/* A bad id in a batch of the fused device plan (plain and masked mean): the train step
 * fails with the CPU plan's status and message (the device's flag, read after the fused
 * forward), and nothing was trained. */
static void test_bad_id(int wl) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  kt_data d = make_data(wl, KL_FLOAT32, 5);
  kt_model c = build(wl, KL_FLOAT32, &o, KL_CPU, 5), g = build(wl, KL_FLOAT32, &o, GPU0, 5);
  CHECK(c.p->nbags == 1 && g.p->nbags == 1);
  kl_tensor *x = NULL, *y = NULL;
  CHECK_OK(kl_tensor_slice_rows(d.x, 0, 8, &x));
  CHECK_OK(kl_tensor_slice_rows(d.y, 0, 8, &y));
  kl_tensor *bad = NULL, *feeds[2] = {NULL, y};
  CHECK_OK(kl_tensor_copy(x, &bad));
  kl_tensor_data_set(bad, 3 * L2 + 4, V2 + 7); /* the first bad position */
  kl_tensor_data_set(bad, 5 * L2 + 1, -2);
  feeds[0] = bad;
  double l = 0;
  char msg[256];
  const kl_status sc = kl_plan_train_step(c.p, feeds, &l);
  snprintf(msg, sizeof msg, "%s", kl_errmsg());
  CHECK(sc == KL_EINDEX && strstr(msg, "Embedding") != NULL);
  CHECK_ERR(kl_plan_train_step(g.p, feeds, &l), sc, msg);
  CHECK(strcmp(kl_errmsg(), msg) == 0);
  CHECK(kl_plan_step_count(g.p) == 0 && kl_plan_step_count(c.p) == 0);
  kl_plan_drop_step(g.p);
  kl_plan_drop_step(c.p);
  kl_tensor_release(bad);
  kl_tensor_release(x);
  kl_tensor_release(y);
  kt_model_free(&c);
  kt_model_free(&g);
  kt_data_free(&d);
  CHECK(gpu_dev_in_use(GPU0) == 0);
}

/* The comparison itself: a last-bit difference on the device fails when emulated; on a GPU a
 * difference within the tolerance passes and one beyond it fails. */
static void test_comparison(void) {
  kl_tensor *h = dense2(KL_FLOAT32, 3, 2), *c = NULL, *d = NULL;
  for (int64_t k = 0; k < 6; k++) kl_tensor_data_set(h, k, 0.25 * (double)k - 0.5);
  CHECK_OK(kl_tensor_copy(h, &c));
  ((float *)c->data)[4] = nextafterf(((float *)c->data)[4], 2.0f);
  CHECK_OK(kl_tensor_to(c, GPU0, &d));
  fprintf(stderr, "(the comparison's own check: the two differences below are expected)\n");
  CHECK(near_tensor(d, h, "a last-bit change") == !emulated);
  ((float *)c->data)[4] = 0.5f + 2e-4f;
  kl_tensor_release(d);
  CHECK_OK(kl_tensor_to(c, GPU0, &d));
  CHECK(!near_tensor(d, h, "a change beyond the tolerance"));
  CHECK(near_acc(0.5, 0.5, 10) && near_acc(0.5, 0.7, 10) == !emulated && !near_acc(0.5, 0.8, 10));
  worst = 0;
  kl_tensor_release(h);
  kl_tensor_release(c);
  kl_tensor_release(d);
}

#if GPU_DEV_EMULATED
/* ------------------------------------------------------------ the fused mean's faults */

/* One run of the fused Embedding -> mean on the device (kl_embedding_mean, or its backward
 * when want is set), from host ids, weight and (backward) gout copied there: the result's
 * host copy in *res (NULL on a failure), every device tensor released. */
typedef struct emb_sweep {
  kl_tensor *ids, *w, *gout; /* host */
  int masked, backward;
  kl_stype want;
} emb_sweep;

static kl_status emb_sweep_run(void *ctx, kl_tensor **res) {
  const emb_sweep *c = ctx;
  kl_tensor *di = NULL, *dw = NULL, *dg = NULL, *r = NULL;
  *res = NULL;
  kl_status st = kl_tensor_to(c->ids, GPU0, &di);
  if (st == KL_OK) st = kl_tensor_to(c->w, GPU0, &dw);
  if (st == KL_OK && c->backward) st = kl_tensor_to(c->gout, GPU0, &dg);
  if (st == KL_OK)
    st = c->backward ? kl_embedding_mean_backward(di, dw, NULL, c->masked, dg, c->want, &r)
                     : kl_embedding_mean(di, dw, NULL, c->masked, &r);
  if (st == KL_OK) st = kl_tensor_to(r, KL_CPU, res);
  kl_tensor_release(r);
  kl_tensor_release(di);
  kl_tensor_release(dw);
  kl_tensor_release(dg);
  return st;
}

/* kl_embedding_mean and its backward (row_sparse and dense gradients) on the device, masked
 * and not, with every runtime call failing in turn (gpu_dev_fault_sweep: each fault fails
 * cleanly with its status and message, nothing left in use, then the run succeeds with the
 * reference's values); the reference is the host's result, bit for bit, and each run went
 * through the backend's fused kernels (the module's counters). */
static void test_emb_mean_faults(void) {
  const int64_t n = 6, L = 5, V = 9, D = 4;
  int64_t is[2] = {n, L};
  kl_tensor *ids = NULL, *w = dense2(KL_FLOAT32, V, D), *gout = dense2(KL_FLOAT32, n, D);
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, is, &ids));
  uint64_t state = 11;
  for (int64_t k = 0; k < n * L; k++) /* ids 0..V-1 (0: padding), sample 2 padding only */
    ((int64_t *)ids->data)[k] = k / L == 2 ? 0 : (int64_t)(gpu_dev_urand(&state) * (double)V);
  for (int64_t k = 0; k < V * D; k++) kl_tensor_data_set(w, k, gpu_dev_urand(&state) - 0.5);
  for (int64_t k = 0; k < n * D; k++) kl_tensor_data_set(gout, k, gpu_dev_urand(&state) - 0.5);
  static const char *kind[3] = {"forward", "backward row_sparse", "backward dense"};
  for (int masked = 0; masked <= 1; masked++)
    for (int b = 0; b < 3; b++) {
      emb_sweep c = {ids, w, gout, masked, b > 0, b == 2 ? KL_STYPE_DEFAULT : KL_STYPE_ROW_SPARSE};
      kl_tensor *host = NULL, *dev = NULL;
      CHECK_OK(c.backward ? kl_embedding_mean_backward(ids, w, NULL, masked, gout, c.want, &host)
                          : kl_embedding_mean(ids, w, NULL, masked, &host));
      const long calls0 = kl_cuda_embedding_mean_calls(c.backward);
      CHECK_OK(emb_sweep_run(&c, &dev));
      CHECK(kl_cuda_embedding_mean_calls(c.backward) == calls0 + 1);
      CHECK(dev && host && dev->stype == host->stype && gpu_dev_same_host(dev, host));
      gpu_dev_sweep sw = gpu_dev_fault_sweep(emb_sweep_run, &c);
      CHECK(sw.ncalls > 3 && sw.failures > sw.ncalls);
      printf("fault sweep embedding mean %s%s: %ld runtime calls x 2 errors: %d failures, "
             "nothing leaked\n", kind[b], masked ? " (masked)" : "", sw.ncalls, sw.failures);
      kl_tensor_release(host);
      kl_tensor_release(dev);
    }
  kl_tensor_release(ids);
  kl_tensor_release(w);
  kl_tensor_release(gout);
  CHECK(gpu_dev_in_use(GPU0) == 0);
}
#endif

static kl_optimizer opt(kl_opt_kind kind, int lazy, double lr, double momentum) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, kind));
  o.lazy_update = lazy;
  if (lr > 0) o.learning_rate = lr;
  o.momentum = momentum;
  return o;
}

int main(void) {
  int rc = gpu_dev_start("test_gpu_dev_fit");
  if (rc) return rc;
  const kl_device_backend *be = kl_device_backend_get();
  CHECK(be != NULL);
  emulated = be && strcmp(be->name, "cuda (emulated)") == 0 && kl_cuda_rt_emulated();
  CHECK(emulated == GPU_DEV_EMULATED); /* the build and the backend agree */
  printf("test_gpu_dev_fit: %s\n",
         emulated ? "emulated device: every value must be the CPU's bits"
                  : "GPU: values within 1e-4 (float32) / 1e-10 (float64) of max(1, |cpu|)");
  test_comparison();
  /* the Keras-MXNet workload: SGD momentum (lazy) as W1, f32 and f64 */
  kl_optimizer sgdm = opt(KL_OPT_SGD, 1, 0.05, 0.9);
  compare_fit(W1, KL_FLOAT32, &sgdm);
  compare_fit(W1, KL_FLOAT64, &sgdm);
  /* every rule, lazy and not, on it */
  for (int k = 0; k < KL_OPT_COUNT; k++)
    for (int lazy = 0; lazy <= 1; lazy++) {
      double lr = k == KL_OPT_SGD ? 0.05 : k == KL_OPT_FTRL ? 0.5 : 0.01;
      kl_optimizer o = opt((kl_opt_kind)k, lazy, lr, k == KL_OPT_SGD && !lazy ? 0.9 : 0);
      compare_fit(W1, KL_FLOAT32, &o);
    }
  /* the Embedding workload: lazy Adam as W3, and non-lazy SGD momentum */
  kl_optimizer adam = opt(KL_OPT_ADAM, 1, 0.01, 0);
  compare_fit(EMB, KL_FLOAT32, &adam);
  compare_fit(EMB, KL_FLOAT64, &adam);
  kl_optimizer sgd2 = opt(KL_OPT_SGD, 0, 0.1, 0.9);
  compare_fit(EMB, KL_FLOAT32, &sgd2);
  /* the masked mean; the fused device against the CPU's two ops */
  compare_fit(EMB_MASKED, KL_FLOAT32, &adam);
  compare_fit_fuse(EMB, KL_FLOAT32, &adam, 0);
  compare_fit_fuse(EMB_MASKED, KL_FLOAT64, &adam, 0);
  test_bad_id(EMB);
  test_bad_id(EMB_MASKED);
#if GPU_DEV_EMULATED
  test_emb_mean_faults();
#endif
  gpu_dev_finish();
  KLTEST_DONE();
}
