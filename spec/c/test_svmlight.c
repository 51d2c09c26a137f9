/* test_svmlight.c: the svmlight reader and writer: exact parses, round trips, every bad input (streaming: test_svmlight_stream.c). */
#include "svmlight_testutil.h"

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
  CHECK(X && X->shape[1] == 3 && X->dtype == KL_FLOAT32 && y->dtype == KL_FLOAT64); /* labels: f64 */
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
  if (X) CHECK(((float *)X->data)[0] == 0.1f && ((double *)y->data)[1] == 1e-5);
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
        CHECK(same_labels(y0, y));
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
    CHECK(same_labels(y0, y));
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
  /* the shortest text that reads back the same: 0.1 (not 0.10000000000000001), the
   * float32 0.1f as 0.1 (not 0.100000001) */
  const char *want = "1 1:0.1 4:-2\n0.1\n-3 2:1e-300\n";
  CHECK(t && n == strlen(want) && memcmp(t, want, n) == 0);
  if (t && (n != strlen(want) || memcmp(t, want, n))) fprintf(stderr, "got:\n%.*s", (int)n, t);
  free(t);
  CHECK_OK(kl_svmlight_dump(X, y, p, 1));
  t = read_all(p, &n);
  want = "1 0:0.1 3:-2\n0.1\n-3 1:1e-300\n";
  CHECK(t && n == strlen(want) && memcmp(t, want, n) == 0);
  free(t);
  kl_tensor_release(X);
  kl_tensor_release(y);
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



int main(void) {
  if (!make_tmpdir()) return 1;
  test_exact_small();
  test_exact_zero_based_auto();
  test_exact_qid_and_numbers();
  test_long_lines();
  test_bad_inputs();
  test_truncated_gz();
  test_round_trip();
  test_dump_text();
  test_alloc_failures();
  test_committed_files();
  rm_tmpdir();
  KLTEST_DONE();
}
