/* l_graph.c: the "keras.Graph" userdata: building symbolic graphs from Lua (1-based node ids). */
#include <string.h>

#include "kl/graph.h"
#include "l_graph.h"
#include "lbind.h"

kl_graph *kl_lua_checkgraph(lua_State *L, int idx, const char *fn) {
  kl_lua_graph *u = (kl_lua_graph *)luaL_testudata(L, idx, KL_GRAPH_MT);
  if (!u)
    kl_lua_fail(L, "bad argument #%d to '%s' (keras.Graph expected, got %s)", idx, fn,
                luaL_typename(L, idx));
  if (!u->g) kl_lua_fail(L, "%s: graph is closed", fn);
  return u->g;
}

/* The 0-based id of the 1-based node handle at idx. */
static int check_node(lua_State *L, int idx, const kl_graph *g, const char *fn, const char *what) {
  int64_t v = kl_lua_checkint(L, idx, fn, what);
  int n = kl_graph_size(g);
  if (v < 1 || v > n)
    kl_lua_fail(L, "%s: %s = %lld is not a node of this graph (1..%d)", fn, what, (long long)v, n);
  return (int)(v - 1);
}

int kl_lua_checknode(lua_State *L, int idx, const kl_graph *g, const char *fn, const char *what) {
  return check_node(L, idx, g, fn, what);
}

static int l_graph_new(lua_State *L) {
  kl_lua_graph *u = (kl_lua_graph *)lua_newuserdatauv(L, sizeof *u, 0);
  u->g = NULL; /* closed until the graph exists: a failure below leaves nothing to free */
  luaL_setmetatable(L, KL_GRAPH_MT);
  KL_LUA_TRY(L, kl_graph_new(&u->g));
  return 1;
}

static int l_graph_gc(lua_State *L) {
  kl_lua_graph *u = (kl_lua_graph *)luaL_checkudata(L, 1, KL_GRAPH_MT);
  kl_graph *g = u->g;
  u->g = NULL;
  kl_graph_free(g);
  return 0;
}

/* Reads a shape whose dims are integers >= -1 (-1: the batch dim). */
static int check_symshape(lua_State *L, int idx, const char *fn, int64_t *shape) {
  int n = kl_lua_readdims(L, idx, fn, shape);
  for (int i = 0; i < n; i++)
    if (shape[i] < -1)
      kl_lua_fail(L, "%s: shape[%d] = %lld must be >= 0 or -1", fn, i + 1, (long long)shape[i]);
  return n;
}

static int l_graph_placeholder(lua_State *L) {
  static const char *const allowed[] = {"shape", "stype", "dtype", "name", NULL};
  kl_graph *g = kl_lua_checkgraph(L, 1, "placeholder");
  luaL_checktype(L, 2, LUA_TTABLE);
  kl_lua_checkopts(L, 2, "placeholder", allowed);
  kl_meta m;
  memset(&m, 0, sizeof m);
  lua_getfield(L, 2, "shape");
  m.ndim = check_symshape(L, -1, "placeholder", m.shape);
  lua_pop(L, 1);
  m.dtype = kl_lua_optdtype(L, 2, "placeholder", KL_FLOAT32);
  const char *st = kl_lua_optstring(L, 2, "placeholder", "stype", "default");
  KL_LUA_TRY(L, kl_stype_parse("placeholder", st, &m.stype));
  const char *name = kl_lua_optstring(L, 2, "placeholder", "name", NULL);
  int id;
  KL_LUA_TRY(L, kl_graph_placeholder(g, &m, name, &id));
  lua_pushinteger(L, id + 1);
  return 1;
}

static int l_graph_variable(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "variable");
  kl_tensor *t = kl_lua_checktensor_any(L, 2, "variable");
  int trainable = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  const char *name = luaL_optstring(L, 4, NULL);
  int id;
  KL_LUA_TRY(L, kl_graph_variable(g, t, trainable, name, &id));
  lua_pushinteger(L, id + 1);
  return 1;
}

static int l_graph_constant(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "constant");
  kl_tensor *t = kl_lua_checktensor_any(L, 2, "constant");
  int id;
  KL_LUA_TRY(L, kl_graph_constant(g, t, &id));
  lua_pushinteger(L, id + 1);
  return 1;
}

/* Graph op names: kl_op_name(op), plus the core.op aliases of the losses. */
static kl_op check_opname(lua_State *L, int idx) {
  static const struct {
    const char *alias;
    kl_op op;
  } aliases[] = {{"loss_mse", KL_OP_LOSS_MSE},   {"loss_mae", KL_OP_LOSS_MAE},
                 {"loss_bce", KL_OP_LOSS_BCE},   {"loss_cce", KL_OP_LOSS_CCE},
                 {"loss_scce", KL_OP_LOSS_SCCE}, {"concat", KL_OP_CONCAT}};
  const char *name = luaL_checkstring(L, idx);
  for (int k = 0; k < KL_OP_COUNT; k++)
    if (strcmp(kl_op_name((kl_op)k), name) == 0) return (kl_op)k;
  for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
    if (strcmp(aliases[k].alias, name) == 0) return aliases[k].op;
  return (kl_op)kl_lua_fail(L, "graph op: unknown op '%s'", name);
}

static int l_graph_op(lua_State *L) {
  static const char *const allowed[] = {"transpose_a", "transpose_b", "axis", "keepdims",
                                        "scalar",      "input_dim",   NULL};
  kl_graph *g = kl_lua_checkgraph(L, 1, "op");
  kl_op op = check_opname(L, 2);
  const char *fn = kl_op_name(op);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  if (n < 1 || n > KL_MAX_OP_INPUTS)
    kl_lua_fail(L, "%s: expected 1 to %d inputs, got %lld", fn, KL_MAX_OP_INPUTS, (long long)n);
  lua_settop(L, 4);
  int *ins = (int *)kl_lua_scratch(L, (size_t)n, sizeof *ins); /* at 5 */
  for (lua_Integer i = 1; i <= n; i++) {
    char what[32];
    snprintf(what, sizeof what, "inputs[%lld]", (long long)i);
    lua_rawgeti(L, 3, i);
    ins[i - 1] = check_node(L, -1, g, fn, what);
    lua_pop(L, 1);
  }
  kl_attrs a;
  memset(&a, 0, sizeof a);
  kl_lua_checkopts(L, 4, fn, allowed);
  a.transpose_a = kl_lua_optbool(L, 4, fn, "transpose_a", 0);
  a.transpose_b = kl_lua_optbool(L, 4, fn, "transpose_b", 0);
  a.keepdims = kl_lua_optbool(L, 4, fn, "keepdims", 0);
  a.scalar = kl_lua_optnumber(L, 4, fn, "scalar", 0.0);
  double idim = kl_lua_optnumber(L, 4, fn, "input_dim", 0.0);
  a.ival = (int64_t)idim;
  int has_axis = lua_istable(L, 4) && lua_getfield(L, 4, "axis") != LUA_TNIL;
  if (lua_istable(L, 4)) lua_pop(L, 1);
  kl_meta m0;
  KL_LUA_TRY(L, kl_graph_meta(g, ins[0], &m0));
  if (has_axis) {
    lua_getfield(L, 4, "axis");
    int64_t ax = kl_lua_checkint(L, -1, fn, "axis");
    lua_pop(L, 1);
    a.has_axis = 1;
    a.axis = kl_lua_checkaxis(L, (lua_Integer)ax, m0.ndim, fn);
  } else if (op == KL_OP_CONCAT) { /* Keras: Concatenate(axis=-1) */
    a.has_axis = 1;
    a.axis = m0.ndim > 0 ? m0.ndim - 1 : 0;
  }
  int id;
  KL_LUA_TRY(L, kl_graph_op(g, op, ins, (int)n, &a, &id));
  lua_pushinteger(L, id + 1);
  return 1;
}

static int l_graph_reshape(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "reshape");
  int in = check_node(L, 2, g, "reshape", "input");
  int64_t shape[KL_MAX_NDIM];
  int ndim = check_symshape(L, 3, "reshape", shape);
  int id;
  KL_LUA_TRY(L, kl_graph_reshape(g, in, ndim, shape, &id));
  lua_pushinteger(L, id + 1);
  return 1;
}

static int l_graph_dropout(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "dropout");
  int in = check_node(L, 2, g, "dropout", "input");
  double rate = luaL_checknumber(L, 3);
  uint64_t seed = lua_isnoneornil(L, 4) ? kl_rng_next(kl_lua_rng(L))
                                        : (uint64_t)kl_lua_checkint(L, 4, "dropout", "seed");
  int id;
  KL_LUA_TRY(L, kl_graph_dropout(g, in, rate, seed, &id));
  lua_pushinteger(L, id + 1);
  return 1;
}

/* g:cast(id, stype) -> id: the node converted to stype ("default", "csr", "row_sparse"). */
static int l_graph_cast(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "cast");
  int in = check_node(L, 2, g, "cast", "input");
  kl_stype st;
  KL_LUA_TRY(L, kl_stype_parse("cast", luaL_checkstring(L, 3), &st));
  int id;
  KL_LUA_TRY(L, kl_graph_cast(g, in, st, &id));
  lua_pushinteger(L, id + 1);
  return 1;
}

static int l_graph_meta(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "meta");
  int id = check_node(L, 2, g, "meta", "id");
  kl_meta m;
  KL_LUA_TRY(L, kl_graph_meta(g, id, &m));
  lua_createtable(L, 0, 4);
  kl_lua_pushshape(L, m.ndim, m.shape);
  lua_setfield(L, -2, "shape");
  lua_pushstring(L, kl_stype_name(m.stype));
  lua_setfield(L, -2, "stype");
  lua_pushstring(L, kl_dtype_name(m.dtype));
  lua_setfield(L, -2, "dtype");
  lua_pushinteger(L, m.ndim);
  lua_setfield(L, -2, "ndim");
  return 1;
}

static int l_graph_kind(lua_State *L) {
  static const char *const kinds[] = {"placeholder", "variable", "constant",
                                      "op",          "reshape",  "dropout", "cast"};
  kl_graph *g = kl_lua_checkgraph(L, 1, "kind");
  int id = check_node(L, 2, g, "kind", "id");
  lua_pushstring(L, kinds[kl_graph_kind(g, id)]);
  return 1;
}

static int l_graph_value(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "value");
  int id = check_node(L, 2, g, "value", "id");
  kl_tensor *t = kl_graph_value(g, id);
  if (!t) {
    lua_pushnil(L);
    return 1;
  }
  kl_lua_push_tensor(L, kl_tensor_retain(t));
  return 1;
}

static int l_graph_set_value(lua_State *L) {
  kl_graph *g = kl_lua_checkgraph(L, 1, "set_value");
  int id = check_node(L, 2, g, "set_value", "id");
  kl_tensor *t = kl_lua_checktensor_any(L, 3, "set_value");
  KL_LUA_TRY(L, kl_graph_set_value(g, id, t));
  return 0;
}

static int l_graph_size(lua_State *L) {
  lua_pushinteger(L, kl_graph_size(kl_lua_checkgraph(L, 1, "size")));
  return 1;
}

/* g:is_closed() -> boolean (no error on a closed graph). */
static int l_graph_is_closed(lua_State *L) {
  kl_lua_graph *u = (kl_lua_graph *)luaL_checkudata(L, 1, KL_GRAPH_MT);
  lua_pushboolean(L, u->g == NULL);
  return 1;
}

static int l_graph_tostring(lua_State *L) {
  kl_lua_graph *u = (kl_lua_graph *)luaL_checkudata(L, 1, KL_GRAPH_MT);
  if (u->g)
    lua_pushfstring(L, "<Graph %d nodes>", kl_graph_size(u->g));
  else
    lua_pushliteral(L, "<Graph closed>");
  return 1;
}

static int l_metric_resolve(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *loss = luaL_optstring(L, 2, NULL);
  kl_metric m;
  KL_LUA_TRY(L, kl_metric_resolve(name, loss, &m));
  lua_pushstring(L, kl_metric_name(m));
  return 1;
}

void kl_lua_open_graph(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"placeholder", l_graph_placeholder},
      {"variable", l_graph_variable},
      {"constant", l_graph_constant},
      {"op", l_graph_op},
      {"reshape", l_graph_reshape},
      {"dropout", l_graph_dropout},
      {"cast", l_graph_cast},
      {"meta", l_graph_meta},
      {"kind", l_graph_kind},
      {"value", l_graph_value},
      {"set_value", l_graph_set_value},
      {"size", l_graph_size},
      {"is_closed", l_graph_is_closed},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, KL_GRAPH_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_graph_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_graph_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_graph_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_graph_new);
  lua_setfield(L, -2, "graph_new");
  lua_pushcfunction(L, l_metric_resolve);
  lua_setfield(L, -2, "metric_resolve");
  kl_lua_open_plan(L);
}
