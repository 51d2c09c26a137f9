/* test_elemwise.c: add/subtract/multiply/divide and the scalar ops: exact cases, broadcasting,
 * every stype combination against a dense reference, errors, stypes, gradients. */
#include "kltest_ops.h"

static const kl_op BIN[4] = {KL_OP_ADD, KL_OP_SUB, KL_OP_MUL, KL_OP_DIV};

static double apply(kl_op op, double x, double y) {
  switch (op) {
    case KL_OP_ADD: return x + y;
    case KL_OP_SUB: return x - y;
    case KL_OP_MUL: return x * y;
    default: return x / y;
  }
}

/* The dense reference of a op b for same-shaped tensors of any stype (float64). */
static kl_tensor *ref_binary(kl_op op, const kl_tensor *a, const kl_tensor *b) {
  kl_tensor *r = kt_dense(KL_FLOAT64, a->ndim, a->shape, NULL);
  for (int64_t k = 0; k < kl_tensor_numel(a); k++)
    kl_tensor_data_set(r, k, apply(op, kt_at(a, k), kt_at(b, k)));
  return r;
}

static kl_tensor *run2(kl_op op, kl_tensor *a, kl_tensor *b) {
  kl_tensor *in[2] = {a, b}, *out = NULL;
  if (kl_op_run(op, in, 2, NULL, &out) != KL_OK) {
    fprintf(stderr, "%s failed: %s\n", kl_op_name(op), kl_errmsg());
    return NULL;
  }
  return out;
}

static kl_tensor *run_s(kl_op op, kl_tensor *x, double s) {
  kl_attrs a;
  memset(&a, 0, sizeof a);
  a.scalar = s;
  kl_tensor *out = NULL;
  if (kl_op_run(op, &x, 1, &a, &out) != KL_OK) return NULL;
  return out;
}

static void exact_cases(void) {
  int64_t s41[2] = {4, 1}, s1[1] = {1}, s23[2] = {2, 3}, s3[1] = {3}, s13[2] = {1, 3};
  double a41[4] = {1, 2, 3, 4}, b1[1] = {10}, a23[6] = {1, 2, 3, 4, 5, 6}, b3[3] = {10, 20, 30};
  kl_tensor *A = kt_dense(KL_FLOAT32, 2, s41, a41), *B = kt_dense(KL_FLOAT32, 1, s1, b1);
  kl_tensor *o = run2(KL_OP_ADD, A, B);
  CHECK(o && o->ndim == 2 && o->shape[0] == 4 && o->shape[1] == 1);
  for (int k = 0; o && k < 4; k++) CHECK(kt_at(o, k) == a41[k] + 10);
  kl_tensor_release(o);
  kl_tensor *C = kt_dense(KL_FLOAT32, 2, s13, b3); /* {4,1} * {1,3}: an outer product */
  o = run2(KL_OP_MUL, A, C);
  CHECK(o && o->shape[0] == 4 && o->shape[1] == 3);
  for (int i = 0; o && i < 4; i++)
    for (int j = 0; j < 3; j++) CHECK(kt_at(o, i * 3 + j) == a41[i] * b3[j]);
  kl_tensor_release(o);
  kl_tensor *D = kt_dense(KL_FLOAT64, 2, s23, a23), *E = kt_dense(KL_FLOAT64, 1, s3, b3);
  o = run2(KL_OP_SUB, D, E);
  double e1[6] = {-9, -18, -27, -6, -15, -24};
  for (int k = 0; o && k < 6; k++) CHECK(kt_at(o, k) == e1[k]);
  kl_tensor_release(o);
  o = run2(KL_OP_DIV, E, D); /* {3} / {2,3} */
  double e2[6] = {10, 10, 10, 2.5, 4, 5};
  for (int k = 0; o && k < 6; k++) CHECK_NEAR(kt_at(o, k), e2[k], 1e-15);
  kl_tensor_release(o);

  /* errors */
  int64_t s43[2] = {4, 3};
  kl_tensor *F = kt_dense(KL_FLOAT64, 2, s43, NULL), *in[2] = {D, F}, *out = NULL;
  CHECK_ERR(kl_op_run(KL_OP_ADD, in, 2, NULL, &out), KL_ESHAPE,
            "add: shapes (2 x 3) and (4 x 3) are not broadcastable");
  in[1] = A;
  CHECK_ERR(kl_op_run(KL_OP_ADD, in, 2, NULL, &out), KL_EDTYPE,
            "add: dtype mismatch (float64 vs float32)");
  in[0] = B;
  in[1] = D;
  CHECK_ERR(kl_op_run(KL_OP_MUL, in, 2, NULL, &out), KL_EDTYPE,
            "multiply: dtype mismatch (float32 vs float64)");
  kl_tensor *I = kt_dense(KL_INT64, 2, s23, a23), *J = kt_dense(KL_INT64, 1, s3, b3);
  in[0] = I;
  in[1] = J;
  CHECK_ERR(kl_op_run(KL_OP_DIV, in, 2, NULL, &out), KL_EDTYPE,
            "divide: int64 is not supported (use float32 or float64)");
  o = run2(KL_OP_MUL, I, J);
  CHECK(o && o->dtype == KL_INT64 && ((int64_t *)o->data)[5] == 180);
  kl_tensor_release(o);
  o = run2(KL_OP_SUB, J, I);
  CHECK(o && ((int64_t *)o->data)[3] == 6);
  kl_tensor_release(o);
  CHECK(run_s(KL_OP_ADD_SCALAR, I, 0.5) == NULL);
  CHECK(strcmp(kl_errmsg(), "add_scalar: scalar 0.5 is not an integer (the tensor is int64)") == 0);
  CHECK(run_s(KL_OP_DIV_SCALAR, I, 2) == NULL);
  CHECK(strcmp(kl_errmsg(), "div_scalar: int64 is not supported (use float32 or float64)") == 0);
  o = run_s(KL_OP_RSUB_SCALAR, I, 10);
  CHECK(o && ((int64_t *)o->data)[0] == 9 && ((int64_t *)o->data)[5] == 4);
  kl_tensor_release(o);

  /* IEEE division by zero */
  double z3[3] = {1, -1, 0}, zz[3] = {0, 0, 0};
  kl_tensor *P = kt_dense(KL_FLOAT64, 1, s3, z3), *Z = kt_dense(KL_FLOAT64, 1, s3, zz);
  o = run2(KL_OP_DIV, P, Z);
  CHECK(o && isinf(kt_at(o, 0)) && kt_at(o, 0) > 0 && isinf(kt_at(o, 1)) && kt_at(o, 1) < 0 &&
        isnan(kt_at(o, 2)));
  kl_tensor_release(o);
  o = run_s(KL_OP_RDIV_SCALAR, Z, 1);
  CHECK(o && isinf(kt_at(o, 0)));
  kl_tensor_release(o);

  kl_tensor *all[] = {A, B, C, D, E, F, I, J, P, Z};
  for (int k = 0; k < 10; k++) kl_tensor_release(all[k]);
}

static void sparse_exact(void) {
  /* csr + csr, csr - csr, csr * csr on 2x3 */
  double a[6] = {1, 0, 2, 0, 0, 3}, b[6] = {0, 4, 5, 0, 0, 0};
  kl_tensor *A = kt_mat(KL_FLOAT64, KL_STYPE_CSR, 2, 3, a), *B = kt_mat(KL_FLOAT64, KL_STYPE_CSR, 2, 3, b);
  kl_tensor *o = run2(KL_OP_ADD, A, B);
  CHECK(o && o->stype == KL_STYPE_CSR && o->nnz == 4);
  CHECK_OK(kl_tensor_check_format(o, "test", 0));
  double e[6] = {1, 4, 7, 0, 0, 3};
  for (int k = 0; o && k < 6; k++) CHECK(kt_at(o, k) == e[k]);
  kl_tensor_release(o);
  o = run2(KL_OP_SUB, A, B);
  double f[6] = {1, -4, -3, 0, 0, 3};
  for (int k = 0; o && k < 6; k++) CHECK(kt_at(o, k) == f[k]);
  CHECK(o && o->stype == KL_STYPE_CSR);
  kl_tensor_release(o);
  o = run2(KL_OP_MUL, A, B);
  CHECK(o && o->stype == KL_STYPE_CSR && o->nnz == 1 && kt_at(o, 2) == 10);
  kl_tensor_release(o);
  /* tutorial row_sparse: data {{1,2},{3,4}} at rows 1 and 4 (0-based) of 6x2 */
  double r1[12] = {0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 0}, r2[12] = {5, 5, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  kl_tensor *R = kt_mat(KL_FLOAT32, KL_STYPE_ROW_SPARSE, 6, 2, r1);
  kl_tensor *S = kt_mat(KL_FLOAT32, KL_STYPE_ROW_SPARSE, 6, 2, r2);
  CHECK(R && R->nnz == 2 && R->indices[0] == 1 && R->indices[1] == 4);
  o = run_s(KL_OP_MUL_SCALAR, R, 2);
  CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == 2 && kt_at(o, 9) == 8);
  kl_tensor_release(o);
  o = run2(KL_OP_ADD, R, S);
  CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == 3 && o->indices[0] == 0 &&
        o->indices[1] == 1 && o->indices[2] == 4 && kt_at(o, 2) == 2 && kt_at(o, 3) == 3);
  kl_tensor_release(o);
  o = run2(KL_OP_MUL, R, S);
  CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == 1 && o->indices[0] == 1 &&
        kt_at(o, 2) == 1 && kt_at(o, 3) == 2);
  kl_tensor_release(o);
  kl_tensor *Dn = kt_mat(KL_FLOAT32, KL_STYPE_DEFAULT, 6, 2, r2);
  o = run2(KL_OP_ADD, R, Dn);
  CHECK(o && o->stype == KL_STYPE_DEFAULT && kt_at(o, 0) == 5 && kt_at(o, 3) == 3);
  kl_tensor_release(o);
  o = run_s(KL_OP_ADD_SCALAR, R, 1);
  CHECK(o && o->stype == KL_STYPE_DEFAULT && kt_at(o, 0) == 1 && kt_at(o, 2) == 2);
  kl_tensor_release(o);
  o = run_s(KL_OP_MUL_SCALAR, A, 3);
  CHECK(o && o->stype == KL_STYPE_CSR && o->nnz == 3 && kt_at(o, 5) == 9);
  kl_tensor_release(o);
  kl_tensor *all[] = {A, B, R, S, Dn};
  for (int k = 0; k < 5; k++) kl_tensor_release(all[k]);
}

/* Every op x stype pair x dtype against the dense reference; stypes and fallbacks. */
static void random_cases(kl_rng *rng) {
  int64_t shape[2] = {7, 9};
  for (int dt = 0; dt < 2; dt++)
    for (int oi = 0; oi < 4; oi++)
      for (int s0 = 0; s0 < 3; s0++)
        for (int s1 = 0; s1 < 3; s1++) {
          kl_op op = BIN[oi];
          kl_tensor *a = kt_rand(rng, (kl_stype)s0, (kl_dtype)dt, 2, shape, -1, 1);
          kl_tensor *b = kt_rand(rng, (kl_stype)s1, (kl_dtype)dt, 2, shape, -1, 1);
          long f0 = kl_fallback_count();
          kl_tensor *o = run2(op, a, b), *ref = ref_binary(op, a, b);
          int same = s0 == s1 && s0 != 0;
          int kernel = (s0 == 0 && s1 == 0) || (same && op != KL_OP_DIV) || ((s0 == 0) != (s1 == 0));
          kl_stype want = same && op != KL_OP_DIV ? (kl_stype)s0 : KL_STYPE_DEFAULT;
          CHECK(o && o->stype == want && o->dtype == (kl_dtype)dt);
          CHECK(kl_fallback_count() - f0 == (kernel ? 0 : 1));
          if (o) CHECK_OK(kl_tensor_check_format(o, "test", 0));
          double err = kt_maxrel(o, ref);
          if (err > kt_tol((kl_dtype)dt))
            fprintf(stderr, "%s %s.%s dt %d: err %g\n", kl_op_name(op), kl_stype_name(s0),
                    kl_stype_name(s1), dt, err);
          CHECK(err <= kt_tol((kl_dtype)dt));
          kl_tensor_release(a);
          kl_tensor_release(b);
          kl_tensor_release(o);
          kl_tensor_release(ref);
        }
  /* row_sparse of rank 3 */
  int64_t s3[3] = {6, 2, 3};
  for (int oi = 0; oi < 4; oi++)
    for (int s1 = 0; s1 < 3; s1 += 2) {
      kl_tensor *a = kt_rand(rng, KL_STYPE_ROW_SPARSE, KL_FLOAT64, 3, s3, -1, 1);
      kl_tensor *b = kt_rand(rng, (kl_stype)s1, KL_FLOAT64, 3, s3, -1, 1);
      kl_tensor *o = run2(BIN[oi], a, b), *ref = ref_binary(BIN[oi], a, b);
      CHECK(kt_maxrel(o, ref) <= 1e-12);
      kl_tensor_release(a);
      kl_tensor_release(b);
      kl_tensor_release(o);
      kl_tensor_release(ref);
    }
  /* scalar ops */
  const kl_op SC[5] = {KL_OP_ADD_SCALAR, KL_OP_MUL_SCALAR, KL_OP_DIV_SCALAR, KL_OP_RSUB_SCALAR,
                       KL_OP_RDIV_SCALAR};
  for (int dt = 0; dt < 2; dt++)
    for (int oi = 0; oi < 5; oi++)
      for (int s = 0; s < 3; s++) {
        double c = -1.75;
        kl_tensor *x = kt_rand(rng, (kl_stype)s, (kl_dtype)dt, 2, shape, -1, 1);
        long f0 = kl_fallback_count();
        kl_tensor *o = run_s(SC[oi], x, c), *ref = kt_dense(KL_FLOAT64, 2, shape, NULL);
        for (int64_t k = 0; k < 63; k++) {
          double v = kt_at(x, k), r;
          switch (SC[oi]) {
            case KL_OP_ADD_SCALAR: r = v + c; break;
            case KL_OP_MUL_SCALAR: r = v * c; break;
            case KL_OP_DIV_SCALAR: r = v / c; break;
            case KL_OP_RSUB_SCALAR: r = c - v; break;
            default: r = c / v; break;
          }
          kl_tensor_data_set(ref, k, r);
        }
        int keep = SC[oi] == KL_OP_MUL_SCALAR || SC[oi] == KL_OP_DIV_SCALAR;
        CHECK(o && o->stype == (keep ? (kl_stype)s : KL_STYPE_DEFAULT));
        CHECK(kl_fallback_count() == f0);
        CHECK(kt_maxrel(o, ref) <= kt_tol((kl_dtype)dt));
        kl_tensor_release(x);
        kl_tensor_release(o);
        kl_tensor_release(ref);
      }
}

/* Sizes past the OpenMP threshold, so the parallel loops run (and agree). */
static void large_cases(kl_rng *rng) {
  int64_t shape[2] = {1500, 40}, row[1] = {40};
  for (int oi = 0; oi < 4; oi++)
    for (int s0 = 0; s0 < 3; s0++)
      for (int s1 = 0; s1 < 3; s1++) {
        if (s0 && s1 && s0 != s1) continue;
        kl_tensor *a = kt_rand(rng, (kl_stype)s0, KL_FLOAT64, 2, shape, -1, 1);
        kl_tensor *b = kt_rand(rng, (kl_stype)s1, KL_FLOAT64, 2, shape, 0.5, 1);
        kl_tensor *o = run2(BIN[oi], a, b), *ref = ref_binary(BIN[oi], a, b);
        CHECK(kt_maxrel(o, ref) <= 1e-12);
        kl_tensor_release(a);
        kl_tensor_release(b);
        kl_tensor_release(o);
        kl_tensor_release(ref);
      }
  /* broadcast (1500, 40) * (40) */
  kl_tensor *a = kt_rand(rng, 0, KL_FLOAT32, 2, shape, -1, 1), *b = kt_rand(rng, 0, KL_FLOAT32, 1, row, -1, 1);
  kl_tensor *o = run2(KL_OP_MUL, a, b), *ref = kt_dense(KL_FLOAT64, 2, shape, NULL);
  for (int64_t k = 0; k < 60000; k++) kl_tensor_data_set(ref, k, kt_at(a, k) * kt_at(b, k % 40));
  CHECK(kt_maxrel(o, ref) <= 1e-6);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(o);
  kl_tensor_release(ref);
}

static void gradients(kl_rng *rng) {
  kl_attrs at;
  memset(&at, 0, sizeof at);
  /* broadcast (3,1,4) with (2,1), and same shapes */
  int64_t sa[3] = {3, 1, 4}, sb[2] = {2, 1}, sc[2] = {3, 4};
  for (int oi = 0; oi < 4; oi++)
    for (int i = 0; i < 2; i++) {
      kl_tensor *in[2] = {kt_rand(rng, 0, KL_FLOAT64, 3, sa, 0.5, 1.5),
                          kt_rand(rng, 0, KL_FLOAT64, 2, sb, 0.5, 1.5)};
      double e = kt_gradcheck(BIN[oi], in, 2, &at, i, rng);
      if (e > 1e-6) fprintf(stderr, "grad %s input %d: %g\n", kl_op_name(BIN[oi]), i, e);
      CHECK(e <= 1e-6);
      kl_tensor *sm[2] = {kt_rand(rng, 0, KL_FLOAT64, 2, sc, 0.5, 1.5),
                          kt_rand(rng, 0, KL_FLOAT64, 2, sc, 0.5, 1.5)};
      CHECK(kt_gradcheck(BIN[oi], sm, 2, &at, i, rng) <= 1e-6);
      for (int k = 0; k < 2; k++) kl_tensor_release(in[k]), kl_tensor_release(sm[k]);
    }
  const kl_op SC[5] = {KL_OP_ADD_SCALAR, KL_OP_MUL_SCALAR, KL_OP_DIV_SCALAR, KL_OP_RSUB_SCALAR,
                       KL_OP_RDIV_SCALAR};
  at.scalar = 1.3;
  for (int oi = 0; oi < 5; oi++) {
    kl_tensor *x = kt_rand(rng, 0, KL_FLOAT64, 2, sc, 0.5, 1.5);
    double e = kt_gradcheck(SC[oi], &x, 1, &at, 0, rng);
    if (e > 1e-6) fprintf(stderr, "grad %s: %g\n", kl_op_name(SC[oi]), e);
    CHECK(e <= 1e-6);
    kl_tensor_release(x);
  }
  /* sparse inputs: the gradient equals the one of the densified inputs */
  int64_t s2[2] = {5, 4};
  for (int oi = 0; oi < 4; oi++) {
    kl_tensor *a = kt_rand(rng, KL_STYPE_CSR, KL_FLOAT64, 2, s2, 0.5, 1.5);
    kl_tensor *b = kt_rand(rng, KL_STYPE_DEFAULT, KL_FLOAT64, 2, s2, 0.5, 1.5);
    kl_tensor *ad = NULL, *g = kt_rand(rng, 0, KL_FLOAT64, 2, s2, -1, 1), *g1 = NULL, *g2 = NULL;
    kl_tensor_tostype(a, KL_STYPE_DEFAULT, &ad);
    kl_tensor *sp[2] = {b, a}, *dn[2] = {b, ad};
    for (int i = 0; i < 2; i++) {
      CHECK_OK(kl_op_backward(BIN[oi], sp, 2, NULL, NULL, g, i, KL_STYPE_DEFAULT, &g1));
      CHECK_OK(kl_op_backward(BIN[oi], dn, 2, NULL, NULL, g, i, KL_STYPE_DEFAULT, &g2));
      CHECK(g1 && g1->stype == KL_STYPE_DEFAULT && kt_maxrel(g1, g2) <= 1e-15);
      kl_tensor_release(g1);
      kl_tensor_release(g2);
    }
    kl_tensor_release(a);
    kl_tensor_release(ad);
    kl_tensor_release(b);
    kl_tensor_release(g);
  }
  /* rsp * scalar with a row_sparse gout keeps row_sparse when asked for */
  double r1[12] = {0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 0};
  kl_tensor *R = kt_mat(KL_FLOAT64, KL_STYPE_ROW_SPARSE, 6, 2, r1), *g = NULL;
  at.scalar = 2;
  CHECK_OK(kl_op_backward(KL_OP_MUL_SCALAR, &R, 1, &at, NULL, R, 0, KL_STYPE_ROW_SPARSE, &g));
  CHECK(g && g->stype == KL_STYPE_ROW_SPARSE && g->nnz == 2 && kt_at(g, 9) == 8);
  kl_tensor_release(g);
  kl_tensor *I = kt_mat(KL_INT64, KL_STYPE_DEFAULT, 6, 2, r1);
  CHECK_ERR(kl_op_backward(KL_OP_MUL_SCALAR, &I, 1, &at, NULL, I, 0, KL_STYPE_DEFAULT, &g),
            KL_EDTYPE, "mul_scalar: gradient needs float32 or float64, got int64");
  kl_tensor_release(I);
  kl_tensor_release(R);
}

int main(void) {
  kl_rng rng;
  kl_rng_seed(&rng, 42);
  kl_set_warn_handler(NULL, NULL);
  exact_cases();
  sparse_exact();
  random_cases(&rng);
  large_cases(&rng);
  gradients(&rng);
  KLTEST_DONE();
}
