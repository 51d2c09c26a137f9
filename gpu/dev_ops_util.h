/* dev_ops_util.h: what every device op file (dev_ops_math.c, dev_ops_math_shape.c,
 * dev_ops_dot.c, dev_ops_layers.c) shares. Host C only. */
#ifndef KL_DEV_OPS_UTIL_H
#define KL_DEV_OPS_UTIL_H
#include "kl_cuda_dev.h"

/* The end of a kernel entry or a backward that made t: on success *out = t and KL_OK, else t
 * released (NULL-safe) and st. */
static inline kl_status kl_cdo_finish(kl_status st, kl_tensor *t, kl_tensor **out) {
  if (st != KL_OK) {
    if (t) kl_cuda_capi->tensor_release(t);
    return st;
  }
  *out = t;
  return KL_OK;
}
#endif
