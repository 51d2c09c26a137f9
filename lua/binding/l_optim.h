/* l_optim.h: the "keras.Optimizer" userdata (a C kl_optimizer) shared with l_plan.c. */
#ifndef KL_L_OPTIM_H
#define KL_L_OPTIM_H
#include "kl/optim.h"
#include "lbind.h"

#ifndef KL_OPTIMIZER_MT
#define KL_OPTIMIZER_MT "keras.Optimizer"
#endif

/* An optimizer userdata. The kl_optimizer is the first member, so a pointer to the userdata
 * is a pointer to its kl_optimizer (l_plan.c copies it into the plan spec). */
typedef struct kl_lua_optimizer {
  kl_optimizer o;
} kl_lua_optimizer;

/* The optimizer of the keras.Optimizer userdata at idx (borrowed, lives as long as the
 * userdata), or a Lua error "bad argument #idx to 'fn' (keras.Optimizer expected, got table)". */
kl_optimizer *kl_lua_checkoptimizer(lua_State *L, int idx, const char *fn);
/* Registers keras.Optimizer and core.optimizer_new into the module table at the stack top. */
void kl_lua_open_optim(lua_State *L);
#endif
