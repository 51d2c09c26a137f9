/* lclock.c: a tiny Lua module for the bench scripts: benchclock.now(), monotonic seconds. */
#include <time.h>
#include <lua.h>
#include <lauxlib.h>

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
  return 1;
}

int luaopen_benchclock(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, l_now);
  lua_setfield(L, -2, "now");
  return 1;
}
