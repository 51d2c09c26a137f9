/* device.c: the device backend's registration, tensors on a device, transfers, and the
 * device-fallback counter (kl/device.h). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "kl/registry.h"
#include "tensor_internal.h"

static _Atomic(const kl_device_backend *) kl_backend = NULL;

void kl_device_register(const kl_device_backend *b) { atomic_store(&kl_backend, b); }

const kl_device_backend *kl_device_backend_get(void) { return atomic_load(&kl_backend); }

const char *kl_device_str(kl_device d, char *buf, size_t len) {
  if (d == KL_CPU) snprintf(buf, len, "cpu(0)");
  else if (KL_DEVICE_IS_CUDA(d)) snprintf(buf, len, "gpu(%d)", KL_DEVICE_ORDINAL(d));
  else snprintf(buf, len, "device(%d)", (int)d);
  return buf;
}

kl_status kl_device_check(const char *fn, kl_device d) {
  char b[32];
  if (d == KL_CPU) return KL_OK;
  KL_CHECK(KL_DEVICE_IS_CUDA(d), KL_EINVAL, "%s: invalid device %d", fn, (int)d);
  const kl_device_backend *be = kl_device_backend_get();
  KL_CHECK(be != NULL, KL_ENODEV,
           "%s: no CUDA device: the CUDA module is not loaded (keras.num_gpus() loads it)", fn);
  int n = be->count();
  KL_CHECK(n > 0, KL_ENODEV, "%s: no CUDA device: %s reports none", fn, be->name);
  KL_CHECK(KL_DEVICE_ORDINAL(d) < n, KL_ENODEV, "%s: device %s out of range (%d GPU(s) present)",
           fn, kl_device_str(d, b, sizeof b), n);
  return KL_OK;
}

kl_status kl_device_refuse(const char *fn, const kl_tensor *t) {
  char b[32];
  return kl_seterr(KL_EUNSUPPORTED,
                   "%s: the tensor is on %s; copy it to the host first (t:to(keras.cpu()))", fn,
                   kl_device_str(t->device, b, sizeof b));
}

kl_status kl_device_of(const char *fn, kl_tensor *const *in, int nin, kl_device *dev) {
  *dev = nin > 0 && in[0] ? in[0]->device : KL_CPU;
  for (int i = 1; i < nin; i++) {
    if (!in[i] || in[i]->device == *dev) continue;
    char a[32], b[32];
    return kl_seterr(KL_EINVAL, "%s: inputs on different devices: input 1 on %s, input %d on %s",
                     fn, kl_device_str(*dev, a, sizeof a), i + 1,
                     kl_device_str(in[i]->device, b, sizeof b));
  }
  return KL_OK;
}

/* ------------------------------------------------------------ storage */

/* Device memory of at least one byte (a zero-size tensor still has non-NULL buffers). */
static kl_status dev_alloc(kl_device d, size_t bytes, void **p) {
  const kl_device_backend *be = kl_device_backend_get();
  *p = NULL;
  KL_CHECK(be != NULL, KL_ENODEV, "no CUDA device: the CUDA module is not loaded");
  return be->alloc(d, bytes ? bytes : 8, p);
}

static void dev_free(kl_device d, void *p) {
  const kl_device_backend *be = kl_device_backend_get();
  if (p && be) be->free(d, p);
}

void kl_device_free_storage(kl_tensor *t) {
  if (!t->borrowed) {
    dev_free(t->device, t->data);
    dev_free(t->device, t->indices);
  }
  dev_free(t->device, t->indptr);
  t->data = NULL;
  t->indices = t->indptr = NULL;
}

static kl_status dev_copy(void *dst, kl_device dd, const void *src, kl_device sd, size_t bytes) {
  if (bytes == 0) return KL_OK;
  if (dd == KL_CPU && sd == KL_CPU) {
    memcpy(dst, src, bytes);
    return KL_OK;
  }
  const kl_device_backend *be = kl_device_backend_get();
  KL_CHECK(be != NULL, KL_ENODEV, "no CUDA device: the CUDA module is not loaded");
  return be->copy(dst, dd, src, sd, bytes);
}

/* A header with t's description on d, no storage. */
static kl_tensor *header_like(const kl_tensor *t, kl_device d) {
  kl_tensor *c = kl_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->refcount = 1;
  c->dtype = t->dtype;
  c->stype = t->stype;
  c->ndim = t->ndim;
  memcpy(c->shape, t->shape, sizeof c->shape);
  c->device = d;
  return c;
}

/* Allocates c's buffers on c->device for nnz entries of its stype (indptr zeroed). */
static kl_status alloc_storage(kl_tensor *c, int64_t nnz, int zero) {
  const kl_device d = c->device;
  const size_t es = kl_dtype_size(c->dtype);
  int64_t nval = c->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(c)
                 : c->stype == KL_STYPE_CSR  ? nnz
                                             : nnz * kl_row_width(c);
  c->nnz = c->stype == KL_STYPE_DEFAULT ? nval : nnz;
  KL_TRY(dev_alloc(d, (size_t)nval * es, &c->data));
  c->cap_data = nval;
  if (c->stype != KL_STYPE_DEFAULT) {
    KL_TRY(dev_alloc(d, (size_t)nnz * sizeof(int64_t), (void **)&c->indices));
    c->cap_indices = nnz;
  }
  const kl_device_backend *be = kl_device_backend_get();
  if (c->stype == KL_STYPE_CSR) {
    size_t b = (size_t)(c->shape[0] + 1) * sizeof(int64_t);
    KL_TRY(dev_alloc(d, b, (void **)&c->indptr));
    KL_TRY(be->memset0(d, c->indptr, b));
  }
  if (zero && nval > 0) KL_TRY(be->memset0(d, c->data, (size_t)nval * es));
  return KL_OK;
}

static kl_status new_on(kl_device d, const kl_tensor *desc, int64_t nnz, int zero,
                        kl_tensor **out) {
  *out = NULL;
  kl_tensor *c = header_like(desc, d);
  if (!c) return KL_ENOMEM;
  kl_status st = alloc_storage(c, nnz, zero);
  if (st != KL_OK) {
    kl_tensor_release(c);
    return st;
  }
  *out = c;
  return KL_OK;
}

kl_status kl_tensor_new_dense_on(kl_device d, kl_dtype dtype, int ndim, const int64_t *shape,
                                 int zero, kl_tensor **out) {
  if (d == KL_CPU)
    return zero ? kl_tensor_new_dense(dtype, ndim, shape, out)
                : kl_tensor_new_dense_uninit(dtype, ndim, shape, out);
  *out = NULL;
  KL_TRY(kl_device_check("zeros", d));
  KL_CHECK(dtype == KL_FLOAT32 || dtype == KL_FLOAT64 || dtype == KL_INT64, KL_EDTYPE,
           "zeros: invalid dtype %d", (int)dtype);
  KL_TRY(kl_shape_check("zeros", ndim, shape));
  kl_tensor h;
  memset(&h, 0, sizeof h);
  h.dtype = dtype;
  h.ndim = ndim;
  if (ndim) memcpy(h.shape, shape, sizeof(int64_t) * (size_t)ndim);
  return new_on(d, &h, 0, zero, out);
}

kl_status kl_tensor_new_csr_on(kl_device d, kl_dtype dtype, int64_t rows, int64_t cols,
                               int64_t nnz, kl_tensor **out) {
  if (d == KL_CPU) return kl_tensor_new_csr(dtype, rows, cols, nnz, out);
  *out = NULL;
  KL_TRY(kl_device_check("csr_matrix", d));
  kl_tensor *h = NULL;
  KL_TRY(kl_tensor_new_csr(dtype, 0, cols, 0, &h)); /* validates dtype and cols */
  h->shape[0] = rows;
  kl_status st = kl_shape_check("csr_matrix", 2, h->shape);
  if (st == KL_OK && (nnz < 0 || nnz > rows * cols))
    st = kl_seterr(KL_EINVAL, "csr_matrix: nnz = %" PRId64 " must be in [0, %" PRId64 "]", nnz,
                   rows * cols);
  if (st == KL_OK) st = new_on(d, h, nnz, 0, out);
  kl_tensor_release(h);
  return st;
}

kl_status kl_tensor_new_rsp_on(kl_device d, kl_dtype dtype, int ndim, const int64_t *shape,
                               int64_t nrows, kl_tensor **out) {
  if (d == KL_CPU) return kl_tensor_new_rsp(dtype, ndim, shape, nrows, out);
  *out = NULL;
  KL_TRY(kl_device_check("row_sparse_array", d));
  kl_tensor *h = NULL;
  KL_TRY(kl_tensor_new_rsp(dtype, ndim, shape, 0, &h)); /* validates */
  kl_status st = KL_OK;
  if (nrows < 0 || nrows > shape[0])
    st = kl_seterr(KL_EINVAL,
                   "row_sparse_array: %" PRId64 " stored rows must be in [0, %" PRId64 "]", nrows,
                   shape[0]);
  if (st == KL_OK) st = new_on(d, h, nrows, 0, out);
  kl_tensor_release(h);
  return st;
}

/* Copies t's entries (its nnz) into c (same description, room for them, any devices). */
static kl_status copy_entries(kl_tensor *c, const kl_tensor *t) {
  const size_t es = kl_dtype_size(t->dtype);
  int64_t nval = t->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(t)
                 : t->stype == KL_STYPE_CSR  ? t->nnz
                                             : t->nnz * kl_row_width(t);
  KL_TRY(dev_copy(c->data, c->device, t->data, t->device, (size_t)nval * es));
  if (t->stype != KL_STYPE_DEFAULT)
    KL_TRY(dev_copy(c->indices, c->device, t->indices, t->device,
                    (size_t)t->nnz * sizeof(int64_t)));
  if (t->stype == KL_STYPE_CSR)
    KL_TRY(dev_copy(c->indptr, c->device, t->indptr, t->device,
                    (size_t)(t->shape[0] + 1) * sizeof(int64_t)));
  return KL_OK;
}

kl_status kl_tensor_to(const kl_tensor *t, kl_device d, kl_tensor **out) {
  *out = NULL;
  KL_CHECK(t != NULL, KL_EINVAL, "to: tensor is NULL");
  if (t->device == d) {
    *out = kl_tensor_retain((kl_tensor *)t);
    return KL_OK;
  }
  KL_TRY(kl_device_check("to", d));
  kl_tensor *c = NULL;
  kl_status st;
  if (d == KL_CPU) {
    /* host buffers by the host constructors, so that host code owns them as its own */
    if (t->stype == KL_STYPE_DEFAULT) st = kl_tensor_new_dense_uninit(t->dtype, t->ndim, t->shape, &c);
    else if (t->stype == KL_STYPE_CSR) st = kl_tensor_new_csr(t->dtype, t->shape[0], t->shape[1], t->nnz, &c);
    else st = kl_tensor_new_rsp(t->dtype, t->ndim, t->shape, t->nnz, &c);
  } else {
    st = new_on(d, t, t->nnz, 0, &c);
  }
  if (st == KL_OK) st = copy_entries(c, t);
  if (st != KL_OK) {
    kl_tensor_release(c);
    return st;
  }
  *out = c;
  return KL_OK;
}

kl_status kl_device_clone(const kl_tensor *t, kl_tensor **out) {
  kl_tensor *c = NULL;
  *out = NULL;
  KL_TRY(new_on(t->device, t, t->nnz, 0, &c));
  kl_status st = copy_entries(c, t);
  if (st != KL_OK) {
    kl_tensor_release(c);
    return st;
  }
  *out = c;
  return KL_OK;
}

/* Exchanges the storage (buffers, capacities, nnz, device) of a and b. */
static void swap_storage(kl_tensor *a, kl_tensor *b) {
  kl_tensor t = *a;
  a->data = b->data;
  a->indices = b->indices;
  a->indptr = b->indptr;
  a->cap_data = b->cap_data;
  a->cap_indices = b->cap_indices;
  a->nnz = b->nnz;
  a->device = b->device;
  b->data = t.data;
  b->indices = t.indices;
  b->indptr = t.indptr;
  b->cap_data = t.cap_data;
  b->cap_indices = t.cap_indices;
  b->nnz = t.nnz;
  b->device = t.device;
}

kl_status kl_device_assign(kl_tensor *dst, kl_tensor *src) {
  KL_CHECK(!dst->borrowed && !src->borrowed, KL_EINVAL, "copyto: a view's storage cannot be replaced");
  KL_CHECK(dst->stype == src->stype && dst->dtype == src->dtype, KL_EINVAL,
           "copyto: internal: storage of another description");
  swap_storage(dst, src);
  return KL_OK;
}

kl_status kl_tensor_move(kl_tensor *t, kl_device d) {
  KL_CHECK(t != NULL, KL_EINVAL, "to: tensor is NULL");
  if (t->device == d) return KL_OK;
  KL_CHECK(!t->borrowed, KL_EINVAL, "to: the tensor is a view of another's storage (copy it first)");
  kl_tensor *c = NULL;
  KL_TRY(kl_tensor_to(t, d, &c));
  swap_storage(t, c); /* t takes c's buffers and device; c frees t's old ones */
  kl_tensor_release(c);
  return KL_OK;
}

kl_status kl_tensor_reserve_device(kl_tensor *t, int64_t nnz) {
  KL_CHECK(!t->borrowed, KL_EINVAL, "reserve: the tensor is a view of another's storage");
  KL_CHECK(t->stype != KL_STYPE_DEFAULT, KL_ESTYPE, "reserve: not supported for dense tensors");
  int64_t limit = t->stype == KL_STYPE_CSR ? kl_tensor_numel(t) : t->shape[0];
  KL_CHECK(nnz >= 0 && nnz <= limit, KL_EINVAL,
           "reserve: nnz = %" PRId64 " must be in [0, %" PRId64 "]", nnz, limit);
  const size_t es = kl_dtype_size(t->dtype);
  int64_t nval = t->stype == KL_STYPE_CSR ? nnz : nnz * kl_row_width(t);
  int64_t keep = t->nnz < nnz ? t->nnz : nnz;
  int64_t keepval = t->stype == KL_STYPE_CSR ? keep : keep * kl_row_width(t);
  if (nnz > t->cap_indices || !t->indices) {
    void *p = NULL;
    KL_TRY(dev_alloc(t->device, (size_t)nnz * sizeof(int64_t), &p));
    kl_status st = dev_copy(p, t->device, t->indices, t->device, (size_t)keep * sizeof(int64_t));
    if (st != KL_OK) {
      dev_free(t->device, p);
      return st;
    }
    dev_free(t->device, t->indices);
    t->indices = p;
    t->cap_indices = nnz;
  }
  if (nval > t->cap_data || !t->data) {
    void *p = NULL;
    KL_TRY(dev_alloc(t->device, (size_t)nval * es, &p));
    kl_status st = dev_copy(p, t->device, t->data, t->device, (size_t)keepval * es);
    if (st != KL_OK) {
      dev_free(t->device, p);
      return st;
    }
    dev_free(t->device, t->data);
    t->data = p;
    t->cap_data = nval;
  }
  t->nnz = nnz;
  return KL_OK;
}

/* ------------------------------------------------------------ host round trips */

kl_status kl_device_roundtrip1(const kl_tensor *t, kl_device_host_fn fn, void *ud,
                               kl_tensor **out) {
  kl_tensor *h = NULL, *r = NULL;
  *out = NULL;
  KL_TRY(kl_tensor_to(t, KL_CPU, &h));
  kl_status st = fn(h, ud, &r);
  if (st == KL_OK) st = kl_tensor_to(r, t->device, out);
  kl_tensor_release(h);
  kl_tensor_release(r);
  return st;
}

/* ------------------------------------------------------------ fallbacks */

static atomic_long kl_dev_fallbacks = 0;
#define KL_DEV_WARNED_MAX 256
static char kl_dev_warned[KL_DEV_WARNED_MAX][96];
static int kl_dev_nwarned = 0;
static pthread_mutex_t kl_dev_lock = PTHREAD_MUTEX_INITIALIZER;

long kl_device_fallback_count(void) { return atomic_load(&kl_dev_fallbacks); }

void kl_device_note_fallback(const char *what, kl_device d) {
  char key[96], dn[32];
  atomic_fetch_add(&kl_dev_fallbacks, 1);
  snprintf(key, sizeof key, "%s on %s", what, kl_device_str(d, dn, sizeof dn));
  const char *v = getenv("KERAS_LUA_DEVICE_VERBOSE");
  int verbose = v && v[0] && strcmp(v, "0") != 0;
  pthread_mutex_lock(&kl_dev_lock);
  int seen = 0;
  for (int i = 0; i < kl_dev_nwarned && !seen; i++) seen = strcmp(kl_dev_warned[i], key) == 0;
  if (!seen && kl_dev_nwarned < KL_DEV_WARNED_MAX) memcpy(kl_dev_warned[kl_dev_nwarned++], key, sizeof key);
  pthread_mutex_unlock(&kl_dev_lock);
  if (!seen || verbose)
    kl_warnf("%s has no device kernel; computed on the host (device fallback)", key);
}
