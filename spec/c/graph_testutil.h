/* graph_testutil.h: helpers for the graph and plan tests (tensors from arrays, gradient checks). */
#ifndef KL_GRAPH_TESTUTIL_H
#define KL_GRAPH_TESTUTIL_H
#include <stdlib.h>
#include "kl/graph.h"
#include "kltest.h"

/* A dense tensor of dtype dt and shape holding vals (NULL: zeros). */
static kl_tensor *gt_dense(kl_dtype dt, int ndim, const int64_t *shape, const double *vals) {
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(dt, ndim, shape, &t) != KL_OK) {
    fprintf(stderr, "gt_dense: %s\n", kl_errmsg());
    exit(2);
  }
  if (vals)
    for (int64_t i = 0; i < kl_tensor_numel(t); i++) kl_tensor_data_set(t, i, vals[i]);
  return t;
}

/* A float64 dense tensor with uniform values in [lo, hi), |v| >= away (for kinks at 0). */
static kl_tensor *gt_rand(kl_rng *r, int ndim, const int64_t *shape, double lo, double hi,
                          double away) {
  kl_tensor *t = gt_dense(KL_FLOAT64, ndim, shape, NULL);
  for (int64_t i = 0; i < kl_tensor_numel(t); i++) {
    double v;
    do v = lo + (hi - lo) * kl_rng_uniform(r);
    while (v > -away && v < away);
    kl_tensor_data_set(t, i, v);
  }
  return t;
}

/* Index into the densified tensor of stored value i of t (dense: i). */
static int64_t gt_dense_index(const kl_tensor *t, int64_t i) {
  if (t->stype != KL_STYPE_ROW_SPARSE) return i;
  int64_t w = kl_row_width(t);
  return t->indices[i / w] * w + i % w;
}

/* Value j (dense index) of t, any stype. */
static double gt_dense_at(const kl_tensor *t, int64_t j) {
  kl_tensor *d = NULL;
  if (t->stype == KL_STYPE_DEFAULT) return kl_tensor_data_at(t, j);
  if (kl_tensor_tostype(t, KL_STYPE_DEFAULT, &d) != KL_OK) return NAN;
  double v = kl_tensor_data_at(d, j);
  kl_tensor_release(d);
  return v;
}

/* Central-difference check of plan p's gradients (float64 weights) against the loss,
 * perturbing every stored value of every weight by h. feeds may be NULL. Returns the
 * number of mismatches; each is also a failed CHECK. */
static int gt_gradcheck(kl_plan *p, kl_graph *g, const int *weights, int nw,
                        kl_tensor *const *feeds, double h, double tol, const char *what) {
  int bad = 0;
  if (kl_plan_forward(p, feeds, 1) != KL_OK || kl_plan_backward(p) != KL_OK) {
    fprintf(stderr, "%s: forward/backward failed: %s\n", what, kl_errmsg());
    kltest_checks++;
    kltest_failures++;
    return 1;
  }
  for (int k = 0; k < nw; k++) {
    kl_tensor *w = kl_graph_value(g, weights[k]);
    kl_tensor *gk = NULL;
    kl_tensor_copy(kl_plan_grad(p, k), &gk);
    int64_t nv = w->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(w) : w->nnz * kl_row_width(w);
    for (int64_t i = 0; i < nv; i++) {
      double v = kl_tensor_data_at(w, i), lp, lm;
      kl_tensor_data_set(w, i, v + h);
      kl_plan_forward(p, feeds, 1);
      lp = kl_plan_loss(p);
      kl_tensor_data_set(w, i, v - h);
      kl_plan_forward(p, feeds, 1);
      lm = kl_plan_loss(p);
      kl_tensor_data_set(w, i, v);
      double fd = (lp - lm) / (2 * h);
      double an = gt_dense_at(gk, gt_dense_index(w, i));
      kltest_checks++;
      if (!(fabs(fd - an) <= tol * (1.0 + fabs(fd)))) {
        kltest_failures++;
        bad++;
        fprintf(stderr, "%s: weight %d value %lld: analytic %.12g, numeric %.12g\n", what, k,
                (long long)i, an, fd);
      }
    }
    kl_tensor_release(gk);
  }
  return bad;
}

#endif
