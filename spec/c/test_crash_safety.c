/* test_crash_safety.c: SIGKILL during 100 repeated model saves: after every kill the file on
 * disk loads and holds one whole version (the last one seen or a newer one the child saved).
 * Run as `test_crash_safety --child DIR V` it saves versions V, V+1, ... to DIR/model.klm
 * forever, writing each version number to stdout (a pipe) just before saving it. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "kl/model_file.h"
#include "kltest.h"

#define KILLS 100
#define ROWS 384 /* the dense weight: ROWS x 256 float64, 768 KiB: a save takes a while */

/* A version's three tensors, every stored value equal to v: dense (ROWS x 256) float64, a
 * csr (50 x 40, 3 entries a row) and a row_sparse (1000 x 8, rows 0, 7, 99 stored). */
static kl_status make_version(int64_t v, kl_tensor *t[3]) {
  int64_t ds[2] = {ROWS, 256}, rs[2] = {1000, 8}, rows[3] = {0, 7, 99};
  t[0] = t[1] = t[2] = NULL;
  KL_TRY(kl_tensor_new_dense(KL_FLOAT64, 2, ds, &t[0]));
  for (int64_t k = 0; k < ROWS * 256; k++) ((double *)t[0]->data)[k] = (double)v;
  KL_TRY(kl_tensor_new_csr(KL_FLOAT64, 50, 40, 150, &t[1]));
  for (int r = 0; r <= 50; r++) t[1]->indptr[r] = 3 * r;
  for (int k = 0; k < 150; k++) {
    t[1]->indices[k] = (k % 3) * 13 + (k / 3) % 5; /* increasing within each row */
    ((double *)t[1]->data)[k] = (double)v;
  }
  KL_TRY(kl_tensor_new_rsp(KL_FLOAT64, 2, rs, 3, &t[2]));
  for (int k = 0; k < 3; k++) t[2]->indices[k] = rows[k];
  for (int k = 0; k < 24; k++) ((double *)t[2]->data)[k] = (double)v;
  return KL_OK;
}

static kl_status save_version(const char *path, int64_t v) {
  static const char *names[3] = {"dense/kernel", "csr", "rsp/embeddings"};
  static const char *keys[2] = {"version", "note"};
  char vs[32];
  snprintf(vs, sizeof vs, "%lld", (long long)v);
  const char *vals[2] = {vs, "crash-safety test"};
  kl_tensor *t[3];
  kl_status s = make_version(v, t);
  if (s == KL_OK)
    s = kl_model_file_save(path, 3, names, (const kl_tensor *const *)t, 2, keys, vals);
  for (int i = 0; i < 3; i++) kl_tensor_release(t[i]);
  return s;
}

/* The child: saves versions v, v+1, ... until killed, announcing each on stdout first. */
static int child(const char *dir, int64_t v) {
  char path[4096];
  snprintf(path, sizeof path, "%s/model.klm", dir);
  for (;; v++) {
    if (write(1, &v, sizeof v) != (ssize_t)sizeof v) return 3;
    kl_status s = save_version(path, v);
    if (s != KL_OK) {
      fprintf(stderr, "child: save of version %lld: %s\n", (long long)v, kl_errmsg());
      return 2;
    }
  }
}

/* Loads path and returns the version it holds (-1 when the file does not load or is not
 * one whole version: every stored value must equal the metadata's version). */
static int64_t loaded_version(const char *path) {
  kl_model_file *f = NULL;
  if (kl_model_file_load(path, &f) != KL_OK) {
    fprintf(stderr, "load after kill: %s\n", kl_errmsg());
    return -1;
  }
  int64_t v = -1;
  for (int i = 0; i < f->nmeta; i++)
    if (strcmp(f->keys[i], "version") == 0) v = strtoll(f->values[i], NULL, 10);
  int ok = v >= 0 && f->n == 3;
  for (int i = 0; ok && i < 3; i++) {
    const kl_tensor *t = f->tensors[i];
    int64_t n = t->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(t)
                : t->stype == KL_STYPE_CSR   ? t->nnz
                                             : t->nnz * kl_row_width(t);
    ok = n > 0;
    for (int64_t k = 0; ok && k < n; k++) ok = ((const double *)t->data)[k] == (double)v;
  }
  kl_model_file_free(f);
  if (!ok) fprintf(stderr, "load after kill: not one whole version (metadata says %lld)\n",
                   (long long)v);
  return ok ? v : -1;
}

/* Removes the temp files a killed save leaves in dir; returns how many there were, or -1
 * when dir holds anything else than model.klm and such temp files. */
static int clean_temps(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0, bad = 0;
  char p[4096];
  if (!d) return -1;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "model.klm"))
      continue;
    if (strncmp(e->d_name, ".model.klm.tmp-", 15) == 0) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
      n++;
    } else {
      fprintf(stderr, "unexpected file %s\n", e->d_name);
      bad = 1;
    }
  }
  closedir(d);
  return bad ? -1 : n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0) return child(argv[2], strtoll(argv[3], NULL, 10));
  char dir[] = "/tmp/kl_crash_safety.XXXXXX", path[4096];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/model.klm", dir);
  /* version 0, and the time one save takes here (the kill delays are drawn within it) */
  double t0 = now();
  for (int k = 0; k < 3; k++) CHECK_OK(save_version(path, 0));
  double tsave = (now() - t0) / 3;
  CHECK(loaded_version(path) == 0);
  unsigned rng = 12345;
  int64_t seen = 0; /* the version on disk after the last kill */
  int temps = 0, advanced = 0, failed = 0;
  for (int it = 0; it < KILLS && !failed; it++) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
      char vs[32];
      snprintf(vs, sizeof vs, "%lld", (long long)(seen + 1));
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      execl(argv[0], argv[0], "--child", dir, vs, (char *)NULL);
      _exit(127);
    }
    close(fds[1]);
    /* Wait until the child starts saving seen+1; one kill in four also waits until that
     * save has returned (the child announces seen+2), so the version keeps moving. */
    int64_t want = seen + 1 + (it % 4 == 3), got = 0, maxv = seen;
    while (got < want && read(fds[0], &got, sizeof got) == (ssize_t)sizeof got) maxv = got;
    rng = rng * 1103515245u + 12345u;
    double delay = tsave * 1.2 * (double)((rng >> 8) % 1000) / 1000.0;
    struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int wst = 0;
    waitpid(pid, &wst, 0);
    int64_t x;
    while (read(fds[0], &x, sizeof x) == (ssize_t)sizeof x) maxv = x;
    close(fds[0]);
    if (!WIFSIGNALED(wst)) {
      fprintf(stderr, "kill %d: the child exited by itself (status %d)\n", it, wst);
      failed = 1;
    }
    /* the file: whole, and the version seen last or one the child had started on since */
    int64_t v = loaded_version(path);
    CHECK(v >= seen && v <= maxv);
    if (v < seen || v > maxv) {
      fprintf(stderr, "kill %d: version %lld on disk, wanted %lld..%lld\n", it, (long long)v,
              (long long)seen, (long long)maxv);
      failed = 1;
    }
    advanced += v > seen;
    seen = v > seen ? v : seen;
    int n = clean_temps(dir);
    CHECK(n >= 0);
    temps += n > 0;
  }
  /* every fourth kill waited for a whole save: the version moved at least that often */
  CHECK(advanced >= KILLS / 4);
  printf("%d kills: %lld versions saved, %d kills advanced the file, %d left a temp file "
         "(killed mid-save); one save %.1f ms\n",
         KILLS, (long long)seen, advanced, temps, tsave * 1e3);
  clean_temps(dir);
  unlink(path);
  CHECK(rmdir(dir) == 0);
  KLTEST_DONE();
}
