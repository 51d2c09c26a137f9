/* dev_ops_layers.c: the CUDA kernels and backwards of the layer ops in the op registry
 * (bias_add, embedding, masked_mean, global_max_pool, reg_terms and the nine losses): each
 * kl_cuda_opdef_<op> claims the op on the device (gpu/dev_ops.c's table), its supports()
 * saying which inputs it takes; the rest run on the host, counted (kl/device.h).
 *
 * The kernels (k_layers.cu, k_loss.cu, k_embedding.cu) compute the CPU's bits (log aside:
 * kl_cuda_layers.h). A forward runs after the registry's inference has checked the inputs;
 * what it checks itself is data: bad ids, labels and sample weights are flagged on the
 * device, the flag read after the launch (the one wait such an op has), and the CPU's
 * message raised. A backward gets no inference first: when its inputs are not what it
 * takes, or are wrong, it answers KL_EUNSUPPORTED without a message, so that the host's
 * backward runs and gives the CPU's own result or error (counted as a fallback only when
 * it succeeds: a case this file does not take). */
#include <stdatomic.h>
#include <string.h>

#include "dev_ops_util.h"
#include "kl_cuda_layers.h"

/* The host's backward: its checks and message, or its result (a counted fallback). */
#define KL_DEV_HOST KL_EUNSUPPORTED

static size_t dsz(kl_dtype dt) { return dt == KL_FLOAT32 ? 4 : 8; }
static int isf(kl_dtype dt) { return dt == KL_FLOAT32 || dt == KL_FLOAT64; }
static int dense(const kl_tensor *t) { return t && t->stype == KL_STYPE_DEFAULT; }

static int64_t numel(const kl_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

/* The product of shape[1..ndim-1] (1 for ndim <= 1). */
static int64_t row_width(const kl_tensor *t) {
  int64_t n = 1;
  for (int d = 1; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

static int same_shape(const kl_tensor *t, int ndim, const int64_t *shape) {
  return t->ndim == ndim && (ndim == 0 || memcmp(t->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0);
}

static kl_cuda_stream stream(const kl_tensor *t) { return kl_cuda_dev_stream(t->device); }

/* b rounded up to a multiple of 256 (each part of a scratch block aligned for any type). */
static size_t al(size_t b) { return (b + 255) / 256 * 256; }

/* Element i of device buffer p (dtype dt) as double: one synchronising read. */
static kl_status read_value(kl_device d, const void *p, kl_dtype dt, int64_t i, double *v) {
  char b[8];
  kl_status st = kl_cuda_dev_read(d, b, (const char *)p + (size_t)i * dsz(dt), dsz(dt));
  if (st != KL_OK) return st;
  if (dt == KL_FLOAT32) *v = (double)*(const float *)b;
  else if (dt == KL_FLOAT64) *v = *(const double *)b;
  else *v = (double)*(const int64_t *)b;
  return KL_OK;
}

static int sup_all_dense(kl_tensor *const *in, int nin, const kl_attrs *a) {
  (void)a;
  for (int i = 0; i < nin; i++)
    if (!dense(in[i])) return 0;
  return 1;
}

/* ================================================================== bias_add */

static kl_status bias_fwd(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  (void)nin, (void)a;
  const kl_tensor *x = in[0], *b = in[1];
  const kl_device d = x->device;
  const int64_t k = b->shape[0], n = numel(x);
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(d, x->dtype, x->ndim, x->shape, 0, &o);
  if (st != KL_OK) return st;
  st = kl_cuda_bias_add(x->dtype, x->data, b->data, k ? n / k : 0, k, o->data, stream(x));
  return kl_cdo_finish(st, o, out);
}

/* dx = gout (in x's dtype); db = gout summed over the leading axes (dense, or row_sparse
 * storing every row when want asks for it). */
static kl_status bias_bwd(kl_tensor *const *in, int nin, const kl_attrs *a,
                          const kl_tensor *out, const kl_tensor *gout, int i, kl_stype want,
                          kl_tensor **gin) {
  (void)a, (void)out;
  if (nin != 2 || !in[0] || !in[1] || (i != 0 && i != 1)) return KL_DEV_HOST;
  const kl_tensor *x = in[0], *b = in[1];
  if (x->ndim < 1 || b->ndim != 1 || b->shape[0] != x->shape[x->ndim - 1] || !isf(x->dtype) ||
      b->dtype != x->dtype || !dense(gout) || !isf(gout->dtype) ||
      !same_shape(gout, x->ndim, x->shape))
    return KL_DEV_HOST;
  const kl_device d = x->device;
  const int64_t k = b->shape[0], n = numel(gout);
  kl_tensor *o = NULL;
  kl_status st;
  if (i == 0) {
    if (want != KL_STYPE_DEFAULT) return KL_DEV_HOST;
    if ((st = kl_cuda_capi->tensor_new_dense_on(d, x->dtype, x->ndim, x->shape, 0, &o)) != KL_OK)
      return st;
    st = kl_cuda_cast(gout->dtype, gout->data, x->dtype, o->data, n, stream(x));
    return kl_cdo_finish(st, o, gin);
  }
  if (want == KL_STYPE_ROW_SPARSE) {
    if ((st = kl_cuda_capi->tensor_new_rsp_on(d, x->dtype, 1, &k, k, &o)) != KL_OK) return st;
    st = kl_cuda_iota(o->indices, k, stream(x));
  } else if (want == KL_STYPE_DEFAULT) {
    st = kl_cuda_capi->tensor_new_dense_on(d, x->dtype, 1, &k, 0, &o);
  } else {
    return KL_DEV_HOST;
  }
  if (st == KL_OK)
    st = kl_cuda_bias_grad(gout->dtype, gout->data, k ? n / k : 0, k, x->dtype, o->data,
                           stream(x));
  return o ? kl_cdo_finish(st, o, gin) : st;
}

static const kl_kernel_entry bias_kernels[] = {{"cuda.dense", sup_all_dense, bias_fwd},
                                               {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_bias_add = {bias_kernels, bias_bwd};

/* ================================================================== embedding */

/* The CPU's message for the bad id the flag names (bad < npos). */
static kl_status emb_bad_id(const kl_tensor *ids, int64_t bad, int64_t V) {
  char v[8];
  kl_status st = kl_cuda_dev_read(ids->device, v, (const char *)ids->data + (size_t)bad * dsz(ids->dtype),
                                  dsz(ids->dtype));
  if (st != KL_OK) return st;
  return kl_cuda_embedding_id_error(ids->dtype, v, bad, ids->ndim == 2 ? ids->shape[1] : 0, V);
}

static kl_status emb_fwd(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  (void)nin, (void)a;
  const kl_tensor *ids = in[0], *w = in[1];
  const kl_device d = ids->device;
  const int64_t V = w->shape[0], D = w->shape[1], npos = numel(ids);
  const int rsp = w->stype == KL_STYPE_ROW_SPARSE;
  int64_t shape[3] = {ids->shape[0], ids->ndim == 2 ? ids->shape[1] : D, D}, bad = 0;
  int64_t *dbad = NULL;
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(d, w->dtype, ids->ndim + 1, shape, 0, &o);
  if (st == KL_OK) st = kl_cuda_dev_alloc(d, sizeof(int64_t), (void **)&dbad);
  if (st == KL_OK)
    st = kl_cuda_embedding_forward(ids->dtype, ids->data, npos, w->dtype, w->data, V, D,
                                   rsp ? w->indices : NULL, rsp ? w->nnz : 0, o->data, dbad,
                                   stream(ids));
  if (st == KL_OK) st = kl_cuda_dev_read(d, &bad, dbad, sizeof bad);
  if (st == KL_OK && bad != npos) st = emb_bad_id(ids, bad, V);
  kl_cuda_dev_free(d, dbad);
  if (!o) return st;
  return kl_cdo_finish(st, o, out);
}

static int emb_sup(kl_tensor *const *in, int nin, const kl_attrs *a) {
  (void)a;
  return nin == 2 && dense(in[0]) &&
         (in[1]->stype == KL_STYPE_DEFAULT || in[1]->stype == KL_STYPE_ROW_SPARSE);
}

/* The weight's gradient from g (device rows of the weight's dtype; position p's gradient row
 * is g's row p / bag: bag 1 for Embedding's own, L for the fused mean's per-sample rows):
 * row_sparse over the batch's unique ids (want row_sparse) or dense (V, D), each row the sum
 * of its positions' rows in position order from +0 (k_embedding.cu); a bad id is flagged on
 * the device and gets the CPU's message. */
static kl_status emb_grad_rows(const kl_tensor *ids, const kl_tensor *w, int64_t bag,
                               const void *g, kl_stype want, kl_tensor **gin) {
  const kl_device d = ids->device;
  const kl_dtype dt = w->dtype;
  const int64_t V = w->shape[0], D = w->shape[1], npos = numel(ids);
  const int64_t cap = npos < V ? npos : V; /* the unique ids are at most this many */
  const int sparse = want == KL_STYPE_ROW_SPARSE;
  const size_t es = dsz(dt), fb = al(2 * sizeof(int64_t));
  const size_t sb = al(kl_cuda_embedding_backward_scratch(npos));
  const size_t rb = sparse ? 0 : al((size_t)cap * sizeof(int64_t));
  const size_t vb = sparse ? 0 : al((size_t)(cap * D) * es);
  char *scr = NULL;
  int64_t flags[2] = {0, 0}; /* bad, nu */
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_dev_alloc(d, fb + sb + rb + vb, (void **)&scr);
  if (st != KL_OK) return st;
  int64_t *dflags = (int64_t *)scr;
  void *bscr = scr + fb, *rows = scr + fb + sb, *vals = scr + fb + sb + rb;
  st = sparse ? kl_cuda_capi->tensor_new_rsp_on(d, dt, 2, w->shape, cap, &o)
              : kl_cuda_capi->tensor_new_dense_on(d, dt, 2, w->shape, 1, &o);
  if (st == KL_OK)
    st = kl_cuda_embedding_bag_backward(ids->dtype, ids->data, npos, bag, dt, g, V, D, bscr,
                                        sparse ? o->indices : (int64_t *)rows,
                                        sparse ? o->data : vals, dflags + 1, dflags, stream(ids));
  if (st == KL_OK && !sparse)
    st = kl_cuda_rows_scatter(dt, (const int64_t *)rows, vals, dflags + 1, cap, D, o->data,
                              stream(ids));
  if (st == KL_OK) st = kl_cuda_dev_read(d, flags, dflags, sizeof flags);
  if (st == KL_OK && flags[0] != npos) st = emb_bad_id(ids, flags[0], V);
  if (st == KL_OK && sparse) o->nnz = flags[1]; /* the unique ids (room for cap) */
  kl_cuda_dev_free(d, scr);
  if (!o) return st;
  return kl_cdo_finish(st, o, gin);
}

/* The weight's gradient: row_sparse over the batch's unique ids (want row_sparse) or dense
 * (V, D) (want default), from gout's rows (cast to the weight's dtype first when it differs). */
static kl_status emb_bwd(kl_tensor *const *in, int nin, const kl_attrs *a, const kl_tensor *out,
                         const kl_tensor *gout, int i, kl_stype want, kl_tensor **gin) {
  (void)out;
  if (nin != 2 || !in[0] || !in[1] || i != 1) return KL_DEV_HOST; /* ids: the host says no */
  const kl_tensor *ids = in[0], *w = in[1];
  if ((ids->ndim != 1 && ids->ndim != 2) || !dense(ids) || w->ndim != 2 || !isf(w->dtype) ||
      (w->stype != KL_STYPE_DEFAULT && w->stype != KL_STYPE_ROW_SPARSE) ||
      (a && a->ival > 0 && a->ival != w->shape[0]) || !dense(gout) || !isf(gout->dtype))
    return KL_DEV_HOST;
  int64_t oshape[3] = {ids->shape[0], ids->ndim == 2 ? ids->shape[1] : w->shape[1], w->shape[1]};
  if (!same_shape(gout, ids->ndim + 1, oshape)) return KL_DEV_HOST;
  if (want != KL_STYPE_ROW_SPARSE && want != KL_STYPE_DEFAULT) return KL_DEV_HOST;
  if (gout->dtype == w->dtype) return emb_grad_rows(ids, w, 1, gout->data, want, gin);
  const kl_device d = ids->device;
  const int64_t m = numel(gout);
  void *gc = NULL;
  kl_status st = kl_cuda_dev_alloc(d, (size_t)m * dsz(w->dtype), &gc);
  if (st == KL_OK) st = kl_cuda_cast(gout->dtype, gout->data, w->dtype, gc, m, stream(ids));
  if (st == KL_OK) st = emb_grad_rows(ids, w, 1, gc, want, gin);
  kl_cuda_dev_free(d, gc); /* reused only by work queued after this */
  return st;
}

static const kl_kernel_entry emb_kernels[] = {{"cuda.dense|row_sparse", emb_sup, emb_fwd},
                                              {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_embedding = {emb_kernels, emb_bwd};

/* ================================================================== the plan's fused mean */

/* The plan's Embedding -> mean fusion (kl_device_backend.embedding_mean, called by
 * layers/embedding.c's kl_embedding_mean after its checks: ids (n, L) dense, the weight
 * (V, D) dense float, both on the device): k_embedding.cu's kl_cuda_embedding_mean, the
 * (n, L, D) Embedding output never made. Counted (kl_cuda_embedding_mean_calls). */
static atomic_long emb_mean_calls[2];

long kl_cuda_embedding_mean_calls(int backward) {
  return atomic_load(&emb_mean_calls[backward ? 1 : 0]);
}

kl_status kl_cuda_dev_embedding_mean(const kl_tensor *ids, const kl_tensor *w, int masked,
                                     kl_tensor **out) {
  const kl_device d = ids->device;
  const int64_t n = ids->shape[0], L = ids->shape[1], V = w->shape[0], D = w->shape[1];
  const int64_t shape[2] = {n, D};
  int64_t bad = 0, *dbad = NULL;
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(d, w->dtype, 2, shape, 0, &o);
  if (st == KL_OK) st = kl_cuda_dev_alloc(d, sizeof(int64_t), (void **)&dbad);
  if (st == KL_OK)
    st = kl_cuda_embedding_mean(ids->dtype, ids->data, n, L, w->dtype, w->data, V, D, masked,
                                o->data, dbad, stream(ids));
  if (st == KL_OK) st = kl_cuda_dev_read(d, &bad, dbad, sizeof bad);
  if (st == KL_OK && bad != n * L) st = emb_bad_id(ids, bad, V);
  kl_cuda_dev_free(d, dbad);
  if (st == KL_OK) atomic_fetch_add(&emb_mean_calls[0], 1);
  if (!o) return st;
  return kl_cdo_finish(st, o, out);
}

/* Its backward (kl_embedding_mean_backward after its checks; gout (n, D) dense of the
 * weight's dtype): each sample's gradient row scaled once (kl_cuda_embedding_mean_scale),
 * then the weight's rows summed from them as Embedding's backward sums its positions' rows
 * (emb_grad_rows, position p reading sample p / L's row). */
kl_status kl_cuda_dev_embedding_mean_backward(const kl_tensor *ids, const kl_tensor *w,
                                              int masked, const kl_tensor *gout, kl_stype want,
                                              kl_tensor **gin) {
  const kl_device d = ids->device;
  const int64_t n = ids->shape[0], L = ids->shape[1], D = w->shape[1];
  void *gs = NULL;
  kl_status st = kl_cuda_dev_alloc(d, (size_t)(n * D) * dsz(w->dtype), &gs);
  if (st == KL_OK)
    st = kl_cuda_embedding_mean_scale(ids->dtype, ids->data, n, L, w->dtype, gout->data, D,
                                      masked, gs, stream(ids));
  if (st == KL_OK) st = emb_grad_rows(ids, w, L > 0 ? L : 1, gs, want, gin);
  kl_cuda_dev_free(d, gs); /* reused only by work queued after this */
  if (st == KL_OK) atomic_fetch_add(&emb_mean_calls[1], 1);
  return st;
}

/* ================================================================== pooling */

/* pooling.c's checks: x (n, L, D) dense float; the ids (n, L) dense. */
static int pool_ok(kl_tensor *const *in, int nin) {
  const kl_tensor *x = in[0];
  if (!x || x->ndim != 3 || !isf(x->dtype) || !dense(x)) return 0;
  if (nin == 2)
    return in[1] && dense(in[1]) && in[1]->ndim == 2 && in[1]->shape[0] == x->shape[0] &&
           in[1]->shape[1] == x->shape[1];
  return nin == 1;
}

/* The backward's checks (pooling.c bwd_check): the gradient of x only, gout (n, D). */
static int pool_bwd_ok(kl_tensor *const *in, int nin, const kl_tensor *gout, int i,
                       kl_stype want) {
  if (!pool_ok(in, nin) || i != 0 || want != KL_STYPE_DEFAULT) return 0;
  const int64_t shape[2] = {in[0]->shape[0], in[0]->shape[2]};
  return dense(gout) && isf(gout->dtype) && same_shape(gout, 2, shape);
}

static kl_status masked_mean_fwd(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 kl_tensor **out) {
  (void)nin, (void)a;
  const kl_tensor *x = in[0], *ids = in[1];
  const int64_t shape[2] = {x->shape[0], x->shape[2]};
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(x->device, x->dtype, 2, shape, 0, &o);
  if (st != KL_OK) return st;
  st = kl_cuda_masked_mean(x->dtype, x->data, ids->dtype, ids->data, x->shape[0], x->shape[1],
                           x->shape[2], o->data, stream(x));
  return kl_cdo_finish(st, o, out);
}

static kl_status masked_mean_bwd(kl_tensor *const *in, int nin, const kl_attrs *a,
                                 const kl_tensor *out, const kl_tensor *gout, int i,
                                 kl_stype want, kl_tensor **gin) {
  (void)a, (void)out;
  if (nin != 2 || !pool_bwd_ok(in, nin, gout, i, want)) return KL_DEV_HOST;
  const kl_tensor *x = in[0], *ids = in[1];
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(x->device, x->dtype, 3, x->shape, 0, &o);
  if (st != KL_OK) return st;
  st = kl_cuda_masked_mean_backward(x->dtype, ids->dtype, ids->data, gout->dtype, gout->data,
                                    x->shape[0], x->shape[1], x->shape[2], o->data, stream(x));
  return kl_cdo_finish(st, o, gin);
}

static kl_status max_fwd(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  (void)a;
  const kl_tensor *x = in[0], *ids = nin == 2 ? in[1] : NULL;
  const int64_t shape[2] = {x->shape[0], x->shape[2]};
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(x->device, x->dtype, 2, shape, 0, &o);
  if (st != KL_OK) return st;
  st = kl_cuda_global_max_pool(x->dtype, x->data, ids ? ids->dtype : KL_INT64,
                               ids ? ids->data : NULL, x->shape[0], x->shape[1], x->shape[2],
                               o->data, stream(x));
  return kl_cdo_finish(st, o, out);
}

static kl_status max_bwd(kl_tensor *const *in, int nin, const kl_attrs *a, const kl_tensor *out,
                         const kl_tensor *gout, int i, kl_stype want, kl_tensor **gin) {
  (void)a, (void)out;
  if (!pool_bwd_ok(in, nin, gout, i, want)) return KL_DEV_HOST;
  const kl_tensor *x = in[0], *ids = nin == 2 ? in[1] : NULL;
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(x->device, x->dtype, 3, x->shape, 0, &o);
  if (st != KL_OK) return st;
  st = kl_cuda_global_max_pool_backward(x->dtype, x->data, ids ? ids->dtype : KL_INT64,
                                        ids ? ids->data : NULL, gout->dtype, gout->data,
                                        x->shape[0], x->shape[1], x->shape[2], o->data,
                                        stream(x));
  return kl_cdo_finish(st, o, gin);
}

static const kl_kernel_entry masked_mean_kernels[] = {
    {"cuda.dense", sup_all_dense, masked_mean_fwd}, {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_masked_mean = {masked_mean_kernels, masked_mean_bwd};
static const kl_kernel_entry max_kernels[] = {{"cuda.dense", sup_all_dense, max_fwd},
                                              {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_global_max_pool = {max_kernels, max_bwd};

/* ================================================================== reg_terms */

/* The rows a batch names (in[1]: csr or dense ids) on the device: the unique ones the weight
 * stores, ascending, as kl_cuda_reg_rows makes them. */
typedef struct reg_batch {
  char *scr;        /* one scratch block: flags, rows, pos, the sort's */
  int64_t *flags;   /* device: bad, count */
  int64_t *rows, *pos, m;
} reg_batch;

static kl_status reg_batch_rows(const kl_tensor *w, const kl_tensor *src, reg_batch *rb) {
  const kl_device d = w->device;
  const int csr = src->stype == KL_STYPE_CSR;
  const int64_t m = csr ? src->nnz : numel(src), R = w->shape[0];
  const size_t sb = kl_cuda_reg_rows_scratch(m), ib = al((size_t)m * sizeof(int64_t));
  const size_t fb = al(2 * sizeof(int64_t));
  memset(rb, 0, sizeof *rb);
  rb->m = m;
  kl_status st = kl_cuda_dev_alloc(d, fb + 2 * ib + sb, (void **)&rb->scr);
  if (st != KL_OK) return st;
  rb->flags = (int64_t *)rb->scr;
  rb->rows = (int64_t *)(rb->scr + fb);
  rb->pos = (int64_t *)((char *)rb->rows + ib);
  return kl_cuda_reg_rows(csr ? src->indices : NULL, src->dtype, src->data, m, R,
                          w->stype == KL_STYPE_ROW_SPARSE ? w->indices : NULL, w->nnz,
                          (char *)rb->pos + ib, rb->rows, rb->pos, rb->flags + 1, rb->flags,
                          stream(w));
}

/* After the launches: the flags on the host, and the CPU's message for a bad id. */
static kl_status reg_batch_flags(const kl_tensor *w, const kl_tensor *src, const reg_batch *rb,
                                 int64_t *count) {
  int64_t f[2];
  kl_status st = kl_cuda_dev_read(w->device, f, rb->flags, sizeof f);
  if (st != KL_OK) return st;
  if (f[0] != rb->m) {
    double v = 0;
    if ((st = read_value(src->device, src->data, src->dtype, f[0], &v)) != KL_OK) return st;
    return kl_cuda_reg_id_error(v, f[0], w->shape[0]);
  }
  if (count) *count = f[1];
  return KL_OK;
}

/* Rows of the whole weight: every stored one. */
static int64_t reg_stored(const kl_tensor *w) {
  return w->stype == KL_STYPE_ROW_SPARSE ? w->nnz : (w->ndim ? w->shape[0] : 1);
}

static kl_status reg_fwd(kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out) {
  (void)a;
  const kl_tensor *w = in[0];
  const int64_t rw = w->ndim ? row_width(w) : 1, two = 2;
  kl_tensor *o = NULL;
  kl_status st = kl_cuda_capi->tensor_new_dense_on(w->device, w->dtype, 1, &two, 0, &o);
  if (st != KL_OK) return st;
  if (nin == 1) {
    st = kl_cuda_reg_terms(w->dtype, w->data, rw, NULL, NULL, reg_stored(w), o->data, stream(w));
    return kl_cdo_finish(st, o, out);
  }
  reg_batch rb;
  st = reg_batch_rows(w, in[1], &rb);
  if (st == KL_OK)
    st = kl_cuda_reg_terms(w->dtype, w->data, rw, rb.pos, rb.flags + 1, rb.m, o->data, stream(w));
  if (st == KL_OK && in[1]->stype != KL_STYPE_CSR) st = reg_batch_flags(w, in[1], &rb, NULL);
  kl_cuda_dev_free(w->device, rb.scr);
  return kl_cdo_finish(st, o, out);
}

static int reg_sup(kl_tensor *const *in, int nin, const kl_attrs *a) {
  (void)a;
  return (in[0]->stype == KL_STYPE_DEFAULT || in[0]->stype == KL_STYPE_ROW_SPARSE) &&
         (nin == 1 || in[1]->stype == KL_STYPE_DEFAULT || in[1]->stype == KL_STYPE_CSR);
}

/* gout[0] sign(w) + 2 gout[1] w on the covered rows: row_sparse over them (want row_sparse)
 * or dense with zeros elsewhere. */
static kl_status reg_bwd(kl_tensor *const *in, int nin, const kl_attrs *a, const kl_tensor *out,
                         const kl_tensor *gout, int i, kl_stype want, kl_tensor **gin) {
  (void)a, (void)out;
  if ((nin != 1 && nin != 2) || !in[0] || (nin == 2 && !in[1]) || i != 0) return KL_DEV_HOST;
  const kl_tensor *w = in[0], *src = nin == 2 ? in[1] : NULL;
  if (!isf(w->dtype) || !reg_sup(in, nin, NULL) || !dense(gout) || numel(gout) != 2 ||
      (src && (w->ndim < 1 || (src->stype == KL_STYPE_CSR && src->shape[1] != w->shape[0]))))
    return KL_DEV_HOST;
  const int sparse = want == KL_STYPE_ROW_SPARSE;
  if ((!sparse && want != KL_STYPE_DEFAULT) || (sparse && w->ndim < 1)) return KL_DEV_HOST;
  const kl_device d = w->device;
  const int64_t rw = w->ndim ? row_width(w) : 1;
  const int64_t *widx = w->stype == KL_STYPE_ROW_SPARSE ? w->indices : NULL;
  kl_tensor *o = NULL;
  kl_status st;
  if (!src) {
    const int64_t n = reg_stored(w);
    st = sparse ? kl_cuda_capi->tensor_new_rsp_on(d, w->dtype, w->ndim, w->shape, n, &o)
                : kl_cuda_capi->tensor_new_dense_on(d, w->dtype, w->ndim, w->shape, 1, &o);
    if (st != KL_OK) return st;
    st = kl_cuda_reg_terms_backward(w->dtype, w->data, rw, widx, NULL, NULL, n, gout->dtype,
                                    gout->data, sparse, o->data, sparse ? o->indices : NULL,
                                    stream(w));
    return kl_cdo_finish(st, o, gin);
  }
  reg_batch rb;
  int64_t count = 0;
  st = reg_batch_rows(w, src, &rb);
  if (st == KL_OK && sparse) {
    /* the row count sizes the result: read it (and the bad-id flag) first */
    st = reg_batch_flags(w, src, &rb, &count);
    if (st == KL_OK) st = kl_cuda_capi->tensor_new_rsp_on(d, w->dtype, w->ndim, w->shape, count, &o);
    if (st == KL_OK)
      st = kl_cuda_reg_terms_backward(w->dtype, w->data, rw, rb.rows, rb.pos, NULL, count,
                                      gout->dtype, gout->data, 1, o->data, o->indices, stream(w));
  } else if (st == KL_OK) {
    st = kl_cuda_capi->tensor_new_dense_on(d, w->dtype, w->ndim, w->shape, 1, &o);
    if (st == KL_OK)
      st = kl_cuda_reg_terms_backward(w->dtype, w->data, rw, rb.rows, rb.pos, rb.flags + 1, rb.m,
                                      gout->dtype, gout->data, 0, o->data, NULL, stream(w));
    if (st == KL_OK && src->stype != KL_STYPE_CSR) st = reg_batch_flags(w, src, &rb, NULL);
  }
  kl_cuda_dev_free(d, rb.scr);
  if (!o) return st;
  return kl_cdo_finish(st, o, gin);
}

static const kl_kernel_entry reg_kernels[] = {{"cuda.any", reg_sup, reg_fwd}, {NULL, NULL, NULL}};
const kl_device_opdef kl_cuda_opdef_reg_terms = {reg_kernels, reg_bwd};

/* ================================================================== losses */

/* losses.c loss_check's shape rules (the backward's own check: the registry infers nothing
 * before a backward). */
static int loss_shapes_ok(kl_cuda_loss k, kl_tensor *const *in, int nin) {
  const kl_tensor *yt = in[0], *yp = in[1];
  if (!isf(yp->dtype) || yp->ndim < 1 || numel(yp) <= 0) return 0;
  int ok;
  if (k == KL_CUDA_LOSS_SCCE) {
    if (yp->ndim < 2) return 0;
    const int c = yp->ndim - 1;
    ok = same_shape(yt, c, yp->shape) ||
         (yt->ndim == c + 1 && yt->shape[c] == 1 && memcmp(yt->shape, yp->shape, sizeof(int64_t) * (size_t)c) == 0);
  } else {
    ok = same_shape(yt, yp->ndim, yp->shape) ||
         (yt->ndim == yp->ndim + 1 && yt->shape[yp->ndim] == 1 &&
          memcmp(yt->shape, yp->shape, sizeof(int64_t) * (size_t)yp->ndim) == 0) ||
         (yp->ndim == yt->ndim + 1 && yp->shape[yt->ndim] == 1 &&
          (yt->ndim == 0 || memcmp(yp->shape, yt->shape, sizeof(int64_t) * (size_t)yt->ndim) == 0));
  }
  if (!ok) return 0;
  if (nin == 3) {
    const kl_tensor *w = in[2];
    if (!isf(w->dtype) || w->ndim != 1 || (w->shape[0] > 0 && w->shape[0] != yp->shape[0]))
      return 0;
  }
  return 1;
}

static void loss_args(kl_cuda_loss k, kl_tensor *const *in, int nin, kl_cuda_loss_args *la) {
  const kl_tensor *yt = in[0], *yp = in[1];
  const kl_tensor *w = nin == 3 && numel(in[2]) > 0 ? in[2] : NULL;
  memset(la, 0, sizeof *la);
  la->kind = k;
  la->tdt = yt->dtype;
  la->pdt = yp->dtype;
  la->wdt = w ? w->dtype : KL_FLOAT32;
  la->yt = yt->data;
  la->yp = yp->data;
  la->w = w ? w->data : NULL;
  la->n = numel(yp);
  la->n0 = yp->shape[0];
  la->C = yp->shape[yp->ndim - 1];
}

/* Whether the call has data the CPU checks (labels of bce / scce, sample weights). */
static int loss_has_checks(const kl_cuda_loss_args *la) {
  return la->w || la->kind == KL_CUDA_LOSS_BCE || la->kind == KL_CUDA_LOSS_SCCE;
}

/* Reads the check flags (a wait) and raises the CPU's message for the first bad datum. */
static kl_status loss_flags(const kl_cuda_loss_args *la, kl_tensor *const *in, const int64_t *dbad) {
  const kl_tensor *yt = in[0];
  int64_t bad[2];
  double v = 0;
  kl_status st = kl_cuda_dev_read(yt->device, bad, dbad, sizeof bad);
  if (st != KL_OK) return st;
  const int64_t nt = numel(yt);
  if (bad[0] < nt) {
    if ((st = read_value(yt->device, yt->data, yt->dtype, bad[0], &v)) != KL_OK) return st;
    const int64_t lw = yt->ndim > 0 && yt->shape[0] > 0 ? nt / yt->shape[0] : 1;
    return kl_cuda_loss_label_error(la->kind, v, bad[0], lw, la->C);
  }
  if (la->w && bad[1] < la->n0) {
    if ((st = read_value(yt->device, la->w, la->wdt, bad[1], &v)) != KL_OK) return st;
    return kl_cuda_loss_weight_error(la->kind, v, bad[1]);
  }
  return KL_OK;
}

/* The loss (gout NULL: into the 0-d o) or its gradient with respect to y_pred (from gout, into
 * o shaped like y_pred), the data the CPU checks checked on the device and its message raised. */
static kl_status loss_launch(const kl_cuda_loss_args *la, kl_tensor *const *in,
                             const kl_tensor *gout, kl_tensor *o) {
  const kl_device d = in[1]->device;
  const kl_cuda_stream s = stream(in[1]);
  const int checks = loss_has_checks(la);
  const size_t flags = al(2 * sizeof(int64_t));
  char *scr = NULL;
  kl_status st = kl_cuda_dev_alloc(d, flags + kl_cuda_loss_scratch(la), (void **)&scr);
  if (st == KL_OK && checks) st = kl_cuda_loss_check(la, (int64_t *)scr, s);
  if (st == KL_OK)
    st = gout ? kl_cuda_loss_backward(la, gout->dtype, gout->data, scr + flags, o->data, s)
              : kl_cuda_loss_forward(la, scr + flags, o->data, s);
  if (st == KL_OK && checks) st = loss_flags(la, in, (const int64_t *)scr);
  kl_cuda_dev_free(d, scr);
  return st;
}

static kl_status loss_fwd(kl_cuda_loss k, kl_tensor *const *in, int nin, kl_tensor **out) {
  kl_cuda_loss_args la;
  loss_args(k, in, nin, &la);
  kl_tensor *o = NULL;
  int64_t none[1] = {0};
  KL_TRY(kl_cuda_capi->tensor_new_dense_on(in[1]->device, la.pdt, 0, none, 0, &o));
  return kl_cdo_finish(loss_launch(&la, in, NULL, o), o, out);
}

static kl_status loss_bwd(kl_cuda_loss k, kl_tensor *const *in, int nin, const kl_tensor *gout,
                          int i, kl_stype want, kl_tensor **gin) {
  if ((nin != 2 && nin != 3) || i != 1 || want != KL_STYPE_DEFAULT) return KL_DEV_HOST;
  for (int j = 0; j < nin; j++)
    if (!in[j] || !dense(in[j])) return KL_DEV_HOST;
  if (!loss_shapes_ok(k, in, nin) || !dense(gout) || numel(gout) != 1) return KL_DEV_HOST;
  const kl_tensor *yp = in[1];
  kl_cuda_loss_args la;
  loss_args(k, in, nin, &la);
  kl_tensor *o = NULL;
  KL_TRY(kl_cuda_capi->tensor_new_dense_on(yp->device, la.pdt, yp->ndim, yp->shape, 0, &o));
  return kl_cdo_finish(loss_launch(&la, in, gout, o), o, gin);
}

/* One opdef a loss: wrappers binding the kind. */
#define KL_CUDA_LOSS_OP(sym, kind)                                                           \
  static kl_status sym##_fwd(kl_tensor *const *in, int nin, const kl_attrs *a,               \
                             kl_tensor **out) {                                              \
    (void)a;                                                                                 \
    return loss_fwd(kind, in, nin, out);                                                     \
  }                                                                                          \
  static kl_status sym##_bwd(kl_tensor *const *in, int nin, const kl_attrs *a,               \
                             const kl_tensor *out, const kl_tensor *gout, int i,             \
                             kl_stype want, kl_tensor **gin) {                               \
    (void)a, (void)out;                                                                      \
    return loss_bwd(kind, in, nin, gout, i, want, gin);                                      \
  }                                                                                          \
  static const kl_kernel_entry sym##_kernels[] = {{"cuda.dense", sup_all_dense, sym##_fwd},  \
                                                  {NULL, NULL, NULL}};                       \
  const kl_device_opdef kl_cuda_opdef_##sym = {sym##_kernels, sym##_bwd};

KL_CUDA_LOSS_OP(loss_mse, KL_CUDA_LOSS_MSE)
KL_CUDA_LOSS_OP(loss_mae, KL_CUDA_LOSS_MAE)
KL_CUDA_LOSS_OP(loss_bce, KL_CUDA_LOSS_BCE)
KL_CUDA_LOSS_OP(loss_cce, KL_CUDA_LOSS_CCE)
KL_CUDA_LOSS_OP(loss_scce, KL_CUDA_LOSS_SCCE)
KL_CUDA_LOSS_OP(loss_hinge, KL_CUDA_LOSS_HINGE)
KL_CUDA_LOSS_OP(loss_squared_hinge, KL_CUDA_LOSS_SQHINGE)
KL_CUDA_LOSS_OP(loss_poisson, KL_CUDA_LOSS_POISSON)
KL_CUDA_LOSS_OP(loss_huber, KL_CUDA_LOSS_HUBER)
