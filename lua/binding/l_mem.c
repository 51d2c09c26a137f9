/* l_mem.c: tensor memory made visible to Lua's collector.
 *
 * A tensor userdata is a few bytes to Lua, whatever its C buffers hold, so the collector
 * never hurries for it: an eager loop of `y = x * 2` on a 4 MB tensor grew by gigabytes
 * before Lua saw any reason to collect. As Torch7 did with its heap tracking, the binding
 * watches the bytes the C allocator holds (kl_alloc_live_bytes: tensors, plans, optimizer
 * states) and, whenever a tensor handle is made while they exceed a threshold, runs a full
 * collection; the next threshold is then `growth` times what is still live after it (never
 * below the floor). A loop's peak thus stays within about growth x its live set + the floor,
 * and the cost is one full cycle each time the C heap grows by that much, never per call.
 *
 * Per lua_State: the state lives in a userdata in the registry. The floor is
 * KERAS_LUA_GC_THRESHOLD bytes (default 64 MiB), or keras.set_gc_threshold(bytes); 0 turns
 * the automatic collections off. collectgarbage("stop") is respected. */
#include <stdlib.h>

#include "lbind.h"

#define KL_GC_DEFAULT_FLOOR ((size_t)64 << 20)
#define KL_GC_GROWTH 2.0

typedef struct kl_lua_mem {
  size_t floor;     /* the least threshold; 0: automatic collections off */
  size_t threshold; /* a full collection when the C heap passes it */
  long collections; /* full collections run by this mechanism */
} kl_lua_mem;

static const char kl_mem_key = 0; /* its address is the registry key */

static kl_lua_mem *mem_state(lua_State *L) {
  kl_lua_mem *m = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kl_mem_key) == LUA_TUSERDATA)
    m = (kl_lua_mem *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return m;
}

static size_t env_floor(void) {
  const char *e = getenv("KERAS_LUA_GC_THRESHOLD");
  char *end = NULL;
  if (!e || !*e) return KL_GC_DEFAULT_FLOOR;
  unsigned long long v = strtoull(e, &end, 10);
  return end != e && *end == 0 ? (size_t)v : KL_GC_DEFAULT_FLOOR;
}

static void rethreshold(kl_lua_mem *m) {
  double next = (double)kl_alloc_live_bytes() * KL_GC_GROWTH;
  m->threshold = next > (double)m->floor ? (size_t)next : m->floor;
}

void kl_lua_gc_check(lua_State *L) {
  kl_lua_mem *m = mem_state(L);
  if (!m || !m->floor || kl_alloc_live_bytes() <= m->threshold) return;
  /* Not inside a finalizer (lua_gc refuses then) and not when the user stopped the
   * collector; either way the threshold moves on, so the check stays cheap. */
  if (lua_gc(L, LUA_GCISRUNNING) == 1 && lua_gc(L, LUA_GCCOLLECT) == 0) m->collections++;
  rethreshold(m);
}

/* core.set_gc_threshold(bytes): the floor of the threshold (0: off). Returns the old one. */
static int l_set_gc_threshold(lua_State *L) {
  kl_lua_mem *m = mem_state(L);
  int64_t v = kl_lua_checkint(L, 1, "set_gc_threshold", "bytes");
  if (v < 0)
    return kl_lua_fail(L, "set_gc_threshold: bytes = %lld must be >= 0 (0 turns it off)",
                       (long long)v);
  lua_pushinteger(L, m ? (lua_Integer)m->floor : 0);
  if (m) {
    m->floor = (size_t)v;
    rethreshold(m);
  }
  return 1;
}

/* core.memory_info() -> {live_bytes =, threshold =, floor =, collections =}. */
static int l_memory_info(lua_State *L) {
  kl_lua_mem *m = mem_state(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)kl_alloc_live_bytes());
  lua_setfield(L, -2, "live_bytes");
  lua_pushinteger(L, m ? (lua_Integer)m->threshold : 0);
  lua_setfield(L, -2, "threshold");
  lua_pushinteger(L, m ? (lua_Integer)m->floor : 0);
  lua_setfield(L, -2, "floor");
  lua_pushinteger(L, m ? (lua_Integer)m->collections : 0);
  lua_setfield(L, -2, "collections");
  return 1;
}

void kl_lua_open_mem(lua_State *L) {
  if (!mem_state(L)) {
    kl_lua_mem *m = (kl_lua_mem *)lua_newuserdatauv(L, sizeof *m, 0);
    m->floor = env_floor();
    m->collections = 0;
    rethreshold(m);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kl_mem_key);
  }
  lua_pushcfunction(L, l_set_gc_threshold);
  lua_setfield(L, -2, "set_gc_threshold");
  lua_pushcfunction(L, l_memory_info);
  lua_setfield(L, -2, "memory_info");
}
