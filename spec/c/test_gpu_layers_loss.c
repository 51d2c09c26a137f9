/* test_gpu_layers_loss.c: the nine losses' kernels (gpu/k_loss.cu) against the CPU's loss ops
 * (kl_op_run / kl_op_backward of KL_OP_LOSS_*): the mean loss and its gradient w.r.t.
 * y_pred, float32 / float64 y_pred, y_true of every dtype, (n) / (n, 1) / (n, C) /
 * (n, L, C) shapes, one row, sample weights (some zero, all zero, an empty weight vector),
 * the hinge labels' conversion decided over the batch and row by row, clipped
 * probabilities, NaN predictions, a gout of either dtype; labels and weights the CPU
 * refuses, flagged at the CPU's first position with its message.
 *
 * Host-emulated every value is the CPU's bits. On a GPU (KL_GPU_TEST_DEVICE) the forward
 * of the losses that call log (binary / categorical / sparse categorical crossentropy,
 * poisson) is compared within LOG_TOL (relative; CUDA's log is within 1 ulp of glibc's, not
 * equal to it), everything else bit for bit. */
#include <math.h>
#include <stdlib.h>

#include "gpu_testutil.h"
#include "kl_cuda_layers.h"

#ifdef KL_GPU_TEST_DEVICE
#define LOG_TOL_F64 1e-12
#define LOG_TOL_F32 3e-7 /* one float32 rounding of a double within 1e-12 */
#else
#define LOG_TOL_F64 0
#define LOG_TOL_F32 0
#endif

static const kl_op loss_ops[KL_CUDA_LOSS_COUNT] = {
    KL_OP_LOSS_MSE,   KL_OP_LOSS_MAE,   KL_OP_LOSS_BCE,           KL_OP_LOSS_CCE,
    KL_OP_LOSS_SCCE,  KL_OP_LOSS_HINGE, KL_OP_LOSS_SQUARED_HINGE, KL_OP_LOSS_POISSON,
    KL_OP_LOSS_HUBER};

static int uses_log(kl_cuda_loss k) {
  return k == KL_CUDA_LOSS_BCE || k == KL_CUDA_LOSS_CCE || k == KL_CUDA_LOSS_SCCE ||
         k == KL_CUDA_LOSS_POISSON;
}

static void *dv(const kl_tensor *t) {
  return dev_copy(t->data, (size_t)kl_tensor_numel(t) * kl_dtype_size(t->dtype));
}


/* y_true's values for loss k: a label of the kind the loss takes. hmode (hinge): 0 {0, 1}
 * everywhere, 1 {-1, 1}, 2 mixed by row (rows r % 3 == 0 hold a -1). */
static double label(kl_cuda_loss k, int64_t C, int64_t e, int64_t row, int hmode) {
  switch (k) {
    case KL_CUDA_LOSS_BCE: {
      const double v[] = {0, 1, 0.25, 1, 0};
      return v[gpu_irand(5)];
    }
    case KL_CUDA_LOSS_CCE:
      return gpu_urand(0, 1) < 0.3 ? gpu_urand(0, 1) : (double)(gpu_irand(2));
    case KL_CUDA_LOSS_SCCE:
      return (double)(1 + gpu_irand(C));
    case KL_CUDA_LOSS_HINGE:
    case KL_CUDA_LOSS_SQHINGE:
      if (hmode == 0 || (hmode == 2 && row % 3 != 0)) return (double)gpu_irand(2);
      return gpu_irand(2) ? 1.0 : -1.0;
    case KL_CUDA_LOSS_POISSON:
      return (double)gpu_irand(5);
    default:
      return e % 7 == 0 ? 0.0 : gpu_urand(-2, 2);
  }
}

/* y_pred's values: probabilities (with 0, 1 and values past the clip bounds) for the
 * crossentropies and poisson, else any value (e = p - t exactly +-1 now and then for huber). */
static double pred(kl_cuda_loss k, double t, double nan_p) {
  if (gpu_urand(0, 1) < nan_p) return NAN;
  switch (k) {
    case KL_CUDA_LOSS_BCE:
    case KL_CUDA_LOSS_CCE:
    case KL_CUDA_LOSS_SCCE: {
      const double sp[] = {0, 1, 1e-9, 1 - 1e-9, 1e-7, 0.5};
      return gpu_urand(0, 1) < 0.2 ? sp[gpu_irand(6)] : gpu_urand(0, 1);
    }
    case KL_CUDA_LOSS_POISSON:
      return gpu_urand(0, 1) < 0.1 ? 0.0 : gpu_urand(0, 4);
    case KL_CUDA_LOSS_HUBER:
      return gpu_urand(0, 1) < 0.2 ? t + (gpu_irand(2) ? 1.0 : -1.0) : gpu_urand(-3, 3);
    default:
      return gpu_urand(-2, 2);
  }
}

typedef struct lcase {
  kl_cuda_loss k;
  kl_dtype pdt, tdt, wdt, gdt;
  int pnd, tnd;
  int64_t ps[3], ts[3];
  int weights; /* 0 none, 1 some zero, 2 all zero, 3 an empty vector */
  int hmode;
  double nan_p, gval;
} lcase;

static void run(const lcase *c) {
  kl_tensor *yp = NULL, *yt = NULL, *w = NULL, *g = NULL, *out = NULL, *gin = NULL;
  CHECK_OK(kl_tensor_new_dense(c->pdt, c->pnd, c->ps, &yp));
  CHECK_OK(kl_tensor_new_dense(c->tdt, c->tnd, c->ts, &yt));
  const int64_t n = kl_tensor_numel(yp), nt = kl_tensor_numel(yt), n0 = c->ps[0];
  const int64_t C = c->ps[c->pnd - 1], tw = nt / (c->tnd ? c->ts[0] : 1);
  for (int64_t e = 0; e < nt; e++) {
    const double v = label(c->k, C, e, e / (tw ? tw : 1), c->hmode);
    if (c->tdt == KL_INT64) ((int64_t *)yt->data)[e] = (int64_t)llround(v);
    else kl_tensor_data_set(yt, e, v);
  }
  for (int64_t e = 0; e < n; e++)
    kl_tensor_data_set(yp, e, pred(c->k, nt == n ? kl_tensor_data_at(yt, e) : 0, c->nan_p));
  int nin = 2;
  if (c->weights) {
    int64_t wn = c->weights == 3 ? 0 : n0;
    CHECK_OK(kl_tensor_new_dense(c->wdt, 1, &wn, &w));
    for (int64_t r = 0; r < wn; r++)
      kl_tensor_data_set(w, r, c->weights == 2 || gpu_urand(0, 1) < 0.3 ? 0.0 : gpu_urand(0, 2));
    nin = 3;
  }
  CHECK_OK(kl_tensor_new_dense(c->gdt, 0, NULL, &g));
  kl_tensor_data_set(g, 0, c->gval);
  kl_tensor *in[3] = {yt, yp, w};
  CHECK_OK(kl_op_run(loss_ops[c->k], in, nin, NULL, &out));
  CHECK_OK(kl_op_backward(loss_ops[c->k], in, nin, NULL, out, g, 1, KL_STYPE_DEFAULT, &gin));
  if (!out || !gin) goto done;

  void *dyt = dv(yt), *dyp = dv(yp), *dw = w ? dv(w) : NULL, *dg = dv(g);
  kl_cuda_loss_args la = {c->k, c->tdt, c->pdt, w ? c->wdt : KL_FLOAT32, dyt, dyp,
                          w && kl_tensor_numel(w) > 0 ? dw : NULL, n, n0, C};
  const size_t es = kl_dtype_size(c->pdt);
  void *scr = dev_alloc(kl_cuda_loss_scratch(&la)), *dout = dev_alloc(es), *dgin = dev_alloc((size_t)n * es);
  int64_t *bad = dev_alloc(2 * sizeof(int64_t)), hbad[2] = {-1, -1};
  char l[200];
  snprintf(l, sizeof l, "%s p %s (%lld..) t %s (%d-d) w %d (%s) hinge %d nan %.2f g %s %g",
           kl_cuda_loss_name(c->k), kl_dtype_name(c->pdt), (long long)n, kl_dtype_name(c->tdt),
           c->tnd, c->weights, kl_dtype_name(c->wdt), c->hmode, c->nan_p, kl_dtype_name(c->gdt),
           c->gval);
  CHECK_OK(kl_cuda_loss_check(&la, bad, NULL));
  dev_sync();
  to_host(hbad, bad, sizeof hbad);
  CHECK(hbad[0] == nt && hbad[1] == n0);
  CHECK_OK(kl_cuda_loss_forward(&la, scr, dout, NULL));
  dev_sync();
  double dval = 0, cval = kl_tensor_data_at(out, 0);
  char hb[8];
  to_host(hb, dout, es);
  dval = c->pdt == KL_FLOAT32 ? (double)*(float *)hb : *(double *)hb;
  if (uses_log(c->k) && (LOG_TOL_F64 > 0) && !(isnan(dval) && isnan(cval)))
    CHECK_NEAR(dval, cval, c->pdt == KL_FLOAT32 ? LOG_TOL_F32 : LOG_TOL_F64);
  else if (!gpu_same(l, c->pdt, hb, out->data, 1))
    CHECK(!"forward");
  CHECK_OK(kl_cuda_loss_backward(&la, c->gdt, dg, scr, dgin, NULL));
  void *h = malloc((size_t)n * es);
  dev_sync();
  to_host(h, dgin, (size_t)n * es);
  CHECK(gpu_same(l, c->pdt, h, gin->data, n));
  free(h);
  dev_free(dyt), dev_free(dyp), dev_free(dw), dev_free(dg), dev_free(scr), dev_free(dout);
  dev_free(dgin), dev_free(bad);
done:;
  kl_tensor *all[] = {yp, yt, w, g, out, gin};
  for (int i = 0; i < 6; i++) kl_tensor_release(all[i]);
}

static void shapes(lcase c) {
  const int rows = c.k == KL_CUDA_LOSS_CCE || c.k == KL_CUDA_LOSS_SCCE;
  const int scce = c.k == KL_CUDA_LOSS_SCCE;
  /* (n0, C) and (n0, L, C); y_true without (scce) or with the class axis */
  static const int64_t sizes[][3] = {{1, 1, 1}, {1, 5, 1}, {7, 3, 1}, {64, 10, 1}, {5, 4, 3}};
  for (int s = 0; s < 5; s++) {
    lcase d = c;
    const int three = s == 4;
    d.pnd = three ? 3 : 2;
    memcpy(d.ps, sizes[s], sizeof d.ps);
    d.tnd = scce ? d.pnd - 1 : d.pnd;
    memcpy(d.ts, d.ps, sizeof d.ts);
    run(&d);
    if (scce) { /* labels (n, 1) */
      d.tnd = d.pnd;
      d.ts[d.pnd - 1] = 1;
      run(&d);
    }
  }
  if (!rows) { /* (n) against (n, 1) both ways, and (n) against (n) */
    lcase d = c;
    d.pnd = 1, d.ps[0] = 33, d.tnd = 2, d.ts[0] = 33, d.ts[1] = 1;
    run(&d);
    d.pnd = 2, d.ps[1] = 1, d.tnd = 1;
    run(&d);
    d.pnd = 1, d.tnd = 1;
    run(&d);
  }
}

static void test_losses(void) {
  static const kl_dtype tdts[] = {KL_FLOAT32, KL_FLOAT64, KL_INT64};
  for (int k = 0; k < KL_CUDA_LOSS_COUNT; k++)
    for (int p = 0; p < 2; p++)
      for (int t = 0; t < 3; t++) {
        const kl_cuda_loss kk = (kl_cuda_loss)k;
        const kl_dtype pdt = p ? KL_FLOAT64 : KL_FLOAT32, odt = p ? KL_FLOAT32 : KL_FLOAT64;
        /* int64 labels only where the labels are integers */
        if (tdts[t] == KL_INT64 && (kk == KL_CUDA_LOSS_CCE || kk == KL_CUDA_LOSS_BCE ||
                                    kk == KL_CUDA_LOSS_MSE || kk == KL_CUDA_LOSS_MAE ||
                                    kk == KL_CUDA_LOSS_HUBER))
          continue;
        lcase c = {kk, pdt, tdts[t], pdt, pdt, 2, 2, {1, 1, 1}, {1, 1, 1}, 0, 0, 0.0, 1.0};
        shapes(c);
        c.gval = 0.37;
        c.gdt = odt;
        c.weights = 1;
        c.wdt = odt;
        shapes(c);
        c.weights = 2;
        shapes(c);
        c.weights = 3;
        c.gval = -2.5;
        shapes(c);
        c.weights = 1;
        c.nan_p = 0.05;
        shapes(c);
        if (kk == KL_CUDA_LOSS_HINGE || kk == KL_CUDA_LOSS_SQHINGE)
          for (int h = 1; h < 3; h++) {
            c.hmode = h;
            c.nan_p = 0;
            c.weights = 0;
            shapes(c);
            c.weights = 1;
            shapes(c);
          }
      }
}

/* Bad data: the CPU's error and the device's flag and message. */
static void bad_case(kl_cuda_loss k, kl_dtype tdt, const double *t, int64_t n0, int64_t C,
                     const double *wv, int64_t want_label, int64_t want_weight) {
  const int scce = k == KL_CUDA_LOSS_SCCE;
  int64_t ps[2] = {n0, C}, ts[2] = {n0, C};
  kl_tensor *yp = NULL, *yt = NULL, *w = NULL, *out = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ps, &yp));
  CHECK_OK(kl_tensor_new_dense(tdt, scce ? 1 : 2, ts, &yt));
  const int64_t nt = kl_tensor_numel(yt);
  for (int64_t e = 0; e < n0 * C; e++) kl_tensor_data_set(yp, e, 0.25);
  for (int64_t e = 0; e < nt; e++) {
    if (tdt == KL_INT64) ((int64_t *)yt->data)[e] = (int64_t)t[e];
    else kl_tensor_data_set(yt, e, t[e]);
  }
  if (wv) {
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 1, &n0, &w));
    memcpy(w->data, wv, (size_t)n0 * sizeof(double));
  }
  kl_tensor *in[3] = {yt, yp, w};
  const kl_status cs = kl_op_run(loss_ops[k], in, wv ? 3 : 2, NULL, &out);
  CHECK(cs != KL_OK);
  char msg[512];
  snprintf(msg, sizeof msg, "%s", kl_errmsg());
  void *dyt = dv(yt), *dyp = dv(yp), *dw = w ? dv(w) : NULL;
  kl_cuda_loss_args la = {k, tdt, KL_FLOAT32, KL_FLOAT64, dyt, dyp, dw, n0 * C, n0, C};
  int64_t *bad = dev_alloc(2 * sizeof(int64_t)), hb[2] = {-1, -1};
  void *scr = dev_alloc(kl_cuda_loss_scratch(&la)), *dout = dev_alloc(4);
  CHECK_OK(kl_cuda_loss_check(&la, bad, NULL));
  CHECK_OK(kl_cuda_loss_forward(&la, scr, dout, NULL)); /* runs, reads nothing outside */
  dev_sync();
  to_host(hb, bad, sizeof hb);
  CHECK(hb[0] == want_label && hb[1] == want_weight);
  if (hb[0] < nt && hb[0] >= 0) {
    const int64_t lw = nt / n0;
    CHECK_ERR(kl_cuda_loss_label_error(k, kl_tensor_data_at(yt, hb[0]), hb[0], lw, C), cs, msg);
    CHECK(strcmp(kl_errmsg(), msg) == 0);
  } else if (hb[1] < n0 && hb[1] >= 0) {
    CHECK_ERR(kl_cuda_loss_weight_error(k, wv[hb[1]], hb[1]), cs, msg);
    CHECK(strcmp(kl_errmsg(), msg) == 0);
  }
  dev_free(dyt), dev_free(dyp), dev_free(dw), dev_free(bad), dev_free(scr), dev_free(dout);
  kl_tensor_release(yp), kl_tensor_release(yt), kl_tensor_release(w), kl_tensor_release(out);
}

static void test_bad_data(void) {
  const double s1[] = {1, 3, 4, 2}; /* C = 3: 4 at row 3 */
  bad_case(KL_CUDA_LOSS_SCCE, KL_INT64, s1, 4, 3, NULL, 2, 4);
  bad_case(KL_CUDA_LOSS_SCCE, KL_FLOAT32, s1, 4, 3, NULL, 2, 4);
  const double s2[] = {1, 2.5, 0, 2}; /* not an integer first */
  bad_case(KL_CUDA_LOSS_SCCE, KL_FLOAT64, s2, 4, 3, NULL, 1, 4);
  const double s3[] = {0, 1, 1, NAN};
  bad_case(KL_CUDA_LOSS_SCCE, KL_FLOAT64, s3, 4, 3, NULL, 0, 4);
  const double b1[] = {0, 1, 1, 0, -1, 1}; /* (3, 2): -1 at row 3 */
  bad_case(KL_CUDA_LOSS_BCE, KL_FLOAT32, b1, 3, 2, NULL, 4, 3);
  const double b2[] = {0.5, 1.5};
  bad_case(KL_CUDA_LOSS_BCE, KL_FLOAT64, b2, 2, 1, NULL, 1, 2);
  const double ok[] = {1, 2, 3, 1}, w1[] = {1, 0, -2, NAN};
  bad_case(KL_CUDA_LOSS_SCCE, KL_INT64, ok, 4, 3, w1, 4, 2);
  const double m[] = {0, 1, 2, 3}, w2[] = {1, INFINITY, 0, 1};
  bad_case(KL_CUDA_LOSS_MSE, KL_FLOAT32, m, 4, 1, w2, 4, 1);
  const double w3[] = {NAN, 1, 1, 1};
  bad_case(KL_CUDA_LOSS_HINGE, KL_FLOAT32, m, 4, 1, w3, 4, 0);
  const double both[] = {1, 9, 1, 1}, w4[] = {-1, 1, 1, 1}; /* the labels are checked first */
  bad_case(KL_CUDA_LOSS_SCCE, KL_INT64, both, 4, 3, w4, 1, 0);
}

static void test_errors(void) {
  kl_cuda_loss_args la = {KL_CUDA_LOSS_MSE, KL_FLOAT32, KL_INT64, KL_FLOAT32, NULL, NULL, NULL, 4, 2, 2};
  CHECK_ERR(kl_cuda_loss_forward(&la, NULL, NULL, NULL), KL_EDTYPE,
            "cuda loss_forward: y_pred must be float32 or float64, got int64");
  la.pdt = KL_FLOAT32;
  la.n = 5;
  CHECK_ERR(kl_cuda_loss_backward(&la, KL_FLOAT32, NULL, NULL, NULL, NULL), KL_ESHAPE,
            "cuda loss_backward: bad sizes n=5 rows=2 C=2");
  CHECK(kl_cuda_loss_of_op(KL_OP_LOSS_HUBER) == KL_CUDA_LOSS_HUBER);
  CHECK(kl_cuda_loss_of_op(KL_OP_LOSS_MSE) == KL_CUDA_LOSS_MSE);
  CHECK(kl_cuda_loss_of_op(KL_OP_EMBEDDING) == -1);
  for (int k = 0; k < KL_CUDA_LOSS_COUNT; k++)
    CHECK(strcmp(kl_cuda_loss_name((kl_cuda_loss)k), kl_op_name(loss_ops[k])) == 0);
}

int main(void) {
  int rc = gpu_test_start("test_gpu_layers_loss");
  if (rc) return rc;
  test_losses();
  test_bad_data();
  test_errors();
  KLTEST_DONE();
}
