/* plan.c: building a compiled plan (spec checks, node order, Embedding -> mean fusion),
 * freeing it, and its accessors and setters; the forward is plan_forward.c, the backward,
 * update and training step plan_step.c. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kl/device.h"
#include "ops_internal.h"
#include "plan_internal.h"
#include "plan_linear.h"

void kl_plan_ext_clear_subs(struct kl_plan_ext *e) {
  for (int i = 0; i < KL_NODE_EXT_MAXIN; i++) {
    kl_tensor_release(e->subs[i]);
    e->subs[i] = NULL;
  }
}

static void kl_ext_free(struct kl_plan_ext *e) {
  if (!e) return;
  kl_plan_ext_clear_subs(e);
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
 * the 256 x 20 x 64 output and its gradient (1.3 MB each, a step) are never made. The same
 * on a device whose backend has the fused kernels (gpu/: k_embedding.cu's), which
 * kl_embedding_mean and its backward call for device tensors. */
static kl_status kl_plan_find_bags(kl_plan *p) {
  const kl_graph *g = p->g;
  const size_t un = (size_t)(p->nnodes > 0 ? p->nnodes : 1);
  p->bag_src = kl_malloc_n(un, sizeof *p->bag_src);
  p->bag_skip = kl_calloc(un, 1);
  if (!p->bag_src || !p->bag_skip) return KL_ENOMEM;
  for (int i = 0; i < p->nnodes; i++) p->bag_src[i] = -1;
  if (!kl_fuse_enabled()) return KL_OK;
  /* a device plan: the backend's fused kernels (kl_device_backend.embedding_mean), where it
   * has them and its op table claims both ops; else it runs the two ops */
  const kl_device_backend *be = p->device != KL_CPU ? kl_device_backend_get() : NULL;
  if (p->device != KL_CPU &&
      !(be && be->embedding_mean && be->embedding_mean_backward && be->ops &&
        be->nops > KL_OP_EMBEDDING && be->ops[KL_OP_EMBEDDING]))
    return KL_OK;
  for (int q = 0; q < p->norder; q++) {
    const int id = p->order[q];
    const kl_node *nd = &g->nodes[id];
    const int masked = nd->kind == KL_NODE_OP && nd->op == KL_OP_MASKED_MEAN && nd->nin == 2;
    if (!masked && (nd->kind != KL_NODE_OP || nd->op != KL_OP_MEAN || nd->nin != 1 ||
                    !nd->attrs.has_axis || nd->attrs.axis != 1 || nd->attrs.keepdims))
      continue;
    if (be && (be->nops <= (int)nd->op || !be->ops[nd->op])) continue;
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
