/* k_optim.cu: the optimizer rules as kernels, one thread per element of the rows updated.
 *
 * opt_elem is backend/src/optim_rows.h's opt_row for one element, expression for
 * expression, so that with --fmad=false (no fused multiply-adds: CMakeLists.txt) and IEEE
 * sqrt and division (nvcc's defaults) each element gets the CPU's bits. Ftrl with a
 * learning_rate_power other than -0.5 calls pow, whose device version is not glibc's: the
 * host-emulated build matches the CPU there, a GPU only within a few ulp. */
#include <math.h>

#include "kl_cuda_rt.h"

template <typename T> __device__ __forceinline__ T opt_sqrt(T x);
template <> __device__ __forceinline__ float opt_sqrt<float>(float x) { return sqrtf(x); }
template <> __device__ __forceinline__ double opt_sqrt<double>(double x) { return sqrt(x); }
template <typename T> __device__ __forceinline__ T opt_pow(T x, T y);
template <> __device__ __forceinline__ float opt_pow<float>(float x, float y) { return powf(x, y); }
template <> __device__ __forceinline__ double opt_pow<double>(double x, double y) { return pow(x, y); }

/* Updates element w (with states s0, s1) from gradient value gv (has_g 0: a zero gradient). */
template <typename T>
__device__ __forceinline__ void opt_elem(const kl_cuda_opt_hyper &h, T *w, int has_g, T gv,
                                         T *s0, T *s1) {
  const T rescale = (T)h.rescale, clip = (T)h.clip, wd = (T)h.wd, lr = (T)h.lr;
  T gj = (has_g ? gv : (T)0) * rescale;
  if (h.clip > 0) gj = gj < -clip ? -clip : (gj > clip ? clip : gj);
  switch (h.kind) {
    case KL_OPT_SGD:
      if (!h.has_mom) {
        *w = *w - lr * (gj + wd * *w);
      } else {
        const T mom = (T)h.mom;
        T step = lr * (gj + wd * *w);
        T v = mom * *s0 - step;
        *s0 = v;
        *w = h.nesterov ? *w + (mom * v - step) : *w + v;
      }
      break;
    case KL_OPT_ADAM: {
      const T b1 = (T)h.b1, b2 = (T)h.b2, c1 = (T)(1.0 - h.b1), c2 = (T)(1.0 - h.b2);
      const T lr_t = (T)h.lr_t, eps = (T)h.eps;
      gj = gj + wd * *w;
      T m = b1 * *s0 + c1 * gj;
      T v = b2 * *s1 + c2 * (gj * gj);
      *s0 = m;
      *s1 = v;
      *w = *w - lr_t * m / (opt_sqrt<T>(v) + eps);
      break;
    }
    case KL_OPT_ADAGRAD: {
      const T eps = (T)h.eps;
      gj = gj + wd * *w;
      T hist = *s0 + gj * gj;
      *s0 = hist;
      *w = *w - lr * gj / (opt_sqrt<T>(hist) + eps);
      break;
    }
    case KL_OPT_RMSPROP: {
      const T rho = (T)h.rho, c = (T)(1.0 - h.rho), eps = (T)h.eps;
      gj = gj + wd * *w;
      T a = rho * *s0 + c * (gj * gj);
      *s0 = a;
      *w = *w - lr * gj / (opt_sqrt<T>(a) + eps);
      break;
    }
    case KL_OPT_FTRL: {
      const T l1 = (T)h.lamda1, beta = (T)h.beta, l2x2 = (T)(2.0 * h.l2);
      const int sq = h.lr_power == -0.5;
      const T mp = (T)(-h.lr_power);
      T nold = *s1, nnew = nold + gj * gj;
      T pnew = sq ? opt_sqrt<T>(nnew) : opt_pow<T>(nnew, mp);
      T pold = sq ? opt_sqrt<T>(nold) : opt_pow<T>(nold, mp);
      T z = *s0 + gj - (pnew - pold) * *w / lr;
      *s0 = z;
      *s1 = nnew;
      T az = z < 0 ? -z : z;
      *w = az > l1 ? ((z > 0 ? l1 : -l1) - z) / ((beta + pnew) / lr + wd + l2x2) : (T)0;
      break;
    }
    default: break;
  }
}

/* Element e of gradient row i = e / rw updates weight row gi[i] (gi NULL: row i). */
template <typename T>
__global__ void k_opt_rows(kl_cuda_opt_hyper h, T *w, const T *g, T *s0, T *s1, int64_t rw,
                           const int64_t *gi, int64_t n) {
  KL_GRID_LOOP(e, n * rw) {
    const int64_t i = e / rw, j = e - i * rw;
    const int64_t o = (gi ? gi[i] : i) * rw + j;
    opt_elem<T>(h, w + o, 1, g[e], s0 ? s0 + o : NULL, s1 ? s1 + o : NULL);
  }
}

/* Element e of weight row r = e / rw takes gradient row gpos[r] (-1: a zero gradient). */
template <typename T>
__global__ void k_opt_all_rows(kl_cuda_opt_hyper h, T *w, const T *g, T *s0, T *s1,
                               int64_t rw, const int64_t *gpos, int64_t rows) {
  KL_GRID_LOOP(e, rows * rw) {
    const int64_t r = e / rw, j = e - r * rw, q = gpos[r];
    opt_elem<T>(h, w + e, q >= 0, q >= 0 ? g[q * rw + j] : (T)0, s0 ? s0 + e : NULL,
                s1 ? s1 + e : NULL);
  }
}

__global__ void k_row_positions_fill(int64_t *gpos, int64_t rows) {
  KL_GRID_LOOP(r, rows) gpos[r] = -1;
}
__global__ void k_row_positions_set(const int64_t *gi, int64_t n, int64_t *gpos) {
  KL_GRID_LOOP(i, n) gpos[gi[i]] = i;
}

static kl_status opt_check(const kl_cuda_opt_hyper *h, kl_dtype dt, int64_t rw, int64_t n,
                           const void *s0, const void *s1, const char *fn) {
  if (dt != KL_FLOAT32 && dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "%s: dtype %s not supported (float32 or float64)", fn,
                          kl_cuda_dtype_name(dt));
  if (rw < 0 || n < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: negative size (%lld rows of %lld)", fn,
                          (long long)n, (long long)rw);
  if (rw > 0 && n > INT64_MAX / rw)
    return kl_cuda_seterr(KL_ESHAPE, "%s: %lld rows of %lld elements overflow", fn,
                          (long long)n, (long long)rw);
  const int need = h->kind == KL_OPT_SGD ? (h->has_mom ? 1 : 0)
                   : h->kind == KL_OPT_ADAM || h->kind == KL_OPT_FTRL ? 2
                   : h->kind == KL_OPT_ADAGRAD || h->kind == KL_OPT_RMSPROP ? 1 : -1;
  if (need < 0) return kl_cuda_seterr(KL_EINVAL, "%s: unknown optimizer kind %d", fn, h->kind);
  static const char *const names[] = {"SGD", "Adam", "Adagrad", "RMSprop", "Ftrl"};
  if ((need >= 1 && !s0) || (need >= 2 && !s1))
    return kl_cuda_seterr(KL_EINVAL, "%s: %s needs %d state(s)", fn, names[h->kind], need);
  return KL_OK;
}

extern "C" kl_status kl_cuda_opt_rows(const kl_cuda_opt_hyper *h, kl_dtype dt, void *w,
                                      const void *g, void *s0, void *s1, int64_t rw,
                                      const int64_t *gi, int64_t n, kl_cuda_stream s) {
  kl_status st = opt_check(h, dt, rw, n, s0, s1, "cuda opt_rows");
  if (st != KL_OK) return st;
  if (n * rw == 0) return KL_OK; /* an empty grid is a launch error on the device */
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_opt_rows<float>, kl_cuda_blocks(n * rw), KL_CUDA_BLOCK, s, *h, (float *)w,
              (const float *)g, (float *)s0, (float *)s1, rw, gi, n);
  else
    KL_LAUNCH(k_opt_rows<double>, kl_cuda_blocks(n * rw), KL_CUDA_BLOCK, s, *h, (double *)w,
              (const double *)g, (double *)s0, (double *)s1, rw, gi, n);
  return kl_cuda_launched("cuda opt_rows");
}

extern "C" kl_status kl_cuda_opt_all_rows(const kl_cuda_opt_hyper *h, kl_dtype dt, void *w,
                                          const void *g, void *s0, void *s1, int64_t rw,
                                          const int64_t *gpos, int64_t rows,
                                          kl_cuda_stream s) {
  kl_status st = opt_check(h, dt, rw, rows, s0, s1, "cuda opt_all_rows");
  if (st != KL_OK) return st;
  if (rows * rw == 0) return KL_OK;
  if (dt == KL_FLOAT32)
    KL_LAUNCH(k_opt_all_rows<float>, kl_cuda_blocks(rows * rw), KL_CUDA_BLOCK, s, *h,
              (float *)w, (const float *)g, (float *)s0, (float *)s1, rw, gpos, rows);
  else
    KL_LAUNCH(k_opt_all_rows<double>, kl_cuda_blocks(rows * rw), KL_CUDA_BLOCK, s, *h,
              (double *)w, (const double *)g, (double *)s0, (double *)s1, rw, gpos, rows);
  return kl_cuda_launched("cuda opt_all_rows");
}

extern "C" kl_status kl_cuda_row_positions(const int64_t *gi, int64_t n, int64_t rows,
                                           int64_t *gpos, kl_cuda_stream s) {
  if (n < 0 || rows < 0 || n > rows)
    return kl_cuda_seterr(KL_ESHAPE, "cuda row_positions: %lld rows of %lld", (long long)n,
                          (long long)rows);
  if (rows == 0) return KL_OK;
  KL_LAUNCH(k_row_positions_fill, kl_cuda_blocks(rows), KL_CUDA_BLOCK, s, gpos, rows);
  kl_status st = kl_cuda_launched("cuda row_positions");
  if (st != KL_OK || n == 0) return st;
  KL_LAUNCH(k_row_positions_set, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, gi, n, gpos);
  return kl_cuda_launched("cuda row_positions");
}
