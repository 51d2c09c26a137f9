/* test_gpu_math_reduce.c: gpu/k_math_reduce.cu against the CPU ops: sum and mean of dense
 * tensors (all axes, every axis, as the device op lays them out), of csr (all, rows, and
 * columns through the csr transpose) and of row_sparse (all, axis 0, inner axes), their
 * gradient, softmax (dense, csr, row_sparse) and its gradient, argmax (ties, NaN, every axis,
 * int64) and the fill; float32 / float64, with empty, one-row and edge-value inputs. Sums
 * are the CPU's bits on a GPU too (one thread an output, the CPU's order); softmax goes
 * through exp (a tolerance on a GPU, gpu_math_testutil.h). */
#include "gpu_math_testutil.h"

static const kl_dtype fdts[] = {KL_FLOAT32, KL_FLOAT64};

static kl_attrs axis_attrs(int has_axis, int axis, int keepdims) {
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.has_axis = has_axis;
  at.axis = axis;
  at.keepdims = keepdims;
  return at;
}

/* (outer, n, inner) of a reduction of x (the device op's red_view). */
static void view_of(const kl_tensor *x, const kl_attrs *a, int64_t *outer, int64_t *n,
                    int64_t *inner) {
  if (!a->has_axis) {
    *outer = 1, *n = kl_tensor_numel(x), *inner = 1;
    return;
  }
  *outer = kl_shape_numel(a->axis, x->shape);
  *n = x->shape[a->axis];
  *inner = kl_shape_numel(x->ndim - a->axis - 1, x->shape + a->axis + 1);
}

static void test_reduce_dense(kl_dtype dt) {
  static const int64_t shapes[][4] = {
      {3, 5, 4, 2}, {1, 7, 1, 3}, {0, 3, 2, 1}, {4, 0, 2, 1}, {2, 3, 1000, 1}};
  static const int nds[] = {3, 3, 3, 2, 3};
  for (int k = 0; k < 5; k++)
    for (int mean = 0; mean <= 1; mean++)
      for (int ax = -1; ax < nds[k]; ax++) {
        kl_tensor *x = mt_dense(dt, nds[k], shapes[k], k != 4, 0), *out = NULL, *gin = NULL;
        kl_attrs at = axis_attrs(ax >= 0, ax < 0 ? 0 : ax, k % 2);
        const kl_op op = mean ? KL_OP_MEAN : KL_OP_SUM;
        CHECK_OK(kl_op_run(op, &x, 1, &at, &out));
        int64_t outer, n, inner;
        view_of(x, &at, &outer, &n, &inner);
        const double scale = mean ? 1.0 / (double)n : 1.0;
        void *dx = mt_dev_vals(x), *dy = dev_alloc((size_t)kl_tensor_numel(out) * 8);
        CHECK_OK(kl_cuda_math_reduce(dt, dx, outer, n, inner, scale, dy, NULL));
        char l[120], s1[40];
        snprintf(l, sizeof l, "%s %s %s axis %d", kl_op_name(op), kl_dtype_name(dt),
                 mt_shape(nds[k], shapes[k], s1, sizeof s1), ax);
        CHECK(mt_check(l, dt, dy, out->data, kl_tensor_numel(out), 0));
        /* the gradient */
        kl_tensor *g = mt_dense(dt, out->ndim, out->shape, 1, 0);
        CHECK_OK(kl_op_backward(op, &x, 1, &at, out, g, 0, KL_STYPE_DEFAULT, &gin));
        void *dg = mt_dev_vals(g), *dr = dev_alloc((size_t)kl_tensor_numel(x) * 8);
        CHECK_OK(kl_cuda_math_reduce_grad(dt, dg, outer, n, inner, scale, dr, NULL));
        strcat(l, " backward");
        CHECK(mt_check(l, dt, dr, gin->data, kl_tensor_numel(x), 0));
        dev_free(dx), dev_free(dy), dev_free(dg), dev_free(dr);
        kl_tensor_release(x);
        kl_tensor_release(out);
        kl_tensor_release(g);
        kl_tensor_release(gin);
      }
}

static void test_reduce_csr(kl_dtype dt) {
  static const int64_t rc[][2] = {{60, 45}, {1, 9}, {0, 4}, {5, 0}, {7, 1}, {3000, 3}};
  for (int k = 0; k < 6; k++)
    for (int mean = 0; mean <= 1; mean++)
      for (int ax = -1; ax < 2; ax++) {
        const int64_t R = rc[k][0], C = rc[k][1];
        kl_tensor *x = mt_csr(dt, R, C, 0.6, k != 5, 1), *out = NULL;
        kl_attrs at = axis_attrs(ax >= 0, ax < 0 ? 0 : ax, 0);
        const kl_op op = mean ? KL_OP_MEAN : KL_OP_SUM;
        CHECK_OK(kl_op_run(op, &x, 1, &at, &out));
        int64_t outer, n, inner;
        view_of(x, &at, &outer, &n, &inner);
        const double scale = mean ? 1.0 / (double)n : 1.0;
        void *dv = mt_dev_vals(x), *dy = dev_alloc((size_t)kl_tensor_numel(out) * 8);
        int64_t *dp = mt_dev_i64(x->indptr, R + 1), *di = mt_dev_i64(x->indices, x->nnz);
        int64_t *tp = NULL, *ti = NULL;
        void *tv = NULL, *sc = NULL;
        if (ax < 0) {
          CHECK_OK(kl_cuda_math_reduce(dt, dv, 1, x->nnz, 1, scale, dy, NULL));
        } else if (ax == 1) {
          CHECK_OK(kl_cuda_math_reduce_csr_rows(dt, R, dp, dv, scale, dy, NULL));
        } else {
          tp = (int64_t *)dev_alloc((size_t)(C + 1) * 8);
          ti = (int64_t *)dev_alloc((size_t)x->nnz * 8);
          tv = dev_alloc((size_t)x->nnz * 8);
          sc = dev_alloc(kl_cuda_math_csr_transpose_scratch(x->nnz));
          CHECK_OK(kl_cuda_math_csr_transpose(kl_dtype_size(dt), R, C, x->nnz, dp, di, dv, tp, ti,
                                              tv, sc, NULL));
          CHECK_OK(kl_cuda_math_reduce_csr_rows(dt, C, tp, tv, scale, dy, NULL));
        }
        char l[120];
        snprintf(l, sizeof l, "%s csr %s %lldx%lld axis %d", kl_op_name(op), kl_dtype_name(dt),
                 (long long)R, (long long)C, ax);
        CHECK(mt_check(l, dt, dy, out->data, kl_tensor_numel(out), 0));
        dev_free(dv), dev_free(dy), dev_free(dp), dev_free(di);
        if (tp) dev_free(tp), dev_free(ti), dev_free(tv), dev_free(sc);
        kl_tensor_release(x);
        kl_tensor_release(out);
      }
}

static void test_reduce_rsp(kl_dtype dt) {
  static const int64_t shapes[][3] = {{40, 3, 4}, {1, 2, 5}, {0, 3, 2}, {6, 0, 2}, {5, 4, 1}};
  for (int k = 0; k < 5; k++)
    for (int mean = 0; mean <= 1; mean++)
      for (int ax = -1; ax < 3; ax++) {
        kl_tensor *x = mt_rsp(dt, 3, shapes[k], 0.5, 1, 1), *out = NULL;
        kl_attrs at = axis_attrs(ax >= 0, ax < 0 ? 0 : ax, 1);
        const kl_op op = mean ? KL_OP_MEAN : KL_OP_SUM;
        CHECK_OK(kl_op_run(op, &x, 1, &at, &out));
        int64_t outer, n, inner;
        view_of(x, &at, &outer, &n, &inner);
        const double scale = mean ? 1.0 / (double)n : 1.0;
        const int64_t W = kl_row_width(x), nout = kl_tensor_numel(out);
        void *dv = mt_dev_vals(x), *dy = dev_alloc((size_t)nout * 8);
        int64_t *di = mt_dev_i64(x->indices, x->nnz);
        void *zeros = calloc((size_t)(nout ? nout : 1), 8);
        to_dev(dy, zeros, (size_t)nout * 8);
        free(zeros);
        if (n == 0)
          CHECK_OK(kl_cuda_math_fill(dt, dy, nout, mean ? NAN : 0.0, NULL));
        else if (ax < 0)
          CHECK_OK(kl_cuda_math_reduce(dt, dv, 1, x->nnz * W, 1, scale, dy, NULL));
        else if (ax == 0)
          CHECK_OK(kl_cuda_math_reduce(dt, dv, 1, x->nnz, W, scale, dy, NULL));
        else {
          const int64_t Wo = W / n, in2 = kl_shape_numel(3 - ax - 1, x->shape + ax + 1);
          CHECK_OK(kl_cuda_math_reduce_rsp_rows(dt, x->nnz, di, dv, Wo / (in2 ? in2 : 1), n, in2,
                                                scale, dy, NULL));
        }
        char l[120], s1[40];
        snprintf(l, sizeof l, "%s rsp %s %s axis %d", kl_op_name(op), kl_dtype_name(dt),
                 mt_shape(3, shapes[k], s1, sizeof s1), ax);
        CHECK(mt_check(l, dt, dy, out->data, nout, 0));
        dev_free(dv), dev_free(dy), dev_free(di);
        kl_tensor_release(x);
        kl_tensor_release(out);
      }
}

/* ------------------------------------------------------------------ softmax */

static void test_softmax(kl_dtype dt) {
  static const int64_t shapes[][3] = {{30, 4, 7}, {1, 1, 5}, {0, 2, 3}, {3, 2, 1}, {2, 4, 0}};
  for (int k = 0; k < 5; k++) {
    const int64_t *s = shapes[k];
    const int64_t n = s[0] * s[1] * s[2], last = s[2];
    char l[120], s1[40];
    /* dense */
    kl_tensor *x = mt_dense(dt, 3, s, 1, 0.1), *out = NULL;
    kl_tensor *xin = x;
    CHECK_OK(kl_op_run(KL_OP_SOFTMAX, &xin, 1, NULL, &out));
    void *dx = mt_dev_vals(x), *dy = dev_alloc((size_t)n * 8);
    CHECK_OK(kl_cuda_math_softmax(dt, dx, last ? n / last : 0, last, dy, NULL));
    snprintf(l, sizeof l, "softmax %s %s", kl_dtype_name(dt), mt_shape(3, s, s1, sizeof s1));
    CHECK(mt_check(l, dt, dy, out->data, n, 1));
    dev_free(dx), dev_free(dy);
    kl_tensor_release(x);
    kl_tensor_release(out);
    /* row_sparse (3-d: rows of s[1] x s[2], segments of last) */
    kl_tensor *r = mt_rsp(dt, 3, s, 0.5, 1, 1);
    CHECK_OK(kl_op_run(KL_OP_SOFTMAX, &r, 1, NULL, &out));
    void *rv = mt_dev_vals(r);
    int64_t *ri = mt_dev_i64(r->indices, r->nnz);
    dy = dev_alloc((size_t)n * 8);
    CHECK_OK(kl_cuda_math_softmax_rsp(dt, n, last, r->nnz, kl_row_width(r), ri, rv, dy, NULL));
    snprintf(l, sizeof l, "softmax rsp %s %s", kl_dtype_name(dt), mt_shape(3, s, s1, sizeof s1));
    CHECK(mt_check(l, dt, dy, out->data, n, 1));
    dev_free(rv), dev_free(ri), dev_free(dy);
    kl_tensor_release(r);
    kl_tensor_release(out);
    /* csr (s[0] x s[2]), some rows full, some empty */
    kl_tensor *c = mt_csr(dt, s[0], s[2], k == 1 ? 0.0 : 0.5, 1, 1);
    CHECK_OK(kl_op_run(KL_OP_SOFTMAX, &c, 1, NULL, &out));
    void *cv = mt_dev_vals(c);
    int64_t *cp = mt_dev_i64(c->indptr, s[0] + 1), *ci = mt_dev_i64(c->indices, c->nnz);
    dy = dev_alloc((size_t)(s[0] * s[2]) * 8);
    CHECK_OK(kl_cuda_math_softmax_csr(dt, s[0], s[2], cp, ci, cv, dy, NULL));
    snprintf(l, sizeof l, "softmax csr %s %lldx%lld", kl_dtype_name(dt), (long long)s[0],
             (long long)s[2]);
    CHECK(mt_check(l, dt, dy, out->data, s[0] * s[2], 1));
    dev_free(cv), dev_free(cp), dev_free(ci), dev_free(dy);
    kl_tensor_release(c);
    kl_tensor_release(out);
  }
  CHECK_ERR(kl_cuda_math_softmax_rsp(KL_FLOAT32, 6, 4, 1, 6, NULL, NULL, NULL, NULL), KL_ESHAPE,
            "cuda softmax_rsp: rows of 6 values in segments of 4");
}

/* ------------------------------------------------------------------ argmax */

static void test_argmax(kl_dtype dt) {
  static const int64_t shapes[][3] = {{6, 5, 4}, {1, 1, 1}, {0, 3, 2}, {3, 7, 2}};
  for (int k = 0; k < 4; k++)
    for (int ax = -1; ax < 3; ax++) {
      if (shapes[k][ax < 0 ? 2 : ax] == 0) continue; /* an empty axis: refused by inference */
      kl_tensor *x = mt_dense(dt, 3, shapes[k], 1, 0.3), *out = NULL;
      if (dt != KL_INT64 && kl_tensor_numel(x) > 30) { /* ties and NaN later in a row */
        kl_tensor_data_set(x, 20, kl_tensor_data_at(x, 21));
        kl_tensor_data_set(x, 25, NAN);
      }
      kl_attrs at = axis_attrs(ax >= 0, ax < 0 ? 0 : ax, 0);
      CHECK_OK(kl_op_run(KL_OP_ARGMAX, &x, 1, &at, &out));
      const int a2 = ax < 0 ? 2 : ax;
      const int64_t outer = kl_shape_numel(a2, x->shape), len = x->shape[a2];
      const int64_t inner = kl_shape_numel(3 - a2 - 1, x->shape + a2 + 1);
      void *dx = mt_dev_vals(x);
      int64_t *dy = (int64_t *)dev_alloc((size_t)kl_tensor_numel(out) * 8);
      CHECK_OK(kl_cuda_math_argmax(dt, dx, outer, len, inner, dy, NULL));
      char l[120], s1[40];
      snprintf(l, sizeof l, "argmax %s %s axis %d", kl_dtype_name(dt),
               mt_shape(3, shapes[k], s1, sizeof s1), ax);
      CHECK(mt_check_i64(l, dy, out->data, kl_tensor_numel(out)));
      dev_free(dx), dev_free(dy);
      kl_tensor_release(x);
      kl_tensor_release(out);
    }
  CHECK_ERR(kl_cuda_math_argmax(KL_FLOAT32, NULL, 1, 0, 1, NULL, NULL), KL_ESHAPE,
            "cuda argmax: the axis is empty (length 0)");
}

static void test_fill(void) {
  double got[5];
  void *d = dev_alloc(sizeof got);
  CHECK_OK(kl_cuda_math_fill(KL_FLOAT64, d, 5, -0.0, NULL));
  dev_sync();
  to_host(got, d, sizeof got);
  CHECK(signbit(got[0]) && signbit(got[4]) && got[2] == 0);
  CHECK_OK(kl_cuda_math_fill(KL_FLOAT32, d, 0, 1.0, NULL));
  dev_free(d);
}

int main(void) {
  int rc = gpu_test_start("test_gpu_math_reduce");
  if (rc) return rc;
  for (int d = 0; d < 2; d++) {
    test_reduce_dense(fdts[d]);
    test_reduce_csr(fdts[d]);
    test_reduce_rsp(fdts[d]);
    test_softmax(fdts[d]);
    test_argmax(fdts[d]);
  }
  test_argmax(KL_INT64);
  test_fill();
  KLTEST_DONE();
}
