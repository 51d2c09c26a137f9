/* test_gpu_dev_math.c: the math ops on the device (gpu/dev_ops_math.c,
 * dev_ops_math_shape.c) through the registry, against the CPU: add, subtract, multiply,
 * divide, minimum, maximum (broadcasting; csr op csr, rsp op rsp, sparse op dense, mixed
 * stypes; int64), the scalar ops, the unary ops, softmax, sum / mean, argmax, one_hot,
 * transpose, concatenate and retain, forward and backward (want default and row_sparse,
 * with and without the forward's output, dense and sparse gout).
 *
 * Each device result must have the CPU's dtype, stype, shape, sparsity pattern (indptr,
 * indices, nnz) and values, bit for bit (NaN matching NaN); bad ids and indices give the
 * CPU's error and message. Every call leaves kl_device_fallback_count unchanged (the table
 * claims these ops for every input) and, at the end, no device memory in use. On a GPU
 * (test_gpu_dev_math_device, tools/gpu-check) the values that go through exp, log, tanh,
 * sigmoid or pow (the forward of those ops, softmax, pow_scalar's gradient) are compared
 * within the tolerance of gpu_math_testutil.h; everything else stays exact.
 *
 * Emulated only: every runtime call of a few multi-step ops (csr merge, rsp merge, csr
 * column sums, concatenation along csr columns, retain, one_hot) failing in turn with out
 * of memory and an illegal address: each a status with the runtime's message, nothing
 * leaked. */
#include "gpu_dev_testutil.h"
#include "gpu_math_testutil.h"

static long fb0;

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

/* The device result d against the host result h: description, pattern, values. */
static int same_result(const char *label, const kl_tensor *d, const kl_tensor *h, int trans) {
  kl_tensor *c = NULL;
  if (d->device != GPU0) {
    fprintf(stderr, "%s: result on device %d\n", label, (int)d->device);
    return 0;
  }
  if (kl_tensor_to(d, KL_CPU, &c) != KL_OK) return 0;
  int ok = c->dtype == h->dtype && c->stype == h->stype && c->ndim == h->ndim;
  for (int k = 0; ok && k < h->ndim; k++) ok = c->shape[k] == h->shape[k];
  if (ok && h->stype != KL_STYPE_DEFAULT) {
    ok = c->nnz == h->nnz;
    if (ok && h->stype == KL_STYPE_CSR)
      ok = memcmp(c->indptr, h->indptr, (size_t)(h->shape[0] + 1) * 8) == 0;
    if (ok && h->nnz) ok = memcmp(c->indices, h->indices, (size_t)h->nnz * 8) == 0;
  }
  if (!ok) {
    fprintf(stderr, "%s: description or sparsity pattern differs (stype %d vs %d, nnz %lld vs %lld)\n",
            label, (int)c->stype, (int)h->stype, (long long)c->nnz, (long long)h->nnz);
  } else {
    ok = mt_close(label, h->dtype, c->data, h->data, mt_nvals(h), trans);
  }
  kl_tensor_release(c);
  return ok;
}

static kl_tensor *on_dev(const kl_tensor *h) {
  kl_tensor *d = NULL;
  CHECK_OK(kl_tensor_to(h, GPU0, &d));
  return d;
}

/* op on host inputs hin and on device copies of them: the same result, no fallback; the
 * same error when the host fails. Returns the host result (or NULL). */
static kl_tensor *run_both(const char *label, kl_op op, kl_tensor **hin, int nin,
                           const kl_attrs *a, int trans) {
  kl_tensor *din[8], *hr = NULL, *dr = NULL;
  for (int i = 0; i < nin; i++) din[i] = on_dev(hin[i]);
  kl_status hs = kl_op_run(op, hin, nin, a, &hr);
  char hmsg[256];
  snprintf(hmsg, sizeof hmsg, "%s", kl_errmsg());
  const long f = kl_device_fallback_count();
  kl_status ds = kl_op_run(op, din, nin, a, &dr);
  CHECK(kl_device_fallback_count() == f);
  if (hs != KL_OK) {
    const int same = ds == hs && strcmp(kl_errmsg(), hmsg) == 0;
    if (!same) fprintf(stderr, "%s: device error '%s', host '%s'\n", label, kl_errmsg(), hmsg);
    CHECK(same);
  } else {
    CHECK_OK(ds);
    if (ds == KL_OK) CHECK(same_result(label, dr, hr, trans));
    /* the table's kernel itself gives the inferred stype (no conversion left to the
     * registry, which would run through the host) */
    int nops = 0;
    const kl_device_opdef *dd = kl_cuda_ops(&nops)[op];
    const kl_kernel_entry *k = dd && dd->kernels ? dd->kernels : NULL;
    while (k && k->fn && k->supports && !k->supports(din, nin, a)) k++;
    kl_tensor *kr = NULL;
    CHECK(k && k->fn);
    if (k && k->fn) {
      static const kl_attrs none;
      CHECK_OK(k->fn(din, nin, a ? a : &none, &kr));
      if (kr) CHECK(same_result(label, kr, hr, trans));
    }
    kl_tensor_release(kr);
  }
  for (int i = 0; i < nin; i++) kl_tensor_release(din[i]);
  kl_tensor_release(dr);
  return hr;
}

/* The gradient of input i on the host and on the device (with the forward's output, and
 * without it when no_out), for gout g (host) and want. */
static void grad_both(const char *label, kl_op op, kl_tensor **hin, int nin, const kl_attrs *a,
                      int i, const kl_tensor *g, kl_stype want, int no_out, int trans) {
  kl_tensor *din[8], *hout = NULL, *dout = NULL, *hg = NULL, *dg = NULL;
  for (int k = 0; k < nin; k++) din[k] = on_dev(hin[k]);
  CHECK_OK(kl_op_run(op, hin, nin, a, &hout));
  CHECK_OK(kl_op_run(op, din, nin, a, &dout));
  kl_tensor *dgo = on_dev(g);
  kl_status hs = kl_op_backward(op, hin, nin, a, no_out ? NULL : hout, g, i, want, &hg);
  char hmsg[256];
  snprintf(hmsg, sizeof hmsg, "%s", kl_errmsg());
  const long f = kl_device_fallback_count();
  kl_status ds = kl_op_backward(op, din, nin, a, no_out ? NULL : dout, dgo, i, want, &dg);
  CHECK(kl_device_fallback_count() == f);
  char l[200];
  snprintf(l, sizeof l, "%s backward %d want %s%s", label, i, kl_stype_name(want),
           no_out ? " (no output)" : "");
  if (hs != KL_OK) {
    CHECK(ds == hs && strcmp(kl_errmsg(), hmsg) == 0);
  } else {
    CHECK_OK(ds);
    if (ds == KL_OK) CHECK(same_result(l, dg, hg, trans));
    /* the table's backward itself gives the stype asked for */
    int nops = 0;
    const kl_device_opdef *dd = kl_cuda_ops(&nops)[op];
    kl_tensor *kg = NULL;
    CHECK(dd && dd->backward);
    if (dd && dd->backward) {
      static const kl_attrs none;
      CHECK_OK(dd->backward(din, nin, a ? a : &none, no_out ? NULL : dout, dgo, i, want, &kg));
      if (kg) CHECK(same_result(l, kg, hg, trans));
    }
    kl_tensor_release(kg);
  }
  for (int k = 0; k < nin; k++) kl_tensor_release(din[k]);
  kl_tensor_release(hout);
  kl_tensor_release(dout);
  kl_tensor_release(dgo);
  kl_tensor_release(hg);
  kl_tensor_release(dg);
}

/* A sample of stype st (2-d shapes for csr). */
static kl_tensor *sample(kl_dtype dt, kl_stype st, int nd, const int64_t *shape) {
  if (st == KL_STYPE_CSR) return mt_csr(dt, shape[0], shape[1], 0.6, 1, 1);
  if (st == KL_STYPE_ROW_SPARSE) return mt_rsp(dt, nd, shape, 0.5, 1, 1);
  return mt_dense(dt, nd, shape, 1, 0.2);
}

static const kl_dtype dts[] = {KL_FLOAT32, KL_FLOAT64, KL_INT64};
static const kl_stype sts[] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};

/* ------------------------------------------------------------------ binary ops */

static void test_binary(void) {
  static const kl_op ops[] = {KL_OP_ADD, KL_OP_SUB, KL_OP_MUL, KL_OP_DIV, KL_OP_MINIMUM, KL_OP_MAXIMUM};
  static const int64_t s2[][2] = {{9, 7}, {1, 5}, {0, 4}, {3, 0}};
  for (int d = 0; d < 3; d++)
    for (size_t o = 0; o < 6; o++) {
      const kl_dtype dt = dts[d];
      if (dt == KL_INT64 && ops[o] == KL_OP_DIV) continue;
      char l[160];
      /* every stype pair of the same 2-d shape */
      for (int k = 0; k < 4; k++)
        for (int x = 0; x < 3; x++)
          for (int y = 0; y < 3; y++) {
            kl_tensor *in[2] = {sample(dt, sts[x], 2, s2[k]), sample(dt, sts[y], 2, s2[k])};
            snprintf(l, sizeof l, "%s %s %s.%s %lldx%lld", kl_op_name(ops[o]), kl_dtype_name(dt),
                     kl_stype_name(sts[x]), kl_stype_name(sts[y]), (long long)s2[k][0],
                     (long long)s2[k][1]);
            kl_tensor *r = run_both(l, ops[o], in, 2, NULL, 0);
            if (r && dt != KL_INT64 && k < 2)
              for (int i = 0; i < 2; i++) {
                kl_tensor *g = mt_dense(dt, r->ndim, r->shape, 1, 0);
                grad_both(l, ops[o], in, 2, NULL, i, g, KL_STYPE_DEFAULT, 0, 0);
                if (sts[i == 0 ? x : y] == KL_STYPE_ROW_SPARSE)
                  grad_both(l, ops[o], in, 2, NULL, i, g, KL_STYPE_ROW_SPARSE, 0, 0);
                kl_tensor_release(g);
              }
            kl_tensor_release(r);
            kl_tensor_release(in[0]);
            kl_tensor_release(in[1]);
          }
      /* broadcasting, dense and sparse (same sparse stype of different shapes: the result
       * keeps it through the device's conversion) */
      static const int64_t ba[][2] = {{4, 5}, {4, 1}, {1, 5}};
      for (int p = 0; p < 3; p++)
        for (int q = 0; q < 3; q++)
          for (int x = 0; x < 3; x++) {
            kl_tensor *in[2] = {sample(dt, sts[x], 2, ba[p]), sample(dt, sts[x], 2, ba[q])};
            snprintf(l, sizeof l, "%s %s %s (%lld,%lld) . (%lld,%lld)", kl_op_name(ops[o]),
                     kl_dtype_name(dt), kl_stype_name(sts[x]), (long long)ba[p][0],
                     (long long)ba[p][1], (long long)ba[q][0], (long long)ba[q][1]);
            kl_tensor *r = run_both(l, ops[o], in, 2, NULL, 0);
            if (r && dt != KL_INT64)
              for (int i = 0; i < 2; i++) {
                kl_tensor *g = mt_dense(dt, r->ndim, r->shape, 1, 0);
                grad_both(l, ops[o], in, 2, NULL, i, g, KL_STYPE_DEFAULT, 0, 0);
                kl_tensor_release(g);
              }
            kl_tensor_release(r);
            kl_tensor_release(in[0]);
            kl_tensor_release(in[1]);
          }
      /* ranks that differ, 3-d and 1-d */
      int64_t a3[3] = {2, 3, 4}, b1[1] = {4}, b0[1] = {1};
      kl_tensor *in[2] = {mt_dense(dt, 3, a3, 1, 0), mt_dense(dt, 1, b1, 1, 0)};
      snprintf(l, sizeof l, "%s %s (2,3,4) . (4)", kl_op_name(ops[o]), kl_dtype_name(dt));
      kl_tensor *r = run_both(l, ops[o], in, 2, NULL, 0);
      if (r && dt != KL_INT64) {
        kl_tensor *g = mt_dense(dt, 3, a3, 1, 0);
        grad_both(l, ops[o], in, 2, NULL, 1, g, KL_STYPE_DEFAULT, 0, 0);
        kl_tensor_release(g);
      }
      kl_tensor_release(r);
      kl_tensor_release(in[1]);
      in[1] = mt_dense(dt, 0, b0, 1, 0); /* a 0-d operand */
      snprintf(l, sizeof l, "%s %s (2,3,4) . ()", kl_op_name(ops[o]), kl_dtype_name(dt));
      kl_tensor_release(run_both(l, ops[o], in, 2, NULL, 0));
      kl_tensor_release(in[0]);
      kl_tensor_release(in[1]);
    }
  /* errors: the CPU's */
  int64_t s3[1] = {3}, s4[1] = {4};
  kl_tensor *in[2] = {mt_dense(KL_FLOAT32, 1, s3, 0, 0), mt_dense(KL_FLOAT32, 1, s4, 0, 0)};
  kl_tensor_release(run_both("add (3) . (4)", KL_OP_ADD, in, 2, NULL, 0));
  kl_tensor_release(in[1]);
  in[1] = mt_dense(KL_FLOAT64, 1, s3, 0, 0);
  kl_tensor_release(run_both("add f32 . f64", KL_OP_ADD, in, 2, NULL, 0));
  kl_tensor_release(in[0]);
  kl_tensor_release(in[1]);
}

/* ------------------------------------------------------------------ scalar and unary ops */

static const kl_op scalar_ops[] = {KL_OP_ADD_SCALAR, KL_OP_MUL_SCALAR, KL_OP_DIV_SCALAR,
                                   KL_OP_RSUB_SCALAR, KL_OP_RDIV_SCALAR, KL_OP_MINIMUM_SCALAR,
                                   KL_OP_MAXIMUM_SCALAR, KL_OP_POW_SCALAR};

static void test_scalar(void) {
  static const double scs[] = {2.0, -1.5, 0.0, 0.5, 3.0};
  int64_t s2[2] = {8, 6};
  for (int d = 0; d < 3; d++)
    for (int o = 0; o < 8; o++)
      for (int x = 0; x < 3; x++)
        for (int k = 0; k < 5; k++) {
          const kl_dtype dt = dts[d];
          const kl_op op = scalar_ops[o];
          kl_attrs at;
          memset(&at, 0, sizeof at);
          at.scalar = scs[k];
          kl_tensor *in = sample(dt, sts[x], 2, s2);
          char l[160];
          snprintf(l, sizeof l, "%s %s %s %g", kl_op_name(op), kl_dtype_name(dt),
                   kl_stype_name(sts[x]), scs[k]);
          const int trans = op == KL_OP_POW_SCALAR;
          kl_tensor *r = run_both(l, op, &in, 1, &at, trans); /* int64 pow etc: the CPU's error */
          if (r && dt != KL_INT64 && sts[x] != KL_STYPE_CSR) {
            kl_tensor *g = mt_dense(dt, 2, s2, 1, 0);
            grad_both(l, op, &in, 1, &at, 0, g, KL_STYPE_DEFAULT, 0, trans);
            kl_tensor_release(g);
            /* a sparse gout keeps its stype through x + s, x * s, x / s, s - x */
            g = sample(dt, KL_STYPE_ROW_SPARSE, 2, s2);
            grad_both(l, op, &in, 1, &at, 0, g, KL_STYPE_ROW_SPARSE, 0, trans);
            kl_tensor_release(g);
          }
          kl_tensor_release(r);
          kl_tensor_release(in);
        }
}

static void test_unary(void) {
  static const kl_op ops[] = {KL_OP_NEG, KL_OP_SQUARE, KL_OP_SQRT, KL_OP_ABS, KL_OP_RELU,
                              KL_OP_EXP, KL_OP_LOG, KL_OP_SIGMOID, KL_OP_TANH, KL_OP_SOFTMAX};
  static const int64_t shapes[][3] = {{7, 6, 1}, {1, 1, 1}, {0, 3, 1}, {5, 0, 1}};
  for (int d = 0; d < 3; d++)
    for (int o = 0; o < 10; o++)
      for (int x = 0; x < 3; x++)
        for (int k = 0; k < 4; k++) {
          const kl_dtype dt = dts[d];
          const kl_op op = ops[o];
          const int trans = o >= 5;
          kl_tensor *in = sample(dt, sts[x], 2, shapes[k]);
          char l[160];
          snprintf(l, sizeof l, "%s %s %s %lldx%lld", kl_op_name(op), kl_dtype_name(dt),
                   kl_stype_name(sts[x]), (long long)shapes[k][0], (long long)shapes[k][1]);
          kl_tensor *r = run_both(l, op, &in, 1, NULL, trans);
          if (r && dt != KL_INT64 && sts[x] != KL_STYPE_CSR) {
            kl_tensor *g = mt_dense(dt, 2, shapes[k], 1, 0);
            /* with the forward's output, and without it (recomputed on the device); the
             * device's exp / log / tanh enter both on a GPU (trans) */
            grad_both(l, op, &in, 1, NULL, 0, g, KL_STYPE_DEFAULT, 0, trans);
            grad_both(l, op, &in, 1, NULL, 0, g, KL_STYPE_DEFAULT, 1, trans);
            if (sts[x] == KL_STYPE_ROW_SPARSE)
              grad_both(l, op, &in, 1, NULL, 0, g, KL_STYPE_ROW_SPARSE, 0, trans);
            kl_tensor_release(g);
          }
          kl_tensor_release(r);
          kl_tensor_release(in);
        }
  /* softmax of 3-d and 1-d row_sparse tensors, 3-d dense */
  int64_t s3[3] = {6, 3, 4}, s1[1] = {9};
  for (int d = 0; d < 2; d++) {
    kl_tensor *x3 = mt_rsp(dts[d], 3, s3, 0.5, 1, 1), *x1 = mt_rsp(dts[d], 1, s1, 0.5, 1, 0);
    kl_tensor *xd = mt_dense(dts[d], 3, s3, 1, 0);
    kl_tensor_release(run_both("softmax rsp 3-d", KL_OP_SOFTMAX, &x3, 1, NULL, 1));
    kl_tensor_release(run_both("softmax rsp 1-d", KL_OP_SOFTMAX, &x1, 1, NULL, 1));
    kl_tensor_release(run_both("softmax dense 3-d", KL_OP_SOFTMAX, &xd, 1, NULL, 1));
    kl_tensor *g = mt_dense(dts[d], 3, s3, 1, 0);
    grad_both("softmax dense 3-d", KL_OP_SOFTMAX, &xd, 1, NULL, 0, g, KL_STYPE_DEFAULT, 0, 1);
    kl_tensor_release(g);
    kl_tensor_release(x3);
    kl_tensor_release(x1);
    kl_tensor_release(xd);
  }
}

/* ------------------------------------------------------------------ reductions, index ops */

static void test_reduce(void) {
  static const int64_t shapes[][3] = {{9, 4, 3}, {1, 1, 2}, {0, 3, 2}, {4, 0, 3}};
  for (int d = 0; d < 3; d++)
    for (int mean = 0; mean <= 1; mean++)
      for (int x = 0; x < 3; x++)
        for (int k = 0; k < 4; k++) {
          const int nd = sts[x] == KL_STYPE_CSR ? 2 : 3;
          for (int ax = -1; ax < nd; ax++)
            for (int keep = 0; keep <= 1; keep++) {
              const kl_dtype dt = dts[d];
              const kl_op op = mean ? KL_OP_MEAN : KL_OP_SUM;
              kl_attrs at;
              memset(&at, 0, sizeof at);
              at.has_axis = ax >= 0;
              at.axis = ax < 0 ? 0 : ax;
              at.keepdims = keep;
              kl_tensor *in = sample(dt, sts[x], nd, shapes[k]);
              char l[160];
              snprintf(l, sizeof l, "%s %s %s k%d axis %d keepdims %d", kl_op_name(op),
                       kl_dtype_name(dt), kl_stype_name(sts[x]), k, ax, keep);
              kl_tensor *r = run_both(l, op, &in, 1, &at, 0); /* int64: the CPU's error */
              if (r) {
                kl_tensor *g = mt_dense(dt, r->ndim, r->shape, 1, 0);
                grad_both(l, op, &in, 1, &at, 0, g, KL_STYPE_DEFAULT, 0, 0);
                if (sts[x] == KL_STYPE_ROW_SPARSE)
                  grad_both(l, op, &in, 1, &at, 0, g, KL_STYPE_ROW_SPARSE, 0, 0);
                kl_tensor_release(g);
              }
              kl_tensor_release(r);
              kl_tensor_release(in);
            }
        }
}

static void test_argmax_one_hot(void) {
  int64_t s3[3] = {5, 4, 6}, s2[2] = {7, 5};
  for (int d = 0; d < 3; d++)
    for (int ax = -1; ax < 3; ax++) {
      kl_attrs at;
      memset(&at, 0, sizeof at);
      at.has_axis = ax >= 0;
      at.axis = ax < 0 ? 0 : ax;
      kl_tensor *x = mt_dense(dts[d], 3, s3, 1, 0.3);
      kl_tensor_release(run_both("argmax dense", KL_OP_ARGMAX, &x, 1, &at, 0));
      kl_tensor_release(x);
      if (ax < 2) {
        x = sample(dts[d], d == 2 ? KL_STYPE_ROW_SPARSE : KL_STYPE_CSR, 2, s2);
        kl_tensor_release(run_both("argmax sparse", KL_OP_ARGMAX, &x, 1, &at, 0));
        kl_tensor_release(x);
      }
    }
  /* one_hot: good ids, then each kind of bad one (the CPU's message) */
  static const double bad[] = {-1, 7, 2.5, NAN, INFINITY};
  for (int d = 0; d < 3; d++)
    for (int b = -1; b < 5; b++) {
      kl_tensor *ids = NULL;
      CHECK_OK(kl_tensor_new_dense(dts[d], 2, s2, &ids));
      for (int64_t i = 0; i < 35; i++) kl_tensor_data_set(ids, i, (double)gpu_irand(7));
      if (b >= 0 && !(dts[d] == KL_INT64 && (bad[b] != bad[b] || isinf(bad[b]) || bad[b] == 2.5)))
        kl_tensor_data_set(ids, 11, bad[b]);
      kl_attrs at;
      memset(&at, 0, sizeof at);
      at.ival = 6;
      kl_tensor_release(run_both("one_hot", KL_OP_ONE_HOT, &ids, 1, &at, 0));
      kl_tensor_release(ids);
    }
}

static void test_transpose(void) {
  int64_t s2[2] = {6, 9}, s3[3] = {2, 3, 4}, s0[2] = {0, 3};
  for (int d = 0; d < 3; d++)
    for (int x = 0; x < 3; x++) {
      kl_tensor *in = sample(dts[d], sts[x], 2, s2);
      kl_tensor *r = run_both("transpose", KL_OP_TRANSPOSE, &in, 1, NULL, 0);
      if (r && dts[d] != KL_INT64) {
        kl_tensor *g = mt_dense(dts[d], 2, r->shape, 1, 0);
        grad_both("transpose", KL_OP_TRANSPOSE, &in, 1, NULL, 0, g, KL_STYPE_DEFAULT, 0, 0);
        kl_tensor_release(g);
      }
      kl_tensor_release(r);
      kl_tensor_release(in);
      in = sample(dts[d], sts[x], 2, s0);
      kl_tensor_release(run_both("transpose empty", KL_OP_TRANSPOSE, &in, 1, NULL, 0));
      kl_tensor_release(in);
    }
  kl_tensor *x = mt_dense(KL_FLOAT64, 3, s3, 1, 0);
  kl_tensor_release(run_both("transpose 3-d", KL_OP_TRANSPOSE, &x, 1, NULL, 0));
  kl_tensor_release(x);
}

static void test_concat(void) {
  static const int64_t sizes[] = {3, 0, 4};
  for (int d = 0; d < 3; d++)
    for (int axis = 0; axis < 2; axis++)
      for (int mix = 0; mix < 5; mix++) {
        /* mix 0..2: all of one stype; 3: csr and dense; 4: rsp and csr */
        kl_tensor *in[3];
        for (int i = 0; i < 3; i++) {
          int64_t s[2] = {5, 5};
          s[axis] = sizes[i];
          kl_stype st = mix < 3 ? sts[mix] : mix == 3 ? (i ? KL_STYPE_DEFAULT : KL_STYPE_CSR)
                                                       : (i ? KL_STYPE_CSR : KL_STYPE_ROW_SPARSE);
          in[i] = sample(dts[d], st, 2, s);
        }
        kl_attrs at;
        memset(&at, 0, sizeof at);
        at.axis = axis;
        char l[120];
        snprintf(l, sizeof l, "concatenate %s axis %d mix %d", kl_dtype_name(dts[d]), axis, mix);
        kl_tensor *r = run_both(l, KL_OP_CONCAT, in, 3, &at, 0);
        if (r && dts[d] != KL_INT64)
          for (int i = 0; i < 3; i++) {
            kl_tensor *g = mt_dense(dts[d], 2, r->shape, 1, 0);
            grad_both(l, KL_OP_CONCAT, in, 3, &at, i, g, KL_STYPE_DEFAULT, 0, 0);
            kl_tensor_release(g);
          }
        kl_tensor_release(r);
        for (int i = 0; i < 3; i++) kl_tensor_release(in[i]);
      }
  /* 3-d dense along the last axis, row_sparse along axis 0 */
  int64_t a[3] = {2, 3, 4}, b[3] = {2, 3, 1};
  kl_tensor *in[2] = {mt_dense(KL_FLOAT32, 3, a, 1, 0), mt_dense(KL_FLOAT32, 3, b, 1, 0)};
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.axis = 2;
  kl_tensor_release(run_both("concatenate 3-d axis 2", KL_OP_CONCAT, in, 2, &at, 0));
  kl_tensor_release(in[0]);
  kl_tensor_release(in[1]);
  in[0] = mt_rsp(KL_FLOAT64, 3, a, 0.5, 1, 1);
  in[1] = mt_rsp(KL_FLOAT64, 3, a, 0.5, 1, 1);
  at.axis = 0;
  kl_tensor_release(run_both("concatenate rsp 3-d axis 0", KL_OP_CONCAT, in, 2, &at, 0));
  kl_tensor_release(in[0]);
  kl_tensor_release(in[1]);
}

static void test_retain(void) {
  int64_t s[2] = {30, 4};
  for (int d = 0; d < 3; d++)
    for (int c = 0; c < 4; c++) {
      kl_tensor *x = mt_rsp(dts[d], 2, s, 0.5, 1, 0), *idx = NULL;
      int64_t m = c == 0 ? 12 : c == 1 ? 0 : c == 2 ? 40 : 5;
      CHECK_OK(kl_tensor_new_dense(KL_INT64, 1, &m, &idx));
      for (int64_t k = 0; k < m; k++) ((int64_t *)idx->data)[k] = gpu_irand(30);
      if (c == 3) ((int64_t *)idx->data)[2] = 30; /* out of range: the CPU's message */
      kl_tensor *in[2] = {x, idx};
      char l[80];
      snprintf(l, sizeof l, "retain %s case %d", kl_dtype_name(dts[d]), c);
      kl_tensor *r = run_both(l, KL_OP_RETAIN, in, 2, NULL, 0);
      if (r && dts[d] != KL_INT64) {
        kl_tensor *g = mt_dense(dts[d], 2, s, 1, 0);
        grad_both(l, KL_OP_RETAIN, in, 2, NULL, 0, g, KL_STYPE_DEFAULT, 0, 0);
        grad_both(l, KL_OP_RETAIN, in, 2, NULL, 0, g, KL_STYPE_ROW_SPARSE, 1, 0);
        grad_both(l, KL_OP_RETAIN, in, 2, NULL, 1, g, KL_STYPE_DEFAULT, 0, 0); /* none */
        kl_tensor_release(g);
      }
      kl_tensor_release(r);
      kl_tensor_release(x);
      kl_tensor_release(idx);
    }
}

/* ------------------------------------------------------------------ failures */

#if GPU_DEV_EMULATED
typedef struct scen {
  const char *name;
  kl_op op;
  kl_tensor *in[3];
  int nin;
  kl_attrs at;
} scen;

static kl_status scen_run(const scen *s, kl_tensor **res) {
  kl_tensor *din[3] = {NULL, NULL, NULL}, *r = NULL;
  kl_status st = KL_OK;
  *res = NULL;
  for (int i = 0; i < s->nin && st == KL_OK; i++) st = kl_tensor_to(s->in[i], GPU0, &din[i]);
  if (st == KL_OK) st = kl_op_run(s->op, din, s->nin, &s->at, &r);
  if (st == KL_OK) st = kl_tensor_to(r, KL_CPU, res);
  kl_tensor_release(r);
  for (int i = 0; i < s->nin; i++) kl_tensor_release(din[i]);
  return st;
}

static kl_status sweep_run(void *ctx, kl_tensor **res) { return scen_run(ctx, res); }

static void test_fault_sweep(void) {
  int64_t s2[2] = {12, 9}, s3[2] = {12, 5};
  scen sc[6];
  memset(sc, 0, sizeof sc);
  sc[0] = (scen){"csr + csr", KL_OP_ADD, {mt_csr(KL_FLOAT32, 12, 9, 0.6, 0, 0), mt_csr(KL_FLOAT32, 12, 9, 0.6, 0, 0)}, 2, {0}};
  sc[1] = (scen){"rsp * rsp", KL_OP_MUL, {mt_rsp(KL_FLOAT64, 2, s2, 0.4, 0, 0), mt_rsp(KL_FLOAT64, 2, s2, 0.4, 0, 0)}, 2, {0}};
  sc[2] = (scen){"sum csr axis 0", KL_OP_SUM, {mt_csr(KL_FLOAT32, 12, 9, 0.6, 0, 0)}, 1, {0}};
  sc[2].at.has_axis = 1;
  sc[3] = (scen){"concatenate csr axis 1", KL_OP_CONCAT, {mt_csr(KL_FLOAT32, 12, 9, 0.6, 0, 0), mt_csr(KL_FLOAT32, 12, 5, 0.6, 0, 0)}, 2, {0}};
  sc[3].at.axis = 1;
  int64_t m = 6;
  kl_tensor *idx = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 1, &m, &idx));
  for (int64_t k = 0; k < m; k++) ((int64_t *)idx->data)[k] = (k * 5) % 12;
  sc[4] = (scen){"retain", KL_OP_RETAIN, {mt_rsp(KL_FLOAT32, 2, s3, 0.3, 0, 0), idx}, 2, {0}};
  kl_tensor *ids = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 1, &m, &ids));
  for (int64_t k = 0; k < m; k++) ((int64_t *)ids->data)[k] = k % 4;
  sc[5] = (scen){"one_hot", KL_OP_ONE_HOT, {ids}, 1, {0}};
  sc[5].at.ival = 4;
  for (int s = 0; s < 6; s++) {
    gpu_dev_sweep sw = gpu_dev_fault_sweep(sweep_run, &sc[s]);
    CHECK(sw.failures > sw.ncalls);
    printf("fault sweep %s: %ld runtime calls x 2 errors: %d failures, nothing leaked\n",
           sc[s].name, sw.ncalls, sw.failures);
    for (int i = 0; i < sc[s].nin; i++) kl_tensor_release(sc[s].in[i]);
  }
}
#endif

int main(void) {
  int st = gpu_dev_start("test_gpu_dev_math");
  if (st) return st;
  kl_set_warn_handler(quiet, NULL); /* the host's storage fallbacks of the reference runs */
  fb0 = kl_device_fallback_count();
  test_binary();
  test_scalar();
  test_unary();
  test_reduce();
  test_argmax_one_hot();
  test_transpose();
  test_concat();
  test_retain();
  CHECK(kl_device_fallback_count() == fb0);
#if GPU_DEV_EMULATED
  test_fault_sweep();
#endif
  gpu_dev_finish();
  KLTEST_DONE();
}
