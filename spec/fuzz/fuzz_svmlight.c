/* fuzz_svmlight.c: libFuzzer driver for fz_run_svmlight (fz_svmlight.h); built by tools/fuzz. */
#define _GNU_SOURCE
#include <stdlib.h>
#include "fz_svmlight.h"
#include "kl/registry.h"

static void fz_quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  kl_set_warn_handler(fz_quiet, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fz_run_svmlight(data, size)) abort(); /* a broken invariant is a finding */
  return 0;
}
