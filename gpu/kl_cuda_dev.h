/* kl_cuda_dev.h: what the device op files (gpu/dev_ops*.c) and the backend (dev_backend.c)
 * share inside keras/cuda.so: the core's API, the device's stream and scratch memory, and
 * the op table. Host C only (the kernels' interface is kl_cuda.h).
 *
 * A device kernel of an op (a kl_kernel_entry's fn, kl/device.h) takes device tensors,
 * makes its output with kl_cuda_capi->tensor_new_*_on(d, ...), queues its launches on
 * kl_cuda_dev_stream(d) and returns without waiting, unless it must read a result on the
 * host (the nnz of a sparse output): kl_cuda_dev_read does the copy and the wait. Scratch
 * buffers come from the device's caching allocator (kl_cuda_dev_alloc / free: returned
 * blocks are reused in stream order, so freeing right after queueing is safe). */
#ifndef KL_CUDA_DEV_H
#define KL_CUDA_DEV_H
#include <stddef.h>

#include "kl/device.h"
#include "kl_capi.h"
#include "kl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The core's API (lua/binding/kl_capi.h), set when keras.cuda is opened (or by a C test). */
extern const kl_capi *kl_cuda_capi;

/* Device d's stream (one per device). */
kl_cuda_stream kl_cuda_dev_stream(kl_device d);
/* Scratch device memory of d from its caching allocator (bytes 0: *p NULL). */
kl_status kl_cuda_dev_alloc(kl_device d, size_t bytes, void **p);
void kl_cuda_dev_free(kl_device d, void *p);
/* bytes of device memory src of d into host dst, after d's stream has run everything
 * queued before (a synchronising read: an output's nnz, the loss, a bad-id flag). */
kl_status kl_cuda_dev_read(kl_device d, void *dst, const void *src, size_t bytes);
/* bytes of host src into device dst of d, queued on d's stream (src may be reused when it
 * returns: the copy is staged). */
kl_status kl_cuda_dev_write(kl_device d, void *dst, const void *src, size_t bytes);
/* Zeroes bytes of device memory of d (queued on its stream). */
kl_status kl_cuda_dev_memset0(kl_device d, void *p, size_t bytes);

/* The op table (dev_ops.c): ops[op] or NULL; *nops = KL_OP_COUNT. */
const kl_device_opdef *const *kl_cuda_ops(int *nops);
/* Whether the table has kernels for op (the GPU specs assert no fallback for those). */
int kl_cuda_op_claimed(kl_op op);

/* The plan's Embedding -> mean fusion on the device (dev_ops_layers.c; the backend's
 * embedding_mean and embedding_mean_backward, kl/device.h), and how many of each have run
 * (backward 0: forwards, 1: backwards) since the module was loaded: the tests' proof that a
 * device plan fused. */
kl_status kl_cuda_dev_embedding_mean(const kl_tensor *ids, const kl_tensor *w, int masked,
                                     kl_tensor **out);
kl_status kl_cuda_dev_embedding_mean_backward(const kl_tensor *ids, const kl_tensor *w,
                                              int masked, const kl_tensor *gout, kl_stype want,
                                              kl_tensor **gin);
long kl_cuda_embedding_mean_calls(int backward);

#ifdef __cplusplus
}
#endif
#endif /* KL_CUDA_DEV_H */
