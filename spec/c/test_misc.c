/* test_misc.c: transpose (dense any rank, csr -> csr, row_sparse fallback) and retain. */
#include "kltest_ops.h"

static kl_tensor *run1(kl_op op, kl_tensor *x) {
  kl_tensor *out = NULL;
  if (kl_op_run(op, &x, 1, NULL, &out) != KL_OK) return NULL;
  return out;
}

static void transpose_cases(kl_rng *rng) {
  double v[6] = {1, 0, 2, 0, 0, 3};
  kl_tensor *D = kt_mat(KL_FLOAT32, KL_STYPE_DEFAULT, 2, 3, v);
  kl_tensor *o = run1(KL_OP_TRANSPOSE, D);
  double e[6] = {1, 0, 0, 0, 2, 3};
  CHECK(o && o->shape[0] == 3 && o->shape[1] == 2);
  for (int k = 0; o && k < 6; k++) CHECK(kt_at(o, k) == e[k]);
  kl_tensor_release(o);
  kl_tensor *C = kt_mat(KL_FLOAT64, KL_STYPE_CSR, 2, 3, v);
  long f0 = kl_fallback_count();
  o = run1(KL_OP_TRANSPOSE, C);
  CHECK(kl_fallback_count() == f0);
  CHECK(o && o->stype == KL_STYPE_CSR && o->nnz == 3 && o->shape[0] == 3);
  CHECK_OK(kl_tensor_check_format(o, "test", 0));
  for (int k = 0; o && k < 6; k++) CHECK(kt_at(o, k) == e[k]);
  kl_tensor_release(o);
  /* rank 1 and 0 are unchanged */
  int64_t n4 = 4;
  double w[4] = {1, 2, 3, 4};
  kl_tensor *V = kt_dense(KL_INT64, 1, &n4, w);
  o = run1(KL_OP_TRANSPOSE, V);
  CHECK(o && o->ndim == 1 && kt_at(o, 3) == 4 && o->dtype == KL_INT64);
  kl_tensor_release(o);
  /* random: rank 2..4 dense, csr with empty rows and columns, row_sparse (fallback) */
  int64_t shapes[3][4] = {{5, 7}, {2, 3, 4}, {2, 3, 1, 5}};
  for (int r = 0; r < 3; r++)
    for (int dt = 0; dt < 3; dt++) {
      kl_tensor *x = kt_dense((kl_dtype)dt, r + 2, shapes[r], NULL);
      for (int64_t k = 0; k < kl_tensor_numel(x); k++)
        kl_tensor_data_set(x, k, (double)kl_rng_below(rng, 1000) - 500);
      o = run1(KL_OP_TRANSPOSE, x);
      int nd = r + 2, ok = o != NULL;
      for (int64_t k = 0; ok && k < kl_tensor_numel(x); k++) {
        int64_t idx[4], ridx[4], rem = k;
        for (int d = nd - 1; d >= 0; d--) idx[d] = rem % x->shape[d], rem /= x->shape[d];
        for (int d = 0; d < nd; d++) ridx[d] = idx[nd - 1 - d];
        double a, b;
        kl_tensor_get(x, idx, &a);
        kl_tensor_get(o, ridx, &b);
        ok = a == b;
      }
      if (!ok) fprintf(stderr, "transpose rank %d dtype %d differs\n", nd, dt);
      CHECK(ok);
      kl_tensor_release(x);
      kl_tensor_release(o);
    }
  int64_t s2[2] = {9, 6};
  for (int s = 1; s < 3; s++) {
    kl_tensor *x = kt_rand(rng, (kl_stype)s, KL_FLOAT64, 2, s2, -1, 1), *xd = NULL, *r = NULL;
    kl_tensor_tostype(x, KL_STYPE_DEFAULT, &xd);
    f0 = kl_fallback_count();
    o = run1(KL_OP_TRANSPOSE, x);
    r = run1(KL_OP_TRANSPOSE, xd);
    CHECK(kl_fallback_count() == f0 + (s == KL_STYPE_ROW_SPARSE));
    CHECK(o && o->stype == (s == KL_STYPE_CSR ? KL_STYPE_CSR : KL_STYPE_DEFAULT));
    CHECK(kt_maxrel(o, r) == 0);
    kl_tensor_release(x);
    kl_tensor_release(xd);
    kl_tensor_release(o);
    kl_tensor_release(r);
  }
  /* gradient */
  int64_t s3[3] = {2, 3, 4};
  kl_tensor *x = kt_rand(rng, 0, KL_FLOAT64, 3, s3, -1, 1);
  CHECK(kt_gradcheck(KL_OP_TRANSPOSE, &x, 1, NULL, 0, rng) <= 1e-8);
  kl_tensor_release(x);
  kl_tensor_release(D);
  kl_tensor_release(C);
  kl_tensor_release(V);
}

static void retain_cases(kl_rng *rng) {
  /* the tutorial: data {{1,2},{3,4}} at rows 1, 4 of 6x2; retain rows {0, 1} -> row 1 only */
  double v[12] = {0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 0};
  kl_tensor *R = kt_mat(KL_FLOAT32, KL_STYPE_ROW_SPARSE, 6, 2, v), *o = NULL;
  int64_t rows[2] = {0, 1};
  CHECK_OK(kl_retain(R, rows, 2, &o));
  CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == 1 && o->indices[0] == 1 &&
        kt_at(o, 2) == 1 && kt_at(o, 3) == 2 && o->shape[0] == 6);
  kl_tensor_release(o);
  /* unsorted, repeated requests; output sorted */
  int64_t rows2[5] = {5, 4, 1, 4, 3};
  CHECK_OK(kl_retain(R, rows2, 5, &o));
  CHECK(o && o->nnz == 2 && o->indices[0] == 1 && o->indices[1] == 4 && kt_at(o, 9) == 4);
  CHECK_OK(kl_tensor_check_format(o, "test", 0));
  kl_tensor_release(o);
  CHECK_OK(kl_retain(R, NULL, 0, &o));
  CHECK(o && o->nnz == 0);
  kl_tensor_release(o);
  int64_t bad[2] = {1, 9}, neg[1] = {-1};
  CHECK_ERR(kl_retain(R, bad, 2, &o), KL_EINDEX, "retain: index 9 out of range for 6 rows");
  CHECK_ERR(kl_retain(R, neg, 1, &o), KL_EINDEX, "retain: index -1 out of range for 6 rows");
  kl_tensor *D = kt_mat(KL_FLOAT32, KL_STYPE_DEFAULT, 6, 2, v);
  CHECK_ERR(kl_retain(D, rows, 2, &o), KL_ESTYPE, "retain: expected a row_sparse tensor, got default");
  int64_t n2 = 2;
  double fr[2] = {0, 1};
  kl_tensor *F = kt_dense(KL_FLOAT64, 1, &n2, fr), *in[2] = {R, F};
  CHECK_ERR(kl_op_run(KL_OP_RETAIN, in, 2, NULL, &o), KL_EINVAL,
            "retain: indices must be a dense 1-d int64 tensor, got default float64 with 1 dimensions");
  /* random against a dense reference */
  int64_t s3[3] = {40, 3, 2};
  for (int t = 0; t < 5; t++) {
    kl_tensor *x = kt_rand(rng, KL_STYPE_ROW_SPARSE, KL_FLOAT64, 3, s3, -1, 1);
    int64_t req[15];
    int keep[40] = {0};
    for (int k = 0; k < 15; k++) req[k] = (int64_t)kl_rng_below(rng, 40), keep[req[k]] = 1;
    CHECK_OK(kl_retain(x, req, 15, &o));
    int ok = o != NULL;
    for (int64_t k = 0; ok && k < 240; k++) ok = kt_at(o, k) == (keep[k / 6] ? kt_at(x, k) : 0);
    CHECK(ok);
    /* gradient: gout on the kept rows */
    kl_tensor *g = kt_rand(rng, 0, KL_FLOAT64, 3, s3, -1, 1), *gi = NULL, *idx = NULL;
    int64_t n15 = 15;
    idx = kt_dense(KL_INT64, 1, &n15, NULL);
    memcpy(idx->data, req, sizeof req);
    kl_tensor *ri[2] = {x, idx};
    CHECK_OK(kl_op_backward(KL_OP_RETAIN, ri, 2, NULL, o, g, 0, KL_STYPE_DEFAULT, &gi));
    ok = gi != NULL;
    for (int64_t k = 0; ok && k < 240; k++) {
      int stored = 0;
      for (int64_t p = 0; p < o->nnz; p++) stored |= o->indices[p] == k / 6;
      ok = kt_at(gi, k) == (stored ? kt_at(g, k) : 0);
    }
    CHECK(ok);
    kl_tensor_release(gi);
    CHECK_OK(kl_op_backward(KL_OP_RETAIN, ri, 2, NULL, NULL, g, 0, KL_STYPE_ROW_SPARSE, &gi));
    CHECK(gi && gi->stype == KL_STYPE_ROW_SPARSE);
    kl_tensor_release(gi);
    kl_tensor_release(g);
    kl_tensor_release(idx);
    kl_tensor_release(x);
    kl_tensor_release(o);
  }
  kl_tensor_release(R);
  kl_tensor_release(D);
  kl_tensor_release(F);
}

int main(void) {
  kl_rng rng;
  kl_rng_seed(&rng, 11);
  transpose_cases(&rng);
  retain_cases(&rng);
  KLTEST_DONE();
}
