/* test_graph.c: graph building and inference, and finite-difference gradient checks of every
 * op (and reshape, dropout) through the graph and plan (float64, central differences). */
#include "graph_testutil.h"
#include "kl/registry.h"

static kl_rng rng;

static void quiet(const char *msg, void *ud) { (void)msg, (void)ud; }

/* Gradient check of op over inputs ins: inputs with diff[i] become trainable variables, the
 * rest constants; the loss is sum(out * R) for a random R (out itself when it is a scalar). */
static void check_op(const char *what, kl_op op, kl_tensor **ins, int nin, const int *diff,
                     const kl_attrs *a, const kl_stype *gst) {
  kl_graph *g = NULL;
  kl_plan *p = NULL;
  int ids[8], w[8], nw = 0, o = -1, loss = -1;
  CHECK_OK(kl_graph_new(&g));
  for (int i = 0; i < nin; i++) {
    if (diff[i]) {
      CHECK_OK(kl_graph_variable(g, ins[i], 1, NULL, &ids[i]));
      w[nw++] = ids[i];
    } else {
      CHECK_OK(kl_graph_constant(g, ins[i], &ids[i]));
    }
  }
  kl_status st = kl_graph_op(g, op, ids, nin, a, &o);
  CHECK_OK(st);
  if (st != KL_OK) {
    fprintf(stderr, "  (in %s)\n", what);
    kl_graph_free(g);
    return;
  }
  kl_meta m;
  CHECK_OK(kl_graph_meta(g, o, &m));
  if (m.ndim == 0) {
    loss = o;
  } else {
    kl_tensor *r = gt_rand(&rng, m.ndim, m.shape, -1, 1, 0);
    int rid, mid, two[2];
    kl_attrs all = {0};
    CHECK_OK(kl_graph_constant(g, r, &rid));
    two[0] = o, two[1] = rid;
    CHECK_OK(kl_graph_op(g, KL_OP_MUL, two, 2, NULL, &mid));
    CHECK_OK(kl_graph_op(g, KL_OP_SUM, &mid, 1, &all, &loss));
    kl_tensor_release(r);
  }
  kl_plan_spec s = {NULL, 0, &o, 1, loss, w, nw, gst, NULL};
  st = kl_plan_new(g, &s, &p);
  CHECK_OK(st);
  if (st == KL_OK) {
    if (gt_gradcheck(p, g, w, nw, NULL, 1e-5, 1e-6, what)) fprintf(stderr, "  (in %s)\n", what);
  } else {
    fprintf(stderr, "  (in %s)\n", what);
  }
  kl_plan_free(p);
  kl_graph_free(g);
}

static void release_all(kl_tensor **t, int n) {
  for (int i = 0; i < n; i++) kl_tensor_release(t[i]);
}

static void test_inference(void) {
  kl_graph *g = NULL;
  CHECK_OK(kl_graph_new(&g));
  kl_meta m = {KL_FLOAT32, KL_STYPE_CSR, 2, {-1, 100}};
  int x, w, d, r, y;
  CHECK_OK(kl_graph_placeholder(g, &m, "x", &x));
  int64_t ws[2] = {100, 8};
  kl_tensor *wt = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &wt));
  CHECK_OK(kl_graph_variable(g, wt, 1, "w", &w));
  int xw[2] = {x, w};
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, xw, 2, NULL, &d));
  kl_meta o;
  CHECK_OK(kl_graph_meta(g, d, &o));
  CHECK(o.ndim == 2 && o.shape[0] == -1 && o.shape[1] == 8 && o.stype == KL_STYPE_DEFAULT);
  kl_attrs ta = {0};
  ta.transpose_a = 1;
  int dd; /* x^T . x-shaped: (100 x -1) . (-1 x 8) -> 100 x 8, batch dim contracted */
  kl_meta dm = {KL_FLOAT32, KL_STYPE_DEFAULT, 2, {-1, 8}};
  int gy;
  CHECK_OK(kl_graph_placeholder(g, &dm, "gy", &gy));
  int xg[2] = {x, gy};
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, xg, 2, &ta, &dd));
  CHECK_OK(kl_graph_meta(g, dd, &o));
  CHECK(o.ndim == 2 && o.shape[0] == 100 && o.shape[1] == 8 && o.stype == KL_STYPE_ROW_SPARSE);
  /* shape mismatch is reported by the op's inference */
  int wx[2] = {w, w};
  CHECK_ERR(kl_graph_op(g, KL_OP_DOT, wx, 2, NULL, &y), KL_ESHAPE, "dot");
  /* reshape: flatten a (-1, 2, 4) into (-1, 8) */
  int64_t s3[3] = {-1, 2, 4}, flat[2] = {-1, 8}, bad[2] = {-1, 3};
  kl_meta m3 = {KL_FLOAT64, KL_STYPE_DEFAULT, 3, {-1, 2, 4}};
  (void)s3;
  int p3;
  CHECK_OK(kl_graph_placeholder(g, &m3, NULL, &p3));
  CHECK_OK(kl_graph_reshape(g, p3, 2, flat, &r));
  CHECK_OK(kl_graph_meta(g, r, &o));
  CHECK(o.ndim == 2 && o.shape[0] == -1 && o.shape[1] == 8);
  CHECK_ERR(kl_graph_reshape(g, p3, 2, bad, &y), KL_ESHAPE, "reshape");
  CHECK_ERR(kl_graph_reshape(g, x, 2, flat, &y), KL_ESTYPE, "reshape: input is csr");
  CHECK(kl_graph_kind(g, r) == KL_NODE_RESHAPE);
  CHECK_ERR(kl_graph_dropout(g, r, 1.0, 1, &y), KL_EINVAL, "rate must be in [0, 1)");
  CHECK_OK(kl_graph_dropout(g, r, 0.5, 1, &y));
  CHECK(kl_graph_kind(g, y) == KL_NODE_DROPOUT);
  CHECK(kl_graph_kind(g, w) == KL_NODE_VARIABLE && kl_graph_value(g, w) == wt);
  CHECK(kl_graph_value(g, x) == NULL);
  CHECK(kl_graph_size(g) == y + 1);
  CHECK_ERR(kl_graph_meta(g, 99, &o), KL_EINDEX, "node 99 out of range");
  int bad_in[2] = {x, 42};
  CHECK_ERR(kl_graph_op(g, KL_OP_ADD, bad_in, 2, NULL, &y), KL_EINDEX, "node 42");
  /* set_value checks the meta */
  kl_tensor *w2 = NULL;
  int64_t ws2[2] = {100, 9};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws2, &w2));
  CHECK_ERR(kl_graph_set_value(g, w, w2), KL_ESHAPE, "set_value: shape (100 x 9)");
  kl_tensor_release(w2);
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ws, &w2));
  CHECK_OK(kl_graph_set_value(g, w, w2));
  CHECK(kl_graph_value(g, w) == w2 && w2->refcount == 2);
  kl_tensor_release(w2);
  kl_tensor_release(wt);
  kl_graph_free(g);
}

static void test_ops(void) {
  int64_t s34[2] = {3, 4}, s42[2] = {4, 2}, s43[2] = {4, 3}, s24[2] = {2, 4}, s4[1] = {4};
  int64_t s31[2] = {3, 1}, s14[2] = {1, 4}, s32[2] = {3, 2};
  int d1[2] = {1, 1}, d10[2] = {1, 0}, d01[2] = {0, 1};
  kl_attrs a = {0};
  kl_tensor *t[4];
  /* dot and its transposes */
  t[0] = gt_rand(&rng, 2, s34, -1, 1, 0), t[1] = gt_rand(&rng, 2, s42, -1, 1, 0);
  check_op("dot", KL_OP_DOT, t, 2, d1, &a, NULL);
  release_all(t, 2);
  a.transpose_a = 1;
  t[0] = gt_rand(&rng, 2, s43, -1, 1, 0), t[1] = gt_rand(&rng, 2, s42, -1, 1, 0);
  check_op("dot transpose_a", KL_OP_DOT, t, 2, d1, &a, NULL);
  release_all(t, 2);
  a.transpose_a = 0, a.transpose_b = 1;
  t[0] = gt_rand(&rng, 2, s34, -1, 1, 0), t[1] = gt_rand(&rng, 2, s24, -1, 1, 0);
  check_op("dot transpose_b", KL_OP_DOT, t, 2, d1, &a, NULL);
  release_all(t, 2);
  memset(&a, 0, sizeof a);
  /* reductions */
  kl_op reds[2] = {KL_OP_SUM, KL_OP_MEAN};
  for (int r = 0; r < 2; r++) {
    t[0] = gt_rand(&rng, 2, s34, -1, 1, 0);
    kl_attrs ra = {0};
    check_op(r ? "mean all" : "sum all", reds[r], t, 1, d1, &ra, NULL);
    ra.has_axis = 1, ra.axis = 0;
    check_op(r ? "mean axis 0" : "sum axis 0", reds[r], t, 1, d1, &ra, NULL);
    ra.axis = 1, ra.keepdims = 1;
    check_op(r ? "mean axis 1 keepdims" : "sum axis 1 keepdims", reds[r], t, 1, d1, &ra, NULL);
    kl_tensor_release(t[0]);
  }
  /* concatenate along both axes */
  t[0] = gt_rand(&rng, 2, s34, -1, 1, 0), t[1] = gt_rand(&rng, 2, s32, -1, 1, 0);
  a.axis = 1;
  check_op("concatenate axis 1", KL_OP_CONCAT, t, 2, d1, &a, NULL);
  release_all(t, 2);
  t[0] = gt_rand(&rng, 2, s34, -1, 1, 0), t[1] = gt_rand(&rng, 2, s14, -1, 1, 0);
  a.axis = 0;
  check_op("concatenate axis 0", KL_OP_CONCAT, t, 2, d1, &a, NULL);
  release_all(t, 2);
  memset(&a, 0, sizeof a);
  /* binary elementwise, same shapes and broadcast */
  kl_op bins[4] = {KL_OP_ADD, KL_OP_SUB, KL_OP_MUL, KL_OP_DIV};
  const char *bnames[4] = {"add", "subtract", "multiply", "divide"};
  for (int b = 0; b < 4; b++) {
    char what[64];
    t[0] = gt_rand(&rng, 2, s34, -2, 2, 0.3), t[1] = gt_rand(&rng, 2, s34, -2, 2, 0.3);
    snprintf(what, sizeof what, "%s same shape", bnames[b]);
    check_op(what, bins[b], t, 2, d1, &a, NULL);
    release_all(t, 2);
    t[0] = gt_rand(&rng, 2, s34, -2, 2, 0.3), t[1] = gt_rand(&rng, 1, s4, -2, 2, 0.3);
    snprintf(what, sizeof what, "%s broadcast (3x4) (4)", bnames[b]);
    check_op(what, bins[b], t, 2, d1, &a, NULL);
    release_all(t, 2);
    t[0] = gt_rand(&rng, 2, s31, -2, 2, 0.3), t[1] = gt_rand(&rng, 2, s14, -2, 2, 0.3);
    snprintf(what, sizeof what, "%s broadcast (3x1) (1x4)", bnames[b]);
    check_op(what, bins[b], t, 2, d1, &a, NULL);
    check_op(what, bins[b], t, 2, d10, &a, NULL);
    check_op(what, bins[b], t, 2, d01, &a, NULL);
    release_all(t, 2);
  }
  /* scalar ops */
  kl_op sc[5] = {KL_OP_ADD_SCALAR, KL_OP_MUL_SCALAR, KL_OP_DIV_SCALAR, KL_OP_RSUB_SCALAR,
                 KL_OP_RDIV_SCALAR};
  a.scalar = 2.5;
  for (int k = 0; k < 5; k++) {
    t[0] = gt_rand(&rng, 2, s34, -2, 2, 0.3);
    check_op(kl_op_name(sc[k]), sc[k], t, 1, d1, &a, NULL);
    kl_tensor_release(t[0]);
  }
  memset(&a, 0, sizeof a);
  /* unary ops: positive inputs for sqrt and log, away from kinks for abs and relu */
  kl_op un[11] = {KL_OP_NEG,  KL_OP_SQUARE,  KL_OP_SQRT, KL_OP_ABS,     KL_OP_RELU,
                  KL_OP_EXP,  KL_OP_LOG,     KL_OP_SIGMOID, KL_OP_TANH, KL_OP_SOFTMAX,
                  KL_OP_TRANSPOSE};
  for (int k = 0; k < 11; k++) {
    int pos = un[k] == KL_OP_SQRT || un[k] == KL_OP_LOG;
    t[0] = gt_rand(&rng, 2, s34, pos ? 0.2 : -2, 2, pos ? 0 : 0.2);
    check_op(kl_op_name(un[k]), un[k], t, 1, d1, &a, NULL);
    kl_tensor_release(t[0]);
  }
}

static void test_layer_ops(void) {
  int64_t s34[2] = {3, 4}, s4[1] = {4}, s53[2] = {5, 3}, s23[2] = {2, 3}, s31[2] = {3, 1};
  int64_t s3[1] = {3};
  int d1[2] = {1, 1}, d01[2] = {0, 1};
  kl_attrs a = {0};
  kl_tensor *t[2];
  t[0] = gt_rand(&rng, 2, s34, -1, 1, 0), t[1] = gt_rand(&rng, 1, s4, -1, 1, 0);
  check_op("bias_add", KL_OP_BIAS_ADD, t, 2, d1, &a, NULL);
  release_all(t, 2);
  /* embedding: ids with padding 0 and a repeat, dense and row_sparse weight gradients */
  double ids[6] = {1, 3, 0, 3, 5, 2};
  t[0] = gt_dense(KL_FLOAT64, 2, s23, ids), t[1] = gt_rand(&rng, 2, s53, -1, 1, 0);
  a.ival = 5;
  check_op("embedding", KL_OP_EMBEDDING, t, 2, d01, &a, NULL);
  kl_stype rs[1] = {KL_STYPE_ROW_SPARSE};
  check_op("embedding row_sparse grad", KL_OP_EMBEDDING, t, 2, d01, &a, rs);
  release_all(t, 2);
  memset(&a, 0, sizeof a);
  /* losses, gradient w.r.t. y_pred */
  t[0] = gt_rand(&rng, 2, s34, -1, 1, 0), t[1] = gt_rand(&rng, 2, s34, -1, 1, 0.05);
  check_op("mean_squared_error", KL_OP_LOSS_MSE, t, 2, d01, &a, NULL);
  check_op("mean_absolute_error", KL_OP_LOSS_MAE, t, 2, d01, &a, NULL);
  release_all(t, 2);
  double yt[3] = {1, 0, 1};
  t[0] = gt_dense(KL_FLOAT64, 1, s3, yt), t[1] = gt_rand(&rng, 2, s31, 0.1, 0.9, 0);
  check_op("mse (n) vs (n,1)", KL_OP_LOSS_MSE, t, 2, d01, &a, NULL);
  check_op("binary_crossentropy", KL_OP_LOSS_BCE, t, 2, d01, &a, NULL);
  release_all(t, 2);
  double oh[12] = {0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1};
  t[0] = gt_dense(KL_FLOAT64, 2, s34, oh), t[1] = gt_rand(&rng, 2, s34, 0.1, 0.9, 0);
  check_op("categorical_crossentropy", KL_OP_LOSS_CCE, t, 2, d01, &a, NULL);
  release_all(t, 2);
  double cls[3] = {2, 1, 4};
  t[0] = gt_dense(KL_FLOAT64, 1, s3, cls), t[1] = gt_rand(&rng, 2, s34, 0.1, 0.9, 0);
  check_op("sparse_categorical_crossentropy", KL_OP_LOSS_SCCE, t, 2, d01, &a, NULL);
  release_all(t, 2);
}

/* retain: a row_sparse weight (every row stored), its row_sparse gradient on the kept rows. */
static void test_retain(void) {
  int64_t s52[2] = {5, 2}, s2[1] = {2};
  kl_tensor *d = gt_rand(&rng, 2, s52, -1, 1, 0), *w = NULL;
  CHECK_OK(kl_tensor_tostype(d, KL_STYPE_ROW_SPARSE, &w));
  kl_tensor *rows = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 1, s2, &rows));
  ((int64_t *)rows->data)[0] = 1, ((int64_t *)rows->data)[1] = 3;
  kl_tensor *t[2] = {w, rows};
  int d10[2] = {1, 0};
  kl_attrs a = {0};
  if (w && w->nnz == 5) check_op("retain", KL_OP_RETAIN, t, 2, d10, &a, NULL);
  kl_tensor_release(d);
  kl_tensor_release(w);
  kl_tensor_release(rows);
}

/* reshape and dropout nodes. */
static void test_reshape_dropout(void) {
  int64_t s26[2] = {2, 6}, to[2] = {3, -1}, s34[2] = {3, 4};
  kl_graph *g = NULL;
  kl_plan *p = NULL;
  CHECK_OK(kl_graph_new(&g));
  kl_tensor *x = gt_rand(&rng, 2, s26, -1, 1, 0), *r = gt_rand(&rng, 2, s34, -1, 1, 0);
  int xv, rv, rs, mid, loss, all2[2];
  kl_attrs all = {0};
  CHECK_OK(kl_graph_variable(g, x, 1, "x", &xv));
  CHECK_OK(kl_graph_constant(g, r, &rv));
  CHECK_OK(kl_graph_reshape(g, xv, 2, to, &rs));
  kl_meta m;
  CHECK_OK(kl_graph_meta(g, rs, &m));
  CHECK(m.ndim == 2 && m.shape[0] == 3 && m.shape[1] == 4);
  all2[0] = rs, all2[1] = rv;
  CHECK_OK(kl_graph_op(g, KL_OP_MUL, all2, 2, NULL, &mid));
  CHECK_OK(kl_graph_op(g, KL_OP_SUM, &mid, 1, &all, &loss));
  kl_plan_spec s = {NULL, 0, &rs, 1, loss, &xv, 1, NULL, NULL};
  CHECK_OK(kl_plan_new(g, &s, &p));
  if (p) gt_gradcheck(p, g, &xv, 1, NULL, 1e-5, 1e-6, "reshape");
  kl_plan_free(p);
  p = NULL;
  /* dropout rate 0: identity, gradient passes through */
  int dr0, mid0, loss0;
  CHECK_OK(kl_graph_dropout(g, rs, 0.0, 7, &dr0));
  all2[0] = dr0;
  CHECK_OK(kl_graph_op(g, KL_OP_MUL, all2, 2, NULL, &mid0));
  CHECK_OK(kl_graph_op(g, KL_OP_SUM, &mid0, 1, &all, &loss0));
  kl_plan_spec s0 = {NULL, 0, &dr0, 1, loss0, &xv, 1, NULL, NULL};
  CHECK_OK(kl_plan_new(g, &s0, &p));
  if (p) gt_gradcheck(p, g, &xv, 1, NULL, 1e-5, 1e-6, "dropout rate 0");
  kl_plan_free(p);
  p = NULL;
  /* dropout 0.5 with a fixed mask: a fresh plan draws the same first mask from the seed */
  int dr, midd, lossd;
  CHECK_OK(kl_graph_dropout(g, rs, 0.5, 1234, &dr));
  all2[0] = dr;
  CHECK_OK(kl_graph_op(g, KL_OP_MUL, all2, 2, NULL, &midd));
  CHECK_OK(kl_graph_op(g, KL_OP_SUM, &midd, 1, &all, &lossd));
  kl_plan_spec sd = {NULL, 0, &dr, 1, lossd, &xv, 1, NULL, NULL};
  CHECK_OK(kl_plan_new(g, &sd, &p));
  if (p) {
    CHECK_OK(kl_plan_forward(p, NULL, 1));
    CHECK_OK(kl_plan_backward(p));
    kl_tensor *out = kl_plan_output(p, 0), *gx = kl_plan_grad(p, 0);
    int zeros = 0;
    for (int64_t i = 0; i < 12; i++) {
      double o = kl_tensor_data_at(out, i), xi = kl_tensor_data_at(x, i);
      CHECK(o == 0.0 || fabs(o - 2.0 * xi) < 1e-15); /* kept values scaled by 1/(1-rate) */
      zeros += o == 0.0;
    }
    CHECK(zeros > 0 && zeros < 12);
    double h = 1e-5;
    for (int64_t i = 0; i < 12; i++) {
      double v = kl_tensor_data_at(x, i), l[2];
      for (int sgn = 0; sgn < 2; sgn++) {
        kl_plan *q = NULL;
        kl_tensor_data_set(x, i, v + (sgn ? -h : h));
        CHECK_OK(kl_plan_new(g, &sd, &q));
        CHECK_OK(kl_plan_forward(q, NULL, 1));
        l[sgn] = kl_plan_loss(q);
        kl_plan_free(q);
      }
      kl_tensor_data_set(x, i, v);
      CHECK_NEAR(kl_tensor_data_at(gx, i), (l[0] - l[1]) / (2 * h), 1e-6);
    }
    /* not training: identity */
    CHECK_OK(kl_plan_forward(p, NULL, 0));
    out = kl_plan_output(p, 0);
    for (int64_t i = 0; i < 12; i++) CHECK(kl_tensor_data_at(out, i) == kl_tensor_data_at(x, i));
  }
  kl_plan_free(p);
  kl_tensor_release(x);
  kl_tensor_release(r);
  kl_graph_free(g);
}

/* A 2-layer network through placeholders: tanh(x W1 + b1) W2 + b2 -> sigmoid -> bce. */
static void test_two_layer(void) {
  int64_t sx[2] = {6, 4}, sw1[2] = {4, 5}, sb1[1] = {5}, sw2[2] = {5, 1}, sb2[1] = {1};
  int64_t sy[2] = {6, 1};
  kl_graph *g = NULL;
  kl_plan *p = NULL;
  CHECK_OK(kl_graph_new(&g));
  kl_meta mx = {KL_FLOAT64, KL_STYPE_DEFAULT, 2, {-1, 4}}, my = {KL_FLOAT64, KL_STYPE_DEFAULT, 2,
                                                                  {-1, 1}};
  int x, y, w[4], h1, h2, h3, o1, o2, o3, loss, two[2];
  kl_tensor *wt[4] = {gt_rand(&rng, 2, sw1, -1, 1, 0), gt_rand(&rng, 1, sb1, -1, 1, 0),
                      gt_rand(&rng, 2, sw2, -1, 1, 0), gt_rand(&rng, 1, sb2, -1, 1, 0)};
  CHECK_OK(kl_graph_placeholder(g, &mx, "x", &x));
  CHECK_OK(kl_graph_placeholder(g, &my, "y", &y));
  for (int k = 0; k < 4; k++) CHECK_OK(kl_graph_variable(g, wt[k], 1, NULL, &w[k]));
  two[0] = x, two[1] = w[0];
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &h1));
  two[0] = h1, two[1] = w[1];
  CHECK_OK(kl_graph_op(g, KL_OP_BIAS_ADD, two, 2, NULL, &h2));
  CHECK_OK(kl_graph_op(g, KL_OP_TANH, &h2, 1, NULL, &h3));
  two[0] = h3, two[1] = w[2];
  CHECK_OK(kl_graph_op(g, KL_OP_DOT, two, 2, NULL, &o1));
  two[0] = o1, two[1] = w[3];
  CHECK_OK(kl_graph_op(g, KL_OP_BIAS_ADD, two, 2, NULL, &o2));
  CHECK_OK(kl_graph_op(g, KL_OP_SIGMOID, &o2, 1, NULL, &o3));
  two[0] = y, two[1] = o3;
  CHECK_OK(kl_graph_op(g, KL_OP_LOSS_BCE, two, 2, NULL, &loss));
  kl_meta om = {0};
  CHECK_OK(kl_graph_meta(g, o3, &om));
  CHECK(om.ndim == 2 && om.shape[0] == -1 && om.shape[1] == 1);
  int feeds[2] = {x, y};
  kl_plan_spec s = {feeds, 2, &o3, 1, loss, w, 4, NULL, NULL};
  CHECK_OK(kl_plan_new(g, &s, &p));
  double yv[6] = {1, 0, 0, 1, 1, 0};
  kl_tensor *fx = gt_rand(&rng, 2, sx, -1, 1, 0), *fy = gt_dense(KL_FLOAT64, 2, sy, yv);
  kl_tensor *fd[2] = {fx, fy};
  if (p) gt_gradcheck(p, g, w, 4, fd, 1e-5, 1e-6, "two-layer model");
  /* a feed of the wrong width is refused with the placeholder's name */
  int64_t sbad[2] = {6, 3};
  kl_tensor *bad = gt_dense(KL_FLOAT64, 2, sbad, NULL);
  kl_tensor *fb[2] = {bad, fy};
  if (p) CHECK_ERR(kl_plan_forward(p, fb, 0), KL_ESHAPE, "feed 0 ('x') has shape (6 x 3)");
  /* forward without the target computes the outputs and no loss */
  kl_tensor *fo[2] = {fx, NULL};
  if (p) {
    CHECK_OK(kl_plan_forward(p, fo, 0));
    CHECK(kl_plan_output(p, 0) != NULL && isnan(kl_plan_loss(p)));
    CHECK_ERR(kl_plan_backward(p), KL_EINVAL, "backward: run a forward with the loss first");
  }
  kl_tensor_release(bad);
  kl_tensor_release(fx);
  kl_tensor_release(fy);
  release_all(wt, 4);
  kl_plan_free(p);
  kl_graph_free(g);
}

int main(void) {
  kl_rng_seed(&rng, 42);
  kl_set_warn_handler(quiet, NULL);
  test_inference();
  test_ops();
  test_layer_ops();
  test_retain();
  test_reshape_dropout();
  test_two_layer();
  KLTEST_DONE();
}
