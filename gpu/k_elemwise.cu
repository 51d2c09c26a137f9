/* k_elemwise.cu: elementwise kernels (two tensors, a tensor and a number, one tensor), one
 * thread an element, with the CPU's expressions (backend/src/ops_elemwise.c, ops_scalar.c,
 * ops_unary.c) so that each element gets the CPU's bits: the NaN rules of minimum / maximum
 * and relu, abs keeping -0, sqrt through double. */
#include <math.h>

#include "kl_cuda_rt.h"

template <typename T> __device__ __forceinline__ T ew_bin(int op, T x, T y) {
  switch (op) {
    case KL_OP_ADD: return x + y;
    case KL_OP_SUB: return x - y;
    case KL_OP_MUL: return x * y;
    case KL_OP_DIV: return x / y;
    case KL_OP_MINIMUM: return (x != x || x < y) ? x : y;
    default: return (x != x || x > y) ? x : y; /* MAXIMUM */
  }
}
/* int64 never divides (refused before the launch). */
template <> __device__ __forceinline__ int64_t ew_bin<int64_t>(int op, int64_t x, int64_t y) {
  switch (op) {
    case KL_OP_ADD: return x + y;
    case KL_OP_SUB: return x - y;
    case KL_OP_MUL: return x * y;
    case KL_OP_MINIMUM: return x < y ? x : y;
    default: return x > y ? x : y;
  }
}

template <typename T> __device__ __forceinline__ T ew_scal(int op, T x, T c) {
  switch (op) {
    case KL_OP_ADD_SCALAR: return x + c;
    case KL_OP_MUL_SCALAR: return x * c;
    case KL_OP_RSUB_SCALAR: return c - x;
    case KL_OP_MINIMUM_SCALAR: return (x != x || x < c) ? x : c;
    case KL_OP_MAXIMUM_SCALAR: return (x != x || x > c) ? x : c;
    case KL_OP_DIV_SCALAR: return x / c;
    default: return c / x; /* RDIV_SCALAR */
  }
}

template <typename T> __device__ __forceinline__ T ew_sqrt(T x) { return (T)sqrt((double)x); }
template <> __device__ __forceinline__ int64_t ew_sqrt<int64_t>(int64_t x) { return x; }

template <typename T> __device__ __forceinline__ T ew_un(int op, T x) {
  switch (op) {
    case KL_OP_NEG: return -x;
    case KL_OP_SQUARE: return x * x;
    case KL_OP_ABS: return x < 0 ? -x : x;
    case KL_OP_RELU: return x > 0 || x != x ? x : 0;
    default: return ew_sqrt<T>(x); /* SQRT (float only) */
  }
}

template <typename T>
__global__ void k_ew_binary(int op, const T *a, int64_t sa, const T *b, int64_t sb, T *o,
                            int64_t n) {
  KL_GRID_LOOP(i, n) o[i] = ew_bin<T>(op, a[i * sa], b[i * sb]);
}
template <typename T> __global__ void k_ew_scalar(int op, const T *x, T c, T *o, int64_t n) {
  KL_GRID_LOOP(i, n) o[i] = ew_scal<T>(op, x[i], c);
}
template <typename T> __global__ void k_ew_unary(int op, const T *x, T *o, int64_t n) {
  KL_GRID_LOOP(i, n) o[i] = ew_un<T>(op, x[i]);
}

static kl_status ew_dtype(const char *fn, kl_dtype dt, int float_only) {
  if (dt == KL_FLOAT32 || dt == KL_FLOAT64 || (dt == KL_INT64 && !float_only)) return KL_OK;
  return kl_cuda_seterr(KL_EDTYPE, "%s: dtype %s not supported", fn, kl_cuda_dtype_name(dt));
}

extern "C" kl_status kl_cuda_ew_binary(kl_op op, kl_dtype dt, const void *a, int64_t na,
                                       const void *b, int64_t nb, void *out, int64_t n,
                                       kl_cuda_stream s) {
  const char *fn = "cuda ew_binary";
  if (op != KL_OP_ADD && op != KL_OP_SUB && op != KL_OP_MUL && op != KL_OP_DIV &&
      op != KL_OP_MINIMUM && op != KL_OP_MAXIMUM)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  kl_status st = ew_dtype(fn, dt, op == KL_OP_DIV);
  if (st != KL_OK) return st;
  if (n < 0 || (na != n && na != 1) || (nb != n && nb != 1))
    return kl_cuda_seterr(KL_ESHAPE, "%s: sizes %lld and %lld for %lld outputs", fn,
                          (long long)na, (long long)nb, (long long)n);
  if (n == 0) return KL_OK;
  const int64_t sa = na == n ? 1 : 0, sb = nb == n ? 1 : 0;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_ew_binary<float>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op,
              (const float *)a, sa, (const float *)b, sb, (float *)out, n);
  else if (dt == KL_FLOAT64)
    KL_LAUNCH(k_ew_binary<double>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op,
              (const double *)a, sa, (const double *)b, sb, (double *)out, n);
  else
    KL_LAUNCH(k_ew_binary<int64_t>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op,
              (const int64_t *)a, sa, (const int64_t *)b, sb, (int64_t *)out, n);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_ew_scalar(kl_op op, kl_dtype dt, const void *x, double scalar,
                                       void *out, int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda ew_scalar";
  if (op != KL_OP_ADD_SCALAR && op != KL_OP_MUL_SCALAR && op != KL_OP_DIV_SCALAR &&
      op != KL_OP_RSUB_SCALAR && op != KL_OP_RDIV_SCALAR && op != KL_OP_MINIMUM_SCALAR &&
      op != KL_OP_MAXIMUM_SCALAR)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  kl_status st = ew_dtype(fn, dt, 1); /* int64 scalars: later (the CPU's range checks) */
  if (st != KL_OK) return st;
  if (n < 0) return kl_cuda_seterr(KL_ESHAPE, "%s: n=%lld", fn, (long long)n);
  if (n == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_ew_scalar<float>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op, (const float *)x,
              (float)scalar, (float *)out, n);
  else
    KL_LAUNCH(k_ew_scalar<double>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op,
              (const double *)x, scalar, (double *)out, n);
  return kl_cuda_launched(fn);
}

extern "C" kl_status kl_cuda_ew_unary(kl_op op, kl_dtype dt, const void *x, void *out,
                                      int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda ew_unary";
  if (op != KL_OP_NEG && op != KL_OP_SQUARE && op != KL_OP_ABS && op != KL_OP_RELU &&
      op != KL_OP_SQRT)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  kl_status st = ew_dtype(fn, dt, op == KL_OP_SQRT);
  if (st != KL_OK) return st;
  if (n < 0) return kl_cuda_seterr(KL_ESHAPE, "%s: n=%lld", fn, (long long)n);
  if (n == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_ew_unary<float>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op, (const float *)x,
              (float *)out, n);
  else if (dt == KL_FLOAT64)
    KL_LAUNCH(k_ew_unary<double>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op,
              (const double *)x, (double *)out, n);
  else
    KL_LAUNCH(k_ew_unary<int64_t>, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, (int)op,
              (const int64_t *)x, (int64_t *)out, n);
  return kl_cuda_launched(fn);
}
