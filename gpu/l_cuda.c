/* l_cuda.c: keras.cuda, the CUDA module (build/lua/keras/cuda.so): opens the device backend
 * (dev_backend.c) and registers it with the core when a device exists, and answers the
 * device queries of keras/init.lua and the specs.
 *
 * The same source builds the real module (the CUDA runtime behind cuda_vendor_real.c) and
 * the emulated one (-DKL_CUDA=EMULATE, or <build>/lua-emu/keras/cuda.so in the default
 * build: cuda_vendor_emu.c, the kernels host-emulated); it includes no CUDA header. core.so
 * never links the CUDA runtime, cuBLAS or cuSPARSE: keras/init.lua loads this module on the
 * first GPU request (keras.num_gpus, keras.gpu), so a CPU-only program never maps them. It
 * reaches the backend through core._capi (lua/binding/kl_capi.h), never through a second
 * copy of it. No CUDA library handle is created before a device is known to exist. */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cuda_alloc.h"
#include "cuda_vendor.h"
#include "dev_backend.h"
#include "kl_capi.h"
#include "kl_cuda.h"
#include "kl_cuda_dev.h"

#ifndef KL_CUDA_ARCHS
#define KL_CUDA_ARCHS "emulated"
#endif

static const kl_capi *C; /* the core's API (set at luaopen) */

static const char *status_name(kl_status st) {
  return st == KL_OK ? "KL_OK" : st == KL_ENODEV ? "KL_ENODEV"
         : st == KL_ENOMEM ? "KL_ENOMEM" : st == KL_EINVAL ? "KL_EINVAL" : "KL_EDEVICE";
}

/* t[k] = v for the table on the top of the stack. */
static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}
static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* cuda.device_count() -> n, or 0, reason, status name ("KL_ENODEV", ...) when none. */
static int l_device_count(lua_State *L) {
  int n = kl_cuda_backend_count();
  lua_pushinteger(L, n);
  if (n > 0) return 1;
  lua_pushstring(L, kl_cuda_backend_reason());
  lua_pushstring(L, "KL_ENODEV");
  return 3;
}

/* Device n's ordinal checked against the count; raises "no CUDA device: ..." or the range. */
static int check_device(lua_State *L, int idx) {
  lua_Integer d = luaL_checkinteger(L, idx);
  int n = kl_cuda_backend_count();
  if (n == 0) return luaL_error(L, "%s", kl_cuda_backend_reason());
  if (d < 0 || d >= n)
    return luaL_error(L, "cuda: device %d out of range (%d GPU(s) present)", (int)d, n);
  return (int)d;
}

/* cuda.device_info(n) -> {name=, total_memory=, major=, minor=, multiprocessors=, emulated=} */
static int l_device_info(lua_State *L) {
  int d = check_device(L, 1);
  kl_cuda_rt_props p;
  kl_status st = kl_cuda_rt_device_props(d, &p);
  if (st != KL_OK) return C->lua_raise(L, st);
  lua_createtable(L, 0, 6);
  lua_pushstring(L, p.name);
  lua_setfield(L, -2, "name");
  set_int(L, "total_memory", (lua_Integer)p.total_memory);
  set_int(L, "major", p.major);
  set_int(L, "minor", p.minor);
  set_int(L, "multiprocessors", p.multiprocessors);
  set_bool(L, "emulated", kl_cuda_rt_emulated());
  return 1;
}

/* cuda.error_message(lib, code) -> status name, message: how a status of the runtime
 * ("runtime"), cuBLAS ("cublas") or cuSPARSE ("cusparse") is reported (the specs check the
 * mapping of codes no machine here produces). */
static int l_error_message(lua_State *L) {
  const char *lib = luaL_checkstring(L, 1);
  int code = (int)luaL_checkinteger(L, 2);
  kl_status st;
  if (strcmp(lib, "runtime") == 0) st = kl_cuda_check_rt(code, "op");
  else if (strcmp(lib, "cublas") == 0) st = kl_cuda_check_cublas(code, "op");
  else if (strcmp(lib, "cusparse") == 0) st = kl_cuda_check_cusparse(code, "op");
  else return luaL_argerror(L, 1, "'runtime', 'cublas' or 'cusparse' expected");
  lua_pushstring(L, status_name(st));
  lua_pushstring(L, st == KL_OK ? "" : C->errmsg());
  return 2;
}

/* cuda.versions() -> {runtime=, driver=, architectures=, emulated=} (driver 0: none
 * installed; all 0 and architectures "emulated" in the emulated module). */
static int l_versions(lua_State *L) {
  int rt = 0, drv = 0;
  kl_cuda_rt_versions(&rt, &drv);
  lua_createtable(L, 0, 4);
  set_int(L, "runtime", rt);
  set_int(L, "driver", drv);
  lua_pushstring(L, KL_CUDA_ARCHS); /* "75 80 86 89 90" */
  lua_setfield(L, -2, "architectures");
  set_bool(L, "emulated", kl_cuda_rt_emulated());
  return 1;
}

static void push_stats(lua_State *L, const kl_cuda_alloc_stats *s) {
  lua_createtable(L, 0, 8);
  set_int(L, "in_use_bytes", (lua_Integer)s->in_use_bytes);
  set_int(L, "cached_bytes", (lua_Integer)s->cached_bytes);
  set_int(L, "in_use_blocks", s->in_use_blocks);
  set_int(L, "cached_blocks", s->cached_blocks);
  set_int(L, "dev_mallocs", s->dev_mallocs);
  set_int(L, "dev_frees", s->dev_frees);
  set_int(L, "cache_hits", s->cache_hits);
  set_int(L, "oom_retries", s->oom_retries);
}

/* cuda.alloc_probe(n, bytes...) -> stats: allocates each size on device n through a caching
 * allocator of its own, frees them, allocates them again (served from the cache), and
 * releases everything; the allocator's counters after. tools/gpu-check runs it on a real
 * device. */
static int l_alloc_probe(lua_State *L) {
  int d = check_device(L, 1), top = lua_gettop(L);
  kl_cuda_vendor v;
  kl_cuda_dev_vendor(d, &v);
  kl_cuda_alloc *a = kl_cuda_alloc_new(&v);
  if (!a) return C->lua_raise(L, C->seterr(KL_ENOMEM, "cuda.alloc_probe: out of memory"));
  void *ptr[16] = {NULL};
  int n = top - 1 > 16 ? 16 : top - 1;
  kl_status st = KL_OK;
  for (int round = 0; round < 2 && st == KL_OK; round++) {
    for (int i = 0; i < n && st == KL_OK; i++)
      st = kl_cuda_alloc_malloc(a, &ptr[i], (size_t)lua_tointeger(L, i + 2));
    for (int i = 0; i < n; i++) {
      kl_status fs = kl_cuda_alloc_free(a, ptr[i]);
      if (st == KL_OK) st = fs;
      ptr[i] = NULL;
    }
  }
  kl_cuda_alloc_stats s;
  kl_cuda_alloc_get_stats(a, &s);
  kl_status ds = kl_cuda_alloc_destroy(a);
  if (st == KL_OK) st = ds;
  if (st != KL_OK) return C->lua_raise(L, st);
  push_stats(L, &s);
  return 1;
}

/* cuda.memory_stats(n) -> the counters of device n's caching allocator (the one its tensors
 * use): in_use_bytes, cached_bytes, in_use_blocks, cached_blocks, dev_mallocs, dev_frees,
 * cache_hits, oom_retries. */
static int l_memory_stats(lua_State *L) {
  int d = check_device(L, 1);
  kl_cuda_alloc_stats s;
  kl_status st = kl_cuda_dev_stats(KL_DEVICE_CUDA(d), &s);
  if (st != KL_OK) return C->lua_raise(L, st);
  push_stats(L, &s);
  return 1;
}

/* fn on device n (argument 1); its error raised. */
static int on_device(lua_State *L, kl_status (*fn)(kl_device d)) {
  kl_status st = fn(KL_DEVICE_CUDA(check_device(L, 1)));
  return st != KL_OK ? C->lua_raise(L, st) : 0;
}

/* cuda.empty_cache(n): gives device n's cached free blocks back to the device. */
static int l_empty_cache(lua_State *L) { return on_device(L, kl_cuda_dev_empty_cache); }

/* cuda.synchronize(n): waits for everything queued on device n. */
static int l_synchronize(lua_State *L) { return on_device(L, kl_cuda_dev_synchronize); }

/* cuda.claimed_ops() -> {[op name] = true, ...}: the ops the CUDA table has kernels for, as
 * registered (less KERAS_LUA_CUDA_DISABLE_OPS): the specs assert that these never fall back
 * to the host. */
static int l_claimed_ops(lua_State *L) {
  lua_newtable(L);
  for (int op = 0; op < KL_OP_COUNT; op++) {
    const char *name = kl_cuda_op_name((kl_op)op);
    if (!name || !kl_cuda_backend_op_enabled((kl_op)op)) continue;
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, name);
  }
  return 1;
}

/* cuda.fused_calls() -> {embedding_mean = n, embedding_mean_backward = m}: how many fused
 * Embedding -> mean forwards and backwards the device has run (a device plan's fusion,
 * kl_cuda_embedding_mean_calls): the specs' proof that a device plan fused. */
static int l_fused_calls(lua_State *L) {
  lua_newtable(L);
  set_int(L, "embedding_mean", kl_cuda_embedding_mean_calls(0));
  set_int(L, "embedding_mean_backward", kl_cuda_embedding_mean_calls(1));
  return 1;
}

int luaopen_keras_cuda(lua_State *L) {
  C = kl_capi_get(L);
  int n = 0;
  /* registers the device backend when a device exists; without one the reason is kept for
   * device_count and keras.gpu ("no CUDA device: <the runtime's reason>") */
  (void)kl_cuda_backend_open(C, &n);
  static const luaL_Reg fns[] = {
      {"device_count", l_device_count}, {"device_info", l_device_info},
      {"error_message", l_error_message}, {"versions", l_versions},
      {"alloc_probe", l_alloc_probe},   {"memory_stats", l_memory_stats},
      {"empty_cache", l_empty_cache},   {"synchronize", l_synchronize},
      {"claimed_ops", l_claimed_ops},   {"fused_calls", l_fused_calls},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  set_bool(L, "emulated", kl_cuda_rt_emulated());
  return 1;
}
