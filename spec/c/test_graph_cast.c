/* test_graph_cast.c: broadcasting inference against the unknown batch dim, the cast node
 * (forward, backward, errors) and plans differentiating a placeholder. */
#include "graph_testutil.h"

static void test_broadcast_batch(void) {
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  kl_meta m = {.ndim = 2, .shape = {-1, 3}, .dtype = KL_FLOAT64, .stype = KL_STYPE_DEFAULT};
  int x, c, y, z, bad;
  CHECK_OK(kl_graph_placeholder(g, &m, "x", &x));
  int64_t s43[2] = {4, 3}, s42[2] = {4, 2};
  kl_tensor *k = gt_dense(KL_FLOAT64, 2, s43, NULL), *k2 = gt_dense(KL_FLOAT64, 2, s42, NULL);
  CHECK_OK(kl_graph_constant(g, k, &c));
  int in[2] = {x, c};
  CHECK_OK(kl_graph_op(g, KL_OP_MUL, in, 2, NULL, &y));
  kl_meta out;
  CHECK_OK(kl_graph_meta(g, y, &out));
  CHECK(out.ndim == 2 && out.shape[0] == 4 && out.shape[1] == 3);
  int in2[2] = {x, x};
  CHECK_OK(kl_graph_op(g, KL_OP_ADD, in2, 2, NULL, &z));
  CHECK_OK(kl_graph_meta(g, z, &out));
  CHECK(out.shape[0] == -1 && out.shape[1] == 3);
  int in3[2] = {x, 0};
  CHECK_OK(kl_graph_constant(g, k2, &in3[1]));
  CHECK_ERR(kl_graph_op(g, KL_OP_ADD, in3, 2, NULL, &bad), KL_ESHAPE, "not broadcastable");
  /* run time: 4 rows and 1 row pass, 5 rows are refused */
  kl_plan *p = NULL;
  kl_plan_spec s = {&x, 1, &y, 1, -1, NULL, 0, NULL, NULL};
  CHECK_OK(kl_plan_new(g, &s, &p));
  int64_t s53[2] = {5, 3}, s13[2] = {1, 3};
  kl_tensor *f4 = gt_dense(KL_FLOAT64, 2, s43, NULL), *f5 = gt_dense(KL_FLOAT64, 2, s53, NULL);
  kl_tensor *f1 = gt_dense(KL_FLOAT64, 2, s13, NULL);
  CHECK_OK(kl_plan_forward(p, &f4, 0));
  CHECK_OK(kl_plan_forward(p, &f1, 0));
  CHECK(kl_plan_output(p, 0)->shape[0] == 4);
  CHECK_ERR(kl_plan_forward(p, &f5, 0), KL_ESHAPE, "multiply: shapes (5 x 3) and (4 x 3)");
  kl_plan_free(p);
  kl_tensor_release(f1);
  kl_tensor_release(f4);
  kl_tensor_release(f5);
  kl_tensor_release(k);
  kl_tensor_release(k2);
  kl_graph_free(g);
}

static void test_cast(void) {
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  kl_meta m = {.ndim = 2, .shape = {-1, 3}, .dtype = KL_FLOAT64, .stype = KL_STYPE_CSR};
  int x, d, w, y, loss, bad;
  CHECK_OK(kl_graph_placeholder(g, &m, "x", &x));
  CHECK_OK(kl_graph_cast(g, x, KL_STYPE_DEFAULT, &d));
  CHECK(kl_graph_kind(g, d) == KL_NODE_CAST);
  kl_meta out;
  CHECK_OK(kl_graph_meta(g, d, &out));
  CHECK(out.stype == KL_STYPE_DEFAULT && out.shape[0] == -1 && out.shape[1] == 3);
  int64_t s32[2] = {3, 2};
  double wv[6] = {1, 2, 3, 4, 5, 6};
  kl_tensor *wt = gt_dense(KL_FLOAT64, 2, s32, wv);
  CHECK_OK(kl_graph_variable(g, wt, 1, "w", &w));
  int in[2] = {d, w};
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, in, 2, NULL, &y));
  CHECK_OK(kl_graph_op(g, KL_OP_SUM, &y, 1, NULL, &loss));
  /* d loss / d x (dense, through the cast) and d loss / d w */
  int ws[2] = {x, w};
  kl_plan *p = NULL;
  kl_plan_spec s = {&x, 1, &d, 1, loss, ws, 2, NULL, NULL};
  CHECK_OK(kl_plan_new(g, &s, &p));
  int64_t s23[2] = {2, 3};
  double xv[6] = {1, 0, 2, 0, 3, 0};
  kl_tensor *xd = gt_dense(KL_FLOAT64, 2, s23, xv), *xc = NULL;
  CHECK_OK(kl_tensor_tostype(xd, KL_STYPE_CSR, &xc));
  CHECK_OK(kl_plan_forward(p, &xc, 0));
  const kl_tensor *dv = kl_plan_output(p, 0);
  CHECK(dv->stype == KL_STYPE_DEFAULT);
  for (int i = 0; i < 6; i++) CHECK_NEAR(kl_tensor_data_at(dv, i), xv[i], 0);
  CHECK_NEAR(kl_plan_loss(p), 1 * 3 + 2 * 11 + 3 * 7, 1e-12);
  CHECK_OK(kl_plan_backward(p));
  const kl_tensor *gx = kl_plan_grad(p, 0), *gw = kl_plan_grad(p, 1);
  CHECK(gx->stype == KL_STYPE_DEFAULT && gx->shape[0] == 2 && gx->shape[1] == 3);
  double gxv[3] = {3, 7, 11}; /* row sums of w */
  for (int i = 0; i < 6; i++) CHECK_NEAR(kl_tensor_data_at(gx, i), gxv[i % 3], 1e-12);
  double gwv[6] = {1, 1, 3, 3, 2, 2}; /* column sums of x, repeated per unit */
  for (int i = 0; i < 6; i++) CHECK_NEAR(kl_tensor_data_at(gw, i), gwv[i], 1e-12);
  kl_plan_free(p);
  /* a placeholder cannot be trained */
  kl_optimizer opt;
  CHECK_OK(kl_optimizer_init(&opt, KL_OPT_SGD));
  kl_plan_spec s2 = {&x, 1, &d, 1, loss, ws, 2, NULL, &opt};
  CHECK_ERR(kl_plan_new(g, &s2, &p), KL_EINVAL, "a placeholder can only be differentiated");
  /* errors */
  kl_meta m1 = {.ndim = 1, .shape = {-1}, .dtype = KL_FLOAT64, .stype = KL_STYPE_DEFAULT};
  int v;
  CHECK_OK(kl_graph_placeholder(g, &m1, "v", &v));
  CHECK_ERR(kl_graph_cast(g, v, KL_STYPE_CSR, &bad), KL_ESHAPE, "cast: csr needs a 2-d input, got 1-d");
  CHECK_ERR(kl_graph_cast(g, 999, KL_STYPE_DEFAULT, &bad), KL_EINDEX, "cast: node 999 out of range");
  kl_tensor_release(xd);
  kl_tensor_release(xc);
  kl_tensor_release(wt);
  kl_graph_free(g);
}

int main(void) {
  (void)gt_rand, (void)gt_gradcheck; /* shared helpers this test does not need */
  test_broadcast_batch();
  test_cast();
  KLTEST_DONE();
}
