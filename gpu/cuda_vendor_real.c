/* cuda_vendor_real.c: the vendor layer over the CUDA runtime (cuda_vendor.h), for the real
 * keras/cuda.so only (static cudart). Every call's status is checked and mapped by
 * kl_cuda_check_rt; nothing aborts. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "cuda_vendor.h"

/* cuda_vendor.h names these codes without the CUDA headers */
_Static_assert(cudaSuccess == KL_CUDA_RT_SUCCESS, "cudaSuccess");
_Static_assert(cudaErrorInvalidValue == KL_CUDA_RT_INVALID_VALUE, "cudaErrorInvalidValue");
_Static_assert(cudaErrorMemoryAllocation == KL_CUDA_RT_OUT_OF_MEMORY, "cudaErrorMemoryAllocation");
_Static_assert(cudaErrorStubLibrary == KL_CUDA_RT_STUB_LIBRARY, "cudaErrorStubLibrary");
_Static_assert(cudaErrorInsufficientDriver == KL_CUDA_RT_INSUFFICIENT_DRIVER,
               "cudaErrorInsufficientDriver");
_Static_assert(cudaErrorNoDevice == KL_CUDA_RT_NO_DEVICE, "cudaErrorNoDevice");
_Static_assert(cudaErrorIllegalAddress == KL_CUDA_RT_ILLEGAL_ADDRESS, "cudaErrorIllegalAddress");
_Static_assert(cudaErrorUnknown == KL_CUDA_RT_UNKNOWN, "cudaErrorUnknown");

const char *kl_cuda_rt_errstr(int err) { return cudaGetErrorString((cudaError_t)err); }
/* kl_cuda_cublas_errstr / kl_cuda_cusparse_errstr: cuda_blas_real.c, which loads cuBLAS and
 * cuSPARSE at their first use (this module links neither). */

int kl_cuda_rt_emulated(void) { return 0; }

kl_status kl_cuda_rt_device_count(int *n) {
  *n = 0; /* cudaGetDeviceCount leaves it untouched on failure */
  kl_status st = kl_cuda_check_rt((int)cudaGetDeviceCount(n), "cudaGetDeviceCount");
  if (st != KL_OK) *n = 0;
  else if (*n <= 0) {
    *n = 0;
    st = kl_cuda_seterr(KL_ENODEV, "no CUDA device: cudaGetDeviceCount found none");
  }
  return st;
}

kl_status kl_cuda_rt_device_props(int dev, kl_cuda_rt_props *p) {
  struct cudaDeviceProp q;
  memset(p, 0, sizeof *p);
  kl_status st = kl_cuda_check_rt((int)cudaGetDeviceProperties(&q, dev), "cudaGetDeviceProperties");
  if (st != KL_OK) return st;
  snprintf(p->name, sizeof p->name, "%s", q.name);
  p->total_memory = q.totalGlobalMem;
  p->major = q.major;
  p->minor = q.minor;
  p->multiprocessors = q.multiProcessorCount;
  return KL_OK;
}

void kl_cuda_rt_versions(int *runtime, int *driver) {
  *runtime = *driver = 0;
  (void)cudaRuntimeGetVersion(runtime);
  (void)cudaDriverGetVersion(driver); /* 0 without a driver */
}

kl_status kl_cuda_rt_set_device(int dev) {
  return kl_cuda_check_rt((int)cudaSetDevice(dev), "cudaSetDevice");
}

kl_status kl_cuda_rt_malloc(int dev, void **p, size_t bytes) {
  *p = NULL;
  KL_TRY(kl_cuda_rt_set_device(dev));
  cudaError_t e = cudaMalloc(p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError(); /* not sticky: clear it so the retry starts clean */
    *p = NULL;
    return kl_cuda_seterr(KL_ENOMEM, "cudaMalloc: CUDA out of memory allocating %zu bytes",
                          bytes);
  }
  if (e != cudaSuccess) *p = NULL;
  return kl_cuda_check_rt((int)e, "cudaMalloc");
}

kl_status kl_cuda_rt_free(int dev, void *p) {
  if (!p) return KL_OK;
  KL_TRY(kl_cuda_rt_set_device(dev));
  return kl_cuda_check_rt((int)cudaFree(p), "cudaFree");
}

kl_status kl_cuda_rt_stream_create(int dev, kl_cuda_stream *s) {
  cudaStream_t q = NULL;
  *s = NULL;
  KL_TRY(kl_cuda_rt_set_device(dev));
  KL_TRY(kl_cuda_check_rt((int)cudaStreamCreate(&q), "cudaStreamCreate"));
  *s = (kl_cuda_stream)q;
  return KL_OK;
}

kl_status kl_cuda_rt_stream_destroy(int dev, kl_cuda_stream s) {
  if (!s) return KL_OK;
  KL_TRY(kl_cuda_rt_set_device(dev));
  return kl_cuda_check_rt((int)cudaStreamDestroy((cudaStream_t)s), "cudaStreamDestroy");
}

kl_status kl_cuda_rt_stream_sync(int dev, kl_cuda_stream s) {
  KL_TRY(kl_cuda_rt_set_device(dev));
  return kl_cuda_check_rt((int)cudaStreamSynchronize((cudaStream_t)s), "cudaStreamSynchronize");
}

kl_status kl_cuda_rt_copy_h2d(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(kl_cuda_rt_set_device(dev));
  /* from pageable memory the runtime stages src before it returns (so src may be reused) */
  return kl_cuda_check_rt(
      (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)s),
      "cudaMemcpyAsync (host to device)");
}

kl_status kl_cuda_rt_copy_d2h(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(kl_cuda_rt_set_device(dev));
  KL_TRY(kl_cuda_check_rt(
      (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, (cudaStream_t)s),
      "cudaMemcpyAsync (device to host)"));
  return kl_cuda_check_rt((int)cudaStreamSynchronize((cudaStream_t)s), "cudaStreamSynchronize");
}

kl_status kl_cuda_rt_copy_d2d(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(kl_cuda_rt_set_device(dev));
  return kl_cuda_check_rt(
      (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)s),
      "cudaMemcpyAsync (device to device)");
}

kl_status kl_cuda_rt_memset0(int dev, void *p, size_t bytes, kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(kl_cuda_rt_set_device(dev));
  return kl_cuda_check_rt((int)cudaMemsetAsync(p, 0, bytes, (cudaStream_t)s), "cudaMemsetAsync");
}
