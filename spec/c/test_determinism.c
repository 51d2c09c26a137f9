/* test_determinism.c: 1,000 training steps in child processes: the same seed and thread count
 * give bit-identical weights over three runs (OMP_NUM_THREADS=1 and =2); 1 vs 2 threads agree
 * within 1e-6 relative. Run as `test_determinism --child` it trains once and writes the
 * weights' bytes to stdout. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kl/registry.h"
#include "train_testutil.h"

#define NSTEPS 1000
#define V 4000
#define U 16

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

/* Trains once (Adam, lazy; large enough batches for the OpenMP kernels to split) and writes
 * W (densified) then b as float64 bytes to stdout. */
static int child(void) {
  kl_set_warn_handler(quiet, NULL);
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.learning_rate = 0.01;
  tt_model m;
  if (tt_build(&m, V, U, 128, 48, 1234, &o) != 0) return 2;
  double loss;
  for (long step = 0; step < NSTEPS; step++)
    if (tt_step(&m, step, &loss) != KL_OK) {
      fprintf(stderr, "step %ld: %s\n", step, kl_errmsg());
      return 2;
    }
  kl_tensor *wd = NULL;
  if (kl_tensor_tostype(m.w, KL_STYPE_DEFAULT, &wd) != KL_OK) return 2;
  fwrite(wd->data, sizeof(double), (size_t)(V * U), stdout);
  fwrite(m.b->data, sizeof(double), U, stdout);
  fprintf(stderr, "child: %d threads, loss %.6g\n", kl_num_threads(), loss);
  kl_tensor_release(wd);
  tt_free(&m);
  return 0;
}

/* Runs this program as a child with OMP_NUM_THREADS=threads; reads its weights into w. */
static int run_child(const char *self, int threads, double *w, size_t n) {
  int fds[2];
  if (pipe(fds) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    char t[16];
    snprintf(t, sizeof t, "%d", threads);
    setenv("OMP_NUM_THREADS", t, 1);
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execl(self, self, "--child", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  FILE *f = fdopen(fds[0], "rb");
  size_t got = f ? fread(w, sizeof(double), n, f) : 0;
  if (f) fclose(f);
  int st = 0;
  waitpid(pid, &st, 0);
  return !(WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == n);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--child") == 0) return child();
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(len > 0);
  if (len <= 0) KLTEST_DONE();
  self[len] = 0;
  size_t n = (size_t)(V * U + U);
  double *w[2][3];
  for (int t = 0; t < 2; t++)
    for (int r = 0; r < 3; r++) {
      w[t][r] = calloc(n, sizeof(double));
      int bad = run_child(self, t + 1, w[t][r], n);
      CHECK(bad == 0);
    }
  for (int t = 0; t < 2; t++)
    for (int r = 1; r < 3; r++) {
      int same = memcmp(w[t][0], w[t][r], n * sizeof(double)) == 0;
      if (!same) fprintf(stderr, "%d threads: run %d differs from run 1\n", t + 1, r + 1);
      CHECK(same);
    }
  double worst = 0;
  size_t changed = 0;
  for (size_t i = 0; i < n; i++) {
    double a = w[0][0][i], b = w[1][0][i];
    double rel = fabs(a - b) / fmax(fabs(a), 1e-300);
    if (a != b) changed++;
    if (a != b && rel > worst) worst = rel;
  }
  printf("1 vs 2 threads: %zu of %zu values differ, worst relative difference %.3g\n", changed, n,
         worst);
  CHECK(worst <= 1e-6);
  for (int t = 0; t < 2; t++)
    for (int r = 0; r < 3; r++) free(w[t][r]);
  KLTEST_DONE();
}
