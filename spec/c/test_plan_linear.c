/* test_plan_linear.c: fit's linear step (backend/src/plan_linear.c: a Dense(1[, sigmoid])
 * on csr rows with an mse or binary-crossentropy loss, trained on the data's rows without
 * tensors) must give the same bits as the general step: weights, bias, optimizer states,
 * step count and the epoch's loss, against kl_plan_train_step on the same batches (which
 * never takes it) and against fit with the op fusions off (shuffled epochs): every
 * optimizer rule and SGD flag set, f32 / f64, dense / row_sparse W, with and without bias,
 * sigmoid or none, mse / crossentropy, labels of another dtype than the placeholder's, a
 * sample-weight input left empty, batch sizes from 1 to 1,200 (slots by rank, by first
 * touch, the direct accumulator), at 1 and 2 threads (a step of >= 16,384 entries splits
 * W's rows over the threads; rows that touch the columns where the threads' ranges meet),
 * and 1 vs 2 threads the same bits. It must run where it applies (the plan's
 * counter) and not where it does not (metrics, sample weights, N > 1, another op in the
 * plan, a dense gradient, a non-lazy optimizer); a label out of range leaves the step to the
 * general one with nothing written; after any allocation failure in an epoch its marks are
 * zero and a fresh epoch is right. */
#include <omp.h>
#include <stdlib.h>
#include "kl/graph.h"
#include "kl/layers.h"
#include "kl/optim.h"
#include "kltest.h"
#include "kltest_csrnet.h"
#include "plan_internal.h"
#include "plan_linear.h"

static kl_rng rng;

/* The model: what varies. */
typedef struct cfg {
  kl_dtype dt;     /* x, W, b */
  kl_dtype ydt;    /* the label placeholder */
  int64_t C;
  kl_stype wst;    /* W dense or row_sparse */
  kl_stype gst;    /* W's gradient */
  int bias, sigmoid, bce, sw; /* sw: the loss takes a sample-weight placeholder */
  int extra;       /* another op in the plan: the loss + 0 * sum(pred) */
  int64_t N;       /* W's width */
} cfg;

static kt_net make_net(const cfg *c, const kl_optimizer *o, uint64_t wseed, int fuse) {
  kt_net n;
  const int prev = kl_plan_set_fuse_enabled(fuse);
  kt_net_begin(&n, c->dt, c->C, c->N, c->wst, wseed, 0.125);
  int ix, iy, iw, ib = -1, is = -1, d, pred, loss, two[3];
  kl_meta mx = {c->dt, KL_STYPE_CSR, 2, {-1, c->C}}, my = {c->ydt, KL_STYPE_DEFAULT, 2, {-1, c->N}};
  kl_meta ms = {c->dt, KL_STYPE_DEFAULT, 1, {-1}};
  CHECK_OK(kl_graph_placeholder(n.g, &mx, "x", &ix));
  CHECK_OK(kl_graph_placeholder(n.g, &my, "y", &iy));
  if (c->sw) CHECK_OK(kl_graph_placeholder(n.g, &ms, "sw", &is));
  CHECK_OK(kl_graph_variable(n.g, n.w, 1, "W", &iw));
  if (c->bias) CHECK_OK(kl_graph_variable(n.g, n.b, 1, "b", &ib));
  two[0] = ix, two[1] = iw;
  CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d));
  pred = d;
  if (c->bias) {
    two[0] = d, two[1] = ib;
    CHECK_OK(kl_graph_op(n.g, KL_OP_BIAS_ADD, two, 2, NULL, &pred));
  }
  if (c->sigmoid) {
    int s;
    CHECK_OK(kl_graph_op(n.g, KL_OP_SIGMOID, &pred, 1, NULL, &s));
    pred = s;
  }
  two[0] = iy, two[1] = pred, two[2] = is;
  CHECK_OK(kl_graph_op(n.g, c->bce ? KL_OP_LOSS_BCE : KL_OP_LOSS_MSE, two, c->sw ? 3 : 2, NULL,
                       &loss));
  if (c->extra) { /* loss + 0 * sum(pred): the same loss, one more op */
    int sm, z, l2;
    kl_attrs at = {0};
    CHECK_OK(kl_graph_op(n.g, KL_OP_SUM, &pred, 1, &at, &sm));
    kl_attrs zs = {0};
    zs.scalar = 0.0;
    CHECK_OK(kl_graph_op(n.g, KL_OP_MUL_SCALAR, &sm, 1, &zs, &z));
    two[0] = loss, two[1] = z;
    CHECK_OK(kl_graph_op(n.g, KL_OP_ADD, two, 2, NULL, &l2));
    loss = l2;
  }
  int feeds[3] = {ix, iy, is}, weights[2] = {iw, ib};
  kl_stype gs[2] = {c->gst, KL_STYPE_DEFAULT};
  kl_plan_spec spec = {feeds, c->sw ? 3 : 2, &pred, 1, loss, weights, c->bias ? 2 : 1, gs, o};
  CHECK_OK(kl_plan_new(n.g, &spec, &n.p));
  kl_plan_set_fuse_enabled(prev);
  return n;
}

static int same_nets(const kt_net *a, const kt_net *b, int bias) {
  int ok = a->p && b->p && kt_same_bits(a->w, b->w) && (!bias || kt_same_bits(a->b, b->b)) &&
           kl_plan_step_count(a->p) == kl_plan_step_count(b->p);
  for (int k = 0; ok && k < (bias ? 2 : 1); k++)
    for (int s = 0; ok && s < kl_plan_num_states(a->p, k); s++)
      ok = kt_same_bits(kl_plan_state(a->p, k, s), kl_plan_state(b->p, k, s));
  return ok;
}

/* Labels for the config: {0, 1} and 0.25 for the crossentropy, reals for mse; of dtype ydt
 * (which may differ from the placeholder's: the feed casts them). */
static kl_tensor *labels(const cfg *c, int64_t R, kl_dtype ydt) {
  int64_t ys[2] = {R, c->N};
  kl_tensor *y = NULL;
  CHECK_OK(kl_tensor_new_dense(ydt, 2, ys, &y));
  for (int64_t k = 0; k < R * c->N; k++) {
    const double u = kl_rng_uniform(&rng);
    kl_tensor_data_set(y, k, c->bce ? (u < 0.1 ? 0.25 : u < 0.55 ? 1.0 : 0.0)
                                    : ydt == KL_INT64 ? (double)(int)(u * 4) - 2 : u * 2 - 1.0 / 3);
  }
  return y;
}

static const char *cfg_str(const cfg *c, const kl_optimizer *o, char *buf, size_t cap) {
  snprintf(buf, cap, "kind=%d mom=%g nest=%d clip=%g wd=%g dt=%d ydt=%d C=%lld wst=%d gst=%d "
           "bias=%d sig=%d bce=%d sw=%d extra=%d N=%lld threads=%d", (int)o->kind, o->momentum,
           o->nesterov, o->clipvalue, o->weight_decay, (int)c->dt, (int)c->ydt, (long long)c->C,
           (int)c->wst, (int)c->gst, c->bias, c->sigmoid, c->bce, c->sw, c->extra,
           (long long)c->N, omp_get_max_threads());
  return buf;
}

/* Two epochs of fit (no shuffle) against the same batches by train_step; want_lin: whether
 * the linear step must run. ydata: the labels' dtype (the placeholder's when < 0). */
static void vs_train_step(const cfg *c, const kl_optimizer *o, int64_t R, int nz, int64_t bs,
                          int ydata, int want_lin) {
  kl_tensor *x = kt_rand_csr(&rng, c->dt, R, c->C, nz);
  kl_tensor *y = labels(c, R, ydata < 0 ? c->ydt : (kl_dtype)ydata);
  const uint64_t seed = kl_rng_next(&rng);
  kt_net a = make_net(c, o, seed, 1), b = make_net(c, o, seed, 1);
  kl_epoch_opts eo = {.batch_size = bs};
  kl_tensor *none = NULL;
  if (c->sw) {
    eo.nextra = 1;
    eo.extra = &none;
  }
  double la = 0, lb = 0;
  kl_tensor *sw0 = NULL;
  int64_t zero = 0;
  CHECK_OK(kl_tensor_new_dense(c->dt, 1, &zero, &sw0));
  for (int e = 0; e < 2 && a.p && b.p; e++) {
    CHECK_OK(kl_plan_fit_epoch(a.p, &x, 1, y, &eo, &la, NULL));
    lb = kt_train_steps(b.p, x, y, R, bs, sw0);
  }
  const int ok = same_nets(&a, &b, c->bias) && la == lb;
  CHECK(ok);
  if (a.p) {
    CHECK((a.p->lin_steps > 0) == want_lin);
    CHECK(b.p->lin_steps == 0);
    CHECK(kl_linear_clean(a.p));
  }
  if (!ok || (a.p && (a.p->lin_steps > 0) != want_lin)) {
    char buf[512];
    fprintf(stderr, "  case %s R=%lld bs=%lld ydata=%d: lin_steps=%lld loss %.17g vs %.17g\n",
            cfg_str(c, o, buf, sizeof buf), (long long)R, (long long)bs, ydata,
            a.p ? (long long)a.p->lin_steps : -1LL, la, lb);
  }
  kl_tensor_release(sw0);
  kt_net_free(&a);
  kt_net_free(&b);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* fit with the linear step against fit with the op fusions off, shuffled (rows or whole
 * batches), three epochs; and, at 2 threads, against the same fit at 1 thread. */
static void vs_fit(const cfg *c, const kl_optimizer *o, int64_t R, int nz, int64_t bs, int shuffle,
                   int want_par) {
  kl_tensor *x = kt_rand_csr(&rng, c->dt, R, c->C, nz), *y = labels(c, R, c->ydt);
  const uint64_t seed = kl_rng_next(&rng), sseed = kl_rng_next(&rng);
  kt_net a = make_net(c, o, seed, 1), b = make_net(c, o, seed, 0), s1 = make_net(c, o, seed, 1);
  kl_rng ra, rb, r1;
  kl_rng_seed(&ra, sseed);
  kl_rng_seed(&rb, sseed);
  kl_rng_seed(&r1, sseed);
  kl_epoch_opts ea = {.batch_size = bs, .shuffle = shuffle, .rng = &ra};
  kl_epoch_opts eb = ea, e1 = ea;
  eb.rng = &rb;
  e1.rng = &r1;
  kl_tensor *none = NULL;
  if (c->sw) ea.nextra = eb.nextra = e1.nextra = 1, ea.extra = eb.extra = e1.extra = &none;
  double la = 0, lb = 0, l1 = 0;
  const int th = omp_get_max_threads();
  for (int e = 0; e < 3 && a.p && b.p && s1.p; e++) {
    CHECK_OK(kl_plan_fit_epoch(a.p, &x, 1, y, &ea, &la, NULL));
    CHECK_OK(kl_plan_fit_epoch(b.p, &x, 1, y, &eb, &lb, NULL));
    omp_set_num_threads(1);
    CHECK_OK(kl_plan_fit_epoch(s1.p, &x, 1, y, &e1, &l1, NULL));
    omp_set_num_threads(th);
  }
  const int ok = same_nets(&a, &b, c->bias) && same_nets(&a, &s1, c->bias) && la == lb && la == l1;
  CHECK(ok);
  CHECK(a.p && a.p->lin_steps > 0 && b.p->lin_steps == 0 && kl_linear_clean(a.p));
  /* want_par: batches of >= 16,384 entries, so at 2 threads some steps split */
  CHECK(!want_par || th < 2 || kl_linear_par_steps(a.p) > 0);
  if (!ok) {
    char buf[512];
    fprintf(stderr, "  fit case %s R=%lld bs=%lld shuffle=%d: loss %.17g / %.17g / %.17g\n",
            cfg_str(c, o, buf, sizeof buf), (long long)R, (long long)bs, shuffle, la, lb, l1);
  }
  kt_net_free(&a);
  kt_net_free(&b);
  kt_net_free(&s1);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* Rows of 40 entries, 3 of them the columns around the split of W's rows between two
 * threads (64-column words in halves), the rest random: batches of 512 (>= 16,384 entries:
 * the rows split over the threads), against train_step. */
static void boundary(const kl_optimizer *o, int64_t C) {
  cfg c = {KL_FLOAT32, KL_FLOAT32, C, KL_STYPE_ROW_SPARSE, KL_STYPE_ROW_SPARSE, 1, 1, 1, 0, 0, 1};
  const int64_t R = 1024, nz = 40, split = (C + 63) / 64 / 2 * 64;
  int64_t *ip = malloc((size_t)(R + 1) * sizeof *ip), *ix = malloc((size_t)(R * nz) * sizeof *ix);
  double *v = malloc((size_t)(R * nz) * sizeof *v);
  if (!ip || !ix || !v) exit(2);
  ip[0] = 0;
  for (int64_t i = 0; i < R; i++) {
    int64_t n = ip[i];
    for (int64_t k = 0; k < nz - 3; k++) { /* below the split, then the 3, then above */
      const int64_t col = k < (nz - 3) / 2 ? (int64_t)(kl_rng_uniform(&rng) * (double)(split - 1) / 20) + k * (split - 1) / 20
                                           : split + 2 + (int64_t)(kl_rng_uniform(&rng) * (double)(C - split - 3) / 20) + (k - (nz - 3) / 2) * (C - split - 3) / 20;
      if (k == (nz - 3) / 2)
        for (int64_t d = -1; d <= 1; d++) ix[n] = split + d, v[n++] = kl_rng_uniform(&rng) - 0.5;
      ix[n] = col;
      v[n++] = kl_rng_uniform(&rng) * 2 - 1;
    }
    ip[i + 1] = n;
  }
  kl_tensor *x = kt_csr_of(c.dt, R, C, ip[R], ip, ix, v), *y = labels(&c, R, KL_FLOAT64);
  free(ip);
  free(ix);
  free(v);
  CHECK_OK(kl_tensor_check_format(x, "boundary", 1));
  const uint64_t seed = kl_rng_next(&rng);
  kt_net a = make_net(&c, o, seed, 1), b = make_net(&c, o, seed, 1);
  kl_epoch_opts eo = {.batch_size = 512};
  double la = 0;
  CHECK_OK(kl_plan_fit_epoch(a.p, &x, 1, y, &eo, &la, NULL));
  const double lb = kt_train_steps(b.p, x, y, R, 512, NULL);
  const int ok = same_nets(&a, &b, 1) && la == lb && a.p->lin_steps == 2;
  CHECK(ok);
  if (!ok) fprintf(stderr, "  boundary case kind=%d C=%lld threads=%d\n", (int)o->kind, (long long)C, omp_get_max_threads());
  kt_net_free(&a);
  kt_net_free(&b);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* Where the linear step does not apply, fit still runs (the general step) and lin_steps
 * stays 0: metrics, sample weights given, N > 1, another op, a dense gradient, not lazy. */
static void not_taken(const kl_optimizer *o) {
  cfg c = {KL_FLOAT32, KL_FLOAT32, 3000, KL_STYPE_ROW_SPARSE, KL_STYPE_ROW_SPARSE, 1, 1, 1, 1, 0, 1};
  const int64_t R = 64;
  kl_tensor *x = kt_rand_csr(&rng, c.dt, R, c.C, 8), *y = labels(&c, R, c.ydt), *sw = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, &R, &sw));
  kl_tensor_fill(sw, 0.5);
  kt_net n = make_net(&c, o, 3, 1);
  kl_epoch_opts eo = {.batch_size = 16, .nextra = 1, .extra = &sw};
  double l = 0, m = 0;
  CHECK_OK(kl_plan_fit_epoch(n.p, &x, 1, y, &eo, &l, NULL)); /* weights given */
  CHECK(n.p->lin_steps == 0 && n.p->fused_listed_steps > 0);
  kl_tensor *none = NULL;
  const int metric = KL_METRIC_BINARY_ACCURACY;
  kl_epoch_opts em = {.batch_size = 16, .nextra = 1, .extra = &none, .nmetrics = 1, .metrics = &metric};
  CHECK_OK(kl_plan_fit_epoch(n.p, &x, 1, y, &em, &l, &m)); /* metrics */
  CHECK(n.p->lin_steps == 0);
  em.nmetrics = 0;
  CHECK_OK(kl_plan_fit_epoch(n.p, &x, 1, y, &em, &l, NULL)); /* and now it applies */
  CHECK(n.p->lin_steps == 4);
  kt_net_free(&n);
  kl_tensor_release(sw);
  kl_tensor_release(x);
  kl_tensor_release(y);
  cfg d = c;
  d.sw = 0;
  d.extra = 1;
  vs_train_step(&d, o, 48, 6, 16, -1, 0); /* another op in the plan */
  d = c;
  d.sw = 0;
  d.N = 2;
  d.bce = 0;
  d.sigmoid = 0;
  vs_train_step(&d, o, 48, 6, 16, -1, 0); /* N > 1 */
  d = c;
  d.sw = 0;
  d.wst = d.gst = KL_STYPE_DEFAULT;
  vs_train_step(&d, o, 48, 6, 16, -1, 0); /* a dense gradient */
  kl_optimizer nl = *o;
  nl.lazy_update = 0;
  d = c;
  d.sw = 0;
  vs_train_step(&d, &nl, 48, 6, 16, -1, 0); /* not lazy */
}

/* A label out of [0, 1] for the crossentropy: kl_linear_step leaves the step (done = 0),
 * nothing written, its marks clear; slots by rank (C = 70,000) and the direct accumulator
 * (C = 100: one thread's rows pass, checked before it writes); the big batch at 2 threads
 * (>= 16,384 entries: the step split over them, checked by its count). */
static void bad_label(void) {
  kl_optimizer o = kt_opt(KL_OPT_ADAGRAD, 0, 0, 0, 0, 1);
  cfg c = {KL_FLOAT32, KL_FLOAT32, 70000, KL_STYPE_ROW_SPARSE, KL_STYPE_ROW_SPARSE, 1, 1, 1, 0, 0, 1};
  const int saved = omp_get_max_threads();
  for (int k = 0; k < 4; k++) {
    const int big = k & 1;
    c.C = k < 2 ? 70000 : 100;
    const int64_t R = big ? 1600 : 8;
    omp_set_num_threads(big ? 2 : 1);
    kl_tensor *x = kt_rand_csr(&rng, c.dt, R, c.C, 30), *y = labels(&c, R, c.ydt);
    kl_tensor_data_set(y, R - 3, 1.5);
    kt_net n = make_net(&c, &o, 9, 1);
    kl_tensor *w0 = NULL, *b0 = NULL;
    CHECK_OK(kl_tensor_copy(n.w, &w0));
    CHECK_OK(kl_tensor_copy(n.b, &b0));
    double l = 0;
    int done = 1;
    CHECK_OK(kl_linear_step(n.p, x, y, NULL, 0, R, &l, &done));
    CHECK(done == 0 && kt_same_bits(n.w, w0) && kt_same_bits(n.b, b0) && kl_plan_step_count(n.p) == 0);
    CHECK(kl_linear_clean(n.p) && kl_linear_par_steps(n.p) == big);
    /* fit refuses it before any step, with the loss's message */
    kl_epoch_opts eo = {.batch_size = R};
    CHECK_ERR(kl_plan_fit_epoch(n.p, &x, 1, y, &eo, &l, NULL), KL_EINDEX, "out of range [0, 1]");
    CHECK(kt_same_bits(n.w, w0) && kl_linear_clean(n.p));
    kl_tensor_release(w0);
    kl_tensor_release(b0);
    kt_net_free(&n);
    kl_tensor_release(x);
    kl_tensor_release(y);
  }
  omp_set_num_threads(saved);
}

/* Every allocation of an epoch fails once in turn: the epoch fails cleanly or succeeds,
 * the marks are zero after it, and a fresh epoch on a fresh net matches the reference. */
static void failure_sweep(int64_t C, int64_t R, int nz, int64_t bs) {
  kl_optimizer o = kt_opt(KL_OPT_ADAM, 0, 0, 0, 0, 1);
  cfg c = {KL_FLOAT32, KL_FLOAT32, C, KL_STYPE_ROW_SPARSE, KL_STYPE_ROW_SPARSE, 1, 1, 1, 0, 0, 1};
  kl_tensor *x = kt_rand_csr(&rng, KL_FLOAT32, R, C, nz), *y = labels(&c, R, KL_FLOAT64);
  kl_epoch_opts eo = {.batch_size = bs};
  kt_net ref = make_net(&c, &o, 5, 1);
  double l = 0;
  CHECK_OK(kl_plan_fit_epoch(ref.p, &x, 1, y, &eo, &l, NULL));
  CHECK(ref.p && ref.p->lin_steps == (R + bs - 1) / bs);
  /* batches of >= 16,384 entries at 2 threads: the split step's allocations swept too */
  CHECK(omp_get_max_threads() < 2 || bs * nz < 20000 || kl_linear_par_steps(ref.p) > 0);
  int failed = 0;
  for (long k = 1; k <= 400; k++) {
    kt_net n = make_net(&c, &o, 5, 1);
    if (!n.p) break;
    kl_alloc_fail_at(k);
    kl_status st = kl_plan_fit_epoch(n.p, &x, 1, y, &eo, &l, NULL);
    const long made = kl_alloc_fail_at(0);
    CHECK(st == KL_OK || st == KL_ENOMEM);
    failed += st == KL_ENOMEM || n.p->lin_steps < ref.p->lin_steps;
    CHECK(kl_linear_clean(n.p));
    if (st == KL_OK) CHECK(same_nets(&n, &ref, 1)); /* steps the general one took: same bits */
    kt_net_free(&n);
    if (made < k) break;
  }
  CHECK(failed > 0);
  kt_net m = make_net(&c, &o, 5, 1);
  CHECK_OK(kl_plan_fit_epoch(m.p, &x, 1, y, &eo, &l, NULL));
  CHECK(same_nets(&m, &ref, 1));
  kt_net_free(&m);
  kt_net_free(&ref);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

int main(void) {
  kl_rng_seed(&rng, 23);
  const kl_optimizer opts[] = {
      kt_opt(KL_OPT_SGD, 0, 0, 0, 0, 1),         kt_opt(KL_OPT_SGD, 0.9, 0, 0, 0, 1),
      kt_opt(KL_OPT_SGD, 0.9, 1, 0, 0, 1),       kt_opt(KL_OPT_SGD, 0, 0, 0.01, 0.05, 2),
      kt_opt(KL_OPT_SGD, 0.5, 0, 0.01, 0.05, 2), kt_opt(KL_OPT_SGD, 0.9, 1, 0.01, 0.05, 0.5),
      kt_opt(KL_OPT_ADAM, 0, 0, 0, 0, 1),        kt_opt(KL_OPT_ADAM, 0, 0, 0.01, 0.05, 2),
      kt_opt(KL_OPT_ADAGRAD, 0, 0, 0, 0, 1),     kt_opt(KL_OPT_ADAGRAD, 0, 0, 0.01, 0.02, 1),
      kt_opt(KL_OPT_RMSPROP, 0, 0, 0.01, 0.05, 1), kt_opt(KL_OPT_RMSPROP, 0, 0, 0, 0, 1),
      kt_opt(KL_OPT_FTRL, 0, 0, 0, 0, 1),        kt_opt(KL_OPT_FTRL, 0, 0, 0.01, 0.05, 1),
  };
  const size_t nopt = sizeof opts / sizeof opts[0];
  kl_optimizer ftrl_pow = kt_opt(KL_OPT_FTRL, 0, 0, 0, 0, 1);
  ftrl_pow.lr_power = -0.7;
  ftrl_pow.lamda1 = 0.001;
  ftrl_pow.l2 = 0.01;
  const kl_stype RSP = KL_STYPE_ROW_SPARSE, DNS = KL_STYPE_DEFAULT;
  const int saved = omp_get_max_threads();
  for (int th = 1; th <= 2; th++) {
    omp_set_num_threads(th);
    /* every rule x dtype x W stype x model: small batches (slots by rank: C = 60; by first
     * touch: C = 20,000, batch 4) */
    for (size_t i = 0; i < nopt + 1; i++) {
      const kl_optimizer *o = i < nopt ? &opts[i] : &ftrl_pow;
      for (int dt = 0; dt < 2; dt++)
        for (int ws = 0; ws < 2; ws++)
          for (int model = 0; model < 5; model++) {
            /* bias, sigmoid, bce: sigmoid + bce, + mse, linear mse, bce on raw output
             * (clipped), no bias */
            static const int mb[5][3] = {{1, 1, 1}, {1, 1, 0}, {1, 0, 0}, {1, 0, 1}, {0, 1, 1}};
            cfg c = {dt ? KL_FLOAT64 : KL_FLOAT32, dt ? KL_FLOAT64 : KL_FLOAT32, 60,
                     ws ? RSP : DNS, RSP, mb[model][0], mb[model][1], mb[model][2], model == 0,
                     0, 1};
            vs_train_step(&c, o, 100, 6, 16, -1, 1);
            c.C = 20000;
            vs_train_step(&c, o, 40, 6, 4, -1, 1);
            vs_train_step(&c, o, 12, 6, 1, -1, 1); /* one row a step: its own indices */
          }
    }
    /* batches large enough to split W's rows over the threads (>= 16,384 entries), W7-like
     * and W5-like widths, batch 1, and labels of other dtypes than the placeholder's */
    for (size_t i = 0; i < nopt; i += (th == 1 ? 1 : 2)) {
      cfg c = {KL_FLOAT32, KL_FLOAT32, 262144, RSP, RSP, 1, 1, 1, 0, 0, 1};
      vs_train_step(&c, &opts[i], 1500, 39, 512, KL_FLOAT64, 1);
      c.dt = c.ydt = KL_FLOAT64;
      c.C = 70000;
      vs_train_step(&c, &opts[i], 900, 20, 300, KL_FLOAT32, 1);
      c.dt = c.ydt = KL_FLOAT32;
      /* C <= 4 x the entries but W past 128 KiB: direct for SGD, by rank for the others */
      vs_train_step(&c, &opts[i], 1200, 30, 1200, -1, 1);
      c.C = 1000000;
      vs_train_step(&c, &opts[i], 700, 39, 512, -1, 1);
      c.C = 262144;
      vs_train_step(&c, &opts[i], 30, 39, 1, -1, 1);
      c.bce = 0;
      c.sigmoid = 0;
      vs_train_step(&c, &opts[i], 800, 39, 400, KL_INT64, 1);
      /* two 64-column words, every column touched: the threads' ranges meet at column 64
       * (direct mode: C <= 4 x the entries) */
      c.C = 130;
      vs_train_step(&c, &opts[i], 1200, 20, 1200, -1, 1);
    }
    /* slots by rank at 2 threads: rows that all touch the columns where the threads' ranges
     * meet */
    for (size_t i = 0; i < nopt; i += 2) boundary(&opts[i], 70000);
    /* shuffled: rows and whole batches, against fit with the fusions off and (at 2
     * threads) the same fit at 1 thread */
    for (size_t i = 0; i < nopt; i += 3) {
      cfg c = {KL_FLOAT32, KL_FLOAT32, 100000, RSP, RSP, 1, 1, 1, 1, 0, 1};
      vs_fit(&c, &opts[i], 1200, 30, 512, 1, 0);
      vs_fit(&c, &opts[i], 300, 30, 32, KL_SHUFFLE_BATCH, 0);
      vs_fit(&c, &opts[i], 40, 30, 1, 1, 0);
      vs_fit(&c, &opts[i], 2400, 40, 1200, 1, 1); /* shuffled batches split over the threads */
      c.dt = c.ydt = KL_FLOAT64;
      c.wst = DNS;
      c.C = 500;
      vs_fit(&c, &opts[i], 600, 12, 400, 1, 0);
    }
  }
  omp_set_num_threads(saved);
  not_taken(&opts[6]);
  bad_label();
  failure_sweep(60, 48, 6, 16);
  failure_sweep(20000, 48, 6, 4);
  omp_set_num_threads(2);
  failure_sweep(262144, 1600, 39, 800);
  omp_set_num_threads(saved);
  KLTEST_DONE();
}
