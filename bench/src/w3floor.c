/* w3floor.c: W3's memory floor: what one step of W3 must move between memory and the core,
 * without the model. Per step, the forward gathers the batch's 256 x 20 random rows of the
 * V x 64 f32 weight (summed per sample, prefetched 8 ids ahead, as the Embedding forward
 * does), and the update reads and writes the batch's unique rows of weight, m and v (sorted
 * ascending, as the row_sparse gradient has them, prefetched 4 rows ahead, Adam-like
 * arithmetic on a cache-resident gradient). The ids come from w3.lua's generator; each step's
 * unique rows are found before the clock starts. The figure is the median over RUNS epochs of
 * STEPS steps (after a warm-up epoch) of the time a step, like w3.lua's. At V = 1e7 the rows
 * are random in 7.7 GB, so this is the random-access floor of a W3 step; at V = 1e4 they are
 * cache-resident and the floor is small next to the model's compute.
 * A second figure, floor-rows-grad, adds what making the gradient must move: each of the
 * step's 5,120 positions adds its sample's (cache-resident) mean gradient row into its
 * unique row's slot of a compact (unique rows x 64) gradient, zeroed first, which the update
 * then reads (the positions' slots found before the clock starts: no sort, no search).
 * Build with -fno-math-errno (bench/run does), as optim_update.c is: sqrtf then vectorises.
 * usage: w3floor V STEPS RUNS   (OMP_NUM_THREADS threads, static partitions) */
#include <math.h>
#include <omp.h>
#include "benchio.h"

enum { BS = 256, L = 20, D = 64, PF_IDS = 8, PF_ROWS = 4 };

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static kl_tensor *big(int64_t V, double fill, kl_rng *r) {
  int64_t shape[2] = {V, D};
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(KL_FLOAT32, 2, shape, &t) != KL_OK) die("new_dense");
  /* every page written before timing (the optimizer states are faulted in at creation) */
  if (r) {
    if (kl_tensor_fill_uniform(t, -0.05, 0.05, r) != KL_OK) die("fill");
  } else {
    kl_tensor_fill(t, fill);
  }
  return t;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: w3floor V STEPS RUNS\n");
    return 2;
  }
  const int64_t V = atoll(argv[1]), S = atoll(argv[2]);
  const int runs = atoi(argv[3]);
  if (V < 1 || S < 1 || runs < 1) {
    fprintf(stderr, "w3floor: V, STEPS and RUNS must be >= 1\n");
    return 2;
  }
  kl_rng r;
  kl_rng_seed(&r, 7);
  kl_tensor *tw = big(V, 0, &r), *tm = big(V, 0, NULL), *tv = big(V, 0, NULL);
  float *w = tw->data, *m = tm->data, *v = tv->data;
  /* ids as w3.lua draws them (0-based here), per step; and each step's sorted unique rows */
  int64_t *ids = malloc((size_t)(S * BS * L) * sizeof *ids);
  int64_t *uniq = malloc((size_t)(S * BS * L) * sizeof *uniq), *nu = malloc((size_t)S * sizeof *nu);
  float *g = malloc((size_t)(BS * L * D) * sizeof *g), *out = malloc((size_t)(BS * D) * sizeof *out);
  int32_t *slot = malloc((size_t)(S * BS * L) * sizeof *slot);
  double *t = malloc((size_t)runs * sizeof *t);
  if (!ids || !uniq || !nu || !g || !out || !t || !slot) {
    fprintf(stderr, "w3floor: out of memory\n");
    return 1;
  }
  uint64_t state = 7;
  for (int64_t k = 0; k < S * BS * L; k++) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    ids[k] = (int64_t)((state >> 11) % (uint64_t)V);
  }
  for (int64_t s = 0; s < S; s++) {
    int64_t *u = uniq + s * BS * L, n = 0;
    memcpy(u, ids + s * BS * L, (size_t)(BS * L) * sizeof *u);
    qsort(u, BS * L, sizeof *u, cmp_i64);
    for (int64_t k = 0; k < BS * L; k++)
      if (k == 0 || u[k] != u[k - 1]) u[n++] = u[k];
    nu[s] = n;
    for (int64_t j = 0; j < BS * L; j++) { /* position j's slot: its id's rank (binary search) */
      const int64_t id = ids[s * BS * L + j];
      int64_t lo = 0, hi = n;
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (u[mid] < id) lo = mid + 1; else hi = mid;
      }
      slot[s * BS * L + j] = (int32_t)lo;
    }
  }
  for (int64_t k = 0; k < BS * L * D; k++) g[k] = 1e-3f * (float)(k % 97 - 48);
  const float b1 = 0.9f, b2 = 0.999f, lr = 1e-3f, eps = 1e-7f;
  double sink = 0, urows = 0;
  for (int mode = 0; mode < 2; mode++) { /* 0: floor-rows, 1: floor-rows-grad */
    urows = 0;
    for (int rep = -1; rep < runs; rep++) { /* rep -1: warm-up */
      const double t0 = now_s();
      for (int64_t s = 0; s < S; s++) {
        const int64_t *x = ids + s * BS * L, *u = uniq + s * BS * L, n = nu[s];
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < BS; b++) {
          float acc[D] = {0};
          for (int64_t l = 0; l < L; l++) {
            const int64_t j = b * L + l;
            __builtin_prefetch(w + x[j + PF_IDS < BS * L ? j + PF_IDS : j] * D);
            __builtin_prefetch(w + x[j + PF_IDS < BS * L ? j + PF_IDS : j] * D + 32);
            const float *row = w + x[j] * D;
            for (int k = 0; k < D; k++) acc[k] += row[k];
          }
          for (int k = 0; k < D; k++) out[b * D + k] = acc[k] * (1.0f / L);
        }
        if (mode == 1) { /* the gradient's rows: each position's mean gradient into its slot */
          const int32_t *sl = slot + s * BS * L;
#pragma omp parallel
          {
            const int nt = omp_get_num_threads(), q = omp_get_thread_num();
            const int64_t i0 = n * q / nt, i1 = n * (q + 1) / nt; /* this thread's slots */
            memset(g + i0 * D, 0, (size_t)((i1 - i0) * D) * sizeof *g);
            for (int64_t j = 0; j < BS * L; j++) {
              if (sl[j] < i0 || sl[j] >= i1) continue;
              const float *src = out + (j / L) * D;
              float *restrict dst = g + (int64_t)sl[j] * D;
              for (int k = 0; k < D; k++) dst[k] += src[k] * (1.0f / L);
            }
          }
        }
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
          if (i + PF_ROWS < n) {
            const int64_t q = u[i + PF_ROWS] * D;
            for (int k = 0; k < D; k += 16) {
              __builtin_prefetch(w + q + k, 1);
              __builtin_prefetch(m + q + k, 1);
              __builtin_prefetch(v + q + k, 1);
            }
          }
          float *restrict wr = w + u[i] * D, *restrict mr = m + u[i] * D;
          float *restrict vr = v + u[i] * D;
          const float *restrict gr = g + i * D;
          for (int k = 0; k < D; k++) {
            const float mk = b1 * mr[k] + (1 - b1) * gr[k];
            const float vk = b2 * vr[k] + (1 - b2) * gr[k] * gr[k];
            mr[k] = mk;
            vr[k] = vk;
            wr[k] -= lr * mk / (sqrtf(vk) + eps);
          }
        }
        sink += out[s % (BS * D)];
        if (rep == 0) urows += (double)n;
      }
      if (rep >= 0) t[rep] = (now_s() - t0) / (double)S;
    }
    char note[200];
    snprintf(note, sizeof note,
             "per step; gather %d rows, %supdate %.0f unique rows of w, m, v (x %d B) sink=%g",
             BS * L, mode ? "sum the gradient's rows, " : "", urows / (double)S, D * 4, sink);
    char wl[32];
    snprintf(wl, sizeof wl, "W3-V1e%d", (int)floor(log10((double)V) + 0.5));
    result(wl, mode ? "floor-rows-grad" : "floor-rows", kl_num_threads(), median(t, runs), runs,
           note);
  }
  free(ids);
  free(uniq);
  free(nu);
  free(g);
  free(out);
  free(slot);
  free(t);
  kl_tensor_release(tw);
  kl_tensor_release(tm);
  kl_tensor_release(tv);
  return 0;
}
