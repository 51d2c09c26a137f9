/* l_svmlight.c: LibSVM/svmlight files from Lua: core.svmlight_load/dump and keras.LibSVMIter. */
#include <string.h>

#include "kl/kl.h"
#include "kl/svmlight.h"
#include "lbind.h"

#define KL_LIBSVMITER_MT "keras.LibSVMIter"

/* Raises "fn: <backend message>" (the backend message is "path:line: what", or starts with
 * "fn: " already: not doubled). Call only when no C memory is held. */
static int raise_prefixed(lua_State *L, const char *fn, kl_status s) {
  const char *m = kl_errmsg();
  if (!m || !*m) m = kl_status_name(s);
  size_t n = strlen(fn);
  if (strncmp(m, fn, n) == 0 && m[n] == ':') lua_pushstring(L, m);
  else lua_pushfstring(L, "%s: %s", fn, m);
  return lua_error(L);
}

/* An integer option of a raw core call (nil -> def), checked against [lo, hi]. */
static int64_t opt_int(lua_State *L, int idx, const char *fn, const char *key, int64_t def,
                       int64_t lo, int64_t hi) {
  if (!lua_istable(L, idx)) return def;
  int64_t v = def;
  if (lua_getfield(L, idx, key) != LUA_TNIL) {
    v = kl_lua_checkint(L, -1, fn, key);
    if (v < lo || v > hi)
      kl_lua_fail(L, "%s: %s must be in [%lld, %lld]. Received: %s=%lld", fn, key, (long long)lo,
                  (long long)hi, key, (long long)v);
  }
  lua_pop(L, 1);
  return v;
}

/* core.svmlight_load(path, {n_features=0, zero_based=-1|0|1, dtype="float32", want_qid=false})
 * -> X (CSR, rows x n_features), y (dense, rows)[, qid (int64 dense, rows) or nil when the
 * file has none; only with want_qid]. Errors: "load_svmlight_file: path:line: what". */
static int l_svmlight_load(lua_State *L) {
  static const char *const allowed[] = {"n_features", "zero_based", "dtype", "want_qid", NULL};
  const char *fn = "load_svmlight_file";
  const char *path = luaL_checkstring(L, 1);
  kl_lua_checkopts(L, 2, fn, allowed);
  kl_svmlight_opts o = kl_svmlight_opts_default();
  o.n_features = opt_int(L, 2, fn, "n_features", 0, 0, INT64_MAX);
  o.zero_based = (int)opt_int(L, 2, fn, "zero_based", -1, -1, 1);
  o.dtype = kl_lua_optdtype(L, 2, fn, KL_FLOAT32);
  o.want_qid = kl_lua_optbool(L, 2, fn, "want_qid", 0);
  kl_tensor **X = kl_lua_newslot(L);
  kl_tensor **y = kl_lua_newslot(L);
  kl_tensor **q = kl_lua_newslot(L);
  kl_status s = kl_svmlight_load(path, &o, X, y, o.want_qid ? q : NULL);
  if (s != KL_OK) return raise_prefixed(L, fn, s);
  if (!o.want_qid) {
    lua_pop(L, 1); /* the unused qid slot */
    return 2;
  }
  if (*q == NULL) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  return 3;
}

/* core.svmlight_dump(X, y, path[, zero_based=false]): writes X (CSR or dense 2-d) and y
 * (dense, rows or rows x 1) as svmlight text (gzip when path ends in ".gz"). */
static int l_svmlight_dump(lua_State *L) {
  const char *fn = "dump_svmlight_file";
  kl_tensor *X = kl_lua_checktensor(L, 1, fn);
  kl_tensor *y = kl_lua_checktensor(L, 2, fn);
  const char *path = luaL_checkstring(L, 3);
  int zb = lua_toboolean(L, 4);
  kl_status s = kl_svmlight_dump(X, y, path, zb);
  if (s != KL_OK) return raise_prefixed(L, fn, s);
  return 0;
}

/* ----------------------------------------------------------- keras.LibSVMIter */

typedef struct lsvm_iter {
  kl_svmlight_iter *it; /* NULL: closed (or not opened yet) */
} lsvm_iter;

static lsvm_iter *check_iter(lua_State *L, const char *fn) {
  lsvm_iter *u = (lsvm_iter *)luaL_checkudata(L, 1, KL_LIBSVMITER_MT);
  if (!u->it) kl_lua_fail(L, "LibSVMIter:%s: the iterator is closed", fn);
  return u;
}

/* core.svmlight_iter_open(path, n_features, batch_size, zero_based (-1|0|1), num_parts,
 * part_index (1-based), dtype) -> keras.LibSVMIter. */
static int l_iter_open(lua_State *L) {
  const char *fn = "LibSVMIter";
  const char *path = luaL_checkstring(L, 1);
  int64_t nf = kl_lua_checkint(L, 2, fn, "n_features");
  int64_t bs = kl_lua_checkint(L, 3, fn, "batch_size");
  int64_t zb = kl_lua_checkint(L, 4, fn, "zero_based");
  int64_t np = kl_lua_checkint(L, 5, fn, "num_parts");
  int64_t pi = kl_lua_checkint(L, 6, fn, "part_index");
  const char *dn = luaL_optstring(L, 7, "float32");
  kl_dtype dt;
  if (strcmp(dn, "float32") == 0)
    dt = KL_FLOAT32;
  else if (strcmp(dn, "float64") == 0)
    dt = KL_FLOAT64;
  else
    return kl_lua_fail(L, "%s: dtype must be 'float32' or 'float64'. Received: dtype=%s", fn, dn);
  if (zb < -1 || zb > 1) return kl_lua_fail(L, "%s: zero_based=%lld (-1, 0 or 1)", fn, (long long)zb);
  if (np < 1 || np > 1000000)
    return kl_lua_fail(L, "%s: num_parts must be in [1, 1000000]. Received: num_parts=%lld", fn,
                       (long long)np);
  if (pi < 1 || pi > np)
    return kl_lua_fail(L, "%s: part_index must be in [1, %lld]. Received: part_index=%lld", fn,
                       (long long)np, (long long)pi);
  /* closed userdata first, so that an allocation error cannot leak the iterator */
  lsvm_iter *u = (lsvm_iter *)lua_newuserdatauv(L, sizeof *u, 0);
  u->it = NULL;
  luaL_setmetatable(L, KL_LIBSVMITER_MT);
  kl_status s = kl_svmlight_iter_open(path, nf, bs, (int)zb, (int)np, (int)(pi - 1), dt, &u->it);
  if (s != KL_OK) return raise_prefixed(L, fn, s);
  return 1;
}

/* it:next() -> X (CSR, n x n_features), y (dense, n), or nil at the end of the part. The
 * tensors are retained for Lua (the C iterator then allocates fresh buffers for the next
 * batch instead of overwriting these), so a batch kept by Lua stays valid. */
static int l_iter_next(lua_State *L) {
  lsvm_iter *u = check_iter(L, "next");
  kl_tensor *X = NULL, *y = NULL;
  int done = 0;
  kl_status s = kl_svmlight_iter_next(u->it, &X, &y, &done);
  if (s != KL_OK) return raise_prefixed(L, "LibSVMIter", s);
  if (done) {
    lua_pushnil(L);
    return 1;
  }
  kl_lua_push_tensor(L, kl_tensor_retain(X));
  kl_lua_push_tensor(L, kl_tensor_retain(y));
  return 2;
}

/* it:reset(): rewinds to the start of the part. */
static int l_iter_reset(lua_State *L) {
  lsvm_iter *u = check_iter(L, "reset");
  kl_status s = kl_svmlight_iter_reset(u->it);
  if (s != KL_OK) return raise_prefixed(L, "LibSVMIter", s);
  return 0;
}

/* it:close() (also __gc and __close): frees the iterator; idempotent. */
static int l_iter_close(lua_State *L) {
  lsvm_iter *u = (lsvm_iter *)luaL_checkudata(L, 1, KL_LIBSVMITER_MT);
  kl_svmlight_iter *it = u->it;
  u->it = NULL;
  kl_svmlight_iter_close(it);
  return 0;
}

/* it:is_closed() -> boolean. */
static int l_iter_is_closed(lua_State *L) {
  lsvm_iter *u = (lsvm_iter *)luaL_checkudata(L, 1, KL_LIBSVMITER_MT);
  lua_pushboolean(L, u->it == NULL);
  return 1;
}

static int l_iter_tostring(lua_State *L) {
  lsvm_iter *u = (lsvm_iter *)luaL_checkudata(L, 1, KL_LIBSVMITER_MT);
  lua_pushfstring(L, "keras.LibSVMIter (%s)", u->it ? "open" : "closed");
  return 1;
}

void kl_lua_open_svmlight(lua_State *L) {
  static const luaL_Reg methods[] = {{"next", l_iter_next},
                                     {"reset", l_iter_reset},
                                     {"close", l_iter_close},
                                     {"is_closed", l_iter_is_closed},
                                     {NULL, NULL}};
  luaL_newmetatable(L, KL_LIBSVMITER_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_iter_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_iter_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_iter_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_pushcfunction(L, l_svmlight_load);
  lua_setfield(L, -2, "svmlight_load");
  lua_pushcfunction(L, l_svmlight_dump);
  lua_setfield(L, -2, "svmlight_dump");
  lua_pushcfunction(L, l_iter_open);
  lua_setfield(L, -2, "svmlight_iter_open");
}
