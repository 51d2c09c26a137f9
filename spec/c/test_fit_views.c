/* test_fit_views.c: fit without shuffling feeds csr batches as views of the input
 * (kl_tensor_csr_row_view). A view holds the input's rows exactly, refuses to grow, and is
 * released without touching the input's buffers; after kl_plan_fit_epoch the plan holds no
 * value of the last step (no view outlives the epoch), so the input may be freed while the
 * plan lives on (ASan in make test-asan would see a use of freed memory otherwise). */
#include <stdlib.h>
#include "kl/graph.h"
#include "kl/optim.h"
#include "kltest.h"
#include "kltest_ops.h"
#include "tensor_internal.h"

static kl_rng rng;

/* R x C csr with 3 entries a row (some rows empty), values in (-1, 1). */
static kl_tensor *rand_csr(int64_t R, int64_t C) {
  int64_t *ip = malloc((size_t)(R + 1) * sizeof *ip), *ix = malloc((size_t)(3 * R) * sizeof *ix);
  double *v = malloc((size_t)(3 * R) * sizeof *v);
  if (!ip || !ix || !v) exit(2);
  int64_t n = 0;
  ip[0] = 0;
  for (int64_t i = 0; i < R; i++) {
    if (i % 4 != 2)
      for (int k = 0; k < 3; k++) {
        ix[n] = k * (C / 3) + (int64_t)(kl_rng_uniform(&rng) * (double)(C / 3));
        v[n++] = kl_rng_uniform(&rng) * 2 - 1;
      }
    ip[i + 1] = n;
  }
  kl_tensor *t = kt_csr_of(KL_FLOAT32, R, C, n, ip, ix, v);
  free(ip);
  free(ix);
  free(v);
  return t;
}

static void test_view(void) {
  kl_tensor *x = rand_csr(20, 30), *v = NULL, *s = NULL;
  CHECK_OK(kl_tensor_csr_row_view(x, 5, 12, &v));
  CHECK_OK(kl_tensor_slice_rows(x, 5, 12, &s));
  CHECK(v && s && v->borrowed && !s->borrowed);
  if (v && s) {
    CHECK(v->shape[0] == 7 && v->shape[1] == 30 && v->nnz == s->nnz);
    CHECK(memcmp(v->indptr, s->indptr, 8 * sizeof(int64_t)) == 0);
    CHECK(memcmp(v->indices, s->indices, (size_t)s->nnz * sizeof(int64_t)) == 0);
    CHECK(memcmp(v->data, s->data, (size_t)s->nnz * sizeof(float)) == 0);
    CHECK(v->indices == x->indices + x->indptr[5]); /* shared, not copied */
    CHECK_OK(kl_tensor_check_format(v, "view", 0));
    CHECK_ERR(kl_tensor_reserve(v, v->nnz + 10), KL_EINVAL, "view of another's storage");
  }
  kl_tensor_release(v);
  kl_tensor_release(s);
  CHECK_ERR(kl_tensor_csr_row_view(x, 12, 5, &v), KL_EINVAL, "bad csr row view");
  CHECK(v == NULL);
  kl_tensor_release(x); /* the view's release left x's buffers alone: freed once, here */
}

/* pred = x . W (csr . dense), mse against y; SGD. */
static void test_fit_leaves_no_view(void) {
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  int ix, iy, iw, pred, loss, two[2];
  kl_meta mx = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, 30}}, my = {KL_FLOAT32, KL_STYPE_DEFAULT, 2,
                                                                 {-1, 1}};
  int64_t ws[2] = {30, 1};
  kl_tensor *w32 = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &w32));
  for (int64_t k = 0; w32 && k < 30; k++) kl_tensor_data_set(w32, k, 0.2 * kl_rng_uniform(&rng) - 0.1);
  CHECK_OK(kl_graph_placeholder(g, &mx, "x", &ix));
  CHECK_OK(kl_graph_placeholder(g, &my, "y", &iy));
  CHECK_OK(kl_graph_variable(g, w32, 1, "W", &iw));
  two[0] = ix, two[1] = iw;
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &pred));
  two[0] = iy, two[1] = pred;
  CHECK_OK(kl_graph_op(g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  int feeds[2] = {ix, iy}, weights[1] = {iw};
  kl_plan_spec spec = {feeds, 2, &pred, 1, loss, weights, 1, NULL, &o};
  kl_plan *p = NULL;
  CHECK_OK(kl_plan_new(g, &spec, &p));
  kl_tensor *x = rand_csr(37, 30), *y = NULL;
  int64_t ys[2] = {37, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y));
  kl_tensor_fill(y, 0.5);
  kl_epoch_opts eo = {.batch_size = 8};
  double l = 0;
  if (p && x && y) {
    CHECK_OK(kl_plan_fit_epoch(p, &x, 1, y, &eo, &l, NULL));
    CHECK(kl_plan_step_count(p) == 5);
    CHECK(kl_plan_output(p, 0) == NULL); /* the last step's values (the fed view) are gone */
    kl_tensor_release(x); /* the plan may outlive its data */
    x = rand_csr(9, 30);
    kl_tensor *ys9 = NULL;
    int64_t s9[2] = {9, 1};
    CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s9, &ys9));
    kl_tensor *f[2] = {x, ys9};
    CHECK_OK(kl_plan_train_step(p, f, &l));
    CHECK(l == l);
    kl_tensor_release(ys9);
  }
  kl_plan_free(p);
  kl_tensor_release(x);
  kl_tensor_release(y);
  kl_tensor_release(w32);
  kl_graph_free(g);
}

int main(void) {
  kl_rng_seed(&rng, 11);
  test_view();
  test_fit_leaves_no_view();
  KLTEST_DONE();
}
