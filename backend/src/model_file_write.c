/* model_file_write.c: kl_model_file_save: the safetensors header and the atomic write. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mf_internal.h"

/* One stored entry: a dense tensor, or one part of a sparse one. */
typedef struct mf_entry {
  char *name;
  kl_dtype dtype;
  int ndim;
  int64_t shape[KL_MAX_NDIM];
  const void *bytes;
  size_t nbytes;
  uint32_t crc;
  uint64_t off; /* in the data area (layout_entries) */
} mf_entry;

/* A growable text buffer. */
typedef struct mf_buf {
  char *p;
  size_t len, cap;
} mf_buf;

static kl_status buf_put(mf_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (b->len + n + 1 > nc) nc *= 2;
    char *np = kl_realloc(b->p, nc);
    if (!np) return KL_ENOMEM;
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return KL_OK;
}

static kl_status buf_puts(mf_buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

static kl_status buf_printf(mf_buf *b, const char *fmt, long long v) {
  char tmp[32];
  int k = snprintf(tmp, sizeof tmp, fmt, v);
  return buf_put(b, tmp, (size_t)k);
}

/* prefix + s as one JSON string literal: quotes, backslashes and control bytes of s
 * escaped, other bytes as they are (prefix is plain ASCII). */
static kl_status buf_json_string2(mf_buf *b, const char *prefix, const char *s) {
  KL_TRY(buf_put(b, "\"", 1));
  KL_TRY(buf_puts(b, prefix));
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    char esc[8];
    if (*c == '"' || *c == '\\') {
      esc[0] = '\\'; esc[1] = (char)*c;
      KL_TRY(buf_put(b, esc, 2));
    } else if (*c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *c);
      KL_TRY(buf_put(b, esc, 6));
    } else {
      KL_TRY(buf_put(b, (const char *)c, 1));
    }
  }
  return buf_put(b, "\"", 1);
}

static kl_status buf_json_string(mf_buf *b, const char *s) { return buf_json_string2(b, "", s); }

static kl_status entry_name(mf_entry *e, const char *base, const char *suffix) {
  size_t a = strlen(base), s = strlen(suffix);
  e->name = kl_malloc(a + s + 1);
  if (!e->name) return KL_ENOMEM;
  memcpy(e->name, base, a);
  memcpy(e->name + a, suffix, s + 1);
  return KL_OK;
}

static void entry_set(mf_entry *e, kl_dtype d, int ndim, const int64_t *shape, const void *p) {
  e->dtype = d;
  e->ndim = ndim;
  memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
  e->bytes = p;
  e->nbytes = (size_t)kl_shape_numel(ndim, shape) * kl_dtype_size(d);
}

/* Expands tensor t named name into 1 (dense), 2 (row_sparse) or 3 (csr) entries at e. */
static kl_status expand(const char *path, const char *name, const kl_tensor *t, mf_entry *e,
                        int *count) {
  int64_t sh[KL_MAX_NDIM];
  if (t->stype == KL_STYPE_DEFAULT) {
    *count = 1;
    KL_TRY(entry_name(&e[0], name, ""));
    entry_set(&e[0], t->dtype, t->ndim, t->shape, t->data);
    return KL_OK;
  }
  if (t->stype == KL_STYPE_CSR) {
    *count = 3;
    KL_TRY(entry_name(&e[0], name, ".data"));
    KL_TRY(entry_name(&e[1], name, ".indices"));
    KL_TRY(entry_name(&e[2], name, ".indptr"));
    sh[0] = t->nnz;
    entry_set(&e[0], t->dtype, 1, sh, t->data);
    entry_set(&e[1], KL_INT64, 1, sh, t->indices);
    sh[0] = t->shape[0] + 1;
    entry_set(&e[2], KL_INT64, 1, sh, t->indptr);
    return KL_OK;
  }
  if (t->stype == KL_STYPE_ROW_SPARSE) {
    *count = 2;
    KL_TRY(entry_name(&e[0], name, ".data"));
    KL_TRY(entry_name(&e[1], name, ".indices"));
    memcpy(sh, t->shape, sizeof sh);
    sh[0] = t->nnz;
    entry_set(&e[0], t->dtype, t->ndim, sh, t->data);
    entry_set(&e[1], KL_INT64, 1, sh, t->indices);
    return KL_OK;
  }
  return kl_seterr(KL_EINVAL, "save_model: %s: tensor '%s' has an unknown stype", path, name);
}

static kl_status check_args(const char *path, int n, const char *const *names,
                            const kl_tensor *const *tensors, int nmeta, const char *const *keys,
                            const char *const *values) {
  KL_CHECK(path && *path, KL_EINVAL, "save_model: path must be a non-empty string");
  KL_CHECK(n >= 0 && nmeta >= 0, KL_EINVAL, "save_model: %s: negative count", path);
  KL_CHECK(kl_mf_little_endian(), KL_EUNSUPPORTED,
           "save_model: %s: big-endian hosts are not supported", path);
  for (int i = 0; i < n; i++) {
    KL_CHECK(names && names[i] && names[i][0], KL_EINVAL,
             "save_model: %s: tensor %d has an empty name", path, i + 1);
    KL_CHECK(strcmp(names[i], KL_MF_META) != 0, KL_EINVAL,
             "save_model: %s: the name '%s' is reserved", path, KL_MF_META);
    KL_CHECK(tensors && tensors[i], KL_EINVAL, "save_model: %s: tensor '%s' is NULL", path,
             names[i]);
    KL_TRY(kl_tensor_check_format(tensors[i], "save_model", 0));
  }
  for (int i = 0; i < nmeta; i++) {
    KL_CHECK(keys && values && keys[i] && values[i], KL_EINVAL,
             "save_model: %s: metadata entry %d is NULL", path, i + 1);
    KL_CHECK(strncmp(keys[i], "kl.", 3) != 0, KL_EINVAL,
             "save_model: %s: metadata key '%s' is reserved (prefix 'kl.')", path, keys[i]);
    for (int j = 0; j < i; j++)
      KL_CHECK(strcmp(keys[i], keys[j]) != 0, KL_EINVAL,
               "save_model: %s: duplicate metadata key '%s'", path, keys[i]);
  }
  return KL_OK;
}

/* The header text (padded with spaces to a multiple of 8, header crc filled in). */
static kl_status build_header(const char *path, int n, const char *const *names,
                              const kl_tensor *const *tensors, const mf_entry *e, int m,
                              int nmeta, const char *const *keys, const char *const *values,
                              mf_buf *b) {
  char tmp[96];
  KL_TRY(buf_puts(b, "{"));
  for (int i = 0; i < m; i++) {
    KL_TRY(buf_json_string(b, e[i].name));
    KL_TRY(buf_puts(b, ":{\"dtype\":\""));
    KL_TRY(buf_puts(b, kl_mf_dtype_tag(e[i].dtype)));
    KL_TRY(buf_puts(b, "\",\"shape\":["));
    for (int d = 0; d < e[i].ndim; d++)
      KL_TRY(buf_printf(b, d ? ",%lld" : "%lld", (long long)e[i].shape[d]));
    KL_TRY(buf_printf(b, "],\"data_offsets\":[%lld,", (long long)e[i].off));
    KL_TRY(buf_printf(b, "%lld]},", (long long)(e[i].off + e[i].nbytes)));
  }
  KL_TRY(buf_puts(b, "\"" KL_MF_META "\":{"));
  for (int i = 0; i < nmeta; i++) {
    KL_TRY(buf_json_string(b, keys[i]));
    KL_TRY(buf_puts(b, ":"));
    KL_TRY(buf_json_string(b, values[i]));
    KL_TRY(buf_puts(b, ","));
  }
  for (int i = 0; i < n; i++) {
    const kl_tensor *t = tensors[i];
    if (t->stype == KL_STYPE_DEFAULT) continue;
    KL_TRY(buf_json_string2(b, KL_MF_PREFIX_SPARSE, names[i]));
    KL_TRY(buf_puts(b, ":"));
    KL_TRY(buf_puts(b, t->stype == KL_STYPE_CSR ? "\"{\\\"stype\\\":\\\"csr\\\",\\\"shape\\\":["
                                                 : "\"{\\\"stype\\\":\\\"row_sparse\\\",\\\"shape\\\":["));
    for (int d = 0; d < t->ndim; d++)
      KL_TRY(buf_printf(b, d ? ",%lld" : "%lld", (long long)t->shape[d]));
    KL_TRY(buf_puts(b, "]}\","));
  }
  for (int i = 0; i < m; i++) {
    KL_TRY(buf_json_string2(b, KL_MF_PREFIX_CRC, e[i].name));
    snprintf(tmp, sizeof tmp, ":\"%08lx\",", (unsigned long)e[i].crc);
    KL_TRY(buf_puts(b, tmp));
  }
  KL_TRY(buf_puts(b, "\"" KL_MF_KEY_FORMAT "\":\"" KL_MF_FORMAT_VERSION "\","));
  KL_TRY(buf_puts(b, "\"" KL_MF_KEY_HEADER_CRC "\":\""));
  size_t crc_at = b->len;
  KL_TRY(buf_puts(b, "00000000\"}}"));
  while (b->len % 8) KL_TRY(buf_put(b, " ", 1));
  snprintf(tmp, sizeof tmp, "%08lx", (unsigned long)kl_crc32(b->p, b->len));
  memcpy(b->p + crc_at, tmp, 8);
  (void)path;
  return KL_OK;
}

/* The data layout of safetensors' writer: entries by descending element size (8-byte
 * dtypes, then 4-byte ones), each group in the given order, back to back; as the data area
 * starts at a multiple of 8, every entry's offset is a multiple of its element size.
 * order[k] is the entry stored k-th. */
static void layout_entries(mf_entry *e, int m, int *order) {
  uint64_t off = 0;
  int k = 0;
  for (size_t esize = 8; esize >= 1; esize /= 2)
    for (int i = 0; i < m; i++)
      if (kl_dtype_size(e[i].dtype) == esize) {
        e[i].off = off;
        off += e[i].nbytes;
        order[k++] = i;
      }
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    size_t k = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t w = write(fd, c, k);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The temp-file template "dir/.base.tmp-XXXXXX" and the folder to fsync ("." or dir). */
static kl_status temp_names(const char *path, char **tmpl, char **dir) {
  const char *slash = strrchr(path, '/');
  size_t dlen = slash ? (size_t)(slash - path) : 0;
  const char *base = slash ? slash + 1 : path;
  if (!*base) return kl_seterr(KL_EINVAL, "save_model: %s: path names a folder", path);
  *tmpl = kl_malloc(strlen(path) + 16);
  *dir = kl_malloc(dlen + 2);
  if (!*tmpl || !*dir) return KL_ENOMEM;
  if (slash) {
    memcpy(*dir, path, dlen ? dlen : 1); /* "/x" -> "/" */
    (*dir)[dlen ? dlen : 1] = '\0';
    sprintf(*tmpl, "%.*s/.%s.tmp-XXXXXX", (int)dlen, path, base);
  } else {
    strcpy(*dir, ".");
    sprintf(*tmpl, ".%s.tmp-XXXXXX", base);
  }
  return KL_OK;
}

static kl_status write_atomic(const char *path, const mf_buf *hdr, const mf_entry *e, int m,
                              const int *order) {
  char *tmpl = NULL, *dir = NULL;
  int fd = -1;
  kl_status s = temp_names(path, &tmpl, &dir);
  if (s != KL_OK) goto done;
  fd = mkstemp(tmpl);
  if (fd < 0) {
    s = kl_seterr(KL_EIO, "save_model: %s: cannot create a temp file: %s", path, strerror(errno));
    goto done;
  }
  unsigned char len8[8];
  for (int k = 0; k < 8; k++) len8[k] = (unsigned char)(((uint64_t)hdr->len >> (8 * k)) & 0xff);
  int bad = fchmod(fd, 0644) != 0 || write_all(fd, len8, 8) != 0 ||
            write_all(fd, hdr->p, hdr->len) != 0;
  for (int i = 0; i < m && !bad; i++)
    bad = write_all(fd, e[order[i]].bytes, e[order[i]].nbytes) != 0;
  if (!bad) bad = fsync(fd) != 0;
  int err = errno;
  if (close(fd) != 0 && !bad) {
    bad = 1;
    err = errno;
  }
  fd = -1;
  if (bad) {
    s = kl_seterr(KL_EIO, "save_model: %s: write failed: %s", path, strerror(err));
    goto done;
  }
  if (rename(tmpl, path) != 0) {
    s = kl_seterr(KL_EIO, "save_model: %s: cannot rename the temp file over it: %s", path,
                  strerror(errno));
    goto done;
  }
  tmpl[0] = '\0'; /* renamed: nothing to remove */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    /* Some file systems refuse fsync on a folder (EINVAL): the rename is then as durable as
     * they make it; any other failure is reported. */
    if (fsync(dfd) != 0 && errno != EINVAL)
      s = kl_seterr(KL_EIO, "save_model: %s: fsync of the folder failed: %s", path,
                    strerror(errno));
    close(dfd);
  }
done:
  if (fd >= 0) close(fd);
  if (tmpl && tmpl[0] && s != KL_OK) unlink(tmpl);
  kl_free(tmpl);
  kl_free(dir);
  return s;
}

kl_status kl_model_file_save(const char *path, int n, const char *const *names,
                             const kl_tensor *const *tensors, int nmeta,
                             const char *const *keys, const char *const *values) {
  mf_entry *e = NULL;
  int *order = NULL;
  mf_buf hdr = {NULL, 0, 0};
  int m = 0;
  kl_status s = check_args(path, n, names, tensors, nmeta, keys, values);
  if (s != KL_OK) goto done;
  e = kl_calloc((size_t)n * 3 + 1, sizeof *e);
  order = kl_calloc((size_t)n * 3 + 1, sizeof *order);
  if (!e || !order) { s = KL_ENOMEM; goto done; }
  for (int i = 0; i < n; i++) {
    int c = 0;
    s = expand(path, names[i], tensors[i], e + m, &c);
    m += c;
    if (s != KL_OK) goto done;
  }
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < i; j++)
      if (strcmp(e[i].name, e[j].name) == 0) {
        s = kl_seterr(KL_EINVAL, "save_model: %s: two tensors are stored as '%s'", path,
                      e[i].name);
        goto done;
      }
    e[i].crc = kl_crc32(e[i].bytes, e[i].nbytes);
  }
  layout_entries(e, m, order);
  s = build_header(path, n, names, tensors, e, m, nmeta, keys, values, &hdr);
  if (s != KL_OK) goto done;
  s = write_atomic(path, &hdr, e, m, order);
done:
  if (e)
    for (int i = 0; i < n * 3 + 1; i++) kl_free(e[i].name);
  kl_free(e);
  kl_free(order);
  kl_free(hdr.p);
  return s;
}
