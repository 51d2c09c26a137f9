/* cuda_alloc.h: a caching allocator of device memory (PyTorch's scheme, simplified).
 *
 * cudaMalloc and cudaFree synchronise the device and cost tens of microseconds; a training
 * step allocates and frees the same sizes every step. Freed blocks therefore stay cached in
 * size-binned free lists and are handed out again: a request takes the smallest cached
 * block of its pool that fits and is not more than twice its size (so a small request does
 * not pin a huge block). Sizes are rounded up: to 512 bytes below 1 MiB (the small pool),
 * to 2 MiB above (the large pool). When the device says out of memory, every cached free
 * block is released and the request is tried once more; only then is it KL_ENOMEM.
 * Blocks are not split or merged, and one stream is assumed (blocks are reused in stream
 * order); both are for later (gpu/README.md).
 *
 * The device is reached through a vendor interface (the real one calls cudaMalloc /
 * cudaFree: gpu/cuda_vendor.c), so the host logic is tested here with a fake that runs out
 * of memory and fails on demand (spec/c/test_gpu_alloc.c). Host bookkeeping goes through
 * the vendor's host_malloc / host_free (the core's allocator in the module). */
#ifndef KL_CUDA_ALLOC_H
#define KL_CUDA_ALLOC_H
#include <stddef.h>
#include <stdint.h>

#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kl_cuda_vendor {
  void *ud;
  /* *p = bytes of device memory; KL_ENOMEM when the device is out of memory (the allocator
   * then releases its cache and retries once), another status with a message otherwise */
  kl_status (*dev_malloc)(void *ud, void **p, size_t bytes);
  kl_status (*dev_free)(void *ud, void *p);
  void *(*host_malloc)(void *ud, size_t bytes); /* NULL when out of host memory */
  void (*host_free)(void *ud, void *p);
} kl_cuda_vendor;

typedef struct kl_cuda_alloc kl_cuda_alloc;

typedef struct kl_cuda_alloc_stats {
  size_t in_use_bytes;    /* handed out (rounded sizes) */
  size_t cached_bytes;    /* free blocks kept for reuse */
  int64_t in_use_blocks, cached_blocks;
  int64_t dev_mallocs, dev_frees; /* calls into the vendor */
  int64_t cache_hits;     /* requests served from the cache */
  int64_t oom_retries;    /* times the cache was released after an out-of-memory */
} kl_cuda_alloc_stats;

/* A new allocator over vendor v (copied). NULL when out of host memory. */
kl_cuda_alloc *kl_cuda_alloc_new(const kl_cuda_vendor *v);
/* Releases every block, cached or still in use, and the allocator; NULL is a no-op.
 * Returns the first vendor error (all blocks are still attempted). */
kl_status kl_cuda_alloc_destroy(kl_cuda_alloc *a);
/* *p = a block of at least bytes (bytes 0: *p = NULL, KL_OK). On failure *p is NULL and
 * nothing is left allocated: KL_ENOMEM "CUDA: out of memory allocating 2.00 MiB (...)" or
 * the vendor's error. */
kl_status kl_cuda_alloc_malloc(kl_cuda_alloc *a, void **p, size_t bytes);
/* Returns p (from kl_cuda_alloc_malloc; NULL is a no-op) to the cache. KL_EINVAL for a
 * pointer this allocator did not hand out (and nothing changes). */
kl_status kl_cuda_alloc_free(kl_cuda_alloc *a, void *p);
/* Gives every cached free block back to the device (torch.cuda.empty_cache). */
kl_status kl_cuda_alloc_empty_cache(kl_cuda_alloc *a);
void kl_cuda_alloc_get_stats(const kl_cuda_alloc *a, kl_cuda_alloc_stats *s);
/* The size a request of bytes is rounded to. */
size_t kl_cuda_alloc_round(size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* KL_CUDA_ALLOC_H */
