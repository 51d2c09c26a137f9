/* test_plan_device.c: the device plan (kl_plan_spec.device, issue 17) on the guarded fake
 * device (kltest_fakedev.h: device memory is PROT_NONE to host code, so a plan path that
 * reads or writes device memory from the host dies of SIGSEGV).
 *
 * Three models - a Dense on csr input with a row_sparse weight (also used twice, and with a
 * regularizer: row_sparse gradient sums), an Embedding -> mean -> Dense, and a dense MLP
 * with dropout, a reshape and a residual sum (dense gradient sums) - train two epochs of fit
 * (shuffled, batch 16, metrics) on the fake device and on the CPU, for every optimizer rule
 * lazy and not, f32 and f64: the fake device computes every op and update on the host (its
 * counted fallback), so the weights, optimizer states, losses and metrics must be the same
 * bits, and so must evaluate and predict (which returns host tensors). The CPU-only paths
 * are not taken on the device (no fused csr^T step, no pool) and are taken on the CPU. The
 * Embedding -> mean fusion is taken on the device only when the backend has the fused
 * kernels (kl_device_backend.embedding_mean; here the host's on views of the guarded
 * buffers) and its op table claims both ops: then the device plan fuses as the CPU's does,
 * with the CPU's bits, under the allocation-failure sweep too. The same with a backend
 * optimizer update (in place on the device). An allocation-failure sweep over a device train step leaves weights, states and
 * step count unchanged, and the step that then succeeds gives the CPU's bits. No device
 * block leaks. Refusals: a weight on the wrong device, device data given to fit, gradient
 * and node hooks on a device plan, a device plan without a backend. */
#include <stdlib.h>
#include <sys/mman.h>

#include "kl/device.h"
#include "kl/graph.h"
#include "kl/layers.h"
#include "kl/optim.h"
#include "kltest.h"
#include "kltest_fakedev.h"
#include "kltest_fitpair.h"
#include "kltest_ops.h"
#include "kltest_warn.h"
#include "ops_internal.h"
#include "optim_internal.h"
#include "plan_internal.h"

static kl_rng rng;
static int fake_fuse = 0; /* the fake device has the fused Embedding -> mean, claimed */

enum { SPARSE, SPARSE_TWICE, SPARSE_REG, EMB, MLP, NKINDS };
static const char *kind_name[NKINDS] = {"sparse", "sparse_twice", "sparse_reg", "emb", "mlp"};

/* sizes */
#define R 100  /* rows of data */
#define C 40   /* csr columns */
#define N 3    /* outputs */
#define V 30   /* vocabulary */
#define L 5    /* ids a row */
#define D 4    /* embedding width */
#define F 6    /* MLP inputs */
#define H 5    /* MLP hidden */

static kl_tensor *rand_dense(kl_dtype dt, int64_t r, int64_t c, kl_rng *g, double scale) {
  int64_t s[2] = {r, c};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, 2, s, &t));
  if (!t) exit(2);
  for (int64_t k = 0; k < r * c; k++) kl_tensor_data_set(t, k, (kl_rng_uniform(g) - 0.5) * scale);
  return t;
}

static kl_tensor *rand_csr(kl_dtype dt, int64_t r, int64_t c, int nz) {
  int64_t *ip = malloc((size_t)(r + 1) * sizeof *ip), *ix = malloc((size_t)(r * nz + 1) * sizeof *ix);
  double *v = malloc((size_t)(r * nz + 1) * sizeof *v);
  if (!ip || !ix || !v) exit(2);
  int64_t n = 0;
  ip[0] = 0;
  for (int64_t i = 0; i < r; i++) {
    int64_t col = (int64_t)(kl_rng_uniform(&rng) * (double)(c / nz));
    for (int k = 0; i % 7 != 4 && k < nz && col < c; k++) {
      ix[n] = col;
      v[n++] = kl_rng_uniform(&rng) * 2 - 1;
      col += 1 + (int64_t)(kl_rng_uniform(&rng) * (double)(2 * c / nz - 1));
    }
    ip[i + 1] = n;
  }
  kl_tensor *t = kt_csr_of(dt, r, c, n, ip, ix, v);
  free(ip);
  free(ix);
  free(v);
  return t;
}

static kt_data make_data(int kind, kl_dtype dt) {
  kt_data d = {NULL, NULL};
  if (kind == EMB) {
    int64_t s[2] = {R, L};
    CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, s, &d.x));
    for (int64_t k = 0; k < R * L; k++) /* 0 is padding, ids 1..V */
      kl_tensor_data_set(d.x, k, (double)(int64_t)(kl_rng_uniform(&rng) * (V + 1)));
  } else if (kind == MLP) {
    d.x = rand_dense(dt, R, F, &rng, 2.0);
  } else {
    d.x = rand_csr(dt, R, C, 4);
  }
  d.y = rand_dense(dt, R, N, &rng, 2.0);
  return d;
}

/* A weight made on the host (seeded) and moved to dev, as compile{device = ...} does. */
static int weight(kt_model *m, kl_dtype dt, int64_t r, int64_t c, kl_stype st,
                  uint64_t seed, kl_device dev, const char *name) {
  kl_rng g;
  kl_rng_seed(&g, seed);
  kl_tensor *t = c > 0 ? rand_dense(dt, r, c, &g, 1.0) : NULL;
  if (c <= 0) { /* a bias: (r) */
    CHECK_OK(kl_tensor_new_dense(dt, 1, &r, &t));
    for (int64_t k = 0; k < r; k++) kl_tensor_data_set(t, k, kl_rng_uniform(&g) - 0.5);
  }
  if (st == KL_STYPE_ROW_SPARSE) {
    kl_tensor *s = NULL;
    CHECK_OK(kl_tensor_tostype(t, KL_STYPE_ROW_SPARSE, &s));
    kl_tensor_release(t);
    t = s;
  }
  return kt_variable(m, t, dev, name);
}

/* The model of kind on dev, with outputs {pred, loss} (the loss also averaged as a metric). */
static kt_model build(int kind, kl_dtype dt, const kl_optimizer *o, kl_device dev, uint64_t seed) {
  kt_model m;
  memset(&m, 0, sizeof m);
  CHECK_OK(kl_graph_new(&m.g));
  int x = -1, y = -1, pred = -1, ws[4], nws = 0;
  kl_stype gst[4] = {KL_STYPE_DEFAULT, KL_STYPE_DEFAULT, KL_STYPE_DEFAULT, KL_STYPE_DEFAULT};
  kl_meta my = {dt, KL_STYPE_DEFAULT, 2, {-1, N}};
  if (kind == EMB) {
    kl_meta mx = {KL_INT64, KL_STYPE_DEFAULT, 2, {-1, L}};
    CHECK_OK(kl_graph_placeholder(m.g, &mx, "ids", &x));
    int e = weight(&m, dt, V, D, KL_STYPE_DEFAULT, seed, dev, "E");
    int w2 = weight(&m, dt, D, N, KL_STYPE_DEFAULT, seed + 1, dev, "W2");
    int b = weight(&m, dt, N, 0, KL_STYPE_DEFAULT, seed + 2, dev, "b");
    kl_attrs ea = {0}, ma = {0};
    ea.ival = V;
    int in[2] = {x, e}, emb, mean;
    CHECK_OK(kl_graph_op(m.g, KL_OP_EMBEDDING, in, 2, &ea, &emb));
    ma.has_axis = 1, ma.axis = 1;
    CHECK_OK(kl_graph_op(m.g, KL_OP_MEAN, &emb, 1, &ma, &mean));
    pred = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, mean, w2), b);
    ws[nws] = e, gst[nws++] = KL_STYPE_ROW_SPARSE;
    ws[nws++] = w2;
    ws[nws++] = b;
  } else if (kind == MLP) {
    kl_meta mx = {dt, KL_STYPE_DEFAULT, 2, {-1, F}};
    CHECK_OK(kl_graph_placeholder(m.g, &mx, "x", &x));
    int w1 = weight(&m, dt, F, H, KL_STYPE_DEFAULT, seed, dev, "W1");
    int b1 = weight(&m, dt, H, 0, KL_STYPE_DEFAULT, seed + 1, dev, "b1");
    int w2 = weight(&m, dt, H, N, KL_STYPE_DEFAULT, seed + 2, dev, "W2");
    int b2 = weight(&m, dt, N, 0, KL_STYPE_DEFAULT, seed + 3, dev, "b2");
    int h = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, x, w1), b1), hr, dr, rs;
    CHECK_OK(kl_graph_op(m.g, KL_OP_RELU, &h, 1, NULL, &hr));
    CHECK_OK(kl_graph_dropout(m.g, hr, 0.3, 1234, &dr));
    int64_t shape[2] = {-1, H};
    CHECK_OK(kl_graph_reshape(m.g, dr, 2, shape, &rs));
    int s = kt_op2(m.g, KL_OP_ADD, rs, hr); /* hr's gradient: a dense sum of two */
    pred = kt_op2(m.g, KL_OP_BIAS_ADD, kt_op2(m.g, KL_OP_DOT, s, w2), b2);
    ws[nws++] = w1, ws[nws++] = b1, ws[nws++] = w2, ws[nws++] = b2;
  } else {
    kl_meta mx = {dt, KL_STYPE_CSR, 2, {-1, C}};
    CHECK_OK(kl_graph_placeholder(m.g, &mx, "x", &x));
    int w = weight(&m, dt, C, N, KL_STYPE_ROW_SPARSE, seed, dev, "W");
    int b = weight(&m, dt, N, 0, KL_STYPE_DEFAULT, seed + 1, dev, "b");
    int d = kt_op2(m.g, KL_OP_DOT, x, w);
    if (kind == SPARSE_TWICE) d = kt_op2(m.g, KL_OP_ADD, d, kt_op2(m.g, KL_OP_DOT, x, w));
    pred = kt_op2(m.g, KL_OP_BIAS_ADD, d, b);
    ws[nws] = w, gst[nws++] = KL_STYPE_ROW_SPARSE;
    ws[nws++] = b;
  }
  CHECK_OK(kl_graph_placeholder(m.g, &my, "y", &y));
  int loss = kt_op2(m.g, KL_OP_LOSS_MSE, y, pred);
  if (kind == SPARSE_REG || kind == MLP) { /* + 1e-3 * (sum |W| + sum W^2) */
    int reg, sum, sc;
    CHECK_OK(kl_graph_op(m.g, KL_OP_REG_TERMS, &ws[0], 1, NULL, &reg));
    CHECK_OK(kl_graph_op(m.g, KL_OP_SUM, &reg, 1, NULL, &sum));
    kl_attrs sa = {0};
    sa.scalar = 1e-3;
    CHECK_OK(kl_graph_op(m.g, KL_OP_MUL_SCALAR, &sum, 1, &sa, &sc));
    loss = kt_op2(m.g, KL_OP_ADD, loss, sc);
  }
  int feeds[2] = {x, y}, outs[2] = {pred, loss};
  kl_plan_spec spec = {feeds, 2, outs, 2, loss, ws, nws, gst, o, dev};
  CHECK_OK(kl_plan_new(m.g, &spec, &m.p));
  if (!m.p) exit(2);
  return m;
}

/* The same bits: x on any device, y on the host. */
static int same_bits(const kl_tensor *x, const kl_tensor *y) {
  kl_tensor *h = NULL;
  if (!x || !y || kl_tensor_to(x, KL_CPU, &h) != KL_OK) return 0;
  int ok = h->dtype == y->dtype && h->stype == y->stype && h->nnz == y->nnz &&
           h->ndim == y->ndim && kl_tensor_numel(h) == kl_tensor_numel(y);
  if (ok) {
    int64_t nv = h->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(h)
                 : h->stype == KL_STYPE_CSR  ? h->nnz
                                             : h->nnz * kl_row_width(h);
    ok = nv == 0 || memcmp(h->data, y->data, (size_t)nv * kl_dtype_size(h->dtype)) == 0;
    if (ok && h->stype != KL_STYPE_DEFAULT)
      ok = memcmp(h->indices, y->indices, (size_t)h->nnz * sizeof(int64_t)) == 0;
  }
  kl_tensor_release(h);
  return ok;
}

/* Weights, states and step count of a (device) and b (CPU) are the same bits. */
static int same_model(const kt_model *a, const kt_model *b) {
  int ok = a->nw == b->nw && kl_plan_step_count(a->p) == kl_plan_step_count(b->p);
  for (int k = 0; ok && k < a->p->nweights; k++) {
    ok = same_bits(kl_plan_weight(a->p, k), kl_plan_weight(b->p, k));
    for (int s = 0; ok && s < kl_plan_num_states(a->p, k); s++)
      ok = same_bits(kl_plan_state(a->p, k, s), kl_plan_state(b->p, k, s));
  }
  return ok;
}

/* Two shuffled epochs of fit, evaluate and predict on the CPU and on the fake device. */
static void compare_fit(int kind, kl_dtype dt, const kl_optimizer *o) {
  kt_data d = make_data(kind, dt);
  uint64_t seed = kl_rng_next(&rng);
  long live0 = fakedev_live(), fb0 = kl_device_fallback_count();
  kt_model c = build(kind, dt, o, KL_CPU, seed), g = build(kind, dt, o, FAKEDEV, seed);
  CHECK(g.p->device == FAKEDEV && kl_plan_device(g.p) == FAKEDEV && c.p->device == KL_CPU);
  int metrics[2] = {KL_METRIC_MSE, KL_EPOCH_OUTPUT_MEAN}, mouts[2] = {0, 1};
  kl_rng rc, rg;
  kl_epoch_opts oc, og;
  kt_epoch_pair(seed ^ 77, 16, 2, metrics, mouts, &rc, &rg, &oc, &og);
  int ok = 1;
  for (int e = 0; e < 2; e++) {
    double lc = 0, lg = 1, mc[2] = {0, 0}, mg[2] = {1, 1};
    CHECK_OK(kl_plan_fit_epoch(c.p, &d.x, 1, d.y, &oc, &lc, mc));
    CHECK_OK(kl_plan_fit_epoch(g.p, &d.x, 1, d.y, &og, &lg, mg));
    ok &= lc == lg && mc[0] == mg[0] && mc[1] == mg[1] && isfinite(lc);
  }
  ok &= same_model(&g, &c);
  /* evaluate and predict: the same bits, predict on the host */
  double ec = 0, eg = 1, emc[2], emg[2];
  kl_epoch_opts ev = {.batch_size = 32, .nmetrics = 2, .metrics = metrics, .metric_outputs = mouts};
  CHECK_OK(kl_plan_evaluate(c.p, &d.x, 1, d.y, &ev, &ec, emc));
  CHECK_OK(kl_plan_evaluate(g.p, &d.x, 1, d.y, &ev, &eg, emg));
  ok &= ec == eg && emc[0] == emg[0] && emc[1] == emg[1];
  kl_tensor *pc = NULL, *pg = NULL;
  kl_plan *ic = NULL, *ig = NULL; /* inference plans: x -> pred */
  kl_plan_spec sc = {c.p->feeds, 1, c.p->outputs, 1, -1, NULL, 0, NULL, NULL, KL_CPU};
  kl_plan_spec sg = {g.p->feeds, 1, g.p->outputs, 1, -1, NULL, 0, NULL, NULL, FAKEDEV};
  CHECK_OK(kl_plan_new(c.g, &sc, &ic));
  CHECK_OK(kl_plan_new(g.g, &sg, &ig));
  CHECK_OK(kl_plan_predict(ic, &d.x, 1, 32, &pc));
  CHECK_OK(kl_plan_predict(ig, &d.x, 1, 32, &pg));
  ok &= pg && pg->device == KL_CPU && same_bits(pg, pc);
  kl_plan_free(ic);
  kl_plan_free(ig);
  if (!ok)
    fprintf(stderr, "compare_fit: %s %s %s lazy=%d: the device and the CPU differ\n",
            kind_name[kind], kl_dtype_name(dt), kl_optimizer_kind_name(o->kind), o->lazy_update);
  CHECK(ok);
  /* the CPU-only paths: taken on the CPU where they apply, never on the device */
  CHECK(g.p->fused_steps == 0 && g.p->nbags == (kind == EMB && fake_fuse) && g.p->pool == NULL);
  if (kind == SPARSE && o->lazy_update) CHECK(c.p->fused_steps > 0);
  if (kind == EMB) CHECK(c.p->nbags == 1);
  CHECK(c.p->pool != NULL || getenv("KL_NO_POOL"));
  CHECK(kl_device_fallback_count() > fb0); /* the fake device computed on the host */
  for (int k = 0; k < g.nw; k++) CHECK(g.w[k]->device == FAKEDEV);
  kl_tensor_release(pc);
  kl_tensor_release(pg);
  kt_model_free(&c);
  kt_model_free(&g);
  kt_data_free(&d);
  CHECK(fakedev_live() == live0);
}

/* ------------------------------------------------------------ a backend update */

static long fake_updates = 0, fake_update_fail_at = 0;

static void open_buf(const void *p) {
  if (p) fakedev_open(p, 1);
}
static void close_buf(const void *p) {
  if (p) fakedev_close(p);
}
/* A host view (same buffers, device KL_CPU) of device tensor t, its pages opened. */
static kl_tensor host_view(const kl_tensor *t) {
  kl_tensor h = *t;
  h.device = KL_CPU;
  open_buf(t->data);
  open_buf(t->indices);
  return h;
}
static void close_view(const kl_tensor *t) {
  close_buf(t->data);
  close_buf(t->indices);
}

/* The backend's in-place update: the host's rule on the device buffers, opened for it only
 * (as a kernel would write them). fake_update_fail_at = k: the k-th call fails first. */
static kl_status fake_opt_update(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                                 kl_tensor **states, int64_t t) {
  if (fake_update_fail_at > 0 && --fake_update_fail_at == 0)
    return kl_seterr(KL_EDEVICE, "fakedev: a device error in the update");
  fake_updates++;
  int ns = kl_optimizer_num_states(o);
  kl_tensor hw = host_view(w), hg = host_view(g), hs[2], *hsp[2];
  for (int i = 0; i < ns; i++) hs[i] = host_view(states[i]), hsp[i] = &hs[i];
  kl_status st = kl_optimizer_update_trusted(o, &hw, &hg, hsp, t);
  close_view(w);
  close_view(g);
  for (int i = 0; i < ns; i++) close_view(states[i]);
  return st;
}

static void test_backend_update(void) {
  fakedev_backend.opt_update = fake_opt_update;
  fakedev_install();
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  for (int kind = 0; kind < NKINDS; kind++) {
    long u0 = fake_updates;
    compare_fit(kind, KL_FLOAT32, &o);
    CHECK(fake_updates > u0); /* the backend's update ran */
  }
  /* a device error in the second weight's update: the step fails, the step count stays,
   * the first weight was updated in place (kl_plan_update_device: not rolled back) */
  kt_data d = make_data(SPARSE, KL_FLOAT64);
  kt_model g = build(SPARSE, KL_FLOAT64, &o, FAKEDEV, 5);
  kl_tensor *feeds[2] = {d.x, d.y}, *w0 = NULL, *b0 = NULL;
  double l = 0;
  CHECK_OK(kl_plan_train_step(g.p, feeds, &l));
  CHECK_OK(kl_tensor_to(g.w[0], KL_CPU, &w0));
  CHECK_OK(kl_tensor_to(g.w[1], KL_CPU, &b0));
  fake_update_fail_at = 2;
  CHECK_ERR(kl_plan_train_step(g.p, feeds, &l), KL_EDEVICE, "a device error in the update");
  fake_update_fail_at = 0;
  CHECK(kl_plan_step_count(g.p) == 1);
  CHECK(!same_bits(g.w[0], w0) && same_bits(g.w[1], b0));
  kl_tensor_release(w0);
  kl_tensor_release(b0);
  kt_model_free(&g);
  kt_data_free(&d);
  fakedev_backend.opt_update = NULL;
  fakedev_install();
}

/* ------------------------------------------------------------ allocation failures */

/* Host copies of every weight and state of m (into snap, count returned). */
static int snapshot(const kt_model *m, kl_tensor **snap) {
  int n = 0;
  for (int k = 0; k < m->p->nweights; k++) {
    CHECK_OK(kl_tensor_to(kl_plan_weight(m->p, k), KL_CPU, &snap[n++]));
    for (int s = 0; s < kl_plan_num_states(m->p, k); s++)
      CHECK_OK(kl_tensor_to(kl_plan_state(m->p, k, s), KL_CPU, &snap[n++]));
  }
  return n;
}

static int same_as_snapshot(const kt_model *m, kl_tensor **snap) {
  int n = 0, ok = 1;
  for (int k = 0; k < m->p->nweights; k++) {
    ok &= same_bits(kl_plan_weight(m->p, k), snap[n++]);
    for (int s = 0; s < kl_plan_num_states(m->p, k); s++)
      ok &= same_bits(kl_plan_state(m->p, k, s), snap[n++]);
  }
  return ok;
}

/* Every device allocation of a train step failing in turn (after a first step): each
 * failure is KL_ENOMEM and changes nothing (weights, states, step count), nothing leaks,
 * and the step that succeeds gives the CPU's bits (dropout draws taken back too). */
static void sweep(int kind, const kl_optimizer *o) {
  kt_data d = make_data(kind, KL_FLOAT32);
  kl_tensor *bx = NULL, *by = NULL;
  CHECK_OK(kl_tensor_slice_rows(d.x, 0, 16, &bx));
  CHECK_OK(kl_tensor_slice_rows(d.y, 0, 16, &by));
  kl_tensor *feeds[2] = {bx, by};
  long live0 = fakedev_live();
  kt_model c = build(kind, KL_FLOAT32, o, KL_CPU, 9), g = build(kind, KL_FLOAT32, o, FAKEDEV, 9);
  double lc = 0, lg = 1;
  CHECK_OK(kl_plan_train_step(c.p, feeds, &lc));
  CHECK_OK(kl_plan_train_step(g.p, feeds, &lg));
  kl_plan_drop_step(g.p);
  const long live1 = fakedev_live();
  kl_tensor *snap[16];
  int ns = snapshot(&g, snap), failures = 0, ok = 1;
  kl_status st = KL_ENOMEM;
  for (long k = 1; k < 400 && st != KL_OK; k++) {
    fakedev_fail_at(k);
    st = kl_plan_train_step(g.p, feeds, &lg);
    fakedev_fail_at(0);
    if (st == KL_OK) break;
    failures++;
    ok &= st == KL_ENOMEM && kl_plan_step_count(g.p) == 1 && same_as_snapshot(&g, snap);
    kl_plan_drop_step(g.p);
    ok &= fakedev_live() == live1;
  }
  CHECK(st == KL_OK && failures > 5);
  if (!ok) fprintf(stderr, "sweep %s %s: a failed step changed the model or leaked\n",
                   kind_name[kind], kl_optimizer_kind_name(o->kind));
  CHECK(ok);
  CHECK_OK(kl_plan_train_step(c.p, feeds, &lc));
  CHECK(lc == lg && same_model(&g, &c));
  for (int i = 0; i < ns; i++) kl_tensor_release(snap[i]);
  kt_model_free(&c);
  kt_model_free(&g);
  kl_tensor_release(bx);
  kl_tensor_release(by);
  kt_data_free(&d);
  CHECK(fakedev_live() == live0);
}

/* ------------------------------------------------------------ the fused Embedding -> mean */

static long fake_means = 0, fake_mean_bwds = 0;

/* The backend's fused mean and its backward: the host's (kl_embedding_mean and its
 * backward) on host views of the device buffers, opened for them only (as a kernel would
 * read them), the result copied to the device. */
static kl_status fake_emb_mean(const kl_tensor *ids, const kl_tensor *w, int masked,
                               kl_tensor **out) {
  kl_tensor hi = host_view(ids), hw = host_view(w), *r = NULL;
  kl_status st = kl_embedding_mean(&hi, &hw, NULL, masked, &r);
  close_view(ids);
  close_view(w);
  if (st == KL_OK) st = kl_tensor_to(r, FAKEDEV, out);
  kl_tensor_release(r);
  fake_means += st == KL_OK;
  return st;
}

static kl_status fake_emb_mean_bwd(const kl_tensor *ids, const kl_tensor *w, int masked,
                                   const kl_tensor *gout, kl_stype want, kl_tensor **gin) {
  kl_tensor hi = host_view(ids), hw = host_view(w), hg = host_view(gout), *r = NULL;
  kl_status st = kl_embedding_mean_backward(&hi, &hw, NULL, masked, &hg, want, &r);
  close_view(ids);
  close_view(w);
  close_view(gout);
  if (st == KL_OK) st = kl_tensor_to(r, FAKEDEV, gin);
  kl_tensor_release(r);
  fake_mean_bwds += st == KL_OK;
  return st;
}

static const kl_device_opdef no_kernels = {NULL, NULL}; /* claimed, run on the host */
static const kl_device_opdef *fuse_ops[KL_OP_COUNT];

static void test_fused_mean(void) {
  kl_optimizer adam, sgd;
  CHECK_OK(kl_optimizer_init(&adam, KL_OPT_ADAM));
  adam.lazy_update = 1;
  CHECK_OK(kl_optimizer_init(&sgd, KL_OPT_SGD));
  sgd.momentum = 0.9;
  /* fused kernels, but the op table does not claim both ops: the device runs the two ops */
  fakedev_backend.embedding_mean = fake_emb_mean;
  fakedev_backend.embedding_mean_backward = fake_emb_mean_bwd;
  for (int claim = 0; claim < 3; claim++) {
    fuse_ops[KL_OP_EMBEDDING] = claim == 1 ? &no_kernels : NULL;
    fuse_ops[KL_OP_MEAN] = claim == 2 ? &no_kernels : NULL;
    fakedev_ops = claim ? fuse_ops : NULL;
    fakedev_nops = claim ? KL_OP_COUNT : 0;
    fakedev_install();
    kt_model g = build(EMB, KL_FLOAT32, &adam, FAKEDEV, 1);
    CHECK(g.p->nbags == 0);
    kt_model_free(&g);
  }
  /* both claimed: fused, the CPU's bits (compare_fit), every allocation failing in turn */
  fuse_ops[KL_OP_EMBEDDING] = fuse_ops[KL_OP_MEAN] = &no_kernels;
  fakedev_install();
  fake_fuse = 1;
  const long m0 = fake_means, b0 = fake_mean_bwds;
  for (int f64 = 0; f64 <= 1; f64++) {
    compare_fit(EMB, f64 ? KL_FLOAT64 : KL_FLOAT32, &adam);
    compare_fit(EMB, f64 ? KL_FLOAT64 : KL_FLOAT32, &sgd);
  }
  CHECK(fake_means > m0 && fake_mean_bwds > b0);
  sweep(EMB, &adam);
  /* the fusion off: not on the device either */
  const int on = kl_plan_set_fuse_enabled(0);
  kt_model g = build(EMB, KL_FLOAT32, &adam, FAKEDEV, 1);
  CHECK(g.p->nbags == 0);
  kl_plan_set_fuse_enabled(on);
  /* kl_embedding_mean on device tensors: the backend's, or a message naming the device */
  kl_tensor *ids = NULL, *hids = NULL, *y = NULL;
  kt_data d = make_data(EMB, KL_FLOAT32);
  CHECK_OK(kl_tensor_slice_rows(d.x, 0, 4, &hids));
  CHECK_OK(kl_tensor_to(hids, FAKEDEV, &ids));
  const long m1 = fake_means;
  CHECK_OK(kl_embedding_mean(ids, g.w[0], NULL, 0, &y));
  CHECK(fake_means == m1 + 1 && y && y->device == FAKEDEV && y->shape[0] == 4 && y->shape[1] == D);
  kl_tensor_release(y);
  y = NULL;
  CHECK_ERR(kl_embedding_mean(hids, g.w[0], NULL, 0, &y), KL_EINVAL,
            "Embedding: inputs on different devices");
  fakedev_backend.embedding_mean = NULL;
  fakedev_install();
  CHECK_ERR(kl_embedding_mean(ids, g.w[0], NULL, 0, &y), KL_EUNSUPPORTED,
            "Embedding: the fused mean has no kernel on gpu(0)");
  kl_tensor_release(ids);
  kl_tensor_release(hids);
  kt_model_free(&g);
  kt_data_free(&d);
  fake_fuse = 0;
  fakedev_backend.embedding_mean_backward = NULL;
  fakedev_ops = NULL;
  fakedev_nops = 0;
  fakedev_install();
}

/* ------------------------------------------------------------ refusals */

static kl_status a_hook(void *ud, kl_plan *p, kl_tensor **wgrad, int n) {
  (void)ud, (void)p, (void)wgrad, (void)n;
  return KL_OK;
}
static kl_status an_ext(void *ud, kl_plan *p, int node, kl_tensor *const *ins, int nin,
                        kl_tensor **subs) {
  (void)ud, (void)p, (void)node, (void)ins, (void)nin, (void)subs;
  return KL_OK;
}

static void test_refusals(void) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  kt_data d = make_data(SPARSE, KL_FLOAT32);
  long live0 = fakedev_live();
  /* a trained weight on the host, the plan on the device (and the other way) */
  kt_model g = build(SPARSE, KL_FLOAT32, &o, FAKEDEV, 3);
  int feeds[2], outs[1], ws[2];
  kl_stype gst[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
  for (int k = 0; k < 2; k++) feeds[k] = g.p->feeds[k], ws[k] = g.p->weights[k];
  outs[0] = g.p->outputs[0];
  kl_plan *q = NULL;
  CHECK_OK(kl_tensor_move(g.w[1], KL_CPU));
  kl_plan_spec s1 = {feeds, 2, outs, 1, g.p->loss, ws, 2, gst, &o, FAKEDEV};
  CHECK_ERR(kl_plan_new(g.g, &s1, &q), KL_EINVAL, "weights[2] ('b') is on cpu(0) and the plan on gpu(0)");
  kl_plan_spec s2 = {feeds, 2, outs, 1, g.p->loss, ws, 2, gst, &o, KL_CPU};
  CHECK_ERR(kl_plan_new(g.g, &s2, &q), KL_EINVAL, "weights[1] ('W') is on gpu(0) and the plan on cpu(0)");
  /* the device plan's weight moved after it was made */
  kl_epoch_opts eo = {.batch_size = 16};
  double l = 0;
  CHECK_ERR(kl_plan_fit_epoch(g.p, &d.x, 1, d.y, &eo, &l, NULL), KL_EINVAL,
            "forward: weight 2 ('b') is on cpu(0) and the plan on gpu(0)");
  CHECK_OK(kl_tensor_move(g.w[1], FAKEDEV));
  CHECK_OK(kl_plan_fit_epoch(g.p, &d.x, 1, d.y, &eo, &l, NULL));
  /* device data: the plan copies batches, fit slices host data */
  kl_tensor *dx = NULL;
  CHECK_OK(kl_tensor_to(d.x, FAKEDEV, &dx));
  CHECK_ERR(kl_plan_fit_epoch(g.p, &dx, 1, d.y, &eo, &l, NULL), KL_EUNSUPPORTED,
            "fit: the tensor is on gpu(0)");
  kl_tensor *pr = NULL;
  CHECK_ERR(kl_plan_predict(g.p, &dx, 1, 16, &pr), KL_EUNSUPPORTED, "predict: the tensor is on gpu(0)");
  /* a device batch fed to one step is fine: it is there already */
  kl_tensor *dy = NULL, *f2[2];
  CHECK_OK(kl_tensor_to(d.y, FAKEDEV, &dy));
  f2[0] = dx, f2[1] = dy;
  CHECK_OK(kl_plan_train_step(g.p, f2, &l));
  /* hooks read host memory: refused on a device */
  kl_plan_set_grad_hook(g.p, a_hook, NULL, NULL);
  CHECK_ERR(kl_plan_train_step(g.p, f2, &l), KL_EUNSUPPORTED,
            "train_step: a gradient hook (distributed training) on a plan on gpu(0)");
  CHECK_ERR(kl_plan_train_step_empty(g.p), KL_EUNSUPPORTED, "gradient hook");
  kl_plan_set_grad_hook(g.p, NULL, NULL, NULL);
  kl_node_ext ext = {an_ext, NULL, NULL};
  int dot = -1;
  for (int q2 = 0; q2 < g.p->norder; q2++)
    if (kl_graph_kind(g.g, g.p->order[q2]) == KL_NODE_OP && dot < 0) dot = g.p->order[q2];
  CHECK_ERR(kl_plan_set_node_ext(g.p, dot, &ext, NULL), KL_EUNSUPPORTED,
            "a node hook (a sharded Embedding) on a plan on gpu(0)");
  kl_tensor_release(dx);
  kl_tensor_release(dy);
  kt_model_free(&g);
  CHECK(fakedev_live() == live0);
  /* no backend: a device plan cannot be made */
  kl_device_register(NULL);
  kl_graph *gg = NULL;
  CHECK_OK(kl_graph_new(&gg));
  int x = -1;
  kl_meta mx = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 2}};
  CHECK_OK(kl_graph_placeholder(gg, &mx, "x", &x));
  kl_plan_spec s3 = {&x, 1, &x, 1, -1, NULL, 0, NULL, NULL, FAKEDEV};
  CHECK_ERR(kl_plan_new(gg, &s3, &q), KL_ENODEV, "plan: no CUDA device");
  kl_graph_free(gg);
  fakedev_install();
  kt_data_free(&d);
}

/* An inference plan on the device: forward's outputs stay there, predict returns host. */
static void test_inference(void) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  kt_data d = make_data(MLP, KL_FLOAT64);
  kt_model g = build(MLP, KL_FLOAT64, &o, FAKEDEV, 11), c = build(MLP, KL_FLOAT64, &o, KL_CPU, 11);
  int feeds[1] = {g.p->feeds[0]}, outs[1] = {g.p->outputs[0]};
  kl_plan *pg = NULL, *pc = NULL;
  kl_plan_spec sg = {feeds, 1, outs, 1, -1, NULL, 0, NULL, NULL, FAKEDEV};
  kl_plan_spec sc = {feeds, 1, outs, 1, -1, NULL, 0, NULL, NULL, KL_CPU};
  CHECK_OK(kl_plan_new(g.g, &sg, &pg));
  CHECK_OK(kl_plan_new(c.g, &sc, &pc));
  CHECK_OK(kl_plan_forward(pg, &d.x, 1)); /* training: dropout on the device */
  CHECK_OK(kl_plan_forward(pc, &d.x, 1));
  CHECK(kl_plan_output(pg, 0)->device == FAKEDEV && same_bits(kl_plan_output(pg, 0), kl_plan_output(pc, 0)));
  kl_tensor *a = NULL, *b = NULL;
  CHECK_OK(kl_plan_predict(pg, &d.x, 1, 7, &a));
  CHECK_OK(kl_plan_predict(pc, &d.x, 1, 7, &b));
  CHECK(a && a->device == KL_CPU && same_bits(a, b));
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_plan_free(pg);
  kl_plan_free(pc);
  /* a host plan that only differentiates the device weights (K.gradients): it reads them
   * through host copies, its gradients are the CPU's */
  kl_plan *hg = NULL, *hc = NULL;
  kl_plan_spec dg = {g.p->feeds, 2, g.p->outputs, 1, g.p->loss, g.p->weights, g.p->nweights,
                     NULL, NULL, KL_CPU};
  kl_plan_spec dc = {c.p->feeds, 2, c.p->outputs, 1, c.p->loss, c.p->weights, c.p->nweights,
                     NULL, NULL, KL_CPU};
  CHECK_OK(kl_plan_new(g.g, &dg, &hg));
  CHECK_OK(kl_plan_new(c.g, &dc, &hc));
  kl_tensor *f[2] = {d.x, d.y};
  CHECK_OK(kl_plan_forward(hg, f, 0));
  CHECK_OK(kl_plan_forward(hc, f, 0));
  CHECK(kl_plan_loss(hg) == kl_plan_loss(hc));
  CHECK_OK(kl_plan_backward(hg));
  CHECK_OK(kl_plan_backward(hc));
  for (int k = 0; k < g.p->nweights; k++)
    CHECK(kl_plan_grad(hg, k)->device == KL_CPU && same_bits(kl_plan_grad(hg, k), kl_plan_grad(hc, k)));
  kl_plan_free(hg);
  kl_plan_free(hc);
  kt_model_free(&g);
  kt_model_free(&c);
  kt_data_free(&d);
}

int main(void) {
  kl_rng_seed(&rng, 20261206);
  fakedev_install();
  kl_set_warn_handler(kltest_on_warn, NULL); /* the fallbacks' one-time warnings */
  long live0 = fakedev_live();
  for (int kind = 0; kind < NKINDS; kind++)
    for (int ok = 0; ok < KL_OPT_COUNT; ok++)
      for (int lazy = 0; lazy <= 1; lazy++)
        for (int f64 = 0; f64 <= 1; f64++) {
          kl_optimizer o;
          CHECK_OK(kl_optimizer_init(&o, (kl_opt_kind)ok));
          o.lazy_update = lazy;
          if (ok == KL_OPT_SGD && lazy) o.momentum = 0.9; /* both SGD forms */
          compare_fit(kind, f64 ? KL_FLOAT64 : KL_FLOAT32, &o);
        }
  test_backend_update();
  kl_optimizer sgd, adam;
  CHECK_OK(kl_optimizer_init(&sgd, KL_OPT_SGD));
  sgd.momentum = 0.9;
  CHECK_OK(kl_optimizer_init(&adam, KL_OPT_ADAM));
  for (int kind = 0; kind < NKINDS; kind++) {
    sweep(kind, &adam);
    sweep(kind, &sgd);
  }
  test_refusals();
  test_inference();
  test_fused_mean();
  CHECK(fakedev_live() == live0);
  KLTEST_DONE();
}
