/* optim.c: optimizer hyperparameters: defaults, validation, options by name, state tensors. */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "kl/device.h"
#include "kl/optim.h"

static const char *const kind_names[KL_OPT_COUNT] = {"SGD", "Adam", "Adagrad", "RMSprop", "Ftrl"};

const char *kl_optimizer_kind_name(kl_opt_kind kind) {
  return ((int)kind >= 0 && kind < KL_OPT_COUNT) ? kind_names[kind] : NULL;
}

static int streq_nocase(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
  return *a == *b;
}

kl_status kl_optimizer_kind_parse(const char *name, kl_opt_kind *out) {
  KL_CHECK(name != NULL && out != NULL, KL_EINVAL, "optimizers: name is NULL");
  for (int k = 0; k < KL_OPT_COUNT; k++) {
    if (streq_nocase(name, kind_names[k])) {
      *out = (kl_opt_kind)k;
      return KL_OK;
    }
  }
  return kl_seterr(KL_EINVAL,
                   "optimizers: unknown optimizer '%s' (sgd, adam, adagrad, rmsprop, ftrl)", name);
}

kl_status kl_optimizer_init(kl_optimizer *o, kl_opt_kind kind) {
  KL_CHECK(o != NULL, KL_EINVAL, "optimizer_init: optimizer is NULL");
  KL_CHECK((int)kind >= 0 && kind < KL_OPT_COUNT, KL_EINVAL,
           "optimizer_init: unknown kind %d", (int)kind);
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->rescale_grad = 1.0;
  o->lazy_update = 1;
  o->beta_1 = 0.9;
  o->beta_2 = 0.999;
  o->epsilon = 1e-7;
  o->rho = 0.9;
  o->lamda1 = 0.01;
  o->beta = 1.0;
  o->lr_power = -0.5;
  switch (kind) {
    case KL_OPT_SGD: o->learning_rate = 0.01; break;
    case KL_OPT_ADAM: o->learning_rate = 0.001; break;
    case KL_OPT_ADAGRAD: o->learning_rate = 0.01; break;
    case KL_OPT_RMSPROP: o->learning_rate = 0.001; break;
    case KL_OPT_FTRL: o->learning_rate = 0.1; break;
    default: break;
  }
  return KL_OK;
}

/* ---------------------------------------------------------------- options */

enum { OPT_LR, OPT_MOMENTUM, OPT_NESTEROV, OPT_WD, OPT_CLIP, OPT_RESCALE, OPT_BETA_1, OPT_BETA_2,
       OPT_EPSILON, OPT_RHO, OPT_LAMDA1, OPT_BETA, OPT_LAZY, OPT_DECAY, OPT_L2, OPT_LR_POWER,
       OPT_INIT_ACC, OPT_NONE = -1 };

/* Ftrl's options carry Keras' names (MXNet's lamda1 is an alias, find_option). */
static const char *const option_names[] = {
    "learning_rate", "momentum", "nesterov", "weight_decay", "clipvalue", "rescale_grad", "beta_1",
    "beta_2", "epsilon", "rho", "l1_regularization_strength", "beta", "lazy_update", "decay",
    "l2_regularization_strength", "learning_rate_power", "initial_accumulator_value"};

/* The options of each kind, in get_config order, terminated by OPT_NONE. */
static const int kind_options[KL_OPT_COUNT][14] = {
    {OPT_LR, OPT_MOMENTUM, OPT_NESTEROV, OPT_WD, OPT_DECAY, OPT_CLIP, OPT_RESCALE, OPT_LAZY,
     OPT_NONE},
    {OPT_LR, OPT_BETA_1, OPT_BETA_2, OPT_EPSILON, OPT_WD, OPT_DECAY, OPT_CLIP, OPT_RESCALE,
     OPT_LAZY, OPT_NONE},
    {OPT_LR, OPT_EPSILON, OPT_WD, OPT_DECAY, OPT_CLIP, OPT_RESCALE, OPT_LAZY, OPT_NONE},
    {OPT_LR, OPT_RHO, OPT_EPSILON, OPT_WD, OPT_DECAY, OPT_CLIP, OPT_RESCALE, OPT_LAZY, OPT_NONE},
    {OPT_LR, OPT_LR_POWER, OPT_INIT_ACC, OPT_LAMDA1, OPT_L2, OPT_BETA, OPT_WD, OPT_DECAY, OPT_CLIP,
     OPT_RESCALE, OPT_LAZY, OPT_NONE},
};

static int option_of(kl_opt_kind kind, int i) {
  if ((int)kind < 0 || kind >= KL_OPT_COUNT || i < 0) return OPT_NONE;
  for (int j = 0; j <= i; j++)
    if (kind_options[kind][j] == OPT_NONE) return OPT_NONE;
  return kind_options[kind][i];
}

const char *kl_optimizer_option_name(kl_opt_kind kind, int i) {
  int id = option_of(kind, i);
  return id == OPT_NONE ? NULL : option_names[id];
}

int kl_optimizer_option_is_bool(kl_opt_kind kind, int i) {
  int id = option_of(kind, i);
  return id == OPT_NESTEROV || id == OPT_LAZY;
}

/* The option id of name for kind (accepting the alias lr), or OPT_NONE. */
static int find_option(kl_opt_kind kind, const char *name) {
  if (strcmp(name, "lr") == 0) name = "learning_rate";
  if (kind == KL_OPT_FTRL && strcmp(name, "lamda1") == 0) name = "l1_regularization_strength";
  for (int i = 0; kind_options[kind][i] != OPT_NONE; i++)
    if (strcmp(option_names[kind_options[kind][i]], name) == 0) return kind_options[kind][i];
  return OPT_NONE;
}

static double *option_field(kl_optimizer *o, int id) {
  switch (id) {
    case OPT_LR: return &o->learning_rate;
    case OPT_MOMENTUM: return &o->momentum;
    case OPT_WD: return &o->weight_decay;
    case OPT_CLIP: return &o->clipvalue;
    case OPT_RESCALE: return &o->rescale_grad;
    case OPT_BETA_1: return &o->beta_1;
    case OPT_BETA_2: return &o->beta_2;
    case OPT_EPSILON: return &o->epsilon;
    case OPT_RHO: return &o->rho;
    case OPT_LAMDA1: return &o->lamda1;
    case OPT_BETA: return &o->beta;
    case OPT_DECAY: return &o->decay;
    case OPT_L2: return &o->l2;
    case OPT_LR_POWER: return &o->lr_power;
    case OPT_INIT_ACC: return &o->initial_accumulator_value;
    default: return NULL;
  }
}

static kl_status lookup(const kl_optimizer *o, const char *name, int *id) {
  KL_CHECK(o != NULL && name != NULL, KL_EINVAL, "optimizer option: NULL argument");
  KL_CHECK((int)o->kind >= 0 && o->kind < KL_OPT_COUNT, KL_EINVAL,
           "optimizer option: unknown kind %d", (int)o->kind);
  *id = find_option(o->kind, name);
  KL_CHECK(*id != OPT_NONE, KL_EINVAL, "%s: unknown option '%s'", kind_names[o->kind], name);
  return KL_OK;
}

kl_status kl_optimizer_set(kl_optimizer *o, const char *name, double value) {
  int id;
  KL_TRY(lookup(o, name, &id));
  if (id == OPT_NESTEROV) o->nesterov = value != 0;
  else if (id == OPT_LAZY) o->lazy_update = value != 0;
  else *option_field(o, id) = value;
  return KL_OK;
}

kl_status kl_optimizer_get(const kl_optimizer *o, const char *name, double *value) {
  int id;
  KL_TRY(lookup(o, name, &id));
  KL_CHECK(value != NULL, KL_EINVAL, "optimizer option: NULL argument");
  if (id == OPT_NESTEROV) *value = o->nesterov;
  else if (id == OPT_LAZY) *value = o->lazy_update;
  else *value = *option_field((kl_optimizer *)o, id);
  return KL_OK;
}

/* ------------------------------------------------------------- validation */

kl_status kl_optimizer_check(const kl_optimizer *o) {
  KL_CHECK(o != NULL, KL_EINVAL, "optimizer: optimizer is NULL");
  KL_CHECK((int)o->kind >= 0 && o->kind < KL_OPT_COUNT, KL_EINVAL,
           "optimizer: unknown kind %d", (int)o->kind);
  const char *k = kind_names[o->kind];
  /* Written as !(ok) so that NaN fails every check. */
  if (o->kind == KL_OPT_FTRL)
    KL_CHECK(o->learning_rate > 0 && isfinite(o->learning_rate), KL_EINVAL,
             "%s: learning_rate must be > 0. Received: learning_rate=%g", k, o->learning_rate);
  else
    KL_CHECK(o->learning_rate >= 0 && isfinite(o->learning_rate), KL_EINVAL,
             "%s: learning_rate must be >= 0. Received: learning_rate=%g", k, o->learning_rate);
  KL_CHECK(o->weight_decay >= 0 && isfinite(o->weight_decay), KL_EINVAL,
           "%s: weight_decay must be >= 0. Received: weight_decay=%g", k, o->weight_decay);
  KL_CHECK(o->decay >= 0 && isfinite(o->decay), KL_EINVAL,
           "%s: decay must be >= 0. Received: decay=%g", k, o->decay);
  KL_CHECK(!isnan(o->clipvalue), KL_EINVAL,
           "%s: clipvalue must be a number (<= 0 for none). Received: clipvalue=%g", k,
           o->clipvalue);
  KL_CHECK(isfinite(o->rescale_grad), KL_EINVAL,
           "%s: rescale_grad must be finite. Received: rescale_grad=%g", k, o->rescale_grad);
  switch (o->kind) {
    case KL_OPT_SGD:
      KL_CHECK(o->momentum >= 0 && o->momentum <= 1, KL_EINVAL,
               "%s: momentum must be in [0, 1]. Received: momentum=%g", k, o->momentum);
      break;
    case KL_OPT_ADAM:
      KL_CHECK(o->beta_1 >= 0 && o->beta_1 < 1, KL_EINVAL,
               "%s: beta_1 must be in [0, 1). Received: beta_1=%g", k, o->beta_1);
      KL_CHECK(o->beta_2 >= 0 && o->beta_2 < 1, KL_EINVAL,
               "%s: beta_2 must be in [0, 1). Received: beta_2=%g", k, o->beta_2);
      break;
    case KL_OPT_RMSPROP:
      KL_CHECK(o->rho >= 0 && o->rho < 1, KL_EINVAL,
               "%s: rho must be in [0, 1). Received: rho=%g", k, o->rho);
      break;
    case KL_OPT_FTRL:
      KL_CHECK(o->lamda1 >= 0 && isfinite(o->lamda1), KL_EINVAL,
               "%s: l1_regularization_strength must be >= 0. Received: "
               "l1_regularization_strength=%g", k, o->lamda1);
      KL_CHECK(o->l2 >= 0 && isfinite(o->l2), KL_EINVAL,
               "%s: l2_regularization_strength must be >= 0. Received: "
               "l2_regularization_strength=%g", k, o->l2);
      KL_CHECK(o->lr_power <= 0 && isfinite(o->lr_power), KL_EINVAL,
               "%s: learning_rate_power must be <= 0. Received: learning_rate_power=%g", k,
               o->lr_power);
      KL_CHECK(o->initial_accumulator_value >= 0 && isfinite(o->initial_accumulator_value),
               KL_EINVAL,
               "%s: initial_accumulator_value must be >= 0. Received: "
               "initial_accumulator_value=%g", k, o->initial_accumulator_value);
      KL_CHECK(o->beta >= 0 && isfinite(o->beta), KL_EINVAL,
               "%s: beta must be >= 0. Received: beta=%g", k, o->beta);
      break;
    default: break;
  }
  if (o->kind == KL_OPT_ADAM || o->kind == KL_OPT_ADAGRAD || o->kind == KL_OPT_RMSPROP)
    KL_CHECK(o->epsilon > 0 && isfinite(o->epsilon), KL_EINVAL,
             "%s: epsilon must be > 0. Received: epsilon=%g", k, o->epsilon);
  return KL_OK;
}

/* ----------------------------------------------------------------- states */

int kl_optimizer_num_states(const kl_optimizer *o) {
  if (o == NULL) return 0;
  switch (o->kind) {
    case KL_OPT_SGD: return o->momentum > 0 ? 1 : 0;
    case KL_OPT_ADAM: return 2;
    case KL_OPT_ADAGRAD: return 1;
    case KL_OPT_RMSPROP: return 1;
    case KL_OPT_FTRL: return 2;
    default: return 0;
  }
}

const char *kl_optimizer_state_name(const kl_optimizer *o, int i) {
  static const char *const names[KL_OPT_COUNT][2] = {
      {"momentum", NULL}, {"m", "v"}, {"history", NULL}, {"mean_square", NULL}, {"z", "n"}};
  if (o == NULL || i < 0 || i >= kl_optimizer_num_states(o)) return NULL;
  return names[o->kind][i];
}

void kl_optimizer_release_states(const kl_optimizer *o, kl_tensor **states) {
  if (states == NULL) return;
  int n = kl_optimizer_num_states(o);
  for (int i = 0; i < n; i++) {
    kl_tensor_release(states[i]);
    states[i] = NULL;
  }
}

kl_status kl_optimizer_create_states(const kl_optimizer *o, const kl_tensor *w,
                                     kl_tensor **states) {
  KL_TRY(kl_optimizer_check(o));
  const char *k = kind_names[o->kind];
  int n = kl_optimizer_num_states(o);
  KL_CHECK(w != NULL, KL_EINVAL, "%s.create_state: weight is NULL", k);
  KL_CHECK(n == 0 || states != NULL, KL_EINVAL, "%s.create_state: states is NULL", k);
  KL_CHECK(w->stype == KL_STYPE_DEFAULT || w->stype == KL_STYPE_ROW_SPARSE, KL_ESTYPE,
           "%s.create_state: weight stype %s not supported (default or row_sparse)", k,
           kl_stype_name(w->stype));
  KL_CHECK(w->dtype == KL_FLOAT32 || w->dtype == KL_FLOAT64, KL_EDTYPE,
           "%s.create_state: weight dtype %s not supported (float32 or float64)", k,
           kl_dtype_name(w->dtype));
  for (int i = 0; i < n; i++) states[i] = NULL;
  for (int i = 0; i < n; i++) {
    kl_status s = kl_tensor_new_dense(w->dtype, w->ndim, w->shape, &states[i]);
    if (s != KL_OK) {
      kl_optimizer_release_states(o, states);
      return s;
    }
    /* Lazy updates touch random rows of the states: take the page faults now, not in
     * the training steps (a 2.5 GB Adam m at V = 1e7 otherwise faults for epochs). */
    kl_prefault_zeroed(states[i]->data,
                       (size_t)kl_tensor_numel(states[i]) * kl_dtype_size(w->dtype));
    if (o->kind == KL_OPT_FTRL && i == 1 && o->initial_accumulator_value != 0)
      kl_tensor_fill(states[i], o->initial_accumulator_value);
    /* a weight on a device gets its states there (made on the host, then moved) */
    if (w->device != KL_CPU && (s = kl_tensor_move(states[i], w->device)) != KL_OK) {
      kl_optimizer_release_states(o, states);
      return s;
    }
  }
  return KL_OK;
}
