/* kl_cuda.h: the C interface of the CUDA kernels in gpu/ (launchers taking device pointers).
 *
 * Every launcher takes device pointers, a stream (NULL: the default stream) and returns a
 * kl_status: KL_OK once the kernels are queued (not finished: read a result after a
 * synchronisation), KL_EDEVICE / KL_ENODEV when a launch fails, with a message set through
 * kl_cuda_seterr. Nothing traps on bad data: a kernel that finds an id out of range records
 * the first bad position in a device scalar that the caller reads after the launch.
 * Index conventions are the backend's: 0-based int64 rows; token ids as the API's data
 * (0 = padding, k in 1..V reads weight row k - 1).
 *
 * The same sources build for the GPU (nvcc, into keras/cuda.so) and for the host (g++ with
 * kl_cuda_emu.h, into the host-emulated test library): in the emulated build a "device
 * pointer" is a host pointer and a launch runs to completion before it returns. */
#ifndef KL_CUDA_H
#define KL_CUDA_H
#include <stddef.h>
#include <stdint.h>

#include "kl/kl.h"
#include "kl/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *kl_cuda_stream; /* a cudaStream_t */

/* Where the gpu code records its error messages: the core's kl_seterr (the module sets it
 * from core._capi; the tests to kl_seterr). The default keeps the last message in a
 * thread-local buffer (kl_cuda_errmsg). */
typedef kl_status (*kl_cuda_seterr_fn)(kl_status code, const char *fmt, ...);
extern kl_cuda_seterr_fn kl_cuda_seterr;
/* The default's last message ("" when none). */
const char *kl_cuda_errmsg(void);
/* "float32", "float64", "int64" (the gpu code links no backend: kl_dtype_name's twin). */
const char *kl_cuda_dtype_name(kl_dtype dt);

/* ------------------------------------------------------------------ optimizer rows */

/* One update's hyperparameters, resolved on the host exactly as backend/src/optim_update.c
 * does (Keras 2's decay, Adam's lr_t in double), then passed by value to the kernels. */
typedef struct kl_cuda_opt_hyper {
  int kind; /* kl_opt_kind */
  int has_mom, nesterov;
  double lr, mom, wd, clip, rescale, b1, b2, eps, lr_t, rho, lamda1, beta, l2, lr_power;
} kl_cuda_opt_hyper;

/* h for optimizer o at the 1-based step t (o already checked: kl_optimizer_check). */
void kl_cuda_opt_resolve(const kl_optimizer *o, int64_t t, kl_cuda_opt_hyper *h);

/* The rule of h on n gradient rows of rw elements, float32 or float64 (dt): gradient row i
 * (g + i * rw) updates weight row gi[i] of w and of the states s0, s1 (NULL when the rule
 * has none). gi NULL: row i (a dense gradient over every row). The lazy update of a
 * row_sparse gradient (sorted unique gi) over a weight that stores every row; each element
 * is computed by the same float operations, in the same order, as the CPU's opt_row. */
kl_status kl_cuda_opt_rows(const kl_cuda_opt_hyper *h, kl_dtype dt, void *w, const void *g,
                           void *s0, void *s1, int64_t rw, const int64_t *gi, int64_t n,
                           kl_cuda_stream s);
/* The non-lazy rule over every one of rows weight rows: row r takes gradient row gpos[r]
 * (-1: a zero gradient, as the CPU's rows absent from a row_sparse gradient). */
kl_status kl_cuda_opt_all_rows(const kl_cuda_opt_hyper *h, kl_dtype dt, void *w,
                               const void *g, void *s0, void *s1, int64_t rw,
                               const int64_t *gpos, int64_t rows, kl_cuda_stream s);
/* gpos[r] = i where gi[i] == r, else -1, for r < rows (gi: n distinct rows in [0, rows)). */
kl_status kl_cuda_row_positions(const int64_t *gi, int64_t n, int64_t rows, int64_t *gpos,
                                kl_cuda_stream s);

/* ------------------------------------------------------------------ scan and sort */

/* Bytes of scratch kl_cuda_scan_i64 needs for n items. */
size_t kl_cuda_scan_scratch(int64_t n);
/* out[i] = in[0] + ... + in[i-1] for i <= n (out has n + 1 slots; out[n] is the total);
 * in and out may not overlap. */
kl_status kl_cuda_scan_i64(const int64_t *in, int64_t *out, int64_t n, void *scratch,
                           kl_cuda_stream s);
/* Bytes of scratch kl_cuda_sort_pairs needs for n pairs. */
size_t kl_cuda_sort_scratch(int64_t n);
/* Stable sort of (key[i], val[i]) by key, keys in [0, maxkey]: an LSD radix sort, 8 bits a
 * pass, as the CPU's kl_lu_radix_sort (equal keys keep their order). */
kl_status kl_cuda_sort_pairs(int64_t *key, int64_t *val, int64_t n, int64_t maxkey,
                             void *scratch, kl_cuda_stream s);

/* ------------------------------------------------------------------ Embedding */

/* out[p, :] = weight row ids[p] - 1 for p < npos, zeros for padding (0). ids: int64, float32
 * or float64 (an integral value); w: (V, D) float32 or float64 (dt), all rows stored, or,
 * with w_idx non-NULL, a row_sparse weight storing the w_nnz sorted rows w_idx (an absent
 * row reads as zeros). An id out of [0, V] or not an integer leaves its row zero and sets
 * *bad (device int64) to the smallest such position; *bad is npos when all were good. */
kl_status kl_cuda_embedding_forward(kl_dtype ids_dt, const void *ids, int64_t npos,
                                    kl_dtype dt, const void *w, int64_t V, int64_t D,
                                    const int64_t *w_idx, int64_t w_nnz, void *out,
                                    int64_t *bad, kl_cuda_stream s);
/* The message of the CPU's check for the bad id at position p (0-based, flat) whose value
 * (of dtype ids_dt) is at *id (host memory): "Embedding: id 7 out of range [0, 5] at
 * position (2, 1)". L: the ids' second dimension, 0 for 1-d ids. Returns KL_EINDEX. */
kl_status kl_cuda_embedding_id_error(kl_dtype ids_dt, const void *id, int64_t p, int64_t L,
                                     int64_t V);

/* Bytes of scratch kl_cuda_embedding_backward needs. */
size_t kl_cuda_embedding_backward_scratch(int64_t npos);
/* The weight gradient as row_sparse: g is (npos, D) of dtype dt (Embedding's output
 * gradient); the unique non-padding ids, sorted, go to rows[0 .. nu) as 0-based weight rows
 * and their summed gradient rows to vals[0 .. nu) (rows and vals have room for npos rows),
 * nu to *nu (device int64). Each row is +0 plus the gradient rows of its positions in
 * position order: the CPU's bits. A sort by row then a segmented sum, no float atomics. Bad
 * ids are reported in *bad as by the forward, and left out of the sum. */
kl_status kl_cuda_embedding_backward(kl_dtype ids_dt, const void *ids, int64_t npos,
                                     kl_dtype dt, const void *g, int64_t V, int64_t D,
                                     void *scratch, int64_t *rows, void *vals, int64_t *nu,
                                     int64_t *bad, kl_cuda_stream s);

#ifdef __cplusplus
}
#endif
#endif /* KL_CUDA_H */
