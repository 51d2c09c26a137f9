/* test_rng.c: the seeded generator (pinned stream), distributions, fills and sparse.rand. */
#include <stdint.h>
#include "kltest.h"

static void test_stream(void) {
  kl_rng a, b;
  kl_rng_seed(&a, 0);
  /* xoshiro256** seeded by splitmix64(0): pinned so a change of algorithm is noticed */
  CHECK(kl_rng_next(&a) == 11091344671253066420ULL);
  CHECK(kl_rng_next(&a) == 13793997310169335082ULL);
  CHECK(kl_rng_next(&a) == 1900383378846508768ULL);
  kl_rng_seed(&a, 42);
  CHECK(kl_rng_uniform(&a) == 0.083862971059882163);
  /* libm's log/sin/cos may differ in the last bit across platforms: near, not equal */
  CHECK_NEAR(kl_rng_normal(&a), -0.41536520949523315, 1e-14);
  CHECK_NEAR(kl_rng_normal(&a), -0.88332130784812712, 1e-14); /* the Box-Muller spare */
  CHECK(kl_rng_below(&a, 10) == 3);
  kl_rng_seed(&a, 123);
  kl_rng_seed(&b, 123);
  int same = 1;
  for (int i = 0; i < 1000; i++) same &= kl_rng_next(&a) == kl_rng_next(&b);
  CHECK(same);
  kl_rng_seed(&b, 124);
  CHECK(kl_rng_next(&a) != kl_rng_next(&b));
  kl_rng *g = kl_rng_global(); /* seeded with 0 at start */
  kl_rng_seed(&a, 0);
  CHECK(g == kl_rng_global() && kl_rng_next(g) == kl_rng_next(&a));
}

static void test_distributions(void) {
  kl_rng r;
  kl_rng_seed(&r, 5);
  enum { N = 100000 };
  double s = 0, s2 = 0, umin = 1, umax = 0, us = 0;
  for (int i = 0; i < N; i++) {
    double x = kl_rng_normal(&r), u = kl_rng_uniform(&r);
    s += x;
    s2 += x * x;
    us += u;
    umin = u < umin ? u : umin;
    umax = u > umax ? u : umax;
  }
  double mean = s / N, var = s2 / N - mean * mean;
  CHECK(fabs(mean) < 0.015 && fabs(var - 1) < 0.02);
  CHECK(umin >= 0 && umax < 1 && fabs(us / N - 0.5) < 0.01);
  long hist[7] = {0};
  for (int i = 0; i < 70000; i++) {
    uint64_t k = kl_rng_below(&r, 7);
    if (k < 7) hist[k]++;
    else hist[0] = -1000000;
  }
  for (int k = 0; k < 7; k++) CHECK(hist[k] > 9500 && hist[k] < 10500);
  CHECK(kl_rng_below(&r, 1) == 0);
  uint64_t big = (UINT64_C(1) << 63) + 5, m = 0;
  for (int i = 0; i < 100; i++) {
    uint64_t v = kl_rng_below(&r, big);
    m = v > m ? v : m;
  }
  CHECK(m < big);
}

static void test_fills(void) {
  int64_t s[2] = {200, 250};
  kl_tensor *t = NULL;
  kl_rng r;
  kl_rng_seed(&r, 9);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s, &t));
  CHECK_OK(kl_tensor_fill_normal(t, 3, 0.5, &r));
  double m = 0, v = 0;
  for (int64_t i = 0; i < t->nnz; i++) m += kl_tensor_data_at(t, i);
  m /= (double)t->nnz;
  for (int64_t i = 0; i < t->nnz; i++) v += pow(kl_tensor_data_at(t, i) - m, 2);
  v /= (double)t->nnz;
  CHECK(fabs(m - 3) < 0.01 && fabs(v - 0.25) < 0.01);
  CHECK_OK(kl_tensor_fill_uniform(t, -2, 4, &r));
  double lo = 9, hi = -9;
  for (int64_t i = 0; i < t->nnz; i++) {
    double x = kl_tensor_data_at(t, i);
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  CHECK(lo >= -2 && hi <= 4 && lo < -1.99 && hi > 3.99);
  CHECK_ERR(kl_tensor_fill_uniform(t, 1, 0, &r), KL_EINVAL, "uniform: low = 1 and high = 0");
  CHECK_ERR(kl_tensor_fill_normal(t, 0, -1, &r), KL_EINVAL, "stddev = -1");
  CHECK_ERR(kl_tensor_fill_normal(t, NAN, 1, &r), KL_EINVAL, "mean = nan");
  kl_tensor_release(t);
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, s, &t));
  CHECK_ERR(kl_tensor_fill_normal(t, 0, 1, &r), KL_EDTYPE, "normal: dtype int64 not supported");
  CHECK_ERR(kl_tensor_fill_uniform(t, 0, 1, NULL), KL_EDTYPE, "uniform: dtype int64");
  kl_tensor_release(t);
  /* the same seed gives the same tensor */
  kl_tensor *a = NULL, *b = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, s, &a));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, s, &b));
  kl_rng_seed(&r, 77);
  CHECK_OK(kl_tensor_fill_normal(a, 0, 1, &r));
  kl_rng_seed(&r, 77);
  CHECK_OK(kl_tensor_fill_normal(b, 0, 1, &r));
  CHECK(memcmp(a->data, b->data, (size_t)a->nnz * 8) == 0);
  kl_tensor_release(a);
  kl_tensor_release(b);
}

/* Stored values of a sparse.rand result are in (0, 1]. */
static int values_in_unit(const kl_tensor *t) {
  int64_t n = t->stype == KL_STYPE_ROW_SPARSE ? t->nnz * kl_row_width(t) : t->nnz;
  for (int64_t i = 0; i < n; i++) {
    double v = kl_tensor_data_at(t, i);
    if (!(v > 0 && v <= 1)) return 0;
  }
  return 1;
}

static void test_sparse_rand(void) {
  kl_rng r;
  kl_rng_seed(&r, 1);
  int64_t s[2] = {300, 400}, s3[3] = {1000, 2, 3}, z[2] = {0, 5};
  kl_tensor *c = NULL, *c2 = NULL, *rs = NULL, *d = NULL;
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, s, 0.1, &r, &c));
  CHECK_OK(kl_tensor_check_format(c, "rand", 0));
  CHECK(c->stype == KL_STYPE_CSR && fabs((double)c->nnz / 120000.0 - 0.1) < 0.005);
  CHECK(values_in_unit(c));
  kl_rng_seed(&r, 1);
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, s, 0.1, &r, &c2));
  CHECK(c2->nnz == c->nnz && memcmp(c2->indices, c->indices, (size_t)c->nnz * 8) == 0 &&
        memcmp(c2->data, c->data, (size_t)c->nnz * 4) == 0);
  kl_tensor_release(c2);
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, s, 1.0, &r, &c2));
  CHECK(c2->nnz == 120000 && c2->indptr[1] == 400 && values_in_unit(c2));
  CHECK_OK(kl_tensor_check_format(c2, "rand", 0));
  kl_tensor_release(c2);
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, s, 0.0, &r, &c2));
  CHECK(c2->nnz == 0 && c2->indptr[300] == 0);
  kl_tensor_release(c2);
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, z, 0.5, &r, &c2));
  CHECK(c2->nnz == 0 && c2->shape[0] == 0);
  kl_tensor_release(c2);
  CHECK_OK(kl_sparse_rand(KL_STYPE_ROW_SPARSE, KL_FLOAT64, 3, s3, 0.25, &r, &rs));
  CHECK_OK(kl_tensor_check_format(rs, "rand", 0));
  CHECK(fabs((double)rs->nnz / 1000.0 - 0.25) < 0.05 && values_in_unit(rs));
  CHECK_OK(kl_sparse_rand(KL_STYPE_DEFAULT, KL_FLOAT32, 2, s, 0.3, &r, &d));
  CHECK(d->stype == KL_STYPE_DEFAULT && d->nnz == 120000);
  kl_tensor *o = NULL;
  CHECK_ERR(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, s, 1.5, &r, &o), KL_EINVAL,
            "rand: density 1.5 must be in [0, 1]");
  CHECK_ERR(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, s, NAN, &r, &o), KL_EINVAL, "density nan");
  CHECK_ERR(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 3, s3, 0.5, &r, &o), KL_ESHAPE,
            "rand: csr needs a 2-d shape, got 3-d");
  CHECK_ERR(kl_sparse_rand(KL_STYPE_CSR, KL_INT64, 2, s, 0.5, &r, &o), KL_EDTYPE, "int64");
  CHECK(o == NULL);
  kl_tensor_release(c);
  kl_tensor_release(rs);
  kl_tensor_release(d);
}

int main(void) {
  test_stream();
  test_distributions();
  test_fills();
  test_sparse_rand();
  KLTEST_DONE();
}
