/* plan_grad.c: gradient accumulation for the backward pass (dense and row_sparse sums). */
#include <string.h>

#include "kl/registry.h"
#include "plan_internal.h"
#include "tensor_internal.h"

kl_status kl_mul_dense(const kl_tensor *x, const kl_tensor *mask, kl_tensor **out) {
  *out = NULL;
  KL_CHECK(x->stype == KL_STYPE_DEFAULT && mask->stype == KL_STYPE_DEFAULT &&
               x->dtype == mask->dtype && kl_same_shape(x, mask),
           KL_EINVAL, "dropout: mask does not match its input");
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_dense(x->dtype, x->ndim, x->shape, &o));
  int64_t n = kl_tensor_numel(x);
  KL_DISPATCH(x->dtype, T, {
    const T *a = (const T *)x->data;
    const T *b = (const T *)mask->data;
    T *c = (T *)o->data;
    for (int64_t i = 0; i < n; i++) c[i] = a[i] * b[i];
  });
  *out = o;
  return KL_OK;
}

/* dst (dense) += src (dense or row_sparse), same shape and dtype. */
static void kl_add_into_dense(kl_tensor *dst, const kl_tensor *src) {
  if (src->stype == KL_STYPE_DEFAULT) {
    int64_t n = kl_tensor_numel(dst);
    KL_DISPATCH(dst->dtype, T, {
      T *d = (T *)dst->data;
      const T *s = (const T *)src->data;
      for (int64_t i = 0; i < n; i++) d[i] += s[i];
    });
    return;
  }
  int64_t w = kl_row_width(dst);
  KL_DISPATCH(dst->dtype, T, {
    T *d = (T *)dst->data;
    const T *s = (const T *)src->data;
    for (int64_t r = 0; r < src->nnz; r++) {
      T *drow = d + src->indices[r] * w;
      const T *srow = s + r * w;
      for (int64_t j = 0; j < w; j++) drow[j] += srow[j];
    }
  });
}

/* a + b for two row_sparse tensors: rows merged in order, O(nnz(a) + nnz(b)). */
static kl_status kl_rsp_merge(const kl_tensor *a, const kl_tensor *b, kl_tensor **out) {
  *out = NULL;
  int64_t i = 0, j = 0, n = 0;
  while (i < a->nnz || j < b->nnz) { /* count the union of rows */
    if (j >= b->nnz || (i < a->nnz && a->indices[i] < b->indices[j]))
      i++;
    else if (i >= a->nnz || b->indices[j] < a->indices[i])
      j++;
    else
      i++, j++;
    n++;
  }
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_rsp(a->dtype, a->ndim, a->shape, n, &o));
  int64_t w = kl_row_width(a);
  i = j = n = 0;
  KL_DISPATCH(a->dtype, T, {
    const T *ad = (const T *)a->data;
    const T *bd = (const T *)b->data;
    T *od = (T *)o->data;
    while (i < a->nnz || j < b->nnz) {
      T *orow = od + n * w;
      if (j >= b->nnz || (i < a->nnz && a->indices[i] < b->indices[j])) {
        o->indices[n] = a->indices[i];
        memcpy(orow, ad + i * w, (size_t)w * sizeof(T));
        i++;
      } else if (i >= a->nnz || b->indices[j] < a->indices[i]) {
        o->indices[n] = b->indices[j];
        memcpy(orow, bd + j * w, (size_t)w * sizeof(T));
        j++;
      } else {
        o->indices[n] = a->indices[i];
        for (int64_t c = 0; c < w; c++) orow[c] = ad[i * w + c] + bd[j * w + c];
        i++, j++;
      }
      n++;
    }
  });
  *out = o;
  return KL_OK;
}

/* *acc += gin (a node's gradient from another consumer; *acc NULL: gin itself); takes gin's
 * reference. A csr gradient is made dense first; on the host, row_sparse pairs merge their
 * rows, other pairs sum densely; on a device, through the registry (below). */
kl_status kl_grad_accumulate(kl_tensor **acc, kl_tensor *gin) {
  if (!*acc) {
    *acc = gin;
    return KL_OK;
  }
  kl_tensor *a = *acc, *res = NULL;
  kl_status st = KL_OK;
  char b1[96], b2[96];
  if (a->dtype != gin->dtype || !kl_same_shape(a, gin)) {
    st = kl_seterr(KL_ESHAPE, "backward: gradients to sum differ: (%s) %s vs (%s) %s",
                   kl_shape_str(a->ndim, a->shape, b1, sizeof b1), kl_dtype_name(a->dtype),
                   kl_shape_str(gin->ndim, gin->shape, b2, sizeof b2), kl_dtype_name(gin->dtype));
    goto done;
  }
  /* CSR gradients are unusual: densify them. */
  if (a->stype == KL_STYPE_CSR) {
    st = kl_tensor_tostype(a, KL_STYPE_DEFAULT, &res);
    if (st != KL_OK) goto done;
    kl_tensor_release(a);
    *acc = a = res;
    res = NULL;
  }
  if (gin->stype == KL_STYPE_CSR) {
    kl_tensor *d = NULL;
    st = kl_tensor_tostype(gin, KL_STYPE_DEFAULT, &d);
    if (st != KL_OK) goto done;
    kl_tensor_release(gin);
    gin = d;
  }
  /* On a device: KL_OP_ADD through the registry (the device's kernel, or the host's on
   * copies, counted as a device fallback), so no host code reads their memory. dense +
   * dense is the host's sum bit for bit (acc + gin, element by element); rsp + rsp merges
   * the rows as kl_rsp_merge; a row stored on one side only is computed as x + 0 there (the
   * host copies it), which differs only in the sign of a -0. */
  if (a->device != KL_CPU || gin->device != KL_CPU) {
    kl_tensor *in[2] = {a, gin};
    st = kl_op_run(KL_OP_ADD, in, 2, NULL, &res); /* (mixed devices: its error names both) */
    if (st == KL_OK) {
      kl_tensor_release(a);
      *acc = res;
    }
    goto done;
  }
  if (a->stype == KL_STYPE_ROW_SPARSE && gin->stype == KL_STYPE_ROW_SPARSE) {
    st = kl_rsp_merge(a, gin, &res);
    if (st != KL_OK) goto done;
    kl_tensor_release(a);
    *acc = res;
    goto done;
  }
  /* One of them is dense: add into a dense one we own alone. */
  if (a->stype != KL_STYPE_DEFAULT) { /* swap so a is the dense one */
    kl_tensor *t = a;
    a = gin;
    gin = t;
    *acc = a;
  }
  if (__atomic_load_n(&a->refcount, __ATOMIC_ACQUIRE) != 1) { /* shared: copy first */
    st = kl_tensor_copy(a, &res);
    if (st != KL_OK) goto done;
    kl_tensor_release(a);
    *acc = a = res;
  }
  kl_add_into_dense(a, gin);
done:
  kl_tensor_release(gin);
  return st;
}
