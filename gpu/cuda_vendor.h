/* cuda_vendor.h: the CUDA runtime, cuBLAS and cuSPARSE statuses as kl_status codes, and the
 * real device vendor of the caching allocator (cudaMalloc / cudaFree). Module only. */
#ifndef KL_CUDA_VENDOR_H
#define KL_CUDA_VENDOR_H
#include "cuda_alloc.h"
#include "kl/kl.h"

/* A CUDA runtime status (cudaError_t) as a status with the runtime's own string: 0 KL_OK;
 * 35 (insufficient driver), 34 (stub library), 100 (no device) KL_ENODEV
 * "no CUDA device: <string>"; 2 (memory allocation) KL_ENOMEM "<what>: CUDA out of memory:
 * <string>"; others KL_EDEVICE "<what>: CUDA error <code>: <string>". */
kl_status kl_cuda_check_rt(int err, const char *what);
/* A cuBLAS status (cublasStatus_t): ALLOC_FAILED KL_ENOMEM, others KL_EDEVICE, with
 * cublasGetStatusString's text. */
kl_status kl_cuda_check_cublas(int status, const char *what);
/* A cuSPARSE status (cusparseStatus_t): ALLOC_FAILED KL_ENOMEM, others KL_EDEVICE, with
 * cusparseGetErrorString's text. */
kl_status kl_cuda_check_cusparse(int status, const char *what);

/* The allocator's vendor on the current device; host memory from host_malloc / host_free. */
void kl_cuda_vendor_real(kl_cuda_vendor *v, void *ud, void *(*host_malloc)(void *, size_t),
                         void (*host_free)(void *, void *));
#endif
