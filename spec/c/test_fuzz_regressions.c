/* test_fuzz_regressions.c: replays every fuzz seed and every saved crash (spec/fuzz/corpus/<t>/,
 * spec/fuzz/regressions/<t>/) through the fuzz entry points, without libFuzzer. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include "../fuzz/fz_csr.h"
#include "../fuzz/fz_model_file.h"
#include "../fuzz/fz_optim.h"
#include "../fuzz/fz_svmlight.h"
#include "kl/registry.h"
#include "kltest.h"

typedef int (*fz_entry)(const uint8_t *, size_t);

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

/* Runs entry on every file of dir; returns the number of files (missing dir: 0). */
static int replay_dir(const char *dir, fz_entry entry) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    uint8_t *buf = malloc(1 << 20);
    size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    int bad = buf ? entry(buf, len) : 1;
    if (bad) fprintf(stderr, "fuzz regression: %s breaks an invariant\n", path);
    CHECK(bad == 0);
    free(buf);
    n++;
  }
  closedir(d);
  return n;
}

static void replay(const char *target, fz_entry entry) {
  char dir[256];
  snprintf(dir, sizeof dir, "spec/fuzz/corpus/%s", target);
  int seeds = replay_dir(dir, entry);
  snprintf(dir, sizeof dir, "spec/fuzz/regressions/%s", target);
  int crashes = replay_dir(dir, entry);
  printf("%s: %d corpus files, %d saved crashes\n", target, seeds, crashes);
  CHECK(seeds > 0); /* the committed seeds must be found (run from the source root) */
}

int main(void) {
  kl_set_warn_handler(quiet, NULL);
  replay("csr", fz_run_csr);
  replay("svmlight", fz_run_svmlight);
  replay("optim", fz_run_optim);
  replay("model_file", fz_run_model_file);
  KLTEST_DONE();
}
