/* dev_ops_dot.c: the dot op on the CUDA device (kl_cuda_opdef_dot, claimed in dev_ops.c):
 * every stype combination the CPU registry handles, forward and backward.
 *
 * The kernel entries mirror backend/src/ops_dot*.c's table, picked by the same supports()
 * predicates (backend/src/ops_dot_supports.h) in the same order, each returning the stype
 * kl_op_infer gives:
 *   cuda.csr.dense          csr . dense (2-d or a vector)       cuSPARSE SpMM        dense
 *   cuda.csrT.dense         csr^T . dense (2-d)                 own: sort + sums     row_sparse
 *   cuda.csr.row_sparse     csr . row_sparse                    SpMM when b stores every
 *                                                               row, else own gather dense
 *   cuda.csrT.row_sparse    csr^T . row_sparse                  own: sort + sums     row_sparse
 *   cuda.dense.csr          dense (1-d / 2-d) . csr             own: by column       dense
 *   cuda.dense              dense . dense                       cuBLAS gemm          dense
 *   cuda.densified          anything else with a sparse input   densify on the device,
 *                           (the CPU's storage fallback)        then cuBLAS          dense
 * The own kernels (gpu/k_dot.cu) give the CPU's bits. cuBLAS and cuSPARSE sum in their own
 * order: on a GPU those entries agree with the CPU within rounding (the specs' tolerance);
 * on the emulated device they are OpenBLAS and the CPU's loop, so bit for bit.
 *
 * The backward is the CPU's dot_backward on the device: the weight gradient of csr . W is
 * csr^T . gout (row_sparse over the touched columns, the own kernels) or, with
 * transpose_a, csr . gout (the own gather); everything else is a gemm on densified
 * operands, as the CPU. The result is converted on the device to the stype asked for
 * (row_sparse <-> dense); a csr gradient is left to the registry. No input is read on the
 * host; the only host waits are the row counts of row_sparse results. */
#include <string.h>

#include "../backend/src/ops_dot_supports.h"
#include "cuda_blas.h"
#include "dev_ops_util.h"
#include "kl_cuda_dot.h"

#define CAPI kl_cuda_capi

/* ------------------------------------------------------------------ the view */

/* ops_dot.c's dot_view: op(A) is M x K, op(B) K x N; A stored with rows of ac elements, B of
 * bc. */
typedef struct dview {
  int64_t M, K, N, ac, bc;
  int ta, tb;
} dview;

/* The core's inference of the dot (kl_op_infer through the capi: the CPU's checks and
 * messages, the output's meta in *om), then the view. A forward has been inferred by the
 * registry already; a backward has not. */
static kl_status view_of(kl_tensor *const *in, int nin, const kl_attrs *at, dview *v,
                         kl_meta *om) {
  if (nin != 2) return kl_cuda_seterr(KL_EINVAL, "dot: expected 2 inputs, got %d", nin);
  kl_meta m[2];
  memset(m, 0, sizeof m);
  for (int i = 0; i < 2; i++) {
    m[i].dtype = in[i]->dtype;
    m[i].stype = in[i]->stype;
    m[i].ndim = in[i]->ndim;
    m[i].device = in[i]->device;
    memcpy(m[i].shape, in[i]->shape, sizeof(int64_t) * (size_t)in[i]->ndim);
  }
  KL_TRY(CAPI->op_infer(KL_OP_DOT, m, 2, at, om));
  const kl_tensor *a = in[0], *b = in[1];
  int64_t ar = 1;
  for (int d = 0; d + 1 < a->ndim; d++) ar *= a->shape[d];
  v->ta = a->ndim == 2 && at->transpose_a;
  v->tb = b->ndim == 2 && at->transpose_b;
  v->ac = a->shape[a->ndim - 1];
  v->bc = b->ndim == 2 ? b->shape[1] : 1;
  v->M = v->ta ? v->ac : ar;
  v->K = v->ta ? ar : v->ac;
  v->N = v->tb ? b->shape[0] : v->bc;
  return KL_OK;
}

/* ------------------------------------------------------------------ helpers */

static kl_status new_dense(kl_device d, kl_dtype dt, int ndim, const int64_t *shape,
                           kl_tensor **out) {
  return CAPI->tensor_new_dense_on(d, dt, ndim, shape, 0, out);
}

/* A dense copy of t on its device (t itself, retained, when dense): csr and row_sparse
 * scattered into zeros, as kl_tensor_tostype. */
static kl_status densify(const kl_tensor *t, kl_tensor **out) {
  *out = NULL;
  if (t->stype == KL_STYPE_DEFAULT) {
    *out = CAPI->tensor_retain((kl_tensor *)t);
    return KL_OK;
  }
  const kl_device d = t->device;
  kl_tensor *o = NULL;
  KL_TRY(new_dense(d, t->dtype, t->ndim, t->shape, &o));
  kl_status st;
  if (t->stype == KL_STYPE_CSR)
    st = kl_cuda_dot_csr_to_dense(t->dtype, t->shape[0], t->shape[1], t->indptr, t->indices,
                                  t->data, t->nnz, o->data, kl_cuda_dev_stream(d));
  else
    st = kl_cuda_dot_rsp_to_dense(t->dtype, t->shape[0], CAPI->row_width(t), t->indices, t->nnz,
                                  t->data, o->data, kl_cuda_dev_stream(d));
  return kl_cdo_finish(st, o, out);
}

/* A dense t (on its device) as row_sparse keeping the rows with a nonzero (the CPU's
 * tostype); reads the kept count on the host. */
static kl_status dense_to_rsp(const kl_tensor *t, kl_tensor **out) {
  *out = NULL;
  const kl_device d = t->device;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const int64_t rows = t->ndim >= 1 ? t->shape[0] : 1, w = CAPI->row_width(t);
  void *scr = NULL;
  int64_t *dn = NULL, n = 0;
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_dev_alloc(d, kl_cuda_dot_dense_to_rsp_scratch(rows), &scr);
  if (st == KL_OK) st = kl_cuda_dev_alloc(d, sizeof(int64_t), (void **)&dn);
  if (st == KL_OK) st = kl_cuda_dot_dense_to_rsp_count(t->dtype, rows, w, t->data, scr, dn, s);
  if (st == KL_OK) st = kl_cuda_dev_read(d, &n, dn, sizeof n);
  if (st == KL_OK) st = CAPI->tensor_new_rsp_on(d, t->dtype, t->ndim, t->shape, n, &o);
  if (st == KL_OK && n > 0)
    st = kl_cuda_dot_dense_to_rsp_fill(t->dtype, rows, w, t->data, scr, o->indices, o->data, s);
  kl_cuda_dev_free(d, scr);
  kl_cuda_dev_free(d, dn);
  return kl_cdo_finish(st, o, out);
}

/* ops_dot.c's gemm_rm on the device: C (M x N, row-major, overwritten) = op(A) . op(B), A
 * with rows of lda elements, B of ldb; empty products without calling cuBLAS. */
static kl_status gemm_rm(kl_device d, kl_dtype dt, int ta, int tb, int64_t M, int64_t N,
                         int64_t K, const void *A, int64_t lda, const void *B, int64_t ldb,
                         void *C) {
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  if (M == 0 || N == 0) return KL_OK;
  if (K == 0) return kl_cuda_dot_zero(dt, C, M * N, s);
  if (lda < 1) lda = 1;
  if (ldb < 1) ldb = 1;
  kl_cuda_gemm_call c;
  KL_TRY(kl_cuda_gemm_describe(ta, tb, M, N, K, A, lda, B, ldb, C, N, &c));
  return kl_cuda_blas_gemm(d, dt, &c, 1.0, 0.0, s);
}

/* C (M x N) = csr a (M x K) . B (K x N row-major, all rows stored) by cuSPARSE. */
static kl_status spmm_rm(kl_device d, const kl_tensor *a, int64_t M, int64_t K, int64_t N,
                         const void *B, void *C) {
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  if (M == 0 || N == 0) return KL_OK;
  if (K == 0 || a->nnz == 0) return kl_cuda_dot_zero(a->dtype, C, M * N, s);
  kl_cuda_spmm_call c;
  KL_TRY(kl_cuda_spmm_describe(a->dtype, M, K, N, a->nnz, a->indptr, a->indices, a->data, B, C,
                               &c));
  return kl_cuda_blas_spmm(d, a->dtype, &c, 1.0, 0.0, s);
}

/* csr a (M rows) . b (dense, or row_sparse storing b_idx) by the own gather: the CPU's bits. */
static kl_status gather_rm(kl_device d, const kl_tensor *a, int64_t M, int64_t N,
                           const int64_t *b_idx, int64_t b_nnz, const void *B, void *C) {
  void *scr = NULL;
  KL_TRY(kl_cuda_dev_alloc(d, kl_cuda_dot_csr_gather_scratch(a->nnz, b_idx != NULL), &scr));
  kl_status st = kl_cuda_dot_csr_gather(a->dtype, M, N, a->indptr, a->indices, a->data, a->nnz,
                                        b_idx, b_nnz, B, scr, C, kl_cuda_dev_stream(d));
  kl_cuda_dev_free(d, scr);
  return st;
}

/* csr^T (a: R x C) . b (R x N: dense, or row_sparse storing b_idx) -> row_sparse (C x N) over
 * the touched columns, by the own kernels (the CPU's bits); reads the row count. */
static kl_status csrT_rsp(kl_device d, const kl_tensor *a, int64_t N, const int64_t *b_idx,
                          int64_t b_nnz, const void *B, kl_tensor **out) {
  *out = NULL;
  const kl_cuda_stream s = kl_cuda_dev_stream(d);
  const int64_t R = a->shape[0], C = a->shape[1], shape[2] = {C, N};
  void *scr = NULL;
  int64_t *dnu = NULL, nu = 0;
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_dev_alloc(d, kl_cuda_dot_csrT_scratch(a->nnz), &scr);
  if (st == KL_OK) st = kl_cuda_dev_alloc(d, sizeof(int64_t), (void **)&dnu);
  if (st == KL_OK)
    st = kl_cuda_dot_csrT_plan(R, C, a->indptr, a->indices, a->nnz, b_idx, b_nnz, scr, dnu, s);
  if (st == KL_OK) st = kl_cuda_dev_read(d, &nu, dnu, sizeof nu);
  if (st == KL_OK) st = CAPI->tensor_new_rsp_on(d, a->dtype, 2, shape, nu, &o);
  if (st == KL_OK)
    st = kl_cuda_dot_csrT_sum(a->dtype, a->nnz, N, a->data, B, scr, nu, o->indices, o->data, s);
  kl_cuda_dev_free(d, scr);
  kl_cuda_dev_free(d, dnu);
  return kl_cdo_finish(st, o, out);
}

/* ------------------------------------------------------------------ supports */

/* The sparse entries take the CPU's predicates (ops_dot_supports.h, static inline: this
 * module does not link the core); all dense, the CPU's default kernel, is the one added. */
static int sup_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  (void)a;
  return nin == 2 && in[0]->stype == KL_STYPE_DEFAULT && in[1]->stype == KL_STYPE_DEFAULT;
}

/* ------------------------------------------------------------------ kernels */

/* The view, and the new dense result of the forward (on a's device, the inferred shape). */
static kl_status dense_out(kl_tensor *const *in, int nin, const kl_attrs *at, dview *v,
                           kl_tensor **o) {
  kl_meta om;
  KL_TRY(view_of(in, nin, at, v, &om));
  return new_dense(in[0]->device, in[0]->dtype, om.ndim, om.shape, o);
}

static kl_status k_csr_x(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dview v;
  kl_tensor *o = NULL;
  KL_TRY(dense_out(in, nin, at, &v, &o));
  const kl_tensor *a = in[0], *b = in[1];
  const kl_device d = a->device;
  kl_status st;
  if (b->stype == KL_STYPE_DEFAULT || b->nnz == b->shape[0])
    st = spmm_rm(d, a, v.M, v.K, v.N, b->data, o->data); /* every row of b stored */
  else
    st = gather_rm(d, a, v.M, v.N, b->indices, b->nnz, b->data, o->data);
  return kl_cdo_finish(st, o, out);
}

static kl_status k_csrT_x(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dview v;
  kl_meta om;
  KL_TRY(view_of(in, nin, at, &v, &om));
  const kl_tensor *a = in[0], *b = in[1];
  const int bsp = b->stype == KL_STYPE_ROW_SPARSE;
  return csrT_rsp(a->device, a, v.N, bsp ? b->indices : NULL, bsp ? b->nnz : 0, b->data, out);
}

static kl_status k_dense_csr(kl_tensor *const *in, int nin, const kl_attrs *at,
                             kl_tensor **out) {
  dview v;
  kl_tensor *o = NULL;
  KL_TRY(dense_out(in, nin, at, &v, &o));
  const kl_tensor *a = in[0], *b = in[1];
  const kl_device d = a->device;
  void *scr = NULL;
  kl_status st = kl_cuda_dev_alloc(d, kl_cuda_dot_dense_csr_scratch(b->nnz, v.N), &scr);
  if (st == KL_OK)
    st = kl_cuda_dot_dense_csr(a->dtype, v.M, v.K, v.ta, a->data, v.N, b->indptr, b->indices,
                               b->data, b->nnz, scr, o->data, kl_cuda_dev_stream(d));
  kl_cuda_dev_free(d, scr);
  return kl_cdo_finish(st, o, out);
}

/* dense . dense by cuBLAS; other inputs densified first (the CPU's storage fallback). */
static kl_status k_dense(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dview v;
  kl_tensor *ad = NULL, *bd = NULL, *o = NULL;
  KL_TRY(dense_out(in, nin, at, &v, &o));
  const kl_device d = in[0]->device;
  kl_status st = densify(in[0], &ad);
  if (st == KL_OK) st = densify(in[1], &bd);
  if (st == KL_OK)
    st = gemm_rm(d, in[0]->dtype, v.ta, v.tb, v.M, v.N, v.K, ad->data, v.ac, bd->data, v.bc,
                 o->data);
  CAPI->tensor_release(ad);
  CAPI->tensor_release(bd);
  return kl_cdo_finish(st, o, out);
}

static const kl_kernel_entry dot_kernels[] = {
    {"cuda.csr.dense", kl_dot_sup_csr_dense, k_csr_x},
    {"cuda.csrT.dense", kl_dot_sup_csrT_dense, k_csrT_x},
    {"cuda.csr.row_sparse", kl_dot_sup_csr_rsp, k_csr_x},
    {"cuda.csrT.row_sparse", kl_dot_sup_csrT_rsp, k_csrT_x},
    {"cuda.dense.csr", kl_dot_sup_dense_csr, k_dense_csr},
    {"cuda.dense", sup_dense, k_dense},
    {"cuda.densified", NULL, k_dense},
    {NULL, NULL, NULL},
};

/* ------------------------------------------------------------------ backward */

/* ops_dot.c's dot_backward on the device: with G = gout (M x N),
 *   dA = G . op(B)^T (stored K x M with transpose_a: op(B) . G^T),
 *   dB = op(A)^T . G (stored N x K with transpose_b: G^T . op(A));
 * a csr a and a 2-d b: dB = csr^T . G (row_sparse) or, with transpose_a, csr . G. */
static kl_status dot_backward(kl_tensor *const *in, int nin, const kl_attrs *at,
                              const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                              kl_tensor **gin) {
  (void)out;
  *gin = NULL;
  dview v;
  kl_meta om;
  KL_TRY(view_of(in, nin, at, &v, &om));
  if (i != 0 && i != 1) return kl_cuda_seterr(KL_EINVAL, "dot: backward: input %d out of range", i);
  if (in[i]->stype == KL_STYPE_CSR)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "dot: no gradient with respect to the csr input %s",
                          i ? "b" : "a");
  const kl_dtype dt = in[0]->dtype;
  if (CAPI->tensor_numel(gout) != v.M * v.N || gout->dtype != dt)
    return kl_cuda_seterr(KL_ESHAPE, "dot: backward: gout has %lld %s elements, expected %lld %s",
                          (long long)CAPI->tensor_numel(gout), kl_cuda_dtype_name(gout->dtype),
                          (long long)(v.M * v.N), kl_cuda_dtype_name(dt));
  const kl_device d = in[0]->device;
  kl_tensor *g = NULL, *ad = NULL, *bd = NULL, *r = NULL;
  kl_status st = densify(gout, &g);
  if (st != KL_OK) goto done;
  if (i == 1 && in[0]->stype == KL_STYPE_CSR && in[1]->ndim == 2 && !v.tb) {
    const kl_tensor *a = in[0];
    if (!v.ta) {
      st = csrT_rsp(d, a, v.N, NULL, 0, g->data, &r); /* a^T . G: C x N row_sparse */
    } else {
      /* a . G: R x N dense, the CPU's csr . dense sums (its dot_csr_x) */
      st = new_dense(d, dt, 2, in[1]->shape, &r);
      if (st == KL_OK) st = gather_rm(d, a, a->shape[0], v.N, NULL, 0, g->data, r->data);
    }
    goto done;
  }
  st = densify(in[0], &ad);
  if (st == KL_OK) st = densify(in[1], &bd);
  if (st == KL_OK) st = new_dense(d, dt, in[i]->ndim, in[i]->shape, &r);
  if (st != KL_OK) goto done;
  if (i == 0 && !v.ta) st = gemm_rm(d, dt, 0, !v.tb, v.M, v.K, v.N, g->data, v.N, bd->data, v.bc, r->data);
  else if (i == 0) st = gemm_rm(d, dt, v.tb, 1, v.K, v.M, v.N, bd->data, v.bc, g->data, v.N, r->data);
  else if (!v.tb) st = gemm_rm(d, dt, !v.ta, 0, v.K, v.N, v.M, ad->data, v.ac, g->data, v.N, r->data);
  else st = gemm_rm(d, dt, 1, v.ta, v.N, v.K, v.M, g->data, v.N, ad->data, v.ac, r->data);
done:
  CAPI->tensor_release(g);
  CAPI->tensor_release(ad);
  CAPI->tensor_release(bd);
  if (st == KL_OK && r->stype != want && want != KL_STYPE_CSR) {
    kl_tensor *c = NULL;
    st = want == KL_STYPE_DEFAULT ? densify(r, &c) : dense_to_rsp(r, &c);
    CAPI->tensor_release(r);
    r = c;
  }
  return kl_cdo_finish(st, r, gin); /* a csr want: the registry converts */
}

const kl_device_opdef kl_cuda_opdef_dot = {dot_kernels, dot_backward};
