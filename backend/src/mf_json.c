/* mf_json.c: the strict JSON parser of model-file headers (objects, arrays, strings, ints). */
#include "mf_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct mj_parser {
  const char *s;
  size_t len, i;
  int depth;
  char *err;
  size_t errlen;
} mj_parser;

static kl_status mj_fail(mj_parser *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(p->err, p->errlen, fmt, ap);
  va_end(ap);
  if (k >= 0 && (size_t)k < p->errlen)
    snprintf(p->err + k, p->errlen - (size_t)k, " at byte %zu", p->i);
  return KL_EFORMAT;
}

static void skip_ws(mj_parser *p) {
  while (p->i < p->len) {
    char c = p->s[p->i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->i++;
  }
}

const char *mj_type_name(mj_type t) {
  switch (t) {
  case MJ_OBJECT: return "object";
  case MJ_ARRAY: return "array";
  case MJ_STRING: return "string";
  default: return "integer";
  }
}

void mj_free(mj_value *v) {
  if (!v) return;
  if (v->items) {
    for (int k = 0; k < v->n; k++) mj_free(&v->items[k]);
    kl_free(v->items);
  }
  if (v->keys) {
    for (int k = 0; k < v->n; k++) kl_free(v->keys[k]);
    kl_free(v->keys);
  }
  kl_free(v->str);
  memset(v, 0, sizeof *v);
}

const mj_value *mj_get(const mj_value *obj, const char *key) {
  if (!obj || obj->type != MJ_OBJECT) return NULL;
  for (int k = 0; k < obj->n; k++)
    if (strcmp(obj->keys[k], key) == 0) return &obj->items[k];
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(mj_parser *p, size_t at, unsigned *out) {
  if (at + 4 > p->len) return 0;
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(p->s[at + (size_t)k]);
    if (h < 0) return 0;
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* A string token at p->i (the opening quote). Decoded output is never longer than the raw
 * text, so one buffer of the raw length suffices. */
static kl_status parse_string(mj_parser *p, char **out, size_t *outlen, size_t *raw_len) {
  size_t start = ++p->i, end = start;
  while (end < p->len && p->s[end] != '"') {
    if (p->s[end] == '\\') end++;
    end++;
  }
  if (end >= p->len) { p->i = p->len; return mj_fail(p, "unterminated string"); }
  char *buf = kl_malloc(end - start + 1);
  if (!buf) return KL_ENOMEM;
  size_t o = 0;
  while (p->i < end) {
    unsigned char c = (unsigned char)p->s[p->i];
    if (c < 0x20) { kl_free(buf); return mj_fail(p, "control character 0x%02x in string", c); }
    if (c != '\\') { buf[o++] = (char)c; p->i++; continue; }
    char e = p->s[p->i + 1];
    const char *simple = strchr("\"\\/bfnrt", e);
    if (e && simple) {
      static const char map[] = "\"\\/\b\f\n\r\t";
      buf[o++] = map[simple - "\"\\/bfnrt"];
      p->i += 2;
      continue;
    }
    if (e != 'u') { p->i++; kl_free(buf); return mj_fail(p, "bad escape '\\%c'", e ? e : '0'); }
    unsigned cp, lo;
    if (!read_hex4(p, p->i + 2, &cp) || p->i + 6 > end) {
      kl_free(buf); return mj_fail(p, "bad \\u escape");
    }
    p->i += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (p->i + 6 > end || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
          !read_hex4(p, p->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
        kl_free(buf); return mj_fail(p, "unpaired surrogate in \\u escape");
      }
      p->i += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      kl_free(buf); return mj_fail(p, "unpaired surrogate in \\u escape");
    }
    if (cp == 0) { kl_free(buf); return mj_fail(p, "\\u0000 in string"); }
    o += put_utf8(buf + o, cp);
  }
  buf[o] = '\0';
  p->i = end + 1;
  *out = buf;
  *outlen = o;
  *raw_len = end - start;
  return KL_OK;
}

static kl_status parse_int(mj_parser *p, int64_t *out) {
  int neg = 0;
  if (p->s[p->i] == '-') { neg = 1; p->i++; }
  if (p->i >= p->len || p->s[p->i] < '0' || p->s[p->i] > '9') return mj_fail(p, "expected a digit");
  if (p->s[p->i] == '0' && p->i + 1 < p->len && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
    return mj_fail(p, "leading zero in number");
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    unsigned d = (unsigned)(p->s[p->i] - '0');
    if (v > (lim - d) / 10) return mj_fail(p, "integer out of range");
    v = v * 10 + d;
    p->i++;
  }
  if (p->i < p->len && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
    return mj_fail(p, "only integers are allowed");
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return KL_OK;
}

static kl_status parse_value(mj_parser *p, mj_value *v);

/* Appends a zeroed slot to v's items (and keys when is_obj); returns its index or -1. */
static int grow(mj_value *v, int *cap, int is_obj) {
  if (v->n == *cap) {
    int nc = *cap ? *cap * 2 : 4;
    mj_value *ni = kl_realloc(v->items, (size_t)nc * sizeof *ni);
    if (!ni) return -1;
    v->items = ni;
    if (is_obj) {
      char **nk = kl_realloc(v->keys, (size_t)nc * sizeof *nk);
      if (!nk) return -1;
      v->keys = nk;
    }
    *cap = nc;
  }
  memset(&v->items[v->n], 0, sizeof v->items[0]);
  if (is_obj) v->keys[v->n] = NULL;
  return v->n++;
}

static kl_status parse_container(mj_parser *p, mj_value *v, int is_obj) {
  char close = is_obj ? '}' : ']';
  int cap = 0;
  v->type = is_obj ? MJ_OBJECT : MJ_ARRAY;
  if (++p->depth > MJ_MAX_DEPTH) return mj_fail(p, "nesting deeper than %d", MJ_MAX_DEPTH);
  p->i++;
  skip_ws(p);
  if (p->i < p->len && p->s[p->i] == close) { p->i++; p->depth--; return KL_OK; }
  for (;;) {
    skip_ws(p);
    int k = grow(v, &cap, is_obj);
    if (k < 0) return KL_ENOMEM;
    if (is_obj) {
      if (p->i >= p->len || p->s[p->i] != '"') return mj_fail(p, "expected a string key");
      size_t sl, rl;
      KL_TRY(parse_string(p, &v->keys[k], &sl, &rl));
      for (int j = 0; j < k; j++)
        if (strcmp(v->keys[j], v->keys[k]) == 0)
          return mj_fail(p, "duplicate key \"%.60s\"", v->keys[k]);
      skip_ws(p);
      if (p->i >= p->len || p->s[p->i] != ':') return mj_fail(p, "expected ':'");
      p->i++;
      skip_ws(p);
    }
    KL_TRY(parse_value(p, &v->items[k]));
    skip_ws(p);
    if (p->i >= p->len) return mj_fail(p, "unexpected end, expected ',' or '%c'", close);
    if (p->s[p->i] == ',') { p->i++; continue; }
    if (p->s[p->i] == close) { p->i++; p->depth--; return KL_OK; }
    return mj_fail(p, "expected ',' or '%c'", close);
  }
}

static kl_status parse_value(mj_parser *p, mj_value *v) {
  skip_ws(p);
  if (p->i >= p->len) return mj_fail(p, "unexpected end, expected a value");
  char c = p->s[p->i];
  v->pos = p->i;
  if (c == '{') return parse_container(p, v, 1);
  if (c == '[') return parse_container(p, v, 0);
  if (c == '"') {
    v->type = MJ_STRING;
    return parse_string(p, &v->str, &v->slen, &v->raw_len);
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    v->type = MJ_INT;
    return parse_int(p, &v->ival);
  }
  if (c >= 0x20 && c < 0x7f) return mj_fail(p, "unexpected character '%c'", c);
  return mj_fail(p, "unexpected byte 0x%02x", (unsigned char)c);
}

kl_status mj_parse(const char *text, size_t len, mj_value *out, char *err, size_t errlen) {
  mj_parser p = {text, len, 0, 0, err, errlen};
  memset(out, 0, sizeof *out);
  if (errlen) err[0] = '\0';
  kl_status s = parse_value(&p, out);
  if (s == KL_OK) {
    skip_ws(&p);
    if (p.i < p.len) {
      unsigned char c = (unsigned char)text[p.i];
      s = (c >= 0x20 && c < 0x7f) ? mj_fail(&p, "trailing character '%c'", c)
                                  : mj_fail(&p, "trailing byte 0x%02x", c);
    }
  }
  if (s != KL_OK) mj_free(out);
  return s;
}
