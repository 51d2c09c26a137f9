/* ops_dot_supports.h: which stype combination of a dot a sparse kernel takes: the supports()
 * predicates of the dot's kernel tables, the CPU's (ops_dot.c) and the CUDA device's
 * (gpu/dev_ops_dot.c), so that both choose by the same rules.
 *
 * static inline and on the public types only (kl/kl.h): keras/cuda.so does not link the
 * core's symbols (it reaches the core through the kl_capi table), so the device includes
 * this header rather than calling ops_dot.c; on the CPU each is the same function as before
 * (the table takes its address; sup_csrT_direct / spa inline it). */
#ifndef KL_OPS_DOT_SUPPORTS_H
#define KL_OPS_DOT_SUPPORTS_H
#include "kl/kl.h"

/* 2-d of stype s. */
static inline int kl_dot_is2d(const kl_tensor *t, kl_stype s) {
  return t->stype == s && t->ndim == 2;
}
/* 1-d or 2-d of stype s (a 1-d operand is a K x 1 or 1 x K matrix). */
static inline int kl_dot_is12d(const kl_tensor *t, kl_stype s) {
  return t->stype == s && (t->ndim == 1 || t->ndim == 2);
}

/* csr . dense (1-d or 2-d), neither transposed. */
static inline int kl_dot_sup_csr_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && kl_dot_is12d(in[1], KL_STYPE_DEFAULT) &&
         !a->transpose_a && !(a->transpose_b && in[1]->ndim == 2);
}
/* csr . row_sparse (1-d or 2-d), neither transposed. */
static inline int kl_dot_sup_csr_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && kl_dot_is12d(in[1], KL_STYPE_ROW_SPARSE) &&
         !a->transpose_a && !(a->transpose_b && in[1]->ndim == 2);
}
/* csr^T . dense (2-d), b not transposed. */
static inline int kl_dot_sup_csrT_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && kl_dot_is2d(in[1], KL_STYPE_DEFAULT) &&
         a->transpose_a && !a->transpose_b;
}
/* csr^T . row_sparse (2-d), b not transposed. */
static inline int kl_dot_sup_csrT_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && in[0]->stype == KL_STYPE_CSR && kl_dot_is2d(in[1], KL_STYPE_ROW_SPARSE) &&
         a->transpose_a && !a->transpose_b;
}
/* dense (1-d or 2-d, transposed or not) . csr, b not transposed. */
static inline int kl_dot_sup_dense_csr(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 2 && kl_dot_is12d(in[0], KL_STYPE_DEFAULT) && in[1]->stype == KL_STYPE_CSR &&
         !a->transpose_b;
}
#endif
