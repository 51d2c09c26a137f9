/* backend/src/ops_elemwise.c: (skeleton until its owner lands it) */
#include "ops_internal.h"
const kl_op_def kl_opdef_add = {"add", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_sub = {"subtract", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_mul = {"multiply", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_div = {"divide", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_add_scalar = {"add_scalar", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_mul_scalar = {"mul_scalar", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_div_scalar = {"div_scalar", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_rsub_scalar = {"rsub_scalar", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_rdiv_scalar = {"rdiv_scalar", 1, 2, NULL, NULL, NULL, NULL};
