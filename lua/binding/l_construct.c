/* l_construct.c: dense constructors: array from nested tables, zeros/ones/full, range, random. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lbind.h"

/* ----------------------------------------------------------- nested tables */

/* Formats the position path[0..depth-1] as "[2][1]" (1-based). */
static const char *path_str(const int64_t *path, int depth, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < depth && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, "[%lld]", (long long)path[i] + 1);
  return buf;
}

/* Stores the Lua value at the stack top into element pos of t, checking its type. */
static void store_value(lua_State *L, kl_tensor *t, int64_t pos, const char *fn,
                        const int64_t *path, int depth) {
  char where[160];
  int ty = lua_type(L, -1);
  if (ty != LUA_TNUMBER)
    kl_lua_fail(L, "%s: element %s is a %s, expected a number", fn,
                path_str(path, depth, where, sizeof where), lua_typename(L, ty));
  if (t->dtype == KL_INT64) {
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint)
      kl_lua_fail(L, "%s: element %s = %.14g is not an integer (dtype int64)", fn,
                  path_str(path, depth, where, sizeof where), lua_tonumber(L, -1));
    ((int64_t *)t->data)[pos] = (int64_t)v;
  } else if (t->dtype == KL_FLOAT32) {
    ((float *)t->data)[pos] = (float)lua_tonumber(L, -1);
  } else {
    ((double *)t->data)[pos] = (double)lua_tonumber(L, -1);
  }
}

/* Fills t from the nested table at idx for dims [dim..ndim). */
static void fill_nested(lua_State *L, int idx, kl_tensor *t, int dim, int64_t *pos,
                        int64_t *path, const char *fn) {
  char where[160];
  luaL_checkstack(L, 4, "nested table too deep");
  if (!lua_istable(L, idx))
    kl_lua_fail(L, "%s: element %s is a %s, expected a table of %lld elements", fn,
                path_str(path, dim, where, sizeof where), luaL_typename(L, idx),
                (long long)t->shape[dim]);
  int64_t n = (int64_t)lua_rawlen(L, idx);
  if (n != t->shape[dim])
    kl_lua_fail(L, "%s: ragged nested table: element %s has %lld elements, expected %lld", fn,
                dim ? path_str(path, dim, where, sizeof where) : "(top)", (long long)n,
                (long long)t->shape[dim]);
  for (int64_t i = 0; i < n; i++) {
    path[dim] = i;
    lua_rawgeti(L, idx, (lua_Integer)(i + 1));
    if (dim == t->ndim - 1) {
      store_value(L, t, *pos, fn, path, dim + 1);
      (*pos)++;
    } else {
      fill_nested(L, lua_gettop(L), t, dim + 1, pos, path, fn);
    }
    lua_pop(L, 1);
  }
}

/* Infers the shape of the nested table at idx from its first elements. */
static int nested_shape(lua_State *L, int idx, const char *fn, int64_t *shape) {
  int ndim = 0;
  int top = lua_gettop(L);
  lua_pushvalue(L, idx);
  while (lua_istable(L, -1)) {
    if (ndim == KL_MAX_NDIM)
      kl_lua_fail(L, "%s: nested table deeper than %d dimensions", fn, KL_MAX_NDIM);
    int64_t n = (int64_t)lua_rawlen(L, -1);
    shape[ndim++] = n;
    if (n == 0) break;
    lua_rawgeti(L, -1, 1);
  }
  lua_settop(L, top);
  KL_LUA_TRY(L, kl_shape_check(fn, ndim, shape));
  return ndim;
}

/* Pushes a new dense tensor of dtype d built from the number or nested table at idx. */
void kl_lua_push_from_nested(lua_State *L, int idx, kl_dtype d, const char *fn) {
  idx = lua_absindex(L, idx);
  int64_t shape[KL_MAX_NDIM];
  int ndim = 0;
  if (lua_type(L, idx) != LUA_TNUMBER) {
    if (!lua_istable(L, idx))
      kl_lua_fail(L, "%s: expected a number, a nested table or a tensor (got %s)", fn,
                  luaL_typename(L, idx));
    ndim = nested_shape(L, idx, fn, shape);
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(d, ndim, shape, slot));
  int64_t path[KL_MAX_NDIM] = {0};
  if (ndim == 0) {
    lua_pushvalue(L, idx);
    store_value(L, *slot, 0, fn, path, 0);
    lua_pop(L, 1);
  } else {
    int64_t pos = 0;
    fill_nested(L, idx, *slot, 0, &pos, path, fn);
  }
}

/* keras.array(x, {dtype=}): x a number, nested table or tensor (copied, keeping its stype). */
static int l_array(lua_State *L) {
  static const char *const opts[] = {"dtype", NULL};
  kl_lua_checkopts(L, 2, "array", opts);
  kl_tensor *src = kl_lua_totensor(L, 1);
  if (src) {
    kl_dtype d = kl_lua_optdtype(L, 2, "array", src->dtype);
    kl_tensor **slot = kl_lua_newslot(L);
    if (d == src->dtype)
      KL_LUA_TRY(L, kl_tensor_copy(src, slot));
    else
      KL_LUA_TRY(L, kl_tensor_astype(src, d, slot));
    return 1;
  }
  kl_dtype d = kl_lua_optdtype(L, 2, "array", KL_FLOAT32);
  kl_lua_push_from_nested(L, 1, d, "array");
  return 1;
}

/* zeros/ones/full share this: a dense tensor of shape (arg 1) filled with v. */
static int push_filled(lua_State *L, const char *fn, int optidx, double v) {
  static const char *const opts[] = {"dtype", NULL};
  int64_t shape[KL_MAX_NDIM];
  int ndim = kl_lua_checkshape(L, 1, fn, shape);
  kl_lua_checkopts(L, optidx, fn, opts);
  kl_dtype d = kl_lua_optdtype(L, optidx, fn, KL_FLOAT32);
  if (d == KL_INT64 && (v != floor(v) || fabs(v) > 9.2e18))
    return kl_lua_fail(L, "%s: value %.14g is not an integer (dtype int64)", fn, v);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(d, ndim, shape, slot));
  if (v != 0) kl_tensor_fill(*slot, v);
  return 1;
}

static int l_zeros(lua_State *L) { return push_filled(L, "zeros", 2, 0.0); }
static int l_ones(lua_State *L) { return push_filled(L, "ones", 2, 1.0); }

static int l_full(lua_State *L) {
  if (lua_type(L, 2) != LUA_TNUMBER)
    return kl_lua_fail(L, "full: value must be a number (got %s)", luaL_typename(L, 2));
  return push_filled(L, "full", 3, lua_tonumber(L, 2));
}

/* keras.range(first, last[, step][, {dtype=}]): first, first+step, ... up to last inclusive
 * (like torch.range); empty when last is not reached in the step's direction. */
static int l_range(lua_State *L) {
  static const char *const opts[] = {"dtype", NULL};
  const char *names[3] = {"first", "last", "step"};
  double a[3] = {0, 0, 1};
  int optidx = 4;
  if (lua_istable(L, 3)) optidx = 3;
  for (int i = 0; i < 3; i++) {
    if (i == 2 && (optidx == 3 || lua_isnoneornil(L, 3))) break;
    if (lua_type(L, i + 1) != LUA_TNUMBER)
      return kl_lua_fail(L, "range: %s must be a number (got %s)", names[i],
                         luaL_typename(L, i + 1));
    a[i] = lua_tonumber(L, i + 1);
    if (!isfinite(a[i])) return kl_lua_fail(L, "range: %s = %g is not finite", names[i], a[i]);
  }
  if (a[2] == 0) return kl_lua_fail(L, "range: step must not be 0");
  kl_lua_checkopts(L, optidx, "range", opts);
  kl_dtype d = kl_lua_optdtype(L, optidx, "range", KL_FLOAT32);
  double span = (a[1] - a[0]) / a[2];
  int64_t n = 0;
  if (span >= 0) {
    if (span >= (double)KL_MAX_NUMEL)
      return kl_lua_fail(L, "range: %.14g..%.14g with step %.14g has too many elements", a[0],
                         a[1], a[2]);
    n = (int64_t)floor(span + 1e-9) + 1;
  }
  if (d == KL_INT64 && (a[0] != floor(a[0]) || a[2] != floor(a[2])))
    return kl_lua_fail(L, "range: first and step must be integers for dtype int64");
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(d, 1, &n, slot));
  for (int64_t i = 0; i < n; i++) kl_tensor_data_set(*slot, i, a[0] + (double)i * a[2]);
  return 1;
}

/* ----------------------------------------------------------- random */

static int l_random_seed(lua_State *L) {
  int64_t s = kl_lua_checkint(L, 1, "random.seed", "seed");
  kl_rng_seed(kl_lua_rng(L), (uint64_t)s); /* this lua_State's generator only */
  return 0;
}

/* The generator for a call: a local one seeded by opts.seed, else the state's one. */
static kl_rng *pick_rng(lua_State *L, int optidx, const char *fn, kl_rng *local) {
  if (lua_istable(L, optidx)) {
    lua_getfield(L, optidx, "seed");
    if (!lua_isnil(L, -1)) {
      int64_t s = kl_lua_checkint(L, -1, fn, "seed");
      lua_pop(L, 1);
      kl_rng_seed(local, (uint64_t)s);
      return local;
    }
    lua_pop(L, 1);
  }
  return kl_lua_rng(L);
}

static int l_random_normal(lua_State *L) {
  static const char *const opts[] = {"mean", "stddev", "dtype", "seed", NULL};
  const char *fn = "random.normal";
  int64_t shape[KL_MAX_NDIM];
  int ndim = kl_lua_checkshape(L, 1, fn, shape);
  kl_lua_checkopts(L, 2, fn, opts);
  double mean = kl_lua_optnumber(L, 2, fn, "mean", 0.0);
  double sd = kl_lua_optnumber(L, 2, fn, "stddev", 1.0);
  if (!isfinite(mean)) return kl_lua_fail(L, "%s: mean = %g is not finite", fn, mean);
  if (!(sd >= 0) || !isfinite(sd))
    return kl_lua_fail(L, "%s: stddev = %g must be finite and >= 0", fn, sd);
  kl_dtype d = kl_lua_optdtype(L, 2, fn, KL_FLOAT32);
  if (d == KL_INT64) return kl_lua_fail(L, "%s: dtype int64 is not supported", fn);
  kl_rng local, *r = pick_rng(L, 2, fn, &local);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(d, ndim, shape, slot));
  KL_LUA_TRY(L, kl_tensor_fill_normal(*slot, mean, sd, r));
  return 1;
}

static int l_random_uniform(lua_State *L) {
  static const char *const opts[] = {"low", "high", "dtype", "seed", NULL};
  const char *fn = "random.uniform";
  int64_t shape[KL_MAX_NDIM];
  int ndim = kl_lua_checkshape(L, 1, fn, shape);
  kl_lua_checkopts(L, 2, fn, opts);
  double lo = kl_lua_optnumber(L, 2, fn, "low", 0.0);
  double hi = kl_lua_optnumber(L, 2, fn, "high", 1.0);
  if (!isfinite(lo) || !isfinite(hi) || !(lo <= hi))
    return kl_lua_fail(L, "%s: need finite low <= high (got low = %g, high = %g)", fn, lo, hi);
  kl_dtype d = kl_lua_optdtype(L, 2, fn, KL_FLOAT32);
  if (d == KL_INT64) return kl_lua_fail(L, "%s: dtype int64 is not supported", fn);
  kl_rng local, *r = pick_rng(L, 2, fn, &local);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(d, ndim, shape, slot));
  KL_LUA_TRY(L, kl_tensor_fill_uniform(*slot, lo, hi, r));
  return 1;
}

static const luaL_Reg construct_funcs[] = {
    {"array", l_array},
    {"zeros", l_zeros},
    {"ones", l_ones},
    {"full", l_full},
    {"range", l_range},
    {"random_seed", l_random_seed},
    {"random_normal", l_random_normal},
    {"random_uniform", l_random_uniform},
    {NULL, NULL},
};

void kl_lua_open_construct(lua_State *L) {
  luaL_setfuncs(L, construct_funcs, 0);
  kl_lua_rng(L); /* made now, so that no later call has to allocate it */
}
