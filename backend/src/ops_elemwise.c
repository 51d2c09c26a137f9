/* ops_elemwise.c: add, subtract, multiply, divide, minimum, maximum of two tensors (numpy
 * broadcasting for dense; merge kernels for csr/csr and rsp/rsp; sparse-with-dense kernels)
 * and gradients. */
#include <stdio.h>
#include <string.h>
#include "ops_ew.h"

/* ------------------------------------------------------------ helpers */

/* minimum and maximum as numpy: a NaN operand gives NaN (x != x holds for NaN only). */
#define EW_MIN(x, y) (((x) != (x) || (x) < (y)) ? (x) : (y))
#define EW_MAX(x, y) (((x) != (x) || (x) > (y)) ? (x) : (y))
/* The merge kernels never divide. */
#define EW_APPLY3(op, x, y)                                                                \
  ((op) == KL_OP_ADD ? (x) + (y)                                                           \
   : (op) == KL_OP_SUB ? (x) - (y)                                                         \
   : (op) == KL_OP_MINIMUM ? EW_MIN(x, y)                                                  \
   : (op) == KL_OP_MAXIMUM ? EW_MAX(x, y)                                                  \
                           : (x) * (y))
/* x op y for the binary ops (int64 never divides: inference refuses it). */
#define EW_APPLY(op, x, y) ((op) == KL_OP_DIV ? (x) / (y) : EW_APPLY3(op, x, y))

/* o[i] = a[i*sa] op b[i*sb] for i < n (strides 0 or 1); serial. */
static void ew_loop(kl_op op, kl_dtype dt, int64_t n, const void *a, int64_t sa, const void *b,
                    int64_t sb, void *o) {
#define EW_BODY(EXPR)                                                                      \
  for (int64_t i = 0; i < n; i++) {                                                        \
    T x = pa[i * sa], y = pb[i * sb];                                                      \
    po[i] = EXPR;                                                                          \
  }
  KL_DISPATCH(dt, T, {
    const T *pa = a, *pb = b;
    T *po = o;
    switch (op) {
      case KL_OP_ADD: EW_BODY(x + y) break;
      case KL_OP_SUB: EW_BODY(x - y) break;
      case KL_OP_MUL: EW_BODY(x * y) break;
      case KL_OP_MINIMUM: EW_BODY(EW_MIN(x, y)) break;
      case KL_OP_MAXIMUM: EW_BODY(EW_MAX(x, y)) break;
      default:
        if (dt != KL_INT64) EW_BODY(x / y)
        break;
    }
  })
#undef EW_BODY
}

kl_status kl_ew_binary_dense(kl_op op, const kl_tensor *a, const kl_tensor *b, kl_tensor **out) {
  int nd;
  int64_t shape[KL_MAX_NDIM];
  kl_tensor *r = NULL;
  KL_TRY(kl_ew_broadcast_shape(kl_op_name(op), a->ndim, a->shape, b->ndim, b->shape, &nd, shape));
  KL_TRY(kl_tensor_new_dense(a->dtype, nd, shape, &r));
  int64_t n = kl_tensor_numel(r), na = kl_tensor_numel(a), nb = kl_tensor_numel(b);
  size_t es = kl_dtype_size(a->dtype);
  const char *pa = a->data, *pb = b->data;
  char *po = r->data;
  if (n == 0) goto ok;
  if ((na == n || na == 1) && (nb == n || nb == 1)) {
    /* Same shape, or one side a single value: one flat loop, split in static chunks. */
    int64_t sa = na == n ? 1 : 0, sb = nb == n ? 1 : 0, ch = 4096;
    int64_t nch = (n + ch - 1) / ch;
#pragma omp parallel for schedule(static) if (n > KL_EW_PAR)
    for (int64_t c = 0; c < nch; c++) {
      int64_t lo = c * ch, m = n - lo < ch ? n - lo : ch;
      ew_loop(op, a->dtype, m, pa + (size_t)(lo * sa) * es, sa, pb + (size_t)(lo * sb) * es, sb,
              po + (size_t)lo * es);
    }
    goto ok;
  }
  /* General case: strides of a and b over the output's axes (0 on broadcast axes); the
   * last axis is the inner loop, the others are walked by coordinates. */
  int64_t sta[KL_MAX_NDIM], stb[KL_MAX_NDIM];
  {
    int64_t ca = 1, cb = 1;
    for (int k = nd - 1; k >= 0; k--) {
      int ia = a->ndim - nd + k, ib = b->ndim - nd + k;
      int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
      sta[k] = da == 1 ? 0 : ca;
      stb[k] = db == 1 ? 0 : cb;
      ca *= da;
      cb *= db;
    }
  }
  int64_t inner = nd ? shape[nd - 1] : 1, outer = n / inner;
  int64_t ia_in = nd ? sta[nd - 1] : 0, ib_in = nd ? stb[nd - 1] : 0;
#pragma omp parallel for schedule(static) if (n > KL_EW_PAR)
  for (int64_t o = 0; o < outer; o++) {
    int64_t rem = o, offa = 0, offb = 0;
    for (int k = nd - 2; k >= 0; k--) {
      int64_t c = rem % shape[k];
      rem /= shape[k];
      offa += c * sta[k];
      offb += c * stb[k];
    }
    ew_loop(op, a->dtype, inner, pa + (size_t)offa * es, ia_in, pb + (size_t)offb * es, ib_in,
            po + (size_t)(o * inner) * es);
  }
ok:
  *out = r;
  return KL_OK;
}

/* ------------------------------------------------------------ inference */

static kl_status bin_infer(kl_op op, const kl_meta *in, const kl_attrs *a, kl_meta *out) {
  const char *fn = kl_op_name(op);
  KL_CHECK(in[0].dtype == in[1].dtype, KL_EDTYPE, "%s: dtype mismatch (%s vs %s)", fn,
           kl_dtype_name(in[0].dtype), kl_dtype_name(in[1].dtype));
  KL_CHECK(op != KL_OP_DIV || in[0].dtype != KL_INT64, KL_EDTYPE,
           "%s: int64 is not supported (use float32 or float64)", fn);
  memset(out, 0, sizeof *out);
  KL_TRY(kl_ew_broadcast_shape(fn, in[0].ndim, in[0].shape, in[1].ndim, in[1].shape, &out->ndim,
                               out->shape));
  out->dtype = in[0].dtype;
  out->stype = KL_STYPE_DEFAULT;
  if (op != KL_OP_DIV && in[0].stype == in[1].stype && in[0].stype != KL_STYPE_DEFAULT &&
      in[0].ndim == out->ndim)
    out->stype = in[0].stype; /* csr op csr -> csr, rsp op rsp -> rsp */
  return KL_OK;
}

#define KL_BIN_INFER(NAME, OP)                                                             \
  static kl_status NAME(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {     \
    return bin_infer(OP, in, a, out);                                                      \
  }
KL_BIN_INFER(add_infer, KL_OP_ADD)
KL_BIN_INFER(sub_infer, KL_OP_SUB)
KL_BIN_INFER(mul_infer, KL_OP_MUL)
KL_BIN_INFER(div_infer, KL_OP_DIV)
KL_BIN_INFER(minimum_infer, KL_OP_MINIMUM)
KL_BIN_INFER(maximum_infer, KL_OP_MAXIMUM)

/* ------------------------------------------------------------ sparse kernels */

static int both(kl_tensor *const *in, kl_stype s) {
  return in[0]->stype == s && in[1]->stype == s && kl_same_shape(in[0], in[1]);
}
static int sup_csr_csr(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return both(in, KL_STYPE_CSR);
}
static int sup_rsp_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return both(in, KL_STYPE_ROW_SPARSE);
}
/* One sparse operand, one dense one, same shape. */
static int sup_sparse_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  int s0 = in[0]->stype != KL_STYPE_DEFAULT, s1 = in[1]->stype != KL_STYPE_DEFAULT;
  return s0 != s1 && kl_same_shape(in[0], in[1]);
}

/* csr op csr, same shape: a union merge of each row (+, -) or an intersection (*). */
static kl_status csr_csr(kl_op op, kl_tensor *const *in, kl_tensor **out) {
  const kl_tensor *A = in[0], *B = in[1];
  int64_t rows = A->shape[0], cols = A->shape[1];
  int isect = op == KL_OP_MUL;
  kl_tensor *r = NULL;
  int64_t *cnt = kl_malloc_n((size_t)rows + 1, sizeof *cnt);
  if (!cnt) return KL_ENOMEM;
KL_OMP_FOR(rows > 1024)
  for (int64_t i = 0; i < rows; i++) {
    int64_t p = A->indptr[i], pe = A->indptr[i + 1], q = B->indptr[i], qe = B->indptr[i + 1];
    int64_t c = 0;
    while (p < pe && q < qe) {
      int64_t ca = A->indices[p], cb = B->indices[q];
      if (ca == cb) c++, p++, q++;
      else if (ca < cb) c += !isect, p++;
      else c += !isect, q++;
    }
    if (!isect) c += (pe - p) + (qe - q);
    cnt[i] = c;
  }
  int64_t nnz = 0;
  for (int64_t i = 0; i < rows; i++) {
    int64_t c = cnt[i];
    cnt[i] = nnz;
    nnz += c;
  }
  cnt[rows] = nnz;
  kl_status st = kl_tensor_new_csr(A->dtype, rows, cols, nnz, &r);
  if (st != KL_OK) goto done;
  memcpy(r->indptr, cnt, (size_t)(rows + 1) * sizeof *cnt);
  KL_DISPATCH(A->dtype, T, {
    const T *va = A->data, *vb = B->data;
    T *vr = r->data;
    const T zero = 0;
KL_OMP_FOR(rows > 1024)
    for (int64_t i = 0; i < rows; i++) {
      int64_t p = A->indptr[i], pe = A->indptr[i + 1], q = B->indptr[i], qe = B->indptr[i + 1];
      int64_t w = r->indptr[i];
      while (p < pe && q < qe) {
        int64_t ca = A->indices[p], cb = B->indices[q];
        if (ca == cb) {
          r->indices[w] = ca;
          vr[w++] = EW_APPLY3(op, va[p], vb[q]);
          p++, q++;
        } else if (ca < cb) {
          if (!isect) r->indices[w] = ca, vr[w++] = EW_APPLY3(op, va[p], zero);
          p++;
        } else {
          if (!isect) r->indices[w] = cb, vr[w++] = EW_APPLY3(op, zero, vb[q]);
          q++;
        }
      }
      for (; !isect && p < pe; p++) r->indices[w] = A->indices[p], vr[w++] = EW_APPLY3(op, va[p], zero);
      for (; !isect && q < qe; q++) r->indices[w] = B->indices[q], vr[w++] = EW_APPLY3(op, zero, vb[q]);
    }
  })
  *out = r;
  r = NULL;
done:
  kl_free(cnt);
  kl_tensor_release(r);
  return st;
}

/* rsp op rsp, same shape: union (+, -) or intersection (*) of the stored rows. */
static kl_status rsp_rsp(kl_op op, kl_tensor *const *in, kl_tensor **out) {
  const kl_tensor *A = in[0], *B = in[1];
  int isect = op == KL_OP_MUL;
  int64_t w = kl_row_width(A), na = A->nnz, nb = B->nnz, n = 0;
  kl_tensor *r = NULL;
  kl_status st = KL_OK;
  /* src[k] = {row of A or -1, row of B or -1} for output row k */
  int64_t *src = kl_malloc_n((size_t)(na + nb + 1) * 2, sizeof *src);
  if (!src) return KL_ENOMEM;
  for (int64_t p = 0, q = 0; p < na || q < nb;) {
    int64_t ra = p < na ? A->indices[p] : INT64_MAX, rb = q < nb ? B->indices[q] : INT64_MAX;
    if (ra == rb) src[2 * n] = p++, src[2 * n + 1] = q++, n++;
    else if (ra < rb) {
      if (!isect) src[2 * n] = p, src[2 * n + 1] = -1, n++;
      p++;
    } else {
      if (!isect) src[2 * n] = -1, src[2 * n + 1] = q, n++;
      q++;
    }
  }
  st = kl_tensor_new_rsp(A->dtype, A->ndim, A->shape, n, &r);
  if (st != KL_OK) goto done;
  KL_DISPATCH(A->dtype, T, {
    const T *va = A->data, *vb = B->data;
    T *vr = r->data;
    const T zero = 0;
KL_OMP_FOR(n * w > KL_EW_PAR)
    for (int64_t k = 0; k < n; k++) {
      int64_t p = src[2 * k], q = src[2 * k + 1];
      T *o = vr + k * w;
      r->indices[k] = p >= 0 ? A->indices[p] : B->indices[q];
      if (p >= 0 && q >= 0) {
        for (int64_t j = 0; j < w; j++) o[j] = EW_APPLY3(op, va[p * w + j], vb[q * w + j]);
      } else if (p >= 0) {
        for (int64_t j = 0; j < w; j++) o[j] = EW_APPLY3(op, va[p * w + j], zero);
      } else {
        for (int64_t j = 0; j < w; j++) o[j] = EW_APPLY3(op, zero, vb[q * w + j]);
      }
    }
  })
  *out = r;
  r = NULL;
done:
  kl_free(src);
  kl_tensor_release(r);
  return st;
}

/* sparse op dense or dense op sparse, same shape -> dense. Every output value is first
 * computed with the sparse side's implicit 0 (so 0/0, 0*inf give what the dense
 * computation gives), then the stored entries are redone with their values. The sparse
 * operand is never densified. */
static kl_status sparse_dense(kl_op op, kl_tensor *const *in, kl_tensor **out) {
  int sp = in[0]->stype != KL_STYPE_DEFAULT ? 0 : 1;
  const kl_tensor *S = in[sp], *D = in[1 - sp];
  kl_tensor *r = NULL;
  KL_TRY(kl_tensor_new_dense(D->dtype, D->ndim, D->shape, &r));
  int64_t n = kl_tensor_numel(D);
  size_t es = kl_dtype_size(D->dtype);
  const char *pd = D->data, *ps = S->data;
  char *po = r->data;
  int64_t zero[1] = {0}; /* 0 in every dtype's bit pattern */
  int64_t ch = 4096, nch = (n + ch - 1) / ch;
#pragma omp parallel for schedule(static) if (n > KL_EW_PAR)
  for (int64_t c = 0; c < nch; c++) {
    int64_t lo = c * ch, m = n - lo < ch ? n - lo : ch;
    if (sp == 0) ew_loop(op, D->dtype, m, zero, 0, pd + (size_t)lo * es, 1, po + (size_t)lo * es);
    else ew_loop(op, D->dtype, m, pd + (size_t)lo * es, 1, zero, 0, po + (size_t)lo * es);
  }
  if (S->stype == KL_STYPE_CSR) {
    int64_t rows = S->shape[0], cols = S->shape[1];
    KL_DISPATCH(D->dtype, T, {
      const T *vs = (const T *)ps, *vd = (const T *)pd;
      T *vo = (T *)po;
KL_OMP_FOR(S->nnz > KL_EW_PAR)
      for (int64_t i = 0; i < rows; i++)
        for (int64_t p = S->indptr[i]; p < S->indptr[i + 1]; p++) {
          int64_t k = i * cols + S->indices[p];
          vo[k] = sp == 0 ? EW_APPLY(op, vs[p], vd[k]) : EW_APPLY(op, vd[k], vs[p]);
        }
    })
  } else {
    int64_t w = kl_row_width(S);
KL_OMP_FOR(S->nnz * w > KL_EW_PAR)
    for (int64_t k = 0; k < S->nnz; k++) {
      size_t od = (size_t)(S->indices[k] * w) * es, os = (size_t)(k * w) * es;
      if (sp == 0) ew_loop(op, D->dtype, w, ps + os, 1, pd + od, 1, po + od);
      else ew_loop(op, D->dtype, w, pd + od, 1, ps + os, 1, po + od);
    }
  }
  *out = r;
  return KL_OK;
}

/* Per-op entry points: the registry's kernel signature carries no op id. */
#define KL_BIN_KERNELS(P, OP)                                                              \
  static kl_status P##_dense(kl_tensor *const *in, int nin, const kl_attrs *a,             \
                             kl_tensor **out) {                                            \
    return kl_ew_binary_dense(OP, in[0], in[1], out);                                      \
  }
#define KL_MERGE_KERNELS(P, OP)                                                            \
  static kl_status P##_csr_csr(kl_tensor *const *in, int nin, const kl_attrs *a,           \
                               kl_tensor **out) {                                          \
    return csr_csr(OP, in, out);                                                           \
  }                                                                                        \
  static kl_status P##_rsp_rsp(kl_tensor *const *in, int nin, const kl_attrs *a,           \
                               kl_tensor **out) {                                          \
    return rsp_rsp(OP, in, out);                                                           \
  }
#define KL_SPDENSE_KERNEL(P, OP)                                                           \
  static kl_status P##_sp_dense(kl_tensor *const *in, int nin, const kl_attrs *a,          \
                                kl_tensor **out) {                                         \
    return sparse_dense(OP, in, out);                                                      \
  }
KL_BIN_KERNELS(add, KL_OP_ADD)
KL_BIN_KERNELS(sub, KL_OP_SUB)
KL_BIN_KERNELS(mul, KL_OP_MUL)
KL_BIN_KERNELS(div, KL_OP_DIV)
KL_BIN_KERNELS(minimum, KL_OP_MINIMUM)
KL_BIN_KERNELS(maximum, KL_OP_MAXIMUM)
KL_MERGE_KERNELS(add, KL_OP_ADD)
KL_MERGE_KERNELS(sub, KL_OP_SUB)
KL_MERGE_KERNELS(mul, KL_OP_MUL)
KL_MERGE_KERNELS(minimum, KL_OP_MINIMUM)
KL_MERGE_KERNELS(maximum, KL_OP_MAXIMUM)
KL_SPDENSE_KERNEL(add, KL_OP_ADD)
KL_SPDENSE_KERNEL(sub, KL_OP_SUB)
KL_SPDENSE_KERNEL(mul, KL_OP_MUL)
KL_SPDENSE_KERNEL(div, KL_OP_DIV)
KL_SPDENSE_KERNEL(minimum, KL_OP_MINIMUM)
KL_SPDENSE_KERNEL(maximum, KL_OP_MAXIMUM)

/* ------------------------------------------------------------ backward */

/* The gradient of minimum / maximum before the broadcast reduction, as TensorFlow: g goes
 * to a where a <= b (minimum) or a >= b (maximum), ties included, and to b elsewhere (a NaN
 * comparison sends it to b). The comparison is read from a - b (so inf vs inf, whose
 * difference is NaN, counts as not tied). *full new, dense, the broadcast shape. */
static kl_status minmax_grad(kl_op op, const kl_tensor *A, const kl_tensor *B, const kl_tensor *G,
                             int i, kl_tensor **full) {
  kl_tensor *D = NULL;
  KL_TRY(kl_ew_binary_dense(KL_OP_SUB, A, B, &D));
  int64_t n = kl_tensor_numel(D);
  KL_DISPATCH(D->dtype, T, {
    T *pd = D->data;
    const T *pg = G->data;
    for (int64_t k = 0; k < n; k++) {
      int to_a = op == KL_OP_MINIMUM ? pd[k] <= 0 : pd[k] >= 0;
      pd[k] = to_a == (i == 0) ? pg[k] : 0;
    }
  })
  *full = D;
  return KL_OK;
}

/* d(a op b)/d in[i] . gout, summed over the axes in[i] was broadcast along. */
static kl_status bin_backward(kl_op op, kl_tensor *const *in, const kl_tensor *gout, int i,
                              kl_tensor **gin) {
  kl_tensor *A = NULL, *B = NULL, *G = NULL, *t1 = NULL, *t2 = NULL, *full = NULL;
  kl_status st = kl_ew_grad_dtype(kl_op_name(op), in[0]->dtype);
  if (st == KL_OK) st = kl_ew_densify(in[0], &A);
  if (st == KL_OK) st = kl_ew_densify(in[1], &B);
  if (st == KL_OK) st = kl_ew_densify(gout, &G);
  if (st != KL_OK) goto done;
  if (op == KL_OP_MINIMUM || op == KL_OP_MAXIMUM) {
    st = minmax_grad(op, A, B, G, i, &full);
  } else if (op == KL_OP_ADD || (op == KL_OP_SUB && i == 0)) {
    full = kl_tensor_retain(G);
  } else if (op == KL_OP_SUB) { /* -g */
    st = kl_tensor_copy(G, &full);
    if (st == KL_OK) {
      int64_t n = kl_tensor_numel(full);
      KL_DISPATCH(full->dtype, T, {
        T *p = full->data;
        for (int64_t k = 0; k < n; k++) p[k] = -p[k];
      })
    }
  } else if (op == KL_OP_MUL) {
    st = kl_ew_binary_dense(KL_OP_MUL, G, i == 0 ? B : A, &full);
  } else if (i == 0) { /* g / b */
    st = kl_ew_binary_dense(KL_OP_DIV, G, B, &full);
  } else { /* -g * a / b^2 = (g * (a / b) / b) * -1 */
    st = kl_ew_binary_dense(KL_OP_DIV, A, B, &t1);
    if (st == KL_OK) st = kl_ew_binary_dense(KL_OP_DIV, t1, B, &t2);
    if (st == KL_OK) st = kl_ew_binary_dense(KL_OP_MUL, G, t2, &full);
    if (st == KL_OK) {
      int64_t n = kl_tensor_numel(full);
      KL_DISPATCH(full->dtype, T, {
        T *p = full->data;
        for (int64_t k = 0; k < n; k++) p[k] = -p[k];
      })
    }
  }
  if (st == KL_OK) st = kl_ew_sum_to_shape(full, in[i]->ndim, in[i]->shape, gin);
done:
  kl_tensor_release(A);
  kl_tensor_release(B);
  kl_tensor_release(G);
  kl_tensor_release(t1);
  kl_tensor_release(t2);
  kl_tensor_release(full);
  return st;
}

#define KL_BIN_BACKWARD(P, OP)                                                             \
  static kl_status P##_backward(kl_tensor *const *in, int nin, const kl_attrs *a,          \
                                const kl_tensor *out, const kl_tensor *gout, int i,        \
                                kl_stype want, kl_tensor **gin) {                          \
    return bin_backward(OP, in, gout, i, gin);                                             \
  }
KL_BIN_BACKWARD(add, KL_OP_ADD)
KL_BIN_BACKWARD(sub, KL_OP_SUB)
KL_BIN_BACKWARD(mul, KL_OP_MUL)
KL_BIN_BACKWARD(div, KL_OP_DIV)
KL_BIN_BACKWARD(minimum, KL_OP_MINIMUM)
KL_BIN_BACKWARD(maximum, KL_OP_MAXIMUM)

/* ------------------------------------------------------------ the defs */

#define KL_BIN_TABLE(P)                                                                    \
  static const kl_kernel_entry P##_kernels[] = {                                           \
      {"csr.csr", sup_csr_csr, P##_csr_csr},                                               \
      {"rsp.rsp", sup_rsp_rsp, P##_rsp_rsp},                                               \
      {"sparse.dense", sup_sparse_dense, P##_sp_dense},                                    \
      {NULL, NULL, NULL}};
KL_BIN_TABLE(add)
KL_BIN_TABLE(sub)
KL_BIN_TABLE(mul)
KL_BIN_TABLE(minimum)
KL_BIN_TABLE(maximum)
/* divide: x/0 is not 0, so two sparse operands need every position: no merge kernel. */
static const kl_kernel_entry div_kernels[] = {{"sparse.dense", sup_sparse_dense, div_sp_dense},
                                              {NULL, NULL, NULL}};

const kl_op_def kl_opdef_add = {"add", 2, 2, add_infer, add_dense, add_kernels, add_backward};
const kl_op_def kl_opdef_sub = {"subtract", 2, 2, sub_infer, sub_dense, sub_kernels, sub_backward};
const kl_op_def kl_opdef_mul = {"multiply", 2, 2, mul_infer, mul_dense, mul_kernels, mul_backward};
const kl_op_def kl_opdef_div = {"divide", 2, 2, div_infer, div_dense, div_kernels, div_backward};
const kl_op_def kl_opdef_minimum = {"minimum", 2, 2, minimum_infer, minimum_dense,
                                    minimum_kernels, minimum_backward};
const kl_op_def kl_opdef_maximum = {"maximum", 2, 2, maximum_infer, maximum_dense,
                                    maximum_kernels, maximum_backward};
