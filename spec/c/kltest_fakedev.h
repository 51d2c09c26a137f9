/* kltest_fakedev.h: a guarded fake device for the C tests of the device layer (kl/device.h).
 *
 * fakedev_install() registers a device backend with one device, gpu(0), whose memory is host
 * memory mapped PROT_NONE: host code that reads or writes a device tensor's buffers directly
 * (instead of going through the backend's copy, which opens the pages for the copy only)
 * dies of SIGSEGV, so a test running a path on this device proves the path never touches
 * device memory from the host. It has no op kernels (every op is a counted host fallback)
 * unless a test sets fakedev_ops, and no optimizer update (the host's, counted).
 * fakedev_live() counts live device blocks (leak checks); fakedev_fail_at(k) makes the k-th
 * device allocation from now fail with KL_ENOMEM (allocation-failure sweeps). */
#ifndef KLTEST_FAKEDEV_H
#define KLTEST_FAKEDEV_H
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kl/device.h"

typedef struct fakedev_hdr {
  size_t map_bytes; /* the mapping, header page included */
  size_t bytes;
} fakedev_hdr;

static long fakedev_nlive = 0, fakedev_fail_k = 0, fakedev_nallocs = 0;
static const kl_device_opdef *const *fakedev_ops = NULL;
static int fakedev_nops = 0;

static size_t fakedev_page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* The header page sits before the data pages; both stay PROT_NONE between calls. */
static fakedev_hdr *fakedev_hdr_of(const void *p) {
  return (fakedev_hdr *)((char *)p - fakedev_page());
}

static void fakedev_open(const void *p, int rw) {
  fakedev_hdr *h = fakedev_hdr_of(p);
  mprotect(h, fakedev_page(), PROT_READ | PROT_WRITE);
  size_t mb = h->map_bytes;
  mprotect(h, mb, rw ? PROT_READ | PROT_WRITE : PROT_READ);
}

static void fakedev_close(const void *p) {
  fakedev_hdr *h = fakedev_hdr_of(p);
  size_t mb = h->map_bytes;
  mprotect(h, mb, PROT_NONE);
}

static int fakedev_count(void) { return 1; }

static kl_status fakedev_alloc(kl_device d, size_t bytes, void **p) {
  (void)d;
  *p = NULL;
  fakedev_nallocs++;
  if (fakedev_fail_k > 0 && --fakedev_fail_k == 0)
    return kl_seterr(KL_ENOMEM, "fakedev: out of device memory allocating %zu bytes", bytes);
  size_t pg = fakedev_page();
  size_t mb = pg + (bytes + pg - 1) / pg * pg;
  void *m = mmap(NULL, mb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return kl_seterr(KL_ENOMEM, "fakedev: mmap of %zu bytes failed", mb);
  fakedev_hdr *h = (fakedev_hdr *)m;
  h->map_bytes = mb;
  h->bytes = bytes;
  mprotect(m, mb, PROT_NONE);
  fakedev_nlive++;
  *p = (char *)m + pg;
  return KL_OK;
}

static void fakedev_free(kl_device d, void *p) {
  (void)d;
  if (!p) return;
  fakedev_hdr *h = fakedev_hdr_of(p);
  mprotect(h, fakedev_page(), PROT_READ);
  size_t mb = h->map_bytes;
  munmap(h, mb);
  fakedev_nlive--;
}

static kl_status fakedev_copy(void *dst, kl_device dd, const void *src, kl_device sd,
                              size_t bytes) {
  if (bytes == 0) return KL_OK;
  if (sd != KL_CPU) fakedev_open(src, 1);
  if (dd != KL_CPU) fakedev_open(dst, 1);
  memmove(dst, src, bytes);
  if (sd != KL_CPU) fakedev_close(src);
  if (dd != KL_CPU) fakedev_close(dst);
  return KL_OK;
}

static kl_status fakedev_memset0(kl_device d, void *p, size_t bytes) {
  (void)d;
  if (bytes == 0) return KL_OK;
  fakedev_open(p, 1);
  memset(p, 0, bytes);
  fakedev_close(p);
  return KL_OK;
}

static kl_status fakedev_sync(kl_device d) {
  (void)d;
  return KL_OK;
}

static kl_device_backend fakedev_backend = {
    "fakedev", fakedev_count, fakedev_alloc, fakedev_free, fakedev_copy, fakedev_memset0,
    fakedev_sync, NULL, 0, NULL};

static void fakedev_install(void) {
  fakedev_backend.ops = fakedev_ops;
  fakedev_backend.nops = fakedev_nops;
  kl_device_register(&fakedev_backend);
}

static long fakedev_live(void) { return fakedev_nlive; }
static void fakedev_fail_at(long k) { fakedev_fail_k = k; }

#define FAKEDEV KL_DEVICE_CUDA(0)
#endif
