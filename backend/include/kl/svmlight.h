/* svmlight.h: LibSVM/svmlight text files: a strict reader, a writer and a streaming iterator. */
#ifndef KL_SVMLIGHT_H
#define KL_SVMLIGHT_H

#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The format, one sample per line:   <label> [qid:<int>] <index>:<value> ...  [# comment]
 * Labels and values are what C's strtod reads in the "C" locale, wholly (an out-of-range
 * value is an error; underflow to 0 or a denormal is not; float32 values beyond its range are);
 * indices are decimal integers, strictly increasing on a line (unsorted or duplicated
 * indices are an error, as in scikit-learn). '#' starts a comment running to the end of
 * the line; blank lines are skipped; CRLF and a missing final newline are accepted.
 * Gzip files are read transparently (recognised by their magic bytes 1f 8b, not by name),
 * member after member; bytes after the last member that do not start another are an error,
 * and bzip2, xz, zstd and zip files (by their magic bytes) are refused as unsupported.
 *
 * Every error is KL_EFORMAT (bad content) or KL_EIO (open/read failure, corrupt gzip) with
 * the message "path:line: what", line 1-based; line 0 means before the first line (a file
 * that cannot be opened). Example: "data.svm:3: index 0 in a one-based file". */

/* Options of kl_svmlight_load; kl_svmlight_opts_default() gives
 * {n_features = 0, zero_based = -1, dtype = KL_FLOAT32, want_qid = 0}. */
typedef struct kl_svmlight_opts {
  int64_t n_features; /* columns of X; 0 = infer (largest index + 1); an index past it errs */
  int zero_based;     /* 1: indices start at 0; 0: at 1 (index 0 errs); -1 auto: one-based
                         unless some index 0 appears anywhere in the file (scikit-learn) */
  kl_dtype dtype;     /* KL_FLOAT32 or KL_FLOAT64, for X's values (y is always float64) */
  int want_qid;       /* 1: return the qid column (all lines or none must have qid:) */
} kl_svmlight_opts;

kl_svmlight_opts kl_svmlight_opts_default(void);

/* Reads a whole file. *X: CSR (rows x n_features, dtype), *y: dense float64 (rows: labels
 * keep their precision, as scikit-learn's y), both new and
 * owned by the caller. qid may be NULL; when want_qid is set and qid is not NULL, *qid is a
 * new int64 dense (rows) tensor, or NULL when the file has no qid. opts NULL = defaults.
 * A file without any sample line (empty, or only comments) is an error "no data". */
kl_status kl_svmlight_load(const char *path, const kl_svmlight_opts *opts, kl_tensor **X,
                           kl_tensor **y, kl_tensor **qid);

/* Writes X (CSR or dense 2-d, float32/float64) and y (dense, rows or rows x 1, any dtype)
 * as svmlight text: each value with the fewest significant digits that read back as the
 * same float32 / float64 (2.1, not 2.1000000000000001), so loading gives back identical
 * bits. zero_based 0 writes one-based indices (the LibSVM convention).
 * Dense X writes its nonzeros; CSR X writes every stored entry. A path ending in ".gz"
 * is written gzip-compressed. */
kl_status kl_svmlight_dump(const kl_tensor *X, const kl_tensor *y, const char *path,
                           int zero_based);

/* ------------------------------------------------------------------ streaming */

/* A streaming reader: batches of at most batch_size rows, memory bounded by the batch. */
typedef struct kl_svmlight_iter kl_svmlight_iter;

/* Opens path for streaming. n_features (> 0) is required; zero_based 1/0, or -1 (auto),
 * which costs one extra pass over the whole file at open (the base must be known before
 * the first batch, and it is decided over the whole file). The file is split into
 * num_parts byte ranges of the (uncompressed) stream; part part_index (0-based) holds
 * the lines whose first byte lies in [p*size/num_parts, (p+1)*size/num_parts), so the
 * parts together cover every line exactly once. For a .gz file with num_parts > 1 the
 * open decompresses the file once to learn its size, and each pass of a later part
 * decompresses (and skips) the bytes before it. A file without any sample line is refused
 * at open ("no data", as kl_svmlight_load); a part without sample lines gives no batch: the
 * first next() says done. Line numbers in a part's errors are
 * the file's (counted from the start only when an error is reported). *out owned by the
 * caller (kl_svmlight_iter_close). */
kl_status kl_svmlight_iter_open(const char *path, int64_t n_features, int64_t batch_size,
                                int zero_based, int num_parts, int part_index,
                                kl_dtype dtype, kl_svmlight_iter **out);

/* The next batch: *X CSR (n x n_features), *y dense float64 (n), 1 <= n <= batch_size, and
 * *done = 0; at the end of the part *X = *y = NULL and *done = 1. The tensors are
 * borrowed: the iterator owns them and reuses their buffers (grow-only) for the next
 * batch, so they are valid until the next call to next/reset/close. To keep one longer,
 * kl_tensor_retain it: the iterator then leaves it alone and allocates a fresh one. */
kl_status kl_svmlight_iter_next(kl_svmlight_iter *it, kl_tensor **X, kl_tensor **y,
                                int *done);

/* Rewinds to the start of the part for a new pass. */
kl_status kl_svmlight_iter_reset(kl_svmlight_iter *it);

/* Frees the iterator and its batch tensors (those retained by a caller live on). NULL-safe. */
void kl_svmlight_iter_close(kl_svmlight_iter *it);

#ifdef __cplusplus
}
#endif
#endif /* KL_SVMLIGHT_H */
