/* kernels.c: W4, the sparse dot kernels (kl_dot as sparse.dot calls it) and the gather floor. */
#include <omp.h>
#include "benchio.h"

/* The floor: the time to read nnz rows of K floats at random row indices (those of the
 * CSR), summing each CSR row's gathered rows into a register-resident accumulator. This is
 * the bytes csr.dense must read (nnz * K * 4), at the rate random row gathers run here. */
#define GATHER_FN(KC)                                                                      \
  static float gather_##KC(const int64_t *ip, const int64_t *ix, int64_t M, const float *B) { \
    float total = 0;                                                                         \
    _Pragma("omp parallel for schedule(static) reduction(+ : total)")                       \
    for (int64_t i = 0; i < M; i++) {                                                        \
      float acc[KC] = {0};                                                                   \
      for (int64_t j = ip[i]; j < ip[i + 1]; j++) {                                          \
        __builtin_prefetch(B + ix[j + 16 < ip[M] ? j + 16 : j] * KC);                        \
        const float *row = B + ix[j] * KC;                                                   \
        for (int k = 0; k < KC; k++) acc[k] += row[k];                                       \
      }                                                                                      \
      for (int k = 0; k < KC; k++) total += acc[k];                                          \
    }                                                                                        \
    return total;                                                                            \
  }
GATHER_FN(16)
GATHER_FN(64)

static double gather_once(const kl_tensor *a, const float *B, int64_t K, float *sink) {
  const int64_t M = a->shape[0], *ip = a->indptr, *ix = a->indices;
  double t0 = now_s();
  *sink += K == 16 ? gather_16(ip, ix, M, B) : gather_64(ip, ix, M, B);
  return now_s() - t0;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: kernels csr_dense|csrT_dense|gather WORKLOAD CSR.bin K RUNS\n");
    return 2;
  }
  const char *mode = argv[1], *wl = argv[2];
  int64_t K = atoll(argv[4]);
  int runs = atoi(argv[5]);
  if ((K != 16 && K != 64) || runs < 1) { fprintf(stderr, "kernels: K must be 16 or 64, RUNS >= 1\n"); return 2; }
  kl_tensor *a = read_csr_bin(argv[3], NULL);
  int T = kl_num_threads();
  kl_rng r;
  kl_rng_seed(&r, 7);
  int transpose = strcmp(mode, "csrT_dense") == 0;
  /* B: cols x K for csr.dense and the floor, rows x K (the output gradient) for csrT. */
  int64_t bshape[2] = {transpose ? a->shape[0] : a->shape[1], K};
  kl_tensor *b = NULL;
  if (kl_tensor_new_dense(KL_FLOAT32, 2, bshape, &b) != KL_OK) die("new_dense");
  if (kl_tensor_fill_uniform(b, -1, 1, &r) != KL_OK) die("fill");
  double *t = malloc((size_t)runs * sizeof *t);
  float sink = 0;
  char note[160] = "";
  for (int rep = -1; rep < runs; rep++) { /* rep -1: warm-up */
    double dt;
    if (strcmp(mode, "gather") == 0) {
      dt = gather_once(a, b->data, K, &sink);
    } else {
      kl_tensor *o = NULL;
      double t0 = now_s();
      if (kl_dot(a, b, transpose, 0, &o) != KL_OK) die("kl_dot");
      dt = now_s() - t0;
      if (rep == runs - 1)
        snprintf(note, sizeof note, "out=%s nnz_out=%lld", kl_stype_name(o->stype),
                 (long long)o->nnz);
      kl_tensor_release(o);
    }
    if (rep >= 0) t[rep] = dt;
  }
  double med = median(t, runs);
  if (strcmp(mode, "gather") == 0) {
    double bytes = (double)a->nnz * (double)K * 4.0;
    snprintf(note, sizeof note, "rate=%.2fGB/s bytes=%.0f sink=%g", bytes / med / 1e9, bytes,
             (double)sink);
  }
  result(wl, strcmp(mode, "gather") == 0 ? "floor-gather" : "keras-lua", T, med, runs, note);
  free(t);
  kl_tensor_release(a);
  kl_tensor_release(b);
  return 0;
}
