/* cuda_vendor.h: the thin vendor layer between the gpu/ host code and the CUDA runtime.
 *
 * Everything the host code of keras/cuda.so asks of the runtime goes through here: device
 * count and properties, device memory, copies in each direction, memsets, streams. Two
 * halves implement it (the gpu/ naming convention: *_real.c only in the real module, *_emu.c
 * only in the emulated one):
 *   - cuda_vendor_real.c: the CUDA runtime (static cudart), every call's status checked;
 *   - cuda_vendor_emu.c: an emulated runtime for -DKL_CUDA=EMULATE and the emulated-device
 *     tests: device memory is host memory, a stream's operations run in order at once (so
 *     do the host-emulated kernels, kl_cuda_emu.h), one device "keras-lua emulated device".
 * The host files common to both (dev_backend.c, dev_ops*.c, l_cuda.c) include no CUDA
 * header. Statuses come back as kl_status with the message set through kl_cuda_seterr, as
 * the runtime's own string (kl_cuda_check_rt); nothing aborts.
 *
 * Every runtime function takes the device ordinal it works on and makes it the calling
 * thread's current device first (cudaSetDevice), so callers never track it. */
#ifndef KL_CUDA_VENDOR_H
#define KL_CUDA_VENDOR_H
#include <stddef.h>

#include "cuda_alloc.h"
#include "kl/kl.h"
#include "kl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The runtime's status codes the host code names (cudaError_t values; cuda_vendor_real.c
 * checks that they agree with cuda_runtime.h). */
#define KL_CUDA_RT_SUCCESS 0
#define KL_CUDA_RT_INVALID_VALUE 1
#define KL_CUDA_RT_OUT_OF_MEMORY 2
#define KL_CUDA_RT_STUB_LIBRARY 34
#define KL_CUDA_RT_INSUFFICIENT_DRIVER 35
#define KL_CUDA_RT_NO_DEVICE 100
#define KL_CUDA_RT_ILLEGAL_ADDRESS 700
#define KL_CUDA_RT_UNKNOWN 999

/* ------------------------------------------------------------ statuses (cuda_vendor.c) */

/* A CUDA runtime status (cudaError_t) as a status with the runtime's own string: 0 KL_OK;
 * 35 (insufficient driver), 34 (stub library), 100 (no device) KL_ENODEV
 * "no CUDA device: <string>"; 2 (memory allocation) KL_ENOMEM "<what>: CUDA out of memory:
 * <string>"; others KL_EDEVICE "<what>: CUDA error <code>: <string>". */
kl_status kl_cuda_check_rt(int err, const char *what);
/* A cuBLAS status (cublasStatus_t): ALLOC_FAILED (3) KL_ENOMEM, others KL_EDEVICE, with
 * the library's text. */
kl_status kl_cuda_check_cublas(int status, const char *what);
/* A cuSPARSE status (cusparseStatus_t): ALLOC_FAILED (2) KL_ENOMEM, others KL_EDEVICE,
 * with the library's text. */
kl_status kl_cuda_check_cusparse(int status, const char *what);

/* ------------------------------------------------------------ each half defines these */

/* The strings of the statuses: cudaGetErrorString, cublasGetStatusString,
 * cusparseGetErrorString in the real module; the emulated runtime's own in the other. */
const char *kl_cuda_rt_errstr(int err);
const char *kl_cuda_cublas_errstr(int status);
const char *kl_cuda_cusparse_errstr(int status);

/* 1 in the emulated runtime, 0 in the real one. */
int kl_cuda_rt_emulated(void);

/* Usable devices: KL_OK with *n > 0, or *n = 0 and KL_ENODEV "no CUDA device: <reason>"
 * (the runtime's string; "cudaGetDeviceCount found none" when it says 0). */
kl_status kl_cuda_rt_device_count(int *n);

typedef struct kl_cuda_rt_props {
  char name[256];
  size_t total_memory; /* bytes */
  int major, minor;    /* compute capability (0.0 when emulated) */
  int multiprocessors;
} kl_cuda_rt_props;
kl_status kl_cuda_rt_device_props(int dev, kl_cuda_rt_props *p);

/* The runtime's and the driver's versions (1000 major + 10 minor; 0: none, or emulated). */
void kl_cuda_rt_versions(int *runtime, int *driver);

/* Makes dev the calling thread's current device. */
kl_status kl_cuda_rt_set_device(int dev);

/* bytes (> 0) of device memory of dev. Out of memory: KL_ENOMEM (the caching allocator
 * then releases its cache and retries; the runtime's error is cleared, not sticky). */
kl_status kl_cuda_rt_malloc(int dev, void **p, size_t bytes);
/* Gives p (from kl_cuda_rt_malloc; NULL: no-op) back. Synchronises dev, as cudaFree. */
kl_status kl_cuda_rt_free(int dev, void *p);

kl_status kl_cuda_rt_stream_create(int dev, kl_cuda_stream *s);
kl_status kl_cuda_rt_stream_destroy(int dev, kl_cuda_stream s);
/* Waits for everything queued on s. */
kl_status kl_cuda_rt_stream_sync(int dev, kl_cuda_stream s);

/* Host src to device dst, queued on s; src may be reused when it returns (pageable memory is
 * staged before the call returns). */
kl_status kl_cuda_rt_copy_h2d(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s);
/* Device src to host dst after everything queued on s before it; finished on return. */
kl_status kl_cuda_rt_copy_d2h(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s);
/* Device to device on dev, queued on s. */
kl_status kl_cuda_rt_copy_d2d(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s);
/* Zeroes bytes of device memory at p, queued on s. */
kl_status kl_cuda_rt_memset0(int dev, void *p, size_t bytes, kl_cuda_stream s);

/* ------------------------------------------------------------ emulated only (cuda_vendor_emu.c) */

/* Registers the emulated device backend with the core whose API is c, as keras.cuda does
 * when it opens (kl_cuda_backend_open): for the C tests, without Lua. KL_OK, or KL_ENODEV
 * when the emulated runtime was told to have no device. */
struct kl_capi;
kl_status kl_cuda_emu_install(const struct kl_capi *c);
/* The number of emulated devices (default 1, or the environment's KERAS_LUA_EMU_DEVICES,
 * 0 to 8); 0 makes the runtime report "no CUDA-capable device is detected" (error 100).
 * Takes effect for the next kl_cuda_rt_device_count. */
void kl_cuda_emu_set_devices(int n);
/* Each emulated device's memory in bytes (0: the host's memory, the default): allocations
 * past it fail with error 2 (out of memory), as a full device. */
void kl_cuda_emu_set_capacity(size_t bytes);
/* The k-th runtime call from now (k >= 1; 0: none) that can fail (memory, copies, memsets,
 * streams) fails with error err instead of running: fault injection for the C tests. */
void kl_cuda_emu_fail_at(long k, int err);
/* Runtime calls so far that could fail (for sweeps: run once, read the count, then fail
 * each in turn). */
long kl_cuda_emu_calls(void);
/* Bytes of emulated device memory live on dev (leak checks). */
size_t kl_cuda_emu_live_bytes(int dev);

#ifdef __cplusplus
}
#endif
#endif
