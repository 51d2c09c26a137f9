/* svmlight_parse.c: the buffered line reader (plain or gzip) and the strict svmlight line tokenizer. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svmlight_internal.h"

/* ------------------------------------------------------------------ reader */

/* ------------------------------------------------------------------ source */

static void src_close(svm_source *q) {
  if (q->fd >= 0) close(q->fd);
  if (q->gz) inflateEnd(&q->zs);
  kl_free(q->raw);
  memset(q, 0, sizeof *q);
  q->fd = -1;
}

/* Other compressions, by their magic bytes: refused by name. */
static const char *other_compression(const unsigned char *m, ssize_t n) {
  if (n >= 3 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h') return "bzip2";
  if (n >= 6 && !memcmp(m, "\xfd" "7zXZ\0", 6)) return "xz";
  if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) return "zstd";
  if (n >= 4 && !memcmp(m, "PK\3\4", 4)) return "zip";
  return NULL;
}

static kl_status src_open(svm_source *q, const char *path) {
  memset(q, 0, sizeof *q);
  q->fd = open(path, O_RDONLY);
  if (q->fd < 0) {
    kl_status st = kl_seterr(KL_EIO, "%s:0: cannot open: %s", path, strerror(errno));
    q->fd = -1;
    return st;
  }
  unsigned char m[6];
  ssize_t n = pread(q->fd, m, sizeof m, 0);
  const char *other = n > 0 ? other_compression(m, n) : NULL;
  if (other) {
    src_close(q);
    return kl_seterr(KL_EFORMAT, "%s:0: %s-compressed files are not supported (keras-lua reads "
                     "plain text and gzip; decompress it first)", path, other);
  }
  q->raw = kl_malloc(SVM_RAW_CHUNK);
  if (!q->raw) {
    src_close(q);
    return KL_ENOMEM;
  }
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
    if (inflateInit2(&q->zs, 16 + MAX_WBITS) != Z_OK) {
      src_close(q);
      return KL_ENOMEM;
    }
    q->gz = 1;
  }
  return KL_OK;
}

/* Reads more raw bytes after the avail_in ones (moved to the front). -1 on a read error. */
static int src_more(svm_source *q) {
  z_stream *z = &q->zs;
  if (z->avail_in && z->next_in != q->raw) memmove(q->raw, z->next_in, z->avail_in);
  z->next_in = q->raw;
  for (;;) {
    ssize_t k = read(q->fd, q->raw + z->avail_in, SVM_RAW_CHUNK - z->avail_in);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) q->raw_eof = 1;
    z->avail_in += (uInt)k;
    q->raw_off += k;
    return 0;
  }
}

/* Inflates up to n bytes into out (*got; 0 at the end). *why: the problem, NULL if none. */
static void gz_read(svm_source *q, char *out, size_t n, size_t *got, const char **why,
                    char *whybuf) {
  z_stream *z = &q->zs;
  z->next_out = (Bytef *)out;
  z->avail_out = (uInt)n;
  *why = NULL;
  while (z->avail_out > 0 && !q->done) {
    if ((z->avail_in == 0 || (q->member_end && z->avail_in < 2)) && !q->raw_eof && src_more(q)) {
      *why = strerror(errno);
      break;
    }
    if (q->member_end) { /* after a member: the end, another member, or trailing bytes */
      if (z->avail_in == 0) {
        q->done = 1;
        break;
      }
      if (z->avail_in < 2 || z->next_in[0] != 0x1f || z->next_in[1] != 0x8b) {
        snprintf(whybuf, 160, "trailing bytes after the end of the gzip stream, at byte %lld "
                 "of the file (not another gzip member)", (long long)(q->raw_off - z->avail_in));
        *why = whybuf;
        break;
      }
      inflateReset(z);
      q->member_end = 0;
    }
    if (z->avail_in == 0 && q->raw_eof) {
      *why = "truncated gzip stream (unexpected end of file)";
      break;
    }
    int rc = inflate(z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      q->member_end = 1;
    } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && z->avail_in == 0)) {
      snprintf(whybuf, 160, "corrupt gzip stream (%s)", z->msg ? z->msg : "inflate failed");
      *why = whybuf;
      break;
    }
  }
  *got = n - z->avail_out;
  q->upos += (int64_t)*got;
}

/* Up to n bytes of the stream into out: *got > 0, or 0 at its end. KL_EIO with the reason. */
static kl_status src_read(svm_reader *r, char *out, size_t n, size_t *got) {
  svm_source *q = &r->src;
  char whybuf[160];
  const char *why = NULL;
  *got = 0;
  if (!q->gz) {
    for (;;) {
      ssize_t k = read(q->fd, out, n);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) why = strerror(errno);
      else *got = (size_t)k;
      break;
    }
    q->upos += (int64_t)*got;
  } else {
    gz_read(q, out, n, got, &why, whybuf);
  }
  if (why && *got == 0) return svm_err(r, 1, KL_EIO, "read error: %s", why);
  return KL_OK; /* bytes before a problem are returned first; the next read reports it */
}

kl_status svm_reader_open(svm_reader *r, const char *path) {
  memset(r, 0, sizeof *r);
  r->path = path;
  r->nul_off = -1;
  r->line_known = 1;
  KL_TRY(src_open(&r->src, path));
  r->cap = SVM_CHUNK;
  r->buf = kl_malloc(r->cap + 1);
  if (!r->buf) {
    src_close(&r->src);
    return KL_ENOMEM;
  }
  return KL_OK;
}

void svm_reader_close(svm_reader *r) {
  if (r->src.raw) src_close(&r->src); /* raw is set by a successful open */
  kl_free(r->buf);
  r->buf = NULL;
}

int svm_reader_is_gzip(svm_reader *r) { return r->src.gz; }

/* Moves the source to stream offset off: a plain file seeks; a gzip one inflates from the
 * start (or from where it is, when off is ahead) and drops the bytes before off. */
static kl_status src_seek(svm_reader *r, int64_t off) {
  svm_source *q = &r->src;
  if (!q->gz) {
    if (lseek(q->fd, (off_t)off, SEEK_SET) != (off_t)off)
      return kl_seterr(KL_EIO, "%s:0: cannot seek to byte %lld: %s", r->path, (long long)off,
                       strerror(errno));
    q->upos = off;
    return KL_OK;
  }
  if (off < q->upos || q->done) {
    if (lseek(q->fd, 0, SEEK_SET) != 0)
      return kl_seterr(KL_EIO, "%s:0: cannot seek to byte 0: %s", r->path, strerror(errno));
    inflateReset(&q->zs);
    q->zs.avail_in = 0;
    q->raw_off = q->upos = 0;
    q->raw_eof = q->member_end = q->done = 0;
  }
  char tmp[1 << 14];
  while (q->upos < off) {
    size_t got, want = (size_t)(off - q->upos) < sizeof tmp ? (size_t)(off - q->upos) : sizeof tmp;
    KL_TRY(src_read(r, tmp, want, &got));
    if (got == 0)
      return kl_seterr(KL_EIO, "%s:0: cannot seek to byte %lld: past the end", r->path,
                       (long long)off);
  }
  return KL_OK;
}

kl_status svm_reader_seek(svm_reader *r, int64_t off) {
  KL_TRY(src_seek(r, off));
  r->pos = r->len = 0;
  r->eof = 0;
  r->off = off;
  r->line = 0;
  r->line_off = off;
  r->line_known = (off == 0);
  return KL_OK;
}

kl_status svm_reader_start_at(svm_reader *r, int64_t begin) {
  if (begin == 0) return svm_reader_seek(r, 0);
  /* the line holding byte begin-1 belongs to an earlier part unless that byte is '\n'
   * (then it is an empty remainder): skip through the end of that line */
  KL_TRY(svm_reader_seek(r, begin - 1));
  char *s, *e;
  int got;
  kl_status st = svm_reader_line(r, &s, &e, &got);
  if (st == KL_EFORMAT) kl_clearerr(); /* a NUL in that line is the earlier part's to report */
  return st == KL_EFORMAT ? KL_OK : st;
}

/* Counts '\n' bytes in [0, upto) with a second handle (error paths only). -1 on failure. */
static int64_t count_newlines(const char *path, int64_t upto) {
  svm_reader t;
  memset(&t, 0, sizeof t);
  t.path = path;
  t.line_known = 1;
  if (src_open(&t.src, path) != KL_OK) return -1;
  char tmp[65536];
  int64_t seen = 0, count = 0;
  while (seen < upto) {
    int64_t left = upto - seen;
    size_t n, want = left < (int64_t)sizeof tmp ? (size_t)left : sizeof tmp;
    if (src_read(&t, tmp, want, &n) != KL_OK || n == 0) break;
    for (const char *c = tmp; (c = memchr(c, '\n', (size_t)(tmp + n - c))) != NULL; c++) count++;
    seen += (int64_t)n;
  }
  src_close(&t.src);
  return count;
}

kl_status svm_err(svm_reader *r, int64_t ahead, kl_status code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int64_t line;
  if (r->line_known) {
    line = r->line + ahead;
  } else {
    int64_t nl = count_newlines(r->path, ahead ? r->off + (int64_t)r->pos : r->line_off);
    line = nl < 0 ? 0 : nl + 1;
  }
  return kl_seterr(code, "%s:%lld: %s", r->path, (long long)line, msg);
}

/* Appends up to cap - len bytes. Sets eof at the end of the stream; a truncated or corrupt
 * gzip stream is KL_EIO. */
static kl_status reader_fill(svm_reader *r) {
  size_t room = r->cap - r->len, got = 0;
  /* the bytes before a problem come first: it is reported by the next fill, at its line */
  KL_TRY(src_read(r, r->buf + r->len, room, &got));
  int64_t n = (int64_t)got;
  if (n == 0 && room > 0) {
    r->eof = 1;
    return KL_OK;
  }
  if (r->nul_off < 0) {
    const char *z = memchr(r->buf + r->len, 0, (size_t)n);
    if (z) r->nul_off = r->off + (z - r->buf);
  }
  r->len += (size_t)n;
  return KL_OK;
}

kl_status svm_reader_line(svm_reader *r, char **s, char **e, int *got) {
  for (;;) {
    char *start = r->buf + r->pos;
    char *nl = r->len > r->pos ? memchr(start, '\n', r->len - r->pos) : NULL;
    char *end = nl;
    if (!nl && r->eof) {
      if (r->pos == r->len) {
        *got = 0;
        return KL_OK;
      }
      end = r->buf + r->len; /* a last line without '\n' */
      *end = '\n';           /* the spare byte */
    }
    if (end) {
      r->line_off = r->off + (int64_t)r->pos;
      r->line++;
      r->pos = (size_t)(end - r->buf) + (nl ? 1 : 0);
      if (r->nul_off >= r->line_off && r->nul_off < r->line_off + (end - start))
        return svm_err(r, 0, KL_EFORMAT, "NUL byte at column %lld",
                       (long long)(r->nul_off - r->line_off + 1));
      *s = start;
      *e = end;
      *got = 1;
      return KL_OK;
    }
    /* no complete line in the buffer: keep the partial line, make room, read more */
    if (r->pos > 0) {
      memmove(r->buf, start, r->len - r->pos);
      r->off += (int64_t)r->pos;
      r->len -= r->pos;
      r->pos = 0;
    }
    if (r->len == r->cap) {
      char *nb = kl_realloc(r->buf, r->cap * 2 + 1);
      if (!nb) return KL_ENOMEM;
      r->buf = nb;
      r->cap *= 2;
    }
    kl_status st = reader_fill(r);
    if (st) return st;
  }
}

/* -------------------------------------------------------------------- rows */

void svm_rows_init(svm_rows *b, kl_dtype dtype) {
  memset(b, 0, sizeof *b);
  b->dtype = dtype;
}

void svm_rows_free(svm_rows *b) {
  kl_free(b->indptr);
  kl_free(b->indices);
  kl_free(b->data);
  kl_free(b->y);
  kl_free(b->qid);
  memset(b, 0, sizeof *b);
}

void svm_rows_clear(svm_rows *b) {
  b->rows = b->nnz = 0;
  if (b->indptr) b->indptr[0] = 0;
}

/* What a count reached after used of total input bytes extrapolates to (+1/8), or 0
 * when unknown (no size hint, or too little read yet to tell). */
static int64_t extrapolate(const svm_parser *p, int64_t count) {
  if (p->size_hint <= 0) return 0;
  int64_t used = p->r->line_off - p->hint_begin;
  if (used < 65536 || used >= p->size_hint) return 0;
  double est = (double)count / (double)used * (double)p->size_hint * 1.125;
  return est < (double)KL_MAX_NUMEL ? (int64_t)est : 0;
}

static kl_status rows_grow_rows(svm_rows *b, int64_t est) {
  int64_t cap = b->cap_rows ? b->cap_rows * 2 : 1024;
  if (est > cap) cap = est;
  int64_t *ip = kl_realloc(b->indptr, (size_t)(cap + 1) * sizeof *ip);
  if (!ip) return KL_ENOMEM;
  if (!b->indptr) ip[0] = 0;
  b->indptr = ip;
  double *y = kl_realloc(b->y, (size_t)cap * sizeof *y);
  if (!y) return KL_ENOMEM;
  b->y = y;
  int64_t *q = kl_realloc(b->qid, (size_t)cap * sizeof *q);
  if (!q) return KL_ENOMEM;
  b->qid = q;
  b->cap_rows = cap;
  return KL_OK;
}

/* Indices and values with room for cap entries. */
static kl_status rows_realloc_nnz(svm_rows *b, int64_t cap) {
  int64_t *ix = kl_realloc(b->indices, (size_t)cap * sizeof *ix);
  if (!ix) return KL_ENOMEM;
  b->indices = ix;
  void *d = kl_realloc(b->data, (size_t)cap * kl_dtype_size(b->dtype));
  if (!d) return KL_ENOMEM;
  b->data = d;
  b->cap_nnz = cap;
  return KL_OK;
}

static kl_status rows_grow_nnz(svm_rows *b, int64_t need, int64_t est) {
  int64_t cap = b->cap_nnz ? b->cap_nnz : 16384;
  while (cap < need) cap *= 2;
  if (est > cap) cap = est;
  return rows_realloc_nnz(b, cap);
}

kl_status svm_rows_reserve(svm_rows *b, int64_t rows, int64_t nnz) {
  if (rows > b->cap_rows || !b->indptr) {
    int64_t *ip = kl_realloc(b->indptr, (size_t)(rows + 1) * sizeof *ip);
    if (!ip) return KL_ENOMEM;
    if (!b->indptr) ip[0] = 0;
    b->indptr = ip;
  }
  if (nnz < 1) nnz = 1;
  if (nnz > b->cap_nnz || !b->indices) return rows_realloc_nnz(b, nnz);
  return KL_OK;
}

/* ------------------------------------------------------------------ tokens */

/* Byte classes: 0 token byte, 1 blank, 2 '#' (comment to end of line), 3 '\n' (line end). */
static const unsigned char cls[256] = {[' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\v'] = 1,
                                       ['\f'] = 1, ['#'] = 2, ['\n'] = 3};
#define IS_TOK(c) (cls[(unsigned char)(c)] == 0)
#define IS_BLANK(c) (cls[(unsigned char)(c)] == 1)
#define IS_END(c) (cls[(unsigned char)(c)] != 0) /* a byte that ends a token */

/* Copies token [s, e) for a message: at most 40 bytes, non-printable bytes as \xNN. */
static const char *show(char out[200], const char *s, const char *e) {
  size_t k = 0;
  for (const char *c = s; c < e && k < 180; c++) {
    unsigned char u = (unsigned char)*c;
    if (c - s >= 40) {
      memcpy(out + k, "...", 3);
      k += 3;
      break;
    }
    if (u >= 32 && u < 127 && u != '\'') out[k++] = (char)u;
    else k += (size_t)snprintf(out + k, 8, "\\x%02x", u);
  }
  out[k] = 0;
  return out;
}

static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Clinger's fast path: a decimal with <= 19 significant digits, a mantissa below 2^53 and
 * a power of ten within 10^+-22 converts exactly with one IEEE multiply or divide, so the
 * result equals strtod's. Returns 0 when the token needs the general path. */
static int fast_double(const char *s, const char *e, double *out) {
  int neg = 0;
  if (s < e && (*s == '-' || *s == '+')) neg = (*s++ == '-');
  uint64_t m = 0;
  int nd = 0, digits = 0, frac = 0;
  for (; s < e && (unsigned)(*s - '0') < 10; s++, digits++) {
    if (m || *s != '0') {
      if (++nd > 19) return 0;
      m = m * 10 + (uint64_t)(*s - '0');
    }
  }
  if (s < e && *s == '.') {
    for (s++; s < e && (unsigned)(*s - '0') < 10; s++, digits++, frac++) {
      if (m || *s != '0') {
        if (++nd > 19) return 0;
        m = m * 10 + (uint64_t)(*s - '0');
      }
    }
  }
  if (!digits) return 0;
  int ex = 0;
  if (s < e && (*s == 'e' || *s == 'E')) {
    s++;
    int eneg = 0;
    if (s < e && (*s == '-' || *s == '+')) eneg = (*s++ == '-');
    if (s >= e) return 0;
    for (; s < e && (unsigned)(*s - '0') < 10; s++) {
      if (ex > 10000) return 0;
      ex = ex * 10 + (*s - '0');
    }
    if (eneg) ex = -ex;
  }
  if (s != e) return 0;
  if (m > ((uint64_t)1 << 53)) return 0;
  int p = ex - frac;
  double v = (double)m;
  if (m == 0) v = 0.0;
  else if (p >= 0 && p <= 22) v *= p10[p];
  else if (p < 0 && p >= -22) v /= p10[-p];
  else return 0;
  *out = neg ? -v : v;
  return 1;
}

/* A number as strtod reads it in the "C" locale, ending exactly at e (a non-number byte
 * follows it). Returns 0 on a malformed token, -1 on overflow. Underflow to 0/denormals is
 * accepted. Under a locale whose decimal point is not '.', the token is retried with '.'
 * swapped for it (as Lua's own lua_str2number does), and that locale's point is refused. */
static int parse_double(const char *s, const char *e, double *out) {
  if (fast_double(s, e, out)) return 1;
  if (s == e) return 0;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end != e) {
    char dp = localeconv()->decimal_point[0];
    char tmp[256];
    if (dp == '.' || e - s >= (ptrdiff_t)sizeof tmp || memchr(s, dp, (size_t)(e - s))) return 0;
    for (ptrdiff_t i = 0; i < e - s; i++) tmp[i] = s[i] == '.' ? dp : s[i];
    tmp[e - s] = 0;
    errno = 0;
    v = strtod(tmp, &end);
    if (end != tmp + (e - s)) return 0;
  }
  if (errno == ERANGE && fabs(v) > 1.0) return -1;
  *out = v;
  return 1;
}

/* The common case of a value or label, fused with finding its end: [sign] digits [. digits]
 * with at most 19 digits in all (so the mantissa cannot overflow) and a mantissa up to 2^53,
 * followed by a byte that ends the token. Then the power of ten is 10^-19..10^0 and
 * Clinger's fast path gives strtod's double exactly (one IEEE division of two exact
 * doubles). Returns 0, leaving *end alone, for anything else (exponents, long mantissas,
 * hex, inf/nan, malformed tokens): the caller scans the token and takes parse_double. */
static inline int short_double(const char *s, const char **end, double *out) {
  const char *c = s;
  int neg = 0;
  if (*c == '-' || *c == '+') neg = (*c++ == '-');
  uint64_t m = 0;
  const char *d0 = c;
  while ((unsigned)(*c - '0') < 10) m = m * 10 + (uint64_t)(*c++ - '0');
  int nd = (int)(c - d0), frac = 0;
  if (*c == '.') {
    const char *f0 = ++c;
    while ((unsigned)(*c - '0') < 10) m = m * 10 + (uint64_t)(*c++ - '0');
    frac = (int)(c - f0);
    nd += frac;
  }
  /* nd <= 19 digits keep m exact (10^19 - 1 < 2^64); the checks after the loops are
   * enough because a longer run only makes m wrap, never fault */
  if (nd == 0 || nd > 19 || !IS_END(*c) || m > ((uint64_t)1 << 53)) return 0;
  double v = (double)m;
  if (frac) v /= p10[frac];
  *out = neg ? -v : v;
  *end = c;
  return 1;
}

/* The float32 range check (a finite double that becomes infinite as float). */
static int f32_overflow(kl_dtype dt, double v) {
  return dt == KL_FLOAT32 && isfinite(v) && isinf((float)v);
}

void svm_parser_init(svm_parser *p, svm_reader *r, svm_rows *out, int zero_based,
                     int64_t n_features) {
  memset(p, 0, sizeof *p);
  p->r = r;
  p->out = out;
  p->zero_based = zero_based;
  p->shift = (zero_based == 0) ? 1 : 0;
  p->n_features = n_features;
  p->qid_state = -1;
  p->min_raw = p->max_raw = -1;
}

kl_status svm_parse_line(svm_parser *p, char *s, char *e) {
  svm_reader *r = p->r;
  svm_rows *b = p->out;
  char sh[200];
  (void)e; /* the '\n' at *e ends every scan below */
  while (IS_BLANK(*s)) s++;
  if (!IS_TOK(*s)) return KL_OK; /* blank or comment line */

  /* label */
  char *t = s;
  double label;
  const char *le;
  int ok = 1;
  if (short_double(t, &le, &label)) {
    s = (char *)le; /* at most 2^53 < FLT_MAX: no range check needed */
  } else {
    while (IS_TOK(*s)) s++;
    ok = parse_double(t, s, &label);
    if (ok <= 0 || f32_overflow(b->dtype, label))
      return svm_err(r, 0, KL_EFORMAT, ok ? "label '%s' out of range" : "bad label '%s'",
                     show(sh, t, s));
  }
  while (IS_BLANK(*s)) s++;

  /* qid, directly after the label */
  int has_qid = 0;
  int64_t qid = 0;
  if (s[0] == 'q' && s[1] == 'i' && s[2] == 'd' && s[3] == ':') {
    t = s;
    char *q = s + 4;
    int qneg = 0;
    if (*q == '-' || *q == '+') qneg = (*q++ == '-');
    char *d0 = q;
    uint64_t v = 0;
    int ovf = 0;
    for (; (unsigned)(*q - '0') < 10; q++) {
      if (v > (uint64_t)INT64_MAX / 10) ovf = 1;
      else v = v * 10 + (uint64_t)(*q - '0');
    }
    s = q;
    while (IS_TOK(*s)) s++;
    if (q == d0 || q != s || ovf || v > (uint64_t)INT64_MAX)
      return svm_err(r, 0, KL_EFORMAT, "bad qid '%s'", show(sh, t, s));
    qid = qneg ? -(int64_t)v : (int64_t)v;
    has_qid = 1;
    while (IS_BLANK(*s)) s++;
  }
  if (p->qid_state < 0) {
    p->qid_state = has_qid;
    p->qid_line = r->line_known ? r->line : 0;
  } else if (p->qid_state != has_qid) {
    if (p->qid_line > 0)
      return svm_err(r, 0, KL_EFORMAT, "%s, but line %lld %s (qid on some lines but not others)",
                     has_qid ? "qid here" : "no qid here", (long long)p->qid_line,
                     has_qid ? "has none" : "has one");
    return svm_err(r, 0, KL_EFORMAT, "%s (qid on some lines but not others)",
                   has_qid ? "qid here, but not on earlier lines" : "no qid here, but earlier lines have one");
  }

  if (b->rows == b->cap_rows) {
    kl_status st = rows_grow_rows(b, extrapolate(p, b->rows));
    if (st) return st;
  }
  int64_t row_start = b->nnz;
  int64_t prev = -1;
  const int64_t shift = p->shift, nf = p->n_features, limit = KL_MAX_NUMEL;
  const int f32 = (b->dtype == KL_FLOAT32);

  /* index:value pairs */
  while (IS_TOK(*s)) {
    t = s;
    int64_t idx = 0;
    while ((unsigned)(*s - '0') < 10) {
      idx = idx * 10 + (*s++ - '0');
      if (idx >= limit) {
        while (IS_TOK(*s) && *s != ':') s++;
        return svm_err(r, 0, KL_EFORMAT, "index %s out of range (too large)", show(sh, t, s));
      }
    }
    if (*s != ':' || s == t) {
      char *te = s;
      while (IS_TOK(*te)) te++;
      if (s == t && *s == ':')
        return svm_err(r, 0, KL_EFORMAT, "missing index before ':' in '%s'", show(sh, t, te));
      if (*t == '-' && (unsigned)(t[1] - '0') < 10) {
        char *ie = t + 1;
        while ((unsigned)(*ie - '0') < 10) ie++;
        return svm_err(r, 0, KL_EFORMAT, "negative index %s", show(sh, t, ie));
      }
      if (te - t >= 4 && memcmp(t, "qid:", 4) == 0)
        return svm_err(r, 0, KL_EFORMAT, "qid must directly follow the label: '%s'",
                       show(sh, t, te));
      return svm_err(r, 0, KL_EFORMAT, "expected index:value, got '%s'", show(sh, t, te));
    }
    char *vt = ++s;
    double v;
    const char *ve;
    if (short_double(vt, &ve, &v)) {
      s = (char *)ve;
    } else {
      while (IS_TOK(*s)) s++;
      if (vt == s)
        return svm_err(r, 0, KL_EFORMAT, "missing value after '%s'", show(sh, t, s));
      ok = parse_double(vt, s, &v);
      if (ok <= 0 || f32_overflow(b->dtype, v))
        return svm_err(r, 0, KL_EFORMAT, ok == 0 ? "bad value '%s'" : "value '%s' out of range",
                       show(sh, t, s));
    }
    if (idx == 0 && p->zero_based == 0)
      return svm_err(r, 0, KL_EFORMAT, "index 0 in a one-based file");
    if (idx <= prev) {
      if (idx == prev)
        return svm_err(r, 0, KL_EFORMAT, "duplicate index %lld", (long long)idx);
      return svm_err(r, 0, KL_EFORMAT, "indices not in increasing order (%lld after %lld)",
                     (long long)idx, (long long)prev);
    }
    prev = idx;
    if (nf > 0) {
      /* auto base: idx == nf is past the end only if the file turns out zero-based,
       * which the caller checks at the end through max_raw */
      if (p->zero_based >= 0 ? idx - shift >= nf : idx > nf)
        return svm_err(r, 0, KL_EFORMAT, "index %lld past n_features=%lld", (long long)idx,
                       (long long)nf);
    }
    if (b->nnz == b->cap_nnz) {
      kl_status st = rows_grow_nnz(b, b->nnz + 1, extrapolate(p, b->nnz));
      if (st) return st;
    }
    b->indices[b->nnz] = idx - shift;
    if (f32) ((float *)b->data)[b->nnz] = (float)v;
    else ((double *)b->data)[b->nnz] = v;
    b->nnz++;
    while (IS_BLANK(*s)) s++;
  }
  if (b->nnz > row_start) {
    int64_t lo = b->indices[row_start] + shift, hi = prev;
    if (p->min_raw < 0 || lo < p->min_raw) p->min_raw = lo;
    if (hi > p->max_raw) {
      p->max_raw = hi;
      p->max_raw_line = r->line_known ? r->line : 0;
    }
  }
  b->y[b->rows] = label;
  b->qid[b->rows] = qid;
  b->rows++;
  b->indptr[b->rows] = b->nnz;
  return KL_OK;
}
