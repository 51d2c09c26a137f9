/* ops_ew.h: helpers shared by the elementwise op files (ops_elemwise.c, ops_scalar.c,
 * ops_unary.c, ops_misc.c). Internal to the backend. */
#ifndef KL_OPS_EW_H
#define KL_OPS_EW_H
#include "ops_internal.h"
#include "tensor_internal.h"

/* Loops longer than this run under OpenMP (static partitions). */
#define KL_EW_PAR 32768

/* `#pragma omp parallel for schedule(static) if (cond)` usable inside macro arguments
 * (KL_DISPATCH bodies), where #pragma cannot appear. */
#define KL_EW_STR_(x) #x
#define KL_EW_STR(x) KL_EW_STR_(x)
#define KL_OMP_FOR(cond) _Pragma(KL_EW_STR(omp parallel for schedule(static) if (cond)))

/* The broadcast (numpy) shape of two shapes into out; KL_ESHAPE naming fn when they do not
 * broadcast: "add: shapes (2 x 3) and (4 x 3) are not broadcastable". */
kl_status kl_ew_broadcast_shape(const char *fn, int na, const int64_t *sa, int nb,
                                const int64_t *sb, int *nout, int64_t *sout);

/* out = a op b for dense a, b of one dtype with numpy broadcasting; op is KL_OP_ADD, SUB,
 * MUL or DIV. *out new (dense). No dtype checks (the caller's infer did them). */
kl_status kl_ew_binary_dense(kl_op op, const kl_tensor *a, const kl_tensor *b, kl_tensor **out);

/* A dense view of t: t itself retained when dense, else a new densified copy. */
kl_status kl_ew_densify(const kl_tensor *t, kl_tensor **out);

/* Sums dense t (shaped like a broadcast result) down to shape (the shape of an operand
 * that was broadcast): the gradient reduction over broadcast axes. *out new, dense. */
kl_status kl_ew_sum_to_shape(const kl_tensor *t, int ndim, const int64_t *shape,
                             kl_tensor **out);

/* A new tensor with t's stype, shape, dtype and sparsity structure (indptr, indices
 * copied; values uninitialised). */
kl_status kl_ew_like(const kl_tensor *t, kl_tensor **out);

/* Number of stored values of t (dense: numel; csr: nnz; row_sparse: nnz * row width). */
int64_t kl_ew_nvals(const kl_tensor *t);

/* Checks a backward call's operand dtype is float: "<fn>: gradient needs float32 or
 * float64, got int64". */
kl_status kl_ew_grad_dtype(const char *fn, kl_dtype d);

/* A value map: dst[k] = f(src[k]) for k < n, values of dtype dt; s is the op's scalar
 * attribute (unused by unary ops). Serial: kl_ew_map_run splits the work. */
typedef void (*kl_ew_map_fn)(kl_op op, double s, kl_dtype dt, int64_t n, const void *src,
                             void *dst);

/* Applies f to every value of x. dense_result == 0: the result keeps x's stype and
 * structure (f applied to the stored values). dense_result == 1: a dense result where the
 * positions x does not store hold f(0). *out new. */
kl_status kl_ew_map_run(kl_op op, double s, kl_ew_map_fn f, const kl_tensor *x,
                        int dense_result, kl_tensor **out);

#endif
