/* test_unary.c: negative, square, sqrt, abs, relu (keep stype), exp, log, sigmoid, tanh,
 * softmax (dense result): exact cases, every stype x dtype vs libm, errors, gradients. */
#include "kltest_ops.h"

static const kl_op UN[9] = {KL_OP_NEG, KL_OP_SQUARE, KL_OP_SQRT, KL_OP_ABS, KL_OP_RELU,
                            KL_OP_EXP, KL_OP_LOG, KL_OP_SIGMOID, KL_OP_TANH};

static double ref(kl_op op, double x) {
  switch (op) {
    case KL_OP_NEG: return -x;
    case KL_OP_SQUARE: return x * x;
    case KL_OP_SQRT: return sqrt(x);
    case KL_OP_ABS: return fabs(x);
    case KL_OP_RELU: return x > 0 ? x : 0;
    case KL_OP_EXP: return exp(x);
    case KL_OP_LOG: return log(x);
    case KL_OP_SIGMOID: return 1 / (1 + exp(-x));
    default: return tanh(x);
  }
}

static int keeps(kl_op op) { return op <= KL_OP_RELU; }

static kl_tensor *run1(kl_op op, kl_tensor *x) {
  kl_tensor *out = NULL;
  if (kl_op_run(op, &x, 1, NULL, &out) != KL_OK) return NULL;
  return out;
}

/* softmax over the last axis, by the book */
static kl_tensor *ref_softmax(const kl_tensor *x) {
  kl_tensor *r = kt_dense(KL_FLOAT64, x->ndim, x->shape, NULL);
  int64_t last = x->shape[x->ndim - 1], n = kl_tensor_numel(x);
  for (int64_t i = 0; i < n / last; i++) {
    double s = 0;
    for (int64_t j = 0; j < last; j++) s += exp(kt_at(x, i * last + j));
    for (int64_t j = 0; j < last; j++)
      kl_tensor_data_set(r, i * last + j, exp(kt_at(x, i * last + j)) / s);
  }
  return r;
}

static void exact_cases(void) {
  double v[6] = {-2, 0, 4, 0, 9, 0};
  kl_tensor *C = kt_mat(KL_FLOAT64, KL_STYPE_CSR, 2, 3, v);
  kl_tensor *o = run1(KL_OP_NEG, C);
  CHECK(o && o->stype == KL_STYPE_CSR && o->nnz == 3 && kt_at(o, 0) == 2 && kt_at(o, 4) == -9);
  kl_tensor_release(o);
  o = run1(KL_OP_RELU, C);
  CHECK(o && o->stype == KL_STYPE_CSR && kt_at(o, 0) == 0 && kt_at(o, 2) == 4);
  kl_tensor_release(o);
  o = run1(KL_OP_ABS, C);
  CHECK(o && kt_at(o, 0) == 2);
  kl_tensor_release(o);
  o = run1(KL_OP_SQUARE, C);
  CHECK(o && o->stype == KL_STYPE_CSR && kt_at(o, 4) == 81);
  kl_tensor_release(o);
  o = run1(KL_OP_EXP, C); /* the implicit zeros become 1 */
  CHECK(o && o->stype == KL_STYPE_DEFAULT && kt_at(o, 1) == 1 && kt_at(o, 3) == 1);
  CHECK_NEAR(kt_at(o, 2), exp(4), 1e-15);
  kl_tensor_release(o);
  o = run1(KL_OP_SIGMOID, C);
  CHECK(o && kt_at(o, 1) == 0.5);
  kl_tensor_release(o);
  o = run1(KL_OP_LOG, C);
  CHECK(o && isinf(kt_at(o, 1)) && kt_at(o, 1) < 0 && isnan(kt_at(o, 0)));
  kl_tensor_release(o);
  /* softmax: a row of zeros is uniform; large values do not overflow */
  double w[6] = {0, 0, 0, 1000, 1000, 0};
  kl_tensor *W = kt_mat(KL_FLOAT32, KL_STYPE_DEFAULT, 2, 3, w), *Wc = NULL;
  o = run1(KL_OP_SOFTMAX, W);
  CHECK(o && fabs(kt_at(o, 0) - 1.0 / 3) < 1e-7 && fabs(kt_at(o, 3) - 0.5) < 1e-7 &&
        kt_at(o, 5) == 0);
  kl_tensor_release(o);
  kl_tensor_tostype(W, KL_STYPE_CSR, &Wc);
  o = run1(KL_OP_SOFTMAX, Wc);
  CHECK(o && o->stype == KL_STYPE_DEFAULT && fabs(kt_at(o, 0) - 1.0 / 3) < 1e-7 &&
        fabs(kt_at(o, 4) - 0.5) < 1e-7 && kt_at(o, 5) == 0);
  kl_tensor_release(o);
  /* errors */
  kl_tensor *I = kt_mat(KL_INT64, KL_STYPE_DEFAULT, 2, 3, v), *out = NULL;
  CHECK_ERR(kl_op_run(KL_OP_SQRT, &I, 1, NULL, &out), KL_EDTYPE,
            "sqrt: int64 is not supported (use float32 or float64)");
  CHECK_ERR(kl_op_run(KL_OP_SOFTMAX, &I, 1, NULL, &out), KL_EDTYPE, "softmax: int64 is not supported");
  o = run1(KL_OP_ABS, I);
  CHECK(o && o->dtype == KL_INT64 && ((int64_t *)o->data)[0] == 2);
  kl_tensor_release(o);
  o = run1(KL_OP_RELU, I);
  CHECK(o && ((int64_t *)o->data)[0] == 0 && ((int64_t *)o->data)[4] == 9);
  kl_tensor_release(o);
  kl_tensor *S = kt_dense(KL_FLOAT64, 0, NULL, v);
  CHECK_ERR(kl_op_run(KL_OP_SOFTMAX, &S, 1, NULL, &out), KL_ESHAPE,
            "softmax: needs at least 1 dimension, got a scalar");
  o = run1(KL_OP_EXP, S);
  CHECK(o && o->ndim == 0 && kt_at(o, 0) == exp(-2));
  kl_tensor_release(o);
  kl_tensor *all[] = {C, W, Wc, I, S};
  for (int k = 0; k < 5; k++) kl_tensor_release(all[k]);
}

static void random_cases(kl_rng *rng) {
  int64_t shape[2] = {6, 11}, s3[3] = {5, 2, 4};
  for (int dt = 0; dt < 2; dt++)
    for (int oi = 0; oi < 10; oi++)
      for (int s = 0; s < 3; s++)
        for (int rank3 = 0; rank3 < 2; rank3++) {
          if (rank3 && s != KL_STYPE_ROW_SPARSE) continue;
          kl_op op = oi < 9 ? UN[oi] : KL_OP_SOFTMAX;
          int pos = op == KL_OP_SQRT || op == KL_OP_LOG;
          kl_tensor *x = kt_rand(rng, (kl_stype)s, (kl_dtype)dt, rank3 ? 3 : 2,
                                 rank3 ? s3 : shape, pos ? 0.1 : -3, 3);
          long f0 = kl_fallback_count();
          kl_tensor *o = run1(op, x), *r = NULL;
          if (op == KL_OP_SOFTMAX) {
            r = ref_softmax(x);
          } else {
            r = kt_dense(KL_FLOAT64, x->ndim, x->shape, NULL);
            for (int64_t k = 0; k < kl_tensor_numel(x); k++)
              kl_tensor_data_set(r, k, ref(op, kt_at(x, k)));
          }
          CHECK(o && o->stype == (keeps(op) ? (kl_stype)s : KL_STYPE_DEFAULT));
          CHECK(kl_fallback_count() == f0);
          if (o && o->stype != KL_STYPE_DEFAULT) {
            CHECK_OK(kl_tensor_check_format(o, "test", 0));
            CHECK(o->nnz == x->nnz);
          }
          double e = kt_maxrel(o, r);
          if (e > kt_tol((kl_dtype)dt))
            fprintf(stderr, "%s %s dt %d rank3 %d: %g\n", kl_op_name(op), kl_stype_name(s), dt,
                    rank3, e);
          CHECK(e <= kt_tol((kl_dtype)dt));
          kl_tensor_release(x);
          kl_tensor_release(o);
          kl_tensor_release(r);
        }
}

static void gradients(kl_rng *rng) {
  int64_t shape[2] = {3, 5}, s3[3] = {2, 3, 4};
  for (int oi = 0; oi < 10; oi++) {
    kl_op op = oi < 9 ? UN[oi] : KL_OP_SOFTMAX;
    int pos = op == KL_OP_SQRT || op == KL_OP_LOG;
    kl_tensor *x = kt_rand(rng, 0, KL_FLOAT64, op == KL_OP_SOFTMAX ? 3 : 2,
                           op == KL_OP_SOFTMAX ? s3 : shape, pos ? 0.5 : -2, 2);
    /* keep abs/relu away from their kink at 0 */
    for (int64_t k = 0; k < kl_tensor_numel(x); k++)
      if (fabs(((double *)x->data)[k]) < 0.01) ((double *)x->data)[k] = 0.5;
    double e = kt_gradcheck(op, &x, 1, NULL, 0, rng);
    if (e > 1e-6) fprintf(stderr, "grad %s: %g\n", kl_op_name(op), e);
    CHECK(e <= 1e-6);
    /* a csr input gets the gradient of its densified self, dense */
    kl_tensor *c = NULL, *xd = NULL, *g = kt_rand(rng, 0, KL_FLOAT64, 2, shape, -1, 1);
    kl_tensor *xs = kt_rand(rng, KL_STYPE_CSR, KL_FLOAT64, 2, shape, 0.5, 2);
    kl_tensor_tostype(xs, KL_STYPE_DEFAULT, &xd);
    kl_tensor *g1 = NULL, *g2 = NULL;
    CHECK_OK(kl_op_backward(op, &xs, 1, NULL, NULL, g, 0, KL_STYPE_DEFAULT, &g1));
    CHECK_OK(kl_op_backward(op, &xd, 1, NULL, NULL, g, 0, KL_STYPE_DEFAULT, &g2));
    CHECK(g1 && g1->stype == KL_STYPE_DEFAULT && kt_maxrel(g1, g2) <= 1e-15);
    kl_tensor_release(g1);
    kl_tensor_release(g2);
    kl_tensor_release(c);
    kl_tensor_release(xs);
    kl_tensor_release(xd);
    kl_tensor_release(g);
    kl_tensor_release(x);
  }
}

/* Past the OpenMP threshold: csr/rsp/dense exp and softmax, and transpose. */
static void large_cases(kl_rng *rng) {
  int64_t shape[2] = {1500, 40};
  for (int s = 0; s < 3; s++)
    for (int k = 0; k < 2; k++) {
      kl_op op = k ? KL_OP_SOFTMAX : KL_OP_EXP;
      kl_tensor *x = kt_rand(rng, (kl_stype)s, KL_FLOAT64, 2, shape, -2, 2), *xd = NULL;
      kl_tensor_tostype(x, KL_STYPE_DEFAULT, &xd);
      kl_tensor *o = run1(op, x), *r = op == KL_OP_SOFTMAX ? ref_softmax(xd) : NULL;
      if (!r) {
        r = kt_dense(KL_FLOAT64, 2, shape, NULL);
        for (int64_t i = 0; i < 60000; i++) kl_tensor_data_set(r, i, exp(kt_at(xd, i)));
      }
      CHECK(kt_maxrel(o, r) <= 1e-12);
      kl_tensor *t = run1(KL_OP_TRANSPOSE, xd), *tt = run1(KL_OP_TRANSPOSE, t);
      CHECK(t && t->shape[0] == 40 && kt_maxrel(tt, xd) == 0);
      kl_tensor *all[] = {x, xd, o, r, t, tt};
      for (int j = 0; j < 6; j++) kl_tensor_release(all[j]);
    }
}

/* relu(NaN) is NaN, as numpy's maximum, PyTorch and TF give (it was 0: a diverged model then
 * trained on with a finite loss); relu(-0) is +0; the gradient passes through a NaN. */
static void relu_nan(void) {
  int64_t s[1] = {4};
  double v[4] = {NAN, -0.0, -2.0, 3.0};
  for (int d = 0; d < 2; d++) {
    kl_tensor *x = kt_dense(d ? KL_FLOAT32 : KL_FLOAT64, 1, s, v), *o = run1(KL_OP_RELU, x);
    CHECK(o != NULL);
    if (o) {
      double r0 = kl_tensor_data_at(o, 0), r1 = kl_tensor_data_at(o, 1);
      CHECK(r0 != r0);
      CHECK(r1 == 0 && !signbit(r1));
      CHECK(kl_tensor_data_at(o, 2) == 0 && kl_tensor_data_at(o, 3) == 3);
      kl_tensor *g = NULL, *gout = kt_dense(x->dtype, 1, s, (double[]){1, 1, 1, 1});
      kl_tensor *in[1] = {x};
      kl_attrs a = {0};
      CHECK_OK(kl_op_backward(KL_OP_RELU, in, 1, &a, o, gout, 0, KL_STYPE_DEFAULT, &g));
      if (g) {
        CHECK(kl_tensor_data_at(g, 0) == 1 && kl_tensor_data_at(g, 1) == 0);
        CHECK(kl_tensor_data_at(g, 2) == 0 && kl_tensor_data_at(g, 3) == 1);
      }
      kl_tensor_release(g);
      kl_tensor_release(gout);
    }
    kl_tensor_release(o);
    kl_tensor_release(x);
  }
}

int main(void) {
  relu_nan();
  kl_rng rng;
  kl_rng_seed(&rng, 3);
  exact_cases();
  random_cases(&rng);
  large_cases(&rng);
  gradients(&rng);
  KLTEST_DONE();
}
