/* test_gpu_embedding.c: gpu/k_embedding.cu against the CPU's Embedding op (layers/embedding.c)
 * bit for bit: the forward gather and the row_sparse weight gradient, for int64 / float32 /
 * float64 ids, float32 / float64 weights, (n) and (n, L) ids, empty batches, one row,
 * duplicate ids, padding (all padding too), a row_sparse weight storing some rows; bad ids
 * (out of range, negative, not an integer, NaN) flagged at their first position with the
 * CPU's message. */
#include <math.h>
#include <stdlib.h>

#include "gpu_testutil.h"

static kl_tensor *make_ids(kl_dtype dt, int64_t n, int64_t L, int64_t V, double pad_p) {
  int64_t shape[2] = {n, L};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, L > 0 ? 2 : 1, shape, &t));
  int64_t np = n * (L > 0 ? L : 1);
  for (int64_t p = 0; p < np; p++) {
    int64_t id = gpu_urand(0, 1) < pad_p ? 0 : 1 + gpu_irand(V);
    if (dt == KL_INT64) ((int64_t *)t->data)[p] = id;
    else kl_tensor_data_set(t, p, (double)id);
  }
  return t;
}

static kl_tensor *make_weight(kl_dtype dt, int64_t V, int64_t D) {
  int64_t shape[2] = {V, D};
  kl_tensor *w = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, 2, shape, &w));
  for (int64_t i = 0; i < V * D; i++) kl_tensor_data_set(w, i, gpu_urand(-1, 1));
  return w;
}

/* Forward and backward on the device against the CPU. */
static void run_case(kl_dtype idt, kl_dtype dt, int64_t n, int64_t L, int64_t V, int64_t D,
                     double pad_p) {
  kl_tensor *ids = make_ids(idt, n, L, V, pad_p), *w = make_weight(dt, V, D);
  kl_tensor *in[2] = {ids, w}, *out = NULL, *gout = NULL, *gin = NULL;
  const int64_t npos = kl_tensor_numel(ids);
  const size_t es = kl_dtype_size(dt), ies = kl_dtype_size(idt);
  char label[160];
  snprintf(label, sizeof label, "embedding ids %s w %s n=%lld L=%lld V=%lld D=%lld",
           kl_dtype_name(idt), kl_dtype_name(dt), (long long)n, (long long)L, (long long)V,
           (long long)D);
  CHECK_OK(kl_op_run(KL_OP_EMBEDDING, in, 2, NULL, &out));
  CHECK_OK(kl_tensor_new_dense(dt, out->ndim, out->shape, &gout));
  for (int64_t i = 0; i < npos * D; i++)
    kl_tensor_data_set(gout, i, gpu_urand(0, 1) < 0.05 ? -0.0 : gpu_urand(-1, 1));
  CHECK_OK(kl_op_backward(KL_OP_EMBEDDING, in, 2, NULL, out, gout, 1, KL_STYPE_ROW_SPARSE, &gin));

  void *dids = dev_copy(ids->data, (size_t)npos * ies), *dw = dev_copy(w->data, (size_t)(V * D) * es);
  void *dout = dev_alloc((size_t)(npos * D) * es), *dg = dev_copy(gout->data, (size_t)(npos * D) * es);
  int64_t *dbad = dev_alloc(sizeof(int64_t)), *dnu = dev_alloc(sizeof(int64_t));
  int64_t *drows = dev_alloc((size_t)npos * sizeof(int64_t));
  void *dvals = dev_alloc((size_t)(npos * D) * es);
  void *scr = dev_alloc(kl_cuda_embedding_backward_scratch(npos));
  CHECK_OK(kl_cuda_embedding_forward(idt, dids, npos, dt, dw, V, D, NULL, 0, dout, dbad, NULL));
  dev_sync();
  int64_t bad = -1, nu = -1;
  to_host(&bad, dbad, sizeof bad);
  CHECK(bad == npos);
  char l2[200];
  snprintf(l2, sizeof l2, "%s forward", label);
  CHECK(gpu_same_on_dev(l2, dt, dout, out->data, npos * D));

  CHECK_OK(kl_cuda_embedding_backward(idt, dids, npos, dt, dg, V, D, scr, drows, dvals, dnu,
                                      dbad, NULL));
  dev_sync();
  to_host(&nu, dnu, sizeof nu);
  to_host(&bad, dbad, sizeof bad);
  CHECK(bad == npos);
  CHECK(nu == gin->nnz);
  snprintf(l2, sizeof l2, "%s backward", label);
  if (nu == gin->nnz) CHECK(gpu_same_rsp_on_dev(l2, dt, drows, dvals, nu, D, gin));
  dev_free(dids);
  dev_free(dw);
  dev_free(dout);
  dev_free(dg);
  dev_free(dbad);
  dev_free(dnu);
  dev_free(drows);
  dev_free(dvals);
  dev_free(scr);
  kl_tensor_release(ids);
  kl_tensor_release(w);
  kl_tensor_release(out);
  kl_tensor_release(gout);
  kl_tensor_release(gin);
}

static void test_cases(void) {
  static const kl_dtype idts[] = {KL_INT64, KL_FLOAT32, KL_FLOAT64};
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 2; b++) {
      kl_dtype idt = idts[a], dt = b ? KL_FLOAT64 : KL_FLOAT32;
      run_case(idt, dt, 0, 5, 10, 4, 0.2);    /* an empty batch */
      run_case(idt, dt, 0, 0, 10, 4, 0.2);    /* (0) ids */
      run_case(idt, dt, 1, 1, 1, 1, 0.0);     /* one row of one */
      run_case(idt, dt, 1, 7, 3, 5, 0.0);     /* duplicates */
      run_case(idt, dt, 6, 4, 9, 3, 1.0);     /* all padding */
      run_case(idt, dt, 6, 4, 9, 0, 0.3);     /* D = 0 */
      run_case(idt, dt, 20, 0, 50, 8, 0.3);   /* (n) ids */
      run_case(idt, dt, 64, 20, 1000, 16, 0.2);
      run_case(idt, dt, 33, 9, 300, 1, 0.1);  /* 1-wide rows */
      run_case(idt, dt, 40, 50, 70000, 3, 0.1); /* ids past 2^16: three radix passes */
    }
  run_case(KL_INT64, KL_FLOAT32, 300, 100, 20, 64, 0.1); /* heavy duplication */
}

/* A row_sparse weight storing rows {1, 4, 5} of 8: absent rows read as zeros. */
static void test_rsp_weight(void) {
  int64_t shape[2] = {8, 3}, ishape[2] = {2, 4}, idx[3] = {1, 4, 5};
  kl_tensor *w = NULL, *ids = NULL, *out = NULL;
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT32, 2, shape, 3, &w));
  memcpy(w->indices, idx, sizeof idx);
  for (int i = 0; i < 9; i++) ((float *)w->data)[i] = (float)(i + 1) * 0.5f;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 2, ishape, &ids));
  int64_t v[8] = {2, 1, 5, 6, 0, 8, 2, 3};
  memcpy(ids->data, v, sizeof v);
  kl_tensor *in[2] = {ids, w};
  CHECK_OK(kl_op_run(KL_OP_EMBEDDING, in, 2, NULL, &out));
  void *dids = dev_copy(v, sizeof v), *dw = dev_copy(w->data, 9 * sizeof(float));
  int64_t *didx = dev_copy(idx, sizeof idx), *dbad = dev_alloc(sizeof(int64_t)), bad = -1;
  void *dout = dev_alloc(24 * sizeof(float));
  float h[24];
  CHECK_OK(kl_cuda_embedding_forward(KL_INT64, dids, 8, KL_FLOAT32, dw, 8, 3, didx, 3, dout, dbad,
                                     NULL));
  dev_sync();
  to_host(h, dout, sizeof h);
  to_host(&bad, dbad, sizeof bad);
  CHECK(bad == 8);
  CHECK(gpu_same("row_sparse weight forward", KL_FLOAT32, h, out->data, 24));
  CHECK(h[0] == 0.5f && h[3] == 0.0f); /* id 2 is row 1 (stored first), id 1 row 0 (absent) */
  dev_free(dids);
  dev_free(dw);
  dev_free(didx);
  dev_free(dbad);
  dev_free(dout);
  kl_tensor_release(w);
  kl_tensor_release(ids);
  kl_tensor_release(out);
}

/* Bad ids: the first bad position is flagged, the CPU's message comes back, nothing traps. */
static void bad_case(kl_dtype idt, const double *vals, int64_t n, int64_t L, int64_t V,
                     int64_t want_pos) {
  int64_t shape[2] = {n, L};
  kl_tensor *ids = NULL, *w = make_weight(KL_FLOAT32, V, 2), *out = NULL;
  CHECK_OK(kl_tensor_new_dense(idt, L > 0 ? 2 : 1, shape, &ids));
  const int64_t npos = kl_tensor_numel(ids);
  for (int64_t p = 0; p < npos; p++) {
    if (idt == KL_INT64) ((int64_t *)ids->data)[p] = (int64_t)vals[p];
    else kl_tensor_data_set(ids, p, vals[p]);
  }
  kl_tensor *in[2] = {ids, w};
  kl_status cs = kl_op_run(KL_OP_EMBEDDING, in, 2, NULL, &out);
  CHECK(cs == KL_EINDEX);
  char cpu_msg[512];
  snprintf(cpu_msg, sizeof cpu_msg, "%s", kl_errmsg());
  const size_t ies = kl_dtype_size(idt);
  void *dids = dev_copy(ids->data, (size_t)npos * ies), *dw = dev_copy(w->data, (size_t)V * 2 * 4);
  void *dout = dev_alloc((size_t)npos * 2 * 4), *dvals = dev_alloc((size_t)npos * 2 * 4);
  void *dg = dev_alloc((size_t)npos * 2 * 4), *scr = dev_alloc(kl_cuda_embedding_backward_scratch(npos));
  float *zero = calloc((size_t)npos * 2, sizeof(float));
  to_dev(dg, zero, (size_t)npos * 2 * 4);
  int64_t *dbad = dev_alloc(sizeof(int64_t)), *dnu = dev_alloc(sizeof(int64_t));
  int64_t *drows = dev_alloc((size_t)npos * sizeof(int64_t)), bad = -1;
  CHECK_OK(kl_cuda_embedding_forward(idt, dids, npos, KL_FLOAT32, dw, V, 2, NULL, 0, dout, dbad, NULL));
  dev_sync();
  to_host(&bad, dbad, sizeof bad);
  CHECK(bad == want_pos);
  if (bad >= 0 && bad < npos) {
    char idv[8];
    to_host(idv, (const char *)dids + (size_t)bad * ies, ies);
    CHECK_ERR(kl_cuda_embedding_id_error(idt, idv, bad, L, V), KL_EINDEX, cpu_msg);
    CHECK(strcmp(kl_errmsg(), cpu_msg) == 0);
  }
  bad = -1;
  CHECK_OK(kl_cuda_embedding_backward(idt, dids, npos, KL_FLOAT32, dg, V, 2, scr, drows, dvals,
                                      dnu, dbad, NULL));
  dev_sync();
  to_host(&bad, dbad, sizeof bad);
  CHECK(bad == want_pos);
  free(zero);
  dev_free(dids);
  dev_free(dw);
  dev_free(dout);
  dev_free(dvals);
  dev_free(dg);
  dev_free(scr);
  dev_free(dbad);
  dev_free(dnu);
  dev_free(drows);
  kl_tensor_release(ids);
  kl_tensor_release(w);
  kl_tensor_release(out);
}

static void test_bad_ids(void) {
  const double a[] = {1, 2, 6, 3, 9, 1}; /* V = 5: 6 at (1, 3) */
  bad_case(KL_INT64, a, 2, 3, 5, 2);
  bad_case(KL_FLOAT32, a, 2, 3, 5, 2);
  const double b[] = {1, 0, 2, -1, 3}; /* negative, 1-d ids */
  bad_case(KL_INT64, b, 5, 0, 4, 3);
  bad_case(KL_FLOAT64, b, 5, 0, 4, 3);
  const double c[] = {1, 2.5, 7, 1}; /* not an integer comes first */
  bad_case(KL_FLOAT64, c, 2, 2, 3, 1);
  const double d[] = {1, 1, 1, NAN};
  bad_case(KL_FLOAT32, d, 1, 4, 3, 3);
  const double e[] = {1, INFINITY};
  bad_case(KL_FLOAT64, e, 2, 0, 3, 1);
  CHECK_ERR(kl_cuda_embedding_forward(KL_FLOAT32, NULL, 1, KL_INT64, NULL, 1, 1, NULL, 0, NULL,
                                      NULL, NULL), KL_EDTYPE,
            "cuda embedding_forward: weight must be float32 or float64, got int64");
  CHECK_ERR(kl_cuda_embedding_backward(KL_INT64, NULL, -2, KL_FLOAT32, NULL, 1, 1, NULL, NULL,
                                       NULL, NULL, NULL, NULL), KL_ESHAPE,
            "cuda embedding_backward: bad sizes npos=-2");
}

int main(void) {
  int rc = gpu_test_start("test_gpu_embedding");
  if (rc) return rc;
  test_cases();
  test_rsp_weight();
  test_bad_ids();
  KLTEST_DONE();
}
