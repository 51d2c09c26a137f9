/* layers/losses.c: the Keras losses (mse, mae, binary/categorical/sparse categorical
 * crossentropy, hinge, squared hinge, poisson, huber) as ops giving a 0-d mean loss, with
 * their gradients w.r.t. y_pred. An optional third input holds per-row sample weights
 * (Keras 2.2's weighted objective, see loss_value_weighted); an empty one means none. */
#include <math.h>
#include <string.h>
#include "layers_util.h"

typedef enum { L_MSE, L_MAE, L_BCE, L_CCE, L_SCCE, L_HINGE, L_SQHINGE, L_POISSON, L_HUBER } loss_kind;

static const char *const loss_names[] = {"mean_squared_error", "mean_absolute_error",
                                         "binary_crossentropy", "categorical_crossentropy",
                                         "sparse_categorical_crossentropy", "hinge",
                                         "squared_hinge", "poisson", "huber"};

static inline double clampd(double v, double lo, double hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* Keras' K.epsilon() inside poisson's log, and huber's delta (Keras' default). */
#define KL_POISSON_EPS 1e-7
#define KL_HUBER_DELTA 1.0

/* The hinge losses take labels in {-1, 1}; when every label of the batch is 0 or 1 they
 * become -1 / 1, as Keras' _maybe_convert_labels (so {-1, 1} data passes unchanged). */
static int hinge_converts(const kl_tensor *yt) {
  int64_t n = kl_tensor_numel(yt);
  for (int64_t e = 0; e < n; e++) {
    double t = kl_lu_read(yt->data, yt->dtype, e);
    if (t != 0 && t != 1) return 0;
  }
  return 1;
}

/* The loss of one element (t: label, p: prediction, conv: hinge label conversion) and its
 * derivative in p (*d). Clipped or flat pieces pass no gradient; hinge's kink at 1 - t p = 0
 * passes -t, as TensorFlow's maximum gives ties to its first operand. */
static double elem_loss(loss_kind k, double t, double p, int conv, double lo, double hi,
                        double *d) {
  double e = p - t;
  switch (k) {
    case L_MSE:
      *d = 2 * e;
      return e * e;
    case L_MAE:
      *d = e > 0 ? 1 : (e < 0 ? -1 : 0);
      return fabs(e);
    case L_BCE: {
      double c = clampd(p, lo, hi);
      *d = (p >= lo && p <= hi) ? -(t / c) + (1 - t) / (1 - c) : 0;
      return -(t * log(c) + (1 - t) * log(1 - c));
    }
    case L_HINGE:
    case L_SQHINGE: {
      if (conv) t = 2 * t - 1;
      double m = 1 - t * p;
      if (m < 0) {
        *d = 0;
        return 0;
      }
      *d = k == L_HINGE ? -t : -2 * m * t;
      return k == L_HINGE ? m : m * m;
    }
    case L_POISSON:
      *d = 1 - t / (p + KL_POISSON_EPS);
      return p - t * log(p + KL_POISSON_EPS);
    default: /* L_HUBER */
      if (fabs(e) <= KL_HUBER_DELTA) {
        *d = e;
        return 0.5 * e * e;
      }
      *d = e > 0 ? KL_HUBER_DELTA : -KL_HUBER_DELTA;
      return KL_HUBER_DELTA * fabs(e) - 0.5 * KL_HUBER_DELTA * KL_HUBER_DELTA;
  }
}

/* Whether shape a equals shape b with one trailing axis of length 1 added. */
static int same_plus_one(const kl_meta *a, const kl_meta *b) {
  return a->ndim == b->ndim + 1 && a->shape[a->ndim - 1] == 1 &&
         memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)b->ndim) == 0;
}

/* Sample weights (in[2]): a float vector of y_pred's rows, or empty (no weights). */
static kl_status weight_check(const char *fn, const kl_meta *w, const kl_meta *yp) {
  char sw[128], sp[128];
  KL_CHECK(kl_is_float(w->dtype), KL_EDTYPE, "%s: sample_weight must be float32 or float64, got %s",
           fn, kl_dtype_name(w->dtype));
  KL_CHECK(w->ndim == 1 && (w->shape[0] <= 0 || yp->shape[0] < 0 || w->shape[0] == yp->shape[0]),
           KL_ESHAPE, "%s: sample_weight shape (%s) does not match y_pred shape (%s): one weight a row",
           fn, kl_lu_shape_str(sw, sizeof sw, w->ndim, w->shape),
           kl_lu_shape_str(sp, sizeof sp, yp->ndim, yp->shape));
  return KL_OK;
}

/* Checks y_true (in[0]) against y_pred (in[1]) as Keras does: equal shapes, or shapes
 * differing by a trailing axis of 1 ((n) vs (n, 1)); for the sparse categorical loss,
 * y_true is y_pred's shape without its class axis (or with that axis of length 1). */
static kl_status loss_check(loss_kind k, const kl_meta *in, int nin) {
  const char *fn = loss_names[k];
  char st[128], sp[128];
  KL_CHECK(nin == 2 || nin == 3, KL_EINVAL,
           "%s: expected 2 or 3 inputs (y_true, y_pred[, sample_weight]), got %d", fn, nin);
  const kl_meta *yt = &in[0], *yp = &in[1];
  KL_CHECK(kl_is_float(yp->dtype), KL_EDTYPE, "%s: y_pred must be float32 or float64, got %s",
           fn, kl_dtype_name(yp->dtype));
  KL_CHECK(yt->dtype == KL_FLOAT32 || yt->dtype == KL_FLOAT64 || yt->dtype == KL_INT64,
           KL_EDTYPE, "%s: bad y_true dtype", fn);
  KL_CHECK(yp->ndim >= 1, KL_ESHAPE, "%s: y_pred must have a batch axis, got a scalar", fn);
  int ok;
  if (k == L_SCCE) {
    kl_meta cut = *yp;
    cut.ndim--;
    KL_CHECK(yp->ndim >= 2, KL_ESHAPE, "%s: y_pred must have a class axis, got shape (%s)", fn,
             kl_lu_shape_str(sp, sizeof sp, yp->ndim, yp->shape));
    ok = (yt->ndim == cut.ndim &&
          memcmp(yt->shape, cut.shape, sizeof(int64_t) * (size_t)cut.ndim) == 0) ||
         same_plus_one(yt, &cut);
  } else {
    ok = (yt->ndim == yp->ndim &&
          memcmp(yt->shape, yp->shape, sizeof(int64_t) * (size_t)yp->ndim) == 0) ||
         same_plus_one(yt, yp) || same_plus_one(yp, yt);
  }
  KL_CHECK(ok, KL_ESHAPE, "%s: y_true shape (%s) does not match y_pred shape (%s)", fn,
           kl_lu_shape_str(st, sizeof st, yt->ndim, yt->shape),
           kl_lu_shape_str(sp, sizeof sp, yp->ndim, yp->shape));
  KL_CHECK(kl_shape_numel(yp->ndim, yp->shape) > 0, KL_ESHAPE, "%s: empty batch, y_pred shape (%s)",
           fn, kl_lu_shape_str(sp, sizeof sp, yp->ndim, yp->shape));
  if (nin == 3) KL_TRY(weight_check(fn, &in[2], yp));
  return KL_OK;
}

static kl_status loss_infer(loss_kind k, const kl_meta *in, int nin, kl_meta *out) {
  KL_TRY(loss_check(k, in, nin));
  memset(out, 0, sizeof *out);
  out->dtype = in[1].dtype;
  out->stype = KL_STYPE_DEFAULT;
  out->ndim = 0;
  return KL_OK;
}

/* Keras' clip bounds [eps, 1 - eps] with eps = 1e-7, rounded to the y_pred dtype. The
 * crossentropies clip and take the log of the clipped value, as Keras 2.2 (the Keras-MXNet
 * era); tf.keras 2.x also adds eps inside the log, which moves results by about 1e-7. */
static void clip_bounds(kl_dtype dt, double *lo, double *hi) {
  if (dt == KL_FLOAT32) {
    *lo = (double)(float)1e-7;
    *hi = (double)(1.0f - (float)1e-7);
  } else {
    *lo = 1e-7;
    *hi = 1.0 - 1e-7;
  }
}


/* Labels the loss cannot take: sparse labels must be integers in 1..C, binary ones in
 * [0, 1]. Rows are reported 1-based, counted from row0 (a batch's first row in its data). */
static kl_status labels_check(loss_kind k, const kl_tensor *yt, int64_t C, int64_t row0) {
  const char *fn = loss_names[k];
  int64_t n = kl_tensor_numel(yt), w = yt->ndim > 0 && yt->shape[0] > 0 ? n / yt->shape[0] : 1;
  for (int64_t e = 0; e < n && k == L_SCCE; e++) {
    double v = kl_lu_read(yt->data, yt->dtype, e);
    long long r = (long long)(row0 + e / w + 1);
    KL_CHECK(v == floor(v), KL_EINDEX, "%s: label %.15g is not an integer at row %lld", fn, v, r);
    KL_CHECK(v >= 1 && v <= (double)C, KL_EINDEX, "%s: label %.15g out of range [1, %lld] at row %lld",
             fn, v, (long long)C, r);
  }
  for (int64_t e = 0; e < n && k == L_BCE; e++) {
    double v = kl_lu_read(yt->data, yt->dtype, e);
    KL_CHECK(v >= 0 && v <= 1, KL_EINDEX,
             "%s: label %.15g out of range [0, 1] at row %lld (map -1/+1 labels to 0/1: "
             "label_map = {[-1] = 0, [1] = 1})", fn, v, (long long)(row0 + e / w + 1));
  }
  return KL_OK;
}

/* Sample weights must be finite and >= 0 (rows as labels_check). */
static kl_status weights_check(loss_kind k, const kl_tensor *w, int64_t row0) {
  int64_t n = kl_tensor_numel(w);
  for (int64_t r = 0; r < n; r++) {
    double v = kl_lu_read(w->data, w->dtype, r);
    KL_CHECK(v >= 0 && v < INFINITY, KL_EINVAL,
             "%s: sample_weight %.15g at row %lld must be finite and >= 0", loss_names[k], v,
             (long long)(row0 + r + 1));
  }
  return KL_OK;
}

/* Validates dense inputs for the kernels and returns y_pred's class width (last axis). */
static kl_status loss_inputs(loss_kind k, kl_tensor *const *in, int nin, int64_t *C) {
  kl_meta m[3];
  KL_CHECK((nin == 2 || nin == 3) && in[0] && in[1] && (nin == 2 || in[2]), KL_EINVAL,
           "%s: expected 2 or 3 inputs (y_true, y_pred[, sample_weight])", loss_names[k]);
  for (int i = 0; i < nin; i++) kl_tensor_meta(in[i], &m[i]);
  KL_TRY(loss_check(k, m, nin));
  KL_CHECK(in[0]->stype == KL_STYPE_DEFAULT && in[1]->stype == KL_STYPE_DEFAULT &&
               (nin == 2 || in[2]->stype == KL_STYPE_DEFAULT),
           KL_ESTYPE, "%s: dense kernel given %s y_true and %s y_pred", loss_names[k],
           kl_stype_name(in[0]->stype), kl_stype_name(in[1]->stype));
  *C = in[1]->shape[in[1]->ndim - 1];
  if (k == L_SCCE || k == L_BCE) KL_TRY(labels_check(k, in[0], *C, 0));
  if (nin == 3) KL_TRY(weights_check(k, in[2], 0));
  return KL_OK;
}

/* The mean loss, summed in index order in double. */
static double loss_value(loss_kind k, const kl_tensor *yt, const kl_tensor *yp, int64_t C) {
  int64_t n = kl_tensor_numel(yp), rows = n / C;
  const void *td = yt->data, *pd = yp->data;
  kl_dtype tt = yt->dtype, pt = yp->dtype;
  double lo, hi, s = 0;
  clip_bounds(pt, &lo, &hi);
  switch (k) {
    case L_CCE:
      for (int64_t r = 0; r < rows; r++) {
        double tot = 0;
        for (int64_t j = 0; j < C; j++) tot += kl_lu_read(pd, pt, r * C + j);
        for (int64_t j = 0; j < C; j++) {
          double t = kl_lu_read(td, tt, r * C + j);
          if (t != 0) s -= t * log(clampd(kl_lu_read(pd, pt, r * C + j) / tot, lo, hi));
        }
      }
      return s / (double)rows;
    case L_SCCE:
      for (int64_t r = 0; r < rows; r++) {
        int64_t y = (int64_t)kl_lu_read(td, tt, r) - 1;
        double tot = 0;
        for (int64_t j = 0; j < C; j++) tot += clampd(kl_lu_read(pd, pt, r * C + j), lo, hi);
        s += log(tot) - log(clampd(kl_lu_read(pd, pt, r * C + y), lo, hi));
      }
      return s / (double)rows;
    default: { /* the elementwise losses: the mean over every element */
      int conv = (k == L_HINGE || k == L_SQHINGE) && hinge_converts(yt);
      double d;
      for (int64_t e = 0; e < n; e++)
        s += elem_loss(k, kl_lu_read(td, tt, e), kl_lu_read(pd, pt, e), conv, lo, hi, &d);
      return s / (double)n;
    }
  }
}

/* Writes d(mean loss)/d(y_pred) * scale into g (dense, y_pred's shape and dtype). Clipped
 * entries pass no gradient, as tf.clip_by_value (bounds inclusive). */
static void loss_grad(loss_kind k, const kl_tensor *yt, const kl_tensor *yp, int64_t C,
                      double scale, kl_tensor *g) {
  int64_t n = kl_tensor_numel(yp), rows = n / C;
  const void *td = yt->data, *pd = yp->data;
  kl_dtype tt = yt->dtype, pt = yp->dtype;
  double lo, hi;
  clip_bounds(pt, &lo, &hi);
  switch (k) {
    case L_CCE: {
      /* q = p / sum(p), c = clip(q), L = -sum t log c:
       * dL/dp_k = (u_k - sum_j u_j q_j) / sum(p) with u_j = -t_j / c_j where unclipped. */
      double f = scale / (double)rows;
      for (int64_t r = 0; r < rows; r++) {
        double tot = 0, uq = 0;
        for (int64_t j = 0; j < C; j++) tot += kl_lu_read(pd, pt, r * C + j);
        for (int64_t j = 0; j < C; j++) {
          double t = kl_lu_read(td, tt, r * C + j), q = kl_lu_read(pd, pt, r * C + j) / tot;
          double u = (t != 0 && q >= lo && q <= hi) ? -t / q : 0;
          uq += u * q;
        }
        for (int64_t j = 0; j < C; j++) {
          double t = kl_lu_read(td, tt, r * C + j), q = kl_lu_read(pd, pt, r * C + j) / tot;
          double u = (t != 0 && q >= lo && q <= hi) ? -t / q : 0;
          kl_lu_write(g->data, pt, r * C + j, (u - uq) / tot * f);
        }
      }
      return;
    }
    case L_SCCE: {
      /* c = clip(p), L = log(sum c) - log c_y: dL/dp_k = (1/sum c - [k == y]/c_k) where
       * p_k is unclipped, else 0 (Keras takes log(clip(p)) as logits of a softmax). */
      double f = scale / (double)rows;
      for (int64_t r = 0; r < rows; r++) {
        int64_t y = (int64_t)kl_lu_read(td, tt, r) - 1;
        double tot = 0;
        for (int64_t j = 0; j < C; j++) tot += clampd(kl_lu_read(pd, pt, r * C + j), lo, hi);
        for (int64_t j = 0; j < C; j++) {
          double p = kl_lu_read(pd, pt, r * C + j), c = clampd(p, lo, hi);
          double v = (p >= lo && p <= hi) ? 1 / tot - (j == y ? 1 / c : 0) : 0;
          kl_lu_write(g->data, pt, r * C + j, v * f);
        }
      }
      return;
    }
    default: { /* the elementwise losses */
      int conv = (k == L_HINGE || k == L_SQHINGE) && hinge_converts(yt);
      double f = scale / (double)n, d;
      for (int64_t e = 0; e < n; e++) {
        elem_loss(k, kl_lu_read(td, tt, e), kl_lu_read(pd, pt, e), conv, lo, hi, &d);
        kl_lu_write(g->data, pt, e, d * f);
      }
      return;
    }
  }
}

/* Row r of t (its first axis) as a borrowed view: no reference, no storage of its own. */
static kl_tensor row_view(const kl_tensor *t, int64_t r) {
  kl_tensor v = *t;
  int64_t width = kl_tensor_numel(t) / t->shape[0];
  v.data = (char *)t->data + (size_t)(r * width) * kl_dtype_size(t->dtype);
  v.shape[0] = 1;
  return v;
}

/* Keras 2.2's weighted_masked_objective: with per-row losses L_r (each the mean over its
 * row, as the unweighted loss is their mean), the loss is sum_r w_r L_r / #{r : w_r != 0}.
 * A batch whose weights are all 0 has loss 0 and no gradient (Keras 2.2 gives 0/0 = NaN).
 * Rows of weight 0 are skipped (so 0 x inf is not NaN). The hinge losses' 0/1 -> -1/1
 * conversion is then decided per row. */
static double loss_value_weighted(loss_kind k, const kl_tensor *yt, const kl_tensor *yp,
                                  const kl_tensor *w, int64_t C) {
  double s = 0;
  int64_t nz = 0;
  for (int64_t r = 0; r < yp->shape[0]; r++) {
    double wr = kl_lu_read(w->data, w->dtype, r);
    if (wr == 0) continue;
    kl_tensor a = row_view(yt, r), b = row_view(yp, r);
    s += wr * loss_value(k, &a, &b, C);
    nz++;
  }
  return nz ? s / (double)nz : 0.0;
}

/* The gradient of loss_value_weighted * scale into g (rows of weight 0 get zeros). */
static void loss_grad_weighted(loss_kind k, const kl_tensor *yt, const kl_tensor *yp,
                               const kl_tensor *w, int64_t C, double scale, kl_tensor *g) {
  int64_t nz = 0;
  for (int64_t r = 0; r < yp->shape[0]; r++) nz += kl_lu_read(w->data, w->dtype, r) != 0;
  for (int64_t r = 0; r < yp->shape[0]; r++) {
    double wr = kl_lu_read(w->data, w->dtype, r);
    kl_tensor a = row_view(yt, r), b = row_view(yp, r), gr = row_view(g, r);
    if (wr == 0)
      memset(gr.data, 0, (size_t)kl_tensor_numel(&gr) * kl_dtype_size(gr.dtype));
    else
      loss_grad(k, &a, &b, C, scale * wr / (double)nz, &gr);
  }
}

/* The sample weights of a loss's inputs, or NULL (none given, or empty). */
static const kl_tensor *loss_weights(kl_tensor *const *in, int nin) {
  return nin == 3 && kl_tensor_numel(in[2]) > 0 ? in[2] : NULL;
}

static kl_status loss_forward(loss_kind k, kl_tensor *const *in, int nin, kl_tensor **out) {
  int64_t C = 1;
  kl_tensor *o = NULL;
  KL_TRY(loss_inputs(k, in, nin, &C));
  KL_TRY(kl_tensor_new_dense(in[1]->dtype, 0, NULL, &o));
  const kl_tensor *w = loss_weights(in, nin);
  kl_lu_write(o->data, o->dtype, 0,
              w ? loss_value_weighted(k, in[0], in[1], w, C) : loss_value(k, in[0], in[1], C));
  *out = o;
  return KL_OK;
}

static kl_status loss_backward(loss_kind k, kl_tensor *const *in, int nin, const kl_tensor *gout,
                               int i, kl_tensor **gin) {
  int64_t C = 1;
  kl_tensor *g = NULL;
  const char *fn = loss_names[k];
  KL_CHECK(i != 0, KL_EUNSUPPORTED, "%s: y_true (input 0) has no gradient", fn);
  KL_CHECK(i != 2, KL_EUNSUPPORTED, "%s: sample_weight (input 2) has no gradient", fn);
  KL_CHECK(i == 1, KL_EINVAL, "%s: no input %d (0 = y_true, 1 = y_pred)", fn, i);
  KL_TRY(loss_inputs(k, in, nin, &C));
  KL_CHECK(gout && gout->stype == KL_STYPE_DEFAULT && kl_tensor_numel(gout) == 1, KL_ESHAPE,
           "%s: gout must be a dense 0-d tensor", fn);
  KL_TRY(kl_tensor_new_dense(in[1]->dtype, in[1]->ndim, in[1]->shape, &g));
  const kl_tensor *w = loss_weights(in, nin);
  if (w)
    loss_grad_weighted(k, in[0], in[1], w, C, kl_tensor_data_at(gout, 0), g);
  else
    loss_grad(k, in[0], in[1], C, kl_tensor_data_at(gout, 0), g);
  *gin = g;
  return KL_OK;
}

/* One op def per loss: thin wrappers binding the kind. */
#define LOSS_OP(sym, kind, nm)                                                               \
  static kl_status sym##_infer(const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) { \
    return loss_infer(kind, in, nin, out);                                                 \
  }                                                                                        \
  static kl_status sym##_fwd(kl_tensor *const *in, int nin, const kl_attrs *a,             \
                             kl_tensor **out) {                                            \
    return loss_forward(kind, in, nin, out);                                               \
  }                                                                                        \
  static kl_status sym##_bwd(kl_tensor *const *in, int nin, const kl_attrs *a,             \
                             const kl_tensor *out, const kl_tensor *gout, int i,           \
                             kl_stype want, kl_tensor **gin) {                             \
    return loss_backward(kind, in, nin, gout, i, gin);                                     \
  }                                                                                        \
  const kl_op_def kl_opdef_##sym = {nm, 2, 3, sym##_infer, sym##_fwd, NULL, sym##_bwd};

LOSS_OP(loss_mse, L_MSE, "mean_squared_error")
LOSS_OP(loss_mae, L_MAE, "mean_absolute_error")
LOSS_OP(loss_bce, L_BCE, "binary_crossentropy")
LOSS_OP(loss_cce, L_CCE, "categorical_crossentropy")
LOSS_OP(loss_scce, L_SCCE, "sparse_categorical_crossentropy")
LOSS_OP(loss_hinge, L_HINGE, "hinge")
LOSS_OP(loss_squared_hinge, L_SQHINGE, "squared_hinge")
LOSS_OP(loss_poisson, L_POISSON, "poisson")
LOSS_OP(loss_huber, L_HUBER, "huber")

/* Data checks of a whole dataset (kl/layers.h): the labels and weights a loss op refuses. */
kl_status kl_loss_check_data(kl_op op, const kl_tensor *y, const kl_tensor *w, int64_t C,
                             int64_t row0) {
  static const kl_op ops[] = {KL_OP_LOSS_MSE, KL_OP_LOSS_MAE, KL_OP_LOSS_BCE, KL_OP_LOSS_CCE,
                              KL_OP_LOSS_SCCE, KL_OP_LOSS_HINGE, KL_OP_LOSS_SQUARED_HINGE,
                              KL_OP_LOSS_POISSON, KL_OP_LOSS_HUBER};
  for (int k = 0; k < (int)(sizeof ops / sizeof ops[0]); k++) {
    if (ops[k] != op) continue;
    if (y && y->stype == KL_STYPE_DEFAULT && (k == L_SCCE || k == L_BCE))
      KL_TRY(labels_check((loss_kind)k, y, C, row0));
    if (w && w->stype == KL_STYPE_DEFAULT) KL_TRY(weights_check((loss_kind)k, w, row0));
  }
  return KL_OK;
}
