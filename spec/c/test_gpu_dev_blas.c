/* test_gpu_dev_blas.c: the cuBLAS / cuSPARSE layer of the dot op (gpu/cuda_blas.h).
 *
 * 1. The argument builders against the libraries' documented conventions, which the
 *    emulated half alone cannot stand for: each call kl_cuda_gemm_describe builds is run by an
 *    interpreter of cuBLAS's documented gemm (column-major: element (r, c) of a matrix with
 *    leading dimension ld at r + c ld; op(A) m x k, op(B) k x n, C m x n) and must give the
 *    row-major product asked for, for every transpose pair, with padded leading dimensions
 *    (a swapped ld or transpose gives other values); every SpMM call kl_cuda_spmm_describe
 *    builds is run by an interpreter of cusparseSpMM's documented semantics (CSR with
 *    offsets / columns of the given index type and base; dense B and C in ORDER_ROW: (r, c)
 *    at r ld + c) and must give A . B; the fields are also checked one by one (64-bit
 *    indices, base 0, row order, ld = row length, NON_TRANSPOSE, value / compute types) and
 *    kl_cuda_spmm_check, the emulated half's argument check, accepts them and refuses the
 *    invalid variants cuSPARSE documents (ld too small, mismatched orders, k, value types).
 * 2. The half linked in (the emulated one in make test; cuBLAS / cuSPARSE themselves in
 *    test_gpu_dev_blas_device on a GPU) on device memory, with alpha, beta and padded
 *    leading dimensions, against the row-major reference: float32 within 1e-5 (1 + |ref|),
 *    float64 within 1e-12 (sums of at most 37 terms of magnitude <= 4); the emulated SpMM
 *    exactly (it sums in entry order). Invalid calls give the library's status as KL_EDEVICE
 *    with its string; empty or oversized products the describe functions' messages. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_blas.h"
#include "gpu_dev_testutil.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static double urand(void) { return gpu_dev_urand(&rng); }

/* ------------------------------------------------------------------ interpreters */

/* cuBLAS's gemm as documented (column-major), in double. */
static void doc_gemm(const kl_cuda_gemm_call *c, double alpha, double beta, const double *A,
                     const double *B, double *C) {
  for (int i = 0; i < c->m; i++)
    for (int j = 0; j < c->n; j++) {
      double s = 0;
      for (int l = 0; l < c->k; l++) {
        const double a = c->transa == KL_CUBLAS_OP_N ? A[i + (int64_t)l * c->lda] : A[l + (int64_t)i * c->lda];
        const double b = c->transb == KL_CUBLAS_OP_N ? B[l + (int64_t)j * c->ldb] : B[j + (int64_t)l * c->ldb];
        s += a * b;
      }
      double *y = &C[i + (int64_t)j * c->ldc];
      *y = alpha * s + (beta != 0 ? beta * *y : 0);
    }
}

/* The row-major product asked of kl_cuda_gemm_describe, in double. */
static void rm_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                    const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                    double *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t l = 0; l < K; l++)
        s += (ta ? A[l * lda + i] : A[i * lda + l]) * (tb ? B[j * ldb + l] : B[l * ldb + j]);
      C[i * ldc + j] = alpha * s + (beta != 0 ? beta * C[i * ldc + j] : 0);
    }
}

/* cusparseSpMM as documented, in double: C = alpha op(A) op(B) + beta C. */
static void doc_spmm(const kl_cuda_spmm_call *c, double alpha, double beta, const double *av,
                     const double *B, double *C) {
  const int64_t m = c->opA == KL_CUSPARSE_OP_NON_TRANSPOSE ? c->a_rows : c->a_cols;
  const int64_t n = c->c_cols, base = c->a_base;
  double *acc = calloc((size_t)(m * n + 1), sizeof *acc);
  for (int64_t r = 0; r < c->a_rows; r++)
    for (int64_t e = c->a_offsets[r] - base; e < c->a_offsets[r + 1] - base; e++) {
      const int64_t col = c->a_columns[e] - base;
      const int64_t i = c->opA == KL_CUSPARSE_OP_NON_TRANSPOSE ? r : col;
      const int64_t kk = c->opA == KL_CUSPARSE_OP_NON_TRANSPOSE ? col : r;
      for (int64_t j = 0; j < n; j++) {
        const int64_t br = c->opB == KL_CUSPARSE_OP_NON_TRANSPOSE ? kk : j;
        const int64_t bc = c->opB == KL_CUSPARSE_OP_NON_TRANSPOSE ? j : kk;
        const double b = c->b_order == KL_CUSPARSE_ORDER_ROW ? B[br * c->b_ld + bc] : B[br + bc * c->b_ld];
        acc[i * n + j] += av[e] * b;
      }
    }
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double *y = c->c_order == KL_CUSPARSE_ORDER_ROW ? &C[i * c->c_ld + j] : &C[i + j * c->c_ld];
      *y = alpha * acc[i * n + j] + (beta != 0 ? beta * *y : 0);
    }
  free(acc);
}

static double *rand_buf(int64_t n) {
  double *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = urand() * 4 - 2;
  return p;
}

static int close_all(const char *label, const double *x, const double *y, int64_t n, double tol) {
  for (int64_t i = 0; i < n; i++)
    if (!(fabs(x[i] - y[i]) <= tol * (1 + fabs(y[i])))) {
      fprintf(stderr, "%s: [%lld] %.17g vs %.17g\n", label, (long long)i, x[i], y[i]);
      return 0;
    }
  return 1;
}

/* ------------------------------------------------------------------ 1. the builders */

static void test_gemm_describe(void) {
  static const int64_t dims[][3] = {{1, 1, 1}, {3, 5, 7}, {6, 2, 4}, {17, 9, 13}};
  for (size_t q = 0; q < sizeof dims / sizeof *dims; q++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int pad = 0; pad < 2; pad++) {
          const int64_t M = dims[q][0], N = dims[q][1], K = dims[q][2];
          /* stored shapes, rows padded by pad * 3 elements */
          const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
          const int64_t lda = ac + 3 * pad, ldb = bc + 3 * pad, ldc = N + 2 * pad;
          double *A = rand_buf(ar * lda), *B = rand_buf(br * ldb), *C1 = rand_buf(M * ldc);
          double *C2 = malloc((size_t)(M * ldc) * sizeof *C2);
          memcpy(C2, C1, (size_t)(M * ldc) * sizeof *C2);
          kl_cuda_gemm_call c;
          CHECK_OK(kl_cuda_gemm_describe(ta, tb, M, N, K, A, lda, B, ldb, C1, ldc, &c));
          /* the fields, as derived from C^T = op(B)^T op(A)^T */
          CHECK(c.transa == (tb ? KL_CUBLAS_OP_T : KL_CUBLAS_OP_N));
          CHECK(c.transb == (ta ? KL_CUBLAS_OP_T : KL_CUBLAS_OP_N));
          CHECK(c.m == N && c.n == M && c.k == K && c.A == B && c.B == A && c.C == C1);
          CHECK(c.lda == ldb && c.ldb == lda && c.ldc == ldc);
          /* cuBLAS's documented argument rules */
          CHECK(c.lda >= (c.transa == KL_CUBLAS_OP_N ? c.m : c.k));
          CHECK(c.ldb >= (c.transb == KL_CUBLAS_OP_N ? c.k : c.n));
          CHECK(c.ldc >= c.m);
          /* and the values */
          doc_gemm(&c, 1.5, 0.25, c.A, c.B, c.C);
          rm_gemm(ta, tb, M, N, K, 1.5, A, lda, B, ldb, 0.25, C2, ldc);
          char l[120];
          snprintf(l, sizeof l, "gemm describe M %lld N %lld K %lld ta %d tb %d pad %d",
                   (long long)M, (long long)N, (long long)K, ta, tb, pad);
          CHECK(close_all(l, C1, C2, M * ldc, 1e-12));
          free(A);
          free(B);
          free(C1);
          free(C2);
        }
  kl_cuda_gemm_call c;
  int x = 0;
  CHECK_ERR(kl_cuda_gemm_describe(0, 0, 0, 3, 2, &x, 2, &x, 3, &x, 3, &c), KL_EINVAL,
            "cuda gemm: empty product 0 x 2 x 3");
  CHECK_ERR(kl_cuda_gemm_describe(0, 0, 4, 3, 2, &x, 1, &x, 3, &x, 3, &c), KL_EINVAL,
            "cuda gemm: leading dimensions lda=1 ldb=3 ldc=3 too small for 4 x 2 x 3");
  CHECK_ERR(kl_cuda_gemm_describe(1, 0, 4, 3, 2, &x, 2, &x, 3, &x, 3, &c), KL_EINVAL,
            "leading dimensions lda=2");
  CHECK_ERR(kl_cuda_gemm_describe(0, 1, 4, 3, 2, &x, 2, &x, 1, &x, 3, &c), KL_EINVAL,
            "leading dimensions lda=2 ldb=1");
  CHECK_ERR(kl_cuda_gemm_describe(0, 0, 1, 1, (int64_t)1 << 31, &x, (int64_t)1 << 31, &x, 1, &x,
                                  1, &c),
            KL_EUNSUPPORTED, "dot: dimensions 1 x 2147483648 x 1 exceed the BLAS int limit");
}

/* A random M x K csr (host arrays, row order, strictly increasing columns). */
typedef struct hcsr {
  int64_t M, K, nnz, *ptr, *ind;
  double *val;
} hcsr;

static hcsr rand_csr(int64_t M, int64_t K, double density) {
  hcsr a = {M, K, 0, calloc((size_t)M + 1, sizeof(int64_t)), malloc((size_t)(M * K + 1) * sizeof(int64_t)),
            malloc((size_t)(M * K + 1) * sizeof(double))};
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < K; j++)
      if (urand() < density) {
        a.ind[a.nnz] = j;
        a.val[a.nnz++] = urand() * 4 - 2;
      }
    a.ptr[i + 1] = a.nnz;
  }
  return a;
}

static void free_csr(hcsr *a) {
  free(a->ptr);
  free(a->ind);
  free(a->val);
}

static void test_spmm_describe(void) {
  static const int64_t dims[][3] = {{1, 1, 1}, {5, 7, 3}, {9, 4, 1}, {12, 30, 8}};
  for (size_t q = 0; q < sizeof dims / sizeof *dims; q++)
    for (int dti = 0; dti < 2; dti++) {
      const kl_dtype dt = dti ? KL_FLOAT64 : KL_FLOAT32;
      const int64_t M = dims[q][0], K = dims[q][1], N = dims[q][2];
      hcsr a = rand_csr(M, K, 0.4);
      double *B = rand_buf(K * N), *C1 = rand_buf(M * N), *C2 = malloc((size_t)(M * N) * sizeof *C2);
      memcpy(C2, C1, (size_t)(M * N) * sizeof *C2);
      kl_cuda_spmm_call c;
      CHECK_OK(kl_cuda_spmm_describe(dt, M, K, N, a.nnz, a.ptr, a.ind, a.val, B, C1, &c));
      const int vt = dt == KL_FLOAT32 ? KL_CUDA_R_32F : KL_CUDA_R_64F;
      CHECK(c.opA == KL_CUSPARSE_OP_NON_TRANSPOSE && c.opB == KL_CUSPARSE_OP_NON_TRANSPOSE);
      CHECK(c.a_rows == M && c.a_cols == K && c.a_nnz == a.nnz);
      CHECK(c.a_offsets == a.ptr && c.a_columns == a.ind && c.a_values == a.val);
      CHECK(c.a_offsets_type == KL_CUSPARSE_INDEX_64I && c.a_columns_type == KL_CUSPARSE_INDEX_64I);
      CHECK(c.a_base == KL_CUSPARSE_INDEX_BASE_ZERO);
      CHECK(c.b_rows == K && c.b_cols == N && c.b_ld == N && c.b_order == KL_CUSPARSE_ORDER_ROW);
      CHECK(c.c_rows == M && c.c_cols == N && c.c_ld == N && c.c_order == KL_CUSPARSE_ORDER_ROW);
      CHECK(c.b_values == B && c.c_values == C1);
      CHECK(c.a_value_type == vt && c.b_value_type == vt && c.c_value_type == vt &&
            c.compute_type == vt && c.alg == KL_CUSPARSE_SPMM_ALG_DEFAULT);
      CHECK(kl_cuda_spmm_check(&c) == 0);
      /* the documented semantics give the product */
      doc_spmm(&c, -0.5, 2.0, a.val, B, C1);
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
          double s = 0;
          for (int64_t e = a.ptr[i]; e < a.ptr[i + 1]; e++) s += a.val[e] * B[a.ind[e] * N + j];
          C2[i * N + j] = -0.5 * s + 2.0 * C2[i * N + j];
        }
      CHECK(close_all("spmm describe", C1, C2, M * N, 1e-12));
      /* what cuSPARSE documents as invalid is refused */
      kl_cuda_spmm_call bad = c;
      bad.b_ld = N - 1;
      CHECK(kl_cuda_spmm_check(&bad) == KL_CUSPARSE_STATUS_INVALID_VALUE);
      bad = c;
      bad.c_order = KL_CUSPARSE_ORDER_COL;
      CHECK(kl_cuda_spmm_check(&bad) == KL_CUSPARSE_STATUS_INVALID_VALUE);
      bad = c;
      bad.b_rows = K + 1;
      CHECK(kl_cuda_spmm_check(&bad) == KL_CUSPARSE_STATUS_INVALID_VALUE);
      bad = c;
      bad.c_value_type = vt == KL_CUDA_R_32F ? KL_CUDA_R_64F : KL_CUDA_R_32F;
      CHECK(kl_cuda_spmm_check(&bad) == KL_CUSPARSE_STATUS_INVALID_VALUE);
      bad = c;
      bad.opA = KL_CUSPARSE_OP_TRANSPOSE; /* op(A) would be K x M: C's rows no longer match */
      CHECK(M == K || kl_cuda_spmm_check(&bad) == KL_CUSPARSE_STATUS_INVALID_VALUE);
      bad = c;
      bad.b_order = bad.c_order = KL_CUSPARSE_ORDER_COL; /* column order: ld >= rows */
      CHECK(kl_cuda_spmm_check(&bad) == (N >= K && N >= M ? 0 : KL_CUSPARSE_STATUS_INVALID_VALUE));
      free_csr(&a);
      free(B);
      free(C1);
      free(C2);
    }
  kl_cuda_spmm_call c;
  int x = 0;
  CHECK_ERR(kl_cuda_spmm_describe(KL_INT64, 1, 1, 1, 0, NULL, NULL, NULL, &x, &x, &c), KL_EDTYPE,
            "cuda spmm: dtype int64");
  CHECK_ERR(kl_cuda_spmm_describe(KL_FLOAT32, 2, 0, 1, 0, NULL, NULL, NULL, &x, &x, &c),
            KL_EINVAL, "cuda spmm: empty product 2 x 0 x 1 (nnz 0)");
}

/* ------------------------------------------------------------------ 2. the half linked in */

static void *dev_put(const void *h, size_t bytes) {
  void *p = NULL;
  CHECK_OK(kl_cuda_dev_alloc(GPU0, bytes, &p));
  CHECK_OK(kl_cuda_dev_write(GPU0, p, h, bytes));
  return p;
}

/* doubles -> dt values into a new buffer */
static void *as_dt(const double *x, int64_t n, kl_dtype dt) {
  void *p = malloc((size_t)(n + 1) * 8); /* one spare value: the tests copy nnz + 1 */
  for (int64_t i = 0; i < n; i++) {
    if (dt == KL_FLOAT32) ((float *)p)[i] = (float)x[i];
    else ((double *)p)[i] = x[i];
  }
  return p;
}

static void back_to_double(const void *p, kl_dtype dt, double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = dt == KL_FLOAT32 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static void test_gemm_run(void) {
  for (int dti = 0; dti < 2; dti++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const kl_dtype dt = dti ? KL_FLOAT64 : KL_FLOAT32;
        const size_t es = dti ? 8 : 4;
        const int64_t M = 11, N = 5, K = 37;
        const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
        const int64_t lda = ac + 1, ldb = bc + 2, ldc = N + 3;
        double *A = rand_buf(ar * lda), *B = rand_buf(br * ldb), *C = rand_buf(M * ldc);
        /* the reference from the values as the device holds them (float32 rounded) */
        void *Ad = as_dt(A, ar * lda, dt), *Bd = as_dt(B, br * ldb, dt), *Cd = as_dt(C, M * ldc, dt);
        back_to_double(Ad, dt, A, ar * lda);
        back_to_double(Bd, dt, B, br * ldb);
        back_to_double(Cd, dt, C, M * ldc);
        void *dA = dev_put(Ad, (size_t)(ar * lda) * es), *dB = dev_put(Bd, (size_t)(br * ldb) * es);
        void *dC = dev_put(Cd, (size_t)(M * ldc) * es);
        kl_cuda_gemm_call c;
        CHECK_OK(kl_cuda_gemm_describe(ta, tb, M, N, K, dA, lda, dB, ldb, dC, ldc, &c));
        CHECK_OK(kl_cuda_blas_gemm(GPU0, dt, &c, 0.75, -1.25, kl_cuda_dev_stream(GPU0)));
        CHECK_OK(kl_cuda_dev_read(GPU0, Cd, dC, (size_t)(M * ldc) * es));
        double *got = malloc((size_t)(M * ldc) * sizeof *got);
        back_to_double(Cd, dt, got, M * ldc);
        rm_gemm(ta, tb, M, N, K, 0.75, A, lda, B, ldb, -1.25, C, ldc);
        char l[100];
        snprintf(l, sizeof l, "gemm %s ta %d tb %d", kl_dtype_name(dt), ta, tb);
        CHECK(close_all(l, got, C, M * ldc, dt == KL_FLOAT32 ? 1e-5 : 1e-12));
        kl_cuda_dev_free(GPU0, dA);
        kl_cuda_dev_free(GPU0, dB);
        kl_cuda_dev_free(GPU0, dC);
        free(A);
        free(B);
        free(C);
        free(Ad);
        free(Bd);
        free(Cd);
        free(got);
      }
  /* an invalid call: cuBLAS's INVALID_VALUE, its string */
  kl_cuda_gemm_call c;
  memset(&c, 0, sizeof c);
  c.m = c.n = c.k = 2;
  c.lda = 1; /* < m */
  c.ldb = c.ldc = 2;
  kl_status st = kl_cuda_blas_gemm(GPU0, KL_FLOAT32, &c, 1, 0, kl_cuda_dev_stream(GPU0));
  CHECK(st == KL_EDEVICE && strstr(kl_errmsg(), "cublasSgemm: cuBLAS error 7: ") == kl_errmsg());
  CHECK_ERR(kl_cuda_blas_gemm(GPU0, KL_INT64, &c, 1, 0, NULL), KL_EDTYPE, "cuda gemm: dtype int64");
}

static void test_spmm_run(void) {
  for (int dti = 0; dti < 2; dti++) {
    const kl_dtype dt = dti ? KL_FLOAT64 : KL_FLOAT32;
    const size_t es = dti ? 8 : 4;
    const int64_t M = 23, K = 37, N = 6;
    hcsr a = rand_csr(M, K, 0.3);
    double *B = rand_buf(K * N), *C = rand_buf(M * N);
    void *vd = as_dt(a.val, a.nnz, dt), *Bd = as_dt(B, K * N, dt), *Cd = as_dt(C, M * N, dt);
    back_to_double(vd, dt, a.val, a.nnz);
    back_to_double(Bd, dt, B, K * N);
    back_to_double(Cd, dt, C, M * N);
    int64_t *dp = dev_put(a.ptr, (size_t)(M + 1) * 8), *di = dev_put(a.ind, (size_t)a.nnz * 8 + 8);
    void *dv = dev_put(vd, (size_t)a.nnz * es + 8), *dB = dev_put(Bd, (size_t)(K * N) * es);
    void *dC = dev_put(Cd, (size_t)(M * N) * es);
    kl_cuda_spmm_call c;
    CHECK_OK(kl_cuda_spmm_describe(dt, M, K, N, a.nnz, dp, di, dv, dB, dC, &c));
    CHECK_OK(kl_cuda_blas_spmm(GPU0, dt, &c, 1.0, 0.0, kl_cuda_dev_stream(GPU0)));
    CHECK_OK(kl_cuda_dev_read(GPU0, Cd, dC, (size_t)(M * N) * es));
    /* alpha 1, beta 0: the row's products summed in entry order, from +0, in dt */
    double *got = malloc((size_t)(M * N) * sizeof *got), *want = malloc((size_t)(M * N) * sizeof *want);
    back_to_double(Cd, dt, got, M * N);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        if (dt == KL_FLOAT32) {
          float s = 0;
          for (int64_t e = a.ptr[i]; e < a.ptr[i + 1]; e++) s += (float)a.val[e] * (float)B[a.ind[e] * N + j];
          want[i * N + j] = s;
        } else {
          double s = 0;
          for (int64_t e = a.ptr[i]; e < a.ptr[i + 1]; e++) s += a.val[e] * B[a.ind[e] * N + j];
          want[i * N + j] = s;
        }
      }
    CHECK(close_all(dt == KL_FLOAT32 ? "spmm float32" : "spmm float64", got, want, M * N,
                    GPU_DEV_EMULATED ? 0.0 : dt == KL_FLOAT32 ? 1e-5 : 1e-12));
    /* alpha and beta */
    memcpy(want, got, (size_t)(M * N) * sizeof *want);
    CHECK_OK(kl_cuda_blas_spmm(GPU0, dt, &c, -2.0, 0.5, kl_cuda_dev_stream(GPU0)));
    CHECK_OK(kl_cuda_dev_read(GPU0, Cd, dC, (size_t)(M * N) * es));
    back_to_double(Cd, dt, got, M * N);
    for (int64_t e = 0; e < M * N; e++) want[e] = -2.0 * want[e] + 0.5 * want[e];
    CHECK(close_all("spmm alpha beta", got, want, M * N, dt == KL_FLOAT32 ? 1e-5 : 1e-12));
    /* an invalid descriptor: cuSPARSE's INVALID_VALUE with its string */
    kl_cuda_spmm_call bad = c;
    bad.c_ld = N - 1;
    kl_status st = kl_cuda_blas_spmm(GPU0, dt, &bad, 1.0, 0.0, kl_cuda_dev_stream(GPU0));
    CHECK(st == KL_EDEVICE && strstr(kl_errmsg(), ": cuSPARSE error 3: ") != NULL);
    kl_cuda_dev_free(GPU0, dp);
    kl_cuda_dev_free(GPU0, di);
    kl_cuda_dev_free(GPU0, dv);
    kl_cuda_dev_free(GPU0, dB);
    kl_cuda_dev_free(GPU0, dC);
    free_csr(&a);
    free(B);
    free(C);
    free(vd);
    free(Bd);
    free(Cd);
    free(got);
    free(want);
  }
  CHECK(kl_cuda_blas_loaded());
}

int main(void) {
  kl_cuda_seterr = kl_seterr; /* the builders' messages (the backend's opening sets it too) */
  test_gemm_describe();
  test_spmm_describe();
  int st = gpu_dev_start("test_gpu_dev_blas");
  if (st) {
    /* no device: the builders were still checked above */
    printf("%d checks, %d failures (device part skipped)\n", kltest_checks, kltest_failures);
    return kltest_failures ? 1 : st;
  }
  test_gemm_run();
  test_spmm_run();
  gpu_dev_finish();
  KLTEST_DONE();
}
