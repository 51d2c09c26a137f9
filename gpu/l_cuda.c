/* l_cuda.c: keras.cuda, the CUDA module (build/lua/keras/cuda.so): device queries now; the
 * device kernels (gpu/k_*.cu) and the caching allocator are linked in for the device
 * backend to come (gpu/README.md).
 *
 * Built only when CMake enables CUDA, as its own module: core.so never links the CUDA
 * runtime, cuBLAS or cuSPARSE. keras/init.lua loads it on the first GPU request
 * (keras.num_gpus, keras.gpu), so a CPU-only program never maps them. It reaches the backend
 * through core._capi (lua/binding/kl_capi.h), never through a second copy of it. No CUDA
 * library handle is created before a device is known to exist (cuSPARSE would print on
 * stderr without one). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cuda_alloc.h"
#include "cuda_vendor.h"
#include "kl_capi.h"
#include "kl_cuda.h"

static const kl_capi *C; /* the core's API (set at luaopen) */

/* The device count, preset to 0 (cudaGetDeviceCount leaves it untouched on failure). */
static kl_status device_count(int *n) {
  *n = 0;
  kl_status st = kl_cuda_check_rt((int)cudaGetDeviceCount(n), "cudaGetDeviceCount");
  if (st != KL_OK) *n = 0;
  else if (*n == 0)
    st = C->seterr(KL_ENODEV, "no CUDA device: cudaGetDeviceCount found none");
  return st;
}

/* cuda.device_count() -> n, or 0, reason, status name ("KL_ENODEV", ...) when none. */
static int l_device_count(lua_State *L) {
  int n;
  kl_status st = device_count(&n);
  lua_pushinteger(L, n);
  if (st == KL_OK) return 1;
  lua_pushstring(L, C->errmsg());
  lua_pushstring(L, st == KL_ENODEV ? "KL_ENODEV" : st == KL_ENOMEM ? "KL_ENOMEM" : "KL_EDEVICE");
  return 3;
}

/* Device n's ordinal checked against the count; raises "no CUDA device: ..." or the range. */
static int check_device(lua_State *L, int idx) {
  lua_Integer d = luaL_checkinteger(L, idx);
  int n;
  kl_status st = device_count(&n);
  if (st != KL_OK) return C->lua_raise(L, st);
  if (d < 0 || d >= n)
    return luaL_error(L, "cuda: device %d out of range (%d GPU(s) present)", (int)d, n);
  return (int)d;
}

/* cuda.device_info(n) -> {name=, total_memory=, major=, minor=, multiprocessors=} */
static int l_device_info(lua_State *L) {
  int d = check_device(L, 1);
  struct cudaDeviceProp p;
  kl_status st = kl_cuda_check_rt((int)cudaGetDeviceProperties(&p, d), "cudaGetDeviceProperties");
  if (st != KL_OK) return C->lua_raise(L, st);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, p.name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, (lua_Integer)p.totalGlobalMem);
  lua_setfield(L, -2, "total_memory");
  lua_pushinteger(L, p.major);
  lua_setfield(L, -2, "major");
  lua_pushinteger(L, p.minor);
  lua_setfield(L, -2, "minor");
  lua_pushinteger(L, p.multiProcessorCount);
  lua_setfield(L, -2, "multiprocessors");
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
  lua_pushstring(L, st == KL_OK ? "KL_OK" : st == KL_ENODEV ? "KL_ENODEV"
                                    : st == KL_ENOMEM ? "KL_ENOMEM" : "KL_EDEVICE");
  lua_pushstring(L, st == KL_OK ? "" : C->errmsg());
  return 2;
}

/* cuda.versions() -> {runtime=, driver=, architectures=} (driver 0: none installed). */
static int l_versions(lua_State *L) {
  int rt = 0, drv = 0;
  (void)cudaRuntimeGetVersion(&rt);
  (void)cudaDriverGetVersion(&drv); /* 0 without a driver */
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, rt);
  lua_setfield(L, -2, "runtime");
  lua_pushinteger(L, drv);
  lua_setfield(L, -2, "driver");
  lua_pushstring(L, KL_CUDA_ARCHS); /* "75 80 86 89 90" */
  lua_setfield(L, -2, "architectures");
  return 1;
}

static void *host_malloc(void *ud, size_t b) { return ((const kl_capi *)ud)->malloc_(b); }
static void host_free(void *ud, void *p) { ((const kl_capi *)ud)->free_(p); }

/* cuda.alloc_probe(n, bytes...) -> stats: allocates each size on device n through the
 * caching allocator, frees them, allocates them again (served from the cache), and releases
 * everything; the allocator's counters after. tools/gpu-check runs it on a real device. */
static int l_alloc_probe(lua_State *L) {
  int d = check_device(L, 1), top = lua_gettop(L);
  kl_status st = kl_cuda_check_rt((int)cudaSetDevice(d), "cudaSetDevice");
  if (st != KL_OK) return C->lua_raise(L, st);
  kl_cuda_vendor v;
  kl_cuda_vendor_real(&v, (void *)C, host_malloc, host_free);
  kl_cuda_alloc *a = kl_cuda_alloc_new(&v);
  if (!a) return C->lua_raise(L, C->seterr(KL_ENOMEM, "cuda.alloc_probe: out of memory"));
  void *ptr[16] = {NULL};
  int n = top - 1 > 16 ? 16 : top - 1;
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
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, s.dev_mallocs);
  lua_setfield(L, -2, "dev_mallocs");
  lua_pushinteger(L, s.cache_hits);
  lua_setfield(L, -2, "cache_hits");
  lua_pushinteger(L, (lua_Integer)s.cached_bytes);
  lua_setfield(L, -2, "cached_bytes");
  lua_pushinteger(L, s.oom_retries);
  lua_setfield(L, -2, "oom_retries");
  return 1;
}

int luaopen_keras_cuda(lua_State *L) {
  C = kl_capi_get(L);
  kl_cuda_seterr = C->seterr; /* the gpu code's messages become the core's kl_errmsg */
  static const luaL_Reg fns[] = {
      {"device_count", l_device_count}, {"device_info", l_device_info},
      {"error_message", l_error_message}, {"versions", l_versions},
      {"alloc_probe", l_alloc_probe},   {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
