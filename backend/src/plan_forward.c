/* plan_forward.c: a plan's forward: feeds, dropout, each node's value, the outputs and loss. */
#include <math.h>
#include <string.h>

#include "device_internal.h"
#include "ops_internal.h"
#include "plan_internal.h"
#include "tensor_internal.h"

void kl_plan_clear_values(kl_plan *p) {
  for (int i = 0; i < p->norder; i++) {
    int id = p->order[i];
    kl_tensor_release(p->vals[id]);
    p->vals[id] = NULL;
    if (p->ext && p->ext[id]) kl_plan_ext_clear_subs(p->ext[id]);
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

/* A dense reshape. On a device the copy stays there (kl_tensor_reshape would copy through
 * the host): the checks read only the description. */
kl_status kl_plan_reshape(const kl_tensor *x, int ndim, const int64_t *shape,
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

/* The hook of node id before it runs: its substitute inputs (or, ins NULL, no rows). */
static kl_status kl_plan_ext_forward(kl_plan *p, int id) {
  struct kl_plan_ext *e = p->ext[id];
  const kl_node *nd = &p->g->nodes[id];
  kl_tensor *ins[KL_NODE_EXT_MAXIN];
  for (int i = 0; i < nd->nin; i++) ins[i] = p->vals[nd->inputs[i]];
  kl_plan_ext_clear_subs(e);
  kl_status st = e->ops.forward(e->ud, p, id, ins, nd->nin, e->subs);
  if (st != KL_OK) kl_plan_ext_clear_subs(e);
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
