/* ops_dot_internal.h: what the dot op's files share. ops_dot.c: inference, the dense (BLAS)
 * kernel, the kernel chooser (one table: which kernel serves which inputs, tried in order)
 * and the backward; ops_dot_csr.c: csr . dense / row_sparse (gathers) and dense . csr;
 * ops_dot_csrT.c: csr^T . dense / row_sparse (the direct and column-map accumulators of a
 * plan step, the sorted path) and the plan's fused accumulators; ops_dot_supports.h: the
 * chooser's stype predicates, which the CUDA device's table (gpu/dev_ops_dot.c) uses too. */
#ifndef KL_OPS_DOT_INTERNAL_H
#define KL_OPS_DOT_INTERNAL_H
#include <stdint.h>

#include "ops_internal.h"
#include "tensor_internal.h"

/* A dot as matrices: op(A) is M x K, op(B) is K x N. A is stored ar x ac row-major (an N-d
 * a is flattened to (prod of leading dims) x last dim; a 1-d a is 1 x K), B is stored
 * br x bc (a 1-d b is K x 1). Transposes of 1-d operands are no-ops, as in numpy. */
typedef struct dot_view {
  int64_t M, K, N, ar, ac, br, bc;
  int ta, tb;
} dot_view;

/* Validates a dot of these tensors; its view and output meta (ops_dot.c). */
kl_status kl_dot_view_of(kl_tensor *const *in, const kl_attrs *at, dot_view *v, kl_meta *om);

/* Rows of B are prefetched this many entries ahead: the gather is bound by memory latency. */
#define KL_PF 8
/* N == 1 does one multiply-add per entry, so it looks further ahead. */
#define KL_PF1 16
/* The accumulator's column map is read this many entries ahead (a few instructions an
 * entry: an L3 hit needs ~50 entries of lead). */
#define KL_PFMAP 64
/* ... and only for a vector larger than this (a smaller one stays in L2). */
#define KL_PF_MIN_BYTES ((size_t)256 << 10)

/* First position p in sorted a[lo..hi) with a[p] >= v. */
static inline int64_t lower_bound(const int64_t *a, int64_t lo, int64_t hi, int64_t v) {
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* The kernels of the chooser's table (ops_dot.c), each a kl_kernel_fn. */
/* csr . dense or row_sparse -> dense (ops_dot_csr.c) */
kl_status kl_dot_csr_x(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out);
/* dense . csr -> dense (ops_dot_csr.c) */
kl_status kl_dot_dense_csr(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out);
/* csr^T . b -> row_sparse: inside a plan step (a current pool, whose kept buffers hold the
 * column map and accumulator), by the direct accumulator when the csr's columns times N fit
 * (kl_dot_csrT_direct_applies), else by the column map (kl_dot_csrT_spa_applies); the sorted
 * path otherwise and when the pool cannot give its buffers (ops_dot_csrT.c). Each is the
 * same sums in the same order: the same bits. */
int kl_dot_csrT_direct_applies(kl_tensor *const *in, const kl_attrs *at);
int kl_dot_csrT_spa_applies(kl_tensor *const *in, const kl_attrs *at);
kl_status kl_dot_csrT_direct(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out);
kl_status kl_dot_csrT_spa(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out);
kl_status kl_dot_csrT_sorted(kl_tensor *const *in, int nin, const kl_attrs *at,
                             kl_tensor **out);
#endif
