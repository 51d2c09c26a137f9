/* backend/src/ops_unary.c: (skeleton until its owner lands it) */
#include "ops_internal.h"
const kl_op_def kl_opdef_neg = {"negative", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_square = {"square", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_sqrt = {"sqrt", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_abs = {"abs", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_relu = {"relu", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_exp = {"exp", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_log = {"log", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_sigmoid = {"sigmoid", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_tanh = {"tanh", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_softmax = {"softmax", 1, 2, NULL, NULL, NULL, NULL};
