/* fz_optim.h: fuzz entry point: bytes -> optimizer + weight + row_sparse gradient -> update. */
#ifndef KL_FZ_OPTIM_H
#define KL_FZ_OPTIM_H
#include <stdlib.h>
#include "fuzz_common.h"
#include "kl/optim.h"

/* Bytes of a tensor's stored values, for "unchanged on failure". */
static size_t fz_value_bytes(const kl_tensor *t) {
  int64_t n = t->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(t) : t->nnz * kl_row_width(t);
  return (size_t)n * kl_dtype_size(t->dtype);
}

static int fz_same_values(const kl_tensor *t, const void *saved) {
  size_t b = fz_value_bytes(t);
  return b == 0 || memcmp(t->data, saved, b) == 0;
}

static void *fz_save(const kl_tensor *t) {
  size_t b = fz_value_bytes(t);
  void *p = malloc(b ? b : 1);
  if (p && b) memcpy(p, t->data, b);
  return p;
}

/* The entry point. Layout: kind/flags, hyperparameters, weight shape and stype, gradient
 * rows (possibly unsorted, repeated, out of range), gradient values, step count. */
static int fz_run_optim(const uint8_t *data, size_t size) {
  fz_in in = {data, size, 0};
  uint8_t h = fz_u8(&in), f = fz_u8(&in);
  kl_optimizer o;
  if (kl_optimizer_init(&o, (kl_opt_kind)(h % KL_OPT_COUNT)) != KL_OK)
    return FZ_BUG("optimizer_init refused kind %d", h % KL_OPT_COUNT);
  o.lazy_update = (h >> 3) & 1;
  int nset = fz_u8(&in) % 4;
  for (int k = 0; k < nset; k++) { /* a few options set to anything, by name */
    const char *name = kl_optimizer_option_name(o.kind, fz_u8(&in) % 12);
    double v = fz_any_double(&in);
    if (name) kl_optimizer_set(&o, name, v);
  }
  if ((h >> 4) & 1) o.momentum = 0.5; /* SGD momentum state */
  kl_dtype dt = (f & 1) ? KL_FLOAT64 : KL_FLOAT32;
  int wsparse = (f >> 1) & 1, gdense = ((f >> 2) & 7) == 0;
  int64_t shape[2] = {fz_small(&in, 0, 17), fz_small(&in, 1, 4)};
  int ndim = (f >> 5) & 1 ? 1 : 2;
  int64_t W = ndim == 2 ? shape[1] : 1;
  int bad = 0;
  kl_tensor *w = NULL, *g = NULL, *states[2] = {NULL, NULL};
  void *saved_w = NULL, *saved_s[2] = {NULL, NULL};

  /* the weight: dense, or row_sparse storing all its rows or a subset */
  if (wsparse) {
    int64_t keep[17], n = 0, all = fz_u8(&in) & 1;
    for (int64_t r = 0; r < shape[0]; r++)
      if (all || (fz_u8(&in) & 1)) keep[n++] = r;
    if (kl_tensor_new_rsp(dt, ndim, shape, n, &w) != KL_OK) goto done;
    if (n) memcpy(w->indices, keep, (size_t)n * sizeof(int64_t));
  } else if (kl_tensor_new_dense(dt, ndim, shape, &w) != KL_OK) {
    goto done;
  }
  for (int64_t i = 0; i < (int64_t)(fz_value_bytes(w) / kl_dtype_size(dt)); i++)
    kl_tensor_data_set(w, i, fz_value(&in));

  /* the gradient */
  kl_dtype gdt = fz_u8(&in) == 0xFF ? (dt == KL_FLOAT32 ? KL_FLOAT64 : KL_FLOAT32) : dt;
  int64_t gshape[2] = {shape[0], shape[1]};
  if (fz_u8(&in) >= 0xFC) gshape[fz_u8(&in) & 1] += 1; /* shape mismatch */
  if (gdense) {
    if (kl_tensor_new_dense(gdt, ndim, gshape, &g) != KL_OK) goto done;
  } else {
    int64_t n = fz_small(&in, 0, 8), r = -1;
    if (kl_tensor_new_rsp(gdt, ndim, gshape, n, &g) != KL_OK) goto done;
    for (int64_t k = 0; k < n; k++) {
      uint8_t b = fz_u8(&in);
      g->indices[k] = b >= 0xF0 ? fz_index(&in) : (r += 1 + b % 3); /* mostly valid */
    }
  }
  for (int64_t i = 0; i < (int64_t)(fz_value_bytes(g) / kl_dtype_size(gdt)); i++)
    kl_tensor_data_set(g, i, (fz_u8(&in) & 7) == 0 ? fz_any_double(&in) : fz_value(&in));
  int64_t t = fz_u8(&in) >= 0xF0 ? fz_index(&in) : fz_small(&in, 1, 100);

  kl_status s = kl_optimizer_check(&o);
  if (s != KL_OK) {
    bad |= fz_clean_error(s, "optimizer_check");
    /* an invalid optimizer must be refused by update too, before any write */
  }
  kl_status cs = kl_optimizer_create_states(&o, w, states);
  if (cs != KL_OK) {
    bad |= fz_clean_error(cs, "create_states");
    goto done;
  }
  int ns = kl_optimizer_num_states(&o);
  saved_w = fz_save(w);
  for (int k = 0; k < ns && k < 2; k++) saved_s[k] = fz_save(states[k]);
  kl_status us = kl_optimizer_update(&o, w, g, states, t);
  if (us != KL_OK) {
    bad |= fz_clean_error(us, "optimizer_update");
    if (us != KL_ENOMEM) {
      if (saved_w && !fz_same_values(w, saved_w))
        bad |= FZ_BUG("update failed (%s) but changed the weight", kl_errmsg());
      for (int k = 0; k < ns && k < 2; k++)
        if (saved_s[k] && !fz_same_values(states[k], saved_s[k]))
          bad |= FZ_BUG("update failed (%s) but changed state %d", kl_errmsg(), k);
    }
  } else {
    if (s != KL_OK) bad |= FZ_BUG("update accepted an optimizer check() refuses");
    if (t < 1) bad |= FZ_BUG("update accepted step count %lld", (long long)t);
    if (w->stype == KL_STYPE_ROW_SPARSE && kl_tensor_check_format(w, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("update left the weight invalid: %s", kl_errmsg());
    if (g->stype == KL_STYPE_ROW_SPARSE && kl_tensor_check_format(g, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("update accepted an invalid gradient (%s)", kl_errmsg());
  }
done:
  free(saved_w);
  free(saved_s[0]);
  free(saved_s[1]);
  kl_optimizer_release_states(&o, states);
  kl_tensor_release(w);
  kl_tensor_release(g);
  (void)W;
  return bad;
}

#endif
