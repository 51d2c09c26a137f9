/* test_perf_kernels.c: the kernels of the issue-18 performance work give the bits their
 * contracts state, at 1 and 2 threads and whichever clone (AVX2 or baseline) the CPU runs:
 * - csr . dense / row_sparse (the gathers, 64-column tiles): each output element the sum
 *   in entry order from 0 of value x b element, rounded as float (double) arithmetic does,
 *   against a scalar loop here, for widths that take every tile and the leftover path; and
 *   csr . vector (its entry stream prefetched, split over the threads from 16,384 entries);
 * - csr^T . dense (the sorted path's gathers): each output row the sum over its column's
 *   entries in entry order;
 * - the fused Embedding -> mean forward (kl_embedding_mean): each sample's row the sum in
 *   double from +0 in id order, times 1/L, rounded once; and its backward's weight gradient
 *   (row k: the sum, in position order from +0, of the scaled sample rows of the positions
 *   holding id k);
 * - sum / mean over an axis of a dense tensor: each output the sum in double in index
 *   order, scaled, rounded once;
 * - the lazy update of many 1-wide rows (a Dense(1) kernel), sorted (a row_sparse
 *   gradient) or listed in any order (the plan's listed step), for every rule, with enough
 *   rows to split over the threads: each row the bits of the non-lazy update's rule on it.
 * Each kernel's result is also compared between 1 and 2 threads, bit for bit. */
#include <omp.h>
#include <stdlib.h>
#include "kltest.h"
#include "kl/optim.h"
#include "kl/registry.h"
#include "ops_internal.h"
#include "optim_internal.h"

kl_status kl_embedding_mean(const kl_tensor *ids, const kl_tensor *w, const kl_attrs *a,
                            int masked, kl_tensor **out);
kl_status kl_embedding_mean_backward(const kl_tensor *ids, const kl_tensor *w,
                                     const kl_attrs *a, int masked, const kl_tensor *gout,
                                     kl_stype want, kl_tensor **gin);

static int same_bytes(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static kl_tensor *rnd_csr(kl_dtype dt, int64_t r, int64_t c, double density, kl_rng *g) {
  kl_tensor *t = NULL;
  int64_t sh[2] = {r, c};
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, dt, 2, sh, density, g, &t));
  if (!t) exit(2);
  return t;
}

static kl_tensor *rnd_dense(kl_dtype dt, int64_t r, int64_t c, kl_rng *g) {
  kl_tensor *t = NULL;
  int64_t sh[2] = {r, c};
  CHECK_OK(kl_tensor_new_dense(dt, 2, sh, &t));
  if (!t) exit(2);
  CHECK_OK(kl_tensor_fill_uniform(t, -1, 1, g));
  return t;
}

/* The scalar reference of csr (M x K) . b (K x N, dense, or row_sparse storing rows
 * bi[0..bn) ascending): y[i, n] = sum over row i's entries j in order, from 0, of
 * v[j] * b[col j, n] (entries whose row b lacks add nothing). */
#define REF_CSR_X(T)                                                                     \
  static void ref_csr_x_##T(const kl_tensor *a, const kl_tensor *b, T *y) {            \
    const int64_t M = a->shape[0], N = b->shape[1];                                       \
    const T *av = a->data, *bv = b->data;                                                 \
    for (int64_t i = 0; i < M; i++)                                                       \
      for (int64_t n = 0; n < N; n++) {                                                   \
        T acc = 0;                                                                        \
        for (int64_t j = a->indptr[i]; j < a->indptr[i + 1]; j++) {                       \
          int64_t r = a->indices[j];                                                      \
          if (b->stype == KL_STYPE_ROW_SPARSE) {                                          \
            int64_t q = -1;                                                               \
            for (int64_t p = 0; p < b->nnz; p++)                                          \
              if (b->indices[p] == r) q = p;                                              \
            if (q < 0) continue;                                                          \
            r = q;                                                                        \
          }                                                                               \
          const T prod = av[j] * bv[r * N + n];                                           \
          acc = acc + prod;                                                               \
        }                                                                                 \
        y[i * N + n] = acc;                                                               \
      }                                                                                   \
  }
REF_CSR_X(float)
REF_CSR_X(double)

/* csr^T . G (a: R x C, G: R x N dense) -> the touched columns' rows, column ascending, each
 * the sum over the column's entries in entry (row-major) order from 0. */
#define REF_CSRT(T)                                                                      \
  static int64_t ref_csrT_##T(const kl_tensor *a, const kl_tensor *g, int64_t *cols,    \
                              T *y) {                                                     \
    const int64_t R = a->shape[0], C = a->shape[1], N = g->shape[1];                      \
    const T *av = a->data, *gv = g->data;                                                 \
    int64_t U = 0;                                                                        \
    for (int64_t c = 0; c < C; c++) {                                                     \
      int touched = 0;                                                                    \
      for (int64_t n = 0; n < N; n++) {                                                   \
        T acc = 0;                                                                        \
        for (int64_t i = 0; i < R; i++)                                                   \
          for (int64_t j = a->indptr[i]; j < a->indptr[i + 1]; j++)                       \
            if (a->indices[j] == c) {                                                     \
              const T prod = av[j] * gv[i * N + n];                                       \
              acc = acc + prod;                                                           \
              touched = 1;                                                                \
            }                                                                             \
        y[U * N + n] = acc;                                                               \
      }                                                                                   \
      if (touched) cols[U++] = c;                                                         \
    }                                                                                     \
    return U;                                                                             \
  }
REF_CSRT(float)
REF_CSRT(double)

static void test_csr_dense_bits(void) {
  static const int64_t widths[] = {1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 24, 31, 32, 33, 48,
                                   63, 64, 65, 80, 96, 100, 127, 128, 130, 200};
  const int saved = omp_get_max_threads();
  kl_rng g;
  kl_rng_seed(&g, 18);
  for (int d = 0; d < 2; d++) {
    const kl_dtype dt = d ? KL_FLOAT64 : KL_FLOAT32;
    const size_t es = kl_dtype_size(dt);
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
      const int64_t N = widths[w], M = 37, K = 300;
      kl_tensor *a = rnd_csr(dt, M, K, 0.08, &g), *b = rnd_dense(dt, K, N, &g);
      void *ref = calloc((size_t)(M * N), es);
      if (d) ref_csr_x_double(a, b, ref);
      else ref_csr_x_float(a, b, ref);
      kl_tensor *o[2] = {NULL, NULL};
      for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        CHECK_OK(kl_dot(a, b, 0, 0, &o[t]));
      }
      omp_set_num_threads(saved);
      for (int t = 0; t < 2; t++) {
        const int ok = o[t] && same_bytes(o[t]->data, ref, (size_t)(M * N) * es);
        if (!ok) fprintf(stderr, "csr . dense %s N=%lld threads=%d: not the entry-order sums\n",
                         kl_dtype_name(dt), (long long)N, t + 1);
        CHECK(ok);
      }
      /* a row_sparse b storing every third row (a binary search a nonzero) */
      kl_tensor *bs = NULL;
      CHECK_OK(kl_tensor_new_rsp(dt, 2, b->shape, (K + 2) / 3, &bs));
      if (bs) {
        for (int64_t p = 0; p < bs->nnz; p++) {
          bs->indices[p] = 3 * p;
          memcpy((char *)bs->data + (size_t)(p * N) * es, (char *)b->data + (size_t)(3 * p * N) * es,
                 (size_t)N * es);
        }
        if (d) ref_csr_x_double(a, bs, ref);
        else ref_csr_x_float(a, bs, ref);
        kl_tensor *os = NULL;
        omp_set_num_threads(2);
        CHECK_OK(kl_dot(a, bs, 0, 0, &os));
        omp_set_num_threads(saved);
        CHECK(os && same_bytes(os->data, ref, (size_t)(M * N) * es));
        kl_tensor_release(os);
        kl_tensor_release(bs);
      }
      for (int t = 0; t < 2; t++) kl_tensor_release(o[t]);
      free(ref);
      kl_tensor_release(a);
      kl_tensor_release(b);
    }
  }
}

/* csr . vector at the sizes that split the rows over the threads (static halves: >= 16,384
 * entries, ops_dot_csr.c KL_DOT1_PAR_MIN, for every shape), with a vector in cache and one
 * larger than L2 (prefetched), rows of unequal lengths, few rows. */
static void test_csr_vector_bits(void) {
  static const int64_t shapes[][2] = {{1001, 5000}, {1003, 120000}, {6, 70000}, {4, 9000}};
  const int saved = omp_get_max_threads();
  kl_rng g;
  kl_rng_seed(&g, 22);
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
    const int64_t M = shapes[k][0], K = shapes[k][1];
    static const double dens[] = {20.0 / 5000, 20.0 / 120000, 0.05, 0.5};
    kl_tensor *a = rnd_csr(KL_FLOAT32, M, K, dens[k], &g);
    CHECK(a->nnz + M >= 16384);
    kl_tensor *b = rnd_dense(KL_FLOAT32, K, 1, &g);
    float *ref = calloc((size_t)M, sizeof *ref);
    ref_csr_x_float(a, b, ref);
    for (int t = 0; t < 2; t++) {
      kl_tensor *o = NULL;
      omp_set_num_threads(t + 1);
      CHECK_OK(kl_dot(a, b, 0, 0, &o));
      omp_set_num_threads(saved);
      const int ok = o && same_bytes(o->data, ref, (size_t)M * sizeof *ref);
      if (!ok) fprintf(stderr, "csr . vector %lld x %lld threads=%d: not the entry-order sums\n",
                       (long long)M, (long long)K, t + 1);
      CHECK(ok);
      kl_tensor_release(o);
    }
    free(ref);
    kl_tensor_release(a);
    kl_tensor_release(b);
  }
}

static void test_csrT_dense_bits(void) {
  static const int64_t widths[] = {1, 3, 8, 16, 33, 64, 65, 128, 131};
  const int saved = omp_get_max_threads();
  kl_rng g;
  kl_rng_seed(&g, 19);
  for (int d = 0; d < 2; d++) {
    const kl_dtype dt = d ? KL_FLOAT64 : KL_FLOAT32;
    const size_t es = kl_dtype_size(dt);
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
      const int64_t N = widths[w], R = 60, C = 90;
      kl_tensor *a = rnd_csr(dt, R, C, 0.1, &g), *gt = rnd_dense(dt, R, N, &g);
      int64_t *cols = calloc((size_t)C, sizeof *cols);
      void *ref = calloc((size_t)(C * N), es);
      const int64_t U = d ? ref_csrT_double(a, gt, cols, ref) : ref_csrT_float(a, gt, cols, ref);
      for (int t = 0; t < 2; t++) {
        kl_tensor *o = NULL;
        omp_set_num_threads(t + 1);
        CHECK_OK(kl_dot(a, gt, 1, 0, &o)); /* outside a plan: the sorted path */
        omp_set_num_threads(saved);
        const int ok = o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == U &&
                       same_bytes(o->indices, cols, (size_t)U * sizeof *cols) &&
                       same_bytes(o->data, ref, (size_t)(U * N) * es);
        if (!ok) fprintf(stderr, "csr^T . dense %s N=%lld threads=%d: not the entry-order sums\n",
                         kl_dtype_name(dt), (long long)N, t + 1);
        CHECK(ok);
        kl_tensor_release(o);
      }
      free(cols);
      free(ref);
      kl_tensor_release(a);
      kl_tensor_release(gt);
    }
  }
}

/* ids (n x L) in [0, V] (0: padding, ~1 in 8), as int64 or float32 */
static kl_tensor *rnd_ids(int64_t n, int64_t L, int64_t V, kl_dtype dt, kl_rng *g) {
  kl_tensor *t = NULL;
  int64_t sh[2] = {n, L};
  CHECK_OK(kl_tensor_new_dense(dt, 2, sh, &t));
  if (!t) exit(2);
  for (int64_t p = 0; p < n * L; p++) {
    int64_t id = (int64_t)(kl_rng_uniform(g) * (double)(V + 1));
    if (id > V) id = V;
    if (kl_rng_uniform(g) < 0.125) id = 0;
    kl_tensor_data_set(t, p, (double)id);
  }
  return t;
}

/* (id, position) pairs by id, then position */
static int cmp_pair(const void *a, const void *b) {
  const int64_t *x = a, *y = b;
  return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* The scalar references of the fused Embedding -> mean: forward y (n x D), and the weight
 * gradient's rows (ascending ids, padding left out) for gout g. */
#define REF_EMB(T)                                                                         \
  static void ref_emb_mean_##T(const kl_tensor *ids, const kl_tensor *w, int masked, T *y) { \
    const int64_t n = ids->shape[0], L = ids->shape[1], D = w->shape[1];                    \
    const T *W = w->data;                                                                   \
    for (int64_t b = 0; b < n; b++) {                                                       \
      int64_t cnt = 0;                                                                      \
      for (int64_t l = 0; l < L; l++) cnt += kl_tensor_data_at(ids, b * L + l) != 0;        \
      const double sc = masked ? (cnt ? 1.0 / (double)cnt : 0.0) : 1.0 / (double)L;         \
      for (int64_t j = 0; j < D; j++) {                                                     \
        double acc = 0;                                                                     \
        for (int64_t l = 0; l < L; l++) {                                                   \
          const int64_t id = (int64_t)kl_tensor_data_at(ids, b * L + l);                    \
          if (id > 0) acc += (double)W[(id - 1) * D + j];                                    \
        }                                                                                   \
        y[b * D + j] = (T)(acc * sc);                                                       \
      }                                                                                     \
    }                                                                                       \
  }                                                                                         \
  static int64_t ref_emb_grad_##T(const kl_tensor *ids, const kl_tensor *w, int masked,    \
                                  const T *g, int64_t *rows, T *y) {                        \
    const int64_t n = ids->shape[0], L = ids->shape[1], D = w->shape[1];                    \
    int64_t *pr = malloc((size_t)(2 * n * L + 2) * sizeof *pr), m = 0, U = 0;               \
    for (int64_t p = 0; p < n * L; p++) {                                                   \
      const int64_t id = (int64_t)kl_tensor_data_at(ids, p);                                \
      if (id > 0) pr[2 * m] = id, pr[2 * m + 1] = p, m++;                                   \
    }                                                                                       \
    qsort(pr, (size_t)m, 2 * sizeof *pr, cmp_pair);                                         \
    for (int64_t t = 0; t < m; t++) {                                                       \
      if (t == 0 || pr[2 * t] != pr[2 * t - 2]) {                                           \
        rows[U] = pr[2 * t] - 1;                                                            \
        for (int64_t j = 0; j < D; j++) y[U * D + j] = 0;                                   \
        U++;                                                                                \
      }                                                                                     \
      const int64_t b = pr[2 * t + 1] / L;                                                  \
      int64_t cnt = 0;                                                                      \
      for (int64_t l = 0; l < L; l++) cnt += kl_tensor_data_at(ids, b * L + l) != 0;        \
      const double sc = masked ? (cnt ? 1.0 / (double)cnt : 0.0) : 1.0 / (double)L;         \
      for (int64_t j = 0; j < D; j++) {                                                     \
        const T gs = (T)((double)g[b * D + j] * sc);                                        \
        y[(U - 1) * D + j] = y[(U - 1) * D + j] + gs;                                       \
      }                                                                                     \
    }                                                                                       \
    free(pr);                                                                               \
    return U;                                                                               \
  }
REF_EMB(float)
REF_EMB(double)

static void test_embedding_mean_bits(void) {
  static const int64_t dims[] = {1, 3, 4, 7, 8, 16, 20, 31, 32, 33, 64, 65, 100, 129};
  const int saved = omp_get_max_threads();
  kl_rng g;
  kl_rng_seed(&g, 20);
  for (int d = 0; d < 2; d++) {
    const kl_dtype dt = d ? KL_FLOAT64 : KL_FLOAT32;
    const size_t es = kl_dtype_size(dt);
    for (size_t k = 0; k < sizeof dims / sizeof *dims; k++)
      for (int masked = 0; masked < 2; masked++) {
        /* V: one radix pass of 6 bits, two of 6 (12 bits), two of 11 (22 bits: narrow rows) */
        const int64_t D = dims[k], n = 41, L = 1 + (int64_t)(k % 6) * 4;
        const int64_t V = D <= 4 && k % 2 ? 3000000 : k % 2 ? 3000 : 50;
        kl_tensor *ids = rnd_ids(n, L, V, k % 2 ? KL_FLOAT32 : KL_INT64, &g);
        kl_tensor *w = rnd_dense(dt, V, D, &g), *go = rnd_dense(dt, n, D, &g);
        void *ref = calloc((size_t)(n * D), es), *gref = calloc((size_t)(n * L * D + 1), es);
        int64_t *rows = calloc((size_t)(n * L + 1), sizeof *rows);
        if (d) ref_emb_mean_double(ids, w, masked, ref);
        else ref_emb_mean_float(ids, w, masked, ref);
        const int64_t U = d ? ref_emb_grad_double(ids, w, masked, go->data, rows, gref)
                            : ref_emb_grad_float(ids, w, masked, go->data, rows, gref);
        for (int t = 0; t < 2; t++) {
          kl_tensor *y = NULL, *gw = NULL;
          omp_set_num_threads(t + 1);
          CHECK_OK(kl_embedding_mean(ids, w, NULL, masked, &y));
          CHECK_OK(kl_embedding_mean_backward(ids, w, NULL, masked, go, KL_STYPE_ROW_SPARSE, &gw));
          omp_set_num_threads(saved);
          const int ok = y && same_bytes(y->data, ref, (size_t)(n * D) * es);
          const int gok = gw && gw->nnz == U && same_bytes(gw->indices, rows, (size_t)U * sizeof *rows) &&
                          same_bytes(gw->data, gref, (size_t)(U * D) * es);
          if (!ok || !gok)
            fprintf(stderr, "embedding mean %s D=%lld L=%lld masked=%d threads=%d: %s%s\n",
                    kl_dtype_name(dt), (long long)D, (long long)L, masked, t + 1,
                    ok ? "" : "forward not the id-order sums ", gok ? "" : "gradient not the position-order sums");
          CHECK(ok);
          CHECK(gok);
          kl_tensor_release(y);
          kl_tensor_release(gw);
        }
        free(ref);
        free(gref);
        free(rows);
        kl_tensor_release(ids);
        kl_tensor_release(w);
        kl_tensor_release(go);
      }
  }
}

/* ---------------------------------------------------------------- lazy 1-wide rows */

typedef struct rule_cfg {
  kl_opt_kind kind;
  double lr, momentum, wd, clip, rescale, lr_power;
  int nesterov;
} rule_cfg;

static kl_tensor *vec1(kl_dtype dt, int64_t R, kl_rng *g, double lo, double hi) {
  kl_tensor *t = NULL;
  int64_t sh[2] = {R, 1};
  CHECK_OK(kl_tensor_new_dense(dt, 2, sh, &t));
  if (!t) exit(2);
  CHECK_OK(kl_tensor_fill_uniform(t, lo, hi, g));
  return t;
}

static kl_tensor *copy_of(const kl_tensor *t) {
  kl_tensor *c = NULL;
  CHECK_OK(kl_tensor_copy(t, &c));
  if (!c) exit(2);
  return c;
}

/* R x 1 weight, n distinct rows of gradient: lazy (sorted row_sparse gradient), listed
 * (the same rows shuffled) and non-lazy (the scalar rule on every row; absent rows get a
 * zero gradient) from the same start, three steps; the present rows must agree bit for bit
 * (weight and states), and the listed update equal the lazy one everywhere. */
static void check_rows1(const rule_cfg *c, kl_dtype dt, int64_t R, int64_t n, int threads,
                        kl_rng *g) {
  const int saved = omp_get_max_threads();
  const size_t es = kl_dtype_size(dt);
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, c->kind));
  o.learning_rate = c->lr;
  o.momentum = c->momentum;
  o.nesterov = c->nesterov;
  o.weight_decay = c->wd;
  o.clipvalue = c->clip;
  o.rescale_grad = c->rescale;
  if (c->kind == KL_OPT_FTRL) {
    o.lr_power = c->lr_power;
    if (c->wd > 0) {
      o.lamda1 = 0.05;
      o.beta = 0.5;
    }
  }
  const int ns = kl_optimizer_num_states(&o);
  kl_tensor *w0 = vec1(dt, R, g, -1, 1), *st0[2] = {NULL, NULL};
  CHECK_OK(kl_optimizer_create_states(&o, w0, st0));
  for (int i = 0; i < ns; i++) CHECK_OK(kl_tensor_fill_uniform(st0[i], 0.01, 1, g));
  kl_tensor *wl = copy_of(w0), *wn = copy_of(w0), *wt = copy_of(w0);
  kl_tensor *sl[2] = {NULL, NULL}, *sn[2] = {NULL, NULL}, *stl[2] = {NULL, NULL};
  for (int i = 0; i < ns; i++) {
    sl[i] = copy_of(st0[i]);
    sn[i] = copy_of(st0[i]);
    stl[i] = copy_of(st0[i]);
  }
  /* n distinct rows: every (R / n)-th, sorted; the list: the same rows shuffled */
  int64_t *rows = malloc((size_t)n * sizeof *rows), *perm = malloc((size_t)n * sizeof *perm);
  for (int64_t k = 0; k < n; k++) rows[k] = k * (R / n) + (k % 3 == 1);
  for (int64_t k = 0; k < n; k++) perm[k] = k;
  for (int64_t k = n - 1; k > 0; k--) {
    int64_t q = (int64_t)(kl_rng_uniform(g) * (double)(k + 1)), x = perm[k];
    if (q > k) q = k;
    perm[k] = perm[q];
    perm[q] = x;
  }
  int64_t *list = malloc((size_t)n * sizeof *list);
  char *gl = malloc((size_t)n * es);
  for (int64_t t = 1; t <= 3; t++) {
    kl_tensor *gr = NULL, *gd = NULL;
    int64_t sh[2] = {R, 1};
    CHECK_OK(kl_tensor_new_rsp(dt, 2, sh, n, &gr));
    if (!gr) exit(2);
    memcpy(gr->indices, rows, (size_t)n * sizeof *rows);
    for (int64_t k = 0; k < n; k++)
      kl_tensor_data_set(gr, k, t == 2 && k == 5 ? 50.0 : 2 * kl_rng_uniform(g) - 1);
    CHECK_OK(kl_tensor_tostype(gr, KL_STYPE_DEFAULT, &gd));
    for (int64_t k = 0; k < n; k++) {
      list[k] = rows[perm[k]];
      memcpy(gl + (size_t)k * es, (char *)gr->data + (size_t)perm[k] * es, es);
    }
    omp_set_num_threads(threads);
    o.lazy_update = 1;
    CHECK_OK(kl_optimizer_update(&o, wl, gr, sl, t));
    CHECK_OK(kl_optimizer_flagged_precheck(&o, wt, stl, t));
    kl_optimizer_update_listed_prechecked(&o, wt, gl, list, n, stl, t);
    o.lazy_update = 0;
    CHECK_OK(kl_optimizer_update(&o, wn, gd, sn, t));
    omp_set_num_threads(saved);
    kl_tensor_release(gr);
    kl_tensor_release(gd);
  }
  int ok = 1;
  for (int64_t k = 0; k < n; k++) {
    const size_t off = (size_t)rows[k] * es;
    ok &= same_bytes((char *)wl->data + off, (char *)wn->data + off, es);
    for (int i = 0; i < ns; i++) ok &= same_bytes((char *)sl[i]->data + off, (char *)sn[i]->data + off, es);
  }
  int lok = same_bytes(wl->data, wt->data, (size_t)R * es);
  for (int i = 0; i < ns; i++) lok &= same_bytes(sl[i]->data, stl[i]->data, (size_t)R * es);
  if (!ok || !lok)
    fprintf(stderr, "1-wide lazy rows, %s %s %lld of %lld rows, %d threads: %s%s\n",
            kl_optimizer_kind_name(c->kind), kl_dtype_name(dt), (long long)n, (long long)R,
            threads, ok ? "" : "lazy != the scalar rule ", lok ? "" : "listed != lazy");
  CHECK(ok);
  CHECK(lok);
  free(rows);
  free(perm);
  free(list);
  free(gl);
  kl_tensor_release(w0);
  kl_tensor_release(wl);
  kl_tensor_release(wn);
  kl_tensor_release(wt);
  for (int i = 0; i < ns; i++) {
    kl_tensor_release(st0[i]);
    kl_tensor_release(sl[i]);
    kl_tensor_release(sn[i]);
    kl_tensor_release(stl[i]);
  }
}

static void test_rows1_bits(void) {
  static const rule_cfg cfgs[] = {
      {KL_OPT_SGD, 0.1, 0, 0, 0, 1, -0.5, 0},
      {KL_OPT_SGD, 0.1, 0.9, 0.1, 0.3, 2, -0.5, 1},
      {KL_OPT_ADAM, 0.01, 0, 0, 0, 1, -0.5, 0},
      {KL_OPT_ADAM, 0.01, 0, 0.05, 0.5, 0.5, -0.5, 0},
      {KL_OPT_ADAGRAD, 0.1, 0, 0, 0, 1, -0.5, 0},
      {KL_OPT_ADAGRAD, 0.1, 0, 0.05, 0.5, 0.5, -0.5, 0},
      {KL_OPT_RMSPROP, 0.01, 0, 0, 0, 1, -0.5, 0},
      {KL_OPT_RMSPROP, 0.01, 0, 0.05, 0.5, 0.5, -0.5, 0},
      {KL_OPT_FTRL, 0.1, 0, 0, 0, 1, -0.5, 0},
      {KL_OPT_FTRL, 0.1, 0, 0.1, 0.5, 2, -0.7, 0},
  };
  kl_rng g;
  kl_rng_seed(&g, 21);
  for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++)
    for (int d = 0; d < 2; d++) {
      const kl_dtype dt = d ? KL_FLOAT64 : KL_FLOAT32;
      check_rows1(&cfgs[c], dt, 300, 53, 1, &g);
      check_rows1(&cfgs[c], dt, 300, 5, 1, &g);
      /* enough rows for the update to split over the threads: 1-wide rows of a rule with a
       * square root from 4,096, any rule from 65,536 */
      check_rows1(&cfgs[c], dt, 20000, 5001, 1, &g);
      check_rows1(&cfgs[c], dt, 20000, 5001, 2, &g);
      check_rows1(&cfgs[c], dt, 300000, 70001, 1, &g);
      check_rows1(&cfgs[c], dt, 300000, 70001, 2, &g);
    }
}

/* ---------------------------------------------------------------- reductions over an axis */

/* sum / mean over axis 1 of dense (outer, n, inner): each output the double sum in k order
 * from +0, scaled, rounded once, at 1 and 2 threads: the register-tile column sums (many
 * small blocks, and blocks up to 1 MiB split over the threads) and the row-streaming loop
 * (larger blocks). */
static void test_reduce_bits(void) {
  static const int64_t shapes[][3] = {
      {300, 20, 64}, {300, 20, 33}, {257, 7, 100}, {1000, 20, 1}, {40, 9, 3},  /* small blocks */
      {1, 700, 64},  {2, 300, 131}, {1, 40, 1000}, {3, 9, 4097},               /* large, tiled */
      {1, 300, 1201}, {2, 1100, 300}};                                          /* > 1 MiB */
  const int saved = omp_get_max_threads();
  kl_rng g;
  kl_rng_seed(&g, 23);
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
    for (int d = 0; d < 2; d++) {
      const kl_dtype dt = d ? KL_FLOAT64 : KL_FLOAT32;
      const int64_t outer = shapes[k][0], n = shapes[k][1], inner = shapes[k][2];
      int64_t sh[3] = {outer, n, inner};
      kl_tensor *x = NULL;
      CHECK_OK(kl_tensor_new_dense(dt, 3, sh, &x));
      if (!x) exit(2);
      CHECK_OK(kl_tensor_fill_uniform(x, -1, 1, &g));
      for (int mean = 0; mean < 2; mean++) {
        kl_attrs a;
        memset(&a, 0, sizeof a);
        a.has_axis = 1;
        a.axis = 1;
        kl_tensor *o[2] = {NULL, NULL}, *in[1] = {x};
        for (int t = 0; t < 2; t++) {
          omp_set_num_threads(t + 1);
          CHECK_OK(kl_op_run(mean ? KL_OP_MEAN : KL_OP_SUM, in, 1, &a, &o[t]));
        }
        omp_set_num_threads(saved);
        int ok = o[0] && o[1];
        for (int64_t q = 0; ok && q < outer; q++)
          for (int64_t i = 0; ok && i < inner; i++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++) s += kl_tensor_data_at(x, (q * n + j) * inner + i);
            s *= mean ? 1.0 / (double)n : 1.0;
            const double want = d ? s : (double)(float)s;
            ok = kl_tensor_data_at(o[0], q * inner + i) == want &&
                 kl_tensor_data_at(o[1], q * inner + i) == want;
          }
        if (!ok)
          fprintf(stderr, "%s over axis 1 of (%lld, %lld, %lld) %s: not the k-order sums\n",
                  mean ? "mean" : "sum", (long long)outer, (long long)n, (long long)inner,
                  kl_dtype_name(dt));
        CHECK(ok);
        kl_tensor_release(o[0]);
        kl_tensor_release(o[1]);
      }
      kl_tensor_release(x);
    }
}

int main(void) {
  test_csr_dense_bits();
  test_csr_vector_bits();
  test_csrT_dense_bits();
  test_embedding_mean_bits();
  test_rows1_bits();
  test_reduce_bits();
  KLTEST_DONE();
}
