/* cuda_vendor.c: the statuses of the CUDA runtime, cuBLAS and cuSPARSE as kl_status codes
 * with the libraries' own strings (cuda_vendor.h). Common to the real and the emulated
 * module: the strings come from the half that is linked (kl_cuda_rt_errstr & co.). */
#include "cuda_vendor.h"

kl_status kl_cuda_check_rt(int err, const char *what) {
  if (err == KL_CUDA_RT_SUCCESS) return KL_OK;
  const char *s = kl_cuda_rt_errstr(err);
  if (err == KL_CUDA_RT_INSUFFICIENT_DRIVER || err == KL_CUDA_RT_STUB_LIBRARY ||
      err == KL_CUDA_RT_NO_DEVICE)
    return kl_cuda_seterr(KL_ENODEV, "no CUDA device: %s", s);
  if (err == KL_CUDA_RT_OUT_OF_MEMORY)
    return kl_cuda_seterr(KL_ENOMEM, "%s: CUDA out of memory: %s", what, s);
  return kl_cuda_seterr(KL_EDEVICE, "%s: CUDA error %d: %s", what, err, s);
}

kl_status kl_cuda_check_cublas(int status, const char *what) {
  if (status == 0) return KL_OK;
  return kl_cuda_seterr(status == 3 /* CUBLAS_STATUS_ALLOC_FAILED */ ? KL_ENOMEM : KL_EDEVICE,
                        "%s: cuBLAS error %d: %s", what, status, kl_cuda_cublas_errstr(status));
}

kl_status kl_cuda_check_cusparse(int status, const char *what) {
  if (status == 0) return KL_OK;
  return kl_cuda_seterr(status == 2 /* CUSPARSE_STATUS_ALLOC_FAILED */ ? KL_ENOMEM : KL_EDEVICE,
                        "%s: cuSPARSE error %d: %s", what, status,
                        kl_cuda_cusparse_errstr(status));
}
