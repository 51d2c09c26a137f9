/* lbind.h: helpers shared by every binding file (tensor userdata, errors, options, shapes). */
#ifndef KL_LBIND_H
#define KL_LBIND_H

#include <lauxlib.h>
#include <lua.h>

#include "kl/device.h"
#include "kl/kl.h"

/* The one metatable of every tensor, whatever its stype. */
#define KL_TENSOR_MT "keras.Tensor"

/* Uservalue slots of a tensor userdata: 1 = .grad (autograd), 2 = a table of private
 * fields ("_node", ... set by later Lua modules; created on first write). */
#define KL_UV_GRAD 1
#define KL_UV_EXTRA 2
#define KL_UV_COUNT 2

/* A tensor userdata. t == NULL means closed (released, or not attached yet). */
typedef struct kl_lua_tensor {
  kl_tensor *t;
} kl_lua_tensor;

/* ----------------------------------------------------------- openers
 * Each binding file registers its functions into the module table at the stack top.
 * core.c calls them in order; add a new file's opener to the list there. */
void kl_lua_open_tensor(lua_State *L);    /* l_tensor.c: metatable, methods, fields */
void kl_lua_open_construct(lua_State *L); /* l_construct.c: array, zeros, ..., random */
void kl_lua_open_sparse(lua_State *L);    /* l_sparse.c: csr_matrix, row_sparse_array, ... */
void kl_lua_open_ops(lua_State *L);       /* l_ops.c: op(), arithmetic metamethods */
void kl_lua_open_mem(lua_State *L);       /* l_mem.c: set_gc_threshold, memory_info */
void kl_lua_open_capi(lua_State *L);      /* l_capi.c: core._capi for companion modules */
void kl_lua_open_rng_state(lua_State *L); /* l_rng.c: random_get_state, random_set_state */

/* Runs a full collection when the C allocator's live bytes have passed this state's
 * threshold, then moves the threshold (l_mem.c). Called wherever a tensor handle is made,
 * so tensor memory drives Lua's collector. */
void kl_lua_gc_check(lua_State *L);
kl_rng *kl_lua_rng(lua_State *L); /* l_rng.c: this state's generator (keras.random.seed) */

/* ----------------------------------------------------------- tensors */

/* Pushes a new, closed tensor userdata and returns its slot: store a new tensor there
 * (kl_xxx(..., slot)) so that a Lua error raised later cannot leak it. */
kl_tensor **kl_lua_newslot(lua_State *L);
/* Pushes t as a userdata, taking over the caller's reference. If the userdata cannot be
 * allocated, t is released before the memory error propagates. */
void kl_lua_push_tensor(lua_State *L, kl_tensor *t);
/* The open tensor at idx, or a Lua error "bad argument #arg to 'fn' (keras.Tensor expected,
 * got table)" / "fn: tensor is closed". */
/* The tensor at idx, on the host: a tensor on a device is an error ("fn: the tensor is on
 * gpu(0); copy it to the host first ..."), so no host code reads device memory. */
kl_tensor *kl_lua_checktensor(lua_State *L, int idx, const char *fn);
/* The same on any device (call sites that only dispatch ops or copy through the host). */
kl_tensor *kl_lua_checktensor_any(lua_State *L, int idx, const char *fn);
/* kl_lua_totensor on any device. */
kl_tensor *kl_lua_totensor_any(lua_State *L, int idx);
/* A device from a keras device table ({device_type = "cpu"|"gpu", device_id = n}), for
 * fn's argument idx. */
kl_device kl_lua_checkdevice(lua_State *L, int idx, const char *fn);
/* The tensor at idx if it is an open keras.Tensor, else NULL (no error). */
kl_tensor *kl_lua_totensor(lua_State *L, int idx);
/* Releases the tensor of the userdata at idx now (idempotent). */
void kl_lua_close_tensor(lua_State *L, int idx);
/* Pushes a zeroed scratch block of n (>= 0) elements of size bytes and returns it: freed by
 * the collector once popped, so a Lua error raised later cannot leak it. For lists whose
 * length comes from Lua (a model's inputs), instead of a fixed-size stack array. */
void *kl_lua_scratch(lua_State *L, size_t n, size_t size);

/* ----------------------------------------------------------- errors */

/* Raises kl_errmsg() as a Lua error. Call it only after every C temporary is freed
 * (tensors in userdata slots are safe: the GC owns them). Never returns. */
int kl_lua_raise(lua_State *L, kl_status s);
/* "fn: message" as a Lua error without position, like kl_lua_raise. Never returns. */
int kl_lua_fail(lua_State *L, const char *fmt, ...);
/* Raises the error of a failed call unless s == KL_OK. */
#define KL_LUA_TRY(L, expr)                                                               \
  do {                                                                                    \
    kl_status kl_lua_s_ = (expr);                                                         \
    if (kl_lua_s_ != KL_OK) kl_lua_raise((L), kl_lua_s_);                                 \
  } while (0)

/* ----------------------------------------------------------- options */

/* Checks that the value at idx is nil or a table whose keys are all in allowed (a NULL-
 * terminated list): "fn: unknown option 'shap'". Returns 1 when it is a table. */
int kl_lua_checkopts(lua_State *L, int idx, const char *fn, const char *const *allowed);
/* Option readers: the default when the table at idx is absent or the key is nil; a typed
 * error "fn: option 'name' must be a number (got string)" otherwise. */
double kl_lua_optnumber(lua_State *L, int idx, const char *fn, const char *key, double def);
int kl_lua_optbool(lua_State *L, int idx, const char *fn, const char *key, int def);
const char *kl_lua_optstring(lua_State *L, int idx, const char *fn, const char *key,
                             const char *def);
/* The dtype option (key "dtype") or def: "fn: unknown dtype 'float16'". */
kl_dtype kl_lua_optdtype(lua_State *L, int idx, const char *fn, kl_dtype def);

/* ----------------------------------------------------------- numbers and shapes */

/* The value at idx as an exact integer, or an error naming what ("shape[2]", "indices[3]"):
 * "fn: what = 1.5 is not an integer", "fn: what is a string, expected an integer". */
int64_t kl_lua_checkint(lua_State *L, int idx, const char *fn, const char *what);
/* Reads the table of integer dims at idx into shape[] ("reshape: shape must be a table of
 * integers (got string)", rank <= KL_MAX_NDIM), no range check on the dims. Returns ndim. */
int kl_lua_readdims(lua_State *L, int idx, const char *fn, int64_t *shape);
/* Reads a shape (a table of dims, or one number for a 1-d shape) at idx into shape[]:
 * every dim an integer >= 0 ("zeros: shape[1] = -2 must be >= 0"), rank <= KL_MAX_NDIM,
 * numel within KL_MAX_NUMEL. Returns ndim. */
int kl_lua_checkshape(lua_State *L, int idx, const char *fn, int64_t *shape);
/* Normalises a 1-based axis (or -1 for the last, -2 ...) of an ndim-d tensor to 0-based:
 * "sum: axis 3 out of range for a 2-d tensor". */
int kl_lua_checkaxis(lua_State *L, lua_Integer axis, int ndim, const char *fn);
/* Pushes a Lua table holding shape[0..ndim-1]. */
void kl_lua_pushshape(lua_State *L, int ndim, const int64_t *shape);
/* Pushes a new dense tensor of dtype d built from the number or nested table at idx
 * (shape from the nesting; ragged tables and non-numbers are errors naming fn). */
void kl_lua_push_from_nested(lua_State *L, int idx, kl_dtype d, const char *fn);
/* Pushes element i of t's data buffer (an integer for int64 tensors). */
void kl_lua_pushvalue_at(lua_State *L, const kl_tensor *t, int64_t i);

#endif
