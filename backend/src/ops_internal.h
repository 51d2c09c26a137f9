/* ops_internal.h: the op registry's contract between registry.c and the op family files. */
#ifndef KL_OPS_INTERNAL_H
#define KL_OPS_INTERNAL_H
#include "kl/device.h"
#include "kl/kl.h"

/* A sparse kernel for some input stypes of an op: kl_kernel_entry (kl/device.h). */

/* One op: inference (which validates), the dense kernel (all inputs dense; required),
 * the sparse kernels (terminated by an entry with fn == NULL; may be NULL) and the
 * backward (NULL when the op has no gradient). */
typedef struct kl_op_def {
  const char *name;
  int min_in, max_in;
  kl_infer_fn infer;
  kl_kernel_fn dense;
  const kl_kernel_entry *kernels;
  kl_backward_fn backward;
} kl_op_def;

/* Defined by the op family files; registry.c maps kl_op -> def. */
extern const kl_op_def kl_opdef_dot;          /* ops_dot.c */
extern const kl_op_def kl_opdef_sum;          /* ops_reduce.c */
extern const kl_op_def kl_opdef_mean;         /* ops_reduce.c */
extern const kl_op_def kl_opdef_concat;       /* ops_concat.c */
extern const kl_op_def kl_opdef_add;          /* ops_elemwise.c */
extern const kl_op_def kl_opdef_sub;
extern const kl_op_def kl_opdef_mul;
extern const kl_op_def kl_opdef_div;
extern const kl_op_def kl_opdef_add_scalar;
extern const kl_op_def kl_opdef_mul_scalar;
extern const kl_op_def kl_opdef_div_scalar;
extern const kl_op_def kl_opdef_rsub_scalar;
extern const kl_op_def kl_opdef_rdiv_scalar;
extern const kl_op_def kl_opdef_neg;          /* ops_unary.c */
extern const kl_op_def kl_opdef_square;
extern const kl_op_def kl_opdef_sqrt;
extern const kl_op_def kl_opdef_abs;
extern const kl_op_def kl_opdef_relu;
extern const kl_op_def kl_opdef_exp;
extern const kl_op_def kl_opdef_log;
extern const kl_op_def kl_opdef_sigmoid;
extern const kl_op_def kl_opdef_tanh;
extern const kl_op_def kl_opdef_softmax;
extern const kl_op_def kl_opdef_transpose;    /* ops_misc.c */
extern const kl_op_def kl_opdef_retain;       /* ops_misc.c */
extern const kl_op_def kl_opdef_minimum;      /* ops_elemwise.c */
extern const kl_op_def kl_opdef_maximum;
extern const kl_op_def kl_opdef_minimum_scalar; /* ops_scalar.c */
extern const kl_op_def kl_opdef_maximum_scalar;
extern const kl_op_def kl_opdef_pow_scalar;
extern const kl_op_def kl_opdef_argmax;       /* ops_index.c */
extern const kl_op_def kl_opdef_one_hot;
extern const kl_op_def kl_opdef_bias_add;     /* layers/bias_add.c */
extern const kl_op_def kl_opdef_embedding;    /* layers/embedding.c */
extern const kl_op_def kl_opdef_masked_mean;  /* layers/pooling.c */
extern const kl_op_def kl_opdef_global_max_pool;
extern const kl_op_def kl_opdef_reg_terms;    /* layers/regularizer.c */
/* The plan's fusion of Embedding and a mean over its ids' axis (GlobalAveragePooling1D), as
 * PyTorch's EmbeddingBag(mode="mean"): the (n, D) mean of each sample's rows straight from
 * (n, L) ids and a dense (V, D) weight, without the (n, L, D) output, and the weight's
 * gradient (row_sparse over the unique ids, or dense, by want) from the mean's (n, D)
 * gradient. The same bits as embedding then mean and their backwards (the same sums in the
 * same order, the same roundings), and the same errors for bad ids. a: the Embedding node's
 * attrs. applies: whether these tensors take it. masked: the mean over the ids that are not
 * 0 (masked_mean: Embedding{mask_zero}), 0 for a sample of padding only; else over all L.
 * (layers/embedding.c) */
int kl_embedding_mean_applies(const kl_tensor *ids, const kl_tensor *w);
kl_status kl_embedding_mean(const kl_tensor *ids, const kl_tensor *w, const kl_attrs *a,
                            int masked, kl_tensor **out);
kl_status kl_embedding_mean_backward(const kl_tensor *ids, const kl_tensor *w,
                                     const kl_attrs *a, int masked, const kl_tensor *gout,
                                     kl_stype want, kl_tensor **gin);
extern const kl_op_def kl_opdef_loss_mse;     /* layers/losses.c */
extern const kl_op_def kl_opdef_loss_mae;
extern const kl_op_def kl_opdef_loss_bce;
extern const kl_op_def kl_opdef_loss_cce;
extern const kl_op_def kl_opdef_loss_scce;
extern const kl_op_def kl_opdef_loss_hinge;
extern const kl_op_def kl_opdef_loss_squared_hinge;
extern const kl_op_def kl_opdef_loss_poisson;
extern const kl_op_def kl_opdef_loss_huber;

/* Kernel predicate of the one-input ops whose sparse kernel is their own run function:
 * the input is csr or row_sparse. */
static inline int kl_sup_first_sparse(kl_tensor *const *in, int nin, const kl_attrs *a) {
  (void)nin;
  (void)a;
  return in[0]->stype != KL_STYPE_DEFAULT;
}

/* Defines P##_kernels (P##_run as the one "sparse" kernel) and kl_opdef_##P (one input) for
 * an op whose P##_infer, P##_run and P##_backward are defined before it (ops_scalar.c,
 * ops_unary.c). */
#define KL_OPDEF_SPARSE_RUN(P, NAME)                                                        \
  static const kl_kernel_entry P##_kernels[] = {{"sparse", kl_sup_first_sparse, P##_run},  \
                                                {NULL, NULL, NULL}};                       \
  const kl_op_def kl_opdef_##P = {NAME, 1, 1, P##_infer, P##_run, P##_kernels, P##_backward};

/* The direct accumulator of csr^T . G (ops_dot.c), for the plan's fused step: whether a
 * csr with C columns and nnz entries and an N-wide G of dtype dt takes it, and the pass
 * itself: for each entry (i, c, value) of a, acc[c * N ..] += value * G[i, ..] in entry
 * order and flag[c] = 1 (acc: C x N values of dt, all zero on entry; G dense, R x N). */
int kl_dot_direct_fits(int64_t C, int64_t nnz, int64_t N, kl_dtype dt);
void kl_dot_csrT_direct_acc(const kl_tensor *a, const kl_tensor *g, int64_t N, uint32_t *flag,
                            void *acc);

/* The listed accumulator of csr^T . G (ops_dot.c), for the plan's listed fused step:
 * whether a csr with C columns and nnz entries and an N-wide G take it (not the direct one;
 * C x N values of at most 4 MiB), and the pass itself: the column map's slots as
 * dot_csrT_spa makes them, without the sort: *list (*nrows columns, in first-touch order)
 * and *rows (the (nnz + 1) x N values allocated; row s + 1 is column (*list)[s]'s sum, in
 * entry order from +0, the sorted path's bits); the kept map is left zero. Both buffers are
 * the caller's (kl_free). KL_ENOMEM leaves nothing allocated. */
int kl_dot_listed_fits(int64_t C, int64_t nnz, int64_t N, kl_dtype dt);
kl_status kl_dot_csrT_listed(const kl_tensor *a, const kl_tensor *g, int64_t N, int64_t **list,
                             void **rows, int64_t *nrows);

/* Helpers shared by kernels (tensor.c). */
static inline int kl_is_float(kl_dtype d) { return d == KL_FLOAT32 || d == KL_FLOAT64; }

#endif
