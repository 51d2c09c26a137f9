/* kl/device.h: devices other than the host: the device backend a module registers, tensors
 * on a device, transfers, and the per-device half of the op registry.
 *
 * core.so links no CUDA. The CUDA module (gpu/, keras/cuda.so, loaded on the first GPU
 * request) fills a kl_device_backend with its allocator, copies and op tables, and registers
 * it through kl_device_register (reached through core._capi). Until then, and in a build
 * without CUDA, every device request fails with KL_ENODEV.
 *
 * A device tensor is an ordinary kl_tensor whose `device` is not KL_CPU: its data, indptr and
 * indices are device pointers, allocated and freed by the backend. Host code never reads
 * them: the host accessors (kl_tensor_get, kl_tensor_locate, kl_tensor_check_format, the
 * model-file and LibSVM writers) refuse a device tensor with kl_device_refuse's message, and
 * the conversions (kl_tensor_tostype, copy, astype, reshape, slice_rows, take_rows, copyto)
 * run on the device through the host (a copy there and back), so they stay correct.
 *
 * Dispatch (registry.c): kl_op_run / kl_op_backward look at their inputs' device. Inputs on
 * two devices are an error naming both. On a device, the backend's table for the op is tried
 * (its kernel entries in order, each with its supports(), as the CPU's sparse kernels); when
 * none takes the inputs, the op runs on the host (inputs copied there, the result copied
 * back) with a one-time warning per op and device and a counter, kl_device_fallback_count,
 * exactly like the storage fallback. */
#ifndef KL_DEVICE_H
#define KL_DEVICE_H
#include <stddef.h>

#include "kl/kl.h"
#include "kl/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A kernel of an op for some inputs (stypes, shapes, dtypes): supports() says whether it
 * takes them (NULL: always). The CPU's sparse kernels and the device kernels alike. */
typedef struct kl_kernel_entry {
  const char *name;         /* "csr.dense", "cuda.csr.dense", ... (logs, tests) */
  kl_supports_fn supports;  /* accepts these inputs? */
  kl_kernel_fn fn;
} kl_kernel_entry;

/* One op on a device: its kernels (terminated by an entry with fn == NULL; NULL: none) and
 * its backward (NULL: the host's). A kernel must return its result on the inputs' device
 * with the stype kl_op_infer gives; the backward the stype asked for (want). */
typedef struct kl_device_opdef {
  const kl_kernel_entry *kernels;
  kl_backward_fn backward;
} kl_device_opdef;

/* The device backend a module registers. Every function returns KL_OK or a status with its
 * message set (KL_ENOMEM for device memory, KL_EDEVICE with the library's own string). */
typedef struct kl_device_backend {
  const char *name;        /* "cuda", "cuda (emulated)" */
  int (*count)(void);      /* devices usable now (0 when none) */
  /* Device memory of d: bytes > 0; *p is the device pointer. free(NULL) is a no-op. */
  kl_status (*alloc)(kl_device d, size_t bytes, void **p);
  void (*free)(kl_device d, void *p);
  /* bytes from src (on sd) to dst (on dd), either or both on the device; the copy has
   * finished when it returns if dst is host memory (the host reads it next). */
  kl_status (*copy)(void *dst, kl_device dd, const void *src, kl_device sd, size_t bytes);
  kl_status (*memset0)(kl_device d, void *p, size_t bytes);
  kl_status (*synchronize)(kl_device d);
  /* ops[op] for op < nops: the device's kernels of op, or NULL (host fallback). */
  const kl_device_opdef *const *ops;
  int nops;
  /* The optimizer update of a weight on the device (kl_optimizer_update's contract); NULL
   * or KL_EUNSUPPORTED for a case it does not cover: the host does it (counted). */
  kl_status (*opt_update)(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                          kl_tensor **states, int64_t t);
  /* The plan's Embedding -> mean fusion on the device: layers/embedding.c's
   * kl_embedding_mean and kl_embedding_mean_backward (their contracts and bits) for ids and
   * a weight on the device, called after their checks of shapes and stypes. NULL: a device
   * plan runs the Embedding and the mean as two ops (as it does when the op table lacks
   * either op). */
  kl_status (*embedding_mean)(const kl_tensor *ids, const kl_tensor *w, int masked,
                              kl_tensor **out);
  kl_status (*embedding_mean_backward)(const kl_tensor *ids, const kl_tensor *w, int masked,
                                       const kl_tensor *gout, kl_stype want, kl_tensor **gin);
} kl_device_backend;

/* Registers the (one) device backend; NULL unregisters. The backend must outlive its
 * tensors: the module that registers it stays loaded (-z nodelete). */
void kl_device_register(const kl_device_backend *b);
const kl_device_backend *kl_device_backend_get(void);

/* "cpu(0)", "gpu(1)" into buf (returned). */
const char *kl_device_str(kl_device d, char *buf, size_t len);
/* KL_OK when d is the CPU or a registered device's ordinal below its count; else KL_ENODEV
 * ("fn: no CUDA device: ...", or "fn: device gpu(3) out of range (1 GPU(s) present)"). */
kl_status kl_device_check(const char *fn, kl_device d);
/* The message for host code given a device tensor (returns KL_EUNSUPPORTED):
 * "fn: the tensor is on gpu(0); copy it to the host first (t:to(keras.cpu()))". */
kl_status kl_device_refuse(const char *fn, const kl_tensor *t);

/* Tensors on d (KL_CPU: the kl_tensor_new_* functions). Dense: zero-filled when zero. */
kl_status kl_tensor_new_dense_on(kl_device d, kl_dtype dtype, int ndim, const int64_t *shape,
                                 int zero, kl_tensor **out);
/* CSR with indptr zeroed, room for nnz values (uninitialised), on d. */
kl_status kl_tensor_new_csr_on(kl_device d, kl_dtype dtype, int64_t rows, int64_t cols,
                               int64_t nnz, kl_tensor **out);
/* row_sparse with room for nrows rows (indices and data uninitialised), on d. */
kl_status kl_tensor_new_rsp_on(kl_device d, kl_dtype dtype, int ndim, const int64_t *shape,
                               int64_t nrows, kl_tensor **out);
/* A copy of t on d (same dtype, stype, shape, values); t itself (retained) when it is
 * already there. */
kl_status kl_tensor_to(const kl_tensor *t, kl_device d, kl_tensor **out);
/* Moves t's storage to d in place (the handle keeps its identity: a model's weights moved
 * by compile{device = ...}). A view (borrowed storage) is refused. */
kl_status kl_tensor_move(kl_tensor *t, kl_device d);
/* Grows a device csr / row_sparse's buffers (kl_tensor_reserve's contract), keeping the
 * first t->nnz entries. */
kl_status kl_tensor_reserve_device(kl_tensor *t, int64_t nnz);
/* The device of inputs in[0..nin-1]: *dev, or KL_EINVAL naming fn and both devices when
 * they differ ("add: inputs on different devices: input 1 on cpu(0), input 2 on gpu(0)"). */
kl_status kl_device_of(const char *fn, kl_tensor *const *in, int nin, kl_device *dev);

/* Host fallbacks of ops (and updates) on a device, since start: the counter the GPU specs
 * assert zero for the ops the CUDA table claims. */
long kl_device_fallback_count(void);
/* Records one (warns once per key, every time with KERAS_LUA_DEVICE_VERBOSE=1). */
void kl_device_note_fallback(const char *what, kl_device d);

#ifdef __cplusplus
}
#endif
#endif /* KL_DEVICE_H */
