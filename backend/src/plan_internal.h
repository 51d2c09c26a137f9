/* plan_internal.h: the compiled plan's layout and the helpers its files share (plan.c,
 * plan_forward.c, plan_step.c, plan_grad.c, plan_fit.c, plan_linear.c). */
#ifndef KL_PLAN_INTERNAL_H
#define KL_PLAN_INTERNAL_H
#include "graph_internal.h"
#include "kl/pool.h"

struct kl_plan {
  kl_graph *g;            /* one reference (kl_graph_retain): the plan keeps its graph alive */
  int refs;               /* the creator's reference, + one per running fit / evaluate */
  int nnodes;             /* graph size when compiled; ids below it */
  int *feeds, nfeeds;
  int *outputs, noutputs;
  int loss;
  int *weights, nweights;
  kl_stype *gstype;       /* per weight: the gradient stype handed to the optimizer */
  int *wslot;             /* per node: weight index or -1 */
  int has_opt;
  kl_optimizer opt;
  kl_tensor **states;     /* 2 per weight */
  int64_t step;
  int *order, norder;     /* nodes needed for outputs or loss, ascending ids */
  unsigned char *need_out, *need_loss, *needs_grad;
  kl_tensor **vals;       /* per node: the last forward's value (one reference) */
  kl_tensor **grads;      /* per node: the gradient being accumulated */
  kl_tensor **wgrad;      /* per weight: the last backward's gradient */
  kl_tensor **masks;      /* per node: dropout mask of the last training forward */
  kl_rng *rngs;           /* per node: dropout generator, seeded from the node's seed;
                           * rngs[nnodes + id]: its state before the current training step */
  kl_tensor **ins;        /* scratch: one node's inputs (as many as the widest node has) */
  int fwd_done, fwd_loss; /* the last forward ran; it computed the loss */
  double loss_value;
  kl_pool *pool;          /* buffers of training steps (kl/pool.h); NULL when pools are off
                           * and for a device plan */
  kl_device device;       /* where the plan computes (kl_plan_spec.device); KL_CPU: the host
                           * paths, fused steps and pool included */
  kl_tensor *dev_one;     /* a device plan's seed gradient of the loss (ones, on the device),
                           * made by the first backward and kept */
  /* The fused step (fit only): the weight whose gradient csr^T . G was left in the pool's
   * kept accumulator for its update (no compact gradient made), or -1. */
  kl_grad_hook_fn grad_hook; /* between backward and update (kl_plan_set_grad_hook) */
  void *grad_hook_ud;
  void (*grad_hook_free)(void *);
  int fuse_ok;            /* set by the fit loop: no one reads this step's gradients */
  int fused_k;
  uint32_t *fused_flag;   /* fused_rows flags */
  void *fused_acc;        /* fused_rows x row width values */
  int64_t fused_rows;
  size_t fused_bytes;
  int64_t fused_steps;    /* updates done fused (for tests) */
  /* the listed fused step (a wider weight): fused_list (fused_n touched rows, first-touch
   * order) and fused_lrows (their gradient rows from row 1: kl_dot_csrT_listed), owned by
   * the plan until the update; fused_list NULL: the flagged step above */
  int64_t *fused_list;
  void *fused_lrows;
  int64_t fused_n;
  int64_t fused_listed_steps; /* of fused_steps, those listed (for tests) */
  /* Embedding -> mean fusion (kl_embedding_mean): per node, for a fused mean the Embedding
   * node it reads (whose value is then never made), else -1; skip marks those Embeddings. */
  int *bag_src;
  unsigned char *bag_skip;
  int nbags;              /* fused pairs (for tests) */
  /* The linear step (plan_linear.c): the plan is a linear model on a csr input, and fit's
   * steps over in-memory data run without tensors (bench/README item 19); NULL: it is not. */
  struct kl_linear *lin;
  int64_t lin_steps;      /* steps done by it (for tests) */
  /* Node hooks (kl_plan_set_node_ext): NULL when the plan has none, else per node NULL or
   * the hook with the substitute inputs of the last forward. */
  struct kl_plan_ext **ext;
};

/* Adds gin into *acc (taking over gin's reference): dense + dense, dense + row_sparse and
 * row_sparse + row_sparse (rows merged). *acc NULL: *acc = gin. */
kl_status kl_grad_accumulate(kl_tensor **acc, kl_tensor *gin);
/* Dense product x * mask (same shape) into a new tensor. */
kl_status kl_mul_dense(const kl_tensor *x, const kl_tensor *mask, kl_tensor **out);
/* Releases the last run's values and gradients (kl_plan_output/kl_plan_grad read NULL). */
void kl_plan_drop_step(kl_plan *p);
/* Runs the forward over the needed nodes; want_loss also computes the loss's ancestors. */
kl_status kl_plan_run(kl_plan *p, kl_tensor *const *feeds, int training, int want_loss);

/* A node hook and its substitutes (kl_plan_set_node_ext). */
struct kl_plan_ext {
  kl_node_ext ops;
  void *ud;
  kl_tensor *subs[KL_NODE_EXT_MAXIN];
};

/* Releases hook e's substitute inputs (plan.c). */
void kl_plan_ext_clear_subs(struct kl_plan_ext *e);
/* Releases the last forward's values of the plan's nodes (plan_forward.c). */
void kl_plan_clear_values(kl_plan *p);
/* A dense reshape of x into a new tensor, kept on x's device (plan_forward.c; the forward of a
 * reshape node and its backward). */
kl_status kl_plan_reshape(const kl_tensor *x, int ndim, const int64_t *shape, kl_tensor **out);

/* The gradient stype input node in_id asks its consumer for. */
static inline kl_stype kl_plan_want(const kl_plan *p, int in_id) {
  int k = p->wslot[in_id];
  return k >= 0 ? p->gstype[k] : KL_STYPE_DEFAULT;
}

/* Node id's input values into ins[0..nin-1]: the hook's substitutes where it made some.
 * Inline: the forward and the backward call it for every node of every step. */
static inline void kl_plan_node_ins(const kl_plan *p, int id, kl_tensor **ins) {
  const kl_node *nd = &p->g->nodes[id];
  int nin;
  const int *in_ids = kl_node_inputs(nd, &nin);
  const struct kl_plan_ext *e = p->ext ? p->ext[id] : NULL;
  for (int i = 0; i < nin; i++)
    ins[i] = e && i < KL_NODE_EXT_MAXIN && e->subs[i] ? e->subs[i] : p->vals[in_ids[i]];
}
#endif
