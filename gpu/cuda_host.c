/* cuda_host.c: host-side helpers of the gpu code: the error hook, dtype names, the resolved
 * optimizer hyperparameters and the Embedding bad-id message (plain C, no CUDA calls). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kl_cuda.h"

static _Thread_local char cuda_msg[1024];

static kl_status default_seterr(kl_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cuda_msg, sizeof cuda_msg, fmt, ap);
  va_end(ap);
  return code;
}

kl_cuda_seterr_fn kl_cuda_seterr = default_seterr;

const char *kl_cuda_errmsg(void) { return cuda_msg; }

const char *kl_cuda_dtype_name(kl_dtype dt) {
  switch (dt) {
    case KL_FLOAT32: return "float32";
    case KL_FLOAT64: return "float64";
    case KL_INT64: return "int64";
  }
  return "unknown";
}

/* backend/src/optim_update.c's resolve_hyper, the same double expressions (that file is
 * not changed for the GPU; spec/c/test_gpu_optim.c proves the two agree bit for bit). */
void kl_cuda_opt_resolve(const kl_optimizer *o, int64_t t, kl_cuda_opt_hyper *h) {
  memset(h, 0, sizeof *h);
  h->kind = (int)o->kind;
  h->lr = o->decay > 0 ? o->learning_rate * (1.0 / (1.0 + o->decay * (double)(t - 1)))
                       : o->learning_rate;
  h->mom = o->momentum;
  h->has_mom = o->momentum > 0;
  h->nesterov = o->nesterov != 0;
  h->wd = o->weight_decay;
  h->clip = o->clipvalue;
  h->rescale = o->rescale_grad;
  h->b1 = o->beta_1;
  h->b2 = o->beta_2;
  h->eps = o->epsilon;
  h->rho = o->rho;
  h->lamda1 = o->lamda1;
  h->beta = o->beta;
  h->l2 = o->l2;
  h->lr_power = o->lr_power;
  if (o->kind == KL_OPT_ADAM)
    h->lr_t = h->lr * sqrt(1.0 - pow(o->beta_2, (double)t)) / (1.0 - pow(o->beta_1, (double)t));
}

/* layers/embedding.c's ids_check message for one bad id. */
kl_status kl_cuda_embedding_id_error(kl_dtype ids_dt, const void *id, int64_t p, int64_t L,
                                     int64_t V) {
  char pos[64];
  if (L > 0)
    snprintf(pos, sizeof pos, "(%lld, %lld)", (long long)(p / L + 1), (long long)(p % L + 1));
  else
    snprintf(pos, sizeof pos, "(%lld)", (long long)(p + 1));
  if (ids_dt == KL_INT64)
    return kl_cuda_seterr(KL_EINDEX, "Embedding: id %lld out of range [0, %lld] at position %s",
                          (long long)*(const int64_t *)id, (long long)V, pos);
  double v = ids_dt == KL_FLOAT32 ? (double)*(const float *)id : *(const double *)id;
  if (!(v == floor(v)))
    return kl_cuda_seterr(KL_EINDEX, "Embedding: id %.15g is not an integer at position %s", v,
                          pos);
  return kl_cuda_seterr(KL_EINDEX, "Embedding: id %.15g out of range [0, %lld] at position %s",
                        v, (long long)V, pos);
}
