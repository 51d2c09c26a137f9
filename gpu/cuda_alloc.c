/* cuda_alloc.c: the caching device allocator (cuda_alloc.h): size-rounded blocks, a free
 * list per pool sorted by size, a pointer table for frees, release-and-retry on OOM. */
#include <stdio.h>
#include <string.h>

#include "cuda_alloc.h"
#include "kl_cuda.h"

#define SMALL_LIMIT ((size_t)1 << 20) /* requests up to 1 MiB: the small pool */
#define SMALL_ROUND ((size_t)512)
#define LARGE_ROUND ((size_t)2 << 20)

typedef struct block {
  void *ptr;
  size_t size;
  int in_use;
  struct block *next_free; /* in its pool's free list, sorted by size */
} block;

struct kl_cuda_alloc {
  kl_cuda_vendor v;
  block **slots; /* open addressing by pointer: every block, free or in use */
  size_t cap, count;
  block *free_small, *free_large;
  kl_cuda_alloc_stats st;
};

size_t kl_cuda_alloc_round(size_t bytes) {
  const size_t r = bytes <= SMALL_LIMIT ? SMALL_ROUND : LARGE_ROUND;
  if (bytes > SIZE_MAX - r) return 0; /* too large to round: refused by the caller */
  return (bytes + r - 1) / r * r;
}

static size_t hash_ptr(const void *p, size_t cap) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x & (cap - 1);
}

/* The slot of p, or of the empty slot where it would go. */
static size_t find_slot(const kl_cuda_alloc *a, const void *p) {
  size_t i = hash_ptr(p, a->cap);
  while (a->slots[i] && a->slots[i]->ptr != p) i = (i + 1) & (a->cap - 1);
  return i;
}

/* Room for one more block in the table (grows at half full). */
static kl_status table_reserve(kl_cuda_alloc *a) {
  if (2 * (a->count + 1) <= a->cap) return KL_OK;
  const size_t ncap = a->cap ? 2 * a->cap : 64;
  block **ns = a->v.host_malloc(a->v.ud, ncap * sizeof *ns);
  if (!ns) return kl_cuda_seterr(KL_ENOMEM, "CUDA allocator: out of host memory");
  memset(ns, 0, ncap * sizeof *ns);
  block **old = a->slots;
  const size_t ocap = a->cap;
  a->slots = ns;
  a->cap = ncap;
  for (size_t i = 0; i < ocap; i++)
    if (old[i]) a->slots[find_slot(a, old[i]->ptr)] = old[i];
  a->v.host_free(a->v.ud, old);
  return KL_OK;
}

/* Removes b from the table (backward-shift deletion keeps the probe chains intact). */
static void table_remove(kl_cuda_alloc *a, block *b) {
  size_t i = find_slot(a, b->ptr);
  a->slots[i] = NULL;
  a->count--;
  for (size_t j = (i + 1) & (a->cap - 1); a->slots[j]; j = (j + 1) & (a->cap - 1)) {
    block *m = a->slots[j];
    a->slots[j] = NULL;
    a->slots[find_slot(a, m->ptr)] = m;
  }
}

static block **pool_of(kl_cuda_alloc *a, size_t size) {
  return size <= SMALL_LIMIT ? &a->free_small : &a->free_large;
}

static void free_list_insert(kl_cuda_alloc *a, block *b) {
  block **pp = pool_of(a, b->size);
  while (*pp && (*pp)->size < b->size) pp = &(*pp)->next_free;
  b->next_free = *pp;
  *pp = b;
}

/* The smallest cached block of size's pool with size <= its size <= 2 size, unlinked. */
static block *free_list_take(kl_cuda_alloc *a, size_t size) {
  block **pp = pool_of(a, size);
  while (*pp && (*pp)->size < size) pp = &(*pp)->next_free;
  block *b = *pp;
  if (!b || b->size / 2 > size) return NULL;
  *pp = b->next_free;
  b->next_free = NULL;
  return b;
}

kl_cuda_alloc *kl_cuda_alloc_new(const kl_cuda_vendor *v) {
  kl_cuda_alloc *a = v->host_malloc(v->ud, sizeof *a);
  if (!a) return NULL;
  memset(a, 0, sizeof *a);
  a->v = *v;
  return a;
}

/* Gives the cached blocks of one pool back to the device; the first error is returned. */
static kl_status release_pool(kl_cuda_alloc *a, block **pool) {
  kl_status first = KL_OK;
  while (*pool) {
    block *b = *pool;
    *pool = b->next_free;
    kl_status st = a->v.dev_free(a->v.ud, b->ptr);
    if (st != KL_OK && first == KL_OK) first = st;
    a->st.dev_frees++;
    a->st.cached_bytes -= b->size;
    a->st.cached_blocks--;
    table_remove(a, b);
    a->v.host_free(a->v.ud, b);
  }
  return first;
}

kl_status kl_cuda_alloc_empty_cache(kl_cuda_alloc *a) {
  kl_status s1 = release_pool(a, &a->free_small);
  kl_status s2 = release_pool(a, &a->free_large);
  return s1 != KL_OK ? s1 : s2;
}

kl_status kl_cuda_alloc_malloc(kl_cuda_alloc *a, void **p, size_t bytes) {
  *p = NULL;
  if (bytes == 0) return KL_OK;
  const size_t size = kl_cuda_alloc_round(bytes);
  if (size == 0)
    return kl_cuda_seterr(KL_ENOMEM, "CUDA: out of memory allocating %zu bytes (too large)",
                          bytes);
  block *b = free_list_take(a, size);
  if (b) {
    b->in_use = 1;
    a->st.cached_bytes -= b->size;
    a->st.cached_blocks--;
    a->st.in_use_bytes += b->size;
    a->st.in_use_blocks++;
    a->st.cache_hits++;
    *p = b->ptr;
    return KL_OK;
  }
  /* host bookkeeping first: a failure there leaves no device memory behind */
  kl_status st = table_reserve(a);
  if (st != KL_OK) return st;
  b = a->v.host_malloc(a->v.ud, sizeof *b);
  if (!b) return kl_cuda_seterr(KL_ENOMEM, "CUDA allocator: out of host memory");
  void *d = NULL;
  st = a->v.dev_malloc(a->v.ud, &d, size);
  if (st == KL_ENOMEM && a->st.cached_blocks > 0) {
    a->st.oom_retries++;
    kl_status rs = kl_cuda_alloc_empty_cache(a);
    if (rs != KL_OK) {
      a->v.host_free(a->v.ud, b);
      return rs;
    }
    st = a->v.dev_malloc(a->v.ud, &d, size);
  }
  if (st != KL_OK) {
    a->v.host_free(a->v.ud, b);
    if (st == KL_ENOMEM)
      return kl_cuda_seterr(KL_ENOMEM,
                            "CUDA: out of memory allocating %.2f MiB (%.2f MiB in use by "
                            "keras-lua, cache released)",
                            (double)size / 1048576.0, (double)a->st.in_use_bytes / 1048576.0);
    return st;
  }
  a->st.dev_mallocs++;
  b->ptr = d;
  b->size = size;
  b->in_use = 1;
  b->next_free = NULL;
  a->slots[find_slot(a, d)] = b;
  a->count++;
  a->st.in_use_bytes += size;
  a->st.in_use_blocks++;
  *p = d;
  return KL_OK;
}

kl_status kl_cuda_alloc_free(kl_cuda_alloc *a, void *p) {
  if (!p) return KL_OK;
  block *b = a->cap ? a->slots[find_slot(a, p)] : NULL;
  if (!b || !b->in_use)
    return kl_cuda_seterr(KL_EINVAL, "CUDA allocator: free of %p, which is not an allocated "
                          "block", p);
  b->in_use = 0;
  a->st.in_use_bytes -= b->size;
  a->st.in_use_blocks--;
  a->st.cached_bytes += b->size;
  a->st.cached_blocks++;
  free_list_insert(a, b);
  return KL_OK;
}

kl_status kl_cuda_alloc_destroy(kl_cuda_alloc *a) {
  if (!a) return KL_OK;
  kl_status first = kl_cuda_alloc_empty_cache(a);
  for (size_t i = 0; i < a->cap; i++) {
    block *b = a->slots[i];
    if (!b) continue;
    kl_status st = a->v.dev_free(a->v.ud, b->ptr); /* a block still in use */
    if (st != KL_OK && first == KL_OK) first = st;
    a->st.dev_frees++;
    a->v.host_free(a->v.ud, b);
  }
  if (a->slots) a->v.host_free(a->v.ud, a->slots);
  a->v.host_free(a->v.ud, a);
  return first;
}

void kl_cuda_alloc_get_stats(const kl_cuda_alloc *a, kl_cuda_alloc_stats *s) { *s = a->st; }
