/* dev_backend.h: opening the CUDA device backend (dev_backend.c) and what keras.cuda and
 * the tests read of it: the device count or the reason there is none, each device's
 * caching-allocator counters, the op names of the CUDA table.
 *
 * The backend (a kl_device_backend, kl/device.h) is the same source in the real module
 * (cuda_vendor_real.c: the CUDA runtime) and the emulated one (cuda_vendor_emu.c). */
#ifndef KL_DEV_BACKEND_H
#define KL_DEV_BACKEND_H
#include "cuda_alloc.h"
#include "kl/device.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kl_capi;

/* Opens the backend over the core's API c (kl_cuda_capi = c; the gpu code's messages go to
 * c->seterr): counts the devices and, when there is one, registers the backend with
 * c->device_register. *ndev = the count. KL_OK, or KL_ENODEV "no CUDA device: <reason>" (the
 * runtime's) with *ndev = 0 and nothing registered. Each device's stream and allocator are
 * made on its first use. Opening again returns the first opening's result (and message). */
kl_status kl_cuda_backend_open(const struct kl_capi *c, int *ndev);
/* Devices found by the opening (0 before it or when none). */
int kl_cuda_backend_count(void);
/* Why there is no device ("no CUDA device: ..."), "" when there is one or before opening. */
const char *kl_cuda_backend_reason(void);
/* Unregisters the backend and gives every stream and device block back (the tests, at
 * their end: no device tensor may be alive). The next open starts afresh. */
kl_status kl_cuda_backend_close(void);

/* Waits for everything queued on device d (the backend's synchronize). */
kl_status kl_cuda_dev_synchronize(kl_device d);
/* The caching allocator's counters of device d (zeros for a device not used yet). */
kl_status kl_cuda_dev_stats(kl_device d, kl_cuda_alloc_stats *s);
/* Gives d's cached free blocks back to the device (torch.cuda.empty_cache). */
kl_status kl_cuda_dev_empty_cache(kl_device d);
/* The allocator vendor of device ordinal dev (the runtime's malloc / free on it, host
 * bookkeeping from the core's allocator outside any pool): for an allocator of one's own
 * (keras.cuda's alloc_probe). */
void kl_cuda_dev_vendor(int dev, kl_cuda_vendor *v);

/* Whether the registered table has device kernels for op: kl_cuda_op_claimed, less the ops
 * named in the environment's KERAS_LUA_CUDA_DISABLE_OPS when the backend opened
 * (comma-separated op names: their kernels are left out, so they run on the host, counted:
 * to bisect a device kernel, and for the specs of the host fallback). */
int kl_cuda_backend_op_enabled(kl_op op);

/* The registry's name of op ("dot", "add", ... as kl_op_name; NULL when out of range), so
 * the module can list the ops the CUDA table claims without linking the backend. */
const char *kl_cuda_op_name(kl_op op);

#ifdef __cplusplus
}
#endif
#endif
