/* cuda_blas_emu.c: the emulated half of cuda_blas.h (the emulated module: device memory is
 * host memory and a stream's work runs at once, in order).
 *
 * The gemm is OpenBLAS's column-major cblas_<s|d>gemm called with the cuBLAS call's own
 * arguments (the BLAS definition cuBLAS implements), after cuBLAS's documented argument
 * checks. Since OpenBLAS computes a row-major cblas call by this same column-major call with
 * the operands swapped, the emulated device's dense dot gives the CPU's bits, and a wrong
 * descriptor gives wrong values the specs see.
 *
 * The SpMM is a host loop over the descriptor as cusparseSpMM documents it: C = alpha op(A)
 * op(B) + beta C (C not read when beta is 0), op(A) from a CSR of 64-bit offsets and columns
 * (base 0 or 1), B and C dense in row- or column-major order with their leading dimensions.
 * Each output element sums its products from +0 in the CSR's entry order, so with alpha = 1
 * and beta = 0 it is the CPU's csr . dense bit for bit; an invalid descriptor is refused
 * with cuSPARSE's INVALID_VALUE, as the library would. */
#include <cblas.h>
#include <stdlib.h>

#include "cuda_blas.h"
#include "cuda_vendor.h"

int kl_cuda_blas_loaded(void) { return 1; }

kl_status kl_cuda_blas_gemm(kl_device d, kl_dtype dt, const kl_cuda_gemm_call *c, double alpha,
                            double beta, kl_cuda_stream s) {
  (void)d;
  (void)s;
  const char *what = dt == KL_FLOAT32 ? "cublasSgemm" : "cublasDgemm";
  if (dt != KL_FLOAT32 && dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "cuda gemm: dtype %s, expected float32 or float64",
                          kl_cuda_dtype_name(dt));
  const int am = c->transa == KL_CUBLAS_OP_N ? c->m : c->k; /* rows of A as stored */
  const int bk = c->transb == KL_CUBLAS_OP_N ? c->k : c->n;
  if ((c->transa != KL_CUBLAS_OP_N && c->transa != KL_CUBLAS_OP_T) ||
      (c->transb != KL_CUBLAS_OP_N && c->transb != KL_CUBLAS_OP_T) || c->m < 0 || c->n < 0 ||
      c->k < 0 || c->lda < (am > 1 ? am : 1) || c->ldb < (bk > 1 ? bk : 1) ||
      c->ldc < (c->m > 1 ? c->m : 1))
    return kl_cuda_check_cublas(KL_CUBLAS_STATUS_INVALID_VALUE, what);
  if (c->m == 0 || c->n == 0) return KL_OK;
  const enum CBLAS_TRANSPOSE ta = c->transa == KL_CUBLAS_OP_T ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE tb = c->transb == KL_CUBLAS_OP_T ? CblasTrans : CblasNoTrans;
  if (dt == KL_FLOAT32)
    cblas_sgemm(CblasColMajor, ta, tb, c->m, c->n, c->k, (float)alpha, c->A, c->lda, c->B,
                c->ldb, (float)beta, c->C, c->ldc);
  else
    cblas_dgemm(CblasColMajor, ta, tb, c->m, c->n, c->k, alpha, c->A, c->lda, c->B, c->ldb, beta,
                c->C, c->ldc);
  return KL_OK;
}

/* Element (r, col) of a dense matrix in order ord with leading dimension ld. */
static inline int64_t dn_at(int ord, int64_t ld, int64_t r, int64_t col) {
  return ord == KL_CUSPARSE_ORDER_ROW ? r * ld + col : r + col * ld;
}

#define KL_DEF_SPMM(T, S)                                                                    \
  static void spmm_##S(const kl_cuda_spmm_call *c, int64_t m, int64_t n, T alpha, T beta,    \
                       T *acc) {                                                             \
    const int64_t *off = c->a_offsets, *col = c->a_columns, base = c->a_base;                \
    const T *av = c->a_values, *B = c->b_values;                                              \
    T *C = c->c_values;                                                                       \
    const int ta = c->opA == KL_CUSPARSE_OP_TRANSPOSE, tb = c->opB == KL_CUSPARSE_OP_TRANSPOSE; \
    for (int64_t e = 0; e < m * n; e++) acc[e] = (T)0;                                        \
    for (int64_t r = 0; r < c->a_rows; r++)                                                   \
      for (int64_t e = off[r] - base; e < off[r + 1] - base; e++) {                           \
        const int64_t ac = col[e] - base, i = ta ? ac : r, kk = ta ? r : ac;                  \
        const T v = av[e];                                                                    \
        for (int64_t j = 0; j < n; j++) {                                                     \
          const T b = tb ? B[dn_at(c->b_order, c->b_ld, j, kk)]                               \
                         : B[dn_at(c->b_order, c->b_ld, kk, j)];                              \
          acc[i * n + j] += v * b;                                                            \
        }                                                                                     \
      }                                                                                       \
    for (int64_t i = 0; i < m; i++)                                                           \
      for (int64_t j = 0; j < n; j++) {                                                       \
        T *y = &C[dn_at(c->c_order, c->c_ld, i, j)];                                          \
        const T x = alpha == (T)1 ? acc[i * n + j] : alpha * acc[i * n + j];                  \
        *y = beta == (T)0 ? x : x + beta * *y;                                                \
      }                                                                                       \
  }
KL_DEF_SPMM(float, f32)
KL_DEF_SPMM(double, f64)

kl_status kl_cuda_blas_spmm(kl_device d, kl_dtype dt, const kl_cuda_spmm_call *c, double alpha,
                            double beta, kl_cuda_stream s) {
  (void)d;
  (void)s;
  if (dt != KL_FLOAT32 && dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "cuda spmm: dtype %s, expected float32 or float64",
                          kl_cuda_dtype_name(dt));
  const int vt = dt == KL_FLOAT32 ? KL_CUDA_R_32F : KL_CUDA_R_64F;
  if (kl_cuda_spmm_check(c) != 0 || c->compute_type != vt)
    return kl_cuda_check_cusparse(KL_CUSPARSE_STATUS_INVALID_VALUE, "cusparseSpMM");
  if (c->a_offsets_type != KL_CUSPARSE_INDEX_64I || c->a_columns_type != KL_CUSPARSE_INDEX_64I)
    return kl_cuda_seterr(KL_EUNSUPPORTED,
                          "cusparseSpMM (emulated): only 64-bit indices are emulated");
  const int64_t m = c->c_rows, n = c->c_cols;
  if (m == 0 || n == 0) return KL_OK;
  void *acc = malloc((size_t)(m * n) * (dt == KL_FLOAT32 ? sizeof(float) : sizeof(double)));
  if (!acc) return kl_cuda_seterr(KL_ENOMEM, "cusparseSpMM (emulated): out of host memory");
  if (dt == KL_FLOAT32) spmm_f32(c, m, n, (float)alpha, (float)beta, acc);
  else spmm_f64(c, m, n, alpha, beta, acc);
  free(acc);
  return KL_OK;
}
