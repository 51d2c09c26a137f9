/* test_optim_errors.c: optimizers: defaults, options by name, every validation and update
 * error message, allocation failures. */
#include "optim_testutil.h"

static void test_defaults_and_options(void) {
  kl_optimizer o;
  double v = 0;
  kl_opt_kind k;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  CHECK(o.learning_rate == 0.01 && o.momentum == 0 && !o.nesterov && o.lazy_update == 1);
  CHECK(o.rescale_grad == 1 && o.clipvalue == 0 && o.weight_decay == 0);
  CHECK(kl_optimizer_num_states(&o) == 0 && kl_optimizer_state_name(&o, 0) == NULL);
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  CHECK(o.learning_rate == 0.001 && o.beta_1 == 0.9 && o.beta_2 == 0.999 && o.epsilon == 1e-7);
  CHECK(kl_optimizer_num_states(&o) == 2);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "m") && !strcmp(kl_optimizer_state_name(&o, 1), "v"));
  CHECK(kl_optimizer_state_name(&o, 2) == NULL && kl_optimizer_state_name(&o, -1) == NULL);
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAGRAD));
  CHECK(o.learning_rate == 0.01 && o.epsilon == 1e-7 && kl_optimizer_num_states(&o) == 1);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "history"));
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_RMSPROP));
  CHECK(o.learning_rate == 0.001 && o.rho == 0.9 && kl_optimizer_num_states(&o) == 1);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "mean_square"));
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_FTRL));
  CHECK(o.learning_rate == 0.1 && o.lamda1 == 0.01 && o.beta == 1);
  CHECK(!strcmp(kl_optimizer_state_name(&o, 0), "z") && !strcmp(kl_optimizer_state_name(&o, 1), "n"));
  CHECK_ERR(kl_optimizer_init(&o, (kl_opt_kind)9), KL_EINVAL, "optimizer_init: unknown kind 9");

  CHECK_OK(kl_optimizer_kind_parse("rmsprop", &k));
  CHECK(k == KL_OPT_RMSPROP);
  CHECK_OK(kl_optimizer_kind_parse("SGD", &k));
  CHECK(k == KL_OPT_SGD);
  CHECK_OK(kl_optimizer_kind_parse("Adam", &k));
  CHECK(k == KL_OPT_ADAM && !strcmp(kl_optimizer_kind_name(k), "Adam"));
  CHECK(kl_optimizer_kind_name((kl_opt_kind)-1) == NULL);
  CHECK_ERR(kl_optimizer_kind_parse("adamw", &k), KL_EINVAL,
            "optimizers: unknown optimizer 'adamw' (sgd, adam, adagrad, rmsprop, ftrl)");

  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  CHECK_OK(kl_optimizer_set(&o, "momentum", 0.9));
  CHECK_OK(kl_optimizer_set(&o, "lr", 0.5));
  CHECK_OK(kl_optimizer_set(&o, "nesterov", 1));
  CHECK_OK(kl_optimizer_set(&o, "lazy_update", 0));
  CHECK(o.momentum == 0.9 && o.learning_rate == 0.5 && o.nesterov == 1 && o.lazy_update == 0);
  CHECK(kl_optimizer_num_states(&o) == 1);
  CHECK_OK(kl_optimizer_get(&o, "learning_rate", &v));
  CHECK(v == 0.5);
  CHECK_OK(kl_optimizer_get(&o, "nesterov", &v));
  CHECK(v == 1);
  CHECK_ERR(kl_optimizer_set(&o, "beta_1", 0.5), KL_EINVAL, "SGD: unknown option 'beta_1'");
  CHECK_ERR(kl_optimizer_get(&o, "rho", &v), KL_EINVAL, "SGD: unknown option 'rho'");
  const char *sgd_opts[] = {"learning_rate", "momentum",     "nesterov",   "weight_decay",
                            "decay",         "clipvalue",    "rescale_grad", "lazy_update"};
  for (int i = 0; i < 8; i++) CHECK(!strcmp(kl_optimizer_option_name(KL_OPT_SGD, i), sgd_opts[i]));
  CHECK(kl_optimizer_option_name(KL_OPT_SGD, 8) == NULL);
  CHECK(kl_optimizer_option_is_bool(KL_OPT_SGD, 2) && !kl_optimizer_option_is_bool(KL_OPT_SGD, 1));
  /* Ftrl: Keras' names, MXNet's lamda1 an alias of l1_regularization_strength */
  const char *ftrl_opts[] = {"learning_rate", "learning_rate_power", "initial_accumulator_value",
                             "l1_regularization_strength", "l2_regularization_strength", "beta"};
  for (int i = 0; i < 6; i++) CHECK(!strcmp(kl_optimizer_option_name(KL_OPT_FTRL, i), ftrl_opts[i]));
  kl_optimizer_init(&o, KL_OPT_FTRL);
  CHECK(o.lr_power == -0.5 && o.l2 == 0 && o.initial_accumulator_value == 0 && o.decay == 0);
  CHECK_OK(kl_optimizer_set(&o, "lamda1", 0.25));
  CHECK_OK(kl_optimizer_get(&o, "l1_regularization_strength", &v));
  CHECK(v == 0.25 && o.lamda1 == 0.25);
  CHECK_ERR(kl_optimizer_set(&o, "l1", 1), KL_EINVAL, "Ftrl: unknown option 'l1'");
  kl_optimizer_init(&o, KL_OPT_SGD);
  CHECK_ERR(kl_optimizer_set(&o, "lamda1", 1), KL_EINVAL, "SGD: unknown option 'lamda1'");
  /* Every listed option round-trips through set/get for every kind. */
  for (int kk = 0; kk < KL_OPT_COUNT; kk++) {
    kl_optimizer_init(&o, (kl_opt_kind)kk);
    for (int i = 0; kl_optimizer_option_name(o.kind, i); i++) {
      const char *nm = kl_optimizer_option_name(o.kind, i);
      double want = kl_optimizer_option_is_bool(o.kind, i) ? 0 : 0.125 + i;
      CHECK_OK(kl_optimizer_set(&o, nm, want));
      CHECK_OK(kl_optimizer_get(&o, nm, &v));
      CHECK(v == want);
    }
  }
}

static void test_check_messages(void) {
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.learning_rate = -1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: learning_rate must be >= 0. Received: learning_rate=-1");
  o.learning_rate = NAN;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "SGD: learning_rate must be >= 0. Received: learning_rate=nan");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.momentum = 1.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "SGD: momentum must be in [0, 1]. Received: momentum=1.5");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.weight_decay = -0.1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: weight_decay must be >= 0. Received: weight_decay=-0.1");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.clipvalue = NAN;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: clipvalue must be a number (<= 0 for none). Received: clipvalue=nan");
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.rescale_grad = INFINITY;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "SGD: rescale_grad must be finite. Received: rescale_grad=inf");
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.beta_1 = 1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adam: beta_1 must be in [0, 1). Received: beta_1=1");
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.beta_2 = -0.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adam: beta_2 must be in [0, 1). Received: beta_2=-0.5");
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.epsilon = 0;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adam: epsilon must be > 0. Received: epsilon=0");
  kl_optimizer_init(&o, KL_OPT_ADAGRAD);
  o.epsilon = -1e-7;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Adagrad: epsilon must be > 0. Received: epsilon=-1e-07");
  kl_optimizer_init(&o, KL_OPT_RMSPROP);
  o.rho = 1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "RMSprop: rho must be in [0, 1). Received: rho=1");
  kl_optimizer_init(&o, KL_OPT_RMSPROP);
  o.learning_rate = -0.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "RMSprop: learning_rate must be >= 0. Received: learning_rate=-0.5");
  kl_optimizer_init(&o, KL_OPT_FTRL);
  o.learning_rate = 0;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Ftrl: learning_rate must be > 0. Received: learning_rate=0");
  kl_optimizer_init(&o, KL_OPT_FTRL);
  o.lamda1 = -1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "Ftrl: l1_regularization_strength must be >= 0. Received: "
            "l1_regularization_strength=-1");
  o.lamda1 = 0;
  o.l2 = -0.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "Ftrl: l2_regularization_strength must be >= 0. Received: "
            "l2_regularization_strength=-0.5");
  o.l2 = 0;
  o.lr_power = 0.5;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "Ftrl: learning_rate_power must be <= 0. Received: learning_rate_power=0.5");
  o.lr_power = -0.5;
  o.initial_accumulator_value = NAN;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL,
            "Ftrl: initial_accumulator_value must be >= 0. Received: initial_accumulator_value=nan");
  o.initial_accumulator_value = 0;
  o.decay = -1;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Ftrl: decay must be >= 0. Received: decay=-1");
  kl_optimizer_init(&o, KL_OPT_FTRL);
  o.beta = -2;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "Ftrl: beta must be >= 0. Received: beta=-2");
  o.kind = (kl_opt_kind)7;
  CHECK_ERR(kl_optimizer_check(&o), KL_EINVAL, "optimizer: unknown kind 7");
  CHECK_ERR(kl_optimizer_check(NULL), KL_EINVAL, "optimizer: optimizer is NULL");
  /* SGD does not look at Adam's fields, nor Adam at momentum. */
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.beta_1 = 5;
  CHECK_OK(kl_optimizer_check(&o));
  kl_optimizer_init(&o, KL_OPT_ADAM);
  o.momentum = -5;
  CHECK_OK(kl_optimizer_check(&o));
}

static void test_update_errors(void) {
  const int64_t gi2[2] = {1, 1}, gi_out[1] = {4}, all[4] = {0, 1, 2, 3};
  const double v8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_SGD);
  o.momentum = 0.5;
  kl_tensor *w = dense2(KL_FLOAT64, 4, 2, v8), *st[2] = {0}, *st32[2] = {0};
  kl_tensor *keep = clone(w);
  kl_tensor *g32 = dense2(KL_FLOAT32, 4, 2, v8), *g3 = dense2(KL_FLOAT64, 3, 2, v8);
  kl_tensor *g_dup = rsp2(KL_FLOAT64, 4, 2, 2, gi2, v8), *g_out = rsp2(KL_FLOAT64, 4, 2, 1, gi_out, v8);
  kl_tensor *g = dense2(KL_FLOAT64, 4, 2, v8), *wi = NULL, *csr = NULL, *s_rsp = rsp2(KL_FLOAT64, 4, 2, 4, all, NULL);
  int64_t shape[2] = {4, 2};
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, shape, &wi));
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT64, 4, 2, 0, &csr));
  CHECK_OK(kl_optimizer_create_states(&o, w, st));
  CHECK_OK(kl_optimizer_create_states(&o, g32, st32));

  CHECK_ERR(kl_optimizer_update(&o, NULL, g, st, 1), KL_EINVAL, "SGD.update: weight is NULL");
  CHECK_ERR(kl_optimizer_update(&o, w, NULL, st, 1), KL_EINVAL, "SGD.update: gradient is NULL");
  CHECK_ERR(kl_optimizer_update(&o, w, g3, st, 1), KL_ESHAPE,
            "SGD.update: gradient shape (3 x 2) does not match weight (4 x 2)");
  CHECK_ERR(kl_optimizer_update(&o, w, g32, st, 1), KL_EDTYPE,
            "SGD.update: gradient dtype float32 does not match weight float64");
  CHECK_ERR(kl_optimizer_update(&o, wi, g, st, 1), KL_EDTYPE,
            "SGD.update: weight dtype int64 not supported (float32 or float64)");
  CHECK_ERR(kl_optimizer_update(&o, csr, g, st, 1), KL_ESTYPE,
            "SGD.update: weight stype csr not supported (default or row_sparse)");
  CHECK_ERR(kl_optimizer_update(&o, w, csr, st, 1), KL_ESTYPE,
            "SGD.update: gradient stype csr not supported (default or row_sparse)");
  CHECK_ERR(kl_optimizer_update(&o, w, g, NULL, 1), KL_EINVAL, "SGD.update: states is NULL (1 needed)");
  kl_tensor *bad[2] = {NULL, NULL};
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_EINVAL, "SGD.update: state 'momentum' is NULL");
  bad[0] = s_rsp;
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_ESTYPE,
            "SGD.update: state 'momentum' must be dense, got row_sparse");
  bad[0] = st32[0];
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_EDTYPE,
            "SGD.update: state 'momentum' dtype float32 does not match weight float64");
  bad[0] = g3;
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_ESHAPE,
            "SGD.update: state 'momentum' shape (3 x 2) does not match weight (4 x 2)");
  CHECK_ERR(kl_optimizer_update(&o, w, w, st, 1), KL_EINVAL,
            "SGD.update: gradient and weight share their storage");
  bad[0] = w;
  CHECK_ERR(kl_optimizer_update(&o, w, g, bad, 1), KL_EINVAL,
            "SGD.update: state 'momentum' shares its storage with another argument");
  CHECK_ERR(kl_optimizer_update(&o, w, g, st, 0), KL_EINVAL, "SGD.update: t must be >= 1. Received: t=0");
  CHECK_ERR(kl_optimizer_update(&o, w, g_dup, st, 1), KL_EINDEX,
            "SGD.update: gradient indices not strictly increasing at [1] (1 after 1)");
  CHECK_ERR(kl_optimizer_update(&o, w, g_out, st, 1), KL_EINDEX,
            "SGD.update: gradient indices[0] = 4 out of range for 4 rows");
  o.learning_rate = -1;
  CHECK_ERR(kl_optimizer_update(&o, w, g, st, 1), KL_EINVAL,
            "SGD: learning_rate must be >= 0. Received: learning_rate=-1");
  o.learning_rate = 0.01;
  /* Nothing was written by any failing call. */
  CHECK(all_bits_equal(w, keep));
  CHECK(kl_tensor_data_at(st[0], 0) == 0 && kl_tensor_data_at(st[0], 7) == 0);
  /* Adam names itself. */
  kl_optimizer a;
  kl_optimizer_init(&a, KL_OPT_ADAM);
  CHECK_ERR(kl_optimizer_update(&a, w, g3, st, 1), KL_ESHAPE,
            "Adam.update: gradient shape (3 x 2) does not match weight (4 x 2)");
  /* create_state errors. */
  CHECK_ERR(kl_optimizer_create_states(&o, NULL, st), KL_EINVAL, "SGD.create_state: weight is NULL");
  CHECK_ERR(kl_optimizer_create_states(&o, wi, bad), KL_EDTYPE,
            "SGD.create_state: weight dtype int64 not supported (float32 or float64)");
  CHECK_ERR(kl_optimizer_create_states(&o, csr, bad), KL_ESTYPE,
            "SGD.create_state: weight stype csr not supported (default or row_sparse)");
  CHECK_ERR(kl_optimizer_create_states(&o, w, NULL), KL_EINVAL, "SGD.create_state: states is NULL");
  /* SGD without momentum has no state and accepts states == NULL. */
  o.momentum = 0;
  CHECK_OK(kl_optimizer_create_states(&o, w, NULL));
  CHECK_OK(kl_optimizer_update(&o, w, g, NULL, 1));
  CHECK_NEAR(kl_tensor_data_at(w, 0), 1 - 0.01 * 1, 1e-15);
  o.momentum = 0.5;

  kl_optimizer_release_states(&o, st);
  kl_optimizer_release_states(&o, st32);
  kl_tensor *list[] = {w, keep, g32, g3, g_dup, g_out, g, wi, csr, s_rsp};
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) kl_tensor_release(list[i]);
}

/* Failing the k-th allocation of create_states, for every k, leaves nothing allocated. */
static void test_alloc_failures(void) {
  kl_optimizer o;
  kl_optimizer_init(&o, KL_OPT_FTRL);
  kl_tensor *w = dense2(KL_FLOAT32, 5, 3, NULL);
  int done = 0;
  for (long k = 1; k < 50 && !done; k++) {
    kl_tensor *st[2] = {(kl_tensor *)1, (kl_tensor *)1};
    kl_alloc_fail_at(k);
    kl_status s = kl_optimizer_create_states(&o, w, st);
    kl_alloc_fail_at(0);
    if (s == KL_OK) {
      done = 1;
      CHECK(st[0] && st[1]);
      kl_optimizer_release_states(&o, st);
    } else {
      CHECK(s == KL_ENOMEM && st[0] == NULL && st[1] == NULL);
    }
  }
  CHECK(done);
  kl_tensor_release(w);
}

int main(void) {
  test_defaults_and_options();
  test_check_messages();
  test_update_errors();
  test_alloc_failures();
  KLTEST_DONE();
}
