/* test_embedding_bag.c: the plan's fusion of an Embedding and the mean over its ids' axis
 * (plan.c kl_plan_find_bags; layers/embedding.c kl_embedding_mean and its backward), i.e.
 * Embedding -> GlobalAveragePooling1D computed without the (n, L, D) output.
 * A plan made with fusion on must give the same bits as one made with it off (outputs,
 * loss, gradients, and weights and Adam states after training steps): f32 and f64 weights,
 * int64 and float ids, padding (id 0) and repeated ids, -0.0 weight entries, dense and
 * row_sparse gradients, L = 1, at 1 and 2 threads. It must fuse where it applies (the plan's
 * counter) and not where it does not (the Embedding's output also an output, a mean over
 * another axis, a row_sparse weight); bad ids fail with the same status and message; and a
 * finite-difference check holds the fused gradient. The same for masked_mean by the
 * Embedding's own ids (Embedding{mask_zero} -> GlobalAveragePooling1D: the mean over the ids
 * that are not 0, a sample of padding only giving 0), which must not fuse when masked by
 * other ids. */
#include <omp.h>
#include <string.h>
#include "graph_testutil.h"
#include "kl/optim.h"
#include "plan_internal.h"

static kl_rng rng;

enum { PLAIN, EMB_OUTPUT, OTHER_AXIS, RSP_WEIGHT, MASKED, MASKED_OTHER_IDS };

typedef struct bnet {
  kl_graph *g;
  kl_plan *p;
  kl_tensor *w, *k;
  int iw, ik, i2;
} bnet;

/* ids (n, L) -> Embedding(W: V x D) -> mean over L -> dot K (D x 1) -> mse vs y (n, 1).
 * OTHER_AXIS: the mean is over D and K is L x 1; EMB_OUTPUT: the Embedding is an output too. */
static bnet make(kl_dtype wdt, kl_dtype idt, int64_t V, int64_t D, int64_t L, kl_stype gst,
                 int variant, uint64_t seed) {
  bnet n = {0};
  CHECK_OK(kl_graph_new(&n.g));
  kl_rng wr;
  kl_rng_seed(&wr, seed);
  int64_t ws[2] = {V, D}, ks[2] = {variant == OTHER_AXIS ? L : D, 1};
  kl_tensor *wd = NULL;
  CHECK_OK(kl_tensor_new_dense(wdt, 2, ws, &wd));
  for (int64_t i = 0; i < V * D; i++) /* some -0.0: a padding row after them adds +0.0 */
    kl_tensor_data_set(wd, i, i % 11 == 3 ? -0.0 : kl_rng_uniform(&wr) - 0.5);
  if (variant == RSP_WEIGHT) {
    CHECK_OK(kl_tensor_tostype(wd, KL_STYPE_ROW_SPARSE, &n.w));
    kl_tensor_release(wd);
  } else {
    n.w = wd;
  }
  CHECK_OK(kl_tensor_new_dense(wdt, 2, ks, &n.k));
  for (int64_t i = 0; i < ks[0]; i++) kl_tensor_data_set(n.k, i, kl_rng_uniform(&wr) - 0.5);
  kl_meta mi = {idt, KL_STYPE_DEFAULT, 2, {-1, L}}, my = {wdt, KL_STYPE_DEFAULT, 2, {-1, 1}};
  int ii, iy, e, m, d, loss, two[2];
  CHECK_OK(kl_graph_placeholder(n.g, &mi, "ids", &ii));
  CHECK_OK(kl_graph_placeholder(n.g, &my, "y", &iy));
  CHECK_OK(kl_graph_variable(n.g, n.w, 1, "W", &n.iw));
  CHECK_OK(kl_graph_variable(n.g, n.k, 1, "K", &n.ik));
  kl_attrs ea = {0}, ma = {0};
  ea.ival = V;
  ma.has_axis = 1;
  ma.axis = variant == OTHER_AXIS ? 2 : 1;
  two[0] = ii, two[1] = n.iw;
  CHECK_OK(kl_graph_op(n.g, KL_OP_EMBEDDING, two, 2, &ea, &e));
  if (variant == MASKED || variant == MASKED_OTHER_IDS) {
    int mi2 = ii; /* MASKED_OTHER_IDS: a second placeholder of the same shape */
    if (variant == MASKED_OTHER_IDS) CHECK_OK(kl_graph_placeholder(n.g, &mi, "ids2", &mi2));
    two[0] = e, two[1] = mi2;
    CHECK_OK(kl_graph_op(n.g, KL_OP_MASKED_MEAN, two, 2, NULL, &m));
    n.i2 = mi2;
  } else {
    CHECK_OK(kl_graph_op(n.g, KL_OP_MEAN, &e, 1, &ma, &m));
  }
  two[0] = m, two[1] = n.ik;
  CHECK_OK(kl_graph_op(n.g, KL_OP_DOT, two, 2, NULL, &d));
  two[0] = iy, two[1] = d;
  CHECK_OK(kl_graph_op(n.g, KL_OP_LOSS_MSE, two, 2, NULL, &loss));
  kl_optimizer o;
  CHECK_OK(kl_optimizer_init(&o, KL_OPT_ADAM));
  o.learning_rate = 0.05;
  o.lazy_update = 1;
  int feeds[3] = {ii, iy, n.i2}, weights[2] = {n.iw, n.ik}, outs[2] = {d, e};
  kl_stype gs[2] = {variant == RSP_WEIGHT ? KL_STYPE_ROW_SPARSE : gst, KL_STYPE_DEFAULT};
  kl_plan_spec spec = {feeds, variant == MASKED_OTHER_IDS ? 3 : 2, outs, variant == EMB_OUTPUT ? 2 : 1,
                       loss, weights, 2, gs, &o};
  CHECK_OK(kl_plan_new(n.g, &spec, &n.p));
  return n;
}

static void free_net(bnet *n) {
  kl_plan_free(n->p);
  kl_graph_free(n->g);
  kl_tensor_release(n->w);
  kl_tensor_release(n->k);
}

static int same_bits(const kl_tensor *x, const kl_tensor *y) {
  if (!x || !y || x->dtype != y->dtype || x->stype != y->stype || x->nnz != y->nnz ||
      kl_tensor_numel(x) != kl_tensor_numel(y))
    return 0;
  if (x->stype == KL_STYPE_ROW_SPARSE &&
      memcmp(x->indices, y->indices, (size_t)x->nnz * sizeof *x->indices) != 0)
    return 0;
  size_t nb = (size_t)(x->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(x) : x->nnz * kl_row_width(x));
  return nb == 0 || memcmp(x->data, y->data, nb * kl_dtype_size(x->dtype)) == 0;
}

/* n x L ids in [0, V] (0: padding), many repeated when V is small. */
static kl_tensor *rand_ids(kl_dtype idt, int64_t n, int64_t L, int64_t V) {
  int64_t s[2] = {n, L};
  kl_tensor *t = NULL;
  CHECK_OK(kl_tensor_new_dense(idt, 2, s, &t));
  for (int64_t i = 0; i < n * L; i++)
    kl_tensor_data_set(t, i, (double)(int64_t)(kl_rng_uniform(&rng) * (double)(V + 1)));
  return t;
}

/* Fusion on (a) against off (b): the same bits through a forward, a backward and 3 steps. */
static void compare(kl_dtype wdt, kl_dtype idt, int64_t V, int64_t D, int64_t L, kl_stype gst,
                    int variant, int threads) {
  const int64_t n = 6;
  omp_set_num_threads(threads);
  kl_tensor *ids = rand_ids(idt, n, L, V), *y = NULL;
  if (variant == MASKED || variant == MASKED_OTHER_IDS)
    for (int64_t l = 0; l < L; l++) kl_tensor_data_set(ids, L + l, 0); /* a row of padding */
  int64_t ys[2] = {n, 1};
  CHECK_OK(kl_tensor_new_dense(wdt, 2, ys, &y));
  for (int64_t i = 0; i < n; i++) kl_tensor_data_set(y, i, kl_rng_uniform(&rng) * 2 - 1);
  const uint64_t seed = kl_rng_next(&rng);
  int prev = kl_plan_set_fuse_enabled(1);
  bnet a = make(wdt, idt, V, D, L, gst, variant, seed);
  kl_plan_set_fuse_enabled(0);
  bnet b = make(wdt, idt, V, D, L, gst, variant, seed);
  kl_plan_set_fuse_enabled(prev);
  int ok = a.p && b.p;
  if (ok) {
    CHECK(a.p->nbags == (variant == PLAIN || variant == MASKED));
    CHECK(b.p->nbags == 0);
    kl_tensor *f[3] = {ids, y, ids};
    CHECK_OK(kl_plan_forward(a.p, f, 1));
    CHECK_OK(kl_plan_forward(b.p, f, 1));
    for (int k = 0; k < (variant == EMB_OUTPUT ? 2 : 1); k++)
      ok = ok && same_bits(kl_plan_output(a.p, k), kl_plan_output(b.p, k));
    ok = ok && memcmp(&(double){kl_plan_loss(a.p)}, &(double){kl_plan_loss(b.p)}, sizeof(double)) == 0;
    CHECK_OK(kl_plan_backward(a.p));
    CHECK_OK(kl_plan_backward(b.p));
    for (int k = 0; k < 2; k++) ok = ok && same_bits(kl_plan_grad(a.p, k), kl_plan_grad(b.p, k));
    for (int s = 0; s < 3; s++) {
      double la = 0, lb = 0;
      CHECK_OK(kl_plan_train_step(a.p, f, &la));
      CHECK_OK(kl_plan_train_step(b.p, f, &lb));
      ok = ok && memcmp(&la, &lb, sizeof la) == 0;
    }
    ok = ok && same_bits(a.w, b.w) && same_bits(a.k, b.k);
    for (int k = 0; k < 2; k++)
      for (int s = 0; ok && s < kl_plan_num_states(a.p, k); s++)
        ok = same_bits(kl_plan_state(a.p, k, s), kl_plan_state(b.p, k, s));
  }
  CHECK(ok);
  if (!ok)
    fprintf(stderr, "  case wdt=%d idt=%d V=%lld D=%lld L=%lld gst=%d variant=%d threads=%d\n",
            (int)wdt, (int)idt, (long long)V, (long long)D, (long long)L, (int)gst, variant,
            threads);
  free_net(&a);
  free_net(&b);
  kl_tensor_release(ids);
  kl_tensor_release(y);
  omp_set_num_threads(1);
}

/* A bad id fails the fused forward as the unfused one: same status, same message. */
static void bad_ids(kl_dtype idt, double bad, const char *want) {
  const int64_t V = 5, L = 3;
  kl_tensor *ids = rand_ids(idt, 2, L, V), *y = NULL;
  kl_tensor_data_set(ids, 4, bad);
  int64_t ys[2] = {2, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, ys, &y));
  int prev = kl_plan_set_fuse_enabled(1);
  bnet a = make(KL_FLOAT32, idt, V, 4, L, KL_STYPE_ROW_SPARSE, PLAIN, 3);
  kl_plan_set_fuse_enabled(0);
  bnet b = make(KL_FLOAT32, idt, V, 4, L, KL_STYPE_ROW_SPARSE, PLAIN, 3);
  kl_plan_set_fuse_enabled(prev);
  CHECK(a.p && a.p->nbags == 1);
  kl_tensor *f[2] = {ids, y};
  kl_status sa = kl_plan_forward(a.p, f, 1);
  char ma[256];
  snprintf(ma, sizeof ma, "%s", kl_errmsg());
  kl_status sb = kl_plan_forward(b.p, f, 1);
  CHECK(sa == KL_EINDEX && sb == KL_EINDEX);
  CHECK(strcmp(ma, kl_errmsg()) == 0);
  CHECK(strstr(ma, want) != NULL);
  if (strstr(ma, want) == NULL || strcmp(ma, kl_errmsg()) != 0)
    fprintf(stderr, "  fused: %s\n  unfused: %s\n", ma, kl_errmsg());
  free_net(&a);
  free_net(&b);
  kl_tensor_release(ids);
  kl_tensor_release(y);
}

/* Central differences against the fused plan's gradients (f64 weights, dense gradient). */
static void gradcheck(int variant) {
  const int64_t V = 4, D = 3, L = 5, n = 3;
  bnet a = make(KL_FLOAT64, KL_INT64, V, D, L, KL_STYPE_DEFAULT, variant, 9);
  CHECK(a.p && a.p->nbags == 1);
  kl_tensor *ids = rand_ids(KL_INT64, n, L, V), *y = NULL;
  kl_tensor_data_set(ids, 0, 0);
  int64_t ys[2] = {n, 1};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 2, ys, &y));
  for (int64_t i = 0; i < n; i++) kl_tensor_data_set(y, i, 0.3 * (double)i - 0.2);
  kl_tensor *f[2] = {ids, y};
  int w[2] = {a.iw, a.ik};
  if (a.p)
    gt_gradcheck(a.p, a.g, w, 2, f, 1e-6, 1e-6,
                 variant == MASKED ? "embedding -> masked_mean (fused)" : "embedding -> mean (fused)");
  free_net(&a);
  kl_tensor_release(ids);
  kl_tensor_release(y);
}

int main(void) {
  (void)gt_rand;
  kl_rng_seed(&rng, 23);
  const kl_dtype wdts[2] = {KL_FLOAT32, KL_FLOAT64}, idts[2] = {KL_INT64, KL_FLOAT32};
  const kl_stype gsts[2] = {KL_STYPE_ROW_SPARSE, KL_STYPE_DEFAULT};
  for (int t = 1; t <= 2; t++)
    for (int a = 0; a < 2; a++)
      for (int b = 0; b < 2; b++)
        for (int c = 0; c < 2; c++) {
          compare(wdts[a], idts[b], 7, 5, 4, gsts[c], PLAIN, t);     /* repeats, padding */
          compare(wdts[a], idts[b], 300, 16, 20, gsts[c], PLAIN, t); /* W3's L, wider rows */
          compare(wdts[a], idts[b], 9, 3, 1, gsts[c], PLAIN, t);     /* L = 1 */
          compare(wdts[a], idts[b], 7, 5, 4, gsts[c], MASKED, t);    /* mask_zero */
          compare(wdts[a], idts[b], 300, 16, 20, gsts[c], MASKED, t);
          compare(wdts[a], idts[b], 9, 3, 1, gsts[c], MASKED, t);
        }
  /* where it does not apply: still the same bits, unfused */
  compare(KL_FLOAT32, KL_INT64, 7, 5, 4, KL_STYPE_ROW_SPARSE, EMB_OUTPUT, 1);
  compare(KL_FLOAT32, KL_INT64, 7, 5, 4, KL_STYPE_ROW_SPARSE, OTHER_AXIS, 1);
  compare(KL_FLOAT32, KL_INT64, 7, 5, 4, KL_STYPE_ROW_SPARSE, RSP_WEIGHT, 1);
  compare(KL_FLOAT32, KL_INT64, 7, 5, 4, KL_STYPE_ROW_SPARSE, MASKED_OTHER_IDS, 1);
  bad_ids(KL_INT64, 6, "Embedding: id 6 out of range [0, 5] at position (2, 2)");
  bad_ids(KL_FLOAT32, 1.5, "Embedding: id 1.5 is not an integer at position (2, 2)");
  bad_ids(KL_INT64, -1, "Embedding: id -1 out of range [0, 5] at position (2, 2)");
  gradcheck(PLAIN);
  gradcheck(MASKED);
  KLTEST_DONE();
}
