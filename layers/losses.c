/* layers/losses.c: the Keras losses (mse, mae, binary/categorical/sparse categorical
 * crossentropy, hinge, squared hinge, poisson, huber) as ops giving a 0-d mean loss, with
 * their gradients w.r.t. y_pred. */
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

/* Checks y_true (in[0]) against y_pred (in[1]) as Keras does: equal shapes, or shapes
 * differing by a trailing axis of 1 ((n) vs (n, 1)); for the sparse categorical loss,
 * y_true is y_pred's shape without its class axis (or with that axis of length 1). */
static kl_status loss_check(loss_kind k, const kl_meta *in, int nin) {
  const char *fn = loss_names[k];
  char st[128], sp[128];
  KL_CHECK(nin == 2, KL_EINVAL, "%s: expected 2 inputs (y_true, y_pred), got %d", fn, nin);
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

/* Sparse labels must be integers in 1..C; rows are reported 1-based. */
static kl_status scce_labels_check(const char *fn, const kl_tensor *yt, int64_t C) {
  int64_t n = kl_tensor_numel(yt);
  for (int64_t r = 0; r < n; r++) {
    double v = kl_lu_read(yt->data, yt->dtype, r);
    KL_CHECK(v == floor(v), KL_EINDEX, "%s: label %.15g is not an integer at row %lld", fn, v,
             (long long)(r + 1));
    KL_CHECK(v >= 1 && v <= (double)C, KL_EINDEX, "%s: label %.15g out of range [1, %lld] at row %lld",
             fn, v, (long long)C, (long long)(r + 1));
  }
  return KL_OK;
}

/* Validates dense inputs for the kernels and returns y_pred's class width (last axis). */
static kl_status loss_inputs(loss_kind k, kl_tensor *const *in, int nin, int64_t *C) {
  kl_meta m[2];
  KL_CHECK(nin == 2 && in[0] && in[1], KL_EINVAL, "%s: expected 2 inputs (y_true, y_pred)",
           loss_names[k]);
  kl_tensor_meta(in[0], &m[0]);
  kl_tensor_meta(in[1], &m[1]);
  KL_TRY(loss_check(k, m, nin));
  KL_CHECK(in[0]->stype == KL_STYPE_DEFAULT && in[1]->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
           "%s: dense kernel given %s y_true and %s y_pred", loss_names[k],
           kl_stype_name(in[0]->stype), kl_stype_name(in[1]->stype));
  *C = in[1]->shape[in[1]->ndim - 1];
  if (k == L_SCCE) KL_TRY(scce_labels_check(loss_names[k], in[0], *C));
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

static kl_status loss_forward(loss_kind k, kl_tensor *const *in, int nin, kl_tensor **out) {
  int64_t C;
  kl_tensor *o = NULL;
  KL_TRY(loss_inputs(k, in, nin, &C));
  KL_TRY(kl_tensor_new_dense(in[1]->dtype, 0, NULL, &o));
  kl_lu_write(o->data, o->dtype, 0, loss_value(k, in[0], in[1], C));
  *out = o;
  return KL_OK;
}

static kl_status loss_backward(loss_kind k, kl_tensor *const *in, int nin, const kl_tensor *gout,
                               int i, kl_tensor **gin) {
  int64_t C;
  kl_tensor *g = NULL;
  const char *fn = loss_names[k];
  KL_CHECK(i != 0, KL_EUNSUPPORTED, "%s: y_true (input 0) has no gradient", fn);
  KL_CHECK(i == 1, KL_EINVAL, "%s: no input %d (0 = y_true, 1 = y_pred)", fn, i);
  KL_TRY(loss_inputs(k, in, nin, &C));
  KL_CHECK(gout && gout->stype == KL_STYPE_DEFAULT && kl_tensor_numel(gout) == 1, KL_ESHAPE,
           "%s: gout must be a dense 0-d tensor", fn);
  KL_TRY(kl_tensor_new_dense(in[1]->dtype, in[1]->ndim, in[1]->shape, &g));
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
  const kl_op_def kl_opdef_##sym = {nm, 2, 2, sym##_infer, sym##_fwd, NULL, sym##_bwd};

LOSS_OP(loss_mse, L_MSE, "mean_squared_error")
LOSS_OP(loss_mae, L_MAE, "mean_absolute_error")
LOSS_OP(loss_bce, L_BCE, "binary_crossentropy")
LOSS_OP(loss_cce, L_CCE, "categorical_crossentropy")
LOSS_OP(loss_scce, L_SCCE, "sparse_categorical_crossentropy")
LOSS_OP(loss_hinge, L_HINGE, "hinge")
LOSS_OP(loss_squared_hinge, L_SQHINGE, "squared_hinge")
LOSS_OP(loss_poisson, L_POISSON, "poisson")
LOSS_OP(loss_huber, L_HUBER, "huber")
