/* l_sparse.c: sparse constructors and helpers (csr_matrix, coo_matrix, row_sparse_array, ...). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lbind.h"

/* ----------------------------------------------------------- 1-d lists
 * A list argument is a Lua table of numbers or a dense 1-d tensor. */

typedef struct list_src {
  int idx;            /* stack index of the value */
  const kl_tensor *t; /* the tensor, or NULL for a table */
  int64_t n;
} list_src;

static void list_open(lua_State *L, int idx, const char *fn, const char *name, list_src *s) {
  s->idx = lua_absindex(L, idx);
  s->t = kl_lua_totensor(L, s->idx);
  if (s->t) {
    if (s->t->stype != KL_STYPE_DEFAULT || s->t->ndim != 1)
      kl_lua_fail(L, "%s: %s must be a 1-d dense tensor or a table (got a %d-d %s tensor)", fn,
                  name, s->t->ndim, kl_stype_name(s->t->stype));
    s->n = s->t->shape[0];
  } else if (lua_istable(L, s->idx)) {
    s->n = (int64_t)lua_rawlen(L, s->idx);
  } else {
    kl_lua_fail(L, "%s: %s must be a table of numbers or a 1-d tensor (got %s)", fn, name,
                luaL_typename(L, s->idx));
  }
}

/* Element i (0-based) as a number; message positions are 1-based. */
static double list_num(lua_State *L, const list_src *s, int64_t i, const char *fn,
                       const char *name) {
  if (s->t) return kl_tensor_data_at(s->t, i);
  lua_rawgeti(L, s->idx, (lua_Integer)(i + 1));
  if (lua_type(L, -1) != LUA_TNUMBER)
    kl_lua_fail(L, "%s: %s[%lld] is a %s, expected a number", fn, name, (long long)i + 1,
                luaL_typename(L, -1));
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Element i (0-based) as an exact integer. */
static int64_t list_int(lua_State *L, const list_src *s, int64_t i, const char *fn,
                        const char *name) {
  if (s->t) {
    if (s->t->dtype == KL_INT64) return ((const int64_t *)s->t->data)[i];
    double v = kl_tensor_data_at(s->t, i);
    if (!(v == floor(v)) || fabs(v) > 9.0e18)
      kl_lua_fail(L, "%s: %s[%lld] = %.14g is not an integer", fn, name, (long long)i + 1, v);
    return (int64_t)v;
  }
  lua_rawgeti(L, s->idx, (lua_Integer)(i + 1));
  int ty = lua_type(L, -1);
  if (ty != LUA_TNUMBER)
    kl_lua_fail(L, "%s: %s[%lld] is a %s, expected an integer", fn, name, (long long)i + 1,
                lua_typename(L, ty));
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isint);
  if (!isint)
    kl_lua_fail(L, "%s: %s[%lld] = %.14g is not an integer", fn, name, (long long)i + 1,
                lua_tonumber(L, -1));
  lua_pop(L, 1);
  return (int64_t)v;
}

/* v - 1 (a 1-based index to 0-based) without overflow: math.mininteger stays put, and the
 * range check that follows refuses it as out of range (its message then shows the value
 * one above math.mininteger). */
static int64_t to0(int64_t v) { return v == INT64_MIN ? v : v - 1; }

/* Pushes a GC-owned buffer of n int64 values: list - 1 (1-based to 0-based). */
static int64_t *list_index_buffer(lua_State *L, const list_src *s, const char *fn,
                                  const char *name) {
  int64_t *buf = (int64_t *)lua_newuserdatauv(L, (size_t)(s->n ? s->n : 1) * sizeof(int64_t), 0);
  for (int64_t i = 0; i < s->n; i++) buf[i] = to0(list_int(L, s, i, fn, name));
  return buf;
}

/* Stores value v into data[i] of dtype d (int64 values must be integers). */
static void store_num(lua_State *L, kl_tensor *t, int64_t i, double v, const char *fn,
                      const char *name) {
  if (t->dtype == KL_INT64 && (v != floor(v) || fabs(v) > 9.0e18))
    kl_lua_fail(L, "%s: %s[%lld] = %.14g is not an integer (dtype int64)", fn, name,
                (long long)i + 1, v);
  kl_tensor_data_set(t, i, v);
}

/* Stores element i of list s into data[i] of t: an int64 target takes a Lua integer or an
 * int64 tensor's value exactly (not through a double, which rounds beyond 2^53). */
static void store_elem(lua_State *L, kl_tensor *t, int64_t i, const list_src *s, const char *fn,
                       const char *name) {
  if (t->dtype == KL_INT64) {
    if (s->t && s->t->dtype == KL_INT64) {
      ((int64_t *)t->data)[i] = ((const int64_t *)s->t->data)[i];
      return;
    }
    if (!s->t && lua_rawgeti(L, s->idx, (lua_Integer)(i + 1)) == LUA_TNUMBER &&
        lua_isinteger(L, -1)) {
      ((int64_t *)t->data)[i] = (int64_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
      return;
    }
    if (!s->t) lua_pop(L, 1);
  }
  store_num(L, t, i, list_num(L, s, i, fn, name), fn, name);
}

/* Pushes the field key of the table at idx; errors when absent and required. */
static int get_field(lua_State *L, int idx, const char *fn, const char *key, int required) {
  int ty = lua_getfield(L, idx, key);
  if (ty == LUA_TNIL && required) kl_lua_fail(L, "%s: missing field '%s'", fn, key);
  return lua_gettop(L);
}

/* The dtype: opts.dtype, else the dtype of a data tensor, else float32. */
static kl_dtype data_dtype(lua_State *L, int optidx, int dataidx, const char *fn) {
  kl_tensor *dt = kl_lua_totensor(L, dataidx);
  return kl_lua_optdtype(L, optidx, fn, dt ? dt->dtype : KL_FLOAT32);
}

/* ----------------------------------------------------------- csr_matrix */

/* Pushes dense x (tensor or nested table at idx) converted to stype s, named fn. */
static void push_converted(lua_State *L, int idx, int optidx, kl_stype s, const char *fn) {
  kl_tensor *src = kl_lua_totensor(L, idx);
  int top = lua_gettop(L);
  if (!src) {
    kl_lua_push_from_nested(L, idx, kl_lua_optdtype(L, optidx, fn, KL_FLOAT32), fn);
    src = kl_lua_totensor(L, -1);
  } else if (!lua_isnoneornil(L, optidx)) {
    kl_dtype d = kl_lua_optdtype(L, optidx, fn, src->dtype);
    if (d != src->dtype) {
      kl_tensor **tmp = kl_lua_newslot(L);
      KL_LUA_TRY(L, kl_tensor_astype(src, d, tmp));
      src = *tmp;
    }
  }
  if (s == KL_STYPE_CSR && src->ndim != 2)
    kl_lua_fail(L, "%s: expected a 2-d matrix, got %d-d", fn, src->ndim);
  if (s == KL_STYPE_ROW_SPARSE && src->ndim < 1)
    kl_lua_fail(L, "%s: expected a tensor of at least 1 dimension, got 0-d", fn);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_tostype(src, s, slot));
  if (lua_gettop(L) > top + 1) { /* drop the temporary, keep the result */
    kl_lua_close_tensor(L, top + 1);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
  }
}

/* Whether the table at idx is a list (a nested table of values) rather than named fields. */
static int is_list_table(lua_State *L, int idx) {
  if (lua_rawlen(L, idx) > 0) return 1;
  lua_pushnil(L);
  if (lua_next(L, idx)) {
    lua_pop(L, 2);
    return 0;
  }
  return 1; /* {} : an empty list */
}

/* The two forms of csr_matrix and row_sparse_array. When `convert` (argument 1 is a tensor or
 * a nested table), pushes argument 1 converted to stype s ({dtype=} at 2) and returns 1; else
 * checks that argument 1 is a table of the fields `keys` and returns 0. */
static int converted_or_fields(lua_State *L, int convert, kl_stype s, const char *fn,
                               const char *const *keys) {
  static const char *const opts[] = {"dtype", NULL};
  if (convert) {
    kl_lua_checkopts(L, 2, fn, opts);
    push_converted(L, 1, 2, s, fn);
    return 1;
  }
  if (!lua_istable(L, 1))
    kl_lua_fail(L, "%s: expected a table of fields, a tensor or a nested table (got %s)", fn,
                luaL_typename(L, 1));
  kl_lua_checkopts(L, 1, fn, keys);
  return 0;
}

/* The optional shape= field of the table at 1 as rows x cols (2 dimensions, checked):
 * 1 when given, 0 when absent (rows and cols untouched). */
static int field_shape2(lua_State *L, const char *fn, int64_t *rows, int64_t *cols) {
  int shidx = get_field(L, 1, fn, "shape", 0);
  if (lua_isnil(L, shidx)) return 0;
  int64_t shape[KL_MAX_NDIM];
  int nd = kl_lua_checkshape(L, shidx, fn, shape);
  if (nd != 2) kl_lua_fail(L, "%s: shape must have 2 dimensions (got %d)", fn, nd);
  *rows = shape[0];
  *cols = shape[1];
  return 1;
}

/* sparse.csr_matrix{data=, indices=, indptr=, shape=, dtype=} (1-based indices and
 * pointers) or sparse.csr_matrix(dense tensor or nested table[, {dtype=}]). */
static int l_csr_matrix(lua_State *L) {
  static const char *const keys[] = {"data", "indices", "indptr", "shape", "dtype", NULL};
  const char *fn = "csr_matrix";
  if (converted_or_fields(L, kl_lua_totensor(L, 1) || lua_type(L, 1) == LUA_TNUMBER ||
                                 (lua_istable(L, 1) && is_list_table(L, 1)),
                          KL_STYPE_CSR, fn, keys))
    return 1;
  list_src data, ind, ptr;
  list_open(L, get_field(L, 1, fn, "data", 1), fn, "data", &data);
  list_open(L, get_field(L, 1, fn, "indices", 1), fn, "indices", &ind);
  list_open(L, get_field(L, 1, fn, "indptr", 1), fn, "indptr", &ptr);
  if (data.n != ind.n)
    return kl_lua_fail(L, "%s: #data = %lld but #indices = %lld", fn, (long long)data.n,
                       (long long)ind.n);
  int64_t rows, cols;
  if (field_shape2(L, fn, &rows, &cols)) {
    if (ptr.n != rows + 1)
      return kl_lua_fail(L, "%s: #indptr = %lld but shape[1] + 1 = %lld", fn, (long long)ptr.n,
                         (long long)rows + 1);
  } else {
    if (ptr.n < 1) return kl_lua_fail(L, "%s: indptr must have at least one element", fn);
    rows = ptr.n - 1;
    cols = 0;
    for (int64_t i = 0; i < ind.n; i++) {
      int64_t c = list_int(L, &ind, i, fn, "indices");
      if (c > cols) cols = c;
    }
  }
  kl_dtype d = data_dtype(L, 1, data.idx, fn);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_csr(d, rows, cols, data.n, slot));
  kl_tensor *t = *slot;
  for (int64_t i = 0; i < ptr.n; i++) t->indptr[i] = to0(list_int(L, &ptr, i, fn, "indptr"));
  for (int64_t i = 0; i < ind.n; i++) t->indices[i] = to0(list_int(L, &ind, i, fn, "indices"));
  for (int64_t i = 0; i < data.n; i++) store_elem(L, t, i, &data, fn, "data");
  KL_LUA_TRY(L, kl_tensor_check_format(t, fn, 1));
  return 1;
}

/* sparse.coo_matrix{data=, row=, col=, shape=, dtype=}: a CSR; duplicates are summed. */
static int l_coo_matrix(lua_State *L) {
  static const char *const keys[] = {"data", "row", "col", "shape", "dtype", NULL};
  const char *fn = "coo_matrix";
  luaL_checktype(L, 1, LUA_TTABLE);
  kl_lua_checkopts(L, 1, fn, keys);
  list_src data, row, col;
  list_open(L, get_field(L, 1, fn, "data", 1), fn, "data", &data);
  list_open(L, get_field(L, 1, fn, "row", 1), fn, "row", &row);
  list_open(L, get_field(L, 1, fn, "col", 1), fn, "col", &col);
  if (data.n != row.n)
    return kl_lua_fail(L, "%s: #data = %lld but #row = %lld", fn, (long long)data.n,
                       (long long)row.n);
  if (data.n != col.n)
    return kl_lua_fail(L, "%s: #data = %lld but #col = %lld", fn, (long long)data.n,
                       (long long)col.n);
  int64_t *r = list_index_buffer(L, &row, fn, "row");
  int64_t *c = list_index_buffer(L, &col, fn, "col");
  double *v = (double *)lua_newuserdatauv(L, (size_t)(data.n ? data.n : 1) * sizeof(double), 0);
  for (int64_t i = 0; i < data.n; i++) v[i] = list_num(L, &data, i, fn, "data");
  int64_t rows = 0, cols = 0;
  if (!field_shape2(L, fn, &rows, &cols)) {
    for (int64_t i = 0; i < data.n; i++) {
      if (r[i] + 1 > rows) rows = r[i] + 1;
      if (c[i] + 1 > cols) cols = c[i] + 1;
    }
  }
  for (int64_t i = 0; i < data.n; i++) {
    if (r[i] < 0 || r[i] >= rows)
      return kl_lua_fail(L, "%s: row[%lld] = %lld out of range for %lld rows", fn,
                         (long long)i + 1, (long long)r[i] + 1, (long long)rows);
    if (c[i] < 0 || c[i] >= cols)
      return kl_lua_fail(L, "%s: col[%lld] = %lld out of range for %lld columns", fn,
                         (long long)i + 1, (long long)c[i] + 1, (long long)cols);
    if (!isfinite(v[i]))
      return kl_lua_fail(L, "%s: data[%lld] = %g is not finite", fn, (long long)i + 1, v[i]);
  }
  kl_dtype d = data_dtype(L, 1, data.idx, fn);
  if (d == KL_INT64)
    for (int64_t i = 0; i < data.n; i++)
      if (v[i] != floor(v[i]))
        return kl_lua_fail(L, "%s: data[%lld] = %.14g is not an integer (dtype int64)", fn,
                           (long long)i + 1, v[i]);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_csr_from_coo(d, rows, cols, data.n, r, c, v, slot));
  return 1;
}

/* ----------------------------------------------------------- row_sparse */

static const char *dims_str(int ndim, const int64_t *shape, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < ndim && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, i ? " x %lld" : "%lld", (long long)shape[i]);
  if (ndim == 0) snprintf(buf, len, "scalar");
  return buf;
}

/* sparse.row_sparse_array{data=, indices=, shape=, dtype=}: data a nested table of rows or
 * a dense tensor (nnz x row shape); indices 1-based, strictly increasing. Or a dense tensor
 * or nested table, converted. */
static int l_row_sparse_array(lua_State *L) {
  static const char *const keys[] = {"data", "indices", "shape", "dtype", NULL};
  const char *fn = "row_sparse_array";
  if (converted_or_fields(L, kl_lua_totensor(L, 1) || (lua_istable(L, 1) && is_list_table(L, 1)),
                          KL_STYPE_ROW_SPARSE, fn, keys))
    return 1;
  int didx = get_field(L, 1, fn, "data", 1);
  list_src ind;
  list_open(L, get_field(L, 1, fn, "indices", 1), fn, "indices", &ind);
  kl_dtype d = data_dtype(L, 1, didx, fn);
  const kl_tensor *data = kl_lua_totensor(L, didx);
  if (!data) {
    kl_lua_push_from_nested(L, didx, d, fn);
    data = kl_lua_totensor(L, -1);
  } else if (data->stype != KL_STYPE_DEFAULT) {
    return kl_lua_fail(L, "%s: data must be a dense tensor (got %s)", fn,
                       kl_stype_name(data->stype));
  }
  if (data->ndim < 1) return kl_lua_fail(L, "%s: data must have at least 1 dimension", fn);
  int64_t nnz = data->shape[0];
  if (nnz != ind.n)
    return kl_lua_fail(L, "%s: #data = %lld but #indices = %lld", fn, (long long)nnz,
                       (long long)ind.n);
  int64_t shape[KL_MAX_NDIM];
  int ndim;
  int shidx = get_field(L, 1, fn, "shape", 0);
  if (!lua_isnil(L, shidx)) {
    ndim = kl_lua_checkshape(L, shidx, fn, shape);
    if (ndim < 1) return kl_lua_fail(L, "%s: shape must have at least 1 dimension", fn);
  } else {
    if (nnz == 0) return kl_lua_fail(L, "%s: shape is required when data is empty", fn);
    ndim = data->ndim;
    memcpy(shape, data->shape, sizeof shape);
    shape[0] = 0;
    for (int64_t i = 0; i < ind.n; i++) {
      int64_t r = list_int(L, &ind, i, fn, "indices");
      if (r > shape[0]) shape[0] = r;
    }
  }
  /* data's rows must have the shape of one row of the result (an empty {} always fits) */
  int fits = data->ndim == ndim;
  for (int i = 1; fits && i < ndim; i++) fits = data->shape[i] == shape[i];
  if (!fits && !(nnz == 0 && kl_tensor_numel(data) == 0)) {
    char a[128], b[128];
    return kl_lua_fail(L, "%s: data of shape %s does not fit shape %s", fn,
                       dims_str(data->ndim, data->shape, a, sizeof a),
                       dims_str(ndim, shape, b, sizeof b));
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_new_rsp(d, ndim, shape, nnz, slot));
  kl_tensor *t = *slot;
  for (int64_t i = 0; i < ind.n; i++) t->indices[i] = to0(list_int(L, &ind, i, fn, "indices"));
  int64_t nv = nnz * kl_row_width(t);
  if (data->dtype == d) {
    if (nv > 0) memcpy(t->data, data->data, (size_t)nv * kl_dtype_size(d));
  } else {
    for (int64_t i = 0; i < nv; i++) store_num(L, t, i, kl_tensor_data_at(data, i), fn, "data");
  }
  KL_LUA_TRY(L, kl_tensor_check_format(t, fn, 1));
  return 1;
}

/* ----------------------------------------------------------- helpers */

/* sparse.zeros(stype, shape[, {dtype=}]) */
static int l_sparse_zeros(lua_State *L) {
  static const char *const opts[] = {"dtype", NULL};
  const char *fn = "sparse.zeros";
  kl_stype s;
  KL_LUA_TRY(L, kl_stype_parse(fn, luaL_checkstring(L, 1), &s));
  int64_t shape[KL_MAX_NDIM];
  int ndim = kl_lua_checkshape(L, 2, fn, shape);
  kl_lua_checkopts(L, 3, fn, opts);
  kl_dtype d = kl_lua_optdtype(L, 3, fn, KL_FLOAT32);
  kl_tensor **slot = kl_lua_newslot(L);
  if (s == KL_STYPE_CSR) {
    if (ndim != 2) return kl_lua_fail(L, "%s: csr needs a 2-d shape (got %d-d)", fn, ndim);
    KL_LUA_TRY(L, kl_tensor_new_csr(d, shape[0], shape[1], 0, slot));
  } else if (s == KL_STYPE_ROW_SPARSE) {
    if (ndim < 1) return kl_lua_fail(L, "%s: row_sparse needs at least 1 dimension", fn);
    KL_LUA_TRY(L, kl_tensor_new_rsp(d, ndim, shape, 0, slot));
  } else {
    KL_LUA_TRY(L, kl_tensor_new_dense(d, ndim, shape, slot));
  }
  return 1;
}

/* sparse.rand(shape, stype, density[, {seed=, dtype=}]) */
static int l_sparse_rand(lua_State *L) {
  static const char *const opts[] = {"seed", "dtype", NULL};
  const char *fn = "rand";
  int64_t shape[KL_MAX_NDIM];
  int ndim = kl_lua_checkshape(L, 1, fn, shape);
  kl_stype s;
  KL_LUA_TRY(L, kl_stype_parse(fn, luaL_optstring(L, 2, "csr"), &s));
  double density = 0.5;
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) != LUA_TNUMBER)
      return kl_lua_fail(L, "%s: density must be a number (got %s)", fn, luaL_typename(L, 3));
    density = lua_tonumber(L, 3);
  }
  if (!(density >= 0 && density <= 1))
    return kl_lua_fail(L, "%s: density = %g must be in [0, 1]", fn, density);
  if (s == KL_STYPE_CSR && ndim != 2)
    return kl_lua_fail(L, "%s: csr needs a 2-d shape (got %d-d)", fn, ndim);
  if (s == KL_STYPE_ROW_SPARSE && ndim < 1)
    return kl_lua_fail(L, "%s: row_sparse needs at least 1 dimension", fn);
  kl_lua_checkopts(L, 4, fn, opts);
  kl_dtype d = kl_lua_optdtype(L, 4, fn, KL_FLOAT32);
  kl_rng local, *r = kl_lua_rng(L);
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "seed");
    if (!lua_isnil(L, -1)) {
      kl_rng_seed(&local, (uint64_t)kl_lua_checkint(L, -1, fn, "seed"));
      r = &local;
    }
    lua_pop(L, 1);
  }
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_sparse_rand(s, d, ndim, shape, density, r, slot));
  return 1;
}

/* sparse.retain(rsp, indices): the rows of rsp listed in indices (1-based). */
static int l_retain(lua_State *L) {
  const char *fn = "retain";
  kl_tensor *t = kl_lua_checktensor(L, 1, fn);
  if (t->stype != KL_STYPE_ROW_SPARSE)
    return kl_lua_fail(L, "%s: expected a row_sparse tensor (got %s)", fn,
                       kl_stype_name(t->stype));
  list_src ind;
  list_open(L, 2, fn, "indices", &ind);
  int64_t *rows = list_index_buffer(L, &ind, fn, "indices");
  for (int64_t i = 0; i < ind.n; i++)
    if (rows[i] < 0 || rows[i] >= t->shape[0])
      return kl_lua_fail(L, "%s: indices[%lld] = %lld out of range for %lld rows", fn,
                         (long long)i + 1, (long long)rows[i] + 1, (long long)t->shape[0]);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_retain(t, rows, ind.n, slot));
  return 1;
}

/* sparse.cast_storage(x, stype) */
static int l_cast_storage(lua_State *L) {
  const char *fn = "cast_storage";
  kl_tensor *t = kl_lua_checktensor(L, 1, fn);
  kl_stype s;
  KL_LUA_TRY(L, kl_stype_parse(fn, luaL_checkstring(L, 2), &s));
  if (s == KL_STYPE_CSR && t->ndim != 2)
    return kl_lua_fail(L, "%s: csr needs a 2-d tensor, got %d-d", fn, t->ndim);
  if (s == KL_STYPE_ROW_SPARSE && t->ndim < 1)
    return kl_lua_fail(L, "%s: row_sparse needs a tensor of at least 1 dimension", fn);
  kl_tensor **slot = kl_lua_newslot(L);
  KL_LUA_TRY(L, kl_tensor_tostype(t, s, slot));
  return 1;
}

/* sparse.check_format(x): true, or the error naming the broken invariant (1-based). */
static int l_check_format(lua_State *L) {
  kl_tensor *t = kl_lua_checktensor(L, 1, "check_format");
  KL_LUA_TRY(L, kl_tensor_check_format(t, "check_format", 1));
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg sparse_funcs[] = {
    {"csr_matrix", l_csr_matrix},
    {"coo_matrix", l_coo_matrix},
    {"row_sparse_array", l_row_sparse_array},
    {"sparse_zeros", l_sparse_zeros},
    {"sparse_rand", l_sparse_rand},
    {"retain", l_retain},
    {"cast_storage", l_cast_storage},
    {"check_format", l_check_format},
    {NULL, NULL},
};

void kl_lua_open_sparse(lua_State *L) { luaL_setfuncs(L, sparse_funcs, 0); }
