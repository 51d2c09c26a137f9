/* dev_backend.c: the CUDA device backend (kl/device.h) and the per-device helpers of the op
 * files (kl_cuda_dev.h), over the vendor layer (cuda_vendor.h): the same source in the real
 * module (the CUDA runtime) and the emulated one.
 *
 * Each device has one stream and one caching allocator (cuda_alloc.c), made on its first use.
 * Everything queued for a device goes on its stream, so the allocator may hand a freed block
 * out again at once (its next user is queued after its last one). The host waits only where
 * it reads: a copy to host memory returns once the data is there (kl_device_backend's
 * contract); a copy from host memory returns once the source is staged.
 *
 * The optimizer update runs on the device through the kernels of k_optim.cu for a weight that
 * stores every row (dense, or row_sparse with all rows) and a dense or row_sparse gradient,
 * lazy and not: backend/src/optim_update.c's update_apply, branch for branch. What it does
 * not cover (a row_sparse weight storing some rows) returns KL_EUNSUPPORTED: the core then
 * updates on the host (a counted device fallback). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_vendor.h"
#include "dev_backend.h"
#include "kl_cuda_dev.h"

const kl_capi *kl_cuda_capi = NULL;

typedef struct devstate {
  atomic_int ready; /* stream and allocator made */
  kl_cuda_stream stream;
  kl_cuda_alloc *alloc;
} devstate;

static pthread_mutex_t be_lock = PTHREAD_MUTEX_INITIALIZER; /* opening, device set-up, allocators */
static int be_opened = 0;
static int be_ndev = 0;
static kl_status be_open_status = KL_OK;
static char be_reason[512];
static devstate *be_dev = NULL; /* be_ndev entries */

/* ------------------------------------------------------------ host memory, devices */

/* Host bookkeeping from the core's allocator, outside any plan's pool (the allocator's table
 * outlives a step). */
static void *host_malloc(void *ud, size_t bytes) {
  (void)ud;
  kl_pool *prev = kl_cuda_capi->pool_enter(NULL);
  void *p = kl_cuda_capi->malloc_(bytes);
  kl_cuda_capi->pool_leave(prev);
  return p;
}
static void host_free(void *ud, void *p) {
  (void)ud;
  kl_cuda_capi->free_(p);
}

static kl_status vendor_malloc(void *ud, void **p, size_t bytes) {
  return kl_cuda_rt_malloc((int)(intptr_t)ud, p, bytes);
}
static kl_status vendor_free(void *ud, void *p) {
  return kl_cuda_rt_free((int)(intptr_t)ud, p);
}

void kl_cuda_dev_vendor(int dev, kl_cuda_vendor *v) {
  v->ud = (void *)(intptr_t)dev;
  v->dev_malloc = vendor_malloc;
  v->dev_free = vendor_free;
  v->host_malloc = host_malloc;
  v->host_free = host_free;
}

/* The ordinal of device d, checked against the devices found. */
static kl_status dev_ordinal(kl_device d, const char *fn, int *ord) {
  *ord = -1;
  if (!KL_DEVICE_IS_CUDA(d) || KL_DEVICE_ORDINAL(d) >= be_ndev) {
    char b[32];
    if (be_ndev == 0)
      return kl_cuda_seterr(KL_ENODEV, "%s: %s", fn,
                            be_reason[0] ? be_reason : "no CUDA device: the backend is not open");
    return kl_cuda_seterr(KL_ENODEV, "%s: device %s out of range (%d GPU(s) present)", fn,
                          kl_cuda_capi ? kl_cuda_capi->device_str(d, b, sizeof b) : "?",
                          be_ndev);
  }
  *ord = KL_DEVICE_ORDINAL(d);
  return KL_OK;
}

/* Device d's state, its stream and allocator made on first use. */
static kl_status dev_get(kl_device d, const char *fn, devstate **out) {
  int ord;
  *out = NULL;
  KL_TRY(dev_ordinal(d, fn, &ord));
  devstate *ds = &be_dev[ord];
  if (atomic_load_explicit(&ds->ready, memory_order_acquire)) {
    *out = ds;
    return KL_OK;
  }
  kl_status st = KL_OK;
  pthread_mutex_lock(&be_lock);
  if (!atomic_load_explicit(&ds->ready, memory_order_relaxed)) {
    kl_cuda_stream s = NULL;
    st = kl_cuda_rt_stream_create(ord, &s);
    kl_cuda_alloc *a = NULL;
    if (st == KL_OK) {
      kl_cuda_vendor v;
      kl_cuda_dev_vendor(ord, &v);
      a = kl_cuda_alloc_new(&v);
      if (!a) st = kl_cuda_seterr(KL_ENOMEM, "%s: out of host memory (the device allocator)", fn);
    }
    if (st == KL_OK) {
      ds->stream = s;
      ds->alloc = a;
      atomic_store_explicit(&ds->ready, 1, memory_order_release);
    } else {
      (void)kl_cuda_rt_stream_destroy(ord, s); /* the first error is the one reported */
    }
  }
  pthread_mutex_unlock(&be_lock);
  if (st == KL_OK) *out = ds;
  return st;
}

/* ------------------------------------------------------------ kl_cuda_dev.h */

kl_cuda_stream kl_cuda_dev_stream(kl_device d) {
  devstate *ds;
  if (dev_get(d, "cuda stream", &ds) != KL_OK) return NULL;
  (void)kl_cuda_rt_set_device(KL_DEVICE_ORDINAL(d)); /* the launches that follow go to d */
  return ds->stream;
}

kl_status kl_cuda_dev_alloc(kl_device d, size_t bytes, void **p) {
  *p = NULL;
  if (bytes == 0) return KL_OK;
  devstate *ds;
  KL_TRY(dev_get(d, "cuda alloc", &ds));
  pthread_mutex_lock(&be_lock);
  kl_status st = kl_cuda_alloc_malloc(ds->alloc, p, bytes);
  pthread_mutex_unlock(&be_lock);
  return st;
}

void kl_cuda_dev_free(kl_device d, void *p) {
  if (!p) return;
  devstate *ds;
  kl_status st = dev_get(d, "cuda free", &ds);
  if (st == KL_OK) {
    pthread_mutex_lock(&be_lock);
    st = kl_cuda_alloc_free(ds->alloc, p);
    pthread_mutex_unlock(&be_lock);
  }
  /* free has no status to return: a bad free is reported, never ignored silently */
  if (st != KL_OK && kl_cuda_capi)
    kl_cuda_capi->warnf("keras.cuda: %s", kl_cuda_capi->errmsg());
}

kl_status kl_cuda_dev_read(kl_device d, void *dst, const void *src, size_t bytes) {
  if (bytes == 0) return KL_OK;
  devstate *ds;
  KL_TRY(dev_get(d, "cuda read", &ds));
  return kl_cuda_rt_copy_d2h(KL_DEVICE_ORDINAL(d), dst, src, bytes, ds->stream);
}

kl_status kl_cuda_dev_write(kl_device d, void *dst, const void *src, size_t bytes) {
  if (bytes == 0) return KL_OK;
  devstate *ds;
  KL_TRY(dev_get(d, "cuda write", &ds));
  return kl_cuda_rt_copy_h2d(KL_DEVICE_ORDINAL(d), dst, src, bytes, ds->stream);
}

kl_status kl_cuda_dev_memset0(kl_device d, void *p, size_t bytes) {
  if (bytes == 0) return KL_OK;
  devstate *ds;
  KL_TRY(dev_get(d, "cuda memset", &ds));
  return kl_cuda_rt_memset0(KL_DEVICE_ORDINAL(d), p, bytes, ds->stream);
}

/* ------------------------------------------------------------ the kl_device_backend */

static int be_count(void) { return be_ndev; }

static kl_status be_alloc(kl_device d, size_t bytes, void **p) {
  return kl_cuda_dev_alloc(d, bytes, p);
}

static void be_free(kl_device d, void *p) { kl_cuda_dev_free(d, p); }

static kl_status be_copy(void *dst, kl_device dd, const void *src, kl_device sd, size_t bytes) {
  if (bytes == 0) return KL_OK;
  if (dd == KL_CPU && sd == KL_CPU) {
    memmove(dst, src, bytes);
    return KL_OK;
  }
  if (sd == KL_CPU) return kl_cuda_dev_write(dd, dst, src, bytes);
  if (dd == KL_CPU) return kl_cuda_dev_read(sd, dst, src, bytes);
  if (sd == dd) {
    devstate *ds;
    KL_TRY(dev_get(dd, "cuda copy", &ds));
    return kl_cuda_rt_copy_d2d(KL_DEVICE_ORDINAL(dd), dst, src, bytes, ds->stream);
  }
  /* between two devices: through a host buffer (the read waits for sd; the write has
   * staged the buffer when it returns, so it may be freed then) */
  int so, dord;
  KL_TRY(dev_ordinal(sd, "cuda copy", &so));
  KL_TRY(dev_ordinal(dd, "cuda copy", &dord));
  void *h = host_malloc(NULL, bytes);
  if (!h)
    return kl_cuda_seterr(KL_ENOMEM, "cuda copy: out of host memory staging %zu bytes", bytes);
  kl_status st = kl_cuda_dev_read(sd, h, src, bytes);
  if (st == KL_OK) st = kl_cuda_dev_write(dd, dst, h, bytes);
  host_free(NULL, h);
  return st;
}

static kl_status be_memset0(kl_device d, void *p, size_t bytes) {
  return kl_cuda_dev_memset0(d, p, bytes);
}

kl_status kl_cuda_dev_synchronize(kl_device d) {
  devstate *ds;
  KL_TRY(dev_get(d, "cuda synchronize", &ds));
  return kl_cuda_rt_stream_sync(KL_DEVICE_ORDINAL(d), ds->stream);
}

/* States the rule of o needs (kl_optimizer_num_states; the module links no backend). */
static int opt_nstates(const kl_optimizer *o) {
  switch (o->kind) {
    case KL_OPT_SGD: return o->momentum > 0 ? 1 : 0;
    case KL_OPT_ADAM:
    case KL_OPT_FTRL: return 2;
    case KL_OPT_ADAGRAD:
    case KL_OPT_RMSPROP: return 1;
    default: return -1;
  }
}

/* kl_optimizer_update on the device, after the core's checks (kl_optimizer_update_precheck):
 * update_apply's branches with the kernels of k_optim.cu. */
static kl_status be_opt_update(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                               kl_tensor **states, int64_t t) {
  const int64_t rows = w->ndim ? w->shape[0] : 1;
  const int w_partial = w->stype == KL_STYPE_ROW_SPARSE && w->nnz < rows;
  const int g_sparse = g->stype == KL_STYPE_ROW_SPARSE;
  const int ns = opt_nstates(o);
  if (w_partial || ns < 0) return KL_EUNSUPPORTED; /* the host's (a counted fallback) */
  if (w->dtype != KL_FLOAT32 && w->dtype != KL_FLOAT64) return KL_EUNSUPPORTED;
  devstate *ds;
  KL_TRY(dev_get(w->device, "optimizer update", &ds));
  const kl_cuda_stream s = kl_cuda_dev_stream(w->device);
  kl_cuda_opt_hyper h;
  kl_cuda_opt_resolve(o, t, &h);
  const int64_t rw = w->ndim ? kl_cuda_capi->row_width(w) : 1;
  void *s0 = ns > 0 ? states[0]->data : NULL, *s1 = ns > 1 ? states[1]->data : NULL;
  if (!g_sparse) /* the dense rule over every row (position == row) */
    return kl_cuda_opt_rows(&h, w->dtype, w->data, g->data, s0, s1, rw, NULL, rows, s);
  if (o->lazy_update) /* only the gradient's rows */
    return kl_cuda_opt_rows(&h, w->dtype, w->data, g->data, s0, s1, rw, g->indices, g->nnz, s);
  /* every row; a row absent from the gradient sees a zero gradient */
  if (rows == 0) return KL_OK;
  int64_t *gpos = NULL;
  KL_TRY(kl_cuda_dev_alloc(w->device, (size_t)rows * sizeof(int64_t), (void **)&gpos));
  kl_status st = kl_cuda_row_positions(g->indices, g->nnz, rows, gpos, s);
  if (st == KL_OK) st = kl_cuda_opt_all_rows(&h, w->dtype, w->data, g->data, s0, s1, rw, gpos, rows, s);
  kl_cuda_dev_free(w->device, gpos); /* reused only by work queued after this */
  return st;
}

/* The op table the backend registers: kl_cuda_ops()'s, less the ops named in the
 * environment's KERAS_LUA_CUDA_DISABLE_OPS ("add,dot": their device kernels are left out, so
 * they run on the host, counted; to bisect a kernel, and for the specs of the fallback). */
static const kl_device_opdef *be_ops[KL_OP_COUNT];

static void be_ops_init(void) {
  int n = 0;
  const kl_device_opdef *const *t = kl_cuda_ops(&n);
  for (int i = 0; i < KL_OP_COUNT; i++) be_ops[i] = i < n ? t[i] : NULL;
  const char *env = getenv("KERAS_LUA_CUDA_DISABLE_OPS");
  if (!env) return;
  const char *p = env;
  while (*p) {
    size_t len = strcspn(p, ", ");
    if (len > 0) {
      int found = 0;
      for (int i = 0; i < KL_OP_COUNT; i++) {
        const char *name = kl_cuda_op_name((kl_op)i);
        if (name && strlen(name) == len && strncmp(name, p, len) == 0) {
          be_ops[i] = NULL;
          found = 1;
        }
      }
      if (!found && kl_cuda_capi)
        kl_cuda_capi->warnf("KERAS_LUA_CUDA_DISABLE_OPS: unknown op '%.*s'", (int)len, p);
    }
    p += len;
    p += strspn(p, ", ");
  }
}

int kl_cuda_backend_op_enabled(kl_op op) {
  return (int)op >= 0 && op < KL_OP_COUNT && be_ops[op] != NULL;
}

static kl_device_backend be_backend = {
    "cuda", be_count, be_alloc, be_free, be_copy, be_memset0, kl_cuda_dev_synchronize, NULL, 0,
    be_opt_update, kl_cuda_dev_embedding_mean, kl_cuda_dev_embedding_mean_backward};

/* ------------------------------------------------------------ opening */

kl_status kl_cuda_backend_open(const kl_capi *c, int *ndev) {
  pthread_mutex_lock(&be_lock);
  if (!be_opened) {
    kl_cuda_capi = c;
    kl_cuda_seterr = c->seterr; /* the gpu code's messages become the core's kl_errmsg */
    int n = 0;
    kl_status st = kl_cuda_rt_device_count(&n);
    be_reason[0] = '\0';
    if (st == KL_OK && n > 0) {
      be_dev = calloc((size_t)n, sizeof *be_dev);
      if (!be_dev) st = kl_cuda_seterr(KL_ENOMEM, "keras.cuda: out of host memory");
    }
    if (st != KL_OK) {
      n = 0;
      snprintf(be_reason, sizeof be_reason, "%s", c->errmsg());
    }
    be_ndev = n;
    be_open_status = st;
    be_opened = 1;
    be_backend.name = kl_cuda_rt_emulated() ? "cuda (emulated)" : "cuda";
    be_ops_init();
    be_backend.ops = be_ops;
    be_backend.nops = KL_OP_COUNT;
    if (n > 0) c->device_register(&be_backend);
  }
  kl_status st = be_open_status;
  *ndev = be_ndev;
  pthread_mutex_unlock(&be_lock);
  if (st != KL_OK) return c->seterr(st, "%s", be_reason);
  return KL_OK;
}

int kl_cuda_backend_count(void) { return be_ndev; }

const char *kl_cuda_backend_reason(void) { return be_reason; }

kl_status kl_cuda_backend_close(void) {
  pthread_mutex_lock(&be_lock);
  kl_status first = KL_OK;
  if (be_opened && be_ndev > 0 && kl_cuda_capi) kl_cuda_capi->device_register(NULL);
  for (int i = 0; i < be_ndev; i++) {
    devstate *ds = &be_dev[i];
    if (!atomic_load(&ds->ready)) continue;
    kl_status st = kl_cuda_rt_stream_sync(i, ds->stream);
    if (first == KL_OK) first = st;
    st = kl_cuda_alloc_destroy(ds->alloc);
    if (first == KL_OK) first = st;
    st = kl_cuda_rt_stream_destroy(i, ds->stream);
    if (first == KL_OK) first = st;
  }
  free(be_dev);
  be_dev = NULL;
  be_ndev = 0;
  be_opened = 0;
  be_reason[0] = '\0';
  pthread_mutex_unlock(&be_lock);
  return first;
}

kl_status kl_cuda_dev_stats(kl_device d, kl_cuda_alloc_stats *s) {
  int ord;
  memset(s, 0, sizeof *s);
  KL_TRY(dev_ordinal(d, "cuda memory stats", &ord));
  pthread_mutex_lock(&be_lock);
  if (atomic_load(&be_dev[ord].ready)) kl_cuda_alloc_get_stats(be_dev[ord].alloc, s);
  pthread_mutex_unlock(&be_lock);
  return KL_OK;
}

kl_status kl_cuda_dev_empty_cache(kl_device d) {
  int ord;
  KL_TRY(dev_ordinal(d, "cuda empty_cache", &ord));
  kl_status st = KL_OK;
  pthread_mutex_lock(&be_lock);
  if (atomic_load(&be_dev[ord].ready)) st = kl_cuda_alloc_empty_cache(be_dev[ord].alloc);
  pthread_mutex_unlock(&be_lock);
  return st;
}

/* ------------------------------------------------------------ op names */

/* kl_op_name's names (spec/c/test_gpu_dev_backend.c checks them against it, op by op). */
static const char *const op_names[KL_OP_COUNT] = {
    [KL_OP_DOT] = "dot",
    [KL_OP_SUM] = "sum",
    [KL_OP_MEAN] = "mean",
    [KL_OP_CONCAT] = "concatenate",
    [KL_OP_ADD] = "add",
    [KL_OP_SUB] = "subtract",
    [KL_OP_MUL] = "multiply",
    [KL_OP_DIV] = "divide",
    [KL_OP_ADD_SCALAR] = "add_scalar",
    [KL_OP_MUL_SCALAR] = "mul_scalar",
    [KL_OP_DIV_SCALAR] = "div_scalar",
    [KL_OP_RSUB_SCALAR] = "rsub_scalar",
    [KL_OP_RDIV_SCALAR] = "rdiv_scalar",
    [KL_OP_NEG] = "negative",
    [KL_OP_SQUARE] = "square",
    [KL_OP_SQRT] = "sqrt",
    [KL_OP_ABS] = "abs",
    [KL_OP_RELU] = "relu",
    [KL_OP_EXP] = "exp",
    [KL_OP_LOG] = "log",
    [KL_OP_SIGMOID] = "sigmoid",
    [KL_OP_TANH] = "tanh",
    [KL_OP_SOFTMAX] = "softmax",
    [KL_OP_TRANSPOSE] = "transpose",
    [KL_OP_RETAIN] = "retain",
    [KL_OP_MINIMUM] = "minimum",
    [KL_OP_MAXIMUM] = "maximum",
    [KL_OP_MINIMUM_SCALAR] = "minimum_scalar",
    [KL_OP_MAXIMUM_SCALAR] = "maximum_scalar",
    [KL_OP_POW_SCALAR] = "pow_scalar",
    [KL_OP_ARGMAX] = "argmax",
    [KL_OP_ONE_HOT] = "one_hot",
    [KL_OP_BIAS_ADD] = "bias_add",
    [KL_OP_EMBEDDING] = "embedding",
    [KL_OP_MASKED_MEAN] = "masked_mean",
    [KL_OP_GLOBAL_MAX_POOL] = "global_max_pool",
    [KL_OP_REG_TERMS] = "reg_terms",
    [KL_OP_LOSS_MSE] = "mean_squared_error",
    [KL_OP_LOSS_MAE] = "mean_absolute_error",
    [KL_OP_LOSS_BCE] = "binary_crossentropy",
    [KL_OP_LOSS_CCE] = "categorical_crossentropy",
    [KL_OP_LOSS_SCCE] = "sparse_categorical_crossentropy",
    [KL_OP_LOSS_HINGE] = "hinge",
    [KL_OP_LOSS_SQUARED_HINGE] = "squared_hinge",
    [KL_OP_LOSS_POISSON] = "poisson",
    [KL_OP_LOSS_HUBER] = "huber",
};

const char *kl_cuda_op_name(kl_op op) {
  return (int)op >= 0 && op < KL_OP_COUNT ? op_names[op] : NULL;
}
