/* test_gpu_math_ew.c: the elementwise kernels of gpu/k_math.cu against the CPU ops
 * (kl_op_run / kl_op_backward): binary ops with numpy broadcasting, the implicit-zero and
 * sparse-with-dense kernels, csr op csr and rsp op rsp merges (structure and values), the
 * unary and scalar maps (exp, log, sigmoid, tanh, pow included), their gradients, the
 * gradient's reduction over broadcast axes and minimum / maximum's selection, and the
 * storage conversions; float32 / float64 / int64 where the op allows it, with NaN, +-inf,
 * -0, denormals, empty and one-row shapes. Exact bits (NaN matching NaN), except the
 * transcendental results on a GPU (gpu_math_testutil.h). */
#include "gpu_math_testutil.h"

static const kl_dtype dts[] = {KL_FLOAT32, KL_FLOAT64, KL_INT64};

/* ------------------------------------------------------------------ binary, broadcasting */

typedef struct bshape {
  int na;
  int64_t a[4];
  int nb;
  int64_t b[4];
} bshape;

static const bshape bshapes[] = {{1, {300}, 1, {300}},
                                 {1, {300}, 1, {1}},
                                 {1, {1}, 1, {300}},
                                 {0, {0}, 2, {3, 4}},
                                 {2, {3, 4}, 1, {4}},
                                 {2, {3, 1}, 2, {1, 4}},
                                 {3, {2, 3, 4}, 2, {3, 1}},
                                 {2, {1, 5}, 2, {5, 1}},
                                 {3, {2, 1, 3}, 3, {2, 4, 1}},
                                 {2, {0, 3}, 1, {3}},
                                 {2, {4, 0}, 2, {1, 0}},
                                 {2, {1, 7}, 2, {1, 7}},
                                 {4, {2, 3, 1, 2}, 3, {1, 4, 2}}};

static void test_binary(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_ADD, KL_OP_SUB,     KL_OP_MUL,
                              KL_OP_DIV, KL_OP_MINIMUM, KL_OP_MAXIMUM};
  for (size_t o = 0; o < 6; o++) {
    if (dt == KL_INT64 && ops[o] == KL_OP_DIV) continue;
    for (size_t k = 0; k < sizeof bshapes / sizeof bshapes[0]; k++) {
      const bshape *s = &bshapes[k];
      kl_tensor *a = mt_dense(dt, s->na, s->a, 1, 0), *b = mt_dense(dt, s->nb, s->b, 1, 0);
      kl_tensor *in[2] = {a, b}, *out = NULL;
      CHECK_OK(kl_op_run(ops[o], in, 2, NULL, &out));
      void *da = mt_dev_vals(a), *db = mt_dev_vals(b);
      void *dout = dev_alloc((size_t)kl_tensor_numel(out) * kl_dtype_size(dt));
      CHECK_OK(kl_cuda_math_binary(ops[o], dt, da, a->ndim, a->shape, db, b->ndim, b->shape, dout,
                                   NULL));
      char l[160], s1[40], s2[40];
      snprintf(l, sizeof l, "%s %s %s %s", kl_op_name(ops[o]), kl_dtype_name(dt),
               mt_shape(s->na, s->a, s1, sizeof s1), mt_shape(s->nb, s->b, s2, sizeof s2));
      CHECK(mt_check(l, dt, dout, out->data, kl_tensor_numel(out), 0));
      dev_free(da);
      dev_free(db);
      dev_free(dout);
      kl_tensor_release(a);
      kl_tensor_release(b);
      kl_tensor_release(out);
    }
  }
}

static void test_binary_errors(void) {
  int64_t s3[1] = {3}, s4[1] = {4};
  CHECK_ERR(kl_cuda_math_binary(KL_OP_ADD, KL_FLOAT32, NULL, 1, s3, NULL, 1, s4, NULL, NULL),
            KL_ESHAPE, "cuda math_binary: shapes do not broadcast (axis 0: 3 vs 4)");
  CHECK_ERR(kl_cuda_math_binary(KL_OP_DIV, KL_INT64, NULL, 1, s3, NULL, 1, s3, NULL, NULL),
            KL_EDTYPE, "cuda math_binary: dtype int64 not supported");
  CHECK_ERR(kl_cuda_math_binary(KL_OP_EXP, KL_FLOAT32, NULL, 1, s3, NULL, 1, s3, NULL, NULL),
            KL_EUNSUPPORTED, "cuda math_binary: no CUDA kernel for op");
  CHECK_ERR(kl_cuda_math_unary(KL_OP_EXP, KL_INT64, NULL, NULL, 1, NULL), KL_EDTYPE,
            "cuda math_unary: dtype int64 not supported");
  CHECK_ERR(kl_cuda_math_scalar(KL_OP_POW_SCALAR, KL_INT64, NULL, 2, NULL, 1, NULL), KL_EDTYPE,
            "cuda math_scalar: dtype int64 not supported");
  CHECK_ERR(kl_cuda_math_scalar(KL_OP_ADD, KL_FLOAT32, NULL, 2, NULL, 1, NULL), KL_EUNSUPPORTED,
            "cuda math_scalar: no CUDA kernel for op");
  CHECK_ERR(kl_cuda_math_unary(KL_OP_NEG, KL_FLOAT32, NULL, NULL, -1, NULL), KL_ESHAPE,
            "cuda math_unary: n = -1");
  CHECK_ERR(kl_cuda_math_csr_merge_count(KL_OP_DIV, 1, NULL, NULL, NULL, NULL, NULL, NULL),
            KL_EUNSUPPORTED, "cuda csr_merge: no merge kernel");
  /* empty: nothing launched (a launch of an empty grid would fail), success */
  int64_t z[1] = {0};
  CHECK_OK(kl_cuda_math_binary(KL_OP_ADD, KL_FLOAT64, NULL, 1, z, NULL, 1, z, NULL, NULL));
  CHECK_OK(kl_cuda_math_unary(KL_OP_TANH, KL_FLOAT64, NULL, NULL, 0, NULL));
  CHECK_OK(kl_cuda_math_scalar(KL_OP_POW_SCALAR, KL_FLOAT32, NULL, 2, NULL, 0, NULL));
  CHECK_OK(kl_cuda_math_sum_to_shape(KL_FLOAT32, NULL, 1, z, NULL, 1, z, NULL));
}

/* ------------------------------------------------------------------ sparse op dense */

static void test_sparse_dense(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_ADD, KL_OP_SUB,     KL_OP_MUL,
                              KL_OP_DIV, KL_OP_MINIMUM, KL_OP_MAXIMUM};
  static const int64_t rc[][2] = {{40, 30}, {1, 7}, {0, 5}, {6, 0}};
  for (size_t o = 0; o < 6; o++) {
    if (dt == KL_INT64 && ops[o] == KL_OP_DIV) continue;
    for (int k = 0; k < 4; k++)
      for (int csr = 0; csr <= 1; csr++)
        for (int sp = 0; sp <= 1; sp++) {
          int64_t shape[2] = {rc[k][0], rc[k][1]};
          kl_tensor *S =
              csr ? mt_csr(dt, shape[0], shape[1], 0.7, 1, 1) : mt_rsp(dt, 2, shape, 0.5, 1, 1);
          kl_tensor *D = mt_dense(dt, 2, shape, 1, 0.2), *out = NULL;
          kl_tensor *in[2] = {sp == 0 ? S : D, sp == 0 ? D : S};
          CHECK_OK(kl_op_run(ops[o], in, 2, NULL, &out));
          CHECK(out->stype == KL_STYPE_DEFAULT);
          const int64_t n = kl_tensor_numel(D), w = csr ? shape[1] : kl_row_width(S);
          void *dd = mt_dev_vals(D), *ds = mt_dev_vals(S), *dout = dev_alloc((size_t)n * 8);
          int64_t *dptr = csr ? mt_dev_i64(S->indptr, shape[0] + 1) : NULL;
          int64_t *didx = mt_dev_i64(S->indices, S->nnz);
          CHECK_OK(kl_cuda_math_binary_zero(ops[o], dt, sp, dd, dout, n, NULL));
          CHECK_OK(kl_cuda_math_sparse_dense_apply(ops[o], dt, sp, csr, csr ? shape[0] : S->nnz, w,
                                                   dptr, didx, S->nnz, ds, dd, dout, NULL));
          char l[120];
          snprintf(l, sizeof l, "%s %s %s side %d %lldx%lld", kl_op_name(ops[o]), kl_dtype_name(dt),
                   csr ? "csr" : "rsp", sp, (long long)shape[0], (long long)shape[1]);
          CHECK(mt_check(l, dt, dout, out->data, n, 0));
          dev_free(dd);
          dev_free(ds);
          dev_free(dout);
          if (dptr) dev_free(dptr);
          dev_free(didx);
          kl_tensor_release(S);
          kl_tensor_release(D);
          kl_tensor_release(out);
        }
  }
}

/* ------------------------------------------------------------------ merges */

static void test_csr_merge(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_ADD, KL_OP_SUB, KL_OP_MUL, KL_OP_MINIMUM, KL_OP_MAXIMUM};
  static const int64_t rc[][2] = {{50, 40}, {1, 9}, {0, 4}, {5, 0}, {3, 1}};
  static const double dens[][2] = {{0.8, 0.6}, {1.0, 0.5}, {0.5, 1.0}, {0.0, 0.0}};
  for (size_t o = 0; o < 5; o++)
    for (int k = 0; k < 5; k++)
      for (int z = 0; z < 4; z++) {
        const int64_t rows = rc[k][0], cols = rc[k][1];
        kl_tensor *A = mt_csr(dt, rows, cols, dens[z][0], 1, 1);
        kl_tensor *B = mt_csr(dt, rows, cols, dens[z][1], 1, 1);
        kl_tensor *in[2] = {A, B}, *out = NULL;
        CHECK_OK(kl_op_run(ops[o], in, 2, NULL, &out));
        CHECK(out->stype == KL_STYPE_CSR);
        int64_t *ap = mt_dev_i64(A->indptr, rows + 1), *ai = mt_dev_i64(A->indices, A->nnz);
        int64_t *bp = mt_dev_i64(B->indptr, rows + 1), *bi = mt_dev_i64(B->indices, B->nnz);
        void *av = mt_dev_vals(A), *bv = mt_dev_vals(B);
        int64_t *cnt = (int64_t *)dev_alloc((size_t)(rows + 1) * 8);
        int64_t *rp = (int64_t *)dev_alloc((size_t)(rows + 1) * 8);
        void *sc = dev_alloc(kl_cuda_scan_scratch(rows));
        CHECK_OK(kl_cuda_math_csr_merge_count(ops[o], rows, ap, ai, bp, bi, cnt, NULL));
        CHECK_OK(kl_cuda_scan_i64(cnt, rp, rows, sc, NULL));
        const int64_t nnz = mt_read_i64(rp + rows);
        CHECK(nnz == out->nnz);
        int64_t *ri = (int64_t *)dev_alloc((size_t)nnz * 8);
        void *rv = dev_alloc((size_t)nnz * 8);
        CHECK_OK(kl_cuda_math_csr_merge_fill(ops[o], dt, rows, ap, ai, av, bp, bi, bv, rp, ri, rv,
                                             NULL));
        char l[120];
        snprintf(l, sizeof l, "csr %s %s %lldx%lld dens %g/%g", kl_op_name(ops[o]),
                 kl_dtype_name(dt), (long long)rows, (long long)cols, dens[z][0], dens[z][1]);
        if (nnz == out->nnz) {
          CHECK(mt_check_i64(l, rp, out->indptr, rows + 1));
          CHECK(mt_check_i64(l, ri, out->indices, nnz));
          CHECK(mt_check(l, dt, rv, out->data, nnz, 0));
        }
        dev_free(ap), dev_free(ai), dev_free(bp), dev_free(bi), dev_free(av), dev_free(bv);
        dev_free(cnt), dev_free(rp), dev_free(sc), dev_free(ri), dev_free(rv);
        kl_tensor_release(A);
        kl_tensor_release(B);
        kl_tensor_release(out);
      }
}

static void test_rsp_merge(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_ADD, KL_OP_SUB, KL_OP_MUL, KL_OP_MINIMUM, KL_OP_MAXIMUM};
  static const int64_t shapes[][3] = {{60, 5, 2}, {1, 3, 1}, {0, 4, 1}, {7, 0, 1}, {9, 1, 1}};
  static const double zr[][2] = {{0.5, 0.7}, {0.0, 0.5}, {0.9, 0.0}, {1.0, 1.0}, {0.0, 0.0}};
  for (size_t o = 0; o < 5; o++)
    for (int k = 0; k < 5; k++)
      for (int z = 0; z < 5; z++) {
        const int nd = 3;
        kl_tensor *A = mt_rsp(dt, nd, shapes[k], zr[z][0], 1, 1);
        kl_tensor *B = mt_rsp(dt, nd, shapes[k], zr[z][1], 1, 1);
        kl_tensor *in[2] = {A, B}, *out = NULL;
        CHECK_OK(kl_op_run(ops[o], in, 2, NULL, &out));
        CHECK(out->stype == KL_STYPE_ROW_SPARSE);
        const int64_t na = A->nnz, nb = B->nnz, w = kl_row_width(A);
        int64_t *ai = mt_dev_i64(A->indices, na), *bi = mt_dev_i64(B->indices, nb);
        void *av = mt_dev_vals(A), *bv = mt_dev_vals(B);
        int64_t *f = (int64_t *)dev_alloc((size_t)(nb + 1) * 8);
        int64_t *cb = (int64_t *)dev_alloc((size_t)(nb + 1) * 8);
        void *sc = dev_alloc(kl_cuda_scan_scratch(nb));
        CHECK_OK(kl_cuda_math_rsp_merge_flags(na, ai, nb, bi, f, NULL));
        CHECK_OK(kl_cuda_scan_i64(f, cb, nb, sc, NULL));
        const int64_t common = mt_read_i64(cb + nb);
        const int64_t n = ops[o] == KL_OP_MUL ? common : na + nb - common;
        CHECK(n == out->nnz);
        int64_t *src = (int64_t *)dev_alloc((size_t)(2 * n + 2) * 8);
        int64_t *ri = (int64_t *)dev_alloc((size_t)n * 8);
        void *rv = dev_alloc((size_t)(n * w) * 8);
        CHECK_OK(kl_cuda_math_rsp_merge_src(ops[o], na, ai, nb, bi, cb, src, NULL));
        CHECK_OK(kl_cuda_math_rsp_merge_fill(ops[o], dt, n, w, src, ai, av, bi, bv, ri, rv, NULL));
        char l[120], s1[40];
        snprintf(l, sizeof l, "rsp %s %s %s zero rows %g/%g", kl_op_name(ops[o]), kl_dtype_name(dt),
                 mt_shape(nd, shapes[k], s1, sizeof s1), zr[z][0], zr[z][1]);
        if (n == out->nnz) {
          CHECK(mt_check_i64(l, ri, out->indices, n));
          CHECK(mt_check(l, dt, rv, out->data, n * w, 0));
        }
        dev_free(ai), dev_free(bi), dev_free(av), dev_free(bv), dev_free(f), dev_free(cb);
        dev_free(sc), dev_free(src), dev_free(ri), dev_free(rv);
        kl_tensor_release(A);
        kl_tensor_release(B);
        kl_tensor_release(out);
      }
}

/* ------------------------------------------------------------------ unary, scalar */

static int is_trans(kl_op op) {
  return op == KL_OP_EXP || op == KL_OP_LOG || op == KL_OP_SIGMOID || op == KL_OP_TANH ||
         op == KL_OP_POW_SCALAR;
}

static const kl_op unary_ops[] = {KL_OP_NEG, KL_OP_SQUARE, KL_OP_ABS,     KL_OP_RELU, KL_OP_SQRT,
                                  KL_OP_EXP, KL_OP_LOG,    KL_OP_SIGMOID, KL_OP_TANH};

static void test_unary(kl_dtype dt) {
  static const int64_t sizes[] = {1000, 1, 0};
  for (size_t o = 0; o < 9; o++) {
    if (dt == KL_INT64 && o >= 4) continue;
    for (int k = 0; k < 3; k++) {
      int64_t n = sizes[k];
      kl_tensor *x = mt_dense(dt, 1, &n, 1, 0), *out = NULL;
      if (dt != KL_INT64 && n >= 20) { /* the ranges where exp / sigmoid / tanh saturate */
        kl_tensor_data_set(x, 10, 710.0);
        kl_tensor_data_set(x, 11, -746.0);
        kl_tensor_data_set(x, 12, 89.0);
        kl_tensor_data_set(x, 13, -104.0);
        kl_tensor_data_set(x, 14, 20.0);
        kl_tensor_data_set(x, 15, -20.0);
        kl_tensor_data_set(x, 16, 1e-300);
      }
      CHECK_OK(kl_op_run(unary_ops[o], &x, 1, NULL, &out));
      void *dx = mt_dev_vals(x), *dout = dev_alloc((size_t)n * 8);
      CHECK_OK(kl_cuda_math_unary(unary_ops[o], dt, dx, dout, n, NULL));
      char l[80];
      snprintf(l, sizeof l, "%s %s n=%lld", kl_op_name(unary_ops[o]), kl_dtype_name(dt),
               (long long)n);
      CHECK(mt_check(l, dt, dout, out->data, n, is_trans(unary_ops[o])));
      /* in place (the device op maps a densified copy in place) */
      CHECK_OK(kl_cuda_math_unary(unary_ops[o], dt, dx, dx, n, NULL));
      CHECK(mt_check(l, dt, dx, out->data, n, is_trans(unary_ops[o])));
      dev_free(dx);
      dev_free(dout);
      kl_tensor_release(x);
      kl_tensor_release(out);
    }
  }
}

static const kl_op scalar_ops[] = {KL_OP_ADD_SCALAR,     KL_OP_MUL_SCALAR,  KL_OP_DIV_SCALAR,
                                   KL_OP_RSUB_SCALAR,    KL_OP_RDIV_SCALAR, KL_OP_MINIMUM_SCALAR,
                                   KL_OP_MAXIMUM_SCALAR, KL_OP_POW_SCALAR};

static int scalar_int_ok(kl_op op) {
  return op != KL_OP_DIV_SCALAR && op != KL_OP_RDIV_SCALAR && op != KL_OP_POW_SCALAR;
}

static void test_scalar(kl_dtype dt) {
  static const double fs[] = {0.1, -3, 0.0, -0.0, 1e30, 2.0, 0.5, -1.5, INFINITY, NAN};
  static const double is[] = {3, -7, 0, 1e15};
  const int ns = dt == KL_INT64 ? 4 : 10;
  for (size_t o = 0; o < 8; o++) {
    if (dt == KL_INT64 && !scalar_int_ok(scalar_ops[o])) continue;
    for (int k = 0; k < ns; k++) {
      const double sc = dt == KL_INT64 ? is[k] : fs[k];
      if (sc != sc &&
          (scalar_ops[o] == KL_OP_MINIMUM_SCALAR || scalar_ops[o] == KL_OP_MAXIMUM_SCALAR))
        continue; /* refused by inference */
      int64_t n = 500;
      kl_tensor *x = mt_dense(dt, 1, &n, 1, 0), *out = NULL;
      kl_attrs at;
      memset(&at, 0, sizeof at);
      at.scalar = sc;
      CHECK_OK(kl_op_run(scalar_ops[o], &x, 1, &at, &out));
      void *dx = mt_dev_vals(x), *dout = dev_alloc((size_t)n * 8);
      CHECK_OK(kl_cuda_math_scalar(scalar_ops[o], dt, dx, sc, dout, n, NULL));
      char l[80];
      snprintf(l, sizeof l, "%s %s %g", kl_op_name(scalar_ops[o]), kl_dtype_name(dt), sc);
      CHECK(mt_check(l, dt, dout, out->data, n, is_trans(scalar_ops[o])));
      dev_free(dx);
      dev_free(dout);
      kl_tensor_release(x);
      kl_tensor_release(out);
    }
  }
}

/* ------------------------------------------------------------------ gradients */

static void test_unary_grad(kl_dtype dt) {
  int64_t n = 400;
  for (size_t o = 0; o < 10; o++) {
    const kl_op op = o < 9 ? unary_ops[o] : KL_OP_SOFTMAX;
    int64_t shape[2] = {20, 20};
    kl_tensor *x = mt_dense(dt, 2, shape, 1, 0), *g = mt_dense(dt, 2, shape, 1, 0);
    kl_tensor *out = NULL, *gin = NULL, *gin2 = NULL;
    CHECK_OK(kl_op_run(op, &x, 1, NULL, &out));
    CHECK_OK(kl_op_backward(op, &x, 1, NULL, out, g, 0, KL_STYPE_DEFAULT, &gin));
    /* the backward without the output recomputes it */
    CHECK_OK(kl_op_backward(op, &x, 1, NULL, NULL, g, 0, KL_STYPE_DEFAULT, &gin2));
    void *dx = mt_dev_vals(x), *dg = mt_dev_vals(g), *dout = mt_dev_vals(out);
    void *dr = dev_alloc((size_t)n * 8);
    if (op == KL_OP_SOFTMAX)
      CHECK_OK(kl_cuda_math_softmax_grad(dt, dout, dg, 20, 20, dr, NULL));
    else
      CHECK_OK(kl_cuda_math_unary_grad(op, dt, dx, dout, dg, dr, n, NULL));
    char l[80];
    snprintf(l, sizeof l, "%s backward %s", kl_op_name(op), kl_dtype_name(dt));
    /* given the CPU's forward output, the gradient is IEEE arithmetic: exact */
    CHECK(mt_check(l, dt, dr, gin->data, n, 0));
    CHECK(gpu_same(l, dt, gin->data, gin2->data, n));
    dev_free(dx), dev_free(dg), dev_free(dout), dev_free(dr);
    kl_tensor_release(x);
    kl_tensor_release(g);
    kl_tensor_release(out);
    kl_tensor_release(gin);
    kl_tensor_release(gin2);
  }
}

static void test_scalar_grad(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_MINIMUM_SCALAR, KL_OP_MAXIMUM_SCALAR, KL_OP_POW_SCALAR,
                              KL_OP_RDIV_SCALAR};
  static const double fs[] = {0.5, -2, 0.0, 3.0, 1.0};
  int64_t n = 300;
  for (int o = 0; o < 4; o++)
    for (int k = 0; k < 5; k++) {
      kl_tensor *x = mt_dense(dt, 1, &n, 1, 0), *g = mt_dense(dt, 1, &n, 1, 0);
      kl_tensor *out = NULL, *gin = NULL;
      kl_attrs at;
      memset(&at, 0, sizeof at);
      at.scalar = fs[k];
      CHECK_OK(kl_op_run(ops[o], &x, 1, &at, &out));
      CHECK_OK(kl_op_backward(ops[o], &x, 1, &at, out, g, 0, KL_STYPE_DEFAULT, &gin));
      void *dx = mt_dev_vals(x), *dg = mt_dev_vals(g), *dr = dev_alloc((size_t)n * 8);
      CHECK_OK(kl_cuda_math_scalar_grad(ops[o], dt, dx, dg, fs[k], dr, n, NULL));
      char l[80];
      snprintf(l, sizeof l, "%s backward %s %g", kl_op_name(ops[o]), kl_dtype_name(dt), fs[k]);
      CHECK(mt_check(l, dt, dr, gin->data, n, ops[o] == KL_OP_POW_SCALAR));
      dev_free(dx), dev_free(dg), dev_free(dr);
      kl_tensor_release(x);
      kl_tensor_release(g);
      kl_tensor_release(out);
      kl_tensor_release(gin);
    }
}

/* The device op's binary backward (gpu/dev_ops_math.c's bin_backward) composed from the
 * kernels, against kl_op_backward, for each input of broadcast shapes. */
static void test_binary_grad(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_ADD, KL_OP_SUB,     KL_OP_MUL,
                              KL_OP_DIV, KL_OP_MINIMUM, KL_OP_MAXIMUM};
  for (size_t o = 0; o < 6; o++)
    for (size_t k = 0; k < sizeof bshapes / sizeof bshapes[0]; k++)
      for (int i = 0; i <= 1; i++) {
        const bshape *s = &bshapes[k];
        kl_tensor *a = mt_dense(dt, s->na, s->a, 1, 0), *b = mt_dense(dt, s->nb, s->b, 1, 0);
        if (ops[o] == KL_OP_MINIMUM || ops[o] == KL_OP_MAXIMUM) { /* ties */
          int64_t m =
              kl_tensor_numel(a) < kl_tensor_numel(b) ? kl_tensor_numel(a) : kl_tensor_numel(b);
          for (int64_t j = 0; j < m; j += 3) kl_tensor_data_set(a, j, kl_tensor_data_at(b, j));
        }
        kl_tensor *in[2] = {a, b}, *out = NULL, *gin = NULL;
        CHECK_OK(kl_op_run(ops[o], in, 2, NULL, &out));
        kl_tensor *g = mt_dense(dt, out->ndim, out->shape, 1, 0);
        CHECK_OK(kl_op_backward(ops[o], in, 2, NULL, out, g, i, KL_STYPE_DEFAULT, &gin));
        const int64_t n = kl_tensor_numel(out);
        void *da = mt_dev_vals(a), *db = mt_dev_vals(b), *dg = mt_dev_vals(g);
        void *full = dev_alloc((size_t)n * 8), *t1 = dev_alloc((size_t)n * 8);
        void *t2 = dev_alloc((size_t)n * 8), *dr = dev_alloc((size_t)kl_tensor_numel(gin) * 8);
        const kl_op op = ops[o];
        if (op == KL_OP_MINIMUM || op == KL_OP_MAXIMUM) {
          CHECK_OK(kl_cuda_math_binary(KL_OP_SUB, dt, da, a->ndim, a->shape, db, b->ndim, b->shape,
                                       full, NULL));
          CHECK_OK(kl_cuda_math_minmax_select(op, dt, i, full, dg, full, n, NULL));
        } else if (op == KL_OP_ADD || (op == KL_OP_SUB && i == 0)) {
          CHECK_OK(kl_cuda_math_copy_block(kl_dtype_size(dt), dg, 0, 0, full, 0, 0, 1, n, NULL));
        } else if (op == KL_OP_SUB) {
          CHECK_OK(kl_cuda_math_unary(KL_OP_NEG, dt, dg, full, n, NULL));
        } else if (op == KL_OP_MUL) {
          const kl_tensor *oth = i == 0 ? b : a;
          CHECK_OK(kl_cuda_math_binary(KL_OP_MUL, dt, dg, g->ndim, g->shape, i == 0 ? db : da,
                                       oth->ndim, oth->shape, full, NULL));
        } else if (i == 0) {
          CHECK_OK(kl_cuda_math_binary(KL_OP_DIV, dt, dg, g->ndim, g->shape, db, b->ndim, b->shape,
                                       full, NULL));
        } else {
          CHECK_OK(kl_cuda_math_binary(KL_OP_DIV, dt, da, a->ndim, a->shape, db, b->ndim, b->shape,
                                       t1, NULL));
          CHECK_OK(kl_cuda_math_binary(KL_OP_DIV, dt, t1, out->ndim, out->shape, db, b->ndim,
                                       b->shape, t2, NULL));
          CHECK_OK(kl_cuda_math_binary(KL_OP_MUL, dt, dg, g->ndim, g->shape, t2, out->ndim,
                                       out->shape, full, NULL));
          CHECK_OK(kl_cuda_math_unary(KL_OP_NEG, dt, full, full, n, NULL));
        }
        CHECK_OK(kl_cuda_math_sum_to_shape(dt, full, out->ndim, out->shape, dr, in[i]->ndim,
                                           in[i]->shape, NULL));
        char l[160], s1[40], s2[40];
        snprintf(l, sizeof l, "%s backward %d %s %s %s", kl_op_name(op), i, kl_dtype_name(dt),
                 mt_shape(s->na, s->a, s1, sizeof s1), mt_shape(s->nb, s->b, s2, sizeof s2));
        CHECK(mt_check(l, dt, dr, gin->data, kl_tensor_numel(gin), 0));
        dev_free(da), dev_free(db), dev_free(dg), dev_free(full), dev_free(t1), dev_free(t2);
        dev_free(dr);
        kl_tensor_release(a);
        kl_tensor_release(b);
        kl_tensor_release(g);
        kl_tensor_release(out);
        kl_tensor_release(gin);
      }
}

/* ------------------------------------------------------------------ conversions */

static void test_conversions(kl_dtype dt) {
  static const int64_t rc[][2] = {{30, 20}, {1, 5}, {0, 3}, {4, 0}, {6, 1}};
  for (int k = 0; k < 5; k++) {
    int64_t shape[2] = {rc[k][0], rc[k][1]};
    const int64_t n = shape[0] * shape[1];
    char l[80];
    /* csr / rsp -> dense (scatter into zeros) */
    for (int csr = 0; csr <= 1; csr++) {
      kl_tensor *S =
          csr ? mt_csr(dt, shape[0], shape[1], 0.6, 1, 1) : mt_rsp(dt, 2, shape, 0.5, 1, 1);
      kl_tensor *D = NULL;
      CHECK_OK(kl_tensor_tostype(S, KL_STYPE_DEFAULT, &D));
      void *dv = mt_dev_vals(S), *dout = dev_alloc((size_t)n * 8);
      int64_t *di = mt_dev_i64(S->indices, S->nnz),
              *dp = csr ? mt_dev_i64(S->indptr, shape[0] + 1) : NULL;
      void *zeros = calloc((size_t)(n ? n : 1), 8);
      to_dev(dout, zeros, (size_t)n * 8);
      free(zeros);
      if (csr)
        CHECK_OK(kl_cuda_math_csr_scatter(dt, shape[0], shape[1], dp, di, dv, dout, NULL));
      else
        CHECK_OK(kl_cuda_math_rsp_scatter(dt, S->nnz, kl_row_width(S), di, dv, dout, NULL));
      snprintf(l, sizeof l, "%s -> dense %s %lldx%lld", csr ? "csr" : "rsp", kl_dtype_name(dt),
               (long long)shape[0], (long long)shape[1]);
      CHECK(mt_check(l, dt, dout, D->data, n, 0));
      dev_free(dv), dev_free(dout), dev_free(di);
      if (dp) dev_free(dp);
      kl_tensor_release(S);
      kl_tensor_release(D);
    }
    /* dense -> csr / rsp: count, scan, fill */
    for (int rsp = 0; rsp <= 1; rsp++) {
      kl_tensor *D = mt_dense(dt, 2, shape, 1, 0.6), *S = NULL;
      if (n > 0 && dt != KL_INT64) kl_tensor_data_set(D, 0, -0.0); /* not stored */
      CHECK_OK(kl_tensor_tostype(D, rsp ? KL_STYPE_ROW_SPARSE : KL_STYPE_CSR, &S));
      const int64_t rows = shape[0], w = shape[1];
      void *dd = mt_dev_vals(D), *sc = dev_alloc(kl_cuda_scan_scratch(rows));
      int64_t *cnt = (int64_t *)dev_alloc((size_t)(rows + 1) * 8);
      int64_t *pos = (int64_t *)dev_alloc((size_t)(rows + 1) * 8);
      CHECK_OK(kl_cuda_math_dense_count(dt, rsp, dd, rows, w, cnt, NULL));
      CHECK_OK(kl_cuda_scan_i64(cnt, pos, rows, sc, NULL));
      const int64_t nnz = mt_read_i64(pos + rows);
      CHECK(nnz == S->nnz);
      int64_t *ix = (int64_t *)dev_alloc((size_t)nnz * 8);
      void *vals = dev_alloc((size_t)(nnz * (rsp ? w : 1)) * 8);
      CHECK_OK(kl_cuda_math_dense_fill(dt, rsp, dd, rows, w, pos, ix, vals, NULL));
      snprintf(l, sizeof l, "dense -> %s %s %lldx%lld", rsp ? "rsp" : "csr", kl_dtype_name(dt),
               (long long)rows, (long long)w);
      if (nnz == S->nnz) {
        if (!rsp) CHECK(mt_check_i64(l, pos, S->indptr, rows + 1));
        CHECK(mt_check_i64(l, ix, S->indices, nnz));
        CHECK(mt_check(l, dt, vals, S->data, mt_nvals(S), 0));
      }
      dev_free(dd), dev_free(sc), dev_free(cnt), dev_free(pos), dev_free(ix), dev_free(vals);
      kl_tensor_release(D);
      kl_tensor_release(S);
    }
  }
}

/* A grid-stride case: more elements than one launch's threads (65535 blocks x 256). */
static void test_grid_stride(void) {
  int64_t n = (int64_t)65535 * 256 + 777;
  kl_tensor *x = mt_dense(KL_FLOAT32, 1, &n, 0, 0), *out = NULL;
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.scalar = 1.5;
  CHECK_OK(kl_op_run(KL_OP_MUL_SCALAR, &x, 1, &at, &out));
  void *dx = mt_dev_vals(x);
  CHECK_OK(kl_cuda_math_scalar(KL_OP_MUL_SCALAR, KL_FLOAT32, dx, 1.5, dx, n, NULL));
  CHECK(mt_check("mul_scalar grid-stride", KL_FLOAT32, dx, out->data, n, 0));
  dev_free(dx);
  kl_tensor_release(x);
  kl_tensor_release(out);
}

int main(void) {
  int rc = gpu_test_start("test_gpu_math_ew");
  if (rc) return rc;
  for (int d = 0; d < 3; d++) {
    test_binary(dts[d]);
    test_sparse_dense(dts[d]);
    test_csr_merge(dts[d]);
    test_rsp_merge(dts[d]);
    test_unary(dts[d]);
    test_scalar(dts[d]);
    test_conversions(dts[d]);
    if (dts[d] != KL_INT64) {
      test_unary_grad(dts[d]);
      test_scalar_grad(dts[d]);
      test_binary_grad(dts[d]);
    }
  }
  test_binary_errors();
  test_grid_stride();
  KLTEST_DONE();
}
