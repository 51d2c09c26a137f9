/* test_registry.c: the op registry: names, argument checks, kernel dispatch, the dense
 * fallback's warning (once per combination, all with KERAS_LUA_STYPE_VERBOSE=1), counts. */
#include <stdlib.h>
#include <unistd.h>
#include "kltest_ops.h"

static char last_msg[512];
static int nwarn = 0;
static void capture(const char *msg, void *ud) {
  snprintf(last_msg, sizeof last_msg, "%s", msg);
  nwarn++;
  (*(int *)ud)++;
}

int main(void) {
  kl_rng rng;
  kl_rng_seed(&rng, 7);
  double v[6] = {1, 0, 2, 0, 0, 3}, w[6] = {0, 4, 0, 0, 5, 0};
  kl_tensor *csr = kt_mat(KL_FLOAT64, KL_STYPE_CSR, 2, 3, v);
  kl_tensor *rsp = kt_mat(KL_FLOAT64, KL_STYPE_ROW_SPARSE, 2, 3, w);
  kl_tensor *den = kt_mat(KL_FLOAT64, KL_STYPE_DEFAULT, 2, 3, w);
  kl_tensor *out = NULL;
  CHECK(csr && rsp && den);

  /* names */
  CHECK(strcmp(kl_op_name(KL_OP_ADD), "add") == 0);
  CHECK(strcmp(kl_op_name(KL_OP_DOT), "dot") == 0);
  CHECK(strcmp(kl_op_name(KL_OP_SOFTMAX), "softmax") == 0);
  CHECK(strcmp(kl_op_name(KL_OP_RETAIN), "retain") == 0);
  CHECK(strcmp(kl_op_name((kl_op)999), "unknown_op") == 0);
  for (int op = 0; op < KL_OP_COUNT; op++) CHECK(strcmp(kl_op_name((kl_op)op), "unknown_op") != 0);

  /* argument checks */
  kl_tensor *one[1] = {csr}, *two[2] = {csr, NULL};
  CHECK_ERR(kl_op_run(KL_OP_ADD, one, 1, NULL, &out), KL_EINVAL, "add: expected 2 inputs, got 1");
  CHECK_ERR(kl_op_run(KL_OP_ADD, two, 2, NULL, &out), KL_EINVAL, "add: input 2 is NULL");
  CHECK_ERR(kl_op_run(KL_OP_NEG, two, 2, NULL, &out), KL_EINVAL,
            "negative: expected 1 input, got 2");
  CHECK_ERR(kl_op_run((kl_op)-1, one, 1, NULL, &out), KL_EINVAL, "op: unknown op id -1");
  CHECK_ERR(kl_op_run(KL_OP_ADD, NULL, 2, NULL, &out), KL_EINVAL, "add: inputs is NULL");
  kl_meta m[2];
  kl_tensor_meta(csr, &m[0]);
  CHECK_ERR(kl_op_infer(KL_OP_SUB, m, 1, NULL, &m[1]), KL_EINVAL,
            "subtract: expected 2 inputs, got 1");
  /* Every op in the table is complete (a skeleton, with NULL infer or dense kernel, would
   * answer "<name>: not implemented"), has its own name, and names itself in its errors:
   * with no inputs it states its arity; with one (csr) input it infers or says why. */
  for (int op = 0; op < KL_OP_COUNT; op++) {
    const char *name = kl_op_name((kl_op)op);
    char prefix[64], arity[96];
    snprintf(prefix, sizeof prefix, "%s: ", name);
    for (int other = 0; other < op; other++) CHECK(strcmp(kl_op_name((kl_op)other), name) != 0);
    kl_meta o;
    kl_status s = kl_op_infer((kl_op)op, NULL, 0, NULL, &o);
    CHECK(!strstr(kl_errmsg(), "not implemented"));
    if (s != KL_OK) {
      snprintf(arity, sizeof arity, "%s: expected ", name);
      CHECK(s == KL_EINVAL && strncmp(kl_errmsg(), arity, strlen(arity)) == 0);
    }
    s = kl_op_infer((kl_op)op, m, 1, NULL, &o);
    if (s != KL_OK) {
      CHECK(s != KL_EUNSUPPORTED || !strstr(kl_errmsg(), "not implemented"));
      CHECK(strncmp(kl_errmsg(), prefix, strlen(prefix)) == 0);
      if (strncmp(kl_errmsg(), prefix, strlen(prefix)) != 0)
        fprintf(stderr, "op %d (%s): infer on one csr input: %s\n", op, name, kl_errmsg());
    }
  }

  /* dispatch: a kernel runs without a fallback; a missing combination falls back */
  int got = 0;
  kl_set_warn_handler(capture, &got);
  kl_fallback_reset_warned();
  unsetenv("KERAS_LUA_STYPE_VERBOSE");
  long f0 = kl_fallback_count();
  kl_tensor *cc[2] = {csr, csr}, *cr[2] = {csr, rsp}, *cd[2] = {csr, den};
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_ADD, cc, 2, NULL), "csr.csr") == 0);
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_ADD, cd, 2, NULL), "sparse.dense") == 0);
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_ADD, cr, 2, NULL), "fallback") == 0);
  kl_tensor *dd[2] = {den, den};
  CHECK(strcmp(kl_op_dispatch_name(KL_OP_ADD, dd, 2, NULL), "dense") == 0);
  CHECK(kl_op_dispatch_name((kl_op)999, dd, 2, NULL) == NULL);

  CHECK_OK(kl_op_run(KL_OP_ADD, cc, 2, NULL, &out));
  CHECK(out && out->stype == KL_STYPE_CSR);
  kl_tensor_release(out);
  CHECK(kl_fallback_count() == f0 && got == 0);

  CHECK_OK(kl_op_run(KL_OP_ADD, cr, 2, NULL, &out));
  CHECK(kl_fallback_count() == f0 + 1 && got == 1);
  CHECK(strcmp(last_msg, "add(csr, row_sparse) has no sparse kernel; computed densely "
                         "(storage fallback)") == 0);
  CHECK(out && out->stype == KL_STYPE_DEFAULT);
  double e[6] = {1, 4, 2, 0, 5, 3};
  for (int k = 0; k < 6; k++) CHECK(kt_at(out, k) == e[k]);
  kl_tensor_release(out);
  /* once per combination */
  CHECK_OK(kl_op_run(KL_OP_ADD, cr, 2, NULL, &out));
  kl_tensor_release(out);
  CHECK(kl_fallback_count() == f0 + 2 && got == 1);
  /* another combination warns once more */
  kl_tensor *rc[2] = {rsp, csr};
  CHECK_OK(kl_op_run(KL_OP_SUB, rc, 2, NULL, &out));
  kl_tensor_release(out);
  CHECK(got == 2 && strstr(last_msg, "subtract(row_sparse, csr) has no sparse kernel"));
  /* every time when verbose */
  setenv("KERAS_LUA_STYPE_VERBOSE", "1", 1);
  CHECK_OK(kl_op_run(KL_OP_ADD, cr, 2, NULL, &out));
  kl_tensor_release(out);
  CHECK_OK(kl_op_run(KL_OP_ADD, cr, 2, NULL, &out));
  kl_tensor_release(out);
  CHECK(got == 4 && kl_fallback_count() == f0 + 5);
  unsetenv("KERAS_LUA_STYPE_VERBOSE");
  /* transpose of row_sparse has no kernel: dense result, counted */
  kl_tensor *r1[1] = {rsp};
  CHECK_OK(kl_op_run(KL_OP_TRANSPOSE, r1, 1, NULL, &out));
  CHECK(out && out->stype == KL_STYPE_DEFAULT && out->shape[0] == 3 && out->shape[1] == 2);
  CHECK(kt_at(out, 2) == 4 && kt_at(out, 5) == 0 && kt_at(out, 3) == 5);
  kl_tensor_release(out);
  CHECK(kl_fallback_count() == f0 + 6 && got == 5);
  CHECK(strstr(last_msg, "transpose(row_sparse) has no sparse kernel") != NULL);
  /* reset: warns again */
  kl_fallback_reset_warned();
  CHECK_OK(kl_op_run(KL_OP_ADD, cr, 2, NULL, &out));
  kl_tensor_release(out);
  CHECK(got == 6);
  /* kl_warnf goes through the handler */
  kl_warnf("x = %d", 3);
  CHECK(got == 7 && strcmp(last_msg, "x = 3") == 0);

  /* the default handler prints one prefixed line on stderr */
  kl_set_warn_handler(NULL, NULL);
  kl_fallback_reset_warned();
  fflush(stderr);
  FILE *tmp = tmpfile();
  int saved = dup(2);
  CHECK(tmp && saved >= 0);
  dup2(fileno(tmp), 2);
  CHECK_OK(kl_op_run(KL_OP_ADD, cr, 2, NULL, &out));
  kl_tensor_release(out);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char line[256] = {0};
  rewind(tmp);
  CHECK(fgets(line, sizeof line, tmp) != NULL);
  CHECK(strcmp(line, "keras-lua: warning: add(csr, row_sparse) has no sparse kernel; computed "
                     "densely (storage fallback)\n") == 0);
  fclose(tmp);
  kl_set_warn_handler(capture, &got);

  /* backward: argument checks, and the caller gets the stype it asks for */
  kl_tensor *g = NULL, *gin = NULL;
  kl_tensor *d2[2] = {den, den};
  CHECK_OK(kl_op_run(KL_OP_ADD, d2, 2, NULL, &out));
  g = kt_rand(&rng, KL_STYPE_DEFAULT, KL_FLOAT64, 2, den->shape, -1, 1);
  CHECK_ERR(kl_op_backward(KL_OP_ADD, d2, 2, NULL, out, g, 2, KL_STYPE_DEFAULT, &gin), KL_EINVAL,
            "add: backward: input 2 out of range for 2 inputs");
  CHECK_OK(kl_op_backward(KL_OP_ADD, d2, 2, NULL, out, g, 1, KL_STYPE_ROW_SPARSE, &gin));
  CHECK(gin && gin->stype == KL_STYPE_ROW_SPARSE && kt_maxrel(gin, g) == 0);
  kl_tensor_release(gin);
  CHECK_OK(kl_op_backward(KL_OP_ADD, d2, 2, NULL, out, g, 0, KL_STYPE_DEFAULT, &gin));
  CHECK(gin && gin->stype == KL_STYPE_DEFAULT && kt_maxrel(gin, g) == 0);
  kl_tensor_release(gin);
  kl_tensor *ri[2] = {rsp, NULL};
  int64_t n1 = 1;
  ri[1] = kt_dense(KL_INT64, 1, &n1, NULL);
  kl_tensor *ro = NULL;
  CHECK_OK(kl_op_run(KL_OP_RETAIN, ri, 2, NULL, &ro));
  CHECK_ERR(kl_op_backward(KL_OP_RETAIN, ri, 2, NULL, ro, g, 1, KL_STYPE_DEFAULT, &gin),
            KL_EUNSUPPORTED, "retain: no gradient for the indices");
  kl_tensor_release(ri[1]);
  kl_tensor_release(ro);
  kl_tensor_release(out);
  kl_tensor_release(g);

  /* kl_retain wrapper */
  int64_t rows[3] = {1, 0, 1};
  CHECK_OK(kl_retain(rsp, rows, 3, &out));
  CHECK(out && out->stype == KL_STYPE_ROW_SPARSE && out->nnz == 2);
  kl_tensor_release(out);
  CHECK_ERR(kl_retain(rsp, rows, -1, &out), KL_EINVAL, "retain: negative index count -1");
  CHECK_ERR(kl_retain(csr, rows, 3, &out), KL_ESTYPE, "retain: expected a row_sparse tensor, got csr");

  kl_tensor_release(csr);
  kl_tensor_release(rsp);
  kl_tensor_release(den);
  kl_set_warn_handler(NULL, NULL);
  KLTEST_DONE();
}
