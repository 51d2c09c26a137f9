/* mf_internal.h: shared pieces of the model-file writer and reader (internal). */
#ifndef KL_MF_INTERNAL_H
#define KL_MF_INTERNAL_H

#include "kl/model_file.h"

/* Largest header the reader accepts (safetensors' own limit). */
#define KL_MF_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

#define KL_MF_META "__metadata__"
#define KL_MF_KEY_HEADER_CRC "kl.header_crc32"
#define KL_MF_KEY_FORMAT "kl.format"
#define KL_MF_PREFIX_CRC "kl.crc32:"
#define KL_MF_PREFIX_SPARSE "kl.sparse:"
#define KL_MF_FORMAT_VERSION "keras-lua/1"

/* "F32", "F64", "I64" */
static inline const char *kl_mf_dtype_tag(kl_dtype d) {
  return d == KL_FLOAT32 ? "F32" : d == KL_FLOAT64 ? "F64" : "I64";
}

/* 1 if tag is a known dtype tag (sets *d). */
static inline int kl_mf_parse_tag(const char *tag, kl_dtype *d) {
  if (tag[0] == 'F' && tag[1] == '3' && tag[2] == '2' && !tag[3]) { *d = KL_FLOAT32; return 1; }
  if (tag[0] == 'F' && tag[1] == '6' && tag[2] == '4' && !tag[3]) { *d = KL_FLOAT64; return 1; }
  if (tag[0] == 'I' && tag[1] == '6' && tag[2] == '4' && !tag[3]) { *d = KL_INT64; return 1; }
  return 0;
}

/* 1 on a little-endian host (the only byte order the files are read/written on). */
static inline int kl_mf_little_endian(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

#endif
