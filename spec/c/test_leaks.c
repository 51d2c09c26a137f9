/* test_leaks.c: 10,000 training steps of a sparse model through the plan API: resident memory
 * between step 1,000 and step 10,000 grows by less than 1%, and (under the ASan build) LSan
 * finds nothing lost at exit. */
#include <stdlib.h>
#include <unistd.h>
#include "kl/registry.h"
#include "train_testutil.h"


#if defined(__SANITIZE_ADDRESS__)
#define KL_UNDER_ASAN 1 /* ASan's quarantine holds freed blocks: RSS is not meaningful */
#else
#define KL_UNDER_ASAN 0
#endif

/* Resident set size in bytes (/proc/self/statm, second field, in pages). */
static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
  fclose(f);
  return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

static void run(kl_opt_kind kind, int lazy, int64_t V) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, kind));
  o.lazy_update = lazy;
  if (kind == KL_OPT_SGD) o.momentum = 0.9, o.learning_rate = 0.05;
  tt_model m;
  if (tt_build(&m, V, 16, 32, 12, 42, &o) != 0) {
    CHECK(0);
    tt_free(&m);
    return;
  }
  long rss1000 = 0, allocs = 0;
  double loss = 0, first = 0;
  int failed = 0;
  for (long step = 0; step < 10000 && !failed; step++) {
    if (step % 1000 == 0 && getenv("KL_LEAKS_VERBOSE"))
      printf("step %ld: RSS %ld\n", step, rss_bytes());
    if (step == 1000) {
      rss1000 = rss_bytes();
      kl_alloc_fail_at(0); /* start counting allocations */
    }
    if (tt_step(&m, step, &loss) != KL_OK) {
      fprintf(stderr, "step %ld: %s\n", step, kl_errmsg());
      failed = 1;
    }
    if (step == 0) first = loss;
  }
  allocs = kl_alloc_fail_at(0);
  long rss10000 = rss_bytes();
  CHECK(!failed);
  CHECK(isfinite(loss) && loss < first); /* it trained */
  double growth = (double)(rss10000 - rss1000) / (double)rss1000;
  printf("%s lazy=%d: loss %.4g -> %.4g, RSS %ld -> %ld bytes (%+.3f%%), %ld allocations in "
         "steps 1000..9999\n", kl_optimizer_kind_name(kind), lazy, first, loss, rss1000,
         rss10000, 100 * growth, allocs);
  CHECK(rss1000 > 0 && rss10000 > 0);
  if (!KL_UNDER_ASAN) CHECK(growth < 0.01);
  CHECK(allocs == 0); /* DESIGN: no allocation per step once buffers fit the largest batch */
  tt_free(&m);
}

int main(void) {
  kl_set_warn_handler(quiet, NULL);
  run(KL_OPT_SGD, 1, 20000);
  run(KL_OPT_ADAM, 1, 20000);
  run(KL_OPT_ADAM, 0, 2000); /* non-lazy: every row every step */
  KLTEST_DONE();
}
