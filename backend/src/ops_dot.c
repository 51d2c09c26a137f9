/* backend/src/ops_dot.c: (skeleton until its owner lands it) */
#include "ops_internal.h"
const kl_op_def kl_opdef_dot = {"dot", 1, 2, NULL, NULL, NULL, NULL};
