/* kl_cuda_math.h: the launchers of the math ops' kernels (gpu/k_math*.cu): elementwise with
 * numpy broadcasting, the scalar and unary maps (exp / log / sigmoid / tanh / pow included),
 * their gradients, sparse merges and conversions, sum / mean, softmax, argmax, one_hot,
 * transpose, concatenate and retain. Each one is a CPU op of backend/src (ops_elemwise.c,
 * ops_scalar.c, ops_unary.c, ops_reduce.c, ops_index.c, ops_misc.c, ops_concat.c, convert.c)
 * written with the same expressions in the same order, so that an element gets the CPU's
 * bits wherever the operations are IEEE-exact (+ - * /, sqrt, comparisons, and sums whose
 * order is the CPU's: each sum here runs in one thread, in the CPU's order). The device's
 * exp, log, tanh and pow are CUDA's (within 1-2 ulp of the correctly rounded double result)
 * and not glibc's: on a GPU those results are within a stated tolerance of the CPU
 * (spec/c/test_gpu_math*.c), host-emulated they are the CPU's bits.
 *
 * Conventions are kl_cuda.h's: device pointers, a stream (NULL: the default one), KL_OK once
 * queued, KL_EDEVICE when a launch fails; n == 0 launches nothing. dt is KL_FLOAT32,
 * KL_FLOAT64 or KL_INT64 where the CPU op allows it (the callers, gpu/dev_ops_math.c, run
 * after the registry's inference, which refuses the rest; the launchers check again). */
#ifndef KL_CUDA_MATH_H
#define KL_CUDA_MATH_H
#include <stddef.h>
#include <stdint.h>

#include "kl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ elementwise */

/* out = a op b with numpy broadcasting (a: and dims ashape, b: bnd dims bshape; out has the
 * broadcast shape's numel, row-major); op ADD, SUB, MUL, DIV (float only), MINIMUM, MAXIMUM
 * (a NaN operand wins, as numpy). The shapes must broadcast (KL_ESHAPE otherwise). */
kl_status kl_cuda_math_binary(kl_op op, kl_dtype dt, const void *a, int and_,
                              const int64_t *ashape, const void *b, int bnd,
                              const int64_t *bshape, void *out, kl_cuda_stream s);
/* out[i] = c op d[i] (side 0) or d[i] op c (side 1) for i < n, with c = 0 of dtype dt: the
 * implicit zeros of a sparse operand against a dense one. */
kl_status kl_cuda_math_binary_zero(kl_op op, kl_dtype dt, int side, const void *d, void *out,
                                   int64_t n, kl_cuda_stream s);
/* out[i] = op(x[i]) for the unary ops NEG, SQUARE, ABS, RELU (float or int64), SQRT, EXP,
 * LOG, SIGMOID, TANH (float, through double as the CPU). x == out is allowed. */
kl_status kl_cuda_math_unary(kl_op op, kl_dtype dt, const void *x, void *out, int64_t n,
                             kl_cuda_stream s);
/* out[i] = x[i] op scalar for ADD_SCALAR, MUL_SCALAR, RSUB_SCALAR, MINIMUM_SCALAR,
 * MAXIMUM_SCALAR (float or int64: the scalar cast to dt), DIV_SCALAR, RDIV_SCALAR,
 * POW_SCALAR (float: pow((double)x, scalar)). x == out is allowed. */
kl_status kl_cuda_math_scalar(kl_op op, kl_dtype dt, const void *x, double scalar, void *out,
                              int64_t n, kl_cuda_stream s);

/* The gradient of a unary op (float): out[i] = g[i] * f'(x[i]) with f' written through x
 * and the forward's output o (ops_unary.c's unary_backward). */
kl_status kl_cuda_math_unary_grad(kl_op op, kl_dtype dt, const void *x, const void *o,
                                  const void *g, void *out, int64_t n, kl_cuda_stream s);
/* The gradient of MINIMUM_SCALAR, MAXIMUM_SCALAR, POW_SCALAR, RDIV_SCALAR in double
 * (ops_scalar.c's scalar_backward), float only. */
kl_status kl_cuda_math_scalar_grad(kl_op op, kl_dtype dt, const void *x, const void *g,
                                   double scalar, void *out, int64_t n, kl_cuda_stream s);
/* minimum / maximum's gradient before the broadcast reduction: out[k] = g[k] where the
 * gradient goes to input i (d = a - b: d <= 0 for minimum, d >= 0 for maximum sends it to
 * input 0), else 0. d and out may be the same buffer. */
kl_status kl_cuda_math_minmax_select(kl_op op, kl_dtype dt, int i, const void *d,
                                     const void *g, void *out, int64_t n, kl_cuda_stream s);
/* out (rnd dims rshape) = t (tnd dims tshape) summed over the axes rshape broadcasts along,
 * each output from +0 in increasing position of t (ops_ew.c's kl_ew_sum_to_shape). */
kl_status kl_cuda_math_sum_to_shape(kl_dtype dt, const void *t, int tnd, const int64_t *tshape,
                                    void *out, int rnd, const int64_t *rshape,
                                    kl_cuda_stream s);

/* ------------------------------------------------------------------ storage conversions */

/* Scatters a csr (rows x cols, indptr / indices / vals) into the zeroed dense out. */
kl_status kl_cuda_math_csr_scatter(kl_dtype dt, int64_t rows, int64_t cols, const int64_t *indptr,
                              const int64_t *indices, const void *vals, void *out,
                              kl_cuda_stream s);
/* Scatters a row_sparse's nnz stored rows of width w into the zeroed dense out. */
kl_status kl_cuda_math_rsp_scatter(kl_dtype dt, int64_t nnz, int64_t w, const int64_t *indices,
                              const void *vals, void *out, kl_cuda_stream s);
/* Dense -> csr / row_sparse (convert.c's rules: x != 0 is stored, NaN included, -0 not).
 * cnt[r] for r < rows: the nonzeros of row r (csr) or 1 when row r (width w) has any (rsp). */
kl_status kl_cuda_math_dense_count(kl_dtype dt, int rsp, const void *x, int64_t rows, int64_t w,
                              int64_t *cnt, kl_cuda_stream s);
/* After an exclusive scan of cnt into pos (rows + 1): csr: indices / vals at pos[r] (pos is
 * the csr's indptr); rsp: stored row pos[r] is row r when it has a nonzero. */
kl_status kl_cuda_math_dense_fill(kl_dtype dt, int rsp, const void *x, int64_t rows, int64_t w,
                             const int64_t *pos, int64_t *indices, void *vals,
                             kl_cuda_stream s);

/* ------------------------------------------------------------------ sparse elementwise */

/* csr op csr of the same shape (ADD, SUB, MUL, MINIMUM, MAXIMUM): the union of each row's
 * entries (the intersection for MUL), as ops_elemwise.c's csr_csr. count: cnt[r] = entries
 * of output row r; fill: after a scan of cnt into the output's indptr. */
kl_status kl_cuda_math_csr_merge_count(kl_op op, int64_t rows, const int64_t *aptr,
                                  const int64_t *aidx, const int64_t *bptr,
                                  const int64_t *bidx, int64_t *cnt, kl_cuda_stream s);
kl_status kl_cuda_math_csr_merge_fill(kl_op op, kl_dtype dt, int64_t rows, const int64_t *aptr,
                                 const int64_t *aidx, const void *av, const int64_t *bptr,
                                 const int64_t *bidx, const void *bv, const int64_t *rptr,
                                 int64_t *ridx, void *rv, kl_cuda_stream s);
/* rsp op rsp of the same shape: the union (intersection for MUL) of the stored rows.
 * flags: f[q] = 1 when B's stored row q is one of A's (nb entries); after an exclusive scan
 * of f into cb (nb + 1), the output has na + nb - cb[nb] rows (cb[nb] for MUL). src: the
 * output's src[2k], src[2k+1] = A's and B's stored positions of output row k (-1: absent).
 * fill: rows and values of the n output rows of width w. */
kl_status kl_cuda_math_rsp_merge_flags(int64_t na, const int64_t *aidx, int64_t nb,
                                  const int64_t *bidx, int64_t *f, kl_cuda_stream s);
kl_status kl_cuda_math_rsp_merge_src(kl_op op, int64_t na, const int64_t *aidx, int64_t nb,
                                const int64_t *bidx, const int64_t *cb, int64_t *src,
                                kl_cuda_stream s);
kl_status kl_cuda_math_rsp_merge_fill(kl_op op, kl_dtype dt, int64_t n, int64_t w,
                                 const int64_t *src, const int64_t *aidx, const void *av,
                                 const int64_t *bidx, const void *bv, int64_t *ridx, void *rv,
                                 kl_cuda_stream s);
/* The stored entries of a sparse operand S (csr: rows x w with indptr; rsp: nnz rows of
 * width w) redone against the dense D of the same shape: out[k] = S op D[k] (side 0) or
 * D[k] op S (side 1) at each stored position k (ops_elemwise.c's sparse_dense, after
 * kl_cuda_math_binary_zero filled the rest). */
kl_status kl_cuda_math_sparse_dense_apply(kl_op op, kl_dtype dt, int side, int csr, int64_t rows,
                                     int64_t w, const int64_t *indptr, const int64_t *indices,
                                     int64_t nnz, const void *sv, const void *d, void *out,
                                     kl_cuda_stream s);

/* ------------------------------------------------------------------ reductions */

/* y[o * inner + i] = (T)(scale * sum_k x[(o * n + k) * inner + i]), each sum in double
 * from 0 in k order (ops_reduce.c's reduce_block): one thread per output. */
kl_status kl_cuda_math_reduce(kl_dtype dt, const void *x, int64_t outer, int64_t n, int64_t inner,
                         double scale, void *y, kl_cuda_stream s);
/* y[r] = (T)(scale * sum of csr row r's values) in double, in storage order. */
kl_status kl_cuda_math_reduce_csr_rows(kl_dtype dt, int64_t rows, const int64_t *indptr,
                                  const void *vals, double scale, void *y, kl_cuda_stream s);
/* Each of a row_sparse's nnz stored rows (width w = outer * n * inner) reduced over its n
 * axis into row idx[r] of y (width outer * inner; y zeroed before for the absent rows). */
kl_status kl_cuda_math_reduce_rsp_rows(kl_dtype dt, int64_t nnz, const int64_t *idx,
                                  const void *vals, int64_t outer, int64_t n, int64_t inner,
                                  double scale, void *y, kl_cuda_stream s);
/* y (outer, n, inner) = (T)(g[o * inner + i] * scale): sum / mean's gradient. */
kl_status kl_cuda_math_reduce_grad(kl_dtype dt, const void *g, int64_t outer, int64_t n,
                              int64_t inner, double scale, void *y, kl_cuda_stream s);
/* out[i] = v for i < n (a fill of dtype dt with the double v cast). */
kl_status kl_cuda_math_fill(kl_dtype dt, void *out, int64_t n, double v, kl_cuda_stream s);

/* ------------------------------------------------------------------ softmax, argmax */

/* Softmax of rows rows of last values (ops_unary.c's SOFTMAX_ROW): max, sum of exp(x - m)
 * and the quotients in double, one thread a row. */
kl_status kl_cuda_math_softmax(kl_dtype dt, const void *x, int64_t rows, int64_t last, void *out,
                          kl_cuda_stream s);
/* Softmax of a csr (rows x last) without densifying: a row's missing entries share one
 * value (ops_unary.c's softmax_sparse). */
kl_status kl_cuda_math_softmax_csr(kl_dtype dt, int64_t rows, int64_t last, const int64_t *indptr,
                              const int64_t *indices, const void *vals, void *out,
                              kl_cuda_stream s);
/* Softmax of a row_sparse (ndim >= 2, numel total): absent rows uniform (1 / last), each
 * stored row's segments of last values as the dense softmax. */
kl_status kl_cuda_math_softmax_rsp(kl_dtype dt, int64_t total, int64_t last, int64_t nnz, int64_t w,
                              const int64_t *indices, const void *vals, void *out,
                              kl_cuda_stream s);
/* out = o * (g - sum(g * o)) along rows of last values (the sum in double, in order). */
kl_status kl_cuda_math_softmax_grad(kl_dtype dt, const void *o, const void *g, int64_t rows,
                               int64_t last, void *out, kl_cuda_stream s);
/* out[o * inner + i] (int64) = 1 + the first position of the largest value along len
 * (NaN the largest, numpy), for x (outer, len, inner) of dtype dt; len >= 1. */
kl_status kl_cuda_math_argmax(kl_dtype dt, const void *x, int64_t outer, int64_t len, int64_t inner,
                         int64_t *out, kl_cuda_stream s);

/* ------------------------------------------------------------------ index ops */

/* one_hot: ids (n values of dtype ids_dt) -> out (n, C) float32, zeroed before: id k in
 * 1..C sets out[p, k - 1]; 0 a zero row. *bad (device int64) gets the smallest position of
 * an id that is not an integer in [0, C] (n when all are good); nothing is written for it. */
kl_status kl_cuda_math_one_hot(kl_dtype ids_dt, const void *ids, int64_t n, int64_t C, float *out,
                          int64_t *bad, kl_cuda_stream s);
/* The CPU's one_hot message for the bad id at (0-based) position p whose value (dtype
 * ids_dt) is at host address id. Returns KL_EINDEX. */
kl_status kl_cuda_math_one_hot_error(kl_dtype ids_dt, const void *id, int64_t p, int64_t C);

/* Dense transpose (axes reversed) of x (nd dims shape, element size es: 4 or 8) into out. */
kl_status kl_cuda_math_transpose(size_t es, const void *x, int nd, const int64_t *shape, void *out,
                            kl_cuda_stream s);
/* Bytes of scratch kl_cuda_math_csr_transpose needs for nnz entries. */
size_t kl_cuda_math_csr_transpose_scratch(int64_t nnz);
/* csr (rows x cols) -> its transpose (cols x rows) as csr, each output row in increasing
 * input row (the CPU's order): a stable sort of the entries by column. rptr has cols + 1
 * slots; ridx / rv nnz. */
kl_status kl_cuda_math_csr_transpose(size_t es, int64_t rows, int64_t cols, int64_t nnz,
                                const int64_t *indptr, const int64_t *indices, const void *vals,
                                int64_t *rptr, int64_t *ridx, void *rv, void *scratch,
                                kl_cuda_stream s);

/* dst[o * drow + doff + j] = src[o * srow + soff + j] for o < outer, j < c (element size es):
 * a slab of a concatenation, in either direction. */
kl_status kl_cuda_math_copy_block(size_t es, const void *src, int64_t srow, int64_t soff, void *dst,
                             int64_t drow, int64_t doff, int64_t outer, int64_t c,
                             kl_cuda_stream s);
/* dst[i] = src[i] + add for i < n (int64: shifted index or pointer arrays). */
kl_status kl_cuda_math_i64_shift(const int64_t *src, int64_t add, int64_t *dst, int64_t n,
                            kl_cuda_stream s);
/* cnt[r] += indptr[r + 1] - indptr[r] for r < rows. */
kl_status kl_cuda_math_csr_rowlen_add(const int64_t *indptr, int64_t rows, int64_t *cnt,
                                 kl_cuda_stream s);
/* A part of a csr concatenation along axis 1: row r's entries go to at[r]..., columns
 * shifted by c0; at[r] advances past them. */
kl_status kl_cuda_math_csr_concat1_part(size_t es, int64_t rows, const int64_t *indptr,
                                   const int64_t *indices, const void *vals, int64_t c0,
                                   int64_t *at, int64_t *ridx, void *rv, kl_cuda_stream s);

/* retain's checks: *bad = the first position k < m whose row req[k] is outside [0, nrows)
 * (m when none). */
kl_status kl_cuda_math_rows_check(const int64_t *req, int64_t m, int64_t nrows, int64_t *bad,
                             kl_cuda_stream s);
/* keep[p] = 1 when stored row idx[p] (p < nnz) is among the sorted requested rows
 * sreq[0..m). */
kl_status kl_cuda_math_rows_member(const int64_t *idx, int64_t nnz, const int64_t *sreq, int64_t m,
                              int64_t *keep, kl_cuda_stream s);
/* After an exclusive scan of keep into pos: the kept stored rows (width w) into ridx / rv. */
kl_status kl_cuda_math_rows_compact(kl_dtype dt, int64_t nnz, int64_t w, const int64_t *keep,
                               const int64_t *pos, const int64_t *idx, const void *vals,
                               int64_t *ridx, void *rv, kl_cuda_stream s);
/* out[row * w + j] = g[row * w + j] for the rows rows[0..n) (out zeroed before): retain's
 * gradient. */
kl_status kl_cuda_math_rows_take(kl_dtype dt, const int64_t *rows, int64_t n, int64_t w,
                            const void *g, void *out, kl_cuda_stream s);
/* out[i] = i for i < n (int64). */
kl_status kl_cuda_math_iota(int64_t *out, int64_t n, kl_cuda_stream s);

#ifdef __cplusplus
}
#endif
#endif /* KL_CUDA_MATH_H */
