/* mf_json.h: a small strict JSON parser for model-file headers (internal). */
#ifndef KL_MF_JSON_H
#define KL_MF_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "kl/kl.h"

/* Only what a safetensors header needs: objects, arrays, strings (all escapes, \u with
 * surrogate pairs -> UTF-8; \u0000 refused) and integers (int64, no fraction/exponent,
 * no leading zeros). true/false/null/floats are refused. Duplicate keys are refused. */
typedef enum mj_type { MJ_OBJECT, MJ_ARRAY, MJ_STRING, MJ_INT } mj_type;

typedef struct mj_value {
  mj_type type;
  int64_t ival;           /* MJ_INT */
  char *str;              /* MJ_STRING: decoded, NUL-terminated */
  size_t slen;            /* decoded length */
  size_t pos;             /* offset of the token in the text (strings: the opening quote) */
  size_t raw_len;         /* strings: bytes between the quotes as written */
  int n;                  /* array items / object members */
  struct mj_value *items; /* array items, or object values */
  char **keys;            /* object keys (decoded) */
} mj_value;

#define MJ_MAX_DEPTH 16

/* Parses text[0..len-1] (one value, then only whitespace) into *out. On a syntax error
 * returns KL_EFORMAT with a message like "header: expected ':' at byte 45" in err (no
 * kl_seterr); KL_ENOMEM with kl_seterr's message. *out is empty after a failure. */
kl_status mj_parse(const char *text, size_t len, mj_value *out, char *err, size_t errlen);
/* Frees what v holds (not v itself); NULL-safe, idempotent on a zeroed value. */
void mj_free(mj_value *v);
/* The member key of an object, or NULL. */
const mj_value *mj_get(const mj_value *obj, const char *key);
/* "object", "array", "string", "integer". */
const char *mj_type_name(mj_type t);

#endif
