/* svmlight_stream.c: kl_svmlight_iter, CSR batches streamed from a part (byte range) of a file. */
#include <string.h>
#include <sys/stat.h>

#include "svmlight_internal.h"

struct kl_svmlight_iter {
  char *path; /* own copy */
  int64_t n_features, batch_size;
  int zero_based; /* resolved: 0 or 1 */
  kl_dtype dtype;
  int64_t begin, end; /* the part: lines whose first byte lies in [begin, end) */
  svm_reader r;
  svm_rows b;
  svm_parser p;
  int started, finished;
  kl_status err;   /* sticky failure of the current pass (reset clears it) */
  kl_tensor *X, *y; /* the batch tensors, reused while nobody else holds them */
};

/* One pass over the whole file: its uncompressed size and, when base is not NULL, the
 * auto base (1 if an index 0 appears anywhere) after validating every line. */
static kl_status prescan(const char *path, int64_t n_features, kl_dtype dtype, int *base,
                         int64_t *size) {
  svm_reader r;
  svm_rows b;
  svm_parser p;
  svm_rows_init(&b, dtype);
  kl_status st = svm_reader_open(&r, path);
  if (st) return st;
  svm_parser_init(&p, &r, &b, -1, n_features);
  for (;;) {
    char *s, *e;
    int got;
    st = svm_reader_line(&r, &s, &e, &got);
    if (st || !got) break;
    if (base) {
      st = svm_parse_line(&p, s, e);
      if (st) break;
      svm_rows_clear(&b);
    }
  }
  if (!st && base) {
    *base = (p.min_raw == 0);
    if (*base && p.max_raw >= n_features)
      st = kl_seterr(KL_EFORMAT,
                     "%s:%lld: index %lld past n_features=%lld (the file is zero-based: it has "
                     "an index 0)",
                     path, (long long)p.max_raw_line, (long long)p.max_raw,
                     (long long)n_features);
  }
  *size = r.off + (int64_t)r.len;
  svm_rows_free(&b);
  svm_reader_close(&r);
  return st;
}

/* A file without any sample line is refused at open, as kl_svmlight_load refuses it: reads
 * up to the first line that is not blank or a comment (the first line, in a data file). */
static kl_status check_not_empty(const char *path) {
  svm_reader r;
  KL_TRY(svm_reader_open(&r, path));
  kl_status st;
  for (;;) {
    char *s, *e;
    int got;
    st = svm_reader_line(&r, &s, &e, &got);
    if (st) break;
    if (!got) {
      st = r.line == 0 ? kl_seterr(KL_EFORMAT, "%s:1: no data (the file is empty)", path)
                       : svm_err(&r, 0, KL_EFORMAT, "no data (only blank and comment lines)");
      break;
    }
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\v' || *s == '\f')) s++;
    if (s < e && *s != '#') break; /* a sample line (checked when it is read) */
  }
  svm_reader_close(&r);
  return st;
}

kl_status kl_svmlight_iter_open(const char *path, int64_t n_features, int64_t batch_size,
                                int zero_based, int num_parts, int part_index,
                                kl_dtype dtype, kl_svmlight_iter **out) {
  KL_CHECK(path && out, KL_EINVAL, "LibSVMIter: path and out must not be NULL");
  *out = NULL;
  KL_CHECK(n_features > 0 && n_features <= KL_MAX_NUMEL, KL_EINVAL,
           "LibSVMIter: n_features must be a positive integer. Received: n_features=%lld",
           (long long)n_features);
  KL_CHECK(batch_size > 0 && batch_size <= ((int64_t)1 << 31), KL_EINVAL,
           "LibSVMIter: batch_size must be a positive integer. Received: batch_size=%lld",
           (long long)batch_size);
  KL_CHECK(zero_based >= -1 && zero_based <= 1, KL_EINVAL,
           "LibSVMIter: zero_based must be -1 (auto), 0 or 1. Received: zero_based=%d",
           zero_based);
  KL_CHECK(num_parts >= 1, KL_EINVAL,
           "LibSVMIter: num_parts must be a positive integer. Received: num_parts=%d", num_parts);
  KL_CHECK(part_index >= 0 && part_index < num_parts, KL_EINVAL,
           "LibSVMIter: part_index must be in [0, %d). Received: part_index=%d", num_parts,
           part_index);
  KL_CHECK(dtype == KL_FLOAT32 || dtype == KL_FLOAT64, KL_EDTYPE,
           "LibSVMIter: dtype must be float32 or float64. Received: dtype=%s",
           kl_dtype_name(dtype));

  kl_svmlight_iter *it = kl_calloc(1, sizeof *it);
  if (!it) return KL_ENOMEM;
  kl_status st = KL_OK;
  size_t n = strlen(path);
  it->path = kl_malloc(n + 1);
  if (!it->path) {
    kl_free(it);
    return KL_ENOMEM;
  }
  memcpy(it->path, path, n + 1);
  it->n_features = n_features;
  it->batch_size = batch_size;
  it->dtype = dtype;
  svm_rows_init(&it->b, dtype);

  st = svm_reader_open(&it->r, it->path);
  if (!st) st = check_not_empty(it->path);
  if (st) goto fail;
  int64_t size = -1;
  int base = zero_based;
  if (zero_based == -1 || (num_parts > 1 && svm_reader_is_gzip(&it->r))) {
    st = prescan(it->path, n_features, dtype, zero_based == -1 ? &base : NULL, &size);
    if (st) goto fail;
  } else if (num_parts > 1) {
    struct stat sb;
    if (stat(it->path, &sb) != 0) {
      st = kl_seterr(KL_EIO, "%s:0: cannot stat the file", it->path);
      goto fail;
    }
    size = (int64_t)sb.st_size;
  }
  it->zero_based = base;
  if (num_parts == 1) {
    it->begin = 0;
    it->end = INT64_MAX;
  } else {
    /* floor(p * size / n) without overflow */
    int64_t q = size / num_parts, rem = size % num_parts;
    it->begin = q * part_index + rem * part_index / num_parts;
    it->end = part_index + 1 == num_parts
                  ? INT64_MAX
                  : q * (part_index + 1) + rem * (part_index + 1) / num_parts;
  }
  svm_parser_init(&it->p, &it->r, &it->b, base, n_features);
  *out = it;
  return KL_OK;
fail:
  kl_svmlight_iter_close(it);
  return st;
}

/* Positions the reader at the first line whose first byte is >= begin. */
static kl_status iter_start(kl_svmlight_iter *it) {
  it->p.qid_state = -1;
  return svm_reader_start_at(&it->r, it->begin);
}

/* Makes *t a tensor the iterator may overwrite: ours if nobody else holds it, else new. */
static kl_status batch_tensor(kl_svmlight_iter *it, kl_tensor **t, int csr, int64_t nnz) {
  if (*t && __atomic_load_n(&(*t)->refcount, __ATOMIC_ACQUIRE) > 1) {
    kl_tensor_release(*t);
    *t = NULL;
  }
  if (!*t) {
    if (csr) return kl_tensor_new_csr(it->dtype, it->batch_size, it->n_features, nnz, t);
    int64_t shape[1] = {it->batch_size};
    return kl_tensor_new_dense(KL_FLOAT64, 1, shape, t); /* labels: float64 */
  }
  (*t)->shape[0] = it->batch_size; /* a short last batch shrank it; reserve checks it */
  if (csr) return kl_tensor_reserve(*t, nnz);
  return KL_OK;
}

/* Copies the parsed rows into the batch tensors (shape[0] = the rows of this batch; the
 * indptr and label buffers keep room for batch_size rows). */
static kl_status fill_batch(kl_svmlight_iter *it) {
  const svm_rows *b = &it->b;
  KL_TRY(batch_tensor(it, &it->X, 1, b->nnz));
  KL_TRY(batch_tensor(it, &it->y, 0, 0));
  kl_tensor *X = it->X, *y = it->y;
  X->shape[0] = b->rows;
  X->nnz = b->nnz;
  memcpy(X->indptr, b->indptr, (size_t)(b->rows + 1) * sizeof(int64_t));
  if (b->nnz) {
    memcpy(X->indices, b->indices, (size_t)b->nnz * sizeof(int64_t));
    memcpy(X->data, b->data, (size_t)b->nnz * kl_dtype_size(it->dtype));
  }
  y->shape[0] = b->rows;
  y->nnz = b->rows;
  memcpy(y->data, b->y, (size_t)b->rows * sizeof(double));
  return KL_OK;
}

kl_status kl_svmlight_iter_next(kl_svmlight_iter *it, kl_tensor **X, kl_tensor **y,
                                int *done) {
  KL_CHECK(it && X && y && done, KL_EINVAL, "LibSVMIter: next: NULL argument");
  *X = *y = NULL;
  *done = 1;
  KL_CHECK(it->err == KL_OK, KL_EINVAL,
           "LibSVMIter: %s: an error stopped this pass; reset() starts a new one", it->path);
  kl_status st = KL_OK;
  if (!it->started) {
    st = iter_start(it);
    if (st) goto fail;
    it->started = 1;
  }
  svm_rows_clear(&it->b);
  while (!it->finished && it->b.rows < it->batch_size) {
    char *s, *e;
    int got;
    st = svm_reader_line(&it->r, &s, &e, &got);
    if (st) goto fail;
    if (!got || it->r.line_off >= it->end) {
      it->finished = 1;
      break;
    }
    st = svm_parse_line(&it->p, s, e);
    if (st) goto fail;
  }
  if (it->b.rows == 0) return KL_OK;
  st = fill_batch(it);
  if (st) goto fail;
  *X = it->X;
  *y = it->y;
  *done = 0;
  return KL_OK;
fail:
  it->err = st;
  return st;
}

kl_status kl_svmlight_iter_reset(kl_svmlight_iter *it) {
  KL_CHECK(it, KL_EINVAL, "LibSVMIter: reset: NULL iterator");
  it->started = it->finished = 0;
  it->err = KL_OK;
  svm_rows_clear(&it->b);
  return KL_OK;
}

void kl_svmlight_iter_close(kl_svmlight_iter *it) {
  if (!it) return;
  svm_reader_close(&it->r);
  svm_rows_free(&it->b);
  kl_tensor_release(it->X);
  kl_tensor_release(it->y);
  kl_free(it->path);
  kl_free(it);
}
