/* test_gpu_sort.c: gpu/k_sort.cu's scan and stable radix sort against serial references and
 * the CPU's kl_lu_radix_sort (layers/), bit for bit: empty, one item, tile and chunk edges
 * (255, 256, 257 items), many equal keys (stability), keys up to 2^40, maxkey 0. */
#include <stdlib.h>

#include "gpu_testutil.h"
#include "layers_util.h"

static void test_scan(int64_t n) {
  int64_t *in = malloc((size_t)(n + 1) * sizeof *in), *want = malloc((size_t)(n + 1) * sizeof *want);
  int64_t *got = malloc((size_t)(n + 1) * sizeof *got);
  want[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    in[i] = gpu_irand(5) - 1; /* -1 .. 3 */
    want[i + 1] = want[i] + in[i];
  }
  int64_t *din = dev_copy(in, (size_t)n * sizeof *in), *dout = dev_alloc((size_t)(n + 1) * sizeof *dout);
  void *scr = dev_alloc(kl_cuda_scan_scratch(n));
  CHECK_OK(kl_cuda_scan_i64(din, dout, n, scr, NULL));
  dev_sync();
  to_host(got, dout, (size_t)(n + 1) * sizeof *got);
  /* out[i] = sum of in[0..i) */
  int ok = 1;
  for (int64_t i = 0; i <= n; i++) ok &= got[i] == want[i];
  if (!ok) fprintf(stderr, "scan n=%lld differs\n", (long long)n);
  CHECK(ok);
  dev_free(din);
  dev_free(dout);
  dev_free(scr);
  free(in);
  free(want);
  free(got);
}

static void test_sort(int64_t n, int64_t maxkey) {
  int64_t *k = malloc((size_t)(n + 1) * sizeof *k), *v = malloc((size_t)(n + 1) * sizeof *v);
  int64_t *ck = malloc((size_t)(n + 1) * sizeof *ck), *cv = malloc((size_t)(n + 1) * sizeof *cv);
  int64_t *tk = malloc((size_t)(n + 1) * sizeof *tk), *tv = malloc((size_t)(n + 1) * sizeof *tv);
  for (int64_t i = 0; i < n; i++) {
    /* few distinct keys half the time: long runs of equal keys test stability */
    k[i] = maxkey == 0 ? 0 : (i % 2 ? gpu_irand(maxkey + 1) : gpu_irand(4) * (maxkey / 4));
    v[i] = i;
  }
  memcpy(ck, k, (size_t)n * sizeof *k);
  memcpy(cv, v, (size_t)n * sizeof *v);
  kl_lu_radix_sort(ck, cv, tk, tv, n, maxkey);
  int64_t *dk = dev_copy(k, (size_t)n * sizeof *k), *dv = dev_copy(v, (size_t)n * sizeof *v);
  void *scr = dev_alloc(kl_cuda_sort_scratch(n));
  CHECK_OK(kl_cuda_sort_pairs(dk, dv, n, maxkey, scr, NULL));
  dev_sync();
  to_host(k, dk, (size_t)n * sizeof *k);
  to_host(v, dv, (size_t)n * sizeof *v);
  char label[80];
  snprintf(label, sizeof label, "sort n=%lld maxkey=%lld keys", (long long)n, (long long)maxkey);
  CHECK(gpu_same(label, KL_INT64, k, ck, n));
  snprintf(label, sizeof label, "sort n=%lld maxkey=%lld values", (long long)n, (long long)maxkey);
  CHECK(gpu_same(label, KL_INT64, v, cv, n));
  dev_free(dk);
  dev_free(dv);
  dev_free(scr);
  free(k);
  free(v);
  free(ck);
  free(cv);
  free(tk);
  free(tv);
}

int main(void) {
  int rc = gpu_test_start("test_gpu_sort");
  if (rc) return rc;
  static const int64_t ns[] = {0, 1, 2, 63, 64, 65, 255, 256, 257, 4095, 4097, 70000};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    test_scan(ns[i]);
    test_sort(ns[i], 0);
    test_sort(ns[i], 1);
    test_sort(ns[i], 255);
    test_sort(ns[i], 256);
    test_sort(ns[i], 100000);
    test_sort(ns[i], (int64_t)1 << 40);
  }
  CHECK_ERR(kl_cuda_scan_i64(NULL, NULL, -1, NULL, NULL), KL_ESHAPE, "cuda scan: n=-1");
  CHECK_ERR(kl_cuda_sort_pairs(NULL, NULL, 3, -1, NULL, NULL), KL_EINVAL,
            "cuda sort_pairs: n=3 maxkey=-1");
  CHECK(kl_cuda_sort_scratch(0) == 0);
  KLTEST_DONE();
}
