/* plan_fit.c: the batch loop in C: fit one epoch, evaluate and predict over in-memory data. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kl/device.h"
#include "kl/layers.h"
#include "plan_internal.h"
#include "plan_linear.h"
#include "tensor_internal.h"

/* Rows [b, e) of t, or rows perm[b..e-1] when perm is given; *out new. With view, the
 * contiguous rows of a csr or dense host t are a view of its buffers (no copy of the
 * batch's entries: ~8 % of a W1 step at batch 64; no zero fill and copy of W3's 256 x 20
 * ids); *viewed is then set. */
static kl_status kl_batch_rows(const kl_tensor *t, const int64_t *perm, int64_t b, int64_t e,
                               int view, int *viewed, kl_tensor **out) {
  if (perm) return kl_tensor_take_rows(t, perm + b, e - b, out);
  if (view && t->stype == KL_STYPE_CSR) {
    *viewed = 1;
    return kl_tensor_csr_row_view(t, b, e, out);
  }
  if (view && t->stype == KL_STYPE_DEFAULT && t->device == KL_CPU && t->ndim >= 1) {
    *viewed = 1;
    return kl_tensor_dense_row_view(t, b, e, out);
  }
  return kl_tensor_slice_rows(t, b, e, out);
}

/* Checks the data against the plan: nx inputs (+ y and nextra more) with the same row
 * count, returned in *n. */
static kl_status kl_check_data(const kl_plan *p, const char *fn, kl_tensor *const *x, int nx,
                               const kl_tensor *y, int nextra, kl_tensor *const *extra,
                               int64_t *n) {
  KL_CHECK(x != NULL && nx >= 1, KL_EINVAL, "%s: no input tensors", fn);
  KL_CHECK(nextra >= 0 && (extra || nextra == 0), KL_EINVAL, "%s: bad extra data (%d tensors)",
           fn, nextra);
  int want = y ? nx + 1 + nextra : nx;
  KL_CHECK(want == p->nfeeds || (!y && nx + 1 == p->nfeeds), KL_EINVAL,
           "%s: %d input tensors%s given, the plan has %d feeds", fn, nx,
           y ? (nextra ? " and targets / weights" : " and a target") : "", p->nfeeds);
  for (int i = 0; i < nx; i++) {
    KL_CHECK(x[i] != NULL, KL_EINVAL, "%s: input %d is NULL", fn, i);
    KL_CHECK(x[i]->ndim >= 1, KL_ESHAPE, "%s: input %d is a scalar; rows expected", fn, i);
  }
  /* The data stays on the host (its batches are sliced, and its labels checked, there); a
   * device plan copies each batch to its device. */
  for (int i = 0; i < nx + 1 + nextra; i++) {
    const kl_tensor *t = i < nx ? x[i] : i == nx ? y : extra[i - nx - 1];
    if (t && t->device != KL_CPU) return kl_device_refuse(fn, t);
  }
  *n = x[0]->shape[0];
  for (int i = 1; i < nx; i++)
    KL_CHECK(x[i]->shape[0] == *n, KL_ESHAPE,
             "%s: inputs have different row counts (%lld and %lld)", fn, (long long)*n,
             (long long)x[i]->shape[0]);
  if (y) {
    KL_CHECK(y->ndim >= 1, KL_ESHAPE, "%s: y is a scalar; rows expected", fn);
    KL_CHECK(y->shape[0] == *n, KL_ESHAPE,
             "%s: x and y have different row counts (%lld vs %lld)", fn, (long long)*n,
             (long long)y->shape[0]);
  }
  for (int j = 0; j < nextra; j++) {
    const kl_tensor *t = extra[j];
    if (!t) continue;
    KL_CHECK(t->ndim >= 1 && t->shape[0] == *n, KL_ESHAPE,
             "%s: x and the data fed to '%s' have different row counts (%lld vs %lld)", fn,
             p->g->nodes[p->feeds[nx + 1 + j]].name ? p->g->nodes[p->feeds[nx + 1 + j]].name
                                                    : "placeholder",
             (long long)*n, (long long)(t->ndim ? t->shape[0] : 0));
  }
  return KL_OK;
}

/* The data tensor fed to placeholder id (x..., y, extra...), or NULL. */
static const kl_tensor *kl_fed_data(const kl_plan *p, int id, kl_tensor *const *x, int nx,
                                    const kl_tensor *y, kl_tensor *const *extra) {
  for (int k = 0; k < p->nfeeds; k++)
    if (p->feeds[k] == id) return k < nx ? x[k] : (k == nx ? y : extra[k - nx - 1]);
  return NULL;
}

/* Every loss op of the plan checks the labels and weights fed to it, over all rows. */
static kl_status kl_check_loss_data(const kl_plan *p, const char *fn, kl_tensor *const *x, int nx,
                                    const kl_tensor *y, kl_tensor *const *extra) {
  for (int q = 0; q < p->norder; q++) {
    const kl_node *nd = &p->g->nodes[p->order[q]];
    if (nd->kind != KL_NODE_OP || nd->nin < 2 || !p->need_loss[p->order[q]]) continue;
    const kl_meta *mp = &p->g->nodes[nd->inputs[1]].meta;
    const kl_tensor *t = kl_fed_data(p, nd->inputs[0], x, nx, y, extra);
    const kl_tensor *w = nd->nin >= 3 ? kl_fed_data(p, nd->inputs[2], x, nx, y, extra) : NULL;
    kl_status st = t || w ? kl_loss_check_data(nd->op, t, w, mp->ndim ? mp->shape[mp->ndim - 1] : 1, 0)
                          : KL_OK;
    if (st != KL_OK) { /* "fit: sparse_categorical_crossentropy: label 0 ... at row 5" */
      char msg[512];
      snprintf(msg, sizeof msg, "%s", kl_errmsg());
      return kl_seterr(st, "%s: %s", fn, msg);
    }
  }
  return KL_OK;
}

/* A Fisher-Yates permutation of 0..n-1 drawn from rng; with bs > 0, of the n / bs whole
 * batches of bs rows instead (Keras' batch_shuffle: rows within a batch in order, the last
 * partial batch last). */
static kl_status kl_permutation(int64_t n, int64_t bs, kl_rng *rng, int64_t **out) {
  int64_t *perm = kl_malloc_n((size_t)(n > 0 ? n : 1), sizeof *perm);
  if (!perm) return KL_ENOMEM;
  int64_t m = bs > 0 ? n / bs : n;
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = m - 1; i > 0; i--) {
    int64_t j = (int64_t)kl_rng_below(rng, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  if (bs > 0) { /* perm[0..m-1] orders the batches: expand to rows, from the back */
    for (int64_t i = m - 1; i >= 0; i--) {
      int64_t blk = perm[i];
      for (int64_t r = bs - 1; r >= 0; r--) perm[i * bs + r] = blk * bs + r;
    }
  }
  *out = perm;
  return KL_OK;
}

/* The shared loop of fit_epoch (train = 1) and evaluate (train = 0). */
static kl_status kl_plan_loop(kl_plan *p, const char *fn, kl_tensor *const *x, int nx,
                              const kl_tensor *y, const kl_epoch_opts *o, int train,
                              double *loss_avg, double *metric_avgs) {
  KL_CHECK(p && o && y, KL_EINVAL, "%s: NULL plan, target or options", fn);
  KL_CHECK(p->loss >= 0, KL_EINVAL, "%s: the plan has no loss", fn);
  KL_CHECK(!train || p->has_opt, KL_EINVAL, "%s: the plan has no optimizer", fn);
  KL_CHECK(o->batch_size >= 1, KL_EINVAL, "%s: batch_size must be >= 1. Received: batch_size=%lld",
           fn, (long long)o->batch_size);
  KL_CHECK(o->nmetrics >= 0 && o->nmetrics <= 64 && (o->metrics || o->nmetrics == 0), KL_EINVAL,
           "%s: bad metric list (%d metrics)", fn, o->nmetrics);
  KL_CHECK(o->nmetrics == 0 || p->noutputs >= 1, KL_EINVAL, "%s: metrics need an output", fn);
  const int nparts = train && o->nparts > 1 ? o->nparts : 1;
  KL_CHECK(nparts == 1 || (o->part >= 0 && o->part < nparts), KL_EINVAL,
           "%s: part %d of %d parts", fn, o->part, nparts);
  KL_CHECK(nparts == 1 || p->grad_hook, KL_EINVAL,
           "%s: a data-parallel fit (%d parts) needs the plan's gradient hook", fn, nparts);
  for (int m = 0; m < o->nmetrics; m++) {
    int mo = o->metric_outputs ? o->metric_outputs[m] : 0;
    int mt = o->metric_targets ? o->metric_targets[m] : 0;
    KL_CHECK(mo >= 0 && mo < p->noutputs && mt >= 0 && mt <= o->nextra, KL_EINVAL,
             "%s: metric %d reads output %d of %d and target %d of %d", fn, m, mo, p->noutputs,
             mt, o->nextra + 1);
  }
  int64_t n = 0;
  KL_TRY(kl_check_data(p, fn, x, nx, y, o->nextra, o->extra, &n));
  KL_TRY(kl_check_loss_data(p, fn, x, nx, y, o->extra));
  int64_t *perm = NULL;
  KL_CHECK(nx <= KL_MAX_OP_INPUTS, KL_EINVAL, "%s: %d inputs (at most %d)", fn, nx,
           KL_MAX_OP_INPUTS);
  const int nd = nx + 1 + o->nextra; /* the fed data: x..., y, extra... */
  kl_tensor **feeds = kl_calloc((size_t)nd * 2, sizeof *feeds); /* once an epoch */
  if (!feeds) return KL_ENOMEM;
  /* feeds[nd + i]: the data of feed i (x, y, extra), or an empty tensor for a NULL extra */
  kl_tensor **data = feeds + nd;
  kl_status st = KL_OK;
  for (int i = 0; i < nd && st == KL_OK; i++) {
    const kl_tensor *t = i < nx ? x[i] : (i == nx ? y : o->extra[i - nx - 1]);
    if (t) {
      data[i] = kl_tensor_retain((kl_tensor *)t);
    } else {
      int64_t zero = 0;
      st = kl_tensor_new_dense(p->g->nodes[p->feeds[i]].meta.dtype, 1, &zero, &data[i]);
    }
  }
  double msum[64], mavg[64];
  int64_t mcount[64];
  kl_metric_acc macc[64]; /* the metrics' running states (zeroed: each may be freed) */
  memset(macc, 0, sizeof macc);
  for (int m = 0; m < o->nmetrics; m++) msum[m] = 0.0, mcount[m] = 0, mavg[m] = NAN;
  for (int m = 0; m < o->nmetrics && st == KL_OK; m++)
    if (o->metrics[m] != KL_EPOCH_OUTPUT_MEAN)
      st = kl_metric_acc_init(&macc[m], (kl_metric)o->metrics[m],
                              o->metric_params ? o->metric_params[m] : 0);
  double lsum = 0.0;
  int64_t seen = 0, batch = 0;
  int viewed = 0;
  if (st != KL_OK) goto done;
  /* a linear model's steps run on the data's rows, no batch tensors (plan_linear.c) */
  const int lin = train && nparts == 1 && kl_linear_applies(p, x, nx, y, o);
  int lin_last = 0; /* the last step was a linear step: the plan holds no step's values */
  if (train && o->shuffle) {
    st = kl_permutation(n, o->shuffle == KL_SHUFFLE_BATCH ? o->batch_size : 0,
                        o->rng ? o->rng : kl_rng_global(), &perm);
    if (st != KL_OK) goto done;
  }
  for (int64_t b0 = 0; b0 < n; b0 += o->batch_size, batch++) {
    const int64_t e0 = n - b0 < o->batch_size ? n : b0 + o->batch_size;
    int64_t b = b0, e = e0; /* this part's share of the batch (all of it by default) */
    if (nparts > 1) {
      b = b0 + (e0 - b0) * o->part / nparts;
      e = b0 + (e0 - b0) * (o->part + 1) / nparts;
    }
    /* before slicing: one batch's working set at a time (a linear step leaves none) */
    if (train && !lin_last) kl_plan_drop_step(p);
    lin_last = 0;
    if (e == b) { /* an empty share: zero gradients through the hook, the same update */
      st = kl_plan_train_step_empty(p);
      if (st != KL_OK) goto done;
      goto after_step;
    }
    if (lin) {
      int stepped = 0;
      double l = 0.0;
      st = kl_linear_step(p, x[0], y, perm, b, e, &l, &stepped);
      if (st != KL_OK) goto done;
      if (stepped) {
        lin_last = 1;
        lsum += l * (double)(e - b);
        seen += e - b;
        goto after_step;
      }
    }
    for (int i = 0; i < nd && st == KL_OK; i++) {
      if (kl_tensor_numel(data[i]) == 0 && i > nx) /* no weights: the empty tensor itself */
        feeds[i] = kl_tensor_retain(data[i]);
      else
        st = kl_batch_rows(data[i], perm, b, e, train, &viewed, &feeds[i]);
    }
    if (st != KL_OK) goto done;
    double l = 0.0;
    /* Nothing reads a fit step's gradients: its update may take them fused (plan_step.c), on the
     * host only. */
    p->fuse_ok = train && p->device == KL_CPU;
    if (train)
      st = kl_plan_train_step(p, feeds, &l);
    else {
      st = kl_plan_run(p, feeds, 0, 1);
      l = p->loss_value;
    }
    p->fuse_ok = 0; /* (a callback may drive this plan: its steps are not fused) */
    if (st != KL_OK) goto done;
    for (int m = 0; m < o->nmetrics && st == KL_OK; m++) {
      const kl_tensor *out = kl_plan_output(p, o->metric_outputs ? o->metric_outputs[m] : 0);
      kl_tensor *hout = NULL; /* a device plan's output: read through a host copy */
      if (out->device != KL_CPU) {
        st = kl_tensor_to(out, KL_CPU, &hout);
        if (st != KL_OK) break;
        out = hout;
      }
      if (o->metrics[m] == KL_EPOCH_OUTPUT_MEAN) {
        msum[m] += kl_tensor_data_at(out, 0) * (double)(e - b);
        mcount[m] += e - b;
      } else {
        st = kl_metric_acc_update(&macc[m],
                                  feeds[nx + (o->metric_targets ? o->metric_targets[m] : 0)], out);
      }
      kl_tensor_release(hout);
    }
    if (st != KL_OK) goto done;
    for (int i = 0; i < nd; i++) {
      kl_tensor_release(feeds[i]);
      feeds[i] = NULL;
    }
    lsum += l * (double)(e - b);
    seen += e - b;
    for (int m = 0; m < o->nmetrics; m++)
      mavg[m] = o->metrics[m] != KL_EPOCH_OUTPUT_MEAN ? kl_metric_acc_result(&macc[m])
                : mcount[m] > 0 ? msum[m] / (double)mcount[m] : NAN;
  after_step:
    if (o->on_batch) { /* the callback's own allocations do not belong in the plan's pool */
      lin_last = 0;     /* (and it may run this plan) */
      kl_pool *cur = kl_pool_enter(NULL);
      int stop = o->on_batch(o->ud, batch, nparts > 1 ? e0 : seen, n,
                             seen > 0 ? lsum / (double)seen : NAN, mavg);
      kl_pool_leave(cur);
      if (stop) break;
    }
  }
  if (loss_avg) *loss_avg = seen > 0 ? lsum / (double)seen : NAN;
  if (metric_avgs)
    for (int m = 0; m < o->nmetrics; m++) metric_avgs[m] = mavg[m];
done:
  for (int m = 0; m < o->nmetrics; m++) kl_metric_acc_free(&macc[m]);
  for (int i = 0; i < 2 * nd; i++) kl_tensor_release(feeds[i]);
  kl_free(feeds);
  /* The plan keeps the last step's values, the fed views among them: drop them while the
   * data they borrow from is surely alive. */
  if (viewed) kl_plan_drop_step(p);
  kl_free(perm);
  return st;
}

/* The loop with the plan and the data held: the on_batch callback may drop the caller's
 * references to any of them (a Lua callback closing X, the model's plan or graph); each
 * lives until the loop has finished with it. Once per epoch, never per step. */
static kl_status kl_plan_loop_held(kl_plan *p, const char *fn, kl_tensor *const *x, int nx,
                                   const kl_tensor *y, const kl_epoch_opts *o, int train,
                                   double *loss_avg, double *metric_avgs) {
  KL_CHECK(nx >= 0 && (x || nx == 0), KL_EINVAL, "%s: bad input list (%d inputs)", fn, nx);
  KL_CHECK(o == NULL || (o->nextra >= 0 && (o->extra || o->nextra == 0)), KL_EINVAL,
           "%s: bad extra data", fn);
  kl_plan_retain(p);
  for (int i = 0; i < nx; i++) kl_tensor_retain(x[i]);
  kl_tensor_retain((kl_tensor *)y);
  for (int j = 0; o && j < o->nextra; j++) kl_tensor_retain(o->extra[j]);
  /* The batch slices, the permutation and the steps all use the plan's pool. */
  kl_pool *prev = train ? kl_pool_enter(p ? p->pool : NULL) : NULL;
  kl_status st = kl_plan_loop(p, fn, x, nx, y, o, train, loss_avg, metric_avgs);
  if (train) kl_pool_leave(prev);
  kl_tensor_release((kl_tensor *)y);
  for (int i = 0; i < nx; i++) kl_tensor_release(x[i]);
  for (int j = 0; o && j < o->nextra; j++) kl_tensor_release(o->extra[j]);
  kl_plan_free(p); /* the loop's reference: the last one if the caller dropped theirs */
  return st;
}

kl_status kl_plan_fit_epoch(kl_plan *p, kl_tensor *const *x, int nx, const kl_tensor *y,
                            const kl_epoch_opts *o, double *loss_avg, double *metric_avgs) {
  return kl_plan_loop_held(p, "fit", x, nx, y, o, 1, loss_avg, metric_avgs);
}

kl_status kl_plan_evaluate(kl_plan *p, kl_tensor *const *x, int nx, const kl_tensor *y,
                           const kl_epoch_opts *o, double *loss_avg, double *metric_avgs) {
  return kl_plan_loop_held(p, "evaluate", x, nx, y, o, 0, loss_avg, metric_avgs);
}

/* Copies the rows of batch output bo (dense) into res at row b, allocating res first. */
static kl_status kl_predict_store(const kl_tensor *bo, int64_t n, int64_t b, int64_t rows,
                                  kl_tensor **res) {
  KL_CHECK(bo->ndim >= 1 && bo->shape[0] == rows, KL_ESHAPE,
           "predict: the output has %lld rows for a batch of %lld",
           (long long)(bo->ndim ? bo->shape[0] : 0), (long long)rows);
  if (!*res) {
    int64_t shape[KL_MAX_NDIM];
    memcpy(shape, bo->shape, sizeof shape);
    shape[0] = n;
    KL_TRY(kl_tensor_new_dense(bo->dtype, bo->ndim, shape, res));
  }
  kl_tensor *r = *res;
  KL_CHECK(r->ndim == bo->ndim && memcmp(r->shape + 1, bo->shape + 1,
                                         (size_t)(r->ndim - 1) * sizeof r->shape[0]) == 0,
           KL_ESHAPE, "predict: batch outputs differ in shape");
  size_t es = kl_dtype_size(r->dtype);
  int64_t w = kl_row_width(r);
  memcpy((char *)r->data + (size_t)(b * w) * es, bo->data, (size_t)(rows * w) * es);
  return KL_OK;
}

kl_status kl_plan_predict(kl_plan *p, kl_tensor *const *x, int nx, int64_t batch_size,
                          kl_tensor **out) {
  return kl_plan_predict_outputs(p, x, nx, batch_size, 1, out);
}

kl_status kl_plan_predict_outputs(kl_plan *p, kl_tensor *const *x, int nx, int64_t batch_size,
                                  int nout, kl_tensor **outs) {
  KL_CHECK(outs != NULL && nout >= 1, KL_EINVAL, "predict: no outputs asked for");
  for (int k = 0; k < nout; k++) outs[k] = NULL;
  KL_CHECK(p != NULL, KL_EINVAL, "predict: plan is NULL");
  KL_CHECK(p->noutputs >= nout, KL_EINVAL, "predict: %d outputs asked of a plan with %d", nout,
           p->noutputs);
  KL_CHECK(batch_size >= 1, KL_EINVAL,
           "predict: batch_size must be >= 1. Received: batch_size=%lld", (long long)batch_size);
  int64_t n = 0;
  KL_TRY(kl_check_data(p, "predict", x, nx, NULL, 0, NULL, &n));
  KL_CHECK(nx <= KL_MAX_OP_INPUTS, KL_EINVAL, "predict: %d inputs (at most %d)", nx,
           KL_MAX_OP_INPUTS);
  kl_tensor **feeds = kl_calloc((size_t)nx + 1, sizeof *feeds);
  if (!feeds) return KL_ENOMEM;
  kl_tensor *dense = NULL;
  kl_status st = KL_OK;
  for (int64_t b = 0; b < n; b += batch_size) {
    int64_t e = n - b < batch_size ? n : b + batch_size;
    for (int i = 0; i < nx && st == KL_OK; i++) st = kl_tensor_slice_rows(x[i], b, e, &feeds[i]);
    if (st == KL_OK) st = kl_plan_run(p, feeds, 0, 0);
    for (int k = 0; k < nout && st == KL_OK; k++) {
      const kl_tensor *o = kl_plan_output(p, k);
      kl_tensor *host = NULL; /* a device plan's output: to the host, then made dense there */
      if (o->device != KL_CPU) {
        st = kl_tensor_to(o, KL_CPU, &host);
        o = host;
      }
      if (st == KL_OK) st = kl_tensor_tostype(o, KL_STYPE_DEFAULT, &dense);
      if (st == KL_OK) st = kl_predict_store(dense, n, b, e - b, &outs[k]);
      kl_tensor_release(host);
      kl_tensor_release(dense);
      dense = NULL;
    }
    for (int i = 0; i < nx; i++) {
      kl_tensor_release(feeds[i]);
      feeds[i] = NULL;
    }
    if (st != KL_OK) break;
  }
  kl_free(feeds);
  for (int k = 0; k < nout && st == KL_OK; k++) {
    if (outs[k]) continue; /* no rows: the output's shape with 0 rows */
    kl_meta m = p->g->nodes[p->outputs[k]].meta;
    for (int d = 0; d < m.ndim; d++)
      if (m.shape[d] < 0) m.shape[d] = 0;
    st = kl_tensor_new_dense(m.dtype, m.ndim, m.shape, &outs[k]);
  }
  if (st != KL_OK) {
    for (int k = 0; k < nout; k++) {
      kl_tensor_release(outs[k]);
      outs[k] = NULL;
    }
    return st;
  }
  return KL_OK;
}
