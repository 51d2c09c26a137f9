/* optim_hyper.h: an update's hyperparameters resolved once (optim_update.c; the row rules of
 * optim_rows.h; the linear step of plan_linear.c calls the 1-wide row loop with them). */
#ifndef KL_OPTIM_HYPER_H
#define KL_OPTIM_HYPER_H
#include "kl/optim.h"

/* Hyperparameters of one update, resolved once (Adam's lr_t needs the step). */
typedef struct opt_hyper {
  kl_opt_kind kind;
  double lr, mom, wd, clip, rescale, b1, b2, eps, lr_t, rho, lamda1, beta, l2, lr_power;
  int has_mom, nesterov;
} opt_hyper;

/* The hyperparameters of optimizer o's update at step t (>= 1). */
void kl_opt_hyper_of(const kl_optimizer *o, int64_t t, opt_hyper *h);
/* The lazy update of the 1-wide rows list[i0..i1) of w (f32 or f64, every row stored) from
 * gradient values g[i0..i1) (row list[i] takes g[i]), states s0 / s1 (NULL when the rule has
 * none): optim_update.c's row loop on one thread, the same bits as kl_optimizer_update's.
 * list holds distinct rows. pf: prefetch distance in rows (0: none). */
void kl_opt_rows1(const opt_hyper *h, kl_dtype dt, void *w, const void *g, void *s0, void *s1,
                  const int64_t *list, int64_t i0, int64_t i1, int64_t pf);
/* The flagged lazy update of rows [c0, c1) of w (row width rw): the rows c with flag[c] != 0
 * take gradient acc[c * rw ..]; acc and flag are cleared over the range (optim_rows.h
 * opt_flagged, on one thread: kl_optimizer_update_flagged's bits). */
void kl_opt_flagged_range(const opt_hyper *h, kl_dtype dt, void *w, void *acc, uint32_t *flag,
                          void *s0, void *s1, int64_t rw, int64_t c0, int64_t c1);
#endif
