/* sharded.c: Embedding{sharded = true}: an embedding table whose rows are split over the MPI
 * ranks (issue 16). Part of keras.distributed_mpi (dist_mpi.c is the module's entry point);
 * reaches the backend through core._capi only.
 *
 * DESIGN
 *
 * Placement: global row g (0-based; id g + 1, id 0 is padding) lives on rank g mod n, as
 *   local row g div n. Rank r holds R_r = ceil((V - r) / n) rows (V need not divide by n).
 *   Interleaving rather than ranges: vocabularies are usually numbered by frequency (the
 *   hot ids small), so ranges would put the hot rows, and most of the exchange, on rank 0;
 *   id mod n spreads any contiguous run of ids over every rank. (A true hash would also
 *   balance adversarial id sets; mod n keeps the owner and local row one division away and
 *   makes "ids that all land on one rank" easy to state.)
 *
 * The shard is an ordinary dense (R_r, D) weight variable of the graph, so the optimizer
 *   (its states are (R_r, D) too), the lazy update and the plan need nothing new for it.
 *
 * Forward (a plan node hook, kl_plan_set_node_ext, on the Embedding node): before the node
 *   runs, each rank
 *   1. checks its ids (integers in [0, V]) and deduplicates the non-padding ones, sorted and
 *      grouped by owner;
 *   2. MPI_Alltoall of the per-owner counts, then one MPI_Allreduce(max) of {error, the
 *      largest total}: every rank learns whether some rank refused its ids (each then
 *      fails the step: the refusing rank with its message, the others naming it; no rank
 *      is left in a collective);
 *   3. MPI_Alltoallv of the ids to their owners; the owners copy those rows (local g div n)
 *      into the reply, and an MPI_Alltoallv of rows returns them. Counts are in rows (an MPI
 *      contiguous type of D values), so values beyond int (Open MPI 4.1 has no large-count
 *      calls) need no chunks; only a step that sends or receives more than 2^31 - 1 ids on
 *      one rank is refused (agreed, with a message), as are tables of more than 2^31 - 1
 *      rows per rank in the gathers of get_weights / save;
 *   4. the node then runs on substitutes: a compact (U, D) table of the received rows (in
 *      the order of the ids sent) and the ids renumbered into it (0 stays padding). The
 *      Embedding kernel, and the fused Embedding -> mean (plain or masked) when the plan
 *      found one, run unchanged on them: the same rows, summed in the same order, so a
 *      sharded model's outputs have the bits of a plain Embedding holding the same table.
 *
 * Backward: the node's weight gradient, computed on the substitutes, is row_sparse over the
 *   compact rows. Scaled by n_r / N (this rank's share of the global batch, as the
 *   data-parallel hook scales every other gradient), its rows go back to their owners by
 *   the reverse MPI_Alltoallv (the row order of the forward's ids: no ids resent). Each
 *   owner merges what it receives in source-rank order (rank 0's rows first; within a
 *   source each id once), starting from +0, so a row's sum is the data-parallel
 *   exchange's rank-order sum: bit-identical to a plain Embedding under
 *   compile{distributed = {deterministic = true}}, and equal to np = 1 up to float
 *   summation order. The result is a row_sparse gradient of the shard (R_r, D) over the
 *   owned rows some rank touched; the lazy optimizer updates those rows and their states
 *   only, on their owner only. Never an allreduce of the table.
 *
 * The data-parallel gradient hook (dist_mpi.c) skips the sharded weights
 *   (kl_sharded_owns_grad): their gradients are already the global sum, for owned rows.
 *   The broadcast of rank 0's weights at fit start skips them too (model_dist.lua).
 *
 * Empty steps: a rank whose share of a global batch is empty still serves rows and receives
 *   gradients: kl_plan_train_step_empty calls the node hook with no ids, in the order a
 *   full step would (forwards in node order, backwards in reverse).
 *
 * Initialisation does not depend on n: row g, column c of the table is
 *   f(splitmix64(seed + splitmix64(g * D + c))) (uniform or normal), computed by the owner
 *   for its rows only (kl_fill_rows_counter in the core), so every rank's share is what an
 *   np = 1 run gives those rows and no rank ever holds more than its share. The seed is
 *   rank 0's draw, broadcast when the layer is built.
 *
 * Memory per rank: V x D x dtype size x (1 + optimizer states) / n for the shard and its
 *   states (Adam: 3), plus O(batch) buffers: the deduplicated ids and their rows both
 *   ways (<= n_r x L ids and rows sent, and as many received as the other ranks ask this
 *   one for), grow-only and kept across steps. get_weights() gathers the full table on
 *   every rank; save() gathers it on rank 0 only. */

#include <limits.h>
#include <stdarg.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "kl_capi.h"
#include "sharded.h"

static const kl_capi *C;

typedef struct sbuf {
  void *p;
  size_t cap;
} sbuf;

static void *sbuf_get(sbuf *b, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > b->cap) {
    size_t want = bytes + bytes / 2 + 64;
    void *q = realloc(b->p, want);
    if (!q) return NULL;
    b->p = q;
    b->cap = want;
  }
  return b->p;
}

/* One sharded Embedding node of one plan (the node hook's state). */
typedef struct shard {
  kl_plan *plan;
  int node, k;          /* the plan's node (0-based) and the shard's weight index, or -1 */
  int n, rank;
  int64_t V, D, R;      /* the table's rows and width; this rank's rows */
  kl_dtype dtype;
  size_t es;
  kl_tensor *w;         /* the shard at registration (one reference) */
  MPI_Datatype row;     /* D values */
  /* the last forward: per peer, ids sent (to their owners) and received (as owner) */
  int *scnt, *sdsp, *rcnt, *rdsp;
  int64_t nsent, nrecv;
  int fwd_ok;
  sbuf pairs, ids_sent, ids_recv, reply, grows, grecv, merge;
  int64_t steps, bytes_sent, bytes_recv;
  struct shard *next;
} shard;

static shard *g_live; /* every shard hook alive (kl_sharded_owns_grad) */

int kl_sharded_owns_grad(const kl_plan *p, int k) {
  for (const shard *s = g_live; s; s = s->next)
    if (s->plan == p && s->k == k) return 1;
  return 0;
}

static kl_status mpi_st(int rc, const char *what) {
  if (rc == MPI_SUCCESS) return KL_OK;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return C->seterr(KL_EIO, "Embedding (sharded): %s failed: %s", what, msg);
}

static void shard_free(void *ud) {
  shard *s = ud;
  for (shard **q = &g_live; *q; q = &(*q)->next)
    if (*q == s) {
      *q = s->next;
      break;
    }
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin && s->row != MPI_DATATYPE_NULL) MPI_Type_free(&s->row);
  sbuf *all[] = {&s->pairs, &s->ids_sent, &s->ids_recv, &s->reply, &s->grows, &s->grecv, &s->merge};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->p);
  C->tensor_release(s->w);
  free(s->scnt);
  free(s);
}

typedef struct pair {
  int64_t key, pos;
} pair;

static int n_ranks; /* for the comparator: owner = g mod n */

static int cmp_owner(const void *a, const void *b) {
  const pair *x = a, *y = b;
  int64_t ox = x->key % n_ranks, oy = y->key % n_ranks;
  if (ox != oy) return ox < oy ? -1 : 1;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

static int cmp_pair(const void *a, const void *b) {
  const pair *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Id at flat position q as an integer; *ok 0 when it is not one. */
static int64_t id_at(const kl_tensor *t, int64_t q, int *ok, double *raw) {
  *ok = 1;
  if (t->dtype == KL_INT64) {
    int64_t v = ((const int64_t *)t->data)[q];
    *raw = (double)v;
    return v;
  }
  double v = t->dtype == KL_FLOAT32 ? (double)((const float *)t->data)[q]
                                    : ((const double *)t->data)[q];
  *raw = v;
  if (!(v == (double)(int64_t)v) || v < -9.2e18 || v > 9.2e18) {
    *ok = 0;
    return 0;
  }
  return (int64_t)v;
}

/* Checks and deduplicates this rank's ids: the sent ids grouped by owner (counts in
 * s->scnt), ids2 their compact numbers. Returns 0, or 1 with msg set. */
static int local_ids(shard *s, const kl_tensor *ids, const kl_tensor *w, kl_tensor **ids2,
                     char *msg, size_t msz) {
  if (!w || w->stype != KL_STYPE_DEFAULT || w->ndim != 2 || w->shape[0] != s->R ||
      w->shape[1] != s->D || w->dtype != s->dtype) {
    snprintf(msg, msz, "Embedding (sharded): rank %d's shard is not a dense (%lld, %lld) %s matrix",
             s->rank, (long long)s->R, (long long)s->D, C->dtype_name(s->dtype));
    return 1;
  }
  if (ids->stype != KL_STYPE_DEFAULT || ids->ndim < 1 || ids->ndim > 2) {
    snprintf(msg, msz, "Embedding (sharded): ids must be a dense (n) or (n, L) tensor");
    return 1;
  }
  const int64_t np = C->tensor_numel(ids), L = ids->ndim == 2 ? ids->shape[1] : 1;
  pair *pr = sbuf_get(&s->pairs, (size_t)np * sizeof *pr);
  if (!pr) {
    snprintf(msg, msz, "Embedding (sharded): out of memory for %lld ids", (long long)np);
    return 1;
  }
  int64_t m = 0;
  for (int64_t q = 0; q < np; q++) {
    int ok;
    double raw;
    int64_t id = id_at(ids, q, &ok, &raw);
    if (!ok || id < 0 || id > s->V) {
      char pos[64];
      if (ids->ndim == 2)
        snprintf(pos, sizeof pos, "(%lld, %lld)", (long long)(q / L + 1), (long long)(q % L + 1));
      else
        snprintf(pos, sizeof pos, "(%lld)", (long long)(q + 1));
      if (!ok)
        snprintf(msg, msz, "Embedding (sharded): id %.15g is not an integer at position %s (rank %d)",
                 raw, pos, s->rank);
      else
        snprintf(msg, msz, "Embedding (sharded): id %lld out of range [0, %lld] at position %s (rank %d)",
                 (long long)id, (long long)s->V, pos, s->rank);
      return 1;
    }
    if (id > 0) pr[m].key = id - 1, pr[m].pos = q, m++;
  }
  n_ranks = s->n;
  qsort(pr, (size_t)m, sizeof *pr, cmp_owner);
  int64_t *sent = sbuf_get(&s->ids_sent, (size_t)m * sizeof *sent);
  kl_tensor *t = NULL;
  if (!sent || C->tensor_new_dense(KL_INT64, ids->ndim, ids->shape, &t) != KL_OK) {
    snprintf(msg, msz, "Embedding (sharded): out of memory for %lld ids", (long long)np);
    return 1;
  }
  int64_t *out = t->data;
  memset(out, 0, (size_t)np * sizeof *out); /* padding stays 0 */
  int64_t u = 0;
  int64_t cnt[s->n];
  memset(cnt, 0, sizeof cnt);
  for (int64_t j = 0; j < m; j++) {
    if (j == 0 || pr[j].key != pr[j - 1].key) {
      sent[u++] = pr[j].key;
      cnt[pr[j].key % s->n]++;
    }
    out[pr[j].pos] = u; /* 1-based compact id */
  }
  s->nsent = u;
  for (int r = 0; r < s->n; r++) {
    if (cnt[r] > INT_MAX) {
      C->tensor_release(t);
      snprintf(msg, msz, "Embedding (sharded): %lld ids for one rank in one step exceed MPI's int "
               "counts (rank %d): use smaller batches", (long long)cnt[r], s->rank);
      return 1;
    }
    s->scnt[r] = (int)cnt[r];
  }
  *ids2 = t;
  return 0;
}

static kl_status sh_forward(void *ud, kl_plan *p, int node, kl_tensor *const *ins, int nin,
                            kl_tensor **subs) {
  shard *s = ud;
  (void)p, (void)node, (void)nin;
  char msg[400] = "";
  int bad = 0;
  kl_tensor *ids2 = NULL, *w2 = NULL;
  s->fwd_ok = 0;
  s->nsent = 0;
  if (ins) bad = local_ids(s, ins[0], ins[1], &ids2, msg, sizeof msg);
  if (!ins || bad) memset(s->scnt, 0, (size_t)s->n * sizeof *s->scnt);
  int rc = MPI_Alltoall(s->scnt, 1, MPI_INT, s->rcnt, 1, MPI_INT, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) {
    C->tensor_release(ids2);
    return mpi_st(rc, "MPI_Alltoall");
  }
  int64_t tot = 0;
  for (int r = 0; r < s->n; r++) tot += s->rcnt[r];
  if (!bad && tot > INT_MAX) {
    bad = 1;
    snprintf(msg, sizeof msg, "Embedding (sharded): rank %d is asked for %lld rows in one step, "
             "beyond MPI's int counts: use smaller batches", s->rank, (long long)tot);
  }
  /* the verdict: the lowest rank that failed, on every rank */
  int who = bad ? s->rank : INT_MAX, first = INT_MAX;
  rc = MPI_Allreduce(&who, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS || first != INT_MAX) {
    C->tensor_release(ids2);
    if (rc != MPI_SUCCESS) return mpi_st(rc, "MPI_Allreduce");
    if (bad) return C->seterr(KL_EINDEX, "%s", msg);
    return C->seterr(KL_EINDEX, "Embedding (sharded): rank %d refused its ids (see its message)",
                     first);
  }
  s->nrecv = tot;
  for (int r = 0, so = 0, ro = 0; r < s->n; r++) {
    s->sdsp[r] = so, so += s->scnt[r];
    s->rdsp[r] = ro, ro += s->rcnt[r];
  }
  int64_t *recv = sbuf_get(&s->ids_recv, (size_t)tot * sizeof *recv);
  char *reply = sbuf_get(&s->reply, (size_t)tot * (size_t)s->D * s->es);
  const int64_t U = s->nsent;
  int64_t shp[2] = {U, s->D};
  kl_status st = recv && reply ? KL_OK : C->seterr(KL_ENOMEM, "Embedding (sharded): out of memory");
  if (st == KL_OK && ins) st = C->tensor_new_dense(s->dtype, 2, shp, &w2);
  /* a failure here is local: it cannot be agreed without another collective, so the
   * exchange still runs (with what it has) and the step fails after it on this rank */
  const int64_t *sent = s->ids_sent.p;
  rc = MPI_Alltoallv(st == KL_OK ? sent : NULL, s->scnt, s->sdsp, MPI_INT64_T, recv, s->rcnt,
                     s->rdsp, MPI_INT64_T, MPI_COMM_WORLD);
  if (rc == MPI_SUCCESS && reply) {
    /* an empty step (ins NULL) serves rows too: the shard is the plan's weight */
    const kl_tensor *wt = ins ? ins[1] : s->k >= 0 ? C->plan_weight(p, s->k) : s->w;
    const char *src = (const char *)wt->data;
    const size_t rb = (size_t)s->D * s->es;
    for (int64_t j = 0; j < tot; j++) {
      const int64_t l = recv[j] / s->n; /* < R: the sender checked the id against V */
      memcpy(reply + (size_t)j * rb, src + (size_t)l * rb, rb);
    }
  }
  if (rc == MPI_SUCCESS)
    rc = MPI_Alltoallv(reply, s->rcnt, s->rdsp, s->row, w2 ? w2->data : NULL, s->scnt, s->sdsp,
                       s->row, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS && st == KL_OK) st = mpi_st(rc, "MPI_Alltoallv");
  if (st != KL_OK) {
    C->tensor_release(ids2);
    C->tensor_release(w2);
    return st;
  }
  s->steps++;
  s->bytes_sent += (U * 8) + tot * s->D * (int64_t)s->es;
  s->bytes_recv += (tot * 8) + U * s->D * (int64_t)s->es;
  s->fwd_ok = 1;
  if (ins) {
    subs[0] = ids2;
    subs[1] = w2;
  }
  return KL_OK;
}

/* The gradient of the compact rows -> the owners' rows, summed in source-rank order. */
static kl_status sh_backward(void *ud, kl_plan *p, int node, int i, kl_tensor **g) {
  shard *s = ud;
  (void)node;
  if (i != 1) return KL_OK; /* the ids have no gradient */
  if (!s->fwd_ok)
    return C->seterr(KL_EINVAL, "Embedding (sharded): backward without a forward exchange");
  const int64_t U = s->nsent, D = s->D;
  const size_t es = s->es, rb = (size_t)D * es;
  /* this rank's share of the global batch, as the data-parallel hook weighs gradients */
  int64_t nr = *g ? C->plan_batch_rows(p) : 0, N = 0;
  int rc = MPI_Allreduce(&nr, &N, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_st(rc, "MPI_Allreduce");
  const double sc = N > 0 ? (double)nr / (double)N : 0.0;
  char *rows = sbuf_get(&s->grows, (size_t)U * rb);
  char *recv = sbuf_get(&s->grecv, (size_t)s->nrecv * rb);
  if (!rows || !recv) return C->seterr(KL_ENOMEM, "Embedding (sharded): out of memory");
  const kl_tensor *t = *g;
  if (t) {
    if (t->dtype != s->dtype || t->ndim != 2 || t->shape[0] != U || t->shape[1] != D)
      return C->seterr(KL_EINVAL, "Embedding (sharded): the compact gradient is not (%lld, %lld) %s",
                       (long long)U, (long long)D, C->dtype_name(s->dtype));
    if (t->stype == KL_STYPE_ROW_SPARSE) {
      memset(rows, 0, (size_t)U * rb);
      for (int64_t a = 0; a < t->nnz; a++)
        memcpy(rows + (size_t)t->indices[a] * rb, (const char *)t->data + (size_t)a * rb, rb);
    } else if (t->stype == KL_STYPE_DEFAULT) {
      memcpy(rows, t->data, (size_t)U * rb);
    } else {
      return C->seterr(KL_EINVAL, "Embedding (sharded): a %s gradient", C->stype_name(t->stype));
    }
    if (sc != 1.0) {
      if (s->dtype == KL_FLOAT32) {
        float *f = (float *)rows, fs = (float)sc;
        for (int64_t q = 0; q < U * D; q++) f[q] *= fs;
      } else {
        double *f = (double *)rows;
        for (int64_t q = 0; q < U * D; q++) f[q] *= sc;
      }
    }
  }
  rc = MPI_Alltoallv(rows, s->scnt, s->sdsp, s->row, recv, s->rcnt, s->rdsp, s->row,
                     MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_st(rc, "MPI_Alltoallv");
  s->bytes_sent += U * D * (int64_t)es;
  s->bytes_recv += s->nrecv * D * (int64_t)es;
  /* merge: local rows sorted, each row's contributions in arrival (= source-rank) order */
  const int64_t M = s->nrecv;
  pair *pr = sbuf_get(&s->merge, (size_t)M * sizeof *pr);
  if (!pr) return C->seterr(KL_ENOMEM, "Embedding (sharded): out of memory");
  const int64_t *ids = s->ids_recv.p;
  for (int64_t j = 0; j < M; j++) pr[j].key = ids[j] / s->n, pr[j].pos = j;
  qsort(pr, (size_t)M, sizeof *pr, cmp_pair);
  int64_t nu = 0;
  for (int64_t j = 0; j < M; j++) nu += j == 0 || pr[j].key != pr[j - 1].key;
  int64_t shp[2] = {s->R, D};
  kl_tensor *o = NULL;
  KL_TRY(C->tensor_new_rsp(s->dtype, 2, shp, nu, &o));
  memset(o->data, 0, (size_t)nu * rb);
  for (int64_t j = 0, u = -1; j < M; j++) {
    if (j == 0 || pr[j].key != pr[j - 1].key) o->indices[++u] = pr[j].key;
    const char *src = recv + (size_t)pr[j].pos * rb;
    char *dst = (char *)o->data + (size_t)u * rb;
    if (s->dtype == KL_FLOAT32) {
      float *a = (float *)dst;
      const float *b = (const float *)src;
      for (int64_t c = 0; c < D; c++) a[c] += b[c];
    } else {
      double *a = (double *)dst;
      const double *b = (const double *)src;
      for (int64_t c = 0; c < D; c++) a[c] += b[c];
    }
  }
  C->tensor_release(*g);
  *g = o;
  return KL_OK;
}

static const kl_node_ext sh_ops = {sh_forward, sh_backward, shard_free};

static int sh_fail(lua_State *L, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  lua_pushstring(L, buf);
  return lua_error(L);
}

static void world(int *rank, int *n) {
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, n);
}

static int64_t rows_of(int64_t V, int r, int n) { return V > r ? (V - r + n - 1) / n : 0; }

/* shard_attach(plan, node, k, shard, V): node (1-based) of plan runs as a sharded
 * Embedding over the (R_r, D) shard of a V-row table; k: the shard's 1-based weight index
 * in the plan, 0 when it is not trained there. Local checks only (every rank runs the same
 * compile). */
static int l_shard_attach(lua_State *L) {
  kl_plan *p = C->lua_checkplan(L, 1, "shard_attach");
  lua_Integer node = luaL_checkinteger(L, 2), k = luaL_checkinteger(L, 3);
  kl_tensor *w = C->lua_checktensor(L, 4, "shard_attach");
  lua_Integer V = luaL_checkinteger(L, 5);
  int rank, n;
  world(&rank, &n);
  if (w->stype != KL_STYPE_DEFAULT || w->ndim != 2 || (w->dtype != KL_FLOAT32 && w->dtype != KL_FLOAT64))
    return sh_fail(L, "shard_attach: the shard must be a dense float matrix");
  if (V < 1 || w->shape[0] != rows_of(V, rank, n))
    return sh_fail(L, "shard_attach: rank %d of %d holds %lld rows of V = %lld (expected %lld)",
                   rank, n, (long long)w->shape[0], (long long)V, (long long)rows_of(V, rank, n));
  if (k < 0 || (k > 0 && C->plan_weight(p, (int)k - 1) != w))
    return sh_fail(L, "shard_attach: weight %lld of the plan is not the shard", (long long)k);
  shard *s = calloc(1, sizeof *s);
  if (!s || !(s->scnt = malloc((size_t)n * 4 * sizeof(int)))) {
    free(s);
    return sh_fail(L, "shard_attach: out of memory");
  }
  s->sdsp = s->scnt + n, s->rcnt = s->scnt + 2 * n, s->rdsp = s->scnt + 3 * n;
  s->plan = p, s->node = (int)node - 1, s->k = (int)k - 1, s->n = n, s->rank = rank;
  s->V = V, s->D = w->shape[1], s->R = w->shape[0], s->dtype = w->dtype;
  s->es = w->dtype == KL_FLOAT32 ? 4 : 8;
  s->row = MPI_DATATYPE_NULL;
  if (s->D > INT_MAX ||
      MPI_Type_contiguous((int)s->D, w->dtype == KL_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE, &s->row) != MPI_SUCCESS ||
      MPI_Type_commit(&s->row) != MPI_SUCCESS) {
    free(s->scnt);
    free(s);
    return sh_fail(L, "shard_attach: cannot make an MPI type of %lld values", (long long)w->shape[1]);
  }
  s->w = C->tensor_retain(w);
  kl_status st = C->plan_set_node_ext(p, s->node, &sh_ops, s);
  if (st != KL_OK) {
    shard_free(s); /* not yet on the live list: only its memory */
    return C->lua_raise(L, st);
  }
  s->next = g_live;
  g_live = s;
  return 0;
}

/* shard_stats(plan, node) -> {steps, bytes_sent, bytes_recv} or nil. */
static int l_shard_stats(lua_State *L) {
  kl_plan *p = C->lua_checkplan(L, 1, "shard_stats");
  lua_Integer node = luaL_checkinteger(L, 2);
  for (shard *s = g_live; s; s = s->next)
    if (s->plan == p && s->node == node - 1) {
      lua_createtable(L, 0, 3);
      lua_pushinteger(L, s->steps);
      lua_setfield(L, -2, "steps");
      lua_pushinteger(L, s->bytes_sent);
      lua_setfield(L, -2, "bytes_sent");
      lua_pushinteger(L, s->bytes_recv);
      lua_setfield(L, -2, "bytes_recv");
      return 1;
    }
  lua_pushnil(L);
  return 1;
}

/* The rows of rank r's shard, at their places in a full (V, D) table: every n-th row from
 * row r (a row type resized to the extent of n rows). */
static int strided_rows(MPI_Datatype row, int64_t D, int n, size_t es, MPI_Datatype *out) {
  MPI_Aint lb = 0, ext = (MPI_Aint)((size_t)n * (size_t)D * es);
  int rc = MPI_Type_create_resized(row, lb, ext, out);
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(out);
  return rc;
}

/* The checks every rank makes before a gather or scatter, agreed: the shard's layout. */
static void check_shard(lua_State *L, const char *fn, const kl_tensor *t, int64_t V, int rank,
                        int n) {
  char msg[300] = "";
  int bad = 0;
  if (t->stype != KL_STYPE_DEFAULT || t->ndim != 2 || (t->dtype != KL_FLOAT32 && t->dtype != KL_FLOAT64))
    bad = 1, snprintf(msg, sizeof msg, "%s: rank %d's shard is not a dense float matrix", fn, rank);
  else if (t->shape[0] != rows_of(V, rank, n) || t->shape[0] > INT_MAX || t->shape[1] > INT_MAX)
    bad = 1, snprintf(msg, sizeof msg, "%s: rank %d holds %lld rows, its share of V = %lld is %lld",
                      fn, rank, (long long)t->shape[0], (long long)V, (long long)rows_of(V, rank, n));
  int64_t mine[2] = {bad ? 1 : 0, bad ? 0 : t->shape[1]}, mx[2], mn[2];
  mine[0] = bad;
  MPI_Allreduce(mine, mx, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  int64_t w = bad ? INT64_MAX : t->shape[1];
  MPI_Allreduce(&w, mn, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
  if (mx[0]) {
    if (bad) sh_fail(L, "%s", msg);
    sh_fail(L, "%s: another rank's shard does not fit (see its message)", fn);
  }
  if (mx[1] != mn[0]) sh_fail(L, "%s: the ranks' shards differ in width (%lld and %lld)", fn,
                              (long long)mn[0], (long long)mx[1]);
}

/* shard_gather(shard, V, root) -> the full (V, D) table on root (every rank when root is
 * -1), nil elsewhere. Collective. */
static int l_shard_gather(lua_State *L) {
  kl_tensor *t = C->lua_checktensor(L, 1, "shard_gather");
  lua_Integer V = luaL_checkinteger(L, 2), root = luaL_checkinteger(L, 3);
  int rank, n;
  world(&rank, &n);
  if (root < -1 || root >= n) return sh_fail(L, "shard_gather: root %lld out of range", (long long)root);
  check_shard(L, "shard_gather", t, V, rank, n);
  const int64_t D = t->shape[1];
  const size_t es = t->dtype == KL_FLOAT32 ? 4 : 8;
  const int all = root < 0, here = all || rank == root;
  kl_tensor *out = NULL;
  kl_status st = KL_OK;
  int64_t shp[2] = {V, D};
  if (here) st = C->tensor_new_dense(t->dtype, 2, shp, &out);
  int bad = st != KL_OK, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any) {
    C->tensor_release(out);
    return bad ? C->lua_raise(L, st) : sh_fail(L, "shard_gather: another rank ran out of memory");
  }
  MPI_Datatype row, srow;
  MPI_Type_contiguous((int)D, t->dtype == KL_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE, &row);
  MPI_Type_commit(&row);
  int rc = strided_rows(row, D, n, es, &srow);
  const int64_t R = t->shape[0];
  if (here) /* this rank's rows into their places */
    for (int64_t j = 0; j < R; j++)
      memcpy((char *)out->data + (size_t)(rank + j * n) * (size_t)D * es,
             (const char *)t->data + (size_t)j * (size_t)D * es, (size_t)D * es);
  for (int r = 0; rc == MPI_SUCCESS && r < n; r++) {
    const int cnt = (int)rows_of(V, r, n);
    char *at = out ? (char *)out->data + (size_t)r * (size_t)D * es : NULL;
    if (all) {
      rc = MPI_Bcast(rank == r ? at : at, cnt, srow, r, MPI_COMM_WORLD);
    } else if (r != root) {
      if (rank == r) rc = MPI_Send(t->data, cnt, row, (int)root, 16, MPI_COMM_WORLD);
      else if (rank == root) rc = MPI_Recv(at, cnt, srow, r, 16, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
  }
  MPI_Type_free(&srow);
  MPI_Type_free(&row);
  if (rc != MPI_SUCCESS) {
    C->tensor_release(out);
    return C->lua_raise(L, mpi_st(rc, "shard_gather"));
  }
  if (!out) return lua_pushnil(L), 1;
  C->lua_push_tensor(L, out);
  return 1;
}

/* shard_scatter(full_or_nil, shard, V, root): root's full (V, D) table's rows into every
 * rank's shard (in place). Collective; only root holds the table. */
static int l_shard_scatter(lua_State *L) {
  kl_tensor *t = C->lua_checktensor(L, 2, "shard_scatter");
  lua_Integer V = luaL_checkinteger(L, 3), root = luaL_checkinteger(L, 4);
  int rank, n;
  world(&rank, &n);
  if (root < 0 || root >= n) return sh_fail(L, "shard_scatter: root %lld out of range", (long long)root);
  kl_tensor *full = rank == root ? C->lua_checktensor(L, 1, "shard_scatter") : NULL;
  char msg[300] = "";
  int bad = 0;
  if (full && (full->stype != KL_STYPE_DEFAULT || full->ndim != 2 || full->shape[0] != V ||
               full->shape[1] != t->shape[1] || full->dtype != t->dtype))
    bad = 1, snprintf(msg, sizeof msg, "shard_scatter: the table on rank %d is not a dense (%lld, %lld) %s matrix",
                      rank, (long long)V, (long long)t->shape[1], C->dtype_name(t->dtype));
  int any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any) return bad ? sh_fail(L, "%s", msg) : sh_fail(L, "shard_scatter: the root's table does not fit");
  check_shard(L, "shard_scatter", t, V, rank, n);
  const int64_t D = t->shape[1];
  const size_t es = t->dtype == KL_FLOAT32 ? 4 : 8;
  MPI_Datatype row, srow;
  MPI_Type_contiguous((int)D, t->dtype == KL_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE, &row);
  MPI_Type_commit(&row);
  int rc = strided_rows(row, D, n, es, &srow);
  for (int r = 0; rc == MPI_SUCCESS && r < n; r++) {
    const int cnt = (int)rows_of(V, r, n);
    if (r == root && rank == root) {
      for (int64_t j = 0; j < cnt; j++)
        memcpy((char *)t->data + (size_t)j * (size_t)D * es,
               (const char *)full->data + (size_t)(r + j * n) * (size_t)D * es, (size_t)D * es);
    } else if (rank == root) {
      rc = MPI_Send((char *)full->data + (size_t)r * (size_t)D * es, cnt, srow, r, 17, MPI_COMM_WORLD);
    } else if (rank == r) {
      rc = MPI_Recv(t->data, cnt, row, (int)root, 17, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
  }
  MPI_Type_free(&srow);
  MPI_Type_free(&row);
  if (rc != MPI_SUCCESS) return C->lua_raise(L, mpi_st(rc, "shard_scatter"));
  return 0;
}

/* shard_take(full, shard): this rank's rows of a full (V, D) table every rank holds, into
 * its shard (local: no communication). */
static int l_shard_take(lua_State *L) {
  kl_tensor *full = C->lua_checktensor(L, 1, "shard_take"), *t = C->lua_checktensor(L, 2, "shard_take");
  int rank, n;
  world(&rank, &n);
  if (full->stype != KL_STYPE_DEFAULT || t->stype != KL_STYPE_DEFAULT || full->ndim != 2 ||
      t->ndim != 2 || full->dtype != t->dtype || full->shape[1] != t->shape[1] ||
      t->shape[0] != rows_of(full->shape[0], rank, n))
    return sh_fail(L, "shard_take: a dense (%lld, %lld) table does not give rank %d of %d a "
                   "shard of %lld rows", (long long)full->shape[0], (long long)full->shape[1],
                   rank, n, (long long)t->shape[0]);
  const size_t rb = (size_t)t->shape[1] * (t->dtype == KL_FLOAT32 ? 4 : 8);
  for (int64_t j = 0; j < t->shape[0]; j++)
    memcpy((char *)t->data + (size_t)j * rb, (const char *)full->data + (size_t)(rank + j * n) * rb, rb);
  return 0;
}

void kl_sharded_open(lua_State *L, const kl_capi *capi) {
  C = capi;
  static const luaL_Reg fns[] = {
      {"shard_attach", l_shard_attach},
      {"shard_stats", l_shard_stats},
      {"shard_gather", l_shard_gather},
      {"shard_scatter", l_shard_scatter},
      {"shard_take", l_shard_take},
      {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
}
