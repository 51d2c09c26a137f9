/* layers/metrics.c: Keras metrics over a batch (accumulated as sum and count) and the
 * resolution of metric and loss names. */
#include <math.h>
#include <string.h>
#include "kl/layers.h"
#include "layers_util.h"

static const char *const metric_names[KL_METRIC_COUNT] = {
    "mse",       "mae",    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "precision", "recall", "auc"};

/* Keras' defaults: top_k_categorical_accuracy's k, AUC's num_thresholds. */
#define KL_TOP_K_DEFAULT 5
#define KL_AUC_THRESHOLDS_DEFAULT 200

const char *kl_metric_name(kl_metric m) {
  return (m >= 0 && m < KL_METRIC_COUNT) ? metric_names[m] : "unknown";
}

kl_status kl_metric_resolve_units(const char *name, const char *loss_name, int64_t output_units,
                                  kl_metric *out) {
  KL_CHECK(name != NULL, KL_EINVAL, "unknown metric (null)");
  if (!strcmp(name, "mse") || !strcmp(name, "MSE") || !strcmp(name, "mean_squared_error")) {
    *out = KL_METRIC_MSE;
  } else if (!strcmp(name, "mae") || !strcmp(name, "MAE") ||
             !strcmp(name, "mean_absolute_error")) {
    *out = KL_METRIC_MAE;
  } else if (!strcmp(name, "binary_accuracy")) {
    *out = KL_METRIC_BINARY_ACCURACY;
  } else if (!strcmp(name, "categorical_accuracy")) {
    *out = KL_METRIC_CATEGORICAL_ACCURACY;
  } else if (!strcmp(name, "sparse_categorical_accuracy")) {
    *out = KL_METRIC_SPARSE_CATEGORICAL_ACCURACY;
  } else if (!strcmp(name, "top_k_categorical_accuracy")) {
    *out = KL_METRIC_TOP_K_CATEGORICAL_ACCURACY;
  } else if (!strcmp(name, "precision")) {
    *out = KL_METRIC_PRECISION;
  } else if (!strcmp(name, "recall")) {
    *out = KL_METRIC_RECALL;
  } else if (!strcmp(name, "auc")) {
    *out = KL_METRIC_AUC;
  } else if (!strcmp(name, "accuracy") || !strcmp(name, "acc")) {
    /* Keras 2 (training.py): a 1-unit output or binary_crossentropy -> binary; sparse
     * categorical crossentropy -> sparse categorical; anything else -> categorical. */
    if (output_units == 1 || (loss_name && !strcmp(loss_name, "binary_crossentropy")))
      *out = KL_METRIC_BINARY_ACCURACY;
    else if (loss_name && !strcmp(loss_name, "sparse_categorical_crossentropy"))
      *out = KL_METRIC_SPARSE_CATEGORICAL_ACCURACY;
    else
      *out = KL_METRIC_CATEGORICAL_ACCURACY;
  } else {
    return kl_seterr(KL_EINVAL, "unknown metric '%s'", name);
  }
  return KL_OK;
}

kl_status kl_metric_resolve(const char *name, const char *loss_name, kl_metric *out) {
  return kl_metric_resolve_units(name, loss_name, 0, out);
}

kl_status kl_metric_parse(const char *name, kl_metric *out) {
  return kl_metric_resolve_units(name, NULL, 0, out);
}

kl_status kl_loss_parse(const char *name, kl_op *out) {
  KL_CHECK(name != NULL, KL_EINVAL, "unknown loss (null)");
  if (!strcmp(name, "mse") || !strcmp(name, "MSE") || !strcmp(name, "mean_squared_error"))
    *out = KL_OP_LOSS_MSE;
  else if (!strcmp(name, "mae") || !strcmp(name, "MAE") || !strcmp(name, "mean_absolute_error"))
    *out = KL_OP_LOSS_MAE;
  else if (!strcmp(name, "binary_crossentropy"))
    *out = KL_OP_LOSS_BCE;
  else if (!strcmp(name, "categorical_crossentropy"))
    *out = KL_OP_LOSS_CCE;
  else if (!strcmp(name, "sparse_categorical_crossentropy"))
    *out = KL_OP_LOSS_SCCE;
  else if (!strcmp(name, "hinge"))
    *out = KL_OP_LOSS_HINGE;
  else if (!strcmp(name, "squared_hinge"))
    *out = KL_OP_LOSS_SQUARED_HINGE;
  else if (!strcmp(name, "poisson"))
    *out = KL_OP_LOSS_POISSON;
  else if (!strcmp(name, "huber") || !strcmp(name, "huber_loss"))
    *out = KL_OP_LOSS_HUBER;
  else
    return kl_seterr(KL_EINVAL, "unknown loss '%s'", name);
  return KL_OK;
}

static int shapes_equal(const kl_tensor *a, const kl_tensor *b) {
  return a->ndim == b->ndim &&
         memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

/* a's shape is b's first bndim axes followed by one axis of length 1. */
static int plus_one(const kl_tensor *a, const kl_tensor *b, int bndim) {
  return a->ndim == bndim + 1 && a->shape[bndim] == 1 &&
         memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)bndim) == 0;
}

/* Shape rules (as the losses): elementwise metrics accept equal shapes or a trailing axis of
 * 1 on either side; categorical wants equal shapes; sparse wants y_pred without its class
 * axis (optionally with a trailing 1). */
static kl_status metric_check(kl_metric m, const kl_tensor *yt, const kl_tensor *yp) {
  const char *fn = kl_metric_name(m);
  char st[128], sp[128];
  int ok;
  KL_CHECK(kl_is_float(yp->dtype), KL_EDTYPE, "%s: y_pred must be float32 or float64, got %s",
           fn, kl_dtype_name(yp->dtype));
  KL_CHECK(yp->ndim >= 1, KL_ESHAPE, "%s: y_pred must have a batch axis, got a scalar", fn);
  if (m == KL_METRIC_SPARSE_CATEGORICAL_ACCURACY) {
    KL_CHECK(yp->ndim >= 2, KL_ESHAPE, "%s: y_pred must have a class axis, got shape (%s)", fn,
             kl_lu_shape_str(sp, sizeof sp, yp->ndim, yp->shape));
    int cut = yp->ndim - 1;
    ok = (yt->ndim == cut && memcmp(yt->shape, yp->shape, sizeof(int64_t) * (size_t)cut) == 0) ||
         plus_one(yt, yp, cut);
  } else if (m == KL_METRIC_CATEGORICAL_ACCURACY || m == KL_METRIC_TOP_K_CATEGORICAL_ACCURACY) {
    ok = shapes_equal(yt, yp);
  } else {
    ok = shapes_equal(yt, yp) || plus_one(yt, yp, yp->ndim) || plus_one(yp, yt, yt->ndim);
  }
  KL_CHECK(ok, KL_ESHAPE, "%s: y_true shape (%s) does not match y_pred shape (%s)", fn,
           kl_lu_shape_str(st, sizeof st, yt->ndim, yt->shape),
           kl_lu_shape_str(sp, sizeof sp, yp->ndim, yp->shape));
  return KL_OK;
}

/* Index of the first largest value of row r (width C) of buffer d. */
static int64_t argmax_row(const void *d, kl_dtype dt, int64_t r, int64_t C) {
  int64_t best = 0;
  double bv = kl_lu_read(d, dt, r * C);
  for (int64_t j = 1; j < C; j++) {
    double v = kl_lu_read(d, dt, r * C + j);
    if (v > bv) {
      bv = v;
      best = j;
    }
  }
  return best;
}

/* Whether the value at column target of row r (width C) is in the row's top k: fewer than
 * k values of the row are larger (tf.nn.in_top_k: ties at the boundary are in). */
static int in_top_k(const void *d, kl_dtype dt, int64_t r, int64_t C, int64_t target, int64_t k) {
  double v = kl_lu_read(d, dt, r * C + target);
  int64_t larger = 0;
  for (int64_t j = 0; j < C; j++) larger += kl_lu_read(d, dt, r * C + j) > v;
  return larger < k;
}

/* Labels of precision, recall and AUC: 0 or 1 (rows 1-based, W values a row). */
static kl_status binary_labels_check(const char *fn, const void *td, kl_dtype tt, int64_t n,
                                     int64_t W) {
  for (int64_t e = 0; e < n; e++) {
    double v = kl_lu_read(td, tt, e);
    KL_CHECK(v == 0 || v == 1, KL_EINDEX, "%s: label %.15g at row %lld is not 0 or 1", fn, v,
             (long long)(e / W + 1));
  }
  return KL_OK;
}

/* The sum and count over dense inputs already checked; k: top-k's k. */
static kl_status metric_sum(kl_metric m, const kl_tensor *yt, const kl_tensor *yp, int64_t k,
                            double *sum, int64_t *count) {
  const void *td = yt->data, *pd = yp->data;
  kl_dtype tt = yt->dtype, pt = yp->dtype;
  int64_t n = kl_tensor_numel(yp);
  int64_t W = yp->ndim >= 2 ? yp->shape[yp->ndim - 1] : 1;
  int64_t rows = W ? n / W : 0;
  double s = 0;
  if (m == KL_METRIC_SPARSE_CATEGORICAL_ACCURACY) {
    const char *fn = kl_metric_name(m);
    for (int64_t r = 0; r < rows; r++) {
      double v = kl_lu_read(td, tt, r);
      KL_CHECK(v == floor(v), KL_EINDEX, "%s: label %.15g is not an integer at row %lld", fn, v,
               (long long)(r + 1));
      KL_CHECK(v >= 1 && v <= (double)W, KL_EINDEX,
               "%s: label %.15g out of range [1, %lld] at row %lld", fn, v, (long long)W,
               (long long)(r + 1));
    }
    for (int64_t r = 0; r < rows; r++)
      s += (double)(argmax_row(pd, pt, r, W) + 1 == (int64_t)kl_lu_read(td, tt, r));
  } else if (m == KL_METRIC_CATEGORICAL_ACCURACY) {
    for (int64_t r = 0; r < rows; r++)
      s += (double)(argmax_row(pd, pt, r, W) == argmax_row(td, tt, r, W));
  } else if (m == KL_METRIC_TOP_K_CATEGORICAL_ACCURACY) {
    for (int64_t r = 0; r < rows; r++) s += (double)in_top_k(pd, pt, r, W, argmax_row(td, tt, r, W), k);
  } else if (m == KL_METRIC_PRECISION || m == KL_METRIC_RECALL) {
    double tp = 0, den = 0;
    KL_TRY(binary_labels_check(kl_metric_name(m), td, tt, n, W));
    for (int64_t e = 0; e < n; e++) {
      int t = kl_lu_read(td, tt, e) == 1, p = kl_lu_read(pd, pt, e) > 0.5;
      tp += t && p;
      den += m == KL_METRIC_PRECISION ? p : t;
    }
    *sum += tp;
    *count += (int64_t)den;
    return KL_OK;
  } else {
    for (int64_t r = 0; r < rows; r++) {
      double rs = 0;
      for (int64_t j = 0; j < W; j++) {
        double t = kl_lu_read(td, tt, r * W + j), p = kl_lu_read(pd, pt, r * W + j);
        if (m == KL_METRIC_MSE)
          rs += (p - t) * (p - t);
        else if (m == KL_METRIC_MAE)
          rs += fabs(p - t);
        else
          rs += (double)(t == (p > 0.5 ? 1.0 : 0.0));
      }
      s += rs / (double)W;
    }
  }
  *sum += s;
  *count += rows;
  return KL_OK;
}

/* Densifies sparse inputs and runs metric_sum. */
static kl_status metric_eval_k(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                               int64_t k, double *sum, int64_t *count) {
  kl_tensor *dt = NULL, *dp = NULL;
  kl_status st = KL_OK;
  KL_TRY(metric_check(m, y_true, y_pred));
  if (y_true->stype != KL_STYPE_DEFAULT) {
    st = kl_tensor_tostype(y_true, KL_STYPE_DEFAULT, &dt);
    if (st != KL_OK) goto done;
  }
  if (y_pred->stype != KL_STYPE_DEFAULT) {
    st = kl_tensor_tostype(y_pred, KL_STYPE_DEFAULT, &dp);
    if (st != KL_OK) goto done;
  }
  st = metric_sum(m, dt ? dt : y_true, dp ? dp : y_pred, k, sum, count);
done:
  kl_tensor_release(dt);
  kl_tensor_release(dp);
  return st;
}

kl_status kl_metric_eval(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                         double *sum, int64_t *count) {
  KL_CHECK(m >= 0 && m < KL_METRIC_COUNT, KL_EINVAL, "metric: unknown metric id %d", (int)m);
  KL_CHECK(y_true && y_pred && sum && count, KL_EINVAL, "%s: NULL argument", kl_metric_name(m));
  KL_CHECK(m != KL_METRIC_AUC, KL_EINVAL,
           "%s: not a sum and count (use kl_metric_acc)", kl_metric_name(m));
  return metric_eval_k(m, y_true, y_pred, KL_TOP_K_DEFAULT, sum, count);
}

kl_status kl_metric_value(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                          double *out) {
  kl_metric_acc a;
  KL_TRY(kl_metric_acc_init(&a, m, 0));
  kl_status st = kl_metric_acc_update(&a, y_true, y_pred);
  if (st == KL_OK) *out = kl_metric_acc_result(&a);
  kl_metric_acc_free(&a);
  return st;
}

/* ------------------------------------------------------------ running state */

/* t itself (retained) when dense, else a dense copy. */
static kl_status densify(const kl_tensor *t, kl_tensor **out) {
  if (t->stype == KL_STYPE_DEFAULT) {
    *out = kl_tensor_retain((kl_tensor *)t);
    return KL_OK;
  }
  return kl_tensor_tostype(t, KL_STYPE_DEFAULT, out);
}

static int is_ratio(kl_metric m) { return m == KL_METRIC_PRECISION || m == KL_METRIC_RECALL; }

kl_status kl_metric_acc_init(kl_metric_acc *a, kl_metric m, int64_t param) {
  KL_CHECK(a != NULL, KL_EINVAL, "metric: NULL state");
  memset(a, 0, sizeof *a);
  KL_CHECK(m >= 0 && m < KL_METRIC_COUNT, KL_EINVAL, "metric: unknown metric id %d", (int)m);
  a->m = m;
  if (m == KL_METRIC_TOP_K_CATEGORICAL_ACCURACY) {
    KL_CHECK(param >= 0, KL_EINVAL, "top_k_categorical_accuracy: k must be >= 1, got %lld",
             (long long)param);
    a->param = param ? param : KL_TOP_K_DEFAULT;
  } else if (m == KL_METRIC_AUC) {
    int64_t T = param ? param : KL_AUC_THRESHOLDS_DEFAULT;
    KL_CHECK(T > 1 && T <= 1000000, KL_EINVAL, "auc: num_thresholds must be in [2, 1000000], got %lld",
             (long long)param);
    a->param = T;
    a->buf = kl_calloc((size_t)(3 * T + 2), sizeof *a->buf);
    if (!a->buf) return KL_ENOMEM;
    /* tf.keras: -eps, i / (T - 1) for i = 1..T-2, 1 + eps, as float32 constants */
    a->buf[0] = (double)(0.0f - 1e-7f);
    for (int64_t i = 1; i < T - 1; i++) a->buf[i] = (double)(float)((double)i / (double)(T - 1));
    a->buf[T - 1] = (double)(1.0f + 1e-7f);
  } else {
    KL_CHECK(param >= 0, KL_EINVAL, "%s: bad parameter %lld", kl_metric_name(m), (long long)param);
    a->param = param;
  }
  return KL_OK;
}

void kl_metric_acc_reset(kl_metric_acc *a) {
  if (!a) return;
  a->sum = a->count = 0;
  if (a->buf) memset(a->buf + a->param, 0, (size_t)(2 * a->param + 2) * sizeof *a->buf);
}

void kl_metric_acc_free(kl_metric_acc *a) {
  if (!a) return;
  kl_free(a->buf);
  a->buf = NULL;
}

/* The AUC's batch: every element is one (label, score) pair, counted in the interval of
 * thresholds it falls in (its score is above exactly the first j thresholds, compared in
 * float32 as tf.keras). Checked first, so a bad batch changes nothing. */
static kl_status auc_update(kl_metric_acc *a, const kl_tensor *yt, const kl_tensor *yp) {
  int64_t n = kl_tensor_numel(yp), T = a->param;
  int64_t W = yp->ndim >= 2 ? yp->shape[yp->ndim - 1] : 1;
  KL_TRY(binary_labels_check("auc", yt->data, yt->dtype, n, W));
  for (int64_t e = 0; e < n; e++) {
    double p = kl_lu_read(yp->data, yp->dtype, e);
    KL_CHECK(p >= 0 && p <= 1, KL_EINVAL, "auc: y_pred %.9g out of range [0, 1] at row %lld", p,
             (long long)(e / W + 1));
  }
  double *th = a->buf, *pos = a->buf + T, *neg = pos + T + 1;
  for (int64_t e = 0; e < n; e++) {
    float p = (float)kl_lu_read(yp->data, yp->dtype, e);
    int64_t lo = 0, hi = T; /* the first threshold >= p */
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if ((float)th[mid] < p) lo = mid + 1;
      else hi = mid;
    }
    if (kl_lu_read(yt->data, yt->dtype, e) == 1) pos[lo] += 1, a->sum += 1;
    else neg[lo] += 1, a->count += 1;
  }
  return KL_OK;
}

/* tf.keras' ROC AUC by interpolation: the trapezoids between the (FPR, TPR) points of
 * consecutive thresholds, with TP(i) = the positives scored above threshold i. */
static double auc_result(const kl_metric_acc *a) {
  int64_t T = a->param;
  const double *pos = a->buf + T, *neg = pos + T + 1;
  double P = a->sum, N = a->count, tp = P, fp = N, auc = 0;
  /* above threshold 0: everything in the intervals 1..T */
  tp -= pos[0];
  fp -= neg[0];
  double tpr = P > 0 ? tp / P : 0, fpr = N > 0 ? fp / N : 0;
  for (int64_t i = 1; i < T; i++) {
    tp -= pos[i];
    fp -= neg[i];
    double tpr2 = P > 0 ? tp / P : 0, fpr2 = N > 0 ? fp / N : 0;
    auc += (fpr - fpr2) * (tpr + tpr2) / 2;
    tpr = tpr2, fpr = fpr2;
  }
  return auc;
}

kl_status kl_metric_acc_update(kl_metric_acc *a, const kl_tensor *y_true, const kl_tensor *y_pred) {
  KL_CHECK(a && y_true && y_pred, KL_EINVAL, "metric: NULL argument");
  if (a->m == KL_METRIC_AUC) {
    kl_tensor *dt = NULL, *dp = NULL;
    kl_status st = metric_check(a->m, y_true, y_pred);
    if (st == KL_OK) st = densify(y_true, &dt);
    if (st == KL_OK) st = densify(y_pred, &dp);
    if (st == KL_OK) st = auc_update(a, dt, dp);
    kl_tensor_release(dt);
    kl_tensor_release(dp);
    return st;
  }
  double s = 0;
  int64_t c = 0;
  KL_TRY(metric_eval_k(a->m, y_true, y_pred, a->param, &s, &c));
  a->sum += s;
  a->count += (double)c;
  return KL_OK;
}

double kl_metric_acc_result(const kl_metric_acc *a) {
  if (!a) return NAN;
  if (a->m == KL_METRIC_AUC) return auc_result(a);
  if (a->count > 0) return a->sum / a->count;
  return is_ratio(a->m) ? 0.0 : NAN;
}
