/* k_math_common.h: what the math kernel files (gpu/k_math*.cu) share: the dtype dispatch of
 * their launchers, launch helpers and the CPU's elementwise expressions (ops_elemwise.c,
 * ops_scalar.c, ops_unary.c) as device functions. Included by .cu files only; every name
 * here is static or in an anonymous namespace, so each file has its own copy. */
#ifndef K_MATH_COMMON_H
#define K_MATH_COMMON_H
#include <math.h>

#include "kl_cuda_math.h"
#include "kl_cuda_rt.h"

/* Runs body with T the C type of dt (float, double, int64_t). */
#define KM_DISPATCH(dt, T, ...)                                                             \
  do {                                                                                      \
    if ((dt) == KL_FLOAT32) {                                                               \
      typedef float T;                                                                      \
      __VA_ARGS__                                                                           \
    } else if ((dt) == KL_FLOAT64) {                                                        \
      typedef double T;                                                                     \
      __VA_ARGS__                                                                           \
    } else {                                                                                \
      typedef int64_t T;                                                                    \
      __VA_ARGS__                                                                           \
    }                                                                                       \
  } while (0)
/* The same over float and double only. */
#define KM_DISPATCH_F(dt, T, ...)                                                           \
  do {                                                                                      \
    if ((dt) == KL_FLOAT32) {                                                               \
      typedef float T;                                                                      \
      __VA_ARGS__                                                                           \
    } else {                                                                                \
      typedef double T;                                                                     \
      __VA_ARGS__                                                                           \
    }                                                                                       \
  } while (0)

/* Launches kernel over n items (n > 0) with the usual grid, then returns the launch's
 * status from the enclosing launcher (fn names it in a failure). */
#define KM_LAUNCH_N(fn, n, kernel, ...)                                                     \
  do {                                                                                      \
    KL_LAUNCH(kernel, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, __VA_ARGS__);                    \
    kl_status km_st_ = kl_cuda_launched(fn);                                                \
    if (km_st_ != KL_OK) return km_st_;                                                     \
  } while (0)

namespace {

inline kl_status km_dtype(const char *fn, kl_dtype dt, int float_only) {
  if (dt == KL_FLOAT32 || dt == KL_FLOAT64 || (dt == KL_INT64 && !float_only)) return KL_OK;
  return kl_cuda_seterr(KL_EDTYPE, "%s: dtype %s not supported", fn, kl_cuda_dtype_name(dt));
}

inline kl_status km_count(const char *fn, const char *what, int64_t n) {
  if (n >= 0) return KL_OK;
  return kl_cuda_seterr(KL_ESHAPE, "%s: %s = %lld", fn, what, (long long)n);
}

/* x op y for the binary ops (EW_APPLY of ops_elemwise.c; minimum / maximum: a NaN operand
 * wins). int64 never divides (refused before any launch). */
template <typename T> __device__ __forceinline__ T km_div(T x, T y) { return x / y; }
template <> __device__ __forceinline__ int64_t km_div<int64_t>(int64_t x, int64_t y) {
  return 0;
}
template <typename T> __device__ __forceinline__ T km_bin(int op, T x, T y) {
  switch (op) {
    case KL_OP_ADD: return x + y;
    case KL_OP_SUB: return x - y;
    case KL_OP_MUL: return x * y;
    case KL_OP_MINIMUM: return (x != x || x < y) ? x : y;
    case KL_OP_MAXIMUM: return (x != x || x > y) ? x : y;
    default: return km_div<T>(x, y); /* DIV */
  }
}

}  // namespace

#endif /* K_MATH_COMMON_H */
