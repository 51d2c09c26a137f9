/* gpu_dev_testutil.h: what the spec/c/test_gpu_dev_*.c tests share: the CUDA device backend
 * (gpu/dev_backend.c) registered with the core without Lua, and comparisons of device
 * tensors with the CPU's.
 *
 * The backend reaches the core through a kl_capi table (lua/binding/kl_capi.h), as the
 * module does through core._capi; here gpu_dev_capi() fills one from the backend's own
 * functions (kl_backend is linked into the test; the Lua entries are NULL: no test calls
 * them). gpu_dev_start() opens the backend over it:
 *   - built with kl_cuda_dev_emu (the default): the emulated device (gpu/cuda_vendor_emu.c:
 *     device memory is host memory, the kernels host-emulated), so the whole device path
 *     runs here, in make test and under ASan;
 *   - built with KL_GPU_TEST_DEVICE (tools/gpu-check, with nvcc): the real runtime and the
 *     nvcc-built kernels; without a device the test reports itself skipped (exit 77), never
 *     passed.
 * GPU_DEV_EMULATED is 1 in the first build: tests of the emulated runtime's knobs (device
 * count, capacity, fault injection: cuda_vendor.h) are compiled only there. */
#ifndef GPU_DEV_TESTUTIL_H
#define GPU_DEV_TESTUTIL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cuda_vendor.h"
#include "dev_backend.h"
#include "kl/device.h"
#include "kl/graph.h"
#include "kl/optim.h"
#include "kl/pool.h"
#include "kl/registry.h"
#include "kl_capi.h"
#include "kl_cuda_dev.h"
#include "kltest.h"

#define GPU_TEST_SKIP 77
#ifdef KL_GPU_TEST_DEVICE
#define GPU_DEV_EMULATED 0
#else
#define GPU_DEV_EMULATED 1
#endif
#define GPU0 KL_DEVICE_CUDA(0)

/* A kl_capi over the backend's functions (what core._capi holds, less the binding). */
static const kl_capi *gpu_dev_capi(void) {
  static kl_capi c;
  if (c.version) return &c;
  c.version = KL_CAPI_VERSION;
  c.size = sizeof c;
  c.seterr = kl_seterr;
  c.errmsg = kl_errmsg;
  c.malloc_ = kl_malloc;
  c.realloc_ = kl_realloc;
  c.free_ = kl_free;
  c.pool_enter = kl_pool_enter;
  c.pool_leave = kl_pool_leave;
  c.tensor_new_dense = kl_tensor_new_dense;
  c.tensor_new_rsp = kl_tensor_new_rsp;
  c.tensor_new_csr = kl_tensor_new_csr;
  c.tensor_copy = kl_tensor_copy;
  c.tensor_retain = kl_tensor_retain;
  c.tensor_release = kl_tensor_release;
  c.tensor_numel = kl_tensor_numel;
  c.row_width = kl_row_width;
  c.dtype_name = kl_dtype_name;
  c.stype_name = kl_stype_name;
  c.plan_set_grad_hook = kl_plan_set_grad_hook;
  c.plan_grad_hook_ud = kl_plan_grad_hook_ud;
  c.plan_weight = kl_plan_weight;
  c.plan_num_states = kl_plan_num_states;
  c.plan_state = kl_plan_state;
  c.plan_batch_rows = kl_plan_batch_rows;
  c.plan_set_node_ext = kl_plan_set_node_ext;
  c.plan_node_ext_ud = kl_plan_node_ext_ud;
  c.device_register = kl_device_register;
  c.tensor_new_dense_on = kl_tensor_new_dense_on;
  c.tensor_new_csr_on = kl_tensor_new_csr_on;
  c.tensor_new_rsp_on = kl_tensor_new_rsp_on;
  c.tensor_to = kl_tensor_to;
  c.tensor_reserve = kl_tensor_reserve;
  c.op_run = kl_op_run;
  c.op_backward = kl_op_backward;
  c.device_fallback_count = kl_device_fallback_count;
  c.device_str = kl_device_str;
  c.warnf = kl_warnf;
  c.op_infer = kl_op_infer;
  return &c;
}

/* Opens the device backend: 0 when gpu(0) is usable, else GPU_TEST_SKIP with the reason. */
static int gpu_dev_start(const char *name) {
  int n = 0;
  if (kl_cuda_backend_open(gpu_dev_capi(), &n) != KL_OK) {
    printf("%s: skipped: %s\n", name, kl_errmsg());
    return GPU_TEST_SKIP;
  }
  kl_cuda_rt_props p;
  if (kl_cuda_rt_device_props(0, &p) != KL_OK) snprintf(p.name, sizeof p.name, "?");
  printf("%s: on %s (%d device(s)%s)\n", name, p.name, n,
         kl_cuda_rt_emulated() ? ", emulated: kernels host-emulated, memory on the host"
                               : ", kernels built by nvcc");
  return 0;
}

/* The next value in [0, 1) of the xorshift64 stream *state (each test seeds its own). */
static inline double gpu_dev_urand(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return (double)(*state >> 11) / 9007199254740992.0;
}

/* Whether two doubles are the same value (NaN equals NaN: a GPU returns its canonical NaN). */
static int gpu_dev_same_num(double x, double y) {
  return x == y ? (x != 0 || signbit(x) == signbit(y)) : (isnan(x) && isnan(y));
}

/* Whether host tensors a and b have the same dtype, stype, shape and values (dense
 * comparison, exact, -0 against +0 distinguished). */
static int gpu_dev_same_host(const kl_tensor *a, const kl_tensor *b) {
  if (a->dtype != b->dtype || a->stype != b->stype || a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  kl_tensor *da = NULL, *db = NULL;
  int ok = kl_tensor_tostype(a, KL_STYPE_DEFAULT, &da) == KL_OK &&
           kl_tensor_tostype(b, KL_STYPE_DEFAULT, &db) == KL_OK;
  for (int64_t i = 0; ok && i < kl_tensor_numel(da); i++)
    ok = gpu_dev_same_num(kl_tensor_data_at(da, i), kl_tensor_data_at(db, i));
  kl_tensor_release(da);
  kl_tensor_release(db);
  return ok;
}

/* Whether the device tensor d holds host tensor h's values (its host copy compared). */
static inline int gpu_dev_equals(const kl_tensor *d, const kl_tensor *h) {
  kl_tensor *c = NULL;
  if (kl_tensor_to(d, KL_CPU, &c) != KL_OK) return 0;
  int ok = c->device == KL_CPU && gpu_dev_same_host(c, h);
  kl_tensor_release(c);
  return ok;
}

/* Device memory of d handed out by its caching allocator (0 once every tensor is freed). */
static int64_t gpu_dev_in_use(kl_device d) {
  kl_cuda_alloc_stats s;
  if (kl_cuda_dev_stats(d, &s) != KL_OK) return -1;
  return s.in_use_blocks;
}

/* The end of a test on the device backend: no device block in use, the backend closed and
 * unregistered, and (emulated) no device memory left. */
static inline void gpu_dev_finish(void) {
  CHECK(gpu_dev_in_use(GPU0) == 0);
  CHECK_OK(kl_cuda_backend_close());
  CHECK(kl_device_backend_get() == NULL);
#if GPU_DEV_EMULATED
  CHECK(kl_cuda_emu_live_bytes(0) == 0);
#endif
}

/* Host fallbacks of ops on a device so far (the tests assert no change for claimed ops). */
static inline long gpu_dev_fallbacks(void) { return kl_device_fallback_count(); }

#if GPU_DEV_EMULATED
/* What gpu_dev_fault_sweep counted. */
typedef struct gpu_dev_sweep {
  long ncalls;      /* runtime calls of one run without a failure */
  int failures;     /* runs that reported the injected failure */
  int recovered[2]; /* runs that succeeded although a call k <= ncalls failed: [0] with out of
                     * memory (the allocator's retry), [1] with an illegal address */
} gpu_dev_sweep;

/* The emulated runtime's fault sweep: run(ctx, &res) once (the reference), then with its k-th
 * runtime call failing, for every k up to one past the last, with out of memory and with an
 * illegal address. Each run starts from an empty cache (so that it makes the same calls) and
 * either gives the reference's values or fails with that error's status and message and
 * *res NULL; no device memory is left in use after any run. The caller checks the counts. */
static inline gpu_dev_sweep gpu_dev_fault_sweep(kl_status (*run)(void *ctx, kl_tensor **res),
                                                void *ctx) {
  gpu_dev_sweep sw = {0, 0, {0, 0}};
  kl_tensor *ref = NULL, *res = NULL;
  CHECK_OK(kl_cuda_dev_empty_cache(GPU0));
  const long c0 = kl_cuda_emu_calls();
  CHECK_OK(run(ctx, &ref));
  sw.ncalls = kl_cuda_emu_calls() - c0;
  const int errs[2] = {KL_CUDA_RT_OUT_OF_MEMORY, KL_CUDA_RT_ILLEGAL_ADDRESS};
  for (int e = 0; e < 2; e++)
    for (long k = 1; k <= sw.ncalls + 1; k++) {
      CHECK_OK(kl_cuda_dev_empty_cache(GPU0));
      kl_cuda_emu_fail_at(k, errs[e]);
      kl_status st = run(ctx, &res);
      kl_cuda_emu_fail_at(0, 0);
      if (st == KL_OK) {
        CHECK(res && gpu_dev_same_host(res, ref));
        if (k <= sw.ncalls) sw.recovered[e]++;
      } else {
        sw.failures++;
        CHECK(res == NULL);
        if (errs[e] == KL_CUDA_RT_ILLEGAL_ADDRESS)
          CHECK(st == KL_EDEVICE &&
                strstr(kl_errmsg(), "CUDA error 700: an illegal memory access") != NULL);
        else
          CHECK(st == KL_ENOMEM && strstr(kl_errmsg(), "out of memory") != NULL);
      }
      kl_tensor_release(res);
      res = NULL;
      kl_cuda_alloc_stats s;
      CHECK_OK(kl_cuda_dev_stats(GPU0, &s));
      CHECK(s.in_use_blocks == 0 && kl_cuda_emu_live_bytes(0) == s.cached_bytes);
    }
  kl_tensor_release(ref);
  return sw;
}
#endif

#endif
