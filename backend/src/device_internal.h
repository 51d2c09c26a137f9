/* device_internal.h: what the backend's files share about device tensors (device.c). */
#ifndef KL_DEVICE_INTERNAL_H
#define KL_DEVICE_INTERNAL_H
#include "kl/device.h"

/* Frees a device tensor's buffers through the backend (kl_tensor_release). */
void kl_device_free_storage(kl_tensor *t);

/* A copy of the device tensor t on its device. */
kl_status kl_device_clone(const kl_tensor *t, kl_tensor **out);
/* dst (not a view) takes src's storage (same device, description); src keeps none. */
kl_status kl_device_assign(kl_tensor *dst, kl_tensor *src);

/* A host function of one tensor, for kl_device_roundtrip1. */
typedef kl_status (*kl_device_host_fn)(const kl_tensor *h, void *ud, kl_tensor **out);
/* fn on a host copy of the device tensor t, its result copied back to t's device. */
kl_status kl_device_roundtrip1(const kl_tensor *t, kl_device_host_fn fn, void *ud,
                               kl_tensor **out);
#endif
