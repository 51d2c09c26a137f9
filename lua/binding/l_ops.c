/* l_ops.c: running registry ops from Lua (core.op) and the tensor arithmetic metamethods. */
#include <stdio.h>
#include <string.h>

#include "kl/registry.h"
#include "lbind.h"

/* The Lua names of the ops (what backend.lua passes to core.op). */
static const struct {
  const char *name;
  kl_op op;
} op_names[] = {
    {"dot", KL_OP_DOT},
    {"sum", KL_OP_SUM},
    {"mean", KL_OP_MEAN},
    {"concatenate", KL_OP_CONCAT},
    {"add", KL_OP_ADD},
    {"subtract", KL_OP_SUB},
    {"multiply", KL_OP_MUL},
    {"divide", KL_OP_DIV},
    {"add_scalar", KL_OP_ADD_SCALAR},
    {"mul_scalar", KL_OP_MUL_SCALAR},
    {"div_scalar", KL_OP_DIV_SCALAR},
    {"rsub_scalar", KL_OP_RSUB_SCALAR},
    {"rdiv_scalar", KL_OP_RDIV_SCALAR},
    {"negative", KL_OP_NEG},
    {"square", KL_OP_SQUARE},
    {"sqrt", KL_OP_SQRT},
    {"abs", KL_OP_ABS},
    {"relu", KL_OP_RELU},
    {"exp", KL_OP_EXP},
    {"log", KL_OP_LOG},
    {"sigmoid", KL_OP_SIGMOID},
    {"tanh", KL_OP_TANH},
    {"softmax", KL_OP_SOFTMAX},
    {"transpose", KL_OP_TRANSPOSE},
    {"retain", KL_OP_RETAIN},
    {"bias_add", KL_OP_BIAS_ADD},
    {"embedding", KL_OP_EMBEDDING},
    {"masked_mean", KL_OP_MASKED_MEAN},
    {"global_max_pool", KL_OP_GLOBAL_MAX_POOL},
    {"reg_terms", KL_OP_REG_TERMS},
    {"loss_mse", KL_OP_LOSS_MSE},
    {"loss_mae", KL_OP_LOSS_MAE},
    {"loss_bce", KL_OP_LOSS_BCE},
    {"loss_cce", KL_OP_LOSS_CCE},
    {"loss_scce", KL_OP_LOSS_SCCE},
};

/* A name of op_names, or a registry op's own name (kl_op_name: "minimum", "hinge", ...). */
static kl_op check_op(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
    if (strcmp(op_names[i].name, name) == 0) return op_names[i].op;
  for (int k = 0; k < KL_OP_COUNT; k++)
    if (strcmp(kl_op_name((kl_op)k), name) == 0) return (kl_op)k;
  return (kl_op)kl_lua_fail(L, "op: unknown op '%s'", name);
}

/* Reads the inputs list at idx into a scratch array pushed on the stack (keep it there while
 * the array is used); *count receives their count. fn names the op. */
static kl_tensor **check_inputs(lua_State *L, int idx, const char *fn, int *count) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  if (n < 1 || n > KL_MAX_OP_INPUTS)
    kl_lua_fail(L, "%s: expected 1 to %d inputs, got %lld", fn, KL_MAX_OP_INPUTS, (long long)n);
  kl_tensor **in = (kl_tensor **)kl_lua_scratch(L, (size_t)n, sizeof *in);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    kl_lua_tensor *u = (kl_lua_tensor *)luaL_testudata(L, -1, KL_TENSOR_MT);
    if (!u)
      kl_lua_fail(L, "bad argument #%lld to '%s' (keras.Tensor expected, got %s)", (long long)i,
                  fn, luaL_typename(L, -1));
    if (!u->t) kl_lua_fail(L, "%s: input %lld is a closed tensor", fn, (long long)i);
    in[i - 1] = u->t;
    lua_pop(L, 1); /* still referenced by the inputs table */
  }
  *count = (int)n;
  return in;
}

/* Reads attrs (Lua terms: 1-based or negative axis) at idx, normalising the axis against
 * the first input's rank. */
static void check_attrs(lua_State *L, int idx, const char *fn, kl_tensor *const *in,
                        kl_attrs *a) {
  static const char *const keys[] = {"transpose_a", "transpose_b", "axis", "keepdims",
                                     "scalar",      "ival",        NULL};
  memset(a, 0, sizeof *a);
  if (!kl_lua_checkopts(L, idx, fn, keys)) return;
  a->transpose_a = kl_lua_optbool(L, idx, fn, "transpose_a", 0);
  a->transpose_b = kl_lua_optbool(L, idx, fn, "transpose_b", 0);
  a->keepdims = kl_lua_optbool(L, idx, fn, "keepdims", 0);
  a->scalar = kl_lua_optnumber(L, idx, fn, "scalar", 0.0);
  lua_getfield(L, idx, "ival");
  if (!lua_isnil(L, -1)) a->ival = kl_lua_checkint(L, -1, fn, "ival");
  lua_pop(L, 1);
  lua_getfield(L, idx, "axis");
  if (!lua_isnil(L, -1)) {
    int64_t axis = kl_lua_checkint(L, -1, fn, "axis");
    a->has_axis = 1;
    a->axis = kl_lua_checkaxis(L, (lua_Integer)axis, in[0]->ndim, fn);
  }
  lua_pop(L, 1);
}

static void shape_str(const kl_tensor *t, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < t->ndim && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, i ? " x %lld" : "%lld", (long long)t->shape[i]);
  if (t->ndim == 0) snprintf(buf, len, "scalar");
}

/* concatenate's shape rules checked here so the message names the axis 1-based. */
static void check_concat(lua_State *L, const char *fn, kl_tensor *const *in, int n, int axis) {
  for (int i = 1; i < n; i++) {
    int ok = in[i]->ndim == in[0]->ndim;
    for (int d = 0; ok && d < in[0]->ndim; d++)
      if (d != axis && in[i]->shape[d] != in[0]->shape[d]) ok = 0;
    if (!ok) {
      char a[128], b[128];
      shape_str(in[i], a, sizeof a);
      shape_str(in[0], b, sizeof b);
      kl_lua_fail(L, "%s: shape mismatch (%s) at input %d vs (%s) at input 1: sizes must agree "
                  "except on axis %d", fn, a, i + 1, b, axis + 1);
    }
  }
}

/* core.op(name, {inputs...}[, attrs[, fname]]): runs a registry op on tensors; fname is the
 * name used in messages (default name). */
static int l_op(lua_State *L) {
  kl_op op = check_op(L, 1);
  const char *fn = luaL_optstring(L, 4, lua_tostring(L, 1));
  int n;
  lua_settop(L, 4);
  kl_tensor **in = check_inputs(L, 2, fn, &n); /* at 5 */
  kl_attrs a;
  check_attrs(L, 3, fn, in, &a);
  if (op == KL_OP_CONCAT) {
    if (in[0]->ndim == 0) kl_lua_fail(L, "%s: cannot concatenate 0-d tensors", fn);
    check_concat(L, fn, in, n, a.has_axis ? a.axis : in[0]->ndim - 1);
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_op_run(op, in, n, &a, slot));
  return 1;
}

/* core.op_backward(name, {inputs...}, gout, i, want[, attrs]): the gradient of the op's
 * output with respect to input i (1-based) given gout, as the stype want ("default",
 * "row_sparse", "csr"): kl_op_backward, on the inputs' device (the GPU specs compare it
 * with the CPU's). */
static int l_op_backward(lua_State *L) {
  kl_op op = check_op(L, 1);
  const char *fn = lua_tostring(L, 1);
  int n;
  lua_settop(L, 6);
  kl_tensor *gout = kl_lua_checktensor_any(L, 3, fn);
  lua_Integer i = luaL_checkinteger(L, 4);
  kl_stype want;
  KL_LUA_TRY(L, kl_stype_parse(fn, luaL_checkstring(L, 5), &want));
  kl_tensor **in = check_inputs(L, 2, fn, &n); /* at 7 */
  if (i < 1 || i > n) kl_lua_fail(L, "%s: backward: input %lld out of range 1..%d", fn, (long long)i, n);
  kl_attrs a;
  check_attrs(L, 6, fn, in, &a);
  kl_tensor *out = NULL;
  KL_LUA_TRY(L, kl_op_run(op, in, n, &a, &out));
  kl_tensor **slot = kl_lua_newslot(L);
  kl_status st = kl_op_backward(op, in, n, &a, out, gout, (int)i - 1, want, slot);
  kl_tensor_release(out);
  KL_LUA_TRY(L, st);
  return 1;
}

/* core.dispatch_name(name, {inputs...}[, attrs]): which kernel kl_op_run would use. */
static int l_dispatch_name(lua_State *L) {
  kl_op op = check_op(L, 1);
  const char *fn = lua_tostring(L, 1);
  int n;
  lua_settop(L, 3);
  kl_tensor **in = check_inputs(L, 2, fn, &n); /* at 4 */
  kl_attrs a;
  check_attrs(L, 3, fn, in, &a);
  const char *k = kl_op_dispatch_name(op, in, n, &a);
  lua_pushstring(L, k ? k : "none");
  return 1;
}

static int l_fallback_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)kl_fallback_count());
  return 1;
}

static int l_device_fallback_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)kl_device_fallback_count());
  return 1;
}

/* core.tensor_move(t, device): moves t's storage there in place (a model's weights). */
static int l_tensor_move(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor_any(L, 1, "to");
  kl_device d = kl_lua_checkdevice(L, 2, "to");
  KL_LUA_TRY(L, kl_tensor_move(t, d));
  lua_settop(L, 1);
  return 1;
}

static int l_fallback_reset_warned(lua_State *L) {
  kl_fallback_reset_warned();
  return 0;
}

/* ----------------------------------------------------------- arithmetic */

/* Runs a binary operator: tensor op tensor -> tt; tensor op number -> ts (scalar as is, or
 * negated when neg_ts); number op tensor -> st (scalar first). */
static int arith(lua_State *L, const char *fn, kl_op tt, kl_op ts, int neg_ts, kl_op st) {
  kl_tensor *x = kl_lua_totensor_any(L, 1), *y = kl_lua_totensor_any(L, 2);
  for (int i = 1; i <= 2; i++) {
    kl_lua_tensor *u = (kl_lua_tensor *)luaL_testudata(L, i, KL_TENSOR_MT);
    if (u && !u->t) return kl_lua_fail(L, "%s: operand %d is a closed tensor", fn, i);
    if (!u && lua_type(L, i) != LUA_TNUMBER)
      return kl_lua_fail(L, "bad argument #%d to '%s' (keras.Tensor or number expected, got %s)",
                         i, fn, luaL_typename(L, i));
  }
  kl_attrs a;
  memset(&a, 0, sizeof a);
  kl_tensor *in[2];
  kl_op op;
  int n = 1;
  if (x && y) {
    op = tt;
    in[0] = x;
    in[1] = y;
    n = 2;
  } else if (x) {
    op = ts;
    in[0] = x;
    a.scalar = lua_tonumber(L, 2);
    if (neg_ts) a.scalar = -a.scalar;
  } else {
    op = st;
    in[0] = y;
    a.scalar = lua_tonumber(L, 1);
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_op_run(op, in, n, &a, slot));
  return 1;
}

static int l_add(lua_State *L) {
  return arith(L, "add", KL_OP_ADD, KL_OP_ADD_SCALAR, 0, KL_OP_ADD_SCALAR);
}
static int l_sub(lua_State *L) {
  return arith(L, "subtract", KL_OP_SUB, KL_OP_ADD_SCALAR, 1, KL_OP_RSUB_SCALAR);
}
static int l_mul(lua_State *L) {
  return arith(L, "multiply", KL_OP_MUL, KL_OP_MUL_SCALAR, 0, KL_OP_MUL_SCALAR);
}
static int l_div(lua_State *L) {
  return arith(L, "divide", KL_OP_DIV, KL_OP_DIV_SCALAR, 0, KL_OP_RDIV_SCALAR);
}
static int l_unm(lua_State *L) {
  kl_tensor *x = kl_lua_checktensor_any(L, 1, "negative");
  kl_attrs a;
  memset(&a, 0, sizeof a);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_op_run(KL_OP_NEG, &x, 1, &a, slot));
  return 1;
}

static const luaL_Reg arith_meta[] = {
    {"__add", l_add}, {"__sub", l_sub}, {"__mul", l_mul},
    {"__div", l_div}, {"__unm", l_unm}, {NULL, NULL},
};

static const luaL_Reg ops_funcs[] = {
    {"op", l_op},
    {"op_backward", l_op_backward},
    {"dispatch_name", l_dispatch_name},
    {"fallback_count", l_fallback_count},
    {"device_fallback_count", l_device_fallback_count},
    {"tensor_move", l_tensor_move},
    {"fallback_reset_warned", l_fallback_reset_warned},
    {NULL, NULL},
};

void kl_lua_open_ops(lua_State *L) {
  luaL_setfuncs(L, ops_funcs, 0);
  luaL_getmetatable(L, KL_TENSOR_MT);
  luaL_setfuncs(L, arith_meta, 0);
  lua_pop(L, 1);
}
