/* optim_testutil.h: helpers shared by the optimizer tests: tensor builders, bitwise
 * comparisons and the scalar reference of the update rules. */
#ifndef OPTIM_TESTUTIL_H
#define OPTIM_TESTUTIL_H
#include <stdlib.h>

#include "kl/optim.h"
#include "kltest.h"

/* ------------------------------------------------------------------ helpers */

static uint64_t lcg_state = 12345;
static inline double urand(double lo, double hi) {
  lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (hi - lo) * (double)(lcg_state >> 11) / 9007199254740992.0;
}

/* rows x cols dense, values v (row-major) or zeros when v is NULL. */
static inline kl_tensor *dense2(kl_dtype dt, int64_t rows, int64_t cols, const double *v) {
  int64_t shape[2] = {rows, cols};
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(dt, 2, shape, &t) != KL_OK) return NULL;
  if (v)
    for (int64_t i = 0; i < rows * cols; i++) kl_tensor_data_set(t, i, v[i]);
  return t;
}

/* rows x cols row_sparse storing rows idx[0..n-1] with values v (n x cols). */
static inline kl_tensor *rsp2(kl_dtype dt, int64_t rows, int64_t cols, int64_t n, const int64_t *idx,
                       const double *v) {
  int64_t shape[2] = {rows, cols};
  kl_tensor *t = NULL;
  if (kl_tensor_new_rsp(dt, 2, shape, n, &t) != KL_OK) return NULL;
  for (int64_t i = 0; i < n; i++) t->indices[i] = idx[i];
  for (int64_t i = 0; i < n * cols; i++) kl_tensor_data_set(t, i, v ? v[i] : 0.0);
  return t;
}

/* An independent copy (same stype, dtype, shape, values). */
static inline kl_tensor *clone(const kl_tensor *t) {
  kl_tensor *c = NULL;
  if (t->stype == KL_STYPE_ROW_SPARSE) {
    if (kl_tensor_new_rsp(t->dtype, t->ndim, t->shape, t->nnz, &c) != KL_OK) return NULL;
    memcpy(c->indices, t->indices, (size_t)t->nnz * sizeof(int64_t));
  } else if (kl_tensor_new_dense(t->dtype, t->ndim, t->shape, &c) != KL_OK) {
    return NULL;
  }
  int64_t n = t->stype == KL_STYPE_ROW_SPARSE ? t->nnz * kl_row_width(t) : kl_tensor_numel(t);
  memcpy(c->data, t->data, (size_t)n * kl_dtype_size(t->dtype));
  return c;
}

/* A row_sparse gradient densified by hand. */
static inline kl_tensor *densify(const kl_tensor *g) {
  int64_t rw = kl_row_width(g);
  kl_tensor *d = dense2(g->dtype, g->shape[0], rw, NULL);
  if (!d) return NULL;
  for (int64_t i = 0; i < g->nnz; i++)
    for (int64_t j = 0; j < rw; j++)
      kl_tensor_data_set(d, g->indices[i] * rw + j, kl_tensor_data_at(g, i * rw + j));
  return d;
}

/* Row r (position p in storage) of a and b have the same bits. */
static inline int row_bits_equal(const kl_tensor *a, int64_t pa, const kl_tensor *b, int64_t pb) {
  size_t bytes = (size_t)kl_row_width(a) * kl_dtype_size(a->dtype);
  return memcmp((const char *)a->data + (size_t)pa * bytes,
                (const char *)b->data + (size_t)pb * bytes, bytes) == 0;
}

static inline int all_bits_equal(const kl_tensor *a, const kl_tensor *b) {
  if (a->nnz != b->nnz) return 0;
  size_t bytes = (size_t)kl_row_width(a) * kl_dtype_size(a->dtype);
  int64_t rows = a->stype == KL_STYPE_ROW_SPARSE ? a->nnz : a->shape[0];
  return memcmp(a->data, b->data, (size_t)rows * bytes) == 0;
}

static inline int in_list(int64_t r, const int64_t *idx, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (idx[i] == r) return 1;
  return 0;
}

/* ------------------------------------------------------- scalar reference */

/* One element of one step, written from the formulas in kl/optim.h, in double. */
static inline void ref_step(const kl_optimizer *o, double *w, double graw, double *s0, double *s1,
                     int64_t t) {
  double g = graw * o->rescale_grad;
  if (o->clipvalue > 0) g = fmin(fmax(g, -o->clipvalue), o->clipvalue);
  double lr = o->learning_rate, gw = g + o->weight_decay * *w;
  switch (o->kind) {
    case KL_OPT_SGD:
      if (o->momentum > 0) {
        *s0 = o->momentum * *s0 - lr * gw;
        *w += o->nesterov ? o->momentum * *s0 - lr * gw : *s0;
      } else {
        *w -= lr * gw;
      }
      break;
    case KL_OPT_ADAM: {
      double lr_t = lr * sqrt(1 - pow(o->beta_2, (double)t)) / (1 - pow(o->beta_1, (double)t));
      *s0 = o->beta_1 * *s0 + (1 - o->beta_1) * gw;
      *s1 = o->beta_2 * *s1 + (1 - o->beta_2) * gw * gw;
      *w -= lr_t * *s0 / (sqrt(*s1) + o->epsilon);
      break;
    }
    case KL_OPT_ADAGRAD:
      *s0 += gw * gw;
      *w -= lr * gw / (sqrt(*s0) + o->epsilon);
      break;
    case KL_OPT_RMSPROP:
      *s0 = o->rho * *s0 + (1 - o->rho) * gw * gw;
      *w -= lr * gw / (sqrt(*s0) + o->epsilon);
      break;
    case KL_OPT_FTRL: {
      double n2 = *s1 + g * g;
      *s0 += g - (sqrt(n2) - sqrt(*s1)) * *w / lr;
      *s1 = n2;
      double z = *s0;
      *w = fabs(z) > o->lamda1
               ? ((z > 0 ? o->lamda1 : -o->lamda1) - z) / ((o->beta + sqrt(n2)) / lr + o->weight_decay)
               : 0.0;
      break;
    }
    default: break;
  }
}

#endif
