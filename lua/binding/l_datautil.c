/* l_datautil.c: row gathering for the Lua data utilities (ArrayIterator shuffling, batches). */
#include "kl/kl.h"
#include "lbind.h"

/* Protected part of take_rows: reads the 1-based list at idx 2 into the buffer (upvalue-free,
 * the buffer is a full userdata so a Lua error cannot leak it). */
static int64_t *read_rows(lua_State *L, int idx, int64_t nrows, int64_t *n) {
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  int64_t *buf = (int64_t *)lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *buf, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    char what[40];
    snprintf(what, sizeof what, "indices[%lld]", (long long)i);
    lua_rawgeti(L, idx, i);
    int64_t r = kl_lua_checkint(L, -1, "take_rows", what);
    lua_pop(L, 1);
    if (r < 1 || r > nrows)
      kl_lua_fail(L, "take_rows: indices[%lld] = %lld out of range for %lld rows", (long long)i,
                  (long long)r, (long long)nrows);
    buf[i - 1] = r - 1;
  }
  *n = (int64_t)len;
  return buf;
}

/* core.take_rows(t, indices) -> new tensor of t's stype holding rows indices (a Lua list of
 * 1-based row numbers, any order, repeats allowed). */
static int l_take_rows(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor(L, 1, "take_rows");
  if (t->ndim == 0) return kl_lua_fail(L, "take_rows: a 0-d tensor has no rows");
  luaL_checktype(L, 2, LUA_TTABLE);
  int64_t n = 0;
  int64_t *rows = read_rows(L, 2, t->shape[0], &n);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_take_rows(t, rows, n, slot));
  return 1;
}

void kl_lua_open_datautil(lua_State *L) {
  lua_pushcfunction(L, l_take_rows);
  lua_setfield(L, -2, "take_rows");
}
