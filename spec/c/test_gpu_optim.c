/* test_gpu_optim.c: the optimizer kernels of gpu/k_optim.cu against kl_optimizer_update, bit
 * for bit: every rule (SGD plain / momentum / nesterov, Adam, Adagrad, RMSprop, Ftrl), with
 * clipping, weight decay, decay and rescaling, float32 and float64, lazy over a row_sparse
 * gradient (no rows, one, some, all), dense, and non-lazy over a row_sparse gradient, over
 * several steps; then the argument errors. Host-emulated here; on a GPU via tools/gpu-check. */
#include <stdlib.h>

#include "gpu_testutil.h"
#include "kl/optim.h"

enum { LAZY, DENSE, NONLAZY };
static const char *const mode_name[] = {"lazy", "dense", "non-lazy"};

/* nnz distinct sorted rows of [0, rows). */
static void pick_rows(int64_t *idx, int64_t nnz, int64_t rows) {
  int64_t need = nnz, k = 0;
  for (int64_t r = 0; r < rows && need > 0; r++)
    if (gpu_irand(rows - r) < need) {
      idx[k++] = r;
      need--;
    }
}

static double grad_value(void) {
  double u = gpu_urand(0, 1);
  if (u < 0.05) return 0.0;
  if (u < 0.10) return -0.0;
  if (u < 0.20) return gpu_urand(-40, 40); /* past the clip value */
  return gpu_urand(-2, 2);
}

static void run_case(const kl_optimizer *o, const char *oname, kl_dtype dt, int64_t rows,
                     int64_t rw, int mode, int64_t nnz, int steps) {
  kl_optimizer oo = *o;
  oo.lazy_update = mode != NONLAZY;
  const size_t es = kl_dtype_size(dt), wb = (size_t)(rows * rw) * es;
  int64_t shape[2] = {rows, rw};
  kl_tensor *w = NULL, *st[2] = {NULL, NULL};
  CHECK_OK(kl_tensor_new_dense(dt, 2, shape, &w));
  for (int64_t i = 0; i < rows * rw; i++) kl_tensor_data_set(w, i, gpu_urand(-1, 1));
  CHECK_OK(kl_optimizer_create_states(&oo, w, st));
  const int ns = kl_optimizer_num_states(&oo);
  void *dw = dev_copy(w->data, wb);
  void *ds0 = ns > 0 ? dev_copy(st[0]->data, wb) : NULL;
  void *ds1 = ns > 1 ? dev_copy(st[1]->data, wb) : NULL;
  int64_t *gpos = NULL;
  if (mode == NONLAZY) gpos = dev_alloc((size_t)rows * sizeof(int64_t));
  /* Ftrl's pow is glibc's on the host, CUDA's on a GPU: equal there within a few ulp only */
  const int exact = !(oo.kind == KL_OPT_FTRL && oo.lr_power != -0.5) ||
                    strcmp(GPU_TEST_MODE, "emulated") == 0;
  char label[200];
  snprintf(label, sizeof label, "%s %s %s rows=%lld rw=%lld nnz=%lld", oname,
           kl_dtype_name(dt), mode_name[mode], (long long)rows, (long long)rw, (long long)nnz);
  for (int t = 1; t <= steps; t++) {
    kl_tensor *g = NULL;
    const int64_t n = mode == DENSE ? rows : nnz;
    if (mode == DENSE) {
      CHECK_OK(kl_tensor_new_dense(dt, 2, shape, &g));
    } else {
      CHECK_OK(kl_tensor_new_rsp(dt, 2, shape, nnz, &g));
      pick_rows(g->indices, nnz, rows);
    }
    for (int64_t i = 0; i < n * rw; i++) kl_tensor_data_set(g, i, grad_value());
    void *dg = dev_copy(g->data, (size_t)(n * rw) * es);
    int64_t *dgi = mode == DENSE ? NULL : dev_copy(g->indices, (size_t)nnz * sizeof(int64_t));
    kl_cuda_opt_hyper h;
    kl_cuda_opt_resolve(&oo, t, &h);
    if (mode == NONLAZY) {
      CHECK_OK(kl_cuda_row_positions(dgi, nnz, rows, gpos, NULL));
      CHECK_OK(kl_cuda_opt_all_rows(&h, dt, dw, dg, ds0, ds1, rw, gpos, rows, NULL));
    } else {
      CHECK_OK(kl_cuda_opt_rows(&h, dt, dw, dg, ds0, ds1, rw, dgi, n, NULL));
    }
    CHECK_OK(kl_optimizer_update(&oo, w, g, st, t));
    dev_sync();
    void *hw = malloc(wb ? wb : 1);
    const void *dev[3] = {dw, ds0, ds1};
    const kl_tensor *cpu[3] = {w, st[0], st[1]};
    for (int k = 0; k <= ns; k++) {
      to_host(hw, dev[k], wb);
      char l2[260];
      snprintf(l2, sizeof l2, "%s step %d %s", label, t, k == 0 ? "weight" : "state");
      if (exact) {
        CHECK(gpu_same(l2, dt, hw, cpu[k]->data, rows * rw));
      } else {
        for (int64_t i = 0; i < rows * rw; i++)
          CHECK_NEAR(dt == KL_FLOAT32 ? ((float *)hw)[i] : ((double *)hw)[i],
                     kl_tensor_data_at(cpu[k], i), 1e-4);
      }
    }
    free(hw);
    dev_free(dg);
    dev_free(dgi);
    kl_tensor_release(g);
  }
  dev_free(dw);
  dev_free(ds0);
  dev_free(ds1);
  dev_free(gpos);
  kl_optimizer_release_states(&oo, st);
  kl_tensor_release(w);
}

typedef struct {
  const char *name;
  kl_opt_kind kind;
  const char *opt[4];
  double val[4];
} optcase;

static const optcase cases[] = {
    {"SGD", KL_OPT_SGD, {NULL}, {0}},
    {"SGD momentum", KL_OPT_SGD, {"momentum", NULL}, {0.9}},
    {"SGD nesterov clip wd", KL_OPT_SGD, {"momentum", "nesterov", "clipvalue", "weight_decay"},
     {0.9, 1, 0.5, 0.01}},
    {"SGD clip rescale", KL_OPT_SGD, {"clipvalue", "rescale_grad", NULL}, {1.5, 0.25}},
    {"Adam", KL_OPT_ADAM, {NULL}, {0}},
    {"Adam decay wd rescale", KL_OPT_ADAM, {"decay", "weight_decay", "rescale_grad", NULL},
     {0.1, 0.01, 0.5}},
    {"Adagrad", KL_OPT_ADAGRAD, {"clipvalue", NULL}, {3}},
    {"RMSprop", KL_OPT_RMSPROP, {NULL}, {0}},
    {"RMSprop clip wd", KL_OPT_RMSPROP, {"clipvalue", "weight_decay", NULL}, {1, 0.001}},
    {"Ftrl", KL_OPT_FTRL, {NULL}, {0}},
    {"Ftrl pow l2", KL_OPT_FTRL,
     {"learning_rate_power", "l2_regularization_strength", "initial_accumulator_value", "beta"},
     {-0.3, 0.1, 0.1, 0.5}},
    {"Ftrl wd clip", KL_OPT_FTRL, {"weight_decay", "clipvalue", NULL}, {0.01, 2}},
};

static void test_rules(void) {
  static const int64_t shapes[][2] = {{1, 1}, {7, 1}, {50, 3}, {40, 64}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    kl_optimizer o;
    CHECK_OK(kl_optimizer_init(&o, cases[c].kind));
    for (int k = 0; k < 4 && cases[c].opt[k]; k++)
      CHECK_OK(kl_optimizer_set(&o, cases[c].opt[k], cases[c].val[k]));
    CHECK_OK(kl_optimizer_check(&o));
    for (int d = 0; d < 2; d++)
      for (size_t s = 0; s < 4; s++) {
        const int64_t rows = shapes[s][0], rw = shapes[s][1];
        const int64_t nnzs[4] = {0, 1, rows / 2, rows};
        for (int mode = LAZY; mode <= NONLAZY; mode++)
          for (int k = 0; k < 4; k++) {
            if (mode == DENSE && k > 0) continue; /* a dense gradient has every row */
            run_case(&o, cases[c].name, d ? KL_FLOAT64 : KL_FLOAT32, rows, rw, mode, nnzs[k], 3);
          }
      }
  }
}

/* More elements than one launch has threads (65535 blocks x 256): the grid-stride loop. */
static void test_large(void) {
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  run_case(&o, "SGD large", KL_FLOAT32, 4200, 4096, LAZY, 4200, 1);
}

static void test_errors(void) {
  kl_optimizer o;
  kl_cuda_opt_hyper h;
  float w[4] = {0}, g[4] = {0}, s[4] = {0};
  int64_t gi[2] = {0, 1}, gpos[4];
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  kl_cuda_opt_resolve(&o, 1, &h);
  CHECK_ERR(kl_cuda_opt_rows(&h, KL_INT64, w, g, s, s, 2, NULL, 2, NULL), KL_EDTYPE,
            "cuda opt_rows: dtype int64 not supported (float32 or float64)");
  CHECK_ERR(kl_cuda_opt_rows(&h, KL_FLOAT32, w, g, s, NULL, 2, NULL, 2, NULL), KL_EINVAL,
            "cuda opt_rows: Adam needs 2 state(s)");
  CHECK_ERR(kl_cuda_opt_rows(&h, KL_FLOAT32, w, g, s, s, 2, NULL, -1, NULL), KL_ESHAPE,
            "cuda opt_rows: negative size");
  CHECK_ERR(kl_cuda_opt_all_rows(&h, KL_FLOAT32, w, g, NULL, s, 2, gpos, 2, NULL), KL_EINVAL,
            "cuda opt_all_rows: Adam needs 2 state(s)");
  CHECK_ERR(kl_cuda_row_positions(gi, 2, 1, gpos, NULL), KL_ESHAPE,
            "cuda row_positions: 2 rows of 1");
  h.kind = 99;
  CHECK_ERR(kl_cuda_opt_rows(&h, KL_FLOAT32, w, g, s, s, 2, NULL, 2, NULL), KL_EINVAL,
            "cuda opt_rows: unknown optimizer kind 99");
  /* empty updates launch nothing (an empty grid is a launch error) and succeed */
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_SGD));
  kl_cuda_opt_resolve(&o, 1, &h);
  CHECK_OK(kl_cuda_opt_rows(&h, KL_FLOAT32, NULL, NULL, NULL, NULL, 0, NULL, 5, NULL));
  CHECK_OK(kl_cuda_opt_rows(&h, KL_FLOAT32, NULL, NULL, NULL, NULL, 3, NULL, 0, NULL));
  CHECK_OK(kl_cuda_row_positions(NULL, 0, 0, NULL, NULL));
}

int main(void) {
  int rc = gpu_test_start("test_gpu_optim");
  if (rc) return rc;
  test_errors();
  test_rules();
  test_large();
  KLTEST_DONE();
}
