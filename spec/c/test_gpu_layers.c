/* test_gpu_layers.c: the layer ops' kernels (gpu/k_layers.cu, k_embedding.cu's extras)
 * against the CPU's ops (kl_op_run / kl_op_backward, and layers/embedding.c's fused mean)
 * bit for bit, NaN matching NaN: bias_add (forward, both gradients, dense and row_sparse,
 * a gradient of the other dtype), the Embedding's dense gradient and the fused
 * Embedding -> mean (forward, backward, masked or not), masked_mean, global_max_pool (ties,
 * NaN, -0, infinities, with and without the mask), reg_terms (the whole weight, csr rows,
 * ids; dense, row_sparse and 0-d weights; both gradient forms; bad ids with the CPU's
 * message). float32 / float64 everywhere, empty batches, one row, zero widths. */
#include <math.h>
#include <stdlib.h>

#include "gpu_testutil.h"
#include "kl_cuda_layers.h"
#include "ops_internal.h"

/* ------------------------------------------------------------------ helpers */

static int64_t stored_values(const kl_tensor *t) {
  if (t->stype == KL_STYPE_DEFAULT) return kl_tensor_numel(t);
  return t->stype == KL_STYPE_CSR ? t->nnz : t->nnz * kl_row_width(t);
}

/* A device copy of t's values, and of its indices. */
static void *dv(const kl_tensor *t) {
  return dev_copy(t->data, (size_t)stored_values(t) * kl_dtype_size(t->dtype));
}
static void *di(const kl_tensor *t) { return dev_copy(t->indices, (size_t)t->nnz * sizeof(int64_t)); }

/* n values of dt at device d equal the CPU's at cpu. */
static void same(const char *label, kl_dtype dt, const void *d, const void *cpu, int64_t n) {
  CHECK(gpu_same_on_dev(label, dt, d, cpu, n));
}

static int64_t dev_i64(const int64_t *d) {
  int64_t v = -1;
  dev_sync();
  to_host(&v, d, sizeof v);
  return v;
}

/* A value in [lo, hi), or (with probability psp) -0, 0, NaN, +-inf or a denormal. */
static double val(double lo, double hi, double psp) {
  static const double sp[] = {-0.0, 0.0, NAN, INFINITY, -INFINITY, 1e-310};
  if (gpu_urand(0, 1) < psp) return sp[gpu_irand(6)];
  return gpu_urand(lo, hi);
}

static kl_tensor *rnd(kl_dtype dt, int ndim, const int64_t *shape, double lo, double hi,
                      double psp) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, ndim, shape, &t));
  for (int64_t i = 0; i < kl_tensor_numel(t); i++) kl_tensor_data_set(t, i, val(lo, hi, psp));
  return t;
}

/* Ids (n, L) (L 0: (n)) of dtype dt in 0..V, 0 with probability pad. */
static kl_tensor *ids_t(kl_dtype dt, int64_t n, int64_t L, int64_t V, double pad) {
  int64_t shape[2] = {n, L};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, L > 0 ? 2 : 1, shape, &t));
  for (int64_t p = 0; p < kl_tensor_numel(t); p++) {
    const int64_t id = V == 0 || gpu_urand(0, 1) < pad ? 0 : 1 + gpu_irand(V);
    if (dt == KL_INT64) ((int64_t *)t->data)[p] = id;
    else kl_tensor_data_set(t, p, (double)id);
  }
  return t;
}

/* (n, L) ids, L may be 0. */
static kl_tensor *ids2(kl_dtype dt, int64_t n, int64_t L, int64_t V, double pad) {
  int64_t shape[2] = {n, L};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, 2, shape, &t));
  for (int64_t p = 0; p < n * L; p++) {
    const int64_t id = V == 0 || gpu_urand(0, 1) < pad ? 0 : 1 + gpu_irand(V);
    if (dt == KL_INT64) ((int64_t *)t->data)[p] = id;
    else kl_tensor_data_set(t, p, (double)id);
  }
  return t;
}

/* ------------------------------------------------------------------ bias_add */

static void bias_case(kl_dtype dt, kl_dtype gdt, int ndim, const int64_t *shape) {
  const int64_t k = shape[ndim - 1];
  kl_tensor *x = rnd(dt, ndim, shape, -2, 2, 0.05), *b = rnd(dt, 1, &k, -1, 1, 0.05);
  kl_tensor *g = rnd(gdt, ndim, shape, -1, 1, 0.05), *in[2] = {x, b};
  kl_tensor *y = NULL, *gx = NULL, *gb = NULL, *gbr = NULL;
  CHECK_OK(kl_op_run(KL_OP_BIAS_ADD, in, 2, NULL, &y));
  CHECK_OK(kl_op_backward(KL_OP_BIAS_ADD, in, 2, NULL, y, g, 0, KL_STYPE_DEFAULT, &gx));
  CHECK_OK(kl_op_backward(KL_OP_BIAS_ADD, in, 2, NULL, y, g, 1, KL_STYPE_DEFAULT, &gb));
  CHECK_OK(kl_op_backward(KL_OP_BIAS_ADD, in, 2, NULL, y, g, 1, KL_STYPE_ROW_SPARSE, &gbr));
  const int64_t n = kl_tensor_numel(x), rows = k ? n / k : 0;
  const size_t es = kl_dtype_size(dt);
  void *dx = dv(x), *db = dv(b), *dg = dv(g), *dy = dev_alloc((size_t)n * es);
  void *dgx = dev_alloc((size_t)n * es), *dgb = dev_alloc((size_t)k * es);
  int64_t *didx = dev_alloc((size_t)k * sizeof(int64_t));
  char l[128];
  snprintf(l, sizeof l, "bias_add %s (gout %s) %lld x %lld", kl_dtype_name(dt),
           kl_dtype_name(gdt), (long long)rows, (long long)k);
  CHECK_OK(kl_cuda_bias_add(dt, dx, db, rows, k, dy, NULL));
  same(l, dt, dy, y->data, n);
  CHECK_OK(kl_cuda_cast(gdt, dg, dt, dgx, n, NULL));
  same(l, dt, dgx, gx->data, n);
  CHECK_OK(kl_cuda_bias_grad(gdt, dg, rows, k, dt, dgb, NULL));
  same(l, dt, dgb, gb->data, k);
  same(l, dt, dgb, gbr->data, k);
  CHECK_OK(kl_cuda_iota(didx, k, NULL));
  same(l, KL_INT64, didx, gbr->indices, k);
  dev_free(dx), dev_free(db), dev_free(dg), dev_free(dy), dev_free(dgx), dev_free(dgb);
  dev_free(didx);
  kl_tensor *all[] = {x, b, g, y, gx, gb, gbr};
  for (int i = 0; i < 7; i++) kl_tensor_release(all[i]);
}

static void test_bias_add(void) {
  static const int64_t s1[] = {0, 3}, s2[] = {1, 1}, s3[] = {5, 7}, s4[] = {2, 3, 4},
                       s5[] = {300, 2}, s6[] = {3, 0}, s7[] = {9};
  for (int a = 0; a < 2; a++)
    for (int c = 0; c < 2; c++) {
      kl_dtype dt = a ? KL_FLOAT64 : KL_FLOAT32, gdt = c ? KL_FLOAT64 : KL_FLOAT32;
      bias_case(dt, gdt, 2, s1);
      bias_case(dt, gdt, 2, s2);
      bias_case(dt, gdt, 2, s3);
      bias_case(dt, gdt, 3, s4);
      bias_case(dt, gdt, 2, s5);
      bias_case(dt, gdt, 2, s6);
      bias_case(dt, gdt, 1, s7);
    }
}

/* ------------------------------------------------------------------ Embedding extras */

/* The dense weight gradient (want default): the row_sparse sums scattered into (V, D). */
static void emb_dense_case(kl_dtype idt, kl_dtype dt, kl_dtype gdt, int64_t n, int64_t L,
                           int64_t V, int64_t D, double pad) {
  kl_tensor *ids = ids_t(idt, n, L, V, pad), *w = rnd(dt, 2, (int64_t[]){V, D}, -1, 1, 0);
  kl_tensor *in[2] = {ids, w}, *out = NULL, *gw = NULL;
  CHECK_OK(kl_op_run(KL_OP_EMBEDDING, in, 2, NULL, &out));
  kl_tensor *g = rnd(gdt, out->ndim, out->shape, -1, 1, 0.05);
  CHECK_OK(kl_op_backward(KL_OP_EMBEDDING, in, 2, NULL, out, g, 1, KL_STYPE_DEFAULT, &gw));
  const int64_t npos = kl_tensor_numel(ids), cap = npos < V ? npos : V;
  const size_t es = kl_dtype_size(dt);
  void *dids = dv(ids), *dg = dv(g), *dgc = dev_alloc((size_t)(npos * D) * es);
  void *scr = dev_alloc(kl_cuda_embedding_backward_scratch(npos));
  int64_t *rows = dev_alloc((size_t)cap * 8), *nu = dev_alloc(8), *bad = dev_alloc(8);
  void *vals = dev_alloc((size_t)(cap * D) * es), *dout = dev_alloc((size_t)(V * D) * es);
  void *zero = calloc((size_t)(V * D) + 1, es);
  to_dev(dout, zero, (size_t)(V * D) * es);
  CHECK_OK(kl_cuda_cast(gdt, dg, dt, dgc, npos * D, NULL));
  CHECK_OK(kl_cuda_embedding_backward(idt, dids, npos, dt, dgc, V, D, scr, rows, vals, nu, bad,
                                      NULL));
  CHECK_OK(kl_cuda_rows_scatter(dt, rows, vals, nu, cap, D, dout, NULL));
  CHECK(dev_i64(bad) == npos);
  char l[128];
  snprintf(l, sizeof l, "embedding dense grad ids %s w %s g %s %lldx%lld V=%lld D=%lld",
           kl_dtype_name(idt), kl_dtype_name(dt), kl_dtype_name(gdt), (long long)n, (long long)L,
           (long long)V, (long long)D);
  same(l, dt, dout, gw->data, V * D);
  free(zero);
  dev_free(dids), dev_free(dg), dev_free(dgc), dev_free(scr), dev_free(rows), dev_free(nu);
  dev_free(bad), dev_free(vals), dev_free(dout);
  kl_tensor *all[] = {ids, w, out, g, gw};
  for (int i = 0; i < 5; i++) kl_tensor_release(all[i]);
}

/* The fused Embedding -> mean (masked or not) against kl_embedding_mean and its backward. */
static void emb_mean_case(kl_dtype idt, kl_dtype dt, int64_t n, int64_t L, int64_t V,
                          int64_t D, double pad, int masked) {
  kl_tensor *ids = ids2(idt, n, L, V, pad), *w = rnd(dt, 2, (int64_t[]){V, D}, -1, 1, 0);
  kl_tensor *y = NULL, *gr = NULL, *gd = NULL;
  CHECK_OK(kl_embedding_mean(ids, w, NULL, masked, &y));
  kl_tensor *g = rnd(dt, 2, (int64_t[]){n, D}, -1, 1, 0.05);
  CHECK_OK(kl_embedding_mean_backward(ids, w, NULL, masked, g, KL_STYPE_ROW_SPARSE, &gr));
  CHECK_OK(kl_embedding_mean_backward(ids, w, NULL, masked, g, KL_STYPE_DEFAULT, &gd));
  const int64_t npos = n * L, cap = npos < V ? npos : V;
  const size_t es = kl_dtype_size(dt);
  void *dids = dv(ids), *dw = dv(w), *dg = dv(g), *dy = dev_alloc((size_t)(n * D) * es);
  void *dgs = dev_alloc((size_t)(n * D) * es), *scr = dev_alloc(kl_cuda_embedding_backward_scratch(npos));
  int64_t *rows = dev_alloc((size_t)cap * 8), *nu = dev_alloc(8), *bad = dev_alloc(8);
  void *vals = dev_alloc((size_t)(cap * D) * es), *dout = dev_alloc((size_t)(V * D) * es);
  void *zero = calloc((size_t)(V * D) + 1, es);
  to_dev(dout, zero, (size_t)(V * D) * es);
  char l[160];
  snprintf(l, sizeof l, "embedding mean%s ids %s w %s %lldx%lld V=%lld D=%lld",
           masked ? " (masked)" : "", kl_dtype_name(idt), kl_dtype_name(dt), (long long)n,
           (long long)L, (long long)V, (long long)D);
  CHECK_OK(kl_cuda_embedding_mean(idt, dids, n, L, dt, dw, V, D, masked, dy, bad, NULL));
  CHECK(dev_i64(bad) == npos);
  same(l, dt, dy, y->data, n * D);
  CHECK_OK(kl_cuda_embedding_mean_scale(idt, dids, n, L, dt, dg, D, masked, dgs, NULL));
  CHECK_OK(kl_cuda_embedding_bag_backward(idt, dids, npos, L, dt, dgs, V, D, scr, rows, vals, nu,
                                          bad, NULL));
  CHECK(dev_i64(bad) == npos);
  const int64_t nuh = dev_i64(nu);
  CHECK(nuh == gr->nnz);
  if (nuh == gr->nnz) {
    same(l, KL_INT64, rows, gr->indices, nuh);
    same(l, dt, vals, gr->data, nuh * D);
  }
  CHECK_OK(kl_cuda_rows_scatter(dt, rows, vals, nu, cap, D, dout, NULL));
  same(l, dt, dout, gd->data, V * D);
  free(zero);
  dev_free(dids), dev_free(dw), dev_free(dg), dev_free(dy), dev_free(dgs), dev_free(scr);
  dev_free(rows), dev_free(nu), dev_free(bad), dev_free(vals), dev_free(dout);
  kl_tensor *all[] = {ids, w, y, g, gr, gd};
  for (int i = 0; i < 6; i++) kl_tensor_release(all[i]);
}

/* A bad id in the fused mean: flagged at its first position, the CPU's message. */
static void emb_mean_bad(void) {
  const double v[6] = {1, 2, 0, 3, 7, 2.5}; /* V = 4: 7 at (2, 2) comes first */
  kl_tensor *ids = NULL, *w = rnd(KL_FLOAT32, 2, (int64_t[]){4, 3}, -1, 1, 0), *y = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, (int64_t[]){2, 3}, &ids));
  memcpy(ids->data, v, sizeof v);
  CHECK(kl_embedding_mean(ids, w, NULL, 0, &y) == KL_EINDEX);
  char msg[256];
  snprintf(msg, sizeof msg, "%s", kl_errmsg());
  void *dids = dv(ids), *dw = dv(w), *dy = dev_alloc(6 * 4);
  int64_t *bad = dev_alloc(8);
  CHECK_OK(kl_cuda_embedding_mean(KL_FLOAT64, dids, 2, 3, KL_FLOAT32, dw, 4, 3, 0, dy, bad, NULL));
  const int64_t p = dev_i64(bad);
  CHECK(p == 4);
  CHECK_ERR(kl_cuda_embedding_id_error(KL_FLOAT64, &v[p < 6 && p >= 0 ? p : 0], p, 3, 4),
            KL_EINDEX, msg);
  CHECK(strcmp(kl_errmsg(), msg) == 0);
  dev_free(dids), dev_free(dw), dev_free(dy), dev_free(bad);
  kl_tensor_release(ids), kl_tensor_release(w);
}

static void test_embedding(void) {
  static const kl_dtype idts[] = {KL_INT64, KL_FLOAT32, KL_FLOAT64};
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 2; b++) {
      const kl_dtype idt = idts[a], dt = b ? KL_FLOAT64 : KL_FLOAT32;
      const kl_dtype odt = b ? KL_FLOAT32 : KL_FLOAT64;
      emb_dense_case(idt, dt, dt, 0, 4, 10, 3, 0.2);
      emb_dense_case(idt, dt, dt, 1, 1, 1, 1, 0);
      emb_dense_case(idt, dt, dt, 20, 0, 50, 8, 0.3);
      emb_dense_case(idt, dt, odt, 30, 7, 40, 5, 0.2);
      emb_dense_case(idt, dt, dt, 6, 4, 9, 3, 1.0);
      emb_dense_case(idt, dt, dt, 200, 30, 5, 4, 0.1); /* npos far above V */
      for (int m = 0; m < 2; m++) {
        emb_mean_case(idt, dt, 0, 4, 10, 3, 0.2, m);
        emb_mean_case(idt, dt, 3, 0, 10, 3, 0.2, m); /* L = 0: NaN (or 0 masked) */
        emb_mean_case(idt, dt, 1, 1, 1, 1, 0, m);
        emb_mean_case(idt, dt, 16, 9, 30, 6, 0.3, m);
        emb_mean_case(idt, dt, 5, 6, 20, 4, 1.0, m); /* all padding */
        emb_mean_case(idt, dt, 64, 20, 1000, 16, 0.2, m);
        emb_mean_case(idt, dt, 7, 5, 9, 0, 0.2, m); /* D = 0 */
      }
    }
  emb_mean_bad();
}

/* ------------------------------------------------------------------ pooling */

/* x values from a small set, so maxima tie, with -0 / +0, NaN and infinities among them. */
static kl_tensor *pool_x(kl_dtype dt, int64_t n, int64_t L, int64_t D, double psp) {
  static const double v[] = {-1, 0, -0.0, 1, 2, 2, 0.5};
  int64_t shape[3] = {n, L, D};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, 3, shape, &t));
  for (int64_t i = 0; i < n * L * D; i++)
    kl_tensor_data_set(t, i, gpu_urand(0, 1) < psp ? val(0, 1, 1.0) : v[gpu_irand(7)]);
  return t;
}

static void pool_case(kl_dtype dt, kl_dtype idt, kl_dtype gdt, int64_t n, int64_t L,
                      int64_t D, double pad, double psp, int mask) {
  kl_tensor *x = pool_x(dt, n, L, D, psp), *ids = ids2(idt, n, L, 5, pad);
  kl_tensor *in[2] = {x, ids}, *ym = NULL, *gm = NULL, *yx = NULL, *gxx = NULL;
  const int64_t ny = n * D, nx = n * L * D;
  kl_tensor *g = rnd(gdt, 2, (int64_t[]){n, D}, -1, 1, 0.05);
  CHECK_OK(kl_op_run(KL_OP_GLOBAL_MAX_POOL, in, mask ? 2 : 1, NULL, &yx));
  CHECK_OK(kl_op_backward(KL_OP_GLOBAL_MAX_POOL, in, mask ? 2 : 1, NULL, yx, g, 0,
                          KL_STYPE_DEFAULT, &gxx));
  const size_t es = kl_dtype_size(dt);
  void *dx = dv(x), *dids = dv(ids), *dg = dv(g), *dy = dev_alloc((size_t)ny * es);
  void *dgx = dev_alloc((size_t)nx * es);
  char l[160];
  snprintf(l, sizeof l, "pool %s ids %s g %s %lldx%lldx%lld mask %d", kl_dtype_name(dt),
           kl_dtype_name(idt), kl_dtype_name(gdt), (long long)n, (long long)L, (long long)D,
           mask);
  CHECK_OK(kl_cuda_global_max_pool(dt, dx, idt, mask ? dids : NULL, n, L, D, dy, NULL));
  same(l, dt, dy, yx->data, ny);
  CHECK_OK(kl_cuda_global_max_pool_backward(dt, dx, idt, mask ? dids : NULL, gdt, dg, n, L, D,
                                            dgx, NULL));
  same(l, dt, dgx, gxx->data, nx);
  if (mask) {
    CHECK_OK(kl_op_run(KL_OP_MASKED_MEAN, in, 2, NULL, &ym));
    CHECK_OK(kl_op_backward(KL_OP_MASKED_MEAN, in, 2, NULL, ym, g, 0, KL_STYPE_DEFAULT, &gm));
    CHECK_OK(kl_cuda_masked_mean(dt, dx, idt, dids, n, L, D, dy, NULL));
    same(l, dt, dy, ym->data, ny);
    CHECK_OK(kl_cuda_masked_mean_backward(dt, idt, dids, gdt, dg, n, L, D, dgx, NULL));
    same(l, dt, dgx, gm->data, nx);
  }
  dev_free(dx), dev_free(dids), dev_free(dg), dev_free(dy), dev_free(dgx);
  kl_tensor *all[] = {x, ids, g, ym, gm, yx, gxx};
  for (int i = 0; i < 7; i++) kl_tensor_release(all[i]);
}

static void test_pooling(void) {
  static const kl_dtype idts[] = {KL_INT64, KL_FLOAT32, KL_FLOAT64};
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 3; b++)
      for (int m = 0; m < 2; m++) {
        const kl_dtype dt = a ? KL_FLOAT64 : KL_FLOAT32, gdt = a ? KL_FLOAT32 : KL_FLOAT64;
        pool_case(dt, idts[b], dt, 0, 4, 3, 0.2, 0.1, m);
        pool_case(dt, idts[b], dt, 3, 0, 2, 0.2, 0.1, m); /* no steps: 0 (mask) or -inf */
        pool_case(dt, idts[b], dt, 1, 1, 1, 0, 0, m);
        pool_case(dt, idts[b], dt, 4, 6, 0, 0.2, 0.1, m);
        pool_case(dt, idts[b], dt, 17, 9, 5, 0.3, 0.05, m);
        pool_case(dt, idts[b], gdt, 17, 9, 5, 0.3, 0.05, m);
        pool_case(dt, idts[b], dt, 6, 5, 4, 1.0, 0.1, m); /* all padding */
        pool_case(dt, idts[b], dt, 40, 30, 7, 0.1, 0.3, m); /* many NaN / inf */
      }
}

/* ------------------------------------------------------------------ reg_terms */

/* A weight of R rows of shape[1..] (ndim 0: a scalar), dense or row_sparse storing about
 * half its rows (keep: the probability a row is stored). */
static kl_tensor *reg_w(kl_dtype dt, int ndim, const int64_t *shape, int rsp, double keep) {
  kl_tensor *d = rnd(dt, ndim, shape, -2, 2, 0.03);
  if (!rsp) return d;
  const int64_t R = shape[0], rw = kl_row_width(d);
  int64_t nnz = 0, *idx = malloc((size_t)R * 8 + 8);
  for (int64_t r = 0; r < R; r++)
    if (gpu_urand(0, 1) < keep) idx[nnz++] = r;
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_rsp(dt, ndim, shape, nnz, &t));
  memcpy(t->indices, idx, (size_t)nnz * 8);
  for (int64_t k = 0; k < nnz; k++)
    memcpy((char *)t->data + (size_t)(k * rw) * kl_dtype_size(dt),
           (char *)d->data + (size_t)(idx[k] * rw) * kl_dtype_size(dt), (size_t)rw * kl_dtype_size(dt));
  free(idx);
  kl_tensor_release(d);
  return t;
}

/* The rows input: csr (n, R) (kind 1) or dense ids of dtype idt (kind 2), or none (0). */
static kl_tensor *reg_src(int kind, kl_dtype idt, int64_t n, int64_t R) {
  if (kind == 2) return ids_t(idt, n, 3, R, 0.2);
  int64_t m = R ? n * 2 : 0, *ri = malloc((size_t)m * 8 + 8), *ci = malloc((size_t)m * 8 + 8);
  double *v = malloc((size_t)m * 8 + 8);
  for (int64_t e = 0; e < m; e++) {
    ri[e] = e / 2;
    ci[e] = gpu_irand(R);
    v[e] = 1;
  }
  kl_tensor *t = NULL;
  CHECK_OK(kl_csr_from_coo(KL_FLOAT32, n, R, m, ri, ci, v, &t));
  free(ri), free(ci), free(v);
  return t;
}

static void reg_case(kl_dtype dt, int ndim, const int64_t *shape, int rsp, int kind,
                     kl_dtype idt, int64_t n, kl_dtype gdt) {
  kl_tensor *w = reg_w(dt, ndim, shape, rsp, 0.5), *src = kind ? reg_src(kind, idt, n, shape[0]) : NULL;
  kl_tensor *in[2] = {w, src}, *y = NULL, *gd = NULL, *gs = NULL;
  const int nin = kind ? 2 : 1, sparse_ok = ndim >= 1;
  kl_tensor *g = rnd(gdt, 1, (int64_t[]){2}, -2, 2, 0);
  CHECK_OK(kl_op_run(KL_OP_REG_TERMS, in, nin, NULL, &y));
  CHECK_OK(kl_op_backward(KL_OP_REG_TERMS, in, nin, NULL, y, g, 0, KL_STYPE_DEFAULT, &gd));
  if (sparse_ok)
    CHECK_OK(kl_op_backward(KL_OP_REG_TERMS, in, nin, NULL, y, g, 0, KL_STYPE_ROW_SPARSE, &gs));
  const int64_t R = ndim ? shape[0] : 1, rw = ndim ? kl_row_width(w) : 1;
  const size_t es = kl_dtype_size(dt);
  void *dw = dv(w), *dg = dv(g), *dy = dev_alloc(2 * es), *dgd = dev_alloc((size_t)(R * rw) * es);
  int64_t *widx = rsp ? di(w) : NULL;
  void *zero = calloc((size_t)(R * rw) + 1, es);
  to_dev(dgd, zero, (size_t)(R * rw) * es);
  char l[160];
  snprintf(l, sizeof l, "reg_terms %s %s ndim %d R=%lld rows %d (%s) n=%lld g %s",
           kl_dtype_name(dt), rsp ? "row_sparse" : "dense", ndim, (long long)R, kind,
           kind == 2 ? kl_dtype_name(idt) : "-", (long long)n, kl_dtype_name(gdt));
  if (!kind) {
    const int64_t cnt = rsp ? w->nnz : R;
    void *dgs = dev_alloc((size_t)(cnt * rw) * es);
    int64_t *didx = dev_alloc((size_t)cnt * 8);
    CHECK_OK(kl_cuda_reg_terms(dt, dw, rw, NULL, NULL, cnt, dy, NULL));
    same(l, dt, dy, y->data, 2);
    CHECK_OK(kl_cuda_reg_terms_backward(dt, dw, rw, widx, NULL, NULL, cnt, gdt, dg, 0, dgd, NULL,
                                        NULL));
    same(l, dt, dgd, gd->data, R * rw);
    if (sparse_ok) {
      CHECK(gs->nnz == cnt);
      CHECK_OK(kl_cuda_reg_terms_backward(dt, dw, rw, widx, NULL, NULL, cnt, gdt, dg, 1, dgs,
                                          didx, NULL));
      same(l, KL_INT64, didx, gs->indices, cnt);
      same(l, dt, dgs, gs->data, cnt * rw);
    }
    dev_free(dgs), dev_free(didx);
  } else {
    const int csr = kind == 1;
    const int64_t m = csr ? src->nnz : kl_tensor_numel(src);
    void *dsrc = dv(src);
    int64_t *dcols = csr ? di(src) : NULL, *rows = dev_alloc((size_t)m * 8 + 8);
    int64_t *pos = dev_alloc((size_t)m * 8 + 8), *nr = dev_alloc(8), *bad = dev_alloc(8);
    void *scr = dev_alloc(kl_cuda_reg_rows_scratch(m));
    CHECK_OK(kl_cuda_reg_rows(dcols, src->dtype, dsrc, m, R, widx, rsp ? w->nnz : 0, scr, rows,
                              pos, nr, bad, NULL));
    CHECK(dev_i64(bad) == m);
    CHECK_OK(kl_cuda_reg_terms(dt, dw, rw, pos, nr, m, dy, NULL));
    same(l, dt, dy, y->data, 2);
    CHECK_OK(kl_cuda_reg_terms_backward(dt, dw, rw, rows, pos, nr, m, gdt, dg, 0, dgd, NULL,
                                        NULL));
    same(l, dt, dgd, gd->data, R * rw);
    const int64_t cnt = dev_i64(nr);
    CHECK(cnt == gs->nnz);
    if (cnt == gs->nnz) {
      void *dgs = dev_alloc((size_t)(cnt * rw) * es);
      int64_t *didx = dev_alloc((size_t)cnt * 8);
      CHECK_OK(kl_cuda_reg_terms_backward(dt, dw, rw, rows, pos, NULL, cnt, gdt, dg, 1, dgs, didx,
                                          NULL));
      same(l, KL_INT64, didx, gs->indices, cnt);
      same(l, dt, dgs, gs->data, cnt * rw);
      dev_free(dgs), dev_free(didx);
    }
    dev_free(dsrc), dev_free(dcols), dev_free(rows), dev_free(pos), dev_free(nr), dev_free(bad);
    dev_free(scr);
  }
  free(zero);
  dev_free(dw), dev_free(dg), dev_free(dy), dev_free(dgd), dev_free(widx);
  kl_tensor *all[] = {w, src, g, y, gd, gs};
  for (int i = 0; i < 6; i++) kl_tensor_release(all[i]);
}

/* Bad ids: the first bad position flagged, the CPU's message. */
static void reg_bad(kl_dtype idt, const double *v, int64_t m, int64_t R, int64_t want) {
  kl_tensor *w = reg_w(KL_FLOAT32, 2, (int64_t[]){R, 2}, 0, 1), *ids = NULL, *y = NULL;
  CHECK_OK(kl_tensor_new_dense(idt, 1, &m, &ids));
  for (int64_t p = 0; p < m; p++) {
    if (idt == KL_INT64) ((int64_t *)ids->data)[p] = (int64_t)v[p];
    else kl_tensor_data_set(ids, p, v[p]);
  }
  kl_tensor *in[2] = {w, ids};
  CHECK(kl_op_run(KL_OP_REG_TERMS, in, 2, NULL, &y) == KL_EINDEX);
  char msg[256];
  snprintf(msg, sizeof msg, "%s", kl_errmsg());
  void *dids = dv(ids), *scr = dev_alloc(kl_cuda_reg_rows_scratch(m));
  int64_t *rows = dev_alloc((size_t)m * 8), *pos = dev_alloc((size_t)m * 8), *nr = dev_alloc(8);
  int64_t *bad = dev_alloc(8);
  CHECK_OK(kl_cuda_reg_rows(NULL, idt, dids, m, R, NULL, 0, scr, rows, pos, nr, bad, NULL));
  const int64_t p = dev_i64(bad);
  CHECK(p == want);
  if (p >= 0 && p < m) {
    CHECK_ERR(kl_cuda_reg_id_error(kl_tensor_data_at(ids, p), p, R), KL_EINDEX, msg);
    CHECK(strcmp(kl_errmsg(), msg) == 0);
  }
  dev_free(dids), dev_free(scr), dev_free(rows), dev_free(pos), dev_free(nr), dev_free(bad);
  kl_tensor_release(w), kl_tensor_release(ids);
}

static void test_reg_terms(void) {
  static const int64_t s2[] = {40, 3}, s1[] = {25}, s3[] = {12, 2, 3}, s0[] = {0, 4},
                       s4[] = {300, 1};
  static const kl_dtype idts[] = {KL_INT64, KL_FLOAT32, KL_FLOAT64};
  for (int a = 0; a < 2; a++) {
    const kl_dtype dt = a ? KL_FLOAT64 : KL_FLOAT32, gdt = a ? KL_FLOAT32 : KL_FLOAT64;
    reg_case(dt, 0, NULL, 0, 0, KL_INT64, 0, dt); /* a 0-d weight */
    for (int rsp = 0; rsp < 2; rsp++) {
      reg_case(dt, 2, s2, rsp, 0, KL_INT64, 0, dt);
      reg_case(dt, 1, s1, rsp, 0, KL_INT64, 0, gdt);
      reg_case(dt, 3, s3, rsp, 0, KL_INT64, 0, dt);
      reg_case(dt, 2, s0, rsp, 0, KL_INT64, 0, dt);
      reg_case(dt, 2, s2, rsp, 1, KL_INT64, 7, dt);
      reg_case(dt, 2, s2, rsp, 1, KL_INT64, 0, gdt);
      reg_case(dt, 3, s3, rsp, 1, KL_INT64, 30, dt);
      reg_case(dt, 2, s4, rsp, 1, KL_INT64, 100, dt);
      for (int b = 0; b < 3; b++) {
        reg_case(dt, 2, s2, rsp, 2, idts[b], 9, dt);
        reg_case(dt, 1, s1, rsp, 2, idts[b], 1, gdt);
        reg_case(dt, 2, s2, rsp, 2, idts[b], 0, dt);
        reg_case(dt, 2, s4, rsp, 2, idts[b], 200, dt);
      }
    }
  }
  const double b1[] = {1, 2, 6, 3, 9}; /* R = 5: 6 at 3 */
  reg_bad(KL_INT64, b1, 5, 5, 2);
  reg_bad(KL_FLOAT32, b1, 5, 5, 2);
  const double b2[] = {0, 1, -1, 2.5};
  reg_bad(KL_FLOAT64, b2, 4, 3, 2);
  const double b3[] = {1, 1.5, NAN};
  reg_bad(KL_FLOAT64, b3, 3, 3, 1);
  const double b4[] = {2, INFINITY};
  reg_bad(KL_FLOAT32, b4, 2, 3, 1);
}

/* ------------------------------------------------------------------ argument errors */

static void test_errors(void) {
  CHECK_ERR(kl_cuda_bias_add(KL_INT64, NULL, NULL, 1, 1, NULL, NULL), KL_EDTYPE,
            "cuda bias_add: x must be float32 or float64, got int64");
  CHECK_ERR(kl_cuda_masked_mean(KL_FLOAT32, NULL, KL_INT64, NULL, -1, 2, 2, NULL, NULL),
            KL_ESHAPE, "cuda masked_mean: bad sizes -1, 2, 2");
  CHECK_ERR(kl_cuda_reg_rows(NULL, KL_INT64, NULL, 3, 2, (int64_t *)8, 5, NULL, NULL, NULL, NULL,
                             NULL, NULL),
            KL_ESHAPE, "cuda reg_rows: bad sizes R=2 nnz=5");
  CHECK_ERR(kl_cuda_embedding_bag_backward(KL_INT64, NULL, 7, 2, KL_FLOAT32, NULL, 3, 1, NULL,
                                           NULL, NULL, NULL, NULL, NULL),
            KL_ESHAPE, "cuda embedding_backward: bag 2 does not divide npos=7");
  /* every launcher with nothing to do launches nothing (an empty grid is a device error) */
  CHECK_OK(kl_cuda_bias_add(KL_FLOAT32, NULL, NULL, 0, 4, NULL, NULL));
  CHECK_OK(kl_cuda_bias_grad(KL_FLOAT32, NULL, 5, 0, KL_FLOAT32, NULL, NULL));
  CHECK_OK(kl_cuda_cast(KL_INT64, NULL, KL_FLOAT64, NULL, 0, NULL));
  CHECK_OK(kl_cuda_global_max_pool(KL_FLOAT64, NULL, KL_INT64, NULL, 0, 3, 3, NULL, NULL));
  CHECK_OK(kl_cuda_reg_terms_backward(KL_FLOAT32, NULL, 3, NULL, NULL, NULL, 0, KL_FLOAT32, NULL,
                                      1, NULL, NULL, NULL));
}

int main(void) {
  int rc = gpu_test_start("test_gpu_layers");
  if (rc) return rc;
  test_bias_add();
  test_embedding();
  test_pooling();
  test_reg_terms();
  test_errors();
  KLTEST_DONE();
}
