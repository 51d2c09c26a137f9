/* rng.c: the seeded generator (xoshiro256** from splitmix64) and random tensor fills. */
#include <inttypes.h>
#include <math.h>
#include "tensor_internal.h"

static uint64_t kl_splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void kl_rng_seed(kl_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = kl_splitmix64(&seed);
  r->has_spare = 0;
  r->spare = 0;
}

static inline uint64_t kl_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t kl_rng_next(kl_rng *r) {
  uint64_t *s = r->s;
  uint64_t out = kl_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = kl_rotl(s[3], 45);
  return out;
}

double kl_rng_uniform(kl_rng *r) { return (double)(kl_rng_next(r) >> 11) * 0x1.0p-53; }

double kl_rng_normal(kl_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u1 = 1.0 - kl_rng_uniform(r), u2 = kl_rng_uniform(r); /* u1 in (0, 1]: log is finite */
  double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2;
  r->spare = rad * sin(th);
  r->has_spare = 1;
  return rad * cos(th);
}

uint64_t kl_rng_below(kl_rng *r, uint64_t n) {
  if (n == 0) return 0;
  uint64_t floor = (0 - n) % n; /* 2^64 mod n: values below it would bias the result */
  for (;;) {
    uint64_t x = kl_rng_next(r);
    if (x >= floor) return x % n;
  }
}

/* One per thread (C callers on different threads never share one), each statically seeded
 * with splitmix64(0) (what kl_rng_seed(r, 0) gives): no first-use race. test_rng checks that
 * it equals kl_rng_seed(&r, 0). The Lua binding does not use it: each lua_State has its own
 * (lua/binding/l_rng.c). */
static _Thread_local kl_rng kl_global_rng = {
    {0xe220a8397b1dcdafULL, 0x6e789e6aa1b965f4ULL, 0x06c45d188009454fULL, 0xf88bb8a8724c81ecULL},
    0, 0.0};

kl_rng *kl_rng_global(void) { return &kl_global_rng; }

/* Stored values of a float tensor (dense: all of them); int64 is refused. */
static kl_status kl_fill_target(const char *fn, const kl_tensor *t, int64_t *n) {
  KL_CHECK(t->dtype != KL_INT64, KL_EDTYPE, "%s: dtype int64 not supported (float32 or float64)",
           fn);
  *n = t->stype == KL_STYPE_ROW_SPARSE ? t->nnz * kl_row_width(t) : t->nnz;
  return KL_OK;
}

kl_status kl_tensor_fill_normal(kl_tensor *t, double mean, double stddev, kl_rng *r) {
  int64_t n = 0;
  KL_TRY(kl_fill_target("normal", t, &n));
  KL_CHECK(isfinite(mean) && isfinite(stddev) && stddev >= 0, KL_EINVAL,
           "normal: mean = %g and stddev = %g must be finite, stddev >= 0", mean, stddev);
  if (!r) r = kl_rng_global();
  for (int64_t i = 0; i < n; i++) kl_tensor_data_set(t, i, mean + stddev * kl_rng_normal(r));
  return KL_OK;
}

kl_status kl_tensor_fill_uniform(kl_tensor *t, double low, double high, kl_rng *r) {
  int64_t n = 0;
  KL_TRY(kl_fill_target("uniform", t, &n));
  KL_CHECK(isfinite(low) && isfinite(high) && low <= high, KL_EINVAL,
           "uniform: low = %g and high = %g must be finite with low <= high", low, high);
  if (!r) r = kl_rng_global();
  for (int64_t i = 0; i < n; i++)
    kl_tensor_data_set(t, i, low + (high - low) * kl_rng_uniform(r));
  return KL_OK;
}

/* Gap to the next present item of a Bernoulli(p) sequence (geometric), capped at cap. */
static int64_t kl_rng_gap(kl_rng *r, double logq, int64_t cap) {
  if (logq == 0) return 0; /* p == 1 */
  double g = floor(log(1.0 - kl_rng_uniform(r)) / logq);
  return g >= (double)cap ? cap : (int64_t)g;
}

/* Random csr: each of the rows x cols entries present with probability p, value in (0, 1].
 * Geometric gaps make the cost O(nnz + rows), not O(rows x cols). */
static kl_status kl_rand_csr(kl_dtype d, const int64_t *shape, double p, kl_rng *r,
                             kl_tensor **out) {
  int64_t rows = shape[0], cols = shape[1], total = rows * cols, nnz = 0, cap = 0, pos = -1, row = 0;
  double logq = log1p(-p);
  kl_tensor *c;
  KL_TRY(kl_tensor_new_csr(d, rows, cols, 0, &c));
  while (p > 0) {
    pos += 1 + kl_rng_gap(r, logq, total);
    if (pos >= total) break;
    if (nnz == cap) {
      cap = nnz * 2 > 1024 ? nnz * 2 : 1024;
      if (cap > total) cap = total;
      if (kl_tensor_reserve(c, cap) != KL_OK) {
        kl_tensor_release(c);
        return KL_ENOMEM;
      }
    }
    for (; row < pos / cols; row++) c->indptr[row + 1] = nnz;
    c->indices[nnz] = pos % cols;
    kl_tensor_data_set(c, nnz++, 1.0 - kl_rng_uniform(r));
  }
  for (; row < rows; row++) c->indptr[row + 1] = nnz;
  c->nnz = nnz;
  *out = c;
  return KL_OK;
}

/* Random row_sparse: each row present with probability p, its values in (0, 1]. */
static kl_status kl_rand_rsp(kl_dtype d, int ndim, const int64_t *shape, double p, kl_rng *r,
                             kl_tensor **out) {
  int64_t rows = shape[0], n = 0, pos = -1, w;
  double logq = log1p(-p);
  kl_tensor *s;
  KL_TRY(kl_tensor_new_rsp(d, ndim, shape, rows, &s)); /* room for every row; nnz set below */
  while (p > 0) {
    pos += 1 + kl_rng_gap(r, logq, rows);
    if (pos >= rows) break;
    s->indices[n++] = pos;
  }
  s->nnz = n;
  w = kl_row_width(s);
  for (int64_t i = 0; i < n * w; i++) kl_tensor_data_set(s, i, 1.0 - kl_rng_uniform(r));
  *out = s;
  return KL_OK;
}

kl_status kl_sparse_rand(kl_stype stype, kl_dtype dtype, int ndim, const int64_t *shape,
                         double density, kl_rng *r, kl_tensor **out) {
  *out = NULL;
  KL_CHECK(density >= 0 && density <= 1, KL_EINVAL, "rand: density %g must be in [0, 1]",
           density);
  KL_CHECK(dtype == KL_FLOAT32 || dtype == KL_FLOAT64, KL_EDTYPE,
           "rand: dtype %s not supported (float32 or float64)", kl_dtype_name(dtype));
  KL_TRY(kl_shape_check("rand", ndim, shape));
  if (!r) r = kl_rng_global();
  if (stype == KL_STYPE_CSR) {
    KL_CHECK(ndim == 2, KL_ESHAPE, "rand: csr needs a 2-d shape, got %d-d", ndim);
    return kl_rand_csr(dtype, shape, density, r, out);
  }
  if (stype == KL_STYPE_ROW_SPARSE) {
    KL_CHECK(ndim >= 1, KL_ESHAPE, "rand: row_sparse needs a shape of rank >= 1, got 0-d");
    return kl_rand_rsp(dtype, ndim, shape, density, r, out);
  }
  KL_CHECK(stype == KL_STYPE_DEFAULT, KL_EINVAL, "rand: invalid stype %d", (int)stype);
  KL_TRY(kl_tensor_new_dense(dtype, ndim, shape, out));
  return kl_tensor_fill_uniform(*out, 0, 1, r);
}
