/* kl_capi.h: the C API that keras.core hands to companion modules (keras.distributed_mpi, and
 * later the CUDA module), as NumPy hands its C API in a capsule.
 *
 * A companion module must not link its own copy of the backend: the allocator's counters,
 * the pools and the thread-local state would be doubled, and a tensor made by one copy
 * freed by the other. core.so therefore publishes one table of function pointers as the
 * light userdata `core._capi`; a module reads it once at load (kl_capi_get) and calls the
 * backend and the binding through it. Bump KL_CAPI_VERSION when a member changes; members
 * are only ever appended. */
#ifndef KL_CAPI_H
#define KL_CAPI_H
#include <lua.h>

#include "kl/device.h"
#include "kl/graph.h"
#include "kl/kl.h"
#include "kl/pool.h"

#define KL_CAPI_VERSION 2

typedef struct kl_capi {
  int version;
  size_t size; /* sizeof(kl_capi) of the core that made it */
  /* errors and memory */
  kl_status (*seterr)(kl_status code, const char *fmt, ...);
  const char *(*errmsg)(void);
  void *(*malloc_)(size_t bytes);
  void *(*realloc_)(void *p, size_t bytes);
  void (*free_)(void *p);
  kl_pool *(*pool_enter)(kl_pool *p);
  void (*pool_leave)(kl_pool *prev);
  /* tensors */
  kl_status (*tensor_new_dense)(kl_dtype dtype, int ndim, const int64_t *shape, kl_tensor **out);
  kl_status (*tensor_new_rsp)(kl_dtype dtype, int ndim, const int64_t *shape, int64_t nrows,
                              kl_tensor **out);
  kl_status (*tensor_new_csr)(kl_dtype dtype, int64_t rows, int64_t cols, int64_t nnz,
                              kl_tensor **out);
  kl_status (*tensor_copy)(const kl_tensor *t, kl_tensor **out);
  kl_tensor *(*tensor_retain)(kl_tensor *t);
  void (*tensor_release)(kl_tensor *t);
  int64_t (*tensor_numel)(const kl_tensor *t);
  int64_t (*row_width)(const kl_tensor *t);
  const char *(*dtype_name)(kl_dtype d);
  const char *(*stype_name)(kl_stype s);
  /* plans */
  void (*plan_set_grad_hook)(kl_plan *p, kl_grad_hook_fn fn, void *ud, void (*free_ud)(void *));
  void *(*plan_grad_hook_ud)(const kl_plan *p, kl_grad_hook_fn fn);
  kl_tensor *(*plan_weight)(const kl_plan *p, int k);
  int (*plan_num_states)(const kl_plan *p, int k);
  kl_tensor *(*plan_state)(const kl_plan *p, int k, int s);
  int64_t (*plan_batch_rows)(const kl_plan *p);
  /* the binding */
  kl_tensor *(*lua_checktensor)(lua_State *L, int idx, const char *fn);
  void (*lua_push_tensor)(lua_State *L, kl_tensor *t);
  kl_plan *(*lua_checkplan)(lua_State *L, int idx, const char *fn);
  int (*lua_raise)(lua_State *L, kl_status s);
  /* appended for Embedding{sharded = true} (distributed/sharded.c) */
  kl_status (*plan_set_node_ext)(kl_plan *p, int node, const kl_node_ext *ext, void *ud);
  void *(*plan_node_ext_ud)(const kl_plan *p, int node);
  /* appended for the CUDA module (gpu/, kl/device.h) */
  void (*device_register)(const kl_device_backend *b);
  kl_status (*tensor_new_dense_on)(kl_device d, kl_dtype dtype, int ndim, const int64_t *shape,
                                   int zero, kl_tensor **out);
  kl_status (*tensor_new_csr_on)(kl_device d, kl_dtype dtype, int64_t rows, int64_t cols,
                                 int64_t nnz, kl_tensor **out);
  kl_status (*tensor_new_rsp_on)(kl_device d, kl_dtype dtype, int ndim, const int64_t *shape,
                                 int64_t nrows, kl_tensor **out);
  kl_status (*tensor_to)(const kl_tensor *t, kl_device d, kl_tensor **out);
  kl_status (*tensor_reserve)(kl_tensor *t, int64_t nnz);
  kl_status (*op_run)(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out);
  kl_status (*op_backward)(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a,
                           const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                           kl_tensor **gin);
  long (*device_fallback_count)(void);
  const char *(*device_str)(kl_device d, char *buf, size_t len);
  void (*warnf)(const char *fmt, ...);
  /* appended for the CUDA dot (gpu/dev_ops_dot.c): the registry's inference (kl_op_infer) */
  kl_status (*op_infer)(kl_op op, const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out);
} kl_capi;

/* The core's API, or NULL (with a Lua error) when keras.core is missing or too old. */
static inline const kl_capi *kl_capi_get(lua_State *L) {
  const kl_capi *c = NULL;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "keras.core");
  lua_call(L, 1, 1);
  if (lua_getfield(L, -1, "_capi") == LUA_TLIGHTUSERDATA) c = (const kl_capi *)lua_touserdata(L, -1);
  lua_pop(L, 2);
  if (!c || c->version < KL_CAPI_VERSION || c->size < sizeof(kl_capi)) {
    lua_pushliteral(L, "keras: keras.core is too old for this module (rebuild both)");
    lua_error(L);
  }
  return c;
}
#endif
