/* svmlight.c: kl_svmlight_load (a whole file into CSR + labels) and kl_svmlight_dump (the writer). */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "svmlight_internal.h"

kl_svmlight_opts kl_svmlight_opts_default(void) {
  kl_svmlight_opts o;
  o.n_features = 0;
  o.zero_based = -1;
  o.dtype = KL_FLOAT32;
  o.want_qid = 0;
  return o;
}

/* ------------------------------------------------------------------ parts */

/* Test knobs (svm_set_parallel), process-wide: read and written atomically (relaxed), as
 * loads may run on several threads at once. */
static int64_t par_min = SVM_PAR_MIN_DEFAULT;
static int par_parts = 0;
static _Thread_local int last_parts = 0;

void svm_set_parallel(int64_t min_bytes, int parts) {
  __atomic_store_n(&par_min, min_bytes, __ATOMIC_RELAXED);
  __atomic_store_n(&par_parts, parts, __ATOMIC_RELAXED);
}

int svm_last_load_parts(void) { return last_parts; }

/* One byte range of the file, parsed on its own thread into its own rows. */
typedef struct svm_part {
  svm_rows b;
  svm_parser p; /* p.r is cleared after the parse: only its counters are read later */
  int64_t row_off, nnz_off; /* where its rows land in the result */
  kl_status st;
} svm_part;

/* Parses the lines whose first byte lies in [begin, end) with a reader of its own. */
static kl_status parse_part(const char *path, const kl_svmlight_opts *o, int64_t begin,
                            int64_t end, int64_t size, svm_part *pt) {
  svm_reader r;
  svm_rows_init(&pt->b, o->dtype);
  svm_parser_init(&pt->p, NULL, &pt->b, o->zero_based, o->n_features);
  kl_status st = svm_reader_open(&r, path);
  if (st) return st;
  pt->p.r = &r;
  pt->p.hint_begin = begin;
  pt->p.size_hint = (end == INT64_MAX ? size : end) - begin;
  st = svm_reader_start_at(&r, begin);
  while (!st) {
    char *s, *e;
    int got;
    st = svm_reader_line(&r, &s, &e, &got);
    if (st || !got || r.line_off >= end) break;
    st = svm_parse_line(&pt->p, s, e);
  }
  pt->p.r = NULL;
  svm_reader_close(&r);
  return st;
}

/* The rows of all parts, merged, with what the sequential parse would have found. */
typedef struct svm_merged {
  int64_t rows, nnz, min_raw, max_raw;
  int qid_state;
} svm_merged;

/* Whether the parts parsed cleanly and agree (the qid rule holds across them). Any error
 * or disagreement sends the caller to the sequential parse, which reports the first
 * problem in file order with its line, exactly as it always has. */
static int parts_clean(svm_part *pt, int n, svm_merged *m) {
  m->rows = m->nnz = 0;
  m->min_raw = m->max_raw = -1;
  m->qid_state = -1;
  for (int i = 0; i < n; i++) {
    if (pt[i].st) return 0;
    const svm_parser *p = &pt[i].p;
    if (p->qid_state >= 0) {
      if (m->qid_state >= 0 && m->qid_state != p->qid_state) return 0;
      m->qid_state = p->qid_state;
    }
    if (p->min_raw >= 0 && (m->min_raw < 0 || p->min_raw < m->min_raw)) m->min_raw = p->min_raw;
    if (p->max_raw > m->max_raw) m->max_raw = p->max_raw;
    pt[i].row_off = m->rows;
    pt[i].nnz_off = m->nnz;
    m->rows += pt[i].b.rows;
    m->nnz += pt[i].b.nnz;
  }
  return 1;
}

/* ------------------------------------------------------------------ outputs */

/* Makes *X a CSR tensor that takes over b's arrays (no copy); b keeps none of them. */
static kl_status adopt_csr(svm_rows *b, kl_dtype dtype, int64_t rows, int64_t ncols,
                           int64_t nnz, kl_tensor **X) {
  KL_TRY(kl_tensor_new_csr(dtype, rows, ncols, 0, X));
  kl_tensor *t = *X;
  KL_TRY(svm_rows_reserve(b, rows, nnz));
  kl_free(t->indptr);
  kl_free(t->indices);
  kl_free(t->data);
  t->indptr = b->indptr;
  t->indices = b->indices;
  t->data = b->data;
  t->cap_indices = t->cap_data = b->cap_nnz;
  t->nnz = nnz;
  b->indptr = b->indices = NULL;
  b->data = NULL;
  b->cap_nnz = b->cap_rows = 0;
  return KL_OK;
}

/* Builds X, y (and qid) from the parts: part 0's arrays become X's, grown to the total,
 * and every part then shifts its indices by extra (the auto base turning out one-based)
 * and copies itself into place, each on its own thread. */
static kl_status build_outputs(svm_part *pt, int n, const svm_merged *m, kl_dtype dtype,
                               int64_t ncols, int64_t extra, int want_qid, kl_tensor **X,
                               kl_tensor **y, kl_tensor **qid) {
  int64_t shape[1] = {m->rows};
  KL_TRY(adopt_csr(&pt[0].b, dtype, m->rows, ncols, m->nnz, X));
  KL_TRY(kl_tensor_new_dense(KL_FLOAT64, 1, shape, y)); /* labels keep their precision */
  if (want_qid) KL_TRY(kl_tensor_new_dense(KL_INT64, 1, shape, qid));
  kl_tensor *tX = *X, *ty = *y, *tq = want_qid ? *qid : NULL;
  const size_t vsize = kl_dtype_size(dtype);
  const int threads = n < kl_num_threads() ? n : kl_num_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int i = 0; i < n; i++) {
    const svm_rows *b = &pt[i].b;
    const int64_t r0 = pt[i].row_off, k0 = pt[i].nnz_off;
    int64_t *ix = tX->indices + k0;
    if (i > 0) { /* part 0's arrays are X's already */
      int64_t *ip = tX->indptr + r0;
      for (int64_t r = 1; r <= b->rows; r++) ip[r] = b->indptr[r] + k0;
      for (int64_t k = 0; k < b->nnz; k++) ix[k] = b->indices[k] - extra;
      if (b->nnz) memcpy((char *)tX->data + (size_t)k0 * vsize, b->data, (size_t)b->nnz * vsize);
    } else if (extra) {
      for (int64_t k = 0; k < b->nnz; k++) ix[k] -= extra;
    }
    if (b->rows) memcpy((double *)ty->data + r0, b->y, (size_t)b->rows * sizeof(double));
    if (tq && b->rows) memcpy((int64_t *)tq->data + r0, b->qid, (size_t)b->rows * sizeof(int64_t));
  }
  return KL_OK;
}
/* The checks on the whole file once parsed (sequential: p holds the lines of its maxima). */
static kl_status whole_file_checks(const char *path, const kl_svmlight_opts *o, svm_reader *r,
                                   const svm_parser *p, const svm_merged *m, int64_t *extra,
                                   int64_t *ncols) {
  if (m->rows == 0)
    return r->line == 0 ? kl_seterr(KL_EFORMAT, "%s:1: no data (the file is empty)", path)
                        : svm_err(r, 0, KL_EFORMAT, "no data (only blank and comment lines)");
  /* scikit-learn's rule: auto is one-based unless an index 0 appears anywhere */
  *extra = (o->zero_based == -1 && m->min_raw != 0) ? 1 : 0;
  int64_t base = p->shift + *extra; /* what was written for column 0 */
  if (o->zero_based == -1 && base == 0 && o->n_features > 0 && m->max_raw >= o->n_features)
    return kl_seterr(KL_EFORMAT,
                     "%s:%lld: index %lld past n_features=%lld (the file is zero-based: it has "
                     "an index 0)",
                     path, (long long)p->max_raw_line, (long long)m->max_raw,
                     (long long)o->n_features);
  *ncols = o->n_features > 0 ? o->n_features : (m->max_raw < 0 ? 0 : m->max_raw - base + 1);
  /* rows x columns must stay a valid tensor shape (kl_shape_check): say which line asks for
   * more, instead of the CSR constructor's message (fuzz_svmlight finding) */
  if (*ncols > KL_MAX_NUMEL / m->rows)
    return o->n_features > 0
               ? kl_seterr(KL_EINVAL,
                           "%s: n_features=%lld for %lld rows makes the matrix too large (more "
                           "than 2^48 elements)",
                           path, (long long)o->n_features, (long long)m->rows)
               : kl_seterr(KL_EFORMAT,
                           "%s:%lld: index %lld makes the matrix too large (%lld rows x %lld "
                           "columns is more than 2^48 elements)",
                           path, (long long)p->max_raw_line, (long long)m->max_raw,
                           (long long)m->rows, (long long)*ncols);
  return KL_OK;
}

/* How many parts to parse the file in: 1 (sequentially) unless it is a regular, plain
 * (not gzip) file of at least par_min bytes and there are threads to share it. *size: the
 * size of a plain file of at least 1 MiB (or par_min) for the growth hint, else 0 (small
 * files are parsed exactly as they always were). */
static int parts_for(const char *path, svm_reader *r, int64_t *size) {
  struct stat sb;
  *size = 0;
  const int64_t pmin = __atomic_load_n(&par_min, __ATOMIC_RELAXED);
  const int pparts = __atomic_load_n(&par_parts, __ATOMIC_RELAXED);
  const int64_t small = pmin < ((int64_t)1 << 20) ? pmin : ((int64_t)1 << 20);
  if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || (int64_t)sb.st_size < small ||
      sb.st_size <= 0)
    return 1;
  if (svm_reader_is_gzip(r)) return 1; /* gzip streams cannot be entered midway */
  *size = (int64_t)sb.st_size;
  int threads = kl_num_threads();
  if (*size < pmin) return 1;
  if (pparts > 0) return pparts;
  if (threads <= 1) return 1;
  /* one part a thread (at least SVM_PART_MIN bytes each): more, smaller parts balance a
   * thread slowed by a shared core, but each part's arrays are fresh memory that faults
   * in and is copied once more, which cost more than the balance gained (W6 at 2
   * threads: 8 parts a thread 0.20 s, 1 part a thread 0.15 s) */
  int64_t n = *size / SVM_PART_MIN;
  if (n > threads) n = threads;
  return n < 2 ? 1 : (int)n;
}

/* Parses the file in n byte-range parts at once (as kl_svmlight_iter splits it). Returns
 * the parts when every one parsed cleanly and the whole-file checks pass, else NULL (and
 * the caller parses again sequentially, for the first error in file order and its line). */
static svm_part *parse_parallel(const char *path, const kl_svmlight_opts *o, svm_reader *r,
                                int n, int64_t size, svm_merged *m, int64_t *extra,
                                int64_t *ncols) {
  svm_part *pt = kl_calloc((size_t)n, sizeof *pt);
  if (!pt) return NULL;
  const int64_t q = size / n, rem = size % n;
  const int threads = n < kl_num_threads() ? n : kl_num_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int i = 0; i < n; i++) {
    int64_t begin = q * i + rem * i / n;
    int64_t end = i + 1 == n ? INT64_MAX : q * (i + 1) + rem * (i + 1) / n;
    pt[i].st = parse_part(path, o, begin, end, size, &pt[i]);
  }
  if (!parts_clean(pt, n, m) || whole_file_checks(path, o, r, &pt[0].p, m, extra, ncols)) {
    for (int i = 0; i < n; i++) svm_rows_free(&pt[i].b);
    kl_free(pt);
    kl_clearerr();
    return NULL;
  }
  return pt;
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
  kl_status st = svm_reader_open(&r, path);
  if (st) return st;
  svm_merged m;
  int64_t extra = 0, ncols = 0, size = 0;
  int n = parts_for(path, &r, &size);
  svm_part one, *pt = NULL;
  last_parts = 1;
  if (n > 1) {
    pt = parse_parallel(path, &o, &r, n, size, &m, &extra, &ncols);
    last_parts = pt ? n : -1;
  }
  if (!pt) { /* sequentially, through the reader opened above */
    n = 1;
    pt = &one;
    memset(pt, 0, sizeof *pt);
    svm_rows_init(&pt->b, o.dtype);
    svm_parser_init(&pt->p, &r, &pt->b, o.zero_based, o.n_features);
    pt->p.size_hint = size;
    for (;;) {
      char *s, *e;
      int got;
      st = svm_reader_line(&r, &s, &e, &got);
      if (st || !got) break;
      st = svm_parse_line(&pt->p, s, e);
      if (st) break;
    }
    if (!st) {
      parts_clean(pt, 1, &m);
      st = whole_file_checks(path, &o, &r, &pt->p, &m, &extra, &ncols);
    }
  }
  if (!st)
    st = build_outputs(pt, n, &m, o.dtype, ncols, extra, o.want_qid && qid && m.qid_state == 1,
                       X, y, qid);
  if (st) {
    kl_tensor_release(*X);
    kl_tensor_release(*y);
    *X = *y = NULL;
    if (qid) {
      kl_tensor_release(*qid);
      *qid = NULL;
    }
  }
  for (int i = 0; i < n; i++) svm_rows_free(&pt[i].b);
  if (pt != &one) kl_free(pt);
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

/* The shortest %.Ng text of v (N from lo up to hi digits) that reads back as v: as a
 * float32 when f32, else as a double. Reading back runs in the locale that wrote it. */
static int shortest(char *o, double v, int f32) {
  int n = 0;
  for (int digits = f32 ? 6 : 15; digits <= (f32 ? 9 : 17); digits++) {
    n = snprintf(o, 32, "%.*g", digits, v);
    double back = strtod(o, NULL);
    if (f32 ? (float)back == (float)v : back == v) break;
    if (v != v) break; /* nan: as %g writes it */
  }
  return n;
}

/* Formats one value of dtype into the buffer (room for it is ensured by the caller): the
 * fewest digits that load back to the same value (2.1, not 2.1000000000000001), as
 * Python's repr and scikit-learn write them. */
static void put_value(svm_writer *w, kl_dtype dt, const void *data, int64_t i) {
  char *o = w->buf + w->len;
  int n;
  if (dt == KL_FLOAT32) n = shortest(o, (double)((const float *)data)[i], 1);
  else if (dt == KL_FLOAT64) n = shortest(o, ((const double *)data)[i], 0);
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
