/* l_optim.c: the "keras.Optimizer" userdata: C optimizers (kl/optim.h) for Lua, low-level API. */
#include <math.h>
#include <string.h>

#include "l_optim.h"

kl_optimizer *kl_lua_checkoptimizer(lua_State *L, int idx, const char *fn) {
  kl_lua_optimizer *u = (kl_lua_optimizer *)luaL_testudata(L, idx, KL_OPTIMIZER_MT);
  if (!u)
    return (kl_optimizer *)(kl_lua_fail(L, "bad argument #%d to '%s' (keras.Optimizer expected, got %s)",
                                        idx, fn, luaL_typename(L, idx)),
                            NULL);
  return &u->o;
}

/* Whether name is an option that is a boolean for kind. */
static int option_is_bool(kl_opt_kind kind, const char *name) {
  for (int i = 0; kl_optimizer_option_name(kind, i); i++)
    if (strcmp(kl_optimizer_option_name(kind, i), name) == 0)
      return kl_optimizer_option_is_bool(kind, i);
  return 0;
}

/* Sets option `name` from the Lua value at idx (number or boolean) without validating the
 * value's range (kl_optimizer_check does that). */
static void set_option(lua_State *L, kl_optimizer *o, const char *name, int idx) {
  const char *kn = kl_optimizer_kind_name(o->kind);
  double v;
  int t = lua_type(L, idx);
  if (t == LUA_TBOOLEAN) {
    v = lua_toboolean(L, idx) ? 1.0 : 0.0;
  } else if (t == LUA_TNUMBER) {
    v = lua_tonumber(L, idx);
    if (option_is_bool(o->kind, name) && v != 0.0 && v != 1.0)
      kl_lua_fail(L, "%s: %s must be a boolean. Received: %s=%s", kn, name, name,
                  lua_tostring(L, idx));
  } else {
    kl_lua_fail(L, "%s: option '%s' must be a number (got %s)", kn, name, luaL_typename(L, idx));
    return;
  }
  KL_LUA_TRY(L, kl_optimizer_set(o, name, v));
}

/* core.optimizer_new(kind, opts) -> optimizer; kind "sgd", "adam", "adagrad", "rmsprop",
 * "ftrl" (any case); opts: option names of kl_optimizer_set (validated, Keras messages). */
static int l_optimizer_new(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  kl_opt_kind k;
  KL_LUA_TRY(L, kl_optimizer_kind_parse(kind, &k));
  kl_lua_optimizer *u = (kl_lua_optimizer *)lua_newuserdatauv(L, sizeof *u, 0);
  KL_LUA_TRY(L, kl_optimizer_init(&u->o, k));
  luaL_setmetatable(L, KL_OPTIMIZER_MT);
  int ud = lua_gettop(L);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        kl_lua_fail(L, "%s: option names must be strings (got %s)", kl_optimizer_kind_name(k),
                    luaL_typename(L, -2));
      set_option(L, &u->o, lua_tostring(L, -2), lua_gettop(L));
      lua_pop(L, 1);
    }
  }
  KL_LUA_TRY(L, kl_optimizer_check(&u->o));
  lua_pushvalue(L, ud);
  return 1;
}

/* opt:create_state(weight) -> {state tensors..., <name> = tensor, t = 0}: new dense zero
 * tensors shaped like weight (none for plain SGD). */
static int l_optimizer_create_state(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "create_state");
  kl_tensor *w = kl_lua_checktensor(L, 2, "create_state");
  int n = kl_optimizer_num_states(o);
  lua_createtable(L, n, n + 1);
  int tbl = lua_gettop(L);
  kl_tensor **slots[2] = {NULL, NULL};
  for (int i = 0; i < n; i++) { /* closed slots first: nothing can leak after the C call */
    slots[i] = kl_lua_newslot(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, tbl, i + 1);
    lua_setfield(L, tbl, kl_optimizer_state_name(o, i));
  }
  kl_tensor *states[2] = {NULL, NULL};
  KL_LUA_TRY(L, kl_optimizer_create_states(o, w, states));
  for (int i = 0; i < n; i++) *slots[i] = states[i];
  lua_pushinteger(L, 0);
  lua_setfield(L, tbl, "t");
  return 1;
}

/* opt:update(weight, grad, state[, t]): one step in place. t defaults to state.t + 1 (the
 * state's own step counter, advanced on success). */
static int l_optimizer_update(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "update");
  const char *kn = kl_optimizer_kind_name(o->kind);
  kl_tensor *w = kl_lua_checktensor(L, 2, "update");
  kl_tensor *g = kl_lua_checktensor(L, 3, "update");
  int n = kl_optimizer_num_states(o);
  kl_tensor *states[2] = {NULL, NULL};
  int has_state = lua_istable(L, 4);
  if (!has_state && !lua_isnoneornil(L, 4))
    return kl_lua_fail(L, "%s.update: state must be a table from create_state (got %s)", kn,
                       luaL_typename(L, 4));
  if (n > 0 && !has_state)
    return kl_lua_fail(L, "%s.update: state is missing (use opt:create_state(weight))", kn);
  /* The step first: reading state.t may run a metamethod, and no Lua code may run between
   * reading the state tensors (raw) and the C update that uses them. */
  int64_t t;
  if (!lua_isnoneornil(L, 5)) {
    t = kl_lua_checkint(L, 5, kn, "t");
    if (t < 1) return kl_lua_fail(L, "%s.update: t must be >= 1. Received: t=%lld", kn, (long long)t);
  } else {
    int64_t prev = 0;
    if (has_state) {
      lua_getfield(L, 4, "t");
      int isint = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isint); /* 3 or 3.0 */
      if (isint && v < INT64_MAX) prev = (int64_t)v;
      lua_pop(L, 1);
    }
    t = prev + 1;
  }
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 4, i + 1);
    states[i] = kl_lua_totensor(L, -1);
    lua_pop(L, 1); /* the table keeps the tensor alive */
    if (!states[i])
      return kl_lua_fail(L, "%s.update: state[%d] ('%s') is not a tensor (use opt:create_state)",
                         kn, i + 1, kl_optimizer_state_name(o, i));
  }
  KL_LUA_TRY(L, kl_optimizer_update(o, w, g, states, t));
  if (has_state) {
    lua_pushinteger(L, (lua_Integer)t);
    lua_setfield(L, 4, "t");
  }
  return 0;
}

/* Pushes option name's value (a boolean for boolean options). */
static void push_option(lua_State *L, const kl_optimizer *o, const char *name) {
  double v;
  KL_LUA_TRY(L, kl_optimizer_get(o, name, &v));
  if (option_is_bool(o->kind, name))
    lua_pushboolean(L, v != 0.0);
  else
    lua_pushnumber(L, v);
}

/* opt:get(name) -> value */
static int l_optimizer_get(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "get");
  push_option(L, o, luaL_checkstring(L, 2));
  return 1;
}

/* opt:set(name, value): validated; on a bad value the optimizer is unchanged. */
static int l_optimizer_set(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "set");
  const char *name = luaL_checkstring(L, 2);
  luaL_checkany(L, 3);
  kl_optimizer saved = *o;
  set_option(L, o, name, 3);
  kl_status s = kl_optimizer_check(o);
  if (s != KL_OK) {
    *o = saved;
    return kl_lua_raise(L, s);
  }
  return 0;
}

/* opt:config() -> {name = "SGD", learning_rate = ..., ...} (the kind's canonical options) */
static int l_optimizer_config(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "config");
  lua_newtable(L);
  lua_pushstring(L, kl_optimizer_kind_name(o->kind));
  lua_setfield(L, -2, "name");
  for (int i = 0; kl_optimizer_option_name(o->kind, i); i++) {
    const char *nm = kl_optimizer_option_name(o->kind, i);
    push_option(L, o, nm);
    lua_setfield(L, -2, nm);
  }
  return 1;
}

/* opt:kind() -> "SGD", "Adam", ... */
static int l_optimizer_kind(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "kind");
  lua_pushstring(L, kl_optimizer_kind_name(o->kind));
  return 1;
}

/* opt:num_states() -> number of state tensors per weight */
static int l_optimizer_num_states(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "num_states");
  lua_pushinteger(L, kl_optimizer_num_states(o));
  return 1;
}

/* opt:state_names() -> {"m", "v"} */
static int l_optimizer_state_names(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "state_names");
  int n = kl_optimizer_num_states(o);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, kl_optimizer_state_name(o, i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_optimizer_tostring(lua_State *L) {
  kl_optimizer *o = kl_lua_checkoptimizer(L, 1, "tostring");
  lua_pushfstring(L, "<Optimizer %s lr=%f>", kl_optimizer_kind_name(o->kind), o->learning_rate);
  return 1;
}

static int l_is_optimizer(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, KL_OPTIMIZER_MT) != NULL);
  return 1;
}

void kl_lua_open_optim(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"create_state", l_optimizer_create_state},
      {"update", l_optimizer_update},
      {"get", l_optimizer_get},
      {"set", l_optimizer_set},
      {"config", l_optimizer_config},
      {"kind", l_optimizer_kind},
      {"num_states", l_optimizer_num_states},
      {"state_names", l_optimizer_state_names},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, KL_OPTIMIZER_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_optimizer_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_optimizer_new);
  lua_setfield(L, -2, "optimizer_new");
  lua_pushcfunction(L, l_is_optimizer);
  lua_setfield(L, -2, "is_optimizer");
}
