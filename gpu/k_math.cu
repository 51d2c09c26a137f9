/* k_math.cu: elementwise math on the device: two tensors with numpy broadcasting, the
 * scalar and unary maps (the transcendental ones through double, as the CPU), their
 * gradients, the reduction of a gradient over broadcast axes, storage conversions (csr /
 * row_sparse <-> dense) and the sparse merges (csr op csr, rsp op rsp, sparse op dense).
 *
 * One thread an element (or a row, where the CPU walks a row in order: the merges, the
 * sums of sum_to_shape), grid-stride loops, no shared memory and no float atomics: every
 * kernel here runs host-emulated. Each element is the CPU's expression on the same operands
 * in the same order (backend/src/ops_elemwise.c, ops_ew.c, ops_scalar.c, ops_unary.c,
 * convert.c), so +, -, *, /, sqrt, min / max and the sums give the CPU's bits; exp, log,
 * tanh, sigmoid and pow are the device's libm on a GPU (kl_cuda_math.h). */
#include "k_math_common.h"

namespace {

/* ------------------------------------------------------------------ device expressions */

__device__ __forceinline__ double km_sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

template <typename T> __device__ __forceinline__ T km_un(int op, T x) {
  switch (op) {
    case KL_OP_NEG: return -x;
    case KL_OP_SQUARE: return x * x;
    case KL_OP_ABS: return x < 0 ? -x : x;
    case KL_OP_RELU: return x > 0 || x != x ? x : 0;
    case KL_OP_SQRT: return (T)sqrt((double)x);
    case KL_OP_EXP: return (T)exp((double)x);
    case KL_OP_LOG: return (T)log((double)x);
    case KL_OP_SIGMOID: return (T)km_sigmoid((double)x);
    default: return (T)tanh((double)x); /* TANH */
  }
}
template <> __device__ __forceinline__ int64_t km_un<int64_t>(int op, int64_t x) {
  switch (op) {
    case KL_OP_NEG: return -x;
    case KL_OP_SQUARE: return x * x;
    case KL_OP_ABS: return x < 0 ? -x : x;
    default: return x > 0 ? x : 0; /* RELU */
  }
}

template <typename T> __device__ __forceinline__ T km_scal(int op, T x, T c, double s) {
  switch (op) {
    case KL_OP_ADD_SCALAR: return x + c;
    case KL_OP_MUL_SCALAR: return x * c;
    case KL_OP_RSUB_SCALAR: return c - x;
    case KL_OP_MINIMUM_SCALAR: return (x != x || x < c) ? x : c;
    case KL_OP_MAXIMUM_SCALAR: return (x != x || x > c) ? x : c;
    case KL_OP_POW_SCALAR: return (T)pow((double)x, s);
    case KL_OP_DIV_SCALAR: return x / c;
    default: return c / x; /* RDIV_SCALAR */
  }
}
template <>
__device__ __forceinline__ int64_t km_scal<int64_t>(int op, int64_t x, int64_t c, double s) {
  switch (op) {
    case KL_OP_ADD_SCALAR: return x + c;
    case KL_OP_MUL_SCALAR: return x * c;
    case KL_OP_RSUB_SCALAR: return c - x;
    case KL_OP_MINIMUM_SCALAR: return x < c ? x : c;
    default: return x > c ? x : c; /* MAXIMUM_SCALAR */
  }
}

/* ------------------------------------------------------------------ kernels */

struct km_bcast {
  int nd;
  int64_t shape[KL_MAX_NDIM], sa[KL_MAX_NDIM], sb[KL_MAX_NDIM];
};

template <typename T>
__global__ void km_bin_flat(int op, const T *a, int64_t sa, const T *b, int64_t sb, T *o,
                            int64_t n) {
  KL_GRID_LOOP(i, n) o[i] = km_bin<T>(op, a[i * sa], b[i * sb]);
}

template <typename T>
__global__ void km_bin_bcast(int op, const T *a, const T *b, T *o, int64_t n, km_bcast bc) {
  KL_GRID_LOOP(i, n) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int k = bc.nd - 1; k >= 0; k--) {
      const int64_t c = rem % bc.shape[k];
      rem /= bc.shape[k];
      oa += c * bc.sa[k];
      ob += c * bc.sb[k];
    }
    o[i] = km_bin<T>(op, a[oa], b[ob]);
  }
}

template <typename T>
__global__ void km_bin_zero(int op, int side, const T *d, T *o, int64_t n) {
  const T zero = 0;
  KL_GRID_LOOP(i, n) o[i] = side == 0 ? km_bin<T>(op, zero, d[i]) : km_bin<T>(op, d[i], zero);
}

template <typename T> __global__ void km_unary(int op, const T *x, T *o, int64_t n) {
  KL_GRID_LOOP(i, n) o[i] = km_un<T>(op, x[i]);
}

template <typename T>
__global__ void km_scalar(int op, const T *x, T c, double s, T *o, int64_t n) {
  KL_GRID_LOOP(i, n) o[i] = km_scal<T>(op, x[i], c, s);
}

template <typename T>
__global__ void km_unary_grad(int op, const T *px, const T *pv, const T *pg, T *pr,
                              int64_t n) {
  KL_GRID_LOOP(k, n) {
    T x = px[k], o = pv[k], g = pg[k], d;
    switch (op) {
      case KL_OP_NEG: d = -1; break;
      case KL_OP_SQUARE: d = 2 * x; break;
      case KL_OP_SQRT: d = (T)0.5 / o; break;
      case KL_OP_ABS: d = x > 0 ? 1 : x < 0 ? -1 : 0; break;
      case KL_OP_RELU: d = x > 0 || x != x ? 1 : 0; break;
      case KL_OP_EXP: d = o; break;
      case KL_OP_LOG: d = 1 / x; break;
      case KL_OP_SIGMOID: d = o * (1 - o); break;
      default: d = 1 - o * o; break; /* tanh */
    }
    pr[k] = g * d;
  }
}

template <typename T>
__global__ void km_scalar_grad(int op, const T *px, const T *pg, double s, T *po, int64_t n) {
  KL_GRID_LOOP(k, n) {
    double x = (double)px[k], g = (double)pg[k], d;
    if (op == KL_OP_MINIMUM_SCALAR) d = x <= s ? g : 0;
    else if (op == KL_OP_MAXIMUM_SCALAR) d = x >= s ? g : 0;
    else if (op == KL_OP_POW_SCALAR) d = s == 0 ? 0 : g * s * pow(x, s - 1);
    else d = -g * s / (x * x); /* RDIV_SCALAR */
    po[k] = (T)d;
  }
}

template <typename T>
__global__ void km_minmax_select(int op, int i, const T *pd, const T *pg, T *po, int64_t n) {
  KL_GRID_LOOP(k, n) {
    int to_a = op == KL_OP_MINIMUM ? pd[k] <= 0 : pd[k] >= 0;
    po[k] = to_a == (i == 0) ? pg[k] : 0;
  }
}

/* sum_to_shape: t's axes with their strides, which are reduced, and the output's strides. */
struct km_s2s {
  int nd;
  int64_t tshape[KL_MAX_NDIM], tstride[KL_MAX_NDIM], ostride[KL_MAX_NDIM];
  int red[KL_MAX_NDIM];
  int64_t nred; /* elements summed into one output */
};

template <typename T>
__global__ void km_sum_to_shape(const T *t, T *o, int64_t nr, km_s2s q) {
  KL_GRID_LOOP(r, nr) {
    /* the base position in t of output r (its kept axes' coordinates) */
    int64_t base = 0, rem = r;
    for (int k = 0; k < q.nd; k++) {
      if (q.red[k]) continue;
      const int64_t c = rem / q.ostride[k];
      rem -= c * q.ostride[k];
      base += c * q.tstride[k];
    }
    /* the reduced axes walked in t's order (increasing position), from +0 as the CPU */
    T acc = 0;
    for (int64_t j = 0; j < q.nred; j++) {
      int64_t jr = j, off = base;
      for (int k = q.nd - 1; k >= 0; k--) {
        if (!q.red[k]) continue;
        const int64_t c = jr % q.tshape[k];
        jr /= q.tshape[k];
        off += c * q.tstride[k];
      }
      acc += t[off];
    }
    o[r] = acc;
  }
}

template <typename T>
__global__ void km_csr_scatter(int64_t rows, int64_t cols, const int64_t *ptr,
                               const int64_t *ix, const T *v, T *x) {
  KL_GRID_LOOP(r, rows)
  for (int64_t k = ptr[r]; k < ptr[r + 1]; k++) x[r * cols + ix[k]] = v[k];
}

template <typename T>
__global__ void km_rsp_scatter(int64_t nnz, int64_t w, const int64_t *idx, const T *v, T *x) {
  KL_GRID_LOOP(e, nnz * w) {
    const int64_t k = e / w, j = e - k * w;
    x[idx[k] * w + j] = v[e];
  }
}

template <typename T>
__global__ void km_dense_count(int rsp, const T *x, int64_t rows, int64_t w, int64_t *cnt) {
  KL_GRID_LOOP(r, rows) {
    int64_t k = 0;
    const T *p = x + r * w;
    if (rsp) {
      for (int64_t j = 0; j < w && !k; j++) k = p[j] != 0;
    } else {
      for (int64_t j = 0; j < w; j++) k += p[j] != 0;
    }
    cnt[r] = k;
  }
}

template <typename T>
__global__ void km_dense_fill_csr(const T *x, int64_t rows, int64_t w, const int64_t *pos,
                                  int64_t *ix, T *v) {
  KL_GRID_LOOP(r, rows) {
    int64_t k = pos[r];
    const T *p = x + r * w;
    for (int64_t j = 0; j < w; j++)
      if (p[j] != 0) {
        ix[k] = j;
        v[k++] = p[j];
      }
  }
}

template <typename T>
__global__ void km_dense_fill_rsp(const T *x, int64_t rows, int64_t w, const int64_t *pos,
                                  int64_t *ix, T *v) {
  KL_GRID_LOOP(e, rows * w) {
    const int64_t r = e / w, j = e - r * w, k = pos[r];
    if (pos[r + 1] == k) continue; /* an all-zero row */
    if (j == 0) ix[k] = r;
    v[k * w + j] = x[e];
  }
}

/* csr op csr, one thread a row (ops_elemwise.c's csr_csr) */
__global__ void km_csr_merge_count(int isect, int64_t rows, const int64_t *aptr,
                                   const int64_t *aidx, const int64_t *bptr,
                                   const int64_t *bidx, int64_t *cnt) {
  KL_GRID_LOOP(i, rows) {
    int64_t p = aptr[i], pe = aptr[i + 1], q = bptr[i], qe = bptr[i + 1];
    int64_t c = 0;
    while (p < pe && q < qe) {
      int64_t ca = aidx[p], cb = bidx[q];
      if (ca == cb) c++, p++, q++;
      else if (ca < cb) c += !isect, p++;
      else c += !isect, q++;
    }
    if (!isect) c += (pe - p) + (qe - q);
    cnt[i] = c;
  }
}

template <typename T>
__global__ void km_csr_merge_fill(int op, int64_t rows, const int64_t *aptr,
                                  const int64_t *aidx, const T *va, const int64_t *bptr,
                                  const int64_t *bidx, const T *vb, const int64_t *rptr,
                                  int64_t *ridx, T *vr) {
  const int isect = op == KL_OP_MUL;
  const T zero = 0;
  KL_GRID_LOOP(i, rows) {
    int64_t p = aptr[i], pe = aptr[i + 1], q = bptr[i], qe = bptr[i + 1];
    int64_t w = rptr[i];
    while (p < pe && q < qe) {
      int64_t ca = aidx[p], cb = bidx[q];
      if (ca == cb) {
        ridx[w] = ca;
        vr[w++] = km_bin<T>(op, va[p], vb[q]);
        p++, q++;
      } else if (ca < cb) {
        if (!isect) ridx[w] = ca, vr[w++] = km_bin<T>(op, va[p], zero);
        p++;
      } else {
        if (!isect) ridx[w] = cb, vr[w++] = km_bin<T>(op, zero, vb[q]);
        q++;
      }
    }
    for (; !isect && p < pe; p++) ridx[w] = aidx[p], vr[w++] = km_bin<T>(op, va[p], zero);
    for (; !isect && q < qe; q++) ridx[w] = bidx[q], vr[w++] = km_bin<T>(op, zero, vb[q]);
  }
}

/* The first position in sorted v[0..n) whose value is >= x. */
__device__ __forceinline__ int64_t km_lower_bound(const int64_t *v, int64_t n, int64_t x) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (v[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

__global__ void km_rsp_flags(int64_t na, const int64_t *aidx, int64_t nb, const int64_t *bidx,
                             int64_t *f) {
  KL_GRID_LOOP(q, nb) {
    const int64_t lb = km_lower_bound(aidx, na, bidx[q]);
    f[q] = lb < na && aidx[lb] == bidx[q];
  }
}

/* Output row of each stored row: rank in the union = (A's rows below it) + (B's rows below
 * it) - (common rows below it); the common rows below B's position q are cb[q]. */
__global__ void km_rsp_src(int isect, int64_t na, const int64_t *aidx, int64_t nb,
                           const int64_t *bidx, const int64_t *cb, int64_t *src) {
  KL_GRID_LOOP(e, na + nb) {
    if (e < na) {
      const int64_t p = e, lb = km_lower_bound(bidx, nb, aidx[p]);
      const int match = lb < nb && bidx[lb] == aidx[p];
      if (isect) {
        if (match) src[2 * cb[lb]] = p, src[2 * cb[lb] + 1] = lb;
      } else {
        const int64_t k = p + lb - cb[lb];
        src[2 * k] = p;
        src[2 * k + 1] = match ? lb : -1;
      }
    } else {
      const int64_t q = e - na;
      if (isect || cb[q + 1] != cb[q]) continue; /* common rows come from A's side */
      const int64_t k = km_lower_bound(aidx, na, bidx[q]) + q - cb[q];
      src[2 * k] = -1;
      src[2 * k + 1] = q;
    }
  }
}

template <typename T>
__global__ void km_rsp_fill(int op, int64_t n, int64_t w, const int64_t *src,
                            const int64_t *aidx, const T *va, const int64_t *bidx, const T *vb,
                            int64_t *ridx, T *vr) {
  const int64_t ww = w > 0 ? w : 1; /* w == 0: the rows still get their numbers */
  const T zero = 0;
  KL_GRID_LOOP(e, n * ww) {
    const int64_t k = e / ww, j = e - k * ww, p = src[2 * k], q = src[2 * k + 1];
    if (j == 0) ridx[k] = p >= 0 ? aidx[p] : bidx[q];
    if (w == 0) continue;
    T x = p >= 0 ? va[p * w + j] : zero, y = q >= 0 ? vb[q * w + j] : zero;
    vr[k * w + j] = km_bin<T>(op, x, y);
  }
}

template <typename T>
__global__ void km_sparse_dense_csr(int op, int side, int64_t rows, int64_t cols,
                                    const int64_t *ptr, const int64_t *ix, const T *vs,
                                    const T *vd, T *vo) {
  KL_GRID_LOOP(i, rows)
  for (int64_t p = ptr[i]; p < ptr[i + 1]; p++) {
    int64_t k = i * cols + ix[p];
    vo[k] = side == 0 ? km_bin<T>(op, vs[p], vd[k]) : km_bin<T>(op, vd[k], vs[p]);
  }
}

template <typename T>
__global__ void km_sparse_dense_rsp(int op, int side, int64_t nnz, int64_t w,
                                    const int64_t *idx, const T *vs, const T *vd, T *vo) {
  KL_GRID_LOOP(e, nnz * w) {
    const int64_t k = e / w, j = e - k * w, o = idx[k] * w + j;
    vo[o] = side == 0 ? km_bin<T>(op, vs[e], vd[o]) : km_bin<T>(op, vd[o], vs[e]);
  }
}

int km_is_binop(kl_op op) {
  return op == KL_OP_ADD || op == KL_OP_SUB || op == KL_OP_MUL || op == KL_OP_DIV ||
         op == KL_OP_MINIMUM || op == KL_OP_MAXIMUM;
}

kl_status km_binop_check(const char *fn, kl_op op, kl_dtype dt) {
  if (!km_is_binop(op))
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  return km_dtype(fn, dt, op == KL_OP_DIV);
}

/* the merges never divide */
kl_status km_mergeop_check(const char *fn, kl_op op, kl_dtype dt) {
  if (op == KL_OP_DIV || !km_is_binop(op))
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no merge kernel for op %d", fn, (int)op);
  return km_dtype(fn, dt, 0);
}

}  // namespace

/* ------------------------------------------------------------------ launchers */

extern "C" kl_status kl_cuda_math_binary(kl_op op, kl_dtype dt, const void *a, int and_,
                                         const int64_t *ashape, const void *b, int bnd,
                                         const int64_t *bshape, void *out, kl_cuda_stream s) {
  const char *fn = "cuda math_binary";
  kl_status st = km_binop_check(fn, op, dt);
  if (st != KL_OK) return st;
  if (and_ < 0 || and_ > KL_MAX_NDIM || bnd < 0 || bnd > KL_MAX_NDIM)
    return kl_cuda_seterr(KL_ESHAPE, "%s: %d and %d dimensions", fn, and_, bnd);
  km_bcast bc;
  const int nd = and_ > bnd ? and_ : bnd;
  int64_t n = 1, na = 1, nb = 1, ca = 1, cb = 1;
  bc.nd = nd;
  for (int k = nd - 1; k >= 0; k--) {
    const int ia = and_ - nd + k, ib = bnd - nd + k;
    const int64_t da = ia >= 0 ? ashape[ia] : 1, db = ib >= 0 ? bshape[ib] : 1;
    if (da < 0 || db < 0 || (da != db && da != 1 && db != 1))
      return kl_cuda_seterr(KL_ESHAPE, "%s: shapes do not broadcast (axis %d: %lld vs %lld)",
                            fn, k, (long long)da, (long long)db);
    bc.shape[k] = da == 1 ? db : da;
    bc.sa[k] = da == 1 ? 0 : ca;
    bc.sb[k] = db == 1 ? 0 : cb;
    ca *= da;
    cb *= db;
    n *= bc.shape[k];
  }
  na = ca;
  nb = cb;
  if (n == 0) return KL_OK;
  if ((na == n || na == 1) && (nb == n || nb == 1)) {
    const int64_t sa = na == n ? 1 : 0, sb = nb == n ? 1 : 0;
    KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n, km_bin_flat<T>, (int)op, (const T *)a, sa,
                                   (const T *)b, sb, (T *)out, n););
    return KL_OK;
  }
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n, km_bin_bcast<T>, (int)op, (const T *)a, (const T *)b,
                                 (T *)out, n, bc););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_binary_zero(kl_op op, kl_dtype dt, int side, const void *d,
                                              void *out, int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda math_binary_zero";
  kl_status st = km_binop_check(fn, op, dt);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n, km_bin_zero<T>, (int)op, side, (const T *)d, (T *)out,
                                 n););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_unary(kl_op op, kl_dtype dt, const void *x, void *out,
                                        int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda math_unary";
  const int int_ok = op == KL_OP_NEG || op == KL_OP_SQUARE || op == KL_OP_ABS || op == KL_OP_RELU;
  if (!int_ok && op != KL_OP_SQRT && op != KL_OP_EXP && op != KL_OP_LOG && op != KL_OP_SIGMOID &&
      op != KL_OP_TANH)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  kl_status st = km_dtype(fn, dt, !int_ok);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n, km_unary<T>, (int)op, (const T *)x, (T *)out, n););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_scalar(kl_op op, kl_dtype dt, const void *x, double scalar,
                                         void *out, int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda math_scalar";
  const int int_ok = op == KL_OP_ADD_SCALAR || op == KL_OP_MUL_SCALAR ||
                     op == KL_OP_RSUB_SCALAR || op == KL_OP_MINIMUM_SCALAR ||
                     op == KL_OP_MAXIMUM_SCALAR;
  if (!int_ok && op != KL_OP_DIV_SCALAR && op != KL_OP_RDIV_SCALAR && op != KL_OP_POW_SCALAR)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  kl_status st = km_dtype(fn, dt, !int_ok);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  if (dt == KL_INT64 && !(scalar >= -9223372036854775808.0 && scalar < 9223372036854775808.0))
    return kl_cuda_seterr(KL_EINVAL, "%s: scalar %g is not an int64", fn, scalar);
  /* the scalar cast to dt first, as the CPU (int64: inference checked it is an integer) */
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, n, km_scalar<T>, (int)op, (const T *)x, (T)scalar, scalar,
                                 (T *)out, n););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_unary_grad(kl_op op, kl_dtype dt, const void *x,
                                             const void *o, const void *g, void *out,
                                             int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda math_unary_grad";
  if (op != KL_OP_NEG && op != KL_OP_SQUARE && op != KL_OP_ABS && op != KL_OP_RELU &&
      op != KL_OP_SQRT && op != KL_OP_EXP && op != KL_OP_LOG && op != KL_OP_SIGMOID &&
      op != KL_OP_TANH)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, n, km_unary_grad<T>, (int)op, (const T *)x, (const T *)o,
                                   (const T *)g, (T *)out, n););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_scalar_grad(kl_op op, kl_dtype dt, const void *x,
                                              const void *g, double scalar, void *out,
                                              int64_t n, kl_cuda_stream s) {
  const char *fn = "cuda math_scalar_grad";
  if (op != KL_OP_MINIMUM_SCALAR && op != KL_OP_MAXIMUM_SCALAR && op != KL_OP_POW_SCALAR &&
      op != KL_OP_RDIV_SCALAR)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: no CUDA kernel for op %d", fn, (int)op);
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, n, km_scalar_grad<T>, (int)op, (const T *)x,
                                   (const T *)g, scalar, (T *)out, n););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_minmax_select(kl_op op, kl_dtype dt, int i, const void *d,
                                                const void *g, void *out, int64_t n,
                                                kl_cuda_stream s) {
  const char *fn = "cuda math_minmax_select";
  if (op != KL_OP_MINIMUM && op != KL_OP_MAXIMUM)
    return kl_cuda_seterr(KL_EUNSUPPORTED, "%s: op %d is not minimum or maximum", fn, (int)op);
  kl_status st = km_dtype(fn, dt, 1);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st != KL_OK || n == 0) return st;
  KM_DISPATCH_F(dt, T, KM_LAUNCH_N(fn, n, km_minmax_select<T>, (int)op, i, (const T *)d,
                                   (const T *)g, (T *)out, n););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_sum_to_shape(kl_dtype dt, const void *t, int tnd,
                                               const int64_t *tshape, void *out, int rnd,
                                               const int64_t *rshape, kl_cuda_stream s) {
  const char *fn = "cuda math_sum_to_shape";
  kl_status st = km_dtype(fn, dt, 0);
  if (st != KL_OK) return st;
  if (tnd < rnd || tnd > KL_MAX_NDIM || rnd < 0)
    return kl_cuda_seterr(KL_ESHAPE, "%s: %d dimensions summed to %d", fn, tnd, rnd);
  km_s2s q;
  q.nd = tnd;
  int64_t n = 1, nr = 1, c = 1;
  for (int k = tnd - 1; k >= 0; k--) {
    const int ir = rnd - tnd + k;
    const int64_t d = ir >= 0 ? rshape[ir] : 1;
    if (d != 1 && d != tshape[k])
      return kl_cuda_seterr(KL_ESHAPE, "%s: axis %d of %lld does not reduce to %lld", fn, k,
                            (long long)tshape[k], (long long)d);
    q.tshape[k] = tshape[k];
    q.tstride[k] = c;
    c *= tshape[k];
    n *= tshape[k];
    q.red[k] = d == 1;
    nr *= d;
  }
  /* the output's strides over t's kept axes (row-major over them) */
  int64_t oc = 1;
  q.nred = 1;
  for (int k = tnd - 1; k >= 0; k--) {
    if (q.red[k]) {
      q.ostride[k] = 0;
      q.nred *= tshape[k];
    } else {
      q.ostride[k] = oc;
      oc *= tshape[k];
    }
  }
  if (nr == 0) return KL_OK;
  const size_t es = dt == KL_FLOAT32 ? 4 : 8;
  if (n == nr) /* no broadcast axis: a copy (as the CPU: -0 stays -0) */
    return kl_cuda_math_copy_block(es, t, 0, 0, out, 0, 0, 1, n, s);
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, nr, km_sum_to_shape<T>, (const T *)t, (T *)out, nr, q););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_csr_scatter(kl_dtype dt, int64_t rows, int64_t cols,
                                         const int64_t *indptr, const int64_t *indices,
                                         const void *vals, void *out, kl_cuda_stream s) {
  const char *fn = "cuda csr_scatter";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, rows, km_csr_scatter<T>, rows, cols, indptr, indices,
                                 (const T *)vals, (T *)out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rsp_scatter(kl_dtype dt, int64_t nnz, int64_t w,
                                         const int64_t *indices, const void *vals, void *out,
                                         kl_cuda_stream s) {
  const char *fn = "cuda rsp_scatter";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "nnz", nnz);
  if (st == KL_OK) st = km_count(fn, "w", w);
  if (st != KL_OK || nnz * w == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, nnz * w, km_rsp_scatter<T>, nnz, w, indices,
                                 (const T *)vals, (T *)out););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_dense_count(kl_dtype dt, int rsp, const void *x, int64_t rows,
                                         int64_t w, int64_t *cnt, kl_cuda_stream s) {
  const char *fn = "cuda dense_count";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, rows, km_dense_count<T>, rsp, (const T *)x, rows, w, cnt););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_dense_fill(kl_dtype dt, int rsp, const void *x, int64_t rows,
                                        int64_t w, const int64_t *pos, int64_t *indices,
                                        void *vals, kl_cuda_stream s) {
  const char *fn = "cuda dense_fill";
  kl_status st = km_dtype(fn, dt, 0);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  if (rsp) {
    if (w == 0) return KL_OK; /* no row has a nonzero */
    KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, rows * w, km_dense_fill_rsp<T>, (const T *)x, rows, w,
                                   pos, indices, (T *)vals););
  } else {
    KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, rows, km_dense_fill_csr<T>, (const T *)x, rows, w, pos,
                                   indices, (T *)vals););
  }
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_csr_merge_count(kl_op op, int64_t rows, const int64_t *aptr,
                                             const int64_t *aidx, const int64_t *bptr,
                                             const int64_t *bidx, int64_t *cnt,
                                             kl_cuda_stream s) {
  const char *fn = "cuda csr_merge";
  kl_status st = km_mergeop_check(fn, op, KL_FLOAT64);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  KM_LAUNCH_N(fn, rows, km_csr_merge_count, op == KL_OP_MUL, rows, aptr, aidx, bptr, bidx, cnt);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_csr_merge_fill(kl_op op, kl_dtype dt, int64_t rows,
                                            const int64_t *aptr, const int64_t *aidx,
                                            const void *av, const int64_t *bptr,
                                            const int64_t *bidx, const void *bv,
                                            const int64_t *rptr, int64_t *ridx, void *rv,
                                            kl_cuda_stream s) {
  const char *fn = "cuda csr_merge";
  kl_status st = km_mergeop_check(fn, op, dt);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st != KL_OK || rows == 0) return st;
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, rows, km_csr_merge_fill<T>, (int)op, rows, aptr, aidx,
                                 (const T *)av, bptr, bidx, (const T *)bv, rptr, ridx,
                                 (T *)rv););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rsp_merge_flags(int64_t na, const int64_t *aidx, int64_t nb,
                                             const int64_t *bidx, int64_t *f,
                                             kl_cuda_stream s) {
  const char *fn = "cuda rsp_merge";
  kl_status st = km_count(fn, "na", na);
  if (st == KL_OK) st = km_count(fn, "nb", nb);
  if (st != KL_OK || nb == 0) return st;
  KM_LAUNCH_N(fn, nb, km_rsp_flags, na, aidx, nb, bidx, f);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rsp_merge_src(kl_op op, int64_t na, const int64_t *aidx,
                                           int64_t nb, const int64_t *bidx, const int64_t *cb,
                                           int64_t *src, kl_cuda_stream s) {
  const char *fn = "cuda rsp_merge";
  kl_status st = km_mergeop_check(fn, op, KL_FLOAT64);
  if (st == KL_OK) st = km_count(fn, "na", na);
  if (st == KL_OK) st = km_count(fn, "nb", nb);
  if (st != KL_OK || na + nb == 0) return st;
  KM_LAUNCH_N(fn, na + nb, km_rsp_src, op == KL_OP_MUL, na, aidx, nb, bidx, cb, src);
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_rsp_merge_fill(kl_op op, kl_dtype dt, int64_t n, int64_t w,
                                            const int64_t *src, const int64_t *aidx,
                                            const void *av, const int64_t *bidx,
                                            const void *bv, int64_t *ridx, void *rv,
                                            kl_cuda_stream s) {
  const char *fn = "cuda rsp_merge";
  kl_status st = km_mergeop_check(fn, op, dt);
  if (st == KL_OK) st = km_count(fn, "n", n);
  if (st == KL_OK) st = km_count(fn, "w", w);
  if (st != KL_OK || n == 0) return st;
  const int64_t ne = n * (w > 0 ? w : 1);
  KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, ne, km_rsp_fill<T>, (int)op, n, w, src, aidx,
                                 (const T *)av, bidx, (const T *)bv, ridx, (T *)rv););
  return KL_OK;
}

extern "C" kl_status kl_cuda_math_sparse_dense_apply(kl_op op, kl_dtype dt, int side, int csr,
                                                int64_t rows, int64_t w,
                                                const int64_t *indptr, const int64_t *indices,
                                                int64_t nnz, const void *sv, const void *d,
                                                void *out, kl_cuda_stream s) {
  const char *fn = "cuda sparse_dense";
  kl_status st = km_binop_check(fn, op, dt);
  if (st == KL_OK) st = km_count(fn, "rows", rows);
  if (st == KL_OK) st = km_count(fn, "nnz", nnz);
  if (st != KL_OK) return st;
  if (csr) {
    if (rows == 0) return KL_OK;
    KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, rows, km_sparse_dense_csr<T>, (int)op, side, rows, w,
                                   indptr, indices, (const T *)sv, (const T *)d, (T *)out););
  } else {
    if (nnz * w == 0) return KL_OK;
    KM_DISPATCH(dt, T, KM_LAUNCH_N(fn, nnz * w, km_sparse_dense_rsp<T>, (int)op, side, nnz, w,
                                   indices, (const T *)sv, (const T *)d, (T *)out););
  }
  return KL_OK;
}
