/* plan.c: compiled plans: node order, forward, reverse-mode backward, the training step. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "ops_internal.h"
#include "optim_internal.h"
#include "plan_internal.h"
#include "plan_linear.h"
#include "tensor_internal.h"

/* A node hook and its substitutes (kl_plan_set_node_ext). */
struct kl_plan_ext {
  kl_node_ext ops;
  void *ud;
  kl_tensor *subs[KL_NODE_EXT_MAXIN];
};

static void kl_ext_clear_subs(struct kl_plan_ext *e) {
  for (int i = 0; i < KL_NODE_EXT_MAXIN; i++) {
    kl_tensor_release(e->subs[i]);
    e->subs[i] = NULL;
  }
}

static void kl_ext_free(struct kl_plan_ext *e) {
  if (!e) return;
  kl_ext_clear_subs(e);
  if (e->ops.free_ud) e->ops.free_ud(e->ud);
  kl_free(e);
}

kl_plan *kl_plan_retain(kl_plan *p) {
  if (p) p->refs++;
  return p;
}

void kl_plan_free(kl_plan *p) {
  if (!p || --p->refs > 0) return;
  for (int i = 0; i < p->nnodes; i++) {
    if (p->vals) kl_tensor_release(p->vals[i]);
    if (p->grads) kl_tensor_release(p->grads[i]);
    if (p->masks) kl_tensor_release(p->masks[i]);
  }
  for (int k = 0; k < p->nweights; k++) {
    if (p->wgrad) kl_tensor_release(p->wgrad[k]);
    if (p->states) {
      kl_tensor_release(p->states[2 * k]);
      kl_tensor_release(p->states[2 * k + 1]);
    }
  }
  kl_tensor_release(p->dev_one);
  kl_free(p->fused_list); /* a listed fused gradient no update consumed */
  kl_free(p->fused_lrows);
  kl_linear_free(p);
  kl_pool_close(p->pool); /* after the releases above handed their blocks back */
  kl_free(p->feeds);
  kl_free(p->outputs);
  kl_free(p->weights);
  kl_free(p->gstype);
  kl_free(p->wslot);
  kl_free(p->states);
  kl_free(p->order);
  kl_free(p->need_out);
  kl_free(p->need_loss);
  kl_free(p->needs_grad);
  kl_free(p->vals);
  kl_free(p->grads);
  kl_free(p->wgrad);
  kl_free(p->masks);
  kl_free(p->rngs);
  kl_free(p->ins);
  kl_free(p->bag_src);
  kl_free(p->bag_skip);
  if (p->grad_hook_free) p->grad_hook_free(p->grad_hook_ud);
  if (p->ext) {
    for (int i = 0; i < p->nnodes; i++) kl_ext_free(p->ext[i]);
    kl_free(p->ext);
  }
  kl_graph *g = p->g;
  kl_free(p);
  kl_graph_free(g); /* the plan's reference */
}

static int *kl_dup_ids(const int *ids, int n, int *fail) {
  *fail = 0;
  if (n <= 0) return NULL;
  int *c = kl_malloc_n((size_t)n, sizeof *c);
  if (!c) {
    *fail = 1;
    return NULL;
  }
  memcpy(c, ids, (size_t)n * sizeof *c);
  return c;
}

/* Marks mark[id] for id and every ancestor of it. */
static void kl_mark_ancestors(const kl_graph *g, int root, unsigned char *mark) {
  mark[root] = 1;
  for (int id = root; id >= 0; id--) {
    if (!mark[id]) continue;
    int nin;
    const int *ins = kl_node_inputs(&g->nodes[id], &nin);
    for (int i = 0; i < nin; i++) mark[ins[i]] = 1;
  }
}

/* Validates the spec against the graph (ids, kinds, counts). */
static kl_status kl_plan_check_spec(const kl_graph *g, const kl_plan_spec *s) {
  KL_CHECK(s->nfeeds >= 0 && s->noutputs >= 0 && s->nweights >= 0, KL_EINVAL,
           "plan: negative count");
  KL_CHECK(s->noutputs > 0 || s->loss >= 0, KL_EINVAL, "plan: no outputs and no loss");
  for (int i = 0; i < s->nfeeds; i++) {
    int id = s->feeds[i];
    KL_CHECK(id >= 0 && id < g->n, KL_EINDEX, "plan: feeds[%d] = %d out of range", i + 1, id);
    KL_CHECK(g->nodes[id].kind == KL_NODE_PLACEHOLDER, KL_EINVAL,
             "plan: feeds[%d] = node %d is not a placeholder", i + 1, id);
    for (int j = 0; j < i; j++)
      KL_CHECK(s->feeds[j] != id, KL_EINVAL, "plan: placeholder %d fed twice", id);
  }
  for (int i = 0; i < s->noutputs; i++)
    KL_CHECK(s->outputs[i] >= 0 && s->outputs[i] < g->n, KL_EINDEX,
             "plan: outputs[%d] = %d out of range", i + 1, s->outputs[i]);
  if (s->loss >= 0) {
    KL_CHECK(s->loss < g->n, KL_EINDEX, "plan: loss node %d out of range", s->loss);
    const kl_meta *m = &g->nodes[s->loss].meta;
    int64_t n = 1;
    for (int d = 0; d < m->ndim; d++) n *= m->shape[d];
    KL_CHECK(n == 1 && kl_is_float(m->dtype), KL_ESHAPE,
             "plan: the loss (node %d) must be a float scalar", s->loss);
  }
  for (int k = 0; k < s->nweights; k++) {
    int id = s->weights[k];
    KL_CHECK(id >= 0 && id < g->n, KL_EINDEX, "plan: weights[%d] = %d out of range", k + 1, id);
    /* A placeholder may be differentiated (K.gradients w.r.t. an input), never trained. */
    int ph = g->nodes[id].kind == KL_NODE_PLACEHOLDER;
    KL_CHECK(g->nodes[id].kind == KL_NODE_VARIABLE || (ph && !s->optimizer), KL_EINVAL,
             "plan: weights[%d] = node %d is not a variable%s", k + 1, id,
             ph ? " (a placeholder can only be differentiated in a plan without optimizer)" : "");
    KL_CHECK(kl_is_float(g->nodes[id].meta.dtype), KL_EDTYPE,
             "plan: weights[%d] has dtype %s, not a float type", k + 1,
             kl_dtype_name(g->nodes[id].meta.dtype));
    KL_CHECK(ph || g->nodes[id].meta.stype != KL_STYPE_CSR, KL_ESTYPE,
             "plan: weights[%d] is csr; weights are dense or row_sparse", k + 1);
    for (int j = 0; j < k; j++)
      KL_CHECK(s->weights[j] != id, KL_EINVAL, "plan: weight node %d listed twice", id);
    if (s->grad_stypes)
      KL_CHECK(s->grad_stypes[k] == KL_STYPE_DEFAULT || s->grad_stypes[k] == KL_STYPE_ROW_SPARSE,
               KL_ESTYPE, "plan: grad_stypes[%d] must be default or row_sparse", k + 1);
  }
  KL_CHECK(s->nweights == 0 || s->loss >= 0, KL_EINVAL, "plan: weights given without a loss");
  if (s->optimizer) KL_TRY(kl_optimizer_check(s->optimizer));
  KL_TRY(kl_device_check("plan", s->device));
  for (int k = 0; s->optimizer && k < s->nweights; k++) { /* trained: where the step runs */
    const kl_node *nd = &g->nodes[s->weights[k]];
    if (nd->kind != KL_NODE_VARIABLE || nd->value->device == s->device) continue;
    char a[32], b[32];
    return kl_seterr(KL_EINVAL,
                     "plan: weights[%d]%s%s%s is on %s and the plan on %s: move the weight "
                     "there first (kl_tensor_move; Lua: model:compile{device = ...})",
                     k + 1, nd->name ? " ('" : "", nd->name ? nd->name : "",
                     nd->name ? "')" : "", kl_device_str(nd->value->device, a, sizeof a),
                     kl_device_str(s->device, b, sizeof b));
  }
  return KL_OK;
}

/* Allocates the per-node and per-weight arrays and computes the order and the marks. */
static kl_status kl_plan_layout(kl_plan *p, const kl_plan_spec *s) {
  const kl_graph *g = p->g;
  int n = p->nnodes;
  size_t un = (size_t)(n > 0 ? n : 1);
  size_t uw = (size_t)(s->nweights > 0 ? s->nweights : 1);
  int f1, f2, f3;
  p->feeds = kl_dup_ids(s->feeds, s->nfeeds, &f1);
  p->outputs = kl_dup_ids(s->outputs, s->noutputs, &f2);
  p->weights = kl_dup_ids(s->weights, s->nweights, &f3);
  p->nfeeds = s->nfeeds;
  p->noutputs = s->noutputs;
  p->nweights = s->nweights;
  p->gstype = kl_calloc(uw, sizeof *p->gstype);
  p->wslot = kl_malloc_n(un, sizeof *p->wslot);
  p->states = kl_calloc(2 * uw, sizeof *p->states);
  p->wgrad = kl_calloc(uw, sizeof *p->wgrad);
  p->order = kl_malloc_n(un, sizeof *p->order);
  p->need_out = kl_calloc(un, 1);
  p->need_loss = kl_calloc(un, 1);
  p->needs_grad = kl_calloc(un, 1);
  p->vals = kl_calloc(un, sizeof *p->vals);
  p->grads = kl_calloc(un, sizeof *p->grads);
  p->masks = kl_calloc(un, sizeof *p->masks);
  p->rngs = kl_calloc(2 * un, sizeof *p->rngs); /* + the saved copy (kl_plan_train_step) */
  int maxin = 1;
  for (int id = 0; id < n; id++)
    if (g->nodes[id].kind == KL_NODE_OP && g->nodes[id].nin > maxin) maxin = g->nodes[id].nin;
  p->ins = kl_calloc((size_t)maxin, sizeof *p->ins);
  if (f1 || f2 || f3 || !p->gstype || !p->wslot || !p->states || !p->wgrad || !p->order ||
      !p->need_out || !p->need_loss || !p->needs_grad || !p->vals || !p->grads || !p->masks ||
      !p->rngs || !p->ins)
    return KL_ENOMEM;
  for (int i = 0; i < n; i++) p->wslot[i] = -1;
  for (int k = 0; k < s->nweights; k++) {
    p->wslot[s->weights[k]] = k;
    kl_stype want = s->grad_stypes ? s->grad_stypes[k] : KL_STYPE_DEFAULT;
    /* The optimizer takes only row_sparse gradients for a row_sparse weight. */
    if (g->nodes[s->weights[k]].meta.stype == KL_STYPE_ROW_SPARSE) want = KL_STYPE_ROW_SPARSE;
    p->gstype[k] = want;
  }
  for (int i = 0; i < s->noutputs; i++) kl_mark_ancestors(g, s->outputs[i], p->need_out);
  if (s->loss >= 0) kl_mark_ancestors(g, s->loss, p->need_loss);
  p->norder = 0;
  for (int id = 0; id < n; id++) {
    if (!p->need_out[id] && !p->need_loss[id]) continue;
    p->order[p->norder++] = id;
    const kl_node *nd = &g->nodes[id];
    if (nd->kind == KL_NODE_PLACEHOLDER) {
      int fed = 0;
      for (int j = 0; j < s->nfeeds; j++) fed |= s->feeds[j] == id;
      KL_CHECK(fed, KL_EINVAL, "plan: placeholder %d%s%s%s is needed but not among the feeds",
               id, nd->name ? " ('" : "", nd->name ? nd->name : "", nd->name ? "')" : "");
    }
    if (nd->kind == KL_NODE_DROPOUT) kl_rng_seed(&p->rngs[id], nd->seed);
    /* needs_grad: a weight, or fed by one, on the way to the loss. */
    if (p->need_loss[id]) {
      if (p->wslot[id] >= 0) p->needs_grad[id] = 1;
      int nin;
      const int *ins = kl_node_inputs(nd, &nin);
      for (int i = 0; i < nin; i++) p->needs_grad[id] |= p->needs_grad[ins[i]];
    }
  }
  return KL_OK;
}

static kl_stype kl_plan_want(const kl_plan *p, int in_id);

static atomic_int kl_fuse_mode = -1; /* 1 on, 0 off, -1: read KL_NO_FUSE first */

static int kl_fuse_enabled(void) {
  int m = atomic_load(&kl_fuse_mode);
  if (m < 0) {
    const char *e = getenv("KL_NO_FUSE");
    int want = !(e && *e && strcmp(e, "0") != 0);
    atomic_compare_exchange_strong(&kl_fuse_mode, &m, want);
    m = atomic_load(&kl_fuse_mode);
  }
  return m;
}

int kl_plan_set_fuse_enabled(int on) {
  int prev = kl_fuse_enabled();
  atomic_store(&kl_fuse_mode, on ? 1 : 0);
  return prev;
}

/* Finds each mean over axis 1 (no keepdims), or masked_mean by the same ids, of an Embedding
 * of (n, L) ids into a dense float weight where the Embedding's value has no other use
 * (not an output, the loss, a weight,
 * or another node's input) and its ids need no gradient: the pair then runs as
 * kl_embedding_mean (forward) and kl_embedding_mean_backward (the weight's gradient from
 * the mean's), the Embedding node itself skipped. W3's Embedding -> GlobalAveragePooling1D:
 * the 256 x 20 x 64 output and its gradient (1.3 MB each, a step) are never made. */
static kl_status kl_plan_find_bags(kl_plan *p) {
  const kl_graph *g = p->g;
  const size_t un = (size_t)(p->nnodes > 0 ? p->nnodes : 1);
  p->bag_src = kl_malloc_n(un, sizeof *p->bag_src);
  p->bag_skip = kl_calloc(un, 1);
  if (!p->bag_src || !p->bag_skip) return KL_ENOMEM;
  for (int i = 0; i < p->nnodes; i++) p->bag_src[i] = -1;
  /* kl_embedding_mean is a host kernel: a device plan runs the two ops */
  if (!kl_fuse_enabled() || p->device != KL_CPU) return KL_OK;
  for (int q = 0; q < p->norder; q++) {
    const int id = p->order[q];
    const kl_node *nd = &g->nodes[id];
    const int masked = nd->kind == KL_NODE_OP && nd->op == KL_OP_MASKED_MEAN && nd->nin == 2;
    if (!masked && (nd->kind != KL_NODE_OP || nd->op != KL_OP_MEAN || nd->nin != 1 ||
                    !nd->attrs.has_axis || nd->attrs.axis != 1 || nd->attrs.keepdims))
      continue;
    const int e = nd->inputs[0];
    const kl_node *en = &g->nodes[e];
    if (en->kind != KL_NODE_OP || en->op != KL_OP_EMBEDDING || en->nin != 2) continue;
    if (masked && nd->inputs[1] != en->inputs[0]) continue; /* masked by other ids */
    const kl_meta *mi = &g->nodes[en->inputs[0]].meta, *mw = &g->nodes[en->inputs[1]].meta;
    if (mi->ndim != 2 || mi->stype != KL_STYPE_DEFAULT || mw->ndim != 2 ||
        mw->stype != KL_STYPE_DEFAULT || !kl_is_float(mw->dtype) ||
        p->needs_grad[en->inputs[0]] || p->wslot[e] >= 0 || e == p->loss)
      continue;
    const kl_stype want = kl_plan_want(p, en->inputs[1]);
    if (want != KL_STYPE_DEFAULT && want != KL_STYPE_ROW_SPARSE) continue;
    int uses = 0;
    for (int k = 0; k < p->noutputs; k++) uses += p->outputs[k] == e;
    for (int r = 0; r < p->norder; r++) {
      int rn;
      const int *ri = kl_node_inputs(&g->nodes[p->order[r]], &rn);
      for (int j = 0; j < rn; j++) uses += ri[j] == e;
    }
    if (uses != 1) continue;
    p->bag_src[id] = e;
    p->bag_skip[e] = 1;
    p->nbags++;
  }
  return KL_OK;
}

kl_status kl_plan_new(kl_graph *g, const kl_plan_spec *spec, kl_plan **out) {
  KL_CHECK(out != NULL, KL_EINVAL, "plan: out is NULL");
  *out = NULL;
  KL_CHECK(g && spec, KL_EINVAL, "plan: NULL graph or spec");
  KL_CHECK((spec->feeds || spec->nfeeds == 0) && (spec->outputs || spec->noutputs == 0) &&
               (spec->weights || spec->nweights == 0),
           KL_EINVAL, "plan: NULL id list");
  KL_TRY(kl_plan_check_spec(g, spec));
  kl_plan *p = kl_calloc(1, sizeof *p);
  if (!p) return KL_ENOMEM;
  p->refs = 1;
  p->g = kl_graph_retain(g);
  p->nnodes = g->n;
  p->loss = spec->loss;
  p->fused_k = -1;
  p->device = spec->device;
  kl_status st = kl_plan_layout(p, spec);
  if (st == KL_OK) st = kl_plan_find_bags(p);
  if (st == KL_OK && spec->optimizer) {
    p->has_opt = 1;
    p->opt = *spec->optimizer;
    for (int k = 0; k < p->nweights && st == KL_OK; k++)
      st = kl_optimizer_create_states(&p->opt, g->nodes[p->weights[k]].value, &p->states[2 * k]);
  }
  /* the linear step: fit's steps of a linear model on csr rows (a host plan only) */
  if (st == KL_OK && p->device == KL_CPU && kl_fuse_enabled()) st = kl_linear_detect(p);
  /* the pool serves host buffers of host steps: a device plan's buffers are the device's */
  if (st == KL_OK && p->device == KL_CPU) st = kl_pool_new(&p->pool);
  if (st != KL_OK) {
    kl_plan_free(p);
    return st;
  }
  *out = p;
  return KL_OK;
}

/* ------------------------------------------------------------------ forward */

static void kl_plan_clear_values(kl_plan *p) {
  for (int i = 0; i < p->norder; i++) {
    int id = p->order[i];
    kl_tensor_release(p->vals[id]);
    p->vals[id] = NULL;
    if (p->ext && p->ext[id]) kl_ext_clear_subs(p->ext[id]);
  }
  p->fwd_done = 0;
  p->fwd_loss = 0;
}

/* The fed tensor for placeholder nd, converted to its dtype and stype when they differ and
 * copied to the plan's device dev when it is elsewhere (a host batch fed to a device plan:
 * the conversions run on the host first). *out holds a new reference. */
static kl_status kl_plan_feed(const kl_node *nd, int k, kl_tensor *t, kl_device dev,
                              kl_tensor **out) {
  const kl_meta *m = &nd->meta;
  char b1[96], b2[96];
  KL_CHECK(t != NULL, KL_EINVAL, "forward: feed %d ('%s') is missing", k,
           nd->name ? nd->name : "placeholder");
  int ok = t->ndim == m->ndim;
  for (int d = 0; ok && d < m->ndim; d++) ok = m->shape[d] < 0 || m->shape[d] == t->shape[d];
  KL_CHECK(ok, KL_ESHAPE, "forward: feed %d%s%s%s has shape (%s), expected (%s)", k,
           nd->name ? " ('" : "", nd->name ? nd->name : "", nd->name ? "')" : "",
           kl_shape_str(t->ndim, t->shape, b1, sizeof b1),
           kl_shape_str(m->ndim, m->shape, b2, sizeof b2));
  kl_tensor *cur = kl_tensor_retain(t);
  if (cur->dtype != m->dtype) {
    kl_tensor *c = NULL;
    kl_status st = kl_tensor_astype(cur, m->dtype, &c);
    kl_tensor_release(cur);
    if (st != KL_OK) return st;
    cur = c;
  }
  if (cur->stype != m->stype) {
    kl_tensor *c = NULL;
    kl_status st = kl_tensor_tostype(cur, m->stype, &c);
    kl_tensor_release(cur);
    if (st != KL_OK) return st;
    cur = c;
  }
  if (cur->device != dev) {
    kl_tensor *c = NULL;
    kl_status st = kl_tensor_to(cur, dev, &c);
    kl_tensor_release(cur);
    if (st != KL_OK) return st;
    cur = c;
  }
  *out = cur;
  return KL_OK;
}

/* Fills the host mask m (dense) with inverted dropout's 0 / 1 / (1 - rate) from rng. */
static void kl_dropout_fill(kl_tensor *m, double rate, kl_rng *rng) {
  int64_t n = kl_tensor_numel(m);
  double keep = 1.0 / (1.0 - rate);
  KL_DISPATCH(m->dtype, T, {
    T *md = (T *)m->data;
    for (int64_t i = 0; i < n; i++) md[i] = (T)(kl_rng_uniform(rng) < rate ? 0.0 : keep);
  });
}

/* Inverted dropout of x (dense) with a fresh mask drawn from rng (kept in *mask). */
static kl_status kl_dropout_fwd(const kl_tensor *x, double rate, kl_rng *rng, kl_tensor **mask,
                                kl_tensor **out) {
  kl_tensor *m = *mask;
  if (!m || m->dtype != x->dtype || !kl_same_shape(m, x)) {
    kl_tensor_release(m);
    *mask = NULL;
    KL_TRY(kl_tensor_new_dense(x->dtype, x->ndim, x->shape, &m));
    *mask = m;
  }
  kl_dropout_fill(m, rate, rng);
  return kl_mul_dense(x, m, out);
}

/* The same on a device: the mask is drawn on the host (the same generator, the same draws)
 * and copied to x's device, where x * mask runs through the registry (KL_OP_MUL: the same
 * product as kl_mul_dense). One host buffer and one copy a step: a device generator would
 * remove both (issue 17). */
static kl_status kl_dropout_fwd_device(kl_tensor *x, double rate, kl_rng *rng, kl_tensor **mask,
                                       kl_tensor **out) {
  kl_tensor *hm = NULL, *dm = NULL;
  KL_TRY(kl_tensor_new_dense(x->dtype, x->ndim, x->shape, &hm));
  kl_dropout_fill(hm, rate, rng);
  kl_status st = kl_tensor_to(hm, x->device, &dm);
  kl_tensor_release(hm);
  if (st != KL_OK) return st;
  kl_tensor_release(*mask);
  *mask = dm;
  kl_tensor *in[2] = {x, dm};
  return kl_op_run(KL_OP_MUL, in, 2, NULL, out);
}

/* x * mask (a dropout's backward): kl_mul_dense on the host, KL_OP_MUL on a device. */
static kl_status kl_plan_mul_mask(const kl_plan *p, const kl_tensor *x, kl_tensor *mask,
                                  kl_tensor **out) {
  if (p->device == KL_CPU) return kl_mul_dense(x, mask, out);
  kl_tensor *in[2] = {(kl_tensor *)x, mask};
  return kl_op_run(KL_OP_MUL, in, 2, NULL, out);
}

/* A dense reshape. On a device the copy stays there (kl_tensor_reshape would copy through
 * the host): the checks read only the description. */
static kl_status kl_plan_reshape(const kl_tensor *x, int ndim, const int64_t *shape,
                                 kl_tensor **out) {
  if (x->device == KL_CPU) return kl_tensor_reshape(x, ndim, shape, out);
  char a[160], b[160];
  *out = NULL;
  KL_CHECK(x->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
           "reshape: not supported for %s tensors; convert with tostype('default') first",
           kl_stype_name(x->stype));
  KL_TRY(kl_shape_check("reshape", ndim, shape));
  KL_CHECK(kl_shape_numel(ndim, shape) == kl_tensor_numel(x), KL_ESHAPE,
           "reshape: cannot reshape (%s) into (%s): %lld elements vs %lld",
           kl_shape_str(x->ndim, x->shape, a, sizeof a), kl_shape_str(ndim, shape, b, sizeof b),
           (long long)kl_tensor_numel(x), (long long)kl_shape_numel(ndim, shape));
  kl_tensor *c = NULL;
  KL_TRY(kl_device_clone(x, &c));
  c->ndim = ndim;
  memset(c->shape, 0, sizeof c->shape);
  if (ndim) memcpy(c->shape, shape, (size_t)ndim * sizeof *shape);
  *out = c;
  return KL_OK;
}

/* The value of variable or constant node id when it is not on the plan's device: a copy
 * there (made each forward: a variable that is only read, or only differentiated), or an
 * error for a trained weight (its update runs where the plan runs). */
static kl_status kl_plan_place(const kl_plan *p, int id, kl_tensor **out) {
  const kl_node *nd = &p->g->nodes[id];
  if (p->wslot[id] >= 0 && p->has_opt) {
    char a[32], b[32];
    return kl_seterr(KL_EINVAL,
                     "forward: weight %d%s%s%s is on %s and the plan on %s (it was moved or "
                     "replaced after the plan was made: compile the model again)",
                     p->wslot[id] + 1, nd->name ? " ('" : "", nd->name ? nd->name : "",
                     nd->name ? "')" : "", kl_device_str(nd->value->device, a, sizeof a),
                     kl_device_str(p->device, b, sizeof b));
  }
  return kl_tensor_to(nd->value, p->device, out);
}

/* Node id's input values into ins[0..nin-1]: the hook's substitutes where it made some. */
static void kl_plan_node_ins(const kl_plan *p, int id, kl_tensor **ins) {
  const kl_node *nd = &p->g->nodes[id];
  int nin;
  const int *in_ids = kl_node_inputs(nd, &nin);
  const struct kl_plan_ext *e = p->ext ? p->ext[id] : NULL;
  for (int i = 0; i < nin; i++)
    ins[i] = e && i < KL_NODE_EXT_MAXIN && e->subs[i] ? e->subs[i] : p->vals[in_ids[i]];
}

/* The hook of node id before it runs: its substitute inputs (or, ins NULL, no rows). */
static kl_status kl_plan_ext_forward(kl_plan *p, int id) {
  struct kl_plan_ext *e = p->ext[id];
  const kl_node *nd = &p->g->nodes[id];
  kl_tensor *ins[KL_NODE_EXT_MAXIN];
  for (int i = 0; i < nd->nin; i++) ins[i] = p->vals[nd->inputs[i]];
  kl_ext_clear_subs(e);
  kl_status st = e->ops.forward(e->ud, p, id, ins, nd->nin, e->subs);
  if (st != KL_OK) kl_ext_clear_subs(e);
  return st;
}

/* Computes node id's value from its inputs' values. */
static kl_status kl_plan_eval_node(kl_plan *p, int id, int training) {
  const kl_node *nd = &p->g->nodes[id];
  kl_tensor **ins = p->ins;
  kl_tensor *out = NULL;
  switch (nd->kind) {
    case KL_NODE_VARIABLE:
    case KL_NODE_CONSTANT:
      if (nd->value->device != p->device) return kl_plan_place(p, id, &p->vals[id]);
      p->vals[id] = kl_tensor_retain(nd->value);
      return KL_OK;
    case KL_NODE_PLACEHOLDER:
      return kl_seterr(KL_EINVAL, "forward: placeholder %d was not fed", id);
    case KL_NODE_OP:
      if (p->ext && p->ext[id]) KL_TRY(kl_plan_ext_forward(p, id));
      if (p->bag_skip[id]) return KL_OK; /* an Embedding its mean computes (bag_src) */
      if (p->bag_src[id] >= 0) {
        const int e = p->bag_src[id];
        kl_tensor *ei[2];
        kl_plan_node_ins(p, e, ei);
        KL_TRY(kl_embedding_mean(ei[0], ei[1], &p->g->nodes[e].attrs,
                                 nd->op == KL_OP_MASKED_MEAN, &out));
        break;
      }
      kl_plan_node_ins(p, id, ins);
      KL_TRY(kl_op_run(nd->op, ins, nd->nin, &nd->attrs, &out));
      break;
    case KL_NODE_RESHAPE: {
      const kl_tensor *x = p->vals[nd->in0];
      int64_t shape[KL_MAX_NDIM];
      KL_TRY(kl_reshape_resolve("reshape", kl_tensor_numel(x), nd->rs_ndim, nd->rs_shape, shape));
      KL_TRY(kl_plan_reshape(x, nd->rs_ndim, shape, &out));
      break;
    }
    case KL_NODE_CAST:
      KL_TRY(kl_tensor_tostype(p->vals[nd->in0], nd->meta.stype, &out));
      break;
    case KL_NODE_DROPOUT: {
      kl_tensor *x = kl_tensor_retain(p->vals[nd->in0]);
      if (x->stype != KL_STYPE_DEFAULT) {
        kl_tensor *d = NULL;
        kl_status st = kl_tensor_tostype(x, KL_STYPE_DEFAULT, &d);
        kl_tensor_release(x);
        if (st != KL_OK) return st;
        x = d;
      }
      if (training && nd->rate > 0.0) {
        kl_status st = p->device == KL_CPU
                           ? kl_dropout_fwd(x, nd->rate, &p->rngs[id], &p->masks[id], &out)
                           : kl_dropout_fwd_device(x, nd->rate, &p->rngs[id], &p->masks[id], &out);
        kl_tensor_release(x);
        if (st != KL_OK) return st;
      } else {
        kl_tensor_release(p->masks[id]);
        p->masks[id] = NULL;
        out = x;
      }
      break;
    }
  }
  p->vals[id] = out;
  return KL_OK;
}

kl_status kl_plan_run(kl_plan *p, kl_tensor *const *feeds, int training, int want_loss) {
  kl_plan_clear_values(p);
  KL_CHECK(p->g->n >= p->nnodes, KL_EINVAL, "forward: the graph lost nodes since compile");
  if (p->loss < 0) want_loss = 0;
  for (int k = 0; k < p->nfeeds; k++) {
    int id = p->feeds[k];
    if (!p->need_out[id] && !(want_loss && p->need_loss[id])) continue;
    KL_TRY(kl_plan_feed(&p->g->nodes[id], k, feeds ? feeds[k] : NULL, p->device, &p->vals[id]));
  }
  for (int i = 0; i < p->norder; i++) {
    int id = p->order[i];
    if (!p->need_out[id] && !(want_loss && p->need_loss[id])) continue;
    if (p->g->nodes[id].kind == KL_NODE_PLACEHOLDER) continue;
    KL_TRY(kl_plan_eval_node(p, id, training));
  }
  double lv = NAN;
  if (want_loss && p->device == KL_CPU) {
    lv = kl_tensor_data_at(p->vals[p->loss], 0);
  } else if (want_loss) { /* the 0-d loss: one small copy to the host */
    kl_tensor *h = NULL;
    KL_TRY(kl_tensor_to(p->vals[p->loss], KL_CPU, &h));
    lv = kl_tensor_data_at(h, 0);
    kl_tensor_release(h);
  }
  p->fwd_done = 1;
  p->fwd_loss = want_loss;
  p->loss_value = lv;
  return KL_OK;
}

kl_status kl_plan_forward(kl_plan *p, kl_tensor *const *feeds, int training) {
  KL_CHECK(p != NULL, KL_EINVAL, "forward: plan is NULL");
  int want_loss = p->loss >= 0;
  /* A missing feed that only the loss needs (the target, in predict) skips the loss. */
  for (int k = 0; k < p->nfeeds && want_loss; k++)
    if ((!feeds || !feeds[k]) && !p->need_out[p->feeds[k]]) want_loss = 0;
  return kl_plan_run(p, feeds, training, want_loss);
}

kl_tensor *kl_plan_output(const kl_plan *p, int k) {
  if (!p || k < 0 || k >= p->noutputs || !p->fwd_done) return NULL;
  return p->vals[p->outputs[k]];
}

double kl_plan_loss(const kl_plan *p) { return p && p->fwd_loss ? p->loss_value : NAN; }

/* ----------------------------------------------------------------- backward */

/* Drops a fused gradient that no update consumed (a failed step): the kept accumulator is
 * left zero, as its contract wants. O(rows), on the failure path only. */
static void kl_plan_clear_fused(kl_plan *p) {
  if (p->fused_k < 0) return;
  if (p->fused_list) { /* listed: the plan's own buffers (the kept map is already zero) */
    kl_free(p->fused_list);
    kl_free(p->fused_lrows);
    p->fused_list = NULL;
    p->fused_lrows = NULL;
    p->fused_n = 0;
  } else {
    memset(p->fused_flag, 0, (size_t)p->fused_rows * sizeof *p->fused_flag);
    memset(p->fused_acc, 0, p->fused_bytes);
  }
  p->fused_k = -1;
}

static void kl_plan_clear_grads(kl_plan *p) {
  kl_plan_clear_fused(p);
  for (int i = 0; i < p->norder; i++) {
    int id = p->order[i];
    kl_tensor_release(p->grads[id]);
    p->grads[id] = NULL;
  }
  for (int k = 0; k < p->nweights; k++) {
    kl_tensor_release(p->wgrad[k]);
    p->wgrad[k] = NULL;
  }
}

/* The gradient stype input node in_id asks its consumer for. */
static kl_stype kl_plan_want(const kl_plan *p, int in_id) {
  int k = p->wslot[in_id];
  return k >= 0 ? p->gstype[k] : KL_STYPE_DEFAULT;
}

/* Converts *t to stype in place of the reference (no-op when it already is). */
static kl_status kl_to_stype(kl_tensor **t, kl_stype stype) {
  if ((*t)->stype == stype) return KL_OK;
  kl_tensor *c = NULL;
  KL_TRY(kl_tensor_tostype(*t, stype, &c));
  kl_tensor_release(*t);
  *t = c;
  return KL_OK;
}

/* The fused step: in fit, the gradient of a weight that only a dot csr . W uses, handed to
 * a lazy optimizer as a row_sparse gradient and small enough for the direct accumulator
 * (W1's Dense(1, sparse_weight): 10,000 rows), is left in the pool's kept accumulator and
 * flags; the update then walks the weight's rows once (kl_optimizer_update_flagged) and no
 * compact gradient is made (the emission scan and the compact update were 2/3 of a W1
 * step). The same bits as the unfused step: the same sums, the same rule, on the same rows.
 * A weight too wide for the direct accumulator but of at most 4 MiB (W7's 2^18 x 1 f32,
 * W5's 10^6 x 1)
 * takes the listed step instead: kl_dot_csrT_listed sums the touched rows in the column
 * map's slots, listed in first-touch order, and kl_optimizer_update_listed_prechecked runs
 * the lazy rule over them in that order: no radix sort, no emission of a compact sorted
 * gradient (bench/README item 17). The same sums and the same per-row rule: the same bits.
 * One weight a step. Returns 1 when node nd's input i (weight in_id) was done so. */
static int kl_plan_try_fuse(kl_plan *p, const kl_node *nd, int i, int in_id,
                            kl_tensor *const *ins, int nin, const kl_tensor *gout) {
  const int k = p->wslot[in_id];
  if (!p->fuse_ok || p->grad_hook || p->fused_k >= 0 || k < 0 || nd->kind != KL_NODE_OP || nd->op != KL_OP_DOT ||
      nin != 2 || i != 1 || nd->attrs.transpose_a || nd->attrs.transpose_b || p->grads[in_id] ||
      p->gstype[k] != KL_STYPE_ROW_SPARSE || !p->opt.lazy_update)
    return 0;
  const kl_tensor *a = ins[0], *w = ins[1];
  if (w != p->g->nodes[in_id].value) return 0; /* a weight variable (not a fed placeholder) */
  if (a->stype != KL_STYPE_CSR || a->ndim != 2 || w->ndim != 2 || a->dtype != w->dtype ||
      gout->stype != KL_STYPE_DEFAULT || gout->dtype != w->dtype || w->shape[0] != a->shape[1] ||
      kl_tensor_numel(gout) != a->shape[0] * w->shape[1] ||
      !(w->stype == KL_STYPE_DEFAULT || (w->stype == KL_STYPE_ROW_SPARSE && w->nnz == w->shape[0])))
    return 0;
  const int64_t C = w->shape[0], N = w->shape[1];
  const int listed = kl_dot_listed_fits(C, a->nnz, N, w->dtype);
  if (!listed && !kl_dot_direct_fits(C, a->nnz, N, w->dtype)) return 0;
  /* the weight's only use in the plan (a shared weight sums several gradients) */
  int uses = 0;
  for (int q = 0; q < p->norder; q++) {
    int qn;
    const int *qi = kl_node_inputs(&p->g->nodes[p->order[q]], &qn);
    for (int j = 0; j < qn; j++) uses += qi[j] == in_id;
  }
  if (uses != 1) return 0;
  if (listed) {
    /* a wider weight (W7: 2^18 rows): the touched rows' sums listed in first-touch order,
     * updated in that order, no sort and no compact row_sparse gradient */
    int64_t *list = NULL, n = 0;
    void *rows = NULL;
    if (kl_dot_csrT_listed(a, gout, N, &list, &rows, &n) != KL_OK) return 0;
    p->fused_k = k;
    p->fused_list = list;
    p->fused_lrows = rows;
    p->fused_n = n;
    return 1;
  }
  const size_t bytes = (size_t)(C * N) * kl_dtype_size(w->dtype);
  uint32_t *flag = kl_pool_kept_zeroed(KL_KEPT_FUSEFLAG, (size_t)C * sizeof *flag);
  void *acc = flag ? kl_pool_kept_zeroed(KL_KEPT_FUSEACC, bytes) : NULL;
  if (!acc) return 0;
  kl_dot_csrT_direct_acc(a, gout, N, flag, acc);
  p->fused_k = k;
  p->fused_flag = flag;
  p->fused_acc = acc;
  p->fused_rows = C;
  p->fused_bytes = bytes;
  return 1;
}

/* The hook of node id after its input i's gradient *g was computed (*g NULL: no rows). */
static kl_status kl_plan_ext_backward(kl_plan *p, int id, int i, kl_tensor **g) {
  struct kl_plan_ext *e = p->ext[id];
  kl_status st = e->ops.backward ? e->ops.backward(e->ud, p, id, i, g) : KL_OK;
  if (st != KL_OK) {
    kl_tensor_release(*g);
    *g = NULL;
  }
  return st;
}

/* Pushes node id's gradient into its inputs. */
static kl_status kl_plan_backprop_node(kl_plan *p, int id) {
  const kl_node *nd = &p->g->nodes[id];
  KL_TRY(kl_to_stype(&p->grads[id], KL_STYPE_DEFAULT)); /* gout is dense */
  const kl_tensor *gout = p->grads[id];
  if (p->bag_src[id] >= 0) { /* a fused Embedding -> mean: straight into the weight */
    const kl_node *en = &p->g->nodes[p->bag_src[id]];
    const int wid = en->inputs[1];
    if (!p->needs_grad[wid]) return KL_OK;
    kl_tensor *gin = NULL, *ei[2];
    kl_plan_node_ins(p, p->bag_src[id], ei);
    KL_TRY(kl_embedding_mean_backward(ei[0], ei[1], &en->attrs, nd->op == KL_OP_MASKED_MEAN,
                                      gout, kl_plan_want(p, wid), &gin));
    if (p->ext && p->ext[p->bag_src[id]]) KL_TRY(kl_plan_ext_backward(p, p->bag_src[id], 1, &gin));
    return kl_grad_accumulate(&p->grads[wid], gin);
  }
  kl_tensor **ins = p->ins;
  int nin;
  const int *in_ids = kl_node_inputs(nd, &nin);
  kl_plan_node_ins(p, id, ins);
  for (int i = 0; i < nin; i++) {
    int in_id = in_ids[i];
    if (!p->needs_grad[in_id]) continue;
    kl_tensor *gin = NULL;
    kl_stype want = kl_plan_want(p, in_id);
    if (kl_plan_try_fuse(p, nd, i, in_id, ins, nin, gout)) continue;
    if (nd->kind == KL_NODE_OP) {
      KL_TRY(kl_op_backward(nd->op, ins, nin, &nd->attrs, p->vals[id], gout, i, want, &gin));
      if (p->ext && p->ext[id]) KL_TRY(kl_plan_ext_backward(p, id, i, &gin));
    } else if (nd->kind == KL_NODE_RESHAPE) {
      KL_TRY(kl_plan_reshape(gout, ins[0]->ndim, ins[0]->shape, &gin));
    } else if (nd->kind == KL_NODE_CAST) { /* the gradient of a cast is the gradient */
      KL_TRY(kl_tensor_copy(gout, &gin));
    } else { /* dropout */
      if (p->masks[id])
        KL_TRY(kl_plan_mul_mask(p, gout, p->masks[id], &gin));
      else
        KL_TRY(kl_tensor_copy(gout, &gin));
    }
    KL_TRY(kl_grad_accumulate(&p->grads[in_id], gin));
  }
  return KL_OK;
}

/* A device plan's seed gradient (ones shaped like the loss value lv, on the device): made
 * once on the host and copied there, then kept (kl_grad_accumulate copies a shared dense
 * tensor before it adds into it, and nothing adds into the loss's gradient). */
static kl_status kl_plan_device_one(kl_plan *p, const kl_tensor *lv) {
  kl_tensor *o = p->dev_one;
  if (o && o->dtype == lv->dtype && kl_same_shape(o, lv)) return KL_OK;
  kl_tensor *h = NULL, *d = NULL;
  KL_TRY(kl_tensor_new_dense(lv->dtype, lv->ndim, lv->shape, &h));
  kl_tensor_fill(h, 1.0);
  kl_status st = kl_tensor_to(h, p->device, &d);
  kl_tensor_release(h);
  if (st != KL_OK) return st;
  kl_tensor_release(p->dev_one);
  p->dev_one = d;
  return KL_OK;
}

kl_status kl_plan_backward(kl_plan *p) {
  KL_CHECK(p != NULL, KL_EINVAL, "backward: plan is NULL");
  KL_CHECK(p->loss >= 0, KL_EINVAL, "backward: the plan has no loss");
  KL_CHECK(p->fwd_done && p->fwd_loss, KL_EINVAL, "backward: run a forward with the loss first");
  kl_plan_clear_grads(p);
  const kl_tensor *lv = p->vals[p->loss];
  if (p->device == KL_CPU) {
    KL_TRY(kl_tensor_new_dense(lv->dtype, lv->ndim, lv->shape, &p->grads[p->loss]));
    kl_tensor_fill(p->grads[p->loss], 1.0);
  } else {
    KL_TRY(kl_plan_device_one(p, lv));
    p->grads[p->loss] = kl_tensor_retain(p->dev_one);
  }
  for (int i = p->norder - 1; i >= 0; i--) {
    int id = p->order[i];
    if (!p->needs_grad[id] || !p->grads[id]) continue;
    const kl_node *nd = &p->g->nodes[id];
    if (nd->kind != KL_NODE_OP && nd->kind != KL_NODE_RESHAPE && nd->kind != KL_NODE_DROPOUT &&
        nd->kind != KL_NODE_CAST)
      continue;
    KL_TRY(kl_plan_backprop_node(p, id));
    if (p->wslot[id] < 0) { /* done with it: free early */
      kl_tensor_release(p->grads[id]);
      p->grads[id] = NULL;
    }
  }
  for (int k = 0; k < p->nweights; k++) {
    if (k == p->fused_k) continue; /* its gradient is in the kept accumulator */
    int id = p->weights[k];
    const kl_tensor *w = p->g->nodes[id].value;
    if (!w) w = p->vals[id]; /* a differentiated placeholder: shaped like its feed */
    KL_CHECK(w != NULL, KL_EINVAL, "backward: the loss does not depend on placeholder %d", id);
    kl_tensor *gk = p->grads[id];
    p->grads[id] = NULL;
    if (!gk) { /* the loss does not depend on this weight: a zero gradient */
      if (p->gstype[k] == KL_STYPE_ROW_SPARSE)
        KL_TRY(kl_tensor_new_rsp_on(p->device, w->dtype, w->ndim, w->shape, 0, &gk));
      else
        KL_TRY(kl_tensor_new_dense_on(p->device, w->dtype, w->ndim, w->shape, 1, &gk));
    }
    kl_status st = kl_to_stype(&gk, p->gstype[k]);
    if (st != KL_OK) {
      kl_tensor_release(gk);
      return st;
    }
    p->wgrad[k] = gk;
  }
  return KL_OK;
}

kl_tensor *kl_plan_grad(const kl_plan *p, int k) {
  if (!p || k < 0 || k >= p->nweights) return NULL;
  return p->wgrad[k];
}

/* Updates every weight from its gradient (after a backward). All or nothing: every weight's
 * update is checked before the first is written, and an update that passed its check cannot
 * fail (it allocates nothing), so a failed step leaves weights, states and the step count as
 * they were. */
static kl_status kl_plan_update_device(kl_plan *p);

static kl_status kl_plan_update(kl_plan *p) {
  if (p->device != KL_CPU) return kl_plan_update_device(p);
  int64_t t = p->step + 1;
  for (int k = 0; k < p->nweights; k++) {
    const kl_tensor *w = p->g->nodes[p->weights[k]].value;
    kl_status st =
        k == p->fused_k
            ? kl_optimizer_flagged_precheck(&p->opt, w, &p->states[2 * k], t)
            : kl_optimizer_update_precheck(&p->opt, w, p->wgrad[k], &p->states[2 * k], t, 1);
    if (st != KL_OK) {
      kl_plan_clear_fused(p); /* the accumulator is left zero, as its contract wants */
      return st;
    }
  }
  for (int k = 0; k < p->nweights; k++) {
    kl_tensor *w = p->g->nodes[p->weights[k]].value;
    if (k == p->fused_k && p->fused_list) {
      const size_t rb = (size_t)kl_row_width(w) * kl_dtype_size(w->dtype);
      kl_optimizer_update_listed_prechecked(&p->opt, w, (const char *)p->fused_lrows + rb,
                                            p->fused_list, p->fused_n, &p->states[2 * k], t);
      kl_plan_clear_fused(p); /* frees the list and rows */
      p->fused_steps++;
      p->fused_listed_steps++;
    } else if (k == p->fused_k) {
      p->fused_k = -1; /* the update clears the accumulator */
      kl_optimizer_update_flagged_prechecked(&p->opt, w, p->fused_acc, p->fused_flag,
                                             &p->states[2 * k], t);
      p->fused_steps++;
    } else {
      kl_optimizer_update_prechecked(&p->opt, w, p->wgrad[k], &p->states[2 * k], t);
    }
  }
  p->step = t;
  return KL_OK;
}

/* The update of a device plan (no fused weight: a device plan has none). Every weight's
 * update is checked first, as on the host. Then:
 * - with a backend update (kl_device_backend.opt_update), each weight is updated in place
 *   on the device through kl_optimizer_update_trusted (the backend's kernel, or for a case
 *   it does not cover the host's on copies, written back whole). A weight's update is all
 *   or nothing, but a device error (KL_EDEVICE, or device memory running out inside the
 *   backend) in weight k's update leaves weights 0..k-1 updated: that cannot be rolled back
 *   without a copy of every weight and state a step. The step then fails, the step count
 *   stays, and the model's weights are those of a partial step (reload or retrain).
 * - without one (every update is the host's), the whole step is staged: host copies of each
 *   weight, gradient and states, kl_optimizer_update_trusted on them, the results copied to
 *   new device buffers; only when every weight's result is there do the weights and states
 *   take them (kl_device_assign: a swap of buffers, which cannot fail). Any failure leaves
 *   every weight and state as it was: the step is all or nothing, as on the host. */
static kl_status kl_plan_update_device(kl_plan *p) {
  const int64_t t = p->step + 1;
  const int ns = kl_optimizer_num_states(&p->opt);
  for (int k = 0; k < p->nweights; k++) {
    const kl_tensor *w = p->g->nodes[p->weights[k]].value;
    KL_TRY(kl_optimizer_update_precheck(&p->opt, w, p->wgrad[k], &p->states[2 * k], t, 1));
    KL_CHECK(!w->borrowed, KL_EINVAL, "update: weight %d is a view of another's storage", k + 1);
  }
  const kl_device_backend *be = kl_device_backend_get();
  if (be && be->opt_update) {
    for (int k = 0; k < p->nweights; k++)
      KL_TRY(kl_optimizer_update_trusted(&p->opt, p->g->nodes[p->weights[k]].value, p->wgrad[k],
                                         &p->states[2 * k], t));
    p->step = t;
    return KL_OK;
  }
  /* staged[k * 3]: weight k's new value on the device, then its new states */
  kl_tensor **staged = kl_calloc((size_t)(p->nweights > 0 ? p->nweights : 1) * 3, sizeof *staged);
  if (!staged) return KL_ENOMEM;
  kl_status st = KL_OK;
  for (int k = 0; k < p->nweights && st == KL_OK; k++) {
    kl_tensor *w = p->g->nodes[p->weights[k]].value;
    kl_tensor *hw = NULL, *hg = NULL, *hs[2] = {NULL, NULL};
    st = kl_tensor_to(w, KL_CPU, &hw);
    if (st == KL_OK) st = kl_tensor_to(p->wgrad[k], KL_CPU, &hg);
    for (int i = 0; i < ns && st == KL_OK; i++) st = kl_tensor_to(p->states[2 * k + i], KL_CPU, &hs[i]);
    if (st == KL_OK) st = kl_optimizer_update_trusted(&p->opt, hw, hg, hs, t);
    if (st == KL_OK) st = kl_tensor_to(hw, w->device, &staged[3 * k]);
    for (int i = 0; i < ns && st == KL_OK; i++) st = kl_tensor_to(hs[i], w->device, &staged[3 * k + 1 + i]);
    kl_tensor_release(hw);
    kl_tensor_release(hg);
    kl_tensor_release(hs[0]);
    kl_tensor_release(hs[1]);
  }
  if (st == KL_OK) {
    char what[64];
    snprintf(what, sizeof what, "%s update", kl_optimizer_kind_name(p->opt.kind));
    for (int k = 0; k < p->nweights; k++) {
      kl_tensor *w = p->g->nodes[p->weights[k]].value;
      /* (the checks above and the copies' descriptions make these swaps succeed) */
      kl_device_assign(w, staged[3 * k]);
      for (int i = 0; i < ns; i++) kl_device_assign(p->states[2 * k + i], staged[3 * k + 1 + i]);
      kl_device_note_fallback(what, w->device);
    }
    p->step = t;
  }
  for (int i = 0; i < 3 * p->nweights; i++) kl_tensor_release(staged[i]); /* the old buffers */
  kl_free(staged);
  return st;
}

void kl_plan_drop_step(kl_plan *p) {
  kl_plan_clear_values(p);
  kl_plan_clear_grads(p);
}

/* Gradient hooks (distributed training) read the gradients on the host. */
static kl_status kl_plan_refuse_hook(const kl_plan *p, const char *fn) {
  char b[32];
  return kl_seterr(KL_EUNSUPPORTED,
                   "%s: a gradient hook (distributed training) on a plan on %s is not supported "
                   "yet (NCCL / CUDA-aware MPI): train on the CPU",
                   fn, kl_device_str(p->device, b, sizeof b));
}

kl_status kl_plan_train_step(kl_plan *p, kl_tensor *const *feeds, double *loss) {
  KL_CHECK(p != NULL, KL_EINVAL, "train_step: plan is NULL");
  KL_CHECK(p->loss >= 0, KL_EINVAL, "train_step: the plan has no loss");
  KL_CHECK(p->has_opt, KL_EINVAL, "train_step: the plan has no optimizer");
  /* Every buffer of the step (values, gradients, kernels' scratch) comes from the plan's
   * pool: after the first steps, a step makes no system allocation. */
  kl_pool *prev = kl_pool_enter(p->pool);
  /* The last step's values and gradients die now, before this step allocates: the pool then
   * serves one step's working set at a time, whatever batch came before. */
  kl_plan_drop_step(p);
  /* A failed step changes nothing (kl_plan_update): its dropout draws are taken back too, so
   * the next step draws what it would have without the failure. */
  const size_t nr = (size_t)(p->nnodes > 0 ? p->nnodes : 1);
  memcpy(p->rngs + nr, p->rngs, nr * sizeof *p->rngs);
  kl_status st = kl_plan_run(p, feeds, 1, 1);
  if (st == KL_OK) st = kl_plan_backward(p);
  if (st == KL_OK && p->grad_hook)
    st = p->device == KL_CPU ? p->grad_hook(p->grad_hook_ud, p, p->wgrad, p->nweights)
                             : kl_plan_refuse_hook(p, "train_step");
  if (st == KL_OK) st = kl_plan_update(p);
  if (st != KL_OK) memcpy(p->rngs, p->rngs + nr, nr * sizeof *p->rngs);
  kl_pool_leave(prev);
  if (st == KL_OK && loss) *loss = p->loss_value;
  return st;
}

kl_device kl_plan_device(const kl_plan *p) { return p ? p->device : KL_CPU; }

kl_tensor *kl_plan_weight(const kl_plan *p, int k) {
  if (!p || k < 0 || k >= p->nweights) return NULL;
  return p->g->nodes[p->weights[k]].value;
}

int64_t kl_plan_batch_rows(const kl_plan *p) {
  if (!p || p->nfeeds < 1 || !p->vals) return 0;
  const kl_tensor *f = p->vals[p->feeds[0]];
  return f && f->ndim >= 1 ? f->shape[0] : 0;
}

void kl_plan_set_grad_hook(kl_plan *p, kl_grad_hook_fn fn, void *ud, void (*free_ud)(void *)) {
  if (!p) return;
  if (p->grad_hook_free) p->grad_hook_free(p->grad_hook_ud);
  p->grad_hook = fn;
  p->grad_hook_ud = fn ? ud : NULL;
  p->grad_hook_free = fn ? free_ud : NULL;
}

void *kl_plan_grad_hook_ud(const kl_plan *p, kl_grad_hook_fn fn) {
  return p && p->grad_hook && p->grad_hook == fn ? p->grad_hook_ud : NULL;
}

/* A zero gradient for weight k: row_sparse with no rows, or dense zeros. */
static kl_status kl_zero_grad(const kl_plan *p, int k, kl_tensor **out) {
  const kl_tensor *w = p->g->nodes[p->weights[k]].value;
  if (p->gstype[k] == KL_STYPE_ROW_SPARSE)
    return kl_tensor_new_rsp(w->dtype, w->ndim, w->shape, 0, out);
  return kl_tensor_new_dense(w->dtype, w->ndim, w->shape, out);
}

/* The hooked node whose backward node id runs (itself, or the Embedding of its fused mean),
 * or -1. */
static int kl_plan_ext_trigger(const kl_plan *p, int id) {
  const int e = p->bag_src[id] >= 0 ? p->bag_src[id] : id;
  return p->ext[e] && !p->bag_skip[id] ? e : -1;
}

/* An empty step's node hooks, called as a step with rows calls them: the forwards in node
 * order, then the backwards in reverse order of the nodes that run them; the gradients the
 * backwards give go into wgrad. */
static kl_status kl_plan_ext_empty(kl_plan *p) {
  const kl_graph *g = p->g;
  for (int q = 0; q < p->norder; q++) {
    const int id = p->order[q];
    if (!p->ext[id] || (!p->need_loss[id] && !p->need_out[id])) continue;
    struct kl_plan_ext *e = p->ext[id];
    kl_ext_clear_subs(e);
    kl_status st = e->ops.forward(e->ud, p, id, NULL, g->nodes[id].nin, e->subs);
    kl_ext_clear_subs(e);
    if (st != KL_OK) return st;
  }
  for (int q = p->norder - 1; q >= 0; q--) {
    const int id = p->order[q];
    if (!p->needs_grad[id] || g->nodes[id].kind != KL_NODE_OP) continue;
    const int e = kl_plan_ext_trigger(p, id);
    if (e < 0) continue;
    int nin;
    const int *in_ids = kl_node_inputs(&g->nodes[e], &nin);
    for (int i = 0; i < nin; i++) {
      const int k = p->wslot[in_ids[i]];
      if (!p->needs_grad[in_ids[i]]) continue;
      kl_tensor *gin = NULL;
      KL_TRY(kl_plan_ext_backward(p, e, i, &gin));
      if (!gin) continue;
      if (k < 0) { /* not a trained weight: nothing takes it */
        kl_tensor_release(gin);
        continue;
      }
      KL_TRY(kl_grad_accumulate(&p->wgrad[k], gin));
      KL_TRY(kl_to_stype(&p->wgrad[k], p->gstype[k]));
    }
  }
  return KL_OK;
}

kl_status kl_plan_train_step_empty(kl_plan *p) {
  KL_CHECK(p != NULL, KL_EINVAL, "train_step: plan is NULL");
  KL_CHECK(p->has_opt, KL_EINVAL, "train_step: the plan has no optimizer");
  KL_CHECK(p->grad_hook != NULL, KL_EINVAL, "train_step: an empty step needs a gradient hook");
  if (p->device != KL_CPU) return kl_plan_refuse_hook(p, "train_step");
  kl_pool *prev = kl_pool_enter(p->pool);
  kl_plan_drop_step(p);
  kl_status st = KL_OK;
  for (int k = 0; k < p->nweights && st == KL_OK; k++) st = kl_zero_grad(p, k, &p->wgrad[k]);
  if (st == KL_OK && p->ext) st = kl_plan_ext_empty(p);
  if (st == KL_OK) st = p->grad_hook(p->grad_hook_ud, p, p->wgrad, p->nweights);
  if (st == KL_OK) st = kl_plan_update(p);
  kl_pool_leave(prev);
  return st;
}

int kl_plan_num_states(const kl_plan *p, int k) {
  if (!p || !p->has_opt || k < 0 || k >= p->nweights) return 0;
  return kl_optimizer_num_states(&p->opt);
}

kl_tensor *kl_plan_state(const kl_plan *p, int k, int s) {
  if (s < 0 || s >= kl_plan_num_states(p, k)) return NULL;
  return p->states[2 * k + s];
}

int64_t kl_plan_step_count(const kl_plan *p) { return p ? p->step : 0; }

void kl_plan_set_step_count(kl_plan *p, int64_t t) {
  if (p && t >= 0) p->step = t;
}

void kl_plan_set_learning_rate(kl_plan *p, double lr) {
  if (p) p->opt.learning_rate = lr;
}

kl_status kl_plan_set_node_ext(kl_plan *p, int node, const kl_node_ext *ext, void *ud) {
  KL_CHECK(p != NULL, KL_EINVAL, "plan_set_node_ext: plan is NULL");
  KL_CHECK(node >= 0 && node < p->nnodes, KL_EINDEX,
           "plan_set_node_ext: node %d out of range [0, %d)", node, p->nnodes);
  const kl_node *nd = &p->g->nodes[node];
  KL_CHECK(nd->kind == KL_NODE_OP, KL_EINVAL, "plan_set_node_ext: node %d is not an op", node);
  KL_CHECK(nd->nin <= KL_NODE_EXT_MAXIN, KL_EINVAL,
           "plan_set_node_ext: node %d has %d inputs (at most %d)", node, nd->nin,
           KL_NODE_EXT_MAXIN);
  KL_CHECK(!ext || ext->forward, KL_EINVAL, "plan_set_node_ext: ext->forward is NULL");
  if (ext && p->device != KL_CPU) {
    char b[32];
    return kl_seterr(KL_EUNSUPPORTED,
                     "plan_set_node_ext: a node hook (a sharded Embedding) on a plan on %s is "
                     "not supported yet: train on the CPU",
                     kl_device_str(p->device, b, sizeof b));
  }
  if (!p->ext) {
    if (!ext) return KL_OK;
    p->ext = kl_calloc((size_t)p->nnodes, sizeof *p->ext);
    if (!p->ext) return KL_ENOMEM;
  }
  struct kl_plan_ext *e = NULL;
  if (ext) {
    e = kl_calloc(1, sizeof *e);
    if (!e) return KL_ENOMEM;
    e->ops = *ext;
    e->ud = ud;
  }
  kl_ext_free(p->ext[node]); /* the old hook's state goes, after the new one could be made */
  p->ext[node] = e;
  /* the last run's values no longer match the hook */
  kl_plan_clear_values(p);
  return KL_OK;
}

void *kl_plan_node_ext_ud(const kl_plan *p, int node) {
  if (!p || !p->ext || node < 0 || node >= p->nnodes || !p->ext[node]) return NULL;
  return p->ext[node]->ud;
}
