/* l_metric.c: metric specs read from Lua and the "keras.MetricAcc" userdata: a metric's
 * running state over an epoch, for the loops that run in Lua (model_iter.lua's iterators). */
#include <math.h>
#include <string.h>

#include "kl/layers.h"
#include "l_graph.h"

#define KL_METRIC_ACC_MT "keras.MetricAcc"

/* A MetricAcc userdata: the C state; live == 0 once released. Uservalue 1: its key. */
typedef struct kl_lua_macc {
  kl_metric_acc a;
  int live;
} kl_lua_macc;

void kl_lua_check_metric(lua_State *L, int idx, const char *fn, kl_metric *m, int64_t *param) {
  idx = lua_absindex(L, idx);
  *param = 0;
  if (lua_type(L, idx) == LUA_TSTRING) {
    KL_LUA_TRY(L, kl_metric_parse(lua_tostring(L, idx), m));
    lua_pushvalue(L, idx);
    return;
  }
  if (!lua_istable(L, idx))
    kl_lua_fail(L, "%s: a metric must be a name or {metric = name, param = k, key = name} (got %s)",
                fn, luaL_typename(L, idx));
  if (lua_getfield(L, idx, "metric") != LUA_TSTRING)
    kl_lua_fail(L, "%s: a metric table needs metric = <name>", fn);
  KL_LUA_TRY(L, kl_metric_parse(lua_tostring(L, -1), m));
  if (lua_getfield(L, idx, "param") != LUA_TNIL) *param = kl_lua_checkint(L, -1, fn, "param");
  lua_pop(L, 1);
  if (lua_getfield(L, idx, "key") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) kl_lua_fail(L, "%s: a metric's key must be a string", fn);
    lua_remove(L, -2); /* the key replaces the name */
  } else {
    lua_pop(L, 1);
  }
}

kl_metric_acc *kl_lua_to_metric_acc(lua_State *L, int idx, const char *fn) {
  kl_lua_macc *u = (kl_lua_macc *)luaL_testudata(L, idx, KL_METRIC_ACC_MT);
  if (!u) return NULL;
  if (!u->live) kl_lua_fail(L, "%s: the metric state is closed", fn);
  return &u->a;
}

/* core.metric_acc(spec) -> a MetricAcc (spec as kl_lua_check_metric reads it). */
static int l_metric_acc_new(lua_State *L) {
  kl_metric m;
  int64_t param;
  kl_lua_check_metric(L, 1, "metric_acc", &m, &param); /* pushes the key */
  kl_lua_macc *u = (kl_lua_macc *)lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, KL_METRIC_ACC_MT);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);
  KL_LUA_TRY(L, kl_metric_acc_init(&u->a, m, param));
  u->live = 1;
  return 1;
}

static kl_lua_macc *check_macc(lua_State *L, const char *fn) {
  kl_lua_macc *u = (kl_lua_macc *)luaL_checkudata(L, 1, KL_METRIC_ACC_MT);
  if (!u->live) kl_lua_fail(L, "%s: the metric state is closed", fn);
  return u;
}

/* acc:update(y_true, y_pred): adds a batch. */
static int l_metric_acc_update(lua_State *L) {
  kl_lua_macc *u = check_macc(L, "update");
  kl_tensor *yt = kl_lua_checktensor(L, 2, "update"), *yp = kl_lua_checktensor(L, 3, "update");
  KL_LUA_TRY(L, kl_metric_acc_update(&u->a, yt, yp));
  return 0;
}

static int l_metric_acc_result(lua_State *L) {
  lua_pushnumber(L, kl_metric_acc_result(&check_macc(L, "result")->a));
  return 1;
}

static int l_metric_acc_reset(lua_State *L) {
  kl_metric_acc_reset(&check_macc(L, "reset")->a);
  return 0;
}

static int l_metric_acc_key(lua_State *L) {
  check_macc(L, "key");
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int l_metric_acc_gc(lua_State *L) {
  kl_lua_macc *u = (kl_lua_macc *)luaL_checkudata(L, 1, KL_METRIC_ACC_MT);
  if (u->live) kl_metric_acc_free(&u->a);
  u->live = 0;
  return 0;
}

void kl_lua_open_metric(lua_State *L) {
  static const luaL_Reg methods[] = {{"update", l_metric_acc_update},
                                     {"result", l_metric_acc_result},
                                     {"reset", l_metric_acc_reset},
                                     {"key", l_metric_acc_key},
                                     {NULL, NULL}};
  if (luaL_newmetatable(L, KL_METRIC_ACC_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_metric_acc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_metric_acc_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_metric_acc_new);
  lua_setfield(L, -2, "metric_acc");
}

const int64_t *kl_lua_metric_params(lua_State *L, int opts, const char *fn, int n, int64_t *out) {
  if (!lua_istable(L, opts) || lua_getfield(L, opts, "metric_params") == LUA_TNIL) {
    if (lua_istable(L, opts)) lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1) || (int)lua_rawlen(L, -1) != n)
    kl_lua_fail(L, "%s: option 'metric_params' must be a list as long as 'metrics'", fn);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    out[i] = kl_lua_checkint(L, -1, fn, "metric_params");
    if (out[i] < 0)
      kl_lua_fail(L, "%s: metric_params[%d] = %lld must be >= 0", fn, i + 1, (long long)out[i]);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}
