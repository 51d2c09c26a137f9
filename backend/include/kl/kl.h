/* kl.h: the keras-lua backend in one header: status codes, allocator, tensors, RNG, ops. */
#ifndef KL_KL_H
#define KL_KL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

/* Every backend function returns a kl_status and, on failure, leaves a message
 * (thread-local) readable with kl_errmsg(). Nothing in the backend aborts. */
typedef enum kl_status {
  KL_OK = 0,
  KL_ENOMEM,       /* an allocation failed */
  KL_EINVAL,       /* a bad argument value (non-finite, negative count, unknown name) */
  KL_ESHAPE,       /* shapes do not agree, or a bad shape */
  KL_EINDEX,       /* an index out of range, unsorted, duplicated */
  KL_EDTYPE,       /* a dtype the op does not support, or dtypes that differ */
  KL_ESTYPE,       /* a storage type the function does not accept (reshape of CSR) */
  KL_EIO,          /* a file could not be read or written */
  KL_EFORMAT,      /* a file or buffer is malformed */
  KL_EUNSUPPORTED, /* valid input the library does not handle (yet) */
  KL_ENODEV,       /* no usable device: "no CUDA device: <the runtime's reason>" */
  KL_EDEVICE       /* a device, driver or device-library call failed (its own message) */
} kl_status;

/* The message of the last failure on this thread ("" when none). */
const char *kl_errmsg(void);
/* Records a printf-style message and returns code (so `return kl_seterr(...)` works). */
kl_status kl_seterr(kl_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void kl_clearerr(void);
/* Short name of a status code ("KL_ESHAPE"). */
const char *kl_status_name(kl_status s);

/* Return with a message when cond fails: KL_CHECK(n > 0, KL_EINVAL, "zeros: n=%lld", n). */
#define KL_CHECK(cond, code, ...)                                                   \
  do {                                                                              \
    if (!(cond)) return kl_seterr((code), __VA_ARGS__);                             \
  } while (0)
/* Propagate a failing status. */
#define KL_TRY(expr)                                                                \
  do {                                                                              \
    kl_status kl_try_s_ = (expr);                                                   \
    if (kl_try_s_ != KL_OK) return kl_try_s_;                                       \
  } while (0)

/* ------------------------------------------------------------- allocator */

/* The one allocation choke point. On failure these return NULL and set KL_ENOMEM's
 * message; kl_free(NULL) is a no-op. Sizes are checked for overflow by kl_malloc_n. */
void *kl_malloc(size_t bytes);
void *kl_calloc(size_t count, size_t size);
void *kl_realloc(void *p, size_t bytes);
void *kl_malloc_n(size_t count, size_t size); /* count*size with overflow check */
void kl_free(void *p);
/* Faults in now the pages of a zeroed block p of bytes (a no-op below 8 MiB), so that
 * first touches do not happen later inside a hot loop (the kernel's page clearing of a
 * gigabyte-sized optimizer state would otherwise land in the first epochs' steps). The
 * contents stay zero. */
void kl_prefault_zeroed(void *p, size_t bytes);
/* Bytes the allocator holds from the system right now (every live block: tensors, plans,
 * optimizer states, pools' free blocks), for everyone in the process. The Lua binding
 * drives Lua's collector from it (tensor memory is invisible to Lua otherwise). */
size_t kl_alloc_live_bytes(void);
/* Test hook: make the k-th allocation from now fail (k >= 1); 0 disables. Returns the
 * number of allocations made since the last call (for allocation-failure sweeps). */
long kl_alloc_fail_at(long k);

/* --------------------------------------------------------------- tensors */

typedef enum kl_dtype { KL_FLOAT32 = 0, KL_FLOAT64 = 1, KL_INT64 = 2 } kl_dtype;
typedef enum kl_stype { KL_STYPE_DEFAULT = 0, KL_STYPE_CSR = 1, KL_STYPE_ROW_SPARSE = 2 } kl_stype;

/* Where a tensor's storage lives: 0 is the host (cpu(0)), so every CPU tensor, zero-filled
 * header and kl_meta is on the CPU without a word of CPU code changed; KL_DEVICE_CUDA(n)
 * is CUDA device n (kl/device.h: the device backend, transfers, the per-device registry). */
typedef int32_t kl_device;
#define KL_CPU ((kl_device)0)
#define KL_DEVICE_CUDA(n) ((kl_device)(1 + (n)))
#define KL_DEVICE_IS_CUDA(d) ((d) > 0)
#define KL_DEVICE_ORDINAL(d) ((d) > 0 ? (int)(d) - 1 : 0)

#define KL_MAX_NDIM 8
/* Largest element count of any tensor or buffer (2^48): shapes beyond it are refused. */
#define KL_MAX_NUMEL ((int64_t)1 << 48)

/* A reference-counted tensor. Fields are public for kernels; treat them as read-only
 * outside the backend. All indices are 0-based int64.
 *   dense:      data holds numel values, row-major (C order). nnz == numel.
 *   csr (2-d):  indptr[shape[0]+1] (indptr[0]=0, indptr[rows]=nnz, monotone),
 *               indices[nnz] column of each value (strictly increasing within a row),
 *               data[nnz].
 *   row_sparse: nnz stored rows; indices[nnz] their row numbers (strictly increasing),
 *               data[nnz * row_width] with row_width = product of shape[1..ndim-1].
 * cap_* are allocated capacities (buffers grow and are reused, never shrink). */
typedef struct kl_tensor {
  int refcount;        /* atomic (__atomic builtins): change it only by kl_tensor_retain/release */
  kl_dtype dtype;
  kl_stype stype;
  int ndim;
  int64_t shape[KL_MAX_NDIM];
  int64_t nnz;
  void *data;
  int64_t *indptr;
  int64_t *indices;
  int64_t cap_data;    /* elements allocated in data */
  int64_t cap_indices; /* elements allocated in indices */
  int borrowed;        /* 1: data and indices lie in base's buffers (a csr batch view);
                        * release leaves them and releases base instead */
  struct kl_tensor *base; /* the tensor whose storage a view borrows (one reference), or NULL */
  kl_device device;    /* KL_CPU, or the device whose memory data / indptr / indices are in
                        * (then host code must not read them: kl/device.h) */
} kl_tensor;

/* A tensor's description without storage (graph nodes, shape inference). */
typedef struct kl_meta {
  kl_dtype dtype;
  kl_stype stype;
  int ndim;
  int64_t shape[KL_MAX_NDIM];
  kl_device device;
} kl_meta;

size_t kl_dtype_size(kl_dtype d);
const char *kl_dtype_name(kl_dtype d);   /* "float32", "float64", "int64" */
const char *kl_stype_name(kl_stype s);   /* "default", "csr", "row_sparse" */
/* Parse names; return KL_EINVAL with a message naming fn on an unknown name. */
kl_status kl_dtype_parse(const char *fn, const char *name, kl_dtype *out);
kl_status kl_stype_parse(const char *fn, const char *name, kl_stype *out);

/* Product of shape[0..ndim-1] (1 for ndim 0). */
int64_t kl_shape_numel(int ndim, const int64_t *shape);
/* Product of shape[1..ndim-1]: the width of one row (1 for ndim <= 1). */
int64_t kl_row_width(const kl_tensor *t);
/* Logical element count (product of the shape), whatever the stype. */
int64_t kl_tensor_numel(const kl_tensor *t);
/* Validates a shape for fn: 0 <= ndim <= KL_MAX_NDIM, every dim >= 0, numel <= KL_MAX_NUMEL. */
kl_status kl_shape_check(const char *fn, int ndim, const int64_t *shape);
void kl_tensor_meta(const kl_tensor *t, kl_meta *out);

/* New zero-filled dense tensor; *out owned by the caller (refcount 1). */
kl_status kl_tensor_new_dense(kl_dtype dtype, int ndim, const int64_t *shape, kl_tensor **out);
/* New CSR rows x cols with room for nnz values: indptr zeroed, indices/data uninitialised,
 * t->nnz = nnz. The caller fills them (then kl_tensor_check_format if untrusted). */
kl_status kl_tensor_new_csr(kl_dtype dtype, int64_t rows, int64_t cols, int64_t nnz,
                            kl_tensor **out);
/* New row_sparse of the given shape (ndim >= 1) with nrows stored rows: indices and data
 * uninitialised, t->nnz = nrows. */
kl_status kl_tensor_new_rsp(kl_dtype dtype, int ndim, const int64_t *shape, int64_t nrows,
                            kl_tensor **out);
/* Grows (never shrinks) a csr's or row_sparse's buffers to hold nnz values / rows and sets
 * t->nnz = nnz. Contents up to the old nnz are kept. */
kl_status kl_tensor_reserve(kl_tensor *t, int64_t nnz);

kl_tensor *kl_tensor_retain(kl_tensor *t);  /* returns t; NULL-safe */
void kl_tensor_release(kl_tensor *t);       /* frees at refcount 0; NULL-safe */

/* Full O(nnz) validation of a sparse tensor's invariants (dense: always OK). fn names the
 * caller in the message; msg_base (0 or 1) is added to positions and index values in the
 * message so it reads in the caller's convention, e.g. with fn="csr_matrix", msg_base=1:
 * "csr_matrix: indices[5] = 7 out of range for 5 columns". */
kl_status kl_tensor_check_format(const kl_tensor *t, const char *fn, int msg_base);

/* Value at a 0-based multi-index (any stype; a missing sparse entry reads 0). An int64
 * value beyond 2^53 is rounded by the double: read it exactly through kl_tensor_locate. */
kl_status kl_tensor_get(const kl_tensor *t, const int64_t *idx, double *out);
/* The position in t's data of the element at a 0-based multi-index, or -1 where a sparse
 * tensor stores no value (the element is 0). Indices are checked as kl_tensor_get does. */
kl_status kl_tensor_locate(const kl_tensor *t, const int64_t *idx, int64_t *pos);
/* Element i (0-based) of a dense tensor's data, or the i-th stored value, as double. */
double kl_tensor_data_at(const kl_tensor *t, int64_t i);
void kl_tensor_data_set(kl_tensor *t, int64_t i, double v);

/* Conversions and copies; *out is new (refcount 1). */
kl_status kl_tensor_tostype(const kl_tensor *t, kl_stype stype, kl_tensor **out);
kl_status kl_tensor_copy(const kl_tensor *t, kl_tensor **out);
kl_status kl_tensor_astype(const kl_tensor *t, kl_dtype dtype, kl_tensor **out);
/* Copies src's values into dst, which keeps its stype, dtype and shape (shapes must match).
 * dst's sparse buffers are replaced/grown as needed. */
kl_status kl_tensor_copyto(const kl_tensor *src, kl_tensor *dst);
/* Rows [begin, end) of any stype, keeping it. CSR costs O(end-begin + nnz of the slice). */
kl_status kl_tensor_slice_rows(const kl_tensor *t, int64_t begin, int64_t end, kl_tensor **out);
/* Gathers rows idx[0..n-1] (any order, repeats allowed) into a new tensor of t's stype. */
kl_status kl_tensor_take_rows(const kl_tensor *t, const int64_t *idx, int64_t n, kl_tensor **out);
/* Dense only (KL_ESTYPE otherwise); numel must agree. New tensor (a copy). */
kl_status kl_tensor_reshape(const kl_tensor *t, int ndim, const int64_t *shape, kl_tensor **out);
/* Fill a dense tensor (or a sparse tensor's stored values) with v. */
void kl_tensor_fill(kl_tensor *t, double v);

/* CSR from COO triplets (0-based, any order); duplicates are summed. */
kl_status kl_csr_from_coo(kl_dtype dtype, int64_t rows, int64_t cols, int64_t n,
                          const int64_t *row, const int64_t *col, const double *val,
                          kl_tensor **out);

/* ------------------------------------------------------------------- RNG */

/* A seeded generator (xoshiro256** seeded by splitmix64): the same stream for a seed on
 * every run and platform. normal() uses the Box-Muller transform. */
typedef struct kl_rng {
  uint64_t s[4];
  int has_spare;
  double spare;
} kl_rng;

void kl_rng_seed(kl_rng *r, uint64_t seed);
uint64_t kl_rng_next(kl_rng *r);
double kl_rng_uniform(kl_rng *r);            /* [0, 1) with 53 random bits */
double kl_rng_normal(kl_rng *r);             /* standard normal */
uint64_t kl_rng_below(kl_rng *r, uint64_t n); /* uniform in [0, n), n > 0, unbiased */
/* The calling thread's generator, used when none is given (thread-local, seeded with 0). */
kl_rng *kl_rng_global(void);
/* Fill a dense tensor: normal(mean, stddev) or uniform [low, high). */
kl_status kl_tensor_fill_normal(kl_tensor *t, double mean, double stddev, kl_rng *r);
kl_status kl_tensor_fill_uniform(kl_tensor *t, double low, double high, kl_rng *r);
/* Counter-based rows (rowinit.c): row j of the dense (R, D) float t gets the values of
 * table row g = first + j * stride, entry (g, c) a function of (seed, g * D + c) only:
 * uniform in [a, b), or normal (mean a, stddev b). Any split of a table's rows over
 * processes makes the same table (Embedding{sharded = true}). */
kl_status kl_fill_rows_counter(kl_tensor *t, uint64_t seed, int64_t first, int64_t stride,
                               int normal, double a, double b);
/* Random sparse (or dense) tensor like mx.test_utils.rand_ndarray: each entry (csr) or row
 * (row_sparse) present with probability density, values uniform in [0, 1). */
kl_status kl_sparse_rand(kl_stype stype, kl_dtype dtype, int ndim, const int64_t *shape,
                         double density, kl_rng *r, kl_tensor **out);

/* ------------------------------------------------------------------- ops */

/* Ops are dispatched through one registry (registry.c) keyed by op and input stypes.
 * A combination without a sparse kernel runs the dense kernel on densified inputs, casts
 * the result to the inferred stype and warns once per op and stype combination (every
 * time with KERAS_LUA_STYPE_VERBOSE=1). */
typedef enum kl_op {
  KL_OP_DOT = 0,     /* 2 inputs; attrs transpose_a/b */
  KL_OP_SUM,         /* 1 input; attrs has_axis/axis/keepdims; dense result */
  KL_OP_MEAN,
  KL_OP_CONCAT,      /* n >= 1 inputs; attrs axis */
  KL_OP_ADD,         /* 2 inputs, numpy broadcasting for dense */
  KL_OP_SUB,
  KL_OP_MUL,
  KL_OP_DIV,
  KL_OP_ADD_SCALAR,  /* x + scalar */
  KL_OP_MUL_SCALAR,  /* x * scalar */
  KL_OP_DIV_SCALAR,  /* x / scalar */
  KL_OP_RSUB_SCALAR, /* scalar - x */
  KL_OP_RDIV_SCALAR, /* scalar / x */
  KL_OP_NEG,
  KL_OP_SQUARE,
  KL_OP_SQRT,
  KL_OP_ABS,
  KL_OP_RELU,
  KL_OP_EXP,
  KL_OP_LOG,
  KL_OP_SIGMOID,
  KL_OP_TANH,
  KL_OP_SOFTMAX,     /* over the last axis */
  KL_OP_TRANSPOSE,   /* reverses the axes; csr -> csr */
  KL_OP_RETAIN,      /* 2 inputs: row_sparse, int64 row indices; -> row_sparse */
  KL_OP_MINIMUM,     /* 2 inputs, numpy broadcasting (NaN wins); csr/csr -> csr, rsp/rsp ->
                        rsp (union of the stored entries), else dense */
  KL_OP_MAXIMUM,
  KL_OP_MINIMUM_SCALAR, /* min(x, scalar): keeps x's stype when scalar >= 0 (min(0, s) = 0) */
  KL_OP_MAXIMUM_SCALAR, /* max(x, scalar): keeps x's stype when scalar <= 0 */
  KL_OP_POW_SCALAR,  /* x ^ scalar (float only): keeps x's stype when scalar > 0 */
  KL_OP_ARGMAX,      /* attrs has_axis/axis (default: the last axis) -> int64, that axis
                        removed; holds 1-based indices (data, as the API's labels); the
                        first largest value wins, NaN counting as the largest (numpy) */
  KL_OP_ONE_HOT,     /* ids (...) float or int64, attrs ival = C -> (..., C) float32 dense:
                        id k in 1..C sets column k (k-1 in C terms), id 0 gives a zero row
                        (padding, as Embedding); other ids are an error */
  /* layer ops (layers/) */
  KL_OP_BIAS_ADD,    /* x (..., k) + b (k) -> dense */
  KL_OP_EMBEDDING,   /* ids (n, L) float or int64, weight (V, D) -> (n, L, D) dense;
                        weight grad row_sparse over the batch's unique ids. Token ids are
                        data in the API's convention: 0 = padding (zero vector, no grad),
                        id k in 1..V reads weight row k-1; other ids are an error. */
  KL_OP_MASKED_MEAN, /* x (n, L, D), ids (n, L) -> (n, D): the mean of x over the steps whose
                        id is not 0 (Embedding{mask_zero}); all steps padding -> 0 */
  KL_OP_GLOBAL_MAX_POOL, /* x (n, L, D)[, ids (n, L)] -> (n, D): the max over the steps (whose
                        id is not 0; all padding -> 0); ties share the gradient (TF) */
  KL_OP_REG_TERMS,   /* weight[, rows: csr or ids] -> (2,) (sum |w|, sum w^2) over its stored
                        rows, or only the rows the batch names (lazy regularizers) */
  KL_OP_LOSS_MSE,    /* y_true, y_pred -> 0-d mean loss (y_true (n) vs y_pred (n,1) ok) */
  KL_OP_LOSS_MAE,
  KL_OP_LOSS_BCE,    /* binary crossentropy on probabilities (clipped by 1e-7) */
  KL_OP_LOSS_CCE,    /* categorical crossentropy, one-hot y_true (n, C) */
  KL_OP_LOSS_SCCE,   /* sparse categorical: y_true holds class ids 1..C (data, as the
                        API's labels; id k is column k-1), shape (n) or (n,1) */
  KL_OP_LOSS_HINGE,  /* mean max(1 - t p, 0); y_true all in {0, 1} becomes 2 y - 1 (Keras) */
  KL_OP_LOSS_SQUARED_HINGE, /* mean max(1 - t p, 0)^2, labels as hinge */
  KL_OP_LOSS_POISSON, /* mean p - y log(p + 1e-7) */
  KL_OP_LOSS_HUBER,  /* mean 0.5 e^2 where |e| <= 1, |e| - 0.5 elsewhere (delta 1, Keras) */
  KL_OP_COUNT
} kl_op;

/* The most inputs one op node (concatenate) or one plan's feeds may have. Nothing is sized
 * by it on the stack; it only bounds what callers may ask for (a CTR model concatenates
 * one Input per feature field: tens to hundreds). */
#define KL_MAX_OP_INPUTS 4096

typedef struct kl_attrs {
  int transpose_a, transpose_b; /* dot */
  int has_axis;                 /* sum/mean: 0 = reduce everything (0-d result) */
  int axis;                     /* 0-based, already normalised (no negatives) */
  int keepdims;
  double scalar;                /* *_SCALAR ops */
  int64_t ival;                 /* op-specific integer (embedding: input_dim check) */
} kl_attrs;

/* A kernel: computes out from in[0..nin-1]; *out is new (refcount 1). */
typedef kl_status (*kl_kernel_fn)(kl_tensor *const *in, int nin, const kl_attrs *a,
                                  kl_tensor **out);
/* Shape, dtype and stype inference, with full argument checks (messages name the op). */
typedef kl_status (*kl_infer_fn)(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out);
/* Whether a sparse kernel handles these inputs (ggml's supports_op). */
typedef int (*kl_supports_fn)(kl_tensor *const *in, int nin, const kl_attrs *a);
/* Gradient of op's output w.r.t. input i: given the inputs, the output and gout (the
 * gradient of the loss w.r.t. out, same shape as out, dense unless stated), writes a new
 * *gin shaped like in[i]. want is the stype the caller asks for (KL_STYPE_ROW_SPARSE for a
 * row_sparse weight gradient, as dot(csr^T, gout) gives naturally; KL_STYPE_DEFAULT
 * otherwise). Ops with no gradient for an input (ids, labels) return KL_EUNSUPPORTED. */
typedef kl_status (*kl_backward_fn)(kl_tensor *const *in, int nin, const kl_attrs *a,
                                    const kl_tensor *out, const kl_tensor *gout, int i,
                                    kl_stype want, kl_tensor **gin);

const char *kl_op_name(kl_op op); /* "dot", "sum", ... */
/* Shape/stype inference for op (what kl_op_run will produce). */
kl_status kl_op_infer(kl_op op, const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out);
/* Runs op: infer (validates), then the first registered sparse kernel whose supports()
 * accepts the inputs, else the dense fallback. *out new, refcount 1. */
kl_status kl_op_run(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a,
                    kl_tensor **out);
/* Backward of op for input i (see kl_backward_fn); KL_EUNSUPPORTED if none. */
kl_status kl_op_backward(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a,
                         const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                         kl_tensor **gin);
/* Count of dense fallbacks taken so far (tests use it to prove a sparse kernel ran). */
long kl_fallback_count(void);

/* Convenience wrappers around kl_op_run. */
kl_status kl_dot(const kl_tensor *a, const kl_tensor *b, int transpose_a, int transpose_b,
                 kl_tensor **out);
kl_status kl_retain(const kl_tensor *rsp, const int64_t *rows, int64_t n, kl_tensor **out);

/* ------------------------------------------------------------- threading */

/* Threads used by the OpenMP kernels (OMP_NUM_THREADS is honoured). */
int kl_num_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* KL_KL_H */
