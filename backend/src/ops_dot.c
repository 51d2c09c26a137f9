/* ops_dot.c: the dot op: inference, the OpenBLAS dense kernel, the kernel chooser and the
 * backward. The sparse kernels are in ops_dot_csr.c and ops_dot_csrT.c. */
#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "kl/pool.h"
#include "ops_dot_internal.h"
#include "ops_dot_supports.h"

static void shape_msg(const kl_meta *m, int t, char *buf, size_t len) {
  char s[160];
  snprintf(buf, len, "(%s)%s", kl_shape_str(m->ndim, m->shape, s, sizeof s),
           t && m->ndim == 2 ? "^T" : "");
}

/* Validates a dot and computes its view and output meta (shape, dtype, stype). */
static kl_status dot_infer_view(const kl_meta *in, int nin, const kl_attrs *at, dot_view *v,
                                kl_meta *out) {
  KL_CHECK(nin == 2, KL_EINVAL, "dot: expected 2 inputs, got %d", nin);
  const kl_meta *a = &in[0], *b = &in[1];
  for (int i = 0; i < 2; i++)
    KL_CHECK(kl_is_float(in[i].dtype), KL_EDTYPE,
             "dot: %s has dtype %s, expected float32 or float64", i ? "b" : "a",
             kl_dtype_name(in[i].dtype));
  KL_CHECK(a->dtype == b->dtype, KL_EDTYPE, "dot: dtype mismatch %s . %s",
           kl_dtype_name(a->dtype), kl_dtype_name(b->dtype));
  KL_CHECK(a->ndim >= 1, KL_ESHAPE, "dot: a must have at least 1 dimension, got a 0-d tensor");
  KL_CHECK(b->ndim == 1 || b->ndim == 2, KL_ESHAPE,
           "dot: b must be 1-d or 2-d, got a %d-d tensor", b->ndim);
  KL_CHECK(!at->transpose_a || a->ndim <= 2, KL_ESHAPE,
           "dot: transpose_a needs a 1-d or 2-d a, got a %d-d tensor", a->ndim);
  v->ta = a->ndim == 2 && at->transpose_a;
  v->tb = b->ndim == 2 && at->transpose_b;
  v->ac = a->shape[a->ndim - 1];
  v->ar = a->ndim == 1 ? 1 : kl_shape_numel(a->ndim - 1, a->shape);
  v->br = b->shape[0];
  v->bc = b->ndim == 2 ? b->shape[1] : 1;
  v->M = v->ta ? v->ac : v->ar;
  v->K = v->ta ? v->ar : v->ac;
  int64_t kb = v->tb ? v->bc : v->br;
  v->N = v->tb ? v->br : v->bc;
  if (v->K != kb) {
    char sa[200], sb[200];
    shape_msg(a, v->ta, sa, sizeof sa);
    shape_msg(b, v->tb, sb, sizeof sb);
    return kl_seterr(KL_ESHAPE, "dot: shape mismatch %s . %s", sa, sb);
  }
  out->dtype = a->dtype;
  out->ndim = 0;
  if (a->ndim == 2 && v->ta) out->shape[out->ndim++] = a->shape[1];
  else
    for (int d = 0; d < a->ndim - 1; d++) out->shape[out->ndim++] = a->shape[d];
  if (b->ndim == 2) out->shape[out->ndim++] = v->N;
  KL_TRY(kl_shape_check("dot", out->ndim, out->shape));
  /* MXNet's storage inference: csr^T . (dense | row_sparse) -> row_sparse. */
  out->stype = KL_STYPE_DEFAULT;
  if (a->stype == KL_STYPE_CSR && b->ndim == 2 && !v->tb && v->ta &&
      (b->stype == KL_STYPE_DEFAULT || b->stype == KL_STYPE_ROW_SPARSE))
    out->stype = KL_STYPE_ROW_SPARSE;
  return KL_OK;
}

static kl_status dot_infer(const kl_meta *in, int nin, const kl_attrs *at, kl_meta *out) {
  dot_view v = {0};
  return dot_infer_view(in, nin, at, &v, out);
}

kl_status kl_dot_view_of(kl_tensor *const *in, const kl_attrs *at, dot_view *v, kl_meta *om) {
  kl_meta m[2];
  kl_tensor_meta(in[0], &m[0]);
  kl_tensor_meta(in[1], &m[1]);
  return dot_infer_view(m, 2, at, v, om);
}

/* ------------------------------------------------------------ dense (BLAS) */

/* C (M x N, row-major, overwritten) = op(A) . op(B), where A is stored with rows of lda
 * elements and B with rows of ldb. Handles empty dims without calling BLAS. */
static kl_status gemm_rm(kl_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K,
                         const void *A, int64_t lda, const void *B, int64_t ldb, void *C) {
  if (M == 0 || N == 0) return KL_OK;
  if (K == 0) {
    memset(C, 0, (size_t)(M * N) * kl_dtype_size(dt));
    return KL_OK;
  }
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX)
    return kl_seterr(KL_EUNSUPPORTED,
                     "dot: dimensions %lld x %lld x %lld exceed the BLAS int limit",
                     (long long)M, (long long)K, (long long)N);
  if (lda < 1) lda = 1;
  if (ldb < 1) ldb = 1;
  enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if (dt == KL_FLOAT32)
    cblas_sgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb,
                0.0f, C, (int)N);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb,
                0.0, C, (int)N);
  return KL_OK;
}

static kl_status dot_dense(kl_tensor *const *in, int nin, const kl_attrs *at, kl_tensor **out) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(kl_dot_view_of(in, at, &v, &om));
  KL_CHECK(in[0]->stype == KL_STYPE_DEFAULT && in[1]->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
           "dot: the dense kernel needs dense inputs");
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_dense(om.dtype, om.ndim, om.shape, &o));
  kl_status st = gemm_rm(om.dtype, v.ta, v.tb, v.M, v.N, v.K, in[0]->data, v.ac, in[1]->data,
                         v.bc, o->data);
  if (st != KL_OK) {
    kl_tensor_release(o);
    return st;
  }
  *out = o;
  return KL_OK;
}

/* ----------------------------------------------------------- the chooser */

/* The predicates of the stype combinations (csr . x, csr^T . x, dense . csr) are
 * ops_dot_supports.h's, which the CUDA device's table (gpu/dev_ops_dot.c) chooses by too. */

/* csr^T . b inside a plan step, by the kept accumulators (kl_dot_csrT_*_applies). */
static int sup_csrT_direct(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return (kl_dot_sup_csrT_dense(in, nin, a) || kl_dot_sup_csrT_rsp(in, nin, a)) &&
         kl_dot_csrT_direct_applies(in, a);
}
static int sup_csrT_spa(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return (kl_dot_sup_csrT_dense(in, nin, a) || kl_dot_sup_csrT_rsp(in, nin, a)) &&
         kl_dot_csrT_spa_applies(in, a);
}

/* Which kernel serves a dot: the first entry whose supports() takes the inputs (all dense:
 * dot_dense, OpenBLAS; no entry for a sparse combination: the registry's dense fallback).
 * The csr^T entries go from the most specialised (a plan step's direct accumulator, then
 * its column map) to the general sorted path; each gives the same bits. */
static const kl_kernel_entry dot_kernels[] = {
    {"csr.dense", kl_dot_sup_csr_dense, kl_dot_csr_x},
    {"csrT.direct", sup_csrT_direct, kl_dot_csrT_direct},
    {"csrT.spa", sup_csrT_spa, kl_dot_csrT_spa},
    {"csrT.dense", kl_dot_sup_csrT_dense, kl_dot_csrT_sorted},
    {"csr.row_sparse", kl_dot_sup_csr_rsp, kl_dot_csr_x},
    {"csrT.row_sparse", kl_dot_sup_csrT_rsp, kl_dot_csrT_sorted},
    {"dense.csr", kl_dot_sup_dense_csr, kl_dot_dense_csr},
    {NULL, NULL, NULL},
};

/* Runs the chooser's kernel for a csr dot (the backward's csr^T . G and csr . G). */
static kl_status dot_chosen(kl_tensor *const *in, const kl_attrs *at, kl_tensor **out) {
  for (const kl_kernel_entry *k = dot_kernels; k->fn; k++)
    if (k->supports(in, 2, at)) return k->fn(in, 2, at, out);
  return kl_seterr(KL_EUNSUPPORTED, "dot: internal: no kernel for the backward's product");
}

/* ----------------------------------------------------------------- backward */

/* Gradients of out = op(A) . op(B) with G = d loss / d out (M x N):
 *   dA = G . op(B)^T (stored K x M when transpose_a: op(B) . G^T),
 *   dB = op(A)^T . G (stored N x K when transpose_b: G^T . op(A)).
 * With a csr a and a 2-d b, dB = csr^T . G runs the csrT.dense kernel and is row_sparse
 * over the columns the batch touched: O(nnz x N), never O(rows of b). Inputs that are
 * csr are data: no gradient. The registry casts the result to the stype asked for. */
static kl_status dot_backward(kl_tensor *const *in, int nin, const kl_attrs *at,
                              const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                              kl_tensor **gin) {
  dot_view v = {0};
  kl_meta om;
  KL_TRY(kl_dot_view_of(in, at, &v, &om));
  KL_CHECK(i == 0 || i == 1, KL_EINVAL, "dot: backward: input %d out of range", i);
  KL_CHECK(in[i]->stype != KL_STYPE_CSR, KL_EUNSUPPORTED,
           "dot: no gradient with respect to the csr input %s", i ? "b" : "a");
  KL_CHECK(kl_tensor_numel(gout) == v.M * v.N && gout->dtype == om.dtype, KL_ESHAPE,
           "dot: backward: gout has %lld %s elements, expected %lld %s",
           (long long)kl_tensor_numel(gout), kl_dtype_name(gout->dtype),
           (long long)(v.M * v.N), kl_dtype_name(om.dtype));
  kl_tensor *g = NULL, *ad = NULL, *bd = NULL, *r = NULL;
  kl_status st = KL_OK;
  if (gout->stype == KL_STYPE_DEFAULT) g = kl_tensor_retain((kl_tensor *)gout);
  else st = kl_tensor_tostype(gout, KL_STYPE_DEFAULT, &g);
  if (st != KL_OK) goto done;
  if (i == 1 && in[0]->stype == KL_STYPE_CSR && in[1]->ndim == 2 && !v.tb) {
    /* sparse path: dB = op(A)^T . G with G as an M x N dense matrix */
    kl_attrs a2;
    memset(&a2, 0, sizeof a2);
    a2.transpose_a = !v.ta;
    kl_tensor *args[2] = {in[0], g};
    st = dot_chosen(args, &a2, &r);
    goto done;
  }
  if (in[0]->stype == KL_STYPE_DEFAULT) ad = kl_tensor_retain(in[0]);
  else st = kl_tensor_tostype(in[0], KL_STYPE_DEFAULT, &ad);
  if (st == KL_OK) {
    if (in[1]->stype == KL_STYPE_DEFAULT) bd = kl_tensor_retain(in[1]);
    else st = kl_tensor_tostype(in[1], KL_STYPE_DEFAULT, &bd);
  }
  if (st == KL_OK) st = kl_tensor_new_dense(om.dtype, in[i]->ndim, in[i]->shape, &r);
  if (st != KL_OK) goto done;
  const kl_dtype dt = om.dtype;
  if (i == 0 && !v.ta) st = gemm_rm(dt, 0, !v.tb, v.M, v.K, v.N, g->data, v.N, bd->data, v.bc, r->data);
  else if (i == 0) st = gemm_rm(dt, v.tb, 1, v.K, v.M, v.N, bd->data, v.bc, g->data, v.N, r->data);
  else if (!v.tb) st = gemm_rm(dt, !v.ta, 0, v.K, v.N, v.M, ad->data, v.ac, g->data, v.N, r->data);
  else st = gemm_rm(dt, 1, v.ta, v.N, v.K, v.M, g->data, v.N, ad->data, v.ac, r->data);
done:
  kl_tensor_release(g);
  kl_tensor_release(ad);
  kl_tensor_release(bd);
  if (st == KL_OK && r->stype != want) {
    kl_tensor *c = NULL;
    st = kl_tensor_tostype(r, want, &c);
    kl_tensor_release(r);
    r = c;
  }
  if (st != KL_OK) {
    kl_tensor_release(r);
    return st;
  }
  *gin = r;
  return KL_OK;
}

const kl_op_def kl_opdef_dot = {"dot", 2, 2, dot_infer, dot_dense, dot_kernels, dot_backward};
