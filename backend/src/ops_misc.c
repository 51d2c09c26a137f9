/* backend/src/ops_misc.c: (skeleton until its owner lands it) */
#include "ops_internal.h"
const kl_op_def kl_opdef_transpose = {"transpose", 1, 2, NULL, NULL, NULL, NULL};
const kl_op_def kl_opdef_retain = {"retain", 1, 2, NULL, NULL, NULL, NULL};
