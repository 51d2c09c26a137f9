/* w7floor.c: W7's memory floors (issue 18): what one epoch of a linear model on W7's rows
 * must move between memory and the core, without the model's arithmetic. Two designs:
 *   floor-batch  a step of B rows as keras-lua (and any mini-batch trainer) takes it: each
 *                row's dot with w (the entries streamed, a random read of w an entry), then
 *                the update of each column the batch touched (a read and a write of w and of
 *                NSTATE state arrays at that column, the columns in ascending order,
 *                prefetched ahead). Each step's touched columns are found before the clock
 *                starts, and their gradients are not summed: the floor leaves out the
 *                column sums any mini-batch step needs (as generous a floor as can be).
 *   floor-batch-sums  the same with the gradient summed for each touched column: each
 *                entry's product added to its column's slot (the slots found before the
 *                clock starts), the update reading the slots in order: the floor of a
 *                mini-batch step that computes the gradient it applies.
 *   floor-sample a step of one row as SGDClassifier takes it: the row's dot, then a read and
 *                write of w and of the NSTATE states at each of its columns (lines the dot
 *                just brought into L1).
 * With more than one thread (OMP_NUM_THREADS), floor-batch only, split as fit's linear
 * step splits it: each thread the dots of a static share of the batch's rows, a barrier,
 * then the updates of the touched columns in its static range of 64-column words.
 * The arithmetic is one multiply-add a value (no exp, log, sqrt or divide): what is left is
 * the traffic. The figure is the median over RUNS epochs (after a warm-up epoch), as
 * w7.lua's W7-epoch rows.
 * usage: w7floor TRAIN.svm N_FEATURES BATCH NSTATE RUNS */
#include <omp.h>
#include "benchio.h"
#include "kl/svmlight.h"

enum { PF = 16 };

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: w7floor TRAIN.svm N_FEATURES BATCH NSTATE RUNS\n");
    return 2;
  }
  const int64_t C = atoll(argv[2]), B = atoll(argv[3]);
  const int ns = atoi(argv[4]), runs = atoi(argv[5]);
  if (C < 1 || B < 1 || ns < 1 || ns > 2 || runs < 1) {
    fprintf(stderr, "w7floor: N_FEATURES, BATCH, RUNS >= 1 and NSTATE 1 or 2\n");
    return 2;
  }
  kl_svmlight_opts o = kl_svmlight_opts_default();
  o.n_features = C;
  kl_tensor *X = NULL, *Y = NULL;
  if (kl_svmlight_load(argv[1], &o, &X, &Y, NULL) != KL_OK) die(argv[1]);
  const int64_t n = X->shape[0], nnz = X->nnz, steps = (n + B - 1) / B, nw = (C + 63) / 64;
  const int64_t *ip = X->indptr, *ix = X->indices;
  const float *xv = X->data;
  const double *y = Y->data;
  float *w = calloc((size_t)C, sizeof *w), *s0 = calloc((size_t)C, sizeof *s0),
        *s1 = calloc((size_t)C, sizeof *s1), *z = malloc((size_t)B * sizeof *z);
  /* each step's touched columns, ascending (a bitmap a step, read back in word order) */
  int64_t *u = malloc((size_t)nnz * sizeof *u), *u0 = malloc((size_t)(steps + 1) * sizeof *u0);
  uint32_t *slot = malloc((size_t)nnz * sizeof *slot), *rank = malloc((size_t)C * sizeof *rank);
  float *gs = malloc((size_t)(C + 1) * sizeof *gs); /* a step touches at most C columns */
  uint64_t *bits = calloc((size_t)nw, sizeof *bits);
  double *t = malloc((size_t)runs * sizeof *t);
  if (!w || !s0 || !s1 || !z || !u || !u0 || !bits || !t || !slot || !rank || !gs) {
    fprintf(stderr, "w7floor: out of memory\n");
    return 1;
  }
  int64_t m = 0;
  for (int64_t s = 0; s < steps; s++) {
    u0[s] = m;
    for (int64_t k = ip[s * B]; k < ip[s * B + B < n ? s * B + B : n]; k++)
      bits[ix[k] >> 6] |= (uint64_t)1 << (ix[k] & 63);
    for (int64_t q = 0; q < nw; q++)
      for (uint64_t b = bits[q]; b; b &= b - 1) {
        rank[q * 64 + __builtin_ctzll(b)] = (uint32_t)(m - u0[s]);
        u[m++] = q * 64 + __builtin_ctzll(b);
      }
    for (int64_t k = ip[s * B]; k < ip[s * B + B < n ? s * B + B : n]; k++) slot[k] = rank[ix[k]];
    memset(bits, 0, (size_t)nw * sizeof *bits);
  }
  u0[steps] = m;
  for (int64_t c = 0; c < C; c++) s0[c] = s1[c] = 1e-3f;
  const float lr = 1e-3f;
  double sink = 0;
  const int T = kl_num_threads();
  for (int mode = T > 1 ? 3 : 0; mode < (T > 1 ? 4 : 3); mode++) {
    for (int rep = -1; rep < runs; rep++) { /* rep -1: warm-up */
      const double t0 = now_s();
      if (mode == 3) {
#pragma omp parallel
        {
          const int nt = omp_get_num_threads(), q = omp_get_thread_num();
          const int64_t cb0 = nw * q / nt * 64, cb1 = nw * (q + 1) / nt * 64;
          for (int64_t s = 0; s < steps; s++) {
            const int64_t r0 = s * B, r1 = r0 + B < n ? r0 + B : n;
            const int64_t a0 = r0 + (r1 - r0) * q / nt, a1 = r0 + (r1 - r0) * (q + 1) / nt;
            for (int64_t r = a0; r < a1; r++) {
              float a = 0;
              for (int64_t k = ip[r]; k < ip[r + 1]; k++) a += w[ix[k]] * xv[k];
              z[r - r0] = a - (float)y[r];
            }
#pragma omp barrier
            const float g = z[0] * 1e-6f;
            const int64_t *us = u + u0[s], nu = u0[s + 1] - u0[s];
            int64_t i0 = 0, i1 = nu; /* this thread's columns: [cb0, cb1) */
            for (int64_t lo = 0, hi = nu; lo < hi;) {
              const int64_t mid = (lo + hi) / 2;
              if (us[mid] < cb0) lo = mid + 1; else hi = mid;
              i0 = lo;
            }
            for (int64_t lo = i0, hi = nu; lo < hi;) {
              const int64_t mid = (lo + hi) / 2;
              if (us[mid] < cb1) lo = mid + 1; else hi = mid;
              i1 = lo;
            }
            for (int64_t i = i0; i < i1; i++) {
              if (i + PF < i1) {
                __builtin_prefetch(w + us[i + PF], 1);
                __builtin_prefetch(s0 + us[i + PF], 1);
                if (ns == 2) __builtin_prefetch(s1 + us[i + PF], 1);
              }
              const int64_t c = us[i];
              s0[c] += g;
              if (ns == 2) s1[c] += g;
              w[c] -= lr * s0[c];
            }
#pragma omp barrier
          }
        }
      } else if (mode != 1) {
        for (int64_t s = 0; s < steps; s++) {
          const int64_t r0 = s * B, r1 = r0 + B < n ? r0 + B : n;
          float g = 0;
          for (int64_t r = r0; r < r1; r++) {
            float a = 0;
            for (int64_t k = ip[r]; k < ip[r + 1]; k++) a += w[ix[k]] * xv[k];
            z[r - r0] = a - (float)y[r];
            g += z[r - r0];
          }
          g *= 1e-6f;
          const int64_t *us = u + u0[s], nu = u0[s + 1] - u0[s];
          if (mode == 2) {
            memset(gs, 0, (size_t)nu * sizeof *gs);
            for (int64_t r = r0; r < r1; r++) {
              const float zr = z[r - r0];
              for (int64_t k = ip[r]; k < ip[r + 1]; k++) gs[slot[k]] += zr * xv[k];
            }
          }
          for (int64_t i = 0; i < nu; i++) {
            if (i + PF < nu) {
              __builtin_prefetch(w + us[i + PF], 1);
              __builtin_prefetch(s0 + us[i + PF], 1);
              if (ns == 2) __builtin_prefetch(s1 + us[i + PF], 1);
            }
            const int64_t c = us[i];
            const float gi = mode == 2 ? gs[i] : g;
            s0[c] += gi;
            if (ns == 2) s1[c] += gi;
            w[c] -= lr * s0[c];
          }
        }
      } else {
        for (int64_t r = 0; r < n; r++) {
          float a = 0;
          for (int64_t k = ip[r]; k < ip[r + 1]; k++) a += w[ix[k]] * xv[k];
          const float g = (a - (float)y[r]) * 1e-6f;
          for (int64_t k = ip[r]; k < ip[r + 1]; k++) {
            const int64_t c = ix[k];
            s0[c] += g * xv[k];
            if (ns == 2) s1[c] += g;
            w[c] -= lr * s0[c];
          }
        }
      }
      if (rep >= 0) t[rep] = now_s() - t0;
    }
    for (int64_t c = 0; c < C; c += 4099) sink += w[c];
    char note[320];
    snprintf(note, sizeof note,
             "memory floor of one epoch: %s, w + %d state(s) of %lld columns, %lld rows (sink=%g)",
             mode == 3   ? "batch steps, the rows' dots split over the threads, then the touched columns' updates in 64-column-word ranges"
             : mode == 0 ? "batch steps (dot, then each touched column's update)"
             : mode == 2 ? "batch steps (dot, each touched column's gradient summed, its update)"
                         : "one row a step",
             ns, (long long)C, (long long)n, sink);
    char impl[48];
    if (mode == 0 || mode == 3) snprintf(impl, sizeof impl, "floor-batch%lld-s%d", (long long)B, ns);
    else if (mode == 2) snprintf(impl, sizeof impl, "floor-batch%lld-sums-s%d", (long long)B, ns);
    else snprintf(impl, sizeof impl, "floor-sample-s%d", ns);
    result("W7-epoch", impl, T, median(t, runs), runs, note);
  }
  free(w);
  free(s0);
  free(s1);
  free(z);
  free(u);
  free(u0);
  free(bits);
  free(slot);
  free(rank);
  free(gs);
  free(t);
  kl_tensor_release(X);
  kl_tensor_release(Y);
  return 0;
}
