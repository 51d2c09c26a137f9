/* test_dot.c: the dot op: every kernel exact and random against a dense reference, zero
 * sizes, error messages, thread determinism and finite-difference gradients. */
#include <omp.h>
#include <stdlib.h>
#include "kltest.h"
#include "kltest_ops.h"
#include "kl/pool.h"
#include "kl/registry.h"
#include "ops_internal.h"

static kl_tensor *dense_of(kl_dtype dt, int ndim, const int64_t *shape, const double *v) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, ndim, shape, &t));
  if (!t) exit(2);
  for (int64_t i = 0; i < kl_tensor_numel(t); i++) kl_tensor_data_set(t, i, v ? v[i] : 1.0);
  return t;
}

static kl_tensor *to_dense(const kl_tensor *t) {
  kl_tensor *d = NULL;
  CHECK_OK(kl_tensor_tostype(t, KL_STYPE_DEFAULT, &d));
  if (!d) exit(2);
  return d;
}

static kl_tensor *rnd(kl_stype s, kl_dtype dt, int64_t r, int64_t c, double density,
                      kl_rng *g) {
  kl_tensor *t = NULL;
  int64_t sh[2] = {r, c};
  CHECK_OK(kl_sparse_rand(s, dt, 2, sh, density, g, &t));
  if (!t) exit(2);
  return t;
}

/* Dense reference of dot with the op's conventions, in double; *out dense float64. */
static kl_tensor *ref_dot(const kl_tensor *a0, const kl_tensor *b0, int ta, int tb) {
  kl_tensor *a = to_dense(a0), *b = to_dense(b0), *o = NULL;
  kl_meta m[2], om;
  kl_tensor_meta(a0, &m[0]);
  kl_tensor_meta(b0, &m[1]);
  kl_attrs at = {0};
  at.transpose_a = ta;
  at.transpose_b = tb;
  CHECK_OK(kl_op_infer(KL_OP_DOT, m, 2, &at, &om));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, om.ndim, om.shape, &o));
  if (!o) exit(2);
  ta = ta && a->ndim == 2;
  tb = tb && b->ndim == 2;
  int64_t ac = a->shape[a->ndim - 1], ar = kl_tensor_numel(a) / (ac ? ac : 1);
  if (ac == 0) ar = a->ndim == 1 ? 1 : kl_shape_numel(a->ndim - 1, a->shape);
  int64_t bc = b->ndim == 2 ? b->shape[1] : 1;
  int64_t M = ta ? ac : ar, K = ta ? ar : ac, N = tb ? b->shape[0] : bc;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++)
        s += kl_tensor_data_at(a, ta ? k * ac + i : i * ac + k) *
             kl_tensor_data_at(b, tb ? j * bc + k : k * bc + j);
      kl_tensor_data_set(o, i * N + j, s);
    }
  kl_tensor_release(a);
  kl_tensor_release(b);
  return o;
}

/* max |x - ref| / (1 + |ref|) over all elements (shapes must agree, else 1e300). */
static double rel_diff(const kl_tensor *x, const kl_tensor *ref) {
  kl_tensor *d = to_dense(x);
  double m = 0;
  if (d->ndim != ref->ndim) m = 1e300;
  for (int i = 0; i < d->ndim && m == 0; i++)
    if (d->shape[i] != ref->shape[i]) m = 1e300;
  for (int64_t i = 0; i < kl_tensor_numel(d) && m < 1e300; i++) {
    double a = kl_tensor_data_at(d, i), b = kl_tensor_data_at(ref, i);
    double e = fabs(a - b) / (1 + fabs(b));
    if (!(e <= m)) m = e;
  }
  kl_tensor_release(d);
  return m;
}

static kl_tensor *run_dot(kl_tensor *a, kl_tensor *b, int ta, int tb) {
  kl_tensor *o = NULL;
  CHECK_OK(kl_dot(a, b, ta, tb, &o));
  return o;
}

static void test_exact_dense(void) {
  int64_t sa[2] = {2, 3}, sb[2] = {3, 2};
  double va[6] = {1, 2, 3, 4, 5, 6}, vb[6] = {7, 8, 9, 10, 11, 12};
  for (int dt = 0; dt < 2; dt++) {
    kl_tensor *a = dense_of(dt, 2, sa, va), *b = dense_of(dt, 2, sb, vb);
    kl_tensor *o = run_dot(a, b, 0, 0);
    double want[4] = {58, 64, 139, 154};
    CHECK(o && o->ndim == 2 && o->shape[0] == 2 && o->shape[1] == 2);
    for (int i = 0; o && i < 4; i++) CHECK_NEAR(kl_tensor_data_at(o, i), want[i], 0);
    kl_tensor_release(o);
    /* a^T . b^T: (3 x 2) . (2 x 3) */
    o = run_dot(a, b, 1, 1);
    double want2[9] = {39, 49, 59, 54, 68, 82, 69, 87, 105};
    CHECK(o && o->shape[0] == 3 && o->shape[1] == 3);
    for (int i = 0; o && i < 9; i++) CHECK_NEAR(kl_tensor_data_at(o, i), want2[i], 0);
    kl_tensor_release(o);
    /* 1-d operands, numpy style */
    int64_t s3 = 3;
    kl_tensor *x = dense_of(dt, 1, &s3, va), *y = dense_of(dt, 1, &s3, vb);
    o = run_dot(x, y, 0, 0);
    CHECK(o && o->ndim == 0);
    if (o) CHECK_NEAR(kl_tensor_data_at(o, 0), 7 + 16 + 27, 0);
    kl_tensor_release(o);
    o = run_dot(a, x, 0, 0); /* (2 x 3) . (3) -> (2) */
    CHECK(o && o->ndim == 1 && o->shape[0] == 2);
    if (o) CHECK_NEAR(kl_tensor_data_at(o, 1), 4 + 10 + 18, 0);
    kl_tensor_release(o);
    o = run_dot(x, b, 0, 0); /* (3) . (3 x 2) -> (2) */
    CHECK(o && o->ndim == 1 && o->shape[0] == 2);
    if (o) CHECK_NEAR(kl_tensor_data_at(o, 0), 7 + 18 + 33, 0);
    kl_tensor_release(o);
    /* N-d a contracts its last axis (K.dot): (2 x 1 x 3) . (3 x 2) -> (2 x 1 x 2) */
    int64_t s3d[3] = {2, 1, 3};
    kl_tensor *a3 = dense_of(dt, 3, s3d, va);
    o = run_dot(a3, b, 0, 0);
    CHECK(o && o->ndim == 3 && o->shape[0] == 2 && o->shape[1] == 1 && o->shape[2] == 2);
    for (int i = 0; o && i < 4; i++) CHECK_NEAR(kl_tensor_data_at(o, i), want[i], 0);
    kl_tensor_release(o);
    kl_tensor_release(a3);
    kl_tensor_release(x);
    kl_tensor_release(y);
    kl_tensor_release(a);
    kl_tensor_release(b);
  }
}

/* The MXNet tutorial vector: csr^T . ones(3, 2) -> row_sparse rows {0, 1, 2}. */
static void test_tutorial_csrT(void) {
  int64_t ip[4] = {0, 2, 2, 3}, ix[3] = {0, 2, 1}, s[2] = {3, 2};
  double v[3] = {7, 8, 9};
  for (int dt = 0; dt < 2; dt++) {
    kl_tensor *a = kt_csr_of(dt, 3, 5, 3, ip, ix, v), *b = dense_of(dt, 2, s, NULL);
    kl_tensor *in[2] = {a, b};
    kl_attrs at = {0};
    at.transpose_a = 1;
    CHECK(strcmp(kl_op_dispatch_name(KL_OP_DOT, in, 2, &at), "csrT.dense") == 0);
    long fb = kl_fallback_count();
    kl_tensor *o = run_dot(a, b, 1, 0);
    CHECK(kl_fallback_count() == fb);
    CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->shape[0] == 5 && o->shape[1] == 2);
    CHECK(o && o->nnz == 3);
    if (o && o->nnz == 3) {
      double want[6] = {7, 7, 9, 9, 8, 8};
      for (int i = 0; i < 3; i++) CHECK(o->indices[i] == i);
      for (int i = 0; i < 6; i++) CHECK_NEAR(kl_tensor_data_at(o, i), want[i], 0);
    }
    kl_tensor_release(o);
    kl_tensor_release(a);
    kl_tensor_release(b);
  }
}

/* Each sparse kernel on a small hand-made case, with the kernel it must dispatch to. */
static void test_exact_sparse(void) {
  /* a = [[1 0 2], [0 0 0], [0 3 0]] (3 x 3) */
  int64_t ip[4] = {0, 2, 2, 3}, ix[3] = {0, 2, 1}, s2[2] = {3, 2};
  double v[3] = {1, 2, 3}, vb[6] = {1, 2, 3, 4, 5, 6};
  kl_tensor *a = kt_csr_of(KL_FLOAT64, 3, 3, 3, ip, ix, v);
  kl_tensor *b = dense_of(KL_FLOAT64, 2, s2, vb); /* [[1 2] [3 4] [5 6]] */
  kl_tensor *brsp = NULL;
  int64_t *idx;
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT64, 2, s2, 1, &brsp)); /* only row 2: [5 6] */
  idx = brsp->indices;
  idx[0] = 2;
  kl_tensor_data_set(brsp, 0, 5);
  kl_tensor_data_set(brsp, 1, 6);
  struct {
    kl_tensor *x, *y;
    int ta;
    const char *kernel;
    kl_stype st;
    double want[6];
  } cases[] = {
      {a, b, 0, "csr.dense", KL_STYPE_DEFAULT, {11, 14, 0, 0, 9, 12}},
      {a, brsp, 0, "csr.row_sparse", KL_STYPE_DEFAULT, {10, 12, 0, 0, 0, 0}},
      {a, b, 1, "csrT.dense", KL_STYPE_ROW_SPARSE, {1, 2, 15, 18, 2, 4}},
      {a, brsp, 1, "csrT.row_sparse", KL_STYPE_ROW_SPARSE, {0, 0, 15, 18, 0, 0}},
  };
  for (int c = 0; c < 4; c++) {
    kl_tensor *in[2] = {cases[c].x, cases[c].y};
    kl_attrs at = {0};
    at.transpose_a = cases[c].ta;
    CHECK(strcmp(kl_op_dispatch_name(KL_OP_DOT, in, 2, &at), cases[c].kernel) == 0);
    kl_tensor *o = run_dot(cases[c].x, cases[c].y, cases[c].ta, 0);
    CHECK(o && o->stype == cases[c].st);
    if (!o) continue;
    kl_tensor *d = to_dense(o);
    for (int i = 0; i < 6; i++) CHECK_NEAR(kl_tensor_data_at(d, i), cases[c].want[i], 0);
    kl_tensor_release(d);
    kl_tensor_release(o);
  }
  /* csrT.row_sparse keeps only the touched rows: column 1 (entry of row 2) */
  kl_tensor *o = run_dot(a, brsp, 1, 0);
  CHECK(o && o->nnz == 1 && o->indices[0] == 1);
  kl_tensor_release(o);
  /* dense.csr: [[1 2 3]] . a = [1, 9, 2]; with transpose_a: [[1] [2] [3]]^T . a */
  int64_t s13[2] = {1, 3}, s31[2] = {3, 1};
  kl_tensor *r = dense_of(KL_FLOAT64, 2, s13, vb), *rt = dense_of(KL_FLOAT64, 2, s31, vb);
  kl_tensor *in[2] = {r, a};
  kl_attrs at0 = {0};
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_DOT, in, 2, &at0), "dense.csr") == 0);
  double want[3] = {1, 9, 2};
  o = run_dot(r, a, 0, 0);
  for (int i = 0; o && i < 3; i++) CHECK_NEAR(kl_tensor_data_at(o, i), want[i], 0);
  kl_tensor_release(o);
  o = run_dot(rt, a, 1, 0);
  CHECK(o && o->stype == KL_STYPE_DEFAULT && o->shape[0] == 1 && o->shape[1] == 3);
  for (int i = 0; o && i < 3; i++) CHECK_NEAR(kl_tensor_data_at(o, i), want[i], 0);
  kl_tensor_release(o);
  /* 1-d operands with csr: a . [1 2 3] = [7, 0, 6]; [1 2 3] . a = [1, 9, 2] */
  int64_t s3 = 3;
  kl_tensor *vec = dense_of(KL_FLOAT64, 1, &s3, vb), *vr = NULL;
  CHECK_OK(kl_tensor_tostype(vec, KL_STYPE_ROW_SPARSE, &vr));
  kl_tensor *av[2] = {a, vec}, *avr[2] = {a, vr}, *va[2] = {vec, a};
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_DOT, av, 2, &at0), "csr.dense") == 0);
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_DOT, avr, 2, &at0), "csr.row_sparse") == 0);
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_DOT, va, 2, &at0), "dense.csr") == 0);
  double wav[3] = {7, 0, 6};
  for (int k = 0; k < 2; k++) {
    o = run_dot(a, k ? vr : vec, 0, 0);
    CHECK(o && o->ndim == 1 && o->shape[0] == 3 && o->stype == KL_STYPE_DEFAULT);
    for (int i = 0; o && i < 3; i++) CHECK_NEAR(kl_tensor_data_at(o, i), wav[i], 0);
    kl_tensor_release(o);
  }
  o = run_dot(vec, a, 0, 0);
  CHECK(o && o->ndim == 1 && o->shape[0] == 3);
  for (int i = 0; o && i < 3; i++) CHECK_NEAR(kl_tensor_data_at(o, i), want[i], 0);
  kl_tensor_release(o);
  kl_tensor_release(vec);
  kl_tensor_release(vr);
  kl_tensor_release(r);
  kl_tensor_release(rt);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(brsp);
}

/* Every stype pair x transposes x dtype against the dense reference; sizes cover the
 * tile remainders and the OpenMP thresholds. */
static void test_random(void) {
  kl_rng g;
  kl_rng_seed(&g, 42);
  const kl_stype ST[3] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};
  const int64_t dims[3][3] = {{7, 5, 3}, {300, 200, 130}, {40, 1000, 67}};
  for (int dt = 0; dt < 2; dt++)
    for (int sz = 0; sz < 3; sz++)
      for (int sa = 0; sa < 3; sa++)
        for (int sb = 0; sb < 3; sb++)
          for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            int64_t M = dims[sz][0], K = dims[sz][1], N = dims[sz][2];
            kl_tensor *a = rnd(ST[sa], dt, ta ? K : M, ta ? M : K, 0.1, &g);
            kl_tensor *b = rnd(ST[sb], dt, tb ? N : K, tb ? K : N, sb == 2 ? 0.5 : 0.1, &g);
            long fb = kl_fallback_count();
            kl_tensor *in[2] = {a, b};
            kl_attrs at = {0};
            at.transpose_a = ta;
            at.transpose_b = tb;
            const char *path = kl_op_dispatch_name(KL_OP_DOT, in, 2, &at);
            kl_tensor *o = run_dot(a, b, ta, tb), *ref = ref_dot(a, b, ta, tb);
            kl_stype want = (sa == 1 && ta && !tb && sb != 1) ? KL_STYPE_ROW_SPARSE
                                                             : KL_STYPE_DEFAULT;
            double e = o ? rel_diff(o, ref) : 1e300;
            int sparse_kernel = sa == 1 && sb != 1 && !tb;
            sparse_kernel |= sa == 0 && sb == 1 && !tb;
            CHECK(o && o->stype == want);
            CHECK(e <= (dt == KL_FLOAT64 ? 1e-12 : 1e-5));
            CHECK(!sparse_kernel || kl_fallback_count() == fb);
            if (!(o && o->stype == want && e <= (dt ? 1e-12 : 1e-5)))
              fprintf(stderr, "  random case dt=%d sz=%d a=%s b=%s ta=%d tb=%d (%s): err %g\n",
                      dt, sz, kl_stype_name(ST[sa]), kl_stype_name(ST[sb]), ta, tb, path, e);
            if (o && o->stype == KL_STYPE_ROW_SPARSE) {
              CHECK_OK(kl_tensor_check_format(o, "dot", 0));
              /* only touched rows: every stored row has a nonzero */
              int64_t W = o->shape[1], zero_rows = 0;
              for (int64_t r = 0; r < o->nnz; r++) {
                int nz = 0;
                for (int64_t k = 0; k < W; k++) nz |= kl_tensor_data_at(o, r * W + k) != 0;
                zero_rows += !nz && W > 0;
              }
              CHECK(zero_rows == 0);
            }
            kl_tensor_release(o);
            kl_tensor_release(ref);
            kl_tensor_release(a);
            kl_tensor_release(b);
          }
}

/* Zero-sized dims: a valid, zero or empty result; and an all-empty csr. */
static void test_zero_sizes(void) {
  int64_t ip[4] = {0, 0, 0, 0};
  for (int dt = 0; dt < 2; dt++) {
    kl_tensor *a = kt_csr_of(dt, 3, 0, 0, ip, NULL, NULL);
    int64_t s02[2] = {0, 2}, s30[2] = {3, 0}, s32[2] = {3, 2};
    kl_tensor *b = dense_of(dt, 2, s02, NULL), *ad = dense_of(dt, 2, s30, NULL);
    kl_tensor *o = run_dot(a, b, 0, 0);
    CHECK(o && o->stype == KL_STYPE_DEFAULT && o->shape[0] == 3 && o->shape[1] == 2);
    for (int i = 0; o && i < 6; i++) CHECK(kl_tensor_data_at(o, i) == 0);
    kl_tensor_release(o);
    o = run_dot(ad, b, 0, 0); /* dense 3x0 . 0x2: BLAS not called with k = 0 */
    CHECK(o && o->shape[0] == 3 && o->shape[1] == 2);
    for (int i = 0; o && i < 6; i++) CHECK(kl_tensor_data_at(o, i) == 0);
    kl_tensor_release(o);
    /* csr 3x5 with no entries: csr^T . ones(3x2) is an empty 5x2 row_sparse */
    kl_tensor *e = kt_csr_of(dt, 3, 5, 0, ip, NULL, NULL), *ones = dense_of(dt, 2, s32, NULL);
    o = run_dot(e, ones, 1, 0);
    CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == 0 && o->shape[0] == 5);
    kl_tensor_release(o);
    /* 0 x 3 dense times 3 x 0: 0 x 0 */
    int64_t s03[2] = {0, 3}, s3z[2] = {3, 0};
    kl_tensor *x = dense_of(dt, 2, s03, NULL), *y = dense_of(dt, 2, s3z, NULL);
    o = run_dot(x, y, 0, 0);
    CHECK(o && o->shape[0] == 0 && o->shape[1] == 0);
    kl_tensor_release(o);
    kl_tensor_release(x);
    kl_tensor_release(y);
    kl_tensor_release(e);
    kl_tensor_release(ones);
    kl_tensor_release(a);
    kl_tensor_release(b);
    kl_tensor_release(ad);
  }
}

static void test_errors(void) {
  int64_t s23[2] = {2, 3}, s45[2] = {4, 5}, s3[1] = {3}, s234[3] = {2, 3, 4};
  kl_tensor *a = dense_of(KL_FLOAT32, 2, s23, NULL), *b = dense_of(KL_FLOAT32, 2, s45, NULL);
  kl_tensor *a64 = dense_of(KL_FLOAT64, 2, s23, NULL), *i64 = NULL, *o = NULL, *s0 = NULL;
  kl_tensor *b3 = dense_of(KL_FLOAT32, 3, s234, NULL), *v3 = dense_of(KL_FLOAT32, 1, s3, NULL);
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, s23, &i64));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 0, s3, &s0));
  CHECK_ERR(kl_dot(a, b, 0, 0, &o), KL_ESHAPE, "dot: shape mismatch (2 x 3) . (4 x 5)");
  CHECK_ERR(kl_dot(a, b, 1, 0, &o), KL_ESHAPE, "dot: shape mismatch (2 x 3)^T . (4 x 5)");
  CHECK_ERR(kl_dot(a, a, 0, 0, &o), KL_ESHAPE, "dot: shape mismatch (2 x 3) . (2 x 3)");
  CHECK_ERR(kl_dot(a, a64, 0, 1, &o), KL_EDTYPE, "dot: dtype mismatch float32 . float64");
  CHECK_ERR(kl_dot(i64, a, 0, 1, &o), KL_EDTYPE,
            "dot: a has dtype int64, expected float32 or float64");
  CHECK_ERR(kl_dot(a, i64, 0, 1, &o), KL_EDTYPE,
            "dot: b has dtype int64, expected float32 or float64");
  CHECK_ERR(kl_dot(s0, a, 0, 0, &o), KL_ESHAPE,
            "dot: a must have at least 1 dimension, got a 0-d tensor");
  CHECK_ERR(kl_dot(a, b3, 0, 0, &o), KL_ESHAPE, "dot: b must be 1-d or 2-d, got a 3-d tensor");
  CHECK_ERR(kl_dot(b3, a, 1, 0, &o), KL_ESHAPE,
            "dot: transpose_a needs a 1-d or 2-d a, got a 3-d tensor");
  CHECK_ERR(kl_dot(v3, a, 0, 0, &o), KL_ESHAPE, "dot: shape mismatch (3) . (2 x 3)");
  CHECK(o == NULL);
  /* gradient with respect to a csr input */
  kl_tensor *c = NULL, *gin = NULL, *out = NULL;
  CHECK_OK(kl_tensor_tostype(a, KL_STYPE_CSR, &c));
  kl_tensor *bt = dense_of(KL_FLOAT32, 2, (int64_t[]){3, 2}, NULL);
  kl_tensor *in[2] = {c, bt};
  CHECK_OK(kl_op_run(KL_OP_DOT, in, 2, NULL, &out));
  CHECK_ERR(kl_op_backward(KL_OP_DOT, in, 2, NULL, out, out, 0, KL_STYPE_DEFAULT, &gin),
            KL_EUNSUPPORTED, "dot: no gradient with respect to the csr input a");
  kl_tensor_release(out);
  kl_tensor_release(c);
  kl_tensor_release(bt);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(a64);
  kl_tensor_release(i64);
  kl_tensor_release(s0);
  kl_tensor_release(b3);
  kl_tensor_release(v3);
}

/* The sparse kernels give bit-identical results for 1 and 4 threads. */
static void test_determinism(void) {
  kl_rng g;
  kl_rng_seed(&g, 7);
  kl_tensor *a = rnd(KL_STYPE_CSR, KL_FLOAT32, 500, 3000, 0.02, &g);
  kl_tensor *b = rnd(KL_STYPE_DEFAULT, KL_FLOAT32, 500, 70, 1, &g);
  kl_tensor *w = rnd(KL_STYPE_DEFAULT, KL_FLOAT32, 3000, 70, 1, &g);
  kl_tensor *o[2][2] = {{NULL, NULL}, {NULL, NULL}};
  int saved = omp_get_max_threads();
  for (int r = 0; r < 2; r++) {
    omp_set_num_threads(r ? 4 : 1);
    o[r][0] = run_dot(a, b, 1, 0);
    o[r][1] = run_dot(a, w, 0, 0);
  }
  omp_set_num_threads(saved);
  for (int k = 0; k < 2; k++) {
    CHECK(o[0][k] && o[1][k] && o[0][k]->nnz == o[1][k]->nnz);
    if (o[0][k] && o[1][k] && o[0][k]->nnz == o[1][k]->nnz)
      CHECK(memcmp(o[0][k]->data, o[1][k]->data,
                   (size_t)(k ? kl_tensor_numel(o[0][k]) : o[0][k]->nnz * kl_row_width(o[0][k])) *
                       sizeof(float)) == 0);
  }
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < 2; k++) kl_tensor_release(o[r][k]);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(w);
}

/* f = sum(W .* dot(a, b)) for a fixed random W; gout = W. */
static double loss_of(kl_tensor *a, kl_tensor *b, int ta, int tb, const kl_tensor *W) {
  kl_tensor *o = NULL, *d = NULL;
  CHECK_OK(kl_dot(a, b, ta, tb, &o));
  if (!o) return NAN;
  d = to_dense(o);
  double s = 0;
  for (int64_t i = 0; i < kl_tensor_numel(d); i++)
    s += kl_tensor_data_at(d, i) * kl_tensor_data_at(W, i);
  kl_tensor_release(o);
  kl_tensor_release(d);
  return s;
}

/* Central differences on every stored value of the non-csr inputs. */
static void grad_check(kl_tensor *a, kl_tensor *b, int ta, int tb, kl_stype want1, kl_rng *g) {
  kl_tensor *in[2] = {a, b}, *out = NULL;
  kl_attrs at = {0};
  at.transpose_a = ta;
  at.transpose_b = tb;
  CHECK_OK(kl_op_run(KL_OP_DOT, in, 2, &at, &out));
  if (!out) return;
  kl_tensor *W = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, out->ndim, out->shape, &W));
  CHECK_OK(kl_tensor_fill_uniform(W, -1, 1, g));
  for (int i = 0; i < 2; i++) {
    if (in[i]->stype == KL_STYPE_CSR) continue;
    kl_stype want = i == 1 ? want1 : KL_STYPE_DEFAULT;
    kl_tensor *gin = NULL;
    CHECK_OK(kl_op_backward(KL_OP_DOT, in, 2, &at, out, W, i, want, &gin));
    if (!gin) continue;
    CHECK(gin->stype == want && gin->ndim == in[i]->ndim);
    kl_tensor *gd = to_dense(gin), *xd = to_dense(in[i]);
    double worst = 0;
    /* perturb the dense copy of the input, run with it in place of the original */
    for (int64_t k = 0; k < kl_tensor_numel(xd); k++) {
      double x0 = kl_tensor_data_at(xd, k), h = 1e-6;
      kl_tensor *p[2] = {a, b};
      kl_tensor_data_set(xd, k, x0 + h);
      p[i] = xd;
      double fp = loss_of(p[0], p[1], ta, tb, W);
      kl_tensor_data_set(xd, k, x0 - h);
      double fm = loss_of(p[0], p[1], ta, tb, W);
      kl_tensor_data_set(xd, k, x0);
      double e = fabs((fp - fm) / (2 * h) - kl_tensor_data_at(gd, k));
      if (e > worst) worst = e;
    }
    CHECK(worst < 1e-6);
    if (!(worst < 1e-6))
      fprintf(stderr, "  grad input %d (%s, %s, ta=%d tb=%d): err %g\n", i,
              kl_stype_name(a->stype), kl_stype_name(b->stype), ta, tb, worst);
    kl_tensor_release(gd);
    kl_tensor_release(xd);
    kl_tensor_release(gin);
  }
  kl_tensor_release(W);
  kl_tensor_release(out);
}

static void test_gradients(void) {
  kl_rng g;
  kl_rng_seed(&g, 3);
  for (int t = 0; t < 4; t++) {
    int ta = t & 1, tb = t >> 1;
    kl_tensor *a = rnd(KL_STYPE_DEFAULT, KL_FLOAT64, ta ? 4 : 3, ta ? 3 : 4, 1, &g);
    kl_tensor *b = rnd(KL_STYPE_DEFAULT, KL_FLOAT64, tb ? 5 : 4, tb ? 4 : 5, 1, &g);
    grad_check(a, b, ta, tb, KL_STYPE_DEFAULT, &g);
    kl_tensor *c = rnd(KL_STYPE_CSR, KL_FLOAT64, ta ? 4 : 3, ta ? 3 : 4, 0.5, &g);
    grad_check(c, b, ta, tb, KL_STYPE_DEFAULT, &g);
    if (!tb) grad_check(c, b, ta, tb, KL_STYPE_ROW_SPARSE, &g);
    kl_tensor *r = rnd(KL_STYPE_ROW_SPARSE, KL_FLOAT64, tb ? 5 : 4, tb ? 4 : 5, 0.5, &g);
    grad_check(a, r, ta, tb, KL_STYPE_DEFAULT, &g);
    grad_check(c, r, ta, tb, KL_STYPE_ROW_SPARSE, &g);
    kl_tensor *bc = rnd(KL_STYPE_CSR, KL_FLOAT64, tb ? 5 : 4, tb ? 4 : 5, 0.5, &g);
    grad_check(a, bc, ta, tb, KL_STYPE_DEFAULT, &g);
    kl_tensor_release(a);
    kl_tensor_release(b);
    kl_tensor_release(c);
    kl_tensor_release(r);
    kl_tensor_release(bc);
  }
  /* N-d and 1-d operands */
  int64_t s3[3] = {2, 3, 4}, s4[1] = {4}, s45[2] = {4, 5};
  kl_tensor *a3 = NULL, *v = NULL, *m = NULL;
  CHECK_OK(kl_sparse_rand(KL_STYPE_DEFAULT, KL_FLOAT64, 3, s3, 1, &g, &a3));
  CHECK_OK(kl_sparse_rand(KL_STYPE_DEFAULT, KL_FLOAT64, 1, s4, 1, &g, &v));
  CHECK_OK(kl_sparse_rand(KL_STYPE_DEFAULT, KL_FLOAT64, 2, s45, 1, &g, &m));
  grad_check(a3, m, 0, 0, KL_STYPE_DEFAULT, &g);
  grad_check(a3, v, 0, 0, KL_STYPE_DEFAULT, &g);
  grad_check(v, m, 0, 0, KL_STYPE_DEFAULT, &g);
  grad_check(v, v, 0, 0, KL_STYPE_DEFAULT, &g);
  kl_tensor_release(a3);
  kl_tensor_release(v);
  kl_tensor_release(m);
}

static void test_alloc_failures(void) {
  kl_rng g;
  kl_rng_seed(&g, 13);
  kl_tensor *c = rnd(KL_STYPE_CSR, KL_FLOAT64, 30, 50, 0.2, &g);
  kl_tensor *d = rnd(KL_STYPE_DEFAULT, KL_FLOAT64, 30, 8, 1, &g);
  kl_tensor *w = rnd(KL_STYPE_DEFAULT, KL_FLOAT64, 50, 8, 1, &g);
  kl_tensor *r = rnd(KL_STYPE_ROW_SPARSE, KL_FLOAT64, 50, 8, 0.5, &g);
  kl_tensor *r30 = rnd(KL_STYPE_ROW_SPARSE, KL_FLOAT64, 30, 8, 0.5, &g);
  kl_attrs n = {0}, t = {0};
  t.transpose_a = 1;
  kl_tensor *cw[2] = {c, w}, *cd[2] = {c, d}, *cr[2] = {c, r}, *cr30[2] = {c, r30};
  kt_alloc_sweep(KL_OP_DOT, cw, 2, &n, -1, 0);
  kt_alloc_sweep(KL_OP_DOT, cd, 2, &t, -1, 0);
  kt_alloc_sweep(KL_OP_DOT, cr, 2, &n, -1, 0);
  kt_alloc_sweep(KL_OP_DOT, cr30, 2, &t, -1, 0);
  kt_alloc_sweep(KL_OP_DOT, cw, 2, &n, 1, KL_STYPE_ROW_SPARSE);
  kt_alloc_sweep(KL_OP_DOT, cr, 2, &n, 1, KL_STYPE_DEFAULT);
  kl_tensor_release(c);
  kl_tensor_release(d);
  kl_tensor_release(w);
  kl_tensor_release(r);
  kl_tensor_release(r30);
}

/* Bit-for-bit equality of two tensors of the same stype (indices and values). */
static int same_bits(const kl_tensor *x, const kl_tensor *y) {
  if (!x || !y || x->stype != y->stype || x->nnz != y->nnz || x->dtype != y->dtype) return 0;
  int64_t nv = x->stype == KL_STYPE_ROW_SPARSE ? x->nnz * kl_row_width(x) : x->nnz;
  if (x->stype != KL_STYPE_DEFAULT &&
      memcmp(x->indices, y->indices, (size_t)x->nnz * sizeof(int64_t)) != 0)
    return 0;
  return memcmp(x->data, y->data, (size_t)nv * kl_dtype_size(x->dtype)) == 0;
}

/* The chooser (ops_dot.c's table): outside a plan step csr^T . b takes the sorted path;
 * inside one (a current pool) the direct accumulator for few columns, the column map for
 * many, the sorted path past N = 8: each the same bits as the sorted path. */
static void test_chooser(void) {
  kl_rng g;
  kl_rng_seed(&g, 7);
  kl_pool *pool = NULL;
  CHECK_OK(kl_pool_new(&pool));
  if (!pool) return; /* pools disabled (KL_NO_POOL=1): only the sorted path exists */
  const struct {
    int64_t R, C, N;
    kl_stype bs;
    const char *in_pool;
  } cases[] = {
      {50, 300, 1, KL_STYPE_DEFAULT, "csrT.direct"},
      {50, 300, 8, KL_STYPE_DEFAULT, "csrT.direct"},
      {50, 300, 4, KL_STYPE_ROW_SPARSE, "csrT.direct"},
      {60, 3000000, 1, KL_STYPE_DEFAULT, "csrT.spa"},
      {60, 3000000, 3, KL_STYPE_ROW_SPARSE, "csrT.spa"},
      {50, 300, 9, KL_STYPE_DEFAULT, "csrT.dense"},
      {50, 300, 9, KL_STYPE_ROW_SPARSE, "csrT.row_sparse"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    for (int dt = 0; dt < 2; dt++) {
      kl_tensor *a = rnd(KL_STYPE_CSR, dt, cases[c].R, cases[c].C, cases[c].C > 1000 ? 1e-4 : 0.05, &g);
      kl_tensor *b = rnd(cases[c].bs, dt, cases[c].R, cases[c].N, 0.7, &g);
      kl_tensor *in[2] = {a, b};
      kl_attrs at = {0};
      at.transpose_a = 1;
      const char *outside = kl_op_dispatch_name(KL_OP_DOT, in, 2, &at);
      CHECK(strcmp(outside, cases[c].bs == KL_STYPE_DEFAULT ? "csrT.dense" : "csrT.row_sparse") == 0);
      kl_tensor *ref = run_dot(a, b, 1, 0), *o = NULL;
      kl_pool *prev = kl_pool_enter(pool);
      const char *inside = kl_op_dispatch_name(KL_OP_DOT, in, 2, &at);
      CHECK_OK(kl_op_run(KL_OP_DOT, in, 2, &at, &o));
      kl_pool_leave(prev);
      CHECK(strcmp(inside, cases[c].in_pool) == 0);
      CHECK(same_bits(o, ref));
      if (strcmp(inside, cases[c].in_pool) != 0 || !same_bits(o, ref))
        fprintf(stderr, "  chooser case %zu dt %d: %s (want %s)\n", c, dt, inside, cases[c].in_pool);
      kl_tensor_release(o);
      kl_tensor_release(ref);
      kl_tensor_release(a);
      kl_tensor_release(b);
    }
  kl_pool_close(pool);
}

int main(void) {
  test_chooser();
  test_exact_dense();
  test_tutorial_csrT();
  test_exact_sparse();
  test_random();
  test_zero_sizes();
  test_errors();
  test_determinism();
  test_gradients();
  test_alloc_failures();
  KLTEST_DONE();
}
