/* fz_svmlight.h: fuzz entry point: bytes -> a LibSVM file (memfd) -> loader and iterator. */
#ifndef KL_FZ_SVMLIGHT_H
#define KL_FZ_SVMLIGHT_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/mman.h>
#include <unistd.h>
#include "fuzz_common.h"
#include "kl/svmlight.h"

/* A loaded (X, y) must be a valid CSR with y's rows and X's columns. */
static int fz_svm_check(const kl_tensor *X, const kl_tensor *y, int64_t n_features,
                        const char *what) {
  int bad = 0;
  if (!X || !y) return FZ_BUG("%s: success without X or y", what);
  if (X->stype != KL_STYPE_CSR || X->ndim != 2)
    bad |= FZ_BUG("%s: X is not a 2-d csr", what);
  else if (kl_tensor_check_format(X, "fuzz_svmlight", 0) != KL_OK)
    bad |= FZ_BUG("%s: X invalid: %s", what, kl_errmsg());
  if (y->ndim != 1 || y->shape[0] != X->shape[0])
    bad |= FZ_BUG("%s: y does not have X's %lld rows", what, (long long)X->shape[0]);
  if (n_features > 0 && X->shape[1] != n_features)
    bad |= FZ_BUG("%s: X has %lld columns, asked for %lld", what, (long long)X->shape[1],
                  (long long)n_features);
  return bad;
}

/* The entry point: the first 2 bytes choose options, the rest is the file's content. */
static int fz_run_svmlight(const uint8_t *data, size_t size) {
  fz_in in = {data, size, 0};
  uint8_t o1 = fz_u8(&in), o2 = fz_u8(&in);
  int fd = memfd_create("fuzz_svmlight", 0);
  if (fd < 0) return 0;
  size_t off = in.i;
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0) {
      close(fd);
      return 0;
    }
    off += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int bad = 0;

  /* whole-file loader */
  kl_svmlight_opts opts = kl_svmlight_opts_default();
  opts.zero_based = (int)(o1 % 3) - 1;
  opts.dtype = (o1 >> 2) & 1 ? KL_FLOAT64 : KL_FLOAT32;
  opts.want_qid = (o1 >> 3) & 1;
  opts.n_features = (o1 >> 4) & 1 ? (int64_t)(o2 % 16) : 0;
  kl_tensor *X = NULL, *y = NULL, *qid = NULL;
  kl_status s = kl_svmlight_load(path, &opts, &X, &y, opts.want_qid ? &qid : NULL);
  if (s == KL_OK) {
    bad |= fz_svm_check(X, y, opts.n_features, "load");
    if (qid && (qid->ndim != 1 || qid->shape[0] != y->shape[0] || qid->dtype != KL_INT64))
      bad |= FZ_BUG("load: qid does not match y");
  } else {
    bad |= fz_clean_error(s, "svmlight_load");
    if (X || y || qid) bad |= FZ_BUG("load: failure left outputs set");
    if (s != KL_EFORMAT && s != KL_EIO && s != KL_ENOMEM && s != KL_EINVAL)
      bad |= FZ_BUG("load: unexpected status %s: %s", kl_status_name(s), kl_errmsg());
  }
  kl_tensor_release(X);
  kl_tensor_release(y);
  kl_tensor_release(qid);

  /* streaming iterator over one part, two passes */
  int64_t nf = 1 + o2 % 32, bs = 1 + (o2 >> 5);
  int parts = 1 + (o1 >> 5) % 3, part = (int)((o2 >> 3) % (unsigned)parts);
  kl_svmlight_iter *it = NULL;
  s = kl_svmlight_iter_open(path, nf, bs, (int)((o1 >> 1) % 3) - 1, parts, part,
                            (o1 & 1) ? KL_FLOAT64 : KL_FLOAT32, &it);
  if (s == KL_OK) {
    for (int pass = 0; pass < 2 && !bad; pass++) {
      int done = 0, batches = 0;
      while (!done && batches < 10000) {
        kl_tensor *bx = NULL, *by = NULL;
        s = kl_svmlight_iter_next(it, &bx, &by, &done);
        if (s != KL_OK) {
          bad |= fz_clean_error(s, "iter_next");
          break;
        }
        if (done) break;
        batches++;
        bad |= fz_svm_check(bx, by, nf, "iter_next");
        if (!bad && (bx->shape[0] < 1 || bx->shape[0] > bs))
          bad |= FZ_BUG("iter_next: batch of %lld rows, batch_size %lld",
                        (long long)bx->shape[0], (long long)bs);
      }
      if (!bad && kl_svmlight_iter_reset(it) != KL_OK) break;
    }
    kl_svmlight_iter_close(it);
  } else {
    bad |= fz_clean_error(s, "iter_open");
    if (it) bad |= FZ_BUG("iter_open: failure left the iterator set");
  }
  close(fd);
  return bad;
}

#endif
