/* layers/losses.c: (skeleton until its owner lands it) */
#include "ops_internal.h"
const kl_op_def kl_opdef_loss_mse = {"mean_squared_error", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_loss_mae = {"mean_absolute_error", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_loss_bce = {"binary_crossentropy", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_loss_cce = {"categorical_crossentropy", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_loss_scce = {"sparse_categorical_crossentropy", 1, 2, NULL, NULL, NULL, NULL};
