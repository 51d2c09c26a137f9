/* gpu_testutil.h: what the spec/c/test_gpu_*.c tests share: "device" memory and the
 * comparison of results with the CPU's.
 *
 * Built two ways from the same test source: host-emulated (the default: the kernels of gpu/
 * compiled by g++, "device" memory is malloc'ed host memory, under ASan in test-asan), and,
 * with KL_GPU_TEST_DEVICE, against the nvcc-built kernels on a real GPU (tools/gpu-check),
 * where a machine without a device reports the test skipped (exit 77), never passed. */
#ifndef GPU_TESTUTIL_H
#define GPU_TESTUTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kl_cuda.h"
#include "kltest.h"

#define GPU_TEST_SKIP 77

#ifdef KL_GPU_TEST_DEVICE
#include <cuda_runtime.h>
static inline void gpu_test_die(const char *what, cudaError_t e) {
  fprintf(stderr, "%s: %s (%d)\n", what, cudaGetErrorString(e), (int)e);
  exit(1); /* a test harness may stop: the device is unusable */
}
static inline void *dev_alloc(size_t b) {
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, b ? b : 1);
  if (e != cudaSuccess) gpu_test_die("cudaMalloc", e);
  return p;
}
static inline void dev_free(void *p) { cudaFree(p); }
static inline void to_dev(void *d, const void *h, size_t b) {
  cudaError_t e = b ? cudaMemcpy(d, h, b, cudaMemcpyHostToDevice) : cudaSuccess;
  if (e != cudaSuccess) gpu_test_die("cudaMemcpy to the device", e);
}
static inline void to_host(void *h, const void *d, size_t b) {
  cudaError_t e = b ? cudaMemcpy(h, d, b, cudaMemcpyDeviceToHost) : cudaSuccess;
  if (e != cudaSuccess) gpu_test_die("cudaMemcpy to the host", e);
}
static inline void dev_sync(void) {
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) gpu_test_die("a kernel failed", e);
}
/* 0 when a device is there, else GPU_TEST_SKIP with the reason printed. */
static inline int gpu_test_start(const char *name) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    printf("%s: skipped: no CUDA device: %s\n", name,
           e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    return GPU_TEST_SKIP;
  }
  kl_cuda_seterr = kl_seterr;
  printf("%s: on the GPU (kernels built by nvcc)\n", name);
  return 0;
}
#define GPU_TEST_MODE "device"
#else
static inline void *dev_alloc(size_t b) {
  void *p = malloc(b ? b : 1);
  if (!p) {
    fprintf(stderr, "out of host memory\n");
    exit(1);
  }
  return p;
}
static inline void dev_free(void *p) { free(p); }
static inline void to_dev(void *d, const void *h, size_t b) { if (b) memcpy(d, h, b); }
static inline void to_host(void *h, const void *d, size_t b) { if (b) memcpy(h, d, b); }
static inline void dev_sync(void) {}
static inline int gpu_test_start(const char *name) {
  kl_cuda_seterr = kl_seterr;
  printf("%s: host-emulated (kernels built by the host compiler, kl_cuda_emu.h)\n", name);
  return 0;
}
#define GPU_TEST_MODE "emulated"
#endif

/* A device copy of n bytes at h. */
static inline void *dev_copy(const void *h, size_t b) {
  void *d = dev_alloc(b);
  to_dev(d, h, b);
  return d;
}

/* n values of dtype dt equal bit for bit, NaN matching any NaN (a GPU returns its canonical
 * NaN, x86 the first operand's). On a mismatch, prints the first one under label. */
static inline int gpu_same(const char *label, kl_dtype dt, const void *a, const void *b,
                           int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (dt == KL_FLOAT32) {
      float x = ((const float *)a)[i], y = ((const float *)b)[i];
      if ((x != x && y != y) || memcmp(&x, &y, sizeof x) == 0) continue;
      fprintf(stderr, "%s: [%lld] %.9g != %.9g (CPU)\n", label, (long long)i, x, y);
    } else if (dt == KL_FLOAT64) {
      double x = ((const double *)a)[i], y = ((const double *)b)[i];
      if ((x != x && y != y) || memcmp(&x, &y, sizeof x) == 0) continue;
      fprintf(stderr, "%s: [%lld] %.17g != %.17g (CPU)\n", label, (long long)i, x, y);
    } else {
      int64_t x = ((const int64_t *)a)[i], y = ((const int64_t *)b)[i];
      if (x == y) continue;
      fprintf(stderr, "%s: [%lld] %lld != %lld (CPU)\n", label, (long long)i, (long long)x,
              (long long)y);
    }
    return 0;
  }
  return 1;
}

/* n values of dtype dt at device address d (after the kernels in flight) equal host values h
 * as gpu_same has it. */
static inline int gpu_same_on_dev(const char *label, kl_dtype dt, const void *d, const void *h,
                                  int64_t n) {
  size_t b = (size_t)n * kl_dtype_size(dt);
  void *c = malloc(b + 1);
  if (!c) {
    fprintf(stderr, "out of host memory\n");
    exit(1);
  }
  dev_sync();
  to_host(c, d, b);
  int ok = gpu_same(label, dt, c, h, n);
  free(c);
  return ok;
}

/* A row_sparse result on the device (n stored rows at drows, n x width values of dtype dt at
 * dvals) equal host tensor ref's stored rows and values ("<label> rows" / "<label> values"). */
static inline int gpu_same_rsp_on_dev(const char *label, kl_dtype dt, const int64_t *drows,
                                      const void *dvals, int64_t n, int64_t width,
                                      const kl_tensor *ref) {
  char l2[320];
  snprintf(l2, sizeof l2, "%s rows", label);
  int ok = n == ref->nnz && gpu_same_on_dev(l2, KL_INT64, drows, ref->indices, n);
  snprintf(l2, sizeof l2, "%s values", label);
  return ok && gpu_same_on_dev(l2, dt, dvals, ref->data, n * width);
}

static uint64_t gpu_rng = 0x9e3779b97f4a7c15ULL;
static inline double gpu_urand(double lo, double hi) {
  gpu_rng = gpu_rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (hi - lo) * (double)(gpu_rng >> 11) / 9007199254740992.0;
}
static inline int64_t gpu_irand(int64_t n) { /* in [0, n) */
  gpu_rng = gpu_rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return (int64_t)((gpu_rng >> 33) % (uint64_t)n);
}

#endif
