/* l_tensor.c: the keras.Tensor metatable: lifetime, fields, tostring and the tensor methods. */
#include <stdio.h>
#include <string.h>

#include "lbind.h"

/* ----------------------------------------------------------- lifetime */

/* __gc and __close: release exactly once (the slot is cleared before the release). */
static int l_tensor_gc(lua_State *L) {
  kl_lua_close_tensor(L, 1);
  return 0;
}

static const char *stype_class(kl_stype s) {
  switch (s) {
    case KL_STYPE_CSR: return "CSRTensor";
    case KL_STYPE_ROW_SPARSE: return "RowSparseTensor";
    default: return "Tensor";
  }
}

/* "<CSRTensor 2x2 float32 @cpu(0)>" */
static int l_tensor_tostring(lua_State *L) {
  kl_lua_tensor *u = (kl_lua_tensor *)luaL_checkudata(L, 1, KL_TENSOR_MT);
  if (!u->t) {
    lua_pushliteral(L, "<Tensor (closed)>");
    return 1;
  }
  const kl_tensor *t = u->t;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '<');
  luaL_addstring(&b, stype_class(t->stype));
  luaL_addchar(&b, ' ');
  if (t->ndim == 0) luaL_addstring(&b, "scalar");
  for (int i = 0; i < t->ndim; i++) {
    char num[32];
    snprintf(num, sizeof num, i ? "x%lld" : "%lld", (long long)t->shape[i]);
    luaL_addstring(&b, num);
  }
  luaL_addchar(&b, ' ');
  luaL_addstring(&b, kl_dtype_name(t->dtype));
  char dev[32];
  luaL_addstring(&b, " @");
  luaL_addstring(&b, kl_device_str(t->device, dev, sizeof dev));
  luaL_addchar(&b, '>');
  luaL_pushresult(&b);
  return 1;
}

static int l_tensor_len(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "len");
  if (t->ndim == 0) return kl_lua_fail(L, "len: a 0-d tensor has no rows");
  lua_pushinteger(L, (lua_Integer)t->shape[0]);
  return 1;
}

/* ----------------------------------------------------------- fields */

/* A new dense 1-d copy of n values of dtype d from src. */
static void push_copy_1d(lua_State *L, kl_dtype d, int ndim, const int64_t *shape,
                         const void *src) {
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(d, ndim, shape, slot));
  int64_t n = kl_shape_numel(ndim, shape);
  if (n > 0) memcpy((*slot)->data, src, (size_t)n * kl_dtype_size(d));
}

/* A new int64 1-d tensor holding idx[0..n-1] + 1 (the Lua convention). */
static void push_index_1based(lua_State *L, const int64_t *idx, int64_t n) {
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(KL_INT64, 1, &n, slot));
  int64_t *dst = (int64_t *)(*slot)->data;
  for (int64_t i = 0; i < n; i++) dst[i] = idx[i] + 1;
}

/* Pushes field key of t, or returns 0 when t has no such field. */
static int push_field(lua_State *L, const kl_tensor *t, const char *key) {
  if (strcmp(key, "shape") == 0) {
    kl_lua_pushshape(L, t->ndim, t->shape);
  } else if (strcmp(key, "stype") == 0) {
    lua_pushstring(L, kl_stype_name(t->stype));
  } else if (strcmp(key, "dtype") == 0) {
    lua_pushstring(L, kl_dtype_name(t->dtype));
  } else if (strcmp(key, "ndim") == 0) {
    lua_pushinteger(L, t->ndim);
  } else if (strcmp(key, "device") == 0) {
    char dev[32];
    lua_pushstring(L, kl_device_str(t->device, dev, sizeof dev));
  } else if (strcmp(key, "nnz") == 0) {
    lua_pushinteger(L, (lua_Integer)t->nnz);
  } else if (strcmp(key, "data") == 0) {
    if (t->stype == KL_STYPE_CSR) {
      push_copy_1d(L, t->dtype, 1, &t->nnz, t->data);
    } else if (t->stype == KL_STYPE_ROW_SPARSE) {
      int64_t shape[KL_MAX_NDIM];
      memcpy(shape, t->shape, sizeof shape);
      shape[0] = t->nnz;
      push_copy_1d(L, t->dtype, t->ndim, shape, t->data);
    } else {
      lua_pushnil(L);
    }
  } else if (strcmp(key, "indices") == 0) {
    if (t->stype == KL_STYPE_DEFAULT)
      lua_pushnil(L);
    else
      push_index_1based(L, t->indices, t->nnz);
  } else if (strcmp(key, "indptr") == 0) {
    if (t->stype == KL_STYPE_CSR)
      push_index_1based(L, t->indptr, t->shape[0] + 1);
    else
      lua_pushnil(L);
  } else {
    return 0;
  }
  return 1;
}

/* __index(t, key): methods first (upvalue 1, extendable from Lua), then fields. */
static int l_tensor_index(lua_State *L) {
  kl_lua_tensor *u = (kl_lua_tensor *)luaL_checkudata(L, 1, KL_TENSOR_MT);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  const char *key = lua_tostring(L, 2);
  if (strcmp(key, "grad") == 0) {
    lua_getiuservalue(L, 1, KL_UV_GRAD);
    return 1;
  }
  if (key[0] == '_') {
    if (lua_getiuservalue(L, 1, KL_UV_EXTRA) != LUA_TTABLE) return 1; /* nil */
    lua_getfield(L, -1, key);
    return 1;
  }
  if (!u->t) return kl_lua_fail(L, "keras.Tensor: tensor is closed (reading field '%s')", key);
  const kl_tensor *t = u->t;
  if (t->device != KL_CPU &&
      (strcmp(key, "data") == 0 || strcmp(key, "indices") == 0 || strcmp(key, "indptr") == 0)) {
    kl_tensor **slot = kl_lua_newslot(L); /* the host copy the field's values come from */
    KL_LUA_TRY(L, kl_tensor_to(t, KL_CPU, slot));
    t = *slot;
  }
  return push_field(L, t, key);
}

/* __newindex: t.grad = tensor|nil; private keys "_x" go to the extra table (later modules
 * keep graph handles there); any other key is an error, so typos do not pass silently. */
static int l_tensor_newindex(lua_State *L) {
  luaL_checkudata(L, 1, KL_TENSOR_MT);
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (key && strcmp(key, "grad") == 0) {
    if (!lua_isnil(L, 3) && !kl_lua_totensor_any(L, 3))
      return kl_lua_fail(L, "keras.Tensor: grad must be a tensor or nil (got %s)",
                         luaL_typename(L, 3));
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, 1, KL_UV_GRAD);
    return 0;
  }
  if (key && key[0] == '_') {
    if (lua_getiuservalue(L, 1, KL_UV_EXTRA) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, 1, KL_UV_EXTRA);
    }
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, key);
    return 0;
  }
  lua_pushvalue(L, 2);
  return kl_lua_fail(L, "keras.Tensor: cannot set field '%s'", luaL_tolstring(L, -1, NULL));
}

/* ----------------------------------------------------------- methods */

static int m_tostype(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "tostype");
  const char *name = luaL_checkstring(L, 2);
  kl_stype s;
  KL_LUA_TRY(L, kl_stype_parse("tostype", name, &s));
  if (s == KL_STYPE_CSR && t->ndim != 2)
    return kl_lua_fail(L, "tostype: csr needs a 2-d tensor, got %d-d", t->ndim);
  if (s == KL_STYPE_ROW_SPARSE && t->ndim < 1)
    return kl_lua_fail(L, "tostype: row_sparse needs a tensor of at least 1 dimension");
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_tostype(t, s, slot));
  return 1;
}

static int m_copy(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "copy");
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_copy(t, slot));
  return 1;
}

/* t:copyto(dst) copies t's values into dst (which keeps its stype) and returns dst. */
static int m_copyto(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "copyto");
  kl_tensor *dst = kl_lua_checktensor_any(L, 2, "copyto");
  KL_LUA_TRY(L, kl_tensor_copyto(t, dst));
  lua_settop(L, 2);
  return 1;
}

static int m_astype(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "astype");
  const char *name = luaL_checkstring(L, 2);
  kl_dtype d;
  if (strcmp(name, "float32") == 0)
    d = KL_FLOAT32;
  else if (strcmp(name, "float64") == 0)
    d = KL_FLOAT64;
  else if (strcmp(name, "int64") == 0)
    d = KL_INT64;
  else
    return kl_lua_fail(L, "astype: unknown dtype '%s'", name);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_astype(t, d, slot));
  return 1;
}

/* Builds the nested table of dims [dim..ndim) starting at element off of dense t. */
static void build_table(lua_State *L, const kl_tensor *t, int dim, int64_t off,
                        const int64_t *stride) {
  luaL_checkstack(L, 4, "totable: nesting too deep");
  int64_t n = t->shape[dim];
  lua_createtable(L, n > 1 << 26 ? 0 : (int)n, 0);
  for (int64_t i = 0; i < n; i++) {
    if (dim == t->ndim - 1)
      kl_lua_pushvalue_at(L, t, off + i);
    else
      build_table(L, t, dim + 1, off + i * stride[dim], stride);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
}

/* Pushes a dense view of t: t itself (returns t) or a new dense copy kept on the stack. */
static const kl_tensor *dense_on_stack(lua_State *L, kl_tensor *t) {
  if (t->stype == KL_STYPE_DEFAULT) {
    lua_pushnil(L);
    return t;
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_tostype(t, KL_STYPE_DEFAULT, slot));
  return *slot;
}

/* t itself when on the host, else a host copy kept on the stack (reading methods of a
 * device tensor copy it back, as the API says of totable). */
static kl_tensor *host_on_stack(lua_State *L, int idx, const char *fn) {
  kl_tensor *t = kl_lua_checktensor_any(L, idx, fn);
  if (t->device == KL_CPU) return t;
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_to(t, KL_CPU, slot));
  return *slot;
}

static int m_totable(lua_State *L) {
  kl_tensor *t = host_on_stack(L, 1, "totable");
  const kl_tensor *d = dense_on_stack(L, t);
  int top = lua_gettop(L);
  if (d->ndim == 0) {
    kl_lua_pushvalue_at(L, d, 0);
  } else {
    int64_t stride[KL_MAX_NDIM];
    stride[d->ndim - 1] = 1;
    for (int i = d->ndim - 2; i >= 0; i--) stride[i] = stride[i + 1] * d->shape[i + 1];
    build_table(L, d, 0, 0, stride);
  }
  if (d != t) kl_lua_close_tensor(L, top); /* free the dense copy now, not at the next GC */
  return 1;
}

/* Pushes the element at a 0-based multi-index: an int64 as an exact Lua integer (not through
 * a double, which rounds beyond 2^53), a float as a number, a missing sparse entry as 0. */
static void push_element(lua_State *L, const kl_tensor *t, const int64_t *idx) {
  int64_t p;
  KL_LUA_TRY(L, kl_tensor_locate(t, idx, &p));
  if (p >= 0)
    kl_lua_pushvalue_at(L, t, p);
  else if (t->dtype == KL_INT64)
    lua_pushinteger(L, 0);
  else
    lua_pushnumber(L, 0.0);
}

static int m_item(lua_State *L) {
  kl_tensor *t = host_on_stack(L, 1, "item");
  int64_t n = kl_tensor_numel(t);
  if (n != 1) return kl_lua_fail(L, "item: the tensor has %lld elements, expected 1", (long long)n);
  int64_t idx[KL_MAX_NDIM] = {0};
  push_element(L, t, idx);
  return 1;
}

/* t:get(i, j, ...) with 1-based indices, one per dimension. */
static int m_get(lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  kl_tensor *t = host_on_stack(L, 1, "get");
  if (nargs != t->ndim)
    return kl_lua_fail(L, "get: expected %d indices for a %d-d tensor, got %d", t->ndim, t->ndim,
                       nargs);
  int64_t idx[KL_MAX_NDIM] = {0};
  for (int k = 0; k < t->ndim; k++) {
    char what[32];
    snprintf(what, sizeof what, "index %d", k + 1);
    int64_t i = kl_lua_checkint(L, k + 2, "get", what);
    if (i < 1 || i > t->shape[k])
      return kl_lua_fail(L, "get: index %d = %lld out of range for dimension %d of size %lld",
                         k + 1, (long long)i, k + 1, (long long)t->shape[k]);
    idx[k] = i - 1;
  }
  push_element(L, t, idx);
  return 1;
}

/* t:slice(first, last): rows first..last (1-based, inclusive), keeping the stype.
 * last = first - 1 gives zero rows. */
static int m_slice(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "slice");
  if (t->ndim == 0) return kl_lua_fail(L, "slice: a 0-d tensor has no rows");
  int64_t first = kl_lua_checkint(L, 2, "slice", "first");
  int64_t last = lua_isnoneornil(L, 3) ? t->shape[0] : kl_lua_checkint(L, 3, "slice", "last");
  if (first < 1 || last > t->shape[0] || last < first - 1)
    return kl_lua_fail(L, "slice: rows %lld..%lld out of range for a tensor of %lld rows",
                       (long long)first, (long long)last, (long long)t->shape[0]);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_slice_rows(t, first - 1, last, slot));
  return 1;
}

/* t:reshape(shape): dense only; one dim may be -1 (inferred). */
static int m_reshape(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "reshape");
  if (t->stype != KL_STYPE_DEFAULT)
    return kl_lua_fail(L, "reshape: not supported for %s tensors (convert with "
                          "tostype('default') first)", kl_stype_name(t->stype));
  int64_t shape[KL_MAX_NDIM];
  int ndim = 0, infer = -1;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    shape[0] = kl_lua_checkint(L, 2, "reshape", "shape[1]");
    ndim = 1;
  } else {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    if (n > KL_MAX_NDIM)
      return kl_lua_fail(L, "reshape: shape has %lld dimensions, at most %d are supported",
                         (long long)n, KL_MAX_NDIM);
    ndim = (int)n;
    for (int i = 0; i < ndim; i++) {
      char what[32];
      snprintf(what, sizeof what, "shape[%d]", i + 1);
      lua_rawgeti(L, 2, i + 1);
      shape[i] = kl_lua_checkint(L, -1, "reshape", what);
      lua_pop(L, 1);
    }
  }
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == -1 && infer < 0) {
      infer = i;
    } else if (shape[i] < 0) {
      return kl_lua_fail(L, "reshape: shape[%d] = %lld must be >= 0 (or one -1)", i + 1,
                         (long long)shape[i]);
    } else {
      if (shape[i] > 0 && known > KL_MAX_NUMEL / shape[i])
        return kl_lua_fail(L, "reshape: shape too large");
      known *= shape[i];
    }
  }
  int64_t numel = kl_tensor_numel(t);
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      return kl_lua_fail(L, "reshape: cannot infer shape[%d] = -1 for %lld elements", infer + 1,
                         (long long)numel);
    shape[infer] = numel / known;
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_reshape(t, ndim, shape, slot));
  return 1;
}

/* t:to(device): t itself when it is there, else a copy on that device. */
static int m_to(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "to");
  kl_device d = kl_lua_checkdevice(L, 2, "to");
  if (t->device == d) {
    lua_settop(L, 1);
    return 1;
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_to(t, d, slot));
  return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"to", m_to},
    {"tostype", m_tostype}, {"copy", m_copy},       {"copyto", m_copyto}, {"astype", m_astype},
    {"totable", m_totable}, {"item", m_item},       {"get", m_get},       {"slice", m_slice},
    {"reshape", m_reshape}, {NULL, NULL},
};

static const luaL_Reg tensor_meta[] = {
    {"__gc", l_tensor_gc},
    {"__close", l_tensor_gc},
    {"__tostring", l_tensor_tostring},
    {"__len", l_tensor_len},
    {"__newindex", l_tensor_newindex},
    {NULL, NULL},
};

/* core.is_tensor(x): true for an open or closed keras.Tensor. */
static int l_is_tensor(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, KL_TENSOR_MT) != NULL);
  return 1;
}

/* core.close(t): releases t's storage now (what __close does). */
static int l_close(lua_State *L) {
  luaL_checkudata(L, 1, KL_TENSOR_MT);
  kl_lua_close_tensor(L, 1);
  return 0;
}

/* core.is_closed(t) */
static int l_is_closed(lua_State *L) {
  kl_lua_tensor *u = (kl_lua_tensor *)luaL_checkudata(L, 1, KL_TENSOR_MT);
  lua_pushboolean(L, u->t == NULL);
  return 1;
}

void kl_lua_open_tensor(lua_State *L) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, KL_TENSOR_MT);
  luaL_setfuncs(L, tensor_meta, 0);
  lua_pushliteral(L, "keras.Tensor");
  lua_setfield(L, -2, "__name");
  /* the methods table: core.tensor_methods, so Lua modules can add methods (to, backward) */
  lua_newtable(L);
  luaL_setfuncs(L, tensor_methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, mod, "tensor_methods");
  lua_pushcclosure(L, l_tensor_index, 1);
  lua_setfield(L, -2, "__index");
  lua_setfield(L, mod, "tensor_mt");
  lua_pushcfunction(L, l_is_tensor);
  lua_setfield(L, mod, "is_tensor");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, mod, "close");
  lua_pushcfunction(L, l_is_closed);
  lua_setfield(L, mod, "is_closed");
}
