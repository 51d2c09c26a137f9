/* cuda_blas.h: the thin layer between the device ops and cuBLAS / cuSPARSE: what the dot op
 * needs of them (a dense gemm, a csr x dense SpMM), the arguments of each call built by pure
 * functions from a row-major request, and the two halves that run them:
 *   cuda_blas_real.c  cuBLAS / cuSPARSE, reached by dlopen at the first call that needs them
 *                     (never at module load: keras.num_gpus() on a CPU machine stays cheap);
 *                     handles made per device on first use; a missing library is an error
 *                     with a message, never a crash;
 *   cuda_blas_emu.c   the emulated device: the gemm by OpenBLAS's cblas (column-major, the
 *                     call's own arguments), the SpMM by a host loop implementing
 *                     cusparseSpMM's documented semantics for the descriptor given.
 * The argument builders (kl_cuda_gemm_describe, kl_cuda_spmm_describe) are the one place
 * the libraries' conventions (column-major cuBLAS, leading dimensions, orders, index types)
 * are encoded; spec/c/test_gpu_blas_desc.c checks them against the documented layouts,
 * since the emulated half cannot stand for the real libraries' conventions by itself.
 *
 * The constants below are the libraries' enum values (cuda_blas_real.c checks them against
 * cublas_api.h / cusparse.h / library_types.h at compile time), so this header and the
 * common files need no CUDA header. */
#ifndef KL_CUDA_BLAS_H
#define KL_CUDA_BLAS_H
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "kl/kl.h"
#include "kl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KL_CUBLAS_OP_N 0 /* cublasOperation_t */
#define KL_CUBLAS_OP_T 1
#define KL_CUSPARSE_OP_NON_TRANSPOSE 0 /* cusparseOperation_t */
#define KL_CUSPARSE_OP_TRANSPOSE 1
#define KL_CUSPARSE_INDEX_32I 2 /* cusparseIndexType_t */
#define KL_CUSPARSE_INDEX_64I 3
#define KL_CUSPARSE_INDEX_BASE_ZERO 0 /* cusparseIndexBase_t */
#define KL_CUSPARSE_ORDER_COL 1       /* cusparseOrder_t */
#define KL_CUSPARSE_ORDER_ROW 2
#define KL_CUSPARSE_SPMM_ALG_DEFAULT 0 /* cusparseSpMMAlg_t */
#define KL_CUDA_R_32F 0                /* cudaDataType */
#define KL_CUDA_R_64F 1
#define KL_CUSPARSE_STATUS_INVALID_VALUE 3
#define KL_CUBLAS_STATUS_INVALID_VALUE 7

/* ------------------------------------------------------------------ gemm (cuBLAS) */

/* The arguments of cublas<S|D>gemm (column-major: C = alpha op(A) op(B) + beta C, op(A) m x
 * k, op(B) k x n, C m x n; element (r, c) of a matrix with leading dimension ld at r + c ld). */
typedef struct kl_cuda_gemm_call {
  int transa, transb; /* KL_CUBLAS_OP_N / _T */
  int m, n, k;
  const void *A;
  int lda;
  const void *B;
  int ldb;
  void *C;
  int ldc;
} kl_cuda_gemm_call;

/* The cuBLAS call for the row-major product C = op(A) . op(B): op(A) is M x K (A stored M x K
 * with rows of lda elements, or K x M when ta), op(B) K x N (B stored K x N with rows of ldb,
 * or N x K when tb), C M x N with rows of ldc. A row-major matrix read column-major is its
 * transpose, so the call computes C^T = op(B)^T op(A)^T: cuBLAS's A is our B (transa = tb),
 * its B our A (transb = ta), m = N, n = M, k = K, and the leading dimensions are the row
 * lengths. M, N, K >= 1 (the caller handles empty products); the row lengths must cover
 * the rows (lda >= K, or M when ta; ldb >= N, or K when tb; ldc >= N), and every value must
 * fit cuBLAS's int (else KL_EUNSUPPORTED naming the sizes, as the CPU's OpenBLAS path). */
static inline kl_status kl_cuda_gemm_describe(int ta, int tb, int64_t M, int64_t N, int64_t K,
                                              const void *A, int64_t lda, const void *B,
                                              int64_t ldb, void *C, int64_t ldc,
                                              kl_cuda_gemm_call *c) {
  memset(c, 0, sizeof *c);
  if (M < 1 || N < 1 || K < 1)
    return kl_cuda_seterr(KL_EINVAL, "cuda gemm: empty product %lld x %lld x %lld", (long long)M,
                          (long long)K, (long long)N);
  if (lda < (ta ? M : K) || ldb < (tb ? K : N) || ldc < N)
    return kl_cuda_seterr(KL_EINVAL,
                          "cuda gemm: leading dimensions lda=%lld ldb=%lld ldc=%lld too small "
                          "for %lld x %lld x %lld (transposes %d, %d)",
                          (long long)lda, (long long)ldb, (long long)ldc, (long long)M,
                          (long long)K, (long long)N, ta, tb);
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
      ldc > INT_MAX)
    return kl_cuda_seterr(KL_EUNSUPPORTED,
                          "dot: dimensions %lld x %lld x %lld exceed the BLAS int limit",
                          (long long)M, (long long)K, (long long)N);
  c->transa = tb ? KL_CUBLAS_OP_T : KL_CUBLAS_OP_N;
  c->transb = ta ? KL_CUBLAS_OP_T : KL_CUBLAS_OP_N;
  c->m = (int)N;
  c->n = (int)M;
  c->k = (int)K;
  c->A = B;
  c->lda = (int)ldb;
  c->B = A;
  c->ldb = (int)lda;
  c->C = C;
  c->ldc = (int)ldc;
  return KL_OK;
}

/* ------------------------------------------------------------------ SpMM (cuSPARSE) */

/* The arguments of cusparseSpMM with the descriptors it is given: A by cusparseCreateCsr /
 * cusparseCreateConstCsr, B by cusparseCreateConstDnMat, C by cusparseCreateDnMat:
 * C = alpha op(A) op(B) + beta C with op(A) m x k, op(B) k x n, C m x n. A dense matrix's
 * element (r, c) is at r ld + c in ORDER_ROW, r + c ld in ORDER_COL. */
typedef struct kl_cuda_spmm_call {
  int opA, opB; /* KL_CUSPARSE_OP_* */
  /* A: CSR, a_rows x a_cols, a_nnz entries */
  int64_t a_rows, a_cols, a_nnz;
  const int64_t *a_offsets, *a_columns;
  const void *a_values;
  int a_offsets_type, a_columns_type, a_base, a_value_type;
  /* B and C: dense */
  int64_t b_rows, b_cols, b_ld;
  const void *b_values;
  int b_value_type, b_order;
  int64_t c_rows, c_cols, c_ld;
  void *c_values;
  int c_value_type, c_order;
  int compute_type, alg;
} kl_cuda_spmm_call;

/* The cuSPARSE call for C (M x N, row-major) = A . B with A a csr M x K of nnz entries
 * (0-based int64 row offsets and columns, as the backend stores them) and B K x N row-major:
 * opA = opB = NON_TRANSPOSE (run-to-run deterministic; a transposed A may not be), 64-bit
 * indices, ORDER_ROW dense matrices with ld = their row length N, value and compute type of
 * dt, the default algorithm. M, K, N >= 1 and nnz >= 0 (the caller handles empty products). */
static inline kl_status kl_cuda_spmm_describe(kl_dtype dt, int64_t M, int64_t K, int64_t N,
                                              int64_t nnz, const int64_t *indptr,
                                              const int64_t *indices, const void *vals,
                                              const void *B, void *C, kl_cuda_spmm_call *c) {
  memset(c, 0, sizeof *c);
  if (dt != KL_FLOAT32 && dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "cuda spmm: dtype %s, expected float32 or float64",
                          kl_cuda_dtype_name(dt));
  if (M < 1 || K < 1 || N < 1 || nnz < 0)
    return kl_cuda_seterr(KL_EINVAL, "cuda spmm: empty product %lld x %lld x %lld (nnz %lld)",
                          (long long)M, (long long)K, (long long)N, (long long)nnz);
  const int vt = dt == KL_FLOAT32 ? KL_CUDA_R_32F : KL_CUDA_R_64F;
  c->opA = KL_CUSPARSE_OP_NON_TRANSPOSE;
  c->opB = KL_CUSPARSE_OP_NON_TRANSPOSE;
  c->a_rows = M;
  c->a_cols = K;
  c->a_nnz = nnz;
  c->a_offsets = indptr;
  c->a_columns = indices;
  c->a_values = vals;
  c->a_offsets_type = KL_CUSPARSE_INDEX_64I;
  c->a_columns_type = KL_CUSPARSE_INDEX_64I;
  c->a_base = KL_CUSPARSE_INDEX_BASE_ZERO;
  c->a_value_type = vt;
  c->b_rows = K;
  c->b_cols = N;
  c->b_ld = N;
  c->b_values = B;
  c->b_value_type = vt;
  c->b_order = KL_CUSPARSE_ORDER_ROW;
  c->c_rows = M;
  c->c_cols = N;
  c->c_ld = N;
  c->c_values = C;
  c->c_value_type = vt;
  c->c_order = KL_CUSPARSE_ORDER_ROW;
  c->compute_type = vt;
  c->alg = KL_CUSPARSE_SPMM_ALG_DEFAULT;
  return KL_OK;
}

/* What cusparseSpMM documents as valid for a call (the emulated half refuses the rest with
 * CUSPARSE_STATUS_INVALID_VALUE, 3; the test checks the descriptors we build pass): 0, or 3.
 * op(A) is m x k (a_rows x a_cols, transposed by opA), op(B) k x n, C m x n; a dense
 * matrix's ld covers its rows (ORDER_ROW: ld >= cols; ORDER_COL: ld >= rows); one value type
 * throughout; offsets / columns 32I or 64I, base 0 or 1; the orders of B and C agree. */
static inline int kl_cuda_spmm_check(const kl_cuda_spmm_call *c) {
  const int64_t m = c->opA == KL_CUSPARSE_OP_NON_TRANSPOSE ? c->a_rows : c->a_cols;
  const int64_t k = c->opA == KL_CUSPARSE_OP_NON_TRANSPOSE ? c->a_cols : c->a_rows;
  const int64_t bk = c->opB == KL_CUSPARSE_OP_NON_TRANSPOSE ? c->b_rows : c->b_cols;
  const int64_t n = c->opB == KL_CUSPARSE_OP_NON_TRANSPOSE ? c->b_cols : c->b_rows;
  const int idx_ok = (c->a_offsets_type == KL_CUSPARSE_INDEX_32I ||
                      c->a_offsets_type == KL_CUSPARSE_INDEX_64I) &&
                     (c->a_columns_type == KL_CUSPARSE_INDEX_32I ||
                      c->a_columns_type == KL_CUSPARSE_INDEX_64I);
  const int op_ok = (c->opA == KL_CUSPARSE_OP_NON_TRANSPOSE || c->opA == KL_CUSPARSE_OP_TRANSPOSE) &&
                    (c->opB == KL_CUSPARSE_OP_NON_TRANSPOSE || c->opB == KL_CUSPARSE_OP_TRANSPOSE);
  const int ord_ok = (c->b_order == KL_CUSPARSE_ORDER_ROW || c->b_order == KL_CUSPARSE_ORDER_COL) &&
                     c->b_order == c->c_order;
  const int ld_ok =
      c->b_ld >= (c->b_order == KL_CUSPARSE_ORDER_ROW ? c->b_cols : c->b_rows) && c->b_ld >= 1 &&
      c->c_ld >= (c->c_order == KL_CUSPARSE_ORDER_ROW ? c->c_cols : c->c_rows) && c->c_ld >= 1;
  const int type_ok = (c->compute_type == KL_CUDA_R_32F || c->compute_type == KL_CUDA_R_64F) &&
                      c->a_value_type == c->compute_type && c->b_value_type == c->compute_type &&
                      c->c_value_type == c->compute_type;
  const int dims_ok = c->a_rows >= 0 && c->a_cols >= 0 && c->a_nnz >= 0 && k == bk &&
                      c->c_rows == m && c->c_cols == n;
  const int base_ok = c->a_base == 0 || c->a_base == 1;
  return idx_ok && op_ok && ord_ok && ld_ok && type_ok && dims_ok && base_ok
             ? 0
             : KL_CUSPARSE_STATUS_INVALID_VALUE;
}

/* ------------------------------------------------------------------ the halves */

/* Runs the gemm c (kl_cuda_gemm_describe) on device d's stream s with scalars alpha, beta
 * (dt float32 or float64; every pointer is d's memory). KL_OK once queued; a library status
 * as KL_EDEVICE / KL_ENOMEM with its own string; KL_EDEVICE "cuBLAS: cannot load ..." when
 * the library is not there. */
kl_status kl_cuda_blas_gemm(kl_device d, kl_dtype dt, const kl_cuda_gemm_call *c, double alpha,
                            double beta, kl_cuda_stream s);
/* Runs the SpMM c (kl_cuda_spmm_describe) on d's stream s (its workspace from d's caching
 * allocator); statuses as kl_cuda_blas_gemm's, with cuSPARSE's strings. */
kl_status kl_cuda_blas_spmm(kl_device d, kl_dtype dt, const kl_cuda_spmm_call *c, double alpha,
                            double beta, kl_cuda_stream s);
/* Whether cuBLAS / cuSPARSE are loaded in this process (the real half: only once a call has
 * needed them; the emulated half: always 1). For the load-cost specs. */
int kl_cuda_blas_loaded(void);

#ifdef __cplusplus
}
#endif
#endif /* KL_CUDA_BLAS_H */
