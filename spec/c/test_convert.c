/* test_convert.c: stype conversions, copies, astype, reshape, coo, row slices and gathers. */
#include <stdint.h>
#include <stdlib.h>
#include "kltest.h"

static const kl_dtype DTYPES[3] = {KL_FLOAT32, KL_FLOAT64, KL_INT64};

static kl_tensor *dense_from(kl_dtype d, int ndim, const int64_t *shape, const double *v) {
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(d, ndim, shape, &t) != KL_OK) return NULL;
  for (int64_t i = 0; i < t->nnz; i++) kl_tensor_data_set(t, i, v[i]);
  return t;
}

/* A dense tensor with about 30% nonzeros (small integers, exact in every dtype). */
static kl_tensor *dense_random(kl_dtype d, int ndim, const int64_t *shape, kl_rng *r) {
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(d, ndim, shape, &t) != KL_OK) return NULL;
  for (int64_t i = 0; i < t->nnz; i++)
    if (kl_rng_uniform(r) < 0.3) kl_tensor_data_set(t, i, (double)kl_rng_below(r, 19) - 9);
  return t;
}

/* Whether a (any stype) equals the dense b exactly, shape and values. */
static int same_as_dense(const kl_tensor *a, const kl_tensor *b) {
  kl_tensor *d = NULL;
  int ok = kl_tensor_tostype(a, KL_STYPE_DEFAULT, &d) == KL_OK && d->ndim == b->ndim &&
           d->dtype == b->dtype;
  for (int i = 0; ok && i < b->ndim; i++) ok = d->shape[i] == b->shape[i];
  for (int64_t i = 0; ok && i < b->nnz; i++) ok = kl_tensor_data_at(d, i) == kl_tensor_data_at(b, i);
  kl_tensor_release(d);
  return ok;
}

static int64_t count_nonzero(const kl_tensor *t) {
  int64_t n = 0;
  for (int64_t i = 0; i < t->nnz; i++) n += kl_tensor_data_at(t, i) != 0;
  return n;
}

static void test_tutorial(void) {
  double x[15] = {7, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0};
  int64_t s[2] = {3, 5};
  kl_tensor *d = dense_from(KL_FLOAT32, 2, s, x), *c = NULL, *r = NULL, *back = NULL;
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_CSR, &c));
  CHECK(c->nnz == 3 && c->indptr[0] == 0 && c->indptr[1] == 2 && c->indptr[2] == 2 &&
        c->indptr[3] == 3);
  CHECK(c->indices[0] == 0 && c->indices[1] == 2 && c->indices[2] == 1);
  CHECK(kl_tensor_data_at(c, 0) == 7 && kl_tensor_data_at(c, 1) == 8 &&
        kl_tensor_data_at(c, 2) == 9);
  CHECK_OK(kl_tensor_tostype(c, KL_STYPE_ROW_SPARSE, &r));
  CHECK(r->nnz == 2 && r->indices[0] == 0 && r->indices[1] == 2);
  CHECK(kl_tensor_data_at(r, 2) == 8 && kl_tensor_data_at(r, 6) == 9 &&
        kl_tensor_data_at(r, 5) == 0);
  CHECK_OK(kl_tensor_tostype(r, KL_STYPE_CSR, &back));
  CHECK(back->nnz == 3 && back->indices[2] == 1 && same_as_dense(back, d));
  kl_tensor_release(d);
  kl_tensor_release(c);
  kl_tensor_release(r);
  kl_tensor_release(back);
  /* row_sparse data {{1,2},{3,4}} at rows {1,4} (0-based) of a 6x2 array */
  int64_t s6[2] = {6, 2};
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT64, 2, s6, 2, &r));
  r->indices[0] = 1;
  r->indices[1] = 4;
  for (int i = 0; i < 4; i++) kl_tensor_data_set(r, i, i + 1);
  CHECK_OK(kl_tensor_tostype(r, KL_STYPE_DEFAULT, &d));
  double want[12] = {0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 0};
  for (int i = 0; i < 12; i++) CHECK(kl_tensor_data_at(d, i) == want[i]);
  kl_tensor_release(r);
  kl_tensor_release(d);
}

/* dense -> csr -> rsp -> dense and dense -> rsp -> csr -> dense, exact, for one case. */
static void round_trip(kl_dtype dt, int ndim, const int64_t *shape, kl_rng *rng) {
  kl_tensor *d = dense_random(dt, ndim, shape, rng), *a = NULL, *b = NULL, *c = NULL;
  CHECK(d != NULL);
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_ROW_SPARSE, &a));
  CHECK_OK(kl_tensor_check_format(a, "t", 0));
  CHECK(same_as_dense(a, d));
  if (ndim == 2) {
    CHECK_OK(kl_tensor_tostype(d, KL_STYPE_CSR, &b));
    CHECK_OK(kl_tensor_check_format(b, "t", 0));
    CHECK(b->nnz == count_nonzero(d) && same_as_dense(b, d));
    CHECK_OK(kl_tensor_tostype(b, KL_STYPE_ROW_SPARSE, &c));
    CHECK_OK(kl_tensor_check_format(c, "t", 0));
    CHECK(same_as_dense(c, d) && c->nnz == a->nnz);
    kl_tensor_release(c);
    CHECK_OK(kl_tensor_tostype(a, KL_STYPE_CSR, &c));
    CHECK_OK(kl_tensor_check_format(c, "t", 0));
    CHECK(same_as_dense(c, d) && c->nnz == b->nnz);
    for (int64_t i = 0; i < b->nnz; i++) CHECK(c->indices[i] == b->indices[i]);
    kl_tensor_release(c);
  } else {
    CHECK_ERR(kl_tensor_tostype(d, KL_STYPE_CSR, &b), KL_ESHAPE, "csr needs a 2-d tensor");
  }
  CHECK_OK(kl_tensor_tostype(a, KL_STYPE_ROW_SPARSE, &c)); /* same stype: a copy */
  CHECK(c != a && same_as_dense(c, d));
  kl_tensor_release(c);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(d);
}

static void test_round_trips(void) {
  kl_rng r;
  kl_rng_seed(&r, 42);
  /* {230, 300} and {90, 40, 12} pass KL_PAR_MIN: the OpenMP paths run too */
  int64_t shapes[8][3] = {{7, 5}, {0, 3}, {4, 0}, {1, 1}, {40, 33}, {5, 2, 3}, {230, 300},
                          {90, 40, 12}};
  int nd[8] = {2, 2, 2, 2, 2, 3, 2, 3};
  for (int k = 0; k < 3; k++)
    for (int s = 0; s < 8; s++) round_trip(DTYPES[k], nd[s], shapes[s], &r);
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 0, NULL, &t));
  kl_tensor *o = NULL;
  CHECK_ERR(kl_tensor_tostype(t, KL_STYPE_ROW_SPARSE, &o), KL_ESHAPE, "rank >= 1, got 0-d");
  CHECK_ERR(kl_tensor_tostype(t, (kl_stype)9, &o), KL_EINVAL, "invalid stype 9");
  kl_tensor_release(t);
}

static void test_astype_copy(void) {
  int64_t s[2] = {2, 2};
  double v[4] = {1.7, -2.5, 0, 3};
  kl_tensor *d = dense_from(KL_FLOAT64, 2, s, v), *i = NULL, *c = NULL, *ci = NULL, *cc = NULL;
  CHECK_OK(kl_tensor_astype(d, KL_INT64, &i));
  CHECK(i->dtype == KL_INT64 && ((int64_t *)i->data)[0] == 1 && ((int64_t *)i->data)[1] == -2);
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_CSR, &c));
  CHECK_OK(kl_tensor_astype(c, KL_FLOAT32, &ci));
  CHECK(ci->stype == KL_STYPE_CSR && ci->dtype == KL_FLOAT32 && ci->nnz == 3);
  CHECK(((float *)ci->data)[0] == 1.7f && ci->indices[2] == 1);
  CHECK_OK(kl_tensor_copy(ci, &cc));
  CHECK(cc->data != ci->data && cc->nnz == 3 && ((float *)cc->data)[2] == 3.0f);
  CHECK_OK(kl_tensor_check_format(cc, "copy", 0));
  kl_tensor_data_set(d, 3, NAN);
  kl_tensor *bad = NULL;
  CHECK_ERR(kl_tensor_astype(d, KL_INT64, &bad), KL_EINVAL,
            "astype: value nan cannot be converted to int64");
  CHECK(bad == NULL);
  kl_tensor_data_set(d, 3, 1e19);
  CHECK_ERR(kl_tensor_astype(d, KL_INT64, &bad), KL_EINVAL, "value 1e+19 cannot");
  CHECK_ERR(kl_tensor_astype(d, (kl_dtype)4, &bad), KL_EDTYPE, "astype: invalid dtype 4");
  kl_tensor_release(d);
  kl_tensor_release(i);
  kl_tensor_release(c);
  kl_tensor_release(ci);
  kl_tensor_release(cc);
}

static void test_copyto(void) {
  int64_t s[2] = {2, 3}, st[2] = {3, 2};
  double v[6] = {0, 1.5, 0, 0, 0, -2};
  kl_tensor *src = dense_from(KL_FLOAT64, 2, s, v), *csr = NULL, *rsp = NULL, *wrong = NULL;
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT32, 2, 3, 0, &csr));
  CHECK_OK(kl_tensor_copyto(src, csr));
  CHECK(csr->stype == KL_STYPE_CSR && csr->dtype == KL_FLOAT32 && csr->nnz == 2);
  CHECK(csr->indptr[1] == 1 && csr->indices[1] == 2 && ((float *)csr->data)[1] == -2.0f);
  CHECK_OK(kl_tensor_check_format(csr, "copyto", 0));
  CHECK_OK(kl_tensor_new_rsp(KL_INT64, 2, s, 0, &rsp));
  CHECK_OK(kl_tensor_copyto(csr, rsp)); /* csr -> row_sparse, float32 -> int64 */
  CHECK(rsp->nnz == 2 && rsp->indices[1] == 1 && ((int64_t *)rsp->data)[1] == 1 &&
        ((int64_t *)rsp->data)[5] == -2);
  CHECK_OK(kl_tensor_copyto(rsp, src)); /* back into the dense float64 */
  CHECK(kl_tensor_data_at(src, 1) == 1 && kl_tensor_data_at(src, 5) == -2);
  CHECK_OK(kl_tensor_copyto(src, src));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, st, &wrong));
  CHECK_ERR(kl_tensor_copyto(src, wrong), KL_ESHAPE, "copyto: shape mismatch (2 x 3) vs (3 x 2)");
  kl_tensor_data_set(src, 0, NAN);
  int64_t old = rsp->nnz;
  CHECK_ERR(kl_tensor_copyto(src, rsp), KL_EINVAL, "cannot be converted to int64");
  CHECK(rsp->nnz == old); /* dst untouched */
  kl_tensor_release(src);
  kl_tensor_release(csr);
  kl_tensor_release(rsp);
  kl_tensor_release(wrong);
}

static void test_reshape(void) {
  int64_t s[2] = {2, 3}, t3[2] = {3, 2}, bad[2] = {4, 2}, neg[1] = {-6};
  double v[6] = {1, 2, 3, 4, 5, 6};
  kl_tensor *d = dense_from(KL_FLOAT32, 2, s, v), *r = NULL, *c = NULL;
  CHECK_OK(kl_tensor_reshape(d, 2, t3, &r));
  CHECK(r->shape[0] == 3 && r->shape[1] == 2 && kl_tensor_data_at(r, 5) == 6 && r->data != d->data);
  kl_tensor_release(r);
  CHECK_ERR(kl_tensor_reshape(d, 2, bad, &r), KL_ESHAPE,
            "reshape: cannot reshape (2 x 3) into (4 x 2): 6 elements vs 8");
  CHECK_ERR(kl_tensor_reshape(d, 1, neg, &r), KL_ESHAPE, "reshape: shape[1] = -6 must be >= 0");
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_CSR, &c));
  CHECK_ERR(kl_tensor_reshape(c, 2, t3, &r), KL_ESTYPE,
            "reshape: not supported for csr tensors; convert with tostype('default') first");
  CHECK(r == NULL);
  kl_tensor_release(c);
  kl_tensor_release(d);
}

static void test_coo(void) {
  int64_t row[6] = {2, 0, 2, 0, 2, 0}, col[6] = {1, 3, 1, 0, 0, 3};
  double val[6] = {1, 2, 3, 4, 5, -2};
  kl_tensor *c = NULL;
  CHECK_OK(kl_csr_from_coo(KL_FLOAT64, 3, 4, 6, row, col, val, &c));
  CHECK_OK(kl_tensor_check_format(c, "coo", 0));
  int64_t ptr[4] = {0, 2, 2, 4}, ix[4] = {0, 3, 0, 1};
  double want[4] = {4, 0, 5, 4}; /* 2 + -2 is kept as an explicit 0 */
  CHECK(c->nnz == 4);
  for (int i = 0; i < 4; i++) CHECK(c->indptr[i] == ptr[i] && c->indices[i] == ix[i]);
  for (int i = 0; i < 4; i++) CHECK(kl_tensor_data_at(c, i) == want[i]);
  kl_tensor_release(c);
  kl_tensor *o = NULL;
  int64_t badr[2] = {0, 3}, badc[2] = {0, -1}, ok2[2] = {0, 1};
  CHECK_ERR(kl_csr_from_coo(KL_FLOAT32, 3, 4, 2, badr, ok2, val, &o), KL_EINDEX,
            "coo_matrix: row[1] = 3 out of range for 3 rows");
  CHECK_ERR(kl_csr_from_coo(KL_FLOAT32, 3, 4, 2, ok2, badc, val, &o), KL_EINDEX,
            "coo_matrix: col[1] = -1 out of range for 4 columns");
  CHECK_ERR(kl_csr_from_coo(KL_FLOAT32, 3, -4, 0, ok2, ok2, val, &o), KL_ESHAPE,
            "coo_matrix: shape[2] = -4");
  CHECK_ERR(kl_csr_from_coo(KL_FLOAT32, 3, 4, -1, ok2, ok2, val, &o), KL_EINVAL,
            "number of entries -1");
  double nan2[2] = {1, NAN};
  CHECK_ERR(kl_csr_from_coo(KL_INT64, 3, 4, 2, ok2, ok2, nan2, &o), KL_EINVAL,
            "coo_matrix: value nan cannot be converted to int64");
  CHECK(o == NULL);
  CHECK_OK(kl_csr_from_coo(KL_FLOAT32, 3, 0, 0, NULL, NULL, NULL, &o));
  CHECK(o->nnz == 0 && o->indptr[3] == 0);
  kl_tensor_release(o);
}

/* Random COO with many duplicates against a dense accumulation. */
static void test_coo_random(void) {
  kl_rng r;
  kl_rng_seed(&r, 7);
  enum { N = 3000, R = 37, C = 29 };
  static int64_t row[N], col[N];
  static double val[N], acc[R * C];
  memset(acc, 0, sizeof acc);
  for (int k = 0; k < N; k++) {
    row[k] = (int64_t)kl_rng_below(&r, R);
    col[k] = (int64_t)kl_rng_below(&r, C);
    val[k] = kl_rng_normal(&r);
    acc[row[k] * C + col[k]] += val[k];
  }
  kl_tensor *c = NULL, *d = NULL;
  CHECK_OK(kl_csr_from_coo(KL_FLOAT64, R, C, N, row, col, val, &c));
  CHECK_OK(kl_tensor_check_format(c, "coo", 0));
  CHECK_OK(kl_tensor_tostype(c, KL_STYPE_DEFAULT, &d));
  int bad = 0;
  for (int i = 0; i < R * C; i++) bad += fabs(kl_tensor_data_at(d, i) - acc[i]) > 1e-12;
  CHECK(bad == 0);
  kl_tensor_release(c);
  kl_tensor_release(d);
}

/* slice [b, e) of t (any stype) must equal the slice of its dense form. */
static void check_slice(const kl_tensor *t, int64_t b, int64_t e) {
  kl_tensor *s = NULL, *d = NULL, *ds = NULL;
  CHECK_OK(kl_tensor_slice_rows(t, b, e, &s));
  CHECK_OK(kl_tensor_tostype(t, KL_STYPE_DEFAULT, &d));
  CHECK_OK(kl_tensor_slice_rows(d, b, e, &ds));
  if (!s || !ds) goto done;
  CHECK(s->stype == t->stype && s->shape[0] == e - b && ds->shape[0] == e - b);
  CHECK_OK(kl_tensor_check_format(s, "slice", 0));
  CHECK(same_as_dense(s, ds));
  int64_t w = kl_row_width(d);
  for (int64_t i = 0; i < ds->nnz; i++)
    CHECK(kl_tensor_data_at(ds, i) == kl_tensor_data_at(d, b * w + i));
done:
  kl_tensor_release(s);
  kl_tensor_release(d);
  kl_tensor_release(ds);
}

static void check_take(const kl_tensor *t, const int64_t *idx, int64_t n) {
  kl_tensor *s = NULL, *d = NULL;
  CHECK_OK(kl_tensor_take_rows(t, idx, n, &s));
  CHECK_OK(kl_tensor_tostype(t, KL_STYPE_DEFAULT, &d));
  if (!s || !d) goto done;
  CHECK(s->stype == t->stype && s->shape[0] == n);
  CHECK_OK(kl_tensor_check_format(s, "take", 0));
  kl_tensor *sd = NULL;
  CHECK_OK(kl_tensor_tostype(s, KL_STYPE_DEFAULT, &sd));
  int64_t w = kl_row_width(d);
  int bad = 0;
  for (int64_t i = 0; sd && i < n; i++)
    for (int64_t j = 0; j < w; j++)
      bad += kl_tensor_data_at(sd, i * w + j) != kl_tensor_data_at(d, idx[i] * w + j);
  CHECK(bad == 0);
  kl_tensor_release(sd);
done:
  kl_tensor_release(s);
  kl_tensor_release(d);
}

static void test_rows(void) {
  kl_rng r;
  kl_rng_seed(&r, 3);
  int64_t s2[2] = {9, 6}, s3[3] = {7, 2, 3}, z[2] = {0, 4}, idx[6] = {4, 0, 4, 6, 2, 2};
  for (int k = 0; k < 3; k++) {
    kl_tensor *d2 = dense_random(DTYPES[k], 2, s2, &r), *d3 = dense_random(DTYPES[k], 3, s3, &r);
    kl_tensor *all[5] = {d2, d3, NULL, NULL, NULL};
    CHECK_OK(kl_tensor_tostype(d2, KL_STYPE_CSR, &all[2]));
    CHECK_OK(kl_tensor_tostype(d2, KL_STYPE_ROW_SPARSE, &all[3]));
    CHECK_OK(kl_tensor_tostype(d3, KL_STYPE_ROW_SPARSE, &all[4]));
    for (int t = 0; t < 5; t++) {
      int64_t n = all[t]->shape[0];
      check_slice(all[t], 0, n);
      check_slice(all[t], 2, 5);
      check_slice(all[t], 3, 3); /* empty */
      check_slice(all[t], n - 1, n);
      check_take(all[t], idx, 6);
      check_take(all[t], idx, 0);
      kl_tensor *o = NULL;
      CHECK_ERR(kl_tensor_slice_rows(all[t], 3, 12, &o), KL_EINDEX, "rows [3, 12) out of range");
      CHECK_ERR(kl_tensor_slice_rows(all[t], 4, 2, &o), KL_EINDEX, "slice: rows [4, 2)");
      int64_t bad[2] = {1, -1};
      CHECK_ERR(kl_tensor_take_rows(all[t], bad, 2, &o), KL_EINDEX, "take: index[1] = -1 out");
      CHECK(o == NULL);
    }
    for (int t = 0; t < 5; t++) kl_tensor_release(all[t]);
  }
  int64_t s5[2] = {5, 2};
  kl_tensor *d = NULL, *o = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s5, &d));
  CHECK_ERR(kl_tensor_slice_rows(d, 3, 9, &o), KL_EINDEX,
            "slice: rows [3, 9) out of range for 5 rows");
  kl_tensor_release(d);
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT32, 0, 4, 0, &d)); /* zero-sized */
  check_slice(d, 0, 0);
  check_take(d, idx, 0);
  kl_tensor_release(d);
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT64, 3, 0, 0, &d));
  check_slice(d, 1, 3);
  check_take(d, idx + 4, 2);
  kl_tensor_release(d);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, z, &d));
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_ROW_SPARSE, &o));
  check_slice(o, 0, 0);
  kl_tensor_release(o);
  kl_tensor_release(d);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 0, NULL, &d));
  CHECK_ERR(kl_tensor_slice_rows(d, 0, 0, &o), KL_ESHAPE, "0-d");
  kl_tensor_release(d);
}

/* Fails the k-th allocation for every k of one call: KL_ENOMEM and *out NULL, or success. */
typedef kl_status (*op_fn)(const kl_tensor *t, kl_tensor **out);
static kl_status op_csr(const kl_tensor *t, kl_tensor **o) { return kl_tensor_tostype(t, KL_STYPE_CSR, o); }
static kl_status op_rsp(const kl_tensor *t, kl_tensor **o) { return kl_tensor_tostype(t, KL_STYPE_ROW_SPARSE, o); }
static kl_status op_dense(const kl_tensor *t, kl_tensor **o) { return kl_tensor_tostype(t, KL_STYPE_DEFAULT, o); }
static kl_status op_astype(const kl_tensor *t, kl_tensor **o) { return kl_tensor_astype(t, KL_FLOAT32, o); }
static kl_status op_slice(const kl_tensor *t, kl_tensor **o) { return kl_tensor_slice_rows(t, 1, 3, o); }
static kl_status op_take(const kl_tensor *t, kl_tensor **o) {
  int64_t idx[3] = {3, 1, 3};
  return kl_tensor_take_rows(t, idx, 3, o);
}
static kl_status op_coo(const kl_tensor *t, kl_tensor **o) {
  int64_t row[4] = {1, 0, 1, 3}, col[4] = {2, 2, 2, 0};
  double v[4] = {1, 2, 3, 4};
  return kl_csr_from_coo(t->dtype, 4, 3, 4, row, col, v, o);
}
static kl_status op_copyto(const kl_tensor *t, kl_tensor **o) {
  kl_tensor *dst = NULL;
  kl_status st = kl_tensor_new_csr(KL_FLOAT64, t->shape[0], t->shape[1], 0, &dst);
  if (st == KL_OK) st = kl_tensor_copyto(t, dst);
  if (st == KL_OK) st = kl_tensor_check_format(dst, "copyto", 0);
  kl_tensor_release(dst);
  *o = NULL;
  return st;
}

static void sweep(op_fn op, const kl_tensor *t) {
  int finished = 0;
  for (long k = 1; k <= 50 && !finished; k++) {
    kl_tensor *o = NULL;
    kl_alloc_fail_at(k);
    kl_status st = op(t, &o);
    long made = kl_alloc_fail_at(0);
    if (made < k) { /* no allocation failed: must have succeeded */
      CHECK(st == KL_OK);
      finished = 1;
    } else {
      CHECK(st == KL_ENOMEM && o == NULL && strstr(kl_errmsg(), "out of memory"));
    }
    kl_tensor_release(o);
  }
  CHECK(finished);
}

static void test_alloc_failures(void) {
  kl_rng r;
  kl_rng_seed(&r, 11);
  int64_t s[2] = {4, 3};
  kl_tensor *d = dense_random(KL_FLOAT64, 2, s, &r), *c = NULL, *rs = NULL;
  kl_tensor_data_set(d, 0, 1); /* at least one nonzero row */
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_CSR, &c));
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_ROW_SPARSE, &rs));
  op_fn ops[8] = {op_csr, op_rsp, op_dense, op_astype, op_slice, op_take, op_coo, op_copyto};
  const kl_tensor *ts[3] = {d, c, rs};
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 3; j++) sweep(ops[i], ts[j]);
  kl_tensor_release(d);
  kl_tensor_release(c);
  kl_tensor_release(rs);
}

int main(void) {
  test_tutorial();
  test_round_trips();
  test_astype_copy();
  test_copyto();
  test_reshape();
  test_coo();
  test_coo_random();
  test_rows();
  test_alloc_failures();
  KLTEST_DONE();
}
