/* test_reduce.c: sum and mean on dense, csr and row_sparse: exact, random against a dense
 * reference, zero sizes, errors and finite-difference gradients. */
#include <stdlib.h>
#include <omp.h>
#include "kltest.h"
#include "kltest_ops.h"
#include "kl/registry.h"
#include "ops_internal.h"

static kl_tensor *to_dense(const kl_tensor *t) {
  kl_tensor *d = NULL;
  CHECK_OK(kl_tensor_tostype(t, KL_STYPE_DEFAULT, &d));
  if (!d) exit(2);
  return d;
}

static kl_attrs axis_attrs(int has_axis, int axis, int keepdims) {
  kl_attrs a;
  memset(&a, 0, sizeof a);
  a.has_axis = has_axis;
  a.axis = axis;
  a.keepdims = keepdims;
  return a;
}

static kl_tensor *run(kl_op op, kl_tensor *x, kl_attrs a) {
  kl_tensor *o = NULL, *in[1] = {x};
  CHECK_OK(kl_op_run(op, in, 1, &a, &o));
  return o;
}

/* Dense reference in double: float64 tensor of the inferred shape. */
static kl_tensor *ref_reduce(kl_op op, const kl_tensor *x0, kl_attrs a) {
  kl_tensor *x = to_dense(x0), *o = NULL;
  kl_meta m, om;
  kl_tensor_meta(x0, &m);
  CHECK_OK(kl_op_infer(op, &m, 1, &a, &om));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, om.ndim, om.shape, &o));
  if (!o) exit(2);
  int64_t outer = 1, n = kl_tensor_numel(x), inner = 1;
  if (a.has_axis) {
    outer = kl_shape_numel(a.axis, x->shape);
    n = x->shape[a.axis];
    inner = kl_shape_numel(x->ndim - a.axis - 1, x->shape + a.axis + 1);
  }
  for (int64_t p = 0; p < outer; p++)
    for (int64_t i = 0; i < inner; i++) {
      double s = 0;
      for (int64_t k = 0; k < n; k++) s += kl_tensor_data_at(x, (p * n + k) * inner + i);
      kl_tensor_data_set(o, p * inner + i, op == KL_OP_MEAN ? s / (double)n : s);
    }
  kl_tensor_release(x);
  return o;
}

static int same_shape(const kl_tensor *a, const kl_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

/* max relative difference, NaN equal to NaN; 1e300 on a shape mismatch */
static double rel_diff(const kl_tensor *x, const kl_tensor *ref) {
  if (!same_shape(x, ref) || x->stype != KL_STYPE_DEFAULT) return 1e300;
  double m = 0;
  for (int64_t i = 0; i < kl_tensor_numel(x); i++) {
    double a = kl_tensor_data_at(x, i), b = kl_tensor_data_at(ref, i);
    if (isnan(a) && isnan(b)) continue;
    double e = fabs(a - b) / (1 + fabs(b));
    if (!(e <= m)) m = e;
  }
  return m;
}

static void test_exact(void) {
  /* x = [[1 0 2], [0 0 3]] */
  int64_t s[2] = {2, 3};
  double v[6] = {1, 0, 2, 0, 0, 3};
  for (int dt = 0; dt < 2; dt++) {
    kl_tensor *d = NULL;
    CHECK_OK(kl_tensor_new_dense(dt, 2, s, &d));
    for (int i = 0; i < 6; i++) kl_tensor_data_set(d, i, v[i]);
    kl_tensor *x[3] = {d, NULL, NULL};
    CHECK_OK(kl_tensor_tostype(d, KL_STYPE_CSR, &x[1]));
    CHECK_OK(kl_tensor_tostype(d, KL_STYPE_ROW_SPARSE, &x[2]));
    const char *kern[3] = {"dense", "csr", "row_sparse"};
    for (int st = 0; st < 3; st++) {
      kl_tensor *in[1] = {x[st]};
      kl_attrs all = axis_attrs(0, 0, 0), ax0 = axis_attrs(1, 0, 0), ax1k = axis_attrs(1, 1, 1);
      CHECK(strcmp(kl_op_dispatch_name(KL_OP_SUM, in, 1, &all), kern[st]) == 0);
      CHECK(strcmp(kl_op_dispatch_name(KL_OP_MEAN, in, 1, &ax0), kern[st]) == 0);
      long fb = kl_fallback_count();
      kl_tensor *o = run(KL_OP_SUM, x[st], all);
      CHECK(o && o->ndim == 0 && o->stype == KL_STYPE_DEFAULT && o->dtype == (kl_dtype)dt);
      if (o) CHECK_NEAR(kl_tensor_data_at(o, 0), 6, 0);
      kl_tensor_release(o);
      o = run(KL_OP_MEAN, x[st], all);
      if (o) CHECK_NEAR(kl_tensor_data_at(o, 0), 1, 0);
      kl_tensor_release(o);
      o = run(KL_OP_SUM, x[st], ax0);
      CHECK(o && o->ndim == 1 && o->shape[0] == 3);
      double w0[3] = {1, 0, 5}, m0[3] = {0.5, 0, 2.5}, w1[2] = {3, 3}, m1[2] = {1, 1};
      for (int i = 0; o && i < 3; i++) CHECK_NEAR(kl_tensor_data_at(o, i), w0[i], 0);
      kl_tensor_release(o);
      o = run(KL_OP_MEAN, x[st], ax0);
      for (int i = 0; o && i < 3; i++) CHECK_NEAR(kl_tensor_data_at(o, i), m0[i], 0);
      kl_tensor_release(o);
      o = run(KL_OP_SUM, x[st], ax1k);
      CHECK(o && o->ndim == 2 && o->shape[0] == 2 && o->shape[1] == 1);
      for (int i = 0; o && i < 2; i++) CHECK_NEAR(kl_tensor_data_at(o, i), w1[i], 0);
      kl_tensor_release(o);
      o = run(KL_OP_MEAN, x[st], ax1k);
      for (int i = 0; o && i < 2; i++) CHECK_NEAR(kl_tensor_data_at(o, i), m1[i], 1e-15);
      kl_tensor_release(o);
      o = run(KL_OP_SUM, x[st], axis_attrs(0, 0, 1)); /* keepdims without axis: 1 x 1 */
      CHECK(o && o->ndim == 2 && o->shape[0] == 1 && o->shape[1] == 1);
      if (o) CHECK_NEAR(kl_tensor_data_at(o, 0), 6, 0);
      kl_tensor_release(o);
      CHECK(kl_fallback_count() == fb);
    }
    for (int st = 0; st < 3; st++) kl_tensor_release(x[st]);
  }
}

static void test_random(void) {
  kl_rng g;
  kl_rng_seed(&g, 11);
  const int64_t shapes[4][3] = {{5, 7, 0}, {400, 300, 0}, {3000, 40, 0}, {6, 5, 4}};
  const kl_stype ST[3] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};
  for (int dt = 0; dt < 2; dt++)
    for (int sh = 0; sh < 4; sh++)
      for (int st = 0; st < 3; st++) {
        int ndim = shapes[sh][2] ? 3 : 2;
        if (ST[st] == KL_STYPE_CSR && ndim != 2) continue;
        kl_tensor *x = NULL;
        CHECK_OK(kl_sparse_rand(ST[st], dt, ndim, shapes[sh], st ? 0.2 : 1, &g, &x));
        if (!x) continue;
        for (int op = 0; op < 2; op++)
          for (int ax = -1; ax < ndim; ax++)
            for (int kd = 0; kd < 2; kd++) {
              kl_op o_ = op ? KL_OP_MEAN : KL_OP_SUM;
              kl_attrs a = axis_attrs(ax >= 0, ax >= 0 ? ax : 0, kd);
              long fb = kl_fallback_count();
              kl_tensor *o = run(o_, x, a), *ref = ref_reduce(o_, x, a);
              double e = o ? rel_diff(o, ref) : 1e300;
              CHECK(e <= (dt == KL_FLOAT64 ? 1e-12 : 1e-5));
              CHECK(kl_fallback_count() == fb);
              if (!(e <= (dt == KL_FLOAT64 ? 1e-12 : 1e-5)))
                fprintf(stderr, "  %s %s dt=%d shape=%d axis=%d keepdims=%d: err %g\n",
                        kl_op_name(o_), kl_stype_name(ST[st]), dt, sh, ax, kd, e);
              kl_tensor_release(o);
              kl_tensor_release(ref);
            }
        kl_tensor_release(x);
      }
}

static void test_zero_sizes(void) {
  int64_t s30[2] = {3, 0}, s03[2] = {0, 3}, s302[3] = {3, 0, 2};
  for (int st = 0; st < 3; st++) {
    kl_stype stp = st == 0 ? KL_STYPE_DEFAULT : st == 1 ? KL_STYPE_CSR : KL_STYPE_ROW_SPARSE;
    kl_tensor *d = NULL, *x = NULL, *z = NULL;
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, s30, &d));
    CHECK_OK(kl_tensor_tostype(d, stp, &x));
    kl_tensor *o = run(KL_OP_SUM, x, axis_attrs(1, 0, 0));
    CHECK(o && o->ndim == 1 && o->shape[0] == 0);
    kl_tensor_release(o);
    o = run(KL_OP_SUM, x, axis_attrs(1, 1, 0));
    CHECK(o && o->shape[0] == 3);
    for (int i = 0; o && i < 3; i++) CHECK(kl_tensor_data_at(o, i) == 0);
    kl_tensor_release(o);
    o = run(KL_OP_MEAN, x, axis_attrs(1, 1, 0)); /* mean of nothing: NaN, as numpy */
    for (int i = 0; o && i < 3; i++) CHECK(isnan(kl_tensor_data_at(o, i)));
    kl_tensor_release(o);
    o = run(KL_OP_SUM, x, axis_attrs(0, 0, 0));
    CHECK(o && o->ndim == 0 && kl_tensor_data_at(o, 0) == 0);
    kl_tensor_release(o);
    kl_tensor_release(d);
    kl_tensor_release(x);
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s03, &d));
    CHECK_OK(kl_tensor_tostype(d, stp, &z));
    o = run(KL_OP_MEAN, z, axis_attrs(1, 0, 1));
    CHECK(o && o->ndim == 2 && o->shape[0] == 1 && o->shape[1] == 3);
    for (int i = 0; o && i < 3; i++) CHECK(isnan(kl_tensor_data_at(o, i)));
    kl_tensor_release(o);
    kl_tensor_release(d);
    kl_tensor_release(z);
    if (stp == KL_STYPE_CSR) continue;
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 3, s302, &d));
    CHECK_OK(kl_tensor_tostype(d, stp, &z));
    o = run(KL_OP_MEAN, z, axis_attrs(1, 1, 0));
    CHECK(o && o->ndim == 2 && o->shape[0] == 3 && o->shape[1] == 2);
    for (int i = 0; o && i < 6; i++) CHECK(isnan(kl_tensor_data_at(o, i)));
    kl_tensor_release(o);
    o = run(KL_OP_SUM, z, axis_attrs(1, 2, 0));
    CHECK(o && o->ndim == 2 && o->shape[0] == 3 && o->shape[1] == 0);
    kl_tensor_release(o);
    kl_tensor_release(d);
    kl_tensor_release(z);
  }
}

static void test_errors(void) {
  int64_t s[2] = {2, 3};
  kl_tensor *x = NULL, *i64 = NULL, *s0 = NULL, *o = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s, &x));
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, s, &i64));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 0, s, &s0));
  kl_tensor *in[1] = {x}, *in2[2] = {x, x};
  kl_attrs a = axis_attrs(1, 3, 0);
  CHECK_ERR(kl_op_run(KL_OP_SUM, in, 1, &a, &o), KL_EINVAL,
            "sum: axis 3 out of range for a 2-d tensor");
  a.axis = -1;
  CHECK_ERR(kl_op_run(KL_OP_MEAN, in, 1, &a, &o), KL_EINVAL,
            "mean: axis -1 out of range for a 2-d tensor");
  a.axis = 0;
  in[0] = s0;
  CHECK_ERR(kl_op_run(KL_OP_SUM, in, 1, &a, &o), KL_EINVAL,
            "sum: axis 0 out of range for a 0-d tensor");
  in[0] = i64;
  CHECK_ERR(kl_op_run(KL_OP_MEAN, in, 1, &a, &o), KL_EDTYPE,
            "mean: x has dtype int64, expected float32 or float64");
  CHECK_ERR(kl_op_run(KL_OP_SUM, in2, 2, &a, &o), KL_EINVAL, "sum: expected 1 input, got 2");
  CHECK(o == NULL);
  /* the 0-d tensor reduces to itself without an axis */
  in[0] = s0;
  kl_tensor_data_set(s0, 0, 2.5);
  o = run(KL_OP_MEAN, s0, axis_attrs(0, 0, 0));
  CHECK(o && o->ndim == 0 && kl_tensor_data_at(o, 0) == 2.5);
  kl_tensor_release(o);
  kl_tensor_release(x);
  kl_tensor_release(i64);
  kl_tensor_release(s0);
}

/* f = sum(W .* op(x)); central differences on every element of x. */
static void grad_check(kl_op op, kl_tensor *x, kl_attrs a, kl_rng *g) {
  kl_tensor *out = run(op, x, a), *W = NULL, *gin = NULL, *in[1] = {x};
  if (!out) return;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, out->ndim, out->shape, &W));
  CHECK_OK(kl_tensor_fill_uniform(W, -1, 1, g));
  kl_stype want = x->stype == KL_STYPE_CSR ? KL_STYPE_DEFAULT : x->stype;
  CHECK_OK(kl_op_backward(op, in, 1, &a, out, W, 0, want, &gin));
  if (!gin) goto done;
  CHECK(gin->stype == want && same_shape(gin, x));
  kl_tensor *gd = to_dense(gin), *xd = to_dense(x);
  double worst = 0;
  for (int64_t k = 0; k < kl_tensor_numel(xd); k++) {
    double x0 = kl_tensor_data_at(xd, k), h = 1e-6, f[2];
    for (int s = 0; s < 2; s++) {
      kl_tensor_data_set(xd, k, x0 + (s ? -h : h));
      kl_tensor *o = run(op, xd, a);
      f[s] = 0;
      for (int64_t i = 0; o && i < kl_tensor_numel(o); i++)
        f[s] += kl_tensor_data_at(o, i) * kl_tensor_data_at(W, i);
      kl_tensor_release(o);
    }
    kl_tensor_data_set(xd, k, x0);
    double e = fabs((f[0] - f[1]) / (2 * h) - kl_tensor_data_at(gd, k));
    if (e > worst) worst = e;
  }
  CHECK(worst < 1e-7);
  if (!(worst < 1e-7))
    fprintf(stderr, "  grad %s %s axis=%d/%d: err %g\n", kl_op_name(op), kl_stype_name(x->stype),
            a.has_axis, a.axis, worst);
  kl_tensor_release(gd);
  kl_tensor_release(xd);
done:
  kl_tensor_release(gin);
  kl_tensor_release(W);
  kl_tensor_release(out);
}

static void test_gradients(void) {
  kl_rng g;
  kl_rng_seed(&g, 5);
  int64_t s2[2] = {4, 3}, s3[3] = {3, 2, 4};
  const kl_stype ST[3] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};
  for (int st = 0; st < 3; st++)
    for (int nd = 2; nd <= 3; nd++) {
      if (nd == 3 && ST[st] == KL_STYPE_CSR) continue;
      kl_tensor *x = NULL;
      CHECK_OK(kl_sparse_rand(ST[st], KL_FLOAT64, nd, nd == 2 ? s2 : s3, 0.6, &g, &x));
      for (int op = 0; op < 2 && x; op++)
        for (int ax = -1; ax < nd; ax++)
          grad_check(op ? KL_OP_MEAN : KL_OP_SUM, x, axis_attrs(ax >= 0, ax < 0 ? 0 : ax, ax == 1),
                     &g);
      kl_tensor_release(x);
    }
}

static void test_alloc_failures(void) {
  kl_rng g;
  kl_rng_seed(&g, 13);
  int64_t s[3] = {30, 4, 5};
  const kl_stype ST[3] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};
  for (int st = 0; st < 3; st++) {
    kl_tensor *x = NULL;
    CHECK_OK(kl_sparse_rand(ST[st], KL_FLOAT64, st == 1 ? 2 : 3, s, 0.5, &g, &x));
    for (int ax = -1; ax < 2 && x; ax++) {
      kl_attrs a = axis_attrs(ax >= 0, ax < 0 ? 0 : ax, 0);
      kt_alloc_sweep(KL_OP_SUM, &x, 1, &a, -1, 0);
      kt_alloc_sweep(KL_OP_MEAN, &x, 1, &a, 0, KL_STYPE_DEFAULT);
    }
    kl_tensor_release(x);
  }
}

/* Many small blocks (the threads split the outer index: W3's mean over 20 ids of 256 x 20 x
 * 64): every element exactly the double sum in k order, scaled and rounded, at any thread
 * count (1 and 2 threads give the same bits). */
static void test_many_blocks(void) {
  int64_t shape[3] = {300, 20, 16};
  kl_rng g;
  kl_rng_seed(&g, 9);
  for (int dt = 0; dt < 2; dt++) {
    kl_tensor *x = NULL;
    CHECK_OK(kl_tensor_new_dense(dt ? KL_FLOAT64 : KL_FLOAT32, 3, shape, &x));
    if (!x) return;
    for (int64_t k = 0; k < kl_tensor_numel(x); k++)
      kl_tensor_data_set(x, k, kl_rng_uniform(&g) - 0.5);
    for (int mean = 0; mean < 2; mean++) {
      kl_op op = mean ? KL_OP_MEAN : KL_OP_SUM;
      kl_tensor *o[2] = {NULL, NULL};
      for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        o[t - 1] = run(op, x, axis_attrs(1, 1, 0));
      }
      int ok = o[0] && o[1];
      for (int64_t q = 0; ok && q < 300; q++)
        for (int64_t i = 0; ok && i < 16; i++) {
          double s = 0;
          for (int64_t k = 0; k < 20; k++) s += kl_tensor_data_at(x, (q * 20 + k) * 16 + i);
          s *= mean ? 1.0 / 20.0 : 1.0;
          const double want = dt ? s : (double)(float)s;
          ok = kl_tensor_data_at(o[0], q * 16 + i) == want &&
               kl_tensor_data_at(o[1], q * 16 + i) == want;
        }
      CHECK(ok);
      kl_tensor_release(o[0]);
      kl_tensor_release(o[1]);
    }
    kl_tensor_release(x);
  }
  omp_set_num_threads(omp_get_num_procs());
}

int main(void) {
  test_exact();
  test_many_blocks();
  test_random();
  test_zero_sizes();
  test_errors();
  test_gradients();
  test_alloc_failures();
  KLTEST_DONE();
}
