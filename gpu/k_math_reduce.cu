/* k_math_reduce.cu: sum / mean (dense, csr rows, row_sparse rows) and their gradient,
 * softmax (dense, csr, row_sparse) and its gradient, argmax, and a fill.
 *
 * Every sum runs in one thread, in double from 0, in the CPU's order (backend/src/
 * ops_reduce.c accumulates each output in double over k in order whatever its thread
 * split; ops_unary.c's softmax walks a row in order): so sum / mean / softmax's gradient
 * give the CPU's bits on a GPU too, and softmax's differ only by the device's exp. One
 * thread per output is slow for a long reduction (a full sum is one thread); a tree
 * reduction in shared memory would be faster with a different rounding: not done (the
 * CPU's bits were the requirement). */
#include "k_math_common.h"

namespace {

template <typename T>
__global__ void km_reduce(const T *x, int64_t outer, int64_t n, int64_t inner, double scale,
                          T *y) {
  KL_GRID_LOOP(e, outer * inner) {
    const int64_t o = e / inner, i = e - o * inner;
    const T *p = x + o * n * inner + i;
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += p[k * inner];
    y[e] = (T)(s * scale);
  }
}

template <typename T>
__global__ void km_reduce_csr_rows(int64_t rows, const int64_t *ptr, const T *v, double scale,
                                   T *y) {
  KL_GRID_LOOP(r, rows) {
    double s = 0;
    for (int64_t j = ptr[r]; j < ptr[r + 1]; j++) s += (double)v[j];
    y[r] = (T)(s * scale);
  }
}

template <typename T>
__global__ void km_reduce_rsp_rows(int64_t nnz, const int64_t *idx, const T *v, int64_t outer,
                                   int64_t n, int64_t inner, double scale, T *y) {
  const int64_t wo = outer * inner, w = wo * n;
  KL_GRID_LOOP(e, nnz * wo) {
    const int64_t r = e / wo, oi = e - r * wo, o = oi / inner, i = oi - o * inner;
    const T *p = v + r * w + o * n * inner + i;
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += p[k * inner];
    y[idx[r] * wo + oi] = (T)(s * scale);
  }
}

template <typename T>
__global__ void km_reduce_grad(const T *g, int64_t n, int64_t inner, double scale, T *y,
                               int64_t total) {
  KL_GRID_LOOP(e, total) {
    const int64_t o = e / (n * inner), i = e % inner;
    y[e] = (T)(g[o * inner + i] * scale);
  }
}

template <typename T> __global__ void km_fill(T *o, int64_t n, double v) {
  const T c = (T)v;
  KL_GRID_LOOP(i, n) o[i] = c;
}

/* ops_unary.c's SOFTMAX_ROW */
template <typename T> __device__ void km_softmax_row(const T *p, T *o, int64_t n) {
  double m = -INFINITY, s = 0;
  for (int64_t j = 0; j < n; j++) m = (double)p[j] > m ? (double)p[j] : m;
  for (int64_t j = 0; j < n; j++) s += exp((double)p[j] - m);
  for (int64_t j = 0; j < n; j++) o[j] = (T)(exp((double)p[j] - m) / s);
}

template <typename T>
__global__ void km_softmax(const T *x, int64_t rows, int64_t last, T *out) {
  KL_GRID_LOOP(i, rows) km_softmax_row<T>(x + i * last, out + i * last, last);
}

template <typename T>
__global__ void km_softmax_csr(int64_t rows, int64_t last, const int64_t *ptr,
                               const int64_t *ix, const T *px, T *po) {
  KL_GRID_LOOP(i, rows) {
    int64_t lo = ptr[i], hi = ptr[i + 1];
    double m = hi - lo < last ? 0.0 : -INFINITY, s = 0;
    for (int64_t p = lo; p < hi; p++) m = (double)px[p] > m ? (double)px[p] : m;
    for (int64_t p = lo; p < hi; p++) s += exp((double)px[p] - m);
    s += (double)(last - (hi - lo)) * exp(-m);
    T z = (T)(exp(-m) / s);
    T *o = po + i * last;
    for (int64_t j = 0; j < last; j++) o[j] = z;
    for (int64_t p = lo; p < hi; p++) o[ix[p]] = (T)(exp((double)px[p] - m) / s);
  }
}

template <typename T>
__global__ void km_softmax_rsp(int64_t nseg, int64_t segs, int64_t w, int64_t last,
                               const int64_t *idx, const T *px, T *po) {
  KL_GRID_LOOP(e, nseg) {
    const int64_t k = e / segs, j = (e - k * segs) * last;
    km_softmax_row<T>(px + k * w + j, po + idx[k] * w + j, last);
  }
}

template <typename T>
__global__ void km_softmax_grad(const T *pv, const T *pg, int64_t rows, int64_t last, T *pr) {
  KL_GRID_LOOP(i, rows) {
    const T *g = pg + i * last, *o = pv + i * last;
    double dotp = 0;
    for (int64_t j = 0; j < last; j++) dotp += (double)g[j] * o[j];
    for (int64_t j = 0; j < last; j++) pr[i * last + j] = (T)(o[j] * (g[j] - dotp));
  }
}

template <typename T>
__global__ void km_argmax(const T *px, int64_t len, int64_t inner, int64_t n, int64_t *po) {
  KL_GRID_LOOP(o, n) {
    const T *p = px + (o / inner) * len * inner + o % inner;
    int64_t best = 0;
    T bv = p[0];
    for (int64_t j = 1; j < len && bv == bv; j++) {
      T v = p[j * inner];
      if (v > bv || v != v) bv = v, best = j;
    }
    po[o] = best + 1;
  }
}

}  // namespace

extern "C" kl_status kl_cuda_math_reduce(kl_dtype dt, const void *x, int64_t outer, int64_t n,
                                    int64_t inner, double scale, void *y, kl_cuda_stream s) {
  const char *fn = "cuda reduce";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "outer", outer);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st == KL_OK) st = km_count(fn, "inner", inner);
  if (st != KL_OK || outer * inner == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, outer * inner, km_reduce<T>, (const T *)x, outer, n,
                                   inner, scale, (T *)y););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_reduce_csr_rows(kl_dtype dt, int64_t rows, const int64_t *indptr,
                                             const void *vals, double scale, void *y,
                                             kl_cuda_stream s) {
  const char *fn = "cuda reduce_csr_rows";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, rows, km_reduce_csr_rows<T>, rows, indptr,
                                   (const T *)vals, scale, (T *)y););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_reduce_rsp_rows(kl_dtype dt, int64_t nnz, const int64_t *idx,
                                             const void *vals, int64_t outer, int64_t n,
                                             int64_t inner, double scale, void *y,
                                             kl_cuda_stream s) {
  const char *fn = "cuda reduce_rsp_rows";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "nnz", nnz);
  if (st == KL_OK) st = km_count(fn, "outer", outer);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st == KL_OK) st = km_count(fn, "inner", inner);
  if (st != KL_OK || nnz * outer * inner == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, nnz * outer * inner, km_reduce_rsp_rows<T>, nnz, idx,
                                   (const T *)vals, outer, n, inner, scale, (T *)y););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_reduce_grad(kl_dtype dt, const void *g, int64_t outer, int64_t n,
                                         int64_t inner, double scale, void *y,
                                         kl_cuda_stream s) {
  const char *fn = "cuda reduce_grad";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "outer", outer);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st == KL_OK) st = km_count(fn, "inner", inner);
  const int64_t total = outer * n * inner;
  if (st != KL_OK || total == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, total, km_reduce_grad<T>, (const T *)g, n, inner, scale,
                                   (T *)y, total););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_fill(kl_dtype dt, void *out, int64_t n, double v,
                                       kl_cuda_stream s) {
  const char *fn = "cuda fill";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n, km_fill<T>, (T *)out, n, v););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_softmax(kl_dtype dt, const void *x, int64_t rows, int64_t last,
                                     void *out, kl_cuda_stream s) {
  const char *fn = "cuda softmax";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st == KL_OK) st = km_count(fn, "last", last);
  if (st != KL_OK || rows * last == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, rows, km_softmax<T>, (const T *)x, rows, last,
                                   (T *)out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_softmax_csr(kl_dtype dt, int64_t rows, int64_t last,
                                         const int64_t *indptr, const int64_t *indices,
                                         const void *vals, void *out, kl_cuda_stream s) {
  const char *fn = "cuda softmax_csr";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st == KL_OK) st = km_count(fn, "last", last);
  if (st != KL_OK || rows * last == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, rows, km_softmax_csr<T>, rows, last, indptr, indices,
                                   (const T *)vals, (T *)out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_softmax_rsp(kl_dtype dt, int64_t total, int64_t last, int64_t nnz,
                                         int64_t w, const int64_t *indices, const void *vals,
                                         void *out, kl_cuda_stream s) {
  const char *fn = "cuda softmax_rsp";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "total", total);
  if (st == KL_OK) st = km_count(fn, "nnz", nnz);
  if (st != KL_OK || total == 0) return st;
  if (last <= 0 || w % last != 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: rows of %lld values in segments of %lld", fn,
                          (long long)w, (long long)last);
  st = kl_cuda_math_fill(dt, out, total, 1.0 / (double)last, s);
  if (st != KL_OK) return st;
  const int64_t segs = w / last, nseg = nnz * segs;
  if (nseg == 0) return KL_OK;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, nseg, km_softmax_rsp<T>, nseg, segs, w, last, indices,
                                   (const T *)vals, (T *)out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_softmax_grad(kl_dtype dt, const void *o, const void *g,
                                          int64_t rows, int64_t last, void *out,
                                          kl_cuda_stream s) {
  const char *fn = "cuda softmax_grad";
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st == KL_OK) st = km_count(fn, "last", last);
  if (st != KL_OK || rows * last == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, rows, km_softmax_grad<T>, (const T *)o, (const T *)g,
                                   rows, last, (T *)out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_argmax(kl_dtype dt, const void *x, int64_t outer, int64_t len,
                                    int64_t inner, int64_t *out, kl_cuda_stream s) {
  const char *fn = "cuda argmax";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "outer", outer);
  if (st == KL_OK) st = km_count(fn, "inner", inner);
  if (st != KL_OK) return st;
  if (len < 1) return kl_cuda_seterr(KL_ESHAPE, "%s: the axis is empty (length %lld)", fn,
                                     (long long)len);
  const int64_t n = outer * inner;
  if (n == 0) return KL_OK;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n, km_argmax<T>, (const T *)x, len, inner, n, out););
  return KL_OK;
}
