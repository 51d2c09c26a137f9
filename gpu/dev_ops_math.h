/* dev_ops_math.h: what the math ops' device files (dev_ops_math.c, dev_ops_math_shape.c)
 * share: tensors on the device through the core's API, storage conversions on the device,
 * scratch memory, scans and synchronising reads. Host C only; these functions never read
 * device memory from the host except through kl_cuda_dev_read. */
#ifndef KL_DEV_OPS_MATH_H
#define KL_DEV_OPS_MATH_H
#include "dev_ops_util.h"
#include "kl_cuda_dev.h"
#include "kl_cuda_math.h"

/* Element size of dt (4 or 8). */
static inline size_t kl_cdm_es(kl_dtype dt) { return dt == KL_FLOAT32 ? 4 : 8; }
/* The number of stored values of t (dense: numel; csr: nnz; row_sparse: nnz x row width). */
int64_t kl_cdm_nvals(const kl_tensor *t);
/* Same dims. */
int kl_cdm_same_shape(const kl_tensor *a, const kl_tensor *b);
/* numel of a shape. */
int64_t kl_cdm_numel(int nd, const int64_t *shape);

/* A dense tensor on d (zero: zero-filled). */
kl_status kl_cdm_dense(kl_device d, kl_dtype dt, int nd, const int64_t *shape, int zero,
                       kl_tensor **out);
void kl_cdm_release(kl_tensor *t); /* NULL-safe */
/* A tensor with t's device, dtype, stype, shape and sparsity pattern (indptr / indices
 * copied), its values not set. */
kl_status kl_cdm_like(const kl_tensor *t, kl_tensor **out);
/* t as a dense tensor on its device (t retained when dense). */
kl_status kl_cdm_densify(const kl_tensor *t, kl_tensor **out);
/* t with stype s on its device (convert.c's rules; t retained when it has it). */
kl_status kl_cdm_convert(const kl_tensor *t, kl_stype s, kl_tensor **out);
/* *g given the stype the caller of a backward asks for, on the device when possible (a
 * csr wanted of a tensor that is not 2-d is left to the registry). */
kl_status kl_cdm_to_want(kl_tensor **g, kl_stype want);

/* Scratch device memory (bytes 0: *p NULL) and its release (NULL-safe). */
kl_status kl_cdm_scratch(kl_device d, size_t bytes, void **p);
void kl_cdm_free(kl_device d, void *p);
/* out[0..n] = the exclusive scan of in[0..n) (out[n] the total), on d's stream. */
kl_status kl_cdm_scan(kl_device d, const int64_t *in, int64_t *out, int64_t n);
/* *v = the device int64 at src (waits for d's queued work). */
kl_status kl_cdm_read_i64(kl_device d, const int64_t *src, int64_t *v);

/* The CPU's message for a gradient of a non-float tensor ("add: gradient needs float32 or
 * float64, got int64"), or KL_OK. */
kl_status kl_cdm_grad_dtype(const char *fn, kl_dtype dt);
/* The registry's name of op (kl_op_name's). */
const char *kl_cdm_op_name(kl_op op);
#endif
