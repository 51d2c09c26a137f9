/* svmlight_internal.h: the buffered line reader and the line parser shared by load and the iterator. */
#ifndef KL_SVMLIGHT_INTERNAL_H
#define KL_SVMLIGHT_INTERNAL_H

#include <zlib.h>

#include "kl/svmlight.h"

#define SVM_CHUNK ((size_t)1 << 20) /* bytes read per refill */

/* The byte source under the reader: a plain file, or a gzip file (magic 1f 8b) inflated
 * member after member; bytes after the last member that do not start another one are an
 * error (gzread would drop them silently), and bzip2, xz, zstd and zip files are refused
 * by name at open. */
#define SVM_RAW_CHUNK ((size_t)1 << 17)
typedef struct svm_source {
  int fd;           /* -1 when closed */
  int gz;           /* 1: gzip */
  z_stream zs;      /* gz: the inflater (in: raw) */
  unsigned char *raw;
  int64_t raw_off;  /* bytes read from fd */
  int raw_eof;
  int member_end;   /* gz: the last inflate ended a member */
  int done;         /* the end of the stream was reached */
  int64_t upos;     /* stream offset of the next byte read */
} svm_source;

/* Reads lines from a plain or gzip file through one large buffer; lines straddling refills
 * are moved to the front, and the buffer doubles for a line longer than it. */
typedef struct svm_reader {
  svm_source src;
  const char *path;
  char *buf;        /* cap + 1 bytes: one spare for the '\n' sentinel after a last line */
  size_t cap, pos, len;
  int eof;
  int64_t off;      /* stream offset of buf[0] */
  int64_t nul_off;  /* stream offset of the first NUL byte seen, -1 if none */
  int64_t line;     /* number (1-based) of the last line returned, when line_known */
  int line_known;   /* 0 after a seek into the middle: resolved by counting on error */
  int64_t line_off; /* stream offset of the last line returned */
} svm_reader;

/* Opens path (KL_EIO "path:0: cannot open ..." on failure; KL_EFORMAT "path:0: ... files
 * are not supported" for another compression). r is zeroed first. */
kl_status svm_reader_open(svm_reader *r, const char *path);
void svm_reader_close(svm_reader *r);
/* Positions the reader at stream offset off (gzseek: forward decompression for .gz). */
kl_status svm_reader_seek(svm_reader *r, int64_t off);
/* Positions the reader at the first line whose first byte is at stream offset >= begin
 * (the start of a part: the partial line before it is skipped, a NUL in it ignored). */
kl_status svm_reader_start_at(svm_reader *r, int64_t begin);
/* Next line [*s, *e) without its '\n'; **e is '\n' (a sentinel at the end of the file).
 * Valid until the next call. *got = 0 at the end of the stream. */
kl_status svm_reader_line(svm_reader *r, char **s, char **e, int *got);
/* Records "path:line: msg" for the last line returned (+ahead lines) and returns code. */
kl_status svm_err(svm_reader *r, int64_t ahead, kl_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Whether the stream is gzip (0 for a plain file). */
int svm_reader_is_gzip(svm_reader *r);

/* Rows under construction: a growable CSR plus labels (and qids). */
typedef struct svm_rows {
  kl_dtype dtype;   /* of data */
  int64_t rows, nnz, cap_rows, cap_nnz;
  int64_t *indptr;  /* cap_rows + 1 */
  int64_t *indices; /* cap_nnz */
  void *data;       /* cap_nnz values of dtype */
  double *y;        /* cap_rows */
  int64_t *qid;     /* cap_rows */
} svm_rows;

void svm_rows_init(svm_rows *b, kl_dtype dtype);
void svm_rows_free(svm_rows *b);
void svm_rows_clear(svm_rows *b);
/* Before handing the arrays over: room for rows + 1 entries in indptr and nnz (>= 1) in
 * indices and data, exactly (no doubling). cap_rows stays (it counts y and qid). */
kl_status svm_rows_reserve(svm_rows *b, int64_t rows, int64_t nnz);

/* Parses lines into rows. Indices are stored as written minus shift. */
typedef struct svm_parser {
  svm_reader *r;
  svm_rows *out;
  int zero_based;         /* 1, 0 (index 0 is an error), -1 auto (decided by the caller) */
  int64_t shift;          /* subtracted from each index when stored (1 for one-based) */
  int64_t n_features;     /* 0 = no limit */
  int qid_state;          /* -1 not yet seen a sample line, 0 lines have no qid, 1 they do */
  int64_t qid_line;       /* the first sample line, which set qid_state */
  int64_t min_raw, max_raw; /* smallest / largest index as written (-1 none) */
  int64_t max_raw_line;     /* first line holding max_raw */
  int64_t size_hint;        /* bytes of input from stream offset hint_begin on (0 unknown): */
  int64_t hint_begin;       /* growth extrapolates the counts to it instead of doubling */
} svm_parser;

void svm_parser_init(svm_parser *p, svm_reader *r, svm_rows *out, int zero_based,
                     int64_t n_features);
/* Parses one line [s, e) (*e must be '\n'); appends a row unless the line is blank. */
kl_status svm_parse_line(svm_parser *p, char *s, char *e);

/* Test hook: kl_svmlight_load parses plain files of at least min_bytes in byte-range parts
 * on the OpenMP threads; parts 0 = one a thread, of at least SVM_PART_MIN bytes, else
 * exactly that many (even on one thread). Defaults: SVM_PAR_MIN_DEFAULT, 0. */
#define SVM_PAR_MIN_DEFAULT ((int64_t)8 << 20)
#define SVM_PART_MIN ((int64_t)2 << 20) /* bytes a part at least */
void svm_set_parallel(int64_t min_bytes, int parts);
/* How the calling thread's last kl_svmlight_load parsed: the number of parts (1 =
 * sequentially), or -1 when a parallel attempt met an error or a cross-part condition and
 * the file was parsed again sequentially (which then reports the error). */
int svm_last_load_parts(void);

#endif
