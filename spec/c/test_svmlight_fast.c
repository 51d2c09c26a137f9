/* test_svmlight_fast.c: kl_svmlight_load's fast paths: the short-decimal number parser against strtod, and the parallel byte-range parse against the sequential one (results, errors, lines). */
#include "svmlight_testutil.h"
#include "svmlight_internal.h"

/* ------------------------------------------------------------- numbers vs strtod */

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}

/* Appends a random number token to out: short decimals of every length (the fast path),
 * 1/1024-grid values as bench/src/gen.c writes them (%.10g), long mantissas, leading
 * zeros, exponents, signs, "1." and ".5" forms (each either path). */
static int random_token(char *out, uint64_t *s) {
  int kind = (int)(lcg(s) % 8);
  char *o = out;
  if (kind == 0) return sprintf(out, "%.10g", (double)(1 + lcg(s) % 1024) / 1024.0);
  if (kind == 1) return sprintf(out, "%.17g", (double)(lcg(s) | 1) * pow(10.0, (double)(lcg(s) % 40) - 20));
  int sign = (int)(lcg(s) % 4);
  if (sign == 1) *o++ = '-';
  if (sign == 2) *o++ = '+';
  int ni = (int)(lcg(s) % (kind == 7 ? 25 : 12)), nf = (int)(lcg(s) % (kind == 7 ? 25 : 14));
  if (ni == 0 && nf == 0) ni = 1;
  for (int i = 0; i < ni; i++) *o++ = (char)('0' + (i == 0 && kind != 6 && ni > 1 ? 1 + lcg(s) % 9 : lcg(s) % 10));
  if (nf || lcg(s) % 4 == 0) *o++ = '.';
  for (int i = 0; i < nf; i++) *o++ = (char)('0' + lcg(s) % 10);
  if (kind == 5) o += sprintf(o, "e%d", (int)(lcg(s) % 45) - 30);
  *o = 0;
  return (int)(o - out);
}

static void test_numbers_vs_strtod(void) {
  enum { ROWS = 4000, PER = 25 };
  uint64_t seed = 12345;
  size_t cap = (size_t)ROWS * (PER + 1) * 64, len = 0;
  char *text = malloc(cap);
  double *want = malloc(sizeof(double) * (ROWS * (PER + 1) + 64));
  int64_t nw = 0;
  char tok[128];
  for (int r = 0; r < ROWS; r++) {
    random_token(tok, &seed);
    want[nw++] = strtod(tok, NULL);
    len += (size_t)sprintf(text + len, "%s", tok);
    for (int j = 0; j < PER; j++) {
      random_token(tok, &seed);
      want[nw++] = strtod(tok, NULL);
      len += (size_t)sprintf(text + len, " %d:%s", j + 1, tok);
    }
    text[len++] = '\n';
  }
  /* hand-picked edges: 19 and 20 digits, 2^53 and 2^53+1, -0, tiny and huge exponents */
  static const char *edge[] = {"1234567890123456789", "12345678901234567890", "9007199254740992",
                               "9007199254740993", "-0", "0.0000000000000000001", "1e-400",
                               "4.9e-324", "3e38", ".5", "1.", "+.25", "0.9999999999999999999",
                               "123456789012345678.9", "0000000000000000000001"};
  const int ne = (int)(sizeof edge / sizeof edge[0]);
  for (int i = 0; i < ne; i++) {
    want[nw++] = strtod(edge[i], NULL);
    len += (size_t)sprintf(text + len, "%s 1:%s\n", edge[i], edge[i]);
    want[nw++] = strtod(edge[i], NULL);
  }
  const char *p = write_bytes("numbers.svm", text, len);
  kl_tensor *X = NULL, *y = NULL;
  kl_svmlight_opts o = opts_of(0, -1, KL_FLOAT64);
  CHECK_OK(kl_svmlight_load(p, &o, &X, &y, NULL));
  int64_t bad = 0, k = 0;
  if (X && y) {
    const double *xd = X->data, *yd = y->data;
    for (int64_t r = 0; r < X->shape[0]; r++) {
      double w = want[k++];
      if (memcmp(&w, &yd[r], sizeof w)) bad++;
      for (int64_t q = X->indptr[r]; q < X->indptr[r + 1]; q++) {
        w = want[k++];
        if (memcmp(&w, &xd[q], sizeof w)) bad++;
      }
    }
  }
  if (bad) fprintf(stderr, "%lld values differ from strtod\n", (long long)bad);
  CHECK(bad == 0 && k == nw);
  /* float32: the float of strtod's double */
  kl_tensor *Xf = NULL, *yf = NULL;
  o.dtype = KL_FLOAT32;
  CHECK_OK(kl_svmlight_load(p, &o, &Xf, &yf, NULL));
  if (X && Xf) {
    bad = 0;
    for (int64_t q = 0; q < X->nnz; q++)
      if (((float *)Xf->data)[q] != (float)((double *)X->data)[q]) bad++;
    CHECK(bad == 0);
  }
  kl_tensor_release(X);
  kl_tensor_release(y);
  kl_tensor_release(Xf);
  kl_tensor_release(yf);
  free(text);
  free(want);
}

/* ------------------------------------------------------------- parallel parse */

/* Loads p sequentially and in parts (each count in list), checking identical results, or
 * (when fail) the identical error message and status. */
static void same_as_sequential(const char *p, kl_svmlight_opts o, int want_qid) {
  kl_tensor *X0 = NULL, *y0 = NULL, *q0 = NULL;
  o.want_qid = want_qid;
  svm_set_parallel(INT64_MAX, 0);
  kl_status s0 = kl_svmlight_load(p, &o, &X0, &y0, &q0);
  char msg0[1100];
  snprintf(msg0, sizeof msg0, "%s", s0 ? kl_errmsg() : "");
  CHECK(svm_last_load_parts() == 1);
  static const int counts[] = {2, 3, 4, 7, 16, 64};
  for (int c = 0; c < (int)(sizeof counts / sizeof counts[0]); c++) {
    kl_tensor *X = NULL, *y = NULL, *q = NULL;
    svm_set_parallel(1, counts[c]);
    kl_status s = kl_svmlight_load(p, &o, &X, &y, &q);
    int parts = svm_last_load_parts();
    CHECK(s == s0);
    if (s0) {
      CHECK(parts == -1);
      if (strcmp(kl_errmsg(), msg0) != 0)
        fprintf(stderr, "parts %d: '%s' vs sequential '%s'\n", counts[c], kl_errmsg(), msg0);
      CHECK(strcmp(kl_errmsg(), msg0) == 0);
    } else {
      CHECK(parts == counts[c]);
      CHECK(same_csr(X, X0) && same_dense(y, y0));
      CHECK(kl_tensor_check_format(X, "test", 0) == KL_OK);
      CHECK((q == NULL) == (q0 == NULL));
      if (q && q0) CHECK(same_dense(q, q0));
    }
    kl_tensor_release(X);
    kl_tensor_release(y);
    kl_tensor_release(q);
  }
  svm_set_parallel(SVM_PAR_MIN_DEFAULT, 0);
  kl_tensor_release(X0);
  kl_tensor_release(y0);
  kl_tensor_release(q0);
}

/* n rows of text with comments, blank lines, CRLF and varied widths; row i's indices are
 * one-based unless zero_at >= 0 (that row gets an index 0). */
static char *rows_text(int n, int zero_at, int qid, size_t *len) {
  size_t cap = (size_t)n * 200 + 64;
  char *t = malloc(cap);
  size_t k = 0;
  uint64_t s = 99;
  for (int i = 0; i < n; i++) {
    if (i % 37 == 5) k += (size_t)sprintf(t + k, "# comment %d\n\n", i);
    k += (size_t)sprintf(t + k, "%d", (int)(lcg(&s) % 3) - 1);
    if (qid) k += (size_t)sprintf(t + k, " qid:%d", i / 10);
    int w = (int)(lcg(&s) % 8);
    int64_t idx = i == zero_at ? 0 : 1;
    for (int j = 0; j < w; j++) {
      k += (size_t)sprintf(t + k, " %lld:%.10g", (long long)idx, (double)(1 + lcg(&s) % 1024) / 1024.0);
      idx += 1 + (int64_t)(lcg(&s) % 50);
    }
    k += (size_t)sprintf(t + k, i % 11 == 3 ? " # tail\r\n" : "\n");
  }
  *len = k;
  return t;
}

static void test_parallel_same(void) {
  size_t n = 0;
  char *t = rows_text(3000, -1, 0, &n);
  const char *p = write_bytes("par.svm", t, n);
  same_as_sequential(p, opts_of(0, -1, KL_FLOAT32), 0);
  same_as_sequential(p, opts_of(0, -1, KL_FLOAT64), 0);
  same_as_sequential(p, opts_of(400, 0, KL_FLOAT32), 0);
  same_as_sequential(p, opts_of(0, 1, KL_FLOAT64), 0);
  /* no final newline */
  p = write_bytes("par_nonl.svm", t, n - 1);
  same_as_sequential(p, opts_of(0, -1, KL_FLOAT64), 0);
  free(t);
  /* auto base: the only index 0 lies in the last part */
  t = rows_text(3000, 2990, 0, &n);
  p = write_bytes("par_zero.svm", t, n);
  same_as_sequential(p, opts_of(0, -1, KL_FLOAT32), 0);
  same_as_sequential(p, opts_of(1000, -1, KL_FLOAT32), 0);
  free(t);
  /* qid on every line */
  t = rows_text(2000, -1, 1, &n);
  p = write_bytes("par_qid.svm", t, n);
  same_as_sequential(p, opts_of(0, -1, KL_FLOAT64), 1);
  same_as_sequential(p, opts_of(0, -1, KL_FLOAT64), 0);
  free(t);
  /* gzip stays sequential */
  t = rows_text(500, -1, 0, &n);
  p = write_gz("par.svm.gz", t, n);
  kl_tensor *X = NULL, *y = NULL;
  svm_set_parallel(1, 4);
  CHECK_OK(kl_svmlight_load(p, NULL, &X, &y, NULL));
  CHECK(svm_last_load_parts() == 1 && X && X->shape[0] == 500);
  svm_set_parallel(SVM_PAR_MIN_DEFAULT, 0);
  kl_tensor_release(X);
  kl_tensor_release(y);
  free(t);
}

/* Errors found by the parts: the first one in file order, with the file's line number. */
static void test_parallel_errors(void) {
  size_t n = 0;
  char *t = rows_text(3000, -1, 0, &n);
  char *u = malloc(n + 64);
  /* one bad line late, one early: the early one is reported */
  const char *bads[] = {"1 3:1 2:1\n", "1 1:x\n", "1 0:1\n", "1 qid:3 1:1\n", "x\n", "1 5:1 5:2\n"};
  for (int b = 0; b < (int)(sizeof bads / sizeof bads[0]); b++) {
    for (int where = 0; where < 2; where++) {
      size_t at = where ? n * 9 / 10 : n / 3;
      while (at < n && t[at - 1] != '\n') at++;
      size_t bl = strlen(bads[b]);
      memcpy(u, t, at);
      memcpy(u + at, bads[b], bl);
      memcpy(u + at + bl, t + at, n - at);
      const char *p = write_bytes("par_bad.svm", u, n + bl);
      same_as_sequential(p, opts_of(0, -1, KL_FLOAT32), 0);
      same_as_sequential(p, opts_of(0, 0, KL_FLOAT64), 0);
    }
  }
  /* qid only in a late part; only in an early part */
  char *q = rows_text(1000, -1, 1, &n);
  size_t n2 = 0;
  char *nq = rows_text(1000, -1, 0, &n2);
  char *both = malloc(n + n2 + 1);
  memcpy(both, nq, n2);
  memcpy(both + n2, q, n);
  same_as_sequential(write_bytes("par_qid1.svm", both, n + n2), opts_of(0, -1, KL_FLOAT32), 1);
  memcpy(both, q, n);
  memcpy(both + n, nq, n2);
  same_as_sequential(write_bytes("par_qid2.svm", both, n + n2), opts_of(0, -1, KL_FLOAT32), 1);
  /* zero-based (an index 0 in the last part) past n_features, found at the end */
  free(t);
  t = rows_text(3000, 2990, 0, &n);
  same_as_sequential(write_bytes("par_zero_nf.svm", t, n), opts_of(50, -1, KL_FLOAT32), 0);
  /* a NUL byte right at a part boundary, and only comments (no data) */
  memcpy(u, t, n);
  u[n / 2] = 0;
  same_as_sequential(write_bytes("par_nul.svm", u, n), opts_of(0, -1, KL_FLOAT32), 0);
  char *c = malloc(20000);
  size_t cl = 0;
  while (cl < 19000) cl += (size_t)sprintf(c + cl, "# only a comment\n\n");
  same_as_sequential(write_bytes("par_empty.svm", c, cl), opts_of(0, -1, KL_FLOAT32), 0);
  free(c);
  free(t);
  free(u);
  free(q);
  free(nq);
  free(both);
}

int main(void) {
  if (!make_tmpdir()) return 1;
  test_numbers_vs_strtod();
  test_parallel_same();
  test_parallel_errors();
  rm_tmpdir();
  KLTEST_DONE();
}
