/* test_alloc_huge.c: large blocks (huge-page advice) and kl_prefault_zeroed: contents stay
 * zero, the pages become resident at once (optimizer states), small or NULL blocks are left
 * alone, and the optimizer's states of a large weight are resident right after creation. */
#include <stdlib.h>
#include <unistd.h>
#include "kl/optim.h"
#include "kltest.h"

/* Resident set size in bytes (Linux /proc/self/statm), or -1. */
static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long size = 0, res = -1;
  if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
  fclose(f);
  return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static int all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i += 4093)
    if (p[i]) return 0;
  return p[n - 1] == 0;
}

int main(void) {
  const size_t big = (size_t)64 << 20;
  unsigned char *p = kl_calloc(big, 1);
  CHECK(p != NULL);
  if (!p) return 1;
  long before = rss_bytes();
  kl_prefault_zeroed(p + 3, big - 3); /* an unaligned interior */
  long after = rss_bytes();
  CHECK(all_zero(p, big));
  if (before >= 0 && after >= 0) CHECK(after - before >= (long)(big / 2));
  p[12345] = 7; /* still an ordinary, writable block */
  CHECK(p[12345] == 7);
  kl_free(p);

  /* Below 8 MiB and NULL: no effect, no crash. */
  unsigned char *s = kl_calloc(1 << 20, 1);
  CHECK(s != NULL);
  kl_prefault_zeroed(s, 1 << 20);
  kl_prefault_zeroed(NULL, big);
  if (s) CHECK(all_zero(s, 1 << 20));
  kl_free(s);

  /* A malloc'd (not zeroed) large block grown by realloc keeps its bytes. */
  unsigned char *m = kl_malloc((size_t)9 << 20);
  CHECK(m != NULL);
  if (m) {
    for (size_t i = 0; i < ((size_t)9 << 20); i += 4096) m[i] = (unsigned char)(i >> 12);
    unsigned char *m2 = kl_realloc(m, (size_t)20 << 20);
    CHECK(m2 != NULL);
    if (m2) {
      int ok = 1;
      for (size_t i = 0; i < ((size_t)9 << 20); i += 4096) ok &= m2[i] == (unsigned char)(i >> 12);
      CHECK(ok);
      m = m2;
    }
    kl_free(m);
  }

  /* Adam's m and v of a 32 MiB weight: zero and resident once created. */
  int64_t shape[2] = {131072, 64};
  kl_tensor *w = NULL, *st[2] = {NULL, NULL};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, shape, &w));
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  before = rss_bytes();
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  after = rss_bytes();
  CHECK(st[0] && st[1]);
  if (st[0] && st[1]) {
    CHECK(all_zero(st[0]->data, (size_t)32 << 20) && all_zero(st[1]->data, (size_t)32 << 20));
    if (before >= 0 && after >= 0) CHECK(after - before >= ((long)64 << 20) * 3 / 4);
  }
  kl_optimizer_release_states(&o, st);
  kl_tensor_release(w);
  KLTEST_DONE();
}
