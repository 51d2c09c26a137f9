/* fuzz_model_file.c: libFuzzer driver for fz_run_model_file (fz_model_file.h); built by tools/fuzz. */
#include <stdlib.h>
#include "fz_model_file.h"
#include "kl/registry.h"

static void fz_quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  kl_set_warn_handler(fz_quiet, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fz_run_model_file(data, size)) abort(); /* a broken invariant is a finding */
  return 0;
}
