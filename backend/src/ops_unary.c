/* ops_unary.c: one-input math ops (negative, square, sqrt, abs, relu keep the stype; exp,
 * log, sigmoid, tanh, softmax give dense) and their gradients. */
#include <math.h>
#include <string.h>
#include "ops_ew.h"

static inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

static void unary_map(kl_op op, double s, kl_dtype dt, int64_t n, const void *src, void *dst) {
#define UN_BODY(EXPR)                                                                      \
  for (int64_t i = 0; i < n; i++) {                                                        \
    T x = px[i];                                                                           \
    po[i] = EXPR;                                                                          \
  }
  KL_DISPATCH(dt, T, {
    const T *px = src;
    T *po = dst;
    switch (op) {
      case KL_OP_NEG: UN_BODY(-x) break;
      case KL_OP_SQUARE: UN_BODY(x * x) break;
      case KL_OP_ABS: UN_BODY(x < 0 ? -x : x) break;
      case KL_OP_RELU: UN_BODY(x > 0 || x != x ? x : 0) break; /* NaN stays NaN */
      case KL_OP_SQRT: UN_BODY((T)sqrt((double)x)) break;
      case KL_OP_EXP: UN_BODY((T)exp((double)x)) break;
      case KL_OP_LOG: UN_BODY((T)log((double)x)) break;
      case KL_OP_SIGMOID: UN_BODY((T)sigmoid((double)x)) break;
      default: UN_BODY((T)tanh((double)x)) break;
    }
  })
#undef UN_BODY
}

/* The ops whose result keeps the input's stype (f(0) == 0). */
static int keeps_stype(kl_op op) {
  return op == KL_OP_NEG || op == KL_OP_SQUARE || op == KL_OP_SQRT || op == KL_OP_ABS ||
         op == KL_OP_RELU;
}

static kl_status unary_infer(kl_op op, const kl_meta *in, const kl_attrs *a, kl_meta *out) {
  const char *fn = kl_op_name(op);
  int int_ok = op == KL_OP_NEG || op == KL_OP_SQUARE || op == KL_OP_ABS || op == KL_OP_RELU;
  KL_CHECK(int_ok || in[0].dtype != KL_INT64, KL_EDTYPE,
           "%s: int64 is not supported (use float32 or float64)", fn);
  KL_CHECK(op != KL_OP_SOFTMAX || in[0].ndim >= 1, KL_ESHAPE,
           "%s: needs at least 1 dimension, got a scalar", fn);
  *out = in[0];
  if (!keeps_stype(op)) out->stype = KL_STYPE_DEFAULT;
  return KL_OK;
}

static kl_status unary_run(kl_op op, kl_tensor *const *in, const kl_attrs *a, kl_tensor **out) {
  return kl_ew_map_run(op, 0.0, unary_map, in[0], !keeps_stype(op), out);
}

/* ------------------------------------------------------------ softmax */

/* Softmax of n values at p into o (stable: the max is subtracted first). */
#define SOFTMAX_ROW(T, p, o, n)                                                            \
  do {                                                                                     \
    double m_ = -INFINITY, s_ = 0;                                                         \
    for (int64_t j_ = 0; j_ < (n); j_++) m_ = (double)(p)[j_] > m_ ? (double)(p)[j_] : m_;      \
    for (int64_t j_ = 0; j_ < (n); j_++) s_ += exp((double)(p)[j_] - m_);                      \
    for (int64_t j_ = 0; j_ < (n); j_++) (o)[j_] = (T)(exp((double)(p)[j_] - m_) / s_);         \
  } while (0)

static kl_status softmax_dense(kl_tensor *const *in, int nin, const kl_attrs *a,
                               kl_tensor **out) {
  const kl_tensor *x = in[0];
  kl_tensor *r = NULL;
  KL_TRY(kl_tensor_new_dense(x->dtype, x->ndim, x->shape, &r));
  int64_t last = x->shape[x->ndim - 1], n = kl_tensor_numel(x);
  int64_t rows = last ? n / last : 0;
  KL_DISPATCH(x->dtype, T, {
    const T *px = x->data;
    T *po = r->data;
    KL_OMP_FOR(n > KL_EW_PAR)
    for (int64_t i = 0; i < rows; i++) SOFTMAX_ROW(T, px + i * last, po + i * last, last);
  })
  *out = r;
  return KL_OK;
}

/* Softmax of a sparse tensor without densifying it: a csr row's missing entries are zeros
 * (they share one value); a row_sparse tensor's missing rows are uniform. */
static kl_status softmax_sparse(kl_tensor *const *in, int nin, const kl_attrs *a,
                                kl_tensor **out) {
  const kl_tensor *x = in[0];
  kl_tensor *r = NULL;
  KL_TRY(kl_tensor_new_dense(x->dtype, x->ndim, x->shape, &r));
  int64_t last = x->shape[x->ndim - 1], n = kl_tensor_numel(x);
  if (n == 0) goto ok;
  KL_DISPATCH(x->dtype, T, {
    const T *px = x->data;
    T *po = r->data;
    if (x->stype == KL_STYPE_CSR) {
      int64_t rows = x->shape[0];
      KL_OMP_FOR(n > KL_EW_PAR)
      for (int64_t i = 0; i < rows; i++) {
        int64_t lo = x->indptr[i], hi = x->indptr[i + 1];
        double m = hi - lo < last ? 0.0 : -INFINITY, s = 0;
        for (int64_t p = lo; p < hi; p++) m = (double)px[p] > m ? (double)px[p] : m;
        for (int64_t p = lo; p < hi; p++) s += exp((double)px[p] - m);
        s += (double)(last - (hi - lo)) * exp(-m);
        T z = (T)(exp(-m) / s);
        T *o = po + i * last;
        for (int64_t j = 0; j < last; j++) o[j] = z;
        for (int64_t p = lo; p < hi; p++) o[x->indices[p]] = (T)(exp((double)px[p] - m) / s);
      }
    } else {
      int64_t w = kl_row_width(x);
      T u = (T)(1.0 / (double)last);
      KL_OMP_FOR(n > KL_EW_PAR)
      for (int64_t k = 0; k < n; k++) po[k] = u;
      KL_OMP_FOR(x->nnz * w > KL_EW_PAR)
      for (int64_t k = 0; k < x->nnz; k++) {
        const T *src = px + k * w;
        T *o = po + x->indices[k] * w;
        for (int64_t j = 0; j < w; j += last) SOFTMAX_ROW(T, src + j, o + j, last);
      }
    }
  })
ok:
  *out = r;
  return KL_OK;
}

/* ------------------------------------------------------------ backward */

/* gin = gout * f'(x), with f' written through x and the output o. */
static kl_status unary_backward(kl_op op, kl_tensor *const *in, const kl_attrs *a,
                                const kl_tensor *out, const kl_tensor *gout, kl_tensor **gin) {
  kl_tensor *X = NULL, *O = NULL, *G = NULL, *r = NULL;
  kl_status st = kl_ew_grad_dtype(kl_op_name(op), in[0]->dtype);
  if (st == KL_OK) st = kl_ew_densify(in[0], &X);
  if (st == KL_OK) st = kl_ew_densify(gout, &G);
  if (st == KL_OK && out) st = kl_ew_densify(out, &O);
  else if (st == KL_OK) st = op == KL_OP_SOFTMAX ? softmax_dense(&X, 1, a, &O)
                                                 : kl_ew_map_run(op, 0, unary_map, X, 0, &O);
  if (st == KL_OK) st = kl_tensor_new_dense(X->dtype, X->ndim, X->shape, &r);
  if (st != KL_OK) goto done;
  int64_t n = kl_tensor_numel(X);
  KL_DISPATCH(X->dtype, T, {
    const T *px = X->data, *pg = G->data, *pv = O->data;
    T *pr = r->data;
    if (op == KL_OP_SOFTMAX) { /* gin = o * (g - sum(g * o)) along the last axis */
      int64_t last = X->shape[X->ndim - 1], rows = last ? n / last : 0;
      KL_OMP_FOR(n > KL_EW_PAR)
      for (int64_t i = 0; i < rows; i++) {
        const T *g = pg + i * last, *o = pv + i * last;
        double dotp = 0;
        for (int64_t j = 0; j < last; j++) dotp += (double)g[j] * o[j];
        for (int64_t j = 0; j < last; j++) pr[i * last + j] = (T)(o[j] * (g[j] - dotp));
      }
    } else {
      KL_OMP_FOR(n > KL_EW_PAR)
      for (int64_t k = 0; k < n; k++) {
        T x = px[k], o = pv[k], g = pg[k], d;
        switch (op) {
          case KL_OP_NEG: d = -1; break;
          case KL_OP_SQUARE: d = 2 * x; break;
          case KL_OP_SQRT: d = (T)0.5 / o; break;
          case KL_OP_ABS: d = x > 0 ? 1 : x < 0 ? -1 : 0; break;
          case KL_OP_RELU: d = x > 0 || x != x ? 1 : 0; break;
          case KL_OP_EXP: d = o; break;
          case KL_OP_LOG: d = 1 / x; break;
          case KL_OP_SIGMOID: d = o * (1 - o); break;
          default: d = 1 - o * o; break; /* tanh */
        }
        pr[k] = g * d;
      }
    }
  })
  *gin = r;
  r = NULL;
done:
  kl_tensor_release(X);
  kl_tensor_release(O);
  kl_tensor_release(G);
  kl_tensor_release(r);
  return st;
}

/* ------------------------------------------------------------ the defs */

#define KL_UNARY_COMMON(P, OP)                                                             \
  static kl_status P##_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) { \
    return unary_infer(OP, in, a, out);                                                    \
  }                                                                                        \
  static kl_status P##_backward(kl_tensor *const *in, int nin, const kl_attrs *a,          \
                                const kl_tensor *out, const kl_tensor *gout, int i,        \
                                kl_stype want, kl_tensor **gin) {                          \
    return unary_backward(OP, in, a, out, gout, gin);                                      \
  }
#define KL_UNARY_OP(P, OP, NAME)                                                           \
  KL_UNARY_COMMON(P, OP)                                                                   \
  static kl_status P##_run(kl_tensor *const *in, int nin, const kl_attrs *a,               \
                           kl_tensor **out) {                                              \
    return unary_run(OP, in, a, out);                                                      \
  }                                                                                        \
  KL_OPDEF_SPARSE_RUN(P, NAME)

KL_UNARY_OP(neg, KL_OP_NEG, "negative")
KL_UNARY_OP(square, KL_OP_SQUARE, "square")
KL_UNARY_OP(sqrt, KL_OP_SQRT, "sqrt")
KL_UNARY_OP(abs, KL_OP_ABS, "abs")
KL_UNARY_OP(relu, KL_OP_RELU, "relu")
KL_UNARY_OP(exp, KL_OP_EXP, "exp")
KL_UNARY_OP(log, KL_OP_LOG, "log")
KL_UNARY_OP(sigmoid, KL_OP_SIGMOID, "sigmoid")
KL_UNARY_OP(tanh, KL_OP_TANH, "tanh")

KL_UNARY_COMMON(softmax, KL_OP_SOFTMAX)
/* A 1-d row_sparse's last axis runs across its rows: left to the fallback. */
static int sup_softmax(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return in[0]->stype == KL_STYPE_CSR || (in[0]->stype == KL_STYPE_ROW_SPARSE && in[0]->ndim >= 2);
}
static const kl_kernel_entry softmax_kernels[] = {{"sparse", sup_softmax, softmax_sparse},
                                                  {NULL, NULL, NULL}};
const kl_op_def kl_opdef_softmax = {"softmax", 1, 1, softmax_infer, softmax_dense,
                                    softmax_kernels, softmax_backward};
