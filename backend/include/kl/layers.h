/* kl/layers.h: metrics and loss names for the layer kernels (layers/metrics.c). */
#ifndef KL_LAYERS_H
#define KL_LAYERS_H
#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The Keras metrics. Each is a mean over samples (a sample: one row of y_pred's last
 * axis, or one element when y_pred is 1-d), so batches accumulate exactly. */
typedef enum kl_metric {
  KL_METRIC_MSE = 0,                      /* mean over the row of (y_pred - y_true)^2 */
  KL_METRIC_MAE,                          /* mean over the row of |y_pred - y_true| */
  KL_METRIC_BINARY_ACCURACY,              /* mean over the row of y_true == (y_pred > 0.5) */
  KL_METRIC_CATEGORICAL_ACCURACY,         /* argmax(y_true) == argmax(y_pred) (first max) */
  KL_METRIC_SPARSE_CATEGORICAL_ACCURACY,  /* y_true (1-based class id) == argmax(y_pred)+1 */
  KL_METRIC_COUNT
} kl_metric;

/* Canonical Keras name: "mse", "mae", "binary_accuracy", ... (static string). */
const char *kl_metric_name(kl_metric m);

/* Resolves a metric name as Keras 2 compile does. "mse"/"mean_squared_error",
 * "mae"/"mean_absolute_error", "binary_accuracy", "categorical_accuracy",
 * "sparse_categorical_accuracy" map directly; "accuracy"/"acc" depend on the loss:
 * binary_crossentropy -> binary, sparse_categorical_crossentropy -> sparse categorical,
 * otherwise (categorical_crossentropy, NULL, ...) categorical. Unknown name: KL_EINVAL
 * "unknown metric 'foo'". */
kl_status kl_metric_resolve(const char *name, const char *loss_name, kl_metric *out);
/* As kl_metric_resolve, also knowing the model's output width: output_units == 1 makes
 * "accuracy" binary (Keras 2: output_shape[-1] == 1). output_units <= 0 means unknown. */
kl_status kl_metric_resolve_units(const char *name, const char *loss_name, int64_t output_units,
                                  kl_metric *out);
/* kl_metric_resolve(name, NULL, out). */
kl_status kl_metric_parse(const char *name, kl_metric *out);

/* Adds one batch: *sum += the sum of per-sample metric values, *count += the number of
 * samples. The epoch's metric is sum / count. y_true float32/float64/int64, y_pred
 * float32/float64, shapes as the matching loss accepts ((n) against (n, 1) works; sparse
 * labels (n) or (n, 1) against (n, C)). Sparse stypes are densified. Bad labels for the
 * sparse accuracy: KL_EINDEX "sparse_categorical_accuracy: label 7 out of range [1, 5] at
 * row 3". On error *sum and *count are unchanged. */
kl_status kl_metric_eval(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                         double *sum, int64_t *count);
/* The metric over one batch (sum / count of kl_metric_eval). */
kl_status kl_metric_value(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                          double *out);

/* Loss op for a Keras loss name: "mse"/"mean_squared_error"/"MSE", "mae"/
 * "mean_absolute_error"/"MAE", "binary_crossentropy", "categorical_crossentropy",
 * "sparse_categorical_crossentropy" -> KL_OP_LOSS_*. Unknown: KL_EINVAL "unknown loss 'foo'". */
kl_status kl_loss_parse(const char *name, kl_op *out);

#ifdef __cplusplus
}
#endif
#endif /* KL_LAYERS_H */
