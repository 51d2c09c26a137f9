/* test_gpu_dev_backend.c: the CUDA device backend (gpu/dev_backend.c) end to end, registered
 * with the core as keras.cuda registers it (gpu_dev_testutil.h): on the emulated device in
 * make test (and under ASan), on a real GPU as test_gpu_dev_backend_device (tools/gpu-check;
 * skipped without a device).
 *
 * Transfers of every dtype and stype both ways, on-device copies and moves, the caching
 * allocator's reuse, dispatch of an op (a kernel the CUDA table claims runs with no host
 * fallback; one it does not claim falls back, counted), the optimizer update on the device
 * against the host bit for bit (every rule, f32 / f64, dense / row_sparse gradients, lazy
 * and not, a weight storing every row; a partial row_sparse weight falls back to the host,
 * counted), error messages. Emulated only: no device, two devices (copies between them,
 * mixed-device ops), a device running out of memory (the allocator's release and retry),
 * and every runtime call failing in turn (out of memory, an illegal address): each failure
 * a status with the runtime's message, no device memory leaked. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpu_dev_testutil.h"
#include "kltest_warn.h"

static uint64_t rng = 88172645463325252ULL;
static double urand(void) { return gpu_dev_urand(&rng); }

/* A host tensor of dtype dt and stype st, shape (r, c), about half its entries non-zero;
 * float values include -0, inf and NaN when special. */
static kl_tensor *sample(kl_dtype dt, kl_stype st, int64_t r, int64_t c, int special) {
  int64_t shape[2] = {r, c};
  kl_tensor *d = NULL, *out = NULL;
  if (kl_tensor_new_dense(dt, 2, shape, &d) != KL_OK) return NULL;
  for (int64_t i = 0; i < r * c; i++) {
    double v = urand() < 0.5 ? 0 : (dt == KL_INT64 ? floor(urand() * 200 - 100) : urand() * 4 - 2);
    if (special && dt != KL_INT64) {
      if (i == 1) v = -0.0;
      if (i == 2) v = INFINITY;
      if (i == 3) v = NAN;
    }
    kl_tensor_data_set(d, i, v);
  }
  if (st == KL_STYPE_DEFAULT) return d;
  if (kl_tensor_tostype(d, st, &out) != KL_OK) out = NULL;
  kl_tensor_release(d);
  return out;
}

static void test_op_names(void) {
  for (int op = 0; op < KL_OP_COUNT; op++) {
    const char *a = kl_cuda_op_name((kl_op)op), *b = kl_op_name((kl_op)op);
    CHECK(a != NULL && strcmp(a, b) == 0);
    if (!a || strcmp(a, b) != 0) fprintf(stderr, "op %d: '%s' against '%s'\n", op, a ? a : "(null)", b);
  }
  CHECK(kl_cuda_op_name(KL_OP_COUNT) == NULL && kl_cuda_op_name((kl_op)-1) == NULL);
}

static void test_registered(void) {
  const kl_device_backend *be = kl_device_backend_get();
  CHECK(be != NULL && be->count() >= 1 && be->opt_update != NULL);
  CHECK(be && strcmp(be->name, GPU_DEV_EMULATED ? "cuda (emulated)" : "cuda") == 0);
  int nops = 0;
  const kl_device_opdef *const *table = kl_cuda_ops(&nops);
  CHECK(be && be->nops == KL_OP_COUNT && nops == KL_OP_COUNT);
  for (int op = 0; be && op < KL_OP_COUNT; op++) {
    CHECK(be->ops[op] == table[op]); /* no KERAS_LUA_CUDA_DISABLE_OPS here */
    CHECK(kl_cuda_backend_op_enabled((kl_op)op) == kl_cuda_op_claimed((kl_op)op));
  }
  CHECK_OK(kl_device_check("test", GPU0));
  CHECK(kl_cuda_backend_count() == be->count() && kl_cuda_backend_reason()[0] == '\0');
  /* opening again: the same result */
  int n = 0;
  CHECK_OK(kl_cuda_backend_open(gpu_dev_capi(), &n));
  CHECK(n == be->count());
}

static void test_transfers(void) {
  const kl_dtype dts[3] = {KL_FLOAT32, KL_FLOAT64, KL_INT64};
  const kl_stype sts[3] = {KL_STYPE_DEFAULT, KL_STYPE_CSR, KL_STYPE_ROW_SPARSE};
  const int64_t shapes[5][2] = {{0, 3}, {1, 1}, {7, 5}, {64, 33}, {300, 257}};
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++)
      for (int s = 0; s < 5; s++) {
        kl_tensor *h = sample(dts[a], sts[b], shapes[s][0], shapes[s][1], s >= 2);
        kl_tensor *d = NULL, *c = NULL, *back = NULL;
        CHECK(h != NULL);
        if (!h) continue;
        CHECK_OK(kl_tensor_to(h, GPU0, &d));
        CHECK(d && d->device == GPU0 && d->stype == h->stype && d->dtype == h->dtype &&
              d->nnz == h->nnz);
        CHECK(d && gpu_dev_equals(d, h));
        /* a copy on the device (device to device), then back to the host */
        CHECK_OK(kl_tensor_copy(d, &c));
        CHECK(c && c->device == GPU0 && c->data != d->data && gpu_dev_equals(c, h));
        CHECK_OK(kl_tensor_to(c, KL_CPU, &back));
        CHECK(back && back->device == KL_CPU && gpu_dev_same_host(back, h));
        kl_tensor_release(h);
        kl_tensor_release(d);
        kl_tensor_release(c);
        kl_tensor_release(back);
      }
  /* a 0-d tensor, and a move there and back in place */
  kl_tensor *z = NULL, *dz = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 0, NULL, &z));
  kl_tensor_data_set(z, 0, -2.5);
  CHECK_OK(kl_tensor_to(z, GPU0, &dz));
  CHECK(dz && dz->ndim == 0 && gpu_dev_equals(dz, z));
  kl_tensor *w = sample(KL_FLOAT32, KL_STYPE_ROW_SPARSE, 9, 4, 1), *ref = NULL;
  CHECK_OK(kl_tensor_copy(w, &ref));
  CHECK_OK(kl_tensor_move(w, GPU0));
  CHECK(w->device == GPU0 && gpu_dev_equals(w, ref));
  CHECK_OK(kl_tensor_move(w, KL_CPU));
  CHECK(w->device == KL_CPU && gpu_dev_same_host(w, ref));
  kl_tensor *list[] = {z, dz, w, ref};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
  CHECK(gpu_dev_in_use(GPU0) == 0);
}

/* Freed blocks come back from the cache: the same sizes again cost no device allocation. */
static void test_allocator(void) {
  kl_cuda_alloc_stats s0, s1, s2;
  CHECK_OK(kl_cuda_dev_stats(GPU0, &s0));
  kl_tensor *h = sample(KL_FLOAT32, KL_STYPE_CSR, 50, 40, 0), *d = NULL;
  CHECK_OK(kl_tensor_to(h, GPU0, &d));
  CHECK_OK(kl_cuda_dev_stats(GPU0, &s1));
  CHECK(s1.in_use_blocks == s0.in_use_blocks + 3); /* data, indices, indptr */
  kl_tensor_release(d);
  CHECK_OK(kl_tensor_to(h, GPU0, &d));
  CHECK_OK(kl_cuda_dev_stats(GPU0, &s2));
  CHECK(s2.dev_mallocs == s1.dev_mallocs && s2.cache_hits >= s1.cache_hits + 3);
  /* scratch memory from the device's allocator */
  void *p = NULL;
  CHECK_OK(kl_cuda_dev_alloc(GPU0, 0, &p));
  CHECK(p == NULL);
  CHECK_OK(kl_cuda_dev_alloc(GPU0, 1000, &p));
  CHECK(p != NULL);
  int64_t v[4] = {1, -2, 3, -4}, r[4] = {0, 0, 0, 0};
  CHECK_OK(kl_cuda_dev_write(GPU0, p, v, sizeof v));
  CHECK_OK(kl_cuda_dev_read(GPU0, r, p, sizeof r));
  CHECK(memcmp(v, r, sizeof v) == 0);
  CHECK_OK(kl_cuda_dev_memset0(GPU0, p, sizeof v));
  CHECK_OK(kl_cuda_dev_read(GPU0, r, p, sizeof r));
  CHECK(r[0] == 0 && r[3] == 0);
  CHECK(kl_cuda_dev_stream(GPU0) != NULL);
  CHECK_OK(kl_cuda_dev_synchronize(GPU0));
  kl_cuda_dev_free(GPU0, p);
  kl_tensor_release(d);
  kl_tensor_release(h);
  CHECK(gpu_dev_in_use(GPU0) == 0);
  CHECK_OK(kl_cuda_dev_empty_cache(GPU0));
  CHECK_OK(kl_cuda_dev_stats(GPU0, &s1));
  CHECK(s1.cached_blocks == 0 && s1.cached_bytes == 0);
#if GPU_DEV_EMULATED
  CHECK(kl_cuda_emu_live_bytes(0) == 0);
#endif
}

/* An op on device tensors: on the device, the host's values; no host fallback when the CUDA
 * table claims the op, one counted fallback (and one warning) when it does not. */
static void test_dispatch(void) {
  kl_set_warn_handler(kltest_on_warn, NULL);
  kl_tensor *a = sample(KL_FLOAT32, KL_STYPE_DEFAULT, 6, 5, 0);
  kl_tensor *b = sample(KL_FLOAT32, KL_STYPE_DEFAULT, 6, 5, 0);
  kl_tensor *da = NULL, *db = NULL, *out = NULL, *hout = NULL;
  CHECK_OK(kl_tensor_to(a, GPU0, &da));
  CHECK_OK(kl_tensor_to(b, GPU0, &db));
  kl_tensor *mixed[2] = {a, db};
  CHECK_ERR(kl_op_run(KL_OP_ADD, mixed, 2, NULL, &out), KL_EINVAL,
            "add: inputs on different devices: input 1 on cpu(0), input 2 on gpu(0)");
  const kl_op ops[3] = {KL_OP_ADD, KL_OP_MUL, KL_OP_MAXIMUM};
  for (int i = 0; i < 3; i++) {
    long f0 = gpu_dev_fallbacks();
    kl_tensor *in[2] = {da, db}, *hin[2] = {a, b};
    CHECK_OK(kl_op_run(ops[i], in, 2, NULL, &out));
    CHECK_OK(kl_op_run(ops[i], hin, 2, NULL, &hout));
    CHECK(out && out->device == GPU0 && gpu_dev_equals(out, hout));
    CHECK(gpu_dev_fallbacks() == f0 + (kl_cuda_op_claimed(ops[i]) ? 0 : 1));
    if (!kl_cuda_op_claimed(ops[i]))
      CHECK(strstr(kltest_lastwarn, "has no device kernel; computed on the host") != NULL);
    kl_tensor_release(out);
    kl_tensor_release(hout);
    out = hout = NULL;
  }
  kl_set_warn_handler(NULL, NULL);
  kl_tensor *list[] = {a, b, da, db};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
}

/* Whether device tensor d is within tol (relative) of host tensor h (tol 0: the same bits). */
static int near_host(const kl_tensor *d, const kl_tensor *h, double tol) {
  if (tol == 0) return gpu_dev_equals(d, h);
  kl_tensor *c = NULL, *dc = NULL, *dh = NULL;
  int ok = kl_tensor_to(d, KL_CPU, &c) == KL_OK &&
           kl_tensor_tostype(c, KL_STYPE_DEFAULT, &dc) == KL_OK &&
           kl_tensor_tostype(h, KL_STYPE_DEFAULT, &dh) == KL_OK;
  for (int64_t i = 0; ok && i < kl_tensor_numel(dh); i++) {
    double x = kl_tensor_data_at(dc, i), y = kl_tensor_data_at(dh, i);
    ok = gpu_dev_same_num(x, y) || fabs(x - y) <= tol * (1 + fabs(y));
  }
  kl_tensor_release(c);
  kl_tensor_release(dc);
  kl_tensor_release(dh);
  return ok;
}

typedef struct opt_case {
  kl_opt_kind kind;
  const char *name;
  double momentum, wd, clip, rescale, decay, lr_power;
  int nesterov;
} opt_case;

/* The weight's storage: 0 dense, 1 row_sparse storing every row, 2 row_sparse storing some. */
static kl_tensor *make_weight(kl_dtype dt, int wkind, int64_t rows, int64_t rw) {
  kl_tensor *w = sample(dt, KL_STYPE_DEFAULT, rows, rw, 0);
  for (int64_t i = 0; i < rows * rw; i++) kl_tensor_data_set(w, i, urand() * 2 - 1 + 0.01);
  if (wkind == 0) return w;
  kl_tensor *r = NULL, *p = NULL;
  if (kl_tensor_tostype(w, KL_STYPE_ROW_SPARSE, &r) != KL_OK) r = NULL;
  kl_tensor_release(w);
  if (wkind == 1 || !r) return r;
  int64_t keep[4] = {0, 1, 3, rows - 1};
  if (kl_retain(r, keep, 4, &p) != KL_OK) p = NULL;
  kl_tensor_release(r);
  return p;
}

/* gkind 0: dense; 1: row_sparse on rows {1, 3}; 2: row_sparse on no row. */
static kl_tensor *make_grad(kl_dtype dt, int gkind, int64_t rows, int64_t rw) {
  kl_tensor *g = sample(dt, KL_STYPE_DEFAULT, rows, rw, 0);
  for (int64_t i = 0; i < rows * rw; i++) kl_tensor_data_set(g, i, urand() * 3 - 1.5);
  if (gkind == 0) return g;
  kl_tensor *r = NULL, *p = NULL;
  if (kl_tensor_tostype(g, KL_STYPE_ROW_SPARSE, &r) != KL_OK) r = NULL;
  kl_tensor_release(g);
  int64_t keep[2] = {1, 3};
  if (r && kl_retain(r, keep, gkind == 1 ? 2 : 0, &p) != KL_OK) p = NULL;
  kl_tensor_release(r);
  return p;
}

/* The update on the device against the host's, 3 steps, for every case. */
static void test_optimizer(void) {
  const opt_case cases[] = {
      {KL_OPT_SGD, "sgd", 0, 0, 0, 1, 0, -0.5, 0},
      {KL_OPT_SGD, "sgd momentum wd clip", 0.9, 0.01, 0.5, 1, 0, -0.5, 0},
      {KL_OPT_SGD, "sgd nesterov rescale decay", 0.8, 0, 0, 0.5, 0.1, -0.5, 1},
      {KL_OPT_ADAM, "adam", 0, 0, 0, 1, 0, -0.5, 0},
      {KL_OPT_ADAM, "adam wd decay", 0, 0.02, 0, 1, 0.05, -0.5, 0},
      {KL_OPT_ADAGRAD, "adagrad clip", 0, 0, 0.3, 1, 0, -0.5, 0},
      {KL_OPT_RMSPROP, "rmsprop wd", 0, 0.01, 0, 1, 0, -0.5, 0},
      {KL_OPT_FTRL, "ftrl", 0, 0, 0, 1, 0, -0.5, 0},
      {KL_OPT_FTRL, "ftrl pow wd", 0, 0.01, 0, 1, 0, -0.6, 0},
  };
  const int64_t rows = 6, rw = 5;
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
    for (int f64 = 0; f64 <= 1; f64++)
      for (int wkind = 0; wkind <= 2; wkind++)
        for (int gkind = 0; gkind <= 2; gkind++)
          for (int lazy = 0; lazy <= 1; lazy++) {
            const opt_case *oc = &cases[ci];
            const kl_dtype dt = f64 ? KL_FLOAT64 : KL_FLOAT32;
            kl_optimizer o;
            CHECK_OK(kl_optimizer_init(&o, oc->kind));
            o.momentum = oc->momentum;
            o.nesterov = oc->nesterov;
            o.weight_decay = oc->wd;
            o.clipvalue = oc->clip;
            o.rescale_grad = oc->rescale;
            o.decay = oc->decay;
            o.lr_power = oc->lr_power;
            o.lazy_update = lazy;
            kl_tensor *hw = make_weight(dt, wkind, rows, rw), *dw = NULL;
            kl_tensor *hg = make_grad(dt, gkind, rows, rw), *dg = NULL;
            CHECK(hw && hg);
            if (!hw || !hg) continue;
            CHECK_OK(kl_tensor_to(hw, GPU0, &dw));
            CHECK_OK(kl_tensor_to(hg, GPU0, &dg));
            kl_tensor *hs[2] = {NULL, NULL}, *ds[2] = {NULL, NULL};
            CHECK_OK(kl_optimizer_create_states(&o, hw, hs));
            CHECK_OK(kl_optimizer_create_states(&o, dw, ds));
            const int ns = kl_optimizer_num_states(&o);
            /* a dense gradient needs a weight storing every row: the same error both ways */
            const int invalid = wkind == 2 && gkind == 0;
            /* what the device does not cover: the host's update, counted */
            const int fallback = wkind == 2 && !invalid;
            int ok = 1;
            for (int64_t t = 1; t <= 3; t++) {
              long f0 = gpu_dev_fallbacks();
              kl_status hs_st = kl_optimizer_update(&o, hw, hg, hs, t);
              kl_status ds_st = kl_optimizer_update(&o, dw, dg, ds, t);
              ok &= hs_st == ds_st && (hs_st == KL_OK) == !invalid;
              ok &= gpu_dev_fallbacks() == f0 + (fallback ? 1 : 0);
            }
            /* Ftrl's pow is the device's own on a GPU (within 1e-4); exact host-emulated */
            const double tol = !GPU_DEV_EMULATED && oc->lr_power != -0.5 ? 1e-4 : 0;
            ok &= near_host(dw, hw, tol);
            for (int i = 0; i < ns; i++) ok &= ds[i]->device == GPU0 && near_host(ds[i], hs[i], tol);
            CHECK(ok);
            if (!ok)
              fprintf(stderr, "  case %s %s w%d g%d lazy %d\n", oc->name, f64 ? "f64" : "f32",
                      wkind, gkind, lazy);
            kl_optimizer_release_states(&o, hs);
            kl_optimizer_release_states(&o, ds);
            kl_tensor *list[] = {hw, dw, hg, dg};
            for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
          }
  /* a large lazy update (grid-stride loops, scratch of the non-lazy path) */
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  o.lazy_update = 0;
  kl_tensor *hw = make_weight(KL_FLOAT32, 1, 3000, 40), *hg = make_grad(KL_FLOAT32, 1, 3000, 40);
  kl_tensor *dw = NULL, *dg = NULL, *hs[2] = {NULL, NULL}, *ds[2] = {NULL, NULL};
  CHECK_OK(kl_tensor_to(hw, GPU0, &dw));
  CHECK_OK(kl_tensor_to(hg, GPU0, &dg));
  CHECK_OK(kl_optimizer_create_states(&o, hw, hs));
  CHECK_OK(kl_optimizer_create_states(&o, dw, ds));
  long f0 = gpu_dev_fallbacks();
  for (int64_t t = 1; t <= 2; t++) {
    CHECK_OK(kl_optimizer_update(&o, hw, hg, hs, t));
    CHECK_OK(kl_optimizer_update(&o, dw, dg, ds, t));
  }
  CHECK(gpu_dev_fallbacks() == f0);
  CHECK(gpu_dev_equals(dw, hw) && gpu_dev_equals(ds[0], hs[0]) && gpu_dev_equals(ds[1], hs[1]));
  kl_optimizer_release_states(&o, hs);
  kl_optimizer_release_states(&o, ds);
  kl_tensor *list[] = {hw, dw, hg, dg};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
  CHECK(gpu_dev_in_use(GPU0) == 0);
}

static void test_errors(void) {
  const int n = kl_cuda_backend_count();
  kl_tensor *h = sample(KL_FLOAT32, KL_STYPE_DEFAULT, 2, 2, 0), *d = NULL;
  char want[96];
  snprintf(want, sizeof want, "to: device gpu(%d) out of range (%d GPU(s) present)", n, n);
  CHECK_ERR(kl_tensor_to(h, KL_DEVICE_CUDA(n), &d), KL_ENODEV, want);
  void *p = NULL;
  CHECK_ERR(kl_cuda_dev_alloc(KL_DEVICE_CUDA(n), 10, &p), KL_ENODEV, "out of range");
  CHECK(p == NULL);
  /* a free of memory the allocator did not hand out: reported, nothing changes */
  kl_set_warn_handler(kltest_on_warn, NULL);
  int w0 = kltest_nwarn;
  int64_t x = 0;
  kl_cuda_dev_free(GPU0, &x);
  CHECK(kltest_nwarn == w0 + 1 && strstr(kltest_lastwarn, "not an allocated block") != NULL);
  kl_set_warn_handler(NULL, NULL);
  kl_tensor_release(h);
}

#if GPU_DEV_EMULATED
/* Reopens the backend over n emulated devices (no device tensor may be alive). */
static kl_status reopen(int n) {
  CHECK_OK(kl_cuda_backend_close());
  CHECK(kl_device_backend_get() == NULL);
  kl_cuda_emu_set_devices(n);
  int got = -1;
  kl_status st = kl_cuda_backend_open(gpu_dev_capi(), &got);
  CHECK(got == n);
  return st;
}

static void test_emu_devices(void) {
  /* none: the runtime's reason, nothing registered */
  CHECK_ERR(reopen(0), KL_ENODEV, "no CUDA device: no CUDA-capable device is detected");
  CHECK(kl_device_backend_get() == NULL && kl_cuda_backend_count() == 0);
  CHECK(strcmp(kl_cuda_backend_reason(), "no CUDA device: no CUDA-capable device is detected") == 0);
  kl_tensor *h = sample(KL_FLOAT64, KL_STYPE_CSR, 5, 6, 1), *d0 = NULL, *d1 = NULL, *b = NULL;
  CHECK_ERR(kl_tensor_to(h, GPU0, &d0), KL_ENODEV, "no CUDA device");
  CHECK_ERR(kl_cuda_dev_alloc(GPU0, 8, (void **)&b), KL_ENODEV,
            "no CUDA device: no CUDA-capable device is detected");
  /* two: copies between them (staged through the host), mixed devices refused */
  CHECK_OK(reopen(2));
  CHECK_OK(kl_tensor_to(h, GPU0, &d0));
  CHECK_OK(kl_tensor_to(d0, KL_DEVICE_CUDA(1), &d1));
  CHECK(d1 && d1->device == KL_DEVICE_CUDA(1) && gpu_dev_equals(d1, h));
  CHECK(kl_cuda_emu_live_bytes(1) > 0);
  kl_tensor *in[2] = {d0, d1}, *out = NULL;
  CHECK_ERR(kl_op_run(KL_OP_ADD, in, 2, NULL, &out), KL_EINVAL,
            "add: inputs on different devices: input 1 on gpu(0), input 2 on gpu(1)");
  CHECK_OK(kl_tensor_to(d1, KL_CPU, &b));
  CHECK(gpu_dev_same_host(b, h));
  kl_tensor_release(d0);
  kl_tensor_release(d1);
  kl_tensor_release(b);
  kl_tensor_release(h);
  CHECK(gpu_dev_in_use(GPU0) == 0 && gpu_dev_in_use(KL_DEVICE_CUDA(1)) == 0);
  /* KERAS_LUA_CUDA_DISABLE_OPS leaves the named ops' kernels out: they fall back, counted */
  kl_set_warn_handler(kltest_on_warn, NULL);
  setenv("KERAS_LUA_CUDA_DISABLE_OPS", "subtract, divide,bogus", 1);
  int w0 = kltest_nwarn;
  CHECK_OK(reopen(1));
  unsetenv("KERAS_LUA_CUDA_DISABLE_OPS");
  CHECK(kltest_nwarn == w0 + 1 && strstr(kltest_lastwarn, "KERAS_LUA_CUDA_DISABLE_OPS: unknown op 'bogus'"));
  const kl_device_backend *be = kl_device_backend_get();
  CHECK(be && be->ops[KL_OP_SUB] == NULL && be->ops[KL_OP_DIV] == NULL);
  CHECK(!kl_cuda_backend_op_enabled(KL_OP_SUB) && !kl_cuda_backend_op_enabled(KL_OP_DIV));
  CHECK(kl_cuda_backend_op_enabled(KL_OP_ADD) == kl_cuda_op_claimed(KL_OP_ADD));
  kl_tensor *x = sample(KL_FLOAT64, KL_STYPE_DEFAULT, 3, 4, 0), *dx = NULL, *hout = NULL;
  out = NULL;
  CHECK_OK(kl_tensor_to(x, GPU0, &dx));
  kl_tensor *din[2] = {dx, dx}, *hin[2] = {x, x};
  long f0 = gpu_dev_fallbacks();
  CHECK_OK(kl_op_run(KL_OP_SUB, din, 2, NULL, &out));
  CHECK_OK(kl_op_run(KL_OP_SUB, hin, 2, NULL, &hout));
  CHECK(gpu_dev_fallbacks() == f0 + 1 && out->device == GPU0 && gpu_dev_equals(out, hout));
  /* the first fallback of subtract on gpu(0) in this process: warned */
  CHECK(strstr(kltest_lastwarn, "subtract on gpu(0) has no device kernel; computed on the host") != NULL);
  kl_set_warn_handler(NULL, NULL);
  kl_tensor *list[] = {x, dx, out, hout};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
  CHECK_OK(reopen(1));
  CHECK(kl_cuda_emu_live_bytes(0) == 0 && kl_cuda_emu_live_bytes(1) == 0);
  for (int op = 0; op < KL_OP_COUNT; op++)
    CHECK(kl_cuda_backend_op_enabled((kl_op)op) == kl_cuda_op_claimed((kl_op)op));
}

/* A full device: the request fails with the allocator's message; cached blocks are given
 * back and the request retried before that. */
static void test_emu_out_of_memory(void) {
  const size_t MiB = (size_t)1 << 20;
  kl_cuda_emu_set_capacity(MiB * 5 / 2);
  int64_t big[1] = {(int64_t)(MiB * 3 / 2 / 4)}; /* 1.5 MiB of float32: a 2 MiB block */
  kl_tensor *a = NULL, *b = NULL;
  CHECK_OK(kl_tensor_new_dense_on(GPU0, KL_FLOAT32, 1, big, 1, &a));
  CHECK_ERR(kl_tensor_new_dense_on(GPU0, KL_FLOAT32, 1, big, 1, &b), KL_ENOMEM,
            "CUDA: out of memory allocating 2.00 MiB");
  CHECK(b == NULL);
  kl_tensor_release(a); /* its block stays cached */
  kl_cuda_alloc_stats s0, s1;
  CHECK_OK(kl_cuda_dev_stats(GPU0, &s0));
  CHECK(s0.cached_bytes == 2 * MiB);
  int64_t small[1] = {(int64_t)(MiB * 9 / 10 / 8)}; /* 0.9 MiB of float64, small pool */
  CHECK_OK(kl_tensor_new_dense_on(GPU0, KL_FLOAT64, 1, small, 0, &b)); /* after a release */
  CHECK_OK(kl_cuda_dev_stats(GPU0, &s1));
  CHECK(s1.oom_retries == s0.oom_retries + 1 && s1.cached_bytes == 0);
  kl_tensor_release(b);
  kl_cuda_emu_set_capacity(0);
}

/* A scenario touching every kind of runtime call: transfers, an op, an update, a read. */
static kl_status scenario(kl_tensor *hx, kl_tensor *hw, kl_tensor *hg, const kl_optimizer *o,
                          kl_tensor **res) {
  kl_tensor *dx = NULL, *dw = NULL, *dg = NULL, *sum = NULL, *s[2] = {NULL, NULL};
  *res = NULL;
  kl_status st = kl_tensor_to(hx, GPU0, &dx);
  if (st == KL_OK) st = kl_tensor_to(hw, GPU0, &dw);
  if (st == KL_OK) st = kl_tensor_to(hg, GPU0, &dg);
  if (st == KL_OK) st = kl_optimizer_create_states(o, dw, s);
  if (st == KL_OK) st = kl_optimizer_update(o, dw, dg, s, 1);
  kl_tensor *in[2] = {dx, dw};
  if (st == KL_OK) st = kl_op_run(KL_OP_ADD, in, 2, NULL, &sum);
  if (st == KL_OK) st = kl_tensor_to(sum, KL_CPU, res);
  kl_optimizer_release_states(o, s);
  kl_tensor *list[] = {dx, dw, dg, sum};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
  return st;
}

typedef struct sweep_ctx {
  kl_tensor *hx, *hw, *hg;
  const kl_optimizer *o;
} sweep_ctx;

static kl_status sweep_run(void *ctx, kl_tensor **res) {
  const sweep_ctx *c = ctx;
  return scenario(c->hx, c->hw, c->hg, c->o, res);
}

/* Every runtime call of the scenario failing in turn, with out of memory and with an illegal
 * address: each a clean status with the runtime's message, no device memory left behind;
 * with no failure, the result of a run without injection. */
static void test_emu_fault_sweep(void) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  o.lazy_update = 0;
  kl_tensor *hx = sample(KL_FLOAT32, KL_STYPE_DEFAULT, 8, 4, 0);
  kl_tensor *hw = make_weight(KL_FLOAT32, 0, 8, 4), *hg = make_grad(KL_FLOAT32, 1, 8, 4);
  sweep_ctx c = {hx, hw, hg, &o};
  kl_set_warn_handler(kltest_on_warn, NULL); /* the fallback's warning, if any, stays quiet */
  gpu_dev_sweep sw = gpu_dev_fault_sweep(sweep_run, &c);
  CHECK(sw.ncalls >= 8);
  /* a success before the last call only from a device allocation out of memory that the
   * allocator recovered from by releasing its cache and trying again */
  CHECK(sw.recovered[1] == 0);
  CHECK(sw.failures + sw.recovered[0] == 2 * sw.ncalls && sw.recovered[0] < sw.ncalls);
  printf("fault sweep: %ld runtime calls, each failed with 2 errors: %d failures reported, "
         "%d out-of-memory recovered by the allocator's retry\n", sw.ncalls, sw.failures,
         sw.recovered[0]);
  kl_set_warn_handler(NULL, NULL);
  kl_tensor *list[] = {hx, hw, hg};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
}
#endif

int main(void) {
  int st = gpu_dev_start("test_gpu_dev_backend");
  if (st) return st;
  test_op_names();
  test_registered();
  test_transfers();
  test_allocator();
  test_dispatch();
  test_optimizer();
  test_errors();
#if GPU_DEV_EMULATED
  test_emu_devices();
  test_emu_out_of_memory();
  test_emu_fault_sweep();
#endif
  gpu_dev_finish();
  KLTEST_DONE();
}
