/* test_tensor.c: status, allocator, tensor construction, format checks and element access. */
#include <stdint.h>
#include <stdlib.h>
#include "kltest.h"

/* The MXNet tutorial CSR (3 x 5): data {7,8,9}, indices {0,2,1}, indptr {0,2,2,3}. */
static kl_tensor *tutorial_csr(kl_dtype d) {
  kl_tensor *t = NULL;
  int64_t ptr[4] = {0, 2, 2, 3}, ix[3] = {0, 2, 1};
  double v[3] = {7, 8, 9};
  if (kl_tensor_new_csr(d, 3, 5, 3, &t) != KL_OK) return NULL;
  memcpy(t->indptr, ptr, sizeof ptr);
  memcpy(t->indices, ix, sizeof ix);
  for (int i = 0; i < 3; i++) kl_tensor_data_set(t, i, v[i]);
  return t;
}

static void test_status(void) {
  kl_clearerr();
  CHECK(strcmp(kl_errmsg(), "") == 0);
  CHECK(kl_seterr(KL_ESHAPE, "dot: shape mismatch (%d x %d)", 2, 3) == KL_ESHAPE);
  CHECK(strcmp(kl_errmsg(), "dot: shape mismatch (2 x 3)") == 0);
  CHECK(strcmp(kl_status_name(KL_OK), "KL_OK") == 0);
  CHECK(strcmp(kl_status_name(KL_EUNSUPPORTED), "KL_EUNSUPPORTED") == 0);
  CHECK(strcmp(kl_status_name((kl_status)99), "KL_UNKNOWN") == 0);
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  kl_seterr(KL_EINVAL, "%s", big); /* truncated, never overflows */
  CHECK(strlen(kl_errmsg()) == 1023);
}

static void test_alloc(void) {
  kl_clearerr();
  CHECK(kl_malloc_n(SIZE_MAX / 4, 8) == NULL);
  CHECK(strstr(kl_errmsg(), "out of memory") != NULL);
  CHECK(kl_calloc(SIZE_MAX / 2, 4) == NULL);
  void *p = kl_malloc(0);
  CHECK(p != NULL);
  kl_free(p);
  kl_free(NULL);
  kl_alloc_fail_at(2);
  void *a = kl_malloc(16), *b = kl_malloc(16), *c = kl_malloc(16);
  CHECK(a != NULL && b == NULL && c != NULL);
  CHECK(strcmp(kl_errmsg(), "out of memory (16 bytes)") == 0);
  CHECK(kl_alloc_fail_at(0) == 3);
  a = kl_realloc(a, 64);
  CHECK(a != NULL);
  kl_free(a);
  kl_free(c);
}

static void test_names(void) {
  kl_dtype d;
  kl_stype s;
  CHECK(kl_dtype_size(KL_FLOAT32) == 4 && kl_dtype_size(KL_FLOAT64) == 8 &&
        kl_dtype_size(KL_INT64) == 8);
  CHECK_OK(kl_dtype_parse("zeros", "int64", &d));
  CHECK(d == KL_INT64);
  CHECK_OK(kl_dtype_parse("zeros", "float32", &d));
  CHECK(d == KL_FLOAT32 && strcmp(kl_dtype_name(KL_FLOAT64), "float64") == 0);
  CHECK_ERR(kl_dtype_parse("zeros", "float16", &d), KL_EINVAL, "zeros: unknown dtype 'float16'");
  CHECK_OK(kl_stype_parse("tostype", "row_sparse", &s));
  CHECK(s == KL_STYPE_ROW_SPARSE && strcmp(kl_stype_name(KL_STYPE_CSR), "csr") == 0);
  CHECK_ERR(kl_stype_parse("tostype", "coo", &s), KL_EINVAL, "tostype: unknown stype 'coo'");
}

static void test_shapes(void) {
  int64_t ok[3] = {2, 0, 5}, neg[3] = {2, 4, -3}, huge[2] = {(int64_t)1 << 30, (int64_t)1 << 30};
  int64_t edge[2] = {(int64_t)1 << 24, (int64_t)1 << 24}, zhuge[3] = {0, (int64_t)1 << 40, 1 << 9};
  CHECK_OK(kl_shape_check("zeros", 3, ok));
  CHECK_OK(kl_shape_check("zeros", 0, NULL));
  CHECK_OK(kl_shape_check("zeros", 2, edge));
  CHECK_ERR(kl_shape_check("zeros", 3, neg), KL_ESHAPE, "zeros: shape[3] = -3 must be >= 0");
  CHECK_ERR(kl_shape_check("zeros", 2, huge), KL_ESHAPE, "zeros: shape[2] = 1073741824 makes");
  CHECK_ERR(kl_shape_check("zeros", 3, zhuge), KL_ESHAPE, "too large");
  CHECK_ERR(kl_shape_check("zeros", 9, ok), KL_ESHAPE, "zeros: rank 9 must be in [0, 8]");
  CHECK_ERR(kl_shape_check("zeros", -1, ok), KL_ESHAPE, "rank -1");
  CHECK(kl_shape_numel(3, ok) == 0 && kl_shape_numel(0, NULL) == 1);
  int64_t s3[3] = {4, 2, 3};
  kl_tensor *t;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 3, s3, &t));
  CHECK(kl_tensor_numel(t) == 24 && kl_row_width(t) == 6 && t->nnz == 24);
  kl_meta m;
  kl_tensor_meta(t, &m);
  CHECK(m.ndim == 3 && m.shape[2] == 3 && m.dtype == KL_FLOAT64 && m.stype == KL_STYPE_DEFAULT);
  kl_tensor_release(t);
  CHECK_ERR(kl_tensor_new_dense(KL_FLOAT32, 3, neg, &t), KL_ESHAPE, "shape[3] = -3");
  CHECK(t == NULL);
  CHECK_ERR(kl_tensor_new_dense((kl_dtype)7, 3, ok, &t), KL_EDTYPE, "invalid dtype 7");
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 0, NULL, &t)); /* a scalar */
  CHECK(kl_tensor_numel(t) == 1 && kl_row_width(t) == 1 && kl_tensor_data_at(t, 0) == 0);
  kl_tensor_release(t);
}

static void test_construct(void) {
  kl_tensor *t;
  double v;
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT32, 3, 0, 0, &t)); /* 3x0 CSR is valid */
  CHECK(t->indptr[3] == 0 && t->nnz == 0);
  CHECK_OK(kl_tensor_check_format(t, "csr_matrix", 1));
  kl_tensor_release(t);
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT64, 0, 4, 0, &t));
  CHECK_OK(kl_tensor_check_format(t, "csr_matrix", 1));
  kl_tensor_release(t);
  CHECK_ERR(kl_tensor_new_csr(KL_FLOAT32, 2, 2, 5, &t), KL_EINVAL, "nnz = 5 must be in [0, 4]");
  CHECK_ERR(kl_tensor_new_csr(KL_FLOAT32, -2, 2, 0, &t), KL_ESHAPE, "shape[1] = -2");
  int64_t s[2] = {6, 2}, s0[1] = {0};
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT32, 2, s, 2, &t));
  t->indices[0] = 1;
  t->indices[1] = 4;
  for (int i = 0; i < 4; i++) kl_tensor_data_set(t, i, i + 1);
  CHECK_OK(kl_tensor_check_format(t, "row_sparse_array", 1));
  int64_t at[2] = {4, 1}, miss[2] = {2, 0};
  CHECK_OK(kl_tensor_get(t, at, &v));
  CHECK(v == 4);
  CHECK_OK(kl_tensor_get(t, miss, &v));
  CHECK(v == 0);
  CHECK_OK(kl_tensor_reserve(t, 3)); /* grows, keeps the old rows */
  CHECK(t->nnz == 3 && t->cap_indices == 3 && t->cap_data == 6 && t->indices[1] == 4);
  CHECK(kl_tensor_data_at(t, 3) == 4);
  CHECK_OK(kl_tensor_reserve(t, 1)); /* never shrinks */
  CHECK(t->nnz == 1 && t->cap_indices == 3 && t->cap_data == 6);
  CHECK_ERR(kl_tensor_reserve(t, 7), KL_EINVAL, "reserve: nnz = 7 must be in [0, 6]");
  CHECK(kl_tensor_retain(t) == t && t->refcount == 2);
  kl_tensor_release(t);
  CHECK(t->refcount == 1);
  kl_tensor_release(t);
  kl_tensor_release(NULL);
  CHECK(kl_tensor_retain(NULL) == NULL);
  CHECK_ERR(kl_tensor_new_rsp(KL_FLOAT32, 2, s, 7, &t), KL_EINVAL, "7 stored rows");
  CHECK_ERR(kl_tensor_new_rsp(KL_FLOAT32, 0, s, 0, &t), KL_ESHAPE, "rank must be >= 1");
  CHECK_OK(kl_tensor_new_rsp(KL_INT64, 1, s0, 0, &t));
  CHECK_OK(kl_tensor_check_format(t, "row_sparse_array", 0));
  kl_tensor_release(t);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, s0, &t));
  CHECK_ERR(kl_tensor_reserve(t, 0), KL_ESTYPE, "not supported for dense");
  kl_tensor_release(t);
}

static void test_access(void) {
  kl_tensor *t = tutorial_csr(KL_FLOAT32);
  double want[3][5] = {{7, 0, 8, 0, 0}, {0, 0, 0, 0, 0}, {0, 9, 0, 0, 0}}, v;
  CHECK(t != NULL);
  CHECK_OK(kl_tensor_check_format(t, "csr_matrix", 1));
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 5; j++) {
      int64_t ij[2] = {i, j};
      CHECK_OK(kl_tensor_get(t, ij, &v));
      CHECK(v == want[i][j]);
    }
  int64_t bad[2] = {1, 5};
  CHECK_ERR(kl_tensor_get(t, bad, &v), KL_EINDEX, "get: index[1] = 5 out of range");
  kl_tensor_fill(t, 2.5);
  CHECK(kl_tensor_data_at(t, 0) == 2.5 && kl_tensor_data_at(t, 2) == 2.5);
  kl_tensor_release(t);
  int64_t s[3] = {2, 3, 4};
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 3, s, &t));
  kl_tensor_data_set(t, 23, -7.9);
  kl_tensor_data_set(t, 0, 1e300); /* saturates instead of undefined behaviour */
  int64_t last[3] = {1, 2, 3};
  CHECK_OK(kl_tensor_get(t, last, &v));
  CHECK(v == -7);
  CHECK(((int64_t *)t->data)[0] == INT64_MAX);
  kl_tensor_fill(t, 3);
  CHECK(kl_tensor_data_at(t, 11) == 3);
  kl_tensor_release(t);
}

/* Writes a CSR of rows x cols from arrays (0-based). */
static kl_tensor *make_csr(int64_t rows, int64_t cols, int64_t nnz, const int64_t *ptr,
                           const int64_t *ix) {
  kl_tensor *t = NULL;
  if (kl_tensor_new_csr(KL_FLOAT64, rows, cols, nnz, &t) != KL_OK) return NULL;
  memcpy(t->indptr, ptr, (size_t)(rows + 1) * sizeof *ptr);
  memcpy(t->indices, ix, (size_t)nnz * sizeof *ix);
  for (int64_t i = 0; i < nnz; i++) kl_tensor_data_set(t, i, 1);
  return t;
}

static void test_check_csr(void) {
  int64_t p1[4] = {1, 2, 2, 3}, ix[5] = {0, 2, 1, 3, 4};
  kl_tensor *t = make_csr(3, 5, 3, p1, ix);
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EINDEX,
            "csr_matrix: indptr[1] = 2 must be 1");
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 0), KL_EINDEX,
            "csr_matrix: indptr[0] = 1 must be 0");
  kl_tensor_release(t);
  int64_t p2[4] = {0, 2, 2, 2};
  t = make_csr(3, 5, 3, p2, ix);
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EINDEX,
            "csr_matrix: indptr[4] = 3 must be 4 (the number of values + 1)");
  kl_tensor_release(t);
  int64_t p3[4] = {0, 3, 2, 3};
  t = make_csr(3, 5, 3, p3, ix);
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EINDEX,
            "csr_matrix: indptr must be non-decreasing: indptr[3] = 3 < indptr[2] = 4");
  kl_tensor_release(t);
  int64_t p4[3] = {0, 3, 5}, ix4[5] = {0, 1, 2, 0, 6};
  t = make_csr(2, 5, 5, p4, ix4);
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EINDEX,
            "csr_matrix: indices[5] = 7 out of range for 5 columns");
  CHECK_ERR(kl_tensor_check_format(t, "csr", 0), KL_EINDEX,
            "csr: indices[4] = 6 out of range for 5 columns");
  t->indices[4] = -1;
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EINDEX,
            "csr_matrix: indices[5] = 0 out of range for 5 columns");
  t->indices[4] = 0;
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EINDEX,
            "csr_matrix: indices not strictly increasing in row 2: indices[5] = 1 after "
            "indices[4] = 1");
  t->indices[1] = 0;
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 0), KL_EINDEX,
            "indices not strictly increasing in row 0: indices[1] = 0 after indices[0] = 0");
  t->indices[1] = 1;
  t->indices[4] = 4;
  CHECK_OK(kl_tensor_check_format(t, "csr_matrix", 1));
  t->ndim = 3;
  t->shape[2] = 1;
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_ESHAPE, "must be 2-d, got 3-d");
  t->ndim = 2;
  t->dtype = (kl_dtype)5;
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EDTYPE, "data dtype 5");
  t->dtype = KL_FLOAT64;
  t->nnz = 9;
  CHECK_ERR(kl_tensor_check_format(t, "csr_matrix", 1), KL_EFORMAT, "buffers hold fewer");
  t->nnz = 5;
  kl_tensor_release(t);
}

static void test_check_rsp(void) {
  int64_t s[2] = {6, 2};
  kl_tensor *t;
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT32, 2, s, 3, &t));
  int64_t ix[3] = {0, 3, 6};
  memcpy(t->indices, ix, sizeof ix);
  CHECK_ERR(kl_tensor_check_format(t, "row_sparse_array", 1), KL_EINDEX,
            "row_sparse_array: indices[3] = 7 out of range for 6 rows");
  t->indices[2] = 3;
  CHECK_ERR(kl_tensor_check_format(t, "row_sparse_array", 1), KL_EINDEX,
            "row_sparse_array: indices not strictly increasing: indices[3] = 4 after "
            "indices[2] = 4");
  t->indices[2] = 5;
  CHECK_OK(kl_tensor_check_format(t, "row_sparse_array", 1));
  t->indices[0] = -1;
  CHECK_ERR(kl_tensor_check_format(t, "rsp", 0), KL_EINDEX,
            "rsp: indices[0] = -1 out of range for 6 rows");
  t->shape[0] = 2;
  CHECK_ERR(kl_tensor_check_format(t, "rsp", 0), KL_EINDEX, "3 stored rows exceed the 2 rows");
  kl_tensor_release(t);
}

int main(void) {
  test_status();
  test_alloc();
  test_names();
  test_shapes();
  test_construct();
  test_access();
  test_check_csr();
  test_check_rsp();
  CHECK(kl_num_threads() >= 1);
  KLTEST_DONE();
}
