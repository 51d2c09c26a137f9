/* test_gpu_elemwise.c: gpu/k_elemwise.cu against the CPU ops (kl_op_run) bit for bit, NaN
 * matching NaN: the binary ops on equal shapes and with a one-value side, the scalar ops, the
 * unary ops, float32 / float64 / int64, on values with NaN, infinities, -0 and 0. */
#include <math.h>
#include <stdlib.h>

#include "gpu_testutil.h"

#define N 1000

static double special(int64_t i, int intonly) {
  static const double sp[] = {0.0, -0.0, 1.0, -1.0, NAN, INFINITY, -INFINITY, 1e-40, 3.5, -2.25};
  if (intonly) return (double)(gpu_irand(2001) - 1000);
  return i < 10 ? sp[i] : (gpu_urand(0, 1) < 0.1 ? sp[gpu_irand(10)] : gpu_urand(-100, 100));
}

static kl_tensor *vec(kl_dtype dt, int64_t n) {
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, 1, &n, &t));
  for (int64_t i = 0; i < n; i++) {
    if (dt == KL_INT64) ((int64_t *)t->data)[i] = (int64_t)special(i, 1);
    else kl_tensor_data_set(t, i, special(i, 0));
  }
  return t;
}

static void compare(const char *label, kl_dtype dt, const void *dout, const kl_tensor *cpu, int64_t n) {
  void *h = malloc((size_t)n * 8 + 1);
  dev_sync();
  to_host(h, dout, (size_t)n * kl_dtype_size(dt));
  CHECK(gpu_same(label, dt, h, cpu->data, n));
  free(h);
}

static void test_binary(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_ADD, KL_OP_SUB, KL_OP_MUL, KL_OP_DIV, KL_OP_MINIMUM, KL_OP_MAXIMUM};
  static const int64_t sizes[][2] = {{N, N}, {N, 1}, {1, N}, {1, 1}};
  for (size_t o = 0; o < 6; o++) {
    if (dt == KL_INT64 && ops[o] == KL_OP_DIV) continue;
    for (int s = 0; s < 4; s++) {
      int64_t na = sizes[s][0], nb = sizes[s][1], n = na > nb ? na : nb;
      kl_tensor *a = vec(dt, na), *b = vec(dt, nb), *in[2] = {a, b}, *out = NULL;
      CHECK_OK(kl_op_run(ops[o], in, 2, NULL, &out));
      const size_t es = kl_dtype_size(dt);
      void *da = dev_copy(a->data, (size_t)na * es), *db = dev_copy(b->data, (size_t)nb * es);
      void *dout = dev_alloc((size_t)n * es);
      CHECK_OK(kl_cuda_ew_binary(ops[o], dt, da, na, db, nb, dout, n, NULL));
      char l[80];
      snprintf(l, sizeof l, "%s %s %lldx%lld", kl_op_name(ops[o]), kl_dtype_name(dt),
               (long long)na, (long long)nb);
      compare(l, dt, dout, out, n);
      dev_free(da);
      dev_free(db);
      dev_free(dout);
      kl_tensor_release(a);
      kl_tensor_release(b);
      kl_tensor_release(out);
    }
  }
}

static void test_scalar(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_ADD_SCALAR, KL_OP_MUL_SCALAR, KL_OP_DIV_SCALAR,
                              KL_OP_RSUB_SCALAR, KL_OP_RDIV_SCALAR, KL_OP_MINIMUM_SCALAR,
                              KL_OP_MAXIMUM_SCALAR};
  static const double scalars[] = {0.1, -3, 0.0, 1e30};
  for (size_t o = 0; o < 7; o++)
    for (int k = 0; k < 4; k++) {
      kl_tensor *x = vec(dt, N), *out = NULL;
      kl_attrs at;
      memset(&at, 0, sizeof at);
      at.scalar = scalars[k];
      CHECK_OK(kl_op_run(ops[o], &x, 1, &at, &out));
      const size_t es = kl_dtype_size(dt);
      void *dx = dev_copy(x->data, N * es), *dout = dev_alloc(N * es);
      CHECK_OK(kl_cuda_ew_scalar(ops[o], dt, dx, scalars[k], dout, N, NULL));
      char l[80];
      snprintf(l, sizeof l, "%s %s %g", kl_op_name(ops[o]), kl_dtype_name(dt), scalars[k]);
      compare(l, dt, dout, out, N);
      dev_free(dx);
      dev_free(dout);
      kl_tensor_release(x);
      kl_tensor_release(out);
    }
}

static void test_unary(kl_dtype dt) {
  static const kl_op ops[] = {KL_OP_NEG, KL_OP_SQUARE, KL_OP_ABS, KL_OP_RELU, KL_OP_SQRT};
  for (size_t o = 0; o < 5; o++) {
    if (dt == KL_INT64 && ops[o] == KL_OP_SQRT) continue;
    kl_tensor *x = vec(dt, N), *out = NULL;
    CHECK_OK(kl_op_run(ops[o], &x, 1, NULL, &out));
    const size_t es = kl_dtype_size(dt);
    void *dx = dev_copy(x->data, N * es), *dout = dev_alloc(N * es);
    CHECK_OK(kl_cuda_ew_unary(ops[o], dt, dx, dout, N, NULL));
    char l[80];
    snprintf(l, sizeof l, "%s %s", kl_op_name(ops[o]), kl_dtype_name(dt));
    compare(l, dt, dout, out, N);
    dev_free(dx);
    dev_free(dout);
    kl_tensor_release(x);
    kl_tensor_release(out);
  }
}

static void test_errors(void) {
  CHECK_ERR(kl_cuda_ew_binary(KL_OP_DIV, KL_INT64, NULL, 1, NULL, 1, NULL, 1, NULL), KL_EDTYPE,
            "cuda ew_binary: dtype int64 not supported");
  CHECK_ERR(kl_cuda_ew_binary(KL_OP_ADD, KL_FLOAT32, NULL, 2, NULL, 3, NULL, 3, NULL), KL_ESHAPE,
            "cuda ew_binary: sizes 2 and 3 for 3 outputs");
  CHECK_ERR(kl_cuda_ew_unary(KL_OP_EXP, KL_FLOAT32, NULL, NULL, 1, NULL), KL_EUNSUPPORTED,
            "cuda ew_unary: no CUDA kernel for op");
  CHECK_ERR(kl_cuda_ew_scalar(KL_OP_POW_SCALAR, KL_FLOAT32, NULL, 2, NULL, 1, NULL),
            KL_EUNSUPPORTED, "cuda ew_scalar: no CUDA kernel for op");
  /* empty: nothing launched, success */
  CHECK_OK(kl_cuda_ew_binary(KL_OP_ADD, KL_FLOAT32, NULL, 0, NULL, 0, NULL, 0, NULL));
  CHECK_OK(kl_cuda_ew_unary(KL_OP_NEG, KL_FLOAT64, NULL, NULL, 0, NULL));
  CHECK_OK(kl_cuda_ew_scalar(KL_OP_ADD_SCALAR, KL_FLOAT64, NULL, 1, NULL, 0, NULL));
}

int main(void) {
  int rc = gpu_test_start("test_gpu_elemwise");
  if (rc) return rc;
  static const kl_dtype dts[] = {KL_FLOAT32, KL_FLOAT64, KL_INT64};
  for (int d = 0; d < 3; d++) {
    test_binary(dts[d]);
    test_unary(dts[d]);
    if (dts[d] != KL_INT64) test_scalar(dts[d]);
  }
  test_errors();
  KLTEST_DONE();
}
