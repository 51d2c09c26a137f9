/* l_modelfile.c: core.save_tensors / core.load_tensors, the Lua face of kl/model_file.h. */
#include <stdlib.h>
#include <string.h>

#include "kl/model_file.h"
#include "lbind.h"

#define KL_MODELFILE_MT "keras.ModelFileBox"

/* A loaded file held by a userdata so that a Lua error while building the result frees it. */
typedef struct mf_box {
  kl_model_file *f;
} mf_box;

static int l_box_gc(lua_State *L) {
  mf_box *b = (mf_box *)luaL_checkudata(L, 1, KL_MODELFILE_MT);
  kl_model_file_free(b->f);
  b->f = NULL;
  return 0;
}

/* A string without NUL bytes (the file format stores C strings). */
static const char *check_cstring(lua_State *L, int idx, const char *what) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING)
    kl_lua_fail(L, "save_tensors: %s must be a string (got %s)", what, luaL_typename(L, idx));
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len) kl_lua_fail(L, "save_tensors: %s contains a NUL byte", what);
  return s;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* core.save_tensors(path, {{name, tensor}, ...}[, {key = value, ...}]): writes a model file
 * atomically; metadata keys are written sorted. Raises on any bad argument or failure. */
static int l_save_tensors(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  if (n > 1000000) return kl_lua_fail(L, "save_tensors: too many tensors (%lld)", (long long)n);
  /* arrays as userdata: a Lua error below cannot leak them */
  const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  const kl_tensor **ts = lua_newuserdatauv(L, sizeof(kl_tensor *) * (size_t)(n + 1), 0);
  lua_newtable(L); /* keeps the name strings alive */
  int keep = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
    char what[48];
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
      return kl_lua_fail(L, "save_tensors: entry %lld must be a table {name, tensor}", (long long)i);
    lua_rawgeti(L, -1, 1);
    snprintf(what, sizeof what, "the name of entry %lld", (long long)i);
    names[i - 1] = check_cstring(L, -1, what);
    lua_rawseti(L, keep, i);
    lua_rawgeti(L, -1, 2);
    ts[i - 1] = kl_lua_totensor(L, -1);
    if (!ts[i - 1])
      return kl_lua_fail(L, "save_tensors: entry %lld ('%s') holds no open keras.Tensor",
                         (long long)i, names[i - 1]);
    lua_pop(L, 2);
  }
  int nmeta = 0;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      nmeta++;
      lua_pop(L, 1);
    }
  }
  const char **keys = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nmeta + 1), 0);
  const char **vals = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nmeta + 1), 0);
  int k = 0;
  if (nmeta) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      keys[k] = check_cstring(L, -2, "a metadata key");
      check_cstring(L, -1, "a metadata value");
      lua_pop(L, 1);
      k++;
    }
    qsort(keys, (size_t)k, sizeof *keys, cmp_str);
    for (int j = 0; j < k; j++) {
      lua_getfield(L, 3, keys[j]);
      vals[j] = lua_tostring(L, -1); /* held by the table */
      lua_pop(L, 1);
    }
  }
  KL_LUA_TRY(L, kl_model_file_save(path, (int)n, names, ts, k, keys, vals));
  return 0;
}

/* core.load_tensors(path[, {foreign = false, fn = "load_model"}]) -> {{name, tensor}, ...}
 * (file order), {key = value, ...}, {skipped = {{name, dtype tag}, ...}, has_crc = bool}.
 * foreign = true: a safetensors file from elsewhere (KL_MF_FOREIGN); fn names the caller
 * in messages. */
static int l_load_tensors(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int flags = 0;
  const char *fn = "load_model";
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "foreign") != LUA_TNIL && lua_toboolean(L, -1)) flags |= KL_MF_FOREIGN;
    if (lua_getfield(L, 2, "fn") == LUA_TSTRING) fn = lua_tostring(L, -1); /* held by the table */
    lua_pop(L, 2);
  }
  mf_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->f = NULL;
  luaL_setmetatable(L, KL_MODELFILE_MT);
  int box = lua_gettop(L);
  KL_LUA_TRY(L, kl_model_file_load_ex(path, flags, fn, &b->f));
  kl_model_file *f = b->f;
  lua_createtable(L, f->n, 0);
  for (int i = 0; i < f->n; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, f->names[i]);
    lua_rawseti(L, -2, 1);
    kl_lua_push_tensor(L, kl_tensor_retain(f->tensors[i]));
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i + 1);
  }
  lua_createtable(L, 0, f->nmeta);
  for (int i = 0; i < f->nmeta; i++) {
    lua_pushstring(L, f->values[i]);
    lua_setfield(L, -2, f->keys[i]);
  }
  lua_createtable(L, 0, 2);
  lua_createtable(L, f->nskipped, 0);
  for (int i = 0; i < f->nskipped; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, f->skipped[i]);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, f->skipped_dtypes[i]);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "skipped");
  lua_pushboolean(L, f->has_crc);
  lua_setfield(L, -2, "has_crc");
  kl_model_file_free(b->f);
  b->f = NULL;
  (void)box;
  return 3;
}

void kl_lua_open_modelfile(lua_State *L) {
  if (luaL_newmetatable(L, KL_MODELFILE_MT)) {
    lua_pushcfunction(L, l_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_box_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_save_tensors);
  lua_setfield(L, -2, "save_tensors");
  lua_pushcfunction(L, l_load_tensors);
  lua_setfield(L, -2, "load_tensors");
}
