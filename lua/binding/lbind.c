/* lbind.c: the shared binding helpers of lbind.h (userdata slots, errors, options, shapes). */
#include "lbind.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ----------------------------------------------------------- tensors */

kl_tensor **kl_lua_newslot(lua_State *L) {
  kl_lua_gc_check(L); /* before a new tensor: collect the garbage ones if C memory grew */
  kl_lua_tensor *u = (kl_lua_tensor *)lua_newuserdatauv(L, sizeof *u, KL_UV_COUNT);
  u->t = NULL; /* closed until the caller attaches a tensor */
  luaL_setmetatable(L, KL_TENSOR_MT);
  return &u->t;
}

/* Protected part of kl_lua_push_tensor: the only step that can raise is the allocation. */
static int push_slot(lua_State *L) {
  kl_tensor **slot = kl_lua_newslot(L); /* (t is not a Lua object: a collection spares it) */
  *slot = (kl_tensor *)lua_touserdata(L, 1);
  return 1;
}

void kl_lua_push_tensor(lua_State *L, kl_tensor *t) {
  /* Allocate through a protected call so that a memory error releases t first. */
  lua_pushcfunction(L, push_slot);
  lua_pushlightuserdata(L, t);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    kl_tensor_release(t);
    lua_error(L);
  }
}

kl_tensor *kl_lua_totensor_any(lua_State *L, int idx) {
  kl_lua_tensor *u = (kl_lua_tensor *)luaL_testudata(L, idx, KL_TENSOR_MT);
  return u ? u->t : NULL;
}

/* The host-only accessors: a device tensor is an error here, never a pointer host code
 * would read (kl/device.h); the device-aware call sites use the _any variants. */
static void refuse_device(lua_State *L, const kl_tensor *t, const char *fn) {
  if (t && t->device != KL_CPU) {
    kl_device_refuse(fn, t);
    kl_lua_fail(L, "%s", kl_errmsg());
  }
}

kl_tensor *kl_lua_totensor(lua_State *L, int idx) {
  kl_tensor *t = kl_lua_totensor_any(L, idx);
  refuse_device(L, t, "keras");
  return t;
}

kl_tensor *kl_lua_checktensor(lua_State *L, int idx, const char *fn) {
  kl_tensor *t = kl_lua_checktensor_any(L, idx, fn);
  refuse_device(L, t, fn);
  return t;
}

kl_tensor *kl_lua_checktensor_any(lua_State *L, int idx, const char *fn) {
  kl_lua_tensor *u = (kl_lua_tensor *)luaL_testudata(L, idx, KL_TENSOR_MT);
  if (!u) {
    const char *tn = luaL_typename(L, idx);
    return (kl_lua_fail(L, "bad argument #%d to '%s' (keras.Tensor expected, got %s)", idx, fn,
                        tn),
            NULL);
  }
  if (!u->t) kl_lua_fail(L, "%s: tensor is closed", fn);
  return u->t;
}

kl_device kl_lua_checkdevice(lua_State *L, int idx, const char *fn) {
  /* a keras device table (keras.cpu(), keras.gpu(n)) */
  const char *type = NULL;
  lua_Integer id = 0;
  int ok = 0;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "device_type");
    lua_getfield(L, idx, "device_id");
    type = lua_tostring(L, -2);
    int isint = 0;
    id = lua_tointegerx(L, -1, &isint);
    ok = type && isint;
    lua_pop(L, 2);
  }
  if (ok && strcmp(type, "cpu") == 0 && id == 0) return KL_CPU;
  if (ok && strcmp(type, "gpu") == 0 && id >= 0 && id < 65536) return KL_DEVICE_CUDA((int)id);
  if (ok) kl_lua_fail(L, "%s: invalid device %s(%lld)", fn, type, (long long)id);
  kl_lua_fail(L, "%s: expected a device (keras.cpu() or keras.gpu(n)), got %s", fn,
              luaL_typename(L, idx));
  return KL_CPU;
}

void kl_lua_close_tensor(lua_State *L, int idx) {
  kl_lua_tensor *u = (kl_lua_tensor *)luaL_testudata(L, idx, KL_TENSOR_MT);
  if (u && u->t) {
    kl_tensor *t = u->t;
    u->t = NULL; /* closed before the release: a second close is a no-op */
    kl_tensor_release(t);
  }
}

void *kl_lua_scratch(lua_State *L, size_t n, size_t size) {
  if (n > ((size_t)1 << 40) / (size ? size : 1)) kl_lua_fail(L, "scratch: %zu elements", n);
  size_t bytes = n * size;
  void *p = lua_newuserdatauv(L, bytes ? bytes : 1, 0);
  memset(p, 0, bytes ? bytes : 1);
  return p;
}

/* ----------------------------------------------------------- errors */

int kl_lua_raise(lua_State *L, kl_status s) {
  const char *m = kl_errmsg();
  if (!m || !*m) m = kl_status_name(s);
  lua_pushstring(L, m);
  return lua_error(L);
}

int kl_lua_fail(lua_State *L, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  lua_pushstring(L, buf);
  return lua_error(L);
}

/* ----------------------------------------------------------- options */

int kl_lua_checkopts(lua_State *L, int idx, const char *fn, const char *const *allowed) {
  idx = lua_absindex(L, idx);
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx))
    kl_lua_fail(L, "%s: options must be a table (got %s)", fn, luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      for (const char *const *a = allowed; *a; a++)
        if (strcmp(*a, k) == 0) ok = 1;
      if (!ok) kl_lua_fail(L, "%s: unknown option '%s'", fn, k);
    } else {
      lua_pushvalue(L, -2);
      const char *k = luaL_tolstring(L, -1, NULL);
      kl_lua_fail(L, "%s: unknown option '%s'", fn, k);
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* Pushes opts[key] (nil when opts is absent). */
static int getopt_field(lua_State *L, int idx, const char *key) {
  if (!lua_istable(L, idx)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, idx, key);
}

double kl_lua_optnumber(lua_State *L, int idx, const char *fn, const char *key, double def) {
  idx = lua_absindex(L, idx);
  int ty = getopt_field(L, idx, key);
  double v = def;
  if (ty == LUA_TNUMBER)
    v = lua_tonumber(L, -1);
  else if (ty != LUA_TNIL)
    kl_lua_fail(L, "%s: option '%s' must be a number (got %s)", fn, key, lua_typename(L, ty));
  lua_pop(L, 1);
  return v;
}

int kl_lua_optbool(lua_State *L, int idx, const char *fn, const char *key, int def) {
  idx = lua_absindex(L, idx);
  int ty = getopt_field(L, idx, key);
  int v = def;
  if (ty == LUA_TBOOLEAN)
    v = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL)
    kl_lua_fail(L, "%s: option '%s' must be a boolean (got %s)", fn, key, lua_typename(L, ty));
  lua_pop(L, 1);
  return v;
}

const char *kl_lua_optstring(lua_State *L, int idx, const char *fn, const char *key,
                             const char *def) {
  idx = lua_absindex(L, idx);
  int ty = getopt_field(L, idx, key);
  const char *v = def;
  if (ty == LUA_TSTRING)
    v = lua_tostring(L, -1); /* still referenced by the options table */
  else if (ty != LUA_TNIL)
    kl_lua_fail(L, "%s: option '%s' must be a string (got %s)", fn, key, lua_typename(L, ty));
  lua_pop(L, 1);
  return v;
}

kl_dtype kl_lua_optdtype(lua_State *L, int idx, const char *fn, kl_dtype def) {
  const char *name = kl_lua_optstring(L, idx, fn, "dtype", NULL);
  kl_dtype d = def;
  if (name) {
    if (strcmp(name, "float32") == 0)
      d = KL_FLOAT32;
    else if (strcmp(name, "float64") == 0)
      d = KL_FLOAT64;
    else if (strcmp(name, "int64") == 0)
      d = KL_INT64;
    else
      kl_lua_fail(L, "%s: unknown dtype '%s'", fn, name);
  }
  return d;
}

/* ----------------------------------------------------------- numbers and shapes */

int64_t kl_lua_checkint(lua_State *L, int idx, const char *fn, const char *what) {
  int ty = lua_type(L, idx);
  if (ty != LUA_TNUMBER)
    kl_lua_fail(L, "%s: %s is a %s, expected an integer", fn, what, lua_typename(L, ty));
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint) kl_lua_fail(L, "%s: %s = %.14g is not an integer", fn, what, lua_tonumber(L, idx));
  return (int64_t)v;
}

int kl_lua_readdims(lua_State *L, int idx, const char *fn, int64_t *shape) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx))
    kl_lua_fail(L, "%s: shape must be a table of integers (got %s)", fn, luaL_typename(L, idx));
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  if (n > KL_MAX_NDIM)
    kl_lua_fail(L, "%s: shape has %lld dimensions, at most %d are supported", fn, (long long)n,
                KL_MAX_NDIM);
  for (lua_Integer i = 1; i <= n; i++) {
    char what[32];
    snprintf(what, sizeof what, "shape[%lld]", (long long)i);
    lua_rawgeti(L, idx, i);
    shape[i - 1] = kl_lua_checkint(L, -1, fn, what);
    lua_pop(L, 1);
  }
  return (int)n;
}

int kl_lua_checkshape(lua_State *L, int idx, const char *fn, int64_t *shape) {
  idx = lua_absindex(L, idx);
  int ndim = 0;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    shape[0] = kl_lua_checkint(L, idx, fn, "shape[1]");
    ndim = 1;
  } else {
    ndim = kl_lua_readdims(L, idx, fn, shape);
  }
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0)
      kl_lua_fail(L, "%s: shape[%d] = %lld must be >= 0", fn, i + 1, (long long)shape[i]);
  KL_LUA_TRY(L, kl_shape_check(fn, ndim, shape));
  return ndim;
}

int kl_lua_checkaxis(lua_State *L, lua_Integer axis, int ndim, const char *fn) {
  if (axis >= 1 && axis <= ndim) return (int)(axis - 1);
  /* axis >= -ndim, not -axis <= ndim: negating math.mininteger overflows */
  if (axis < 0 && axis >= -(lua_Integer)ndim) return (int)(ndim + axis);
  return kl_lua_fail(L, "%s: axis %lld out of range for a %d-d tensor", fn, (long long)axis,
                     ndim);
}

void kl_lua_pushshape(lua_State *L, int ndim, const int64_t *shape) {
  lua_createtable(L, ndim, 0);
  for (int i = 0; i < ndim; i++) {
    lua_pushinteger(L, (lua_Integer)shape[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

void kl_lua_pushvalue_at(lua_State *L, const kl_tensor *t, int64_t i) {
  switch (t->dtype) {
    case KL_FLOAT32: lua_pushnumber(L, (lua_Number)((const float *)t->data)[i]); break;
    case KL_FLOAT64: lua_pushnumber(L, ((const double *)t->data)[i]); break;
    default: lua_pushinteger(L, (lua_Integer)((const int64_t *)t->data)[i]); break;
  }
}
