/* optim_internal.h: the plan's entry to the optimizer update. */
#ifndef KL_OPTIM_INTERNAL_H
#define KL_OPTIM_INTERNAL_H
#include "kl/optim.h"

/* kl_optimizer_update for a gradient made by the plan's own backward: a row_sparse one has
 * rows sorted, unique and in range by construction (the kernels that make it are tested for
 * that), so its O(nnz) row check is skipped for a weight that stores every row (~1/3 of the
 * lazy update of W1's 1-wide rows). Every other check, and the row check against a weight
 * that stores some rows, still runs. Validation stays at the boundary: kl_optimizer_update. */
kl_status kl_optimizer_update_trusted(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                                      kl_tensor **states, int64_t t);

/* The lazy update of a weight that stores every row (dense, or row_sparse with every row)
 * from a gradient held as a per-row accumulator: row r's gradient is acc[r * row width ..]
 * (w's dtype) where flag[r] != 0, and rows whose flag is 0 are not in the gradient (left
 * untouched, as by the lazy update of a row_sparse gradient of the flagged rows: the same
 * bits). acc and flag (one per row of w) are left all zero, whatever the result. The plan's
 * fused step hands it the kept accumulator of csr^T . G (no compact gradient is made). */
kl_status kl_optimizer_update_flagged(const kl_optimizer *o, kl_tensor *w, void *acc,
                                      uint32_t *flag, kl_tensor **states, int64_t t);

/* Every check that kl_optimizer_update (trusted_rows 0) or kl_optimizer_update_trusted
 * (trusted_rows 1), or kl_optimizer_update_flagged, makes, writing nothing. An update whose
 * precheck passed cannot fail: the _prechecked entries below then run it with no check (the
 * same bits). The plan checks every weight's update before it writes the first, so a step is
 * all or nothing. */
kl_status kl_optimizer_update_precheck(const kl_optimizer *o, const kl_tensor *w,
                                       const kl_tensor *g, kl_tensor **states, int64_t t,
                                       int trusted_rows);
kl_status kl_optimizer_flagged_precheck(const kl_optimizer *o, const kl_tensor *w,
                                        kl_tensor **states, int64_t t);
void kl_optimizer_update_prechecked(const kl_optimizer *o, kl_tensor *w, const kl_tensor *g,
                                    kl_tensor **states, int64_t t);
void kl_optimizer_update_flagged_prechecked(const kl_optimizer *o, kl_tensor *w, void *acc,
                                            uint32_t *flag, kl_tensor **states, int64_t t);
/* The lazy update of the n rows list[0..n) (any order, distinct) of a weight storing every
 * row, from their gradient rows g (n x row width, row i for list[i]), after
 * kl_optimizer_flagged_precheck passed: the per-row rule of kl_optimizer_update with a
 * row_sparse gradient of those rows, hence its bits (plan_step.c's listed fused step). */
void kl_optimizer_update_listed_prechecked(const kl_optimizer *o, kl_tensor *w, const void *g,
                                           const int64_t *list, int64_t n, kl_tensor **states,
                                           int64_t t);
#endif
