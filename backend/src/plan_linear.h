/* plan_linear.h: the linear step of fit (plan_linear.c) and the optimizer entry points it
 * uses (optim_update.c). */
#ifndef KL_PLAN_LINEAR_H
#define KL_PLAN_LINEAR_H
#include "kl/graph.h"
#include "kl/optim.h"

/* ------------------------------------------------------------ plan_linear.c */

/* Recognises a plan that is a linear model on a csr input (bench/README item 19):
 * loss(y, [sigmoid](bias_add(dot(x, W), b))) with loss mse or binary_crossentropy
 * (optionally a sample-weight placeholder), x a csr placeholder, W (C x 1) a dense or
 * row_sparse weight with a row_sparse gradient, b an optional (1) bias, a lazy optimizer,
 * on the CPU and nothing else in the plan. Sets p->lin (NULL when the plan is not one). */
kl_status kl_linear_detect(kl_plan *p);
void kl_linear_free(kl_plan *p);
/* Whether fit's loop may run its steps as kl_linear_step over this data: a linear plan with
 * no gradient or node hook, one csr input and labels of the placeholders' types, no sample
 * weights, no metrics, one part. */
int kl_linear_applies(const kl_plan *p, kl_tensor *const *x, int nx, const kl_tensor *y,
                      const kl_epoch_opts *o);
/* One training step on rows [b, e) of x and y (rows perm[b..e) with perm): the same bits as
 * kl_plan_train_step on those rows (weights, states, step count, loss), without making a
 * tensor. *done = 0 (and KL_OK) when it did nothing and the general step must run (a label
 * out of range, a weight replaced by one it cannot take, scratch it could not allocate). */
kl_status kl_linear_step(kl_plan *p, const kl_tensor *x, const kl_tensor *y,
                         const int64_t *perm, int64_t b, int64_t e, double *loss, int *done);

/* For tests: whether the plan's linear-step marks are all zero, as between steps: the
 * touched-column bits, and the direct accumulator's flags and sums (1 when the plan has no
 * linear step). O(W's rows). */
int kl_linear_clean(const kl_plan *p);
/* For tests: how many of the plan's linear steps ran on more than one thread. */
int64_t kl_linear_par_steps(const kl_plan *p);

/* The optimizer's side (optim_update.c): optim_hyper.h. */
#endif
