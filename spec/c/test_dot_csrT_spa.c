/* test_dot_csrT_spa.c: csr^T . b with N <= 8 inside a pool takes the accumulator path
 * (dot_csrT_spa: the pool's kept column map); outside a pool, the sorted path. Both must give
 * the same indices and the same bits, for f32/f64, N = 1..9 (9 is always sorted), dense and
 * row_sparse b (rows missing), empty rows and batches, few columns (the direct accumulator
 * and its column scan), a dense column range (the map scan) and a sparse one (the radix sort
 * of the slots), over many calls in one pool (a map left
 * dirty by one call would corrupt the next), and after an allocation failure in the middle
 * of a call. The map must be all zero after every call. */
#include <stdlib.h>
#include "kl/pool.h"
#include "kltest.h"
#include "kltest_ops.h"

typedef struct spa_case {
  kl_tensor *a, *b;
} spa_case;

/* R x C csr with about nz entries a row in [lo, lo + span) (some rows empty); b: R x N dense,
 * or row_sparse storing every third row missing when bsp. */
static spa_case make_case(kl_dtype dt, int64_t R, int64_t C, int64_t lo, int64_t span, int nz,
                          int64_t N, int bsp, uint64_t seed) {
  kl_rng g;
  kl_rng_seed(&g, seed);
  int64_t *ip = malloc((size_t)(R + 1) * sizeof *ip);
  int64_t *ix = malloc((size_t)(R * nz + 1) * sizeof *ix);
  double *v = malloc((size_t)(R * nz + 1) * sizeof *v);
  if (!ip || !ix || !v) exit(2);
  int64_t n = 0;
  ip[0] = 0;
  for (int64_t i = 0; i < R; i++) {
    int k = i % 5 == 3 ? 0 : nz; /* some empty rows */
    int64_t c = lo + (int64_t)(kl_rng_uniform(&g) * (double)(span / (nz + 1)));
    for (int q = 0; q < k && c < lo + span; q++) {
      ix[n] = c;
      /* values with exact zeros and negative zeros among them: their sums' bits matter */
      v[n] = q % 7 == 6 ? -0.0 : kl_rng_uniform(&g) - 0.5;
      n++;
      c += 1 + (int64_t)(kl_rng_uniform(&g) * (double)(span / (nz + 1)));
    }
    ip[i + 1] = n;
  }
  spa_case s;
  s.a = kt_csr_of(dt, R, C, n, ip, ix, v);
  int64_t shape[2] = {R, N};
  kl_tensor *bd = NULL;
  CHECK_OK(kl_tensor_new_dense(dt, 2, shape, &bd));
  if (!bd) exit(2);
  for (int64_t k = 0; k < R * N; k++) kl_tensor_data_set(bd, k, kl_rng_uniform(&g) - 0.5);
  if (bsp) {
    for (int64_t i = 0; i < R; i += 3)
      for (int64_t k = 0; k < N; k++) kl_tensor_data_set(bd, i * N + k, 0.0);
    CHECK_OK(kl_tensor_tostype(bd, KL_STYPE_ROW_SPARSE, &s.b));
    kl_tensor_release(bd);
  } else {
    s.b = bd;
  }
  free(ip);
  free(ix);
  free(v);
  return s;
}

static void free_case(spa_case *s) {
  kl_tensor_release(s->a);
  kl_tensor_release(s->b);
}

static int same_rsp(const kl_tensor *x, const kl_tensor *y) {
  if (!x || !y || x->stype != KL_STYPE_ROW_SPARSE || y->stype != KL_STYPE_ROW_SPARSE ||
      x->nnz != y->nnz || x->dtype != y->dtype || x->shape[1] != y->shape[1])
    return 0;
  size_t vb = (size_t)(x->nnz * x->shape[1]) * kl_dtype_size(x->dtype);
  return (x->nnz == 0 || memcmp(x->indices, y->indices, (size_t)x->nnz * sizeof(int64_t)) == 0) &&
         (vb == 0 || memcmp(x->data, y->data, vb) == 0);
}

/* The pool's map and direct accumulator (a C x N csr^T product of es-byte values) are all
 * zero (the kept-scratch contract), read back through the pool: a request no larger than
 * the buffer returns it as it is. */
static int map_clear(int64_t C, int64_t N, size_t es) {
  const uint32_t *m = kl_pool_kept_zeroed(KL_KEPT_COLMAP, (size_t)C * sizeof *m);
  if (!m) return 0;
  for (int64_t c = 0; c < C; c++)
    if (m[c]) return 0;
  const size_t ab = (size_t)C * (size_t)N * es;
  if (ab > ((size_t)4 << 20)) return 1; /* no direct accumulator at this size */
  const unsigned char *acc = kl_pool_kept_zeroed(KL_KEPT_COLACC, ab);
  if (!acc) return 0;
  for (size_t k = 0; k < ab; k++)
    if (acc[k]) return 0;
  return 1;
}

/* One case: sorted path (no pool) vs the accumulator (in pool p), several times. */
static void compare(kl_pool *p, kl_dtype dt, int64_t R, int64_t C, int64_t lo, int64_t span,
                    int nz, int64_t N, int bsp, uint64_t seed) {
  spa_case s = make_case(dt, R, C, lo, span, nz, N, bsp, seed);
  kl_tensor *ref = NULL;
  CHECK_OK(kl_dot(s.a, s.b, 1, 0, &ref)); /* no pool current: the sorted path */
  for (int rep = 0; rep < 3; rep++) {
    kl_pool *prev = kl_pool_enter(p);
    kl_tensor *o = NULL;
    CHECK_OK(kl_dot(s.a, s.b, 1, 0, &o));
    int clear = C > ((int64_t)1 << 24) || map_clear(C, N, kl_dtype_size(dt)); /* beyond: no map is made */
    kl_pool_leave(prev);
    CHECK(clear);
    CHECK(same_rsp(o, ref));
    if (!same_rsp(o, ref))
      fprintf(stderr, "  case dt=%d R=%lld C=%lld span=%lld nz=%d N=%lld bsp=%d\n", (int)dt,
              (long long)R, (long long)C, (long long)span, nz, (long long)N, bsp);
    kl_tensor_release(o);
  }
  /* The reference itself against a dense product in entry order (sums from 0). */
  if (ref && ref->nnz > 0) {
    kl_tensor *bd = NULL;
    CHECK_OK(kl_tensor_tostype(s.b, KL_STYPE_DEFAULT, &bd));
    const kl_tensor *a = s.a;
    int ok = 1;
    double tol = dt == KL_FLOAT64 ? 1e-12 : 1e-5;
    for (int64_t u = 0; bd && u < ref->nnz; u++)
      for (int64_t k = 0; k < N; k++) {
        double sum = 0;
        for (int64_t i = 0; i < R; i++)
          for (int64_t j = a->indptr[i]; j < a->indptr[i + 1]; j++)
            if (a->indices[j] == ref->indices[u])
              sum += kl_tensor_data_at(a, j) * kl_tensor_data_at(bd, i * N + k);
        ok &= fabs(kl_tensor_data_at(ref, u * N + k) - sum) <= tol;
      }
    CHECK(ok);
    kl_tensor_release(bd);
  }
  kl_tensor_release(ref);
  free_case(&s);
}

/* Every allocation of an accumulator call fails once in turn: each failure is KL_ENOMEM
 * or the call falls back and succeeds; either way the map is left zero and the next call
 * in the pool is right. */
static void failure_sweep(void) {
  spa_case s = make_case(KL_FLOAT32, 64, 500, 0, 500, 12, 1, 0, 99);
  kl_tensor *ref = NULL;
  CHECK_OK(kl_dot(s.a, s.b, 1, 0, &ref));
  int failed = 0;
  for (long k = 1; k <= 12; k++) {
    kl_pool *p = NULL;
    CHECK_OK(kl_pool_new(&p));
    kl_pool *prev = kl_pool_enter(p);
    kl_tensor *o = NULL;
    kl_alloc_fail_at(k);
    kl_status st = kl_dot(s.a, s.b, 1, 0, &o);
    kl_alloc_fail_at(0);
    CHECK(st == KL_OK || st == KL_ENOMEM);
    if (st == KL_OK) CHECK(same_rsp(o, ref));
    else failed++;
    kl_tensor_release(o);
    o = NULL;
    CHECK(map_clear(500, 1, 4));
    CHECK_OK(kl_dot(s.a, s.b, 1, 0, &o));
    CHECK(same_rsp(o, ref));
    CHECK(map_clear(500, 1, 4));
    kl_tensor_release(o);
    kl_pool_leave(prev);
    kl_pool_close(p);
  }
  CHECK(failed > 0); /* the sweep did reach the call's own allocations */
  kl_tensor_release(ref);
  free_case(&s);
}

/* A column whose only products are -0: the sum from +0 is +0 on both paths (a sum that
 * started from its first product would be -0). */
static void negative_zero(kl_pool *p) {
  int64_t ip[3] = {0, 2, 3}, ix[3] = {1, 3, 1};
  double v[3] = {-0.0, 2.0, -0.0};
  for (int dt = 0; dt < 2; dt++) {
    kl_tensor *a = kt_csr_of(dt ? KL_FLOAT64 : KL_FLOAT32, 2, 4, 3, ip, ix, v), *b = NULL, *o = NULL;
    int64_t shape[2] = {2, 1};
    CHECK_OK(kl_tensor_new_dense(a->dtype, 2, shape, &b));
    kl_tensor_data_set(b, 0, 1.5);
    kl_tensor_data_set(b, 1, 2.5);
    kl_pool *prev = kl_pool_enter(p);
    CHECK_OK(kl_dot(a, b, 1, 0, &o));
    kl_pool_leave(prev);
    CHECK(o && o->nnz == 2 && o->indices[0] == 1 && o->indices[1] == 3);
    if (o && o->nnz == 2) {
      double z = kl_tensor_data_at(o, 0);
      CHECK(z == 0.0 && !signbit(z));
      CHECK(kl_tensor_data_at(o, 1) == 3.0);
    }
    kl_tensor_release(o);
    kl_tensor_release(a);
    kl_tensor_release(b);
  }
}

int main(void) {
  kl_pool *p = NULL;
  CHECK_OK(kl_pool_new(&p));
  CHECK(p != NULL);
  if (!p) return 1;
  negative_zero(p);
  uint64_t seed = 1;
  for (int dt = 0; dt < 2; dt++)
    for (int64_t N = 1; N <= 9; N++)
      for (int bsp = 0; bsp < 2; bsp++) {
        kl_dtype t = dt ? KL_FLOAT64 : KL_FLOAT32;
        compare(p, t, 64, 1000, 0, 1000, 20, N, bsp, seed++);        /* dense range: scan */
        compare(p, t, 40, 200000, 100, 190000, 6, N, bsp, seed++);   /* sparse: radix sort */
        compare(p, t, 30, 5000, 4000, 1000, 3, N, bsp, seed++);      /* range off zero */
        compare(p, t, 64, 5000, 4000, 1000, 20, N, bsp, seed++);     /* off zero: scan */
        compare(p, t, 16, 40, 0, 40, 1, N, bsp, seed++); /* direct, C > nnz + 1: cap */
      }
  compare(p, KL_FLOAT32, 5, 10, 0, 10, 0, 1, 0, seed++);  /* no entries at all */
  compare(p, KL_FLOAT64, 1, 1, 0, 1, 1, 1, 0, seed++);    /* one column */
  compare(p, KL_FLOAT32, 512, 1000000, 0, 1000000, 39, 1, 0, seed++); /* W5-like */
  /* Larger than the map's column limit: the sorted path inside a pool too. */
  compare(p, KL_FLOAT64, 20, (int64_t)1 << 30, 0, (int64_t)1 << 30, 4, 1, 0, seed++);
  kl_pool_close(p);
  /* Outside any pool there is no kept buffer. */
  CHECK(kl_pool_kept_zeroed(KL_KEPT_COLMAP, 16) == NULL);
  failure_sweep();
  KLTEST_DONE();
}
