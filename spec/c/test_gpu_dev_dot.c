/* test_gpu_dev_dot.c: the dot op on the device (gpu/dev_ops_dot.c) through the registry,
 * against the CPU: every stype combination the CPU handles, forward and backward.
 *
 * a in {dense 1-d, 2-d, 3-d, csr, row_sparse 2-d}, b in {dense 1-d, 2-d, csr, row_sparse 1-d,
 * 2-d}, transpose_a / transpose_b each on and off, over products (M, K, N) from empty
 * (0 rows, K = 0, N = 0) to 33 x 50 x 17, sparse operands at several densities (a row_sparse
 * b storing every row takes cuSPARSE, one storing some rows the own gather), f32 / f64 with
 * -0, inf and NaN among the values: the device's result has the CPU's stype, shape, stored
 * rows and values; an invalid combination gives the CPU's error. Backward: the gradient of
 * each non-csr input for want = default and row_sparse (and a row_sparse gout), against
 * kl_op_backward on the host. Every call leaves kl_device_fallback_count unchanged (the dot
 * op runs on the device for every input) and no device memory in use.
 *
 * Exactness: on the emulated device (make test) every value is the CPU's bit for bit: the
 * own kernels sum in the CPU's order, and the emulated cuBLAS / cuSPARSE are OpenBLAS with
 * the call's arguments and the CPU's loop (gpu/cuda_blas_emu.c). On a GPU
 * (test_gpu_dev_dot_device, tools/gpu-check) cuBLAS and cuSPARSE sum in their own order: the
 * values are compared within |gpu - cpu| <= tol (1 + |cpu|), tol 1e-4 for float32 and 1e-12
 * for float64 (products of at most 50 terms of magnitude <= 4), and the stored rows exactly.
 *
 * Emulated only: every runtime call of a forward and a backward failing in turn (out of
 * memory, an illegal address): each a status with the runtime's message, nothing leaked. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpu_dev_testutil.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static double urand(void) { return gpu_dev_urand(&rng); }

static int special_on = 1;

/* A host tensor: dense values (a fraction density non-zero, a few -0 / inf / NaN), as stype
 * st (csr / row_sparse drop the zero entries / rows, as kl_tensor_tostype). */
static kl_tensor *sample(kl_dtype dt, kl_stype st, int ndim, const int64_t *shape,
                         double density) {
  kl_tensor *d = NULL, *out = NULL;
  if (kl_tensor_new_dense(dt, ndim, shape, &d) != KL_OK) return NULL;
  const int64_t n = kl_tensor_numel(d);
  for (int64_t i = 0; i < n; i++) {
    double v = urand() < density ? urand() * 4 - 2 : 0.0;
    if (special_on && v != 0 && urand() < 0.02) {
      double u = urand();
      v = u < 0.4 ? -0.0 : u < 0.6 ? INFINITY : u < 0.8 ? -INFINITY : NAN;
    }
    kl_tensor_data_set(d, i, v);
  }
  if (st == KL_STYPE_DEFAULT) return d;
  if (kl_tensor_tostype(d, st, &out) != KL_OK) out = NULL;
  kl_tensor_release(d);
  return out;
}

static int same_num(kl_dtype dt, double x, double y) {
  if (GPU_DEV_EMULATED) return gpu_dev_same_num(x, y);
  if (isnan(x) || isnan(y)) return isnan(x) && isnan(y);
  if (isinf(x) || isinf(y)) return x == y;
  const double tol = dt == KL_FLOAT32 ? 1e-4 : 1e-12;
  return fabs(x - y) <= tol * (1 + fabs(y));
}

/* The device tensor dv against the host tensor h: dtype, stype, shape, stored rows (a
 * row_sparse) and values (same_num). */
static int matches(const char *label, const kl_tensor *dv, const kl_tensor *h) {
  kl_tensor *c = NULL;
  if (dv->device != GPU0) {
    fprintf(stderr, "%s: result on device %d, not gpu(0)\n", label, (int)dv->device);
    return 0;
  }
  if (kl_tensor_to(dv, KL_CPU, &c) != KL_OK) {
    fprintf(stderr, "%s: copy to the host: %s\n", label, kl_errmsg());
    return 0;
  }
  int ok = c->dtype == h->dtype && c->stype == h->stype && c->ndim == h->ndim;
  for (int i = 0; ok && i < h->ndim; i++) ok = c->shape[i] == h->shape[i];
  if (!ok) fprintf(stderr, "%s: dtype/stype/shape differ (stype %s vs %s)\n", label,
                   kl_stype_name(c->stype), kl_stype_name(h->stype));
  if (ok && h->stype == KL_STYPE_ROW_SPARSE) {
    ok = c->nnz == h->nnz;
    for (int64_t r = 0; ok && r < h->nnz; r++) ok = c->indices[r] == h->indices[r];
    if (!ok) fprintf(stderr, "%s: stored rows differ (%lld vs %lld rows)\n", label,
                     (long long)c->nnz, (long long)h->nnz);
  }
  if (ok) {
    const int64_t n = h->stype == KL_STYPE_ROW_SPARSE ? h->nnz * kl_row_width(h) : kl_tensor_numel(h);
    for (int64_t i = 0; ok && i < n; i++) {
      const double x = kl_tensor_data_at(c, i), y = kl_tensor_data_at(h, i);
      ok = same_num(h->dtype, x, y);
      if (!ok) fprintf(stderr, "%s: value %lld: %.17g (gpu) vs %.17g (cpu)\n", label,
                       (long long)i, x, y);
    }
  }
  kl_tensor_release(c);
  return ok;
}

/* ------------------------------------------------------------------ the combinations */

typedef struct opnd {
  kl_stype st;
  int ndim; /* 1, 2 or 3 */
} opnd;

static const opnd A_KINDS[] = {{KL_STYPE_DEFAULT, 2}, {KL_STYPE_DEFAULT, 1},
                               {KL_STYPE_DEFAULT, 3}, {KL_STYPE_CSR, 2},
                               {KL_STYPE_ROW_SPARSE, 2}};
static const opnd B_KINDS[] = {{KL_STYPE_DEFAULT, 2}, {KL_STYPE_DEFAULT, 1}, {KL_STYPE_CSR, 2},
                               {KL_STYPE_ROW_SPARSE, 2}, {KL_STYPE_ROW_SPARSE, 1}};

static long n_fwd = 0, n_bwd = 0, n_err = 0;

/* The backward of input i for (a, b) on both sides, with want and a dense or row_sparse
 * gout shaped like the output. */
static void check_backward(const char *label, kl_tensor *ha, kl_tensor *hb, kl_tensor *da,
                           kl_tensor *db, const kl_attrs *at, const kl_tensor *hout, int i,
                           kl_stype want, int gout_rsp) {
  kl_tensor *hg = sample(hout->dtype, gout_rsp ? KL_STYPE_ROW_SPARSE : KL_STYPE_DEFAULT,
                         hout->ndim, hout->shape, 0.7);
  kl_tensor *dg = NULL, *hgin = NULL, *dgin = NULL, *dout = NULL;
  kl_tensor *hin[2] = {ha, hb}, *din[2] = {da, db};
  CHECK_OK(kl_tensor_to(hg, GPU0, &dg));
  CHECK_OK(kl_tensor_to(hout, GPU0, &dout));
  kl_status hs = kl_op_backward(KL_OP_DOT, hin, 2, at, hout, hg, i, want, &hgin);
  char hmsg[512];
  snprintf(hmsg, sizeof hmsg, "%s", kl_errmsg());
  const long f0 = gpu_dev_fallbacks();
  kl_status ds = kl_op_backward(KL_OP_DOT, din, 2, at, dout, dg, i, want, &dgin);
  char l2[400];
  snprintf(l2, sizeof l2, "%s backward input %d want %s gout %s", label, i, kl_stype_name(want),
           gout_rsp ? "row_sparse" : "dense");
  CHECK(ds == hs);
  if (ds != hs) fprintf(stderr, "%s: status %s (%s) vs %s (%s)\n", l2, kl_status_name(ds),
                        kl_errmsg(), kl_status_name(hs), hmsg);
  if (hs == KL_OK && ds == KL_OK) {
    CHECK(matches(l2, dgin, hgin));
    CHECK(gpu_dev_fallbacks() == f0);
    n_bwd++;
  }
  kl_tensor *list[] = {hg, dg, hgin, dgin, dout};
  for (size_t k = 0; k < sizeof list / sizeof *list; k++) kl_tensor_release(list[k]);
}

/* a (kind ak, transposed by ta) . b (kind bk, transposed by tb) for op(a) M x K, op(b) K x N. */
static void check_combo(kl_dtype dt, opnd ak, opnd bk, int ta, int tb, int64_t M, int64_t K,
                        int64_t N, double density) {
  int64_t as[3], bs[2];
  if (ak.ndim == 1) as[0] = K;
  else if (ak.ndim == 3) {
    as[0] = M; /* (M, 1, K): M x K flattened */
    as[1] = 1;
    as[2] = K;
  } else if (ta) {
    as[0] = K;
    as[1] = M;
  } else {
    as[0] = M;
    as[1] = K;
  }
  if (bk.ndim == 1) bs[0] = K;
  else if (tb) {
    bs[0] = N;
    bs[1] = K;
  } else {
    bs[0] = K;
    bs[1] = N;
  }
  kl_tensor *ha = sample(dt, ak.st, ak.ndim, as, density), *hb = sample(dt, bk.st, bk.ndim, bs, density);
  /* a row_sparse b that stores every row (the cuSPARSE path) half the time */
  if (bk.st == KL_STYPE_ROW_SPARSE && urand() < 0.5) {
    kl_tensor *hbd = sample(dt, KL_STYPE_DEFAULT, bk.ndim, bs, 1.0), *x = NULL;
    special_on = 0;
    for (int64_t q = 0; q < kl_tensor_numel(hbd); q++)
      if (kl_tensor_data_at(hbd, q) == 0) kl_tensor_data_set(hbd, q, 0.5);
    special_on = 1;
    CHECK_OK(kl_tensor_tostype(hbd, KL_STYPE_ROW_SPARSE, &x));
    kl_tensor_release(hbd);
    kl_tensor_release(hb);
    hb = x;
  }
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.transpose_a = ta;
  at.transpose_b = tb;
  char label[300];
  snprintf(label, sizeof label, "%s %s %d-d%s . %s %d-d%s (M %lld K %lld N %lld, density %.2g)",
           kl_dtype_name(dt), kl_stype_name(ak.st), ak.ndim, ta ? "^T" : "", kl_stype_name(bk.st),
           bk.ndim, tb ? "^T" : "", (long long)M, (long long)K, (long long)N, density);
  kl_tensor *da = NULL, *db = NULL, *hout = NULL, *dout = NULL;
  CHECK_OK(kl_tensor_to(ha, GPU0, &da));
  CHECK_OK(kl_tensor_to(hb, GPU0, &db));
  kl_tensor *hin[2] = {ha, hb}, *din[2] = {da, db};
  kl_status hs = kl_op_run(KL_OP_DOT, hin, 2, &at, &hout);
  char hmsg[512];
  snprintf(hmsg, sizeof hmsg, "%s", kl_errmsg());
  const long f0 = gpu_dev_fallbacks();
  kl_status ds = kl_op_run(KL_OP_DOT, din, 2, &at, &dout);
  CHECK(ds == hs);
  CHECK(gpu_dev_fallbacks() == f0);
  if (ds != hs) fprintf(stderr, "%s: status %s (%s) vs CPU %s (%s)\n", label, kl_status_name(ds),
                        kl_errmsg(), kl_status_name(hs), hmsg);
  if (hs != KL_OK && ds != KL_OK) {
    CHECK(strcmp(kl_errmsg(), hmsg) == 0); /* the same inference error */
    n_err++;
  }
  if (hs == KL_OK && ds == KL_OK) {
    CHECK(matches(label, dout, hout));
    n_fwd++;
    for (int i = 0; i < 2; i++) {
      if (hin[i]->stype == KL_STYPE_CSR) continue;
      check_backward(label, ha, hb, da, db, &at, hout, i, KL_STYPE_DEFAULT, 0);
      check_backward(label, ha, hb, da, db, &at, hout, i, KL_STYPE_ROW_SPARSE, 0);
    }
    if (hb->stype != KL_STYPE_CSR && hout->ndim >= 1) /* a row_sparse gout needs rank >= 1 */
      check_backward(label, ha, hb, da, db, &at, hout, 1, KL_STYPE_ROW_SPARSE, 1);
  }
  kl_tensor *list[] = {ha, hb, da, db, hout, dout};
  for (size_t k = 0; k < sizeof list / sizeof *list; k++) kl_tensor_release(list[k]);
}

static void test_combinations(void) {
  static const int64_t sizes[][3] = {{4, 6, 3}, {1, 1, 1}, {0, 6, 3}, {4, 0, 3},
                                     {4, 6, 0}, {33, 50, 17}, {7, 40, 1}};
  static const double densities[] = {0.5, 0.05, 1.0};
  for (int dti = 0; dti < 2; dti++) {
    const kl_dtype dt = dti ? KL_FLOAT64 : KL_FLOAT32;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
      for (size_t ai = 0; ai < sizeof A_KINDS / sizeof *A_KINDS; ai++)
        for (size_t bi = 0; bi < sizeof B_KINDS / sizeof *B_KINDS; bi++)
          for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
              const double dens = densities[(s + ai + bi) % 3];
              check_combo(dt, A_KINDS[ai], B_KINDS[bi], ta, tb, sizes[s][0], sizes[s][1],
                          sizes[s][2], dens);
            }
  }
  /* a shape mismatch: the CPU's error, no fallback */
  printf("dot on the device: %ld forward combinations, %ld backward, %ld errors as the CPU's\n",
         n_fwd, n_bwd, n_err);
  CHECK(n_fwd > 500 && n_bwd > 1000 && n_err > 50);
}

/* The kernel each combination takes on the device (the registry's first match). */
static void test_dispatch_names(void) {
  int64_t s2[2] = {4, 6}, s6[2] = {6, 3};
  kl_tensor *csr = sample(KL_FLOAT32, KL_STYPE_CSR, 2, s2, 0.5);
  kl_tensor *den = sample(KL_FLOAT32, KL_STYPE_DEFAULT, 2, s6, 0.5);
  kl_tensor *dc = NULL, *dd = NULL, *out = NULL;
  CHECK_OK(kl_tensor_to(csr, GPU0, &dc));
  CHECK_OK(kl_tensor_to(den, GPU0, &dd));
  const kl_device_opdef *od = kl_cuda_ops(&(int){0})[KL_OP_DOT];
  CHECK(od != NULL && od->kernels != NULL && od->backward != NULL);
  CHECK(kl_cuda_op_claimed(KL_OP_DOT));
  kl_tensor *in[2] = {dc, dd};
  kl_attrs at;
  memset(&at, 0, sizeof at);
  const kl_kernel_entry *k = od->kernels;
  while (k->fn && k->supports && !k->supports(in, 2, &at)) k++;
  CHECK(k->name && strcmp(k->name, "cuda.csr.dense") == 0);
  at.transpose_b = 1; /* csr . dense^T: no sparse kernel on the CPU: densified here */
  k = od->kernels;
  while (k->fn && k->supports && !k->supports(in, 2, &at)) k++;
  CHECK(k->name && strcmp(k->name, "cuda.densified") == 0);
  kl_tensor *list[] = {csr, den, dc, dd, out};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
}

/* The kernel the device chooses (the registry's first match) for every stype and rank of a
 * and b, each transpose flag on and off: today's choices (gpu/dev_ops_dot.c's table over
 * ops_dot_supports.h's predicates), listed. */
static void test_dispatch_table(void) {
  enum { DNS = KL_STYPE_DEFAULT, CSR = KL_STYPE_CSR, RSP = KL_STYPE_ROW_SPARSE };
  static const struct {
    int ast, andim, bst, bndim;
    const char *name[4]; /* "cuda." + this for (transpose_a, transpose_b) 00, 01, 10, 11 */
  } want[] = {
      {DNS, 1, DNS, 1, {"dense", "dense", "dense", "dense"}},
      {DNS, 1, DNS, 2, {"dense", "dense", "dense", "dense"}},
      {DNS, 1, CSR, 2, {"dense.csr", "densified", "dense.csr", "densified"}},
      {DNS, 1, RSP, 1, {"densified", "densified", "densified", "densified"}},
      {DNS, 1, RSP, 2, {"densified", "densified", "densified", "densified"}},
      {DNS, 2, DNS, 1, {"dense", "dense", "dense", "dense"}},
      {DNS, 2, DNS, 2, {"dense", "dense", "dense", "dense"}},
      {DNS, 2, CSR, 2, {"dense.csr", "densified", "dense.csr", "densified"}},
      {DNS, 2, RSP, 1, {"densified", "densified", "densified", "densified"}},
      {DNS, 2, RSP, 2, {"densified", "densified", "densified", "densified"}},
      {DNS, 3, DNS, 1, {"dense", "dense", "dense", "dense"}},
      {DNS, 3, DNS, 2, {"dense", "dense", "dense", "dense"}},
      {DNS, 3, CSR, 2, {"densified", "densified", "densified", "densified"}},
      {DNS, 3, RSP, 1, {"densified", "densified", "densified", "densified"}},
      {DNS, 3, RSP, 2, {"densified", "densified", "densified", "densified"}},
      {CSR, 2, DNS, 1, {"csr.dense", "csr.dense", "densified", "densified"}},
      {CSR, 2, DNS, 2, {"csr.dense", "densified", "csrT.dense", "densified"}},
      {CSR, 2, CSR, 2, {"densified", "densified", "densified", "densified"}},
      {CSR, 2, RSP, 1, {"csr.row_sparse", "csr.row_sparse", "densified", "densified"}},
      {CSR, 2, RSP, 2, {"csr.row_sparse", "densified", "csrT.row_sparse", "densified"}},
      {RSP, 1, DNS, 1, {"densified", "densified", "densified", "densified"}},
      {RSP, 1, DNS, 2, {"densified", "densified", "densified", "densified"}},
      {RSP, 1, CSR, 2, {"densified", "densified", "densified", "densified"}},
      {RSP, 1, RSP, 1, {"densified", "densified", "densified", "densified"}},
      {RSP, 1, RSP, 2, {"densified", "densified", "densified", "densified"}},
      {RSP, 2, DNS, 1, {"densified", "densified", "densified", "densified"}},
      {RSP, 2, DNS, 2, {"densified", "densified", "densified", "densified"}},
      {RSP, 2, CSR, 2, {"densified", "densified", "densified", "densified"}},
      {RSP, 2, RSP, 1, {"densified", "densified", "densified", "densified"}},
      {RSP, 2, RSP, 2, {"densified", "densified", "densified", "densified"}},
  };
  const kl_device_opdef *od = kl_cuda_ops(&(int){0})[KL_OP_DOT];
  for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
    const int64_t s3[3] = {3, 3, 3};
    kl_tensor *ha = sample(KL_FLOAT32, (kl_stype)want[w].ast, want[w].andim, s3, 0.7);
    kl_tensor *hb = sample(KL_FLOAT32, (kl_stype)want[w].bst, want[w].bndim, s3, 0.7);
    kl_tensor *da = NULL, *db = NULL;
    CHECK_OK(kl_tensor_to(ha, GPU0, &da));
    CHECK_OK(kl_tensor_to(hb, GPU0, &db));
    kl_tensor *in[2] = {da, db};
    for (int t = 0; t < 4 && da && db; t++) {
      kl_attrs at;
      memset(&at, 0, sizeof at);
      at.transpose_a = t >> 1;
      at.transpose_b = t & 1;
      const kl_kernel_entry *k = od->kernels;
      while (k->fn && k->supports && !k->supports(in, 2, &at)) k++;
      char expect[64];
      snprintf(expect, sizeof expect, "cuda.%s", want[w].name[t]);
      const int ok = k->name && strcmp(k->name, expect) == 0;
      CHECK(ok);
      if (!ok)
        fprintf(stderr, "dispatch: %s %d-d%s . %s %d-d%s took %s, wanted %s\n",
                kl_stype_name(ha->stype), ha->ndim, at.transpose_a ? "^T" : "",
                kl_stype_name(hb->stype), hb->ndim, at.transpose_b ? "^T" : "",
                k->name ? k->name : "(none)", expect);
    }
    kl_tensor *list[] = {ha, hb, da, db};
    for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
  }
}

#if GPU_DEV_EMULATED
/* A forward (csr^T . dense: a host read of the row count) and a backward (dense want of a
 * row_sparse gradient; the gemm path) with every runtime call failing in turn. */
static kl_status scenario(kl_tensor *ha, kl_tensor *hw, kl_tensor *hg, kl_tensor **res) {
  kl_tensor *da = NULL, *dw = NULL, *dg = NULL, *y = NULL, *gw = NULL, *ga = NULL;
  *res = NULL;
  kl_attrs at;
  memset(&at, 0, sizeof at);
  kl_status st = kl_tensor_to(ha, GPU0, &da);
  if (st == KL_OK) st = kl_tensor_to(hw, GPU0, &dw);
  if (st == KL_OK) st = kl_tensor_to(hg, GPU0, &dg);
  kl_tensor *in[2] = {da, dw};
  if (st == KL_OK) st = kl_op_run(KL_OP_DOT, in, 2, &at, &y);
  if (st == KL_OK) st = kl_op_backward(KL_OP_DOT, in, 2, &at, y, dg, 1, KL_STYPE_DEFAULT, &gw);
  kl_tensor *dense_a = NULL;
  if (st == KL_OK) st = kl_tensor_tostype(ha, KL_STYPE_DEFAULT, &dense_a);
  kl_tensor *dda = NULL;
  if (st == KL_OK) st = kl_tensor_to(dense_a, GPU0, &dda);
  kl_tensor *in2[2] = {dda, dw};
  if (st == KL_OK) st = kl_op_backward(KL_OP_DOT, in2, 2, &at, y, dg, 1, KL_STYPE_ROW_SPARSE, &ga);
  if (st == KL_OK) st = kl_tensor_to(ga, KL_CPU, res);
  kl_tensor *list[] = {da, dw, dg, y, gw, ga, dense_a, dda};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
  return st;
}

static kl_status sweep_run(void *ctx, kl_tensor **res) {
  kl_tensor **h = ctx;
  return scenario(h[0], h[1], h[2], res);
}

static void test_fault_sweep(void) {
  int64_t as[2] = {12, 9}, ws[2] = {9, 4}, gs[2] = {12, 4};
  special_on = 0;
  kl_tensor *ha = sample(KL_FLOAT32, KL_STYPE_CSR, 2, as, 0.3);
  kl_tensor *hw = sample(KL_FLOAT32, KL_STYPE_DEFAULT, 2, ws, 1.0);
  kl_tensor *hg = sample(KL_FLOAT32, KL_STYPE_DEFAULT, 2, gs, 1.0);
  special_on = 1;
  kl_tensor *ctx[3] = {ha, hw, hg};
  gpu_dev_sweep sw = gpu_dev_fault_sweep(sweep_run, ctx);
  CHECK(sw.ncalls >= 10);
  CHECK(sw.failures > sw.ncalls);
  printf("fault sweep: %ld runtime calls x 2 errors: %d failures reported, nothing leaked\n",
         sw.ncalls, sw.failures);
  kl_tensor *list[] = {ha, hw, hg};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
}
#endif

int main(void) {
  int st = gpu_dev_start("test_gpu_dev_dot");
  if (st) return st;
  kl_set_warn_handler(NULL, NULL);
  test_dispatch_names();
  test_combinations();
#if GPU_DEV_EMULATED
  test_fault_sweep();
#endif
  test_dispatch_table(); /* last: its samples leave the others' random values as they were */
  gpu_dev_finish();
  KLTEST_DONE();
}
