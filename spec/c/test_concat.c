/* test_concat.c: concatenate on dense, csr and row_sparse: exact, random against an
 * element-by-element reference, zero sizes, errors and finite-difference gradients. */
#include <stdlib.h>
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

static kl_tensor *cat(kl_tensor **in, int n, int axis) {
  kl_attrs a;
  memset(&a, 0, sizeof a);
  a.axis = axis;
  kl_tensor *o = NULL;
  CHECK_OK(kl_op_run(KL_OP_CONCAT, in, n, &a, &o));
  return o;
}

/* 1 when x (any stype) equals the concatenation of in[] along axis, read element by element
 * through kl_tensor_get (an implementation independent of the kernels). */
static int matches(const kl_tensor *x, kl_tensor **in, int n, int axis) {
  if (!x || x->ndim != in[0]->ndim) return 0;
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += in[i]->shape[axis];
  if (x->shape[axis] != total) return 0;
  int64_t numel = kl_tensor_numel(x), idx[KL_MAX_NDIM];
  for (int64_t e = 0; e < numel; e++) {
    int64_t rem = e;
    for (int d = x->ndim - 1; d >= 0; d--) {
      idx[d] = rem % x->shape[d];
      rem /= x->shape[d];
    }
    int i = 0;
    int64_t c = idx[axis];
    while (c >= in[i]->shape[axis]) c -= in[i++]->shape[axis];
    int64_t sub[KL_MAX_NDIM];
    memcpy(sub, idx, sizeof sub);
    sub[axis] = c;
    double got = 0, want = 0;
    if (kl_tensor_get(x, idx, &got) != KL_OK || kl_tensor_get(in[i], sub, &want) != KL_OK)
      return 0;
    if (got != want) return 0;
  }
  return 1;
}

static kl_tensor *from(kl_dtype dt, kl_stype st, int ndim, const int64_t *shape,
                       const double *v) {
  kl_tensor *d = NULL, *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, ndim, shape, &d));
  if (!d) exit(2);
  for (int64_t i = 0; i < kl_tensor_numel(d); i++) kl_tensor_data_set(d, i, v[i]);
  CHECK_OK(kl_tensor_tostype(d, st, &t));
  kl_tensor_release(d);
  if (!t) exit(2);
  return t;
}

static void test_exact(void) {
  /* a = [[1 0] [0 2]], b = [[0 3] [4 0]] */
  int64_t s[2] = {2, 2};
  double va[4] = {1, 0, 0, 2}, vb[4] = {0, 3, 4, 0};
  const kl_stype ST[3] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};
  const char *kern[3] = {"dense", "csr", "row_sparse"};
  double want0[8] = {1, 0, 0, 2, 0, 3, 4, 0}, want1[8] = {1, 0, 0, 3, 0, 2, 4, 0};
  for (int st = 0; st < 3; st++) {
    kl_tensor *a = from(KL_FLOAT32, ST[st], 2, s, va), *b = from(KL_FLOAT32, ST[st], 2, s, vb);
    kl_tensor *in[2] = {a, b};
    kl_attrs at;
    memset(&at, 0, sizeof at);
    CHECK(strcmp(kl_op_dispatch_name(KL_OP_CONCAT, in, 2, &at), kern[st]) == 0);
    long fb = kl_fallback_count();
    kl_tensor *o = cat(in, 2, 0);
    CHECK(o && o->stype == ST[st] && o->shape[0] == 4 && o->shape[1] == 2);
    CHECK(kl_fallback_count() == fb);
    if (o) {
      CHECK_OK(kl_tensor_check_format(o, "concatenate", 0));
      kl_tensor *d = to_dense(o);
      for (int i = 0; i < 8; i++) CHECK(kl_tensor_data_at(d, i) == want0[i]);
      kl_tensor_release(d);
    }
    kl_tensor_release(o);
    o = cat(in, 2, 1); /* csr stays csr; row_sparse along axis 1 is dense */
    CHECK(o && o->stype == (ST[st] == KL_STYPE_CSR ? KL_STYPE_CSR : KL_STYPE_DEFAULT));
    CHECK(o && o->shape[0] == 2 && o->shape[1] == 4);
    if (o) {
      CHECK_OK(kl_tensor_check_format(o, "concatenate", 0));
      kl_tensor *d = to_dense(o);
      for (int i = 0; i < 8; i++) CHECK(kl_tensor_data_at(d, i) == want1[i]);
      kl_tensor_release(d);
    }
    kl_tensor_release(o);
    kl_tensor_release(a);
    kl_tensor_release(b);
  }
  /* csr axis 1 column offsets and indptr, exactly */
  kl_tensor *a = from(KL_FLOAT64, KL_STYPE_CSR, 2, s, va), *b = from(KL_FLOAT64, KL_STYPE_CSR, 2, s, vb);
  kl_tensor *in[3] = {a, b, a};
  kl_tensor *o = cat(in, 3, 1);
  if (o) {
    int64_t ip[3] = {0, 3, 6}, ix[6] = {0, 3, 4, 1, 2, 5};
    CHECK(o->nnz == 6 && o->shape[1] == 6);
    for (int i = 0; i < 3; i++) CHECK(o->indptr[i] == ip[i]);
    for (int i = 0; i < 6 && o->nnz == 6; i++) CHECK(o->indices[i] == ix[i]);
  }
  kl_tensor_release(o);
  /* mixed stypes: dense result */
  kl_tensor *d = from(KL_FLOAT64, KL_STYPE_DEFAULT, 2, s, vb);
  kl_tensor *mix[2] = {a, d};
  o = cat(mix, 2, 0);
  CHECK(o && o->stype == KL_STYPE_DEFAULT && matches(o, mix, 2, 0));
  kl_tensor_release(o);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(d);
  /* int64 dense, 3-d along the last axis */
  int64_t s3[3] = {2, 1, 2}, s3b[3] = {2, 1, 1};
  double v3[4] = {1, 2, 3, 4}, v3b[2] = {9, 8};
  kl_tensor *x = from(KL_INT64, KL_STYPE_DEFAULT, 3, s3, v3);
  kl_tensor *y = from(KL_INT64, KL_STYPE_DEFAULT, 3, s3b, v3b);
  kl_tensor *xy[2] = {x, y};
  o = cat(xy, 2, 2);
  double w3[6] = {1, 2, 9, 3, 4, 8};
  CHECK(o && o->dtype == KL_INT64 && o->shape[2] == 3);
  for (int i = 0; o && i < 6; i++) CHECK(kl_tensor_data_at(o, i) == w3[i]);
  kl_tensor_release(o);
  kl_tensor_release(x);
  kl_tensor_release(y);
}

static void test_random(void) {
  kl_rng g;
  kl_rng_seed(&g, 9);
  const kl_stype ST[4] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
  for (int dt = 0; dt < 2; dt++)
    for (int st = 0; st < 4; st++) /* st == 3: mixed */
      for (int ndim = 2; ndim <= 3; ndim++)
        for (int axis = 0; axis < ndim; axis++)
          for (int n = 1; n <= 11; n += 5) {
            if (ndim == 3 && (st == 1 || st == 3)) continue;
            kl_tensor *in[11];
            int64_t base[3] = {20 + 3 * dt, 7, 5};
            for (int i = 0; i < n; i++) {
              int64_t sh[3] = {base[0], base[1], base[2]};
              sh[axis] = (i * 7 + 3) % 40; /* some are 0 */
              kl_stype s = st < 3 ? ST[st] : (i % 3 == 0 ? KL_STYPE_CSR : i % 3 == 1 ? KL_STYPE_ROW_SPARSE : KL_STYPE_DEFAULT);
              CHECK_OK(kl_sparse_rand(s, dt, ndim, sh, 0.3, &g, &in[i]));
            }
            long fb = kl_fallback_count();
            kl_tensor *o = cat(in, n, axis);
            int sparse_kernel = (st == 1) || (st == 2 && axis == 0) || st == 0;
            kl_stype want = st == 1 ? KL_STYPE_CSR
                            : (st == 2 && axis == 0) ? KL_STYPE_ROW_SPARSE
                            : (st == 3 && n == 1) ? KL_STYPE_CSR
                                                  : KL_STYPE_DEFAULT;
            CHECK(o && o->stype == want);
            CHECK(!sparse_kernel || kl_fallback_count() == fb);
            if (o) CHECK_OK(kl_tensor_check_format(o, "concatenate", 0));
            int ok = matches(o, in, n, axis);
            CHECK(ok);
            if (!ok)
              fprintf(stderr, "  random dt=%d st=%d ndim=%d axis=%d n=%d\n", dt, st, ndim, axis,
                      n);
            kl_tensor_release(o);
            for (int i = 0; i < n; i++) kl_tensor_release(in[i]);
          }
}

static void test_errors(void) {
  int64_t s23[2] = {2, 3}, s43[2] = {4, 3}, s3[1] = {3};
  kl_tensor *a = NULL, *b = NULL, *c64 = NULL, *v = NULL, *z = NULL, *o = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s23, &a));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s43, &b));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, s23, &c64));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, s3, &v));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 0, s3, &z));
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.axis = 1;
  kl_tensor *ab[2] = {a, b}, *ac[2] = {a, c64}, *av[2] = {a, v}, *zz[2] = {z, z};
  CHECK_ERR(kl_op_run(KL_OP_CONCAT, ab, 2, &at, &o), KL_ESHAPE,
            "concatenate: shape mismatch (4 x 3) at input 2 vs (2 x 3) at input 1: sizes must "
            "agree except on axis 1");
  CHECK_ERR(kl_op_run(KL_OP_CONCAT, ac, 2, &at, &o), KL_EDTYPE,
            "concatenate: dtype mismatch: input 2 is float64, input 1 is float32");
  CHECK_ERR(kl_op_run(KL_OP_CONCAT, av, 2, &at, &o), KL_ESHAPE,
            "concatenate: input 2 is 1-d, input 1 is 2-d");
  CHECK_ERR(kl_op_run(KL_OP_CONCAT, zz, 2, &at, &o), KL_ESHAPE,
            "concatenate: cannot concatenate 0-d tensors (input 1)");
  at.axis = 2;
  CHECK_ERR(kl_op_run(KL_OP_CONCAT, ab, 2, &at, &o), KL_EINVAL,
            "concatenate: axis 2 out of range for 2-d tensors");
  at.axis = -1;
  CHECK_ERR(kl_op_run(KL_OP_CONCAT, ab, 2, &at, &o), KL_EINVAL,
            "concatenate: axis -1 out of range for 2-d tensors");
  kl_meta m, om;
  at.axis = 0;
  CHECK_ERR(kl_opdef_concat.infer(&m, 0, &at, &om), KL_EINVAL,
            "concatenate: expected at least 1 input, got 0");
  CHECK(o == NULL);
  /* valid: along axis 0 the row counts may differ */
  o = cat(ab, 2, 0);
  CHECK(o && o->shape[0] == 6);
  kl_tensor_release(o);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(c64);
  kl_tensor_release(v);
  kl_tensor_release(z);
}

/* f = sum(W .* concat(in)); central differences on every element of each input. */
static void grad_check(kl_tensor **in, int n, int axis, kl_rng *g) {
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.axis = axis;
  kl_tensor *out = cat(in, n, axis), *W = NULL;
  if (!out) return;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, out->ndim, out->shape, &W));
  CHECK_OK(kl_tensor_fill_uniform(W, -1, 1, g));
  for (int i = 0; i < n; i++) {
    kl_tensor *gin = NULL;
    CHECK_OK(kl_op_backward(KL_OP_CONCAT, in, n, &at, out, W, i, in[i]->stype, &gin));
    if (!gin) continue;
    CHECK(gin->stype == in[i]->stype);
    kl_tensor *gd = to_dense(gin), *xd = to_dense(in[i]), *save = in[i];
    double worst = 0;
    in[i] = xd;
    for (int64_t k = 0; k < kl_tensor_numel(xd); k++) {
      double x0 = kl_tensor_data_at(xd, k), h = 1e-6, f[2];
      for (int s = 0; s < 2; s++) {
        kl_tensor_data_set(xd, k, x0 + (s ? -h : h));
        kl_tensor *o = cat(in, n, axis), *od = o ? to_dense(o) : NULL;
        f[s] = 0;
        for (int64_t e = 0; od && e < kl_tensor_numel(od); e++)
          f[s] += kl_tensor_data_at(od, e) * kl_tensor_data_at(W, e);
        kl_tensor_release(o);
        kl_tensor_release(od);
      }
      kl_tensor_data_set(xd, k, x0);
      double e = fabs((f[0] - f[1]) / (2 * h) - kl_tensor_data_at(gd, k));
      if (e > worst) worst = e;
    }
    in[i] = save;
    CHECK(worst < 1e-7);
    kl_tensor_release(gd);
    kl_tensor_release(xd);
    kl_tensor_release(gin);
  }
  kl_tensor_release(W);
  kl_tensor_release(out);
}

static void test_gradients(void) {
  kl_rng g;
  kl_rng_seed(&g, 2);
  int64_t sh[3][3] = {{2, 3, 2}, {3, 3, 2}, {2, 1, 2}};
  for (int axis = 0; axis < 3; axis++) {
    kl_tensor *in[3];
    for (int i = 0; i < 3; i++) {
      int64_t s[3] = {2, 3, 2};
      s[axis] = sh[i][axis];
      CHECK_OK(kl_sparse_rand(i == 1 ? KL_STYPE_ROW_SPARSE : KL_STYPE_DEFAULT, KL_FLOAT64, 3, s,
                              0.7, &g, &in[i]));
    }
    grad_check(in, 3, axis, &g);
    for (int i = 0; i < 3; i++) kl_tensor_release(in[i]);
  }
  for (int axis = 0; axis < 2; axis++) {
    kl_tensor *in[2];
    int64_t s[2] = {3, 4};
    CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, s, 0.5, &g, &in[0]));
    CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, s, 0.5, &g, &in[1]));
    grad_check(in, 2, axis, &g);
    kl_tensor_release(in[0]);
    kl_tensor_release(in[1]);
  }
}

static void test_alloc_failures(void) {
  kl_rng g;
  kl_rng_seed(&g, 13);
  int64_t s[2] = {6, 5};
  const kl_stype ST[3] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};
  for (int st = 0; st < 3; st++) {
    kl_tensor *x[10];
    for (int i = 0; i < 10; i++) CHECK_OK(kl_sparse_rand(ST[st], KL_FLOAT64, 2, s, 0.5, &g, &x[i]));
    kl_attrs a;
    memset(&a, 0, sizeof a);
    kt_alloc_sweep(KL_OP_CONCAT, x, 10, &a, -1, 0);
    a.axis = 1;
    kt_alloc_sweep(KL_OP_CONCAT, x, 10, &a, -1, 0);
    kt_alloc_sweep(KL_OP_CONCAT, x, 10, &a, 3, KL_STYPE_DEFAULT);
    for (int i = 0; i < 10; i++) kl_tensor_release(x[i]);
  }
}

int main(void) {
  test_exact();
  test_random();
  test_errors();
  test_gradients();
  test_alloc_failures();
  KLTEST_DONE();
}
