/* graph.h: symbolic graphs, reverse-mode autograd, compiled plans and the C training loop. */
#ifndef KL_GRAPH_H
#define KL_GRAPH_H

#include "kl/kl.h"
#include "kl/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A graph owns its nodes; node ids are small non-negative ints, stable for the graph's
 * life. Nodes only ever reference earlier nodes, so ids are a topological order.
 * A dimension of -1 in a meta is the unknown batch dimension. */
typedef struct kl_graph kl_graph;

typedef enum kl_node_kind {
  KL_NODE_PLACEHOLDER = 0, /* fed at run time (model inputs, targets) */
  KL_NODE_VARIABLE,        /* holds a tensor (weights); trainable or not */
  KL_NODE_CONSTANT,        /* holds a tensor, never trained */
  KL_NODE_OP,              /* a registry op (kl_op) on earlier nodes */
  KL_NODE_RESHAPE,         /* dense reshape; -1 in the target is the batch dim */
  KL_NODE_DROPOUT,         /* inverted dropout when training, identity otherwise */
  KL_NODE_CAST             /* storage cast (K.to_dense): the value in meta.stype */
} kl_node_kind;

kl_status kl_graph_new(kl_graph **out);
/* Graphs and plans are reference-counted: kl_graph_new / kl_plan_new return one reference;
 * kl_graph_free / kl_plan_free drop one (NULL-safe) and free at the last, releasing every
 * tensor held. A plan holds a reference to its graph, and a running fit / evaluate holds
 * one to its plan, so neither is freed under the other whatever order the caller drops
 * them in. The counts are not atomic: a graph and its plans belong to one thread. */
void kl_graph_free(kl_graph *g);
kl_graph *kl_graph_retain(kl_graph *g); /* returns g; NULL-safe */
int kl_graph_size(const kl_graph *g);

/* meta->shape may hold -1 for the batch dim (placeholders only). */
kl_status kl_graph_placeholder(kl_graph *g, const kl_meta *meta, const char *name, int *id);
/* The graph retains value; updates to the tensor (optimizer steps) are seen by every run. */
kl_status kl_graph_variable(kl_graph *g, kl_tensor *value, int trainable, const char *name,
                            int *id);
kl_status kl_graph_constant(kl_graph *g, kl_tensor *value, int *id);
/* Appends op over inputs; runs shape/stype inference (with the batch dim unknown) and
 * returns its error if the inputs do not fit (e.g. "dot: shape mismatch ..."). */
kl_status kl_graph_op(kl_graph *g, kl_op op, const int *inputs, int nin, const kl_attrs *a,
                      int *id);
/* shape may hold one -1, taking the batch dimension (Flatten: {-1, 784}). */
kl_status kl_graph_reshape(kl_graph *g, int input, int ndim, const int64_t *shape, int *id);
kl_status kl_graph_dropout(kl_graph *g, int input, double rate, uint64_t seed, int *id);
/* The input converted to stype (csr needs 2-d); the gradient flows back dense. */
kl_status kl_graph_cast(kl_graph *g, int input, kl_stype stype, int *id);

kl_status kl_graph_meta(const kl_graph *g, int id, kl_meta *out);
kl_node_kind kl_graph_kind(const kl_graph *g, int id);
/* The tensor held by a variable or constant (borrowed), NULL for other nodes. */
kl_tensor *kl_graph_value(const kl_graph *g, int id);
/* Replaces a variable's tensor (set_weights, load): meta must match. Retains value. */
kl_status kl_graph_set_value(kl_graph *g, int id, kl_tensor *value);

/* ---------------------------------------------------------------- plans */

/* A compiled plan: the nodes needed for outputs (and loss), in order, with their buffers,
 * the backward schedule for the trainable variables, and optimizer state.
 * Created by kl_plan_new; everything per step is then one call. */
typedef struct kl_plan kl_plan;

typedef struct kl_plan_spec {
  const int *feeds;   int nfeeds;   /* placeholders, in the order tensors are passed */
  const int *outputs; int noutputs; /* nodes whose values run() returns */
  int loss;                         /* 0-d loss node, or -1 for inference-only plans */
  const int *weights; int nweights; /* variables to differentiate / train */
  const kl_stype *grad_stypes;      /* per weight: DEFAULT or ROW_SPARSE (may be NULL) */
  const kl_optimizer *optimizer;    /* copied; NULL: no training */
  /* Where the plan computes (kl/device.h): KL_CPU (0, the default of a zero-filled spec) or
   * a device. The trained weights must already be there (kl_tensor_move), and the optimizer
   * states are made there. Feeds may be host tensors: each is copied to the device at the
   * step; other variables and constants not on the device are copied to it at each forward.
   * Outputs (kl_plan_output), gradients and states stay on the device; the loss is read with
   * one small copy to the host; fit / evaluate read the metrics' outputs through host copies
   * and predict returns host tensors. A device plan never takes the CPU-only paths: the fused
   * csr^T step, the Embedding -> mean fusion and the buffer pool (kl/pool.h). Gradient and
   * node hooks (distributed training) are refused on a device. */
  kl_device device;
} kl_plan_spec;

kl_status kl_plan_new(kl_graph *g, const kl_plan_spec *spec, kl_plan **out);
/* The device the plan computes on (kl_plan_spec.device); KL_CPU for NULL. */
kl_device kl_plan_device(const kl_plan *p);
void kl_plan_free(kl_plan *p); /* drops one reference (see kl_graph_free); NULL-safe */
kl_plan *kl_plan_retain(kl_plan *p); /* returns p; NULL-safe */
/* Turns the plan's op fusions (an Embedding whose only use is a mean over its ids' axis,
 * computed as one pass: no (n, L, D) output; and fit's linear step for a Dense(1[, sigmoid])
 * model on csr rows, plan_linear.c) on or off for later kl_plan_new calls;
 * returns the previous setting. Results do not depend on it (the same bits): it exists to
 * prove that. On by default; env KL_NO_FUSE=1 at the first call turns it off. */
int kl_plan_set_fuse_enabled(int on);

/* Forward over feeds (one tensor per spec->feeds entry; shapes checked against the
 * placeholders, batch dim free). training != 0 enables dropout. */
kl_status kl_plan_forward(kl_plan *p, kl_tensor *const *feeds, int training);
/* Value of output k (borrowed, valid until the next run) after a forward. */
kl_tensor *kl_plan_output(const kl_plan *p, int k);
/* Loss value after a forward (plans with a loss). */
double kl_plan_loss(const kl_plan *p);
/* Backward from the loss into the weights' gradients (borrowed, valid until next run). */
kl_status kl_plan_backward(kl_plan *p);
kl_tensor *kl_plan_grad(const kl_plan *p, int k);
/* The value of weight k (borrowed; the graph's variable), NULL when out of range. */
kl_tensor *kl_plan_weight(const kl_plan *p, int k);
/* Rows of the last forward's first feed (the batch a step trained on), 0 before any. */
int64_t kl_plan_batch_rows(const kl_plan *p);

/* The gradient hook (data parallelism, distributed/): every training step (train_step and
 * the fit loop) calls it after the backward and before the update, with the step's
 * gradients, one per weight: wgrad[k] is dense or row_sparse (as the plan's grad stypes say)
 * and may be replaced by the hook (release the old one, store a new one: an aggregated
 * gradient). A non-OK status fails the step before any weight is touched. While a hook is
 * set, the fit loop's fused update is off (each gradient is made for the hook to see). NULL
 * fn removes it. The hook runs inside the plan's pool (kl/pool.h): what it allocates for
 * the step dies with the step; buffers it keeps must come from the system
 * (kl_pool_enter(NULL) around their allocation). The plan owns ud: free_ud(ud) (may be
 * NULL) runs when the hook is replaced or removed and when the plan is freed, so the hook's
 * state lives exactly as long as the plan can call it. */
typedef kl_status (*kl_grad_hook_fn)(void *ud, kl_plan *p, kl_tensor **wgrad, int nweights);
void kl_plan_set_grad_hook(kl_plan *p, kl_grad_hook_fn fn, void *ud, void (*free_ud)(void *));
/* The hook's state, or NULL when none (or another function's) is set. */
void *kl_plan_grad_hook_ud(const kl_plan *p, kl_grad_hook_fn fn);
/* Node hooks (distributed/: Embedding{sharded = true}, whose rows live on other processes):
 * a hook on op node `node` lets the node run on substitute inputs and rewrites the gradient
 * its backward computes for them. In every forward that evaluates the node (also as the
 * Embedding of a fused Embedding -> mean), before it runs: forward(ud, p, node, ins, nin,
 * subs) with the inputs' values; it may store a new reference in subs[i] (NULL: input i as
 * it is); the node then reads the substitutes, which live until the plan's next run. After
 * the backward computed the gradient *g of input i from the substitutes: backward(ud, p,
 * node, i, g) may replace *g (release the old reference, store a new one: the gradient of
 * the original input). In kl_plan_train_step_empty, forward is called with ins == NULL
 * (no rows: subs must be left NULL) and backward with *g == NULL (it may store a
 * gradient), in the order a step with rows would call them, so hooks that run collectives
 * stay matched. A non-OK status fails the step. The plan owns ud: free_ud(ud) (may be NULL)
 * runs when the hook is replaced or removed and with the plan. NULL ext removes the hook.
 * Errors: node not an op, or with more than KL_NODE_EXT_MAXIN inputs. Plans without hooks
 * pay one NULL test per node. On failure ud is not taken (the caller frees it). */
#define KL_NODE_EXT_MAXIN 4
typedef struct kl_node_ext {
  kl_status (*forward)(void *ud, kl_plan *p, int node, kl_tensor *const *ins, int nin,
                       kl_tensor **subs);
  kl_status (*backward)(void *ud, kl_plan *p, int node, int i, kl_tensor **g);
  void (*free_ud)(void *ud);
} kl_node_ext;
kl_status kl_plan_set_node_ext(kl_plan *p, int node, const kl_node_ext *ext, void *ud);
/* The hook state of node `node`, or NULL when it has none. */
void *kl_plan_node_ext_ud(const kl_plan *p, int node);
/* A training step on no rows (a data-parallel rank whose share of a global batch is empty):
 * every weight's gradient is zero (row_sparse with no rows, or dense zeros), the hook runs
 * on them and the update follows, so this rank takes part in the same collectives and
 * applies the same aggregated step as the others. Needs a hook. */
kl_status kl_plan_train_step_empty(kl_plan *p);
/* One training step: forward (training), backward, optimizer update of every weight. All or
 * nothing: a failed step leaves weights, optimizer states, the step count and the dropout
 * generators as they were. On a device this holds when the updates are the host's (no
 * backend update); with the backend's in-place update, a device error in one weight's update
 * leaves the weights updated before it changed (plan_step.c, kl_plan_update_device). */
kl_status kl_plan_train_step(kl_plan *p, kl_tensor *const *feeds, double *loss);
/* Optimizer state access (model files, set_weights): state s of weight k (borrowed). */
int kl_plan_num_states(const kl_plan *p, int k);
kl_tensor *kl_plan_state(const kl_plan *p, int k, int s);
int64_t kl_plan_step_count(const kl_plan *p);
void kl_plan_set_step_count(kl_plan *p, int64_t t);
void kl_plan_set_learning_rate(kl_plan *p, double lr);

/* One epoch over in-memory data, the batch loop in C. x[0..nx-1] feed spec->feeds[0..nx-1]
 * (dense or CSR, all with n rows), y feeds spec->feeds[nx] (the target). Batches of
 * batch_size rows in order, or in a permutation drawn from rng when shuffle; the last
 * partial batch is trained on. Losses and metrics are averaged over samples. */
typedef struct kl_epoch_opts {
  int64_t batch_size;
  int shuffle;               /* 0, 1 (rows), or KL_SHUFFLE_BATCH (Keras' "batch") */
  kl_rng *rng;
  int nmetrics;
  const int *metrics;        /* kl_metric values (kl/layers.h), on output 0 vs y */
  /* Called after each batch with running averages; return nonzero to stop the epoch.
   * metric_avgs has nmetrics entries. NULL: no calls. */
  int (*on_batch)(void *ud, int64_t batch, int64_t seen, int64_t total, double loss_avg,
                  const double *metric_avgs);
  void *ud;
  /* More data batched like y and fed after it (the plan's feeds nx+1 ...): further targets
   * (a model with several outputs), then per-row sample weights. A NULL entry feeds an
   * empty tensor of its placeholder's dtype, which a loss op takes as "no weights". Each
   * loss op's labels and weights are checked over the whole data first (rows of the data,
   * not of a shuffled batch, in the errors: kl_loss_check_data). */
  int nextra;
  kl_tensor *const *extra;
  /* Per metric: the plan output it reads and the target it compares with (0: y, j >= 1:
   * extra[j-1]); NULL: output 0 and y. The metric KL_EPOCH_OUTPUT_MEAN instead averages
   * output metric_outputs[m], a 0-d value (one output's loss), over samples as the loss. */
  const int *metric_outputs;
  const int *metric_targets;
  /* Per metric: its kl_metric_acc parameter (AUC's num_thresholds, top-k's k); NULL or 0:
   * the default. */
  const int64_t *metric_params;
  /* Data parallelism (distributed/, fit only): this process is part `part` (0-based) of
   * `nparts`; of each batch's rows [b, e) (after the shuffle, which must then be the same
   * on every part) it trains on [b + (e-b)*part/nparts, b + (e-b)*(part+1)/nparts): the
   * plan's gradient hook sums the parts' shares into the global batch's step. A part whose
   * share is empty steps with zero gradients (kl_plan_train_step_empty). on_batch then sees
   * the global counts (seen = e, total = n) and this part's running loss and metrics; the
   * epoch's averages are this part's (the caller combines the parts'). nparts 0 or 1: the
   * whole batch. */
  int part, nparts;
} kl_epoch_opts;
#define KL_EPOCH_OUTPUT_MEAN (-1)
/* shuffle = KL_SHUFFLE_BATCH: Keras' shuffle="batch": the order of the whole batches is
 * shuffled, rows within a batch kept in order, the last partial batch last. */
#define KL_SHUFFLE_BATCH 2
/* Trains one epoch; *loss_avg and metric_avgs[nmetrics] receive the epoch's averages. */
kl_status kl_plan_fit_epoch(kl_plan *p, kl_tensor *const *x, int nx, const kl_tensor *y,
                            const kl_epoch_opts *o, double *loss_avg, double *metric_avgs);
/* Loss and metrics over data without training (evaluate), batched. */
kl_status kl_plan_evaluate(kl_plan *p, kl_tensor *const *x, int nx, const kl_tensor *y,
                           const kl_epoch_opts *o, double *loss_avg, double *metric_avgs);
/* Output 0 over data, batched, rows concatenated into a new dense tensor (predict). */
kl_status kl_plan_predict(kl_plan *p, kl_tensor *const *x, int nx, int64_t batch_size,
                          kl_tensor **out);
/* Every output (nout <= the plan's outputs) over data, batched, into outs[0..nout-1]. */
kl_status kl_plan_predict_outputs(kl_plan *p, kl_tensor *const *x, int nx, int64_t batch_size,
                                  int nout, kl_tensor **outs);

#ifdef __cplusplus
}
#endif
#endif /* KL_GRAPH_H */
