/* model_file.h: model files: safetensors layout (8-byte little-endian header length, JSON
 * header, raw little-endian tensor bytes) with CRC32s and stypes in __metadata__. */
#ifndef KL_MODEL_FILE_H
#define KL_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The file's layout, as written and as checked on load:
 *   bytes 0..7      header length H (uint64, little-endian), H % 8 == 0 when written
 *   bytes 8..8+H-1  JSON object: "name": {"dtype": "F32"|"F64"|"I64", "shape": [...],
 *                   "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}; padded
 *                   with spaces
 *   the rest        tensor bytes, offsets relative to 8+H, contiguous, in header order.
 * Dense tensors are stored as one entry. A CSR tensor "w" is stored as "w.data", "w.indices"
 * (I64) and "w.indptr" (I64), a row_sparse one as "w.data" and "w.indices"; its stype and
 * logical shape go in __metadata__ as "kl.sparse:w" = {"stype":"csr","shape":[r,c]}.
 * __metadata__ also holds "kl.crc32:<entry>" (8 lowercase hex digits, zlib crc32 of the
 * entry's bytes) for every entry, and "kl.header_crc32": the crc32 of the header bytes
 * with its own 8 digits read as "00000000". Keys starting with "kl." are reserved. */

/* A loaded file: n tensors (names[i], tensors[i], in file order, sparse tensors rebuilt),
 * and the caller's metadata (keys[i] -> values[i], NUL-terminated, reserved keys left out). */
typedef struct kl_model_file {
  int n;
  char **names;
  kl_tensor **tensors;
  int nmeta;
  char **keys;
  char **values;
} kl_model_file;

/* Writes tensors[0..n-1] (any stype and dtype) under names[0..n-1] and the string pairs
 * keys[i] -> values[i] (i < nmeta) to path atomically: a temp file in the same folder,
 * fsync, rename over path, fsync of the folder. On failure the temp file is removed and
 * an existing file at path is untouched. Messages: "save_model: path: ...". */
kl_status kl_model_file_save(const char *path, int n, const char *const *names,
                             const kl_tensor *const *tensors, int nmeta,
                             const char *const *keys, const char *const *values);

/* Reads and fully validates path (lengths, JSON, dtypes, shapes, offsets, CRCs, sparse
 * invariants) before building anything. *out is new, owned by the caller
 * (kl_model_file_free). Errors: KL_EIO (open/read), KL_EFORMAT with
 * "load_model: path: message", KL_ENOMEM. */
kl_status kl_model_file_load(const char *path, kl_model_file **out);

/* Same as kl_model_file_load on a buffer already in memory (len bytes); label stands for
 * the path in messages. buf is only read. */
kl_status kl_model_file_parse(const char *label, const unsigned char *buf, size_t len,
                              kl_model_file **out);

/* Frees f and releases its tensors; NULL-safe. */
void kl_model_file_free(kl_model_file *f);

/* zlib's crc32 of len bytes (the checksum the file stores). */
uint32_t kl_crc32(const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* KL_MODEL_FILE_H */
