/* fz_csr.h: fuzz entry point: bytes -> CSR / row_sparse / COO construction, validation, ops. */
#ifndef KL_FZ_CSR_H
#define KL_FZ_CSR_H
#include <stdlib.h>
#include "fuzz_common.h"
#include "kl/registry.h"

#define FZ_MAXR 24
#define FZ_MAXC 24
#define FZ_MAXNNZ (FZ_MAXR * 5)

/* Runs op on inputs; a valid float input must succeed (ENOMEM aside). *out may stay NULL. */
static int fz_op(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a, kl_tensor **out,
                 const char *what) {
  kl_status s = kl_op_run(op, in, nin, a, out);
  if (s == KL_OK || s == KL_ENOMEM) return 0;
  return FZ_BUG("%s on valid input failed: %s %s", what, kl_status_name(s), kl_errmsg());
}

/* A dense float64 matrix rows x cols with values from the input. */
static kl_tensor *fz_dense(fz_in *in, kl_dtype dt, int64_t rows, int64_t cols, double *ref) {
  kl_tensor *t = NULL;
  int64_t shape[2] = {rows, cols};
  if (kl_tensor_new_dense(dt, 2, shape, &t) != KL_OK) return NULL;
  for (int64_t i = 0; i < rows * cols; i++) {
    ref[i] = fz_value(in);
    kl_tensor_data_set(t, i, ref[i]);
  }
  return t;
}

/* Ops on a valid float CSR A (rows x cols) whose dense value is ref. */
static int fz_csr_ops(fz_in *in, kl_tensor *A, const double *ref, double tol) {
  int64_t R = A->shape[0], C = A->shape[1];
  int bad = 0;
  double bref[FZ_MAXC * 3], rref[FZ_MAXR * 3], out[FZ_MAXR * FZ_MAXC];
  kl_tensor *B = fz_dense(in, A->dtype, C, 3, bref), *Rt = fz_dense(in, A->dtype, R, 3, rref);
  kl_tensor *o = NULL;
  kl_attrs at = {0};
  if (!B || !Rt) goto done;
  /* A . B (csr.dense) */
  kl_tensor *ab[2] = {A, B};
  bad |= fz_op(KL_OP_DOT, ab, 2, &at, &o, "dot(csr, dense)");
  if (o) {
    for (int64_t r = 0; r < R; r++)
      for (int64_t j = 0; j < 3; j++) {
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += ref[r * C + c] * bref[c * 3 + j];
        out[r * 3 + j] = s;
      }
    bad |= fz_check_dense(o, out, R * 3, tol, "dot(csr, dense)");
    kl_tensor_release(o), o = NULL;
  }
  /* A^T . Rt (csr^T.dense -> row_sparse) */
  kl_tensor *ar[2] = {A, Rt};
  at.transpose_a = 1;
  bad |= fz_op(KL_OP_DOT, ar, 2, &at, &o, "dot(csr^T, dense)");
  at.transpose_a = 0;
  if (o) {
    if (o->stype != KL_STYPE_DEFAULT && kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("dot(csr^T, dense) result invalid: %s", kl_errmsg());
    for (int64_t c = 0; c < C; c++)
      for (int64_t j = 0; j < 3; j++) {
        double s = 0;
        for (int64_t r = 0; r < R; r++) s += ref[r * C + c] * rref[r * 3 + j];
        out[c * 3 + j] = s;
      }
    bad |= fz_check_dense(o, out, C * 3, tol, "dot(csr^T, dense)");
    kl_tensor_release(o), o = NULL;
  }
  /* sum: everything, axis 0, axis 1 */
  for (int ax = -1; ax < 2; ax++) {
    at.has_axis = ax >= 0, at.axis = ax < 0 ? 0 : ax;
    bad |= fz_op(KL_OP_SUM, &A, 1, &at, &o, "sum(csr)");
    if (o) {
      int64_t n = ax < 0 ? 1 : ax == 0 ? C : R;
      for (int64_t i = 0; i < n; i++) out[i] = 0;
      for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) out[ax < 0 ? 0 : ax == 0 ? c : r] += ref[r * C + c];
      bad |= fz_check_dense(o, out, n, tol, "sum(csr)");
      kl_tensor_release(o), o = NULL;
    }
  }
  at.has_axis = 0, at.axis = 0;
  /* conversions, transpose, add, slices: results must validate and hold the same values */
  kl_stype to[2] = {KL_STYPE_DEFAULT, KL_STYPE_ROW_SPARSE};
  for (int k = 0; k < 2; k++) {
    kl_status s = kl_tensor_tostype(A, to[k], &o);
    if (s == KL_OK) {
      kl_tensor *back = NULL;
      if (kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
        bad |= FZ_BUG("tostype result invalid: %s", kl_errmsg());
      bad |= fz_check_dense(o, ref, R * C, 0, "tostype(csr)");
      if (kl_tensor_tostype(o, KL_STYPE_CSR, &back) == KL_OK) {
        if (kl_tensor_check_format(back, "fuzz", 0) != KL_OK)
          bad |= FZ_BUG("tostype(csr) round trip invalid: %s", kl_errmsg());
        bad |= fz_check_dense(back, ref, R * C, 0, "csr round trip");
      }
      kl_tensor_release(back);
      kl_tensor_release(o), o = NULL;
    } else if (s != KL_ENOMEM) {
      bad |= FZ_BUG("tostype(csr) failed: %s", kl_errmsg());
    }
  }
  bad |= fz_op(KL_OP_TRANSPOSE, &A, 1, &at, &o, "transpose(csr)");
  if (o) {
    for (int64_t r = 0; r < R; r++)
      for (int64_t c = 0; c < C; c++) out[c * R + r] = ref[r * C + c];
    if (kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("transpose result invalid: %s", kl_errmsg());
    bad |= fz_check_dense(o, out, R * C, 0, "transpose(csr)");
    kl_tensor_release(o), o = NULL;
  }
  kl_tensor *aa[2] = {A, A};
  bad |= fz_op(KL_OP_ADD, aa, 2, &at, &o, "add(csr, csr)");
  if (o) {
    for (int64_t i = 0; i < R * C; i++) out[i] = 2 * ref[i];
    if (kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("add result invalid: %s", kl_errmsg());
    bad |= fz_check_dense(o, out, R * C, tol, "add(csr, csr)");
    kl_tensor_release(o), o = NULL;
  }
  int64_t b0 = fz_index(in), b1 = fz_index(in);
  kl_status s = kl_tensor_slice_rows(A, b0, b1, &o);
  if (s == KL_OK) {
    if (!(b0 >= 0 && b0 <= b1 && b1 <= R)) bad |= FZ_BUG("slice [%lld, %lld) accepted", (long long)b0, (long long)b1);
    else {
      if (kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
        bad |= FZ_BUG("slice result invalid: %s", kl_errmsg());
      bad |= fz_check_dense(o, ref + b0 * C, (b1 - b0) * C, 0, "slice(csr)");
    }
    kl_tensor_release(o), o = NULL;
  } else {
    bad |= fz_clean_error(s, "slice_rows");
  }
done:
  kl_tensor_release(B);
  kl_tensor_release(Rt);
  return bad;
}

/* CSR built from the bytes (mostly valid, then corrupted in place), validated, used. */
static int fz_csr_case(fz_in *in, kl_dtype dt) {
  int64_t R = fz_small(in, 0, FZ_MAXR + 1), C = fz_small(in, 0, FZ_MAXC + 1);
  int64_t indptr[FZ_MAXR + 1], cols[FZ_MAXNNZ];
  double vals[FZ_MAXNNZ], ref[FZ_MAXR * FZ_MAXC];
  int64_t nnz = 0;
  indptr[0] = 0;
  for (int64_t r = 0; r < R; r++) {
    int cnt = fz_u8(in) % 5;
    int64_t c = -1;
    for (int k = 0; k < cnt; k++) {
      c += 1 + fz_u8(in) % 3;
      cols[nnz] = c;
      vals[nnz++] = fz_value(in);
    }
    indptr[r + 1] = nnz;
  }
  uint8_t wide = fz_u8(in);
  if (wide >= 0xF0) C = fz_index(in); /* any column count, even negative or huge */
  kl_tensor *A = NULL;
  kl_status s = kl_tensor_new_csr(dt, R, C, nnz, &A);
  if (s != KL_OK) return fz_clean_error(s, "new_csr");
  memcpy(A->indptr, indptr, (size_t)(R + 1) * sizeof(int64_t));
  if (nnz) memcpy(A->indices, cols, (size_t)nnz * sizeof(int64_t));
  for (int64_t k = 0; k < nnz; k++) kl_tensor_data_set(A, k, vals[k]);
  int corrupt = fz_u8(in) % 4;
  for (int k = 0; k < corrupt; k++) {
    uint8_t what = fz_u8(in), pos = fz_u8(in);
    int64_t v = fz_index(in);
    if (what % 3 == 0) A->indptr[pos % (R + 1)] = v;
    else if (what % 3 == 1 && nnz) A->indices[pos % nnz] = v;
    else if (what % 3 == 2 && v >= 0 && v <= nnz) A->nnz = v; /* buffers hold nnz entries */
  }
  int bad = 0;
  s = kl_tensor_check_format(A, "fuzz_csr", fz_u8(in) & 1);
  if (s != KL_OK) {
    bad |= fz_clean_error(s, "check_format(csr)");
  } else if (C <= FZ_MAXC) {
    /* valid: its dense value from the (possibly corrupted, still valid) arrays */
    for (int64_t i = 0; i < R * C; i++) ref[i] = 0;
    for (int64_t r = 0; r < R; r++)
      for (int64_t k = A->indptr[r]; k < A->indptr[r + 1]; k++)
        ref[r * C + A->indices[k]] = kl_tensor_data_at(A, k);
    if (dt == KL_INT64) {
      bad |= fz_check_dense(A, ref, R * C, 0, "csr int64 densify");
    } else {
      bad |= fz_check_dense(A, ref, R * C, 0, "csr densify");
      bad |= fz_csr_ops(in, A, ref, dt == KL_FLOAT32 ? 1e-5 : 1e-12);
    }
  }
  kl_tensor_release(A);
  return bad;
}

/* row_sparse built from the bytes (rank 1-3), validated, used. */
static int fz_rsp_case(fz_in *in, kl_dtype dt) {
  int ndim = 1 + fz_u8(in) % 3;
  int64_t shape[3] = {fz_small(in, 0, 33), fz_small(in, 1, 4), fz_small(in, 0, 3)};
  if (fz_u8(in) >= 0xF8) shape[fz_u8(in) % ndim] = fz_index(in);
  int64_t n = fz_small(in, 0, 12), idx[16];
  int64_t r = -1;
  for (int64_t k = 0; k < n; k++) idx[k] = (r += 1 + fz_u8(in) % 4);
  int corrupt = fz_u8(in) % 3;
  for (int k = 0; k < corrupt && n; k++) {
    uint8_t pos = fz_u8(in);
    idx[pos % n] = fz_index(in);
  }
  kl_tensor *A = NULL;
  kl_status s = kl_tensor_new_rsp(dt, ndim, shape, n, &A);
  if (s != KL_OK) return fz_clean_error(s, "new_rsp");
  int64_t w = kl_row_width(A);
  if (n) memcpy(A->indices, idx, (size_t)n * sizeof(int64_t));
  if (n * w > 4096) { /* a huge row width: validation only, the values do not matter */
    kl_status cs = kl_tensor_check_format(A, "fuzz_rsp", 0);
    kl_tensor_release(A);
    return fz_clean_error(cs, "check_format(rsp)");
  }
  for (int64_t i = 0; i < n * w; i++) kl_tensor_data_set(A, i, fz_value(in));
  int bad = 0;
  s = kl_tensor_check_format(A, "fuzz_rsp", fz_u8(in) & 1);
  if (s != KL_OK) {
    bad |= fz_clean_error(s, "check_format(rsp)");
    kl_tensor_release(A);
    return bad;
  }
  int64_t numel = kl_tensor_numel(A);
  if (numel > 4096 || shape[0] > 4096 || dt == KL_INT64) {
    kl_tensor_release(A);
    return 0;
  }
  double *ref = calloc((size_t)numel + 1, sizeof(double)), *out = calloc((size_t)(numel + 8 * w) + 1, sizeof(double));
  if (!ref || !out) goto done;
  for (int64_t k = 0; k < n; k++)
    for (int64_t j = 0; j < w; j++) ref[A->indices[k] * w + j] = kl_tensor_data_at(A, k * w + j);
  double tol = dt == KL_FLOAT32 ? 1e-5 : 1e-12;
  bad |= fz_check_dense(A, ref, numel, 0, "rsp densify");
  kl_tensor *o = NULL;
  kl_attrs at = {0};
  /* sum over everything and over axis 0 */
  bad |= fz_op(KL_OP_SUM, &A, 1, &at, &o, "sum(rsp)");
  if (o) {
    double s0 = 0;
    for (int64_t i = 0; i < numel; i++) s0 += ref[i];
    bad |= fz_check_dense(o, &s0, 1, tol, "sum(rsp)");
    kl_tensor_release(o), o = NULL;
  }
  at.has_axis = 1, at.axis = 0;
  bad |= fz_op(KL_OP_SUM, &A, 1, &at, &o, "sum(rsp, axis 0)");
  if (o) {
    for (int64_t j = 0; j < w; j++) out[j] = 0;
    for (int64_t i = 0; i < numel; i++) out[i % w] += ref[i];
    bad |= fz_check_dense(o, out, w, tol, "sum(rsp, axis 0)");
    kl_tensor_release(o), o = NULL;
  }
  at.has_axis = 0;
  /* elementwise and scalar ops keep the stored rows */
  kl_tensor *aa[2] = {A, A};
  bad |= fz_op(KL_OP_MUL, aa, 2, &at, &o, "mul(rsp, rsp)");
  if (o) {
    for (int64_t i = 0; i < numel; i++) out[i] = ref[i] * ref[i];
    if (o->stype != KL_STYPE_DEFAULT && kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("mul(rsp) result invalid: %s", kl_errmsg());
    bad |= fz_check_dense(o, out, numel, tol, "mul(rsp, rsp)");
    kl_tensor_release(o), o = NULL;
  }
  at.scalar = fz_value(in);
  bad |= fz_op(KL_OP_MUL_SCALAR, &A, 1, &at, &o, "mul_scalar(rsp)");
  if (o) {
    for (int64_t i = 0; i < numel; i++) out[i] = ref[i] * at.scalar;
    bad |= fz_check_dense(o, out, numel, tol, "mul_scalar(rsp)");
    kl_tensor_release(o), o = NULL;
  }
  /* conversions */
  kl_stype to = ndim == 2 && (fz_u8(in) & 1) ? KL_STYPE_CSR : KL_STYPE_DEFAULT;
  s = kl_tensor_tostype(A, to, &o);
  if (s == KL_OK) {
    if (kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("tostype(rsp) result invalid: %s", kl_errmsg());
    bad |= fz_check_dense(o, ref, numel, 0, "tostype(rsp)");
    kl_tensor *back = NULL;
    if (kl_tensor_tostype(o, KL_STYPE_ROW_SPARSE, &back) == KL_OK) {
      if (kl_tensor_check_format(back, "fuzz", 0) != KL_OK)
        bad |= FZ_BUG("rsp round trip invalid: %s", kl_errmsg());
      bad |= fz_check_dense(back, ref, numel, 0, "rsp round trip");
    }
    kl_tensor_release(back);
    kl_tensor_release(o), o = NULL;
  } else {
    bad |= fz_clean_error(s, "tostype(rsp)");
  }
  /* retain and take_rows with fuzzed row lists (invalid ones are errors) */
  int64_t m = fz_small(in, 0, 6), rows[8];
  for (int64_t k = 0; k < m; k++) rows[k] = fz_index(in);
  s = kl_retain(A, rows, m, &o);
  if (s == KL_OK) {
    if (kl_tensor_check_format(o, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("retain result invalid: %s", kl_errmsg());
    kl_tensor_release(o), o = NULL;
  } else {
    bad |= fz_clean_error(s, "retain");
  }
  s = kl_tensor_take_rows(A, rows, m, &o);
  if (s == KL_OK) {
    for (int64_t k = 0; k < m; k++) {
      if (rows[k] < 0 || rows[k] >= shape[0]) {
        bad |= FZ_BUG("take_rows accepted row %lld of %lld", (long long)rows[k], (long long)shape[0]);
        break;
      }
      for (int64_t j = 0; j < w; j++) out[k * w + j] = ref[rows[k] * w + j];
    }
    if (!bad) bad |= fz_check_dense(o, out, m * w, 0, "take_rows(rsp)");
    kl_tensor_release(o), o = NULL;
  } else {
    bad |= fz_clean_error(s, "take_rows");
  }
done:
  free(ref);
  free(out);
  kl_tensor_release(A);
  return bad;
}

/* COO triplets (maybe out of range) -> CSR with duplicates summed. */
static int fz_coo_case(fz_in *in, kl_dtype dt) {
  int64_t R = fz_small(in, 0, 9), C = fz_small(in, 0, 9), n = fz_small(in, 0, 24);
  int64_t row[24] = {0}, col[24] = {0};
  double val[24] = {0}, ref[64] = {0};
  int inrange = 1;
  for (int64_t k = 0; k < n; k++) {
    row[k] = fz_u8(in) >= 0xF0 ? fz_index(in) : fz_small(in, 0, 9);
    col[k] = fz_u8(in) >= 0xF0 ? fz_index(in) : fz_small(in, 0, 9);
    val[k] = dt == KL_INT64 ? floor(fz_value(in)) : fz_value(in);
    if (row[k] < 0 || row[k] >= R || col[k] < 0 || col[k] >= C) inrange = 0;
    else ref[row[k] * C + col[k]] += val[k];
  }
  kl_tensor *A = NULL;
  kl_status s = kl_csr_from_coo(dt, R, C, n, row, col, val, &A);
  int bad = 0;
  if (s != KL_OK) {
    bad |= fz_clean_error(s, "csr_from_coo");
    if (inrange && s != KL_ENOMEM) bad |= FZ_BUG("csr_from_coo refused in-range triplets: %s", kl_errmsg());
  } else {
    if (!inrange) bad |= FZ_BUG("csr_from_coo accepted an out-of-range triplet");
    else if (kl_tensor_check_format(A, "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("csr_from_coo result invalid: %s", kl_errmsg());
    else bad |= fz_check_dense(A, ref, R * C, dt == KL_FLOAT32 ? 1e-5 : 1e-12, "csr_from_coo");
  }
  kl_tensor_release(A);
  return bad;
}

/* The entry point: returns nonzero when a library invariant broke. */
static int fz_run_csr(const uint8_t *data, size_t size) {
  fz_in in = {data, size, 0};
  uint8_t mode = fz_u8(&in);
  kl_dtype dt = (kl_dtype)(mode % 3);
  switch ((mode >> 2) % 3) {
    case 0: return fz_csr_case(&in, dt);
    case 1: return fz_rsp_case(&in, dt);
    default: return fz_coo_case(&in, dt);
  }
}

#endif
