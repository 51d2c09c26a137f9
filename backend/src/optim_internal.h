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
#endif
