/* model_file_read.c: kl_model_file_load/parse: every length, offset and CRC is checked
 * before any tensor is built (safetensors layout, see kl/model_file.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mf_internal.h"
#include "mf_json.h"

/* One header entry after validation. owner >= 0: a part of sparse tensor #owner. */
typedef struct rd_entry {
  const char *name;
  kl_dtype dtype;
  int ndim;
  int64_t shape[KL_MAX_NDIM];
  uint64_t begin, end;
  int owner;
  int conv;        /* RD_AS_IS, RD_F16, RD_BF16 (read as float32) or RD_SKIP */
  const char *tag; /* the file's dtype tag */
} rd_entry;

enum { RD_AS_IS, RD_F16, RD_BF16, RD_SKIP };

/* The safetensors dtypes keras-lua does not hold, with their element sizes (KL_MF_FOREIGN). */
static const struct { const char *tag; int size, conv; } FOREIGN_TAGS[] = {
    {"F16", 2, RD_F16}, {"BF16", 2, RD_BF16}, {"BOOL", 1, RD_SKIP},   {"U8", 1, RD_SKIP},
    {"I8", 1, RD_SKIP}, {"I16", 2, RD_SKIP},  {"U16", 2, RD_SKIP},    {"I32", 4, RD_SKIP},
    {"U32", 4, RD_SKIP}, {"U64", 8, RD_SKIP}, {"F8_E5M2", 1, RD_SKIP}, {"F8_E4M3", 1, RD_SKIP}};

/* A sparse tensor described in __metadata__. */
typedef struct rd_sparse {
  const char *name;
  kl_stype stype;
  int ndim;
  int64_t shape[KL_MAX_NDIM];
  int part[3]; /* entries: data, indices, indptr (csr) */
  int emitted;
} rd_sparse;

typedef struct rd_ctx {
  const char *label;
  const char *fn; /* the caller's name in messages */
  int flags;      /* KL_MF_FOREIGN */
  int strict_crc; /* every entry must have its CRC (a keras-lua file) */
  const unsigned char *data; /* the data area */
  uint64_t data_len;
  mj_value root;
  const mj_value *meta;
  rd_entry *e;
  int m;
  rd_sparse *sp;
  int nsp;
} rd_ctx;

static kl_status ferr(const rd_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static kl_status ferr(const rd_ctx *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return kl_seterr(KL_EFORMAT, "%s: %s: %s", c->fn, c->label, msg);
}

static int parse_hex8(const mj_value *v, uint32_t *out) {
  if (!v || v->type != MJ_STRING || v->slen != 8 || v->raw_len != 8) return 0;
  uint32_t x = 0;
  for (int k = 0; k < 8; k++) {
    char ch = v->str[k];
    int h = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (h < 0) return 0;
    x = x * 16 + (uint32_t)h;
  }
  *out = x;
  return 1;
}

/* The header's own checksum: its 8 digits read as "00000000". */
static kl_status check_header_crc(rd_ctx *c, const char *hdr, size_t hlen) {
  const mj_value *v = mj_get(c->meta, KL_MF_KEY_HEADER_CRC);
  uint32_t want;
  if (!v) return ferr(c, "missing '%s' in __metadata__", KL_MF_KEY_HEADER_CRC);
  if (!parse_hex8(v, &want))
    return ferr(c, "'%s' is not 8 lowercase hex digits", KL_MF_KEY_HEADER_CRC);
  char *copy = kl_malloc(hlen);
  if (!copy) return KL_ENOMEM;
  memcpy(copy, hdr, hlen);
  memset(copy + v->pos + 1, '0', 8);
  uint32_t got = kl_crc32(copy, hlen);
  kl_free(copy);
  if (got != want) return ferr(c, "header crc mismatch (stored %08lx, computed %08lx)",
                               (unsigned long)want, (unsigned long)got);
  return KL_OK;
}

/* A shape array: dims >= 0, rank <= KL_MAX_NDIM, numel <= KL_MAX_NUMEL (no overflow). */
static kl_status read_shape(const rd_ctx *c, const char *what, const char *name,
                            const mj_value *v, int *ndim, int64_t *shape) {
  if (!v || v->type != MJ_ARRAY) return ferr(c, "%s '%s': shape must be an array", what, name);
  if (v->n > KL_MAX_NDIM)
    return ferr(c, "%s '%s': shape has %d dims (at most %d)", what, name, v->n, KL_MAX_NDIM);
  int64_t numel = 1;
  for (int d = 0; d < v->n; d++) {
    const mj_value *x = &v->items[d];
    if (x->type != MJ_INT) return ferr(c, "%s '%s': shape[%d] is not an integer", what, name, d);
    if (x->ival < 0)
      return ferr(c, "%s '%s': shape[%d] = %lld is negative", what, name, d, (long long)x->ival);
    if (x->ival > 0 && numel > KL_MAX_NUMEL / x->ival)
      return ferr(c, "%s '%s': shape has more than 2^48 elements", what, name);
    numel *= x->ival;
    shape[d] = x->ival;
  }
  *ndim = v->n;
  return KL_OK;
}

static kl_status read_entry(rd_ctx *c, const char *name, const mj_value *v, rd_entry *e) {
  e->name = name;
  e->owner = -1;
  if (v->type != MJ_OBJECT) return ferr(c, "tensor '%s': entry must be an object", name);
  for (int k = 0; k < v->n; k++)
    if (strcmp(v->keys[k], "dtype") && strcmp(v->keys[k], "shape") &&
        strcmp(v->keys[k], "data_offsets"))
      return ferr(c, "tensor '%s': unknown field '%s'", name, v->keys[k]);
  const mj_value *dt = mj_get(v, "dtype"), *off = mj_get(v, "data_offsets");
  if (!dt || dt->type != MJ_STRING) return ferr(c, "tensor '%s': dtype must be a string", name);
  uint64_t esize = 0;
  e->tag = dt->str;
  e->conv = RD_AS_IS;
  if (kl_mf_parse_tag(dt->str, &e->dtype)) {
    esize = kl_dtype_size(e->dtype);
  } else if (c->flags & KL_MF_FOREIGN) {
    for (size_t k = 0; k < sizeof FOREIGN_TAGS / sizeof *FOREIGN_TAGS && !esize; k++)
      if (strcmp(dt->str, FOREIGN_TAGS[k].tag) == 0) {
        esize = (uint64_t)FOREIGN_TAGS[k].size;
        e->conv = FOREIGN_TAGS[k].conv;
        e->dtype = KL_FLOAT32;
      }
  }
  if (!esize) return ferr(c, "tensor '%s': unknown dtype \"%.20s\"", name, dt->str);
  KL_TRY(read_shape(c, "tensor", name, mj_get(v, "shape"), &e->ndim, e->shape));
  if (!off || off->type != MJ_ARRAY || off->n != 2 || off->items[0].type != MJ_INT ||
      off->items[1].type != MJ_INT)
    return ferr(c, "tensor '%s': data_offsets must be [begin, end]", name);
  int64_t b = off->items[0].ival, en = off->items[1].ival;
  if (b < 0 || en < b)
    return ferr(c, "tensor '%s': bad data_offsets [%lld, %lld]", name, (long long)b,
                (long long)en);
  if ((uint64_t)en > c->data_len)
    return ferr(c, "tensor '%s': data_offsets end %lld beyond the data area (%llu bytes)", name,
                (long long)en, (unsigned long long)c->data_len);
  uint64_t want = (uint64_t)kl_shape_numel(e->ndim, e->shape) * esize;
  if ((uint64_t)(en - b) != want)
    return ferr(c, "tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, shape and dtype need %llu",
                name, (long long)b, (long long)en, (long long)(en - b), (unsigned long long)want);
  e->begin = (uint64_t)b;
  e->end = (uint64_t)en;
  return KL_OK;
}

static int cmp_begin(const void *a, const void *b) {
  const rd_entry *x = *(rd_entry *const *)a, *y = *(rd_entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* The entries tile the data area exactly: from 0, no overlap, no gap, nothing after. */
static kl_status check_layout(rd_ctx *c) {
  rd_entry **order = kl_malloc_n((size_t)c->m + 1, sizeof *order);
  if (!order) return KL_ENOMEM;
  for (int i = 0; i < c->m; i++) order[i] = &c->e[i];
  qsort(order, (size_t)c->m, sizeof *order, cmp_begin);
  uint64_t at = 0;
  kl_status s = KL_OK;
  for (int i = 0; i < c->m && s == KL_OK; i++) {
    if (order[i]->begin < at)
      s = ferr(c, "tensor '%s' data_offsets [%llu, %llu] overlap tensor '%s'", order[i]->name,
               (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end,
               order[i - 1]->name);
    else if (order[i]->begin > at)
      s = ferr(c, "gap of %llu bytes before tensor '%s'",
               (unsigned long long)(order[i]->begin - at), order[i]->name);
    at = order[i]->end;
  }
  if (s == KL_OK && at != c->data_len)
    s = ferr(c, "data area holds %llu bytes but the tensors cover %llu",
             (unsigned long long)c->data_len, (unsigned long long)at);
  kl_free(order);
  return s;
}

static int find_entry(const rd_ctx *c, const char *name) {
  for (int i = 0; i < c->m; i++)
    if (strcmp(c->e[i].name, name) == 0) return i;
  return -1;
}

/* Every entry has its CRC, every CRC key names an entry, and they all match. */
static kl_status check_crcs(rd_ctx *c) {
  size_t pl = strlen(KL_MF_PREFIX_CRC);
  for (int k = 0; k < c->meta->n; k++) {
    const char *key = c->meta->keys[k];
    if (strncmp(key, KL_MF_PREFIX_CRC, pl) == 0 && find_entry(c, key + pl) < 0)
      return ferr(c, "crc32 given for unknown tensor '%s'", key + pl);
  }
  for (int i = 0; i < c->m; i++) {
    const mj_value *v = NULL;
    for (int k = 0; k < c->meta->n && !v; k++)
      if (strncmp(c->meta->keys[k], KL_MF_PREFIX_CRC, pl) == 0 &&
          strcmp(c->meta->keys[k] + pl, c->e[i].name) == 0)
        v = &c->meta->items[k];
    uint32_t want;
    if (!v && !c->strict_crc) continue;
    if (!v) return ferr(c, "missing crc32 for tensor '%s'", c->e[i].name);
    if (!parse_hex8(v, &want))
      return ferr(c, "crc32 of tensor '%s' is not 8 lowercase hex digits", c->e[i].name);
    uint32_t got = kl_crc32(c->data + c->e[i].begin, (size_t)(c->e[i].end - c->e[i].begin));
    if (got != want) return ferr(c, "crc mismatch for tensor '%s'", c->e[i].name);
  }
  return KL_OK;
}

/* Checks one part of sparse tensor sp: present, dtype, shape. */
static kl_status sparse_part(rd_ctx *c, rd_sparse *sp, int slot, const char *suffix,
                             int want_int64, int ndim, const int64_t *shape) {
  size_t a = strlen(sp->name), b = strlen(suffix);
  char *full = kl_malloc(a + b + 1);
  if (!full) return KL_ENOMEM;
  memcpy(full, sp->name, a);
  memcpy(full + a, suffix, b + 1);
  int i = find_entry(c, full);
  kl_free(full);
  if (i < 0) return ferr(c, "sparse tensor '%s': missing part '%s%s'", sp->name, sp->name, suffix);
  rd_entry *e = &c->e[i];
  if (e->owner >= 0) return ferr(c, "tensor '%s' belongs to two sparse tensors", e->name);
  if (e->conv != RD_AS_IS)
    return ferr(c, "sparse tensor '%s': part '%s' has dtype %.20s (F32, F64 or I64 expected)",
                sp->name, e->name, e->tag);
  e->owner = (int)(sp - c->sp);
  sp->part[slot] = i;
  if (want_int64 && e->dtype != KL_INT64)
    return ferr(c, "sparse tensor '%s': part '%s' must be I64", sp->name, e->name);
  int ok = e->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || e->shape[d] == shape[d];
  if (!ok) return ferr(c, "sparse tensor '%s': part '%s' has the wrong shape", sp->name, e->name);
  return KL_OK;
}

static kl_status read_sparse(rd_ctx *c, const char *name, const mj_value *v, rd_sparse *sp) {
  char err[160];
  mj_value d;
  sp->name = name;
  sp->part[0] = sp->part[1] = sp->part[2] = -1;
  if (v->type != MJ_STRING) return ferr(c, "sparse tensor '%s': description must be a string", name);
  kl_status s = mj_parse(v->str, v->slen, &d, err, sizeof err);
  if (s == KL_ENOMEM) return s;
  if (s != KL_OK) return ferr(c, "sparse tensor '%s': description: %s", name, err);
  const mj_value *st = mj_get(&d, "stype");
  if (d.type != MJ_OBJECT || d.n != 2 || !st || st->type != MJ_STRING)
    s = ferr(c, "sparse tensor '%s': description must be {\"stype\":..., \"shape\":[...]}", name);
  else if (strcmp(st->str, "csr") == 0)
    sp->stype = KL_STYPE_CSR;
  else if (strcmp(st->str, "row_sparse") == 0)
    sp->stype = KL_STYPE_ROW_SPARSE;
  else
    s = ferr(c, "sparse tensor '%s': unknown stype \"%.20s\"", name, st->str);
  if (s == KL_OK) s = read_shape(c, "sparse tensor", name, mj_get(&d, "shape"), &sp->ndim, sp->shape);
  if (s == KL_OK && sp->stype == KL_STYPE_CSR && sp->ndim != 2)
    s = ferr(c, "sparse tensor '%s': a csr tensor must be 2-d (got %d dims)", name, sp->ndim);
  if (s == KL_OK && sp->stype == KL_STYPE_ROW_SPARSE && sp->ndim < 1)
    s = ferr(c, "sparse tensor '%s': a row_sparse tensor must have at least 1 dim", name);
  mj_free(&d);
  if (s != KL_OK) return s;
  int64_t sh[KL_MAX_NDIM];
  if (sp->stype == KL_STYPE_CSR) {
    sh[0] = -1;
    KL_TRY(sparse_part(c, sp, 0, ".data", 0, 1, sh));
    sh[0] = c->e[sp->part[0]].shape[0];
    KL_TRY(sparse_part(c, sp, 1, ".indices", 1, 1, sh));
    sh[0] = sp->shape[0] + 1;
    return sparse_part(c, sp, 2, ".indptr", 1, 1, sh);
  }
  memcpy(sh, sp->shape, sizeof sh);
  sh[0] = -1;
  KL_TRY(sparse_part(c, sp, 0, ".data", 0, sp->ndim, sh));
  sh[0] = c->e[sp->part[0]].shape[0];
  return sparse_part(c, sp, 1, ".indices", 1, 1, sh);
}

/* __metadata__: string values only; reserved keys known; sparse descriptions read. */
static kl_status read_meta(rd_ctx *c) {
  size_t pc = strlen(KL_MF_PREFIX_CRC), ps = strlen(KL_MF_PREFIX_SPARSE);
  int nsp = 0;
  if (!c->meta) { /* a foreign file without __metadata__ */
    c->sp = kl_calloc(1, sizeof *c->sp);
    return c->sp ? KL_OK : KL_ENOMEM;
  }
  for (int k = 0; k < c->meta->n; k++) {
    const char *key = c->meta->keys[k];
    if (c->meta->items[k].type != MJ_STRING)
      return ferr(c, "__metadata__ value of '%s' is not a string", key);
    if (strncmp(key, "kl.", 3) != 0 || strncmp(key, KL_MF_PREFIX_CRC, pc) == 0 ||
        strcmp(key, KL_MF_KEY_HEADER_CRC) == 0)
      continue;
    if (strncmp(key, KL_MF_PREFIX_SPARSE, ps) == 0) nsp++;
    else if (strcmp(key, KL_MF_KEY_FORMAT) == 0) {
      if (strcmp(c->meta->items[k].str, KL_MF_FORMAT_VERSION) != 0)
        return ferr(c, "unknown format \"%.40s\" (expected \"%s\")", c->meta->items[k].str,
                    KL_MF_FORMAT_VERSION);
    } else
      return ferr(c, "unknown reserved metadata key '%s'", key);
  }
  c->sp = kl_calloc((size_t)nsp + 1, sizeof *c->sp);
  if (!c->sp) return KL_ENOMEM;
  for (int k = 0; k < c->meta->n; k++)
    if (strncmp(c->meta->keys[k], KL_MF_PREFIX_SPARSE, ps) == 0) {
      KL_TRY(read_sparse(c, c->meta->keys[k] + ps, &c->meta->items[k], &c->sp[c->nsp]));
      c->nsp++;
    }
  return KL_OK;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = kl_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static kl_status build_sparse(rd_ctx *c, const rd_sparse *sp, kl_tensor **out) {
  const rd_entry *dat = &c->e[sp->part[0]], *ind = &c->e[sp->part[1]];
  int64_t nnz = dat->shape[0];
  kl_status s = sp->stype == KL_STYPE_CSR
                    ? kl_tensor_new_csr(dat->dtype, sp->shape[0], sp->shape[1], nnz, out)
                    : kl_tensor_new_rsp(dat->dtype, sp->ndim, sp->shape, nnz, out);
  if (s == KL_ENOMEM) return s;
  if (s != KL_OK) { /* a shape or count the constructor refuses: the file is malformed */
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kl_errmsg());
    return ferr(c, "sparse tensor '%s': %s", sp->name, msg);
  }
  memcpy((*out)->data, c->data + dat->begin, (size_t)(dat->end - dat->begin));
  memcpy((*out)->indices, c->data + ind->begin, (size_t)(ind->end - ind->begin));
  if (sp->stype == KL_STYPE_CSR) {
    const rd_entry *ptr = &c->e[sp->part[2]];
    memcpy((*out)->indptr, c->data + ptr->begin, (size_t)(ptr->end - ptr->begin));
  }
  if (kl_tensor_check_format(*out, "check_format", 0) != KL_OK) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kl_errmsg());
    return ferr(c, "sparse tensor '%s': %s", sp->name, msg);
  }
  return KL_OK;
}

/* IEEE half (binary16) and bfloat16 bits to float32: exact (every value is a float). */
static float half_to_float(uint16_t h) {
  const int ex = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (ex == 0) v = ldexpf((float)man, -24); /* zero or subnormal */
  else if (ex == 31) v = man ? NAN : INFINITY;
  else v = ldexpf((float)(man | 0x400), ex - 25);
  return (h & 0x8000) ? -v : v;
}

static float bf16_to_float(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* A dense tensor from entry e (F16 / BF16 widened to float32). */
static kl_status build_dense(const rd_ctx *c, const rd_entry *e, kl_tensor **slot) {
  KL_TRY(kl_tensor_new_dense(e->dtype, e->ndim, e->shape, slot));
  const unsigned char *src = c->data + e->begin;
  if (e->conv == RD_AS_IS) {
    memcpy((*slot)->data, src, (size_t)(e->end - e->begin));
    return KL_OK;
  }
  float *dst = (*slot)->data;
  const int64_t n = kl_shape_numel(e->ndim, e->shape);
  for (int64_t k = 0; k < n; k++) {
    uint16_t h = (uint16_t)(src[2 * k] | (src[2 * k + 1] << 8));
    dst[k] = e->conv == RD_F16 ? half_to_float(h) : bf16_to_float(h);
  }
  return KL_OK;
}

/* Builds the result in header order; a sparse tensor takes the place of its first part. */
static kl_status build(rd_ctx *c, kl_model_file *f) {
  int cap = c->m + 1, nmeta = c->meta ? c->meta->n : 0;
  f->names = kl_calloc((size_t)cap, sizeof *f->names);
  f->tensors = kl_calloc((size_t)cap, sizeof *f->tensors);
  f->skipped = kl_calloc((size_t)cap, sizeof *f->skipped);
  f->skipped_dtypes = kl_calloc((size_t)cap, sizeof *f->skipped_dtypes);
  f->keys = kl_calloc((size_t)nmeta + 1, sizeof *f->keys);
  f->values = kl_calloc((size_t)nmeta + 1, sizeof *f->values);
  if (!f->names || !f->tensors || !f->keys || !f->values || !f->skipped || !f->skipped_dtypes)
    return KL_ENOMEM;
  f->has_crc = c->meta && mj_get(c->meta, KL_MF_KEY_HEADER_CRC) != NULL;
  for (int i = 0; i < c->m; i++) {
    rd_entry *e = &c->e[i];
    kl_tensor **slot = &f->tensors[f->n];
    if (e->conv == RD_SKIP) {
      f->skipped[f->nskipped] = dup_str(e->name);
      f->skipped_dtypes[f->nskipped] = f->skipped[f->nskipped] ? dup_str(e->tag) : NULL;
      if (!f->skipped[f->nskipped]) return KL_ENOMEM;
      f->nskipped++;
      if (!f->skipped_dtypes[f->nskipped - 1]) return KL_ENOMEM;
      continue;
    }
    if (e->owner >= 0) {
      rd_sparse *sp = &c->sp[e->owner];
      if (sp->emitted) continue;
      sp->emitted = 1;
      if (!(f->names[f->n] = dup_str(sp->name))) return KL_ENOMEM;
      f->n++;
      KL_TRY(build_sparse(c, sp, slot));
      continue;
    }
    if (!(f->names[f->n] = dup_str(e->name))) return KL_ENOMEM;
    f->n++;
    KL_TRY(build_dense(c, e, slot));
  }
  for (int k = 0; k < nmeta; k++) {
    if (strncmp(c->meta->keys[k], "kl.", 3) == 0) continue;
    f->keys[f->nmeta] = dup_str(c->meta->keys[k]);
    f->values[f->nmeta] = f->keys[f->nmeta] ? dup_str(c->meta->items[k].str) : NULL;
    if (!f->keys[f->nmeta]) return KL_ENOMEM;
    f->nmeta++;
    if (!f->values[f->nmeta - 1]) return KL_ENOMEM;
  }
  return KL_OK;
}

void kl_model_file_free(kl_model_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) {
    kl_free(f->names[i]);
    kl_tensor_release(f->tensors[i]);
  }
  for (int i = 0; i < f->nmeta; i++) {
    kl_free(f->keys[i]);
    kl_free(f->values[i]);
  }
  kl_free(f->names);
  kl_free(f->tensors);
  for (int i = 0; i < f->nskipped; i++) {
    kl_free(f->skipped[i]);
    kl_free(f->skipped_dtypes[i]);
  }
  kl_free(f->keys);
  kl_free(f->values);
  kl_free(f->skipped);
  kl_free(f->skipped_dtypes);
  kl_free(f);
}

static kl_status parse_checked(rd_ctx *c, const unsigned char *buf, size_t len) {
  char err[200];
  if (!kl_mf_little_endian())
    return kl_seterr(KL_EUNSUPPORTED, "%s: %s: big-endian hosts are not supported", c->fn,
                     c->label);
  if (len < 8) return ferr(c, "file is %zu bytes, too short for the 8-byte header length", len);
  uint64_t h = 0;
  for (int k = 7; k >= 0; k--) h = (h << 8) | buf[k];
  if (h > (uint64_t)len - 8)
    return ferr(c, "header length %llu exceeds file size %zu", (unsigned long long)h, len);
  if (h > KL_MF_MAX_HEADER)
    return ferr(c, "header length %llu exceeds the limit of %llu bytes", (unsigned long long)h,
                (unsigned long long)KL_MF_MAX_HEADER);
  c->data = buf + 8 + h;
  c->data_len = (uint64_t)len - 8 - h;
  const char *hdr = (const char *)buf + 8;
  kl_status s = mj_parse(hdr, (size_t)h, &c->root, err, sizeof err);
  if (s == KL_ENOMEM) return s;
  if (s != KL_OK) return ferr(c, "header: %s", err);
  if (c->root.type != MJ_OBJECT)
    return ferr(c, "header must be a JSON object (got %s)", mj_type_name(c->root.type));
  c->meta = mj_get(&c->root, KL_MF_META);
  const int foreign = (c->flags & KL_MF_FOREIGN) != 0;
  if (!c->meta && !foreign) return ferr(c, "missing __metadata__ (the file has no checksums)");
  if (c->meta && c->meta->type != MJ_OBJECT) return ferr(c, "__metadata__ must be an object");
  /* a keras-lua file (or any file with its header checksum) is checked in full */
  c->strict_crc = !foreign || (c->meta && mj_get(c->meta, KL_MF_KEY_HEADER_CRC) != NULL);
  if (c->strict_crc) KL_TRY(check_header_crc(c, hdr, (size_t)h));
  c->e = kl_calloc((size_t)c->root.n + 1, sizeof *c->e);
  if (!c->e) return KL_ENOMEM;
  for (int k = 0; k < c->root.n; k++) {
    if (&c->root.items[k] == c->meta) continue;
    KL_TRY(read_entry(c, c->root.keys[k], &c->root.items[k], &c->e[c->m]));
    c->m++;
  }
  KL_TRY(check_layout(c));
  KL_TRY(read_meta(c));
  return c->meta ? check_crcs(c) : KL_OK;
}

kl_status kl_model_file_parse(const char *label, const unsigned char *buf, size_t len,
                              kl_model_file **out) {
  return kl_model_file_parse_ex(label, buf, len, 0, NULL, out);
}

kl_status kl_model_file_parse_ex(const char *label, const unsigned char *buf, size_t len,
                                 int flags, const char *fn, kl_model_file **out) {
  rd_ctx c;
  memset(&c, 0, sizeof c);
  c.label = label ? label : "(buffer)";
  c.fn = fn ? fn : "load_model";
  c.flags = flags;
  *out = NULL;
  kl_model_file *f = NULL;
  kl_status s = parse_checked(&c, buf, len);
  if (s == KL_OK) {
    f = kl_calloc(1, sizeof *f);
    s = f ? build(&c, f) : KL_ENOMEM;
  }
  if (s == KL_OK) {
    *out = f;
    f = NULL;
  }
  kl_model_file_free(f);
  mj_free(&c.root);
  kl_free(c.e);
  kl_free(c.sp);
  return s;
}

kl_status kl_model_file_load(const char *path, kl_model_file **out) {
  return kl_model_file_load_ex(path, 0, NULL, out);
}

kl_status kl_model_file_load_ex(const char *path, int flags, const char *fn,
                                kl_model_file **out) {
  *out = NULL;
  if (!fn) fn = "load_model";
  KL_CHECK(path && *path, KL_EINVAL, "%s: path must be a non-empty string", fn);
  unsigned char *buf = NULL;
  struct stat st;
  kl_status s = KL_OK;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return kl_seterr(KL_EIO, "%s: %s: cannot open: %s", fn, path, strerror(errno));
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    s = kl_seterr(KL_EIO, "%s: %s: not a regular file", fn, path);
    goto done;
  }
  size_t len = (size_t)st.st_size, got = 0;
  buf = kl_malloc(len + 1);
  if (!buf) { s = KL_ENOMEM; goto done; }
  while (got < len) {
    ssize_t r = read(fd, buf + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      s = kl_seterr(KL_EIO, "%s: %s: read failed after %zu of %zu bytes%s%s", fn, path, got,
                    len, r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
      goto done;
    }
    got += (size_t)r;
  }
  s = kl_model_file_parse_ex(path, buf, len, flags, fn, out);
done:
  close(fd);
  kl_free(buf);
  return s;
}
