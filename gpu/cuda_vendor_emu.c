/* cuda_vendor_emu.c: the emulated CUDA runtime behind cuda_vendor.h, for -DKL_CUDA=EMULATE
 * and the emulated-device tests. Only in the emulated module (the gpu/ naming convention).
 *
 * Device memory is host memory (256-byte aligned, as cudaMalloc's, with a header that names
 * its device and size, so a bad free is reported as the runtime would, error 1), a stream is
 * a token and its operations run in order at once, as the host-emulated kernels do
 * (kl_cuda_emu.h). There is one device by default, "keras-lua emulated device"; the C tests
 * can ask for more or none, give each a capacity (its allocations then run out of memory
 * like a full device), and make the k-th runtime call fail with a chosen error. Statuses and
 * strings are the runtime's (cudaErrorMemoryAllocation 2 "out of memory", ...). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_vendor.h"
#include "dev_backend.h"

#define EMU_MAX_DEVICES 8
#define EMU_HDR 256 /* the header before each block, the alignment of the block after it */
#define EMU_MAGIC 0x6b6c656d75646576ULL /* "kldevemu" */

typedef struct emu_hdr {
  uint64_t magic;
  int dev;
  size_t bytes;
} emu_hdr;

static atomic_int emu_ndev = -1; /* -1: not set (the environment's, else 1) */
static atomic_size_t emu_capacity = 0;
static atomic_long emu_fail_k = 0, emu_ncalls = 0;
static atomic_int emu_fail_err = 0;
static pthread_mutex_t emu_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t emu_live[EMU_MAX_DEVICES];

kl_status kl_cuda_emu_install(const struct kl_capi *c) {
  int n = 0;
  return kl_cuda_backend_open(c, &n);
}

void kl_cuda_emu_set_devices(int n) {
  atomic_store(&emu_ndev, n < 0 ? 0 : n > EMU_MAX_DEVICES ? EMU_MAX_DEVICES : n);
}
void kl_cuda_emu_set_capacity(size_t bytes) { atomic_store(&emu_capacity, bytes); }
void kl_cuda_emu_fail_at(long k, int err) {
  atomic_store(&emu_fail_err, err);
  atomic_store(&emu_fail_k, k > 0 ? k : 0);
}
long kl_cuda_emu_calls(void) { return atomic_load(&emu_ncalls); }

size_t kl_cuda_emu_live_bytes(int dev) {
  if (dev < 0 || dev >= EMU_MAX_DEVICES) return 0;
  pthread_mutex_lock(&emu_lock);
  size_t b = emu_live[dev];
  pthread_mutex_unlock(&emu_lock);
  return b;
}

static int emu_devices(void) {
  int n = atomic_load(&emu_ndev);
  if (n >= 0) return n;
  const char *e = getenv("KERAS_LUA_EMU_DEVICES");
  if (e && *e) {
    char *end;
    long v = strtol(e, &end, 10);
    if (*end == '\0' && v >= 0) return v > EMU_MAX_DEVICES ? EMU_MAX_DEVICES : (int)v;
  }
  return 1;
}

/* A runtime call that can fail: counted, and the injected failure when it is its turn. */
static int emu_call(void) {
  atomic_fetch_add(&emu_ncalls, 1);
  long k = atomic_load(&emu_fail_k);
  if (k > 0 && atomic_fetch_sub(&emu_fail_k, 1) == 1) return atomic_load(&emu_fail_err);
  return KL_CUDA_RT_SUCCESS;
}

/* The runtime's strings of the codes the emulated runtime returns (and the few the specs
 * ask about); others read "unknown error", as cudaGetErrorString of an unknown code. */
const char *kl_cuda_rt_errstr(int err) {
  switch (err) {
    case KL_CUDA_RT_SUCCESS: return "no error";
    case KL_CUDA_RT_INVALID_VALUE: return "invalid argument";
    case KL_CUDA_RT_OUT_OF_MEMORY: return "out of memory";
    case 9: return "invalid configuration argument";
    case KL_CUDA_RT_STUB_LIBRARY: return "CUDA driver is a stub library";
    case KL_CUDA_RT_INSUFFICIENT_DRIVER:
      return "CUDA driver version is insufficient for CUDA runtime version";
    case KL_CUDA_RT_NO_DEVICE: return "no CUDA-capable device is detected";
    case 101: return "invalid device ordinal";
    case KL_CUDA_RT_ILLEGAL_ADDRESS: return "an illegal memory access was encountered";
    default: return "unknown error";
  }
}
/* The emulated module has no cuBLAS / cuSPARSE: their statuses are only numbered. */
const char *kl_cuda_cublas_errstr(int status) {
  return status == 3 ? "the resource allocation failed (emulated)" : "cuBLAS status (emulated)";
}
const char *kl_cuda_cusparse_errstr(int status) {
  return status == 2 ? "the resource allocation failed (emulated)" : "cuSPARSE status (emulated)";
}

int kl_cuda_rt_emulated(void) { return 1; }

kl_status kl_cuda_rt_device_count(int *n) {
  *n = emu_devices();
  if (*n == 0) return kl_cuda_check_rt(KL_CUDA_RT_NO_DEVICE, "cudaGetDeviceCount");
  return KL_OK;
}

static kl_status emu_check_dev(int dev, const char *what) {
  if (dev < 0 || dev >= emu_devices()) return kl_cuda_check_rt(101, what);
  return KL_OK;
}

static size_t emu_host_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
  return pages > 0 && pg > 0 ? (size_t)pages * (size_t)pg : 0;
}

kl_status kl_cuda_rt_device_props(int dev, kl_cuda_rt_props *p) {
  memset(p, 0, sizeof *p);
  KL_TRY(emu_check_dev(dev, "cudaGetDeviceProperties"));
  snprintf(p->name, sizeof p->name, "keras-lua emulated device");
  size_t cap = atomic_load(&emu_capacity);
  p->total_memory = cap ? cap : emu_host_memory();
  p->multiprocessors = 1;
  return KL_OK;
}

void kl_cuda_rt_versions(int *runtime, int *driver) { *runtime = *driver = 0; }

kl_status kl_cuda_rt_set_device(int dev) { return emu_check_dev(dev, "cudaSetDevice"); }

kl_status kl_cuda_rt_malloc(int dev, void **p, size_t bytes) {
  *p = NULL;
  KL_TRY(emu_check_dev(dev, "cudaMalloc"));
  int e = emu_call();
  if (e == KL_CUDA_RT_OUT_OF_MEMORY || bytes > SIZE_MAX - EMU_HDR)
    return kl_cuda_seterr(KL_ENOMEM, "cudaMalloc: CUDA out of memory allocating %zu bytes", bytes);
  if (e) return kl_cuda_check_rt(e, "cudaMalloc");
  const size_t cap = atomic_load(&emu_capacity);
  pthread_mutex_lock(&emu_lock);
  int full = cap && (bytes > cap || emu_live[dev] > cap - bytes);
  if (!full) emu_live[dev] += bytes; /* reserved before the host allocation */
  pthread_mutex_unlock(&emu_lock);
  if (full)
    return kl_cuda_seterr(KL_ENOMEM, "cudaMalloc: CUDA out of memory allocating %zu bytes", bytes);
  void *m = NULL;
  if (posix_memalign(&m, EMU_HDR, EMU_HDR + bytes) != 0) {
    pthread_mutex_lock(&emu_lock);
    emu_live[dev] -= bytes;
    pthread_mutex_unlock(&emu_lock);
    return kl_cuda_seterr(KL_ENOMEM, "cudaMalloc: CUDA out of memory allocating %zu bytes", bytes);
  }
  emu_hdr *h = (emu_hdr *)m;
  h->magic = EMU_MAGIC;
  h->dev = dev;
  h->bytes = bytes;
  *p = (char *)m + EMU_HDR;
  return KL_OK;
}

kl_status kl_cuda_rt_free(int dev, void *p) {
  if (!p) return KL_OK;
  KL_TRY(emu_check_dev(dev, "cudaFree"));
  int e = emu_call();
  if (e) return kl_cuda_check_rt(e, "cudaFree");
  emu_hdr *h = (emu_hdr *)((char *)p - EMU_HDR);
  if ((uintptr_t)p % EMU_HDR != 0 || h->magic != EMU_MAGIC || h->dev != dev)
    return kl_cuda_check_rt(KL_CUDA_RT_INVALID_VALUE, "cudaFree");
  h->magic = 0;
  pthread_mutex_lock(&emu_lock);
  emu_live[dev] -= h->bytes;
  pthread_mutex_unlock(&emu_lock);
  free(h);
  return KL_OK;
}

/* A stream is a token naming its device; its operations run at once. */
typedef struct emu_stream {
  uint64_t magic;
  int dev;
} emu_stream;

kl_status kl_cuda_rt_stream_create(int dev, kl_cuda_stream *s) {
  *s = NULL;
  KL_TRY(emu_check_dev(dev, "cudaStreamCreate"));
  int e = emu_call();
  if (e) return kl_cuda_check_rt(e, "cudaStreamCreate");
  emu_stream *q = malloc(sizeof *q);
  if (!q) return kl_cuda_check_rt(KL_CUDA_RT_OUT_OF_MEMORY, "cudaStreamCreate");
  q->magic = EMU_MAGIC;
  q->dev = dev;
  *s = q;
  return KL_OK;
}

kl_status kl_cuda_rt_stream_destroy(int dev, kl_cuda_stream s) {
  if (!s) return KL_OK;
  KL_TRY(emu_check_dev(dev, "cudaStreamDestroy"));
  emu_stream *q = s;
  if (q->magic != EMU_MAGIC || q->dev != dev)
    return kl_cuda_check_rt(KL_CUDA_RT_INVALID_VALUE, "cudaStreamDestroy");
  q->magic = 0;
  free(q);
  return KL_OK;
}

/* A stream of another device (or not a stream) is an invalid argument, as on a GPU. */
static kl_status emu_stream_check(int dev, kl_cuda_stream s, const char *what) {
  KL_TRY(emu_check_dev(dev, what));
  const emu_stream *q = s;
  if (q && (q->magic != EMU_MAGIC || q->dev != dev))
    return kl_cuda_check_rt(KL_CUDA_RT_INVALID_VALUE, what);
  int e = emu_call();
  return e ? kl_cuda_check_rt(e, what) : KL_OK;
}

kl_status kl_cuda_rt_stream_sync(int dev, kl_cuda_stream s) {
  return emu_stream_check(dev, s, "cudaStreamSynchronize");
}

kl_status kl_cuda_rt_copy_h2d(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(emu_stream_check(dev, s, "cudaMemcpyAsync (host to device)"));
  memmove(dst, src, bytes);
  return KL_OK;
}

kl_status kl_cuda_rt_copy_d2h(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(emu_stream_check(dev, s, "cudaMemcpyAsync (device to host)"));
  memmove(dst, src, bytes);
  return KL_OK;
}

kl_status kl_cuda_rt_copy_d2d(int dev, void *dst, const void *src, size_t bytes,
                              kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(emu_stream_check(dev, s, "cudaMemcpyAsync (device to device)"));
  memmove(dst, src, bytes);
  return KL_OK;
}

kl_status kl_cuda_rt_memset0(int dev, void *p, size_t bytes, kl_cuda_stream s) {
  if (bytes == 0) return KL_OK;
  KL_TRY(emu_stream_check(dev, s, "cudaMemsetAsync"));
  memset(p, 0, bytes);
  return KL_OK;
}
