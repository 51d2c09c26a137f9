/* svmlight.c: kl_svmlight_load (a whole file into CSR + labels) and kl_svmlight_dump (the writer). */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "svmlight_internal.h"

kl_svmlight_opts kl_svmlight_opts_default(void) {
  kl_svmlight_opts o;
  o.n_features = 0;
  o.zero_based = -1;
  o.dtype = KL_FLOAT32;
  o.want_qid = 0;
  return o;
}

/* Builds the result tensors from the parsed rows; extra is subtracted from every index
 * (the auto base turning out one-based). */
static kl_status build_outputs(const svm_rows *b, kl_dtype dtype, int64_t ncols, int64_t extra,
                               int want_qid, kl_tensor **X, kl_tensor **y, kl_tensor **qid) {
  kl_status st = kl_tensor_new_csr(dtype, b->rows, ncols, b->nnz, X);
  if (st) return st;
  memcpy((*X)->indptr, b->indptr, (size_t)(b->rows + 1) * sizeof(int64_t));
  int64_t *ix = (*X)->indices;
  for (int64_t k = 0; k < b->nnz; k++) ix[k] = b->indices[k] - extra;
  if (b->nnz) memcpy((*X)->data, b->data, (size_t)b->nnz * kl_dtype_size(dtype));
  int64_t shape[1] = {b->rows};
  st = kl_tensor_new_dense(dtype, 1, shape, y);
  if (st) return st;
  if (dtype == KL_FLOAT32) {
    float *yd = (*y)->data;
    for (int64_t i = 0; i < b->rows; i++) yd[i] = (float)b->y[i];
  } else {
    memcpy((*y)->data, b->y, (size_t)b->rows * sizeof(double));
  }
  if (want_qid) {
    st = kl_tensor_new_dense(KL_INT64, 1, shape, qid);
    if (st) return st;
    memcpy((*qid)->data, b->qid, (size_t)b->rows * sizeof(int64_t));
  }
  return KL_OK;
}

kl_status kl_svmlight_load(const char *path, const kl_svmlight_opts *opts, kl_tensor **X,
                           kl_tensor **y, kl_tensor **qid) {
  KL_CHECK(path && X && y, KL_EINVAL, "load_svmlight_file: path, X and y must not be NULL");
  kl_svmlight_opts o = opts ? *opts : kl_svmlight_opts_default();
  *X = *y = NULL;
  if (qid) *qid = NULL;
  KL_CHECK(o.dtype == KL_FLOAT32 || o.dtype == KL_FLOAT64, KL_EDTYPE,
           "load_svmlight_file: dtype must be float32 or float64. Received: dtype=%s",
           kl_dtype_name(o.dtype));
  KL_CHECK(o.zero_based >= -1 && o.zero_based <= 1, KL_EINVAL,
           "load_svmlight_file: zero_based must be -1 (auto), 0 or 1. Received: zero_based=%d",
           o.zero_based);
  KL_CHECK(o.n_features >= 0 && o.n_features <= KL_MAX_NUMEL, KL_EINVAL,
           "load_svmlight_file: n_features must be >= 0 (0 = infer). Received: n_features=%lld",
           (long long)o.n_features);

  svm_reader r;
  svm_rows b;
  svm_parser p;
  svm_rows_init(&b, o.dtype);
  kl_status st = svm_reader_open(&r, path);
  if (st) return st;
  svm_parser_init(&p, &r, &b, o.zero_based, o.n_features);
  for (;;) {
    char *s, *e;
    int got;
    st = svm_reader_line(&r, &s, &e, &got);
    if (st || !got) break;
    st = svm_parse_line(&p, s, e);
    if (st) break;
  }
  if (st) goto done;
  if (b.rows == 0) {
    st = r.line == 0 ? kl_seterr(KL_EFORMAT, "%s:1: no data (the file is empty)", path)
                     : svm_err(&r, 0, KL_EFORMAT, "no data (only blank and comment lines)");
    goto done;
  }
  /* scikit-learn's rule: auto is one-based unless an index 0 appears anywhere */
  int64_t extra = (o.zero_based == -1 && p.min_raw != 0) ? 1 : 0;
  int64_t base = p.shift + extra; /* what was written for column 0 */
  if (o.zero_based == -1 && base == 0 && o.n_features > 0 && p.max_raw >= o.n_features) {
    st = kl_seterr(KL_EFORMAT,
                   "%s:%lld: index %lld past n_features=%lld (the file is zero-based: it has "
                   "an index 0)",
                   path, (long long)p.max_raw_line, (long long)p.max_raw,
                   (long long)o.n_features);
    goto done;
  }
  int64_t ncols = o.n_features > 0 ? o.n_features : (p.max_raw < 0 ? 0 : p.max_raw - base + 1);
  /* rows x columns must stay a valid tensor shape (kl_shape_check): say which line asks for
   * more, instead of the CSR constructor's message (fuzz_svmlight finding) */
  if (ncols > KL_MAX_NUMEL / b.rows) {
    st = o.n_features > 0
             ? kl_seterr(KL_EINVAL,
                         "%s: n_features=%lld for %lld rows makes the matrix too large (more "
                         "than 2^48 elements)",
                         path, (long long)o.n_features, (long long)b.rows)
             : kl_seterr(KL_EFORMAT,
                         "%s:%lld: index %lld makes the matrix too large (%lld rows x %lld "
                         "columns is more than 2^48 elements)",
                         path, (long long)p.max_raw_line, (long long)p.max_raw,
                         (long long)b.rows, (long long)ncols);
    goto done;
  }
  st = build_outputs(&b, o.dtype, ncols, extra, o.want_qid && qid && p.qid_state == 1, X, y,
                     qid);
done:
  if (st) {
    kl_tensor_release(*X);
    kl_tensor_release(*y);
    *X = *y = NULL;
    if (qid) {
      kl_tensor_release(*qid);
      *qid = NULL;
    }
  }
  svm_rows_free(&b);
  svm_reader_close(&r);
  return st;
}

/* ------------------------------------------------------------------ writer */

typedef struct svm_writer {
  gzFile f;
  const char *path;
  int64_t line;
  char dp; /* the locale's decimal point, written as '.' */
  char buf[1 << 16];
  size_t len;
} svm_writer;

static kl_status writer_flush(svm_writer *w) {
  if (w->len && gzwrite(w->f, w->buf, (unsigned)w->len) != (int)w->len) {
    int zerr = 0;
    const char *m = gzerror(w->f, &zerr);
    return kl_seterr(KL_EIO, "%s:%lld: write error: %s", w->path, (long long)w->line,
                     zerr == Z_ERRNO ? strerror(errno) : m);
  }
  w->len = 0;
  return KL_OK;
}

/* Formats one value of dtype into the buffer (room for it is ensured by the caller). */
static void put_value(svm_writer *w, kl_dtype dt, const void *data, int64_t i) {
  char *o = w->buf + w->len;
  int n;
  if (dt == KL_FLOAT32) n = snprintf(o, 32, "%.9g", (double)((const float *)data)[i]);
  else if (dt == KL_FLOAT64) n = snprintf(o, 32, "%.17g", ((const double *)data)[i]);
  else n = snprintf(o, 32, "%lld", (long long)((const int64_t *)data)[i]);
  if (w->dp != '.')
    for (int k = 0; k < n; k++)
      if (o[k] == w->dp) o[k] = '.';
  w->len += (size_t)n;
}

static int is_zero(kl_dtype dt, const void *data, int64_t i) {
  if (dt == KL_FLOAT32) return ((const float *)data)[i] == 0.0f;
  if (dt == KL_FLOAT64) return ((const double *)data)[i] == 0.0;
  return ((const int64_t *)data)[i] == 0;
}

/* Writes rows; the file is already open. */
static kl_status write_rows(svm_writer *w, const kl_tensor *X, const kl_tensor *y, int64_t base) {
  const int64_t rows = X->shape[0], cols = X->shape[1];
  const int csr = X->stype == KL_STYPE_CSR;
  for (int64_t i = 0; i < rows; i++) {
    w->line = i + 1;
    if (w->len > sizeof w->buf - 64) KL_TRY(writer_flush(w));
    put_value(w, y->dtype, y->data, i);
    int64_t lo = csr ? X->indptr[i] : i * cols, hi = csr ? X->indptr[i + 1] : (i + 1) * cols;
    for (int64_t k = lo; k < hi; k++) {
      if (!csr && is_zero(X->dtype, X->data, k)) continue;
      if (w->len > sizeof w->buf - 64) KL_TRY(writer_flush(w));
      int64_t col = csr ? X->indices[k] : k - lo;
      w->len += (size_t)snprintf(w->buf + w->len, 24, " %lld:", (long long)(col + base));
      put_value(w, X->dtype, X->data, k);
    }
    w->buf[w->len++] = '\n';
  }
  return writer_flush(w);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

kl_status kl_svmlight_dump(const kl_tensor *X, const kl_tensor *y, const char *path,
                           int zero_based) {
  KL_CHECK(X && y && path, KL_EINVAL, "dump_svmlight_file: X, y and path must not be NULL");
  KL_CHECK(X->ndim == 2 && (X->stype == KL_STYPE_CSR || X->stype == KL_STYPE_DEFAULT),
           KL_ESTYPE, "dump_svmlight_file: X must be a 2-d CSR or dense tensor. Received: "
           "%d-d %s", X->ndim, kl_stype_name(X->stype));
  KL_CHECK(y->stype == KL_STYPE_DEFAULT && (y->ndim == 1 || (y->ndim == 2 && y->shape[1] == 1)),
           KL_ESHAPE, "dump_svmlight_file: y must be dense with shape (n) or (n, 1). Received: "
           "%d-d %s", y->ndim, kl_stype_name(y->stype));
  KL_CHECK(y->shape[0] == X->shape[0], KL_ESHAPE,
           "dump_svmlight_file: y has %lld rows, X has %lld", (long long)y->shape[0],
           (long long)X->shape[0]);
  if (X->stype == KL_STYPE_CSR) KL_TRY(kl_tensor_check_format(X, "dump_svmlight_file", 0));

  svm_writer *w = kl_calloc(1, sizeof *w);
  if (!w) return KL_ENOMEM;
  w->path = path;
  w->dp = localeconv()->decimal_point[0];
  errno = 0;
  w->f = gzopen(path, ends_with(path, ".gz") ? "wb6" : "wbT");
  kl_status st = KL_OK;
  if (!w->f) {
    st = kl_seterr(KL_EIO, "%s:0: cannot open for writing: %s", path,
                   errno ? strerror(errno) : "out of memory");
  } else {
    st = write_rows(w, X, y, zero_based ? 0 : 1);
    int rc = gzclose(w->f);
    if (!st && rc != Z_OK)
      st = kl_seterr(KL_EIO, "%s:%lld: write error when closing: %s", path, (long long)w->line,
                     rc == Z_ERRNO ? strerror(errno) : "zlib error");
  }
  kl_free(w);
  return st;
}
