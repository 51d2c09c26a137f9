/* test_gradcheck_sparse.c: row_sparse gradients of every op in the registry, float64 central
 * differences: each gradient asked for as row_sparse (kl_op_backward, want = row_sparse) is
 * checked on its stored entries (rows strictly increasing, values against the numeric
 * gradient read at those rows) and densified (every element, so a row it does not store must
 * have a zero numeric gradient), and against the dense gradient of the same call. Where the
 * stored rows are known (dot with a csr operand, embedding, retain) they are checked exactly.
 * A row_sparse input is perturbed on its stored values (its gradient is with respect to them:
 * the sparsity pattern is fixed, as for the layers' all-rows row_sparse weights). */
#include "kltest_ops.h"

static kl_rng rng;
static int ncases = 0;

/* d in stype s (a new reference). */
static kl_tensor *as_stype(const kl_tensor *d, kl_stype s) {
  kl_tensor *t = NULL;
  if (d->stype == s) return kl_tensor_retain((kl_tensor *)d);
  CHECK_OK(kl_tensor_tostype(d, s, &t));
  return t;
}

/* sum(op(in) .* R); NAN when the op fails. */
static double wloss(kl_op op, kl_tensor **in, int nin, const kl_attrs *a, const kl_tensor *R) {
  kl_tensor *o = NULL;
  if (kl_op_run(op, in, nin, a, &o) != KL_OK) return NAN;
  double s = kt_wsum(o, R);
  kl_tensor_release(o);
  return s;
}

/* The check described above, for input i of op; want_rows (0-based, nwant of them) are the
 * rows the gradient must store exactly, or NULL. */
static void sgc(const char *what, kl_op op, kl_tensor **in, int nin, const kl_attrs *a, int i,
                const int64_t *want_rows, int nwant) {
  static const kl_attrs none;
  if (!a) a = &none;
  ncases++;
  kl_tensor *out = NULL, *R = NULL, *g = NULL, *gdef = NULL, *gd = NULL, *xd = NULL;
  CHECK_OK(kl_op_run(op, in, nin, a, &out));
  if (!out) goto done;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, out->ndim, out->shape, &R));
  CHECK_OK(kl_tensor_fill_uniform(R, -1, 1, &rng));
  CHECK_OK(kl_op_backward(op, in, nin, a, out, R, i, KL_STYPE_ROW_SPARSE, &g));
  CHECK_OK(kl_op_backward(op, in, nin, a, out, R, i, KL_STYPE_DEFAULT, &gdef));
  if (!g || !gdef) goto done;
  CHECK(g->stype == KL_STYPE_ROW_SPARSE && g->dtype == KL_FLOAT64 && g->ndim == in[i]->ndim);
  for (int d = 0; d < g->ndim; d++) CHECK(g->shape[d] == in[i]->shape[d]);
  CHECK_OK(kl_tensor_check_format(g, "gradient", 0));
  /* numeric gradient: every element of a dense input; every stored value of a row_sparse
   * one (its gradient is with respect to the stored values: the pattern is fixed) */
  xd = NULL;
  CHECK_OK(kl_tensor_copy(in[i], &xd));
  if (!xd) goto done;
  int64_t n = kl_tensor_numel(in[i]), rw = kl_row_width(in[i]);
  int sparse_in = xd->stype == KL_STYPE_ROW_SPARSE;
  int64_t nv = sparse_in ? xd->nnz * rw : n;
  double *fd = calloc((size_t)(n ? n : 1), sizeof *fd), h = 1e-6;
  char *known = calloc((size_t)(n ? n : 1), 1);
  kl_tensor *orig = in[i];
  in[i] = xd;
  for (int64_t e = 0; e < nv && fd && known; e++) {
    int64_t k = sparse_in ? xd->indices[e / rw] * rw + e % rw : e;
    double x0 = kl_tensor_data_at(xd, e);
    kl_tensor_data_set(xd, e, x0 + h);
    double fp = wloss(op, in, nin, a, R);
    kl_tensor_data_set(xd, e, x0 - h);
    double fm = wloss(op, in, nin, a, R);
    kl_tensor_data_set(xd, e, x0);
    fd[k] = (fp - fm) / (2 * h);
    known[k] = 1;
  }
  in[i] = orig;
  int bad = 0;
  /* stored entries, read from g's own arrays */
  for (int64_t s = 0; s < g->nnz && fd && known; s++) {
    int64_t r = g->indices[s];
    if (s > 0 && g->indices[s - 1] >= r) bad++;
    for (int64_t j = 0; j < rw && r >= 0 && r < g->shape[0]; j++) {
      double an = ((const double *)g->data)[s * rw + j], num = fd[r * rw + j];
      if (known[r * rw + j] && !(fabs(an - num) <= 1e-6 * (1 + fabs(num)))) {
        if (!bad) fprintf(stderr, "%s: stored row %lld col %lld: %.12g vs numeric %.12g\n", what,
                          (long long)r, (long long)j, an, num);
        bad++;
      }
    }
  }
  /* densified: every element; and the dense gradient of the same call */
  CHECK_OK(kl_tensor_tostype(g, KL_STYPE_DEFAULT, &gd));
  for (int64_t k = 0; k < n && fd && known && gd; k++) {
    double an = kl_tensor_data_at(gd, k), num = fd[k], de = kl_tensor_data_at(gdef, k);
    if ((known[k] && !(fabs(an - num) <= 1e-6 * (1 + fabs(num)))) ||
        !(fabs(an - de) <= 1e-12 * (1 + fabs(de)))) {
      if (!bad) fprintf(stderr, "%s: element %lld: %.12g (dense grad %.12g) vs numeric %.12g\n",
                        what, (long long)k, an, de, num);
      bad++;
    }
  }
  CHECK(bad == 0);
  if (want_rows) {
    CHECK(g->nnz == nwant);
    for (int k = 0; k < nwant && k < g->nnz; k++) CHECK(g->indices[k] == want_rows[k]);
    if (g->nnz != nwant) fprintf(stderr, "%s: %lld stored rows, wanted %d\n", what, (long long)g->nnz, nwant);
  }
  if (bad) fprintf(stderr, "  (in %s)\n", what);
  free(fd);
  free(known);
done:
  kl_tensor_release(out);
  kl_tensor_release(R);
  kl_tensor_release(g);
  kl_tensor_release(gdef);
  kl_tensor_release(gd);
  kl_tensor_release(xd);
}

static kl_tensor *rnd(int ndim, const int64_t *shape, double lo, double hi) {
  return kt_rand(&rng, KL_STYPE_DEFAULT, KL_FLOAT64, ndim, shape, lo, hi);
}

/* dot with a csr operand: the natively row_sparse gradients, with their exact rows. */
static void test_dot(void) {
  /* A (5 x 6) csr: columns 0, 2, 3, 5 used; rows 0, 1, 3, 4 non-empty */
  double av[30] = {1, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, -1, 0, 0, 0, 0, 0, 0,
                   4, 0, 0, 0, 0, 0, 0, 0, -2, 5, 0, 0};
  kl_tensor *A = kt_mat(KL_FLOAT64, KL_STYPE_CSR, 5, 6, av);
  int64_t s63[2] = {6, 3}, s53[2] = {5, 3};
  kl_tensor *B = rnd(2, s63, -1, 1), *in[2] = {A, B};
  int64_t cols[4] = {0, 2, 3, 5}, rows[4] = {0, 1, 3, 4};
  sgc("dot(csr, dense) d/db", KL_OP_DOT, in, 2, NULL, 1, cols, 4);
  /* B row_sparse with rows 0, 2, 4 stored: gradient rows are still the used columns */
  kl_tensor *Bd = rnd(2, s63, -1, 1);
  for (int j = 0; j < 3; j++) kl_tensor_data_set(Bd, 3 + j, 0), kl_tensor_data_set(Bd, 9 + j, 0),
                              kl_tensor_data_set(Bd, 15 + j, 0);
  kl_tensor *Br = as_stype(Bd, KL_STYPE_ROW_SPARSE);
  in[1] = Br;
  sgc("dot(csr, row_sparse) d/db", KL_OP_DOT, in, 2, NULL, 1, cols, 4);
  /* transpose_a: A^T (6 x 5) . C (5 x 3): gradient rows = non-empty rows of A */
  kl_attrs ta = {0};
  ta.transpose_a = 1;
  kl_tensor *C = rnd(2, s53, -1, 1);
  in[1] = C;
  sgc("dot(csr^T, dense) d/db", KL_OP_DOT, in, 2, &ta, 1, rows, 4);
  /* dense . dense, both inputs, the gradient cast to row_sparse */
  kl_tensor *D = rnd(2, (int64_t[2]){5, 6}, -1, 1);
  in[0] = D, in[1] = B;
  sgc("dot(dense, dense) d/da", KL_OP_DOT, in, 2, NULL, 0, NULL, 0);
  sgc("dot(dense, dense) d/db", KL_OP_DOT, in, 2, NULL, 1, NULL, 0);
  kl_attrs tb = {0};
  tb.transpose_b = 1;
  kl_tensor *E = rnd(2, (int64_t[2]){3, 6}, -1, 1);
  in[1] = E;
  sgc("dot(dense, dense^T) d/db", KL_OP_DOT, in, 2, &tb, 1, NULL, 0);
  kl_tensor *list[7] = {A, B, Bd, Br, C, D, E};
  for (int k = 0; k < 7; k++) kl_tensor_release(list[k]);
}

/* embedding: float and int64 ids with padding 0 and repeats, dense and row_sparse weights. */
static void test_embedding(void) {
  int64_t is[2] = {3, 4}, ws[2] = {7, 3};
  double iv[12] = {1, 2, 2, 0, 7, 0, 3, 3, 3, 1, 0, 5};
  kl_tensor *ids = kt_dense(KL_FLOAT64, 2, is, iv), *ids64 = kt_dense(KL_INT64, 2, is, iv);
  kl_tensor *W = rnd(2, ws, -1, 1), *Wr = as_stype(W, KL_STYPE_ROW_SPARSE);
  kl_attrs a = {0};
  a.ival = 7;
  int64_t used[5] = {0, 1, 2, 4, 6};
  kl_tensor *in[2] = {ids, W};
  sgc("embedding float ids", KL_OP_EMBEDDING, in, 2, &a, 1, used, 5);
  in[0] = ids64;
  sgc("embedding int64 ids", KL_OP_EMBEDDING, in, 2, &a, 1, used, 5);
  in[1] = Wr;
  sgc("embedding row_sparse weight", KL_OP_EMBEDDING, in, 2, &a, 1, used, 5);
  kl_tensor_release(ids);
  kl_tensor_release(ids64);
  kl_tensor_release(W);
  kl_tensor_release(Wr);
}

/* retain: the gradient lives on the kept rows that the input stores. */
static void test_retain(void) {
  int64_t s62[2] = {6, 2}, s3[1] = {3};
  kl_tensor *d = rnd(2, s62, -1, 1);
  kl_tensor_data_set(d, 6, 0), kl_tensor_data_set(d, 7, 0); /* row 3 not stored */
  kl_tensor *w = as_stype(d, KL_STYPE_ROW_SPARSE), *rows = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 1, s3, &rows));
  int64_t *r = rows->data;
  r[0] = 1, r[1] = 3, r[2] = 4;
  kl_tensor *in[2] = {w, rows};
  int64_t kept[2] = {1, 4};
  sgc("retain", KL_OP_RETAIN, in, 2, NULL, 0, kept, 2);
  kl_tensor_release(d);
  kl_tensor_release(w);
  kl_tensor_release(rows);
}

/* Every other op of the registry, with dense and row_sparse inputs: the gradient asked for
 * as row_sparse. */
static void test_other_ops(void) {
  int64_t s34[2] = {3, 4}, s4[1] = {4}, s32[2] = {3, 2}, s3[1] = {3}, s31[2] = {3, 1};
  kl_attrs a = {0};
  char what[96];
  /* reductions, every axis */
  kl_tensor *x = rnd(2, s34, -1, 1), *xr = NULL;
  kl_tensor_data_set(x, 4, 0), kl_tensor_data_set(x, 5, 0), kl_tensor_data_set(x, 6, 0),
      kl_tensor_data_set(x, 7, 0);
  xr = as_stype(x, KL_STYPE_ROW_SPARSE); /* row 1 empty */
  kl_op red[2] = {KL_OP_SUM, KL_OP_MEAN};
  for (int r = 0; r < 2; r++)
    for (int ax = -1; ax < 2; ax++)
      for (int s = 0; s < 2; s++) {
        kl_attrs ra = {0};
        ra.has_axis = ax >= 0, ra.axis = ax < 0 ? 0 : ax, ra.keepdims = ax == 1;
        kl_tensor *in[1] = {s ? xr : x};
        snprintf(what, sizeof what, "%s axis %d %s", kl_op_name(red[r]), ax, s ? "row_sparse" : "dense");
        sgc(what, red[r], in, 1, &ra, 0, NULL, 0);
      }
  /* unary ops and softmax (positive inputs for sqrt/log, away from the kinks of abs/relu) */
  kl_op un[11] = {KL_OP_NEG, KL_OP_SQUARE, KL_OP_SQRT, KL_OP_ABS, KL_OP_RELU, KL_OP_EXP,
                  KL_OP_LOG, KL_OP_SIGMOID, KL_OP_TANH, KL_OP_SOFTMAX, KL_OP_TRANSPOSE};
  for (int k = 0; k < 11; k++) {
    int pos = un[k] == KL_OP_SQRT || un[k] == KL_OP_LOG;
    kl_tensor *u = rnd(2, s34, pos ? 0.5 : -2, 2);
    for (int64_t e = 0; e < 12; e++)
      if (fabs(kl_tensor_data_at(u, e)) < 0.05) kl_tensor_data_set(u, e, 0.5);
    kl_tensor *in[1] = {u};
    sgc(kl_op_name(un[k]), un[k], in, 1, NULL, 0, NULL, 0);
    kl_tensor_release(u);
  }
  /* unary ops on a row_sparse input keep zero rows zero (where f(0) = 0) */
  kl_op un0[5] = {KL_OP_NEG, KL_OP_SQUARE, KL_OP_ABS, KL_OP_TANH, KL_OP_RELU};
  for (int k = 0; k < 5; k++) {
    kl_tensor *in[1] = {xr};
    snprintf(what, sizeof what, "%s row_sparse", kl_op_name(un0[k]));
    sgc(what, un0[k], in, 1, NULL, 0, NULL, 0);
  }
  /* scalar ops, dense and row_sparse */
  kl_op sc[5] = {KL_OP_ADD_SCALAR, KL_OP_MUL_SCALAR, KL_OP_DIV_SCALAR, KL_OP_RSUB_SCALAR,
                 KL_OP_RDIV_SCALAR};
  a.scalar = 2.5;
  kl_tensor *xp = rnd(2, s34, 0.5, 2);
  for (int k = 0; k < 5; k++) {
    kl_tensor *in[1] = {k == 4 ? xp : x};
    sgc(kl_op_name(sc[k]), sc[k], in, 1, &a, 0, NULL, 0);
    if (k == 1 || k == 2) {
      in[0] = xr;
      snprintf(what, sizeof what, "%s row_sparse", kl_op_name(sc[k]));
      sgc(what, sc[k], in, 1, &a, 0, NULL, 0);
    }
  }
  memset(&a, 0, sizeof a);
  /* binary ops: same shapes (dense, row_sparse pairs, mixed) and broadcasting */
  kl_op bin[4] = {KL_OP_ADD, KL_OP_SUB, KL_OP_MUL, KL_OP_DIV};
  kl_tensor *y = rnd(2, s34, 0.5, 2), *yr = as_stype(y, KL_STYPE_ROW_SPARSE), *v = rnd(1, s4, 0.5, 2);
  kl_tensor *c = rnd(2, s31, 0.5, 2);
  for (int b = 0; b < 4; b++)
    for (int i = 0; i < 2; i++) {
      kl_tensor *pairs[4][2] = {{x, y}, {xr, yr}, {xr, y}, {x, v}};
      for (int p = 0; p < 4; p++) {
        if (b == 3 && p == 1) continue; /* x / y with row_sparse y: 0 / 0 on empty rows */
        kl_tensor *in[2] = {pairs[p][0], pairs[p][1]};
        snprintf(what, sizeof what, "%s pair %d d/d%c", kl_op_name(bin[b]), p, i ? 'b' : 'a');
        sgc(what, bin[b], in, 2, NULL, i, NULL, 0);
      }
      kl_tensor *in[2] = {c, v};
      snprintf(what, sizeof what, "%s (3x1) (4) d/d%c", kl_op_name(bin[b]), i ? 'b' : 'a');
      sgc(what, bin[b], in, 2, NULL, i, NULL, 0);
    }
  /* concatenate, both axes, dense and row_sparse */
  kl_tensor *z = rnd(2, s32, -1, 1);
  a.axis = 1;
  for (int i = 0; i < 2; i++) {
    kl_tensor *in[2] = {x, z};
    snprintf(what, sizeof what, "concatenate axis 1 d/d%d", i);
    sgc(what, KL_OP_CONCAT, in, 2, &a, i, NULL, 0);
  }
  a.axis = 0;
  for (int i = 0; i < 2; i++) {
    kl_tensor *in[2] = {xr, yr};
    snprintf(what, sizeof what, "concatenate axis 0 row_sparse d/d%d", i);
    sgc(what, KL_OP_CONCAT, in, 2, &a, i, NULL, 0);
  }
  memset(&a, 0, sizeof a);
  /* bias_add */
  for (int i = 0; i < 2; i++) {
    kl_tensor *in[2] = {x, v};
    sgc(i ? "bias_add d/db" : "bias_add d/dx", KL_OP_BIAS_ADD, in, 2, NULL, i, NULL, 0);
  }
  /* losses w.r.t. y_pred */
  kl_tensor *yt = rnd(2, s34, -1, 1), *yp = rnd(2, s34, 0.1, 0.9);
  kl_op mloss[2] = {KL_OP_LOSS_MSE, KL_OP_LOSS_MAE};
  for (int k = 0; k < 2; k++) {
    kl_tensor *in[2] = {yt, yp};
    sgc(kl_op_name(mloss[k]), mloss[k], in, 2, NULL, 1, NULL, 0);
  }
  double b01[3] = {1, 0, 1}, oh[12] = {0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1}, cls[3] = {2, 1, 4};
  kl_tensor *t01 = kt_dense(KL_FLOAT64, 1, s3, b01), *p31 = rnd(2, s31, 0.1, 0.9);
  kl_tensor *toh = kt_dense(KL_FLOAT64, 2, s34, oh), *tcls = kt_dense(KL_FLOAT64, 1, s3, cls);
  kl_tensor *in[2] = {t01, p31};
  sgc("binary_crossentropy", KL_OP_LOSS_BCE, in, 2, NULL, 1, NULL, 0);
  in[0] = toh, in[1] = yp;
  sgc("categorical_crossentropy", KL_OP_LOSS_CCE, in, 2, NULL, 1, NULL, 0);
  in[0] = tcls;
  sgc("sparse_categorical_crossentropy", KL_OP_LOSS_SCCE, in, 2, NULL, 1, NULL, 0);
  kl_tensor *all[15] = {x, xr, xp, y, yr, v, c, z, yt, yp, t01, p31, toh, tcls, NULL};
  for (int k = 0; all[k]; k++) kl_tensor_release(all[k]);
}

int main(void) {
  kl_rng_seed(&rng, 2024);
  test_dot();
  test_embedding();
  test_retain();
  test_other_ops();
  printf("%d row_sparse gradient checks\n", ncases);
  KLTEST_DONE();
}
