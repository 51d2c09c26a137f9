/* optim.h: optimizers (SGD, Adam, Adagrad, RMSprop, Ftrl) with lazy row-sparse updates. */
#ifndef KL_OPTIM_H
#define KL_OPTIM_H

#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Update rules (MXNet's, as Keras-MXNet used them). Per element, with t the 1-based step:
 *   lr = learning_rate * 1 / (1 + decay * (t - 1))   (Keras 2's decay: t - 1 = iterations)
 *   g' = clip(rescale_grad * g, clipvalue)   (no clipping when clipvalue <= 0)
 *   gw = g' + weight_decay * w                (every optimizer but Ftrl)
 *   SGD      momentum == 0: w -= lr * gw
 *            momentum  > 0: v = momentum*v - lr*gw; w += v
 *            nesterov:      v = momentum*v - lr*gw; w += momentum*v - lr*gw   (Keras)
 *   Adam     lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
 *            m = beta_1*m + (1-beta_1)*gw; v = beta_2*v + (1-beta_2)*gw^2
 *            w -= lr_t * m / (sqrt(v) + epsilon)
 *   Adagrad  h += gw^2; w -= lr * gw / (sqrt(h) + epsilon)
 *   RMSprop  a = rho*a + (1-rho)*gw^2; w -= lr * gw / (sqrt(a) + epsilon)
 *   Ftrl     with P(n) = n^(-learning_rate_power) (sqrt(n) for the default -0.5), l1 =
 *            l1_regularization_strength (MXNet's lamda1), l2 = l2_regularization_strength,
 *            n starting at initial_accumulator_value (TensorFlow's / Keras' Ftrl, plus
 *            MXNet's beta and weight_decay):
 *            z += g' - (P(n + g'^2) - P(n)) * w / lr; n += g'^2
 *            w = |z| > l1 ? (sign(z)*l1 - z) / ((beta + P(n))/lr + weight_decay + 2*l2) : 0
 * Arithmetic runs in the weight's dtype (float32 or float64).
 *
 * Sparsity. The weight is dense or row_sparse; the gradient dense or row_sparse; states are
 * dense, shaped like the weight (a row_sparse weight's state row r belongs to logical row r).
 *   - dense gradient: every row is updated (the dense rule).
 *   - row_sparse gradient, lazy_update = 1: only the rows in g->indices change, in the
 *     weight and in every state; the cost is O(nnz(g) * row_width), never O(rows).
 *   - row_sparse gradient, lazy_update = 0: equals the update with the densified gradient
 *     exactly (rows absent from g see a zero gradient: momentum decays, weight decay
 *     applies, Adam's moments decay).
 * A row_sparse weight normally stores all its rows (the fast path). One that stores fewer
 * is updated on its stored rows only (its other rows are structurally zero and stay so); a
 * gradient row it does not store is an error (KL_EINDEX), and so is a dense gradient. */

typedef enum kl_opt_kind {
  KL_OPT_SGD = 0,
  KL_OPT_ADAM,
  KL_OPT_ADAGRAD,
  KL_OPT_RMSPROP,
  KL_OPT_FTRL,
  KL_OPT_COUNT
} kl_opt_kind;

/* An optimizer's hyperparameters: plain data, set the fields (or use kl_optimizer_set) after
 * kl_optimizer_init. Fields that a kind does not use are ignored by it. */
typedef struct kl_optimizer {
  kl_opt_kind kind;
  double learning_rate;
  double momentum;     /* SGD, in [0, 1] */
  int nesterov;        /* SGD, 0 or 1 */
  double weight_decay; /* >= 0 */
  double clipvalue;    /* <= 0: no clipping */
  double rescale_grad; /* finite */
  double beta_1, beta_2, epsilon; /* Adam (epsilon also Adagrad, RMSprop) */
  double rho;          /* RMSprop, in [0, 1) */
  double lamda1, beta; /* Ftrl (MXNet's spelling "lamda1": l1_regularization_strength) */
  double l2;           /* Ftrl l2_regularization_strength, >= 0 */
  double lr_power;     /* Ftrl learning_rate_power, <= 0 */
  double initial_accumulator_value; /* Ftrl: n's start, >= 0 */
  double decay;        /* >= 0: lr / (1 + decay * (t - 1)) */
  int lazy_update;     /* 0 or 1 */
} kl_optimizer;

/* Fills o with kind's defaults (Keras / MXNet):
 *   SGD lr 0.01 momentum 0; Adam lr 0.001 beta_1 0.9 beta_2 0.999 epsilon 1e-7;
 *   Adagrad lr 0.01 epsilon 1e-7; RMSprop lr 0.001 rho 0.9 epsilon 1e-7;
 *   Ftrl lr 0.1 lamda1 0.01 beta 1 l2 0 learning_rate_power -0.5 initial_accumulator_value 0
 *   (MXNet's). All: weight_decay 0, decay 0, clipvalue 0 (none), rescale_grad 1, nesterov 0,
 *   lazy_update 1. KL_EINVAL for an unknown kind. */
kl_status kl_optimizer_init(kl_optimizer *o, kl_opt_kind kind);
/* Class name of a kind: "SGD", "Adam", "Adagrad", "RMSprop", "Ftrl" (NULL if unknown). */
const char *kl_optimizer_kind_name(kl_opt_kind kind);
/* Parses a Keras name, case-insensitive: "sgd", "adam", "adagrad", "rmsprop", "ftrl". */
kl_status kl_optimizer_kind_parse(const char *name, kl_opt_kind *out);

/* Validates every hyperparameter kind uses, Keras style:
 * "SGD: learning_rate must be >= 0. Received: learning_rate=-1" (KL_EINVAL). */
kl_status kl_optimizer_check(const kl_optimizer *o);

/* Options by name, for the binding and model files. Names accepted by every kind:
 * learning_rate (alias lr), weight_decay, decay, clipvalue, rescale_grad, lazy_update; plus
 * SGD: momentum, nesterov; Adam: beta_1, beta_2, epsilon; Adagrad: epsilon;
 * RMSprop: rho, epsilon; Ftrl: l1_regularization_strength (alias lamda1),
 * l2_regularization_strength, learning_rate_power, initial_accumulator_value, beta. Booleans
 * read as 0/1. set does not validate
 * the value (kl_optimizer_check does); an unknown name is KL_EINVAL:
 * "SGD: unknown option 'beta_1'". */
kl_status kl_optimizer_set(kl_optimizer *o, const char *name, double value);
kl_status kl_optimizer_get(const kl_optimizer *o, const char *name, double *value);
/* The i-th option name of kind (0-based, canonical names only), NULL past the end: for
 * get_config and for writing model files. */
const char *kl_optimizer_option_name(kl_opt_kind kind, int i);
/* Whether option i of kind is a boolean (nesterov, lazy_update). */
int kl_optimizer_option_is_bool(kl_opt_kind kind, int i);

/* Number of state tensors per weight: SGD 1 if momentum > 0 else 0; Adam 2; Adagrad 1;
 * RMSprop 1; Ftrl 2. */
int kl_optimizer_num_states(const kl_optimizer *o);
/* Name of state i (0-based): SGD "momentum"; Adam "m", "v"; Adagrad "history";
 * RMSprop "mean_square"; Ftrl "z", "n". NULL when i is out of range. */
const char *kl_optimizer_state_name(const kl_optimizer *o, int i);

/* Creates the num_states states of weight w: new dense tensors with w's full shape and
 * dtype, zero but for Ftrl's n (initial_accumulator_value), written to
 * states[0..num_states-1] (the caller owns them; states needs room for
 * num_states pointers, 2 suffice for every kind). On failure nothing is left allocated and
 * states[i] are NULL. w: dense or row_sparse, float32 or float64. */
kl_status kl_optimizer_create_states(const kl_optimizer *o, const kl_tensor *w,
                                     kl_tensor **states);
/* Releases states[0..num_states-1] and sets them to NULL (NULL entries are skipped). */
void kl_optimizer_release_states(const kl_optimizer *o, kl_tensor **states);

/* One update of weight w (in place) from gradient g, with the states (updated in place).
 * w: dense or row_sparse; g: dense or row_sparse with w's shape and dtype; states as made
 * by kl_optimizer_create_states; t: the 1-based step count (Adam's bias correction; others
 * ignore it but it must still be >= 1). Inputs are checked before anything is written: on
 * failure w and states are unchanged. Messages name "<Kind>.update":
 * "SGD.update: gradient shape (3 x 2) does not match weight (4 x 2)". */
kl_status kl_optimizer_update(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                              kl_tensor **states, int64_t t);

#ifdef __cplusplus
}
#endif
#endif /* KL_OPTIM_H */
