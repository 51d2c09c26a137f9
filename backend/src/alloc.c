/* alloc.c: the one allocation choke point, with overflow checks and a failure-injection hook. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include "kl/kl.h"

static atomic_long kl_alloc_count; /* allocations since the last kl_alloc_fail_at call */
static atomic_long kl_alloc_fail;  /* 1-based allocation number that fails; 0 = none */

/* Counts one allocation; returns 1 when the test hook says this one must fail. */
static int kl_alloc_tick(void) {
  long n = atomic_fetch_add(&kl_alloc_count, 1) + 1;
  long f = atomic_load(&kl_alloc_fail);
  return f > 0 && n == f;
}

static void *kl_oom(size_t bytes) {
  kl_seterr(KL_ENOMEM, "out of memory (%zu bytes)", bytes);
  return NULL;
}

long kl_alloc_fail_at(long k) {
  long made = atomic_exchange(&kl_alloc_count, 0);
  atomic_store(&kl_alloc_fail, k > 0 ? k : 0);
  return made;
}

void *kl_malloc(size_t bytes) {
  if (kl_alloc_tick()) return kl_oom(bytes);
  void *p = malloc(bytes ? bytes : 1); /* never malloc(0): NULL must mean failure */
  return p ? p : kl_oom(bytes);
}

void *kl_calloc(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return kl_oom(SIZE_MAX);
  if (kl_alloc_tick()) return kl_oom(count * size);
  void *p = calloc(count ? count : 1, size ? size : 1);
  return p ? p : kl_oom(count * size);
}

void *kl_realloc(void *p, size_t bytes) {
  if (kl_alloc_tick()) return kl_oom(bytes);
  void *q = realloc(p, bytes ? bytes : 1);
  return q ? q : kl_oom(bytes); /* on failure p is untouched and still owned by the caller */
}

void *kl_malloc_n(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return kl_oom(SIZE_MAX);
  return kl_malloc(count * size);
}

void kl_free(void *p) { free(p); }
