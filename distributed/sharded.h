/* sharded.h: Embedding{sharded = true} (sharded.c), inside keras.distributed_mpi. */
#ifndef KL_SHARDED_H
#define KL_SHARDED_H
#include <lua.h>

#include "kl_capi.h"

/* Adds shard_attach, shard_stats, shard_gather, shard_scatter, shard_take to the module
 * table on top of the stack. */
void kl_sharded_open(lua_State *L, const kl_capi *capi);
/* Whether weight k of plan p is a shard (its gradient is already the global sum over its
 * owned rows: the data-parallel exchange skips it). */
int kl_sharded_owns_grad(const kl_plan *p, int k);
#endif
