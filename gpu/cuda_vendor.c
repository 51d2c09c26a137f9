/* cuda_vendor.c: CUDA / cuBLAS / cuSPARSE statuses mapped to kl_status with the libraries'
 * own strings, and the allocator's real vendor. Built into keras/cuda.so only. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusparse.h>

#include "cuda_vendor.h"
#include "kl_cuda.h"

kl_status kl_cuda_check_rt(int err, const char *what) {
  const cudaError_t e = (cudaError_t)err;
  if (e == cudaSuccess) return KL_OK;
  if (e == cudaErrorInsufficientDriver || e == cudaErrorStubLibrary || e == cudaErrorNoDevice)
    return kl_cuda_seterr(KL_ENODEV, "no CUDA device: %s", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation)
    return kl_cuda_seterr(KL_ENOMEM, "%s: CUDA out of memory: %s", what, cudaGetErrorString(e));
  return kl_cuda_seterr(KL_EDEVICE, "%s: CUDA error %d: %s", what, err, cudaGetErrorString(e));
}

kl_status kl_cuda_check_cublas(int status, const char *what) {
  const cublasStatus_t s = (cublasStatus_t)status;
  if (s == CUBLAS_STATUS_SUCCESS) return KL_OK;
  return kl_cuda_seterr(s == CUBLAS_STATUS_ALLOC_FAILED ? KL_ENOMEM : KL_EDEVICE,
                        "%s: cuBLAS error %d: %s", what, status, cublasGetStatusString(s));
}

kl_status kl_cuda_check_cusparse(int status, const char *what) {
  const cusparseStatus_t s = (cusparseStatus_t)status;
  if (s == CUSPARSE_STATUS_SUCCESS) return KL_OK;
  return kl_cuda_seterr(s == CUSPARSE_STATUS_ALLOC_FAILED ? KL_ENOMEM : KL_EDEVICE,
                        "%s: cuSPARSE error %d: %s", what, status, cusparseGetErrorString(s));
}

static kl_status real_malloc(void *ud, void **p, size_t bytes) {
  (void)ud;
  cudaError_t e = cudaMalloc(p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError(); /* not sticky: clear it so the retry starts clean */
    *p = NULL;
    return KL_ENOMEM;
  }
  return kl_cuda_check_rt((int)e, "cudaMalloc");
}

static kl_status real_free(void *ud, void *p) {
  (void)ud;
  return kl_cuda_check_rt((int)cudaFree(p), "cudaFree");
}

void kl_cuda_vendor_real(kl_cuda_vendor *v, void *ud, void *(*host_malloc)(void *, size_t),
                         void (*host_free)(void *, void *)) {
  v->ud = ud;
  v->dev_malloc = real_malloc;
  v->dev_free = real_free;
  v->host_malloc = host_malloc;
  v->host_free = host_free;
}
