/* kl_cuda_rt.h: what every kernel source (gpu/k_*.cu) includes: the CUDA runtime under nvcc,
 * the host emulation (kl_cuda_emu.h) under g++, and the launch macro and helpers both share. */
#ifndef KL_CUDA_RT_H
#define KL_CUDA_RT_H
#include <stdint.h>

#ifdef __CUDACC__
#include <cuda_runtime.h>
/* kernel<<<grid, block, 0, stream>>>(args...) */
#define KL_LAUNCH(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (cudaStream_t)(stream)>>>(__VA_ARGS__)
#else
#include "kl_cuda_emu.h"
#define KL_LAUNCH(kernel, grid, block, stream, ...) \
  kl_emu_launch((grid), (block), (cudaStream_t)(stream), kernel, __VA_ARGS__)
#endif

#include "kl_cuda.h"

/* Threads per block of the elementwise kernels, and the most blocks one launch uses (the
 * kernels loop over the rest: a grid-stride loop). */
#define KL_CUDA_BLOCK 256
#define KL_CUDA_MAX_BLOCKS 65535

/* Blocks for n work items (n > 0). */
static inline unsigned kl_cuda_blocks(int64_t n) {
  int64_t b = (n + KL_CUDA_BLOCK - 1) / KL_CUDA_BLOCK;
  return (unsigned)(b > KL_CUDA_MAX_BLOCKS ? KL_CUDA_MAX_BLOCKS : b);
}

/* for (i = this thread's first item; i < n; i += all threads of the grid) */
#define KL_GRID_LOOP(i, n)                                                              \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);              \
       i += (int64_t)blockDim.x * gridDim.x)

/* After a launch: the launch's own error (a bad configuration, no device), as KL_EDEVICE /
 * KL_ENODEV with the runtime's string. Kernel faults surface at the next synchronisation. */
static inline kl_status kl_cuda_launched(const char *what) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return KL_OK;
  return kl_cuda_seterr(KL_EDEVICE, "%s: CUDA kernel launch failed: %s (%d)", what,
                        cudaGetErrorString(e), (int)e);
}

#endif /* KL_CUDA_RT_H */
