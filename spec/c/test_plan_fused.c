/* test_plan_fused.c: the fused step of fit (plan_step.c: a csr . W weight's gradient left in the
 * pool's kept accumulator, updated by kl_optimizer_update_flagged, no compact gradient).
 * A fit epoch must end with the same bits (weights, optimizer states, loss) as the same
 * batches through kl_plan_train_step, which never fuses: for every optimizer rule and the
 * SGD flag combinations, f32 and f64, 1- and 3-wide W, dense and row_sparse W, with a bias.
 * The fused path must really run where it applies (the plan's counter) and not where it
 * does not (a dense gradient, a non-lazy optimizer, a weight used twice, too many columns),
 * and after any allocation failure in an epoch the kept buffers are zero and the next epoch
 * is right. The listed fused step (a weight too wide for the direct accumulator, at most
 * 4 MiB: the touched rows' sums listed in first-touch order and updated in that order, no
 * sort) is held to the same: every rule, f32/f64, 1/3 wide, dense/row_sparse W, at 1 and 2
 * threads, the kept column map zero after each epoch, its own allocation-failure sweep. */
#include <omp.h>
#include <stdlib.h>
#include "kl/graph.h"
#include "kl/optim.h"
#include "kltest.h"
#include "kltest_csrnet.h"
#include "plan_internal.h"
#include "plan_linear.h"

static kl_rng rng;
static int lin_on; /* make_net: the op fusions on (the linear step may run) */

/* pred = bias_add(x . W, b) (or x1 . W + x2 . W: W used twice, when twice), mse vs y. */
static kt_net make_net(kl_dtype dt, int64_t C, int64_t N, kl_stype wst, kl_stype gst,
                    const kl_optimizer *o, int twice, uint64_t wseed) {
  kt_net n;
  /* plans made with the op fusions off never take the linear step (plan_linear.c): the
   * flagged and listed steps are then what fit runs for N = 1 too */
  const int prev = kl_plan_set_fuse_enabled(lin_on);
  kt_net_begin(&n, dt, C, N, wst, wseed, 0.25);
  int ix, iy, iw, ib, d, pred, loss, two[2];
  kl_meta mx = {dt, KL_STYPE_CSR, 2, {-1, C}}, my = {dt, KL_STYPE_DEFAULT, 2, {-1, N}};
  CHECK_OK(kl_graph_placeholder(n.g, &mx, "x", &ix));
  CHECK_OK(kl_graph_placeholder(n.g, &my, "y", &iy));
  CHECK_OK(kl_graph_variable(n.g, n.w, 1, "W", &iw));
  CHECK_OK(kl_graph_variable(n.g, n.b, 1, "b", &ib));
  two[0] = ix, two[1] = iw;
  CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d));
  if (twice) {
    int d2;
    CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d2));
    two[0] = d, two[1] = d2;
    CHECK_OK(kl_graph_op(n.g, KL_OP_ADD, two, 2, NULL, &d));
  }
  two[0] = d, two[1] = ib;
  CHECK_OK(kl_graph_op(n.g, KL_OP_BIAS_ADD, two, 2, NULL, &pred));
  two[0] = iy, two[1] = pred;
  CHECK_OK(kl_graph_op(n.g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  int feeds[2] = {ix, iy}, weights[2] = {iw, ib};
  kl_stype gs[2] = {gst, KL_STYPE_DEFAULT};
  kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 2, gs, o};
  CHECK_OK(kl_plan_new(n.g, &spec, &n.p));
  kl_plan_set_fuse_enabled(prev);
  return n;
}

/* The plan's kept fused buffers (C flags, C x N values) are all zero. */
static int fused_clear(kl_plan *p, int64_t C, int64_t N, kl_dtype dt) {
  kl_pool *prev = kl_pool_enter(p->pool);
  const uint32_t *f = kl_pool_kept_zeroed(KL_KEPT_FUSEFLAG, (size_t)C * sizeof *f);
  const size_t ab = (size_t)(C * N) * kl_dtype_size(dt);
  const unsigned char *a = kl_pool_kept_zeroed(KL_KEPT_FUSEACC, ab);
  const uint32_t *m = kl_pool_kept_zeroed(KL_KEPT_COLMAP, (size_t)C * sizeof *m);
  int ok = f && a && m && !p->fused_list && !p->fused_lrows && p->fused_k < 0 &&
           kl_linear_clean(p);
  for (int64_t c = 0; ok && c < C; c++) ok = f[c] == 0 && m[c] == 0;
  for (size_t k = 0; ok && k < ab; k++) ok = a[k] == 0;
  kl_pool_leave(prev);
  return ok;
}

/* Two epochs of fit (batch 16, no shuffle) against the same batches by train_step.
 * want_fused: 0 not fused, 1 fused by the flagged step, 2 by the listed one, 3 the linear
 * step (plan_linear.c; lin_on). */
static void compare(const kl_optimizer *o, kl_dtype dt, int64_t C, int64_t N, kl_stype wst,
                    kl_stype gst, int twice, int nz, int want_fused) {
  const int64_t R = 100, bs = 16;
  kl_tensor *x = kt_rand_csr(&rng, dt, R, C, nz), *y = NULL;
  int64_t ys[2] = {R, N};
  CHECK_OK(kl_tensor_new_dense(dt, 2, ys, &y));
  for (int64_t k = 0; k < R * N; k++) kl_tensor_data_set(y, k, kl_rng_uniform(&rng) * 2 - 1);
  uint64_t seed = kl_rng_next(&rng);
  kt_net a = make_net(dt, C, N, wst, gst, o, twice, seed), b = make_net(dt, C, N, wst, gst, o, twice, seed);
  kl_epoch_opts eo = {.batch_size = bs};
  double la = 0, lb = 0;
  for (int e = 0; e < 2 && a.p && b.p; e++) {
    CHECK_OK(kl_plan_fit_epoch(a.p, &x, 1, y, &eo, &la, NULL));
    lb = kt_train_steps(b.p, x, y, R, bs, NULL);
  }
  int ok = a.p && b.p && la == lb && kt_same_bits(a.w, b.w) && kt_same_bits(a.b, b.b);
  for (int s = 0; ok && s < kl_plan_num_states(a.p, 0); s++)
    ok = kt_same_bits(kl_plan_state(a.p, 0, s), kl_plan_state(b.p, 0, s));
  CHECK(ok);
  if (a.p && b.p) {
    CHECK((a.p->fused_steps > 0) == (want_fused == 1 || want_fused == 2));
    CHECK((a.p->fused_listed_steps > 0) == (want_fused == 2));
    CHECK((a.p->lin_steps > 0) == (want_fused == 3));
    CHECK(b.p->lin_steps == 0);
    CHECK(a.p->fused_listed_steps == 0 || a.p->fused_listed_steps == a.p->fused_steps);
    CHECK(b.p->fused_steps == 0);
    CHECK(fused_clear(a.p, C, N, dt));
  }
  if (!ok || (a.p && ((a.p->fused_steps > 0) != (want_fused == 1 || want_fused == 2) ||
                      (a.p->fused_listed_steps > 0) != (want_fused == 2) ||
                      (a.p->lin_steps > 0) != (want_fused == 3))))
    fprintf(stderr, "  case kind=%d mom=%g nest=%d clip=%g dt=%d C=%lld N=%lld wst=%d gst=%d "
            "twice=%d threads=%d fused=%lld listed=%lld linear=%lld\n", (int)o->kind, o->momentum,
            o->nesterov, o->clipvalue, (int)dt, (long long)C, (long long)N, (int)wst, (int)gst,
            twice, omp_get_max_threads(), a.p ? (long long)a.p->fused_steps : -1LL,
            a.p ? (long long)a.p->fused_listed_steps : -1LL,
            a.p ? (long long)a.p->lin_steps : -1LL);
  kt_net_free(&a);
  kt_net_free(&b);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

/* Every allocation of an epoch fails once in turn: the epoch fails cleanly or succeeds, the
 * kept buffers are zero after it, and a fresh epoch on a fresh net matches the reference. */
static void failure_sweep(int64_t C, int listed) { /* listed: 2 = the linear step */
  kl_optimizer o = kt_opt(KL_OPT_SGD, 0.9, 0, 0, 0, 1);
  const int64_t R = 48;
  kl_tensor *x = kt_rand_csr(&rng, KL_FLOAT32, R, C, 6), *y = NULL;
  int64_t ys[2] = {R, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y));
  kl_tensor_fill(y, 0.5);
  kl_epoch_opts eo = {.batch_size = 16};
  kt_net ref = make_net(KL_FLOAT32, C, 1, KL_STYPE_ROW_SPARSE, KL_STYPE_ROW_SPARSE, &o, 0, 5);
  double l = 0;
  CHECK_OK(kl_plan_fit_epoch(ref.p, &x, 1, y, &eo, &l, NULL));
  if (listed == 2)
    CHECK(ref.p && ref.p->lin_steps == 3 && ref.p->fused_steps == 0);
  else
    CHECK(ref.p && ref.p->fused_steps == 3 && ref.p->fused_listed_steps == (listed ? 3 : 0));
  int failed = 0;
  for (long k = 1; k <= 400; k++) {
    kt_net n = make_net(KL_FLOAT32, C, 1, KL_STYPE_ROW_SPARSE, KL_STYPE_ROW_SPARSE, &o, 0, 5);
    if (!n.p) break;
    kl_alloc_fail_at(k);
    kl_status st = kl_plan_fit_epoch(n.p, &x, 1, y, &eo, &l, NULL);
    const long made = kl_alloc_fail_at(0); /* allocations since the hook was set */
    CHECK(st == KL_OK || st == KL_ENOMEM);
    failed += st == KL_ENOMEM;
    CHECK(fused_clear(n.p, C, 1, KL_FLOAT32));
    kt_net_free(&n);
    if (made < k) break; /* the epoch made fewer than k allocations: all were covered */
  }
  CHECK(failed > 0);
  kt_net m = make_net(KL_FLOAT32, C, 1, KL_STYPE_ROW_SPARSE, KL_STYPE_ROW_SPARSE, &o, 0, 5);
  CHECK_OK(kl_plan_fit_epoch(m.p, &x, 1, y, &eo, &l, NULL));
  CHECK(kt_same_bits(m.w, ref.w) && kt_same_bits(m.b, ref.b));
  kt_net_free(&m);
  kt_net_free(&ref);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

int main(void) {
  kl_rng_seed(&rng, 17);
  lin_on = 0;
  const kl_optimizer opts[] = {
      kt_opt(KL_OPT_SGD, 0, 0, 0, 0, 1),        kt_opt(KL_OPT_SGD, 0.9, 0, 0, 0, 1),
      kt_opt(KL_OPT_SGD, 0.9, 1, 0, 0, 1),      kt_opt(KL_OPT_SGD, 0, 0, 0.01, 0.05, 2),
      kt_opt(KL_OPT_SGD, 0.5, 0, 0.01, 0.05, 2), kt_opt(KL_OPT_SGD, 0.9, 1, 0.01, 0.05, 0.5),
      kt_opt(KL_OPT_ADAM, 0, 0, 0, 0, 1),       kt_opt(KL_OPT_ADAM, 0, 0, 0.01, 0.05, 2),
      kt_opt(KL_OPT_ADAGRAD, 0, 0, 0, 0, 1),    kt_opt(KL_OPT_RMSPROP, 0, 0, 0.01, 0.05, 1),
      kt_opt(KL_OPT_FTRL, 0, 0, 0, 0, 1),
  };
  const kl_stype RSP = KL_STYPE_ROW_SPARSE, DNS = KL_STYPE_DEFAULT;
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
    for (int dt = 0; dt < 2; dt++)
      for (int64_t N = 1; N <= 3; N += 2)
        for (int ws = 0; ws < 2; ws++)
          compare(&opts[i], dt ? KL_FLOAT64 : KL_FLOAT32, 60, N, ws ? RSP : DNS, RSP, 0, 6, 1);
  /* where it does not apply: still the same bits, by the compact path */
  kl_optimizer sgd = opts[1], nonlazy = opts[1];
  nonlazy.lazy_update = 0;
  compare(&sgd, KL_FLOAT32, 60, 1, DNS, DNS, 0, 6, 0);      /* a dense gradient */
  compare(&nonlazy, KL_FLOAT32, 60, 1, RSP, RSP, 0, 6, 0);  /* not lazy */
  compare(&sgd, KL_FLOAT32, 60, 1, RSP, RSP, 1, 6, 0);      /* W used twice */
  compare(&sgd, KL_FLOAT32, 60, 9, RSP, RSP, 0, 6, 0);      /* N > 8 */
  /* C > 4 nnz: the listed step (C x N <= 4 MiB), at 1 and 2 threads */
  const int saved = omp_get_max_threads();
  for (int th = 1; th <= 2; th++) {
    omp_set_num_threads(th);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
      for (int dt = 0; dt < 2; dt++)
        for (int64_t N = 1; N <= 3; N += 2)
          for (int ws = 0; ws < 2; ws++)
            compare(&opts[i], dt ? KL_FLOAT64 : KL_FLOAT32, 5000, N, ws ? RSP : DNS, RSP, 0, 6, 2);
    compare(&sgd, KL_FLOAT32, 5000, 1, DNS, DNS, 0, 6, 0);     /* a dense gradient */
    compare(&nonlazy, KL_FLOAT32, 5000, 1, RSP, RSP, 0, 6, 0); /* not lazy */
    compare(&sgd, KL_FLOAT32, 5000, 1, RSP, RSP, 1, 6, 0);     /* W used twice */
    /* wider than 4 MiB: the sorted slot path, not fused */
    compare(&sgd, KL_FLOAT32, 1100000, 1, RSP, RSP, 0, 6, 0);
    compare(&opts[8], KL_FLOAT64, 550000, 1, RSP, RSP, 0, 6, 0);
    compare(&opts[8], KL_FLOAT32, 1000000, 1, RSP, RSP, 0, 6, 2); /* W5's width: listed */
  }
  omp_set_num_threads(saved);
  failure_sweep(60, 0);
  failure_sweep(5000, 1);
  /* the same nets with the op fusions on: N = 1 takes the linear step (plan_linear.c),
   * N = 3 the flagged / listed ones; every rule and flag, f32 / f64, at 1 and 2 threads
   * (spec/c/test_plan_linear.c holds its own cases) */
  lin_on = 1;
  for (int th = 1; th <= 2; th++) {
    omp_set_num_threads(th);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
      for (int dt = 0; dt < 2; dt++)
        for (int ws = 0; ws < 2; ws++) {
          compare(&opts[i], dt ? KL_FLOAT64 : KL_FLOAT32, 60, 1, ws ? RSP : DNS, RSP, 0, 6, 3);
          compare(&opts[i], dt ? KL_FLOAT64 : KL_FLOAT32, 5000, 1, ws ? RSP : DNS, RSP, 0, 6, 3);
          compare(&opts[i], dt ? KL_FLOAT64 : KL_FLOAT32, 5000, 3, ws ? RSP : DNS, RSP, 0, 6, 2);
        }
    compare(&sgd, KL_FLOAT32, 5000, 1, DNS, DNS, 0, 6, 0);     /* a dense gradient */
    compare(&nonlazy, KL_FLOAT32, 5000, 1, RSP, RSP, 0, 6, 0); /* not lazy */
    compare(&sgd, KL_FLOAT32, 5000, 1, RSP, RSP, 1, 6, 0);     /* W used twice */
    compare(&opts[8], KL_FLOAT32, 1100000, 1, RSP, RSP, 0, 6, 3); /* wider than 4 MiB */
  }
  omp_set_num_threads(saved);
  failure_sweep(60, 2);
  failure_sweep(5000, 2);
  KLTEST_DONE();
}
