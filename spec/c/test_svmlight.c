/* test_svmlight.c: the svmlight reader, writer and streaming iterator: exact parses, round trips, every bad input, parts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "kl/svmlight.h"
#include "kltest.h"

static char tmpdir[256];

/* tmpdir/name in one of a few rotating buffers. */
static const char *tpath(const char *name) {
  static char bufs[8][512];
  static int k = 0;
  char *p = bufs[k++ & 7];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}

static const char *write_bytes(const char *name, const char *bytes, size_t n) {
  const char *p = tpath(name);
  FILE *f = fopen(p, "wb");
  if (!f) return p;
  fwrite(bytes, 1, n, f);
  fclose(f);
  return p;
}
static const char *write_str(const char *name, const char *text) {
  return write_bytes(name, text, strlen(text));
}
/* The same text gzip-compressed. */
static const char *write_gz(const char *name, const char *bytes, size_t n) {
  const char *p = tpath(name);
  gzFile f = gzopen(p, "wb");
  if (!f) return p;
  gzwrite(f, bytes, (unsigned)n);
  gzclose(f);
  return p;
}

static char *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)sz + 1);
  *n = fread(b, 1, (size_t)sz, f);
  fclose(f);
  return b;
}

static kl_svmlight_opts opts_of(int64_t nf, int zb, kl_dtype dt) {
  kl_svmlight_opts o = kl_svmlight_opts_default();
  o.n_features = nf;
  o.zero_based = zb;
  o.dtype = dt;
  return o;
}

/* Value (i, j) of X through the public accessor. */
static double at(const kl_tensor *X, int64_t i, int64_t j) {
  int64_t idx[2] = {i, j};
  double v = -12345;
  kl_tensor_get(X, idx, &v);
  return v;
}

/* Two CSR tensors with identical structure and bits; y tensors identical bits. */
static int same_csr(const kl_tensor *a, const kl_tensor *b) {
  if (!a || !b || a->stype != KL_STYPE_CSR || b->stype != KL_STYPE_CSR) return 0;
  if (a->dtype != b->dtype || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) return 0;
  if (a->nnz != b->nnz) return 0;
  if (memcmp(a->indptr, b->indptr, (size_t)(a->shape[0] + 1) * sizeof(int64_t))) return 0;
  if (a->nnz && memcmp(a->indices, b->indices, (size_t)a->nnz * sizeof(int64_t))) return 0;
  if (a->nnz && memcmp(a->data, b->data, (size_t)a->nnz * kl_dtype_size(a->dtype))) return 0;
  return 1;
}
static int same_dense(const kl_tensor *a, const kl_tensor *b) {
  if (!a || !b || a->dtype != b->dtype || a->shape[0] != b->shape[0]) return 0;
  return memcmp(a->data, b->data, (size_t)a->shape[0] * kl_dtype_size(a->dtype)) == 0;
}

/* ---------------------------------------------------------------- exact parses */

static const char SMALL[] =
    "# a comment line\n"
    "1 1:0.5 3:-2 # trailing comment\r\n"
    "-1.5 2:1e3\n"
    "\n"
    "   \t \n"
    "2.25\n"
    "7 1:1 2:2\t3:3"; /* no final newline */

static void test_exact_small(void) {
  const char *p = write_str("small.svm", SMALL);
  kl_tensor *X = NULL, *y = NULL, *q = NULL;
  kl_svmlight_opts o = opts_of(0, -1, KL_FLOAT64);
  o.want_qid = 1;
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, &q));
  CHECK(q == NULL); /* no qid in the file */
  CHECK(X && X->stype == KL_STYPE_CSR && X->dtype == KL_FLOAT64);
  if (!X) return;
  CHECK(X->shape[0] == 4 && X->shape[1] == 3 && X->nnz == 6);
  int64_t ptr[5] = {0, 2, 3, 3, 6}, ix[6] = {0, 2, 1, 0, 1, 2};
  CHECK(memcmp(X->indptr, ptr, sizeof ptr) == 0);
  CHECK(memcmp(X->indices, ix, sizeof ix) == 0);
  double want[4][3] = {{0.5, 0, -2}, {0, 1000, 0}, {0, 0, 0}, {1, 2, 3}};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) CHECK(at(X, i, j) == want[i][j]);
  double wy[4] = {1, -1.5, 2.25, 7};
  CHECK(y && y->ndim == 1 && y->shape[0] == 4 && y->dtype == KL_FLOAT64);
  for (int i = 0; i < 4; i++) CHECK(((double *)y->data)[i] == wy[i]);
  CHECK(kl_tensor_check_format(X, "test", 0) == KL_OK);
  kl_tensor_release(X);
  kl_tensor_release(y);

  /* explicit one-based: the same */
  o = opts_of(0, 0, KL_FLOAT32);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  CHECK(X && X->shape[1] == 3 && X->dtype == KL_FLOAT32 && y->dtype == KL_FLOAT32);
  if (X) CHECK(at(X, 0, 2) == -2 && at(X, 3, 0) == 1);
  kl_tensor_release(X);
  kl_tensor_release(y);

  /* explicit zero-based: indices as written, one more column */
  o = opts_of(0, 1, KL_FLOAT64);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  CHECK(X && X->shape[1] == 4);
  if (X) CHECK(at(X, 0, 1) == 0.5 && at(X, 0, 3) == -2 && at(X, 0, 0) == 0 && at(X, 3, 3) == 3);
  kl_tensor_release(X);
  kl_tensor_release(y);

  /* n_features given */
  o = opts_of(10, -1, KL_FLOAT64);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  CHECK(X && X->shape[1] == 10 && X->nnz == 6);
  kl_tensor_release(X);
  kl_tensor_release(y);

  /* defaults: float32, auto */
  CHECK_OK(kl_svmlight_load(p, NULL, &X, &y, NULL));
  CHECK(X && X->dtype == KL_FLOAT32 && X->shape[1] == 3);
  kl_tensor_release(X);
  kl_tensor_release(y);
}

static void test_exact_zero_based_auto(void) {
  /* an index 0 anywhere makes the whole file zero-based (scikit-learn's rule) */
  const char *p = write_str("zb.svm", "1 2:3 4:5\n0 0:1 1:2\n");
  kl_tensor *X = NULL, *y = NULL;
  kl_svmlight_opts o = opts_of(0, -1, KL_FLOAT64);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  CHECK(X && X->shape[0] == 2 && X->shape[1] == 5);
  if (X) CHECK(at(X, 0, 2) == 3 && at(X, 0, 4) == 5 && at(X, 1, 0) == 1 && at(X, 1, 1) == 2);
  kl_tensor_release(X);
  kl_tensor_release(y);
  /* the same file read as one-based is refused at line 2 */
  o = opts_of(0, 0, KL_FLOAT64);
  CHECK_ERR(kl_svmlight_load(p, &o, &X, &y, NULL), KL_EFORMAT,
            "zb.svm:2: index 0 in a one-based file");
  CHECK(X == NULL && y == NULL);
}

static void test_exact_qid_and_numbers(void) {
  const char *p = write_str("qid.svm", "3 qid:1 1:1\n2 qid:1 2:0.1\n1 qid:-2 1:0.5 # x\n");
  kl_tensor *X = NULL, *y = NULL, *q = NULL;
  kl_svmlight_opts o = opts_of(0, -1, KL_FLOAT64);
  o.want_qid = 1;
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, &q));
  CHECK(q && q->dtype == KL_INT64 && q->shape[0] == 3);
  if (q) {
    int64_t *qd = q->data;
    CHECK(qd[0] == 1 && qd[1] == 1 && qd[2] == -2);
  }
  CHECK(X && X->shape[1] == 2 && at(X, 1, 1) == 0.1);
  kl_tensor_release(X);
  kl_tensor_release(y);
  kl_tensor_release(q);
  /* qid ignored when not asked */
  q = NULL;
  o.want_qid = 0;
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, &q));
  CHECK(q == NULL && X && X->shape[0] == 3);
  kl_tensor_release(X);
  kl_tensor_release(y);

  /* numbers as strtod reads them: long mantissas, exponents, denormals, -0, float32 rounding */
  p = write_str("num.svm",
                "0.1 1:0.1 2:1.0000000000000002 3:4.9406564584124654e-324 4:-0 5:123456789012345678901\n"
                "1e-5 1:+2.5E+2 2:.5 3:5. 4:1e22 5:1e23\n");
  o = opts_of(0, -1, KL_FLOAT64);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  if (X && X->nnz == 10) {
    double *d = X->data;
    CHECK(d[0] == 0.1 && d[1] == 1.0000000000000002 && d[2] == 4.9406564584124654e-324);
    CHECK(d[3] == 0 && signbit(d[3]) && d[4] == 123456789012345678901.0);
    CHECK(d[5] == 250 && d[6] == 0.5 && d[7] == 5 && d[8] == 1e22 && d[9] == 1e23);
    CHECK(((double *)y->data)[0] == 0.1 && ((double *)y->data)[1] == 1e-5);
  } else {
    CHECK(!"num.svm parsed");
  }
  kl_tensor_release(X);
  kl_tensor_release(y);
  o = opts_of(0, -1, KL_FLOAT32);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  if (X) CHECK(((float *)X->data)[0] == 0.1f && ((float *)y->data)[1] == 1e-5f);
  kl_tensor_release(X);
  kl_tensor_release(y);
}

/* A line longer than the 1 MiB read buffer, and lines straddling refills. */
static void test_long_lines(void) {
  size_t cap = 8u << 20, n = 0;
  char *b = malloc(cap);
  for (int line = 0; line < 3; line++) {
    n += (size_t)snprintf(b + n, cap - n, "%d", line);
    int nf = line == 1 ? 200000 : 10;
    for (int j = 1; j <= nf; j++) n += (size_t)snprintf(b + n, cap - n, " %d:%d.25", j, j % 97);
    b[n++] = '\n';
  }
  for (int line = 3; line < 100000; line++)
    n += (size_t)snprintf(b + n, cap - n, "%d 1:%d 7:0.5\n", line, line);
  n += (size_t)snprintf(b + n, cap - n, "5 1:1 7:oops\n");
  const char *p = write_bytes("long.svm", b, n - 13); /* without the bad line */
  kl_tensor *X = NULL, *y = NULL;
  kl_svmlight_opts o = opts_of(0, -1, KL_FLOAT64);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  CHECK(X && X->shape[0] == 100000 && X->shape[1] == 200000);
  if (X && X->shape[0] == 100000) {
    CHECK(X->indptr[1] == 10 && X->indptr[2] == 200010 && X->indptr[3] == 200020);
    CHECK(at(X, 1, 199999) == 200000 % 97 + 0.25 && at(X, 99999, 0) == 99999);
    CHECK(((double *)y->data)[99999] == 99999);
  }
  kl_tensor_release(X);
  kl_tensor_release(y);
  p = write_bytes("longbad.svm", b, n);
  CHECK_ERR(kl_svmlight_load(p, &o, &X, &y, NULL), KL_EFORMAT,
            "longbad.svm:100001: bad value '7:oops'");
  /* the same through gzip */
  p = write_gz("longbad.svm.gz", b, n);
  CHECK_ERR(kl_svmlight_load(p, &o, &X, &y, NULL), KL_EFORMAT,
            "longbad.svm.gz:100001: bad value '7:oops'");
  free(b);
}

/* ------------------------------------------------------------------ bad input */

typedef struct bad_case {
  const char *name, *text;
  int64_t n_features;
  int zero_based;
  kl_dtype dtype;
  kl_status code;
  const char *msg;
} bad_case;

static const bad_case BAD[] = {
    {"empty.svm", "", 0, -1, KL_FLOAT64, KL_EFORMAT, "empty.svm:1: no data (the file is empty)"},
    {"comments.svm", "# only\n\n# comments\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "comments.svm:3: no data (only blank and comment lines)"},
    {"word.svm", "1 1:1\n1 abc\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "word.svm:2: expected index:value, got 'abc'"},
    {"novalue.svm", "1 3:\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "novalue.svm:1: missing value after '3:'"},
    {"noindex.svm", "1 1:2\n\n1 :3\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "noindex.svm:3: missing index before ':' in ':3'"},
    {"nocolon.svm", "1 3\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "nocolon.svm:1: expected index:value, got '3'"},
    {"negidx.svm", "1 -3:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT, "negidx.svm:1: negative index -3"},
    {"zero1.svm", "1 1:1\n2 0:1 2:2\n", 0, 0, KL_FLOAT64, KL_EFORMAT,
     "zero1.svm:2: index 0 in a one-based file"},
    {"past1.svm", "1 1:1\n1 4:1\n", 3, 0, KL_FLOAT64, KL_EFORMAT,
     "past1.svm:2: index 4 past n_features=3"},
    {"past0.svm", "1 3:1\n", 3, 1, KL_FLOAT64, KL_EFORMAT, "past0.svm:1: index 3 past n_features=3"},
    {"pastauto.svm", "1 5:1\n", 3, -1, KL_FLOAT64, KL_EFORMAT,
     "pastauto.svm:1: index 5 past n_features=3"},
    {"pastzb.svm", "1 0:1\n1 3:1\n1 1:1\n", 3, -1, KL_FLOAT64, KL_EFORMAT,
     "pastzb.svm:2: index 3 past n_features=3 (the file is zero-based: it has an index 0)"},
    {"huge.svm", "1 2:1\n1 100000000000000000000:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "huge.svm:2: index 100000000000000000000 out of range (too large)"},
    {"badlabel.svm", "abc 1:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT, "badlabel.svm:1: bad label 'abc'"},
    {"label155.svm", "1 1:1\n1.5.5 1:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "label155.svm:2: bad label '1.5.5'"},
    {"value155.svm", "1 1:1.5.5\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "value155.svm:1: bad value '1:1.5.5'"},
    {"valuex.svm", "1 3:x\n", 0, -1, KL_FLOAT64, KL_EFORMAT, "valuex.svm:1: bad value '3:x'"},
    {"twocolons.svm", "1 3:1:2\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "twocolons.svm:1: bad value '3:1:2'"},
    {"labelcolon.svm", " :1\n", 0, -1, KL_FLOAT64, KL_EFORMAT, "labelcolon.svm:1: bad label ':1'"},
    {"garbage.svm", "\xff\xfe\x80" "abc\x01 1:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "garbage.svm:1: bad label '\\xff\\xfe\\x80abc\\x01'"},
    {"qidsome.svm", "1 qid:1 1:1\n\n2 2:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "qidsome.svm:3: no qid here, but line 1 has one (qid on some lines but not others)"},
    {"qidlate.svm", "1 1:1\n2 qid:3 2:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "qidlate.svm:2: qid here, but line 1 has none (qid on some lines but not others)"},
    {"qidpos.svm", "1 1:1 qid:2\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "qidpos.svm:1: qid must directly follow the label: 'qid:2'"},
    {"qidbad.svm", "1 qid:x 1:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT, "qidbad.svm:1: bad qid 'qid:x'"},
    {"qidhuge.svm", "1 qid:99999999999999999999 1:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "qidhuge.svm:1: bad qid 'qid:99999999999999999999'"},
    {"unsorted.svm", "1 1:1\n1 3:1 2:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "unsorted.svm:2: indices not in increasing order (2 after 3)"},
    {"dup.svm", "1 2:1 2:5\n", 0, -1, KL_FLOAT64, KL_EFORMAT, "dup.svm:1: duplicate index 2"},
    {"overflow.svm", "1 1:1e999\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "overflow.svm:1: value '1:1e999' out of range"},
    {"f32range.svm", "1 1:1e39\n", 0, -1, KL_FLOAT32, KL_EFORMAT,
     "f32range.svm:1: value '1:1e39' out of range"},
    {"labelrange.svm", "1e400 1:1\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "labelrange.svm:1: label '1e400' out of range"},
    {"crlf.svm", "1 1:1\r\n\r\n# c\r\n1 x:1\r\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "crlf.svm:4: expected index:value, got 'x:1'"},
    {"hashtok.svm", "1 1:1\n1 2:3#c\n1 3:#\n", 0, -1, KL_FLOAT64, KL_EFORMAT,
     "hashtok.svm:3: missing value after '3:'"},
};

static void test_bad_inputs(void) {
  int n = (int)(sizeof BAD / sizeof BAD[0]);
  CHECK(n >= 25);
  for (int i = 0; i < n; i++) {
    const bad_case *c = &BAD[i];
    const char *p = write_str(c->name, c->text);
    kl_tensor *X = (kl_tensor *)1, *y = (kl_tensor *)1;
    kl_svmlight_opts o = opts_of(c->n_features, c->zero_based, c->dtype);
    CHECK_ERR(kl_svmlight_load(p, &o, &X, &y, NULL), c->code, c->msg);
    CHECK(X == NULL && y == NULL);
    /* the streaming reader says the same (auto base: its pre-scan) */
    kl_svmlight_iter *it = NULL;
    kl_status st = kl_svmlight_iter_open(p, c->n_features ? c->n_features : 1000000, 4,
                                         c->zero_based, 1, 0, c->dtype, &it);
    int done = 0;
    while (st == KL_OK && !done) st = kl_svmlight_iter_next(it, &X, &y, &done);
    if (strstr(c->msg, "no data") == NULL) {
      kltest_checks++;
      if (st != c->code || !strstr(kl_errmsg(), c->msg)) {
        kltest_failures++;
        fprintf(stderr, "iter on %s gave %s \"%s\", wanted \"%s\"\n", c->name,
                kl_status_name(st), kl_errmsg(), c->msg);
      }
    }
    kl_svmlight_iter_close(it);
  }

  /* NUL bytes, in a value and in a comment */
  kl_tensor *X = NULL, *y = NULL;
  const char *p = write_bytes("nul.svm", "1 1:1\n1 2:\0 3\n", 14);
  CHECK_ERR(kl_svmlight_load(p, NULL, &X, &y, NULL), KL_EFORMAT, "nul.svm:2: NUL byte at column 5");
  p = write_bytes("nulc.svm", "1 1:1 # a\0b\n2 1:1\n", 18);
  CHECK_ERR(kl_svmlight_load(p, NULL, &X, &y, NULL), KL_EFORMAT, "nulc.svm:1: NUL byte at column 10");
  p = write_bytes("nullast.svm", "1 1:1\n2 1:1\0", 12);
  CHECK_ERR(kl_svmlight_load(p, NULL, &X, &y, NULL), KL_EFORMAT, "nullast.svm:2: NUL byte at column 6");

  /* a missing file, a directory */
  CHECK_ERR(kl_svmlight_load(tpath("missing.svm"), NULL, &X, &y, NULL), KL_EIO,
            "missing.svm:0: cannot open: No such file or directory");
  CHECK(X == NULL && y == NULL);
  kl_svmlight_iter *it = NULL;
  CHECK_ERR(kl_svmlight_iter_open(tpath("missing.svm"), 5, 2, 1, 1, 0, KL_FLOAT32, &it), KL_EIO,
            "missing.svm:0: cannot open");
  CHECK(it == NULL);

  /* bad options */
  kl_svmlight_opts o = opts_of(0, -1, KL_INT64);
  p = write_str("ok.svm", "1 1:1\n");
  CHECK_ERR(kl_svmlight_load(p, &o, &X, &y, NULL), KL_EDTYPE, "dtype must be float32 or float64");
  o = opts_of(-1, -1, KL_FLOAT32);
  CHECK_ERR(kl_svmlight_load(p, &o, &X, &y, NULL), KL_EINVAL, "n_features=-1");
  o = opts_of(0, 2, KL_FLOAT32);
  CHECK_ERR(kl_svmlight_load(p, &o, &X, &y, NULL), KL_EINVAL, "zero_based=2");
  CHECK_ERR(kl_svmlight_iter_open(p, 0, 2, 1, 1, 0, KL_FLOAT32, &it), KL_EINVAL, "n_features=0");
  CHECK_ERR(kl_svmlight_iter_open(p, 5, 0, 1, 1, 0, KL_FLOAT32, &it), KL_EINVAL, "batch_size=0");
  CHECK_ERR(kl_svmlight_iter_open(p, 5, 2, 1, 2, 2, KL_FLOAT32, &it), KL_EINVAL, "part_index=2");
  CHECK_ERR(kl_svmlight_iter_open(p, 5, 2, 1, 0, 0, KL_FLOAT32, &it), KL_EINVAL, "num_parts=0");
}

/* A gzip file cut at several places is refused (KL_EIO), never half-loaded. */
static void test_truncated_gz(void) {
  size_t cap = 1u << 20, n = 0;
  char *b = malloc(cap);
  kl_rng r;
  kl_rng_seed(&r, 7);
  for (int i = 0; i < 20000; i++)
    n += (size_t)snprintf(b + n, cap - n, "%d 3:%.6f 9:%.6f\n", i % 2, kl_rng_uniform(&r),
                          kl_rng_uniform(&r));
  const char *p = write_gz("full.svm.gz", b, n);
  size_t gn = 0;
  char *gz = read_all(p, &gn);
  kl_tensor *X = NULL, *y = NULL;
  CHECK_OK(kl_svmlight_load(p, NULL, &X, &y, NULL));
  CHECK(X && X->shape[0] == 20000);
  kl_tensor_release(X);
  kl_tensor_release(y);
  size_t cuts[] = {3, 10, gn / 3, gn / 2, gn - 8, gn - 4, gn - 1};
  for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
    p = write_bytes("trunc.svm.gz", gz, cuts[k]);
    X = y = NULL;
    kl_status st = kl_svmlight_load(p, NULL, &X, &y, NULL);
    kltest_checks++;
    if (st != KL_EIO || !strstr(kl_errmsg(), "trunc.svm.gz:") ||
        !strstr(kl_errmsg(), "truncated gzip stream")) {
      kltest_failures++;
      fprintf(stderr, "cut at %zu of %zu: %s %s\n", cuts[k], gn, kl_status_name(st), kl_errmsg());
    }
    CHECK(X == NULL && y == NULL);
  }
  /* a flipped byte in the compressed data: a corrupt stream or a CRC error, never OK */
  gz[gn / 2] ^= 0x55;
  p = write_bytes("flip.svm.gz", gz, gn);
  CHECK(kl_svmlight_load(p, NULL, &X, &y, NULL) != KL_OK);
  free(gz);
  free(b);
}

/* ---------------------------------------------------------------- round trips */

/* A random CSR with values over many magnitudes and signs (strtod's slow path too). */
static kl_tensor *random_csr(kl_dtype dt, int64_t rows, int64_t cols, uint64_t seed) {
  kl_rng r;
  kl_rng_seed(&r, seed);
  int64_t shape[2] = {rows, cols};
  kl_tensor *X = NULL;
  if (kl_sparse_rand(KL_STYPE_CSR, dt, 2, shape, 0.05, &r, &X) != KL_OK) return NULL;
  int span = dt == KL_FLOAT32 ? 30 : 300;
  for (int64_t k = 0; k < X->nnz; k++) {
    double v = kl_tensor_data_at(X, k);
    double e = (double)((int64_t)kl_rng_below(&r, (uint64_t)(2 * span + 1)) - span);
    v = v * pow(10.0, e) * (kl_rng_below(&r, 2) ? -1 : 1);
    if (k % 17 == 3) v = 0.1 * (double)k; /* short decimals */
    kl_tensor_data_set(X, k, v);
  }
  return X;
}

static kl_tensor *random_labels(kl_dtype dt, int64_t rows, uint64_t seed) {
  kl_rng r;
  kl_rng_seed(&r, seed);
  int64_t shape[1] = {rows};
  kl_tensor *y = NULL;
  if (kl_tensor_new_dense(dt, 1, shape, &y) != KL_OK) return NULL;
  kl_tensor_fill_normal(y, 0, 1e3, &r);
  return y;
}

static void test_round_trip(void) {
  kl_dtype dts[2] = {KL_FLOAT32, KL_FLOAT64};
  for (int d = 0; d < 2; d++) {
    kl_tensor *X0 = random_csr(dts[d], 300, 57, 11 + (uint64_t)d);
    kl_tensor *y0 = random_labels(dts[d], 300, 5);
    CHECK(X0 && y0 && X0->nnz > 100);
    if (!X0 || !y0) return;
    for (int zb = 0; zb <= 1; zb++) {
      const char *names[2] = {"rt.svm", "rt.svm.gz"};
      for (int g = 0; g < 2; g++) {
        const char *p = tpath(names[g]);
        CHECK_OK(kl_svmlight_dump(X0, y0, p, zb));
        kl_tensor *X = NULL, *y = NULL;
        kl_svmlight_opts o = opts_of(57, zb ? 1 : -1, dts[d]);
        CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
        CHECK(same_csr(X0, X));
        CHECK(same_dense(y0, y));
        kl_tensor_release(X);
        kl_tensor_release(y);
        if (g == 1) { /* really compressed */
          size_t n = 0;
          char *raw = read_all(p, &n);
          CHECK(raw && n > 2 && (unsigned char)raw[0] == 0x1f && (unsigned char)raw[1] == 0x8b);
          free(raw);
        }
      }
    }
    /* dense X: writes its nonzeros, loads back as the same matrix */
    kl_tensor *D = NULL, *X = NULL, *y = NULL;
    CHECK_OK(kl_tensor_tostype(X0, KL_STYPE_DEFAULT, &D));
    const char *p = tpath("dense.svm");
    CHECK_OK(kl_svmlight_dump(D, y0, p, 0));
    kl_svmlight_opts o = opts_of(57, 0, dts[d]);
    CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
    CHECK(X && X->shape[0] == 300);
    int ok = X != NULL;
    for (int64_t i = 0; ok && i < 300; i++)
      for (int64_t j = 0; j < 57; j++) ok &= at(X, i, j) == at(X0, i, j);
    CHECK(ok);
    CHECK(same_dense(y0, y));
    kl_tensor_release(X);
    kl_tensor_release(y);
    kl_tensor_release(D);
    kl_tensor_release(X0);
    kl_tensor_release(y0);
  }
  /* writer argument checks */
  kl_tensor *X0 = random_csr(KL_FLOAT32, 4, 3, 1), *y0 = random_labels(KL_FLOAT32, 5, 1);
  CHECK_ERR(kl_svmlight_dump(X0, y0, tpath("w.svm"), 0), KL_ESHAPE, "y has 5 rows, X has 4");
  kl_tensor_release(y0);
  y0 = random_labels(KL_FLOAT32, 4, 1);
  CHECK_ERR(kl_svmlight_dump(X0, y0, tpath("nodir/w.svm"), 0), KL_EIO,
            "nodir/w.svm:0: cannot open for writing");
  kl_tensor_release(X0);
  kl_tensor_release(y0);
}

/* The exact text the writer produces for a small case. */
static void test_dump_text(void) {
  kl_tensor *X = NULL, *y = NULL;
  kl_tensor_new_csr(KL_FLOAT64, 3, 4, 3, &X);
  int64_t ptr[4] = {0, 2, 2, 3}, ix[3] = {0, 3, 1};
  double v[3] = {0.1, -2, 1e-300};
  memcpy(X->indptr, ptr, sizeof ptr);
  memcpy(X->indices, ix, sizeof ix);
  memcpy(X->data, v, sizeof v);
  int64_t shape[1] = {3};
  kl_tensor_new_dense(KL_FLOAT32, 1, shape, &y);
  float yv[3] = {1, 0.1f, -3};
  memcpy(y->data, yv, sizeof yv);
  const char *p = tpath("text.svm");
  CHECK_OK(kl_svmlight_dump(X, y, p, 0));
  size_t n = 0;
  char *t = read_all(p, &n);
  const char *want = "1 1:0.10000000000000001 4:-2\n0.100000001\n-3 2:1e-300\n";
  CHECK(t && n == strlen(want) && memcmp(t, want, n) == 0);
  if (t && (n != strlen(want) || memcmp(t, want, n))) fprintf(stderr, "got:\n%.*s", (int)n, t);
  free(t);
  CHECK_OK(kl_svmlight_dump(X, y, p, 1));
  t = read_all(p, &n);
  want = "1 0:0.10000000000000001 3:-2\n0.100000001\n-3 1:1e-300\n";
  CHECK(t && n == strlen(want) && memcmp(t, want, n) == 0);
  free(t);
  kl_tensor_release(X);
  kl_tensor_release(y);
}

/* ------------------------------------------------------------------ streaming */

/* 997 sample lines labelled 0..996, with blank and comment lines and uneven lengths. */
static char *parts_text(size_t *len) {
  size_t cap = 1u << 20, n = 0;
  char *b = malloc(cap);
  n += (size_t)snprintf(b + n, cap - n, "# header\n");
  for (int i = 0; i < 997; i++) {
    n += (size_t)snprintf(b + n, cap - n, "%d", i);
    for (int j = 0; j < i % 13; j++) n += (size_t)snprintf(b + n, cap - n, " %d:%d", 2 * j + 1, i + j);
    n += (size_t)snprintf(b + n, cap - n, i % 7 == 0 ? "\r\n\n" : (i % 11 == 0 ? " # c\n# x\n" : "\n"));
  }
  n--; /* no final newline */
  *len = n;
  return b;
}

/* Streams a part; appends its labels to seen (count per label) and returns the rows. */
static int64_t stream_part(const char *p, int np, int part, int64_t bs, int *seen, int64_t *order,
                           int64_t *norder, kl_status *st_out) {
  kl_svmlight_iter *it = NULL;
  int64_t rows = 0;
  kl_status st = kl_svmlight_iter_open(p, 30, bs, 0, np, part, KL_FLOAT64, &it);
  int done = 0;
  while (st == KL_OK) {
    kl_tensor *X = NULL, *y = NULL;
    st = kl_svmlight_iter_next(it, &X, &y, &done);
    if (st || done) break;
    if (X->shape[0] < 1 || X->shape[0] > bs || y->shape[0] != X->shape[0] ||
        kl_tensor_check_format(X, "batch", 0) != KL_OK)
      st = KL_EINVAL;
    for (int64_t i = 0; i < y->shape[0]; i++) {
      int64_t lab = (int64_t)((double *)y->data)[i];
      if (lab >= 0 && lab < 997) seen[lab]++;
      order[(*norder)++] = lab;
      /* row content matches its label */
      int64_t nnz = X->indptr[i + 1] - X->indptr[i];
      if (nnz != lab % 13) st = KL_EINVAL;
      for (int64_t k = X->indptr[i]; k < X->indptr[i + 1]; k++) {
        int64_t j = k - X->indptr[i];
        if (X->indices[k] != 2 * j || ((double *)X->data)[k] != (double)(lab + j)) st = KL_EINVAL;
      }
    }
    rows += X->shape[0];
  }
  kl_svmlight_iter_close(it);
  *st_out = st;
  return rows;
}

static void test_parts(void) {
  size_t n = 0;
  char *text = parts_text(&n);
  const char *plain = write_bytes("parts.svm", text, n);
  const char *gz = write_gz("parts.svm.gz", text, n);
  const char *files[2] = {plain, gz};
  for (int f = 0; f < 2; f++) {
    for (int np = 1; np <= 4; np++) {
      int seen[997] = {0};
      int64_t order[2000], norder = 0, total = 0;
      int ok = 1;
      for (int part = 0; part < np; part++) {
        kl_status st;
        total += stream_part(files[f], np, part, 1 + 3 * part, seen, order, &norder, &st);
        if (st) {
          ok = 0;
          fprintf(stderr, "part %d/%d of %s: %s\n", part, np, files[f], kl_errmsg());
        }
      }
      CHECK(ok);
      CHECK(total == 997 && norder == 997);
      int once = 1, inorder = 1;
      for (int i = 0; i < 997; i++) once &= seen[i] == 1;
      for (int64_t i = 0; i < norder; i++) inorder &= order[i] == i;
      CHECK(once);
      CHECK(inorder);
    }
  }
  /* a split falling on every byte boundary: parts of tiny files still cover each line once */
  const char *tiny = write_str("tiny.svm", "0 1:1\n1\n\n2 3:3\n3 1:0\n");
  for (int np = 1; np <= 12; np++) {
    int64_t count = 0;
    double sum = 0;
    for (int part = 0; part < np; part++) {
      kl_svmlight_iter *it = NULL;
      CHECK_OK(kl_svmlight_iter_open(tiny, 5, 2, 1, np, part, KL_FLOAT32, &it));
      int done = 0;
      kl_tensor *X, *y;
      while (it && kl_svmlight_iter_next(it, &X, &y, &done) == KL_OK && !done) {
        count += y->shape[0];
        for (int64_t i = 0; i < y->shape[0]; i++) sum += ((float *)y->data)[i];
      }
      kl_svmlight_iter_close(it);
    }
    CHECK(count == 4 && sum == 6);
  }
  free(text);
}

static void test_stream_equals_load(void) {
  kl_tensor *X0 = random_csr(KL_FLOAT32, 500, 40, 3), *y0 = random_labels(KL_FLOAT32, 500, 4);
  const char *p = tpath("stream.svm");
  CHECK_OK(kl_svmlight_dump(X0, y0, p, 0));
  const char *pg = tpath("stream.svm.gz");
  CHECK_OK(kl_svmlight_dump(X0, y0, pg, 0));
  for (int g = 0; g < 2; g++) {
    kl_svmlight_iter *it = NULL;
    CHECK_OK(kl_svmlight_iter_open(g ? pg : p, 40, 64, -1, 1, 0, KL_FLOAT32, &it));
    if (!it) continue;
    for (int pass = 0; pass < 2; pass++) {
      int64_t row = 0, batches = 0;
      int done = 0, ok = 1;
      kl_tensor *X, *y, *kept = NULL, *kept_copy = NULL;
      while (kl_svmlight_iter_next(it, &X, &y, &done) == KL_OK && !done) {
        kl_tensor *want = NULL, *wy = NULL;
        int64_t nb = X->shape[0];
        ok &= (row + nb == 500) || nb == 64;
        kl_tensor_slice_rows(X0, row, row + nb, &want);
        kl_tensor_slice_rows(y0, row, row + nb, &wy);
        ok &= same_csr(want, X) && same_dense(wy, y);
        kl_tensor_release(want);
        kl_tensor_release(wy);
        if (batches == 2) { /* a retained batch survives the next batches */
          kept = kl_tensor_retain(X);
          kl_tensor_copy(X, &kept_copy);
        }
        row += nb;
        batches++;
      }
      CHECK(ok && done && row == 500 && batches == 8);
      CHECK(kept && same_csr(kept, kept_copy));
      kl_tensor_release(kept);
      kl_tensor_release(kept_copy);
      CHECK_OK(kl_svmlight_iter_reset(it));
    }
    kl_svmlight_iter_close(it);
  }
  /* .gz equals plain through load too */
  kl_tensor *Xa = NULL, *ya = NULL, *Xb = NULL, *yb = NULL;
  CHECK_OK(kl_svmlight_load(p, NULL, &Xa, &ya, NULL));
  CHECK_OK(kl_svmlight_load(pg, NULL, &Xb, &yb, NULL));
  CHECK(same_csr(Xa, Xb) && same_dense(ya, yb));
  kl_tensor_release(Xa);
  kl_tensor_release(ya);
  kl_tensor_release(Xb);
  kl_tensor_release(yb);
  kl_tensor_release(X0);
  kl_tensor_release(y0);

  /* an error in a later part names its true line (counted lazily) */
  size_t cap = 1u << 16, n = 0;
  char *b = malloc(cap);
  for (int i = 1; i <= 100; i++)
    n += (size_t)snprintf(b + n, cap - n, i == 90 ? "1 2:zz\n" : "%d 1:1 2:2\n", i);
  const char *bad = write_bytes("partbad.svm", b, n);
  free(b);
  kl_svmlight_iter *it = NULL;
  CHECK_OK(kl_svmlight_iter_open(bad, 5, 8, 0, 2, 1, KL_FLOAT32, &it));
  kl_status st = KL_OK;
  int done = 0;
  kl_tensor *X, *y;
  while (it && st == KL_OK && !done) st = kl_svmlight_iter_next(it, &X, &y, &done);
  CHECK(st == KL_EFORMAT && strstr(kl_errmsg(), "partbad.svm:90: bad value '2:zz'"));
  CHECK_ERR(kl_svmlight_iter_next(it, &X, &y, &done), KL_EINVAL, "reset() starts a new one");
  CHECK_OK(kl_svmlight_iter_reset(it));
  kl_svmlight_iter_close(it);
  /* a NUL in the line a part skips (it starts in the previous part) is that part's error */
  const char *np = write_bytes("nulpart.svm", "1 1:1\n2 2:\0\n3 1:1\n4 1:1\n", 24);
  for (int part = 0; part < 3; part++) {
    CHECK_OK(kl_svmlight_iter_open(np, 5, 8, 0, 3, part, KL_FLOAT32, &it));
    done = 0;
    st = it ? kl_svmlight_iter_next(it, &X, &y, &done) : KL_EINVAL;
    if (part == 0) {
      CHECK(st == KL_EFORMAT && strstr(kl_errmsg(), "nulpart.svm:2: NUL byte at column 5"));
    } else {
      CHECK(st == KL_OK && !done && y && y->shape[0] == 1 &&
            ((float *)y->data)[0] == (float)(part + 2));
    }
    kl_svmlight_iter_close(it);
    it = NULL;
  }
  /* the auto base pre-scans the whole file, so the first part already refuses it */
  CHECK_ERR(kl_svmlight_iter_open(bad, 5, 8, -1, 2, 0, KL_FLOAT32, &it), KL_EFORMAT,
            "partbad.svm:90: bad value '2:zz'");
}

/* Allocation failures at every point of a load give KL_ENOMEM and leak nothing (ASan). */
static void test_alloc_failures(void) {
  const char *p = write_str("oom.svm", SMALL);
  int failures_seen = 0;
  for (long k = 1; k < 40; k++) {
    kl_tensor *X = NULL, *y = NULL;
    kl_alloc_fail_at(k);
    kl_status st = kl_svmlight_load(p, NULL, &X, &y, NULL);
    kl_alloc_fail_at(0);
    if (st == KL_OK) {
      kl_tensor_release(X);
      kl_tensor_release(y);
      break;
    }
    failures_seen++;
    CHECK(st == KL_ENOMEM && X == NULL && y == NULL);
  }
  CHECK(failures_seen >= 5);
}

/* The committed sample files (ctest runs in the repository root): gzip is recognised by
 * its magic bytes, whatever the name. */
static void test_committed_files(void) {
  kl_tensor *Xa = NULL, *ya = NULL, *Xb = NULL, *yb = NULL, *Xc = NULL, *yc = NULL;
  kl_svmlight_opts o = opts_of(0, -1, KL_FLOAT64);
  CHECK_OK(kl_svmlight_load("spec/data/svmlight/small.svm", &o, &Xa, &ya, NULL));
  CHECK_OK(kl_svmlight_load("spec/data/svmlight/small.svm.gz", &o, &Xb, &yb, NULL));
  size_t n = 0;
  char *gz = read_all("spec/data/svmlight/small.svm.gz", &n);
  CHECK(gz != NULL);
  const char *p = write_bytes("renamed.txt", gz ? gz : "", gz ? n : 0);
  free(gz);
  CHECK_OK(kl_svmlight_load(p, &o, &Xc, &yc, NULL));
  CHECK(Xa && Xa->shape[0] == 4 && Xa->shape[1] == 3 && at(Xa, 1, 1) == 1000);
  CHECK(same_csr(Xa, Xb) && same_dense(ya, yb) && same_csr(Xa, Xc) && same_dense(ya, yc));
  kl_tensor_release(Xa);
  kl_tensor_release(ya);
  kl_tensor_release(Xb);
  kl_tensor_release(yb);
  kl_tensor_release(Xc);
  kl_tensor_release(yc);
  CHECK_OK(kl_svmlight_load("spec/data/svmlight/zero_based.svm", &o, &Xa, &ya, NULL));
  CHECK(Xa && Xa->shape[1] == 5 && at(Xa, 1, 0) == 1);
  kl_tensor_release(Xa);
  kl_tensor_release(ya);
}

/* Allocation failures in the iterator and the writer: KL_ENOMEM, nothing leaked (ASan). */
static void test_alloc_failures_stream(void) {
  const char *p = write_str("oomit.svm", "1 1:1 2:2\n0 3:1\n1\n0 1:5\n1 2:1\n");
  int seen = 0;
  for (long k = 1; k < 60; k++) {
    kl_svmlight_iter *it = NULL;
    kl_alloc_fail_at(k);
    kl_status st = kl_svmlight_iter_open(p, 4, 2, -1, 2, 1, KL_FLOAT32, &it);
    int done = 0, batches = 0;
    kl_tensor *X, *y;
    while (st == KL_OK && !done) {
      st = kl_svmlight_iter_next(it, &X, &y, &done);
      if (st == KL_OK && !done) batches++;
    }
    kl_alloc_fail_at(0);
    kl_svmlight_iter_close(it);
    if (st == KL_OK) {
      CHECK(batches == 2); /* part 1 of 2: lines 3..5 in batches of 2 */
      break;
    }
    seen++;
    CHECK(st == KL_ENOMEM);
  }
  CHECK(seen >= 5);
  kl_tensor *X = random_csr(KL_FLOAT64, 5, 4, 2), *y = random_labels(KL_FLOAT64, 5, 2);
  kl_alloc_fail_at(1);
  CHECK(kl_svmlight_dump(X, y, tpath("oom_dump.svm"), 0) == KL_ENOMEM);
  kl_alloc_fail_at(0);
  kl_tensor_release(X);
  kl_tensor_release(y);
}

static void rm_tmpdir(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/kl_svmlight_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_exact_small();
  test_exact_zero_based_auto();
  test_exact_qid_and_numbers();
  test_long_lines();
  test_bad_inputs();
  test_truncated_gz();
  test_round_trip();
  test_dump_text();
  test_parts();
  test_stream_equals_load();
  test_alloc_failures();
  test_alloc_failures_stream();
  test_committed_files();
  rm_tmpdir();
  KLTEST_DONE();
}
