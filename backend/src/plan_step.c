/* plan_step.c: a plan's reverse-mode backward (the fused gradient of fit included), the
 * optimizer's update (host and device), the training step, empty steps and gradient hooks. */
#include <stdio.h>
#include <string.h>

#include "device_internal.h"
#include "ops_internal.h"
#include "optim_internal.h"
#include "plan_internal.h"
#include "tensor_internal.h"

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

/* Converts *t to stype in place of the reference (no-op when it already is). */
static kl_status kl_to_stype(kl_tensor **t, kl_stype stype) {
  if ((*t)->stype == stype) return KL_OK;
  kl_tensor *c = NULL;
  KL_TRY(kl_tensor_tostype(*t, stype, &c));
  kl_tensor_release(*t);
  *t = c;
  return KL_OK;
}

/* x * mask (a dropout's backward): kl_mul_dense on the host, KL_OP_MUL on a device. */
static kl_status kl_plan_mul_mask(const kl_plan *p, const kl_tensor *x, kl_tensor *mask,
                                  kl_tensor **out) {
  if (p->device == KL_CPU) return kl_mul_dense(x, mask, out);
  kl_tensor *in[2] = {(kl_tensor *)x, mask};
  return kl_op_run(KL_OP_MUL, in, 2, NULL, out);
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
    kl_plan_ext_clear_subs(e);
    kl_status st = e->ops.forward(e->ud, p, id, NULL, g->nodes[id].nin, e->subs);
    kl_plan_ext_clear_subs(e);
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
