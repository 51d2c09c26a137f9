/* plan_linear.c: fit's step for a linear model on a csr input (W1, W2, W5, W7: Dense(1[,
 * sigmoid]) on sparse rows, mse or binary crossentropy), run on the data's rows with no
 * tensor made: the forward dot of each row, the loss and its gradient per row, the
 * weight's gradient summed for each touched column, the lazy update of those rows and the
 * bias's. The same operations, in the same order and precision, as the general step's
 * ops (ops_dot_csr.c's csr . vector, layers/bias_add.c, ops_unary.c's sigmoid,
 * layers/losses.c, ops_dot_csrT.c's column sums, optim_update.c's rules), so the same
 * bits: spec/c/test_plan_linear.c and test_plan_fused.c check it against
 * kl_plan_train_step and against fit with the op fusions off, at 1 and 2 threads
 * (bench/README items 19-20: what it saves and what it costs). This file: the pattern, the
 * scratch, the thread count and the step; the passes over rows and entries are in
 * plan_linear_passes.h. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "kl/pool.h"
#include "ops_dot_internal.h"
#include "optim_internal.h"
#include "plan_internal.h"
#include "optim_hyper.h"
#include "plan_linear.h"
#include "tensor_internal.h"

/* The direct accumulator for rules other than SGD: W of at most this many bytes (below). */
#define LIN_DIRECT_MAXB ((size_t)128 << 10)
/* The widest W taken (its column map: 4 bytes a column, as the general step's). */
#define LIN_MAXC ((int64_t)1 << 24)
/* Entries of a step from which it runs on every thread (the columns split in static ranges:
 * a column is one thread's, the same bits at any count). */
#define LIN_PAR_MIN 16384
/* Such steps pick their thread count by timing (the results do not depend on it): LIN_PROBE
 * steps alternate all threads and one (the first two of a plan's first round untimed: they
 * allocate and start the threads), then the faster count (by mean time an entry) runs
 * for LIN_KEEP steps, then they time again; each round that one thread wins doubles the
 * next round's length (up to LIN_KEEP_MAX), since a step on every thread while another
 * process holds a core costs ~a scheduler slice (ms) at each barrier on this shared 2-core
 * box (bench/README items 18, 19). */
#define LIN_PROBE 8
#define LIN_KEEP 120
#define LIN_KEEP_MAX 1920

struct kl_linear {
  int x_id, y_id, sw_id;  /* placeholders (sw_id -1: no sample-weight input) */
  int w_k, b_k;           /* weight slots (b_k -1: no bias) */
  int bce, sigmoid;       /* the loss (0: mse), the activation */
  int64_t C;              /* W's rows (x's columns) */
  kl_dtype dt;            /* W's dtype (x's, the prediction's) */
  kl_meta ym;             /* the label placeholder */
  /* The updates' checks passed for these (kl_optimizer_flagged_precheck of W and b). */
  int checked;
  kl_optimizer opt;
  const void *sig[10];
  /* Scratch, kept between steps and epochs (system memory, grown as batches need). */
  int64_t cap_rows, cap_nnz;
  int cap_T;
  void *rowv;             /* 2 x cap_rows values: the rows' dots, then their gradients */
  double *lrow;           /* cap_rows: the rows' loss terms */
  uint32_t *ec;           /* per thread (cap_T > 1), cap_nnz: its entries' columns, */
  void *ep;               /* ... and their products (value x row gradient) */
  int64_t *list;          /* per thread, cap_nnz: its touched columns */
  void *gs;               /* per thread, cap_nnz + 1: their gradient sums */
  uint64_t *bits;         /* a bit a column: touched in this step (zero between steps) */
  uint32_t *base;         /* per 64-column word: the touched columns before it */
  uint32_t *map;          /* column -> its slot where its bit is set (first-touch mode) */
  int64_t at_n;           /* the thread count's choice: eligible steps so far in this round */
  int64_t at_keep;        /* this round's steps after the probe (LIN_KEEP.. doubled) */
  int at_warm;            /* the first round's first two steps are done */
  int at_T;               /* the count chosen (0: probing) */
  double at_t[2];         /* probing: the time an entry summed at one thread, at all */
  int64_t at_e[2];        /* ... over these entries */
  int64_t par_steps;      /* steps run on more than one thread (for tests) */
  uint32_t *flag;         /* direct mode: a flag a column, touched (zero between steps), */
  void *acc;              /* ... and its gradient sum (zero between steps) */
};

/* ------------------------------------------------------------ the pattern */

static int is_feed(const kl_plan *p, int id, int k) {
  return k < p->nfeeds && p->feeds[k] == id;
}

kl_status kl_linear_detect(kl_plan *p) {
  const kl_graph *g = p->g;
  if (!p->has_opt || p->device != KL_CPU || p->loss < 0 || !p->opt.lazy_update || p->ext)
    return KL_OK;
  const kl_node *L = &g->nodes[p->loss];
  if (L->kind != KL_NODE_OP || (L->op != KL_OP_LOSS_MSE && L->op != KL_OP_LOSS_BCE) ||
      (L->nin != 2 && L->nin != 3))
    return KL_OK;
  int used[16], nused = 0; /* at most 9: loss, sigmoid, bias_add, dot, x, w, y, b, sample weights */
  used[nused++] = p->loss;
  const int y_id = L->inputs[0], sw_id = L->nin == 3 ? L->inputs[2] : -1;
  int cur = L->inputs[1], sigmoid = 0, b_id = -1;
  if (g->nodes[cur].kind == KL_NODE_OP && g->nodes[cur].op == KL_OP_SIGMOID &&
      g->nodes[cur].nin == 1) {
    sigmoid = 1;
    used[nused++] = cur;
    cur = g->nodes[cur].inputs[0];
  }
  if (g->nodes[cur].kind == KL_NODE_OP && g->nodes[cur].op == KL_OP_BIAS_ADD &&
      g->nodes[cur].nin == 2) {
    used[nused++] = cur;
    b_id = g->nodes[cur].inputs[1];
    cur = g->nodes[cur].inputs[0];
  }
  const kl_node *D = &g->nodes[cur];
  if (D->kind != KL_NODE_OP || D->op != KL_OP_DOT || D->nin != 2 || D->attrs.transpose_a ||
      D->attrs.transpose_b)
    return KL_OK;
  used[nused++] = cur;
  const int x_id = D->inputs[0], w_id = D->inputs[1];
  const kl_node *X = &g->nodes[x_id], *W = &g->nodes[w_id], *Y = &g->nodes[y_id];
  if (X->kind != KL_NODE_PLACEHOLDER || X->meta.stype != KL_STYPE_CSR || X->meta.ndim != 2 ||
      W->kind != KL_NODE_VARIABLE || !W->value || W->meta.ndim != 2 || W->meta.shape[1] != 1 ||
      W->meta.shape[0] < 1 || W->meta.shape[0] > LIN_MAXC || X->meta.shape[1] != W->meta.shape[0] ||
      (W->meta.dtype != KL_FLOAT32 && W->meta.dtype != KL_FLOAT64) ||
      X->meta.dtype != W->meta.dtype || p->wslot[w_id] < 0 ||
      p->gstype[p->wslot[w_id]] != KL_STYPE_ROW_SPARSE ||
      (W->meta.stype != KL_STYPE_DEFAULT && W->meta.stype != KL_STYPE_ROW_SPARSE) ||
      Y->kind != KL_NODE_PLACEHOLDER || Y->meta.stype != KL_STYPE_DEFAULT ||
      g->nodes[L->inputs[1]].meta.dtype != W->meta.dtype)
    return KL_OK;
  used[nused++] = x_id;
  used[nused++] = w_id;
  used[nused++] = y_id;
  if (b_id >= 0) {
    const kl_node *B = &g->nodes[b_id];
    if (B->kind != KL_NODE_VARIABLE || !B->value || p->wslot[b_id] < 0 ||
        B->meta.stype != KL_STYPE_DEFAULT || B->meta.ndim != 1 || B->meta.shape[0] != 1 ||
        B->meta.dtype != W->meta.dtype || p->gstype[p->wslot[b_id]] != KL_STYPE_DEFAULT)
      return KL_OK;
  }
  if (b_id >= 0) used[nused++] = b_id;
  if (sw_id >= 0) {
    if (g->nodes[sw_id].kind != KL_NODE_PLACEHOLDER) return KL_OK;
    used[nused++] = sw_id;
  }
  /* nothing else in the plan: these nodes, each once; the weights W and b; the feeds x, y
   * and the sample weights, in fit's order (x, y, extra) */
  for (int i = 0; i < nused; i++)
    for (int j = 0; j < i; j++)
      if (used[i] == used[j]) return KL_OK;
  if (p->norder != nused || p->nweights != 1 + (b_id >= 0) ||
      p->nfeeds != 2 + (sw_id >= 0) || !is_feed(p, x_id, 0) || !is_feed(p, y_id, 1) ||
      (sw_id >= 0 && !is_feed(p, sw_id, 2)))
    return KL_OK;
  for (int q = 0; q < p->norder; q++) {
    int in = 0;
    for (int i = 0; i < nused; i++) in |= p->order[q] == used[i];
    if (!in) return KL_OK;
  }
  struct kl_linear *l = kl_calloc(1, sizeof *l);
  if (!l) return KL_ENOMEM;
  l->x_id = x_id;
  l->y_id = y_id;
  l->sw_id = sw_id;
  l->w_k = p->wslot[w_id];
  l->b_k = b_id >= 0 ? p->wslot[b_id] : -1;
  l->bce = L->op == KL_OP_LOSS_BCE;
  l->sigmoid = sigmoid;
  l->C = W->meta.shape[0];
  l->dt = W->meta.dtype;
  l->ym = Y->meta;
  p->lin = l;
  return KL_OK;
}

void kl_linear_free(kl_plan *p) {
  struct kl_linear *l = p->lin;
  if (!l) return;
  kl_free(l->rowv);
  kl_free(l->lrow);
  kl_free(l->ec);
  kl_free(l->ep);
  kl_free(l->list);
  kl_free(l->gs);
  kl_free(l->bits);
  kl_free(l->base);
  kl_free(l->map);
  kl_free(l->flag);
  kl_free(l->acc);
  kl_free(l);
  p->lin = NULL;
}

int kl_linear_clean(const kl_plan *p) {
  const struct kl_linear *l = p ? p->lin : NULL;
  if (!l) return 1;
  if (l->bits)
    for (int64_t k = 0; k < (l->C + 63) / 64; k++)
      if (l->bits[k]) return 0;
  if (l->flag) { /* the direct accumulator: flags and sums zero (bits: +0, never -0) */
    const size_t es = kl_dtype_size(l->dt);
    static const char zero[8];
    for (int64_t c = 0; c < l->C; c++)
      if (l->flag[c] || memcmp((const char *)l->acc + (size_t)c * es, zero, es) != 0) return 0;
  }
  return 1;
}

int64_t kl_linear_par_steps(const kl_plan *p) { return p && p->lin ? p->lin->par_steps : 0; }

int kl_linear_applies(const kl_plan *p, kl_tensor *const *x, int nx, const kl_tensor *y,
                      const kl_epoch_opts *o) {
  const struct kl_linear *l = p->lin;
  if (!l || p->grad_hook || p->ext || p->device != KL_CPU || nx != 1 || o->nmetrics != 0 ||
      (o->nparts > 1))
    return 0;
  const kl_tensor *a = x[0];
  if (a->stype != KL_STYPE_CSR || a->dtype != l->dt || a->ndim != 2 || a->shape[1] != l->C ||
      a->device != KL_CPU)
    return 0;
  /* one label a row, of a dtype the feed converts by a cast (kl_tensor_astype) */
  if (y->stype != KL_STYPE_DEFAULT || (l->ym.dtype == KL_INT64 && y->dtype != KL_INT64) ||
      y->ndim != l->ym.ndim ||
      y->ndim < 1 || kl_tensor_numel(y) != y->shape[0] || y->device != KL_CPU)
    return 0;
  for (int d = 0; d < y->ndim; d++)
    if (l->ym.shape[d] >= 0 && l->ym.shape[d] != y->shape[d]) return 0;
  if (l->sw_id >= 0) { /* sample weights: only none (the loss's empty input) */
    if (o->nextra != 1) return 0;
    if (o->extra[0] && kl_tensor_numel(o->extra[0]) != 0) return 0;
  } else if (o->nextra != 0) {
    return 0;
  }
  return 1;
}

/* the passes (pass 1: the rows' dots, 2: their loss and gradient, 3: the columns' sums) */
#include "plan_linear_passes.h"

/* ------------------------------------------------------------ the step */

/* Thread q of T's part of a step (T = 1: the whole step). Rows [n q / T, n (q + 1) / T):
 * passes 1 and 2; one thread sums the loss's terms and the bias's gradient in row order
 * (layers/losses.c, bias_add.c: double sums in row order); then words [nw q / T,
 * nw (q + 1) / T) of the bitmap, i.e. a static range of W's rows: pass 3 on its entries and
 * the lazy update of its touched rows (optim_update.c's 1-wide row loop). */
static void lin_body(lin_ctx *c, struct kl_linear *l, int q, int T) {
  const size_t es = kl_dtype_size(l->dt);
  const int f64 = l->dt == KL_FLOAT64;
  const int64_t n = c->n, r0 = n * q / T, r1 = n * (q + 1) / T;
  void *z = l->rowv, *gr = (char *)l->rowv + (size_t)l->cap_rows * es;
  const int setbits = c->mode == LIN_RANK && T == 1;
  const int fused = c->mode == LIN_DIRECT && T == 1; /* passes 1-3 a row at a time */
  int okq;
  if (fused) {
    if (!lin_labels_ok(c)) { /* nothing written */
      c->ok = 0;
      return;
    }
    okq = 1;
    if (f64) lin_direct_rows_f64(c, z, gr, l->lrow, l->flag, l->acc);
    else lin_direct_rows_f32(c, z, gr, l->lrow, l->flag, l->acc);
  } else {
    if (f64) lin_forward_f64(c, setbits, r0, r1, z, l->bits);
    else lin_forward_f32(c, setbits, r0, r1, z, l->bits);
    okq = f64 ? lin_rows_f64(c, r0, r1, z, gr, l->lrow) : lin_rows_f32(c, r0, r1, z, gr, l->lrow);
  }
  if (T > 1) { /* every thread's rows before the sums */
    if (!okq) {
#pragma omp atomic write
      c->ok = 0;
    }
#pragma omp barrier
  } else if (!okq) {
    c->ok = 0;
  }
#pragma omp master
  {
    double s = 0, bs = 0;
    for (int64_t r = 0; r < n; r++) s += l->lrow[r];
    if (f64)
      for (int64_t r = 0; r < n; r++) bs += ((const double *)gr)[r];
    else
      for (int64_t r = 0; r < n; r++) bs += (double)((const float *)gr)[r];
    c->loss = s / (double)n;
    c->bsum = bs;
  }
  if (T > 1) {
#pragma omp barrier
  }
  int ok;
#pragma omp atomic read
  ok = c->ok;
  if (!ok) { /* a label out of range: nothing written but the bits, cleared */
    if (setbits) memset(l->bits, 0, (size_t)c->nw * sizeof *l->bits);
    return;
  }
  /* pass 3 and the update of this thread's rows */
  int64_t *list = l->list + (size_t)q * (size_t)l->cap_nnz;
  void *gs = (char *)l->gs + (size_t)q * (size_t)(l->cap_nnz + 1) * es;
  int64_t U;
  if (c->mode == LIN_ONE) { /* T == 1, one row: each entry's product from +0, as first touch */
    const int64_t *perm = c->perm, b = c->b, i = LIN_ROW(0);
    const int64_t k0 = c->x->indptr[i], k1 = c->x->indptr[i + 1];
    if (f64) {
      const double g = ((const double *)gr)[0], *v = (const double *)c->x->data + k0;
      for (int64_t k = 0; k < k1 - k0; k++) ((double *)gs)[k] = 0.0 + v[k] * g;
    } else {
      const float g = ((const float *)gr)[0], *v = (const float *)c->x->data + k0;
      for (int64_t k = 0; k < k1 - k0; k++) ((float *)gs)[k] = 0.0f + v[k] * g;
    }
    kl_opt_rows1(c->h, l->dt, c->w, gs, c->s0, c->s1, c->x->indices + k0, 0, k1 - k0, c->pf);
    return;
  }
  if (c->mode == LIN_FIRST) { /* T == 1 */
    U = f64 ? lin_first_f64(c, gr, l->bits, l->map, list, gs)
            : lin_first_f32(c, gr, l->bits, l->map, list, gs);
    kl_opt_rows1(c->h, l->dt, c->w, gs, c->s0, c->s1, list, 0, U, c->pf);
    for (int64_t s = 0; s < U; s++) l->bits[list[s] >> 6] = 0;
    return;
  }
  const int64_t w0 = c->nw * q / T, w1 = c->nw * (q + 1) / T;
  const int64_t c0 = w0 * 64, c1 = w1 * 64 < l->C ? w1 * 64 : l->C;
  uint32_t *ec = l->ec + (size_t)q * (size_t)l->cap_nnz;
  void *ep = T > 1 ? (char *)l->ep + (size_t)q * (size_t)l->cap_nnz * es : NULL;
  if (c->mode == LIN_DIRECT) {
    if (T > 1) {
      const int64_t m = f64 ? lin_compact_f64(c, gr, c0, c1, ec, ep)
                            : lin_compact_f32(c, gr, c0, c1, ec, ep);
      if (f64) lin_direct_part_f64(m, ec, ep, l->flag, l->acc);
      else lin_direct_part_f32(m, ec, ep, l->flag, l->acc);
    }
    kl_opt_flagged_range(c->h, l->dt, c->w, l->acc, l->flag, c->s0, c->s1, 1, c0, c1);
    return;
  }
  if (T == 1) {
    U = lin_ranks(l->bits, l->base, 0, c->nw);
    memset(gs, 0, (size_t)U * es);
    if (f64) lin_rank_all_f64(c, gr, l->bits, l->base, list, gs);
    else lin_rank_all_f32(c, gr, l->bits, l->base, list, gs);
  } else {
    const int64_t m = f64 ? lin_compact_f64(c, gr, c0, c1, ec, ep)
                          : lin_compact_f32(c, gr, c0, c1, ec, ep);
    for (int64_t k = 0; k < m; k++) l->bits[ec[k] >> 6] |= (uint64_t)1 << (ec[k] & 63);
    U = lin_ranks(l->bits, l->base, w0, w1);
    memset(gs, 0, (size_t)U * es);
    if (f64) lin_rank_part_f64(m, ec, ep, l->bits, l->base, list, gs);
    else lin_rank_part_f32(m, ec, ep, l->bits, l->base, list, gs);
  }
  kl_opt_rows1(c->h, l->dt, c->w, gs, c->s0, c->s1, list, 0, U, 0);
  memset(l->bits + w0, 0, (size_t)(w1 - w0) * sizeof *l->bits);
}

/* Grows the scratch to n rows, nnz entries and T threads; 0 when out of memory. System
 * memory (the pool suspended): the plan keeps it across steps and epochs. */
static int lin_reserve(struct kl_linear *l, int64_t n, int64_t nnz, int T, int mode) {
  if (n <= l->cap_rows && nnz <= l->cap_nnz && T <= l->cap_T && l->bits &&
      (mode != LIN_FIRST || l->map) && (mode != LIN_DIRECT || l->flag))
    return 1; /* (every step after the first few) */
  const size_t es = kl_dtype_size(l->dt);
  kl_pool *cur = kl_pool_enter(NULL);
  int ok = 1;
  if (n > l->cap_rows) {
    void *r = kl_malloc_n((size_t)n * 2, es);
    double *lr = kl_malloc_n((size_t)n, sizeof *lr);
    if (r && lr) {
      kl_free(l->rowv);
      kl_free(l->lrow);
      l->rowv = r;
      l->lrow = lr;
      l->cap_rows = n;
    } else {
      kl_free(r);
      kl_free(lr);
      ok = 0;
    }
  }
  if (ok && (nnz > l->cap_nnz || T > l->cap_T)) {
    const int64_t cn = nnz > l->cap_nnz ? nnz : l->cap_nnz;
    const int ct = T > l->cap_T ? T : l->cap_T;
    const size_t k = (size_t)ct * (size_t)cn;
    int64_t *li = kl_malloc_n(k, sizeof *li);
    void *gs = kl_malloc_n((size_t)ct * (size_t)(cn + 1), es);
    uint32_t *ec = ct > 1 ? kl_malloc_n(k, sizeof *ec) : NULL;
    void *ep = ct > 1 ? kl_malloc_n(k, es) : NULL;
    if (li && gs && (ct == 1 || (ec && ep))) {
      kl_free(l->list);
      kl_free(l->gs);
      kl_free(l->ec);
      kl_free(l->ep);
      l->list = li;
      l->gs = gs;
      l->ec = ec;
      l->ep = ep;
      l->cap_nnz = cn;
      l->cap_T = ct;
    } else {
      kl_free(li);
      kl_free(gs);
      kl_free(ec);
      kl_free(ep);
      ok = 0;
    }
  }
  const size_t nw = (size_t)(l->C + 63) / 64;
  if (ok && !l->bits) {
    l->bits = kl_calloc(nw, sizeof *l->bits);
    l->base = kl_malloc_n(nw, sizeof *l->base);
    if (!l->bits || !l->base) {
      kl_free(l->bits);
      kl_free(l->base);
      l->bits = NULL;
      l->base = NULL;
      ok = 0;
    }
  }
  if (ok && mode == LIN_FIRST && !l->map && !(l->map = kl_calloc((size_t)l->C, sizeof *l->map)))
    ok = 0;
  if (ok && mode == LIN_DIRECT && !l->flag) {
    l->flag = kl_calloc((size_t)l->C, sizeof *l->flag);
    l->acc = kl_calloc((size_t)l->C, es);
    if (!l->flag || !l->acc) {
      kl_free(l->flag);
      kl_free(l->acc);
      l->flag = NULL;
      l->acc = NULL;
      ok = 0;
    }
  }
  kl_pool_leave(cur);
  return ok;
}

/* The updates' checks (everything that can make them fail: kl_plan_update's), run again
 * only when the weights, states or optimizer changed since they last passed. */
static int lin_checked(kl_plan *p, kl_tensor *w, kl_tensor *bw, int64_t t) {
  struct kl_linear *l = p->lin;
  kl_tensor **sw = &p->states[2 * l->w_k], **sb = l->b_k >= 0 ? &p->states[2 * l->b_k] : NULL;
  const void *sig[10] = {w, w->data, sw[0], sw[0] ? sw[0]->data : NULL, sw[1],
                         sw[1] ? sw[1]->data : NULL, bw, bw ? bw->data : NULL,
                         sb ? sb[0] : NULL, sb ? sb[1] : NULL};
  if (l->checked && memcmp(sig, l->sig, sizeof sig) == 0 &&
      memcmp(&l->opt, &p->opt, sizeof p->opt) == 0)
    return 1;
  l->checked = 0;
  if (kl_optimizer_flagged_precheck(&p->opt, w, sw, t) != KL_OK ||
      (bw && kl_optimizer_flagged_precheck(&p->opt, bw, sb, t) != KL_OK)) {
    kl_clearerr();
    return 0;
  }
  memcpy(l->sig, sig, sizeof sig);
  l->opt = p->opt;
  l->checked = 1;
  return 1;
}

kl_status kl_linear_step(kl_plan *p, const kl_tensor *x, const kl_tensor *y,
                         const int64_t *perm, int64_t b, int64_t e, double *loss, int *done) {
  struct kl_linear *l = p->lin;
  *done = 0;
  kl_tensor *w = p->g->nodes[p->weights[l->w_k]].value;
  kl_tensor *bw = l->b_k >= 0 ? p->g->nodes[p->weights[l->b_k]].value : NULL;
  const int64_t t = p->step + 1, n = e - b, C = l->C;
  /* a hook set since the epoch began, or a weight replaced since compile by one the step
   * cannot take: the general step */
  if (p->grad_hook || p->ext || !w || w->device != KL_CPU || w->dtype != l->dt || w->ndim != 2 || w->shape[0] != C ||
      w->shape[1] != 1 || (w->stype == KL_STYPE_ROW_SPARSE && w->nnz != C) ||
      (w->stype != KL_STYPE_DEFAULT && w->stype != KL_STYPE_ROW_SPARSE) ||
      (bw && (bw->device != KL_CPU || bw->dtype != l->dt || bw->stype != KL_STYPE_DEFAULT ||
              kl_tensor_numel(bw) != 1)) ||
      n < 1 || !lin_checked(p, w, bw, t))
    return KL_OK;
  int64_t nnz = 0;
  if (perm)
    for (int64_t r = b; r < e; r++) nnz += x->indptr[perm[r] + 1] - x->indptr[perm[r]];
  else
    nnz = x->indptr[e] - x->indptr[b];
  if (nnz >= (int64_t)UINT32_MAX) return KL_OK;
  const size_t es = kl_dtype_size(l->dt);
  lin_ctx c;
  memset(&c, 0, sizeof c);
  c.l = l;
  c.x = x;
  c.yd = y->data;
  c.ydt = y->dtype;
  c.perm = perm;
  c.b = b;
  c.n = n;
  c.nnz = nnz;
  c.nw = (C + 63) / 64;
  /* The direct accumulator's update walks all of W's rows (optim_rows.h opt_flagged): for
   * SGD a vectorised select loop that won at every width measured, up to W7's 262,144
   * columns; for the rules with a square root and a divide only while W is small (Adam /
   * Adagrad, batch 2048, 1 thread, an epoch of 200,000 rows against slots by rank: 16,384
   * columns 27 vs 29 ms, 65,536 even, 131,072 47 vs 42 ms, 262,144 60 vs 47 ms). */
  const int direct = kl_dot_direct_fits(C, nnz, 1, l->dt) &&
                     (p->opt.kind == KL_OPT_SGD || (size_t)C * es <= LIN_DIRECT_MAXB);
  c.mode = n == 1 ? LIN_ONE : direct ? LIN_DIRECT : c.nw <= 4 * nnz ? LIN_RANK : LIN_FIRST;
  const int Tmax = omp_get_max_threads();
  int T = 1, probe = -1; /* probe: which count this step times (0: one, 1: all) */
  if ((c.mode == LIN_RANK || c.mode == LIN_DIRECT) && nnz >= LIN_PAR_MIN && Tmax > 1) {
    if (!l->at_keep) l->at_keep = LIN_KEEP;
    if (l->at_n >= LIN_PROBE + l->at_keep) { /* a new round */
      l->at_n = 0;
      l->at_T = 0;
      l->at_t[0] = l->at_t[1] = 0;
      l->at_e[0] = l->at_e[1] = 0;
    }
    if (l->at_n < LIN_PROBE) {
      probe = (l->at_n & 1) == 0; /* all threads first: a short fit runs both */
      T = probe ? Tmax : 1;
      if (!l->at_warm) { /* (untimed) */
        l->at_warm = l->at_n == 1;
        probe = -1;
      }
    } else {
      if (!l->at_T) { /* the faster by mean time an entry (all threads when untimed) */
        const int one = l->at_e[0] && l->at_e[1] &&
                        l->at_t[0] / (double)l->at_e[0] < l->at_t[1] / (double)l->at_e[1];
        l->at_T = one ? 1 : Tmax;
        l->at_keep = !one ? LIN_KEEP : l->at_keep < LIN_KEEP_MAX ? 2 * l->at_keep : LIN_KEEP_MAX;
      }
      T = l->at_T;
    }
    l->at_n++;
  }
  if (!lin_reserve(l, n, nnz, T, c.mode)) return KL_OK;
  kl_tensor **sw = &p->states[2 * l->w_k];
  opt_hyper h;
  kl_opt_hyper_of(&p->opt, t, &h);
  c.has_b = bw != NULL;
  c.bv = !bw ? 0 : l->dt == KL_FLOAT32 ? (double)*(const float *)bw->data : *(const double *)bw->data;
  c.w = w->data;
  c.s0 = sw[0] ? sw[0]->data : NULL;
  c.s1 = sw[1] ? sw[1]->data : NULL;
  c.h = &h;
  c.pfw = (size_t)C * es > KL_PF_MIN_BYTES;
  c.pf = c.pfw ? KL_PF1 : 0;
  c.ok = 1;
  const double t0 = probe >= 0 ? omp_get_wtime() : 0;
  if (T > 1) {
#pragma omp parallel num_threads(T)
    lin_body(&c, l, omp_get_thread_num(), omp_get_num_threads());
  } else {
    lin_body(&c, l, 0, 1);
  }
  if (T > 1) l->par_steps++;
  if (probe >= 0) {
    l->at_t[probe] += omp_get_wtime() - t0;
    l->at_e[probe] += nnz;
  }
  if (!c.ok) return KL_OK; /* a label out of range: the loss op says which */
  if (bw) { /* the bias's dense update (one row) */
    union { float f; double d; } gb;
    if (l->dt == KL_FLOAT32) gb.f = (float)c.bsum;
    else gb.d = c.bsum;
    kl_tensor **sb = &p->states[2 * l->b_k];
    static const int64_t row0 = 0;
    kl_opt_rows1(&h, l->dt, bw->data, &gb, sb[0] ? sb[0]->data : NULL, sb[1] ? sb[1]->data : NULL,
                 &row0, 0, 1, 0);
  }
  p->step = t;
  p->lin_steps++;
  /* the loss as the general step reads it back from its 0-d tensor of the weights' dtype */
  p->loss_value = l->dt == KL_FLOAT32 ? (double)(float)c.loss : c.loss;
  p->fwd_done = 0;
  p->fwd_loss = 0;
  *loss = p->loss_value;
  *done = 1;
  return KL_OK;
}
