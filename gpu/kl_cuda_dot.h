/* kl_cuda_dot.h: the own kernels of the dot op on the device (gpu/k_dot.cu), and the storage
 * conversions its kernels and backward need on the device.
 *
 * Conventions of kl_cuda.h: device pointers, a stream, a kl_status once queued. Matrices are
 * row-major; a csr is (indptr[rows + 1], indices[nnz], vals[nnz]) with 0-based int64 indices,
 * strictly increasing columns within a row; a row_sparse stores nnz sorted rows idx[nnz].
 * dt is float32 or float64.
 *
 * Every output element here is the CPU's (backend/src/ops_dot*.c, convert.c) bit for bit: a
 * sum starts from +0 and adds its products in the CPU's order (entry order of the csr), one
 * thread per output element, no float atomics; entries are grouped by column with the stable
 * radix sort of k_sort.cu (kl_cuda_sort_pairs), so a column's entries keep their order.
 * Compiled with nvcc --fmad=false (no fused multiply-adds) the device gives the same bits. */
#ifndef KL_CUDA_DOT_H
#define KL_CUDA_DOT_H
#include <stddef.h>
#include <stdint.h>

#include "kl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ csr . B */

/* Bytes of scratch kl_cuda_dot_csr_gather needs (for a row_sparse b: one int64 a entry). */
size_t kl_cuda_dot_csr_gather_scratch(int64_t nnz, int b_sparse);
/* out (M x N, row-major) = csr a (M rows, nnz entries) . b, b being K x N row-major:
 *   b_idx NULL: a dense b, entry j reads row indices[j] of B;
 *   b_idx set:  a row_sparse b storing the b_nnz sorted rows b_idx, B its b_nnz x N values;
 *               an entry whose column b does not store adds nothing (the CPU skips it).
 * out[i, k] = +0 + sum over row i's entries, in order, of vals[j] * b-row[k]: the CPU's
 * csr.dense / csr.row_sparse kernels. A 1-d b is N = 1. */
kl_status kl_cuda_dot_csr_gather(kl_dtype dt, int64_t M, int64_t N, const int64_t *indptr,
                                 const int64_t *indices, const void *vals, int64_t nnz,
                                 const int64_t *b_idx, int64_t b_nnz, const void *B,
                                 void *scratch, void *out, kl_cuda_stream s);

/* ------------------------------------------------------------------ csr^T . B -> row_sparse */

/* Bytes of scratch for a csr of nnz entries (the two phases share it). */
size_t kl_cuda_dot_csrT_scratch(int64_t nnz);
/* Phase 1 of csr^T . b, a being R x C (nnz entries) and b R x N (dense: b_idx NULL; or a
 * row_sparse storing the b_nnz sorted rows b_idx): the entries whose row b stores are sorted
 * by column (stable: entry order within a column); *nu (device int64) gets the number of
 * distinct columns they touch: the output's row count. */
kl_status kl_cuda_dot_csrT_plan(int64_t R, int64_t C, const int64_t *indptr,
                                const int64_t *indices, int64_t nnz, const int64_t *b_idx,
                                int64_t b_nnz, void *scratch, int64_t *nu, kl_cuda_stream s);
/* Phase 2, after the host has read nu: rows[u] = the u-th touched column (ascending) and
 * vals[u, k] = +0 + sum over that column's entries j, in entry order, of a-vals[j] *
 * b-row(j)[k], for u < nu, k < N: the CPU's csrT.dense / csrT.row_sparse bits. */
kl_status kl_cuda_dot_csrT_sum(kl_dtype dt, int64_t nnz, int64_t N, const void *avals,
                               const void *B, const void *scratch, int64_t nu, int64_t *rows,
                               void *vals, kl_cuda_stream s);

/* ------------------------------------------------------------------ dense . csr */

/* Bytes of scratch kl_cuda_dot_dense_csr needs (b: nnz entries, N columns). */
size_t kl_cuda_dot_dense_csr_scratch(int64_t nnz, int64_t N);
/* out (M x N) = op(A) . b, A dense M x K (ta: stored K x M), b a csr K x N of nnz entries:
 * out[i, n] = +0 + sum over b's entries in column n, by row k ascending, of op(A)[i, k] *
 * b-val: the CPU's dense.csr kernel. */
kl_status kl_cuda_dot_dense_csr(kl_dtype dt, int64_t M, int64_t K, int ta, const void *A,
                                int64_t N, const int64_t *bptr, const int64_t *bidx,
                                const void *bvals, int64_t nnz, void *scratch, void *out,
                                kl_cuda_stream s);

/* ------------------------------------------------------------------ storage conversions */

/* out[0..n) = +0 (dt: any; int64 and float64 share the 8-byte kernel). */
kl_status kl_cuda_dot_zero(kl_dtype dt, void *out, int64_t n, kl_cuda_stream s);
/* csr (rows x cols) -> dense rows x cols (zero, then each entry in place). */
kl_status kl_cuda_dot_csr_to_dense(kl_dtype dt, int64_t rows, int64_t cols,
                                   const int64_t *indptr, const int64_t *indices,
                                   const void *vals, int64_t nnz, void *out, kl_cuda_stream s);
/* row_sparse (rows of width w, nnz stored rows idx) -> dense rows x w. */
kl_status kl_cuda_dot_rsp_to_dense(kl_dtype dt, int64_t rows, int64_t w, const int64_t *idx,
                                   int64_t nnz, const void *vals, void *out, kl_cuda_stream s);
/* dense (rows of width w) -> row_sparse keeping the rows with a nonzero (NaN counts), as the
 * CPU's tostype. Phase 1: *n (device int64) = how many. */
size_t kl_cuda_dot_dense_to_rsp_scratch(int64_t rows);
kl_status kl_cuda_dot_dense_to_rsp_count(kl_dtype dt, int64_t rows, int64_t w, const void *x,
                                         void *scratch, int64_t *n, kl_cuda_stream s);
/* Phase 2, after the host has read n: idx[0..n) the kept rows ascending, vals their values. */
kl_status kl_cuda_dot_dense_to_rsp_fill(kl_dtype dt, int64_t rows, int64_t w, const void *x,
                                        const void *scratch, int64_t *idx, void *vals,
                                        kl_cuda_stream s);

#ifdef __cplusplus
}
#endif
#endif /* KL_CUDA_DOT_H */
