/* layers/metrics.c: Keras metrics over a batch (accumulated as sum and count) and the
 * resolution of metric and loss names. */
#include <math.h>
#include <string.h>
#include "kl/layers.h"
#include "layers_util.h"

static const char *const metric_names[KL_METRIC_COUNT] = {
    "mse", "mae", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"};

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
  } else if (m == KL_METRIC_CATEGORICAL_ACCURACY) {
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

/* The sum and count over dense inputs already checked. */
static kl_status metric_sum(kl_metric m, const kl_tensor *yt, const kl_tensor *yp, double *sum,
                            int64_t *count) {
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

kl_status kl_metric_eval(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                         double *sum, int64_t *count) {
  kl_tensor *dt = NULL, *dp = NULL;
  kl_status st = KL_OK;
  KL_CHECK(m >= 0 && m < KL_METRIC_COUNT, KL_EINVAL, "metric: unknown metric id %d", (int)m);
  KL_CHECK(y_true && y_pred && sum && count, KL_EINVAL, "%s: NULL argument", kl_metric_name(m));
  KL_TRY(metric_check(m, y_true, y_pred));
  if (y_true->stype != KL_STYPE_DEFAULT) {
    st = kl_tensor_tostype(y_true, KL_STYPE_DEFAULT, &dt);
    if (st != KL_OK) goto done;
  }
  if (y_pred->stype != KL_STYPE_DEFAULT) {
    st = kl_tensor_tostype(y_pred, KL_STYPE_DEFAULT, &dp);
    if (st != KL_OK) goto done;
  }
  st = metric_sum(m, dt ? dt : y_true, dp ? dp : y_pred, sum, count);
done:
  kl_tensor_release(dt);
  kl_tensor_release(dp);
  return st;
}

kl_status kl_metric_value(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                          double *out) {
  double s = 0;
  int64_t c = 0;
  KL_TRY(kl_metric_eval(m, y_true, y_pred, &s, &c));
  *out = c ? s / (double)c : 0.0;
  return KL_OK;
}
