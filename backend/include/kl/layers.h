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
  KL_METRIC_TOP_K_CATEGORICAL_ACCURACY,   /* y_pred's value at argmax(y_true) has fewer than k
                                             larger values in its row (tf's in_top_k) */
  /* Ratios accumulated over the epoch (sum: the numerator, count: the denominator), not means
   * over samples; each element of y_pred counts, predicted positive when > 0.5; y_true must
   * hold 0 or 1. An empty denominator gives 0 (Keras' divide_no_nan). */
  KL_METRIC_PRECISION,                    /* TP / (TP + FP) */
  KL_METRIC_RECALL,                       /* TP / (TP + FN) */
  /* Not a sum and count: only through kl_metric_acc. */
  KL_METRIC_AUC,                          /* ROC AUC over num_thresholds buckets (tf.keras) */
  KL_METRIC_COUNT
} kl_metric;

/* Canonical Keras name: "mse", "mae", "binary_accuracy", ... (static string). Also
 * "top_k_categorical_accuracy", "precision", "recall" and "auc". */
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
/* The metric over one batch (kl_metric_acc's result over that batch alone, default
 * parameters). */
kl_status kl_metric_value(kl_metric m, const kl_tensor *y_true, const kl_tensor *y_pred,
                          double *out);

/* A metric's running state over an epoch (the C batch loop keeps one per metric). param:
 * top-k's k (0: 5), AUC's num_thresholds (0: 200; at least 2); unused otherwise. The AUC
 * keeps its thresholds (tf.keras': -1e-7, i / (T - 1) for i = 1..T-2, 1 + 1e-7, rounded to
 * float32) and the positive and negative counts of the T + 1 intervals between them. */
typedef struct kl_metric_acc {
  kl_metric m;
  int64_t param;
  double sum, count; /* the sum and count of kl_metric_eval; the AUC's totals */
  double *buf;       /* AUC: T thresholds, then T + 1 positive and T + 1 negative counts */
} kl_metric_acc;
/* Sets up *a (empty). KL_EINVAL for a bad id or param: "auc: num_thresholds must be in
 * [2, 1000000], got 1". kl_metric_acc_free releases it (a zeroed acc may be freed too). */
kl_status kl_metric_acc_init(kl_metric_acc *a, kl_metric m, int64_t param);
/* Adds one batch. The AUC wants y_true 0/1 and y_pred in [0, 1]: "auc: y_pred
 * 1.5 out of range [0, 1] at row 3". On error a is unchanged. */
kl_status kl_metric_acc_update(kl_metric_acc *a, const kl_tensor *y_true, const kl_tensor *y_pred);
/* The value so far: NaN for a mean over no sample, 0 for an empty ratio. */
double kl_metric_acc_result(const kl_metric_acc *a);
void kl_metric_acc_reset(kl_metric_acc *a);
void kl_metric_acc_free(kl_metric_acc *a);

/* Loss op for a Keras loss name: "mse"/"mean_squared_error"/"MSE", "mae"/
 * "mean_absolute_error"/"MAE", "binary_crossentropy", "categorical_crossentropy",
 * "sparse_categorical_crossentropy" -> KL_OP_LOSS_*. Unknown: KL_EINVAL "unknown loss 'foo'". */
kl_status kl_loss_parse(const char *name, kl_op *out);

/* Checks data for loss op `op` before it is batched, rows counted from row0 (0: the data's
 * first row) and reported 1-based: labels the loss refuses (sparse categorical: integers in
 * 1..C; binary crossentropy: in [0, 1]) and sample weights w (finite, >= 0; may be NULL).
 * KL_EINDEX "sparse_categorical_crossentropy: label 0 out of range [1, 3] at row 5". Other
 * ops (not losses) and stypes pass. */
kl_status kl_loss_check_data(kl_op op, const kl_tensor *y, const kl_tensor *w, int64_t C,
                             int64_t row0);

#ifdef __cplusplus
}
#endif
#endif /* KL_LAYERS_H */
