/* ops_ew.c: helpers of the elementwise op files: broadcast shapes, densify, structure
 * copies, gradient reduction over broadcast axes, value maps over any stype. */
#include <string.h>
#include "ops_ew.h"

kl_status kl_ew_broadcast_shape(const char *fn, int na, const int64_t *sa, int nb,
                                const int64_t *sb, int *nout, int64_t *sout) {
  int n = na > nb ? na : nb;
  for (int k = 0; k < n; k++) {
    int ia = na - n + k, ib = nb - n + k;
    int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      char b1[128], b2[128];
      return kl_seterr(KL_ESHAPE, "%s: shapes (%s) and (%s) are not broadcastable", fn,
                       kl_shape_str(na, sa, b1, sizeof b1), kl_shape_str(nb, sb, b2, sizeof b2));
    }
    sout[k] = da == 1 ? db : da;
  }
  *nout = n;
  return KL_OK;
}

kl_status kl_ew_densify(const kl_tensor *t, kl_tensor **out) {
  if (t->stype == KL_STYPE_DEFAULT) {
    *out = kl_tensor_retain((kl_tensor *)t);
    return KL_OK;
  }
  return kl_tensor_tostype(t, KL_STYPE_DEFAULT, out);
}

int64_t kl_ew_nvals(const kl_tensor *t) {
  if (t->stype == KL_STYPE_DEFAULT) return kl_tensor_numel(t);
  if (t->stype == KL_STYPE_CSR) return t->nnz;
  return t->nnz * kl_row_width(t);
}

kl_status kl_ew_like(const kl_tensor *t, kl_tensor **out) {
  kl_tensor *r = NULL;
  if (t->stype == KL_STYPE_DEFAULT) {
    KL_TRY(kl_tensor_new_dense(t->dtype, t->ndim, t->shape, &r));
  } else if (t->stype == KL_STYPE_CSR) {
    KL_TRY(kl_tensor_new_csr(t->dtype, t->shape[0], t->shape[1], t->nnz, &r));
    memcpy(r->indptr, t->indptr, (size_t)(t->shape[0] + 1) * sizeof(int64_t));
    if (t->nnz) memcpy(r->indices, t->indices, (size_t)t->nnz * sizeof(int64_t));
  } else {
    KL_TRY(kl_tensor_new_rsp(t->dtype, t->ndim, t->shape, t->nnz, &r));
    if (t->nnz) memcpy(r->indices, t->indices, (size_t)t->nnz * sizeof(int64_t));
  }
  *out = r;
  return KL_OK;
}

kl_status kl_ew_grad_dtype(const char *fn, kl_dtype d) {
  KL_CHECK(kl_is_float(d), KL_EDTYPE, "%s: gradient needs float32 or float64, got %s", fn,
           kl_dtype_name(d));
  return KL_OK;
}

kl_status kl_ew_sum_to_shape(const kl_tensor *t, int ndim, const int64_t *shape,
                             kl_tensor **out) {
  kl_tensor *r = NULL;
  KL_TRY(kl_tensor_new_dense(t->dtype, ndim, shape, &r));
  int64_t n = kl_tensor_numel(t), nr = kl_tensor_numel(r);
  if (n == nr) { /* no broadcast axis: a copy */
    if (n) memcpy(r->data, t->data, (size_t)n * kl_dtype_size(t->dtype));
    *out = r;
    return KL_OK;
  }
  int nd = t->ndim;
  int64_t st[KL_MAX_NDIM], c = 1;
  for (int k = nd - 1; k >= 0; k--) {
    int ir = ndim - nd + k;
    int64_t d = ir >= 0 ? shape[ir] : 1;
    st[k] = d == 1 ? 0 : c;
    c *= d;
  }
  /* Serial on purpose: the order of the additions is then fixed. */
  KL_DISPATCH(t->dtype, T, {
    const T *pt = t->data;
    T *pr = r->data;
    int64_t idx[KL_MAX_NDIM] = {0}, off = 0;
    for (int64_t i = 0; i < n; i++) {
      pr[off] += pt[i];
      for (int k = nd - 1; k >= 0; k--) { /* odometer step */
        off += st[k];
        if (++idx[k] < t->shape[k]) break;
        off -= st[k] * idx[k];
        idx[k] = 0;
      }
    }
  })
  *out = r;
  return KL_OK;
}


kl_status kl_ew_map_run(kl_op op, double s, kl_ew_map_fn f, const kl_tensor *x,
                        int dense_result, kl_tensor **out) {
  kl_tensor *m = NULL, *r = NULL;
  *out = NULL;
  KL_TRY(kl_ew_like(x, &m));
  int64_t n = kl_ew_nvals(x), ch = 4096, nch = (n + ch - 1) / ch;
  size_t es = kl_dtype_size(x->dtype);
  const char *src = x->data;
  char *dst = m->data;
#pragma omp parallel for schedule(static) if (n > KL_EW_PAR)
  for (int64_t c = 0; c < nch; c++) {
    int64_t lo = c * ch, len = n - lo < ch ? n - lo : ch;
    f(op, s, x->dtype, len, src + (size_t)lo * es, dst + (size_t)lo * es);
  }
  if (!dense_result || x->stype == KL_STYPE_DEFAULT) {
    *out = m;
    return KL_OK;
  }
  /* Dense result of a sparse x: f(0) everywhere, then the mapped stored values. */
  int64_t zero = 0, fill = 0; /* 0 has the all-zero bit pattern in every dtype */
  f(op, s, x->dtype, 1, &zero, &fill);
  kl_status st = kl_tensor_new_dense(x->dtype, x->ndim, x->shape, &r);
  if (st != KL_OK) goto done;
  int64_t numel = kl_tensor_numel(r);
  KL_DISPATCH(x->dtype, T, {
    T *po = r->data, fv;
    const T *pm = m->data;
    memcpy(&fv, &fill, sizeof fv);
    KL_OMP_FOR(numel > KL_EW_PAR)
    for (int64_t k = 0; k < numel; k++) po[k] = fv;
    if (x->stype == KL_STYPE_CSR) {
      int64_t rows = x->shape[0], cols = x->shape[1];
      KL_OMP_FOR(x->nnz > KL_EW_PAR)
      for (int64_t i = 0; i < rows; i++)
        for (int64_t p = x->indptr[i]; p < x->indptr[i + 1]; p++)
          po[i * cols + x->indices[p]] = pm[p];
    } else {
      int64_t w = kl_row_width(x);
      KL_OMP_FOR(x->nnz * w > KL_EW_PAR)
      for (int64_t k = 0; k < x->nnz; k++)
        memcpy(po + x->indices[k] * w, pm + k * w, (size_t)w * sizeof(T));
    }
  })
  *out = r;
  r = NULL;
done:
  kl_tensor_release(m);
  kl_tensor_release(r);
  return st;
}
