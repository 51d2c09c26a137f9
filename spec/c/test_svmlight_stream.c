/* test_svmlight_stream.c: the streaming svmlight iterator: parts cover every line once, batches equal a whole load, errors, allocation failures. */
#include "svmlight_testutil.h"

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
        for (int64_t i = 0; i < y->shape[0]; i++) sum += ((double *)y->data)[i]; /* f64 labels */
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
        ok &= same_csr(want, X) && same_labels(wy, y);
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
            ((double *)y->data)[0] == part + 2);
    }
    kl_svmlight_iter_close(it);
    it = NULL;
  }
  /* the auto base pre-scans the whole file, so the first part already refuses it */
  CHECK_ERR(kl_svmlight_iter_open(bad, 5, 8, -1, 2, 0, KL_FLOAT32, &it), KL_EFORMAT,
            "partbad.svm:90: bad value '2:zz'");
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

int main(void) {
  if (!make_tmpdir()) return 1;
  test_parts();
  test_stream_equals_load();
  test_alloc_failures_stream();
  rm_tmpdir();
  KLTEST_DONE();
}
