/* test_gpu_alloc.c: the caching device allocator (gpu/cuda_alloc.c) over a fake device that
 * has a capacity and fails on demand: rounding, reuse from the cache, the size limit of a
 * reuse, release-and-retry on out-of-memory, a real out-of-memory, bad frees, device errors,
 * and a sweep that fails the k-th vendor call (device or host) for every k and checks that
 * every call then fails cleanly and nothing leaks. No device needed: it runs everywhere. */
#include <stdlib.h>

#include "cuda_alloc.h"
#include "gpu_testutil.h"

#define MiB ((size_t)1 << 20)
#define MAXLIVE 4096

typedef struct fake {
  size_t capacity, live_bytes;
  int64_t calls, fail_at;   /* the fail_at-th call (1-based) fails; 0: none */
  int fail_device_error;    /* the injected device failure is KL_EDEVICE, not KL_ENOMEM */
  void *live[MAXLIVE];
  size_t live_size[MAXLIVE];
  int64_t nlive, host_live, bad_frees;
} fake;

static int inject(fake *f) { return ++f->calls == f->fail_at; }

static kl_status f_malloc(void *ud, void **p, size_t bytes) {
  fake *f = ud;
  *p = NULL;
  if (inject(f)) {
    if (f->fail_device_error) return kl_seterr(KL_EDEVICE, "cudaMalloc: CUDA error 999: unknown error");
    return KL_ENOMEM;
  }
  if (f->live_bytes + bytes > f->capacity || f->nlive == MAXLIVE) return KL_ENOMEM;
  void *q = malloc(bytes > 64 ? 64 : bytes); /* stands for the device block */
  if (!q) return KL_ENOMEM;
  f->live[f->nlive] = q;
  f->live_size[f->nlive++] = bytes;
  f->live_bytes += bytes;
  *p = q;
  return KL_OK;
}

static kl_status f_free(void *ud, void *p) {
  fake *f = ud;
  for (int64_t i = 0; i < f->nlive; i++)
    if (f->live[i] == p) {
      f->live_bytes -= f->live_size[i];
      f->live[i] = f->live[--f->nlive];
      f->live_size[i] = f->live_size[f->nlive];
      free(p);
      return KL_OK;
    }
  f->bad_frees++;
  return kl_seterr(KL_EDEVICE, "cudaFree: invalid device pointer");
}

static void *f_hmalloc(void *ud, size_t b) {
  fake *f = ud;
  if (inject(f)) return NULL;
  void *p = malloc(b);
  if (p) f->host_live++;
  return p;
}

static void f_hfree(void *ud, void *p) {
  fake *f = ud;
  if (p) f->host_live--;
  free(p);
}

static kl_cuda_alloc *new_alloc(fake *f, size_t capacity) {
  memset(f, 0, sizeof *f);
  f->capacity = capacity;
  kl_cuda_vendor v = {f, f_malloc, f_free, f_hmalloc, f_hfree};
  return kl_cuda_alloc_new(&v);
}

static void check_clean(fake *f) {
  CHECK(f->nlive == 0);
  CHECK(f->live_bytes == 0);
  CHECK(f->host_live == 0);
  CHECK(f->bad_frees == 0);
}

static void test_round(void) {
  CHECK(kl_cuda_alloc_round(1) == 512);
  CHECK(kl_cuda_alloc_round(512) == 512);
  CHECK(kl_cuda_alloc_round(513) == 1024);
  CHECK(kl_cuda_alloc_round(MiB) == MiB);
  CHECK(kl_cuda_alloc_round(MiB + 1) == 2 * MiB);
  CHECK(kl_cuda_alloc_round(5 * MiB) == 6 * MiB);
  CHECK(kl_cuda_alloc_round(SIZE_MAX) == 0);
}

static void test_reuse(void) {
  fake f;
  kl_cuda_alloc *a = new_alloc(&f, 100 * MiB);
  kl_cuda_alloc_stats s;
  void *p = NULL, *q = NULL, *r = NULL;
  CHECK_OK(kl_cuda_alloc_malloc(a, &p, 0));
  CHECK(p == NULL);
  CHECK_OK(kl_cuda_alloc_malloc(a, &p, 1000));
  CHECK_OK(kl_cuda_alloc_free(a, p));
  CHECK_OK(kl_cuda_alloc_malloc(a, &q, 900)); /* the same 1024-byte block */
  CHECK(q == p);
  kl_cuda_alloc_get_stats(a, &s);
  CHECK(s.dev_mallocs == 1 && s.cache_hits == 1 && s.in_use_bytes == 1024 && s.cached_bytes == 0);
  /* a 6 MiB block is not handed out for a 2 MiB request (more than twice its size) */
  CHECK_OK(kl_cuda_alloc_malloc(a, &r, 6 * MiB));
  CHECK_OK(kl_cuda_alloc_free(a, r));
  CHECK_OK(kl_cuda_alloc_malloc(a, &p, 2 * MiB));
  CHECK(p != r);
  CHECK_OK(kl_cuda_alloc_free(a, p));
  /* a 3 MiB request (4 MiB rounded) takes the 6 MiB block... no: the cached 4 MiB? The
   * smallest that fits: the 2 MiB block is too small, the 6 MiB one is within twice 4 MiB */
  CHECK_OK(kl_cuda_alloc_malloc(a, &p, 3 * MiB));
  CHECK(p == r);
  kl_cuda_alloc_get_stats(a, &s);
  CHECK(s.dev_mallocs == 3 && s.cached_blocks == 1 && s.cached_bytes == 2 * MiB);
  CHECK(s.in_use_blocks == 2 && s.in_use_bytes == 1024 + 6 * MiB);
  /* bad frees change nothing */
  CHECK_ERR(kl_cuda_alloc_free(a, (char *)p + 8), KL_EINVAL, "is not an allocated block");
  CHECK_OK(kl_cuda_alloc_free(a, p));
  CHECK_ERR(kl_cuda_alloc_free(a, p), KL_EINVAL, "is not an allocated block");
  CHECK_OK(kl_cuda_alloc_free(a, NULL));
  CHECK_OK(kl_cuda_alloc_empty_cache(a));
  kl_cuda_alloc_get_stats(a, &s);
  CHECK(s.cached_bytes == 0 && s.cached_blocks == 0 && s.in_use_blocks == 1);
  CHECK(f.nlive == 1);
  CHECK_OK(kl_cuda_alloc_destroy(a)); /* frees the block still in use (q) too */
  check_clean(&f);
  CHECK_OK(kl_cuda_alloc_destroy(NULL));
}

static void test_oom(void) {
  fake f;
  kl_cuda_alloc *a = new_alloc(&f, 9 * MiB);
  kl_cuda_alloc_stats s;
  void *p = NULL, *q = NULL;
  /* an 8 MiB block cached; 2 MiB more does not fit: the cache is released, the retry works */
  CHECK_OK(kl_cuda_alloc_malloc(a, &p, 8 * MiB));
  CHECK_OK(kl_cuda_alloc_free(a, p));
  CHECK_OK(kl_cuda_alloc_malloc(a, &q, 2 * MiB));
  kl_cuda_alloc_get_stats(a, &s);
  CHECK(s.oom_retries == 1 && s.cached_bytes == 0 && s.in_use_bytes == 2 * MiB);
  CHECK(f.live_bytes == 2 * MiB);
  /* 7 MiB (8 rounded) next to the 2 in use: nothing cached to release, out of memory */
  CHECK_ERR(kl_cuda_alloc_malloc(a, &p, 7 * MiB), KL_ENOMEM,
            "CUDA: out of memory allocating 8.00 MiB (2.00 MiB in use by keras-lua, cache released)");
  CHECK(p == NULL);
  CHECK_OK(kl_cuda_alloc_free(a, q));
  CHECK_OK(kl_cuda_alloc_destroy(a));
  check_clean(&f);

  a = new_alloc(&f, 9 * MiB);
  CHECK_OK(kl_cuda_alloc_malloc(a, &p, 8 * MiB));
  q = (void *)1;
  CHECK_ERR(kl_cuda_alloc_malloc(a, &q, 2 * MiB), KL_ENOMEM,
            "CUDA: out of memory allocating 2.00 MiB (8.00 MiB in use by keras-lua, cache released)");
  CHECK(q == NULL);
  kl_cuda_alloc_get_stats(a, &s);
  CHECK(s.oom_retries == 0 && s.in_use_bytes == 8 * MiB && s.dev_mallocs == 1);
  CHECK_ERR(kl_cuda_alloc_malloc(a, &q, SIZE_MAX - 5), KL_ENOMEM, "too large");
  /* a device error that is not out-of-memory comes back as it is, with no retry */
  f.fail_device_error = 1;
  f.fail_at = f.calls + 2; /* host bookkeeping first, then the device call */
  CHECK_ERR(kl_cuda_alloc_malloc(a, &q, 1000), KL_EDEVICE, "cudaMalloc: CUDA error 999");
  CHECK(q == NULL);
  CHECK_OK(kl_cuda_alloc_destroy(a));
  check_clean(&f);
}

/* Many blocks of mixed sizes, freed in a shuffled order and allocated again: the counters
 * agree with a recount and the table survives growth and deletions. */
static void test_many(void) {
  enum { M = 600 };
  fake f;
  kl_cuda_alloc *a = new_alloc(&f, (size_t)1 << 40);
  void *p[M];
  size_t sz[M], total = 0;
  for (int round = 0; round < 3; round++) {
    total = 0;
    for (int i = 0; i < M; i++) {
      sz[i] = (size_t)(gpu_irand(4) == 0 ? gpu_irand(8 * MiB) + 1 : gpu_irand(20000) + 1);
      CHECK_OK(kl_cuda_alloc_malloc(a, &p[i], sz[i]));
      total += kl_cuda_alloc_round(sz[i]);
    }
    kl_cuda_alloc_stats s;
    kl_cuda_alloc_get_stats(a, &s);
    CHECK(s.in_use_blocks == M);
    for (int i = M - 1; i > 0; i--) { /* shuffle */
      int j = (int)gpu_irand(i + 1);
      void *t = p[i]; p[i] = p[j]; p[j] = t;
    }
    for (int i = 0; i < M; i++) CHECK_OK(kl_cuda_alloc_free(a, p[i]));
    kl_cuda_alloc_get_stats(a, &s);
    CHECK(s.in_use_blocks == 0 && s.in_use_bytes == 0);
    CHECK((size_t)f.live_bytes == s.cached_bytes);
    if (round == 0) CHECK(s.cached_bytes == total);
  }
  kl_cuda_alloc_stats s;
  kl_cuda_alloc_get_stats(a, &s);
  CHECK(s.cache_hits > 0);
  CHECK_OK(kl_cuda_alloc_destroy(a));
  check_clean(&f);
}

/* The workload of the sweep, on a 12 MiB device: allocations served from the cache and two
 * that need the cache released (10 MiB next to 10 cached; 4 next to a cached 10); every
 * failure must be a clean KL_ENOMEM / KL_EDEVICE with a NULL pointer. */
static void run_workload(kl_cuda_alloc *a, fake *f, int *failures) {
  void *p[6] = {NULL};
  static const struct { int slot; size_t bytes; int free_slot; } steps[] = {
      {0, 100, -1}, {1, 5000, -1}, {2, 3 * MiB, 1}, {3, 4000, 2}, {4, 6 * MiB, 4},
      {5, 10 * MiB, -1}};
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
      const int k = steps[i].slot;
      kl_status st = kl_cuda_alloc_malloc(a, &p[k], steps[i].bytes);
      if (st != KL_OK) {
        (*failures)++;
        CHECK(p[k] == NULL);
        CHECK(st == KL_ENOMEM || st == KL_EDEVICE);
      }
      if (steps[i].free_slot >= 0) { /* it becomes cache */
        CHECK_OK(kl_cuda_alloc_free(a, p[steps[i].free_slot]));
        p[steps[i].free_slot] = NULL;
      }
    }
    for (int i = 0; i < 6; i++) {
      CHECK_OK(kl_cuda_alloc_free(a, p[i]));
      p[i] = NULL;
    }
  }
  (void)f;
}

static void test_sweep(void) {
  fake f;
  int failures = 0;
  /* a clean run first: how many vendor calls it makes, and that it needs the retry */
  kl_cuda_alloc *a = new_alloc(&f, 12 * MiB);
  run_workload(a, &f, &failures);
  kl_cuda_alloc_stats s;
  kl_cuda_alloc_get_stats(a, &s);
  const int64_t total = f.calls;
  CHECK(failures == 0);
  if (!(s.oom_retries == 3 && s.cache_hits == 4))
    fprintf(stderr, "oom_retries %lld cache_hits %lld\n", (long long)s.oom_retries, (long long)s.cache_hits);
  CHECK(s.oom_retries == 3 && s.cache_hits == 4); /* 10 MiB next to the cache (twice), 4 next to a cached 10 */
  CHECK_OK(kl_cuda_alloc_destroy(a));
  check_clean(&f);
  int saw_failure = 0;
  for (int kind = 0; kind < 2; kind++)
    for (int64_t k = 1; k <= total + 1; k++) {
      a = new_alloc(&f, 12 * MiB); /* call 1: the allocator itself */
      f.fail_device_error = kind;
      f.fail_at = k;
      if (!a) {
        CHECK(k == 1);
        check_clean(&f);
        continue;
      }
      failures = 0;
      run_workload(a, &f, &failures);
      saw_failure += failures > 0;
      CHECK_OK(kl_cuda_alloc_destroy(a));
      check_clean(&f);
    }
  CHECK(saw_failure > (int)total); /* the injected failures did reach the workload */
}

int main(void) {
  kl_cuda_seterr = kl_seterr;
  test_round();
  test_reuse();
  test_oom();
  test_many();
  test_sweep();
  KLTEST_DONE();
}
