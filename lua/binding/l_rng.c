/* l_rng.c: the random generator of a lua_State (keras.random.seed, initializers, shuffles,
 * dropout seeds, sparse.rand). Each state has its own, so two states on two OS threads never
 * share one; within a state the stream is the one the process-wide generator gave before. */
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
