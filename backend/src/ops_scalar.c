/* ops_scalar.c: tensor-with-number ops (x + s, x * s, x / s, s - x, s / x, min(x, s),
 * max(x, s), x ^ s) and gradients. */
#include <math.h>
#include <string.h>
#include "ops_ew.h"

static void scalar_map(kl_op op, double s, kl_dtype dt, int64_t n, const void *src, void *dst) {
#define SC_BODY(EXPR)                                                                      \
  for (int64_t i = 0; i < n; i++) {                                                        \
    T x = px[i];                                                                           \
    po[i] = EXPR;                                                                          \
  }
  KL_DISPATCH(dt, T, {
    const T *px = src;
    T *po = dst;
    const T c = (T)s; /* int64: inference checked that s is an integer in range */
    switch (op) {
      case KL_OP_ADD_SCALAR: SC_BODY(x + c) break;
      case KL_OP_MUL_SCALAR: SC_BODY(x * c) break;
      case KL_OP_RSUB_SCALAR: SC_BODY(c - x) break;
      case KL_OP_MINIMUM_SCALAR: SC_BODY((x != x || x < c) ? x : c) break; /* NaN stays */
      case KL_OP_MAXIMUM_SCALAR: SC_BODY((x != x || x > c) ? x : c) break;
      case KL_OP_POW_SCALAR:
        if (dt != KL_INT64) SC_BODY((T)pow((double)x, s))
        break;
      case KL_OP_DIV_SCALAR:
        if (dt != KL_INT64) SC_BODY(x / c)
        break;
      default: /* RDIV_SCALAR */
        if (dt != KL_INT64) SC_BODY(c / x)
        break;
    }
  })
#undef SC_BODY
}

/* Whether op's result keeps the input's stype: f(0) == 0 for this scalar (MXNet: x * s and
 * x / s keep it; x + s, s - x and s / x fill the zeros). */
static int scalar_keeps_stype(kl_op op, double s) {
  switch (op) {
    case KL_OP_MUL_SCALAR:
    case KL_OP_DIV_SCALAR: return 1;
    case KL_OP_MINIMUM_SCALAR: return s >= 0;
    case KL_OP_MAXIMUM_SCALAR: return s <= 0;
    case KL_OP_POW_SCALAR: return s > 0;
    default: return 0;
  }
}

static kl_status scalar_infer(kl_op op, const kl_meta *in, const kl_attrs *a, kl_meta *out) {
  const char *fn = kl_op_name(op);
  double s = a->scalar;
  KL_CHECK(!isnan(s) || (op != KL_OP_MINIMUM_SCALAR && op != KL_OP_MAXIMUM_SCALAR), KL_EINVAL,
           "%s: the bound is NaN", fn);
  if (in[0].dtype == KL_INT64) {
    KL_CHECK(op != KL_OP_DIV_SCALAR && op != KL_OP_RDIV_SCALAR && op != KL_OP_POW_SCALAR,
             KL_EDTYPE, "%s: int64 is not supported (use float32 or float64)", fn);
    KL_CHECK(isfinite(s) && s == floor(s) && fabs(s) <= 9007199254740992.0, KL_EINVAL,
             "%s: scalar %g is not an integer (the tensor is int64)", fn, s);
  }
  *out = in[0];
  if (!scalar_keeps_stype(op, s)) out->stype = KL_STYPE_DEFAULT;
  return KL_OK;
}

static kl_status scalar_run(kl_op op, kl_tensor *const *in, const kl_attrs *a,
                            kl_tensor **out) {
  int dense = !scalar_keeps_stype(op, a->scalar);
  return kl_ew_map_run(op, a->scalar, scalar_map, in[0], dense, out);
}

/* Gradients. x + s: g. x * s: g s. x / s: g / s. s - x: -g. s / x: -g s / x^2. min(x, s): g
 * where x <= s; max(x, s): g where x >= s (ties pass g, as TensorFlow's minimum / maximum
 * and clip_by_value). x ^ s: g s x^(s-1). A sparse gout keeps its stype through the first
 * four (the registry casts to what the caller wants). */
static kl_status scalar_backward(kl_op op, kl_tensor *const *in, const kl_attrs *a,
                                 const kl_tensor *gout, kl_tensor **gin) {
  KL_TRY(kl_ew_grad_dtype(kl_op_name(op), in[0]->dtype));
  switch (op) {
    case KL_OP_ADD_SCALAR: return kl_tensor_copy(gout, gin);
    case KL_OP_MUL_SCALAR:
    case KL_OP_DIV_SCALAR: return kl_ew_map_run(op, a->scalar, scalar_map, gout, 0, gin);
    case KL_OP_RSUB_SCALAR: return kl_ew_map_run(KL_OP_MUL_SCALAR, -1.0, scalar_map, gout, 0, gin);
    default: break;
  }
  kl_tensor *X = NULL, *G = NULL, *r = NULL;
  kl_status st = kl_ew_densify(in[0], &X);
  if (st == KL_OK) st = kl_ew_densify(gout, &G);
  if (st == KL_OK) st = kl_tensor_new_dense(X->dtype, X->ndim, X->shape, &r);
  if (st == KL_OK) {
    int64_t n = kl_tensor_numel(X);
    double s = a->scalar;
    KL_DISPATCH(X->dtype, T, {
      const T *px = X->data, *pg = G->data;
      T *po = r->data;
      KL_OMP_FOR(n > KL_EW_PAR)
      for (int64_t k = 0; k < n; k++) {
        double x = (double)px[k], g = (double)pg[k], d;
        if (op == KL_OP_MINIMUM_SCALAR) d = x <= s ? g : 0;
        else if (op == KL_OP_MAXIMUM_SCALAR) d = x >= s ? g : 0;
        else if (op == KL_OP_POW_SCALAR) d = s == 0 ? 0 : g * s * pow(x, s - 1);
        else d = -g * s / (x * x); /* RDIV_SCALAR */
        po[k] = (T)d;
      }
    })
    *gin = r;
    r = NULL;
  }
  kl_tensor_release(X);
  kl_tensor_release(G);
  kl_tensor_release(r);
  return st;
}

#define KL_SCALAR_OP(P, OP, NAME)                                                          \
  static kl_status P##_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) { \
    return scalar_infer(OP, in, a, out);                                                   \
  }                                                                                        \
  static kl_status P##_run(kl_tensor *const *in, int nin, const kl_attrs *a,               \
                           kl_tensor **out) {                                              \
    return scalar_run(OP, in, a, out);                                                     \
  }                                                                                        \
  static kl_status P##_backward(kl_tensor *const *in, int nin, const kl_attrs *a,          \
                                const kl_tensor *out, const kl_tensor *gout, int i,        \
                                kl_stype want, kl_tensor **gin) {                          \
    return scalar_backward(OP, in, a, gout, gin);                                          \
  }                                                                                        \
  KL_OPDEF_SPARSE_RUN(P, NAME)

KL_SCALAR_OP(add_scalar, KL_OP_ADD_SCALAR, "add_scalar")
KL_SCALAR_OP(mul_scalar, KL_OP_MUL_SCALAR, "mul_scalar")
KL_SCALAR_OP(div_scalar, KL_OP_DIV_SCALAR, "div_scalar")
KL_SCALAR_OP(rsub_scalar, KL_OP_RSUB_SCALAR, "rsub_scalar")
KL_SCALAR_OP(rdiv_scalar, KL_OP_RDIV_SCALAR, "rdiv_scalar")
KL_SCALAR_OP(minimum_scalar, KL_OP_MINIMUM_SCALAR, "minimum_scalar")
KL_SCALAR_OP(maximum_scalar, KL_OP_MAXIMUM_SCALAR, "maximum_scalar")
KL_SCALAR_OP(pow_scalar, KL_OP_POW_SCALAR, "pow_scalar")
