/* layers/regularizer.c: reg_terms, the two sums behind keras.regularizers (sum |w| and
 * sum w^2) over a weight's rows, or only over the rows a batch touches (lazy, O(batch)). */
#include <math.h>
#include <string.h>
#include "layers_util.h"
#include "tensor_internal.h"

/* reg_terms(w[, rows]) -> (2,) dense in w's dtype: (sum |w|, sum w^2) over
 *   - one input: every row w stores (all of a dense w);
 *   - rows = csr (n, R): the rows of w (R of them) named by its stored column indices;
 *   - rows = dense ids (any shape, float or int64): rows id - 1 for the ids 1..R (0 is
 *     padding and names none).
 * Each row counts once however often the batch names it; a row a row_sparse w does not
 * store counts 0. Sums in double, rows ascending. */
static kl_status reg_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  (void)a;
  char s[128];
  KL_CHECK(nin == 1 || nin == 2, KL_EINVAL, "reg_terms: expected 1 or 2 inputs (weight[, rows]), got %d",
           nin);
  KL_CHECK(kl_is_float(in[0].dtype), KL_EDTYPE, "reg_terms: weight must be float32 or float64, got %s",
           kl_dtype_name(in[0].dtype));
  KL_CHECK(in[0].stype == KL_STYPE_DEFAULT || in[0].stype == KL_STYPE_ROW_SPARSE, KL_ESTYPE,
           "reg_terms: weight must be default or row_sparse, got %s", kl_stype_name(in[0].stype));
  if (nin == 2) {
    KL_CHECK(in[0].ndim >= 1, KL_ESHAPE, "reg_terms: a weight with rows is needed, got (%s)",
             kl_lu_shape_str(s, sizeof s, in[0].ndim, in[0].shape));
    if (in[1].stype == KL_STYPE_CSR)
      KL_CHECK(in[1].shape[1] < 0 || in[0].shape[0] < 0 || in[1].shape[1] == in[0].shape[0],
               KL_ESHAPE, "reg_terms: the csr rows input has %lld columns for a weight of %lld rows",
               (long long)in[1].shape[1], (long long)in[0].shape[0]);
    else
      KL_CHECK(in[1].stype == KL_STYPE_DEFAULT, KL_ESTYPE,
               "reg_terms: rows must be csr or dense ids, got %s", kl_stype_name(in[1].stype));
  }
  out->dtype = in[0].dtype;
  out->stype = KL_STYPE_DEFAULT;
  out->ndim = 1;
  out->shape[0] = 2;
  return KL_OK;
}

/* The rows the op covers, as storage positions of w (ascending, unique): *pos (n of them,
 * a new buffer) and *row (their logical rows, same buffer). */
typedef struct reg_rows {
  int64_t *buf, *row, *pos, n;
} reg_rows;

/* Storage position of logical row r in w, or -1 (a row_sparse w that does not store it). */
static int64_t stored_at(const kl_tensor *w, int64_t r) {
  if (w->stype == KL_STYPE_DEFAULT || w->nnz == w->shape[0]) return r;
  int64_t lo = 0, hi = w->nnz;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (w->indices[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return lo < w->nnz && w->indices[lo] == r ? lo : -1;
}

static kl_status reg_collect(const kl_tensor *w, const kl_tensor *src, reg_rows *rr) {
  const int64_t R = w->ndim ? w->shape[0] : 1;
  memset(rr, 0, sizeof *rr);
  if (!src) { /* every stored row */
    const int64_t n = w->stype == KL_STYPE_ROW_SPARSE ? w->nnz : R;
    rr->buf = kl_malloc_n((size_t)(2 * n + 1), sizeof(int64_t));
    if (!rr->buf) return KL_ENOMEM;
    rr->row = rr->buf;
    rr->pos = rr->buf + n;
    for (int64_t i = 0; i < n; i++) {
      rr->row[i] = w->stype == KL_STYPE_ROW_SPARSE ? w->indices[i] : i;
      rr->pos[i] = i;
    }
    rr->n = n;
    return KL_OK;
  }
  const int csr = src->stype == KL_STYPE_CSR;
  const int64_t m = csr ? src->nnz : kl_tensor_numel(src);
  int64_t *buf = kl_malloc_n((size_t)(4 * m + 1), sizeof(int64_t));
  if (!buf) return KL_ENOMEM;
  int64_t *key = buf, *tmp = buf + m, *scratch = buf + 2 * m, k = 0;
  for (int64_t p = 0; p < m; p++) {
    if (csr) {
      key[k++] = src->indices[p];
      continue;
    }
    const double v = kl_lu_read(src->data, src->dtype, p);
    if (!(v == floor(v) && v >= 0 && v <= (double)R)) {
      kl_free(buf);
      return kl_seterr(KL_EINDEX, "reg_terms: id %.15g at position %lld is not an integer in [0, %lld]",
                       v, (long long)(p + 1), (long long)R);
    }
    if (v > 0) key[k++] = (int64_t)v - 1;
  }
  for (int64_t t = 0; t < k; t++) tmp[t] = t;
  kl_lu_radix_sort(key, tmp, scratch, scratch + m, k, R > 0 ? R - 1 : 0);
  /* unique rows w stores, into row[] (reusing tmp) and pos[] (reusing scratch) */
  int64_t n = 0;
  for (int64_t t = 0; t < k; t++) {
    if (t > 0 && key[t] == key[t - 1]) continue;
    const int64_t at = stored_at(w, key[t]);
    if (at < 0) continue;
    tmp[n] = key[t];
    scratch[n++] = at;
  }
  rr->buf = buf;
  rr->row = tmp;
  rr->pos = scratch;
  rr->n = n;
  return KL_OK;
}

static kl_status reg_check(kl_tensor *const *in, int nin, kl_meta *om) {
  kl_meta m[2];
  KL_CHECK(nin == 1 || nin == 2, KL_EINVAL, "reg_terms: expected 1 or 2 inputs (weight[, rows]), got %d",
           nin);
  for (int i = 0; i < nin; i++) {
    KL_CHECK(in[i] != NULL, KL_EINVAL, "reg_terms: input %d is NULL", i);
    kl_tensor_meta(in[i], &m[i]);
  }
  return reg_infer(m, nin, NULL, om);
}

static kl_status reg_fwd(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  (void)a;
  kl_meta om;
  KL_TRY(reg_check(in, nin, &om));
  const kl_tensor *w = in[0];
  reg_rows rr;
  KL_TRY(reg_collect(w, nin == 2 ? in[1] : NULL, &rr));
  const int64_t rw = w->ndim ? kl_row_width(w) : 1;
  double s1 = 0, s2 = 0;
  for (int64_t i = 0; i < rr.n; i++)
    for (int64_t j = 0; j < rw; j++) {
      const double v = kl_lu_read(w->data, w->dtype, rr.pos[i] * rw + j);
      s1 += fabs(v);
      s2 += v * v;
    }
  kl_free(rr.buf);
  kl_tensor *o = NULL;
  KL_TRY(kl_tensor_new_dense(w->dtype, 1, om.shape, &o));
  kl_lu_write(o->data, o->dtype, 0, s1);
  kl_lu_write(o->data, o->dtype, 1, s2);
  *out = o;
  return KL_OK;
}

/* d/dw of gout . (sum |w|, sum w^2) = gout[0] sign(w) + 2 gout[1] w on the covered rows (in
 * double, rounded once), 0 elsewhere: row_sparse over those rows when want is row_sparse,
 * else dense. The rows input has no gradient. */
static kl_status reg_bwd(kl_tensor *const *in, int nin, const kl_attrs *a, const kl_tensor *out,
                         const kl_tensor *gout, int i, kl_stype want, kl_tensor **gin) {
  (void)a, (void)out;
  kl_meta om;
  KL_TRY(reg_check(in, nin, &om));
  KL_CHECK(i != 1, KL_EUNSUPPORTED, "reg_terms: the rows (input 1) have no gradient");
  KL_CHECK(i == 0, KL_EINVAL, "reg_terms: no input %d (0 = weight, 1 = rows)", i);
  KL_CHECK(gout && gout->stype == KL_STYPE_DEFAULT && kl_tensor_numel(gout) == 2, KL_ESHAPE,
           "reg_terms: backward: gout must be a dense tensor of 2 values");
  const kl_tensor *w = in[0];
  const double c1 = kl_lu_read(gout->data, gout->dtype, 0);
  const double c2 = 2.0 * kl_lu_read(gout->data, gout->dtype, 1);
  reg_rows rr;
  KL_TRY(reg_collect(w, nin == 2 ? in[1] : NULL, &rr));
  const int64_t rw = w->ndim ? kl_row_width(w) : 1;
  const int sparse = want == KL_STYPE_ROW_SPARSE && w->ndim >= 1;
  kl_tensor *g = NULL;
  kl_status st = sparse ? kl_tensor_new_rsp(w->dtype, w->ndim, w->shape, rr.n, &g)
                        : kl_tensor_new_dense(w->dtype, w->ndim, w->shape, &g);
  if (st == KL_OK) {
    for (int64_t k = 0; k < rr.n; k++) {
      if (sparse) g->indices[k] = rr.row[k];
      const int64_t to = (sparse ? k : rr.row[k]) * rw;
      for (int64_t j = 0; j < rw; j++) {
        const double v = kl_lu_read(w->data, w->dtype, rr.pos[k] * rw + j);
        const double sg = v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
        kl_lu_write(g->data, g->dtype, to + j, c1 * sg + c2 * v);
      }
    }
    *gin = g;
  }
  kl_free(rr.buf);
  return st;
}

/* Every stype combination runs reg_fwd itself: the dense fallback would densify a row_sparse
 * weight and the csr rows (O(rows) a step). */
static int reg_supports(kl_tensor *const *in, int nin, const kl_attrs *a) {
  (void)in, (void)nin, (void)a;
  return 1;
}

static const kl_kernel_entry reg_kernels[] = {
    {"any", reg_supports, reg_fwd},
    {NULL, NULL, NULL},
};

const kl_op_def kl_opdef_reg_terms = {"reg_terms", 1, 2, reg_infer, reg_fwd, reg_kernels, reg_bwd};
