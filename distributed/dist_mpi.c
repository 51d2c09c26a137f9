/* dist_mpi.c: keras.distributed_mpi, the MPI half of keras.distributed (issue 15).
 *
 * Built only when CMake finds MPI, as its own module (build/lua/keras/distributed_mpi.so):
 * core.so never links libmpi. It reaches the backend through core._capi (kl_capi.h), never
 * through a second copy of it. lua/keras/distributed.lua loads it when the process was
 * started by an MPI launcher, and is a size-1 world otherwise.
 *
 * Collectives on tensors (allreduce, broadcast, allgather) and the training hook
 * (attach(plan)): after each step's backward, every rank's gradients are scaled by its share
 * of the global batch (n_r / N) and summed over the ranks:
 *   dense       MPI_Allreduce (small gradients packed into one buffer); deterministic mode:
 *               allgather and a sum in rank order, so the bits do not depend on MPI's
 *               reduction tree.
 *   row_sparse  the ranks share their row counts first (so all make the same choice), then
 *               gather the indices; the union of the rows is the new gradient's rows (the
 *               lazy update touches those only). The rows themselves come by allgatherv and
 *               are summed in rank order into the union, or, when the union is small next
 *               to the rows sent (heavy overlap), by one allreduce of the union rows (each
 *               rank scatters its rows into a zeroed union buffer). Deterministic mode
 *               always takes the gather.
 * Every rank then runs the same update on the same bits, so weights stay identical.
 *
 * Errors: a check that could fail on some ranks only is agreed on first (an allreduce of an
 * error flag), so either every rank raises or none does; no rank is left in a collective.
 * An uncaught Lua error ends the process with a non-zero status: an on_exit handler then
 * calls MPI_Abort, which ends the job instead of leaving the other ranks waiting. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "kl_capi.h"
#include "sharded.h"

static const kl_capi *C; /* the core's API (set at luaopen) */

/* ------------------------------------------------------------------ the world */

static int g_inited, g_finalized, g_rank, g_size = 1, g_local_rank;

static void on_exit_handler(int status, void *arg) {
  (void)arg;
  int fin = 0, ini = 0;
  MPI_Initialized(&ini);
  MPI_Finalized(&fin);
  if (!ini || fin) return;
  if (status != 0) {
    fprintf(stderr, "keras.distributed: rank %d exits with status %d: aborting the job\n", g_rank,
            status);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
}

static int fail(lua_State *L, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  lua_pushstring(L, buf);
  return lua_error(L);
}

static void check_mpi(lua_State *L, int rc, const char *fn) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail(L, "%s: MPI error: %s", fn, msg);
}

static void need_world(lua_State *L, const char *fn) {
  if (!g_inited) fail(L, "%s: keras.distributed.init() was not called", fn);
  if (g_finalized) fail(L, "%s: keras.distributed was finalized", fn);
}

/* init() -> rank, size (idempotent). */
static int l_init(lua_State *L) {
  if (g_finalized) return fail(L, "init: keras.distributed was finalized (MPI cannot restart)");
  if (!g_inited) {
    int ini = 0, provided = 0;
    MPI_Initialized(&ini);
    if (!ini) check_mpi(L, MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "init");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
      MPI_Comm_rank(node, &g_local_rank);
      MPI_Comm_free(&node);
    }
    on_exit(on_exit_handler, NULL);
    g_inited = 1;
  }
  lua_pushinteger(L, g_rank);
  lua_pushinteger(L, g_size);
  return 2;
}

static int l_rank(lua_State *L) { return lua_pushinteger(L, g_rank), 1; }
static int l_size(lua_State *L) { return lua_pushinteger(L, g_size), 1; }
static int l_local_rank(lua_State *L) { return lua_pushinteger(L, g_local_rank), 1; }

static int l_barrier(lua_State *L) {
  need_world(L, "barrier");
  check_mpi(L, MPI_Barrier(MPI_COMM_WORLD), "barrier");
  return 0;
}

static int l_finalize(lua_State *L) {
  if (g_inited && !g_finalized) {
    MPI_Finalize();
    g_finalized = 1;
  }
  return 0;
}

/* abort(code): ends every rank of the job now. */
static int l_abort(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 1);
  if (g_inited && !g_finalized) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

/* ------------------------------------------------------------------ helpers */

static MPI_Datatype mpi_type(kl_dtype d) {
  return d == KL_FLOAT32 ? MPI_FLOAT : d == KL_FLOAT64 ? MPI_DOUBLE : MPI_INT64_T;
}

/* Counts beyond INT_MAX are sent in chunks (Open MPI 4.1 has no large-count calls). */
#define KL_CHUNK ((int64_t)1 << 30)

static int allreduce_n(void *buf, int64_t n, MPI_Datatype t, MPI_Op op) {
  int es = 0;
  MPI_Type_size(t, &es);
  for (int64_t off = 0; off < n; off += KL_CHUNK) {
    int c = (int)(n - off < KL_CHUNK ? n - off : KL_CHUNK);
    int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * es, c, t, op, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

static int bcast_n(void *buf, int64_t n, MPI_Datatype t, int root) {
  int es = 0;
  MPI_Type_size(t, &es);
  for (int64_t off = 0; off < n; off += KL_CHUNK) {
    int c = (int)(n - off < KL_CHUNK ? n - off : KL_CHUNK);
    int rc = MPI_Bcast((char *)buf + off * es, c, t, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

/* Every rank's verdict: 1 when any rank had an error (its message stays local). */
static int any_error(int mine) {
  int all = mine;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return all;
}

/* Raises msg on every rank when any rank failed: msg on the ranks that failed, a line
 * naming the failing rank elsewhere (so none waits in a later collective). */
static void agree(lua_State *L, const char *fn, int bad, const char *msg) {
  int who = bad ? g_rank : INT_MAX, first = INT_MAX;
  MPI_Allreduce(&who, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == INT_MAX) return;
  if (bad) fail(L, "%s", msg);
  fail(L, "%s: rank %d refused its input (see its message)", fn, first);
}

/* Grow-only scratch. */
typedef struct buf {
  void *p;
  size_t cap;
} buf;

static void *buf_get(buf *b, size_t bytes) {
  if (bytes > b->cap) {
    size_t want = bytes + bytes / 2 + 64;
    void *q = realloc(b->p, want);
    if (!q) return NULL;
    b->p = q;
    b->cap = want;
  }
  return b->p;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorted unique copy of idx[0..n-1] into out (n slots); returns the count. */
static int64_t sorted_union(const int64_t *idx, int64_t n, int64_t *out) {
  memcpy(out, idx, (size_t)n * sizeof *out);
  qsort(out, (size_t)n, sizeof *out, cmp_i64);
  int64_t u = 0;
  for (int64_t i = 0; i < n; i++)
    if (u == 0 || out[i] != out[u - 1]) out[u++] = out[i];
  return u;
}

static int64_t find_row(const int64_t *u, int64_t n, int64_t v) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t m = lo + (hi - lo) / 2;
    if (u[m] < v) lo = m + 1; else hi = m;
  }
  return lo;
}

/* ------------------------------------------------------------------ the exchange */

/* Scratch of the row_sparse exchange and its counters (kept across steps: fresh buffers
 * each step made the exchange ~10x slower in page faults). */
typedef struct xchg {
  buf counts, displs, idx, rows, uni, acc, pack, head, cnt;
  int deterministic;
  int64_t steps, bytes_recv, bytes_sent, sparse_gather, sparse_allreduce;
} xchg;

static void xchg_free(xchg *x) {
  buf *all[] = {&x->counts, &x->displs, &x->idx, &x->rows, &x->uni, &x->acc, &x->pack,
                &x->head, &x->cnt};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->p);
  memset(x, 0, sizeof *x);
}

#define KL_XCHG_ENOMEM(C_) (C_)->seterr(KL_ENOMEM, "distributed: out of memory in the gradient exchange")

static kl_status mpi_status(int rc, const char *what) {
  if (rc == MPI_SUCCESS) return KL_OK;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return C->seterr(KL_EIO, "distributed: %s failed: %s", what, msg);
}

/* x *= s over n values of dtype d. */
static void scale(void *x, int64_t n, kl_dtype d, double s) {
  if (s == 1.0) return;
  if (d == KL_FLOAT32) {
    float *f = x, fs = (float)s;
    for (int64_t i = 0; i < n; i++) f[i] *= fs;
  } else {
    double *f = x;
    for (int64_t i = 0; i < n; i++) f[i] *= s;
  }
}

/* acc[0..n) += src[0..n) */
static void add_into(void *acc, const void *src, int64_t n, kl_dtype d) {
  if (d == KL_FLOAT32) {
    float *a = acc;
    const float *b = src;
    for (int64_t i = 0; i < n; i++) a[i] += b[i];
  } else {
    double *a = acc;
    const double *b = src;
    for (int64_t i = 0; i < n; i++) a[i] += b[i];
  }
}

/* Sum of a dense buffer over the ranks, in rank order (deterministic) or by MPI. */
static kl_status dense_sum(xchg *x, void *data, int64_t n, kl_dtype d) {
  if (!x->deterministic || g_size == 1)
    return mpi_status(allreduce_n(data, n, mpi_type(d), MPI_SUM), "MPI_Allreduce");
  size_t es = d == KL_FLOAT32 ? 4 : 8, bytes = (size_t)n * es;
  if ((int64_t)bytes > INT_MAX) /* gather beyond int counts: not worth chunking; say so */
    return C->seterr(KL_EUNSUPPORTED, "distributed: deterministic mode needs dense gradients "
                                      "under 2 GiB (got %zu bytes)", bytes);
  char *all = buf_get(&x->rows, bytes * (size_t)g_size);
  if (!all) return KL_XCHG_ENOMEM(C);
  kl_status st = mpi_status(MPI_Allgather(data, (int)n, mpi_type(d), all, (int)n, mpi_type(d),
                                          MPI_COMM_WORLD), "MPI_Allgather");
  if (st != KL_OK) return st;
  memcpy(data, all, bytes);
  for (int r = 1; r < g_size; r++) add_into(data, all + (size_t)r * bytes, n, d);
  x->bytes_recv += (int64_t)bytes * (g_size - 1);
  return KL_OK;
}

/* The union of the ranks' sorted index runs idx[rd[r] .. rd[r] + rc[r]) into uni (returns
 * its size U), and pos[j], the union position of gathered row j: a k-way merge of the runs
 * on a binary heap of their heads, O(total log ranks) (each rank's row_sparse indices are
 * strictly increasing already; no sort, no search). Returns -1 if a run was not sorted. */
static int64_t merge_runs(const int64_t *idx, const int *rc, const int *rd, int64_t *uni,
                          int64_t *pos, int *heap, int64_t *cur) {
  int hn = 0;
#define KL_HEAD(r) idx[cur[r]]
#define KL_LESS(a, b) (KL_HEAD(a) < KL_HEAD(b) || (KL_HEAD(a) == KL_HEAD(b) && (a) < (b)))
  for (int r = 0; r < g_size; r++) {
    if (rc[r] <= 0) continue;
    cur[r] = rd[r];
    int c = hn++; /* sift up */
    heap[c] = r;
    while (c > 0 && KL_LESS(heap[c], heap[(c - 1) / 2])) {
      int t = heap[c]; heap[c] = heap[(c - 1) / 2]; heap[(c - 1) / 2] = t;
      c = (c - 1) / 2;
    }
  }
  int64_t U = 0;
  while (hn > 0) {
    int r = heap[0];
    int64_t j = cur[r], v = idx[j];
    if (U > 0 && v < uni[U - 1]) return -1;
    if (U == 0 || uni[U - 1] != v) uni[U++] = v;
    pos[j] = U - 1;
    if (++cur[r] == (int64_t)rd[r] + rc[r]) heap[0] = heap[--hn];
    for (int c = 0;;) { /* sift down */
      int l = 2 * c + 1, m = c;
      if (l < hn && KL_LESS(heap[l], heap[m])) m = l;
      if (l + 1 < hn && KL_LESS(heap[l + 1], heap[m])) m = l + 1;
      if (m == c) break;
      int t = heap[c]; heap[c] = heap[m]; heap[m] = t;
      c = m;
    }
  }
#undef KL_LESS
#undef KL_HEAD
  return U;
}

/* Replaces the row_sparse *g (this rank's rows, already scaled) by the sum over the ranks,
 * stored over the union of their rows; cnt[r]: rank r's row count (all ranks agree on it). */
static kl_status rsp_sum_counted(xchg *x, kl_tensor **g, const int64_t *cnt) {
  kl_tensor *t = *g;
  const kl_dtype d = t->dtype;
  const int64_t D = C->row_width(t), mine = t->nnz;
  const size_t es = d == KL_FLOAT32 ? 4 : 8;
  int64_t total = 0;
  for (int r = 0; r < g_size; r++) total += cnt[r];
  if (total > INT_MAX || total * D > INT_MAX)
    return C->seterr(KL_EUNSUPPORTED, "distributed: %lld gradient rows of width %lld in one "
                     "step exceed MPI's int counts", (long long)total, (long long)D);
  int *ic = buf_get(&x->displs, (size_t)g_size * 3 * sizeof(int));
  int64_t *cur = buf_get(&x->counts, (size_t)g_size * sizeof(int64_t));
  const size_t tb = (size_t)(total > 0 ? total : 1) * sizeof(int64_t);
  int64_t *idx = buf_get(&x->idx, 2 * tb), *uni = buf_get(&x->uni, tb);
  if (!ic || !cur || !idx || !uni) return KL_XCHG_ENOMEM(C);
  int64_t *pos = idx + (total > 0 ? total : 1);
  int *rc = ic, *rd = ic + g_size, *heap = ic + 2 * g_size;
  for (int r = 0, off = 0; r < g_size; r++) rc[r] = (int)cnt[r], rd[r] = off, off += (int)cnt[r];
  kl_status st = mpi_status(MPI_Allgatherv(t->indices, (int)mine, MPI_INT64_T, idx, rc, rd,
                                           MPI_INT64_T, MPI_COMM_WORLD), "MPI_Allgatherv");
  if (st != KL_OK) return st;
  x->bytes_recv += (total - mine) * 8;
  x->bytes_sent += mine * 8;
  int64_t U = merge_runs(idx, rc, rd, uni, pos, heap, cur);
  if (U < 0) { /* an unsorted run (not from a valid row_sparse): sort and search instead */
    U = sorted_union(idx, total, uni);
    for (int64_t j = 0; j < total; j++) pos[j] = find_row(uni, U, idx[j]);
  }
  kl_tensor *out = NULL;
  st = C->tensor_new_rsp(d, t->ndim, t->shape, U, &out);
  if (st != KL_OK) return st;
  memcpy(out->indices, uni, (size_t)U * sizeof(int64_t));
  memset(out->data, 0, (size_t)(U * D) * es);
  /* Gather when the rows sent are few next to the union, or when the order must be fixed;
   * otherwise one allreduce of the union rows. Every rank computes the same choice. */
  if (x->deterministic || total <= 2 * U) {
    char *rows = buf_get(&x->rows, (size_t)(total > 0 ? total : 1) * (size_t)D * es);
    if (!rows) st = KL_XCHG_ENOMEM(C);
    for (int r = 0; st == KL_OK && r < g_size; r++) rc[r] = (int)(cnt[r] * D), rd[r] *= (int)D;
    if (st == KL_OK)
      st = mpi_status(MPI_Allgatherv(t->data, (int)(mine * D), mpi_type(d), rows, rc, rd,
                                     mpi_type(d), MPI_COMM_WORLD), "MPI_Allgatherv");
    if (st == KL_OK) {
      for (int64_t j = 0; j < total; j++) /* rank order: j runs over rank 0's rows first */
        add_into((char *)out->data + (size_t)(pos[j] * D) * es, rows + (size_t)(j * D) * es, D, d);
      x->bytes_recv += (total - mine) * D * (int64_t)es;
      x->bytes_sent += mine * D * (int64_t)es;
      x->sparse_gather++;
    }
  } else {
    const int64_t *my = pos + rd[g_rank];
    for (int64_t j = 0; j < mine; j++)
      memcpy((char *)out->data + (size_t)(my[j] * D) * es, (const char *)t->data + (size_t)(j * D) * es,
             (size_t)D * es);
    st = mpi_status(allreduce_n(out->data, U * D, mpi_type(d), MPI_SUM), "MPI_Allreduce");
    /* a ring allreduce sends and receives 2 (p - 1) / p of the buffer */
    const int64_t ring = 2 * (g_size - 1) * U * D * (int64_t)es / g_size;
    x->bytes_recv += ring, x->bytes_sent += ring;
    x->sparse_allreduce++;
  }
  if (st != KL_OK) {
    C->tensor_release(out);
    return st;
  }
  C->tensor_release(t);
  *g = out;
  return KL_OK;
}

/* rsp_sum_counted after sharing the row counts (the tensor collectives). */
static kl_status rsp_sum(xchg *x, kl_tensor **g) {
  int64_t mine = (*g)->nnz, *cnt = malloc((size_t)g_size * sizeof *cnt);
  if (!cnt) return KL_XCHG_ENOMEM(C);
  kl_status st = mpi_status(MPI_Allgather(&mine, 1, MPI_INT64_T, cnt, 1, MPI_INT64_T,
                                          MPI_COMM_WORLD), "MPI_Allgather");
  if (st == KL_OK) st = rsp_sum_counted(x, g, cnt);
  free(cnt);
  return st;
}

/* Whether the hook exchanges weight k's gradient as row_sparse rows. */
static int exchanged_rsp(kl_plan *p, kl_tensor **wgrad, int k) {
  return wgrad[k] && wgrad[k]->stype == KL_STYPE_ROW_SPARSE && !kl_sharded_owns_grad(p, k);
}

/* The plan hook: the global-batch mean of every gradient, on every rank. One allgather
 * first shares each rank's rows and its row_sparse gradients' row counts; then one
 * allreduce of the dense gradients packed, and per row_sparse gradient its indices and its
 * rows (or the union rows). */
static kl_status grad_hook(void *ud, kl_plan *p, kl_tensor **wgrad, int nw) {
  xchg *x = (xchg *)ud;
  int nrsp = 0;
  for (int k = 0; k < nw; k++) nrsp += exchanged_rsp(p, wgrad, k);
  const int w = 1 + nrsp;
  int64_t *mine = buf_get(&x->head, (size_t)w * (1 + (size_t)g_size) * sizeof(int64_t));
  if (!mine) return KL_XCHG_ENOMEM(C);
  int64_t *table = mine + w, *cnt = NULL;
  mine[0] = C->plan_batch_rows(p);
  for (int k = 0, i = 1; k < nw; k++)
    if (exchanged_rsp(p, wgrad, k)) mine[i++] = wgrad[k]->nnz;
  kl_status st = mpi_status(MPI_Allgather(mine, w, MPI_INT64_T, table, w, MPI_INT64_T,
                                          MPI_COMM_WORLD), "MPI_Allgather");
  if (st != KL_OK) return st;
  int64_t N = 0;
  for (int r = 0; r < g_size; r++) N += table[(size_t)r * w];
  const double s = N > 0 ? (double)mine[0] / (double)N : 0.0;
  x->steps++;
  /* Dense gradients of one dtype, packed into one buffer: one collective for all of them. */
  for (int pass = 0; pass < 2; pass++) {
    const kl_dtype d = pass == 0 ? KL_FLOAT32 : KL_FLOAT64;
    const size_t es = d == KL_FLOAT32 ? 4 : 8;
    int64_t n = 0;
    for (int k = 0; k < nw; k++)
      if (wgrad[k] && wgrad[k]->stype == KL_STYPE_DEFAULT && wgrad[k]->dtype == d)
        n += C->tensor_numel(wgrad[k]);
    if (n == 0) continue;
    char *pk = buf_get(&x->pack, (size_t)n * es);
    if (!pk) return KL_XCHG_ENOMEM(C);
    int64_t off = 0;
    for (int k = 0; k < nw; k++)
      if (wgrad[k] && wgrad[k]->stype == KL_STYPE_DEFAULT && wgrad[k]->dtype == d) {
        int64_t m = C->tensor_numel(wgrad[k]);
        memcpy(pk + (size_t)off * es, wgrad[k]->data, (size_t)m * es);
        off += m;
      }
    scale(pk, n, d, s);
    st = dense_sum(x, pk, n, d);
    if (st != KL_OK) return st;
    if (!x->deterministic) { /* a ring allreduce sends and receives 2 (p - 1) / p of it */
      const int64_t ring = 2 * (g_size - 1) * n * (int64_t)es / g_size;
      x->bytes_recv += ring, x->bytes_sent += ring;
    }
    off = 0;
    for (int k = 0; k < nw; k++)
      if (wgrad[k] && wgrad[k]->stype == KL_STYPE_DEFAULT && wgrad[k]->dtype == d) {
        int64_t m = C->tensor_numel(wgrad[k]);
        memcpy(wgrad[k]->data, pk + (size_t)off * es, (size_t)m * es);
        off += m;
      }
  }
  cnt = buf_get(&x->cnt, (size_t)g_size * sizeof(int64_t));
  if (nrsp > 0 && !cnt) return KL_XCHG_ENOMEM(C);
  for (int k = 0, i = 1; k < nw; k++) {
    if (!exchanged_rsp(p, wgrad, k)) continue;
    for (int r = 0; r < g_size; r++) cnt[r] = table[(size_t)r * w + i];
    i++;
    scale(wgrad[k]->data, wgrad[k]->nnz * C->row_width(wgrad[k]), wgrad[k]->dtype, s);
    st = rsp_sum_counted(x, &wgrad[k], cnt);
    if (st != KL_OK) return st;
  }
  return KL_OK;
}

/* ------------------------------------------------------------------ attach / detach */

/* The plan owns its hook's state (kl_plan_set_grad_hook): freed with the plan. */
static void xchg_destroy(void *ud) {
  xchg_free((xchg *)ud);
  free(ud);
}

/* attach(plan, {deterministic = false}): plan's steps exchange gradients from now on. */
static int l_attach(lua_State *L) {
  need_world(L, "attach");
  kl_plan *p = C->lua_checkplan(L, 1, "attach");
  int det = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "deterministic");
    det = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  xchg *x = calloc(1, sizeof *x);
  if (!x) return fail(L, "attach: out of memory");
  x->deterministic = det;
  C->plan_set_grad_hook(p, grad_hook, x, xchg_destroy);
  return 0;
}

static int l_detach(lua_State *L) {
  kl_plan *p = C->lua_checkplan(L, 1, "detach");
  C->plan_set_grad_hook(p, NULL, NULL, NULL);
  return 0;
}

/* hook_stats(plan) -> {steps, bytes_recv, bytes_sent, sparse_gather, sparse_allreduce}, or
 * nil when the plan has no exchange attached. */
static int l_hook_stats(lua_State *L) {
  xchg *x = (xchg *)C->plan_grad_hook_ud(C->lua_checkplan(L, 1, "hook_stats"), grad_hook);
  if (!x) return lua_pushnil(L), 1;
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, x->steps);
  lua_setfield(L, -2, "steps");
  lua_pushinteger(L, x->bytes_recv);
  lua_setfield(L, -2, "bytes_recv");
  lua_pushinteger(L, x->bytes_sent);
  lua_setfield(L, -2, "bytes_sent");
  lua_pushinteger(L, x->sparse_gather);
  lua_setfield(L, -2, "sparse_gather");
  lua_pushinteger(L, x->sparse_allreduce);
  lua_setfield(L, -2, "sparse_allreduce");
  return 1;
}

/* ------------------------------------------------------------------ tensor collectives */

/* A tensor's layout for agreement: dtype, stype, ndim, shape. */
typedef struct layout {
  int64_t dtype, stype, ndim, shape[KL_MAX_NDIM];
} layout;

static void layout_of(const kl_tensor *t, layout *l) {
  memset(l, 0, sizeof *l);
  l->dtype = t->dtype, l->stype = t->stype, l->ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++) l->shape[i] = t->shape[i];
}

static const char *shape_str(const layout *l, char *s, size_t n) {
  int o = snprintf(s, n, "(");
  for (int i = 0; i < l->ndim && o < (int)n; i++)
    o += snprintf(s + o, n - (size_t)o, i ? ", %lld" : "%lld", (long long)l->shape[i]);
  if (o < (int)n) snprintf(s + o, n - (size_t)o, l->ndim == 1 ? ",)" : ")");
  return s;
}

/* Agrees that every rank passed a tensor with root's layout (trailing dims only when
 * rows_free: allgather). */
static void agree_layout(lua_State *L, const char *fn, const kl_tensor *t, int root, int rows_free) {
  layout mine, r;
  layout_of(t, &mine);
  r = mine;
  MPI_Bcast(&r, sizeof r / sizeof(int64_t), MPI_INT64_T, root, MPI_COMM_WORLD);
  int bad = r.dtype != mine.dtype || r.stype != mine.stype || r.ndim != mine.ndim;
  for (int i = rows_free ? 1 : 0; !bad && i < mine.ndim; i++) bad = r.shape[i] != mine.shape[i];
  char msg[400], a[160], b[160];
  snprintf(msg, sizeof msg, "%s: rank %d has a %s %s tensor of shape %s, rank %d one of %s %s %s",
           fn, g_rank, C->dtype_name((kl_dtype)mine.dtype), C->stype_name((kl_stype)mine.stype),
           shape_str(&mine, a, sizeof a), root, C->dtype_name((kl_dtype)r.dtype),
           C->stype_name((kl_stype)r.stype), shape_str(&r, b, sizeof b));
  agree(L, fn, bad, msg);
}

static MPI_Op op_of(lua_State *L, const char *name, int *mean) {
  *mean = 0;
  if (strcmp(name, "sum") == 0) return MPI_SUM;
  if (strcmp(name, "mean") == 0) return *mean = 1, MPI_SUM;
  if (strcmp(name, "max") == 0) return MPI_MAX;
  if (strcmp(name, "min") == 0) return MPI_MIN;
  fail(L, "allreduce: op must be 'sum', 'mean', 'max' or 'min'. Received: op=%s", name);
  return MPI_SUM;
}

/* allreduce(t, op) -> a new tensor: dense (any dtype) or row_sparse (sum / mean). */
static int l_allreduce(lua_State *L) {
  need_world(L, "allreduce");
  kl_tensor *t = C->lua_checktensor(L, 1, "allreduce");
  int mean = 0;
  MPI_Op op = op_of(L, luaL_optstring(L, 2, "sum"), &mean);
  int bad = t->stype == KL_STYPE_CSR ||
            (t->stype == KL_STYPE_ROW_SPARSE && (op != MPI_SUM || t->dtype == KL_INT64)) ||
            (mean && t->dtype == KL_INT64);
  char msg[200];
  snprintf(msg, sizeof msg, "allreduce: a %s %s tensor cannot be reduced with op '%s' (dense "
           "tensors take every op; row_sparse float tensors 'sum' and 'mean')",
           C->dtype_name(t->dtype), C->stype_name(t->stype), luaL_optstring(L, 2, "sum"));
  agree(L, "allreduce", bad, msg);
  agree_layout(L, "allreduce", t, 0, 0);
  kl_tensor *out = NULL;
  if (t->stype == KL_STYPE_ROW_SPARSE) {
    xchg x;
    memset(&x, 0, sizeof x);
    x.deterministic = 1; /* a rank-order sum: the same bits whatever MPI's tree */
    kl_status st = C->tensor_copy(t, &out);
    if (st == KL_OK) st = rsp_sum(&x, &out);
    xchg_free(&x);
    if (st != KL_OK) {
      C->tensor_release(out);
      return C->lua_raise(L, st);
    }
  } else {
    kl_status st = C->tensor_copy(t, &out);
    if (st != KL_OK) return C->lua_raise(L, st);
    int rc = allreduce_n(out->data, C->tensor_numel(out), mpi_type(out->dtype), op);
    if (rc != MPI_SUCCESS) {
      C->tensor_release(out);
      check_mpi(L, rc, "allreduce");
    }
  }
  if (mean) scale(out->data, out->stype == KL_STYPE_ROW_SPARSE ? out->nnz * C->row_width(out)
                                                                 : C->tensor_numel(out),
                  out->dtype, 1.0 / g_size);
  C->lua_push_tensor(L, out);
  return 1;
}

/* The checks both broadcasts start with: root in range, the same layout everywhere; returns
 * the root and sets *nnz to root's stored entries. */
static int bcast_begin(lua_State *L, const char *fn, const kl_tensor *t, int64_t *nnz) {
  need_world(L, fn);
  lua_Integer root = luaL_optinteger(L, 2, 0);
  if (root < 0 || root >= g_size)
    return fail(L, "%s: root = %lld out of range 0..%d", fn, (long long)root, g_size - 1);
  agree_layout(L, fn, t, (int)root, 0);
  *nnz = t->nnz;
  MPI_Bcast(nnz, 1, MPI_INT64_T, (int)root, MPI_COMM_WORLD);
  return (int)root;
}

/* Root's storage into t (whose layout and nnz already agree): indptr, indices, values. */
static void bcast_storage(lua_State *L, const char *fn, kl_tensor *t, int64_t nnz, int root) {
  int64_t nval = t->stype == KL_STYPE_ROW_SPARSE ? nnz * C->row_width(t)
                 : t->stype == KL_STYPE_CSR      ? nnz
                                                 : C->tensor_numel(t);
  int rc = MPI_SUCCESS;
  if (t->stype == KL_STYPE_CSR) rc = bcast_n(t->indptr, t->shape[0] + 1, MPI_INT64_T, root);
  if (rc == MPI_SUCCESS && t->stype != KL_STYPE_DEFAULT) rc = bcast_n(t->indices, nnz, MPI_INT64_T, root);
  if (rc == MPI_SUCCESS) rc = bcast_n(t->data, nval, mpi_type(t->dtype), root);
  check_mpi(L, rc, fn);
}

/* broadcast(t, root) -> a new tensor holding root's t (root 0-based; same layout on every
 * rank; a sparse tensor takes root's stored entries). */
static int l_broadcast(lua_State *L) {
  kl_tensor *t = C->lua_checktensor(L, 1, "broadcast");
  int64_t nnz = 0;
  int root = bcast_begin(L, "broadcast", t, &nnz);
  kl_tensor *out = NULL;
  kl_status st = KL_OK;
  if (g_rank == root) st = C->tensor_copy(t, &out);
  else if (t->stype == KL_STYPE_DEFAULT) st = C->tensor_new_dense(t->dtype, t->ndim, t->shape, &out);
  else if (t->stype == KL_STYPE_CSR) st = C->tensor_new_csr(t->dtype, t->shape[0], t->shape[1], nnz, &out);
  else st = C->tensor_new_rsp(t->dtype, t->ndim, t->shape, nnz, &out);
  if (any_error(st != KL_OK)) {
    C->tensor_release(out);
    return st != KL_OK ? C->lua_raise(L, st) : fail(L, "broadcast: another rank ran out of memory");
  }
  C->lua_push_tensor(L, out); /* owned by Lua from here: an MPI error below cannot leak it */
  bcast_storage(L, "broadcast", out, nnz, root);
  return 1;
}

/* broadcast_into(t, root): root's values into t in place (weights and optimizer states at
 * the start of a distributed fit); t's layout and stored rows must agree on every rank. */
static int l_broadcast_into(lua_State *L) {
  kl_tensor *t = C->lua_checktensor(L, 1, "broadcast_into");
  int64_t nnz = 0;
  int root = bcast_begin(L, "broadcast_into", t, &nnz);
  char msg[160];
  snprintf(msg, sizeof msg, "broadcast_into: rank %d stores %lld entries, rank %d %lld", g_rank,
           (long long)t->nnz, root, (long long)nnz);
  agree(L, "broadcast_into", t->stype != KL_STYPE_DEFAULT && t->nnz != nnz, msg);
  bcast_storage(L, "broadcast_into", t, nnz, root);
  return 0;
}

/* allgather(t) -> the ranks' tensors concatenated along the rows, in rank order (dense or
 * csr; the trailing dims must agree, the row counts may differ). */
static int l_allgather(lua_State *L) {
  need_world(L, "allgather");
  kl_tensor *t = C->lua_checktensor(L, 1, "allgather");
  char msg[200];
  snprintf(msg, sizeof msg, "allgather: a %s tensor of %d dims cannot be gathered (dense tensors "
           "of rank >= 1 and csr matrices can)", C->stype_name(t->stype), t->ndim);
  agree(L, "allgather", t->stype == KL_STYPE_ROW_SPARSE || t->ndim < 1, msg);
  agree_layout(L, "allgather", t, 0, 1);
  int64_t mine[2] = {t->shape[0], t->stype == KL_STYPE_CSR ? t->nnz : C->tensor_numel(t)};
  int64_t *all = malloc((size_t)g_size * 2 * sizeof *all);
  int *rc = malloc((size_t)g_size * 2 * sizeof *rc);
  if (!all || !rc) {
    free(all), free(rc);
    return fail(L, "allgather: out of memory");
  }
  MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
  int64_t rows = 0, vals = 0;
  for (int r = 0; r < g_size; r++) rows += all[2 * r], vals += all[2 * r + 1];
  int big = vals > INT_MAX || rows > INT_MAX;
  kl_tensor *out = NULL;
  kl_status st = KL_OK;
  int64_t shape[KL_MAX_NDIM];
  memcpy(shape, t->shape, sizeof shape);
  shape[0] = rows;
  if (!big) {
    if (t->stype == KL_STYPE_CSR) st = C->tensor_new_csr(t->dtype, rows, t->shape[1], vals, &out);
    else st = C->tensor_new_dense(t->dtype, t->ndim, shape, &out);
  }
  if (any_error(big || st != KL_OK)) {
    free(all), free(rc);
    C->tensor_release(out);
    if (big) return fail(L, "allgather: %lld values exceed MPI's int counts", (long long)vals);
    return st != KL_OK ? C->lua_raise(L, st) : fail(L, "allgather: another rank ran out of memory");
  }
  int *rd = rc + g_size, ret = MPI_SUCCESS;
  for (int r = 0, off = 0; r < g_size; r++) rc[r] = (int)all[2 * r + 1], rd[r] = off, off += rc[r];
  ret = MPI_Allgatherv(t->data, (int)mine[1], mpi_type(t->dtype), out->data, rc, rd,
                       mpi_type(t->dtype), MPI_COMM_WORLD);
  if (ret == MPI_SUCCESS && t->stype == KL_STYPE_CSR) {
    ret = MPI_Allgatherv(t->indices, (int)mine[1], MPI_INT64_T, out->indices, rc, rd, MPI_INT64_T,
                         MPI_COMM_WORLD);
    /* row pointers: each rank's counts per row, then a prefix sum */
    int64_t *lens = malloc((size_t)(t->shape[0] > 0 ? t->shape[0] : 1) * sizeof *lens);
    if (!lens) ret = MPI_ERR_NO_MEM;
    for (int64_t i = 0; lens && i < t->shape[0]; i++) lens[i] = t->indptr[i + 1] - t->indptr[i];
    for (int r = 0, off = 0; r < g_size; r++) rc[r] = (int)all[2 * r], rd[r] = off, off += rc[r];
    if (ret == MPI_SUCCESS)
      ret = MPI_Allgatherv(lens, (int)t->shape[0], MPI_INT64_T, out->indptr + 1, rc, rd,
                           MPI_INT64_T, MPI_COMM_WORLD);
    free(lens);
    out->indptr[0] = 0;
    for (int64_t i = 1; ret == MPI_SUCCESS && i <= rows; i++) out->indptr[i] += out->indptr[i - 1];
  }
  free(all), free(rc);
  if (ret != MPI_SUCCESS) {
    C->tensor_release(out);
    check_mpi(L, ret, "allgather");
  }
  C->lua_push_tensor(L, out);
  return 1;
}

/* A 64-bit digest of a tensor's layout and stored bytes (8 bytes at a time: a pass at memory
 * speed, far cheaper than broadcasting the tensor). */
static uint64_t digest(const kl_tensor *t, uint64_t h) {
#define KL_MIX(v) (h = (h ^ (uint64_t)(v)) * 0x100000001b3ULL, h ^= h >> 29)
  KL_MIX(t->dtype), KL_MIX(t->stype), KL_MIX(t->ndim), KL_MIX(t->nnz);
  for (int i = 0; i < t->ndim; i++) KL_MIX(t->shape[i]);
  int64_t nval = t->stype == KL_STYPE_ROW_SPARSE ? t->nnz * C->row_width(t)
                 : t->stype == KL_STYPE_CSR      ? t->nnz
                                                 : C->tensor_numel(t);
  size_t bytes = (size_t)nval * (t->dtype == KL_FLOAT32 ? 4 : 8);
  const unsigned char *b = t->data;
  size_t k = 0;
  for (; k + 8 <= bytes; k += 8) {
    uint64_t w;
    memcpy(&w, b + k, 8);
    KL_MIX(w);
  }
  for (; k < bytes; k++) KL_MIX(b[k]);
  if (t->stype != KL_STYPE_DEFAULT)
    for (int64_t i = 0; i < t->nnz; i++) KL_MIX(t->indices[i]);
#undef KL_MIX
  return h;
}

/* same_everywhere({tensors...}[, x]) -> whether every rank holds the same bits in these
 * tensors (and the same integer x): one allreduce of a digest. fit skips its broadcast of
 * the weights and optimizer states when they already agree (after an earlier fit). */
static int l_same_everywhere(lua_State *L) {
  need_world(L, "same_everywhere");
  luaL_checktype(L, 1, LUA_TTABLE);
  uint64_t h = 0xcbf29ce484222325ULL;
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    h = digest(C->lua_checktensor(L, -1, "same_everywhere"), h);
    lua_pop(L, 1);
  }
  h ^= (uint64_t)luaL_optinteger(L, 2, 0) * 0x9e3779b97f4a7c15ULL;
  uint64_t v[2] = {h, ~h}, r[2];
  check_mpi(L, MPI_Allreduce(v, r, 2, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "same_everywhere");
  /* min == max: every rank's digest is the same (so each rank reaches the same verdict) */
  lua_pushboolean(L, r[0] == ~r[1]);
  return 1;
}

/* allreduce_number(x, op) -> the reduction of a Lua number over the ranks (double). */
static int l_allreduce_number(lua_State *L) {
  need_world(L, "allreduce_number");
  double v = luaL_checknumber(L, 1), r = v;
  int mean = 0;
  MPI_Op op = op_of(L, luaL_optstring(L, 2, "sum"), &mean);
  check_mpi(L, MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, op, MPI_COMM_WORLD), "allreduce_number");
  lua_pushnumber(L, mean ? r / g_size : r);
  return 1;
}

/* broadcast_number(x, root) -> root's x (an integer stays an integer). */
static int l_broadcast_number(lua_State *L) {
  need_world(L, "broadcast_number");
  int isint = lua_isinteger(L, 1);
  double d = isint ? 0 : luaL_checknumber(L, 1);
  int64_t i = isint ? (int64_t)lua_tointeger(L, 1) : 0;
  int root = (int)luaL_optinteger(L, 2, 0);
  int64_t msg[2] = {isint, isint ? i : 0};
  double dv = d;
  MPI_Bcast(msg, 2, MPI_INT64_T, root, MPI_COMM_WORLD);
  MPI_Bcast(&dv, 1, MPI_DOUBLE, root, MPI_COMM_WORLD);
  if (msg[0]) lua_pushinteger(L, (lua_Integer)msg[1]);
  else lua_pushnumber(L, dv);
  return 1;
}

int luaopen_keras_distributed_mpi(lua_State *L) {
  C = kl_capi_get(L);
  static const luaL_Reg fns[] = {
      {"init", l_init},
      {"rank", l_rank},
      {"size", l_size},
      {"local_rank", l_local_rank},
      {"barrier", l_barrier},
      {"finalize", l_finalize},
      {"abort", l_abort},
      {"allreduce", l_allreduce},
      {"broadcast", l_broadcast},
      {"broadcast_into", l_broadcast_into},
      {"allgather", l_allgather},
      {"allreduce_number", l_allreduce_number},
      {"same_everywhere", l_same_everywhere},
      {"broadcast_number", l_broadcast_number},
      {"attach", l_attach},
      {"detach", l_detach},
      {"hook_stats", l_hook_stats},
      {NULL, NULL},
  };
  luaL_newlib(L, fns);
  kl_sharded_open(L, C); /* Embedding{sharded = true} */
  return 1;
}
