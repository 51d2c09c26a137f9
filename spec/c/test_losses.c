/* test_losses.c: the Keras losses as ops (values, gradients, errors) and the metrics of
 * kl/layers.h (values, accumulation over batches, name resolution). */
#include <stdlib.h>
#include "kl/layers.h"
#include "layers_testutil.h"

static const kl_op_def *const LOSS[5] = {&kl_opdef_loss_mse, &kl_opdef_loss_mae,
                                         &kl_opdef_loss_bce, &kl_opdef_loss_cce,
                                         &kl_opdef_loss_scce};
enum { MSE, MAE, BCE, CCE, SCCE };

/* Runs loss d and returns its value (NAN on failure, after CHECK_OK reports it). */
static double loss_of(const kl_op_def *d, kl_tensor *yt, kl_tensor *yp) {
  kl_tensor *in[2] = {yt, yp}, *o = NULL;
  double v = NAN;
  CHECK_OK(run_def(d, in, 2, NULL, &o));
  if (o) {
    CHECK(o->ndim == 0 && o->dtype == yp->dtype && kl_tensor_numel(o) == 1);
    v = kl_tensor_data_at(o, 0);
  }
  kl_tensor_release(o);
  return v;
}

/* Reference losses, written the Keras way: a per-sample value over the last axis, then the
 * mean over samples. t is read at the same flat index (shapes equal up to a trailing 1). */
static double ref_loss(int k, const kl_tensor *yt, const kl_tensor *yp) {
  const double eps = 1e-7;
  int64_t C = yp->shape[yp->ndim - 1], rows = kl_tensor_numel(yp) / C;
  double total = 0;
  for (int64_t r = 0; r < rows; r++) {
    double per = 0, tot = 0;
    for (int64_t j = 0; j < C; j++) tot += kl_tensor_data_at(yp, r * C + j);
    double ctot = 0;
    for (int64_t j = 0; j < C; j++) {
      double p = kl_tensor_data_at(yp, r * C + j);
      ctot += p < eps ? eps : (p > 1 - eps ? 1 - eps : p);
    }
    for (int64_t j = 0; j < C; j++) {
      double p = kl_tensor_data_at(yp, r * C + j);
      double t = k == SCCE ? 0 : kl_tensor_data_at(yt, r * C + j);
      double c = fmin(fmax(p, eps), 1 - eps);
      if (k == MSE) per += (p - t) * (p - t) / C;
      if (k == MAE) per += fabs(p - t) / C;
      if (k == BCE) per += -(t * log(c) + (1 - t) * log(1 - c)) / C;
      if (k == CCE) per += -t * log(fmin(fmax(p / tot, eps), 1 - eps));
      if (k == SCCE && j + 1 == (int64_t)kl_tensor_data_at(yt, r)) per = -log(c / ctot);
    }
    total += per;
  }
  return total / rows;
}

static void test_exact(void) {
  int64_t s22[2] = {2, 2}, s23[2] = {2, 3}, s2[1] = {2}, s21[2] = {2, 1};
  double t[4] = {1, 2, 3, 4}, p[4] = {1.5, 2, 2, 5};
  kl_tensor *yt = mk(KL_FLOAT64, 2, s22, t), *yp = mk(KL_FLOAT64, 2, s22, p);
  CHECK_NEAR(loss_of(LOSS[MSE], yt, yp), 0.5625, 1e-15);
  CHECK_NEAR(loss_of(LOSS[MAE], yt, yp), 0.625, 1e-15);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
  /* bce: y_true (2) against y_pred (2, 1); p = 0 clips to 1e-7 */
  double bt[2] = {1, 0}, bp[2] = {0, 0.5};
  yt = mk(KL_FLOAT64, 1, s2, bt);
  yp = mk(KL_FLOAT64, 2, s21, bp);
  CHECK_NEAR(loss_of(LOSS[BCE], yt, yp), (-log(1e-7) + log(2.0)) / 2, 1e-14);
  CHECK_NEAR(loss_of(LOSS[MSE], yt, yp), (1 + 0.25) / 2, 1e-15);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
  /* cce: rows normalised first ({1,1,2} -> {.25,.25,.5}) */
  double ct[6] = {0, 1, 0, 0, 0, 1}, cp[6] = {0.2, 0.6, 0.2, 1, 1, 2};
  yt = mk(KL_FLOAT64, 2, s23, ct);
  yp = mk(KL_FLOAT64, 2, s23, cp);
  CHECK_NEAR(loss_of(LOSS[CCE], yt, yp), (-log(0.6) - log(0.5)) / 2, 1e-14);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
  /* scce: labels 2, 3 (1-based) against the same probabilities, normalised */
  double st[2] = {2, 3}, sp[6] = {0.2, 0.6, 0.2, 0.25, 0.25, 0.5};
  yt = mk(KL_FLOAT32, 1, s2, st);
  yp = mk(KL_FLOAT64, 2, s23, sp);
  CHECK_NEAR(loss_of(LOSS[SCCE], yt, yp), (-log(0.6) - log(0.5)) / 2, 1e-14);
  kl_tensor *yt1 = mk(KL_INT64, 2, s21, st); /* labels (n, 1) */
  CHECK_NEAR(loss_of(LOSS[SCCE], yt1, yp), (-log(0.6) - log(0.5)) / 2, 1e-14);
  /* through the registry */
  kl_tensor *in[2] = {yt, yp}, *o = NULL;
  CHECK_OK(kl_op_run(KL_OP_LOSS_SCCE, in, 2, NULL, &o));
  CHECK(o && fabs(kl_tensor_data_at(o, 0) - (-log(0.6) - log(0.5)) / 2) < 1e-14);
  kl_tensor_release(o);
  kl_tensor_release(yt1);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
}

/* Gradient by hand: mse d/dp = 2 (p - t) / numel, scaled by gout; bce zero where clipped. */
static void test_grad_exact(void) {
  int64_t s22[2] = {2, 2}, s0[1] = {0};
  double t[4] = {1, 2, 3, 4}, p[4] = {1.5, 2, 2, 5}, gv = 3;
  kl_tensor *yt = mk(KL_FLOAT64, 2, s22, t), *yp = mk(KL_FLOAT64, 2, s22, p);
  kl_tensor *in[2] = {yt, yp}, *g = mk(KL_FLOAT64, 0, s0, &gv), *gi = NULL, *o = NULL;
  CHECK_OK(kl_opdef_loss_mse.backward(in, 2, NULL, NULL, g, 1, KL_STYPE_DEFAULT, &gi));
  for (int e = 0; gi && e < 4; e++) CHECK_NEAR(kl_tensor_data_at(gi, e), 3 * 2 * (p[e] - t[e]) / 4, 1e-15);
  kl_tensor_release(gi);
  gi = NULL;
  CHECK_OK(kl_opdef_loss_mae.backward(in, 2, NULL, NULL, g, 1, KL_STYPE_DEFAULT, &gi));
  double mae_g[4] = {0.75, 0, -0.75, 0.75};
  for (int e = 0; gi && e < 4; e++) CHECK(kl_tensor_data_at(gi, e) == mae_g[e]);
  kl_tensor_release(gi);
  gi = NULL;
  CHECK_ERR(kl_opdef_loss_mse.backward(in, 2, NULL, NULL, g, 0, KL_STYPE_DEFAULT, &o),
            KL_EUNSUPPORTED, "mean_squared_error: y_true (input 0) has no gradient");
  CHECK_ERR(kl_opdef_loss_mse.backward(in, 2, NULL, NULL, yt, 1, KL_STYPE_DEFAULT, &o),
            KL_ESHAPE, "mean_squared_error: gout must be a dense 0-d tensor");
  CHECK(o == NULL);
  double bt[4] = {1, 0, 1, 1}, bp[4] = {0, 0.5, 1, 0.25};
  kl_tensor *byt = mk(KL_FLOAT64, 2, s22, bt), *byp = mk(KL_FLOAT64, 2, s22, bp);
  kl_tensor *bin[2] = {byt, byp};
  CHECK_OK(kl_opdef_loss_bce.backward(bin, 2, NULL, NULL, g, 1, KL_STYPE_DEFAULT, &gi));
  if (gi) {
    CHECK(kl_tensor_data_at(gi, 0) == 0 && kl_tensor_data_at(gi, 2) == 0); /* clipped */
    CHECK_NEAR(kl_tensor_data_at(gi, 1), 3 * (1 / 0.5) / 4, 1e-14);
    CHECK_NEAR(kl_tensor_data_at(gi, 3), 3 * (-1 / 0.25) / 4, 1e-14);
  }
  kl_tensor_release(gi);
  kl_tensor_release(byt);
  kl_tensor_release(byp);
  kl_tensor_release(g);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
}

static void test_errors(void) {
  int64_t s42[2] = {4, 2}, s43[2] = {4, 3}, s5[1] = {5}, s55[2] = {5, 5}, s4[1] = {4};
  kl_tensor *a = mk(KL_FLOAT32, 2, s42, NULL), *b = mk(KL_FLOAT32, 2, s43, NULL);
  kl_tensor *in[2] = {a, b}, *o = NULL;
  CHECK_ERR(run_def(LOSS[MSE], in, 2, NULL, &o), KL_ESHAPE,
            "mean_squared_error: y_true shape (4 x 2) does not match y_pred shape (4 x 3)");
  CHECK_ERR(run_def(LOSS[CCE], in, 2, NULL, &o), KL_ESHAPE,
            "categorical_crossentropy: y_true shape (4 x 2) does not match y_pred shape (4 x 3)");
  kl_tensor *v4 = mk(KL_FLOAT32, 1, s4, NULL), *in2[2] = {v4, b};
  kl_tensor_fill(v4, 1);
  CHECK_OK(run_def(LOSS[SCCE], in2, 2, NULL, &o)); /* labels (4) against (4 x 3) */
  kl_tensor_release(o);
  o = NULL;
  kl_tensor *in3[2] = {a, v4};
  CHECK_ERR(run_def(LOSS[SCCE], in3, 2, NULL, &o), KL_ESHAPE,
            "sparse_categorical_crossentropy: y_pred must have a class axis, got shape (4)");
  kl_tensor *ip = mk(KL_INT64, 2, s43, NULL), *in4[2] = {b, ip};
  CHECK_ERR(run_def(LOSS[BCE], in4, 2, NULL, &o), KL_EDTYPE,
            "binary_crossentropy: y_pred must be float32 or float64, got int64");
  double lab[5] = {1, 2, 7, 1, 1};
  kl_tensor *yt = mk(KL_FLOAT64, 1, s5, lab), *yp = mk(KL_FLOAT32, 2, s55, NULL);
  kl_tensor *in5[2] = {yt, yp};
  CHECK_ERR(run_def(LOSS[SCCE], in5, 2, NULL, &o), KL_EINDEX,
            "sparse_categorical_crossentropy: label 7 out of range [1, 5] at row 3");
  kl_tensor_data_set(yt, 2, 3);
  kl_tensor_data_set(yt, 0, 0);
  CHECK_ERR(run_def(LOSS[SCCE], in5, 2, NULL, &o), KL_EINDEX,
            "sparse_categorical_crossentropy: label 0 out of range [1, 5] at row 1");
  kl_tensor_data_set(yt, 0, 1);
  kl_tensor_data_set(yt, 1, 1.5);
  CHECK_ERR(run_def(LOSS[SCCE], in5, 2, NULL, &o), KL_EINDEX,
            "sparse_categorical_crossentropy: label 1.5 is not an integer at row 2");
  CHECK(o == NULL);
  kl_tensor_release(a);
  kl_tensor_release(b);
  kl_tensor_release(v4);
  kl_tensor_release(ip);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
}

/* Random cases against ref_loss in several dtype and shape combinations. */
static void test_random(kl_dtype tdt, kl_dtype pdt, double tol) {
  kl_rng r;
  kl_rng_seed(&r, 99 + tdt * 3 + pdt);
  int64_t s[3] = {9, 4, 5}, s1[1] = {9}, s91[2] = {9, 1};
  for (int k = 0; k < 5; k++) {
    int nd = k == CCE ? 3 : 2; /* cce also over a (9, 4, 5) tensor */
    kl_tensor *yp = rnd(pdt, nd, s, &r, 0.01, 0.99), *yt;
    if (k == SCCE) {
      yt = mk(tdt, 1, s1, NULL);
      for (int i = 0; i < 9; i++) kl_tensor_data_set(yt, i, 1 + (double)kl_rng_below(&r, 4));
    } else if (k == CCE) {
      yt = mk(tdt, nd, s, NULL);
      for (int i = 0; i < 36; i++) kl_tensor_data_set(yt, i * 5 + (int)kl_rng_below(&r, 5), 1);
    } else if (k == BCE) {
      yt = mk(tdt, nd, s, NULL);
      for (int i = 0; i < 36; i++) kl_tensor_data_set(yt, i, (double)kl_rng_below(&r, 2));
    } else {
      yt = rnd(tdt, nd, s, &r, -2, 2);
    }
    kl_tensor_data_set(yp, 0, 0); /* one clipped entry */
    CHECK_NEAR(loss_of(LOSS[k], yt, yp), ref_loss(k, yt, yp), tol);
    kl_tensor_release(yt);
    kl_tensor_release(yp);
  }
  /* y_true (n) against y_pred (n, 1) for the elementwise losses */
  for (int k = 0; k < 3; k++) {
    kl_tensor *yp = rnd(pdt, 2, s91, &r, 0.01, 0.99), *yt = mk(tdt, 1, s1, NULL);
    for (int i = 0; i < 9; i++) kl_tensor_data_set(yt, i, (double)kl_rng_below(&r, 2));
    CHECK_NEAR(loss_of(LOSS[k], yt, yp), ref_loss(k, yt, yp), tol);
    kl_tensor_release(yt);
    kl_tensor_release(yp);
  }
}

/* Central differences w.r.t. y_pred for every loss, gout a random 0-d value. */
static void test_fd(void) {
  kl_rng r;
  kl_rng_seed(&r, 3);
  int64_t s[2] = {4, 3}, s4[1] = {4}, s41[2] = {4, 1};
  for (int k = 0; k < 5; k++) {
    kl_tensor *yp = rnd(KL_FLOAT64, 2, s, &r, 0.05, 0.95), *yt;
    if (k == SCCE) {
      double lab[4] = {1, 3, 2, 3};
      yt = mk(KL_FLOAT64, 1, s4, lab);
    } else if (k == CCE) {
      double oh[12] = {0, 1, 0, 1, 0, 0, 0, 0, 1, 0.5, 0.5, 0};
      yt = mk(KL_FLOAT64, 2, s, oh);
    } else {
      yt = rnd(KL_FLOAT64, 2, s, &r, 0, 1);
    }
    kl_tensor *in[2] = {yt, yp};
    kl_tensor_release(fd_check(LOSS[k], in, 2, NULL, 1, KL_STYPE_DEFAULT, 1e-6, &r));
    kl_tensor_release(yt);
    kl_tensor_release(yp);
  }
  kl_tensor *yp = rnd(KL_FLOAT64, 2, s41, &r, 0.05, 0.95), *yt = rnd(KL_FLOAT64, 1, s4, &r, 0, 1);
  kl_tensor *in[2] = {yt, yp};
  for (int k = 0; k < 3; k++)
    kl_tensor_release(fd_check(LOSS[k], in, 2, NULL, 1, KL_STYPE_DEFAULT, 1e-6, &r));
  kl_tensor_release(yt);
  kl_tensor_release(yp);
}

/* ------------------------------------------------------------------- metrics */

static double metric(kl_metric m, kl_tensor *yt, kl_tensor *yp) {
  double v = NAN;
  CHECK_OK(kl_metric_value(m, yt, yp, &v));
  return v;
}

static void test_metrics_exact(void) {
  int64_t s22[2] = {2, 2}, s4[1] = {4}, s41[2] = {4, 1}, s33[2] = {3, 3}, s3[1] = {3},
          s31[2] = {3, 1};
  double t[4] = {1, 2, 3, 4}, p[4] = {1.5, 2, 2, 5};
  kl_tensor *yt = mk(KL_FLOAT64, 2, s22, t), *yp = mk(KL_FLOAT32, 2, s22, p);
  CHECK_NEAR(metric(KL_METRIC_MSE, yt, yp), 0.5625, 1e-15);
  CHECK_NEAR(metric(KL_METRIC_MAE, yt, yp), 0.625, 1e-15);
  double s = 0;
  int64_t c = 0;
  CHECK_OK(kl_metric_eval(KL_METRIC_MSE, yt, yp, &s, &c));
  CHECK(c == 2 && fabs(s - 1.125) < 1e-15);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
  double bt[4] = {1, 0, 1, 0}, bp[4] = {0.7, 0.5, 0.5, 0.2};
  yt = mk(KL_FLOAT32, 1, s4, bt);
  yp = mk(KL_FLOAT64, 2, s41, bp);
  CHECK_NEAR(metric(KL_METRIC_BINARY_ACCURACY, yt, yp), 0.75, 1e-15);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
  double ct[9] = {0, 1, 0, 1, 0, 0, 0, 0, 1}, cp[9] = {.1, .8, .1, .3, .3, .4, .5, .1, .5};
  double st[3] = {2, 1, 3};
  yt = mk(KL_FLOAT64, 2, s33, ct);
  yp = mk(KL_FLOAT64, 2, s33, cp);
  CHECK_NEAR(metric(KL_METRIC_CATEGORICAL_ACCURACY, yt, yp), 1.0 / 3, 1e-15);
  kl_tensor *sl = mk(KL_INT64, 1, s3, st), *sl1 = mk(KL_FLOAT32, 2, s31, st);
  CHECK_NEAR(metric(KL_METRIC_SPARSE_CATEGORICAL_ACCURACY, sl, yp), 1.0 / 3, 1e-15);
  CHECK_NEAR(metric(KL_METRIC_SPARSE_CATEGORICAL_ACCURACY, sl1, yp), 1.0 / 3, 1e-15);
  kl_tensor_data_set(sl, 1, 3); /* row 2's argmax is column 3 */
  CHECK_NEAR(metric(KL_METRIC_SPARSE_CATEGORICAL_ACCURACY, sl, yp), 2.0 / 3, 1e-15);
  kl_tensor_data_set(sl, 2, 4);
  s = 5;
  c = 7;
  CHECK_ERR(kl_metric_eval(KL_METRIC_SPARSE_CATEGORICAL_ACCURACY, sl, yp, &s, &c), KL_EINDEX,
            "sparse_categorical_accuracy: label 4 out of range [1, 3] at row 3");
  CHECK(s == 5 && c == 7);
  CHECK_ERR(kl_metric_eval(KL_METRIC_CATEGORICAL_ACCURACY, sl1, yp, &s, &c), KL_ESHAPE,
            "categorical_accuracy: y_true shape (3 x 1) does not match y_pred shape (3 x 3)");
  kl_tensor_release(sl);
  kl_tensor_release(sl1);
  kl_tensor_release(yt);
  kl_tensor_release(yp);
}

/* Two batches accumulated equal the metric over their union; random cases vs loops. */
static void test_metrics_accumulate(void) {
  kl_rng r;
  kl_rng_seed(&r, 17);
  int64_t s[2] = {10, 4}, s1[1] = {10};
  kl_tensor *yp = rnd(KL_FLOAT64, 2, s, &r, 0, 1), *yt = rnd(KL_FLOAT64, 2, s, &r, 0, 1);
  kl_tensor *lab = mk(KL_FLOAT64, 1, s1, NULL);
  for (int i = 0; i < 40; i++) kl_tensor_data_set(yt, i, kl_tensor_data_at(yt, i) > 0.5);
  for (int i = 0; i < 10; i++) kl_tensor_data_set(lab, i, 1 + (double)kl_rng_below(&r, 4));
  for (int m = 0; m <= KL_METRIC_SPARSE_CATEGORICAL_ACCURACY; m++) { /* the sample means */
    kl_tensor *t = m == KL_METRIC_SPARSE_CATEGORICAL_ACCURACY ? lab : yt;
    kl_tensor *t1 = NULL, *t2 = NULL, *p1 = NULL, *p2 = NULL;
    CHECK_OK(kl_tensor_slice_rows(t, 0, 4, &t1));
    CHECK_OK(kl_tensor_slice_rows(t, 4, 10, &t2));
    CHECK_OK(kl_tensor_slice_rows(yp, 0, 4, &p1));
    CHECK_OK(kl_tensor_slice_rows(yp, 4, 10, &p2));
    double sum = 0, whole = NAN, ref = 0;
    int64_t cnt = 0;
    CHECK_OK(kl_metric_eval((kl_metric)m, t1, p1, &sum, &cnt));
    CHECK_OK(kl_metric_eval((kl_metric)m, t2, p2, &sum, &cnt));
    CHECK_OK(kl_metric_value((kl_metric)m, t, yp, &whole));
    CHECK(cnt == 10);
    CHECK_NEAR(sum / cnt, whole, 1e-12);
    for (int i = 0; i < 10; i++) { /* reference loop */
      int am = 0, at = 0;
      double row = 0;
      for (int j = 0; j < 4; j++) {
        double p = kl_tensor_data_at(yp, i * 4 + j), q = kl_tensor_data_at(yt, i * 4 + j);
        if (p > kl_tensor_data_at(yp, i * 4 + am)) am = j;
        if (q > kl_tensor_data_at(yt, i * 4 + at)) at = j;
        if (m == KL_METRIC_MSE) row += (p - q) * (p - q) / 4;
        if (m == KL_METRIC_MAE) row += fabs(p - q) / 4;
        if (m == KL_METRIC_BINARY_ACCURACY) row += (q == (p > 0.5)) / 4.0;
      }
      if (m == KL_METRIC_CATEGORICAL_ACCURACY) row = am == at;
      if (m == KL_METRIC_SPARSE_CATEGORICAL_ACCURACY) row = am + 1 == kl_tensor_data_at(lab, i);
      ref += row / 10;
    }
    CHECK_NEAR(whole, ref, 1e-12);
    kl_tensor_release(t1);
    kl_tensor_release(t2);
    kl_tensor_release(p1);
    kl_tensor_release(p2);
  }
  kl_tensor_release(yp);
  kl_tensor_release(yt);
  kl_tensor_release(lab);
}

static void test_metric_names(void) {
  kl_metric m = KL_METRIC_COUNT;
  kl_op op = KL_OP_COUNT;
  CHECK_OK(kl_metric_resolve("accuracy", "binary_crossentropy", &m));
  CHECK(m == KL_METRIC_BINARY_ACCURACY);
  CHECK_OK(kl_metric_resolve("acc", "categorical_crossentropy", &m));
  CHECK(m == KL_METRIC_CATEGORICAL_ACCURACY);
  CHECK_OK(kl_metric_resolve("accuracy", "sparse_categorical_crossentropy", &m));
  CHECK(m == KL_METRIC_SPARSE_CATEGORICAL_ACCURACY);
  CHECK_OK(kl_metric_resolve_units("accuracy", "mse", 1, &m));
  CHECK(m == KL_METRIC_BINARY_ACCURACY);
  CHECK_OK(kl_metric_resolve_units("accuracy", "sparse_categorical_crossentropy", 5, &m));
  CHECK(m == KL_METRIC_SPARSE_CATEGORICAL_ACCURACY);
  CHECK_OK(kl_metric_parse("mae", &m));
  CHECK(m == KL_METRIC_MAE && !strcmp(kl_metric_name(m), "mae"));
  CHECK_OK(kl_metric_parse("mean_squared_error", &m));
  CHECK(m == KL_METRIC_MSE);
  CHECK_OK(kl_metric_parse("sparse_categorical_accuracy", &m));
  CHECK(m == KL_METRIC_SPARSE_CATEGORICAL_ACCURACY);
  CHECK_ERR(kl_metric_resolve("foo", "mse", &m), KL_EINVAL, "unknown metric 'foo'");
  CHECK_OK(kl_loss_parse("mse", &op));
  CHECK(op == KL_OP_LOSS_MSE);
  CHECK_OK(kl_loss_parse("sparse_categorical_crossentropy", &op));
  CHECK(op == KL_OP_LOSS_SCCE);
  CHECK_OK(kl_loss_parse("mean_absolute_error", &op));
  CHECK(op == KL_OP_LOSS_MAE);
  CHECK_OK(kl_loss_parse("hinge", &op));
  CHECK(op == KL_OP_LOSS_HINGE);
  CHECK_ERR(kl_loss_parse("cosine", &op), KL_EINVAL, "unknown loss 'cosine'");
}

int main(void) {
  test_exact();
  test_grad_exact();
  test_errors();
  test_random(KL_FLOAT64, KL_FLOAT64, 1e-12);
  test_random(KL_FLOAT32, KL_FLOAT64, 1e-12);
  test_random(KL_FLOAT64, KL_FLOAT32, 1e-5);
  test_random(KL_FLOAT32, KL_FLOAT32, 1e-5);
  test_fd();
  test_metrics_exact();
  test_metrics_accumulate();
  test_metric_names();
  KLTEST_DONE();
}
