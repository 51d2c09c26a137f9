/* registry.c: the one dispatch point: kl_op -> kl_op_def, sparse kernels, dense fallback. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device_internal.h"
#include "kl/registry.h"
#include "ops_internal.h"

static const kl_op_def *const kl_op_table[KL_OP_COUNT] = {
    [KL_OP_DOT] = &kl_opdef_dot,
    [KL_OP_SUM] = &kl_opdef_sum,
    [KL_OP_MEAN] = &kl_opdef_mean,
    [KL_OP_CONCAT] = &kl_opdef_concat,
    [KL_OP_ADD] = &kl_opdef_add,
    [KL_OP_SUB] = &kl_opdef_sub,
    [KL_OP_MUL] = &kl_opdef_mul,
    [KL_OP_DIV] = &kl_opdef_div,
    [KL_OP_ADD_SCALAR] = &kl_opdef_add_scalar,
    [KL_OP_MUL_SCALAR] = &kl_opdef_mul_scalar,
    [KL_OP_DIV_SCALAR] = &kl_opdef_div_scalar,
    [KL_OP_RSUB_SCALAR] = &kl_opdef_rsub_scalar,
    [KL_OP_RDIV_SCALAR] = &kl_opdef_rdiv_scalar,
    [KL_OP_NEG] = &kl_opdef_neg,
    [KL_OP_SQUARE] = &kl_opdef_square,
    [KL_OP_SQRT] = &kl_opdef_sqrt,
    [KL_OP_ABS] = &kl_opdef_abs,
    [KL_OP_RELU] = &kl_opdef_relu,
    [KL_OP_EXP] = &kl_opdef_exp,
    [KL_OP_LOG] = &kl_opdef_log,
    [KL_OP_SIGMOID] = &kl_opdef_sigmoid,
    [KL_OP_TANH] = &kl_opdef_tanh,
    [KL_OP_SOFTMAX] = &kl_opdef_softmax,
    [KL_OP_TRANSPOSE] = &kl_opdef_transpose,
    [KL_OP_RETAIN] = &kl_opdef_retain,
    [KL_OP_MINIMUM] = &kl_opdef_minimum,
    [KL_OP_MAXIMUM] = &kl_opdef_maximum,
    [KL_OP_MINIMUM_SCALAR] = &kl_opdef_minimum_scalar,
    [KL_OP_MAXIMUM_SCALAR] = &kl_opdef_maximum_scalar,
    [KL_OP_POW_SCALAR] = &kl_opdef_pow_scalar,
    [KL_OP_ARGMAX] = &kl_opdef_argmax,
    [KL_OP_ONE_HOT] = &kl_opdef_one_hot,
    [KL_OP_BIAS_ADD] = &kl_opdef_bias_add,
    [KL_OP_EMBEDDING] = &kl_opdef_embedding,
    [KL_OP_MASKED_MEAN] = &kl_opdef_masked_mean,
    [KL_OP_GLOBAL_MAX_POOL] = &kl_opdef_global_max_pool,
    [KL_OP_REG_TERMS] = &kl_opdef_reg_terms,
    [KL_OP_LOSS_MSE] = &kl_opdef_loss_mse,
    [KL_OP_LOSS_MAE] = &kl_opdef_loss_mae,
    [KL_OP_LOSS_BCE] = &kl_opdef_loss_bce,
    [KL_OP_LOSS_CCE] = &kl_opdef_loss_cce,
    [KL_OP_LOSS_SCCE] = &kl_opdef_loss_scce,
    [KL_OP_LOSS_HINGE] = &kl_opdef_loss_hinge,
    [KL_OP_LOSS_SQUARED_HINGE] = &kl_opdef_loss_squared_hinge,
    [KL_OP_LOSS_POISSON] = &kl_opdef_loss_poisson,
    [KL_OP_LOSS_HUBER] = &kl_opdef_loss_huber,
};

static const kl_op_def *op_def(kl_op op) {
  if ((int)op < 0 || (int)op >= KL_OP_COUNT) return NULL;
  return kl_op_table[op];
}

const char *kl_op_name(kl_op op) {
  const kl_op_def *d = op_def(op);
  return d && d->name ? d->name : "unknown_op";
}

/* ------------------------------------------------------------- warnings */

static pthread_mutex_t kl_warn_lock = PTHREAD_MUTEX_INITIALIZER;
static kl_warn_fn kl_warn_handler = NULL;
static void *kl_warn_ud = NULL;

void kl_set_warn_handler(kl_warn_fn fn, void *ud) {
  pthread_mutex_lock(&kl_warn_lock);
  kl_warn_handler = fn;
  kl_warn_ud = ud;
  pthread_mutex_unlock(&kl_warn_lock);
}

/* Called with kl_warn_lock held, so handlers never run concurrently. */
static void warn_locked(const char *msg) {
  if (kl_warn_handler) {
    kl_warn_handler(msg, kl_warn_ud);
  } else {
    fprintf(stderr, "keras-lua: warning: %s\n", msg);
    fflush(stderr);
  }
}

void kl_warnf(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&kl_warn_lock);
  warn_locked(msg);
  pthread_mutex_unlock(&kl_warn_lock);
}

/* The set of fallback keys ("add(csr, row_sparse)") that have warned. A fixed table: no
 * allocation on this path; past its capacity every new combination still warns once
 * more per call, which errs on the side of telling. */
#define KL_WARNED_MAX 512
#define KL_WARNED_LEN 160
static char kl_warned[KL_WARNED_MAX][KL_WARNED_LEN];
static int kl_nwarned = 0;
static atomic_long kl_fallbacks = 0;

void kl_fallback_reset_warned(void) {
  pthread_mutex_lock(&kl_warn_lock);
  kl_nwarned = 0;
  pthread_mutex_unlock(&kl_warn_lock);
}

long kl_fallback_count(void) { return atomic_load(&kl_fallbacks); }

static int verbose_fallbacks(void) {
  const char *v = getenv("KERAS_LUA_STYPE_VERBOSE");
  return v && v[0] && strcmp(v, "0") != 0;
}

/* Writes "op(stype, stype, ...)" into buf (truncated with "..." if too long). */
static void fallback_key(const kl_op_def *d, kl_tensor *const *in, int nin, char *buf,
                         size_t len) {
  size_t n = (size_t)snprintf(buf, len, "%s(", d->name);
  for (int i = 0; i < nin && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", kl_stype_name(in[i]->stype));
  if (n < len) snprintf(buf + n, len - n, ")");
  if (n + 1 >= len && len > 4) memcpy(buf + len - 4, "...", 4);
}

static void note_fallback(const kl_op_def *d, kl_tensor *const *in, int nin) {
  char key[KL_WARNED_LEN];
  atomic_fetch_add(&kl_fallbacks, 1);
  fallback_key(d, in, nin, key, sizeof key);
  int verbose = verbose_fallbacks();
  pthread_mutex_lock(&kl_warn_lock);
  int seen = 0;
  for (int i = 0; i < kl_nwarned && !seen; i++) seen = strcmp(kl_warned[i], key) == 0;
  if (!seen && kl_nwarned < KL_WARNED_MAX) memcpy(kl_warned[kl_nwarned++], key, sizeof key);
  if (!seen || verbose) {
    char msg[KL_WARNED_LEN + 96];
    snprintf(msg, sizeof msg, "%s has no sparse kernel; computed densely (storage fallback)",
             key);
    warn_locked(msg);
  }
  pthread_mutex_unlock(&kl_warn_lock);
}

/* ------------------------------------------------------------- dispatch */

static kl_status check_call(kl_op op, const kl_op_def **def, int nin, int has_in) {
  const kl_op_def *d = op_def(op);
  if (!d) return kl_seterr(KL_EINVAL, "op: unknown op id %d", (int)op);
  *def = d;
  if (!d->infer || !d->dense)
    return kl_seterr(KL_EUNSUPPORTED, "%s: not implemented", d->name);
  if (nin < d->min_in || nin > d->max_in) {
    if (d->min_in == d->max_in)
      return kl_seterr(KL_EINVAL, "%s: expected %d input%s, got %d", d->name, d->min_in,
                       d->min_in == 1 ? "" : "s", nin);
    return kl_seterr(KL_EINVAL, "%s: expected %d to %d inputs, got %d", d->name, d->min_in,
                     d->max_in, nin);
  }
  if (nin > 0 && !has_in) return kl_seterr(KL_EINVAL, "%s: inputs is NULL", d->name);
  return KL_OK;
}

kl_status kl_op_infer(kl_op op, const kl_meta *in, int nin, const kl_attrs *a, kl_meta *out) {
  const kl_op_def *d = NULL;
  static const kl_attrs none;
  KL_TRY(check_call(op, &d, nin, in != NULL));
  KL_CHECK(out != NULL, KL_EINVAL, "%s: out is NULL", d->name);
  return d->infer(in, nin, a ? a : &none, out);
}

static int any_sparse(kl_tensor *const *in, int nin) {
  for (int i = 0; i < nin; i++)
    if (in[i]->stype != KL_STYPE_DEFAULT) return 1;
  return 0;
}

static const kl_kernel_entry *find_kernel(const kl_op_def *d, kl_tensor *const *in, int nin,
                                          const kl_attrs *a) {
  if (!d->kernels) return NULL;
  for (const kl_kernel_entry *k = d->kernels; k->fn; k++)
    if (!k->supports || k->supports(in, nin, a)) return k;
  return NULL;
}

const char *kl_op_dispatch_name(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a) {
  static const kl_attrs none;
  const kl_op_def *d = op_def(op);
  if (!d) return NULL;
  const kl_kernel_entry *k = find_kernel(d, in, nin, a ? a : &none);
  if (k) return k->name ? k->name : "sparse";
  return any_sparse(in, nin) ? "fallback" : "dense";
}

/* Makes *t have stype s (a no-op when it has), releasing the old tensor. */
static kl_status cast_result(kl_tensor **t, kl_stype s) {
  if ((*t)->stype == s) return KL_OK;
  kl_tensor *c = NULL;
  kl_status st = kl_tensor_tostype(*t, s, &c);
  kl_tensor_release(*t);
  *t = c;
  return st;
}

/* Densifies the sparse inputs, runs the dense kernel. */
static kl_status run_fallback(const kl_op_def *d, kl_tensor *const *in, int nin,
                              const kl_attrs *a, kl_tensor **out) {
  kl_status st = KL_OK;
  kl_tensor **dense = kl_calloc((size_t)(nin > 0 ? nin : 1), sizeof *dense);
  if (!dense) return KL_ENOMEM;
  for (int i = 0; i < nin && st == KL_OK; i++) {
    if (in[i]->stype == KL_STYPE_DEFAULT) dense[i] = kl_tensor_retain(in[i]);
    else st = kl_tensor_tostype(in[i], KL_STYPE_DEFAULT, &dense[i]);
  }
  if (st == KL_OK) st = d->dense(dense, nin, a, out);
  for (int i = 0; i < nin; i++) kl_tensor_release(dense[i]);
  kl_free(dense);
  return st;
}

/* ------------------------------------------------------------- devices */

/* The device backend's kernels of op, or NULL. */
static const kl_device_opdef *device_opdef(kl_op op) {
  const kl_device_backend *be = kl_device_backend_get();
  if (!be || !be->ops || (int)op >= be->nops) return NULL;
  return be->ops[op];
}

/* The device kernel of op taking these inputs, or NULL. */
static const kl_kernel_entry *find_device_kernel(kl_op op, kl_tensor *const *in, int nin,
                                                 const kl_attrs *a) {
  const kl_device_opdef *dd = device_opdef(op);
  if (!dd || !dd->kernels) return NULL;
  for (const kl_kernel_entry *k = dd->kernels; k->fn; k++)
    if (!k->supports || k->supports(in, nin, a)) return k;
  return NULL;
}

/* Host copies of in[0..nin-1] (NULL entries stay NULL), into a new array. */
static kl_status inputs_to_host(kl_tensor *const *in, int nin, kl_tensor ***out) {
  kl_tensor **h = kl_calloc((size_t)(nin > 0 ? nin : 1), sizeof *h);
  *out = h;
  if (!h) return KL_ENOMEM;
  for (int i = 0; i < nin; i++)
    if (in[i]) KL_TRY(kl_tensor_to(in[i], KL_CPU, &h[i]));
  return KL_OK;
}

static void release_all(kl_tensor **t, int n) {
  if (!t) return;
  for (int i = 0; i < n; i++) kl_tensor_release(t[i]);
  kl_free(t);
}

/* op on device dev: its device kernel, else the host (inputs there, result back), counted. */
static kl_status run_device(kl_op op, const kl_op_def *d, kl_device dev, kl_tensor *const *in,
                            int nin, const kl_attrs *a, const kl_meta *om, kl_tensor **res) {
  KL_TRY(kl_device_check(d->name, dev));
  const kl_kernel_entry *k = find_device_kernel(op, in, nin, a);
  if (k) {
    KL_TRY(k->fn(in, nin, a, res));
    KL_CHECK((*res)->device == dev, KL_EDEVICE, "%s: internal: kernel %s left its result on the host",
             d->name, k->name ? k->name : "?");
    return cast_result(res, om->stype);
  }
  kl_tensor **h = NULL, *hr = NULL;
  kl_status st = inputs_to_host(in, nin, &h);
  if (st == KL_OK) st = kl_op_run(op, h, nin, a, &hr);
  if (st == KL_OK) st = kl_tensor_to(hr, dev, res);
  if (st == KL_OK) kl_device_note_fallback(d->name, dev);
  kl_tensor_release(hr);
  release_all(h, nin);
  return st;
}

kl_status kl_op_run(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a,
                    kl_tensor **out) {
  static const kl_attrs none;
  const kl_op_def *d = NULL;
  kl_meta stack_meta[8], *meta = stack_meta, om;
  kl_tensor *res = NULL;
  kl_status st;
  if (!a) a = &none;
  memset(&om, 0, sizeof om);
  KL_TRY(check_call(op, &d, nin, in != NULL));
  KL_CHECK(out != NULL, KL_EINVAL, "%s: out is NULL", d->name);
  *out = NULL;
  for (int i = 0; i < nin; i++)
    KL_CHECK(in[i] != NULL, KL_EINVAL, "%s: input %d is NULL", d->name, i + 1);
  kl_device dev = KL_CPU;
  KL_TRY(kl_device_of(d->name, in, nin, &dev));
  if (nin > 8 && !(meta = kl_malloc_n((size_t)nin, sizeof *meta))) return KL_ENOMEM;
  for (int i = 0; i < nin; i++) kl_tensor_meta(in[i], &meta[i]);
  st = d->infer(meta, nin, a, &om);
  if (st != KL_OK) goto done;
  if (dev != KL_CPU) {
    st = run_device(op, d, dev, in, nin, a, &om, &res);
    if (st == KL_OK) {
      *out = res;
      res = NULL;
    }
    goto done;
  }

  const kl_kernel_entry *k = find_kernel(d, in, nin, a);
  if (k) {
    st = k->fn(in, nin, a, &res);
  } else if (any_sparse(in, nin)) {
    st = run_fallback(d, in, nin, a, &res);
    if (st == KL_OK) note_fallback(d, in, nin);
  } else {
    st = d->dense(in, nin, a, &res);
  }
  /* The inferred stype is the contract (kl_op_infer says what run produces). */
  if (st == KL_OK) st = cast_result(&res, om.stype);
  if (st == KL_OK) {
    *out = res;
    res = NULL;
  }
done:
  kl_tensor_release(res);
  if (meta != stack_meta) kl_free(meta);
  return st;
}

kl_status kl_op_backward(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a,
                         const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                         kl_tensor **gin) {
  static const kl_attrs none;
  const kl_op_def *d = op_def(op);
  KL_CHECK(d != NULL, KL_EINVAL, "op: unknown op id %d", (int)op);
  KL_CHECK(d->backward != NULL, KL_EUNSUPPORTED, "%s: no gradient", d->name);
  KL_CHECK(nin >= d->min_in && nin <= d->max_in, KL_EINVAL, "%s: expected %d input%s, got %d",
           d->name, d->min_in, d->min_in == 1 ? "" : "s", nin);
  KL_CHECK(in != NULL && gin != NULL && gout != NULL, KL_EINVAL,
           "%s: backward: NULL argument", d->name);
  KL_CHECK(i >= 0 && i < nin, KL_EINVAL, "%s: backward: input %d out of range for %d inputs",
           d->name, i, nin);
  for (int j = 0; j < nin; j++)
    KL_CHECK(in[j] != NULL, KL_EINVAL, "%s: input %d is NULL", d->name, j + 1);
  *gin = NULL;
  kl_tensor *g = NULL;
  kl_device dev = KL_CPU;
  KL_TRY(kl_device_of(d->name, in, nin, &dev));
  KL_CHECK(gout->device == dev && (!out || out->device == dev), KL_EINVAL,
           "%s: backward: the gradient is on another device than the inputs", d->name);
  if (dev != KL_CPU) {
    KL_TRY(kl_device_check(d->name, dev));
    const kl_device_opdef *dd = device_opdef(op);
    kl_status st = KL_OK;
    if (dd && dd->backward) {
      st = dd->backward(in, nin, a ? a : &none, out, gout, i, want, &g);
      if (st != KL_EUNSUPPORTED) {
        if (st == KL_OK) st = cast_result(&g, want);
        if (st == KL_OK) *gin = g;
        else kl_tensor_release(g);
        return st;
      }
      g = NULL;
    }
    /* the host's backward on host copies, the gradient copied back */
    kl_tensor **h = NULL, *ho = NULL, *hg = NULL, *hgin = NULL;
    st = inputs_to_host(in, nin, &h);
    if (st == KL_OK && out) st = kl_tensor_to(out, KL_CPU, &ho);
    if (st == KL_OK) st = kl_tensor_to(gout, KL_CPU, &hg);
    if (st == KL_OK) st = kl_op_backward(op, h, nin, a, ho, hg, i, want, &hgin);
    if (st == KL_OK) st = kl_tensor_to(hgin, dev, gin);
    if (st == KL_OK) {
      char what[96];
      snprintf(what, sizeof what, "%s backward", d->name);
      kl_device_note_fallback(what, dev);
    }
    kl_tensor_release(ho);
    kl_tensor_release(hg);
    kl_tensor_release(hgin);
    release_all(h, nin);
    return st;
  }
  KL_TRY(d->backward(in, nin, a ? a : &none, out, gout, i, want, &g));
  /* The caller gets the stype it asked for. */
  kl_status st = cast_result(&g, want);
  if (st != KL_OK) return st;
  *gin = g;
  return KL_OK;
}

/* ------------------------------------------------------------- wrappers */

kl_status kl_dot(const kl_tensor *a, const kl_tensor *b, int transpose_a, int transpose_b,
                 kl_tensor **out) {
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.transpose_a = transpose_a;
  at.transpose_b = transpose_b;
  kl_tensor *in[2] = {(kl_tensor *)a, (kl_tensor *)b};
  return kl_op_run(KL_OP_DOT, in, 2, &at, out);
}

kl_status kl_retain(const kl_tensor *rsp, const int64_t *rows, int64_t n, kl_tensor **out) {
  KL_CHECK(n >= 0, KL_EINVAL, "retain: negative index count %lld", (long long)n);
  KL_CHECK(rows != NULL || n == 0, KL_EINVAL, "retain: indices is NULL");
  kl_tensor *idx = NULL;
  KL_TRY(kl_tensor_new_dense(KL_INT64, 1, &n, &idx));
  if (n > 0) memcpy(idx->data, rows, (size_t)n * sizeof *rows);
  kl_tensor *in[2] = {(kl_tensor *)rsp, idx};
  kl_status st = kl_op_run(KL_OP_RETAIN, in, 2, NULL, out);
  kl_tensor_release(idx);
  return st;
}
