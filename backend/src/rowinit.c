/* rowinit.c: counter-based initial values of table rows (Embedding{sharded = true}).
 * Entry (g, c) of a table with D columns is a pure function of (seed, g * D + c), so any
 * process can make any subset of the rows, and a row's value does not depend on how the
 * table is split (issue 16: an np = 2 run starts from np = 1's table). */
#include <math.h>

#include "ops_internal.h"
#include "tensor_internal.h"

static inline uint64_t mix64(uint64_t z) { /* splitmix64's finaliser */
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* A uniform in (0, 1) from counter k: 53 random bits, never 0. */
static inline double u01(uint64_t seed, uint64_t k) {
  return ((double)(mix64(seed ^ mix64(k)) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

kl_status kl_fill_rows_counter(kl_tensor *t, uint64_t seed, int64_t first, int64_t stride,
                               int normal, double a, double b) {
  KL_CHECK(t != NULL, KL_EINVAL, "fill_rows_counter: tensor is NULL");
  KL_CHECK(t->stype == KL_STYPE_DEFAULT && t->ndim == 2 && kl_is_float(t->dtype), KL_EINVAL,
           "fill_rows_counter: expected a dense float matrix, got a %s %s tensor of %d dims",
           kl_dtype_name(t->dtype), kl_stype_name(t->stype), t->ndim);
  KL_CHECK(first >= 0 && stride >= 1, KL_EINVAL,
           "fill_rows_counter: first = %lld must be >= 0 and stride = %lld >= 1",
           (long long)first, (long long)stride);
  const int64_t R = t->shape[0], D = t->shape[1];
  for (int64_t j = 0; j < R; j++) {
    const uint64_t g = (uint64_t)(first + j * stride);
    for (int64_t c = 0; c < D; c++) {
      const uint64_t k = 2 * (g * (uint64_t)D + (uint64_t)c);
      double v;
      if (normal) { /* Box-Muller of two counters: mean a, stddev b */
        const double u1 = u01(seed, k), u2 = u01(seed, k + 1);
        v = a + b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
      } else { /* uniform in [a, b) */
        v = a + (b - a) * u01(seed, k);
      }
      if (t->dtype == KL_FLOAT32) ((float *)t->data)[j * D + c] = (float)v;
      else ((double *)t->data)[j * D + c] = v;
    }
  }
  return KL_OK;
}
