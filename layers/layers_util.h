/* layers_util.h: small helpers shared by the layer kernels (shape text, typed reads). */
#ifndef KL_LAYERS_UTIL_H
#define KL_LAYERS_UTIL_H
#include <stdio.h>
#include "ops_internal.h"

/* Writes "4 x 2" (or "scalar" for 0-d) into buf for error messages; returns buf. */
static inline const char *kl_lu_shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
  size_t used = 0;
  if (ndim == 0) {
    snprintf(buf, n, "scalar");
    return buf;
  }
  buf[0] = '\0';
  for (int d = 0; d < ndim && used < n; d++) {
    int w = snprintf(buf + used, n - used, d ? " x %lld" : "%lld", (long long)shape[d]);
    if (w < 0) break;
    used += (size_t)w;
  }
  return buf;
}

/* Element i of a buffer of dtype dt, as double. */
static inline double kl_lu_read(const void *data, kl_dtype dt, int64_t i) {
  switch (dt) {
    case KL_FLOAT32: return (double)((const float *)data)[i];
    case KL_FLOAT64: return ((const double *)data)[i];
    default: return (double)((const int64_t *)data)[i];
  }
}

/* Stores v as element i of a float32/float64 buffer. */
static inline void kl_lu_write(void *data, kl_dtype dt, int64_t i, double v) {
  if (dt == KL_FLOAT32)
    ((float *)data)[i] = (float)v;
  else
    ((double *)data)[i] = v;
}

/* Stable LSD radix sort of (key, pos) pairs by key (keys in [0, maxkey]), 8 bits a pass:
 * O(m) per pass, ceil(bits(maxkey)/8) passes, tk and tp m slots of scratch each. Result in
 * key[], pos[] (layers/embedding.c). */
void kl_lu_radix_sort(int64_t *key, int64_t *pos, int64_t *tk, int64_t *tp, int64_t m,
                      int64_t maxkey);

#endif
