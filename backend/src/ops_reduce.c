/* ops_reduce.c: sum and mean: inference, dense/csr/row_sparse kernels (dense results), backward. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "ops_internal.h"
#include "tensor_internal.h"

/* Sums accumulate in double whatever the dtype (one rounding per output), in a fixed
 * order: results do not depend on the thread count. mean scales by 1/count, where count
 * is the logical number of elements reduced (zeros included); an empty mean is NaN. */

static kl_status reduce_infer_named(const char *fn, const kl_meta *in, int nin,
                                    const kl_attrs *a, kl_meta *out) {
  KL_CHECK(nin == 1, KL_EINVAL, "%s: expected 1 input, got %d", fn, nin);
  KL_CHECK(kl_is_float(in->dtype), KL_EDTYPE, "%s: x has dtype %s, expected float32 or float64",
           fn, kl_dtype_name(in->dtype));
  out->dtype = in->dtype;
  out->stype = KL_STYPE_DEFAULT;
  if (!a->has_axis) {
    out->ndim = a->keepdims ? in->ndim : 0;
    for (int d = 0; d < out->ndim; d++) out->shape[d] = 1;
    return KL_OK;
  }
  KL_CHECK(a->axis >= 0 && a->axis < in->ndim, KL_EINVAL,
           "%s: axis %d out of range for a %d-d tensor", fn, a->axis, in->ndim);
  out->ndim = 0;
  for (int d = 0; d < in->ndim; d++) {
    if (d != a->axis) out->shape[out->ndim++] = in->shape[d];
    else if (a->keepdims) out->shape[out->ndim++] = 1;
  }
  return KL_OK;
}

static kl_status sum_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  return reduce_infer_named("sum", in, nin, a, out);
}
static kl_status mean_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  return reduce_infer_named("mean", in, nin, a, out);
}

/* The reduction as (outer, n, inner) over x's logical shape, and the scale of the result. */
typedef struct red_view {
  int64_t outer, n, inner;
  double scale;
} red_view;

static red_view view_of(const kl_tensor *x, const kl_attrs *a, int mean) {
  red_view v;
  if (!a->has_axis) {
    v.outer = 1;
    v.n = kl_tensor_numel(x);
    v.inner = 1;
  } else {
    v.outer = kl_shape_numel(a->axis, x->shape);
    v.n = x->shape[a->axis];
    v.inner = kl_shape_numel(x->ndim - a->axis - 1, x->shape + a->axis + 1);
  }
  v.scale = mean ? 1.0 / (double)v.n : 1.0;
  return v;
}

/* Creates the dense result after inference; *v gets the reduction view. */
static kl_status new_result(kl_tensor *const *in, int nin, const kl_attrs *a, int mean,
                            red_view *v, kl_tensor **out) {
  kl_meta m, om = {0};
  kl_tensor_meta(in[0], &m);
  KL_TRY(reduce_infer_named(mean ? "mean" : "sum", &m, nin, a, &om));
  *v = view_of(in[0], a, mean);
  return kl_tensor_new_dense(om.dtype, om.ndim, om.shape, out);
}

/* The column sums below are built for AVX2 and for the baseline on x86-64 Linux with GCC,
 * the one to run chosen at load (ifunc), as the optimizer's row loops: each sum the same
 * correctly rounded adds in the same order at any vector width, hence the same bits. */
#ifndef KL_RED_CLONES
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define KL_RED_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KL_RED_CLONES
#endif
#endif
typedef double red_v4d __attribute__((vector_size(32)));
typedef float red_v4f __attribute__((vector_size(16)));
typedef float red_v4f_u __attribute__((vector_size(16), aligned(4), may_alias));
typedef double red_v4d_u __attribute__((vector_size(32), aligned(8), may_alias));

/* y[i] = (T)(scale * sum over k < n, in k order from +0 in double, of p[k*inner + i]) for i
 * in [i0, i1): columns in register tiles of NV vectors of 4 doubles (32, 16, 8, 4 wide),
 * then one at a time; each column's sum is the same whatever the tile. */
#define KL_RED_TILE(T, S, VIN, VINU, NV)                                                     \
  static inline __attribute__((always_inline)) void red_tile_##S##_##NV(                     \
      const T *restrict p, int64_t n, int64_t inner, int64_t i, double scale,              \
      T *restrict y) {                                                                      \
    red_v4d acc[NV];                                                                        \
    for (int q = 0; q < NV; q++) acc[q] = (red_v4d){0};                                     \
    for (int64_t k = 0; k < n; k++)                                                         \
      for (int q = 0; q < NV; q++)                                                          \
        acc[q] += __builtin_convertvector(*(const VINU *)(p + k * inner + i + 4 * q), red_v4d); \
    for (int q = 0; q < NV; q++)                                                            \
      *(VINU *)(y + i + 4 * q) = __builtin_convertvector(acc[q] * scale, VIN);              \
  }
#define KL_RED_COLS(T, S, VIN, VINU)                                                         \
  KL_RED_TILE(T, S, VIN, VINU, 8)                                                            \
  KL_RED_TILE(T, S, VIN, VINU, 4)                                                            \
  KL_RED_TILE(T, S, VIN, VINU, 2)                                                            \
  KL_RED_TILE(T, S, VIN, VINU, 1)                                                            \
  KL_RED_CLONES static void red_cols_##S(const T *restrict p, int64_t n, int64_t inner,     \
                                         int64_t i0, int64_t i1, double scale,              \
                                         T *restrict y) {                                   \
    int64_t i = i0;                                                                         \
    for (; i + 32 <= i1; i += 32) red_tile_##S##_8(p, n, inner, i, scale, y);               \
    if (i + 16 <= i1) {                                                                     \
      red_tile_##S##_4(p, n, inner, i, scale, y);                                           \
      i += 16;                                                                              \
    }                                                                                       \
    if (i + 8 <= i1) {                                                                      \
      red_tile_##S##_2(p, n, inner, i, scale, y);                                           \
      i += 8;                                                                               \
    }                                                                                       \
    if (i + 4 <= i1) {                                                                      \
      red_tile_##S##_1(p, n, inner, i, scale, y);                                           \
      i += 4;                                                                               \
    }                                                                                       \
    for (; i < i1; i++) {                                                                   \
      double s = 0;                                                                         \
      for (int64_t k = 0; k < n; k++) s += p[k * inner + i];                                \
      y[i] = (T)(s * scale);                                                                \
    }                                                                                       \
  }
KL_RED_COLS(float, f32, red_v4f, red_v4f_u)
KL_RED_COLS(double, f64, red_v4d, red_v4d_u)

#define KL_RED_TILE_MAXB ((size_t)1 << 20)

/* y[o*inner + i] = scale * sum_k x[(o*n + k)*inner + i], for a dense block. acc (inner
 * doubles; NULL unless a block is larger than KL_RED_TILE_MAXB) is scratch. Threads split i (large blocks) or o (inner == 1, or many
 * small blocks), never k. */
#define KL_DEF_REDUCE(T, S)                                                                \
  static void reduce_##S(const T *restrict x, int64_t outer, int64_t n, int64_t inner,      \
                         double scale, double *restrict acc, T *restrict y) {               \
    if (inner == 1) {                                                                       \
      KL_PRAGMA(omp parallel for schedule(static) if (outer * n > KL_PAR_MIN && outer > 1)) \
      for (int64_t o = 0; o < outer; o++) {                                                 \
        double s = 0;                                                                       \
        const T *restrict p = x + o * n;                                                    \
        for (int64_t k = 0; k < n; k++) s += p[k];                                          \
        y[o] = (T)(s * scale);                                                              \
      }                                                                                     \
      return;                                                                               \
    }                                                                                       \
    if (outer > 1 && n * inner <= KL_PAR_MIN && outer * n * inner > KL_PAR_MIN) {          \
      /* many small blocks (a mean over 20 ids of 256 x 20 x 64): threads split o; every   \
       * y element is still one thread's sum in k order */                                  \
      KL_PRAGMA(omp parallel for schedule(static))                                          \
      for (int64_t o = 0; o < outer; o++)                                                   \
        red_cols_##S(x + o * n * inner, n, inner, 0, inner, scale, y + o * inner);          \
      return;                                                                               \
    }                                                                                       \
    /* large blocks: threads split i; a block of at most KL_RED_TILE_MAXB bytes (it stays  \
     * in L2 while each tile walks its k rows) by register tiles, a larger one row by row   \
     * into acc (sequential reads) */                                                        \
    const int tiles = (size_t)(n * inner) * sizeof(T) <= KL_RED_TILE_MAXB;                  \
    for (int64_t o = 0; o < outer; o++) {                                                   \
      const T *restrict p = x + o * n * inner;                                              \
      KL_PRAGMA(omp parallel if (n * inner > KL_PAR_MIN)) {                                 \
        int64_t T_ = omp_get_num_threads(), t_ = omp_get_thread_num();                      \
        int64_t i0 = inner * t_ / T_, i1 = inner * (t_ + 1) / T_;                           \
        if (tiles) {                                                                        \
          red_cols_##S(p, n, inner, i0, i1, scale, y + o * inner);                          \
        } else {                                                                            \
          for (int64_t i = i0; i < i1; i++) acc[i] = 0;                                     \
          for (int64_t k = 0; k < n; k++)                                                   \
            for (int64_t i = i0; i < i1; i++) acc[i] += p[k * inner + i];                   \
          for (int64_t i = i0; i < i1; i++) y[o * inner + i] = (T)(acc[i] * scale);         \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
  }
KL_DEF_REDUCE(float, f32)
KL_DEF_REDUCE(double, f64)

static kl_status reduce_block(kl_dtype dt, const void *x, int64_t outer, int64_t n,
                              int64_t inner, double scale, void *y) {
  /* inner doubles, shared by the threads (each sums its own range of i), for the only path
   * that needs them: a block larger than KL_RED_TILE_MAXB summed row by row */
  double *acc = NULL;
  if (inner > 1 && (size_t)(n * inner) * kl_dtype_size(dt) > KL_RED_TILE_MAXB &&
      !(acc = kl_malloc_n((size_t)inner, sizeof *acc)))
    return KL_ENOMEM;
  if (dt == KL_FLOAT32) reduce_f32(x, outer, n, inner, scale, acc, y);
  else reduce_f64(x, outer, n, inner, scale, acc, y);
  kl_free(acc);
  return KL_OK;
}

static kl_status finish(kl_status st, kl_tensor *o, kl_tensor **out) {
  if (st != KL_OK) {
    kl_tensor_release(o);
    return st;
  }
  *out = o;
  return KL_OK;
}

static kl_status reduce_dense(kl_tensor *const *in, int nin, const kl_attrs *a, int mean,
                              kl_tensor **out) {
  red_view v;
  kl_tensor *o = NULL;
  KL_TRY(new_result(in, nin, a, mean, &v, &o));
  KL_CHECK(in[0]->stype == KL_STYPE_DEFAULT, KL_ESTYPE, "%s: the dense kernel needs a dense x",
           mean ? "mean" : "sum");
  return finish(reduce_block(o->dtype, in[0]->data, v.outer, v.n, v.inner, v.scale, o->data), o,
                out);
}

/* Writes acc[0..n) * scale into the dense result's data. */
static void store(kl_tensor *o, const double *acc, int64_t n, double scale) {
  if (o->dtype == KL_FLOAT32)
    for (int64_t i = 0; i < n; i++) ((float *)o->data)[i] = (float)(acc[i] * scale);
  else
    for (int64_t i = 0; i < n; i++) ((double *)o->data)[i] = acc[i] * scale;
}

static double value_at(const void *data, kl_dtype dt, int64_t i) {
  return dt == KL_FLOAT32 ? (double)((const float *)data)[i] : ((const double *)data)[i];
}

/* csr (R x C): everything (O(nnz)), axis 0 (column sums: O(nnz + C)), axis 1 (row sums,
 * OpenMP static over rows). */
static kl_status reduce_csr(kl_tensor *const *in, int nin, const kl_attrs *a, int mean,
                            kl_tensor **out) {
  red_view v;
  kl_tensor *o = NULL;
  KL_TRY(new_result(in, nin, a, mean, &v, &o));
  const kl_tensor *x = in[0];
  const kl_dtype dt = x->dtype;
  const int64_t R = x->shape[0], C = x->shape[1], nnz = x->nnz;
  const int64_t *ip = x->indptr, *ix = x->indices;
  const void *xv = x->data;
  int64_t nout = kl_tensor_numel(o);
  double *acc = kl_calloc((size_t)(nout > 0 ? nout : 1), sizeof *acc);
  if (!acc) return finish(KL_ENOMEM, o, out);
  if (!a->has_axis) {
    for (int64_t j = 0; j < nnz; j++) acc[0] += value_at(xv, dt, j);
  } else if (a->axis == 0) {
    for (int64_t j = 0; j < nnz; j++) acc[ix[j]] += value_at(xv, dt, j);
  } else {
    KL_PRAGMA(omp parallel for schedule(static) if (nnz + R > KL_PAR_MIN))
    for (int64_t r = 0; r < R; r++) {
      double s = 0;
      for (int64_t j = ip[r]; j < ip[r + 1]; j++) s += value_at(xv, dt, j);
      acc[r] = s;
    }
  }
  (void)C;
  store(o, acc, nout, v.scale);
  kl_free(acc);
  return finish(KL_OK, o, out);
}

/* row_sparse (N-d, stored rows of width W): everything, axis 0 (sum of the stored rows),
 * or axis k >= 1 (each stored row reduced in place; absent rows give 0). O(nnz x W). */
static kl_status reduce_rsp(kl_tensor *const *in, int nin, const kl_attrs *a, int mean,
                            kl_tensor **out) {
  red_view v;
  kl_tensor *o = NULL;
  KL_TRY(new_result(in, nin, a, mean, &v, &o));
  const kl_tensor *x = in[0];
  const kl_dtype dt = x->dtype;
  const size_t es = kl_dtype_size(dt);
  const int64_t W = kl_row_width(x), nr = x->nnz;
  int64_t nout = kl_tensor_numel(o);
  kl_status st = KL_OK;
  if (v.n == 0) { /* nothing reduced: sum 0, mean NaN */
    kl_tensor_fill(o, mean ? NAN : 0.0);
    return finish(KL_OK, o, out);
  }
  if (!a->has_axis) {
    double s = 0;
    for (int64_t i = 0; i < nr * W; i++) s += value_at(x->data, dt, i);
    store(o, &s, 1, v.scale);
  } else if (a->axis == 0) {
    /* the stored rows as a dense (nr, W) block, reduced over rows */
    st = reduce_block(dt, x->data, 1, nr, W, v.scale, o->data);
  } else {
    /* a stored row is a dense block of shape shape[1..]: reduce it along axis-1 */
    const int64_t n = x->shape[a->axis], Wo = W / n;
    const int64_t inner = kl_shape_numel(x->ndim - a->axis - 1, x->shape + a->axis + 1);
    const int64_t outer = Wo / (inner ? inner : 1);
    const int64_t *ri = x->indices;
    const char *xd = x->data;
    char *yd = o->data;
    if (inner == 1) {
      /* one call per stored row; rows are independent, split them across threads */
      KL_PRAGMA(omp parallel for schedule(static) if (nr * W > KL_PAR_MIN))
      for (int64_t r = 0; r < nr; r++)
        reduce_block(dt, xd + (size_t)(r * W) * es, outer, n, 1, v.scale,
                     yd + (size_t)(ri[r] * Wo) * es);
    } else {
      for (int64_t r = 0; r < nr && st == KL_OK; r++)
        st = reduce_block(dt, xd + (size_t)(r * W) * es, outer, n, inner, v.scale,
                          yd + (size_t)(ri[r] * Wo) * es);
    }
  }
  (void)nout;
  return finish(st, o, out);
}

static kl_status sum_dense(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_dense(in, nin, a, 0, out);
}
static kl_status mean_dense(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_dense(in, nin, a, 1, out);
}
static kl_status sum_csr(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_csr(in, nin, a, 0, out);
}
static kl_status mean_csr(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_csr(in, nin, a, 1, out);
}
static kl_status sum_rsp(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_rsp(in, nin, a, 0, out);
}
static kl_status mean_rsp(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  return reduce_rsp(in, nin, a, 1, out);
}

static int sup_csr(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 1 && in[0]->stype == KL_STYPE_CSR && in[0]->ndim == 2;
}
static int sup_rsp(kl_tensor *const *in, int nin, const kl_attrs *a) {
  return nin == 1 && in[0]->stype == KL_STYPE_ROW_SPARSE && in[0]->ndim >= 1;
}

/* d out / d x: gout broadcast back over the reduced axis (times 1/count for mean); a dense
 * tensor shaped like x (the registry casts it to the stype asked for). */
static kl_status reduce_backward(kl_tensor *const *in, int nin, const kl_attrs *a, int mean,
                                 const kl_tensor *gout, kl_tensor **gin) {
  const char *fn = mean ? "mean" : "sum";
  kl_meta m, om = {0};
  kl_tensor_meta(in[0], &m);
  KL_TRY(reduce_infer_named(fn, &m, nin, a, &om));
  red_view v = view_of(in[0], a, mean);
  KL_CHECK(kl_tensor_numel(gout) == v.outer * v.inner && gout->dtype == om.dtype, KL_ESHAPE,
           "%s: backward: gout has %lld %s elements, expected %lld %s", fn,
           (long long)kl_tensor_numel(gout), kl_dtype_name(gout->dtype),
           (long long)(v.outer * v.inner), kl_dtype_name(om.dtype));
  kl_tensor *g = NULL, *r = NULL;
  kl_status st = KL_OK;
  if (gout->stype == KL_STYPE_DEFAULT) g = kl_tensor_retain((kl_tensor *)gout);
  else st = kl_tensor_tostype(gout, KL_STYPE_DEFAULT, &g);
  if (st == KL_OK) st = kl_tensor_new_dense_uninit(m.dtype, m.ndim, m.shape, &r); /* all set */
  if (st == KL_OK) {
    const int64_t outer = v.outer, n = v.n, inner = v.inner;
    const double scale = v.scale;
    KL_DISPATCH(m.dtype, T, {
      const T *restrict gp = g->data;
      T *restrict y = r->data;
      KL_PRAGMA(omp parallel for schedule(static) if (outer * n * inner > KL_PAR_MIN))
      for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < n; k++)
          for (int64_t i = 0; i < inner; i++)
            y[(o * n + k) * inner + i] = (T)(gp[o * inner + i] * scale);
    })
  }
  kl_tensor_release(g);
  return finish(st, r, gin);
}

static kl_status sum_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                              const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                              kl_tensor **gin) {
  return reduce_backward(in, nin, a, 0, gout, gin);
}
static kl_status mean_backward(kl_tensor *const *in, int nin, const kl_attrs *a,
                               const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                               kl_tensor **gin) {
  return reduce_backward(in, nin, a, 1, gout, gin);
}

static const kl_kernel_entry sum_kernels[] = {
    {"csr", sup_csr, sum_csr}, {"row_sparse", sup_rsp, sum_rsp}, {NULL, NULL, NULL}};
static const kl_kernel_entry mean_kernels[] = {
    {"csr", sup_csr, mean_csr}, {"row_sparse", sup_rsp, mean_rsp}, {NULL, NULL, NULL}};

const kl_op_def kl_opdef_sum = {"sum", 1, 1, sum_infer, sum_dense, sum_kernels, sum_backward};
const kl_op_def kl_opdef_mean = {"mean", 1, 1, mean_infer, mean_dense, mean_kernels,
                                 mean_backward};
