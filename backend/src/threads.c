/* threads.c: the OpenMP thread count the kernels use. */
#include <omp.h>
#include "kl/kl.h"

int kl_num_threads(void) { return omp_get_max_threads(); }
