/* kl_cuda_layers.h: the launchers of the layer ops' kernels (gpu/k_layers.cu, k_loss.cu,
 * k_embedding.cu's extras): bias_add, the Embedding's dense gradient and fused mean,
 * masked_mean, global_max_pool, reg_terms and the nine losses, forward and backward.
 *
 * kl_cuda.h's conventions: device pointers, a stream (NULL: the default one), KL_OK once
 * queued, KL_EDEVICE when a launch fails; nothing traps on data (a bad label or id sets the
 * smallest bad position in a device int64 the caller reads after the launch, and the
 * *_error functions give the CPU's message for it). Each kernel computes what its CPU twin
 * (layers/ files) computes, by the same operations in the same order: the same bits, except
 * log (the crossentropies' and poisson's forward), whose CUDA version is not glibc's.
 * Reductions to one value that the CPU sums in order (a loss, reg_terms) are summed by one
 * thread in that order; the terms are computed in parallel first. "Other" inputs (ids,
 * labels, gradients, sample weights) may be of any dtype, read as double as the CPU's
 * kl_lu_read does; the main tensor's dtype dt is float32 or float64. */
#ifndef KL_CUDA_LAYERS_H
#define KL_CUDA_LAYERS_H
#include "kl_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ small helpers */

/* dst[i] = src[i] converted to dt (float32 / float64) for i < n: a copy when the dtypes
 * agree, else through double (kl_tensor_astype's values). */
kl_status kl_cuda_cast(kl_dtype sdt, const void *src, kl_dtype dt, void *dst, int64_t n,
                       kl_cuda_stream s);
/* out[i] = i for i < n. */
kl_status kl_cuda_iota(int64_t *out, int64_t n, kl_cuda_stream s);
/* out (dense, rows of D values, zeroed by the caller): out row rows[u] = vals row u for
 * u < *nu (device), nu at most bound. The dense form of a row_sparse result. */
kl_status kl_cuda_rows_scatter(kl_dtype dt, const int64_t *rows, const void *vals,
                               const int64_t *nu, int64_t bound, int64_t D, void *out,
                               kl_cuda_stream s);

/* ------------------------------------------------------------------ bias_add */

/* y[r, j] = x[r, j] + b[j] over x as (rows, k). */
kl_status kl_cuda_bias_add(kl_dtype dt, const void *x, const void *b, int64_t rows, int64_t k,
                           void *y, kl_cuda_stream s);
/* db[j] = the sum over r of g[r, j] (g of dtype gdt), in double from +0 in row order, then
 * rounded to dt: layers/bias_add.c's bias_grad. */
kl_status kl_cuda_bias_grad(kl_dtype gdt, const void *g, int64_t rows, int64_t k, kl_dtype dt,
                            void *db, kl_cuda_stream s);

/* ------------------------------------------------------------------ Embedding extras */

/* The plan's Embedding -> mean fusion (layers/embedding.c kl_embedding_mean): y[b, :] = the
 * sum in double from +0 over l of weight row ids[b, l] - 1 (padding adds nothing), times
 * 1/L (masked: 1 / the count of ids not 0, or 0 without any), rounded once. ids (n, L),
 * weight dense (V, D); bad ids flagged in *bad as kl_cuda_embedding_forward does. */
kl_status kl_cuda_embedding_mean(kl_dtype ids_dt, const void *ids, int64_t n, int64_t L,
                                 kl_dtype dt, const void *w, int64_t V, int64_t D, int masked,
                                 void *y, int64_t *bad, kl_cuda_stream s);
/* Its backward's first half: gs[b, :] = (dt)(g[b, :] * scale_b) (the product in double),
 * scale_b as the forward's; then kl_cuda_embedding_bag_backward sums gs's rows. */
kl_status kl_cuda_embedding_mean_scale(kl_dtype ids_dt, const void *ids, int64_t n, int64_t L,
                                       kl_dtype dt, const void *g, int64_t D, int masked,
                                       void *gs, kl_cuda_stream s);
/* kl_cuda_embedding_backward where position p's gradient row is g's row p / bag (bag >= 1;
 * bag 1 is kl_cuda_embedding_backward itself): g is (npos / bag, D). The same scratch. */
kl_status kl_cuda_embedding_bag_backward(kl_dtype ids_dt, const void *ids, int64_t npos,
                                         int64_t bag, kl_dtype dt, const void *g, int64_t V,
                                         int64_t D, void *scratch, int64_t *rows, void *vals,
                                         int64_t *nu, int64_t *bad, kl_cuda_stream s);

/* ------------------------------------------------------------------ pooling */

/* masked_mean: x (n, L, D) of dt, ids (n, L) of ids_dt -> y (n, D): the sum in double from
 * +0 over the steps whose id is not 0, times 1 / their count (0 without any), rounded once. */
kl_status kl_cuda_masked_mean(kl_dtype dt, const void *x, kl_dtype ids_dt, const void *ids,
                              int64_t n, int64_t L, int64_t D, void *y, kl_cuda_stream s);
/* Its backward: gx[b, l, :] = (dt)(g[b, :] * (1 / count)) at kept steps, 0 elsewhere (every
 * element written). */
kl_status kl_cuda_masked_mean_backward(kl_dtype dt, kl_dtype ids_dt, const void *ids,
                                       kl_dtype gdt, const void *g, int64_t n, int64_t L,
                                       int64_t D, void *gx, kl_cuda_stream s);
/* global_max_pool: y[b, j] = the max over the kept steps (ids NULL: all) of x[b, :, j], NaN
 * winning (the first NaN), 0 with no kept step (-inf with no mask and L = 0). */
kl_status kl_cuda_global_max_pool(kl_dtype dt, const void *x, kl_dtype ids_dt,
                                  const void *ids, int64_t n, int64_t L, int64_t D, void *y,
                                  kl_cuda_stream s);
/* Its backward (TensorFlow's): g[b, j] shared by the kept steps equal to the max,
 * (dt)(1 / ties) * (dt)g in dt; 0 elsewhere (every element written). */
kl_status kl_cuda_global_max_pool_backward(kl_dtype dt, const void *x, kl_dtype ids_dt,
                                           const void *ids, kl_dtype gdt, const void *g,
                                           int64_t n, int64_t L, int64_t D, void *gx,
                                           kl_cuda_stream s);

/* ------------------------------------------------------------------ reg_terms */

/* Bytes of scratch kl_cuda_reg_rows needs for m ids / csr entries. */
size_t kl_cuda_reg_rows_scratch(int64_t m);
/* The rows a batch names, as layers/regularizer.c's reg_collect: from csr column indices
 * (cols non-NULL: m stored entries) or from m dense ids of ids_dt (0 padding, k in 1..R row
 * k - 1); unique, ascending, only those the weight stores (w_idx non-NULL: a row_sparse
 * weight storing w_nnz sorted rows; NULL: all R). rows[u] = the row, pos[u] = its storage
 * position, *nrows (device) their count; rows and pos have room for m. An id that is not
 * an integer in [0, R] sets *bad (device) to the smallest such position (m when none). */
kl_status kl_cuda_reg_rows(const int64_t *cols, kl_dtype ids_dt, const void *ids, int64_t m,
                           int64_t R, const int64_t *w_idx, int64_t w_nnz, void *scratch,
                           int64_t *rows, int64_t *pos, int64_t *nrows, int64_t *bad,
                           kl_cuda_stream s);
/* The message of reg_terms' check for the bad id at position p (value v). KL_EINDEX. */
kl_status kl_cuda_reg_id_error(double v, int64_t p, int64_t R);
/* out[0] = sum |w|, out[1] = sum w^2 (dt) over rw-wide storage rows pos[0 .. count) of w,
 * in double, rows in order, by one thread (the CPU's order); count = *nrows_dev, or n when
 * nrows_dev is NULL; pos NULL: rows 0 .. count. */
kl_status kl_cuda_reg_terms(kl_dtype dt, const void *w, int64_t rw, const int64_t *pos,
                            const int64_t *nrows_dev, int64_t n, void *out, kl_cuda_stream s);
/* The gradient gout[0] sign(w) + 2 gout[1] w (in double, rounded once) of the same rows:
 * sparse: row u of g is storage row pos[u]'s, and g_idx[u] = rows[u]; dense (g zeroed by
 * the caller): logical row rows[u] of g. rows / pos NULL: u itself. */
kl_status kl_cuda_reg_terms_backward(kl_dtype dt, const void *w, int64_t rw, const int64_t *rows,
                                     const int64_t *pos, const int64_t *nrows_dev, int64_t n,
                                     kl_dtype gdt, const void *gout, int sparse, void *g,
                                     int64_t *g_idx, kl_cuda_stream s);

/* ------------------------------------------------------------------ losses */

/* layers/losses.c's loss kinds, in its order. */
typedef enum kl_cuda_loss {
  KL_CUDA_LOSS_MSE = 0,
  KL_CUDA_LOSS_MAE,
  KL_CUDA_LOSS_BCE,
  KL_CUDA_LOSS_CCE,
  KL_CUDA_LOSS_SCCE,
  KL_CUDA_LOSS_HINGE,
  KL_CUDA_LOSS_SQHINGE,
  KL_CUDA_LOSS_POISSON,
  KL_CUDA_LOSS_HUBER,
  KL_CUDA_LOSS_COUNT
} kl_cuda_loss;

/* The loss kind of a registry op (KL_OP_LOSS_*), or -1. */
int kl_cuda_loss_of_op(kl_op op);
/* The loss's name in messages ("binary_crossentropy"). */
const char *kl_cuda_loss_name(kl_cuda_loss k);

/* One loss call's sizes: y_pred has n > 0 values in n0 rows (its first axis) of C-wide
 * classes (its last axis); y_true has n values (n / C for scce); weights: n0 of them, or
 * none (w NULL). */
typedef struct kl_cuda_loss_args {
  kl_cuda_loss kind;
  kl_dtype tdt, pdt, wdt; /* y_true, y_pred (the result's dtype), sample weights */
  const void *yt, *yp, *w;
  int64_t n, n0, C;
} kl_cuda_loss_args;

/* Bytes of device scratch the forward / backward of a needs. */
size_t kl_cuda_loss_scratch(const kl_cuda_loss_args *a);
/* The data checks (losses.c labels_check, weights_check): bad[0] = the first y_true
 * position whose label the loss refuses (scce: not an integer in 1..C; bce: not in [0, 1];
 * the others: none), bad[1] = the first sample weight not finite and >= 0; each its count
 * (no bad one) otherwise. bad: 2 device int64. */
kl_status kl_cuda_loss_check(const kl_cuda_loss_args *a, int64_t *bad, kl_cuda_stream s);
/* The CPU's messages for a bad label v at y_true position p, whose rows are lw values wide
 * (y_true's numel / its first axis, or 1), and for a bad weight v at row r (0-based). */
kl_status kl_cuda_loss_label_error(kl_cuda_loss k, double v, int64_t p, int64_t lw, int64_t C);
kl_status kl_cuda_loss_weight_error(kl_cuda_loss k, double v, int64_t r);
/* out (0-d, pdt) = the mean loss: losses.c's loss_value (or loss_value_weighted), each
 * term by the same operations, the sum by one thread in the CPU's order. */
kl_status kl_cuda_loss_forward(const kl_cuda_loss_args *a, void *scratch, void *out,
                               kl_cuda_stream s);
/* g (y_pred's shape, pdt) = d(mean loss)/d(y_pred) * gout[0] (gout: one value of gdt):
 * loss_grad (loss_grad_weighted), every element by the CPU's operations. */
kl_status kl_cuda_loss_backward(const kl_cuda_loss_args *a, kl_dtype gdt, const void *gout,
                                void *scratch, void *g, kl_cuda_stream s);

#ifdef __cplusplus
}
#endif
#endif /* KL_CUDA_LAYERS_H */
