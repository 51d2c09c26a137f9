/* l_datautil.c: row gathering for the Lua data utilities (ArrayIterator shuffling, batches). */
#include <math.h>
#include <stdlib.h>

#include "kl/kl.h"
#include "kl/layers.h"
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

/* A lookup table of number pairs (keys sorted), read from two equal-length Lua lists. */
typedef struct pair_tab {
  double *k, *v;
  int64_t n;
} pair_tab;

static int cmp_pair(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : (x > y);
}

/* Reads the lists at ki and vi (numbers) into a scratch block pushed on the stack, sorted by
 * key (interleaved key, value pairs); a repeated key is an error. */
static pair_tab read_pairs(lua_State *L, int ki, int vi, const char *fn, const char *what) {
  luaL_checktype(L, ki, LUA_TTABLE);
  luaL_checktype(L, vi, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, ki);
  if ((lua_Integer)lua_rawlen(L, vi) != n) kl_lua_fail(L, "%s: %s: keys and values differ in length", fn, what);
  double *kv = (double *)kl_lua_scratch(L, (size_t)(2 * n), sizeof *kv);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, ki, i);
    lua_rawgeti(L, vi, i);
    if (!lua_isnumber(L, -2) || !lua_isnumber(L, -1))
      kl_lua_fail(L, "%s: %s must map numbers to numbers", fn, what);
    kv[2 * (i - 1)] = lua_tonumber(L, -2);
    kv[2 * (i - 1) + 1] = lua_tonumber(L, -1);
    lua_pop(L, 2);
  }
  qsort(kv, (size_t)n, 2 * sizeof *kv, cmp_pair);
  for (lua_Integer i = 1; i < n; i++)
    if (kv[2 * i] == kv[2 * (i - 1)]) kl_lua_fail(L, "%s: %s has the key %g twice", fn, what, kv[2 * i]);
  pair_tab t = {kv, kv + 1, (int64_t)n};
  return t;
}

/* The value of key x in t (*found 0 when absent). */
static double pair_find(const pair_tab *t, double x, int *found) {
  int64_t lo = 0, hi = t->n - 1;
  while (lo <= hi) {
    int64_t mid = lo + (hi - lo) / 2;
    double k = t->k[2 * mid];
    if (k == x) {
      *found = 1;
      return t->v[2 * mid];
    }
    if (k < x) lo = mid + 1; else hi = mid - 1;
  }
  *found = 0;
  return 0;
}

/* core.map_labels(y, from, to, offset, fn) -> a new tensor of y's shape and dtype: each label
 * found in the list from becomes the matching entry of to, others stay; then + offset
 * (LibSVM label_map / label_offset). y dense float or int64. */
static int l_map_labels(lua_State *L) {
  const char *fn = luaL_checkstring(L, 5);
  kl_tensor *y = kl_lua_checktensor(L, 1, fn);
  double off = luaL_checknumber(L, 4);
  if (y->stype != KL_STYPE_DEFAULT) return kl_lua_fail(L, "%s: labels must be dense", fn);
  pair_tab t = read_pairs(L, 2, 3, fn, "label_map");
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_copy(y, slot));
  kl_tensor *o = *slot;
  int64_t n = kl_tensor_numel(o);
  for (int64_t i = 0; i < n; i++) {
    int found;
    double v = kl_tensor_data_at(o, i), m = pair_find(&t, v, &found);
    double r = (found ? m : v) + off;
    if (o->dtype == KL_INT64 && r != floor(r))
      return kl_lua_fail(L, "%s: label %g at row %lld becomes %g, not an integer (int64 labels)",
                         fn, v, (long long)(i + 1), r);
    kl_tensor_data_set(o, i, r);
  }
  return 1;
}

/* core.class_weight_rows(y, classes, weights, dtype, fn) -> (n) tensor of dtype: row r's
 * weight is that of its class: y's value for y of shape (n) or (n, 1), the 1-based index of
 * the row's largest value (the first) for one-hot (n, C), as Keras' standardize_weights. A
 * class without a weight is an error naming it and its row. */
static int l_class_weight_rows(lua_State *L) {
  const char *fn = luaL_checkstring(L, 5);
  kl_tensor *y = kl_lua_checktensor(L, 1, fn);
  kl_dtype dt;
  KL_LUA_TRY(L, kl_dtype_parse(fn, luaL_checkstring(L, 4), &dt));
  if (y->stype != KL_STYPE_DEFAULT || y->ndim < 1 || y->ndim > 2)
    return kl_lua_fail(L, "%s: class_weight needs dense labels of shape (n), (n, 1) or (n, C)", fn);
  pair_tab t = read_pairs(L, 2, 3, fn, "class_weight");
  int64_t n = y->shape[0], C = y->ndim == 2 ? y->shape[1] : 1;
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_dense(dt, 1, &n, slot));
  for (int64_t r = 0; r < n; r++) {
    double cls = kl_tensor_data_at(y, r * C);
    if (C > 1) { /* one-hot: the class index of the first largest value */
      double best = cls;
      cls = 1;
      for (int64_t j = 1; j < C; j++) {
        double v = kl_tensor_data_at(y, r * C + j);
        if (v > best) best = v, cls = (double)(j + 1);
      }
    }
    int found;
    double w = pair_find(&t, cls, &found);
    if (!found)
      return kl_lua_fail(L, "%s: class_weight has no weight for class %.15g (row %lld): it must "
                            "give every class in the data one", fn, cls, (long long)(r + 1));
    kl_tensor_data_set(*slot, r, w);
  }
  return 1;
}

/* core.loss_check_data(loss_name, y, w_or_nil, C, row0, fn): the labels / weights the loss
 * refuses, rows counted from row0 (0-based) in the message (a batch of a stream). */
static int l_loss_check_data(lua_State *L) {
  const char *fn = luaL_checkstring(L, 6);
  kl_op op;
  KL_LUA_TRY(L, kl_loss_parse(luaL_checkstring(L, 1), &op));
  kl_tensor *y = kl_lua_checktensor(L, 2, fn);
  kl_tensor *w = lua_isnoneornil(L, 3) ? NULL : kl_lua_checktensor(L, 3, fn);
  int64_t C = kl_lua_checkint(L, 4, fn, "C"), row0 = kl_lua_checkint(L, 5, fn, "row0");
  kl_status st = kl_loss_check_data(op, y, w, C, row0);
  if (st != KL_OK) return kl_lua_fail(L, "%s: %s", fn, kl_errmsg());
  return 0;
}

void kl_lua_open_datautil(lua_State *L) {
  lua_pushcfunction(L, l_take_rows);
  lua_setfield(L, -2, "take_rows");
  lua_pushcfunction(L, l_map_labels);
  lua_setfield(L, -2, "map_labels");
  lua_pushcfunction(L, l_class_weight_rows);
  lua_setfield(L, -2, "class_weight_rows");
  lua_pushcfunction(L, l_loss_check_data);
  lua_setfield(L, -2, "loss_check_data");
}
