/* test_model_file.c: model files: bit-exact round trips, truncation, bit flips, crafted bad headers, allocation failures, atomic writes, Python/numpy reads them. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kl/model_file.h"
#include "kltest.h"

static char tmpdir[256];

static const char *tpath(const char *name) {
  static char buf[4][512];
  static int k = 0;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static unsigned char *read_all(const char *p, size_t *len) {
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  *len = fread(b, 1, (size_t)n, f);
  b[*len] = 0; /* callers use strstr on the text */
  fclose(f);
  return b;
}

static void write_all(const char *p, const unsigned char *b, size_t n) {
  FILE *f = fopen(p, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
}

static int same_tensor(const kl_tensor *a, const kl_tensor *b) {
  if (a->dtype != b->dtype || a->stype != b->stype || a->ndim != b->ndim || a->nnz != b->nnz)
    return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  size_t es = kl_dtype_size(a->dtype);
  int64_t nvals = a->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(a)
                  : a->stype == KL_STYPE_CSR   ? a->nnz
                                               : a->nnz * kl_row_width(a);
  if (nvals && memcmp(a->data, b->data, (size_t)nvals * es) != 0) return 0;
  if (a->stype != KL_STYPE_DEFAULT && a->nnz &&
      memcmp(a->indices, b->indices, (size_t)a->nnz * 8) != 0)
    return 0;
  if (a->stype == KL_STYPE_CSR &&
      memcmp(a->indptr, b->indptr, (size_t)(a->shape[0] + 1) * 8) != 0)
    return 0;
  return 1;
}

/* ------------------------------------------------------------ a set of tensors */

#define NT 10
static kl_tensor *T[NT];
static const char *NAMES[NT] = {"dense_1/kernel", "dense_1/bias", "scalar64", "ids", "empty",
                                "csr32", "csr64_empty_rows", "rsp2", "rsp3", "rsp_none"};
static const char *MKEYS[3] = {"architecture", "note", "unicode"};
static const char *MVALS[3] = {"{\"class_name\": \"Sequential\", \"layers\": [1.5e-7]}",
                               "tab\there \"quoted\" back\\slash\nnewline", "caf\xc3\xa9 \x01"};

static void make_tensors(void) {
  kl_rng r;
  kl_rng_seed(&r, 42);
  int64_t s23[2] = {2, 3}, s3[1] = {3}, s0[1] = {0}, s234[3] = {2, 3, 4}, s04[2] = {0, 4};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s23, &T[0]));
  CHECK_OK(kl_tensor_fill_normal(T[0], 0, 1, &r));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, s3, &T[1]));
  CHECK_OK(kl_tensor_fill_uniform(T[1], -1, 1, &r));
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT64, 0, s0, &T[2]));
  ((double *)T[2]->data)[0] = 1.0 / 3.0;
  CHECK_OK(kl_tensor_new_dense(KL_INT64, 3, s234, &T[3]));
  for (int i = 0; i < 24; i++) ((int64_t *)T[3]->data)[i] = (int64_t)i * -123456789012LL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, s04, &T[4]));
  int64_t s56[2] = {5, 6}, s74[2] = {7, 4}, s10x3[3] = {10, 2, 3}, s9[2] = {9, 2};
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT32, 2, s56, 0.4, &r, &T[5]));
  CHECK_OK(kl_sparse_rand(KL_STYPE_CSR, KL_FLOAT64, 2, s74, 0.2, &r, &T[6]));
  CHECK_OK(kl_sparse_rand(KL_STYPE_ROW_SPARSE, KL_FLOAT32, 2, s74, 0.5, &r, &T[7]));
  CHECK_OK(kl_sparse_rand(KL_STYPE_ROW_SPARSE, KL_FLOAT64, 3, s10x3, 0.3, &r, &T[8]));
  CHECK_OK(kl_tensor_new_rsp(KL_FLOAT32, 2, s9, 0, &T[9]));
}

static void check_loaded(const kl_model_file *f) {
  CHECK(f->n == NT);
  for (int i = 0; i < NT && i < f->n; i++) {
    CHECK(strcmp(f->names[i], NAMES[i]) == 0);
    CHECK(same_tensor(f->tensors[i], T[i]));
    CHECK(kl_tensor_check_format(f->tensors[i], "test", 0) == KL_OK);
  }
  CHECK(f->nmeta == 3);
  for (int i = 0; i < 3 && i < f->nmeta; i++) {
    CHECK(strcmp(f->keys[i], MKEYS[i]) == 0);
    CHECK(strcmp(f->values[i], MVALS[i]) == 0);
  }
}

static void test_round_trip(void) {
  const char *p = tpath("all.kl");
  CHECK_OK(kl_model_file_save(p, NT, NAMES, (const kl_tensor *const *)T, 3, MKEYS, MVALS));
  kl_model_file *f = NULL;
  CHECK_OK(kl_model_file_load(p, &f));
  if (f) check_loaded(f);
  kl_model_file_free(f);
  /* the layout: length % 8 == 0, starts with '{', header padded with spaces */
  size_t len;
  unsigned char *b = read_all(p, &len);
  uint64_t h = 0;
  for (int k = 7; k >= 0; k--) h = (h << 8) | b[k];
  CHECK(h % 8 == 0 && h + 8 <= len && b[8] == '{');
  CHECK(strstr((const char *)b + 8, "\"dtype\":\"I64\"") != NULL);
  free(b);
  /* saving again over it replaces it */
  CHECK_OK(kl_model_file_save(p, 2, NAMES, (const kl_tensor *const *)T, 0, NULL, NULL));
  CHECK_OK(kl_model_file_load(p, &f));
  CHECK(f && f->n == 2 && f->nmeta == 0 && same_tensor(f->tensors[1], T[1]));
  kl_model_file_free(f);
  /* an empty file (no tensors) */
  CHECK_OK(kl_model_file_save(p, 0, NULL, NULL, 0, NULL, NULL));
  CHECK_OK(kl_model_file_load(p, &f));
  CHECK(f && f->n == 0 && f->nmeta == 0);
  kl_model_file_free(f);
}

static void test_save_errors(void) {
  const char *p = tpath("bad.kl");
  const char *dup[2] = {"w", "w"};
  const kl_tensor *tt[2] = {T[0], T[1]};
  CHECK_ERR(kl_model_file_save(p, 2, dup, tt, 0, NULL, NULL), KL_EINVAL,
            "two tensors are stored as 'w'");
  const char *clash[2] = {"x", "x.data"};
  const kl_tensor *tc[2] = {T[5], T[0]};
  CHECK_ERR(kl_model_file_save(p, 2, clash, tc, 0, NULL, NULL), KL_EINVAL,
            "two tensors are stored as 'x.data'");
  const char *meta[1] = {"__metadata__"};
  CHECK_ERR(kl_model_file_save(p, 1, meta, tt, 0, NULL, NULL), KL_EINVAL, "reserved");
  const char *empty[1] = {""};
  CHECK_ERR(kl_model_file_save(p, 1, empty, tt, 0, NULL, NULL), KL_EINVAL, "empty name");
  const char *k1[1] = {"kl.crc32:w"}, *v1[1] = {"0"};
  CHECK_ERR(kl_model_file_save(p, 1, NAMES, tt, 1, k1, v1), KL_EINVAL,
            "metadata key 'kl.crc32:w' is reserved");
  const char *k2[2] = {"a", "a"}, *v2[2] = {"1", "2"};
  CHECK_ERR(kl_model_file_save(p, 1, NAMES, tt, 2, k2, v2), KL_EINVAL, "duplicate metadata key 'a'");
  CHECK_ERR(kl_model_file_save(tpath("no/such/dir/x.kl"), 1, NAMES, tt, 0, NULL, NULL), KL_EIO,
            "cannot create a temp file");
  /* a folder in the way: the rename fails and the temp file is removed */
  const char *d = tpath("adir");
  mkdir(d, 0755);
  CHECK_ERR(kl_model_file_save(d, 1, NAMES, tt, 0, NULL, NULL), KL_EIO, "cannot rename");
  /* an invalid sparse tensor is refused before writing */
  kl_tensor *bad = NULL;
  CHECK_OK(kl_tensor_new_csr(KL_FLOAT32, 2, 2, 1, &bad));
  bad->indptr[1] = 1;
  bad->indptr[2] = 1;
  bad->indices[0] = 5;
  ((float *)bad->data)[0] = 1;
  const kl_tensor *tb[1] = {bad};
  CHECK_ERR(kl_model_file_save(p, 1, NAMES, tb, 0, NULL, NULL), KL_EINDEX, "save_model");
  kl_tensor_release(bad);
  CHECK_ERR(kl_model_file_load(tpath("missing.kl"), &(kl_model_file *){NULL}), KL_EIO,
            "cannot open");
  kl_model_file *f = NULL;
  CHECK_ERR(kl_model_file_load(d, &f), KL_EIO, "not a regular file");
}

/* No temp file is ever left behind in the folder. */
static void test_no_temp_left(void) {
  DIR *dir = opendir(tmpdir);
  struct dirent *de;
  int temps = 0;
  while (dir && (de = readdir(dir)))
    if (strstr(de->d_name, ".tmp-")) temps++;
  if (dir) closedir(dir);
  CHECK(temps == 0);
}

/* ------------------------------------------------------------ corruption */

static void test_truncation_and_flips(void) {
  const char *p = tpath("small.kl");
  const kl_tensor *tt[4] = {T[0], T[1], T[5], T[7]};
  const char *nn[4] = {"dense_1/kernel", "dense_1/bias", "c", "r"};
  const char *k[1] = {"architecture"}, *v[1] = {"{\"layers\":[]}"};
  CHECK_OK(kl_model_file_save(p, 4, nn, tt, 1, k, v));
  size_t len;
  unsigned char *b = read_all(p, &len);
  kl_model_file *f = NULL;
  CHECK_OK(kl_model_file_parse(p, b, len, &f));
  kl_model_file_free(f);
  int refused = 0;
  for (size_t n = 0; n < len; n++) {
    kl_status s = kl_model_file_parse("cut.kl", b, n, &f);
    refused += s == KL_EFORMAT && f == NULL && strncmp(kl_errmsg(), "load_model: cut.kl: ", 20) == 0;
    if (s == KL_OK) kl_model_file_free(f);
  }
  CHECK(refused == (int)len);
  /* a few cuts through a real file too */
  size_t cuts[4] = {0, 7, 8 + 5, len - 1};
  for (int i = 0; i < 4; i++) {
    write_all(tpath("cut.kl"), b, cuts[i]);
    CHECK(kl_model_file_load(tpath("cut.kl"), &f) == KL_EFORMAT && f == NULL);
  }
  int flips = 0, flips_refused = 0, crc_msgs = 0;
  for (size_t i = 0; i < len; i++)
    for (int bit = 0; bit < 8; bit++) {
      b[i] ^= (unsigned char)(1u << bit);
      kl_status s = kl_model_file_parse("flip.kl", b, len, &f);
      flips++;
      flips_refused += s == KL_EFORMAT && f == NULL;
      crc_msgs += strstr(kl_errmsg(), "crc mismatch") != NULL;
      if (s == KL_OK) {
        fprintf(stderr, "flip of bit %d at byte %zu accepted\n", bit, i);
        kl_model_file_free(f);
      }
      b[i] ^= (unsigned char)(1u << bit);
    }
  CHECK(flips == (int)len * 8 && flips_refused == flips);
  CHECK(crc_msgs > 0);
  uint64_t h = 0;
  for (int q = 7; q >= 0; q--) h = (h << 8) | b[q];
  /* a flipped data byte names the tensor (the data area starts with the 8-byte entries) */
  b[8 + h] ^= 1;
  CHECK_ERR(kl_model_file_parse("m.kl", b, len, &f), KL_EFORMAT,
            "load_model: m.kl: crc mismatch for tensor 'c.indices'");
  free(b);
}

/* Crafted files. Data area: "a" F32 [2] = {1, 2} at [0, 8), "b" I64 [1] = {7} at [8, 16),
 * then for sparse cases "s.data" F32 [1] at [16, 20), "s.indices" I64 [1] at [20, 28),
 * "s.indptr" I64 [2] at [28, 44). In a template, {0}..{4} become the crc32s of those five
 * parts, and a "kl.header_crc32":"00000000" gets the header's real crc. */
static unsigned char DATA[44];
static const size_t SEG[6] = {0, 8, 16, 20, 28, 44};

static void init_data(void) {
  float a[2] = {1, 2}, sd = 5;
  int64_t bb = 7, si = 5, sp[2] = {0, 1};
  memcpy(DATA, a, 8);
  memcpy(DATA + 8, &bb, 8);
  memcpy(DATA + 16, &sd, 4);
  memcpy(DATA + 20, &si, 8);
  memcpy(DATA + 28, sp, 16);
}

static kl_status try_header(const char *tmpl, size_t data_len, kl_model_file **f) {
  static char hdr[4096];
  size_t o = 0;
  for (const char *c = tmpl; *c; c++) {
    if (c[0] == '{' && c[1] >= '0' && c[1] <= '4' && c[2] == '}') {
      int s = c[1] - '0';
      o += (size_t)sprintf(hdr + o, "%08lx",
                           (unsigned long)kl_crc32(DATA + SEG[s], SEG[s + 1] - SEG[s]));
      c += 2;
    } else {
      hdr[o++] = *c;
    }
  }
  while (o % 8) hdr[o++] = ' ';
  hdr[o] = '\0';
  char *hc = strstr(hdr, "\"kl.header_crc32\":\"00000000\"");
  if (hc) {
    char digits[9];
    snprintf(digits, sizeof digits, "%08lx", (unsigned long)kl_crc32(hdr, o));
    memcpy(hc + 19, digits, 8);
  }
  static unsigned char file[8192];
  for (int k = 0; k < 8; k++) file[k] = (unsigned char)((uint64_t)o >> (8 * k));
  memcpy(file + 8, hdr, o);
  memcpy(file + 8 + o, DATA, data_len);
  *f = NULL;
  return kl_model_file_parse("t.kl", file, 8 + o + data_len, f);
}

#define A_OK "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define B_OK "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}"
#define HC "\"kl.header_crc32\":\"00000000\""
#define CRCS "\"kl.crc32:a\":\"{0}\",\"kl.crc32:b\":\"{1}\""
#define META(extra) "\"__metadata__\":{" CRCS "," extra HC "}"
#define SP_OK                                                                        \
  "\"s.data\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"          \
  "\"s.indices\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[20,28]},"       \
  "\"s.indptr\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[28,44]}"
#define SP_CRCS "\"kl.crc32:s.data\":\"{2}\",\"kl.crc32:s.indices\":\"{3}\",\"kl.crc32:s.indptr\":\"{4}\","

typedef struct bad_case {
  const char *header;
  size_t data_len;
  const char *msg;
} bad_case;

static const bad_case BAD[] = {
    {"hello", 16, "header: unexpected character 'h' at byte 0"},
    {"[1,2]", 16, "header must be a JSON object (got array)"},
    {"{\"a\":", 16, "header: unexpected end, expected a value"},
    {"{\"a\":{}} x", 16, "header: trailing character 'x'"},
    {"{\"a\":1.5}", 16, "header: only integers are allowed"},
    {"{\"a\":true}", 16, "header: unexpected character 't'"},
    {"{\"a\":01}", 16, "header: leading zero in number"},
    {"{\"a\":99999999999999999999}", 16, "header: integer out of range"},
    {"{\"a\\q\":1}", 16, "header: bad escape '\\q'"},
    {"{\"a\x01\":1}", 16, "header: control character 0x01 in string"},
    {"{\"\\ud800x\":1}", 16, "header: unpaired surrogate"},
    {"{\"\\u0000\":1}", 16, "header: \\u0000 in string"},
    {"{\"a\":1,\"a\":2}", 16, "header: duplicate key \"a\""},
    {"{\"a\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}", 16, "header: nesting deeper than 16"},
    {"{\"a\" 1}", 16, "header: expected ':' at byte 5"},
    {"{\"a\":[1 2]}", 16, "header: expected ',' or ']'"},
    {"{\"a\":\"abc", 16, "header: unterminated string"},
    {"{\"a\":\"\xff\"", 16, "header: unexpected end, expected ',' or '}'"},
    {"{" A_OK "," B_OK "}", 16, "missing __metadata__ (the file has no checksums)"},
    {"{" A_OK "," B_OK ",\"__metadata__\":[]}", 16, "__metadata__ must be an object"},
    {"{" A_OK "," B_OK ",\"__metadata__\":{" CRCS "}}", 16, "missing 'kl.header_crc32'"},
    {"{" A_OK "," B_OK ",\"__metadata__\":{" CRCS ",\"kl.header_crc32\":\"0000000g\"}}", 16,
     "'kl.header_crc32' is not 8 lowercase hex digits"},
    {"{" A_OK "," B_OK ",\"__metadata__\":{" CRCS ",\"kl.header_crc32\":\"12345678\"}}", 16,
     "header crc mismatch (stored 12345678"},
    {"{" A_OK "," B_OK "," META("\"x\":[],") "}", 16, "__metadata__ value of 'x' is not a string"},
    {"{" A_OK "," B_OK "," META("\"kl.foo\":\"1\",") "}", 16, "unknown reserved metadata key 'kl.foo'"},
    {"{" A_OK "," B_OK "," META("\"kl.format\":\"keras-lua/9\",") "}", 16,
     "unknown format \"keras-lua/9\""},
    {"{\"a\":[]," B_OK "," META("") "}", 16, "tensor 'a': entry must be an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}," B_OK "," META("") "}",
     16, "tensor 'a': unknown field 'x'"},
    {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}," B_OK "," META("") "}", 16,
     "tensor 'a': dtype must be a string"},
    {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}," B_OK "," META("") "}", 16,
     "tensor 'a': unknown dtype \"BF16\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}," B_OK "," META("") "}", 16,
     "tensor 'a': shape must be an array"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}," B_OK "," META("") "}", 16,
     "tensor 'a': shape[0] = -2 is negative"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}," B_OK
     "," META("") "}",
     16, "tensor 'a': shape has 9 dims (at most 8)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[16777216,16777216,16777216],\"data_offsets\":[0,8]}," B_OK
     "," META("") "}",
     16, "tensor 'a': shape has more than 2^48 elements"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}," B_OK "," META("") "}", 16,
     "tensor 'a': shape[0] is not an integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}," B_OK "," META("") "}", 16,
     "tensor 'a': data_offsets must be [begin, end]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}," B_OK "," META("") "}", 16,
     "tensor 'a': bad data_offsets [8, 0]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}," B_OK "," META("") "}", 16,
     "tensor 'a': bad data_offsets [-8, 0]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," B_OK "," META("") "}", 12,
     "tensor 'b': data_offsets end 16 beyond the data area (12 bytes)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}," B_OK "," META("") "}", 16,
     "tensor 'a': data_offsets [0, 8] hold 8 bytes, shape and dtype need 12"},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]}," META("") "}", 16,
     "tensor 'b' data_offsets [4, 12] overlap tensor 'a'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}," B_OK "," META("") "}", 16,
     "gap of 4 bytes before tensor 'b'"},
    {"{" A_OK "," B_OK "," META("") "}", 20, "data area holds 20 bytes but the tensors cover 16"},
    {"{" A_OK "," B_OK ",\"__metadata__\":{\"kl.crc32:a\":\"{0}\"," HC "}}", 16,
     "missing crc32 for tensor 'b'"},
    {"{" A_OK "," B_OK ",\"__metadata__\":{\"kl.crc32:a\":\"{1}\",\"kl.crc32:b\":\"{1}\"," HC "}}",
     16, "crc mismatch for tensor 'a'"},
    {"{" A_OK "," B_OK "," META("\"kl.crc32:c\":\"00000000\",") "}", 16,
     "crc32 given for unknown tensor 'c'"},
    {"{" A_OK "," B_OK ",\"__metadata__\":{\"kl.crc32:a\":\"{0}\",\"kl.crc32:b\":\"1234\"," HC "}}",
     16, "crc32 of tensor 'b' is not 8 lowercase hex digits"},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":[1,3]}\",") "}",
     44, "sparse tensor 's': check_format: indices[0] = 5 out of range for 3 columns"},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"coo\\\",\\\"shape\\\":[1,3]}\",") "}",
     44, "sparse tensor 's': unknown stype \"coo\""},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"csr\\\"}\",") "}",
     44, "sparse tensor 's': description must be {"},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{oops\",") "}", 44,
     "sparse tensor 's': description: expected a string key"},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":[3]}\",") "}",
     44, "sparse tensor 's': a csr tensor must be 2-d (got 1 dims)"},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":[2,3]}\",") "}",
     44, "sparse tensor 's': part 's.indptr' has the wrong shape"},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:a\":\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":[1,3]}\",") "}",
     44, "sparse tensor 'a': missing part 'a.data'"},
    {"{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"row_sparse\\\",\\\"shape\\\":[4,2]}\",") "}",
     44, "sparse tensor 's': part 's.data' has the wrong shape"},
    {"{" A_OK "," B_OK ",\"s.data\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"
     "\"s.indices\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[20,28]},"
     "\"s.indptr\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[28,44]},"
     META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":[1,3]}\",") "}",
     44, "sparse tensor 's': part 's.indices' must be I64"},
};

static void test_bad_headers(void) {
  init_data();
  kl_model_file *f = NULL;
  /* the base cases are good: each bad case differs from one in the one way it names */
  CHECK_OK(try_header("{" A_OK "," B_OK "," META("") "}", 16, &f));
  CHECK(f && f->n == 2 && ((float *)f->tensors[0]->data)[1] == 2.0f &&
        ((int64_t *)f->tensors[1]->data)[0] == 7);
  kl_model_file_free(f);
  CHECK_OK(try_header("{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":[1,3]}\",") "}", 44, &f) == KL_EFORMAT ? KL_OK : KL_EINVAL);
  DATA[20] = 1; /* s.indices[0] = 1: in range */
  CHECK_OK(try_header("{" A_OK "," B_OK "," SP_OK "," META(SP_CRCS "\"kl.sparse:s\":\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":[1,3]}\",") "}", 44, &f));
  CHECK(f && f->n == 3 && strcmp(f->names[2], "s") == 0 && f->tensors[2]->stype == KL_STYPE_CSR &&
        f->tensors[2]->indices[0] == 1);
  kl_model_file_free(f);
  DATA[20] = 5;
  int n = (int)(sizeof BAD / sizeof BAD[0]);
  CHECK(n >= 30);
  for (int i = 0; i < n; i++) {
    char want[300];
    snprintf(want, sizeof want, "load_model: t.kl: %s", BAD[i].msg);
    kl_status s = try_header(BAD[i].header, BAD[i].data_len, &f);
    CHECK(f == NULL);
    if (s != KL_EFORMAT || strncmp(kl_errmsg(), want, strlen(want)) != 0) {
      kltest_failures++;
      fprintf(stderr, "bad case %d: got %s \"%s\", wanted \"%s\"\n", i, kl_status_name(s),
              kl_errmsg(), want);
    }
    kltest_checks++;
    if (s == KL_OK) kl_model_file_free(f);
  }
  /* lengths */
  unsigned char small[4] = {1, 2, 3, 4};
  CHECK_ERR(kl_model_file_parse("t.kl", small, 4, &f), KL_EFORMAT,
            "load_model: t.kl: file is 4 bytes, too short for the 8-byte header length");
  unsigned char big[400] = {0x15, 0xcd, 0x5b, 0x07}; /* 123456789 */
  CHECK_ERR(kl_model_file_parse("model.kl", big, 400, &f), KL_EFORMAT,
            "load_model: model.kl: header length 123456789 exceeds file size 400");
  size_t huge = (size_t)100000000 + 16;
  unsigned char *hb = calloc(1, huge);
  if (hb) {
    uint64_t hl = (uint64_t)100000000 + 8;
    for (int k = 0; k < 8; k++) hb[k] = (unsigned char)(hl >> (8 * k));
    CHECK_ERR(kl_model_file_parse("t.kl", hb, huge, &f), KL_EFORMAT,
              "header length 100000008 exceeds the limit of 100000000 bytes");
    free(hb);
  }
  CHECK_ERR(try_header("", 0, &f), KL_EFORMAT, "load_model: t.kl: header: unexpected end");
}

/* ------------------------------------------------------------ alignment */

/* Every entry's offset is a multiple of its element size (of 8 for F64/I64) and the data
 * area starts at a multiple of 8, as safetensors' writer lays files out; the entries tile
 * the data area (safetensors' reader wants no gap). NAMES mixes F32 entries of odd
 * lengths (dense_1/bias: 3 floats) before F64/I64 ones, which a file in the caller's order
 * would put at offsets 4 mod 8. */
static void test_alignment(void) {
  const char *p = tpath("align.kl");
  CHECK_OK(kl_model_file_save(p, NT, NAMES, (const kl_tensor *const *)T, 0, NULL, NULL));
  size_t len;
  unsigned char *b = read_all(p, &len);
  uint64_t h = 0;
  for (int k = 7; k >= 0; k--) h = (h << 8) | b[k];
  CHECK((8 + h) % 8 == 0);
  int entries = 0, aligned = 0, eight = 0;
  uint64_t total = 0, first_f32 = UINT64_MAX, last_wide = 0;
  const char *hdr = (const char *)b + 8;
  for (const char *c = hdr; (c = strstr(c, "\"dtype\":\"")) != NULL && c < hdr + h; c++) {
    size_t es = strncmp(c + 9, "F32", 3) == 0 ? 4 : 8;
    const char *o = strstr(c, "\"data_offsets\":[");
    unsigned long long beg = 0, end = 0;
    if (!o || sscanf(o + 16, "%llu,%llu", &beg, &end) != 2) break;
    entries++;
    aligned += beg % es == 0;
    eight += es == 8 && beg % 8 == 0;
    total += end - beg;
    if (es == 4 && beg < first_f32) first_f32 = beg;
    if (es == 8 && beg > last_wide) last_wide = beg;
  }
  CHECK(entries == 17 && aligned == entries);
  CHECK(eight == 11); /* scalar64, ids, 7 index arrays, the float64 data of 2 sparse */
  CHECK(last_wide <= first_f32); /* the 8-byte group first (empty entries at its end) */
  CHECK(total == len - 8 - h); /* no gap */
  free(b);
  kl_model_file *f = NULL;
  CHECK_OK(kl_model_file_load(p, &f));
  if (f) CHECK(f->n == NT && strcmp(f->names[1], "dense_1/bias") == 0 &&
               same_tensor(f->tensors[1], T[1]) && same_tensor(f->tensors[2], T[2]));
  kl_model_file_free(f);
}

/* ------------------------------------------------------------ foreign files */

/* A safetensors file as Python writes it: 8-byte length, the header padded with spaces. */
static size_t foreign_file(unsigned char *out, const char *hdr, const unsigned char *data,
                           size_t dlen) {
  size_t h = strlen(hdr), pad = (8 - h % 8) % 8;
  for (int k = 0; k < 8; k++) out[k] = (unsigned char)((uint64_t)(h + pad) >> (8 * k));
  memcpy(out + 8, hdr, h);
  memset(out + 8 + h, ' ', pad);
  memcpy(out + 8 + h + pad, data, dlen);
  return 8 + h + pad + dlen;
}

#define F_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define F_H "\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[8,20]}"
#define F_B "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[20,24]}"
#define F_I "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[24,28]}"

static void test_foreign(void) {
  static unsigned char file[1024];
  unsigned char data[28];
  const float a[2] = {1.5f, -2.0f};
  /* F16: 1, -2.5, 65504 (the largest), 2^-24 (the smallest subnormal), -0, +inf */
  const uint16_t hv[6] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x8000, 0x7c00};
  const uint16_t bv[2] = {0x3f80, 0xc0a0}; /* BF16: 1, -5 */
  const int32_t iv = 7;
  memcpy(data, a, 8);
  for (int k = 0; k < 6; k++) { data[8 + 2 * k] = hv[k] & 0xff; data[9 + 2 * k] = hv[k] >> 8; }
  for (int k = 0; k < 2; k++) { data[20 + 2 * k] = bv[k] & 0xff; data[21 + 2 * k] = bv[k] >> 8; }
  memcpy(data + 24, &iv, 4);
  kl_model_file *f = NULL;
  size_t n = foreign_file(file, "{" F_A "," F_H "," F_B "," F_I "}", data, 28);
  CHECK_OK(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f));
  if (f) {
    CHECK(f->n == 3 && f->nmeta == 0 && f->has_crc == 0 && f->nskipped == 1);
    CHECK(strcmp(f->names[0], "a") == 0 && strcmp(f->names[1], "h") == 0 &&
          strcmp(f->names[2], "bf") == 0);
    CHECK(strcmp(f->skipped[0], "i") == 0 && strcmp(f->skipped_dtypes[0], "I32") == 0);
    const float *h = f->tensors[1]->data, *bf = f->tensors[2]->data;
    CHECK(f->tensors[1]->dtype == KL_FLOAT32 && f->tensors[1]->ndim == 2 &&
          f->tensors[1]->shape[1] == 3);
    CHECK(h[0] == 1.0f && h[1] == -2.5f && h[2] == 65504.0f && h[3] == ldexpf(1.0f, -24));
    CHECK(h[4] == 0.0f && signbit(h[4]) && isinf(h[5]) && h[5] > 0);
    CHECK(bf[0] == 1.0f && bf[1] == -5.0f && ((float *)f->tensors[0]->data)[1] == -2.0f);
  }
  kl_model_file_free(f);
  /* a keras-lua load refuses the same file */
  CHECK_ERR(kl_model_file_parse("w.st", file, n, &f), KL_EFORMAT,
            "load_model: w.st: missing __metadata__ (the file has no checksums)");
  /* torch's metadata, no checksums: accepted */
  n = foreign_file(file, "{\"__metadata__\":{\"format\":\"pt\"}," F_A "}", data, 8);
  CHECK_OK(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f));
  CHECK(f && f->n == 1 && f->nmeta == 1 && strcmp(f->values[0], "pt") == 0);
  kl_model_file_free(f);
  /* the CRCs present are checked; with the header CRC, all are required */
  n = foreign_file(file, "{\"__metadata__\":{\"kl.crc32:a\":\"00000000\"}," F_A "}", data, 8);
  CHECK_ERR(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f),
            KL_EFORMAT, "load_weights: w.st: crc mismatch for tensor 'a'");
  char hdr[300];
  snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"kl.crc32:a\":\"%08lx\"}," F_A "}",
           (unsigned long)kl_crc32(data, 8));
  n = foreign_file(file, hdr, data, 8);
  CHECK_OK(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f));
  CHECK(f && f->n == 1 && f->has_crc == 0);
  kl_model_file_free(f);
  n = foreign_file(file, "{\"__metadata__\":{\"kl.header_crc32\":\"00000000\"}," F_A "}",
                   data, 8);
  CHECK_ERR(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f),
            KL_EFORMAT, "load_weights: w.st: header crc mismatch");
  /* sizes of the converted dtypes, unknown dtypes, and sparse parts that are not F32/F64/I64 */
  n = foreign_file(file, "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,6]}}",
                   data, 6);
  CHECK_ERR(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f),
            KL_EFORMAT, "load_weights: w.st: tensor 'h': data_offsets [0, 6] hold 6 bytes, "
                        "shape and dtype need 8");
  n = foreign_file(file, "{\"q\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                   data, 8);
  CHECK_ERR(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f),
            KL_EFORMAT, "load_weights: w.st: tensor 'q': unknown dtype \"F128\"");
  n = foreign_file(file,
                   "{\"__metadata__\":{\"kl.sparse:s\":\"{\\\"stype\\\":\\\"row_sparse\\\","
                   "\\\"shape\\\":[3]}\"},"
                   "\"s.data\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[8,10]},"
                   "\"s.indices\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                   data, 10);
  CHECK_ERR(kl_model_file_parse_ex("w.st", file, n, KL_MF_FOREIGN, "load_weights", &f),
            KL_EFORMAT, "load_weights: w.st: sparse tensor 's': part 's.data' has dtype F16");
  CHECK_ERR(kl_model_file_load_ex(tpath("none.st"), KL_MF_FOREIGN, "load_weights", &f), KL_EIO,
            "load_weights: ");
}

/* ------------------------------------------------------------ allocation failures */

static void test_alloc_failures(void) {
  const char *p = tpath("oom.kl");
  CHECK_OK(kl_model_file_save(p, NT, NAMES, (const kl_tensor *const *)T, 3, MKEYS, MVALS));
  size_t len0;
  unsigned char *before = read_all(p, &len0);
  int save_fail = 0, load_fail = 0;
  for (long k = 1; k < 100000; k++) {
    kl_alloc_fail_at(k);
    kl_status s = kl_model_file_save(p, 4, NAMES, (const kl_tensor *const *)T, 1, MKEYS, MVALS);
    kl_alloc_fail_at(0);
    if (s == KL_OK) break;
    save_fail++;
    CHECK(s == KL_ENOMEM);
    size_t len;
    unsigned char *now = read_all(p, &len);
    CHECK(now && len == len0 && memcmp(now, before, len) == 0); /* untouched */
    free(now);
  }
  CHECK(save_fail >= 5);
  CHECK_OK(kl_model_file_save(p, NT, NAMES, (const kl_tensor *const *)T, 3, MKEYS, MVALS));
  for (long k = 1; k < 100000; k++) {
    kl_model_file *f = NULL;
    kl_alloc_fail_at(k);
    kl_status s = kl_model_file_load(p, &f);
    kl_alloc_fail_at(0);
    if (s == KL_OK) {
      check_loaded(f);
      kl_model_file_free(f);
      break;
    }
    load_fail++;
    CHECK(s == KL_ENOMEM && f == NULL);
  }
  CHECK(load_fail >= 20);
  free(before);
}

/* ------------------------------------------------------------ Python reads it */

static void test_python_reads(void) {
  if (access("/usr/bin/python3", X_OK) != 0 ||
      system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
    printf("SKIP python: /usr/bin/python3 with numpy not found\n");
    return;
  }
  const char *p = tpath("py.kl");
  CHECK_OK(kl_model_file_save(p, NT, NAMES, (const kl_tensor *const *)T, 3, MKEYS, MVALS));
  const char *script = tpath("read.py");
  FILE *f = fopen(script, "w");
  fprintf(f,
          "import json, struct, sys, zlib\n"
          "import numpy as np\n"
          "raw = open(sys.argv[1], 'rb').read()\n"
          "(n,) = struct.unpack('<Q', raw[:8])\n"
          "hdr = json.loads(raw[8:8 + n])\n"
          "meta = hdr.pop('__metadata__')\n"
          "data = raw[8 + n:]\n"
          "types = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64}\n"
          "arr = {}\n"
          "for name, e in hdr.items():\n"
          "    b, en = e['data_offsets']\n"
          "    assert '%%08x' %% zlib.crc32(data[b:en]) == meta['kl.crc32:' + name], name\n"
          "    arr[name] = np.frombuffer(data[b:en], dtype=types[e['dtype']]).reshape(e['shape'])\n"
          "k = arr['dense_1/kernel']\n"
          "want = np.array([float.fromhex(x) for x in sys.argv[2:8]], dtype=np.float32).reshape(2, 3)\n"
          "assert k.dtype == np.float32 and k.shape == (2, 3) and (k == want).all(), k\n"
          "assert arr['scalar64'].shape == () and arr['scalar64'] == 1.0 / 3.0\n"
          "assert arr['ids'][1, 2, 3] == 23 * -123456789012\n"
          "assert json.loads(meta['kl.sparse:csr32'])['stype'] == 'csr'\n"
          "d = np.zeros(json.loads(meta['kl.sparse:csr32'])['shape'], dtype=np.float32)\n"
          "ptr, ind, val = arr['csr32.indptr'], arr['csr32.indices'], arr['csr32.data']\n"
          "for r in range(d.shape[0]):\n"
          "    d[r, ind[ptr[r]:ptr[r + 1]]] = val[ptr[r]:ptr[r + 1]]\n"
          "print(repr(float(d.sum())))\n"
          "assert meta['note'] == 'tab\\there \"quoted\" back\\\\slash\\nnewline'\n"
          "print('PYTHON_OK')\n");
  fclose(f);
  char cmd[2048];
  int o = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, p);
  for (int i = 0; i < 6; i++)
    o += snprintf(cmd + o, sizeof cmd - (size_t)o, " %a", (double)((float *)T[0]->data)[i]);
  snprintf(cmd + o, sizeof cmd - (size_t)o, " > %s 2>&1", tpath("py.out"));
  int rc = system(cmd);
  size_t len = 0;
  unsigned char *out = read_all(tpath("py.out"), &len);
  CHECK(rc == 0 && out && strstr((char *)out, "PYTHON_OK"));
  if (rc != 0 && out) fprintf(stderr, "python said: %.*s\n", (int)len, (char *)out);
  /* the csr sum python printed equals ours */
  if (out) {
    double ours = 0;
    for (int64_t i = 0; i < T[5]->nnz; i++) ours += ((float *)T[5]->data)[i];
    CHECK_NEAR(strtod((char *)out, NULL), ours, 1e-6);
  }
  free(out);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/kl_test_model_file_XXXXXX");
  if (!mkdtemp(tmpdir)) return 2;
  make_tensors();
  test_round_trip();
  test_save_errors();
  test_truncation_and_flips();
  test_bad_headers();
  test_alignment();
  test_foreign();
  test_alloc_failures();
  test_python_reads();
  test_no_temp_left();
  for (int i = 0; i < NT; i++) kl_tensor_release(T[i]);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  KLTEST_DONE();
}
