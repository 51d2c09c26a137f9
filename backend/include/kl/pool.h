/* pool.h: per-plan buffer pools behind kl_malloc, so a training step allocates nothing in steady state. */
#ifndef KL_POOL_H
#define KL_POOL_H

#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How it works. Every block from kl_malloc/kl_calloc/kl_realloc carries a small header
 * naming its origin: the system allocator, or a pool. While a pool is installed as this
 * thread's current pool (kl_pool_enter), kl_malloc & co. take blocks from it: best fit by
 * capacity among its free blocks, else (a pool miss) a new block from the system, rounded
 * up to a size class (at most 25% slack). When no free block is large enough, the largest
 * free block is given back to the system first, so a pool holds at most as many blocks as
 * were ever live at once and its buffers grow to the largest batch, then are reused.
 * So tensor structs, data/index buffers and kernels' scratch arrays (kl_malloc is the
 * scratch allocator: no separate API) all come from the pool without kernel changes.
 *
 * Ownership. A pooled block remembers its pool; kl_free (hence kl_tensor_release at
 * refcount 0) puts it back into that pool's free list when called on the pool's owner
 * thread (the thread that made the pool) while the pool is open, whether or not the pool
 * is installed at that moment. Anywhere else, after kl_pool_close, or on another thread,
 * the block goes back to the system allocator, so a tensor that escapes a plan (an output
 * the binding retains, a gradient kept past kl_plan_free) stays valid and may be released
 * at any time from any thread. The pool struct itself lives until it is closed and its
 * last block is freed (an atomic count of blocks handed out).
 * Threads: a pool is used by one thread. kl_pool_enter from another thread installs
 * nothing (that thread keeps the system allocator); OpenMP workers have no current pool,
 * so a kernel allocating inside a parallel region uses the system allocator there.
 * kl_pool_close must not run concurrently with kl_free of that pool's blocks on the
 * owner thread (it does not: both belong to the plan's user).
 *
 * Plans (kl/graph.h): kl_plan_new makes one pool per plan. kl_plan_train_step and
 * kl_plan_fit_epoch install it (the epoch suspends it around its on_batch callback, whose
 * allocations are the caller's) and drop the last step's values and gradients before a
 * step allocates, so the pool serves one step's working set at a time. evaluate, predict,
 * forward and backward called alone use the system allocator. kl_plan_free releases the
 * plan's tensors, then closes the pool.
 *
 * Accounting: kl_alloc_count counts system allocations only; a pool hit is not one. The
 * failure hook kl_alloc_fail_at likewise counts (and fails) pool misses, never hits. */
typedef struct kl_pool kl_pool;

/* Successful system allocations (malloc/calloc/realloc) made through kl_malloc & co. since
 * the process started, on every thread. Tests difference two readings. */
long kl_alloc_count(void);

/* A new, empty pool owned by the calling thread. *out is NULL (and KL_OK) when pools are
 * disabled: env KL_NO_POOL=1 at the first call, or kl_pool_set_enabled(0). */
kl_status kl_pool_new(kl_pool **out);
/* Gives every free block back to the system and stops taking blocks back; the struct is
 * freed with the last outstanding block. NULL-safe. Call it after releasing the tensors
 * the pool's owner holds, so their blocks do not outlive it needlessly. */
void kl_pool_close(kl_pool *p);
/* Installs p (NULL: none) as this thread's current pool and returns the previous one, to
 * pass to kl_pool_leave. A closed pool, or one owned by another thread, installs NULL. */
kl_pool *kl_pool_enter(kl_pool *p);
void kl_pool_leave(kl_pool *prev);
/* This thread's current pool (NULL: none): whether kept scratch can be asked for. */
kl_pool *kl_pool_current(void);

/* Turns pool creation on or off for later kl_pool_new calls (existing pools keep working);
 * returns the previous setting. Results do not depend on it: it exists to prove that. */
int kl_pool_set_enabled(int on);

/* Kept scratch: a buffer of at least bytes owned by this thread's current pool, zero-filled
 * when the pool first hands it out and kept until kl_pool_close, for a kernel's persistent
 * map (one slot per column, say) whose clearing would otherwise cost O(size) per call.
 * Contract: the caller leaves every byte zero again before it returns (it clears what it
 * wrote, O(what it touched)), so the next call finds it zero; a larger request replaces the
 * buffer by a new zeroed one. slot in [0, KL_POOL_NKEPT) names the user (KL_KEPT_*). Returns
 * NULL when no pool is current (plain calls, OpenMP workers, pools disabled) or the
 * allocation fails (no error is set: callers fall back to a path without the map). */
#define KL_POOL_NKEPT 4
#define KL_KEPT_COLMAP 0 /* dot csr^T: column -> output slot (or touched flag) */
#define KL_KEPT_COLACC 1 /* dot csr^T: the direct accumulator, N values a column */
/* The plan's fused step (plan_step.c): csr^T . G's accumulator and flags for one weight, filled by
 * the backward and cleared by that weight's update (they stay dirty in between). */
#define KL_KEPT_FUSEFLAG 2
#define KL_KEPT_FUSEACC 3
void *kl_pool_kept_zeroed(int slot, size_t bytes);

/* Counters of one pool (read on the owner thread). */
typedef struct kl_pool_stats {
  long hits;         /* requests served from the free list */
  long misses;       /* requests that went to the system allocator */
  long free_blocks;  /* blocks in the free list now */
  size_t free_bytes; /* their capacity */
  long out_blocks;   /* blocks handed out and not yet freed */
} kl_pool_stats;
void kl_pool_get_stats(const kl_pool *p, kl_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* KL_POOL_H */
