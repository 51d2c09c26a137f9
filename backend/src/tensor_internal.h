/* tensor_internal.h: helpers shared by the tensor files and the kernels (dtype dispatch, value conversion, shapes). */
#ifndef KL_TENSOR_INTERNAL_H
#define KL_TENSOR_INTERNAL_H
#include <string.h>
#include "kl/kl.h"

/* Runs the statements with T bound to dt's C type: KL_DISPATCH(t->dtype, T, { T *p = ...; }). */
#define KL_DISPATCH(dt, T, ...)                 \
  switch (dt) {                                 \
    case KL_FLOAT32: {                          \
      typedef float T;                          \
      __VA_ARGS__;                              \
    } break;                                    \
    case KL_FLOAT64: {                          \
      typedef double T;                         \
      __VA_ARGS__;                              \
    } break;                                    \
    default: {                                  \
      typedef int64_t T;                        \
      __VA_ARGS__;                              \
    } break;                                    \
  }

/* double -> int64 without undefined behaviour: NaN reads 0, out-of-range values saturate. */
static inline int64_t kl_to_i64(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

/* Element i of a typed buffer, as a byte pointer. */
static inline void *kl_elem(void *base, kl_dtype d, int64_t i) {
  return (char *)base + (size_t)i * kl_dtype_size(d);
}

/* Converts n values from src (dtype sd) into dst (dtype dd); src and dst may not overlap
 * unless sd == dd. To int64, every value must be finite and in range: checked before any
 * write, so a failure leaves dst untouched. fn names the caller. */
kl_status kl_values_convert(const char *fn, const void *src, kl_dtype sd, void *dst,
                            kl_dtype dd, int64_t n);

/* Checks that n values of dtype sd can be converted to dd (to int64: finite and in range). */
kl_status kl_values_check(const char *fn, const void *src, kl_dtype sd, kl_dtype dd, int64_t n);

/* A pragma usable inside macros: KL_PRAGMA(omp parallel for schedule(static)). */
#define KL_PRAGMA(x) _Pragma(#x)

/* Work below this many elements runs on one thread (OpenMP start-up costs more). */
#define KL_PAR_MIN ((int64_t)1 << 15)

/* Formats a shape as "2 x 3" (or "scalar") into buf. */
const char *kl_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* Same ndim and dims. */
int kl_same_shape(const kl_tensor *a, const kl_tensor *b);

/* kl_tensor_new_dense without the zero fill, for a kernel that writes every element of its
 * output before anyone reads it (W3's 1.3 MB Embedding output and pooling gradient were
 * zeroed each step only to be overwritten). */
kl_status kl_tensor_new_dense_uninit(kl_dtype dtype, int ndim, const int64_t *shape,
                                     kl_tensor **out);

/* Rows [b, e) of the csr t as a view: its own indptr, t's indices and values (borrowed = 1,
 * nothing copied). The view must die before t and must not be written or grown; fit's
 * batch loop is its one user (its batches are read-only feeds of one step). */
kl_status kl_tensor_csr_row_view(const kl_tensor *t, int64_t b, int64_t e, kl_tensor **out);
/* Rows [b, e) of the dense host t as a view of its buffer, on the same terms. */
kl_status kl_tensor_dense_row_view(const kl_tensor *t, int64_t b, int64_t e, kl_tensor **out);

/* First position p in sorted a[lo..hi) with a[p] >= v. */
int64_t kl_lower_bound(const int64_t *a, int64_t lo, int64_t hi, int64_t v);

#endif
