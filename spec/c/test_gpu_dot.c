/* test_gpu_dot.c: gpu/k_dot.cu against the CPU's dot op (kl_op_run / kl_op_backward of
 * KL_OP_DOT, backend/src/ops_dot*.c) and its storage conversions (kl_tensor_tostype), bit
 * for bit:
 *   csr . dense (2-d and 1-d b) and csr . row_sparse (some rows, all, none) by the gather;
 *   csr^T . dense and csr^T . row_sparse -> row_sparse (rows and values) by sort + segmented
 *   sums; dense . csr (transpose_a, 1-d a); the weight gradients of csr . W (kl_op_backward,
 *   want row_sparse and default, transpose_a or not); csr / row_sparse -> dense and dense ->
 *   row_sparse.
 * Random csr of densities 0 .. 1 with empty rows, a column touched by every row, wide csr
 * (70,000 columns: three radix passes), empty batches, one row, N = 0 / 1 / wide, f32 and
 * f64, with -0, infinities and NaN among the values (an infinite value times an absent
 * row_sparse row must be skipped, as the CPU does, not give NaN). */
#include <math.h>
#include <stdlib.h>

#include "gpu_testutil.h"
#include "kl_cuda_dot.h"

static double rand_value(double special_p) {
  double u = gpu_urand(0, 1);
  if (u < special_p) {
    int k = (int)gpu_irand(4);
    return k == 0 ? -0.0 : k == 1 ? INFINITY : k == 2 ? -INFINITY : NAN;
  }
  return gpu_urand(-2, 2);
}

/* R x C csr, each entry present with probability density; col_all >= 0: that column is in
 * every row; empty_p: a row is left empty with that probability. */
static kl_tensor *make_csr(kl_dtype dt, int64_t R, int64_t C, double density, int64_t col_all,
                           double empty_p, double special_p) {
  const int64_t cap = R * 66 + 1; /* at most 64 random columns and col_all a row */
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_csr(dt, R, C, 0, &t));
  int64_t *ind = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *ind), nnz = 0;
  double *val = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *val);
  for (int64_t i = 0; i < R; i++) {
    t->indptr[i] = nnz;
    if (gpu_urand(0, 1) < empty_p) continue;
    if (density >= 1.0 && C <= 64) {
      for (int64_t c = 0; c < C; c++) {
        ind[nnz] = c;
        val[nnz++] = rand_value(special_p);
      }
      continue;
    }
    /* up to 64 random distinct columns, sorted, plus col_all */
    int64_t want = (int64_t)(density * (double)C + 0.5);
    if (want > 64) want = 64;
    if (want > C) want = C;
    int64_t cols[66], nc = 0;
    while (nc < want) {
      int64_t c = gpu_irand(C), dup = 0;
      for (int64_t q = 0; q < nc; q++) dup |= cols[q] == c;
      if (!dup) cols[nc++] = c;
    }
    if (col_all >= 0) {
      int64_t dup = 0;
      for (int64_t q = 0; q < nc; q++) dup |= cols[q] == col_all;
      if (!dup) cols[nc++] = col_all;
    }
    for (int64_t p = 1; p < nc; p++)
      for (int64_t q = p; q > 0 && cols[q - 1] > cols[q]; q--) {
        int64_t x = cols[q];
        cols[q] = cols[q - 1];
        cols[q - 1] = x;
      }
    for (int64_t q = 0; q < nc; q++) {
      ind[nnz] = cols[q];
      val[nnz++] = rand_value(special_p);
    }
  }
  t->indptr[R] = nnz;
  CHECK_OK(kl_tensor_reserve(t, nnz));
  t->nnz = nnz;
  for (int64_t j = 0; j < nnz; j++) {
    t->indices[j] = ind[j];
    kl_tensor_data_set(t, j, val[j]);
  }
  free(ind);
  free(val);
  return t;
}

static kl_tensor *make_dense(kl_dtype dt, int ndim, const int64_t *shape, double special_p) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, ndim, shape, &t));
  int64_t n = kl_tensor_numel(t);
  for (int64_t i = 0; i < n; i++) kl_tensor_data_set(t, i, rand_value(special_p));
  return t;
}

/* rows x w row_sparse (1-d when w < 0: a vector) storing each row with probability keep_p. */
static kl_tensor *make_rsp(kl_dtype dt, int64_t rows, int64_t w, double keep_p,
                           double special_p) {
  int64_t shape[2] = {rows, w < 0 ? 1 : w}, n = 0;
  int64_t *keep = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *keep);
  for (int64_t r = 0; r < rows; r++)
    if (gpu_urand(0, 1) < keep_p) keep[n++] = r;
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_rsp(dt, w < 0 ? 1 : 2, shape, n, &t));
  if (n) memcpy(t->indices, keep, (size_t)n * sizeof *keep);
  const int64_t ww = w < 0 ? 1 : w;
  for (int64_t i = 0; i < n * ww; i++) kl_tensor_data_set(t, i, rand_value(special_p));
  free(keep);
  return t;
}

typedef struct dcsr {
  int64_t *ip, *ix;
  void *v;
} dcsr;

static dcsr csr_to_dev(const kl_tensor *a) {
  dcsr d;
  d.ip = dev_copy(a->indptr, (size_t)(a->shape[0] + 1) * sizeof(int64_t));
  d.ix = dev_copy(a->indices, (size_t)a->nnz * sizeof(int64_t));
  d.v = dev_copy(a->data, (size_t)a->nnz * kl_dtype_size(a->dtype));
  return d;
}

static void dcsr_free(dcsr d) {
  dev_free(d.ip);
  dev_free(d.ix);
  dev_free(d.v);
}

/* --------------------------------------------------------------- csr . b (gather) */

static void case_csr_x(const char *what, kl_tensor *a, kl_tensor *b) {
  char label[256];
  snprintf(label, sizeof label, "csr.%s %s (%lld x %lld, nnz %lld) . (%lld%s%lld)", what,
           kl_dtype_name(a->dtype), (long long)a->shape[0], (long long)a->shape[1],
           (long long)a->nnz, (long long)b->shape[0], b->ndim == 2 ? " x " : "",
           b->ndim == 2 ? (long long)b->shape[1] : 0LL);
  kl_tensor *in[2] = {a, b}, *out = NULL;
  CHECK_OK(kl_op_run(KL_OP_DOT, in, 2, NULL, &out));
  if (!out) return;
  CHECK(out->stype == KL_STYPE_DEFAULT);
  const kl_dtype dt = a->dtype;
  const int64_t M = a->shape[0], N = b->ndim == 2 ? b->shape[1] : 1;
  const int bsp = b->stype == KL_STYPE_ROW_SPARSE;
  const int64_t brows = bsp ? b->nnz : b->shape[0];
  dcsr d = csr_to_dev(a);
  void *dB = dev_copy(b->data, (size_t)(brows * N) * kl_dtype_size(dt));
  int64_t *dbi = bsp ? dev_copy(b->indices, (size_t)b->nnz * sizeof(int64_t)) : NULL;
  void *scr = dev_alloc(kl_cuda_dot_csr_gather_scratch(a->nnz, bsp));
  void *dout = dev_alloc((size_t)(M * N) * kl_dtype_size(dt));
  CHECK_OK(kl_cuda_dot_csr_gather(dt, M, N, d.ip, d.ix, d.v, a->nnz, dbi, bsp ? b->nnz : 0, dB,
                                  scr, dout, NULL));
  dev_sync();
  CHECK(gpu_same_on_dev(label, dt, dout, out->data, M * N));
  dcsr_free(d);
  dev_free(dB);
  dev_free(dbi);
  dev_free(scr);
  dev_free(dout);
  kl_tensor_release(out);
}

/* --------------------------------------------------------------- csr^T . b */

/* The device's csr^T . b (B: brows x N values, bi: a row_sparse b's rows or NULL) against
 * the CPU's row_sparse ref. */
static void check_csrT(const char *label, const kl_tensor *a, const void *Bhost, int64_t brows,
                       int64_t N, const kl_tensor *bsp, const kl_tensor *ref) {
  const kl_dtype dt = a->dtype;
  const size_t es = kl_dtype_size(dt);
  dcsr d = csr_to_dev(a);
  void *dB = dev_copy(Bhost, (size_t)(brows * N) * es);
  int64_t *dbi = bsp ? dev_copy(bsp->indices, (size_t)bsp->nnz * sizeof(int64_t)) : NULL;
  void *scr = dev_alloc(kl_cuda_dot_csrT_scratch(a->nnz));
  int64_t *dnu = dev_alloc(sizeof(int64_t)), nu = -1;
  CHECK_OK(kl_cuda_dot_csrT_plan(a->shape[0], a->shape[1], d.ip, d.ix, a->nnz, dbi,
                                 bsp ? bsp->nnz : 0, scr, dnu, NULL));
  dev_sync();
  to_host(&nu, dnu, sizeof nu);
  CHECK(nu == ref->nnz);
  if (nu != ref->nnz) fprintf(stderr, "%s: %lld rows, CPU %lld\n", label, (long long)nu,
                              (long long)ref->nnz);
  if (nu == ref->nnz) {
    int64_t *drows = dev_alloc((size_t)nu * sizeof(int64_t));
    void *dvals = dev_alloc((size_t)(nu * N) * es);
    CHECK_OK(kl_cuda_dot_csrT_sum(dt, a->nnz, N, d.v, dB, scr, nu, drows, dvals, NULL));
    CHECK(gpu_same_rsp_on_dev(label, dt, drows, dvals, nu, N, ref));
    dev_free(drows);
    dev_free(dvals);
  }
  dcsr_free(d);
  dev_free(dB);
  dev_free(dbi);
  dev_free(scr);
  dev_free(dnu);
}

static void case_csrT(const char *what, kl_tensor *a, kl_tensor *b) {
  char label[256];
  snprintf(label, sizeof label, "csrT.%s %s (%lld x %lld, nnz %lld)^T . (%lld x %lld, %lld stored)",
           what, kl_dtype_name(a->dtype), (long long)a->shape[0], (long long)a->shape[1],
           (long long)a->nnz, (long long)b->shape[0], (long long)b->shape[1], (long long)b->nnz);
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.transpose_a = 1;
  kl_tensor *in[2] = {a, b}, *out = NULL;
  CHECK_OK(kl_op_run(KL_OP_DOT, in, 2, &at, &out));
  if (!out) return;
  CHECK(out->stype == KL_STYPE_ROW_SPARSE);
  const int bsp = b->stype == KL_STYPE_ROW_SPARSE;
  check_csrT(label, a, b->data, bsp ? b->nnz : b->shape[0], b->shape[1], bsp ? b : NULL, out);
  kl_tensor_release(out);
}

/* --------------------------------------------------------------- dense . csr */

static void case_dense_csr(kl_tensor *a, kl_tensor *b, int ta) {
  char label[256];
  snprintf(label, sizeof label, "dense.csr %s (%lld%s%lld)%s . csr (%lld x %lld, nnz %lld)",
           kl_dtype_name(a->dtype), (long long)a->shape[0], a->ndim == 2 ? " x " : "",
           a->ndim == 2 ? (long long)a->shape[1] : 0LL, ta ? "^T" : "", (long long)b->shape[0],
           (long long)b->shape[1], (long long)b->nnz);
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.transpose_a = ta;
  kl_tensor *in[2] = {a, b}, *out = NULL;
  CHECK_OK(kl_op_run(KL_OP_DOT, in, 2, &at, &out));
  if (!out) return;
  const kl_dtype dt = a->dtype;
  const int t = ta && a->ndim == 2;
  const int64_t K = b->shape[0], N = b->shape[1];
  const int64_t M = a->ndim == 1 ? 1 : (t ? a->shape[1] : a->shape[0]);
  dcsr d = csr_to_dev(b);
  void *dA = dev_copy(a->data, (size_t)kl_tensor_numel(a) * kl_dtype_size(dt));
  void *scr = dev_alloc(kl_cuda_dot_dense_csr_scratch(b->nnz, N));
  void *dout = dev_alloc((size_t)(M * N) * kl_dtype_size(dt));
  CHECK_OK(kl_cuda_dot_dense_csr(dt, M, K, t, dA, N, d.ip, d.ix, d.v, b->nnz, scr, dout, NULL));
  dev_sync();
  CHECK(gpu_same_on_dev(label, dt, dout, out->data, M * N));
  dcsr_free(d);
  dev_free(dA);
  dev_free(scr);
  dev_free(dout);
  kl_tensor_release(out);
}

/* The device's dense -> row_sparse (count, then fill) of the R x N values of dtype dt at dd
 * against the CPU's row_sparse ref: the same rows and values. When the counts agree, *didx
 * and *dv hold the device's rows and values (free with dev_free), else NULL. */
static void dense_to_rsp_dev(const char *label, kl_dtype dt, int64_t R, int64_t N, const void *dd,
                             const kl_tensor *ref, int64_t **didx, void **dv) {
  void *scr = dev_alloc(kl_cuda_dot_dense_to_rsp_scratch(R));
  int64_t *dn = dev_alloc(sizeof(int64_t)), n = -1;
  *didx = NULL;
  *dv = NULL;
  CHECK_OK(kl_cuda_dot_dense_to_rsp_count(dt, R, N, dd, scr, dn, NULL));
  dev_sync();
  to_host(&n, dn, sizeof n);
  CHECK(n == ref->nnz);
  if (n == ref->nnz) {
    *didx = dev_alloc((size_t)n * sizeof(int64_t));
    *dv = dev_alloc((size_t)(n * N) * kl_dtype_size(dt));
    CHECK_OK(kl_cuda_dot_dense_to_rsp_fill(dt, R, N, dd, scr, *didx, *dv, NULL));
    CHECK(gpu_same_rsp_on_dev(label, dt, *didx, *dv, n, N, ref));
  }
  dev_free(scr);
  dev_free(dn);
}

/* --------------------------------------------------------------- backward */

/* dW of out = op(a) . W for a csr a: the CPU's kl_op_backward against the device kernels
 * (csr^T . gout, or csr . gout with transpose_a), and want = default against csr^T . gout
 * densified on the device. */
static void case_backward(kl_tensor *a, int64_t N, int ta) {
  const kl_dtype dt = a->dtype;
  const int64_t R = a->shape[0], C = a->shape[1];
  const int64_t wshape[2] = {ta ? R : C, N}, gshape[2] = {ta ? C : R, N};
  kl_tensor *w = make_dense(dt, 2, wshape, 0.0), *gout = make_dense(dt, 2, gshape, 0.02);
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.transpose_a = ta;
  kl_tensor *in[2] = {a, w}, *out = NULL, *g_rsp = NULL, *g_dense = NULL;
  CHECK_OK(kl_op_run(KL_OP_DOT, in, 2, &at, &out));
  CHECK_OK(kl_op_backward(KL_OP_DOT, in, 2, &at, out, gout, 1, KL_STYPE_ROW_SPARSE, &g_rsp));
  CHECK_OK(kl_op_backward(KL_OP_DOT, in, 2, &at, out, gout, 1, KL_STYPE_DEFAULT, &g_dense));
  char label[256];
  snprintf(label, sizeof label, "backward dW %s (%lld x %lld, nnz %lld)%s N=%lld",
           kl_dtype_name(dt), (long long)R, (long long)C, (long long)a->nnz, ta ? "^T" : "",
           (long long)N);
  if (g_rsp && g_dense) {
    const size_t es = kl_dtype_size(dt);
    if (!ta) {
      check_csrT(label, a, gout->data, R, N, NULL, g_rsp);
      /* the dense gradient: csr^T . gout scattered into C x N */
      kl_tensor *ref = NULL;
      CHECK_OK(kl_tensor_tostype(g_rsp, KL_STYPE_DEFAULT, &ref));
      dcsr d = csr_to_dev(a);
      void *dG = dev_copy(gout->data, (size_t)(R * N) * es);
      void *scr = dev_alloc(kl_cuda_dot_csrT_scratch(a->nnz));
      int64_t *dnu = dev_alloc(sizeof(int64_t)), nu = 0;
      CHECK_OK(kl_cuda_dot_csrT_plan(R, C, d.ip, d.ix, a->nnz, NULL, 0, scr, dnu, NULL));
      dev_sync();
      to_host(&nu, dnu, sizeof nu);
      int64_t *drows = dev_alloc((size_t)nu * sizeof(int64_t));
      void *dvals = dev_alloc((size_t)(nu * N) * es), *dd = dev_alloc((size_t)(C * N) * es);
      CHECK_OK(kl_cuda_dot_csrT_sum(dt, a->nnz, N, d.v, dG, scr, nu, drows, dvals, NULL));
      CHECK_OK(kl_cuda_dot_rsp_to_dense(dt, C, N, drows, nu, dvals, dd, NULL));
      dev_sync();
      char l2[300];
      snprintf(l2, sizeof l2, "%s dense", label);
      CHECK(gpu_same_on_dev(l2, dt, dd, ref->data, C * N));
      dcsr_free(d);
      dev_free(dG);
      dev_free(scr);
      dev_free(dnu);
      dev_free(drows);
      dev_free(dvals);
      dev_free(dd);
      kl_tensor_release(ref);
    } else {
      /* dW = a . gout (R x N) dense; its row_sparse form keeps the rows with a nonzero */
      dcsr d = csr_to_dev(a);
      void *dG = dev_copy(gout->data, (size_t)(C * N) * es);
      void *dout = dev_alloc((size_t)(R * N) * es);
      CHECK_OK(kl_cuda_dot_csr_gather(dt, R, N, d.ip, d.ix, d.v, a->nnz, NULL, 0, dG, NULL, dout,
                                      NULL));
      dev_sync();
      CHECK(gpu_same_on_dev(label, dt, dout, g_dense->data, R * N));
      char l2[300];
      snprintf(l2, sizeof l2, "%s row_sparse", label);
      int64_t *didx = NULL;
      void *dv = NULL;
      dense_to_rsp_dev(l2, dt, R, N, dout, g_rsp, &didx, &dv);
      dev_free(didx);
      dev_free(dv);
      dcsr_free(d);
      dev_free(dG);
      dev_free(dout);
    }
  }
  kl_tensor_release(w);
  kl_tensor_release(gout);
  kl_tensor_release(out);
  kl_tensor_release(g_rsp);
  kl_tensor_release(g_dense);
}

/* --------------------------------------------------------------- conversions */

static void case_convert(kl_tensor *a) {
  const kl_dtype dt = a->dtype;
  const size_t es = kl_dtype_size(dt);
  const int64_t R = a->shape[0], C = a->shape[1];
  kl_tensor *ref = NULL, *rsp = NULL, *back = NULL;
  CHECK_OK(kl_tensor_tostype(a, KL_STYPE_DEFAULT, &ref));
  dcsr d = csr_to_dev(a);
  void *dd = dev_alloc((size_t)(R * C) * es);
  CHECK_OK(kl_cuda_dot_csr_to_dense(dt, R, C, d.ip, d.ix, d.v, a->nnz, dd, NULL));
  dev_sync();
  CHECK(gpu_same_on_dev("csr to dense", dt, dd, ref->data, R * C));
  /* dense -> row_sparse (the rows of a with an entry that is not +-0) and back */
  CHECK_OK(kl_tensor_tostype(ref, KL_STYPE_ROW_SPARSE, &rsp));
  int64_t *didx = NULL;
  void *dv = NULL;
  dense_to_rsp_dev("dense to row_sparse", dt, R, C, dd, rsp, &didx, &dv);
  if (didx) {
    void *dd2 = dev_alloc((size_t)(R * C) * es);
    CHECK_OK(kl_tensor_tostype(rsp, KL_STYPE_DEFAULT, &back));
    CHECK_OK(kl_cuda_dot_rsp_to_dense(dt, R, C, didx, rsp->nnz, dv, dd2, NULL));
    dev_sync();
    CHECK(gpu_same_on_dev("row_sparse to dense", dt, dd2, back->data, R * C));
    dev_free(dd2);
  }
  dev_free(didx);
  dev_free(dv);
  dcsr_free(d);
  dev_free(dd);
  kl_tensor_release(ref);
  kl_tensor_release(rsp);
  kl_tensor_release(back);
}

/* --------------------------------------------------------------- the cases */

typedef struct shape_case {
  int64_t R, C;
  double density, empty_p;
  int col_all;
} shape_case;

static void run_dtype(kl_dtype dt) {
  static const shape_case cs[] = {
      {0, 5, 0.5, 0.0, 0},       /* an empty batch */
      {1, 1, 1.0, 0.0, 0},       /* one row of one */
      {1, 9, 0.5, 0.0, 0},       /* one row */
      {7, 5, 1.0, 0.0, 0},       /* every entry */
      {6, 4, 0.0, 0.0, 0},       /* no entries */
      {12, 30, 0.2, 0.3, 1},     /* empty rows, a column in every row */
      {64, 300, 0.05, 0.1, 1},
      {40, 1000, 0.01, 0.5, 0},  /* very sparse, many empty rows */
      {300, 20, 0.5, 0.05, 1},   /* long columns */
      {50, 70000, 0.0005, 0.0, 1}, /* wide: three radix passes */
  };
  static const int64_t Ns[] = {1, 3, 8, 33, 0};
  for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
    const shape_case *k = &cs[c];
    kl_tensor *a = make_csr(dt, k->R, k->C, k->density, k->col_all ? k->C / 2 : -1, k->empty_p,
                            0.02);
    for (size_t q = 0; q < sizeof Ns / sizeof Ns[0]; q++) {
      const int64_t N = Ns[q];
      /* csr . dense (2-d) and . vector */
      int64_t bs[2] = {k->C, N}, cs2[2] = {k->R, N};
      kl_tensor *b = make_dense(dt, 2, bs, 0.01);
      case_csr_x("dense", a, b);
      kl_tensor_release(b);
      if (N == 1) {
        kl_tensor *v = make_dense(dt, 1, bs, 0.01);
        case_csr_x("vector", a, v);
        kl_tensor_release(v);
        kl_tensor *rv = make_rsp(dt, k->C, -1, 0.5, 0.0);
        case_csr_x("row_sparse vector", a, rv);
        kl_tensor_release(rv);
      }
      /* csr . row_sparse storing some, all, no rows */
      for (int kp = 0; kp < 3; kp++) {
        kl_tensor *r = make_rsp(dt, k->C, N, kp == 0 ? 0.4 : kp == 1 ? 1.0 : 0.0, 0.01);
        case_csr_x("row_sparse", a, r);
        kl_tensor_release(r);
      }
      /* csr^T . dense / row_sparse: rows of b are a's rows */
      kl_tensor *g = make_dense(dt, 2, cs2, 0.01);
      case_csrT("dense", a, g);
      kl_tensor_release(g);
      for (int kp = 0; kp < 3; kp++) {
        kl_tensor *r = make_rsp(dt, k->R, N, kp == 0 ? 0.4 : kp == 1 ? 1.0 : 0.0, 0.01);
        case_csrT("row_sparse", a, r);
        kl_tensor_release(r);
      }
      /* dense (M x R, or R x M transposed, or an R vector) . csr */
      int64_t as[2] = {5, k->R}, ats[2] = {k->R, 4};
      kl_tensor *A = make_dense(dt, 2, as, 0.01), *At = make_dense(dt, 2, ats, 0.01);
      case_dense_csr(A, a, 0);
      case_dense_csr(At, a, 1);
      kl_tensor_release(A);
      kl_tensor_release(At);
      if (q == 0) {
        kl_tensor *av = make_dense(dt, 1, &k->R, 0.01);
        case_dense_csr(av, a, 0);
        case_dense_csr(av, a, 1); /* transpose of a 1-d operand: a no-op */
        kl_tensor_release(av);
      }
      case_backward(a, N, 0);
      case_backward(a, N, 1);
    }
    case_convert(a);
    kl_tensor_release(a);
  }
  /* a csr with no special values and a dense column of ones: sums checked exactly too */
  kl_tensor *a = make_csr(dt, 500, 40, 0.3, 7, 0.0, 0.0);
  int64_t bs[2] = {40, 64}, gs[2] = {500, 64};
  kl_tensor *b = make_dense(dt, 2, bs, 0.0), *g = make_dense(dt, 2, gs, 0.0);
  case_csr_x("dense", a, b);
  case_csrT("dense", a, g);
  case_backward(a, 64, 0);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(g);
}

static void test_errors(void) {
  CHECK_ERR(kl_cuda_dot_csr_gather(KL_INT64, 1, 1, NULL, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL,
                                   NULL),
            KL_EDTYPE, "cuda dot csr.x: dtype int64, expected float32 or float64");
  CHECK_ERR(kl_cuda_dot_csr_gather(KL_FLOAT32, -1, 1, NULL, NULL, NULL, 0, NULL, 0, NULL, NULL,
                                   NULL, NULL),
            KL_ESHAPE, "cuda dot csr.x: bad sizes M=-1");
  CHECK_ERR(kl_cuda_dot_csrT_plan(2, -3, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL), KL_ESHAPE,
            "cuda dot csrT: bad sizes R=2 C=-3");
  CHECK_ERR(kl_cuda_dot_csrT_sum(KL_FLOAT64, 3, 2, NULL, NULL, NULL, 4, NULL, NULL, NULL),
            KL_ESHAPE, "cuda dot csrT: bad sizes nu=4 nnz=3");
  CHECK_ERR(kl_cuda_dot_dense_csr(KL_INT64, 1, 1, 0, NULL, 1, NULL, NULL, NULL, 0, NULL, NULL,
                                  NULL),
            KL_EDTYPE, "cuda dot dense.csr: dtype int64");
  CHECK_ERR(kl_cuda_dot_rsp_to_dense(KL_FLOAT32, 2, 3, NULL, 5, NULL, NULL, NULL), KL_ESHAPE,
            "cuda row_sparse to dense: bad sizes rows=2 w=3 nnz=5");
  /* nothing to do: no launch, no pointer read */
  CHECK_OK(kl_cuda_dot_csr_gather(KL_FLOAT32, 0, 4, NULL, NULL, NULL, 0, NULL, 0, NULL, NULL,
                                  NULL, NULL));
  CHECK_OK(kl_cuda_dot_dense_csr(KL_FLOAT64, 3, 2, 0, NULL, 0, NULL, NULL, NULL, 0, NULL, NULL,
                                 NULL));
  CHECK(kl_cuda_dot_csrT_scratch(0) == 0 && kl_cuda_dot_dense_csr_scratch(0, 5) == 0);
}

int main(void) {
  int rc = gpu_test_start("test_gpu_dot");
  if (rc) return rc;
  run_dtype(KL_FLOAT32);
  run_dtype(KL_FLOAT64);
  test_errors();
  KLTEST_DONE();
}
