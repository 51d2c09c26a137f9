/* kltest_fitpair.h: what the C tests that train one model on a device and on the CPU and
 * compare them share (test_plan_device on the guarded fake device, test_gpu_dev_fit on the
 * CUDA one): a model (its graph, its plan, the weights it owns), a data set, a graph op of two
 * inputs, a host weight made a variable on a device, and the two epoch options that shuffle
 * the rows alike. */
#ifndef KLTEST_FITPAIR_H
#define KLTEST_FITPAIR_H
#include <stdlib.h>

#include "kl/graph.h"
#include "kltest.h"

typedef struct kt_model {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w[8]; /* the weights, owned */
  int nw;
  int x, pred, loss; /* nodes, where the test records them */
} kt_model;

typedef struct kt_data {
  kl_tensor *x, *y;
} kt_data;

static inline void kt_data_free(kt_data *d) {
  kl_tensor_release(d->x);
  kl_tensor_release(d->y);
}

static inline int kt_op2(kl_graph *g, kl_op op, int a, int b) {
  int in[2] = {a, b}, id = -1;
  CHECK_OK(kl_graph_op(g, op, in, 2, NULL, &id));
  return id;
}

/* Host tensor t moved to dev (as compile{device = ...} does) and made a trainable variable of
 * m's graph named name; m owns t. Returns the node. */
static inline int kt_variable(kt_model *m, kl_tensor *t, kl_device dev, const char *name) {
  if (m->nw >= (int)(sizeof m->w / sizeof *m->w)) {
    fprintf(stderr, "kt_variable: more than %d weights\n", (int)(sizeof m->w / sizeof *m->w));
    exit(2);
  }
  if (dev != KL_CPU) CHECK_OK(kl_tensor_move(t, dev));
  int id = -1;
  CHECK_OK(kl_graph_variable(m->g, t, 1, name, &id));
  m->w[m->nw++] = t;
  return id;
}

static inline void kt_model_free(kt_model *m) {
  kl_plan_free(m->p);
  kl_graph_free(m->g);
  for (int k = 0; k < m->nw; k++) kl_tensor_release(m->w[k]);
}

/* The epoch options of a CPU run (*oc) and of a device run (*og) of batch_size with metrics:
 * both shuffle, their generators rc and rg seeded alike, so they see the same batches. */
static inline void kt_epoch_pair(uint64_t seed, int64_t batch_size, int nmetrics,
                                 const int *metrics, const int *metric_outputs, kl_rng *rc,
                                 kl_rng *rg, kl_epoch_opts *oc, kl_epoch_opts *og) {
  kl_rng_seed(rc, seed);
  kl_rng_seed(rg, seed);
  kl_epoch_opts o = {.batch_size = batch_size, .shuffle = 1, .rng = rc, .nmetrics = nmetrics,
                     .metrics = metrics, .metric_outputs = metric_outputs};
  *oc = o;
  o.rng = rg;
  *og = o;
}
#endif
