/* kltest_csrnet.h: what the tests of fit's steps on a csr . W model share (test_plan_fused:
 * the flagged and listed steps; test_plan_linear: the linear step): random csr rows, the
 * model's graph with its weight W and bias b, its release, the bit comparison of two
 * tensors, an optimizer of a rule and its flags, and the per-batch train steps a fit epoch
 * is compared against. */
#ifndef KLTEST_CSRNET_H
#define KLTEST_CSRNET_H
#include <stdlib.h>
#include <string.h>

#include "kl/graph.h"
#include "kl/optim.h"
#include "kltest.h"
#include "kltest_ops.h"

/* A model: its graph, its plan and the weights it owns. */
typedef struct kt_net {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w, *b;
} kt_net;

/* R x C csr, about nz entries a row at random columns from rng (sorted, distinct), every
 * 7th row empty, some values -0. */
static inline kl_tensor *kt_rand_csr(kl_rng *rng, kl_dtype dt, int64_t R, int64_t C, int nz) {
  int64_t *ip = malloc((size_t)(R + 1) * sizeof *ip), *ix = malloc((size_t)(R * nz + 1) * sizeof *ix);
  double *v = malloc((size_t)(R * nz + 1) * sizeof *v);
  if (!ip || !ix || !v) exit(2);
  int64_t n = 0;
  ip[0] = 0;
  for (int64_t i = 0; i < R; i++) {
    int64_t c = (int64_t)(kl_rng_uniform(rng) * (double)(C / nz));
    for (int k = 0; i % 7 != 4 && k < nz && c < C; k++) {
      ix[n] = c;
      v[n++] = k % 5 == 4 ? -0.0 : kl_rng_uniform(rng) * 2 - 1;
      c += 1 + (int64_t)(kl_rng_uniform(rng) * (double)(2 * C / nz - 1));
    }
    ip[i + 1] = n;
  }
  kl_tensor *t = kt_csr_of(dt, R, C, n, ip, ix, v);
  free(ip);
  free(ix);
  free(v);
  return t;
}

/* A new model's graph (n->g), its C x N weight n->w of stype wst (uniform in [-0.5, 0.5)
 * from wseed) and its N-wide bias n->b (every value bval); the caller adds the nodes. */
static inline void kt_net_begin(kt_net *n, kl_dtype dt, int64_t C, int64_t N, kl_stype wst,
                                uint64_t wseed, double bval) {
  memset(n, 0, sizeof *n);
  CHECK_OK(kl_graph_new(&n->g));
  kl_rng wr;
  kl_rng_seed(&wr, wseed);
  int64_t ws[2] = {C, N};
  kl_tensor *wd = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, 2, ws, &wd));
  for (int64_t k = 0; k < C * N; k++) kl_tensor_data_set(wd, k, kl_rng_uniform(&wr) - 0.5);
  if (wst == KL_STYPE_ROW_SPARSE) {
    CHECK_OK(kl_tensor_tostype(wd, KL_STYPE_ROW_SPARSE, &n->w));
    kl_tensor_release(wd);
  } else {
    n->w = wd;
  }
  CHECK_OK(kl_tensor_new_dense(dt, 1, &N, &n->b));
  kl_tensor_fill(n->b, bval);
}

static inline void kt_net_free(kt_net *n) {
  kl_plan_free(n->p);
  kl_graph_free(n->g);
  kl_tensor_release(n->w);
  kl_tensor_release(n->b);
}

/* x and y hold the same bits: dtype, stype, element count, stored rows' count, their
 * indices (row_sparse) and values. */
static inline int kt_same_bits(const kl_tensor *x, const kl_tensor *y) {
  if (!x || !y || x->dtype != y->dtype || kl_tensor_numel(x) != kl_tensor_numel(y) ||
      x->stype != y->stype || x->nnz != y->nnz)
    return 0;
  if (x->stype == KL_STYPE_ROW_SPARSE && x->nnz > 0 &&
      memcmp(x->indices, y->indices, (size_t)x->nnz * sizeof *x->indices) != 0)
    return 0;
  size_t nb = (size_t)(x->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(x) : x->nnz * kl_row_width(x));
  return nb == 0 || memcmp(x->data, y->data, nb * kl_dtype_size(x->dtype)) == 0;
}

/* An optimizer of rule kind (learning rate 0.05 for SGD, 0.01 otherwise) with these
 * momentum, nesterov, weight decay, clip and rescale. */
static inline kl_optimizer kt_opt(kl_opt_kind kind, double mom, int nest, double wd, double clip,
                                  double rescale) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, kind));
  o.learning_rate = kind == KL_OPT_SGD ? 0.05 : 0.01;
  o.momentum = mom;
  o.nesterov = nest;
  o.weight_decay = wd;
  o.clipvalue = clip;
  o.rescale_grad = rescale;
  return o;
}

/* kl_plan_train_step on p over rows [0, R) of x and y in batches of bs, in order (a third
 * feed extra, NULL for none): the rows' mean of the steps' losses. */
static inline double kt_train_steps(kl_plan *p, kl_tensor *x, kl_tensor *y, int64_t R,
                                    int64_t bs, kl_tensor *extra) {
  double lsum = 0;
  for (int64_t r = 0; r < R; r += bs) {
    const int64_t r1 = r + bs < R ? r + bs : R;
    kl_tensor *f[3] = {NULL, NULL, extra};
    CHECK_OK(kl_tensor_slice_rows(x, r, r1, &f[0]));
    CHECK_OK(kl_tensor_slice_rows(y, r, r1, &f[1]));
    double l = 0;
    CHECK_OK(kl_plan_train_step(p, f, &l));
    lsum += l * (double)(r1 - r);
    kl_tensor_release(f[0]);
    kl_tensor_release(f[1]);
  }
  return lsum / (double)R;
}
#endif
