/* test_layer_ops.c: bias_add and embedding ops: exact values, random cases against loops,
 * the row_sparse embedding gradient, errors, and finite-difference gradient checks. */
#include "layers_testutil.h"

/* ------------------------------------------------------------------ bias_add */

static void test_bias_add_exact(void) {
  int64_t xs[2] = {2, 3}, bs[1] = {3};
  double xv[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30};
  double gv[6] = {1, 2, 3, 4, 5, 6};
  kl_tensor *x = mk(KL_FLOAT64, 2, xs, xv), *b = mk(KL_FLOAT64, 1, bs, bv), *in[2] = {x, b};
  kl_tensor *y = NULL, *g = mk(KL_FLOAT64, 2, xs, gv), *dx = NULL, *db = NULL;
  double want[6] = {11, 22, 33, 14, 25, 36};
  CHECK_OK(run_def(&kl_opdef_bias_add, in, 2, NULL, &y));
  for (int i = 0; y && i < 6; i++) CHECK(kl_tensor_data_at(y, i) == want[i]);
  CHECK_OK(kl_opdef_bias_add.backward(in, 2, NULL, y, g, 0, KL_STYPE_DEFAULT, &dx));
  for (int i = 0; dx && i < 6; i++) CHECK(kl_tensor_data_at(dx, i) == gv[i]);
  CHECK_OK(kl_opdef_bias_add.backward(in, 2, NULL, y, g, 1, KL_STYPE_DEFAULT, &db));
  CHECK(db && db->ndim == 1 && db->shape[0] == 3 && db->stype == KL_STYPE_DEFAULT);
  CHECK(db && kl_tensor_data_at(db, 0) == 5 && kl_tensor_data_at(db, 1) == 7 &&
        kl_tensor_data_at(db, 2) == 9);
  kl_tensor_release(db);
  db = NULL;
  /* asked for row_sparse: all rows stored */
  CHECK_OK(kl_opdef_bias_add.backward(in, 2, NULL, y, g, 1, KL_STYPE_ROW_SPARSE, &db));
  CHECK(db && db->stype == KL_STYPE_ROW_SPARSE && db->nnz == 3 && db->indices[2] == 2 &&
        kl_tensor_data_at(db, 1) == 7);
  /* through the registry */
  kl_tensor *y2 = NULL;
  CHECK_OK(kl_op_run(KL_OP_BIAS_ADD, in, 2, NULL, &y2));
  CHECK(y2 && kl_tensor_data_at(y2, 5) == 36);
  kl_tensor_release(y2);
  /* errors */
  int64_t b4s[1] = {4};
  kl_tensor *b4 = mk(KL_FLOAT64, 1, b4s, NULL), *bf = mk(KL_FLOAT32, 1, bs, NULL);
  kl_tensor *bad1[2] = {x, b4}, *bad2[2] = {x, bf};
  kl_tensor *o = NULL;
  CHECK_ERR(run_def(&kl_opdef_bias_add, bad1, 2, NULL, &o), KL_ESHAPE,
            "bias_add: bias shape (4) does not match the last axis of x (2 x 3)");
  CHECK_ERR(run_def(&kl_opdef_bias_add, bad2, 2, NULL, &o), KL_EDTYPE,
            "bias_add: bias dtype float32 differs from x dtype float64");
  CHECK(o == NULL);
  kl_tensor *bad_g = mk(KL_FLOAT64, 1, bs, NULL);
  CHECK_ERR(kl_opdef_bias_add.backward(in, 2, NULL, y, bad_g, 1, KL_STYPE_DEFAULT, &o),
            KL_ESHAPE, "bias_add: gout shape (3) does not match the output shape (2 x 3)");
  kl_tensor_release(bad_g);
  kl_tensor_release(b4);
  kl_tensor_release(bf);
  kl_tensor_release(x);
  kl_tensor_release(b);
  kl_tensor_release(y);
  kl_tensor_release(g);
  kl_tensor_release(dx);
  kl_tensor_release(db);
}

static void test_bias_add_random(kl_dtype dt, double tol) {
  kl_rng r;
  kl_rng_seed(&r, 7);
  int64_t xs[3] = {5, 40, 300}, bs[1] = {300}; /* large enough for the parallel path */
  kl_tensor *x = rnd(dt, 3, xs, &r, -1, 1), *b = rnd(dt, 1, bs, &r, -1, 1), *in[2] = {x, b};
  kl_tensor *y = NULL, *g = rnd(dt, 3, xs, &r, -1, 1), *db = NULL;
  int64_t rows = 200, k = 300;
  CHECK_OK(run_def(&kl_opdef_bias_add, in, 2, NULL, &y));
  CHECK_OK(kl_opdef_bias_add.backward(in, 2, NULL, y, g, 1, KL_STYPE_DEFAULT, &db));
  int bad = 0;
  for (int64_t q = 0; y && q < rows; q++)
    for (int64_t j = 0; j < k; j++) {
      double ref = kl_tensor_data_at(x, q * k + j) + kl_tensor_data_at(b, j);
      if (fabs(kl_tensor_data_at(y, q * k + j) - ref) > tol) bad++;
    }
  CHECK(y && bad == 0);
  bad = 0;
  for (int64_t j = 0; db && j < k; j++) {
    double ref = 0;
    for (int64_t q = 0; q < rows; q++) ref += kl_tensor_data_at(g, q * k + j);
    if (fabs(kl_tensor_data_at(db, j) - ref) > tol * (1 + fabs(ref))) bad++;
  }
  CHECK(db && bad == 0);
  kl_tensor_release(x);
  kl_tensor_release(b);
  kl_tensor_release(y);
  kl_tensor_release(g);
  kl_tensor_release(db);
}

static void test_bias_add_fd(void) {
  kl_rng r;
  kl_rng_seed(&r, 11);
  int64_t xs[3] = {2, 3, 4}, bs[1] = {4};
  kl_tensor *x = rnd(KL_FLOAT64, 3, xs, &r, -1, 1), *b = rnd(KL_FLOAT64, 1, bs, &r, -1, 1);
  kl_tensor *in[2] = {x, b};
  kl_tensor_release(fd_check(&kl_opdef_bias_add, in, 2, NULL, 0, KL_STYPE_DEFAULT, 1e-6, &r));
  kl_tensor_release(fd_check(&kl_opdef_bias_add, in, 2, NULL, 1, KL_STYPE_DEFAULT, 1e-6, &r));
  kl_tensor_release(x);
  kl_tensor_release(b);
}

/* ----------------------------------------------------------------- embedding */

/* The tutorial case: repeated ids sum into one gradient row; padding gives a zero vector
 * and no gradient row. ids (1-based, 0 = padding) {{1,3,3,0},{5,1,0,0}}, V = 6, D = 3. */
static void test_embedding_tutorial(kl_dtype idt) {
  int64_t is[2] = {2, 4}, ws[2] = {6, 3};
  double ids_v[8] = {1, 3, 3, 0, 5, 1, 0, 0};
  double wv[18];
  for (int i = 0; i < 18; i++) wv[i] = i + 1; /* row k-1 = {3k-2, 3k-1, 3k} */
  kl_tensor *ids = mk(idt, 2, is, ids_v), *w = mk(KL_FLOAT64, 2, ws, wv), *in[2] = {ids, w};
  kl_tensor *y = NULL, *g = NULL, *gw = NULL, *gd = NULL;
  CHECK_OK(run_def(&kl_opdef_embedding, in, 2, NULL, &y));
  CHECK(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 4 && y->shape[2] == 3);
  for (int p = 0; y && p < 8; p++)
    for (int j = 0; j < 3; j++) {
      int id = (int)ids_v[p];
      double want = id ? wv[(id - 1) * 3 + j] : 0;
      CHECK(kl_tensor_data_at(y, p * 3 + j) == want);
    }
  /* gout: position p holds p+1 in every column */
  int64_t os[3] = {2, 4, 3};
  double gv[24];
  for (int i = 0; i < 24; i++) gv[i] = i / 3 + 1;
  g = mk(KL_FLOAT64, 3, os, gv);
  CHECK_OK(kl_opdef_embedding.backward(in, 2, NULL, y, g, 1, KL_STYPE_ROW_SPARSE, &gw));
  /* id 1 at positions 1, 6 -> 1+6 = 7; id 3 at 2, 3 -> 5; id 5 at 5 -> 5 */
  CHECK(gw && gw->stype == KL_STYPE_ROW_SPARSE && gw->nnz == 3);
  CHECK(gw && gw->shape[0] == 6 && gw->shape[1] == 3);
  if (gw && gw->nnz == 3) {
    CHECK(gw->indices[0] == 0 && gw->indices[1] == 2 && gw->indices[2] == 4);
    double want[3] = {7, 5, 5};
    for (int u = 0; u < 3; u++)
      for (int j = 0; j < 3; j++) CHECK(kl_tensor_data_at(gw, u * 3 + j) == want[u]);
  }
  CHECK_OK(kl_opdef_embedding.backward(in, 2, NULL, y, g, 1, KL_STYPE_DEFAULT, &gd));
  CHECK(gd && gd->stype == KL_STYPE_DEFAULT && gd->shape[0] == 6);
  double dwant[6] = {7, 0, 5, 0, 5, 0};
  for (int rr = 0; gd && rr < 6; rr++)
    for (int j = 0; j < 3; j++) CHECK(kl_tensor_data_at(gd, rr * 3 + j) == dwant[rr]);
  kl_tensor *o = NULL;
  CHECK_ERR(kl_opdef_embedding.backward(in, 2, NULL, y, g, 0, KL_STYPE_DEFAULT, &o),
            KL_EUNSUPPORTED, "Embedding: the ids (input 0) have no gradient");
  /* the registry */
  CHECK_OK(kl_op_run(KL_OP_EMBEDDING, in, 2, NULL, &o));
  CHECK(o && kl_tensor_data_at(o, 3) == 7 && kl_tensor_data_at(o, 9) == 0);
  kl_tensor_release(o);
  o = NULL;
  CHECK_OK(kl_op_backward(KL_OP_EMBEDDING, in, 2, NULL, y, g, 1, KL_STYPE_ROW_SPARSE, &o));
  CHECK(o && o->stype == KL_STYPE_ROW_SPARSE && o->nnz == 3);
  kl_tensor_release(o);
  kl_tensor_release(ids);
  kl_tensor_release(w);
  kl_tensor_release(y);
  kl_tensor_release(g);
  kl_tensor_release(gw);
  kl_tensor_release(gd);
}

static void test_embedding_errors(void) {
  int64_t is[2] = {3, 4}, ws[2] = {10, 2}, i1[1] = {3};
  double v[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 1, 1};
  kl_tensor *w = mk(KL_FLOAT32, 2, ws, NULL), *o = NULL;
  kl_tensor *ids = mk(KL_FLOAT32, 2, is, v), *in[2] = {ids, w};
  CHECK_ERR(run_def(&kl_opdef_embedding, in, 2, NULL, &o), KL_EINDEX,
            "Embedding: id 12 out of range [0, 10] at position (3, 2)");
  kl_tensor_data_set(ids, 9, -1);
  CHECK_ERR(run_def(&kl_opdef_embedding, in, 2, NULL, &o), KL_EINDEX,
            "Embedding: id -1 out of range [0, 10] at position (3, 2)");
  kl_tensor_data_set(ids, 9, 2.5);
  CHECK_ERR(run_def(&kl_opdef_embedding, in, 2, NULL, &o), KL_EINDEX,
            "Embedding: id 2.5 is not an integer at position (3, 2)");
  kl_tensor_data_set(ids, 9, NAN);
  CHECK_ERR(run_def(&kl_opdef_embedding, in, 2, NULL, &o), KL_EINDEX, "is not an integer");
  kl_tensor_data_set(ids, 9, 10); /* V itself is valid */
  CHECK_OK(run_def(&kl_opdef_embedding, in, 2, NULL, &o));
  kl_tensor_release(o);
  o = NULL;
  double v1[3] = {0, 11, 1};
  kl_tensor *ids1 = mk(KL_INT64, 1, i1, v1), *in1[2] = {ids1, w};
  CHECK_ERR(run_def(&kl_opdef_embedding, in1, 2, NULL, &o), KL_EINDEX,
            "Embedding: id 11 out of range [0, 10] at position (2)");
  kl_attrs at = {0};
  at.ival = 9;
  CHECK_ERR(run_def(&kl_opdef_embedding, in, 2, &at, &o), KL_ESHAPE,
            "Embedding: weight has 10 rows but input_dim=9");
  kl_tensor *bad[2] = {ids, ids1};
  CHECK_ERR(run_def(&kl_opdef_embedding, bad, 2, NULL, &o), KL_ESHAPE,
            "Embedding: weight must have shape (V, D), got (3)");
  CHECK(o == NULL);
  kl_tensor_release(ids);
  kl_tensor_release(ids1);
  kl_tensor_release(w);
}

/* Random ids with repeats and padding against reference loops; 1-d ids too. */
static void test_embedding_random(kl_dtype wdt, kl_dtype idt, int ndim_ids, double tol) {
  kl_rng r;
  kl_rng_seed(&r, 42 + ndim_ids);
  int64_t V = 300, D = 40, n = 37, L = ndim_ids == 2 ? 23 : 1;
  int64_t is[2] = {n, L}, ws[2] = {V, D};
  kl_tensor *ids = mk(idt, ndim_ids, is, NULL), *w = rnd(wdt, 2, ws, &r, -1, 1);
  for (int64_t p = 0; p < n * L; p++) /* a quarter padding, ids skewed to repeat */
    kl_tensor_data_set(ids, p, kl_rng_uniform(&r) < 0.25 ? 0 : 1 + (double)kl_rng_below(&r, V / 5));
  kl_tensor_data_set(ids, 0, (double)V);
  kl_tensor *in[2] = {ids, w}, *y = NULL, *gw = NULL, *gd = NULL;
  CHECK_OK(run_def(&kl_opdef_embedding, in, 2, NULL, &y));
  int64_t os[3] = {n, L, D};
  if (ndim_ids == 1) os[1] = D;
  kl_tensor *g = rnd(wdt, ndim_ids + 1, os, &r, -1, 1);
  int bad = 0;
  for (int64_t p = 0; y && p < n * L; p++) {
    int64_t id = (int64_t)kl_tensor_data_at(ids, p);
    for (int64_t j = 0; j < D; j++) {
      double want = id ? kl_tensor_data_at(w, (id - 1) * D + j) : 0;
      if (kl_tensor_data_at(y, p * D + j) != want) bad++;
    }
  }
  CHECK(y && bad == 0);
  double *ref = calloc((size_t)(V * D), sizeof(double));
  int *seen = calloc((size_t)V, sizeof(int));
  for (int64_t p = 0; p < n * L; p++) {
    int64_t id = (int64_t)kl_tensor_data_at(ids, p);
    if (!id) continue;
    seen[id - 1] = 1;
    for (int64_t j = 0; j < D; j++) ref[(id - 1) * D + j] += kl_tensor_data_at(g, p * D + j);
  }
  CHECK_OK(kl_opdef_embedding.backward(in, 2, NULL, y, g, 1, KL_STYPE_ROW_SPARSE, &gw));
  CHECK_OK(kl_opdef_embedding.backward(in, 2, NULL, y, g, 1, KL_STYPE_DEFAULT, &gd));
  int64_t u = 0;
  bad = 0;
  for (int64_t rr = 0; gw && rr < V; rr++) {
    if (!seen[rr]) continue;
    if (u >= gw->nnz || gw->indices[u] != rr) {
      bad++;
      break;
    }
    for (int64_t j = 0; j < D; j++)
      if (fabs(kl_tensor_data_at(gw, u * D + j) - ref[rr * D + j]) > tol * (1 + fabs(ref[rr * D + j])))
        bad++;
    u++;
  }
  CHECK(gw && bad == 0 && u == gw->nnz);
  bad = 0;
  for (int64_t e = 0; gd && e < V * D; e++)
    if (fabs(kl_tensor_data_at(gd, e) - ref[e]) > tol * (1 + fabs(ref[e]))) bad++;
  CHECK(gd && bad == 0);
  /* row_sparse weight with all rows stored gives the same output */
  kl_tensor *wr = NULL, *y2 = NULL;
  CHECK_OK(kl_tensor_tostype(w, KL_STYPE_ROW_SPARSE, &wr));
  if (wr && wr->nnz == V) {
    kl_tensor *in2[2] = {ids, wr};
    CHECK_OK(run_def(&kl_opdef_embedding, in2, 2, NULL, &y2));
    bad = 0;
    for (int64_t e = 0; y && y2 && e < kl_tensor_numel(y); e++)
      if (kl_tensor_data_at(y, e) != kl_tensor_data_at(y2, e)) bad++;
    CHECK(y2 && bad == 0);
  }
  free(ref);
  free(seen);
  kl_tensor_release(wr);
  kl_tensor_release(y2);
  kl_tensor_release(ids);
  kl_tensor_release(w);
  kl_tensor_release(y);
  kl_tensor_release(g);
  kl_tensor_release(gw);
  kl_tensor_release(gd);
}

/* A vocabulary of 2^40 rows, stored row_sparse with 3 rows: forward and the row_sparse
 * gradient work without anything sized by V (an O(V) pass or buffer would not fit). */
static void test_embedding_huge_vocab(void) {
  int64_t V = (int64_t)1 << 40, ws[2] = {V, 2}, is[1] = {5};
  kl_tensor *w = NULL, *y = NULL, *gw = NULL;
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT64, 2, ws, 3, &w));
  if (!w) return;
  int64_t rows[3] = {5, 1000000, V - 1};
  for (int k = 0; k < 3; k++) {
    w->indices[k] = rows[k];
    kl_tensor_data_set(w, 2 * k, k + 1);
    kl_tensor_data_set(w, 2 * k + 1, -(k + 1));
  }
  double iv[5] = {(double)V, 6, 0, 7, 6}; /* row V-1, row 5, pad, row 6 (absent), row 5 */
  kl_tensor *ids = mk(KL_INT64, 1, is, iv), *in[2] = {ids, w};
  CHECK_OK(run_def(&kl_opdef_embedding, in, 2, NULL, &y));
  double want[10] = {3, -3, 1, -1, 0, 0, 0, 0, 1, -1};
  for (int e = 0; y && e < 10; e++) CHECK(kl_tensor_data_at(y, e) == want[e]);
  int64_t os[2] = {5, 2};
  double gv[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  kl_tensor *g = mk(KL_FLOAT64, 2, os, gv);
  CHECK_OK(kl_opdef_embedding.backward(in, 2, NULL, y, g, 1, KL_STYPE_ROW_SPARSE, &gw));
  CHECK(gw && gw->nnz == 3 && gw->shape[0] == V);
  if (gw && gw->nnz == 3) {
    CHECK(gw->indices[0] == 5 && gw->indices[1] == 6 && gw->indices[2] == V - 1);
    double gwant[6] = {3 + 9, 4 + 10, 7, 8, 1, 2};
    for (int e = 0; e < 6; e++) CHECK(kl_tensor_data_at(gw, e) == gwant[e]);
  }
  kl_tensor_release(w);
  kl_tensor_release(y);
  kl_tensor_release(gw);
  kl_tensor_release(ids);
  kl_tensor_release(g);
}

static void test_embedding_fd(void) {
  kl_rng r;
  kl_rng_seed(&r, 5);
  int64_t is[2] = {3, 4}, ws[2] = {7, 3};
  double iv[12] = {1, 2, 2, 0, 7, 0, 3, 3, 3, 1, 0, 5};
  kl_tensor *ids = mk(KL_FLOAT64, 2, is, iv), *w = rnd(KL_FLOAT64, 2, ws, &r, -1, 1);
  kl_tensor *in[2] = {ids, w};
  kl_tensor_release(fd_check(&kl_opdef_embedding, in, 2, NULL, 1, KL_STYPE_DEFAULT, 1e-6, &r));
  kl_tensor *g = fd_check(&kl_opdef_embedding, in, 2, NULL, 1, KL_STYPE_ROW_SPARSE, 1e-6, &r);
  /* stored entries: exactly the used ids 1, 2, 3, 5, 7 */
  CHECK(g && g->stype == KL_STYPE_ROW_SPARSE && g->nnz == 5);
  if (g && g->nnz == 5) {
    int64_t want[5] = {0, 1, 2, 4, 6};
    for (int k = 0; k < 5; k++) CHECK(g->indices[k] == want[k]);
  }
  kl_tensor_release(g);
  /* a row_sparse weight (all rows stored) perturbed on its stored values */
  kl_tensor *wr = NULL;
  CHECK_OK(kl_tensor_tostype(w, KL_STYPE_ROW_SPARSE, &wr));
  if (wr) {
    kl_tensor *in2[2] = {ids, wr};
    kl_tensor_release(fd_check(&kl_opdef_embedding, in2, 2, NULL, 1, KL_STYPE_ROW_SPARSE, 1e-6, &r));
  }
  kl_tensor_release(wr);
  kl_tensor_release(ids);
  kl_tensor_release(w);
}

/* Fails the k-th allocation for every k until the call succeeds: each failure must be
 * KL_ENOMEM with *out left NULL (ASan builds also prove nothing leaks). */
static void sweep_alloc(const char *what, kl_tensor **in, int nin, int bwd, const kl_op_def *d,
                        kl_stype want) {
  kl_tensor *y = NULL, *g = NULL;
  CHECK_OK(run_def(d, in, nin, NULL, &y));
  if (!y) return;
  g = mk(y->dtype, y->ndim, y->shape, NULL);
  kl_tensor_fill(g, 1);
  int done = 0;
  for (long k = 1; k < 100 && !done; k++) {
    kl_tensor *o = NULL;
    kl_alloc_fail_at(k);
    kl_status st = bwd ? d->backward(in, nin, NULL, y, g, 1, want, &o) : run_def(d, in, nin, NULL, &o);
    kl_alloc_fail_at(0);
    if (st == KL_OK) {
      done = 1;
    } else if (st != KL_ENOMEM || o != NULL) {
      fprintf(stderr, "%s: allocation %ld failing gave %s\n", what, k, kl_status_name(st));
      CHECK(0);
      break;
    }
    kl_tensor_release(o);
  }
  CHECK(done);
  kl_tensor_release(y);
  kl_tensor_release(g);
}

static void test_alloc_failures(void) {
  int64_t is[2] = {2, 3}, ws[2] = {5, 2}, bs[1] = {2};
  double iv[6] = {1, 2, 2, 0, 5, 1};
  kl_tensor *ids = mk(KL_FLOAT32, 2, is, iv), *w = mk(KL_FLOAT32, 2, ws, NULL);
  kl_tensor *b = mk(KL_FLOAT32, 1, bs, NULL), *wr = NULL;
  kl_tensor *in[2] = {ids, w}, *bin[2] = {w, b};
  sweep_alloc("embedding forward", in, 2, 0, &kl_opdef_embedding, KL_STYPE_DEFAULT);
  sweep_alloc("embedding backward rsp", in, 2, 1, &kl_opdef_embedding, KL_STYPE_ROW_SPARSE);
  sweep_alloc("embedding backward dense", in, 2, 1, &kl_opdef_embedding, KL_STYPE_DEFAULT);
  CHECK_OK(kl_tensor_tostype(w, KL_STYPE_ROW_SPARSE, &wr));
  kl_tensor *rin[2] = {ids, wr};
  if (wr) sweep_alloc("embedding forward rsp", rin, 2, 0, &kl_opdef_embedding, KL_STYPE_DEFAULT);
  sweep_alloc("bias_add forward", bin, 2, 0, &kl_opdef_bias_add, KL_STYPE_DEFAULT);
  sweep_alloc("bias_add backward", bin, 2, 1, &kl_opdef_bias_add, KL_STYPE_DEFAULT);
  sweep_alloc("bias_add backward rsp", bin, 2, 1, &kl_opdef_bias_add, KL_STYPE_ROW_SPARSE);
  kl_tensor_release(ids);
  kl_tensor_release(w);
  kl_tensor_release(wr);
  kl_tensor_release(b);
}

int main(void) {
  test_bias_add_exact();
  test_bias_add_random(KL_FLOAT64, 1e-12);
  test_bias_add_random(KL_FLOAT32, 1e-5);
  test_bias_add_fd();
  test_embedding_tutorial(KL_FLOAT32);
  test_embedding_tutorial(KL_FLOAT64);
  test_embedding_tutorial(KL_INT64);
  test_embedding_errors();
  test_embedding_random(KL_FLOAT64, KL_FLOAT32, 2, 1e-12);
  test_embedding_random(KL_FLOAT32, KL_INT64, 2, 1e-5);
  test_embedding_random(KL_FLOAT64, KL_FLOAT64, 1, 1e-12);
  test_embedding_huge_vocab();
  test_embedding_fd();
  test_alloc_failures();
  KLTEST_DONE();
}
