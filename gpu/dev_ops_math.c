/* dev_ops_math.c: the CUDA table's elementwise math ops (kl_cuda_opdef_<op>, dev_ops.c):
 * add, subtract, multiply, divide, minimum, maximum (numpy broadcasting; csr op csr,
 * rsp op rsp, sparse op dense merges; any other stype mix densified on the device, as the
 * CPU's registry fallback does), the scalar ops, the unary ops and softmax, with their
 * backwards; and the helpers the math files share (dev_ops_math.h).
 *
 * Each kernel entry takes device tensors after the registry's inference (which has checked
 * dtypes and shapes), makes its result with the stype inference gives, and queues its
 * launches on the device's stream (gpu/k_math*.cu, kl_cuda_math.h); it waits only where it
 * must know a size on the host (a sparse result's nnz). Every stype combination of these
 * ops runs on the device: supports() orders the specialised kernels before the general one,
 * as the CPU's registry does. The results are the CPU's bits except where the device's exp,
 * log, tanh or pow enter (kl_cuda_math.h). */
#include <math.h>
#include <string.h>

#include "dev_backend.h"
#include "dev_ops_math.h"

/* ------------------------------------------------------------------ shared helpers */

int64_t kl_cdm_numel(int nd, const int64_t *shape) {
  int64_t n = 1;
  for (int k = 0; k < nd; k++) n *= shape[k];
  return n;
}

int64_t kl_cdm_nvals(const kl_tensor *t) {
  if (t->stype == KL_STYPE_DEFAULT) return kl_cdm_numel(t->ndim, t->shape);
  if (t->stype == KL_STYPE_CSR) return t->nnz;
  return t->nnz * kl_cdm_numel(t->ndim - 1, t->shape + 1);
}

int kl_cdm_same_shape(const kl_tensor *a, const kl_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int k = 0; k < a->ndim; k++)
    if (a->shape[k] != b->shape[k]) return 0;
  return 1;
}

const char *kl_cdm_op_name(kl_op op) {
  const char *n = kl_cuda_op_name(op);
  return n ? n : "op";
}

kl_status kl_cdm_grad_dtype(const char *fn, kl_dtype dt) {
  if (dt == KL_FLOAT32 || dt == KL_FLOAT64) return KL_OK;
  return kl_cuda_seterr(KL_EDTYPE, "%s: gradient needs float32 or float64, got %s", fn,
                        kl_cuda_dtype_name(dt));
}

kl_status kl_cdm_dense(kl_device d, kl_dtype dt, int nd, const int64_t *shape, int zero,
                       kl_tensor **out) {
  return kl_cuda_capi->tensor_new_dense_on(d, dt, nd, shape, zero, out);
}

void kl_cdm_release(kl_tensor *t) {
  if (t) kl_cuda_capi->tensor_release(t);
}

kl_status kl_cdm_scratch(kl_device d, size_t bytes, void **p) {
  *p = NULL;
  return bytes ? kl_cuda_dev_alloc(d, bytes, p) : KL_OK;
}

void kl_cdm_free(kl_device d, void *p) {
  if (p) kl_cuda_dev_free(d, p);
}

kl_status kl_cdm_scan(kl_device d, const int64_t *in, int64_t *out, int64_t n) {
  void *sc = NULL;
  KL_TRY(kl_cdm_scratch(d, kl_cuda_scan_scratch(n), &sc));
  kl_status st = kl_cuda_scan_i64(in, out, n, sc, kl_cuda_dev_stream(d));
  kl_cdm_free(d, sc); /* reused only by work queued after the scan */
  return st;
}

kl_status kl_cdm_read_i64(kl_device d, const int64_t *src, int64_t *v) {
  return kl_cuda_dev_read(d, v, src, sizeof *v);
}

kl_status kl_cdm_like(const kl_tensor *t, kl_tensor **out) {
  const kl_device d = t->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  kl_tensor *r = NULL;
  kl_status st;
  *out = NULL;
  if (t->stype == KL_STYPE_DEFAULT) return kl_cdm_dense(d, t->dtype, t->ndim, t->shape, 0, out);
  if (t->stype == KL_STYPE_CSR) {
    st = kl_cuda_capi->tensor_new_csr_on(d, t->dtype, t->shape[0], t->shape[1], t->nnz, &r);
    if (st == KL_OK)
      st = kl_cuda_math_copy_block(8, t->indptr, 0, 0, r->indptr, 0, 0, 1, t->shape[0] + 1, s);
  } else {
    st = kl_cuda_capi->tensor_new_rsp_on(d, t->dtype, t->ndim, t->shape, t->nnz, &r);
  }
  if (st == KL_OK)
    st = kl_cuda_math_copy_block(8, t->indices, 0, 0, r->indices, 0, 0, 1, t->nnz, s);
  return kl_cdo_finish(st, r, out);
}

kl_status kl_cdm_densify(const kl_tensor *t, kl_tensor **out) {
  const kl_cuda_stream s = kl_cuda_dev_stream(t->device);
  kl_tensor *r = NULL;
  *out = NULL;
  if (t->stype == KL_STYPE_DEFAULT) {
    *out = kl_cuda_capi->tensor_retain((kl_tensor *)t);
    return KL_OK;
  }
  KL_TRY(kl_cdm_dense(t->device, t->dtype, t->ndim, t->shape, 1, &r));
  kl_status st;
  if (t->stype == KL_STYPE_CSR)
    st = kl_cuda_math_csr_scatter(t->dtype, t->shape[0], t->shape[1], t->indptr, t->indices,
                                  t->data, r->data, s);
  else
    st = kl_cuda_math_rsp_scatter(t->dtype, t->nnz, kl_cdm_numel(t->ndim - 1, t->shape + 1),
                                  t->indices, t->data, r->data, s);
  return kl_cdo_finish(st, r, out);
}

/* dense (2-d for csr, >= 1-d for row_sparse) -> s: count, scan, read the size, fill. */
static kl_status from_dense(const kl_tensor *t, kl_stype s, kl_tensor **out) {
  const kl_device d = t->device;
  const kl_cuda_stream q = kl_cuda_dev_stream(d);
  const int rsp = s == KL_STYPE_ROW_SPARSE;
  const int64_t rows = t->shape[0], w = kl_cdm_numel(t->ndim - 1, t->shape + 1);
  int64_t *cnt = NULL, *pos = NULL, n = 0;
  kl_tensor *r = NULL;
  kl_status st = kl_cdm_scratch(d, (size_t)(rows + 1) * sizeof(int64_t), (void **)&cnt);
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(rows + 1) * sizeof(int64_t), (void **)&pos);
  if (st == KL_OK) st = kl_cuda_math_dense_count(t->dtype, rsp, t->data, rows, w, cnt, q);
  if (st == KL_OK) st = kl_cdm_scan(d, cnt, pos, rows);
  if (st == KL_OK) st = kl_cdm_read_i64(d, pos + rows, &n);
  if (st == KL_OK) {
    if (rsp)
      st = kl_cuda_capi->tensor_new_rsp_on(d, t->dtype, t->ndim, t->shape, n, &r);
    else
      st = kl_cuda_capi->tensor_new_csr_on(d, t->dtype, rows, w, n, &r);
  }
  if (st == KL_OK && !rsp)
    st = kl_cuda_math_copy_block(8, pos, 0, 0, r->indptr, 0, 0, 1, rows + 1, q);
  if (st == KL_OK)
    st = kl_cuda_math_dense_fill(t->dtype, rsp, t->data, rows, w, pos, r->indices, r->data, q);
  kl_cdm_free(d, cnt);
  kl_cdm_free(d, pos);
  return kl_cdo_finish(st, r, out);
}

kl_status kl_cdm_convert(const kl_tensor *t, kl_stype s, kl_tensor **out) {
  *out = NULL;
  if (t->stype == s) {
    *out = kl_cuda_capi->tensor_retain((kl_tensor *)t);
    return KL_OK;
  }
  if ((s == KL_STYPE_CSR && t->ndim != 2) || (s == KL_STYPE_ROW_SPARSE && t->ndim < 1))
    return kl_cuda_seterr(KL_ESTYPE, "tostype: a %d-d tensor cannot be %s", t->ndim,
                          kl_cuda_capi->stype_name(s));
  kl_tensor *dn = NULL;
  KL_TRY(kl_cdm_densify(t, &dn));
  if (s == KL_STYPE_DEFAULT) {
    *out = dn;
    return KL_OK;
  }
  kl_status st = from_dense(dn, s, out);
  kl_cdm_release(dn);
  return st;
}

kl_status kl_cdm_to_want(kl_tensor **g, kl_stype want) {
  kl_tensor *c = NULL;
  if ((*g)->stype == want) return KL_OK;
  if ((want == KL_STYPE_CSR && (*g)->ndim != 2) || (want == KL_STYPE_ROW_SPARSE && (*g)->ndim < 1))
    return KL_OK; /* the registry's cast says what is wrong */
  KL_TRY(kl_cdm_convert(*g, want, &c));
  kl_cdm_release(*g);
  *g = c;
  return KL_OK;
}

/* ------------------------------------------------------------------ binary ops */

static int is_sparse(const kl_tensor *t) { return t->stype != KL_STYPE_DEFAULT; }

static int sup_csr_csr(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return in[0]->stype == KL_STYPE_CSR && in[1]->stype == KL_STYPE_CSR &&
         kl_cdm_same_shape(in[0], in[1]);
}
static int sup_rsp_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return in[0]->stype == KL_STYPE_ROW_SPARSE && in[1]->stype == KL_STYPE_ROW_SPARSE &&
         kl_cdm_same_shape(in[0], in[1]);
}
static int sup_sparse_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return is_sparse(in[0]) != is_sparse(in[1]) && kl_cdm_same_shape(in[0], in[1]);
}

/* The broadcast shape of a and b (inference has checked that they broadcast). */
static void bcast_shape(const kl_tensor *a, const kl_tensor *b, int *nd, int64_t *shape) {
  const int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int k = 0; k < n; k++) {
    const int ia = a->ndim - n + k, ib = b->ndim - n + k;
    const int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
    shape[k] = da == 1 ? db : da;
  }
  *nd = n;
}

/* dense a op b with broadcasting into a new dense tensor */
static kl_status dense_binary(kl_op op, const kl_tensor *a, const kl_tensor *b, kl_tensor **out) {
  int nd;
  int64_t shape[KL_MAX_NDIM];
  kl_tensor *r = NULL;
  bcast_shape(a, b, &nd, shape);
  KL_TRY(kl_cdm_dense(a->device, a->dtype, nd, shape, 0, &r));
  kl_status st = kl_cuda_math_binary(op, a->dtype, a->data, a->ndim, a->shape, b->data, b->ndim,
                                     b->shape, r->data, kl_cuda_dev_stream(a->device));
  return kl_cdo_finish(st, r, out);
}

/* Any stypes: the sparse operands densified (the CPU's registry fallback), the dense op,
 * the result cast to the inferred stype (csr op csr / rsp op rsp of equal rank, not divide:
 * that stype, with broadcasting). */
static kl_status bin_general(kl_op op, kl_tensor *const *in, kl_tensor **out) {
  kl_tensor *A = NULL, *B = NULL, *r = NULL;
  const int nd = in[0]->ndim > in[1]->ndim ? in[0]->ndim : in[1]->ndim;
  kl_stype os = KL_STYPE_DEFAULT;
  if (op != KL_OP_DIV && in[0]->stype == in[1]->stype && is_sparse(in[0]) && in[0]->ndim == nd)
    os = in[0]->stype;
  kl_status st = kl_cdm_densify(in[0], &A);
  if (st == KL_OK) st = kl_cdm_densify(in[1], &B);
  if (st == KL_OK) st = dense_binary(op, A, B, &r);
  kl_cdm_release(A);
  kl_cdm_release(B);
  if (st == KL_OK && os != KL_STYPE_DEFAULT) st = kl_cdm_to_want(&r, os);
  return kl_cdo_finish(st, r, out);
}

/* csr op csr, same shape: each row's union (intersection for multiply) */
static kl_status bin_csr_csr(kl_op op, kl_tensor *const *in, kl_tensor **out) {
  const kl_tensor *A = in[0], *B = in[1];
  const kl_device d = A->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const int64_t rows = A->shape[0];
  int64_t *cnt = NULL, *pos = NULL, nnz = 0;
  kl_tensor *r = NULL;
  kl_status st = kl_cdm_scratch(d, (size_t)(rows + 1) * sizeof(int64_t), (void **)&cnt);
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(rows + 1) * sizeof(int64_t), (void **)&pos);
  if (st == KL_OK)
    st = kl_cuda_math_csr_merge_count(op, rows, A->indptr, A->indices, B->indptr, B->indices, cnt,
                                      s);
  if (st == KL_OK) st = kl_cdm_scan(d, cnt, pos, rows);
  if (st == KL_OK) st = kl_cdm_read_i64(d, pos + rows, &nnz);
  if (st == KL_OK) st = kl_cuda_capi->tensor_new_csr_on(d, A->dtype, rows, A->shape[1], nnz, &r);
  if (st == KL_OK) st = kl_cuda_math_copy_block(8, pos, 0, 0, r->indptr, 0, 0, 1, rows + 1, s);
  if (st == KL_OK)
    st = kl_cuda_math_csr_merge_fill(op, A->dtype, rows, A->indptr, A->indices, A->data, B->indptr,
                                     B->indices, B->data, r->indptr, r->indices, r->data, s);
  kl_cdm_free(d, cnt);
  kl_cdm_free(d, pos);
  return kl_cdo_finish(st, r, out);
}

/* rsp op rsp, same shape: the union (intersection for multiply) of the stored rows */
static kl_status bin_rsp_rsp(kl_op op, kl_tensor *const *in, kl_tensor **out) {
  const kl_tensor *A = in[0], *B = in[1];
  const kl_device d = A->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const int64_t na = A->nnz, nb = B->nnz, w = kl_cdm_numel(A->ndim - 1, A->shape + 1);
  int64_t *f = NULL, *cb = NULL, *src = NULL, common = 0;
  kl_tensor *r = NULL;
  kl_status st = kl_cdm_scratch(d, (size_t)(nb + 1) * sizeof(int64_t), (void **)&f);
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(nb + 1) * sizeof(int64_t), (void **)&cb);
  if (st == KL_OK) st = kl_cuda_math_rsp_merge_flags(na, A->indices, nb, B->indices, f, s);
  if (st == KL_OK) st = kl_cdm_scan(d, f, cb, nb);
  if (st == KL_OK) st = kl_cdm_read_i64(d, cb + nb, &common);
  const int64_t n = op == KL_OP_MUL ? common : na + nb - common;
  if (st == KL_OK) st = kl_cdm_scratch(d, (size_t)(2 * n + 2) * sizeof(int64_t), (void **)&src);
  if (st == KL_OK) st = kl_cuda_math_rsp_merge_src(op, na, A->indices, nb, B->indices, cb, src, s);
  if (st == KL_OK) st = kl_cuda_capi->tensor_new_rsp_on(d, A->dtype, A->ndim, A->shape, n, &r);
  if (st == KL_OK)
    st = kl_cuda_math_rsp_merge_fill(op, A->dtype, n, w, src, A->indices, A->data, B->indices,
                                     B->data, r->indices, r->data, s);
  kl_cdm_free(d, f);
  kl_cdm_free(d, cb);
  kl_cdm_free(d, src);
  return kl_cdo_finish(st, r, out);
}

/* sparse op dense (either side), same shape -> dense: the implicit zeros everywhere, then
 * the stored entries redone (ops_elemwise.c's sparse_dense) */
static kl_status bin_sparse_dense(kl_op op, kl_tensor *const *in, kl_tensor **out) {
  const int sp = is_sparse(in[0]) ? 0 : 1;
  const kl_tensor *S = in[sp], *D = in[1 - sp];
  const kl_cuda_stream s = kl_cuda_dev_stream(D->device);
  const int csr = S->stype == KL_STYPE_CSR;
  kl_tensor *r = NULL;
  KL_TRY(kl_cdm_dense(D->device, D->dtype, D->ndim, D->shape, 0, &r));
  const int64_t n = kl_cdm_numel(D->ndim, D->shape);
  const int64_t w = csr ? S->shape[1] : kl_cdm_numel(S->ndim - 1, S->shape + 1);
  kl_status st = kl_cuda_math_binary_zero(op, D->dtype, sp, D->data, r->data, n, s);
  if (st == KL_OK)
    st = kl_cuda_math_sparse_dense_apply(op, D->dtype, sp, csr, csr ? S->shape[0] : S->nnz, w,
                                         S->indptr, S->indices, S->nnz, S->data, D->data, r->data,
                                         s);
  return kl_cdo_finish(st, r, out);
}

/* The gradient of a op b for input i: the CPU's bin_backward (ops_elemwise.c) on the
 * device: g, -g, g * other, g / b, -(g * ((a / b) / b)) or minimum / maximum's selection,
 * then summed over the axes input i was broadcast along. */
static kl_status bin_backward(kl_op op, kl_tensor *const *in, const kl_tensor *gout, int i,
                              kl_stype want, kl_tensor **gin) {
  const char *fn = kl_cdm_op_name(op);
  kl_tensor *A = NULL, *B = NULL, *G = NULL, *t1 = NULL, *t2 = NULL, *full = NULL, *r = NULL;
  const kl_device d = in[0]->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  kl_status st = kl_cdm_grad_dtype(fn, in[0]->dtype);
  if (st == KL_OK && (i < 0 || i > 1))
    st = kl_cuda_seterr(KL_EINVAL, "%s: backward: input %d out of range", fn, i + 1);
  if (st == KL_OK) st = kl_cdm_densify(in[0], &A);
  if (st == KL_OK) st = kl_cdm_densify(in[1], &B);
  if (st == KL_OK) st = kl_cdm_densify(gout, &G);
  if (st != KL_OK) goto done;
  int nd;
  int64_t shape[KL_MAX_NDIM];
  bcast_shape(A, B, &nd, shape);
  const int64_t n = kl_cdm_numel(nd, shape);
  if (G->dtype != A->dtype || kl_cdm_numel(G->ndim, G->shape) != n) {
    st = kl_cuda_seterr(KL_ESHAPE, "%s: backward: gout has %lld %s elements, expected %lld %s", fn,
                        (long long)kl_cdm_numel(G->ndim, G->shape), kl_cuda_dtype_name(G->dtype),
                        (long long)n, kl_cuda_dtype_name(A->dtype));
    goto done;
  }
  if (op == KL_OP_MINIMUM || op == KL_OP_MAXIMUM) {
    st = dense_binary(KL_OP_SUB, A, B, &full);
    if (st == KL_OK)
      st = kl_cuda_math_minmax_select(op, A->dtype, i, full->data, G->data, full->data, n, s);
  } else if (op == KL_OP_ADD || (op == KL_OP_SUB && i == 0)) {
    full = kl_cuda_capi->tensor_retain(G);
  } else if (op == KL_OP_SUB) {
    st = kl_cdm_dense(d, G->dtype, nd, shape, 0, &full);
    if (st == KL_OK) st = kl_cuda_math_unary(KL_OP_NEG, G->dtype, G->data, full->data, n, s);
  } else if (op == KL_OP_MUL) {
    st = dense_binary(KL_OP_MUL, G, i == 0 ? B : A, &full);
  } else if (i == 0) {
    st = dense_binary(KL_OP_DIV, G, B, &full);
  } else {
    st = dense_binary(KL_OP_DIV, A, B, &t1);
    if (st == KL_OK) st = dense_binary(KL_OP_DIV, t1, B, &t2);
    if (st == KL_OK) st = dense_binary(KL_OP_MUL, G, t2, &full);
    if (st == KL_OK) st = kl_cuda_math_unary(KL_OP_NEG, full->dtype, full->data, full->data, n, s);
  }
  if (st != KL_OK) goto done;
  /* full has G's data layout (the broadcast shape) */
  st = kl_cdm_dense(d, A->dtype, in[i]->ndim, in[i]->shape, 0, &r);
  if (st == KL_OK)
    st = kl_cuda_math_sum_to_shape(A->dtype, full->data, nd, shape, r->data, in[i]->ndim,
                                   in[i]->shape, s);
  if (st == KL_OK) st = kl_cdm_to_want(&r, want);
  if (st == KL_OK) {
    *gin = r;
    r = NULL;
  }
done:
  kl_cdm_release(A);
  kl_cdm_release(B);
  kl_cdm_release(G);
  kl_cdm_release(t1);
  kl_cdm_release(t2);
  kl_cdm_release(full);
  kl_cdm_release(r);
  return st;
}

#define CDM_BIN_OP(P, OP)                                                                          \
  static kl_status P##_general(kl_tensor *const *in, int nin, const kl_attrs *a,                   \
                               kl_tensor **out) {                                                  \
    return bin_general(OP, in, out);                                                               \
  }                                                                                                \
  static kl_status P##_sp_dense(kl_tensor *const *in, int nin, const kl_attrs *a,                  \
                                kl_tensor **out) {                                                 \
    return bin_sparse_dense(OP, in, out);                                                          \
  }                                                                                                \
  static kl_status P##_backward(kl_tensor *const *in, int nin, const kl_attrs *a,                  \
                                const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want, \
                                kl_tensor **gin) {                                                 \
    return bin_backward(OP, in, gout, i, want, gin);                                               \
  }
#define CDM_MERGE_OP(P, OP)                                                      \
  static kl_status P##_csr_csr(kl_tensor *const *in, int nin, const kl_attrs *a, \
                               kl_tensor **out) {                                \
    return bin_csr_csr(OP, in, out);                                             \
  }                                                                              \
  static kl_status P##_rsp_rsp(kl_tensor *const *in, int nin, const kl_attrs *a, \
                               kl_tensor **out) {                                \
    return bin_rsp_rsp(OP, in, out);                                             \
  }                                                                              \
  static const kl_kernel_entry P##_kernels[] = {                                 \
      {"cuda.csr.csr", sup_csr_csr, P##_csr_csr},                                \
      {"cuda.rsp.rsp", sup_rsp_rsp, P##_rsp_rsp},                                \
      {"cuda.sparse.dense", sup_sparse_dense, P##_sp_dense},                     \
      {"cuda.dense", NULL, P##_general},                                         \
      {NULL, NULL, NULL}};                                                       \
  const kl_device_opdef kl_cuda_opdef_##P = {P##_kernels, P##_backward};

CDM_BIN_OP(add, KL_OP_ADD)
CDM_BIN_OP(sub, KL_OP_SUB)
CDM_BIN_OP(mul, KL_OP_MUL)
CDM_BIN_OP(div, KL_OP_DIV)
CDM_BIN_OP(minimum, KL_OP_MINIMUM)
CDM_BIN_OP(maximum, KL_OP_MAXIMUM)
CDM_MERGE_OP(add, KL_OP_ADD)
CDM_MERGE_OP(sub, KL_OP_SUB)
CDM_MERGE_OP(mul, KL_OP_MUL)
CDM_MERGE_OP(minimum, KL_OP_MINIMUM)
CDM_MERGE_OP(maximum, KL_OP_MAXIMUM)
/* divide: x / 0 is not 0, so two sparse operands go through the dense kernel (the CPU's) */
static const kl_kernel_entry div_kernels[] = {{"cuda.sparse.dense", sup_sparse_dense, div_sp_dense},
                                              {"cuda.dense", NULL, div_general},
                                              {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_div = {div_kernels, div_backward};

/* ------------------------------------------------------------------ value maps */

/* out = f(x's stored values) with x's stype (keep), or f over x densified (a dense result:
 * f(0) where x stores nothing, as the CPU's kl_ew_map_run). scalar: -1 for the unary ops. */
static kl_status map_run(kl_op op, int scalar_op, double sc, const kl_tensor *x, int keep,
                         kl_tensor **out) {
  const kl_cuda_stream s = kl_cuda_dev_stream(x->device);
  kl_tensor *src = NULL, *r = NULL;
  kl_status st;
  *out = NULL;
  if (keep || !is_sparse(x)) {
    src = kl_cuda_capi->tensor_retain((kl_tensor *)x);
    st = kl_cdm_like(x, &r);
  } else {
    st = kl_cdm_densify(x, &src); /* a new tensor: mapped in place */
    if (st == KL_OK) r = kl_cuda_capi->tensor_retain(src);
  }
  const int64_t n = src ? kl_cdm_nvals(src) : 0;
  if (st == KL_OK)
    st = scalar_op ? kl_cuda_math_scalar(op, x->dtype, src->data, sc, r->data, n, s)
                   : kl_cuda_math_unary(op, x->dtype, src->data, r->data, n, s);
  kl_cdm_release(src);
  return kl_cdo_finish(st, r, out);
}

/* ------------------------------------------------------------------ scalar ops */

static int scalar_keeps_stype(kl_op op, double s) {
  switch (op) {
    case KL_OP_MUL_SCALAR:
    case KL_OP_DIV_SCALAR:
      return 1;
    case KL_OP_MINIMUM_SCALAR:
      return s >= 0;
    case KL_OP_MAXIMUM_SCALAR:
      return s <= 0;
    case KL_OP_POW_SCALAR:
      return s > 0;
    default:
      return 0;
  }
}

static kl_status scalar_run(kl_op op, kl_tensor *const *in, const kl_attrs *a, kl_tensor **out) {
  return map_run(op, 1, a->scalar, in[0], scalar_keeps_stype(op, a->scalar), out);
}

/* ops_scalar.c's scalar_backward: x + s: g; x * s, x / s: the same map of g (its stype
 * kept); s - x: -g; the others through x (dense). */
static kl_status scalar_backward(kl_op op, kl_tensor *const *in, const kl_attrs *a,
                                 const kl_tensor *out, const kl_tensor *gout, kl_stype want,
                                 kl_tensor **gin) {
  const kl_device d = in[0]->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  kl_tensor *X = NULL, *G = NULL, *r = NULL;
  kl_status st = kl_cdm_grad_dtype(kl_cdm_op_name(op), in[0]->dtype);
  if (st != KL_OK) return st;
  switch (op) {
    case KL_OP_ADD_SCALAR:
      st = kl_cdm_like(gout, &r);
      if (st == KL_OK)
        st = kl_cuda_math_copy_block(kl_cdm_es(gout->dtype), gout->data, 0, 0, r->data, 0, 0, 1,
                                     kl_cdm_nvals(gout), s);
      break;
    case KL_OP_MUL_SCALAR:
    case KL_OP_DIV_SCALAR:
      st = map_run(op, 1, a->scalar, gout, 1, &r);
      break;
    case KL_OP_RSUB_SCALAR:
      st = map_run(KL_OP_MUL_SCALAR, 1, -1.0, gout, 1, &r);
      break;
    default:
      st = kl_cdm_densify(in[0], &X);
      if (st == KL_OK) st = kl_cdm_densify(gout, &G);
      if (st == KL_OK && (G->dtype != X->dtype || kl_cdm_nvals(G) != kl_cdm_nvals(X)))
        st = kl_cuda_seterr(KL_ESHAPE, "%s: backward: gout has %lld elements, expected %lld",
                            kl_cdm_op_name(op), (long long)kl_cdm_nvals(G),
                            (long long)kl_cdm_nvals(X));
      if (st == KL_OK) st = kl_cdm_dense(d, X->dtype, X->ndim, X->shape, 0, &r);
      if (st == KL_OK)
        st = kl_cuda_math_scalar_grad(op, X->dtype, X->data, G->data, a->scalar, r->data,
                                      kl_cdm_nvals(X), s);
      break;
  }
  if (st == KL_OK) st = kl_cdm_to_want(&r, want);
  kl_cdm_release(X);
  kl_cdm_release(G);
  return kl_cdo_finish(st, r, gin);
}

/* The opdef of a value map: one "cuda.map" entry, RUN(OP, ...), and the backward BWD(OP, ...). */
#define CDM_MAP_OP(P, OP, RUN, BWD)                                                                \
  static kl_status P##_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {    \
    return RUN(OP, in, a, out);                                                                    \
  }                                                                                                \
  static kl_status P##_backward(kl_tensor *const *in, int nin, const kl_attrs *a,                  \
                                const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want, \
                                kl_tensor **gin) {                                                 \
    return BWD(OP, in, a, out, gout, want, gin);                                                   \
  }                                                                                                \
  static const kl_kernel_entry P##_kernels[] = {{"cuda.map", NULL, P##_run}, {NULL, NULL, NULL}};  \
  const kl_device_opdef kl_cuda_opdef_##P = {P##_kernels, P##_backward};
#define CDM_SCALAR_OP(P, OP) CDM_MAP_OP(P, OP, scalar_run, scalar_backward)

CDM_SCALAR_OP(add_scalar, KL_OP_ADD_SCALAR)
CDM_SCALAR_OP(mul_scalar, KL_OP_MUL_SCALAR)
CDM_SCALAR_OP(div_scalar, KL_OP_DIV_SCALAR)
CDM_SCALAR_OP(rsub_scalar, KL_OP_RSUB_SCALAR)
CDM_SCALAR_OP(rdiv_scalar, KL_OP_RDIV_SCALAR)
CDM_SCALAR_OP(minimum_scalar, KL_OP_MINIMUM_SCALAR)
CDM_SCALAR_OP(maximum_scalar, KL_OP_MAXIMUM_SCALAR)
CDM_SCALAR_OP(pow_scalar, KL_OP_POW_SCALAR)

/* ------------------------------------------------------------------ unary ops, softmax */

static int unary_keeps_stype(kl_op op) {
  return op == KL_OP_NEG || op == KL_OP_SQUARE || op == KL_OP_SQRT || op == KL_OP_ABS ||
         op == KL_OP_RELU;
}

/* dense softmax of x (dense) along its last axis into a new tensor */
static kl_status softmax_dense(const kl_tensor *x, kl_tensor **out) {
  kl_tensor *r = NULL;
  KL_TRY(kl_cdm_dense(x->device, x->dtype, x->ndim, x->shape, 0, &r));
  const int64_t last = x->shape[x->ndim - 1], n = kl_cdm_numel(x->ndim, x->shape);
  kl_status st = kl_cuda_math_softmax(x->dtype, x->data, last ? n / last : 0, last, r->data,
                                      kl_cuda_dev_stream(x->device));
  return kl_cdo_finish(st, r, out);
}

static kl_status softmax_run(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  const kl_tensor *x = in[0];
  const kl_cuda_stream s = kl_cuda_dev_stream(x->device);
  kl_tensor *r = NULL, *dn = NULL;
  kl_status st;
  if (x->stype == KL_STYPE_DEFAULT) return softmax_dense(x, out);
  if (x->stype == KL_STYPE_ROW_SPARSE && x->ndim < 2) {
    /* a 1-d row_sparse's last axis runs across its rows: densified, as the CPU */
    KL_TRY(kl_cdm_densify(x, &dn));
    st = softmax_dense(dn, out);
    kl_cdm_release(dn);
    return st;
  }
  KL_TRY(kl_cdm_dense(x->device, x->dtype, x->ndim, x->shape, 0, &r));
  const int64_t last = x->shape[x->ndim - 1], n = kl_cdm_numel(x->ndim, x->shape);
  if (x->stype == KL_STYPE_CSR)
    st = kl_cuda_math_softmax_csr(x->dtype, x->shape[0], last, x->indptr, x->indices, x->data,
                                  r->data, s);
  else
    st =
        kl_cuda_math_softmax_rsp(x->dtype, n, last, x->nnz, kl_cdm_numel(x->ndim - 1, x->shape + 1),
                                 x->indices, x->data, r->data, s);
  return kl_cdo_finish(st, r, out);
}

static kl_status unary_run(kl_op op, kl_tensor *const *in, const kl_attrs *a, kl_tensor **out) {
  return map_run(op, 0, 0.0, in[0], unary_keeps_stype(op), out);
}

/* ops_unary.c's unary_backward: g * f'(x) through x and the output (recomputed when the
 * caller has none); softmax: o * (g - sum(g * o)) along the last axis. */
static kl_status unary_backward(kl_op op, kl_tensor *const *in, const kl_attrs *a,
                                const kl_tensor *out, const kl_tensor *gout, kl_stype want,
                                kl_tensor **gin) {
  const kl_device d = in[0]->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const char *fn = kl_cdm_op_name(op);
  kl_tensor *X = NULL, *O = NULL, *G = NULL, *r = NULL;
  kl_status st = kl_cdm_grad_dtype(fn, in[0]->dtype);
  if (st == KL_OK) st = kl_cdm_densify(in[0], &X);
  if (st == KL_OK) st = kl_cdm_densify(gout, &G);
  if (st == KL_OK && out)
    st = kl_cdm_densify(out, &O);
  else if (st == KL_OK)
    st = op == KL_OP_SOFTMAX ? softmax_dense(X, &O) : map_run(op, 0, 0.0, X, 1, &O);
  const int64_t n = X ? kl_cdm_numel(X->ndim, X->shape) : 0;
  if (st == KL_OK && (G->dtype != X->dtype || kl_cdm_numel(G->ndim, G->shape) != n ||
                      O->dtype != X->dtype || kl_cdm_numel(O->ndim, O->shape) != n))
    st = kl_cuda_seterr(KL_ESHAPE, "%s: backward: gout has %lld elements, expected %lld", fn,
                        (long long)kl_cdm_numel(G->ndim, G->shape), (long long)n);
  if (st == KL_OK) st = kl_cdm_dense(d, X->dtype, X->ndim, X->shape, 0, &r);
  if (st == KL_OK) {
    if (op == KL_OP_SOFTMAX) {
      const int64_t last = X->shape[X->ndim - 1];
      st = kl_cuda_math_softmax_grad(X->dtype, O->data, G->data, last ? n / last : 0, last, r->data,
                                     s);
    } else {
      st = kl_cuda_math_unary_grad(op, X->dtype, X->data, O->data, G->data, r->data, n, s);
    }
  }
  if (st == KL_OK) st = kl_cdm_to_want(&r, want);
  kl_cdm_release(X);
  kl_cdm_release(O);
  kl_cdm_release(G);
  return kl_cdo_finish(st, r, gin);
}

#define CDM_UNARY_OP(P, OP) CDM_MAP_OP(P, OP, unary_run, unary_backward)

CDM_UNARY_OP(neg, KL_OP_NEG)
CDM_UNARY_OP(square, KL_OP_SQUARE)
CDM_UNARY_OP(sqrt, KL_OP_SQRT)
CDM_UNARY_OP(abs, KL_OP_ABS)
CDM_UNARY_OP(relu, KL_OP_RELU)
CDM_UNARY_OP(exp, KL_OP_EXP)
CDM_UNARY_OP(log, KL_OP_LOG)
CDM_UNARY_OP(sigmoid, KL_OP_SIGMOID)
CDM_UNARY_OP(tanh, KL_OP_TANH)

static kl_status softmax_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                                  const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                                  kl_tensor **gin) {
  return unary_backward(KL_OP_SOFTMAX, in, a, out, gout, want, gin);
}
static const kl_kernel_entry softmax_kernels[] = {{"cuda.softmax", NULL, softmax_run},
                                                  {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_softmax = {softmax_kernels, softmax_backward};
