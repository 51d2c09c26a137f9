/* kl_cuda_emu.h: host emulation of the CUDA kernel language, so that one kernel source
 * compiles with nvcc for the device and with g++ for the host (the tests, under ASan).
 *
 * A launch runs the grid as loops, on the calling thread: blocks in order (x fastest, then
 * y, z), and in each block the threads in order. A kernel therefore must not depend on
 * threads running concurrently: nothing here models __shared__, __syncthreads, warps,
 * memory ordering or timing, and they are left undefined on purpose, so that a kernel using
 * them does not compile for the host (such kernels live in files built by nvcc only and are
 * tested on a GPU: gpu/README.md). Float atomics are left undefined too (their sums depend
 * on the order threads run in, which a GPU does not fix); integer atomicMin / atomicMax /
 * atomicAdd / atomicOr exist, their results being order-independent.
 *
 * The launch checks what the device checks (block of 1 .. 1024 threads, grid dimensions in
 * range, no empty grid) and records cudaErrorInvalidConfiguration for the next
 * cudaGetLastError(), as the runtime does: a launch that would fail on a GPU fails here. */
#ifndef KL_CUDA_EMU_H
#define KL_CUDA_EMU_H
#ifdef __CUDACC__
#error "kl_cuda_emu.h is for the host compiler; nvcc uses the CUDA headers"
#endif
#ifndef __cplusplus
#error "kl_cuda_emu.h: compile kernel sources as C++ (g++ -x c++)"
#endif
#include <stdint.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

/* The coordinates of the emulated thread now running (one launch at a time per OS thread). */
inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

/* The few runtime names the kernel files use. */
typedef enum cudaError { cudaSuccess = 0, cudaErrorInvalidConfiguration = 9 } cudaError_t;
typedef struct kl_emu_stream *cudaStream_t;
inline thread_local cudaError_t kl_emu_last_error = cudaSuccess;
static inline cudaError_t cudaGetLastError(void) {
  cudaError_t e = kl_emu_last_error;
  kl_emu_last_error = cudaSuccess;
  return e;
}
static inline const char *cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "invalid configuration argument";
}

/* Integer atomics: on one host thread a plain read-modify-write; returns the old value. */
template <typename T> static inline T atomicMin(T *p, T v) {
  T o = *p;
  if (v < o) *p = v;
  return o;
}
template <typename T> static inline T atomicMax(T *p, T v) {
  T o = *p;
  if (v > o) *p = v;
  return o;
}
static inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
  unsigned long long o = *p;
  *p = o + v;
  return o;
}
static inline unsigned atomicOr(unsigned *p, unsigned v) { unsigned o = *p; *p = o | v; return o; }

/* kernel<<<grid, block, 0, stream>>>(args...), run as loops. The arguments are converted
 * to the kernel's parameter types once, as a real launch copies them. */
template <typename... P, typename... A>
static void kl_emu_launch(dim3 grid, dim3 block, cudaStream_t stream, void (*kernel)(P...),
                          A &&...args) {
  (void)stream;
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535u ||
      grid.z > 65535u || threads == 0 || threads > 1024 || block.z > 64) {
    kl_emu_last_error = cudaErrorInvalidConfiguration;
    return;
  }
  gridDim = grid;
  blockDim = block;
  auto call = [&](P... p) {
    for (unsigned bz = 0; bz < grid.z; bz++)
      for (unsigned by = 0; by < grid.y; by++)
        for (unsigned bx = 0; bx < grid.x; bx++) {
          blockIdx = uint3(bx, by, bz);
          for (unsigned tz = 0; tz < block.z; tz++)
            for (unsigned ty = 0; ty < block.y; ty++)
              for (unsigned tx = 0; tx < block.x; tx++) {
                threadIdx = uint3(tx, ty, tz);
                kernel(p...);
              }
        }
  };
  call(static_cast<P>(args)...);
}

#endif /* KL_CUDA_EMU_H */
