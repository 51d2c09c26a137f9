/* fuzz_common.h: byte-stream reader and invariant reporting shared by the fuzz entry points. */
#ifndef KL_FUZZ_COMMON_H
#define KL_FUZZ_COMMON_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "kl/kl.h"

/* The fuzzer's bytes, consumed front to back; past the end every read gives 0. */
typedef struct fz_in {
  const uint8_t *p;
  size_t n, i;
} fz_in;

static uint8_t fz_u8(fz_in *in) { return in->i < in->n ? in->p[in->i++] : 0; }

/* 8 raw bytes as an int64 (little-endian), for out-of-range and overflow values. */
static int64_t fz_raw64(fz_in *in) {
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v |= (uint64_t)fz_u8(in) << (8 * k);
  return (int64_t)v;
}

/* A small integer in [lo, lo + span) (span <= 256). */
static int64_t fz_small(fz_in *in, int64_t lo, int span) { return lo + fz_u8(in) % span; }

/* An index-like value: mostly small (-2 .. 61), sometimes raw 64-bit garbage. */
static int64_t fz_index(fz_in *in) {
  uint8_t b = fz_u8(in);
  if (b >= 0xF8) return fz_raw64(in);
  if (b >= 0xF0) return b == 0xF0 ? INT64_MAX : b == 0xF1 ? INT64_MIN : -(int64_t)(b - 0xF0);
  return (int64_t)(b % 64) - 2;
}

/* A finite value exact in float32 sums: k/4 for k in [-16, 15]. */
static double fz_value(fz_in *in) { return (double)((int)(fz_u8(in) % 32) - 16) / 4.0; }

/* Any double, non-finite ones included. */
static double fz_any_double(fz_in *in) {
  uint8_t b = fz_u8(in);
  switch (b % 16) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return 0.0;
    case 4: return 1e300;
    case 5: return -1e-300;
    case 6: {
      int64_t r = fz_raw64(in);
      double d;
      memcpy(&d, &r, sizeof d);
      return d;
    }
    default: return (double)((int)b - 128) / 16.0;
  }
}

/* Reports a broken invariant (a bug in the library, not bad input); returns 1. */
#define FZ_BUG(...)                                                                     \
  (fprintf(stderr, "fuzz invariant broken at %s:%d: ", __FILE__, __LINE__),              \
   fprintf(stderr, __VA_ARGS__), fprintf(stderr, "\n"), 1)

/* A failing status must be an error code with a message naming something. */
static int fz_clean_error(kl_status s, const char *where) {
  if (s == KL_OK) return 0;
  const char *m = kl_errmsg();
  if ((int)s < (int)KL_ENOMEM || (int)s > (int)KL_EUNSUPPORTED)
    return FZ_BUG("%s: status %d is not a kl_status", where, (int)s);
  if (!m || !m[0]) return FZ_BUG("%s: %s without a message", where, kl_status_name(s));
  return 0;
}

/* Values agree: both NaN, or equal within a relative tolerance. */
static int fz_close(double a, double b, double tol) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  if (isinf(a) || isinf(b)) return a == b;
  return fabs(a - b) <= tol * (1.0 + fabs(a) + fabs(b));
}

/* Compares tensor t (any stype) with a dense row-major reference of numel values. */
static int fz_check_dense(const kl_tensor *t, const double *ref, int64_t numel, double tol,
                          const char *what) {
  kl_tensor *d = NULL;
  kl_status s = kl_tensor_tostype(t, KL_STYPE_DEFAULT, &d);
  if (s != KL_OK) {
    if (s == KL_ENOMEM) return 0;
    return FZ_BUG("%s: densify failed: %s", what, kl_errmsg());
  }
  int bad = 0;
  if (kl_tensor_numel(d) != numel) {
    bad = FZ_BUG("%s: %lld elements, expected %lld", what, (long long)kl_tensor_numel(d),
                 (long long)numel);
  } else {
    for (int64_t i = 0; i < numel; i++)
      if (!fz_close(kl_tensor_data_at(d, i), ref[i], tol)) {
        bad = FZ_BUG("%s: element %lld = %.17g, expected %.17g", what, (long long)i,
                     kl_tensor_data_at(d, i), ref[i]);
        break;
      }
  }
  kl_tensor_release(d);
  return bad;
}

#endif
