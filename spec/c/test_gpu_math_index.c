/* test_gpu_math_index.c: gpu/k_math_index.cu against the CPU ops: one_hot (int64 / float
 * ids, padding, the first bad id reported with the CPU's exact message), transpose (dense
 * ranks 0 to 4, csr -> csr with the CPU's order of entries), concatenate's block copies
 * (dense along each axis, csr along axis 0 and 1, row_sparse along axis 0, and the slabs of
 * its gradient) and retain (sorted requests, duplicates, absent rows, the CPU's message for
 * an index out of range; its gradient). These move values without arithmetic: exact bits on
 * a GPU too. */
#include "gpu_math_testutil.h"

static const kl_dtype dts[] = {KL_FLOAT32, KL_FLOAT64, KL_INT64};

/* ------------------------------------------------------------------ one_hot */

static void test_one_hot(kl_dtype idt) {
  static const int64_t shapes[][2] = {{40, 3}, {1, 1}, {0, 5}, {7, 0}};
  const int64_t C = 6;
  for (int k = 0; k < 4; k++) {
    kl_tensor *ids = NULL, *out = NULL;
    CHECK_OK(kl_tensor_new_dense(idt, 2, shapes[k], &ids));
    const int64_t n = kl_tensor_numel(ids);
    for (int64_t i = 0; i < n; i++) kl_tensor_data_set(ids, i, (double)gpu_irand(C + 1));
    kl_attrs at;
    memset(&at, 0, sizeof at);
    at.ival = C;
    CHECK_OK(kl_op_run(KL_OP_ONE_HOT, &ids, 1, &at, &out));
    void *di = mt_dev_vals(ids);
    float *dy = (float *)dev_alloc((size_t)(n * C) * 4);
    int64_t *bad = (int64_t *)dev_alloc(8);
    float *zeros = (float *)calloc((size_t)(n * C + 1), 4);
    to_dev(dy, zeros, (size_t)(n * C) * 4);
    free(zeros);
    CHECK_OK(kl_cuda_math_one_hot(idt, di, n, C, dy, bad, NULL));
    CHECK(mt_read_i64(bad) == n);
    char l[80];
    snprintf(l, sizeof l, "one_hot %s n=%lld", kl_dtype_name(idt), (long long)n);
    CHECK(mt_check(l, KL_FLOAT32, dy, out->data, n * C, 0));
    dev_free(di), dev_free(dy), dev_free(bad);
    kl_tensor_release(ids);
    kl_tensor_release(out);
  }
}

/* A bad id at position p (and a later one): the device flags p, and the message is the
 * CPU's. */
static void one_hot_bad(kl_dtype idt, double v, int64_t p) {
  int64_t n = 10, C = 4;
  kl_tensor *ids = NULL, *out = NULL;
  CHECK_OK(kl_tensor_new_dense(idt, 1, &n, &ids));
  for (int64_t i = 0; i < n; i++) kl_tensor_data_set(ids, i, (double)(i % 5));
  if (idt == KL_INT64)
    ((int64_t *)ids->data)[p] = (int64_t)v;
  else
    kl_tensor_data_set(ids, p, v);
  kl_tensor_data_set(ids, n - 1, -3); /* a later bad one */
  kl_attrs at;
  memset(&at, 0, sizeof at);
  at.ival = C;
  kl_status cst = kl_op_run(KL_OP_ONE_HOT, &ids, 1, &at, &out);
  char cmsg[256];
  snprintf(cmsg, sizeof cmsg, "%s", kl_errmsg());
  CHECK(cst == KL_EINDEX);
  void *di = mt_dev_vals(ids);
  float *dy = (float *)dev_alloc((size_t)(n * C) * 4);
  int64_t *bad = (int64_t *)dev_alloc(8);
  CHECK_OK(kl_cuda_math_one_hot(idt, di, n, C, dy, bad, NULL));
  const int64_t b = mt_read_i64(bad);
  CHECK(b == p);
  char hv[8];
  to_host(hv, (const char *)di + b * kl_dtype_size(idt), kl_dtype_size(idt));
  CHECK_ERR(kl_cuda_math_one_hot_error(idt, hv, b, C), KL_EINDEX, cmsg);
  dev_free(di), dev_free(dy), dev_free(bad);
  kl_tensor_release(ids);
  kl_tensor_release(out);
}

static void test_one_hot_errors(void) {
  one_hot_bad(KL_INT64, 5, 3);
  one_hot_bad(KL_INT64, -1, 0);
  one_hot_bad(KL_FLOAT32, 2.5, 4);
  one_hot_bad(KL_FLOAT64, NAN, 2);
  one_hot_bad(KL_FLOAT64, INFINITY, 6);
  one_hot_bad(KL_FLOAT64, 1e300, 1);
  CHECK_ERR(kl_cuda_math_one_hot(KL_INT64, NULL, 1, 0, NULL, NULL, NULL), KL_EINVAL,
            "cuda one_hot: num_classes must be >= 1, got 0");
}

/* ------------------------------------------------------------------ transpose */

static void test_transpose(kl_dtype dt) {
  static const int64_t shapes[][4] = {{0}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}, {0, 3}, {1, 6}};
  static const int nds[] = {0, 1, 2, 3, 4, 2, 2};
  for (int k = 0; k < 7; k++) {
    kl_tensor *x = mt_dense(dt, nds[k], shapes[k], 1, 0), *out = NULL;
    CHECK_OK(kl_op_run(KL_OP_TRANSPOSE, &x, 1, NULL, &out));
    const int64_t n = kl_tensor_numel(x);
    void *dx = mt_dev_vals(x), *dy = dev_alloc((size_t)n * 8);
    CHECK_OK(kl_cuda_math_transpose(kl_dtype_size(dt), dx, x->ndim, x->shape, dy, NULL));
    char l[80], s1[40];
    snprintf(l, sizeof l, "transpose %s %s", kl_dtype_name(dt),
             mt_shape(nds[k], shapes[k], s1, sizeof s1));
    CHECK(mt_check(l, dt, dy, out->data, n, 0));
    dev_free(dx), dev_free(dy);
    kl_tensor_release(x);
    kl_tensor_release(out);
  }
  static const int64_t rc[][2] = {{40, 30}, {1, 8}, {8, 1}, {0, 3}, {4, 0}, {300, 2}};
  for (int k = 0; k < 6; k++) {
    const int64_t R = rc[k][0], C = rc[k][1];
    kl_tensor *x = mt_csr(dt, R, C, 0.6, 1, 1), *out = NULL;
    CHECK_OK(kl_op_run(KL_OP_TRANSPOSE, &x, 1, NULL, &out));
    CHECK(out->stype == KL_STYPE_CSR);
    int64_t *dp = mt_dev_i64(x->indptr, R + 1), *di = mt_dev_i64(x->indices, x->nnz);
    void *dv = mt_dev_vals(x), *sc = dev_alloc(kl_cuda_math_csr_transpose_scratch(x->nnz));
    int64_t *rp = (int64_t *)dev_alloc((size_t)(C + 1) * 8),
            *ri = (int64_t *)dev_alloc((size_t)x->nnz * 8);
    void *rv = dev_alloc((size_t)x->nnz * 8);
    CHECK_OK(kl_cuda_math_csr_transpose(kl_dtype_size(dt), R, C, x->nnz, dp, di, dv, rp, ri, rv, sc,
                                        NULL));
    char l[80];
    snprintf(l, sizeof l, "transpose csr %s %lldx%lld", kl_dtype_name(dt), (long long)R,
             (long long)C);
    CHECK(mt_check_i64(l, rp, out->indptr, C + 1));
    CHECK(mt_check_i64(l, ri, out->indices, x->nnz));
    CHECK(mt_check(l, dt, rv, out->data, x->nnz, 0));
    dev_free(dp), dev_free(di), dev_free(dv), dev_free(sc), dev_free(rp), dev_free(ri),
        dev_free(rv);
    kl_tensor_release(x);
    kl_tensor_release(out);
  }
}

/* ------------------------------------------------------------------ concatenate */

static void test_concat_dense(kl_dtype dt) {
  static const int64_t sizes[] = {3, 0, 5, 1};
  for (int axis = 0; axis < 3; axis++) {
    kl_tensor *parts[4], *out = NULL;
    int64_t oshape[3] = {2, 3, 4};
    oshape[axis] = 0;
    for (int i = 0; i < 4; i++) {
      int64_t s[3] = {2, 3, 4};
      s[axis] = sizes[i];
      oshape[axis] += sizes[i];
      parts[i] = mt_dense(dt, 3, s, 1, 0);
    }
    kl_attrs at;
    memset(&at, 0, sizeof at);
    at.axis = axis;
    CHECK_OK(kl_op_run(KL_OP_CONCAT, parts, 4, &at, &out));
    const int64_t outer = kl_shape_numel(axis, oshape),
                  inner = kl_shape_numel(3 - axis - 1, oshape + axis + 1);
    const int64_t row = oshape[axis] * inner, n = kl_tensor_numel(out);
    const size_t es = kl_dtype_size(dt);
    void *dy = dev_alloc((size_t)n * 8);
    int64_t off = 0;
    char l[80];
    for (int i = 0; i < 4; i++) {
      const int64_t c = parts[i]->shape[axis] * inner;
      void *dp = mt_dev_vals(parts[i]);
      CHECK_OK(kl_cuda_math_copy_block(es, dp, c, 0, dy, row, off, outer, c, NULL));
      dev_free(dp);
      off += c;
    }
    snprintf(l, sizeof l, "concat %s axis %d", kl_dtype_name(dt), axis);
    CHECK(mt_check(l, dt, dy, out->data, n, 0));
    /* the gradient's slabs */
    if (dt != KL_INT64) {
      kl_tensor *g = mt_dense(dt, 3, oshape, 1, 0);
      void *dg = mt_dev_vals(g);
      off = 0;
      for (int i = 0; i < 4; i++) {
        kl_tensor *gin = NULL;
        CHECK_OK(kl_op_backward(KL_OP_CONCAT, parts, 4, &at, out, g, i, KL_STYPE_DEFAULT, &gin));
        const int64_t c = parts[i]->shape[axis] * inner;
        void *dr = dev_alloc((size_t)(outer * c) * 8);
        CHECK_OK(kl_cuda_math_copy_block(es, dg, row, off, dr, c, 0, outer, c, NULL));
        snprintf(l, sizeof l, "concat backward %s axis %d input %d", kl_dtype_name(dt), axis, i);
        CHECK(mt_check(l, dt, dr, gin->data, outer * c, 0));
        dev_free(dr);
        kl_tensor_release(gin);
        off += c;
      }
      dev_free(dg);
      kl_tensor_release(g);
    }
    dev_free(dy);
    for (int i = 0; i < 4; i++) kl_tensor_release(parts[i]);
    kl_tensor_release(out);
  }
}

static void test_concat_csr(kl_dtype dt) {
  static const int64_t sizes[] = {4, 0, 7, 1};
  for (int axis = 0; axis < 2; axis++) {
    kl_tensor *parts[4], *out = NULL;
    const int64_t other = 6;
    for (int i = 0; i < 4; i++)
      parts[i] = axis == 0 ? mt_csr(dt, sizes[i], other, 0.6, 1, 1)
                           : mt_csr(dt, other, sizes[i], 0.6, 1, 1);
    kl_attrs at;
    memset(&at, 0, sizeof at);
    at.axis = axis;
    CHECK_OK(kl_op_run(KL_OP_CONCAT, parts, 4, &at, &out));
    CHECK(out->stype == KL_STYPE_CSR);
    const int64_t R = out->shape[0], nnz = out->nnz;
    const size_t es = kl_dtype_size(dt);
    int64_t *op = (int64_t *)dev_alloc((size_t)(R + 1) * 8),
            *oi = (int64_t *)dev_alloc((size_t)nnz * 8);
    void *ov = dev_alloc((size_t)nnz * 8);
    int64_t zero = 0;
    to_dev(op, &zero, 8);
    if (axis == 0) {
      int64_t r0 = 0, z0 = 0;
      for (int i = 0; i < 4; i++) {
        const kl_tensor *t = parts[i];
        int64_t *tp = mt_dev_i64(t->indptr, t->shape[0] + 1), *ti = mt_dev_i64(t->indices, t->nnz);
        void *tv = mt_dev_vals(t);
        CHECK_OK(kl_cuda_math_i64_shift(tp + 1, z0, op + r0 + 1, t->shape[0], NULL));
        CHECK_OK(kl_cuda_math_copy_block(8, ti, 0, 0, oi, 0, z0, 1, t->nnz, NULL));
        CHECK_OK(kl_cuda_math_copy_block(es, tv, 0, 0, ov, 0, z0, 1, t->nnz, NULL));
        dev_free(tp), dev_free(ti), dev_free(tv);
        r0 += t->shape[0];
        z0 += t->nnz;
      }
    } else {
      int64_t *cnt = (int64_t *)calloc((size_t)R + 1, 8),
              *at2 = (int64_t *)dev_alloc((size_t)(R + 1) * 8);
      int64_t *dcnt = mt_dev_i64(cnt, R + 1);
      free(cnt);
      void *sc = dev_alloc(kl_cuda_scan_scratch(R));
      int64_t *tps[4];
      for (int i = 0; i < 4; i++) {
        tps[i] = mt_dev_i64(parts[i]->indptr, R + 1);
        CHECK_OK(kl_cuda_math_csr_rowlen_add(tps[i], R, dcnt, NULL));
      }
      CHECK_OK(kl_cuda_scan_i64(dcnt, op, R, sc, NULL));
      CHECK_OK(kl_cuda_math_copy_block(8, op, 0, 0, at2, 0, 0, 1, R, NULL));
      int64_t c0 = 0;
      for (int i = 0; i < 4; i++) {
        const kl_tensor *t = parts[i];
        int64_t *ti = mt_dev_i64(t->indices, t->nnz);
        void *tv = mt_dev_vals(t);
        CHECK_OK(kl_cuda_math_csr_concat1_part(es, R, tps[i], ti, tv, c0, at2, oi, ov, NULL));
        dev_free(ti), dev_free(tv), dev_free(tps[i]);
        c0 += t->shape[1];
      }
      dev_free(at2), dev_free(dcnt), dev_free(sc);
    }
    char l[80];
    snprintf(l, sizeof l, "concat csr %s axis %d", kl_dtype_name(dt), axis);
    CHECK(mt_check_i64(l, op, out->indptr, R + 1));
    CHECK(mt_check_i64(l, oi, out->indices, nnz));
    CHECK(mt_check(l, dt, ov, out->data, nnz, 0));
    dev_free(op), dev_free(oi), dev_free(ov);
    for (int i = 0; i < 4; i++) kl_tensor_release(parts[i]);
    kl_tensor_release(out);
  }
}

static void test_concat_rsp(kl_dtype dt) {
  static const int64_t rows[] = {5, 0, 8, 1};
  kl_tensor *parts[4], *out = NULL;
  for (int i = 0; i < 4; i++) {
    int64_t s[3] = {rows[i], 2, 3};
    parts[i] = mt_rsp(dt, 3, s, 0.5, 1, 1);
  }
  kl_attrs at;
  memset(&at, 0, sizeof at);
  CHECK_OK(kl_op_run(KL_OP_CONCAT, parts, 4, &at, &out));
  CHECK(out->stype == KL_STYPE_ROW_SPARSE);
  const int64_t W = kl_row_width(out), nr = out->nnz;
  const size_t es = kl_dtype_size(dt);
  int64_t *oi = (int64_t *)dev_alloc((size_t)nr * 8);
  void *ov = dev_alloc((size_t)(nr * W) * 8);
  int64_t r0 = 0, z0 = 0;
  for (int i = 0; i < 4; i++) {
    const kl_tensor *t = parts[i];
    int64_t *ti = mt_dev_i64(t->indices, t->nnz);
    void *tv = mt_dev_vals(t);
    CHECK_OK(kl_cuda_math_i64_shift(ti, r0, oi + z0, t->nnz, NULL));
    CHECK_OK(kl_cuda_math_copy_block(es, tv, 0, 0, ov, 0, z0 * W, 1, t->nnz * W, NULL));
    dev_free(ti), dev_free(tv);
    r0 += t->shape[0];
    z0 += t->nnz;
  }
  CHECK(mt_check_i64("concat rsp", oi, out->indices, nr));
  CHECK(mt_check("concat rsp", dt, ov, out->data, nr * W, 0));
  dev_free(oi), dev_free(ov);
  for (int i = 0; i < 4; i++) kl_tensor_release(parts[i]);
  kl_tensor_release(out);
}

/* ------------------------------------------------------------------ retain */

/* retain on the device as gpu/dev_ops_math_shape.c composes it: check, sort, member, scan,
 * compact; NULL *bad_msg when the requests are good, else the CPU's message. */
static void retain_case(kl_dtype dt, const int64_t *shape, double zero_rows, const int64_t *req,
                        int64_t m) {
  kl_tensor *x = mt_rsp(dt, 2, shape, zero_rows, 1, 0), *idx = NULL, *out = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 1, &m, &idx));
  if (m) memcpy(idx->data, req, (size_t)m * 8);
  kl_tensor *in[2] = {x, idx};
  kl_status cst = kl_op_run(KL_OP_RETAIN, in, 2, NULL, &out);
  char cmsg[256];
  snprintf(cmsg, sizeof cmsg, "%s", kl_errmsg());
  const int64_t nrows = shape[0], nnz = x->nnz, w = kl_row_width(x);
  int64_t *dreq = mt_dev_i64(req, m), *bad = (int64_t *)dev_alloc(8);
  CHECK_OK(kl_cuda_math_rows_check(dreq, m, nrows, bad, NULL));
  const int64_t b = mt_read_i64(bad);
  char l[80];
  snprintf(l, sizeof l, "retain %s %lld rows, %lld requests", kl_dtype_name(dt), (long long)nrows,
           (long long)m);
  if (b < m) {
    CHECK(cst == KL_EINDEX);
    int64_t v = mt_read_i64(dreq + b);
    char dmsg[256];
    snprintf(dmsg, sizeof dmsg, "retain: index %lld out of range for %lld rows", (long long)v,
             (long long)nrows);
    CHECK(strcmp(dmsg, cmsg) == 0);
  } else {
    CHECK_OK(cst);
    int64_t *key = (int64_t *)dev_alloc((size_t)m * 8), *val = (int64_t *)dev_alloc((size_t)m * 8);
    void *sc = dev_alloc(kl_cuda_sort_scratch(m) + kl_cuda_scan_scratch(nnz));
    CHECK_OK(kl_cuda_math_i64_shift(dreq, 0, key, m, NULL));
    CHECK_OK(kl_cuda_math_iota(val, m, NULL));
    if (m) CHECK_OK(kl_cuda_sort_pairs(key, val, m, nrows - 1, sc, NULL));
    int64_t *dix = mt_dev_i64(x->indices, nnz), *keep = (int64_t *)dev_alloc((size_t)(nnz + 1) * 8);
    int64_t *pos = (int64_t *)dev_alloc((size_t)(nnz + 1) * 8);
    void *dv = mt_dev_vals(x);
    CHECK_OK(kl_cuda_math_rows_member(dix, nnz, key, m, keep, NULL));
    CHECK_OK(kl_cuda_scan_i64(keep, pos, nnz, sc, NULL));
    const int64_t n = mt_read_i64(pos + nnz);
    CHECK(n == out->nnz);
    int64_t *ri = (int64_t *)dev_alloc((size_t)n * 8);
    void *rv = dev_alloc((size_t)(n * w) * 8);
    CHECK_OK(kl_cuda_math_rows_compact(dt, nnz, w, keep, pos, dix, dv, ri, rv, NULL));
    if (n == out->nnz) {
      CHECK(mt_check_i64(l, ri, out->indices, n));
      CHECK(mt_check(l, dt, rv, out->data, n * w, 0));
    }
    /* the gradient: gout on the kept rows */
    if (dt != KL_INT64) {
      kl_tensor *g = mt_dense(dt, 2, shape, 1, 0), *gin = NULL;
      CHECK_OK(kl_op_backward(KL_OP_RETAIN, in, 2, NULL, out, g, 0, KL_STYPE_DEFAULT, &gin));
      const int64_t ng = kl_tensor_numel(g);
      void *dg = mt_dev_vals(g), *dr = dev_alloc((size_t)ng * 8);
      void *zeros = calloc((size_t)(ng + 1), 8);
      to_dev(dr, zeros, (size_t)ng * 8);
      free(zeros);
      CHECK_OK(kl_cuda_math_rows_take(dt, ri, n, w, dg, dr, NULL));
      CHECK(mt_check(l, dt, dr, gin->data, ng, 0));
      dev_free(dg), dev_free(dr);
      kl_tensor_release(g);
      kl_tensor_release(gin);
    }
    dev_free(key), dev_free(val), dev_free(sc), dev_free(dix), dev_free(keep), dev_free(pos);
    dev_free(dv), dev_free(ri), dev_free(rv);
  }
  dev_free(dreq), dev_free(bad);
  kl_tensor_release(x);
  kl_tensor_release(idx);
  kl_tensor_release(out);
}

static void test_retain(kl_dtype dt) {
  int64_t s1[2] = {50, 3}, s2[2] = {1, 4}, s3[2] = {0, 2}, s4[2] = {8, 0};
  int64_t req[60];
  for (int i = 0; i < 60; i++) req[i] = gpu_irand(50);
  retain_case(dt, s1, 0.5, req, 60); /* duplicates, unsorted */
  retain_case(dt, s1, 0.0, req, 5);
  retain_case(dt, s1, 1.0, req, 20); /* nothing stored */
  retain_case(dt, s1, 0.3, req, 0);  /* nothing requested */
  int64_t one = 0;
  retain_case(dt, s2, 0.0, &one, 1);
  retain_case(dt, s3, 0.0, NULL, 0);
  retain_case(dt, s4, 0.0, req, 3);
  int64_t badr[4] = {3, 50, -1, 7};
  retain_case(dt, s1, 0.5, badr, 4); /* 50 out of range first */
  int64_t badr2[3] = {-4, 2, 99};
  retain_case(dt, s1, 0.5, badr2, 3);
}

int main(void) {
  int rc = gpu_test_start("test_gpu_math_index");
  if (rc) return rc;
  for (int d = 0; d < 3; d++) {
    test_one_hot(dts[d]);
    test_transpose(dts[d]);
    test_concat_dense(dts[d]);
    test_concat_csr(dts[d]);
    test_concat_rsp(dts[d]);
    test_retain(dts[d]);
  }
  test_one_hot_errors();
  KLTEST_DONE();
}
