/* gpu_math_testutil.h: what the math kernel tests (spec/c/test_gpu_math*.c) share on top of
 * gpu_testutil.h: random tensors with edge values (NaN, +-inf, -0, denormals, explicit zeros
 * in sparse storage), device copies of a tensor's arrays, and result checks against the
 * CPU's tensors.
 *
 * Exactness: host-emulated every kernel must give the CPU's bits (the same libm). On a GPU
 * (KL_GPU_TEST_DEVICE) the results that go through exp, log, tanh, sigmoid or pow use CUDA's
 * libm, not glibc's: those checks (trans = 1) accept |gpu - cpu| <= rtol max(1, |gpu|, |cpu|)
 * with rtol MT_RTOL_F32 (float32) or MT_RTOL_F64 (float64) (relative above 1, absolute
 * below: a gradient through a recomputed softmax subtracts nearly equal values); NaN must
 * match NaN and infinities their sign; every other result stays exact on the device too. */
#ifndef GPU_MATH_TESTUTIL_H
#define GPU_MATH_TESTUTIL_H
#include <math.h>

#include "gpu_testutil.h"
#include "kl_cuda_math.h"

/* CUDA's double exp / log / tanh are within 1 ulp and pow within 2 ulp of the exact result
 * (CUDA C Programming Guide, "Mathematical Functions"); rounding to float32 hides most of
 * it, a softmax sums and divides a few of them. */
#define MT_RTOL_F32 2e-6
#define MT_RTOL_F64 1e-12

static inline double mt_special(int64_t i) {
  static const double sp[] = {0.0, -0.0, 1.0, -1.0, NAN, INFINITY, -INFINITY, 1e-40, 3.5, -2.25};
  return i < 10 ? sp[i] : (gpu_urand(0, 1) < 0.1 ? sp[gpu_irand(10)] : gpu_urand(-10, 10));
}

/* A dense tensor of random values; specials: edge values first and 10% after; zeros: the
 * fraction of exact zeros (for sparse conversions). int64: integers in [-50, 50]. */
static inline kl_tensor *mt_dense(kl_dtype dt, int nd, const int64_t *shape, int specials,
                                  double zeros) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, nd, shape, &t));
  int64_t n = kl_tensor_numel(t);
  for (int64_t i = 0; i < n; i++) {
    double v;
    if (dt == KL_INT64)
      v = (double)(gpu_irand(101) - 50);
    else
      v = specials ? mt_special(i) : gpu_urand(-3, 3);
    if (gpu_urand(0, 1) < zeros) v = 0;
    if (dt == KL_INT64)
      ((int64_t *)t->data)[i] = (int64_t)v;
    else
      kl_tensor_data_set(t, i, v);
  }
  return t;
}

/* A csr (rows x cols) from a dense one with zeros; explicit: some stored values set to 0
 * or -0 afterwards (stored zeros must keep their places). */
static inline kl_tensor *mt_csr(kl_dtype dt, int64_t rows, int64_t cols, double zeros, int specials,
                                int explicit_zeros) {
  int64_t shape[2] = {rows, cols};
  kl_tensor *d = mt_dense(dt, 2, shape, specials, zeros), *c = NULL;
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_CSR, &c));
  kl_tensor_release(d);
  if (explicit_zeros && dt != KL_INT64)
    for (int64_t k = 0; k < c->nnz; k++)
      if (gpu_urand(0, 1) < 0.05) kl_tensor_data_set(c, k, gpu_irand(2) ? 0.0 : -0.0);
  return c;
}

/* A row_sparse of the given shape storing about (1 - zero_rows) of its rows; explicit: one
 * stored row set to zeros. */
static inline kl_tensor *mt_rsp(kl_dtype dt, int nd, const int64_t *shape, double zero_rows,
                                int specials, int explicit_zeros) {
  kl_tensor *d = mt_dense(dt, nd, shape, specials, 0), *r = NULL;
  int64_t w = kl_row_width(d), rows = nd ? shape[0] : 1;
  size_t es = kl_dtype_size(dt);
  for (int64_t i = 0; i < rows; i++)
    if (gpu_urand(0, 1) < zero_rows)
      memset((char *)d->data + (size_t)(i * w) * es, 0, (size_t)w * es);
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_ROW_SPARSE, &r));
  kl_tensor_release(d);
  if (explicit_zeros && r->nnz > 0 && w > 0)
    memset((char *)r->data + (size_t)(gpu_irand(r->nnz) * w) * es, 0, (size_t)w * es);
  return r;
}

static inline int64_t mt_nvals(const kl_tensor *t) {
  if (t->stype == KL_STYPE_DEFAULT) return kl_tensor_numel(t);
  if (t->stype == KL_STYPE_CSR) return t->nnz;
  return t->nnz * kl_row_width(t);
}

/* Device copies of a tensor's arrays (free with dev_free). */
static inline void *mt_dev_vals(const kl_tensor *t) {
  return dev_copy(t->data, (size_t)mt_nvals(t) * kl_dtype_size(t->dtype));
}
static inline int64_t *mt_dev_i64(const int64_t *p, int64_t n) {
  return (int64_t *)dev_copy(p, (size_t)n * sizeof(int64_t));
}

/* n values at host a (the device's) against b (the CPU's): exact, or within the stated
 * tolerance on a GPU when trans. */
static inline int mt_close(const char *label, kl_dtype dt, const void *a, const void *b, int64_t n,
                           int trans) {
#ifdef KL_GPU_TEST_DEVICE
  if (trans && dt != KL_INT64) {
    const double rtol = dt == KL_FLOAT32 ? MT_RTOL_F32 : MT_RTOL_F64;
    for (int64_t i = 0; i < n; i++) {
      double x = dt == KL_FLOAT32 ? ((const float *)a)[i] : ((const double *)a)[i];
      double y = dt == KL_FLOAT32 ? ((const float *)b)[i] : ((const double *)b)[i];
      if ((x != x && y != y) || x == y) continue;
      if (!isinf(x) && !isinf(y) && fabs(x - y) <= rtol * fmax(1.0, fmax(fabs(x), fabs(y))))
        continue;
      fprintf(stderr, "%s: [%lld] %.17g vs %.17g (CPU): beyond rtol %g\n", label, (long long)i, x,
              y, rtol);
      return 0;
    }
    return 1;
  }
#else
  (void)trans;
#endif
  return gpu_same(label, dt, a, b, n);
}

/* The device's n values at dev against the CPU's values at cpu (host). */
static inline int mt_check(const char *label, kl_dtype dt, const void *dev, const void *cpu,
                           int64_t n, int trans) {
  size_t b = (size_t)n * kl_dtype_size(dt);
  void *h = malloc(b ? b : 1);
  dev_sync();
  to_host(h, dev, b);
  int ok = mt_close(label, dt, h, cpu, n, trans);
  free(h);
  return ok;
}

/* The device's n int64 at dev equal the CPU's at cpu. */
static inline int mt_check_i64(const char *label, const int64_t *dev, const int64_t *cpu,
                               int64_t n) {
  return mt_check(label, KL_INT64, dev, cpu, n, 0);
}

/* One int64 at dev. */
static inline int64_t mt_read_i64(const int64_t *dev) {
  int64_t v = 0;
  dev_sync();
  to_host(&v, dev, sizeof v);
  return v;
}

static inline const char *mt_shape(int nd, const int64_t *s, char *buf, size_t len) {
  size_t u = 0;
  buf[0] = '\0';
  u += (size_t)snprintf(buf + u, len - u, "(");
  for (int k = 0; k < nd && u < len; k++)
    u += (size_t)snprintf(buf + u, len - u, k ? ",%lld" : "%lld", (long long)s[k]);
  if (u < len) snprintf(buf + u, len - u, ")");
  return buf;
}
#endif
