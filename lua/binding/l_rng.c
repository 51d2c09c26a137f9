/* l_rng.c: the random generator of a lua_State (keras.random.seed, initializers, shuffles,
 * dropout seeds, sparse.rand). Each state has its own, so two states on two OS threads never
 * share one; within a state the stream is the one the process-wide generator gave before. */
#include <stdio.h>
#include <string.h>

#include "lbind.h"

/* Its address is the registry key of the generator's userdata. */
static const char kl_rng_key = 0;

kl_rng *kl_lua_rng(lua_State *L) {
  kl_rng *r;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kl_rng_key) == LUA_TUSERDATA) {
    r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
  }
  lua_pop(L, 1);
  /* First use (luaopen_keras_core makes it, through kl_lua_open_construct, so later calls
   * only read the registry and cannot raise a memory error): seeded with 0, as the
   * process-wide generator was. The registry keeps it until lua_close. */
  r = lua_newuserdatauv(L, sizeof *r, 0);
  kl_rng_seed(r, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kl_rng_key);
  return r;
}

/* The generator's state as text: "s0 s1 s2 s3 has_spare spare_bits" in hex, so a model file
 * can carry it (a checkpoint's resumed shuffles then draw what the uninterrupted run drew). */
static int l_random_get_state(lua_State *L) {
  const kl_rng *r = kl_lua_rng(L);
  uint64_t spare;
  memcpy(&spare, &r->spare, sizeof spare);
  char buf[6 * 17 + 8];
  snprintf(buf, sizeof buf, "%016llx %016llx %016llx %016llx %d %016llx",
           (unsigned long long)r->s[0], (unsigned long long)r->s[1], (unsigned long long)r->s[2],
           (unsigned long long)r->s[3], r->has_spare ? 1 : 0, (unsigned long long)spare);
  lua_pushstring(L, buf);
  return 1;
}

/* random.set_state(text): the state random.get_state returned. */
static int l_random_set_state(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  unsigned long long v[4], sp;
  int has = 0, used = 0;
  if (sscanf(s, "%16llx %16llx %16llx %16llx %d %16llx%n", &v[0], &v[1], &v[2], &v[3], &has, &sp,
             &used) != 6 || s[used] != 0 || (has != 0 && has != 1) ||
      (v[0] | v[1] | v[2] | v[3]) == 0)
    return kl_lua_fail(L, "random.set_state: not a state from random.get_state: '%s'", s);
  kl_rng *r = kl_lua_rng(L);
  for (int i = 0; i < 4; i++) r->s[i] = (uint64_t)v[i];
  r->has_spare = has;
  uint64_t bits = (uint64_t)sp;
  memcpy(&r->spare, &bits, sizeof bits);
  return 0;
}

/* fill_rows_counter(t, seed, first, stride, "uniform"|"normal", a, b): t's rows are table
 * rows first, first + stride, ... (0-based) of the counter-based table of that seed. */
static int l_fill_rows_counter(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor(L, 1, "fill_rows_counter");
  lua_Integer seed = luaL_checkinteger(L, 2), first = luaL_checkinteger(L, 3),
              stride = luaL_checkinteger(L, 4);
  const char *kind = luaL_checkstring(L, 5);
  int normal = strcmp(kind, "normal") == 0;
  if (!normal && strcmp(kind, "uniform") != 0)
    return kl_lua_fail(L, "fill_rows_counter: kind must be 'uniform' or 'normal'. Received: %s", kind);
  kl_status st = kl_fill_rows_counter(t, (uint64_t)seed, (int64_t)first, (int64_t)stride, normal,
                                      luaL_checknumber(L, 6), luaL_checknumber(L, 7));
  if (st != KL_OK) return kl_lua_raise(L, st);
  return 0;
}

void kl_lua_open_rng_state(lua_State *L) {
  lua_pushcfunction(L, l_fill_rows_counter);
  lua_setfield(L, -2, "fill_rows_counter");
  lua_pushcfunction(L, l_random_get_state);
  lua_setfield(L, -2, "random_get_state");
  lua_pushcfunction(L, l_random_set_state);
  lua_setfield(L, -2, "random_set_state");
}
